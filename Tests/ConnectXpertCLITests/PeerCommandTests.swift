import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// Signing up (a key card on the drop, an ID never taken over) and pinning peers' keys, as two
/// people would: each compares the other's fingerprint, and both see the same safety number.
@Suite struct PeerCommandTests {
    let agents: TwoAgents

    init() throws {
        agents = try TwoAgents()
        for id in ["alice", "bob"] {
            #expect(try run(id, "identity", "init").status == 0)
            #expect(try agents.once(id).status == 0)
        }
    }

    func run(_ id: String, _ arguments: String...) throws -> Outcome {
        try AgentProcess(arguments + ["--policy", agents.policyPath(id)], in: joinPath(agents.root, id)).wait()
    }

    func fingerprint(_ id: String) throws -> String {
        String(try run(id, "identity", "show").stdout.split(separator: " ")[1])
    }

    var card: String { joinPath(agents.drop, "keys/bob.pub") }

    @Test func eachPublishesACardAndPinsTheOthersWithTheSameSafetyNumber() throws {
        defer { agents.remove() }
        #expect(FileSystem.exists(joinPath(agents.drop, "keys/alice.pub")) && FileSystem.exists(card))
        let bob = try fingerprint("bob"), alice = try fingerprint("alice")
        let trusted = try run("alice", "peer", "trust", "bob", "--fingerprint", bob)
        #expect(trusted.status == 0, "\(trusted.stderr)")
        #expect(trusted.stdout.hasPrefix("pinned bob: 256 \(bob) bob (ED25519), verified\nsafety number: "))
        #expect(try run("alice", "peer", "list").stdout == "bob  \(bob)  verified\n")
        #expect(try run("bob", "peer", "trust", "alice", "--fingerprint", alice).status == 0)
        let number = { (id: String, peer: String) throws -> String in
            String(try run(id, "peer", "show", peer).stdout.split(separator: "\n")[2].split(separator: ": ")[1])
        }
        let seen = try number("alice", "bob")
        #expect(seen == (try number("bob", "alice")), "both sides read the same digits")
        #expect(seen.split(separator: " ").count == 12 && seen.filter(\.isNumber).count == 60)
        #expect(try run("alice", "status").stdout.contains("Key card (alice):\n  drop: published, \(alice)\n"))
    }

