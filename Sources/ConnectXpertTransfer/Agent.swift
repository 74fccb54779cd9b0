import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSeal
import ConnectXpertSpool
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation
import Logging
import Synchronization

/// How the agent runs: in the daemon a transient failure is retried in-process after a backoff;
/// in a batch pass (`run --once`) it is left for the next pass.
public enum RunMode: Sendable { case daemon, batch }

/// What one run's transfers did, for the batch summary.
public struct Tally: Sendable, Equatable {
    public var sent = 0
    public var received = 0
    /// Moved to `failed/` (or, for incoming files, left on the remote) because they need a person.
    public var failed = 0
    /// Of `failed`, the incoming files left on the remote.
    public var failedDownloads = 0
    /// Transient failures left for a later attempt.
    public var deferred = 0
    /// Transfers a remote refused (authentication, host key): the files wait for a person.
    public var refused = 0
    /// Messages put on the drop, and received from it (held ones included).
    public var messagesSent = 0
    public var messagesReceived = 0
}

/// The transfer engine: owns the policy in force, the spool, the journal, the connections and the
/// scheduler; takes work in (the outbox, the inbox listings, the journal's unfinished transfers) and
/// runs it through the send and receive pipelines (`OutgoingPipeline`, `IncomingPipeline`).
public final class Agent: Sendable {
    public let spool: Spool
    public let journal: Journal
    public let logger: Logger
    let mode: RunMode
    let pool: ConnectionPool
    let scheduler: Scheduler
    let outboxFeed = OutboxFeed()
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
    /// Failed attempts to send the messages waiting for each peer, for their backoff.
    let messageAttempts = Mutex([String: Int]())
    /// What each inbox rule's last listing saw of files not yet stable, by rule index.
    let sightings = Mutex([Int: Sightings]())

    /// Makes a folder's entries durable (fsync); the receive pipeline's after its renames.
    let syncFolder: @Sendable (String) throws -> Void
    /// Our key pairs, when we have an identity: what publishes our key card and seals.
    var identity: IdentityKeys? { keys.withLock { $0 } }
    let keys: Mutex<IdentityKeys?>
    /// Peers whose card on the drop was compared with their pin in this run.
    let checkedCards = Mutex(Set<String>())
    /// Pinned cards as read, by their text: a card's signature is checked once, not for every file.
    let pinnedCards = Mutex([String: KeyCard]())

