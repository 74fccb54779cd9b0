import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation
import Logging
import Synchronization

/// What one queue run did.
public struct MailTally: Equatable, Sendable {
    public var sent = 0
    public var failed = 0
    /// Left queued after a transient failure.
    public var deferred = 0
    /// Left queued because the server refused us (login, TLS): a person must act.
    public var refused = 0

    public init() {}
}

/// Sends the mail queue: each run walks the outbox oldest first on one SMTP session (one login),
/// and looks again at the end for mail queued meanwhile. A message leaves the outbox only after
/// the server's final `250`; a crash before that sends it again on the next run. Not thread-safe:
/// one runner per spool, used from one thread at a time.
public final class MailQueueRunner: Sendable {
    public let spool: MailSpool
    private let journal: Journal
    private let logger: Logger
    private let hostname: String
    private let environment: [String: String]
    private struct Pause {
        var until: Date?
        var refusal: String?
    }

    private let pause = Mutex(Pause())

    /// After the server could not be reached or refused us, no run before this time.
    public private(set) var serverPausedUntil: Date? {
        get { pause.withLock { $0.until } }
        set { pause.withLock { $0.until = newValue } }
    }

    /// Set when the server refused us: runs stop until `forgetRefusal` (a reload, flush or restart).
    public private(set) var refusal: String? {
        get { pause.withLock { $0.refusal } }
        set { pause.withLock { $0.refusal = newValue } }
    }

    public init(spool: MailSpool, journal: Journal, logger: Logger,
                environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        try spool.createLayout()
        self.spool = spool
        self.journal = journal
        self.logger = logger
        self.environment = environment
        hostname = ProcessInfo.processInfo.hostName
    }

    public func forgetRefusal() {
        refusal = nil
        serverPausedUntil = nil
    }

    /// New mail was queued: the network may be back, so the pause after an unreachable server ends.
    public func endPause() { serverPausedUntil = nil }

    /// When the next message falls due (now for one that never failed), or `nil` when nothing will
    /// fall due by itself: an empty queue, no SMTP server set, or a refusal waiting for a person.
    public func nextDue(settings: MailSettings) -> Date? {
        guard refusal == nil, settings.smtp != nil,
              let queued = try? spool.queued().filter({ $0.status.kind == .regular || $0.status.kind == .symlink }),
              !queued.isEmpty else { return nil }
        let nextAttempts = self.nextAttempts(of: queued)
        let due = queued.map { nextAttempts[$0.name] ?? 0 }.min() ?? 0
        return max(Date(timeIntervalSince1970: due), serverPausedUntil ?? .distantPast)
    }

    /// The next attempt of each entry that has one (it failed before), by name: one journal read.
    private func nextAttempts(of entries: [MailSpool.Entry]) -> [String: Double] {
        let records = (try? journal.mailRecords()) ?? []
        let inodes = Dictionary(entries.map { ($0.name, $0.inode) }, uniquingKeysWith: { first, _ in first })
        var attempts: [String: Double] = [:]
        for record in records where inodes[record.name] == record.inode {
            attempts[record.name] = record.nextAttempt
        }
        return attempts
    }

    /// Sends what is due (everything with `ignoringBackoff`). `shouldContinue` is asked between
    /// messages and during each; returning false ends the run with the message in progress
    /// still queued.
    public func run(settings: MailSettings, ignoringBackoff: Bool, shouldContinue: @escaping () -> Bool) -> MailTally {
        var tally = MailTally()
        guard refusal == nil || ignoringBackoff else { return tally }
        refusal = nil
        var client: SMTPClient?
        var tried = Set<String>()
        while shouldContinue() {
            let entries: [MailSpool.Entry]
            do { entries = try spool.queued().filter { !tried.contains($0.name) } } catch {
                logger.error("cannot list the mail queue", metadata: ["mail.error": "\(error)"])
                break
            }
            let now = Date().timeIntervalSince1970
            let nextAttempts = ignoringBackoff ? [:] : self.nextAttempts(of: entries)
            let due = entries.filter { (nextAttempts[$0.name] ?? 0) <= now }
            if due.isEmpty { break }
            guard let smtp = settings.smtp else {
                warnNoServer(entries.count)
                tally.deferred += due.count
                return tally
            }
            for entry in due where shouldContinue() {
                tried.insert(entry.name)
                let outcome = deliver(entry, settings: settings, smtp: smtp, client: &client, shouldContinue: shouldContinue)
                switch outcome {
                case .sent: tally.sent += 1
                case .failed: tally.failed += 1
                case .deferred: tally.deferred += 1
                case .skipped: break
                case .stopRun(let refused):
                    if refused { tally.refused += 1 } else { tally.deferred += 1 }
                    return tally
                }
            }
        }
        return tally
    }

