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
    /// One outbox file, from wherever its journal record stands. `closed` is false when the watcher
    /// saw only a creation: the file is then taken only if no one has it open for writing.
    func send(recipient: String, path: String, closed: Bool = true) -> JobOutcome {
        let policy = self.policy
        var log = logger
        log[metadataKey: "transfer.recipient"] = "\(recipient)"
        log[metadataKey: "transfer.file"] = "\(path)"
        guard let rule = policy.outboxRule(for: recipient) else {
            warnOnce("no outbox rule covers this recipient; its files wait in the outbox", key: "no rule for " + recipient,
                     metadata: ["transfer.recipient": "\(recipient)"])
            return .finished
        }
        guard rule.selects(path), let remote = policy.remotes[rule.remote] else { return .finished }
        log[metadataKey: "transfer.remote"] = "\(remote.name)"
        guard !isRefused(remote.name) else { return .finished }
        let source = joinPath(spool.outbox(for: recipient), path)

        var record: TransferRecord?
        do {
            let standing = try journal.standing(.outgoing, remote: remote.name, peer: recipient, source: path)
            record = standing.active
            var opened: FileDescriptor?
            if record == nil {
                guard let (file, version) = try admit(source, rule: rule, remote: remote, recipient: recipient, path: path,
                                                      closed: closed, lastDone: standing.lastDone, log: log) else { return .finished }
                let target = remotePath(recipient: recipient, path: path, rule: rule)
                record = try journal.begin(.outgoing, peer: recipient, remote: remote.name, source: path, size: version.size,
                                           modificationNanoseconds: version.modificationNanoseconds,
                                           inode: Int64(bitPattern: version.inode), destination: target,
                                           temporary: temporaryName(for: target, pattern: rule.temporaryName))
                opened = file
            }
            let started = Date()
            try pool.withConnection(to: remote) { transport in
                try advance(&record!, through: transport, rule: rule, source: source, opened: opened, log: log)
                opened = nil  // a second run on a fresh connection reopens the file
            }
            log.info("sent", metadata: [
                "transfer.destination": "\(record!.destination ?? "")", "transfer.bytes": "\(record!.size)",
                "transfer.duration": "\(String(format: "%.3f", Date().timeIntervalSince(started)))s",
            ])
            count { $0.sent += 1 }
            return .finished
        } catch is SourceGone {
            if let record { try? journal.forget(id: record.id) }
            return .finished
        } catch {
            return handleSendFailure(error, record: record, rule: rule, remote: remote, recipient: recipient,
                                     path: path, log: log)
        }
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
        let file = try FileDescriptor.openForReading(source)
        switch FileSystem.isOpenForWriting(file) {
        case true?:
            log.debug("still open for writing; waiting for it to be closed")
            return nil
        case nil where !closed:
            return nil
        default: break
        }
        if let done = lastDone, done.matches(status) {
            // This very version was delivered already; only the after-step may be missing.
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

    /// Takes the record through its remaining steps. `opened` is the source, when it was just
    /// admitted.
    private func advance(_ record: inout TransferRecord, through transport: any Transport, rule: OutboxRule,
                         source: String, opened: FileDescriptor?, log: Logger) throws {
        switch record.state {
        case .queued, .transferring:
            try upload(&record, through: transport, rule: rule, source: source, opened: opened, log: log)
            try place(&record, through: transport, rule: rule, uploadedNow: true)
            try finish(&record, rule: rule, source: source)
        case .staged:
            try place(&record, through: transport, rule: rule, uploadedNow: false)
            try finish(&record, rule: rule, source: source)
        case .delivered:
            try finish(&record, rule: rule, source: source)
        case .done, .failed:
            break
        }
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
        let folder = folder(ofRelative: target)
        log.debug("upload started", metadata: ["transfer.temporary": "\(temporary)"])
        try transport.makeDirectories(folder)
        let attributes = UploadAttributes(
            modificationNanoseconds: rule.preserveModificationTime ? before.modificationNanoseconds : nil, mode: rule.mode,
            renamedTo: rule.conflict == .overwrite ? nil : target)
        let uploaded = try upload(file, size: before.size, to: temporary, attributes: attributes, through: transport,
                                  rule: rule, progress: progressReporter(for: record.id))
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
        try journal.save(record, durable: true)  // a rename without it would look undone, and be sent twice
    }

    /// Uploads `file`; a large one in several streams when the transport can split it and the
    /// remote's `max_connections` has slots free (as rclone's multi-thread streams do).
    private func upload(_ file: FileDescriptor, size: Int64, to temporary: String, attributes: UploadAttributes,
                        through transport: any Transport, rule: OutboxRule, progress: TransferProgress) throws -> Int64 {
        let wanted = transport.extraStreams(forUploadOf: size)
        let slots = wanted > 0 ? scheduler.reserveSlots(wanted, for: rule.remote) : 0
        defer { scheduler.releaseSlots(slots, for: rule.remote) }
        guard slots > 0, let remote = policy.remotes[rule.remote] else {
            return try transport.upload(from: file, to: temporary, attributes: attributes, progress: progress)
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
            guard var record else {
                log.warning("cannot start the transfer; will retry")
                return deferOrRetry(after: rule.retry.initial.seconds)
            }
            if let delay = scheduleRetry(&record, error: error, retry: rule.retry) {
                try? journal.save(record)
                log.warning("transfer failed; will retry", metadata: [
                    "transfer.attempt": "\(record.attempts)", "transfer.retry_in": "\(TimeSpan(seconds: delay))",
                ])
                return deferOrRetry(after: delay)
            }
            let reason = "gave up after \(rule.retry.giveUpAfter) of failed attempts; the last error: \(error)"
            moveToFailed(record: record, reason: reason, advice: "check the remote '\(remote.name)', then move the file back into outbox/\(recipient)/", recipient: recipient, path: path, log: log)
        case .refused:
            if var record {
                record.lastError = "\(error)"
                try? journal.save(record)
            }
            refused(error, remote: remote.name)
        case .permanent:
            let advice = (error as? PermanentFailure)?.advice
                ?? "fix the cause above, then move the file back into outbox/\(recipient)/ to send it again"
            moveToFailed(record: record, reason: "\(error)", advice: advice, recipient: recipient, path: path, log: log)
        }
        return .finished
    }

    private func deferOrRetry(after delay: Double) -> JobOutcome {
        if mode == .batch {
            count { $0.deferred += 1 }
            return .finished
        }
        return .retry(after: delay)
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
