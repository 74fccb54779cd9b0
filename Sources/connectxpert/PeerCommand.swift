import ArgumentParser
import ConnectXpertDaemon
import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSeal
import ConnectXpertSpool
import ConnectXpertSystem
import ConnectXpertTransfer
import Foundation

struct PeerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer",
        abstract: "The peers whose keys we pinned: what is sealed to them and what they signed is checked with these.",
        subcommands: [PeerListCommand.self, PeerShowCommand.self, PeerTrustCommand.self, PeerForgetCommand.self])
}

struct PeerListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "One line per pinned peer.")

    @OptionGroup var policyOptions: PolicyOptions

    func run() throws {
        let peers = try openJournal(Spool(root: try policyOptions.load().spool).journal).peers()
        if peers.isEmpty { print("no peer is pinned; pin one with: connectxpert peer trust ID") }
        for peer in peers {
            let changed = peer.changedFingerprint.map {
                "  KEY CHANGED to \($0): see 'connectxpert peer show \(peer.id)'"
            }
            print("\(peer.id)  \(peer.fingerprint)  \(peer.trust.rawValue)\(changed ?? "")")
        }
    }
}

struct PeerShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "A peer's pinned key: its fingerprint and the safety number to compare with the peer.")

    @OptionGroup var policyOptions: PolicyOptions
    @Argument(help: "The peer's ID.") var id: String

    func run() throws {
        let policy = try policyOptions.load()
        guard let peer = try openJournal(Spool(root: policy.spool).journal).peer(id) else {
            throw fail("\(id) is not pinned; pin it with: connectxpert peer trust \(id)", .noInput)
        }
        let card = try KeyCard(published: Array(peer.card.utf8), expectedID: id)
        let ours = KeyCard(id: policy.identity.id, keys: try loadIdentity(policy), created: Date())
        print("\(id): 256 \(peer.fingerprint) \(id) (ED25519), \(peer.trust.rawValue)")
        print("age recipient: \(card.age)")
        print("safety number with \(policy.identity.id): \(KeyCard.safetyNumber(ours, card))")
        if let changed = peer.changedFingerprint {
            print("KEY CHANGED: the drop now holds \(changed) under \(id); nothing goes to or comes from \(id) until "
                  + "you compare it with \(id) and run: connectxpert peer trust \(id) --replace")
        }
    }
}

struct PeerTrustCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust",
        abstract: "Fetch a peer's key card from the drop, check it and pin it as verified.",
        discussion: """
            Compare the fingerprint or the safety number with the peer (in person, by phone) first; with \
            --fingerprint the card is pinned only when it has that fingerprint. A pinned key is replaced only with \
            --replace.
            """)

    @OptionGroup var policyOptions: PolicyOptions
    @Argument(help: "The peer's ID.") var id: String
    @Option(help: ArgumentHelp("The fingerprint the peer told you (SHA256:…).", valueName: "fingerprint"))
    var fingerprint: String?
    @Flag(help: "Replace a pinned key that changed.") var replace = false
    @Option(help: ArgumentHelp("The remote whose drop holds the card (default: the one the rules for the peer use).",
                               valueName: "name"))
    var remote: String?

    func run() throws {
        let policy = try policyOptions.load()
        let spool = Spool(root: policy.spool)
        try spool.createLayout()
        let journal = try openJournal(spool.journal)
        let name = remote ?? policy.outboxRule(for: id)?.remote ?? policy.inbox.first?.remote ?? ""
        guard let drop = policy.remotes[name] else { throw fail("no remote to fetch \(id)'s key card from", .usage) }
        let found: (card: KeyCard, text: String)?
        do {
            found = try KeyDirectory.card(of: id, on: drop, connect: TransportFactory.connect)
        } catch let error as IdentityError {
            throw fail("\(error); nothing was pinned", .dataError)
        } catch {
            throw fail("cannot fetch \(id)'s key card from \(name): \(error)", .unavailable)
        }
        guard let (card, text) = found else {
            throw fail("\(name) holds no key card for \(id) (keys/\(id).pub): \(id)'s agent publishes it when it runs",
                       .noInput)
        }
        if let fingerprint, fingerprint != card.fingerprint {
            throw fail("the key card of \(id) on \(name) has the fingerprint \(card.fingerprint), not \(fingerprint): "
                       + "nothing was pinned; it may not be \(id)'s", .dataError)
        }
        if let pinned = try journal.peer(id), pinned.fingerprint != card.fingerprint, !replace {
            throw fail("the key of \(id) changed: pinned \(pinned.fingerprint), on \(name) \(card.fingerprint); "
                       + "compare it with \(id), then run: connectxpert peer trust \(id) --replace", .dataError)
        }
        let pin = PinnedPeer(id: id, card: text, fingerprint: card.fingerprint, trust: .verified,
                             pinned: Date().timeIntervalSince1970)
        try journal.pin(pin)
        print("pinned \(id): 256 \(card.fingerprint) \(id) (ED25519), verified")
        let held = try Agent.releaseHeldMessages(from: id, pinned: pin, card: card, journal: journal)
        if held.released > 0 {
            print("released \(held.released) held message\(held.released == 1 ? "" : "s") from \(id)")
        }
        if held.forged > 0 {
            print("deleted \(held.forged) held message\(held.forged == 1 ? "" : "s") not signed by this key: forged")
        }
        if let ours = try? loadIdentity(policy) {
            let ourCard = KeyCard(id: policy.identity.id, keys: ours, created: Date())
            print("safety number: \(KeyCard.safetyNumber(ourCard, card))")
        }
    }
}

struct PeerForgetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "forget", abstract: "Unpin a peer's key.")

    @OptionGroup var policyOptions: PolicyOptions
    @Argument(help: "The peer's ID.") var id: String

    func run() throws {
        let journal = try openJournal(Spool(root: try policyOptions.load().spool).journal)
        guard try journal.peer(id) != nil else { throw fail("\(id) is not pinned", .noInput) }
        try journal.forgetPeer(id)
        print("forgot \(id)'s key")
    }
}