    @Test func aWrongFingerprintOrAnAlteredCardPinsNothing() throws {
        defer { agents.remove() }
        let wrong = try run("alice", "peer", "trust", "bob", "--fingerprint", try fingerprint("alice"))
        #expect(wrong.status == 65)
        let (bob, alice) = (try fingerprint("bob"), try fingerprint("alice"))
        #expect(wrong.stderr == "connectxpert: the key card of bob on drop has the fingerprint \(bob), "
            + "not \(alice): nothing was pinned; it may not be bob's\n")
        let text = try String(contentsOfFile: card, encoding: .utf8)
        let forged = text.replacingOccurrences(of: "created: 20", with: "created: 19")  // backdated
        try FileSystem.writeFileAtomically(card, contents: Array(forged.utf8))
        let altered = try run("alice", "peer", "trust", "bob")
        #expect(altered.status == 65)
        #expect(altered.stderr == "connectxpert: the key card of bob is not signed by its own key: it was altered; "
            + "nothing was pinned\n")
        #expect(try run("alice", "peer", "list").stdout.hasPrefix("no peer is pinned"))
    }

    /// A second user who picks a taken ID is refused, and the first one's card stays.
    @Test func anIDTakenByAnotherKeyIsRefusedWithBothFingerprints() throws {
        defer { agents.remove() }
        let original = try FileSystem.readFile(card)
        let impostor = joinPath(agents.root, "impostor")
        try FileSystem.createDirectories(impostor)
        let policy = try String(contentsOfFile: agents.policyPath("bob"), encoding: .utf8)
        try FileSystem.writeFileAtomically(joinPath(impostor, "policies.yaml"), contents: Array(policy.utf8))
        #expect(try connectxpert("identity", "init", in: impostor).status == 0)
        let theirs = String(try connectxpert("identity", "show", in: impostor).stdout.split(separator: " ")[1])
        let pass = try connectxpert("run", "--once", in: impostor)
        #expect(pass.stderr.contains("the ID is taken on this drop by another key"))
        #expect(try FileSystem.readFile(card) == original, "the first card stays")
        #expect(try connectxpert("status", in: impostor).stdout.contains(
            "  drop: ID TAKEN by another key \(try fingerprint("bob")) (ours \(theirs)); "
                + "nothing is sent sealed there\n"))
    }

    /// `chat` first says what is known of the peer's key: not pinned, accepted on first sight
    /// (unverified), or changed since it was pinned.
    @Test func chatFirstSaysWhatIsKnownOfThePeersKey() throws {
        defer { agents.remove() }
        func standing() throws -> String {
            let chat = try run("alice", "chat", "bob")  // its input is empty: the view ends at once
            #expect(chat.status == 0, "\(chat.stderr)")
            return String(chat.stdout.split(separator: "\n").first ?? "")
        }
        #expect(try standing() == "chat with bob: bob's key is not pinned: its messages are held and yours wait; "
            + "compare fingerprints, then run connectxpert peer trust bob; Ctrl-D ends it")

        try agents.editPolicy("alice", replacing: "    remote: drop\n    retry:\n",
                              with: "    remote: drop\n    trust: accept-new\n    retry:\n")
        #expect(try run("alice", "message", "send", "--to", "bob", "first").status == 0)
        #expect(try agents.once("alice").status == 0)
        let old = try fingerprint("bob")
        #expect(try standing() == "chat with bob: key \(old), UNVERIFIED (accepted on first sight): compare it with "
            + "connectxpert peer show bob; Ctrl-D ends it")

        try FileManager.default.removeItem(atPath: joinPath(agents.bob, "spool/.identity"))
        try FileManager.default.removeItem(atPath: card)
        #expect(try run("bob", "identity", "init").status == 0)
        _ = try agents.once("bob")  // publishes his new card; "first", sealed to his old key, does not open
        #expect(try run("alice", "message", "send", "--to", "bob", "second").status == 0)
        _ = try agents.once("alice")  // finds the changed card, and sends nothing
        #expect(try standing() == "chat with bob: bob's KEY CHANGED (pinned \(old), now \(try fingerprint("bob"))): "
            + "nothing goes either way until you compare it with bob and run connectxpert peer trust bob --replace; "
            + "Ctrl-D ends it")
    }

    /// bob makes new keys (a new machine): alice's pin refuses them until she says --replace.
    @Test func aChangedKeyIsRefusedUntilReplaced() throws {
        defer { agents.remove() }
        let old = try fingerprint("bob")
        #expect(try run("alice", "peer", "trust", "bob").status == 0)
        try FileManager.default.removeItem(atPath: joinPath(agents.bob, "spool/.identity"))
        try FileManager.default.removeItem(atPath: card)  // the drop's operator, asked by bob
        #expect(try run("bob", "identity", "init").status == 0)
        #expect(try agents.once("bob").status == 0)
        let new = try fingerprint("bob")
        let refused = try run("alice", "peer", "trust", "bob")
        #expect(refused.status == 65)
        #expect(refused.stderr == "connectxpert: the key of bob changed: pinned \(old), on drop \(new); "
            + "compare it with bob, then run: connectxpert peer trust bob --replace\n")
        #expect(try run("alice", "peer", "list").stdout == "bob  \(old)  verified\n")
        #expect(try run("alice", "peer", "trust", "bob", "--replace").status == 0)
        #expect(try run("alice", "peer", "list").stdout == "bob  \(new)  verified\n")
        #expect(try run("alice", "peer", "forget", "bob").stdout == "forgot bob's key\n")
    }
}
