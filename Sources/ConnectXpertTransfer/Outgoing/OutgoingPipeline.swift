import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSpool
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation
import Logging

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

/// One outbox file on its way.
struct Outgoing: TransferJob {
    let running: RunningJob
    let subject: Subject<OutboxFile>
    let rule: OutboxRule
    var record: TransferRecord
    /// The file's path in the outbox.
    let source: String
    /// The file, open, when it was just admitted (or sealing began).
    var opened: FileDescriptor?
    /// For a rule that seals: the data object, made as it is uploaded (`SealStage`).
    var sealing: SealingUpload?
    /// Whether this job uploaded it (its temporary file is then known to be there).
    var uploadedNow = false
    let started = Date()
}

extension Outgoing {
    /// The file: the one admission (or sealing) opened, or on a new attempt the file opened again,
    /// once the temporary file a previous attempt may have left is deleted.
    func file(through transport: any Transport) throws -> FileDescriptor {
        if let opened { return opened }
        if let leftover = record.temporary { try transport.delete(leftover) }
        do {
            return try FileDescriptor.openForReading(source)
        } catch let error as SystemError where error.isNotFound {
            throw SourceGone()
        }
    }
}

/// The send pipeline. Each step is recorded in the journal before it is taken, so a run that
/// stops anywhere (crash, `kill -9`, power loss) resumes at the right step and delivers once:
///
///     admit (queued) → upload (transferring, to a remote temp name; staged once complete)
///     → rename (delivered, under the final name) → after-step (done: delete, archive or keep)
struct OutgoingPipeline: Pipeline {
    let agent: Agent

    var staging: [any Stage<Outgoing>] { [SealStage(agent: agent), UploadStage(agent: agent)] }
    var completing: [Step<Outgoing>] {
        [.each(RenameStage(agent: agent)), .each(ManifestStage(agent: agent)), .each(AfterUploadStage(agent: agent))]
    }

    func admit(_ file: OutboxFile, as running: RunningJob) -> Admission<Outgoing> {
        OutboxAdmission(agent: agent).admit(file, as: running)
    }

    var delivered: (word: String, count: WritableKeyPath<Tally, Int>) { ("sent", \.sent) }
    var noun: String { "transfer" }

    func deliveredButUnfinished(_ attempt: Attempt<OutboxFile>) -> Logger.Message {
        let after = agent.policy.outboxRule(for: attempt.item.recipient)?.after
        let step = after == .archive ? "archived" : "deleted"
        return "sent, but the local file could not be \(step); it is not sent again"
    }

    func isGone(_ error: Error) -> Bool { error is SourceGone }

    func forget(_ attempt: Attempt<OutboxFile>) {
        guard let record = attempt.record else { return }
        try? agent.journal.forget(id: record.id)
    }

    /// A file being sent holds nothing on the remote that another agent waits for: its temporary
    /// names are its own.
    func release(_ attempt: Attempt<OutboxFile>, givenUp: Bool) {}

    /// An upload cut short leaves no temporary file behind.
    func cancel(_ attempt: Attempt<OutboxFile>) {
        guard var record = attempt.record, record.state == .transferring, let temporary = record.temporary else {
            return
        }
        try? agent.pool.withConnection(to: attempt.remote) { try $0.delete(temporary) }
        record.temporary = nil
        record.state = .queued
        try? agent.journal.save(record)
    }

    /// The file goes to `failed/` with a `.reason`.
    func giveUp(_ attempt: Attempt<OutboxFile>, reason: String, advice: String?, log: Logger) {
        let file = attempt.item
        do {
            let destination = try agent.spool.moveToFailed(recipient: file.recipient, path: file.path, reason: reason,
                                                           advice: advice ?? "")
            log.error("moved to failed", metadata: ["transfer.reason": "\(reason)", "failed.path": "\(destination)"])
        } catch {
            log.error("cannot move the file to failed/",
                      metadata: ["transfer.reason": "\(reason)", "spool.error": "\(error)"])
        }
        if var record = attempt.record {
            record.state = .failed
            record.lastError = reason
            record.manifest = nil
            try? agent.journal.save(record)
        }
        agent.count { $0.failed += 1 }
    }

    func advice(_ attempt: Attempt<OutboxFile>, afterRetries: Bool) -> String? {
        let outbox = "outbox/\(attempt.item.recipient)/"
        return afterRetries ? "check the remote '\(attempt.remote.name)', then move the file back into \(outbox)"
            : "fix the cause above, then move the file back into \(outbox) to send it again"
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
