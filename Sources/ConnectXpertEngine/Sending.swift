import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSpool
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation
import Logging

/// The send pipeline. Each step is recorded in the journal before it is taken, so a run that
/// stops anywhere (crash, `kill -9`, power loss) resumes at the right step and delivers once:
///
///     queued → transferring (to a remote temp name) → staged (complete) → delivered (renamed
///     to the final name) → done (the rule's after-step: delete, archive or keep)
extension Agent {
    /// At most this many files go in one batch (see `sendAlong` and `receiveAlong`), and files are
    /// taken into a batch only while it holds less than `batchBytes`: a file's rename waits for the
    /// batch's transfers.
    static let batchFiles = 16
    static let batchBytes: Int64 = 1 << 20

    /// One outbox file, from wherever its journal record stands, with other files waiting for the
    /// same remote (see `sendAlong`).
    func send(_ file: OutboxFile) -> JobOutcome {
        var task: Outgoing
        switch prepare(file) {
        case .skip(let outcome): return outcome
        case .ready(let ready): task = ready
        }
        do {
            return try pool.withConnection(to: task.remote) { transport in
                try stage(&task, through: transport)
                return sendAlong(task, through: transport)
            }
        } catch {
            return failed(task, error)
        }
    }

    /// Completes `first`, staged, together with files taken over from the queue for the same remote
    /// while the batch is small: they go up on this connection, one fsync makes all their records
    /// durable, and then each is renamed. Many small files then cost one fsync, not one each.
    /// Returns the outcome of `first`; the files taken over are ended in the scheduler.
    private func sendAlong(_ first: Outgoing, through transport: any Transport) -> JobOutcome {
        var batch: [(key: JobKey?, task: Outgoing)] = [(nil, first)]
        var bytes = first.record.size
        var firstOutcome = JobOutcome.finished
        func completeBatch() {
            guard !batch.isEmpty else { return }
            let durable = Result { try journal.makeDurable() }
            for (key, var task) in batch {
                let outcome: JobOutcome
                do {
                    try durable.get()
                    try complete(&task, through: transport)
                    outcome = .finished
                } catch {
                    outcome = failed(task, error)
                }
                if let key { scheduler.end(key, outcome: outcome) } else { firstOutcome = outcome }
            }
            batch.removeAll()
            bytes = 0
        }
        while batch.count < Self.batchFiles && bytes < Self.batchBytes,
              let (key, file) = scheduler.take(OutboxFile.self, remote: first.remote.name) {
            var task: Outgoing
            switch prepare(file) {
            case .skip(let outcome):
                scheduler.end(key, outcome: outcome)
                continue
            case .ready(let ready) where ready.remote != first.remote:  // the policy changed meanwhile
                scheduler.end(key, outcome: .retry(after: 0))
                continue
            case .ready(let ready): task = ready
            }
            if task.record.size >= Self.batchBytes { completeBatch() }  // those before it need not wait for it
            do {
                try stage(&task, through: transport)
            } catch {
                scheduler.end(key, outcome: failed(task, error))
                break  // the connection may be broken
            }
            batch.append((key, task))
            bytes += task.record.size
        }
        completeBatch()
        return firstOutcome
    }

    /// What `prepare` found: a file to send, or the outcome of a job that has nothing to send.
    private enum Prepared {
        case skip(JobOutcome)
        case ready(Outgoing)
    }

