import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSpool
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation
import Logging

/// The receive pipeline, journaled like the send pipeline:
///
///     queued → transferring (to a local temp name) → staged (complete, fsynced) → delivered
///     (renamed into the destination, directory fsynced) → done (remote copy deleted)
///
/// The remote copy is deleted only once the local one is durable.
extension Agent {
    /// Lists the drops one inbox rule reads and queues a download for each file found.
    func listInbox(ruleIndex: Int) -> JobOutcome {
        let policy = self.policy
        guard let rule = policy.inbox[safe: ruleIndex], let remote = policy.remotes[rule.remote],
              let pattern = SenderFolderPattern(template: rule.remoteFolder, recipient: policy.identity.id) else {
            return .finished
        }
        guard !isRefused(remote.name, item: nil) else { return .finished }
        var log = logger
        log[metadataKey: "transfer.remote"] = "\(remote.name)"
        var seen = Sightings(after: sightings.withLock { $0[ruleIndex] })
        let now = Date().timeIntervalSince1970
        do {
            try pool.withConnection(to: remote) { transport in
                // Hidden folders are nobody's drop (uploads in progress are in .connectxpert-temp).
                for folder in try transport.list(pattern.parent)
                    where folder.kind == .directory && folder.nameIsText && !folder.name.hasPrefix(".") {
                    guard let sender = pattern.sender(inFolderNamed: folder.name), rule.senders.anyMatches(sender) else {
                        continue
                    }
                    let senderFolder = pattern.folder(for: sender)
                    try collect(transport, folder: senderFolder, below: "", depth: 0) { path, entry in
                        guard seen.isStable(joinPath(senderFolder, path), entry, for: rule.stableFor.seconds, now: now) else {
                            return log.debug("still changing or just seen; taken once stable", metadata: [
                                "transfer.source": "\(Names.printable(joinPath(senderFolder, path)))",
                            ])
                        }
                        enqueueReceive(ruleIndex: ruleIndex, remote: remote.name, sender: sender,
                                       folder: senderFolder, path: path, listed: entry)
                    }
                }
            }
        } catch where classify(error) == .refused {
            refused(error, remote: remote.name, item: nil)
            return .finished
        } catch {
            log.warning("cannot list the inbox drops", metadata: ["transfer.error": "\(error)"])
            if mode == .batch { count { $0.deferred += 1 } }
            return .finished
        }
        sightings.withLock { $0[ruleIndex] = seen }
        guard let wait = seen.soonest else { return .finished }
        // The daemon lists again as soon as the first unsettled file can be stable; a batch pass
        // once, and leaves what is still changing then for the next run.
        if mode == .daemon || seen.pass == 1 { return .retry(after: max(wait, 0.05)) }
        log.info("files still being written are left for the next run", metadata: ["transfer.files": "\(seen.unsettled)"])
        count { $0.deferred += seen.unsettled }
        return .finished
    }

    /// Walks a sender's folder; hands over regular files with safe names, skips temp names,
    /// and leaves unsafe names, links and special files on the remote with a log line.
    private func collect(_ transport: any Transport, folder: String, below: String, depth: Int,
                         _ found: (String, RemoteEntry) -> Void) throws {
        for entry in try transport.list(joinPath(folder, below)) {
            let path = below.isEmpty ? entry.name : below + "/" + entry.name
            guard entry.nameIsText else {
                warnOnce("remote name is not UTF-8, so it cannot be received: left on the remote",
                         key: folder + "/" + path,
                         metadata: ["transfer.source": "\(joinPath(folder, path))"])
                continue
            }
            if let problem = Names.problem(withComponent: entry.name) {
                if !Names.isTemporary(entry.name) || entry.name.hasPrefix("..") {
                    warnOnce("unsafe remote name left on the remote: \(problem)", key: folder + "/" + path,
                             metadata: ["transfer.source": "\(Names.printable(joinPath(folder, path)))"])
                }
                continue
            }
            switch entry.kind {
            case .file where !Names.isTemporary(entry.name):
                found(path, entry)
            case .directory where depth < 32:
                try collect(transport, folder: folder, below: path, depth: depth + 1, found)
            case .symlink, .other:
                warnOnce("remote entry is not a regular file; left on the remote", key: folder + "/" + path,
                         metadata: ["transfer.source": "\(Names.printable(joinPath(folder, path)))"])
            default:
                break
            }
        }
    }

