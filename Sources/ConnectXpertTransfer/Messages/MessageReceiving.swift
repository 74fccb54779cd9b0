import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSeal
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation
import Logging

/// The messages a listing found in one sender's folder: what a message receipt is about.
struct IncomingMessages: Sendable {
    let ruleIndex: Int
    let sender: String
    let folder: String
    let objects: [(path: String, size: Int64)]

    func key(on remote: String) -> JobKey { JobKey("in-messages", remote, folder) }
}

/// Messages in: a sender folder's messages are fetched and opened together, each checked as a
/// sealed file's manifest is (sealed to us, by the folder's sender, under its pinned key, for this
/// object, a sequence number not seen before), then stored in their sequence order in one durable
/// commit, and only then deleted from the drop. A message whose sender's key is not pinned (under
/// `trust: verified`) is held: stored, not shown, until `peer trust` checks its signature. A
/// refused one is kept aside on the drop, as a refused file is.
extension Agent {
    func enqueueReceive(_ messages: IncomingMessages, remote: String) {
        scheduler.enqueue(messages.key(on: remote), remote: remote) { [self] job in
            job.end(receive(messages, as: job.key))
        }
    }

    private func receive(_ found: IncomingMessages, as key: JobKey) -> JobOutcome {
        guard let rule = policy.inbox[safe: found.ruleIndex], let remote = policy.remotes[rule.remote],
              !isRefused(remote.name, item: key) else { return .finished }
        var log = logger
        log[metadataKey: "transfer.remote"] = "\(remote.name)"
        log[metadataKey: "message.from"] = "\(found.sender)"
        do {
            let keys = try sealingKeys()
            try pool.withConnection(to: remote) { transport in
                let card: KeyCard?
                do {
                    card = try peerCard(found.sender, trust: rule.trust, through: transport)
                } catch is PeerNotPinned {
                    card = nil
                } catch is UnknownPeer {
                    card = nil
                }
                let trust = try card.flatMap { _ in try journal.peer(found.sender)?.trust }
                var opened: [(path: String, signed: SignedMessage)] = []
                for (path, size) in found.objects {
                    guard let sealed = try transport.fetch(path, limit: Int64(SealedMessage.plaintextLimit) + 4096)
                    else { continue }  // taken meanwhile
                    do {
                        let signed = try SignedMessage(sealed, with: [keys.age])
                        try check(signed.content, signed: signed, at: path, from: found.sender, card: card, keys: keys)
                        opened.append((path, signed))
                    } catch let refusal as SealRefusal {
                        refuse(path, size: size, refusal, from: found.sender, remote: remote.name, through: transport,
                               log: log)
                    }
                }
                var last = try journal.lastMessageSequence(from: found.sender)
                var received: [ReceivedMessage] = [], taken: [(path: String, sequence: Int64)] = []
                for (path, signed) in opened.sorted(by: { $0.signed.content.sequence < $1.signed.content.sequence }) {
                    let message = signed.content
                    do {
                        if try journal.opened(from: found.sender, sequence: message.sequence) != nil {
                            // Received by a run stopped before it deleted the copy: deleted now.
                            guard try journal.remoteCopy(from: found.sender, sequence: message.sequence) == path else {
                                throw SealRefusal.replay("sequence number \(message.sequence) from \(found.sender) "
                                                         + "was opened before")
                            }
                            taken.append((path, message.sequence))
                            continue
                        }
                        guard message.sequence > last,
                              try !journal.wasOpened(object: message.object, from: found.sender, otherThan: 0) else {
                            throw SealRefusal.replay("message \(message.sequence) from \(found.sender) comes after "
                                                     + "\(last), which was received")
                        }
                    } catch let refusal as SealRefusal {
                        refuse(path, size: 0, refusal, from: found.sender, remote: remote.name, through: transport,
                               log: log)
                        continue
                    }
                    last = message.sequence
                    let time = (try? Date(message.time, strategy: .iso8601))?.timeIntervalSince1970
                    received.append(ReceivedMessage(
                        peer: found.sender, time: time ?? Date().timeIntervalSince1970, text: message.text,
                        sequence: message.sequence, object: message.object, trust: trust,
                        plaintext: trust == nil ? signed.plaintext : nil, remotePath: path))
                    taken.append((path, message.sequence))
                }
                try journal.store(received)
                for (path, _) in taken {
                    do { try transport.delete(path) } catch let error as TransportError where error.kind == .notFound {}
                }
                try journal.markRemoteCopiesDeleted(from: found.sender, sequences: taken.map(\.sequence))
                count { $0.messagesReceived += received.count }
                for message in received {
                    log.info(trust == nil ? "message held: its sender's key is not pinned" : "message received",
                             metadata: ["message.sequence": "\(message.sequence)"])
                }
            }
            return .finished
        } catch where classify(error) == .refused {
            refused(error, remote: remote.name, item: key)
            return .finished
        } catch {
            log.warning("cannot receive messages; the next poll tries again", metadata: ["transfer.error": "\(error)"])
            if mode == .batch { count { $0.deferred += 1 } }
            return .finished
        }
    }