    /// Finds the rule and remote for a file, and its transfer: the unfinished one, or a new one
    /// (`begin`) if the file is to be sent.
    private func prepare(_ file: OutboxFile) -> Prepared {
        let policy = self.policy
        var log = logger
        log[metadataKey: "transfer.recipient"] = "\(file.recipient)"
        log[metadataKey: "transfer.file"] = "\(file.path)"
        guard let rule = policy.outboxRule(for: file.recipient) else {
            warnOnce("no outbox rule covers this recipient; its files wait in the outbox", key: "no rule for " + file.recipient,
                     metadata: ["transfer.recipient": "\(file.recipient)"])
            return .skip(.finished)
        }
        guard rule.selects(file.path), let remote = policy.remotes[rule.remote] else { return .skip(.finished) }
        log[metadataKey: "transfer.remote"] = "\(remote.name)"
        guard !isRefused(remote.name, item: file.key) else { return .skip(.finished) }
        let source = joinPath(spool.outbox(for: file.recipient), file.path)
        var record: TransferRecord?
        do {
            let standing = try journal.standing(.outgoing, remote: remote.name, peer: file.recipient, source: file.path)
            record = standing.active
            var opened: FileDescriptor?
            if record == nil {
                guard let (descriptor, version) = try admit(source, rule: rule, remote: remote, recipient: file.recipient,
                                                            path: file.path, closed: file.closed, lastDone: standing.lastDone,
                                                            log: log) else { return .skip(.finished) }
                let target = remotePath(recipient: file.recipient, path: file.path, rule: rule)
                record = try journal.begin(.outgoing, peer: file.recipient, remote: remote.name, source: file.path,
                                           size: version.size, modificationNanoseconds: version.modificationNanoseconds,
                                           inode: Int64(bitPattern: version.inode), destination: target,
                                           temporary: temporaryName(for: target, pattern: rule.temporaryName))
                opened = descriptor
            }
            return .ready(Outgoing(file: file, rule: rule, remote: remote, source: source, log: log, record: record!,
                                   opened: opened))
        } catch {
            return .skip(handleSendFailure(error, record: record, rule: rule, remote: remote, recipient: file.recipient,
                                           path: file.path, log: log))
        }
    }

    /// Takes a file as far as `staged`: uploaded under its temporary name and checked. The record
    /// is committed, not yet durable: `sendAlong` makes it so before the rename.
    private func stage(_ task: inout Outgoing, through transport: any Transport) throws {
        guard task.record.state == .queued || task.record.state == .transferring else { return }
        try upload(&task.record, through: transport, rule: task.rule, source: task.source, opened: task.opened, log: task.log)
        task.opened = nil  // a second run on a fresh connection reopens the file
        task.uploadedNow = true
    }

    /// The steps after `staged`: the rename to the final name and the rule's after-step.
    private func complete(_ task: inout Outgoing, through transport: any Transport) throws {
        if task.record.state == .staged {
            try place(&task.record, through: transport, rule: task.rule, uploadedNow: task.uploadedNow)
        }
        if task.record.state == .delivered {
            try finish(&task.record, rule: task.rule, source: task.source)
        }
        task.log.info("sent", metadata: [
            "transfer.destination": "\(task.record.destination ?? "")", "transfer.bytes": "\(task.record.size)",
            "transfer.duration": "\(String(format: "%.3f", Date().timeIntervalSince(task.started)))s",
        ])
        count { $0.sent += 1 }
    }

    /// The outcome of a file whose transfer failed.
    private func failed(_ task: Outgoing, _ error: Error) -> JobOutcome {
        if error is SourceGone {
            try? journal.forget(id: task.record.id)
            return .finished
        }
        return handleSendFailure(error, record: task.record, rule: task.rule, remote: task.remote, recipient: task.file.recipient,
                                 path: task.file.path, log: task.log)
    }