    private enum Outcome {
        case sent, failed, skipped
        /// Left queued until the time given (seconds since 1970).
        case deferred(until: Double)
        /// The server cannot take any message now; `refused` when a person must act.
        case stopRun(refused: Bool)
    }

    /// The entry's record, or a new one when it has not failed before.
    private func record(for entry: MailSpool.Entry) -> MailQueueRecord {
        (try? journal.mailRecord(name: entry.name, inode: entry.inode)) ?? MailQueueRecord(name: entry.name, inode: entry.inode)
    }

    private func deliver(_ entry: MailSpool.Entry, settings: MailSettings, smtp: MailServer,
                         client: inout SMTPClient?, shouldContinue: @escaping () -> Bool) -> Outcome {
        let metadata: Logger.Metadata = ["mail.message": "\(entry.name)"]
        switch entry.status.kind {
        case .regular: break
        case .symlink:
            return failed(entry.name, reason: "the queue entry is a symbolic link; the agent does not follow links in the spool",
                          advice: "queue the message itself, not a link to it", metadata: metadata)
        default:
            return .skipped
        }
        let message: OutgoingMessage
        do {
            message = try OutgoingMessage(path: entry.path, envelope: try spool.envelope(for: entry.name),
                                          policySender: settings.from, hostname: hostname)
        } catch let error as MessageError {
            return failed(entry.name, reason: error.description,
                          advice: "fix the message and move it back into mail/outbox/", metadata: metadata)
        } catch let error as SystemError where error.isNotFound {
            return .skipped
        } catch {
            return retryLater(entry, error: "cannot read the message: \(error)", settings: settings, metadata: metadata)
        }

        do {
            let session = try client ?? SMTPClient(settings: smtp, environment: environment, hostname: hostname)
            client = session
            let delivery = try session.send(message, shouldContinue: shouldContinue)
            return delivered(entry, message: message, delivery: delivery, settings: settings, metadata: metadata)
        } catch let error as MailServerError {
            switch error.kind {
            case .permanent:
                return failed(entry.name, reason: error.message,
                              advice: "the server will not take this message as it is: read its reply above", metadata: metadata)
            case .transient:
                return retryLater(entry, error: error.message, settings: settings, metadata: metadata)
            case .unreachable:
                let outcome = retryLater(entry, error: error.message, settings: settings, metadata: metadata)
                guard case .deferred(let until) = outcome else { return outcome }
                serverPausedUntil = Date(timeIntervalSince1970: until)
                return .stopRun(refused: false)
            case .refused:
                var record = self.record(for: entry)
                record.lastError = error.message
                try? journal.saveMailRecord(record)
                refusal = error.message
                logger.error("the SMTP server refused us; mail waits in the queue until the policy is reloaded, `mail flush` or a restart",
                             metadata: ["mail.error": "\(error.message)"])
                return .stopRun(refused: true)
            }
        } catch is TransferCancelled {
            return .stopRun(refused: false)
        } catch {
            return retryLater(entry, error: "\(error)", settings: settings, metadata: metadata)
        }
    }