    func enqueueReceive(ruleIndex: Int, remote: String, sender: String, folder: String, path: String, listed: RemoteEntry) {
        let file = IncomingFile(ruleIndex: ruleIndex, sender: sender, source: joinPath(folder, path), relative: path, listed: listed)
        scheduler.enqueue(file.key(on: remote), remote: remote, payload: file) { [self] in receive(file) }
    }

    /// Resumes an incoming transfer found unfinished in the journal.
    func enqueueResume(_ record: TransferRecord) {
        guard let index = policy.inbox.firstIndex(where: { $0.remote == record.remote && $0.senders.anyMatches(record.peer) }) else {
            logger.warning("an unfinished download has no inbox rule any more; left as it is",
                           metadata: ["transfer.source": "\(record.source)", "transfer.remote": "\(record.remote)"])
            return
        }
        let file = IncomingFile(ruleIndex: index, sender: record.peer, source: record.source, relative: nil, listed: nil)
        scheduler.enqueue(file.key(on: record.remote), remote: record.remote, payload: file) { [self] in
            receive(file)
        }
    }

    /// One remote file, with other files waiting to be received from the same remote (see
    /// `receiveAlong`).
    func receive(_ file: IncomingFile) -> JobOutcome {
        guard var task = Incoming(file, policy: policy, logger: logger),
              !isRefused(task.remote.name, item: file.key(on: task.remote.name)) else { return .finished }
        do {
            return try pool.withConnection(to: task.remote) { transport in
                guard try stage(&task, through: transport) else { return .finished }
                return receiveAlong(task, through: transport)
            }
        } catch {
            return failed(task, error)
        }
    }

    /// Completes `first`, staged, together with files taken over from the queue for the same remote
    /// while the batch is small: they are downloaded over this connection, one fsync makes all
    /// their records durable, each is renamed into place, one fsync per folder makes the renames
    /// durable, and only then are the remote copies deleted. Returns the outcome of `first`; the
    /// files taken over are ended in the scheduler.
    private func receiveAlong(_ first: Incoming, through transport: any Transport) -> JobOutcome {
        var batch: [(key: JobKey?, task: Incoming)] = [(nil, first)]
        var bytes = first.record?.size ?? 0
        var firstOutcome = JobOutcome.finished
        func end(_ key: JobKey?, _ outcome: JobOutcome) {
            if let key { scheduler.end(key, outcome: outcome) } else { firstOutcome = outcome }
        }
        func completeBatch() {
            guard !batch.isEmpty else { return }
            let durable = Result { try journal.makeDurable() }
            var placed: [(key: JobKey?, task: Incoming)] = []
            for (key, var task) in batch {
                do {
                    try durable.get()
                    try place(&task.record!, conflict: task.rule.conflict)
                    placed.append((key, task))
                } catch {
                    end(key, failed(task, error))
                }
            }
            let folders = Set(placed.compactMap { $0.task.record?.destination }.map(parentDirectory(of:)))
            let synced = Result { for folder in folders.sorted() { try FileSystem.syncDirectory(folder) } }
            for (key, var task) in placed {
                let outcome: JobOutcome
                if case .failure(let error) = synced {
                    task.record?.state = .staged  // renamed, but maybe not durably: not delivered yet
                    outcome = failed(task, error)
                } else {
                    do {
                        try finishReceiving(&task, through: transport)
                        outcome = .finished
                    } catch {
                        outcome = failed(task, error)
                    }
                }
                end(key, outcome)
            }
            batch.removeAll()
            bytes = 0
        }
        while batch.count < Self.batchFiles && bytes < Self.batchBytes,
              let (key, file) = scheduler.take(IncomingFile.self, remote: first.remote.name) {
            guard var task = Incoming(file, policy: policy, logger: logger) else {
                scheduler.end(key, outcome: .finished)
                continue
            }
            guard task.remote == first.remote else {  // the policy changed meanwhile
                scheduler.end(key, outcome: .retry(after: 0))
                continue
            }
            if (file.listed?.size ?? 0) >= Self.batchBytes { completeBatch() }  // those before it need not wait for it
            do {
                guard try stage(&task, through: transport) else {
                    scheduler.end(key, outcome: .finished)
                    continue
                }
            } catch {
                scheduler.end(key, outcome: failed(task, error))
                break  // the connection may be broken
            }
            batch.append((key, task))
            bytes += task.record?.size ?? 0
        }
        completeBatch()
        return firstOutcome
    }

