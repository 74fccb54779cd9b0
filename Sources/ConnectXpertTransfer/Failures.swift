import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation
import Logging

/// A failure that no retry can fix, with what the person should do.
struct PermanentFailure: Error, CustomStringConvertible {
    let reason: String
    let advice: String
    var description: String { reason }
}

/// What a failure calls for.
enum FailureKind { case transient, permanent, refused, cancelled }

extension Agent {
    func classify(_ error: Error) -> FailureKind {
        switch error {
        case is TransferCancelled: return .cancelled
        case let error as TransportError:
            switch error.kind {
            case .transient, .notFound: return .transient
            case .refused: return .refused
            case .permanent, .alreadyExists: return .permanent
            }
        case is PermanentFailure: return .permanent
        case let error as SystemError:
            return [EACCES, EPERM, ENAMETOOLONG, ELOOP].contains(error.errno) ? .permanent : .transient
        default: return .transient
        }
    }

    /// What a file's failure leads to, in either direction: nothing (it went away, or only its
    /// after-step failed), a retry after the rule's backoff, a wait for a remote that refused us, or,
    /// for a permanent failure or once the rule's `give_up_after` has passed, the pipeline's give-up.
    /// Unless delivered or gone, what the file holds on the remote is then released.
    func outcome<P: Pipeline>(of attempt: Attempt<P.Job.Item>, failing error: Error, in pipeline: P) -> JobOutcome {
        if pipeline.isGone(error) {
            pipeline.forget(attempt)
            return .finished
        }
        var log = attempt.log
        log[metadataKey: "transfer.error"] = "\(error)"
        if let record = attempt.record, record.state == .delivered {
            // Delivered; only the after-step failed. Never transferred twice.
            try? journal.save(record)
            log.error(pipeline.deliveredButUnfinished(attempt))
            count { $0[keyPath: pipeline.delivered.count] += 1 }
            return .finished
        }
        let next: JobOutcome?  // nil: given up
        switch classify(error) {
        case .cancelled:
            pipeline.cancel(attempt)
            next = .finished
        case .transient:
            next = retry(attempt.record, pipeline.noun, after: error, retry: attempt.retry, log: log)
            if next == nil {
                pipeline.giveUp(attempt, reason: "gave up after \(attempt.retry.giveUpAfter) of failed attempts; "
                    + "the last error: \(error)", advice: pipeline.advice(attempt, afterRetries: true), log: log)
            }
        case .refused:
            if var record = attempt.record {
                record.lastError = "\(error)"
                try? journal.save(record)
            }
            refused(error, remote: attempt.remote.name, item: attempt.key)
            next = .finished
        case .permanent:
            let advice = (error as? PermanentFailure)?.advice ?? pipeline.advice(attempt, afterRetries: false)
            pipeline.giveUp(attempt, reason: "\(error)", advice: advice, log: log)
            next = nil
        }
        pipeline.release(attempt, givenUp: next == nil)
        return next ?? .finished
    }

    /// A transient failure of `record`'s `what` ("transfer", "download"): its retry, recorded and
    /// logged, or `nil` once the rule's `give_up_after` has passed and the caller must give up.
    private func retry(_ record: TransferRecord?, _ what: String, after error: Error, retry: RetryPolicy,
                       log: Logger) -> JobOutcome? {
        guard var record else {
            log.warning("cannot start the \(what); will retry")
            return deferOrRetry(after: retry.initial.seconds)
        }
        let now = Date().timeIntervalSince1970
        record.attempts += 1
        let firstFailure = record.firstFailure ?? now
        record.firstFailure = firstFailure
        record.lastError = "\(error)"
        guard let delay = retry.pause(afterAttempt: record.attempts, firstFailure: firstFailure, now: now) else {
            return nil
        }
        record.nextAttempt = now + delay
        // A transfer under way begins again; a staged file keeps its state, as its copy is complete:
        // one renamed before its folder's fsync failed is not received twice.
        if record.state == .transferring { record.state = .queued }
        try? journal.save(record)
        log.warning("\(what) failed; will retry", metadata: [
            "transfer.attempt": "\(record.attempts)", "transfer.retry_in": "\(TimeSpan(seconds: delay))",
        ])
        return deferOrRetry(after: delay)
    }

    /// A transient failure's outcome: in batch mode the file waits for the next run (and is counted
    /// so), in the daemon it is tried again after `delay` seconds.
    private func deferOrRetry(after delay: Double) -> JobOutcome {
        if mode == .batch {
            count { $0.deferred += 1 }
            return .finished
        }
        return .retry(after: delay)
    }
}
