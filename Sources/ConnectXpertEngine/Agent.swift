import ConnectXpertJournal
import ConnectXpertMail
import ConnectXpertPolicy
import ConnectXpertSpool
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation
import Logging
import Synchronization

/// How the agent runs: in the daemon a transient failure is retried in-process after a backoff;
/// in a batch pass (`run --once`) it is left for the next pass.
public enum RunMode: Sendable { case daemon, batch }

/// What one run did, for the batch summary.
public struct Tally: Sendable, Equatable {
    public var sent = 0
    public var received = 0
    /// Moved to `failed/` (or, for incoming files, left on the remote) because they need a person.
    public var failed = 0
    /// Of `failed`, the incoming files left on the remote, and the messages moved to `mail/failed/`.
    public var failedDownloads = 0
    public var failedMail = 0
    /// Transient failures left for a later attempt.
    public var deferred = 0
    /// Transfers a remote refused (authentication, host key): the files wait for a person.
    public var refused = 0
    /// Messages the SMTP server took (their failures count in `failed`, `deferred`, `refused`).
    public var mailSent = 0
    /// Messages fetched from IMAP mailboxes into Maildirs.
    public var mailFetched = 0

    mutating func add(_ mail: MailTally) {
        mailSent += mail.sent
        failed += mail.failed
        failedMail += mail.failed
        deferred += mail.deferred
        refused += mail.refused
    }
}

/// The transfer engine: owns the policy in force, the spool, the journal, the connections and the
/// scheduler, and runs the send and receive pipelines (see `Sending.swift`, `Receiving.swift`).
public final class Agent: Sendable {
    public let spool: Spool
    public let mailSpool: MailSpool
    public let journal: Journal
    let logger: Logger
    let mode: RunMode
    let pool = ConnectionPool()
    let scheduler: Scheduler
    private let current: PolicyBox
    let tallies = Mutex(Tally())
    /// Remote names already warned about, so each poll does not repeat the warning.
    let warned = Mutex(Set<String>())
    /// Remotes that refused us (authentication, host key) since the last reload.
    let refusedRemotes = Mutex(Set<String>())
    /// The files counted as waiting for a refusing remote since the last reload.
    let refusedItems = Mutex(Set<JobKey>())
    /// Remotes whose server refused a write at an offset: uploads to them go in one stream.
    let oneStreamRemotes = Mutex(Set<String>())
    /// What each inbox rule's last listing saw of files not yet stable, by rule index.
    let sightings = Mutex([Int: Sightings]())

    public init(policy: Policy, mode: RunMode, logger: Logger) throws {
        spool = Spool(root: policy.spool)
        try spool.createLayout()
        mailSpool = MailSpool(spool: policy.spool)
        try mailSpool.createLayout()
        journal = try Journal(path: spool.journal)
        let current = PolicyBox(policy)
        self.current = current
        self.logger = logger
        self.mode = mode
        scheduler = Scheduler(threads: 16) { remote in
            current.value.withLock { $0.remotes[remote]?.maxConnections ?? 1 }
        }
        warnAboutPlainTransports(policy)
    }

    /// Plain FTP is allowed only when the policy says so, and then it is said again in the log.
    private func warnAboutPlainTransports(_ policy: Policy) {
        for remote in policy.remotes.values.sorted(by: { $0.name < $1.name }) where remote.ftp?.tls == .off {
            logger.warning("remote uses plain FTP (tls: off): its password and files cross the network readable",
                           metadata: ["transfer.remote": "\(remote.name)"])
        }
    }

    public var policy: Policy { current.value.withLock { $0 } }

    public var tally: Tally { tallies.withLock { $0 } }

    /// Puts a new policy in force. The spool cannot move while running.
    public func replacePolicy(_ policy: Policy) {
        let old = self.policy
        if policy.spool != old.spool {
            logger.warning("the spool folder changed; it takes effect when the agent restarts",
                           metadata: ["policy.spool": "\(policy.spool)"])
        }
        var adjusted = policy
        adjusted.spool = old.spool
        current.value.withLock { $0 = adjusted }
        pool.retain(only: adjusted.remotes)
        warnAboutPlainTransports(adjusted)
    }

    // MARK: Work intake

    /// Picks up transfers a previous run left unfinished (after a crash or a stop).
    public func recover() throws {
        for record in try journal.unfinished() {
            switch record.direction {
            case .outgoing: enqueueSend(recipient: record.peer, path: record.source)
            case .incoming: enqueueResume(record)
            }
        }
    }