    /// Decides whether a file with no transfer under way should start one; returns it, open, and its
    /// version. `lastDone` is the source's last finished transfer.
    private func admit(_ source: String, rule: OutboxRule, remote: Remote, recipient: String, path: String,
                       closed: Bool, lastDone: TransferRecord?, log: Logger) throws -> (FileDescriptor, FileStatus)? {
        guard let status = try FileSystem.status(source) else { return nil }
        switch status.kind {
        case .regular: break
        case .symlink:
            throw PermanentFailure(
                reason: "\(path) is a symbolic link; links in the outbox are not followed",
                advice: "copy the file itself (cp -L) into outbox/\(recipient)/")
        case .directory: return nil
        case .fifo, .socket, .device, .other:
            warnOnce("ignored: not a regular file", key: source, metadata: [
                "transfer.file": "\(path)", "transfer.recipient": "\(recipient)", "file.kind": "\(status.kind.rawValue)",
            ])
            return nil
        }
        if Names.hasControlCharacter(path) {
            throw PermanentFailure(
                reason: "the name \(Names.printable(path)) holds a control character (such as a newline), which receivers refuse",
                advice: "rename the file without it, then move it back into outbox/\(recipient)/")
        }
        let file = try FileDescriptor.openForReading(source)
        switch FileSystem.isOpenForWriting(file) {
        case true?:
            log.debug("still open for writing; waiting for it to be closed")
            return nil
        case nil where !closed:
            return nil
        default: break
        }
        // This very version was delivered already, and it never left the outbox (after: keep), or
        // came back only because its deletion was lost with a power loss (its inode unchanged since):
        // only the after-step may be missing. Moved or linked back in by a user, it is sent again.
        // The kernel stamps ctime from a coarse clock, up to a few ms behind the journal's: an inode
        // changed less than 20 ms before the record was done counts as changed after it.
        if let done = lastDone, done.matches(status),
           rule.after == .keep || Double(status.changeNanoseconds) / 1e9 < done.updated - 0.02 {
            if rule.after != .keep {
                var record = done
                try finish(&record, rule: rule, source: source)
            }
            return nil
        }
        if let limit = rule.maxSize, status.size > limit.bytes {
            throw PermanentFailure(
                reason: "\(path) is \(ByteSize(bytes: status.size)), over the rule's max_size of \(limit)",
                advice: "raise max_size for \(recipient) in policies.yaml or send a smaller file, then move it back into outbox/\(recipient)/")
        }
        return (file, status)
    }

    /// Copies the file to a temporary remote name; on return the copy is complete and checked.
    private func upload(_ record: inout TransferRecord, through transport: any Transport, rule: OutboxRule,
                        source: String, opened: FileDescriptor?, log: Logger) throws {
        let file: FileDescriptor
        if let opened {
            file = opened
        } else {
            // A new attempt: a previous one may have left its temporary file.
            if let leftover = record.temporary { try transport.delete(leftover) }
            do { file = try FileDescriptor.openForReading(source) } catch let error as SystemError where error.isNotFound {
                throw SourceGone()
            }
        }
        let before = try file.status()
        guard before.kind == .regular else { throw SourceGone() }
        if opened == nil {
            let target = record.destination ?? remotePath(recipient: record.peer, path: record.source, rule: rule)
            record.destination = target
            record.temporary = record.temporary ?? temporaryName(for: target, pattern: rule.temporaryName)
            record.state = .transferring
            record.size = before.size
            record.modificationNanoseconds = before.modificationNanoseconds
            record.inode = Int64(bitPattern: before.inode)
            record.nextAttempt = nil
            try journal.save(record)  // so a temporary file left by a crash is found and removed (as in `begin`)
        }
        let temporary = record.temporary!
        let target = record.destination!
        let temporaryFolder = folder(ofRelative: temporary)
        let folder = folder(ofRelative: target)
        log.debug("upload started", metadata: ["transfer.temporary": "\(temporary)"])
        try transport.makeDirectories(folder)
        if temporaryFolder != folder { try transport.makeDirectories(temporaryFolder) }
        let attributes = UploadAttributes(
            modificationNanoseconds: rule.preserveModificationTime ? before.modificationNanoseconds : nil, mode: rule.mode,
            renamedTo: rule.conflict == .overwrite ? nil : target)
        let uploaded = try upload(file, size: before.size, to: temporary, attributes: attributes, through: transport,
                                  rule: rule, progress: progressReporter(for: record.id))
        if attributes.modificationNanoseconds != nil, !transport.features.keepsModificationTimes {
            warnOnce("the server refused to set an uploaded file's time: files there have their upload's",
                     key: "times " + rule.remote, metadata: ["transfer.remote": "\(rule.remote)"])
        }
        guard let after = try FileSystem.status(source), after.isSameVersion(as: before),
              try file.status().isSameVersion(as: before) else {
            try transport.delete(temporary)
            throw TransportError(.transient, "the file changed while it was being sent; sending it again")
        }
        guard uploaded == before.size else {
            throw TransportError(.transient, "\(transport.endpoint)/\(temporary) has \(uploaded) bytes, not the \(before.size) sent")
        }
        record.state = .staged
        record.bytesDone = before.size
        try journal.save(record)  // made durable before the rename: a rename without it would look undone, and be sent twice
    }

