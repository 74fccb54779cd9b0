import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertTransport
import Foundation
import Logging

/// What a file is to a pipeline, in either direction: what its job is about, its job's key, and
/// the remote, retry policy and log of its rule.
struct Subject<Item: Sendable> {
    let item: Item
    let key: JobKey
    let remote: Remote
    let retry: RetryPolicy
    let log: Logger
}

/// What a failure needs to know of a file: what it is, and its transfer, once begun.
@dynamicMemberLookup
struct Attempt<Item: Sendable> {
    let subject: Subject<Item>
    var record: TransferRecord?

    subscript<Value>(dynamicMember keyPath: KeyPath<Subject<Item>, Value>) -> Value { subject[keyPath: keyPath] }
}

/// A file on its way through a pipeline: the job it is, what it is, and its journal record, whose
/// state says which stage is next.
protocol TransferJob {
    associatedtype Item: Sendable
    var running: RunningJob { get }
    var subject: Subject<Item> { get }
    var record: TransferRecord { get set }
    var started: Date { get }
}

extension TransferJob {
    var remote: Remote { subject.remote }
    var log: Logger { subject.log }
    var attempt: Attempt<Item> { Attempt(subject: subject, record: record) }
}

/// One step of a pipeline, for one file: it takes a file whose record is in one of the states it
/// `takes` and leaves it in the next one. A file whose record is elsewhere (a run resumed from the
/// journal) skips it.
protocol Stage<Job>: Sendable {
    associatedtype Job: TransferJob
    var takes: Set<TransferState> { get }
    func run(_ job: inout Job, through transport: any Transport) throws
}

extension Stage {
    /// Runs the stage if the file's record is in a state it takes.
    func advance(_ job: inout Job, through transport: any Transport) throws {
        guard takes.contains(job.record.state) else { return }
        try run(&job, through: transport)
    }
}

/// A step for a whole batch at once (one fsync for many files). When it fails, so does every file
/// of the batch.
protocol BatchStage<Job>: Sendable {
    associatedtype Job: TransferJob
    func run(_ jobs: inout [Job]) throws
}

enum Step<Job: TransferJob> {
    case each(any Stage<Job>)
    case together(any BatchStage<Job>)
}

/// What a pipeline's admission found: a file to take through the stages, or the outcome of a job
/// that has nothing to do (or failed before its transfer began).
enum Admission<Job> {
    case ready(Job)
    case skip(JobOutcome)
}

/// One direction of transfer, as the stages its files go through. The batch driver
/// (`Agent.run(_:_:as:)`) runs the `staging` stages for each file of a batch, then makes their
/// journal records durable with one fsync, then runs the `completing` steps. What a failure does
/// is decided once for both directions (`Agent.outcome(of:failing:in:)`); a pipeline says what it
/// means for its files.
protocol Pipeline: Sendable {
    associatedtype Job: TransferJob

    /// The stages up to `staged`: the file complete under its temporary name.
    var staging: [any Stage<Job>] { get }
    /// The steps after the staged records are durable, up to `done`.
    var completing: [Step<Job>] { get }

    /// Finds a file's rule, remote and transfer (the unfinished one, or a new one); no connection.
    func admit(_ item: Job.Item, as job: RunningJob) -> Admission<Job>

    /// What is said of a delivered file ("sent"), and what counts it.
    var delivered: (word: String, count: WritableKeyPath<Tally, Int>) { get }
    /// What is said of a delivered file whose after-step failed; it is not transferred again.
    func deliveredButUnfinished(_ attempt: Attempt<Job.Item>) -> Logger.Message
    /// What a retry calls the transfer ("transfer", "download").
    var noun: String { get }
    /// Whether an error means the file went away: there is nothing left to do.
    func isGone(_ error: Error) -> Bool
    /// Forgets a file that went away.
    func forget(_ attempt: Attempt<Job.Item>)
    /// Leaves a transfer cut short by a shutdown ready for the next run.
    func cancel(_ attempt: Attempt<Job.Item>)
    /// Gives a file up: it waits for a person, with the reason and what to do; `log` names the error.
    func giveUp(_ attempt: Attempt<Job.Item>, reason: String, advice: String?, log: Logger)
    /// Gives back what the job of a file neither delivered nor gone holds on the remote, once its
    /// failure is dealt with: the file is tried again later, or, `givenUp`, waits for a person.
    func release(_ attempt: Attempt<Job.Item>, givenUp: Bool)
    /// What a person should do about a file given up for `error`, when the error does not say.
    func advice(_ attempt: Attempt<Job.Item>, afterRetries: Bool) -> String?
}