    /// Finds or begins the transfer of a remote file, and takes it as far as `staged`: downloaded to
    /// its local temporary name and fsynced. The record is committed, not yet durable:
    /// `receiveAlong` makes it so before the rename. False when there is nothing to receive.
    private func stage(_ task: inout Incoming, through transport: any Transport) throws -> Bool {
        if task.record == nil {
            let file = task.file, rule = task.rule
            let standing = try journal.standing(.incoming, remote: task.remote.name, peer: file.sender, source: file.source)
            task.record = standing.active
            if task.record == nil {
                guard let relative = file.relative, let entry = try file.listed ?? transport.entry(at: file.source),
                      entry.kind == .file else { return false }
                if !rule.deleteRemote, let done = standing.lastDone, done.isVersion(of: entry) {
                    return false  // kept on the remote and received already
                }
                if let limit = rule.maxSize, entry.size > limit.bytes {
                    warnOnce("remote file is over the inbox max_size of \(limit); left on the remote", key: file.source,
                             metadata: ["transfer.bytes": "\(entry.size)"])
                    return false
                }
                let destination = joinPath(destinationFolder(rule, sender: file.sender), relative)
                task.record = try journal.begin(.incoming, peer: file.sender, remote: task.remote.name, source: file.source,
                                                size: entry.size, modificationNanoseconds: entry.modificationNanoseconds,
                                                inode: 0, destination: destination, temporary: temporaryName(for: destination))
                task.listed = entry
            }
        }
        if task.record?.state == .queued || task.record?.state == .transferring {
            try download(&task.record!, through: transport, listed: task.listed, log: task.log)
        }
        task.listed = nil  // a second run on a fresh connection looks again
        return true
    }

    /// The last step, once the local copy is durable under its final name: the remote copy is
    /// deleted (if the rule says so).
    private func finishReceiving(_ task: inout Incoming, through transport: any Transport) throws {
        guard var record = task.record, record.state == .delivered else { return }
        if task.rule.deleteRemote {
            // Deleted only if it is still the version received: a writer may have gone on since.
            if let now = try transport.entry(at: record.source), !record.isVersion(of: now) {
                task.log.warning("""
                    the remote file changed after it was received; it is left on the remote, to be received again \
                    as a new version once stable
                    """, metadata: ["transfer.bytes": "\(now.size)"])
            } else {
                try transport.delete(record.source)
            }
        }
        record.state = .done
        try journal.save(record)
        task.record = record
        task.log.info("received", metadata: [
            "transfer.destination": "\(record.destination ?? "")", "transfer.bytes": "\(record.size)",
            "transfer.duration": "\(String(format: "%.3f", Date().timeIntervalSince(task.started)))s",
        ])
        count { $0.received += 1 }
    }

    /// The outcome of a file whose transfer failed. A file taken or deleted since it was listed (or
    /// received by a job that ran first) leaves nothing to do.
    private func failed(_ task: Incoming, _ error: Error) -> JobOutcome {
        guard error is SourceGone || (error as? TransportError)?.kind == .notFound else {
            return handleReceiveFailure(error, task)
        }
        if let record = task.record {
            if let temporary = record.temporary { _ = try? FileSystem.removeIfPresent(temporary) }
            try? journal.forget(id: record.id)
        }
        return .finished
    }

