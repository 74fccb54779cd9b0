import ConnectXpertAge
import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSeal
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation

/// The keys sealed files use, for both directions: ours, and each peer's, pinned in the journal.
extension Agent {
    /// Our identity, or a permanent failure: the rule wants seals but we have no keys.
    func sealingKeys() throws -> IdentityKeys {
        guard let identity else {
            throw PermanentFailure(reason: "the rule seals, but there is no usable identity (see the log at start)",
                                   advice: "make one with 'connectxpert identity init'")
        }
        return identity
    }

    /// The peer's pinned card. Once per run the card on the drop is compared with the pin: a
    /// changed key stops the peer's files (both ways) until a person runs `peer trust ID --replace`.
    /// A peer seen for the first time is pinned with `trust: accept-new`; with `verified` its files
    /// wait for a person. A peer without a card on the drop is not known.
    func peerCard(_ peer: String, trust: PeerTrustMode, through transport: any Transport) throws -> KeyCard {
        let pinned = try journal.peer(peer)
        if var pin = pinned, pin.changedFingerprint == nil,
           checkedCards.withLock({ $0.insert(peer).inserted }) {
            if let (card, text) = try fetchCard(peer, through: transport), card.fingerprint != pin.fingerprint {
                pin.changedCard = text
                pin.changedFingerprint = card.fingerprint
                try journal.pin(pin)
                logger.error("""
                    a peer's key changed: nothing goes to or comes from it until a person compares the new key and \
                    runs: connectxpert peer trust \(peer) --replace
                    """, metadata: [
                    "peer.id": "\(peer)", "peer.pinned": "\(pin.fingerprint)", "peer.new": "\(card.fingerprint)",
                ])
            }
        }
        if let pin = try journal.peer(peer) {
            if let changed = pin.changedFingerprint {
                throw TransportError(.transient, "\(peer)'s key changed (pinned \(pin.fingerprint), now \(changed)): "
                                     + "waiting for 'connectxpert peer trust \(peer) --replace'")
            }
            return try pinnedCards.withLock { cards in
                if let card = cards[pin.card] { return card }
                let card = try KeyCard(published: Array(pin.card.utf8), expectedID: peer)
                cards[pin.card] = card
                return card
            }
        }
        guard let (card, text) = try fetchCard(peer, through: transport) else {
            throw UnknownPeer(id: peer)
        }
        guard trust == .acceptNew else { throw PeerNotPinned(id: peer, fingerprint: card.fingerprint) }
        try journal.pin(PinnedPeer(id: peer, card: text, fingerprint: card.fingerprint, trust: .accepted,
                                   pinned: Date().timeIntervalSince1970))
        logger.notice("pinned a peer's key on first sight (trust: accept-new)",
                      metadata: ["peer.id": "\(peer)", "peer.fingerprint": "\(card.fingerprint)"])
        return card
    }

    private func fetchCard(_ peer: String, through transport: any Transport) throws -> (KeyCard, String)? {
        do {
            return try transport.keyCard(of: peer)
        } catch let error as TransportError {
            throw error
        } catch {
            throw TransportError(.transient, "\(error)")  // a card that does not check: it may be replaced
        }
    }
}

/// A peer whose card is on the drop but not pinned, under `trust: verified`: what goes to it waits,
/// and what comes from it waits too (a message is held), until a person trusts the key.
struct PeerNotPinned: Error, CustomStringConvertible {
    let id: String
    let fingerprint: String
    var description: String {
        "\(id)'s key \(fingerprint) is not pinned: compare it with \(id), then run 'connectxpert peer trust \(id)' "
            + "(or set trust: accept-new)"
    }
}

/// A peer with no key card on the drop: nothing can be sealed to it, nor anything from it checked.
struct UnknownPeer: Error, CustomStringConvertible {
    let id: String
    var description: String { "\(id) has no key card on the drop (keys/\(id).pub): \(id)'s agent publishes it" }
}

/// The names of sealed objects on the drop: a file's `<object>.data` and `<object>.manifest`, a
/// message's `<object>.message`.
enum SealedName {
    enum Part: String, CaseIterable { case data, manifest, message }

    /// 128 random bits, in hex: the name reveals nothing.
    static func random() -> String {
        lowercaseHex((0..<16).map { _ in UInt8.random(in: 0...255) })
    }

    /// The object a drop name is part of, and which part; nil for a name of another kind.
    static func parse(_ name: String) -> (object: String, part: Part)? {
        for part in Part.allCases where name.hasSuffix("." + part.rawValue) {
            let object = String(name.dropLast(part.rawValue.count + 1))
            if object.count == 32, object.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) {
                return (object, part)
            }
        }
        return nil
    }

    static func data(beside manifest: String) -> String {
        String(manifest.dropLast(".manifest".count)) + ".data"
    }
}

extension Agent {
    /// Moves sealed objects that were refused aside, into their folder's hidden
    /// `.connectxpert-quarantine/`, never deleting them; returns where.
    func quarantine(_ objects: [(path: String, name: String)], through transport: any Transport) -> String {
        let aside = joinPath(parentDirectory(of: objects[0].path), ".connectxpert-quarantine")
        try? transport.makeDirectories(aside)
        for object in objects {
            try? transport.rename(object.path, to: joinPath(aside, object.name), replacing: true)
        }
        return aside
    }
}
