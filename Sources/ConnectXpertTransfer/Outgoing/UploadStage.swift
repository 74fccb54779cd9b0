import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation
import Logging

/// Copies the file, or for a sealed one its data object as it is sealed, to its temporary remote
/// name (`transferring`); once the copy is complete and checked, the file is `staged`, and a sealed
/// one's manifest is in its record. The record is committed, not yet durable: the batch driver makes
/// it so before the rename, as a rename without it would look undone, and be sent twice.
struct UploadStage: Stage {
    let agent: Agent

    var takes: Set<TransferState> { [.queued, .transferring] }

    func run(_ job: inout Outgoing, through transport: any Transport) throws {
        let rule = job.rule
        var record = job.record
        let file = try job.file(through: transport)
        let before = try job.sealing?.status ?? file.status()
        guard before.kind == .regular else { throw SourceGone() }
        if job.sealing == nil {
            let target = record.destination ?? agent.remotePath(recipient: record.peer, path: record.source, rule: rule)
            record.destination = target
            record.temporary = record.temporary ?? agent.temporaryName(for: target, pattern: rule.temporaryName)
            record.state = .transferring
            record.size = before.size
            record.modificationNanoseconds = before.modificationNanoseconds
            record.inode = Int64(bitPattern: before.inode)
            record.nextAttempt = nil
            try agent.journal.save(record)  // so a temporary file left by a crash is found and removed (as in `begin`)
            job.record = record
        }
        let temporary = record.temporary!
        let target = record.destination!
        let temporaryFolder = folder(ofRelative: temporary)
        let folder = folder(ofRelative: target)
        job.log.debug("upload started", metadata: ["transfer.temporary": "\(temporary)"])
        try transport.makeDirectories(folder)
        if temporaryFolder != folder { try transport.makeDirectories(temporaryFolder) }
        let progress = agent.progressReporter(for: record.id)
        let size: Int64, sent: Int64
        if let sealing = job.sealing {
            // A sealed object says nothing of the file: not its time, not its mode.
            size = sealing.size()
            sent = try transport.upload(from: sealing, to: temporary, attributes: UploadAttributes(
                modificationNanoseconds: nil, mode: nil, renamedTo: target), progress: progress)
        } else {
            size = before.size
            let attributes = UploadAttributes(
                modificationNanoseconds: rule.preserveModificationTime ? before.modificationNanoseconds : nil,
                mode: rule.mode, renamedTo: rule.conflict == .overwrite ? nil : target)
            sent = try upload(file, size: size, to: temporary, attributes: attributes, through: transport,
                              remote: job.remote, progress: progress)
            if attributes.modificationNanoseconds != nil, !transport.features.keepsModificationTimes {
                agent.warnOnce("the server refused to set an uploaded file's time: files there have their upload's",
                               key: "times " + rule.remote, metadata: ["transfer.remote": "\(rule.remote)"])
            }
        }
        guard let after = try FileSystem.status(job.source), after.isSameVersion(as: before),
              try file.status().isSameVersion(as: before) else {
            try transport.delete(temporary)
            throw TransportError(.transient, "the file changed while it was being sent; sending it again")
        }
        guard sent == size else {
            throw TransportError(.transient, "\(transport.endpoint)/\(temporary) has \(sent) bytes, "
                                 + "not the \(size) sent")
        }
        record.manifest = try job.sealing?.manifest(for: record, from: agent.policy.identity.id, journal: agent.journal)
        record.state = .staged
        record.bytesDone = record.size
        try agent.journal.save(record)
        job.record = record
        job.opened = nil  // a second run on a fresh connection reopens the file
        job.sealing = nil
        job.uploadedNow = true
    }

    /// Uploads `file`; a large one in several streams when the transport can split it and the
    /// remote's `max_connections` has slots free (as rclone's multi-thread streams do).
    private func upload(_ file: FileDescriptor, size: Int64, to temporary: String, attributes: UploadAttributes,
                        through transport: any Transport, remote: Remote, progress: TransferProgress) throws -> Int64 {
        let oneStream = agent.oneStreamRemotes.withLock { $0.contains(remote.name) }
        let wanted = oneStream ? 0 : transport.extraStreams(forUploadOf: size)
        let slots = wanted > 0 ? agent.scheduler.reserveSlots(wanted, for: remote.name) : 0
        defer { agent.scheduler.releaseSlots(slots, for: remote.name) }
        guard slots > 0 else {
            return try transport.upload(from: file, to: temporary, attributes: attributes, progress: progress)
        }
        defer {
            if !transport.features.writesAtOffsets,
               agent.oneStreamRemotes.withLock({ $0.insert(remote.name).inserted }) {
                agent.logger.notice("the server cannot write a file at an offset: large files go to it in one stream",
                                    metadata: ["transfer.remote": "\(remote.name)"])
            }
        }
        return try agent.pool.withExtraConnections(slots, to: remote) { helpers in
            try transport.upload(from: file, to: temporary, attributes: attributes, helpers: helpers,
                                 progress: progress)
        }
    }
}