    private func handleReceiveFailure(_ error: Error, _ task: Incoming) -> JobOutcome {
        let record = task.record, rule = task.rule, remote = task.remote
        var log = task.log
        log[metadataKey: "transfer.error"] = "\(error)"
        if let record, record.state == .delivered {
            // Stored locally; only deleting the remote copy failed. The next poll tries that again
            // and never downloads the file twice.
            try? journal.save(record)
            log.error("received, but the remote copy could not be deleted")
            count { $0.received += 1 }
            return .finished
        }
        switch classify(error) {
        case .cancelled:
            // The partial temporary file stays: the next run resumes from it.
            if var record, record.state == .transferring {
                record.state = .queued
                try? journal.save(record)
            }
            return .finished
        case .transient:
            if let retrying = retry(record, "download", after: error, retry: rule.retry, log: log) { return retrying }
            leaveOnRemote(record, reason: "gave up after \(rule.retry.giveUpAfter) of failed attempts; the last error: \(error)",
                          log: log)
        case .refused:
            refused(error, remote: remote.name, item: task.file.key(on: remote.name))
        case .permanent:
            leaveOnRemote(record, reason: "\(error)", log: log)
        }
        return .finished
    }

    /// A download that cannot be done: the remote copy stays where it is, and a person has to look.
    private func leaveOnRemote(_ record: TransferRecord?, reason: String, log: Logger) {
        if var record {
            if let temporary = record.temporary { _ = try? FileSystem.removeIfPresent(temporary) }
            record.state = .failed
            record.lastError = reason
            try? journal.save(record)
        }
        log.error("cannot receive; the file is left on the remote", metadata: ["transfer.reason": "\(reason)"])
        count {
            $0.failed += 1
            $0.failedDownloads += 1
        }
    }

    private func destinationFolder(_ rule: InboxRule, sender: String) -> String {
        let rendered = rule.destination.render(["sender": sender, "spool": spool.root, "date": PathTemplate.today()])
        return absolutePath(rendered, relativeTo: parentDirectory(of: policy.sourceFile))
    }

    /// Copies the remote file to a local temporary name and makes it durable. A new attempt on an
    /// unchanged remote file continues from what the previous one left in the temporary file.
    private func download(_ record: inout TransferRecord, through transport: any Transport, listed: RemoteEntry?,
                          log: Logger) throws {
        guard let destination = record.destination, let temporary = record.temporary else {
            throw TransportError(.transient, "journal record without names")
        }
        let entry: RemoteEntry
        var offset: Int64 = 0
        if let listed {
            entry = listed
        } else {
            guard let current = try transport.entry(at: record.source), current.kind == .file else { throw SourceGone() }
            entry = current
            let partial = try FileSystem.status(temporary)
            if let partial, partial.kind == .regular, record.isVersion(of: current), partial.size <= current.size {
                offset = partial.size
            } else {
                try FileSystem.removeIfPresent(temporary)
            }
            record.size = entry.size
            record.modificationNanoseconds = entry.modificationNanoseconds
            record.state = .transferring
        }
        try FileSystem.createDirectories(parentDirectory(of: destination))
        // An empty temporary file (an earlier attempt stopped before its first byte) is begun anew.
        if offset == 0 { try FileSystem.removeIfPresent(temporary) }
        let file = offset > 0 ? try FileDescriptor.open(temporary, flags: O_WRONLY | O_APPEND) : try FileDescriptor.create(temporary)
        if offset > 0 {
            log.info("resuming the download", metadata: ["transfer.offset": "\(offset)", "transfer.bytes": "\(entry.size)"])
        }
        // Nothing past the listed size is stored: a server that streams on (a file still growing, or
        // a server that lies) is stopped after one buffer more.
        let report = progressReporter(for: record.id, from: offset)
        var overrun = false
        let progress: TransferProgress = { done in
            overrun = offset + done > entry.size
            return !overrun && report(done)
        }
        let bytes: Int64
        do {
            bytes = try offset + transport.download(record.source, size: entry.size, from: offset, to: file, progress: progress)
        } catch where overrun {
            bytes = entry.size + 1
        }
        guard bytes == entry.size else {
            try FileSystem.removeIfPresent(temporary)
            let arrived = bytes > entry.size ? "more arrived (the download was stopped there)" : "\(bytes) arrived"
            throw TransportError(.transient, "\(transport.endpoint)/\(record.source) was listed with \(entry.size) bytes but \(arrived)")
        }
        try file.sync()
        try FileSystem.setModificationTime(temporary, nanoseconds: entry.modificationNanoseconds)
        record.bytesDone = bytes
        record.state = .staged
        try journal.save(record)  // made durable before the rename: a rename without it would look undone, and be received twice
    }

