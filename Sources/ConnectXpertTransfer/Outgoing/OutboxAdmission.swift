import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSpool
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation
import Logging

/// The first step of a send: finds the file's rule and remote and its transfer, the unfinished one
/// or a new one (`queued`) if the file is to be sent: a regular file, complete (closed by its
/// writer), not sent already, and within the rule's `max_size`.
struct OutboxAdmission {
    let agent: Agent

    func admit(_ file: OutboxFile, as running: RunningJob) -> Admission<Outgoing> {
        let policy = agent.policy
        var log = agent.logger
        log[metadataKey: "transfer.recipient"] = "\(file.recipient)"
        log[metadataKey: "transfer.file"] = "\(file.path)"
        guard let rule = policy.outboxRule(for: file.recipient) else {
            agent.warnOnce("no outbox rule covers this recipient; its files wait in the outbox",
                           key: "no rule for " + file.recipient, metadata: ["transfer.recipient": "\(file.recipient)"])
            return .skip(.finished)
        }
        guard rule.selects(file.path), let remote = policy.remotes[rule.remote] else { return .skip(.finished) }
        log[metadataKey: "transfer.remote"] = "\(remote.name)"
        guard !agent.isRefused(remote.name, item: file.key) else { return .skip(.finished) }
        let source = joinPath(agent.spool.outbox(for: file.recipient), file.path)
        let subject = Subject(item: file, key: file.key, remote: remote, retry: rule.retry, log: log)
        var attempt = Attempt(subject: subject)
        do {
            let standing = try agent.journal.standing(.outgoing, remote: remote.name, peer: file.recipient,
                                                      source: file.path)
            attempt.record = standing.active
            var opened: FileDescriptor?
            if attempt.record == nil {
                guard let (descriptor, version) = try take(source, file: file, rule: rule, lastDone: standing.lastDone,
                                                           log: log) else { return .skip(.finished) }
                let target = agent.remotePath(recipient: file.recipient, path: file.path, rule: rule)
                attempt.record = try agent.journal.begin(
                    .outgoing, peer: file.recipient, remote: remote.name, source: file.path, size: version.size,
                    modificationNanoseconds: version.modificationNanoseconds, inode: Int64(bitPattern: version.inode),
                    destination: target, temporary: agent.temporaryName(for: target, pattern: rule.temporaryName))
                opened = descriptor
            }
            return .ready(Outgoing(running: running, subject: subject, rule: rule, record: attempt.record!,
                                   source: source, opened: opened))
        } catch {
            return .skip(agent.outcome(of: attempt, failing: error, in: OutgoingPipeline(agent: agent)))
        }
    }

    /// Decides whether a file with no transfer under way should start one; returns it, open, and its
    /// version. `lastDone` is the source's last finished transfer.
    private func take(_ source: String, file: OutboxFile, rule: OutboxRule, lastDone: TransferRecord?,
                      log: Logger) throws -> (FileDescriptor, FileStatus)? {
        let (recipient, path) = (file.recipient, file.path)
        guard let status = try FileSystem.status(source) else { return nil }
        switch status.kind {
        case .regular: break
        case .symlink:
            throw PermanentFailure(
                reason: "\(path) is a symbolic link; links in the outbox are not followed",
                advice: "copy the file itself (cp -L) into outbox/\(recipient)/")
        case .directory: return nil
        case .fifo, .socket, .device, .other:
            agent.warnOnce("ignored: not a regular file", key: source, metadata: [
                "transfer.file": "\(path)", "transfer.recipient": "\(recipient)",
                "file.kind": "\(status.kind.rawValue)",
            ])
            return nil
        }
        if Names.hasControlCharacter(path) {
            throw PermanentFailure(
                reason: "the name \(Names.printable(path)) holds a control character (such as a newline), "
                    + "which receivers refuse",
                advice: "rename the file without it, then move it back into outbox/\(recipient)/")
        }
        let opened = try FileDescriptor.openForReading(source)
        switch FileSystem.isOpenForWriting(opened) {
        case true?:
            log.debug("still open for writing; waiting for it to be closed")
            return nil
        case nil where !file.closed:
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
                try AfterUploadStage(agent: agent).finish(&record, rule: rule, source: source)
            }
            return nil
        }
        if let limit = rule.maxSize, status.size > limit.bytes {
            throw PermanentFailure(
                reason: "\(path) is \(ByteSize(bytes: status.size)), over the rule's max_size of \(limit)",
                advice: "raise max_size for \(recipient) in policies.yaml or send a smaller file, "
                    + "then move it back into outbox/\(recipient)/")
        }
        return (opened, status)
    }
}
