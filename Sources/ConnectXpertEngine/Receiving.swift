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
        guard !isRefused(remote.name) else { return .finished }
        var log = logger
        log[metadataKey: "transfer.remote"] = "\(remote.name)"
        do {
            try pool.withConnection(to: remote) { transport in
                for folder in try transport.list(pattern.parent) where folder.kind == .directory {
                    guard let sender = pattern.sender(inFolderNamed: folder.name), rule.senders.anyMatches(sender) else {
                        continue
                    }
                    try collect(transport, folder: pattern.folder(for: sender), below: "", depth: 0) { path, entry in
                        enqueueReceive(ruleIndex: ruleIndex, remote: remote.name, sender: sender,
                                       folder: pattern.folder(for: sender), path: path, listed: entry)
                    }
                }
            }
        } catch where classify(error) == .refused {
            refused(error, remote: remote.name)
        } catch {
            log.warning("cannot list the inbox drops", metadata: ["transfer.error": "\(error)"])
            if mode == .batch { count { $0.deferred += 1 } }
        }
        return .finished
    }

    /// Walks a sender's folder; hands over regular files with safe names, skips temp names,
    /// and leaves unsafe names, links and special files on the remote with a log line.
    private func collect(_ transport: any Transport, folder: String, below: String, depth: Int,
                         _ found: (String, RemoteEntry) -> Void) throws {
        for entry in try transport.list(joinPath(folder, below)) {
            let path = below.isEmpty ? entry.name : below + "/" + entry.name
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
        let source = joinPath(folder, path)
        scheduler.enqueue(JobKey("in", remote, source), remote: remote) { [self] in
            receive(ruleIndex: ruleIndex, sender: sender, source: source, relative: path, listed: listed)
        }
    }

    /// Resumes an incoming transfer found unfinished in the journal.
    func enqueueResume(_ record: TransferRecord) {
        guard let index = policy.inbox.firstIndex(where: { $0.remote == record.remote && $0.senders.anyMatches(record.peer) }) else {
            logger.warning("an unfinished download has no inbox rule any more; left as it is",
                           metadata: ["transfer.source": "\(record.source)", "transfer.remote": "\(record.remote)"])
            return
        }
        scheduler.enqueue(JobKey("in", record.remote, record.source), remote: record.remote) { [self] in
            receive(ruleIndex: index, sender: record.peer, source: record.source, relative: nil, listed: nil)
        }
    }

    /// One remote file. `relative` is its path below the sender's folder and `listed` its entry in
    /// the listing that found it (both nil when resuming, where the journal holds the names).
    func receive(ruleIndex: Int, sender: String, source: String, relative: String?, listed found: RemoteEntry?) -> JobOutcome {
        let policy = self.policy
        guard let rule = policy.inbox[safe: ruleIndex], let remote = policy.remotes[rule.remote],
              !isRefused(remote.name) else { return .finished }
        var log = logger
        log[metadataKey: "transfer.remote"] = "\(remote.name)"
        log[metadataKey: "transfer.sender"] = "\(sender)"
        log[metadataKey: "transfer.source"] = "\(source)"
        var record: TransferRecord?
        var listed: RemoteEntry?
        do {
            let started = Date()
            let received = try pool.withConnection(to: remote) { transport -> Bool in
                var lastDone: TransferRecord?
                if record == nil {
                    (record, lastDone) = try journal.standing(.incoming, remote: remote.name, peer: sender, source: source)
                }
                if record == nil {
                    guard let relative, let entry = try found ?? transport.entry(at: source), entry.kind == .file else { return false }
                    if !rule.deleteRemote, let done = lastDone,
                       done.size == entry.size, done.modificationNanoseconds == entry.modificationNanoseconds {
                        return false  // kept on the remote and received already
                    }
                    if let limit = rule.maxSize, entry.size > limit.bytes {
                        warnOnce("remote file is over the inbox max_size of \(limit); left on the remote", key: source,
                                 metadata: ["transfer.bytes": "\(entry.size)"])
                        return false
                    }
                    let destination = joinPath(destinationFolder(rule, sender: sender), relative)
                    record = try journal.begin(.incoming, peer: sender, remote: remote.name, source: source,
                                               size: entry.size, modificationNanoseconds: entry.modificationNanoseconds,
                                               inode: 0, destination: destination, temporary: temporaryName(for: destination))
                    listed = entry
                }
                try advance(&record!, through: transport, rule: rule, listed: listed, log: log)
                listed = nil  // a second run on a fresh connection looks again
                return true
            }
            guard received else { return .finished }
            log.info("received", metadata: [
                "transfer.destination": "\(record?.destination ?? "")", "transfer.bytes": "\(record?.size ?? 0)",
                "transfer.duration": "\(String(format: "%.3f", Date().timeIntervalSince(started)))s",
            ])
            count { $0.received += 1 }
            return .finished
        } catch let error where error is SourceGone || (error as? TransportError)?.kind == .notFound {
            // Taken or deleted since it was listed (or received by a job that ran first): nothing to do.
            if let record {
                if let temporary = record.temporary { _ = try? FileSystem.removeIfPresent(temporary) }
                try? journal.forget(id: record.id)
            }
            return .finished
        } catch {
            return handleReceiveFailure(error, record: record, remote: remote, log: log)
        }
    }

    private func handleReceiveFailure(_ error: Error, record: TransferRecord?, remote: Remote, log: Logger) -> JobOutcome {
        var log = log
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
            if var record {
                record.attempts += 1
                record.lastError = "\(error)"
                try? journal.save(record)
            }
            log.warning("download failed; will retry")
            if mode == .batch {
                count { $0.deferred += 1 }
                return .finished
            }
            return .retry(after: RetryPolicy.default.delay(afterAttempt: record?.attempts ?? 1))
        case .refused:
            refused(error, remote: remote.name)
            return .finished
        case .permanent:
            // The remote copy stays where it is; a person has to look.
            if var record {
                if let temporary = record.temporary { _ = try? FileSystem.removeIfPresent(temporary) }
                record.state = .failed
                record.lastError = "\(error)"
                try? journal.save(record)
            }
            log.error("cannot receive; the file is left on the remote")
            count { $0.failed += 1 }
            return .finished
        }
    }

    private func destinationFolder(_ rule: InboxRule, sender: String) -> String {
        let rendered = rule.destination.render(["sender": sender, "spool": spool.root, "date": PathTemplate.today()])
        return absolutePath(rendered, relativeTo: parentDirectory(of: policy.sourceFile))
    }

    /// Takes the record through its remaining steps. `listed` is the remote file's entry, when a
    /// listing just found it.
    private func advance(_ record: inout TransferRecord, through transport: any Transport, rule: InboxRule,
                         listed: RemoteEntry?, log: Logger) throws {
        switch record.state {
        case .queued, .transferring:
            try download(&record, through: transport, listed: listed, log: log)
            try place(&record, conflict: rule.conflict)
        case .staged:
            try place(&record, conflict: rule.conflict)
        case .delivered:
            break
        case .done, .failed:
            return
        }
        if rule.deleteRemote { try transport.delete(record.source) }
        record.state = .done
        try journal.save(record)
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
            if let partial, partial.kind == .regular, current.size == record.size,
               current.modificationNanoseconds == record.modificationNanoseconds, partial.size <= current.size {
                offset = partial.size
            } else {
                try FileSystem.removeIfPresent(temporary)
            }
            record.size = entry.size
            record.modificationNanoseconds = entry.modificationNanoseconds
            record.state = .transferring
        }
        try FileSystem.createDirectories(parentDirectory(of: destination))
        let file = offset > 0 ? try FileDescriptor.open(temporary, flags: O_WRONLY | O_APPEND) : try FileDescriptor.create(temporary)
        if offset > 0 {
            log.info("resuming the download", metadata: ["transfer.offset": "\(offset)", "transfer.bytes": "\(entry.size)"])
        }
        let bytes = try offset + transport.download(record.source, size: entry.size, from: offset, to: file,
                                                    progress: progressReporter(for: record.id, from: offset))
        guard bytes == entry.size else {
            try FileSystem.removeIfPresent(temporary)
            throw TransportError(.transient, "\(transport.endpoint)/\(record.source) was listed with \(entry.size) bytes but \(bytes) arrived")
        }
        try file.sync()
        try FileSystem.setModificationTime(temporary, nanoseconds: entry.modificationNanoseconds)
        record.bytesDone = bytes
        record.state = .staged
        try journal.save(record, durable: true)  // a rename without it would look undone, and be received twice
    }

    /// Renames the local temporary file to its final name and makes the rename durable. A missing
    /// temporary file means the rename happened before the previous run stopped.
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
            try FileSystem.syncDirectory(parentDirectory(of: candidate))
        }
        record.state = .delivered  // saved with the next step; see TransferState.delivered
    }
}
