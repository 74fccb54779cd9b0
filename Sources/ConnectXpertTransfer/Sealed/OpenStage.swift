import ConnectXpertAge
import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSeal
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation

/// For a sealed object whose manifest is downloaded (`downloaded`): opens the manifest with our
/// key and checks it (signed by the folder's sender's pinned key, to us, not a replay), then
/// downloads the data object, opening it as it comes into the usual temporary file, and checks the
/// data object's hash and the plaintext's. The file is then `staged` under the path the manifest names, and
/// goes on as any received file (placed, fsynced, then both objects deleted remotely, data first).
/// A refused object is moved aside on the drop, never deleted, and nothing of it is delivered.
/// The downloaded manifest is kept beside the temporary file until the file is placed.
struct OpenStage: Stage {
    let agent: Agent

    var takes: Set<TransferState> { [.downloaded] }

    func run(_ job: inout Incoming, through transport: any Transport) throws {
        guard let object = job.record.sealed, let temporary = job.record.temporary,
              let destination = job.record.destination else {
            throw TransportError(.transient, "journal record without names")
        }
        let keys = try agent.sealingKeys()
        let sender = job.record.peer
        do {
            let card: KeyCard
            do {
                card = try agent.peerCard(sender, trust: job.rule.trust, through: transport)
            } catch let unknown as UnknownPeer {
                throw SealRefusal.forged("\(unknown)")
            }
            // The manifest moves out of the way of the file it opens into, so that a run stopped
            // anywhere finds each where it expects it.
            let copy = temporary + ".manifest"
            if try FileSystem.status(copy) == nil { try FileSystem.rename(temporary, to: copy) }
            let manifest = try Manifest.open(try FileSystem.readFile(copy), with: keys, senderKey: card.signing)
            try check(manifest, object: object, card: card, keys: keys, record: job.record)
            let data = SealedName.data(beside: job.record.source)
            guard let entry = try transport.entry(at: data), entry.kind == .file else {
                throw SealRefusal.tampered("the data object \(data) is missing")
            }
            let place = try localPath(manifest.path, in: parentDirectory(of: destination))
            try FileSystem.createDirectories(parentDirectory(of: place))
            try FileSystem.removeIfPresent(temporary)
            let output = try FileDescriptor.create(temporary)
            let opening = DataObjectOpening(size: entry.size, with: [keys.age], to: output)
            guard try transport.download(data, listedSize: entry.size, to: opening) == entry.size else {
                throw TransportError(.transient, "\(transport.endpoint)/\(data) did not arrive whole "
                                     + "(listed with \(entry.size) bytes)")
            }
            try opening.finish(checking: manifest)
            try output.sync()
            try FileSystem.setModificationTime(temporary, nanoseconds: manifest.mtime)
            try agent.journal.markOpened(from: sender, sequence: manifest.sequence, object: object,
                                         record: job.record.id)
            job.record.destination = place
            job.record.bytesDone = manifest.size
            job.record.state = .staged
            try agent.journal.save(job.record)
        } catch let refusal as SealRefusal {
            job.record.removeTemporaryFiles()
            let data = SealedName.data(beside: job.record.source)
            let aside = agent.quarantine([(data, lastComponent(of: data)),
                                          (job.record.remotePath, lastComponent(of: job.record.source))],
                                         through: transport)
            throw PermanentFailure(reason: "sealed object refused: \(refusal)",
                                   advice: "nothing was delivered; the objects are kept aside on the drop in \(aside)")
        }
    }

    /// The manifest must be from the folder's sender, under its pinned key, to us, for this object,
    /// and its sequence number and object must not have been opened by another transfer.
    private func check(_ manifest: Manifest, object: String, card: KeyCard, keys: IdentityKeys,
                       record: TransferRecord) throws {
        let us = agent.policy.identity.id
        guard manifest.to == us, manifest.toKey == keys.signing.publicKey.fingerprint else {
            throw SealRefusal.misaddressed("it is for \(manifest.to) (\(manifest.toKey)), not for us")
        }
        guard manifest.from == record.peer, manifest.fromKey == card.fingerprint else {
            throw SealRefusal.misaddressed("it says it is from \(manifest.from), found in \(record.peer)'s folder")
        }
        guard manifest.object == object else {
            throw SealRefusal.tampered("the manifest names the object \(manifest.object), not \(object)")
        }
        if let opened = try agent.journal.opened(from: record.peer, sequence: manifest.sequence),
           opened.record != record.id {
            throw SealRefusal.replay("sequence number \(manifest.sequence) from \(record.peer) was opened before")
        }
        if try agent.journal.wasOpened(object: object, from: record.peer, otherThan: record.id) {
            throw SealRefusal.replay("the object \(object) was opened before")
        }
    }

    /// Where the manifest's relative path goes below the sender's inbox folder; a path that would
    /// leave it, or a name no file may have, is refused.
    private func localPath(_ path: String, in folder: String) throws -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard !parts.isEmpty, parts.allSatisfy({ Names.problem(withComponent: $0) == nil }),
              !Names.hasControlCharacter(path) else {
            throw SealRefusal.tampered("the manifest names an unsafe path, \(Names.printable(path))")
        }
        return joinPath(folder, path)
    }

}

extension DataObjectOpening: DownloadSink {}

extension TransferRecord {
    /// Removes a receive's temporary file, and for a sealed one its manifest's copy.
    func removeTemporaryFiles() {
        guard let temporary else { return }
        _ = try? FileSystem.removeIfPresent(temporary)
        if sealed != nil { _ = try? FileSystem.removeIfPresent(temporary + ".manifest") }
    }
}