    /// A message must be signed by the folder's sender's key, when it is pinned, and be to us, from
    /// that sender, for the object it is on the drop as.
    private func check(_ message: SealedMessage, signed: SignedMessage, at path: String, from sender: String,
                       card: KeyCard?, keys: IdentityKeys) throws {
        if let card, message.fromKey != card.fingerprint || !signed.isSigned(by: card.signing) {
            throw SealRefusal.forged("the message's signature is not the sender's pinned key's")
        }
        let us = policy.identity.id
        guard message.to == us, message.toKey == keys.signing.publicKey.fingerprint else {
            throw SealRefusal.misaddressed("it is for \(message.to) (\(message.toKey)), not for us")
        }
        guard message.from == sender else {
            throw SealRefusal.misaddressed("it says it is from \(message.from), found in \(sender)'s folder")
        }
        guard SealedName.parse(lastComponent(of: path))?.object == message.object else {
            throw SealRefusal.tampered("the message names the object \(message.object), not its own")
        }
        guard message.text.utf8.count <= SealedMessage.textLimit else {
            throw SealRefusal.tampered("the message's text is longer than \(SealedMessage.textLimit) bytes")
        }
    }

    /// A refused message: kept aside on the drop, recorded for `status`, never retried.
    private func refuse(_ path: String, size: Int64, _ refusal: SealRefusal, from sender: String, remote: String,
                        through transport: any Transport, log: Logger) {
        let aside = quarantine([(path, lastComponent(of: path))], through: transport)
        let reason = "sealed object refused: \(refusal)"
        if var record = try? journal.begin(.incoming, peer: sender, remote: remote, source: path, size: size,
                                           modificationNanoseconds: 0, inode: 0, destination: "", temporary: "",
                                           sealed: SealedName.parse(lastComponent(of: path))?.object) {
            record.state = .failed
            record.lastError = reason
            try? journal.save(record)
        }
        log.error("cannot receive; the message is kept aside on the drop", metadata: [
            "transfer.source": "\(path)", "transfer.reason": "\(reason)",
            "transfer.advice": "nothing was delivered; see \(aside)",
        ])
        count {
            $0.failed += 1
            $0.failedDownloads += 1
        }
    }

    /// Checks the messages held from `sender` with its key, now pinned (`pin`): those it signed are
    /// delivered, the others deleted as forged. Returns how many of each.
    public static func releaseHeldMessages(from sender: String, pinned pin: PinnedPeer, card: KeyCard,
                                           journal: Journal) throws -> (released: Int, forged: Int) {
        var released = 0, forged = 0
        for (message, plaintext) in try journal.heldMessages(from: sender) {
            let signed = try? SignedMessage(plaintext: plaintext)
            let genuine = signed.map { $0.content.fromKey == card.fingerprint && $0.isSigned(by: card.signing) }
            try journal.release(held: message.id, trust: genuine == true ? pin.trust : nil)
            if genuine == true { released += 1 } else { forged += 1 }
        }
        return (released, forged)
    }
}