    /// Uploads `file`; a large one in several streams when the transport can split it and the
    /// remote's `max_connections` has slots free (as rclone's multi-thread streams do).
    private func upload(_ file: FileDescriptor, size: Int64, to temporary: String, attributes: UploadAttributes,
                        through transport: any Transport, rule: OutboxRule, progress: TransferProgress) throws -> Int64 {
        let oneStream = oneStreamRemotes.withLock { $0.contains(rule.remote) }
        let wanted = oneStream ? 0 : transport.extraStreams(forUploadOf: size)
        let slots = wanted > 0 ? scheduler.reserveSlots(wanted, for: rule.remote) : 0
        defer { scheduler.releaseSlots(slots, for: rule.remote) }
        guard slots > 0, let remote = policy.remotes[rule.remote] else {
            return try transport.upload(from: file, to: temporary, attributes: attributes, progress: progress)
        }
        defer {
            if !transport.features.writesAtOffsets, oneStreamRemotes.withLock({ $0.insert(rule.remote).inserted }) {
                logger.notice("the server cannot write a file at an offset: large files go to it in one stream",
                              metadata: ["transfer.remote": "\(rule.remote)"])
            }
        }
        return try pool.withExtraConnections(slots, to: remote) { helpers in
            try transport.upload(from: file, to: temporary, attributes: attributes, helpers: helpers, progress: progress)
        }
    }

    /// Renames the complete temporary file to its final name, following the rule on conflicts.
    /// Unless the upload just happened, the temporary name may be gone already: renamed before the
    /// previous run stopped (the name is ours alone).
    private func place(_ record: inout TransferRecord, through transport: any Transport, rule: OutboxRule,
                       uploadedNow: Bool) throws {
        guard let temporary = record.temporary else { throw TransportError(.transient, "journal record without a temporary name") }
        if !uploadedNow, try transport.entry(at: temporary) == nil {
            record.state = .delivered
            return
        }
        let wanted = remotePath(recipient: record.peer, path: record.source, rule: rule)
        switch rule.conflict {
        case .overwrite:
            try transport.rename(temporary, to: wanted, replacing: true)
            record.destination = wanted
        case .fail:
            do {
                try transport.rename(temporary, to: wanted, replacing: false)
            } catch let error as TransportError where error.kind == .alreadyExists {
                try transport.delete(temporary)
                throw PermanentFailure(
                    reason: "\(transport.endpoint)/\(wanted) exists already and the rule says conflict: fail",
                    advice: "remove or rename the remote file, or set conflict: rename or overwrite; then move this file back into the outbox")
            }
            record.destination = wanted
        case .rename:
            var candidate = record.destination ?? wanted
            var number = 0
            while true {
                if record.destination != candidate {
                    record.destination = candidate
                    try journal.save(record, durable: true)
                }
                do {
                    try transport.rename(temporary, to: candidate, replacing: false)
                    break
                } catch let error as TransportError where error.kind == .alreadyExists {
                    number += 1
                    candidate = Names.alternative(to: wanted, number: number)
                }
            }
        }
        record.state = .delivered  // saved only if the after-step fails; see TransferState.delivered
    }

    /// The rule's after-step on the local file, done only if the file is still the version sent.
    func finish(_ record: inout TransferRecord, rule: OutboxRule, source: String) throws {
        if let status = try FileSystem.status(source), record.matches(status) {
            switch rule.after {
            case .delete:
                // No directory fsync: should the deletion be lost, the journal knows this version was sent.
                try FileSystem.remove(source)
            case .archive:
                try spool.archive(recipient: record.peer, path: record.source)
            case .keep:
                break
            }
        }
        record.state = .done
        try journal.save(record)
    }