    /// Queues every file waiting in the outbox (or in one recipient's folder).
    public func scanOutbox(recipient: String? = nil) {
        for stray in spool.strays(recipient: recipient) {
            let message: Logger.Message = stray.kind == .symlink
                ? "a recipient folder is a symbolic link, which is not followed: nothing in it is sent; make it a folder"
                : "file is not in a recipient folder; move it into outbox/<recipient>/"
            warnOnce(message, key: "stray " + stray.name, metadata: ["spool.path": "\(spool.outbox(for: stray.name))"])
        }
        do {
            let found = try spool.scanOutbox(recipient: recipient)
            for path in found.namesNotText {
                warnOnce("name is not UTF-8, so the file cannot be sent: left in the outbox; rename it",
                         key: "not text " + path,
                         metadata: ["spool.path": "\(joinPath(spool.outbox, path))"])
            }
            for entry in found.files {
                enqueueSend(recipient: entry.recipient, path: entry.path)
            }
        } catch {
            logger.error("cannot scan the outbox", metadata: ["spool.error": "\(error)"])
        }
    }

    /// Queues one outbox file; `closed: false` when only its creation was seen.
    public func enqueueSend(recipient: String, path: String, closed: Bool = true) {
        let remote = policy.outboxRule(for: recipient)?.remote ?? ""
        let file = OutboxFile(recipient: recipient, path: path, closed: closed)
        scheduler.enqueue(file.key, remote: remote, payload: file) { [self] in send(file) }
    }

    /// Queues one listing pass of every inbox rule.
    public func pollInboxes() {
        for index in policy.inbox.indices { pollInbox(ruleIndex: index) }
    }

    public func pollInbox(ruleIndex: Int) {
        guard let rule = policy.inbox[safe: ruleIndex] else { return }
        scheduler.enqueue(JobKey("poll", "\(ruleIndex)"), remote: rule.remote) { [self] in
            listInbox(ruleIndex: ruleIndex)
        }
    }

    /// Sends the mail queue once, on this thread, trying every message whatever its pause (batch
    /// mode and `mail flush`: the pass is the retry).
    public func sendMailQueue() throws {
        let runner = try MailQueueRunner(spool: mailSpool, journal: journal, logger: logger)
        let tally = runner.run(settings: policy.mail, ignoringBackoff: true) { [scheduler] in !scheduler.isStopping }
        count { $0.add(tally) }
    }

    /// Fetches every `mail.inbox` source once, on this thread (batch mode and `mail fetch`).
    public func fetchMail() {
        let fetcher = MailFetcher(journal: journal, logger: logger)
        for source in policy.mail.inbox where !scheduler.isStopping {
            fetchMail(from: source, fetcher: fetcher) { [scheduler] in !scheduler.isStopping }
        }
    }

    /// Fetches one source and counts the outcome; returns the reason when the server refused us
    /// (the source waits for a person: a policy edit or `mail fetch`).
    @discardableResult
    func fetchMail(from source: IMAPSource, fetcher: MailFetcher, shouldContinue: () -> Bool) -> String? {
        do {
            let tally = try fetcher.fetch(source, shouldContinue: shouldContinue)
            count { $0.mailFetched += tally.delivered }
            return nil
        } catch let error as MailServerError {
            let refused = error.kind == .refused
            logger.error(refused ? "cannot fetch mail until the policy or the server changes" : "cannot fetch mail now; will retry",
                         metadata: ["mail.source": "\(source.name)", "mail.error": "\(error)"])
            count { if refused { $0.refused += 1 } else { $0.deferred += 1 } }
            return refused ? error.message : nil
        } catch {
            logger.error("cannot deliver fetched mail; will retry",
                         metadata: ["mail.source": "\(source.name)", "mail.maildir": "\(source.maildir)", "mail.error": "\(error)"])
            count { $0.deferred += 1 }
            return nil
        }
    }

    /// Blocks until all queued work is done (batch mode).
    public func waitUntilIdle() { scheduler.waitUntilIdle() }

    /// Keeps idle connections usable and closes those idle too long (see `ConnectionPool`). The
    /// keep-alives run as jobs, so they count against the remote's `max_connections`.
    public func keepConnectionsAlive() {
        for remote in pool.remotesDueForKeepAlive() {
            scheduler.enqueue(JobKey("keep-alive", remote.name, remote.url), remote: remote.name) { [pool] in
                pool.keepAlive(remote)
                return .finished
            }
        }
    }

    /// Stops taking work, aborts transfers in progress (they clean up their temporary files) and
    /// waits for the workers to end.
    public func shutdown() {
        scheduler.stop()
        pool.closeAll()
    }

    // MARK: Failures

    /// What a failure calls for.
    enum FailureKind { case transient, permanent, refused, cancelled }

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

    /// Records a transient failure and decides when to try again; `nil` once the rule's
    /// `give_up_after` has passed, which makes the failure permanent.
    func scheduleRetry(_ record: inout TransferRecord, error: Error, retry: RetryPolicy) -> Double? {
        let now = Date().timeIntervalSince1970
        record.attempts += 1
        let firstFailure = record.firstFailure ?? now
        record.firstFailure = firstFailure
        record.lastError = "\(error)"
        guard let delay = retry.pause(afterAttempt: record.attempts, firstFailure: firstFailure, now: now) else { return nil }
        record.nextAttempt = now + delay
        record.state = .queued
        return delay
    }