    /// - Parameters:
    ///   - connect: opens a connection to a remote (the transport its URL names).
    ///   - syncFolder: makes a folder's entries durable; `FileSystem.syncDirectory` but in tests.
    ///   - identity: our key pairs, if we have some.
    public init(policy: Policy, mode: RunMode, logger: Logger, connect: @escaping ConnectionPool.Connect,
                syncFolder: @escaping @Sendable (String) throws -> Void = FileSystem.syncDirectory,
                identity: IdentityKeys? = nil) throws {
        self.syncFolder = syncFolder
        keys = Mutex(identity)
        spool = Spool(root: policy.spool)
        try spool.createLayout()
        pool = ConnectionPool(connect: connect)
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
        for remote in policy.remotes.values.sorted(by: { $0.name < $1.name }) {
            guard case .ftp(let ftp) = remote.endpoint, ftp.tls == .off else { continue }
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

    /// Picks up transfers a previous run left unfinished (after a crash or a stop), and the
    /// messages waiting to be sent.
    public func recover() throws {
        publishKeyCards()
        takeQueuedMessages()
        let unfinished = try journal.unfinished()
        for record in unfinished {
            switch record.direction {
            case .outgoing: queueSend(recipient: record.peer, path: record.source)
            case .incoming: enqueueResume(record)
            }
        }
    }

    /// Queues every file waiting in the outbox (or in one recipient's folder), a window at a time
    /// (`OutboxFeed`).
    public func scanOutbox(recipient: String? = nil) {
        for stray in spool.strays(recipient: recipient) {
            let message: Logger.Message = stray.kind == .symlink
                ? "a recipient folder is a symbolic link, which is not followed: nothing in it is sent; make it a folder"
                : "file is not in a recipient folder; move it into outbox/<recipient>/"
            warnOnce(message, key: "stray " + stray.name, metadata: ["spool.path": "\(spool.outbox(for: stray.name))"])
        }
        outboxFeed.scan(recipient: recipient)
        outboxFeed.topUp(self)
    }

    /// Queues one outbox file the watcher saw; `closed: false` when only its creation was seen. When
    /// the outbox window is full, a scan of the recipient's folder finds the file later instead.
    public func enqueueSend(recipient: String, path: String, closed: Bool = true) {
        guard outboxFeed.hasRoom(self) else { return outboxFeed.scan(recipient: recipient) }
        queueSend(recipient: recipient, path: path, closed: closed)
    }

    /// Queues one outbox file, whatever the window; the feed is topped up after its job.
    func queueSend(recipient: String, path: String, closed: Bool = true) {
        let remote = policy.outboxRule(for: recipient)?.remote ?? ""
        let file = OutboxFile(recipient: recipient, path: path, closed: closed)
        scheduler.enqueue(file.key, remote: remote, payload: file) { [self] job in
            run(OutgoingPipeline(agent: self), file, as: job)
            outboxFeed.topUp(self)
        }
    }

    /// Queues one listing pass of every inbox rule.
    public func pollInboxes() {
        for index in policy.inbox.indices { pollInbox(ruleIndex: index) }
    }

    public func pollInbox(ruleIndex: Int) {
        guard let rule = policy.inbox[safe: ruleIndex] else { return }
        scheduler.enqueue(JobKey("poll", "\(ruleIndex)"), remote: rule.remote) { [self] job in
            job.end(listInbox(ruleIndex: ruleIndex))
        }
    }

    /// Queues one remote file (found by a listing, or left unfinished in the journal).
    func enqueueReceive(_ file: IncomingFile, remote: String) {
        scheduler.enqueue(file.key(on: remote), remote: remote, payload: file) { [self] job in
            run(IncomingPipeline(agent: self), file, as: job)
        }
    }

    /// Resumes an incoming transfer found unfinished in the journal.
    private func enqueueResume(_ record: TransferRecord) {
        guard let index = policy.inbox.firstIndex(where: {
            $0.remote == record.remote && $0.senders.anyMatches(record.peer)
        }) else {
            logger.warning("an unfinished download has no inbox rule any more; left as it is",
                           metadata: ["transfer.source": "\(record.source)", "transfer.remote": "\(record.remote)"])
            return
        }
        enqueueReceive(IncomingFile(ruleIndex: index, sender: record.peer, source: record.source, relative: nil,
                                    listed: nil), remote: record.remote)
    }

    /// Whether the agent is stopping: work in progress ends as soon as it can.
    public var isStopping: Bool { scheduler.isStopping }

    /// Blocks until all queued work is done, the whole outbox walked (batch mode).
    public func waitUntilIdle() {
        repeat { scheduler.waitUntilIdle() } while outboxFeed.topUp(self)
    }

    /// Keeps idle connections usable and closes those idle too long (see `ConnectionPool`). The
    /// keep-alives run as jobs, so they count against the remote's `max_connections`.
    public func keepConnectionsAlive() {
        for remote in pool.remotesDueForKeepAlive() {
            scheduler.enqueue(JobKey("keep-alive", remote.name, remote.url), remote: remote.name) { [pool] job in
                pool.keepAlive(remote)
                job.end(.finished)
            }
        }
    }

    /// Stops taking work, aborts transfers in progress (they clean up their temporary files) and
    /// waits for the workers to end.
    public func shutdown() {
        scheduler.stop()
        pool.closeAll()
    }

    // MARK: What the stages share

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
    public func forgetRefusals() {
        refusedRemotes.withLock { $0.removeAll() }
        refusedItems.withLock { $0.removeAll() }
        warned.withLock { $0.removeAll() }
    }

    func count(_ change: (inout Tally) -> Void) { tallies.withLock { change(&$0) } }

    /// Where an outbox file goes on the remote: the rule's `remote_path`, filled in.
    func remotePath(recipient: String, path: String, rule: OutboxRule) -> String {
        var values = ["sender": policy.identity.id, "recipient": recipient, "path": path,
                      "name": lastComponent(of: path)]
        if rule.remotePath.text.contains("{date}") { values["date"] = PathTemplate.today() }
        return rule.remotePath.render(values)
    }
}

/// The policy in force, shared with the scheduler's per-remote limit.
final class PolicyBox: Sendable {
    let value: Mutex<Policy>
    init(_ policy: Policy) { value = Mutex(policy) }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
