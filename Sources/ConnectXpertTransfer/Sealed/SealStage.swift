import ConnectXpertAge
import ConnectXpertJournal
import ConnectXpertSeal
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation

/// For a rule with `seal: true`: makes the upload's source the file sealed to the recipient's
/// pinned key as a stock age file (the data object), sealed as it is read, under a random object
/// name; `UploadStage` then sends it, and its manifest, signed with our key and sealed too, is
/// made once the upload is whole. Nothing of the file's name, path or time goes to the drop, and
/// nothing of it is written in the spool: each attempt seals it afresh.
struct SealStage: Stage {
    let agent: Agent

    var takes: Set<TransferState> { [.queued, .transferring] }

    func run(_ job: inout Outgoing, through transport: any Transport) throws {
        guard job.rule.seal else { return }
        let keys = try agent.sealingKeys()
        let registration = try agent.journal.registrations().first { $0.remote == job.remote.name }
        if registration?.state == .taken {
            throw TransportError(.transient, "our ID is taken on \(job.remote.name) by another key "
                                 + "(\(registration?.otherFingerprint ?? "")): nothing is sent sealed there")
        }
        let card = try agent.peerCard(job.record.peer, trust: job.rule.trust, through: transport)
        let file = try job.file(through: transport)
        let status = try file.status()
        guard status.kind == .regular else { throw SourceGone() }
        let object = SealedName.random()
        var record = job.record
        let destination = agent.remotePath(recipient: record.peer, path: object + ".data", rule: job.rule)
        record.sealed = object
        record.destination = destination
        record.temporary = agent.temporaryName(for: destination, pattern: job.rule.temporaryName)
        record.size = status.size
        record.modificationNanoseconds = status.modificationNanoseconds
        record.inode = Int64(bitPattern: status.inode)
        record.state = .transferring
        record.nextAttempt = nil
        try agent.journal.save(record)  // so a temporary file left by a crash is found and removed
        job.record = record
        job.opened = file
        job.sealing = try SealingUpload(file, status: status, object: object, to: card, signedBy: keys)
    }
}

/// A file being sealed as it is uploaded: the data object, made as the upload reads it (in order,
/// once), and the hashes of the plaintext and of the data object that its manifest names.
final class SealingUpload: UploadSource {
    let status: FileStatus
    let object: String
    private let card: KeyCard
    private let keys: IdentityKeys
    /// The plaintext's (0) and the data object's (1).
    private let digests: Digests
    private let data: HashingInput<AgeSealing<HashingInput<FileDescriptor>>>
    private let sealedSize: Int64
    private var next: Int64 = 0

    init(_ file: FileDescriptor, status: FileStatus, object: String, to card: KeyCard, signedBy keys: IdentityKeys)
        throws {
        self.status = status
        self.object = object
        self.card = card
        self.keys = keys
        digests = Digests(count: 2, concurrent: Digests.worthAThread(status.size))
        let sealing = try AgeSealing(to: [card.age], from: HashingInput(file, into: digests, as: 0))
        sealedSize = Age.sealedSize(ofPlaintext: status.size, headerSize: sealing.headerSize)
        data = HashingInput(sealing, into: digests, as: 1)
    }

    func size() -> Int64 { sealedSize }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        guard offset == next else {
            throw TransportError(.transient, "a sealed upload is read once, in order: sealing it again")
        }
        let count = try data.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer.prefix(Int(sealedSize - next))))
        next += Int64(count)
        return count
    }

    /// The manifest of the object once it is read to its end, signed with our key and sealed to
    /// the recipient; it takes the next sequence number to the recipient.
    func manifest(for record: TransferRecord, from us: String, journal: Journal) throws -> [UInt8] {
        guard next == sealedSize else { throw TransportError(.transient, "the sealed upload is not whole") }
        let digests = digests.finish()
        let manifest = Manifest(
            from: us, fromKey: keys.signing.publicKey.fingerprint, to: record.peer, toKey: card.fingerprint,
            sequence: try journal.takeSequence(to: record.peer), time: Date(), path: record.source,
            size: status.size, mtime: status.modificationNanoseconds, mode: status.mode,
            sha256: digests[0], dataSHA256: digests[1], object: object)
        return try manifest.sealed(signedBy: keys, to: card.age)
    }
}

/// Uploads the manifest of a sealed file once its data object is under its final name: the
/// manifest's arrival is the commit the recipient waits for. Its name is ours alone, so one found
/// there already, or claimed by a recipient's agent (`Claim`), was put by a run that stopped before
/// it could say so; and as the recipient deletes the data before the manifest, a data object gone
/// means the manifest went up and was taken. (A data object this job renamed has no manifest yet,
/// and is there.)
struct ManifestStage: Stage {
    let agent: Agent

    var takes: Set<TransferState> { [.delivered] }

    func run(_ job: inout Outgoing, through transport: any Transport) throws {
        guard job.record.sealed != nil, let data = job.record.destination else { return }
        let path = String(data.dropLast(".data".count)) + ".manifest"
        if !job.uploadedNow {
            guard try transport.entry(at: path) == nil, try transport.entry(at: data) != nil else { return }
            let name = lastComponent(of: path)
            if try transport.list(parentDirectory(of: path)).contains(where: { Claim.holds($0.name, name) }) { return }
        }
        guard let manifest = job.record.manifest else {
            throw TransportError(.permanent, "the journal lost the manifest of \(data)")
        }
        let temporary = agent.temporaryName(for: path, pattern: job.rule.temporaryName)
        try transport.makeDirectories(folder(ofRelative: temporary))
        _ = try transport.putNew(BytesSource(manifest), at: path, through: temporary)
    }
}