    /// The server took the message for some or all recipients.
    private func delivered(_ entry: MailSpool.Entry, message: OutgoingMessage, delivery: SMTPDelivery,
                           settings: MailSettings, metadata: Logger.Metadata) -> Outcome {
        let permanent = delivery.refused.filter(\.isPermanent)
        let transient = delivery.refused.filter { !$0.isPermanent }
        do {
            if !permanent.isEmpty {
                try spool.fail(entry.name, reason: "refused for " + describe(permanent) + "; it was sent to "
                    + (delivery.accepted.isEmpty ? "nobody else yet" : delivery.accepted.joined(separator: ", ")),
                    advice: "correct the refused addresses and queue the message for them alone", keepQueued: true)
                logger.warning("recipients refused", metadata: metadata.adding(["mail.refused": "\(describe(permanent))"]))
            }
            if !transient.isEmpty {
                try spool.saveEnvelope(Envelope(sender: message.sender, recipients: transient.map(\.address)), for: entry.name)
                logger.info("message sent to some recipients; the others are retried",
                            metadata: metadata.adding(["mail.accepted": "\(delivery.accepted.count)"]))
                return retryLater(entry, error: "deferred for " + describe(transient), settings: settings, metadata: metadata)
            }
            try spool.finish(entry.name, archive: settings.after == .archive)
            try? journal.forgetMailRecord(name: entry.name)
            logger.info("message sent", metadata: metadata.adding(["mail.recipients": "\(delivery.accepted.count)"]))
            return .sent
        } catch {
            // Sent, but not moved out: a crash-like state; the next run would send it again, so say so loudly.
            logger.critical("message sent but cannot be moved out of the queue; remove it by hand or it is sent again",
                            metadata: metadata.adding(["mail.error": "\(error)"]))
            return .sent
        }
    }

    private func describe(_ refusals: [RecipientRefusal]) -> String {
        refusals.map { "\($0.address) (\($0.reply.replacingOccurrences(of: "\n", with: " ")))" }.joined(separator: ", ")
    }

    private func failed(_ name: String, reason: String, advice: String, metadata: Logger.Metadata) -> Outcome {
        do {
            let destination = try spool.fail(name, reason: reason, advice: advice)
            try? journal.forgetMailRecord(name: name)
            logger.error("message moved to failed", metadata: metadata.adding(
                ["mail.reason": "\(reason)", "mail.failed": "\(destination)"]))
        } catch {
            logger.error("cannot move a message to failed", metadata: metadata.adding(["mail.error": "\(error)"]))
        }
        return .failed
    }

    /// Counts a transient failure and sets the next attempt; past the queue lifetime the message fails.
    private func retryLater(_ entry: MailSpool.Entry, error: String, settings: MailSettings, metadata: Logger.Metadata) -> Outcome {
        let now = Date().timeIntervalSince1970
        var record = self.record(for: entry)
        record.attempts += 1
        let firstFailure = record.firstFailure ?? now
        record.firstFailure = firstFailure
        record.lastError = error
        guard let delay = settings.retry.pause(afterAttempt: record.attempts, firstFailure: firstFailure, now: now) else {
            return failed(entry.name, reason: "still failing after \(settings.retry.giveUpAfter) (mail.queue_lifetime), "
                + "\(record.attempts) attempts; last error: \(error)",
                advice: "check the server and the addresses, then move the message back into mail/outbox/", metadata: metadata)
        }
        record.nextAttempt = now + delay
        try? journal.saveMailRecord(record)
        logger.warning("message deferred", metadata: metadata.adding(
            ["mail.error": "\(error)", "mail.retry_in": "\(TimeSpan(seconds: delay))"]))
        return .deferred(until: now + delay)
    }

    private let warnedNoServer = Atomic(false)

    private func warnNoServer(_ count: Int) {
        guard !warnedNoServer.exchange(true, ordering: .relaxed) else { return }
        logger.warning("mail is queued but no SMTP server is set (mail.smtp in the policy); it waits",
                       metadata: ["mail.queued": "\(count)"])
    }
}

extension Logger.Metadata {
    fileprivate func adding(_ other: Logger.Metadata) -> Logger.Metadata { merging(other) { mine, _ in mine } }
}