    /// Renames the local temporary file to its final name (`receiveAlong` then fsyncs the folder). A
    /// missing temporary file means the rename happened before the previous run stopped.
    private func place(_ record: inout TransferRecord, conflict: ConflictHandling) throws {
        guard let temporary = record.temporary, let wanted = record.destination else {
            throw TransportError(.transient, "journal record without names")
        }
        if try FileSystem.status(temporary) != nil {
            var candidate = wanted
            var number = 0
            while true {
                do {
                    if conflict == .overwrite {
                        try FileSystem.rename(temporary, to: candidate)
                    } else {
                        try FileSystem.renameNoReplace(temporary, to: candidate)
                    }
                    break
                } catch let error as SystemError where error.isAlreadyExists {
                    if conflict == .fail {
                        throw PermanentFailure(reason: "\(candidate) exists already and the inbox rule says conflict: fail",
                                               advice: "move the local file away; the remote copy is kept until then")
                    }
                    number += 1
                    candidate = Names.alternative(to: wanted, number: number)
                    record.destination = candidate
                    try journal.save(record, durable: true)
                }
            }
        }
        record.state = .delivered  // saved with the next step; see TransferState.delivered
    }
}

/// A remote file to receive: what a receive job is about.
struct IncomingFile: Sendable {
    let ruleIndex: Int
    let sender: String
    /// Its path on the remote.
    let source: String
    /// Its path below the sender's folder, and its entry in the listing that found it; both nil when
    /// resuming, where the journal holds the names.
    let relative: String?
    let listed: RemoteEntry?

    /// Its job's key, on the remote it is received from.
    func key(on remote: String) -> JobKey { JobKey("in", remote, source) }
}

/// One remote file on its way, with its rule and remote.
struct Incoming {
    let file: IncomingFile
    let rule: InboxRule
    let remote: Remote
    let log: Logger
    /// Its transfer, once found or begun.
    var record: TransferRecord?
    /// The entry a download starts from, when a listing just found the file.
    var listed: RemoteEntry?
    let started = Date()

    /// Nil when the rule or its remote is gone from the policy.
    init?(_ file: IncomingFile, policy: Policy, logger: Logger) {
        guard let rule = policy.inbox[safe: file.ruleIndex], let remote = policy.remotes[rule.remote] else { return nil }
        self.file = file
        self.rule = rule
        self.remote = remote
        var log = logger
        log[metadataKey: "transfer.remote"] = "\(remote.name)"
        log[metadataKey: "transfer.sender"] = "\(file.sender)"
        log[metadataKey: "transfer.source"] = "\(file.source)"
        self.log = log
    }
}

extension TransferRecord {
    /// Whether a remote file's entry, from a listing or a stat, shows the version this record
    /// received: the same size and modification time. Times are compared to the minute or the day
    /// where either is a whole minute or day (a Unix-style FTP listing gives no seconds, and only
    /// the day for files older than six months, while a stat gives seconds), and not at all where
    /// either is unknown (0: a server without MDTM).
    func isVersion(of entry: RemoteEntry) -> Bool {
        guard entry.size == size else { return false }
        let times = [modificationNanoseconds, entry.modificationNanoseconds]
        guard !times.contains(0) else { return true }
        let minute: Int64 = 60_000_000_000, day = 1440 * minute
        let unit = times.contains { $0 % day == 0 } ? day : times.contains { $0 % minute == 0 } ? minute : 1
        return times[0] / unit == times[1] / unit
    }
}