    /// A transient failure of `record`'s `what` ("transfer", "download"): its retry, recorded and
    /// logged, or `nil` once the rule's `give_up_after` has passed and the caller must give up.
    func retry(_ record: TransferRecord?, _ what: String, after error: Error, retry: RetryPolicy,
               log: Logger) -> JobOutcome? {
        guard var record else {
            log.warning("cannot start the \(what); will retry")
            return deferOrRetry(after: retry.initial.seconds)
        }
        guard let delay = scheduleRetry(&record, error: error, retry: retry) else { return nil }
        try? journal.save(record)
        log.warning("\(what) failed; will retry", metadata: [
            "transfer.attempt": "\(record.attempts)", "transfer.retry_in": "\(TimeSpan(seconds: delay))",
        ])
        return deferOrRetry(after: delay)
    }

    /// A transient failure's outcome: in batch mode the file waits for the next run (and is counted
    /// so), in the daemon it is tried again after `delay` seconds.
    func deferOrRetry(after delay: Double) -> JobOutcome {
        if mode == .batch {
            count { $0.deferred += 1 }
            return .finished
        }
        return .retry(after: delay)
    }

    /// The temporary name for writing `path`: an upload's follows the outbox rule's `temp_name`; a
    /// download's is `.<name>.cx<token>.part` beside it (hidden, temporary by every convention, and
    /// ours alone).
    func temporaryName(for path: String, pattern: String = OutboxRule.besideTemporaryName) -> String {
        OutboxRule.temporaryPath(for: path, pattern: pattern, token: String(UInt64.random(in: 0...UInt64.max), radix: 36))
    }

    /// A progress callback for a transfer: saves the byte count for `status` at most twice a
    /// second, and asks the transport to stop when the agent is shutting down.
    func progressReporter(for id: Int64, from offset: Int64 = 0) -> TransferProgress {
        var lastSaved = Date()
        return { [self] bytes in
            if Date().timeIntervalSince(lastSaved) > 0.5 {
                try? journal.saveProgress(id: id, bytes: offset + bytes)
                lastSaved = Date()
            }
            return !scheduler.isStopping
        }
    }

    /// A remote refused us: logged once per remote and reason; the work waits until a person acts
    /// (a reload, SIGHUP or restart tries again).
    /// `item`, a file (nil for a listing), waits because `remote` refused us.
    func refused(_ error: Error, remote: String, item: JobKey?) {
        refusedRemotes.withLock { _ = $0.insert(remote) }
        warnOnce("\(error)", key: "refused \(remote) \(error)", metadata: ["transfer.remote": "\(remote)"], level: .error)
        countRefused(item)
    }

    /// Whether a remote refused us since the last reload; work for it (`item`, a file, or nil for a
    /// listing) then waits without connecting.
    func isRefused(_ remote: String, item: JobKey?) -> Bool {
        guard refusedRemotes.withLock({ $0.contains(remote) }) else { return false }
        countRefused(item)
        return true
    }

    /// Counts a file that waits for a refusing remote once, however often it is tried.
    private func countRefused(_ item: JobKey?) {
        guard let item, refusedItems.withLock({ $0.insert(item).inserted }) else { return }
        count { $0.refused += 1 }
    }

    /// Whether a remote refused us since the last reload (a listing, when no file was refused).
    public var wasRefused: Bool { refusedRemotes.withLock { !$0.isEmpty } }

    /// Logs a warning once per key (a name seen on every poll or rescan is reported once per run).
    func warnOnce(_ message: Logger.Message, key: String, metadata: Logger.Metadata, level: Logger.Level = .warning) {
        guard warned.withLock({ $0.insert(key).inserted }) else { return }
        logger.log(level: level, message, metadata: metadata)
    }

    /// Forgets refusals and warnings, so that a reload tries every remote again and reports what remains.
    func forgetRefusals() {
        refusedRemotes.withLock { $0.removeAll() }
        refusedItems.withLock { $0.removeAll() }
        warned.withLock { $0.removeAll() }
    }

    func count(_ change: (inout Tally) -> Void) { tallies.withLock { change(&$0) } }
}

/// The policy in force, shared with the scheduler's per-remote limit.
final class PolicyBox: Sendable {
    let value: Mutex<Policy>
    init(_ policy: Policy) { value = Mutex(policy) }
}

/// A failure that no retry can fix, with what the person should do.
struct PermanentFailure: Error, CustomStringConvertible {
    let reason: String
    let advice: String
    var description: String { reason }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