    private func remotePath(recipient: String, path: String, rule: OutboxRule) -> String {
        var values = ["sender": policy.identity.id, "recipient": recipient, "path": path, "name": lastComponent(of: path)]
        if rule.remotePath.text.contains("{date}") { values["date"] = PathTemplate.today() }
        return rule.remotePath.render(values)
    }

    private func handleSendFailure(_ error: Error, record: TransferRecord?, rule: OutboxRule, remote: Remote,
                                   recipient: String, path: String, log: Logger) -> JobOutcome {
        var log = log
        log[metadataKey: "transfer.error"] = "\(error)"
        if let record, record.state == .delivered {
            // Sent; only the after-step (delete or archive the local file) failed. Never sent twice.
            try? journal.save(record)
            log.error("sent, but the local file could not be \(rule.after == .archive ? "archived" : "deleted"); it is not sent again")
            count { $0.sent += 1 }
            return .finished
        }
        switch classify(error) {
        case .cancelled:
            if var record, record.state == .transferring, let temporary = record.temporary {
                try? pool.withConnection(to: remote) { try $0.delete(temporary) }
                record.temporary = nil
                record.state = .queued
                try? journal.save(record)
            }
            return .finished
        case .transient:
            if let retrying = retry(record, "transfer", after: error, retry: rule.retry, log: log) { return retrying }
            let reason = "gave up after \(rule.retry.giveUpAfter) of failed attempts; the last error: \(error)"
            moveToFailed(record: record, reason: reason, advice: "check the remote '\(remote.name)', then move the file back into outbox/\(recipient)/", recipient: recipient, path: path, log: log)
        case .refused:
            if var record {
                record.lastError = "\(error)"
                try? journal.save(record)
            }
            refused(error, remote: remote.name, item: OutboxFile(recipient: recipient, path: path).key)
        case .permanent:
            let advice = (error as? PermanentFailure)?.advice
                ?? "fix the cause above, then move the file back into outbox/\(recipient)/ to send it again"
            moveToFailed(record: record, reason: "\(error)", advice: advice, recipient: recipient, path: path, log: log)
        }
        return .finished
    }

    private func moveToFailed(record: TransferRecord?, reason: String, advice: String, recipient: String, path: String,
                              log: Logger) {
        do {
            let destination = try spool.moveToFailed(recipient: recipient, path: path, reason: reason, advice: advice)
            log.error("moved to failed", metadata: ["transfer.reason": "\(reason)", "failed.path": "\(destination)"])
        } catch {
            log.error("cannot move the file to failed/", metadata: ["transfer.reason": "\(reason)", "spool.error": "\(error)"])
        }
        if var record {
            record.state = .failed
            record.lastError = reason
            try? journal.save(record)
        }
        count { $0.failed += 1 }
    }
}

/// The outbox file went away before it was sent (the user took it back).
struct SourceGone: Error {}

extension TransferRecord {
    /// Whether `status` is the version of the file this record transferred.
    func matches(_ status: FileStatus) -> Bool {
        status.kind == .regular && status.size == size && status.modificationNanoseconds == modificationNanoseconds
            && Int64(bitPattern: status.inode) == inode
    }
}

/// An outbox file to send: what a send job is about.
struct OutboxFile: Sendable {
    let recipient: String
    let path: String
    /// Its job's key.
    var key: JobKey { JobKey("out", recipient, path) }
    /// False when the watcher saw only a creation: the file is then taken only if no one has it open
    /// for writing.
    var closed = true
}

/// One outbox file on its way, with what `prepare` found for it.
struct Outgoing {
    let file: OutboxFile
    let rule: OutboxRule
    let remote: Remote
    /// The file's path in the outbox.
    let source: String
    let log: Logger
    var record: TransferRecord
    /// The file, open, when it was just admitted.
    var opened: FileDescriptor?
    /// Whether this job uploaded it (its temporary file is then known to be there).
    var uploadedNow = false
    let started = Date()
}