extension Agent {
    /// At most this many files go in one batch, and files are taken into a batch only while it
    /// holds less than `batchBytes`: a file's rename waits for the batch's transfers.
    static let batchFiles = 16
    static let batchBytes: Int64 = 1 << 20

    /// The batch driver of both directions. Runs one file's job and, on its connection, those of
    /// files waiting for the same remote while the batch is small: each is staged, one fsync makes
    /// all their records durable, and then each completes. Many small files then cost one fsync,
    /// not one each.
    func run<P: Pipeline>(_ pipeline: P, _ item: P.Job.Item, as running: RunningJob) {
        guard var first = admitted(pipeline, item, as: running) else { return }
        do {
            try pool.withConnection(to: first.remote) { transport in
                try stage(&first, in: pipeline, through: transport)
                var batch = [first]
                var bytes = first.record.size
                while batch.count < Self.batchFiles && bytes < Self.batchBytes,
                      let (job, item) = scheduler.take(P.Job.Item.self, remote: first.remote.name) {
                    guard var next = admitted(pipeline, item, as: job) else { continue }
                    guard next.remote == first.remote else {  // the policy changed meanwhile
                        job.end(.retry(after: 0))
                        continue
                    }
                    if next.record.size >= Self.batchBytes {  // those before it need not wait for it
                        complete(batch, in: pipeline, through: transport)
                        batch = []
                        bytes = 0
                    }
                    do {
                        try stage(&next, in: pipeline, through: transport)
                    } catch {
                        end(next, in: pipeline, failing: error)
                        break  // the connection may be broken
                    }
                    batch.append(next)
                    bytes += next.record.size
                }
                complete(batch, in: pipeline, through: transport)
            }
        } catch {
            end(first, in: pipeline, failing: error)
        }
    }

    private func admitted<P: Pipeline>(_ pipeline: P, _ item: P.Job.Item, as running: RunningJob) -> P.Job? {
        switch pipeline.admit(item, as: running) {
        case .ready(let job): return job
        case .skip(let outcome):
            running.end(outcome)
            return nil
        }
    }

    private func stage<P: Pipeline>(_ job: inout P.Job, in pipeline: P, through transport: any Transport) throws {
        for stage in pipeline.staging { try stage.advance(&job, through: transport) }
    }

    /// The steps after `staged`, for a batch of staged files.
    private func complete<P: Pipeline>(_ batch: [P.Job], in pipeline: P, through transport: any Transport) {
        guard !batch.isEmpty else { return }
        var jobs = batch
        do {
            try journal.makeDurable()
        } catch {
            for job in jobs { end(job, in: pipeline, failing: error) }
            return
        }
        for step in pipeline.completing {
            switch step {
            case .each(let stage):
                jobs = jobs.compactMap { job in
                    var job = job
                    do {
                        try stage.advance(&job, through: transport)
                        return job
                    } catch {
                        end(job, in: pipeline, failing: error)
                        return nil
                    }
                }
            case .together(let stage):
                do {
                    try stage.run(&jobs)
                } catch {
                    for job in jobs { end(job, in: pipeline, failing: error) }
                    jobs = []
                }
            }
        }
        for job in jobs { end(job, in: pipeline) }
    }

    /// Where a file's job ends: delivered, or failed (and then retried, given up, or waiting).
    private func end<P: Pipeline>(_ job: P.Job, in pipeline: P, failing error: Error? = nil) {
        guard let error else {
            job.log.info("\(pipeline.delivered.word)", metadata: [
                "transfer.destination": "\(job.record.destination ?? "")", "transfer.bytes": "\(job.record.size)",
                "transfer.duration": "\(String(format: "%.3f", Date().timeIntervalSince(job.started)))s",
            ])
            count { $0[keyPath: pipeline.delivered.count] += 1 }
            return job.running.end(.finished)
        }
        job.running.end(outcome(of: job.attempt, failing: error, in: pipeline))
    }
}
