import ConnectXpertAge
import ConnectXpertJournal
import ConnectXpertSeal
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation

/// For a rule with `seal: true`: seals the file to the recipient's pinned key as a stock age file
/// (the data object) and writes its manifest, signed with our key and sealed too, both in the
/// spool (`.state/sealed/`), fsynced; the file is then `sealed`, and the upload sends the data
/// object under a random name. Nothing of the file's name, path or time goes to the drop.
struct SealStage: Stage {
    let agent: Agent

    var takes: Set<TransferState> { [.queued, .transferring] }

    func run(_ job: inout Outgoing, through transport: any Transport) throws {
        guard job.rule.seal, job.record.sealed == nil else { return }
        let keys = try agent.sealingKeys()
        let registration = try agent.journal.registrations().first { $0.remote == job.remote.name }
        if registration?.state == .taken {
            throw TransportError(.transient, "our ID is taken on \(job.remote.name) by another key "
                                 + "(\(registration?.otherFingerprint ?? "")): nothing is sent sealed there")
        }
        let card = try agent.peerCard(job.record.peer, trust: job.rule.trust, through: transport)
        let file: FileDescriptor
        do {
            file = try job.opened ?? FileDescriptor.openForReading(job.source)
        } catch let error as SystemError where error.isNotFound {
            throw SourceGone()
        }
        let before = try file.status()
        guard before.kind == .regular else { throw SourceGone() }
        let object = SealedName.random()
        let files = SealedFiles(folder: agent.sealedFolder, object: object)
        try FileSystem.createDirectories(agent.sealedFolder, mode: 0o700)
        // Both files have names of their own, which no record holds until they are whole: they are
        // written in place, each fsynced, and the folder once.
        do {
            let plaintext = HashingInput(file)
            let data = try FileDescriptor.create(files.data, mode: 0o600)
            var sink = HashingOutput(data)
            try Age.encrypt(to: [card.age], from: plaintext, to: &sink)
            try data.sync()
            guard try file.status().isSameVersion(as: before) else {
                throw TransportError(.transient, "the file changed while it was being sealed; sealing it again")
            }
            let manifest = Manifest(
                from: agent.policy.identity.id, fromKey: keys.signing.publicKey.fingerprint, to: job.record.peer,
                toKey: card.fingerprint, sequence: try agent.journal.takeSequence(to: job.record.peer), time: Date(),
                path: job.record.source, size: before.size, mtime: before.modificationNanoseconds, mode: before.mode,
                sha256: plaintext.digest, dataSHA256: sink.digest, object: object)
            let sealedManifest = try FileDescriptor.create(files.manifest, mode: 0o600)
            try sealedManifest.write(try manifest.sealed(signedBy: keys, to: card.age))
            try sealedManifest.sync()
            try FileSystem.syncDirectory(agent.sealedFolder)
        } catch {
            files.remove()
            throw error
        }
        var record = job.record
        let destination = agent.remotePath(recipient: record.peer, path: object + ".data", rule: job.rule)
        record.sealed = object
        record.destination = destination
        record.temporary = agent.temporaryName(for: destination, pattern: job.rule.temporaryName)
        record.size = before.size
        record.modificationNanoseconds = before.modificationNanoseconds
        record.inode = Int64(bitPattern: before.inode)
        record.state = .sealed
        try agent.journal.save(record)
        job.record = record
        job.opened = nil
    }
}

/// Uploads the manifest of a sealed file once its data object is under its final name: the
/// manifest's arrival is the commit the recipient waits for. Its name is ours alone, so one found
/// there already was put by a run that stopped before it could say so; and as the recipient deletes
/// the data before the manifest, a data object gone means the manifest went up and was taken.
struct ManifestStage: Stage {
    let agent: Agent

    var takes: Set<TransferState> { [.delivered] }

    func run(_ job: inout Outgoing, through transport: any Transport) throws {
        guard let object = job.record.sealed, let data = job.record.destination else { return }
        let manifest = String(data.dropLast(".data".count)) + ".manifest"
        guard try transport.entry(at: manifest) == nil, try transport.entry(at: data) != nil else { return }
        let local = SealedFiles(folder: agent.sealedFolder, object: object).manifest
        let temporary = agent.temporaryName(for: manifest, pattern: job.rule.temporaryName)
        try transport.makeDirectories(folder(ofRelative: temporary))
        _ = try transport.putNew(try FileDescriptor.openForReading(local), at: manifest, through: temporary)
    }
}

/// A sealed object's two files in the spool.
struct SealedFiles {
    let folder: String
    let object: String

    var data: String { joinPath(folder, object + ".data") }
    var manifest: String { joinPath(folder, object + ".manifest") }

    func remove() {
        _ = try? FileSystem.removeIfPresent(data)
        _ = try? FileSystem.removeIfPresent(manifest)
    }
}
