import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// alice and bob writing to each other (`message send`, `message read`), each having pinned the
/// other's key.
struct Conversation {
    let sealed: SealedAgents
    var agents: TwoAgents { sealed.agents }

    init(_ agents: TwoAgents) throws { sealed = try SealedAgents(agents) }

    /// `message send --to <to> -`, the text on standard input.
    func send(_ from: String, to: String, _ text: String) throws {
        let sent = try AgentProcess(["message", "send", "--to", to, "-", "--policy", agents.policyPath(from)],
                                    in: joinPath(agents.root, from), input: Array((text + "\n").utf8)).wait()
        #expect(sent.status == 0 && sent.stdout == "queued a message for \(to) (\(text.utf8.count) bytes)\n",
                "\(sent.stderr)")
    }

    /// The messages `message read --peer <peer>` prints for `id`, each as its heading and its text.
    func conversation(_ id: String, with peer: String) throws -> [(heading: String, text: String)] {
        let output = try sealed.run(id, "message", "read", "--peer", peer).stdout
        var messages: [(heading: String, text: String)] = []
        for line in output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.wholeMatch(of: /\d+  \d{4}-\d\d-\d\d \d\d:\d\d  \S+ → \S+  [N ]  .+/) != nil {
                messages.append((line, ""))
            } else if !messages.isEmpty {
                messages[messages.count - 1].text += (messages[messages.count - 1].text.isEmpty ? "" : "\n") + line
            }
        }
        // Each message's text ends with a line break, and messages are parted by an empty line.
        return messages.map { ($0.heading, String($0.text.trimmingSuffix("\n"))) }
    }

    /// The texts `id` received from `peer`, in the order shown, with how each is vouched for.
    func received(_ id: String, from peer: String) throws -> [(text: String, standing: String)] {
        try conversation(id, with: peer).filter { $0.heading.contains("  \(peer) → \(id)  ") }.map {
            ($0.text, $0.heading.split(separator: "  ").last?.trimmingCharacters(in: .whitespaces) ?? "")
        }
    }

    /// The messages waiting on the drop for `to` from `from`.
    func onTheDrop(from: String, to: String) -> [String] {
        let names = (try? FileSystem.contents(of: joinPath(sealed.drop, "\(from)->\(to)"))) ?? []
        return names.filter { $0.hasSuffix(".message") }
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> Substring {
        hasSuffix(suffix) ? dropLast(suffix.count) : self[...]
    }
}

/// Messages between identities: sealed and signed like files, they wait on the drop for an offline
/// recipient and arrive once each, in the order they were written, whatever stops either agent.
@Suite struct MessageExchangeTests {
    static func text(_ from: String, _ index: Int) -> String {
        "\(from) \(index): naïve café ✓ 日本語 🙂\nsecond line of \(index)\n\n\tafter an empty line"
    }

    /// Both daemons running, 50 messages each way, sent while the other side's arrive.
    static func checkFiftyEachWay(_ chat: Conversation) throws {
        let alice = try chat.agents.startDaemon("alice")
        let bob = try chat.agents.startDaemon("bob")
        defer { AgentProcess.stop([alice, bob]) }
        for index in 0..<50 {
            try chat.send("alice", to: "bob", text("alice", index))
            try chat.send("bob", to: "alice", text("bob", index))
        }
        let expected = { (from: String) in (0..<50).map { text(from, $0) } }
        #expect(eventually(timeout: 60) { (try? chat.received("bob", from: "alice").count) == 50 }, "\(bob.log)")
        #expect(eventually(timeout: 60) { (try? chat.received("alice", from: "bob").count) == 50 }, "\(alice.log)")
        let atBob = try chat.received("bob", from: "alice"), atAlice = try chat.received("alice", from: "bob")
        #expect(atBob.map(\.text) == expected("alice"))
        #expect(atAlice.map(\.text) == expected("bob"))
        #expect(Set((atBob + atAlice).map(\.standing)) == ["verified"])
        #expect(eventually {
            chat.onTheDrop(from: "alice", to: "bob").isEmpty && chat.onTheDrop(from: "bob", to: "alice").isEmpty
        }, "taken off the drop")
        let sent = try chat.conversation("alice", with: "bob").filter { $0.heading.contains("  alice → bob  ") }
        #expect(sent.map(\.text) == expected("alice") && sent.allSatisfy { $0.heading.hasSuffix("  sent") })
    }

    @Test func fiftyMessagesEachWayArriveOnceInOrderAndVerified() throws {
        let chat = try Conversation(try TwoAgents())
        defer { chat.agents.remove() }
        try Self.checkFiftyEachWay(chat)
    }

    @Test(.enabled(if: canRunServerTests, "needs root to run sshd"))
    func fiftyMessagesEachWayOverSFTP() throws {
        let chat = try Conversation(try TwoAgents(sftp: SSHTestServer.shared))
        defer { chat.agents.remove() }
        try Self.checkFiftyEachWay(chat)
    }

    /// `message list` shows the unread with `N`, `--unread` only those, `--limit` the last ones;
    /// `message read N` prints one whole and marks it read.
    @Test func readingAMessageMarksItRead() throws {
        let chat = try Conversation(try TwoAgents())
        defer { chat.agents.remove() }
        for index in 0..<3 { try chat.send("alice", to: "bob", "note \(index)\nits second line") }
        #expect(try chat.agents.once("alice").status == 0)
        #expect(try chat.agents.once("bob").status == 0)
        func list(_ options: String...) throws -> [String] {
            let listed = try AgentProcess(["message", "list"] + options + ["--policy", chat.agents.policyPath("bob")],
                                          in: chat.agents.bob).wait()
            return listed.stdout.split(separator: "\n").map(String.init)
        }
        let all = try list()
        #expect(all.count == 3 && all.allSatisfy { $0.contains("  alice → bob  N  verified  note ") }, "\(all)")
        let number = try #require(all[1].split(separator: " ").first.map(String.init))
        let read = try chat.sealed.run("bob", "message", "read", number)
        #expect(read.status == 0, "\(read.stderr)")
        #expect(read.stdout.hasPrefix(all[1].replacing("  note 1", with: "") + "\nnote 1\nits second line\n"),
                "its heading, then the whole text: \(read.stdout)")
        #expect(try list("--unread").map { $0.split(separator: " ").first.map(String.init) }
                == [all[0], all[2]].map { $0.split(separator: " ").first.map(String.init) })
        #expect(try list()[1].contains("  alice → bob     verified  note 1"), "read, so no N")
        #expect(try list("--limit", "1") == [all[2]])
    }

    @Test func messagesWaitOnTheDropUntilTheRecipientComesOnline() throws {
        let chat = try Conversation(try TwoAgents())
        defer { chat.agents.remove() }
        let alice = try chat.agents.startDaemon("alice")
        defer { AgentProcess.stop([alice]) }
        for index in 0..<20 { try chat.send("alice", to: "bob", Self.text("alice", index)) }
        #expect(eventually(timeout: 30) { chat.onTheDrop(from: "alice", to: "bob").count == 20 }, "\(alice.log)")
        let received = try chat.agents.once("bob")
        #expect(received.status == 0 && received.stderr.hasSuffix(
            "connectxpert: sent 0, received 0, messages received 20, failed 0, to retry 0\n"), "\(received.stderr)")
        #expect(try chat.received("bob", from: "alice").map(\.text) == (0..<20).map { Self.text("alice", $0) })
        #expect(chat.onTheDrop(from: "alice", to: "bob").isEmpty)
        #expect(try chat.agents.once("bob").stderr.hasSuffix("sent 0, received 0, failed 0, to retry 0\n"), "once")
    }

    /// 200 messages, while alice's daemon and then bob's are killed (`kill -9`) and started again.
    @Test func killingEitherAgentLosesAndRepeatsNoMessage() throws {
        let chat = try Conversation(try TwoAgents())
        defer { chat.agents.remove() }
        var alice = try chat.agents.startDaemon("alice")
        var bob = try chat.agents.startDaemon("bob")
        defer { AgentProcess.stop([alice, bob]) }
        for index in 0..<200 {
            try chat.send("alice", to: "bob", "message \(index)")
            if index == 70 || index == 150 {
                alice.signal(SIGKILL)
                alice.wait()
                alice = try chat.agents.startDaemon("alice")
            }
            if index == 110 || index == 180 {
                bob.signal(SIGKILL)
                bob.wait()
                bob = try chat.agents.startDaemon("bob")
            }
        }
        #expect(eventually(timeout: 60) { (try? chat.received("bob", from: "alice").count) ?? 0 >= 200 })
        #expect(try chat.received("bob", from: "alice").map(\.text) == (0..<200).map { "message \($0)" })
        #expect(eventually { chat.onTheDrop(from: "alice", to: "bob").isEmpty })
        #expect(!alice.log.contains("refused") && !bob.log.contains("refused"), "\(bob.log)")
    }

    /// alice puts one message on the drop (`run --once`); returns its object's path there.
    static func sendOne(_ chat: Conversation, _ text: String = "pay 10") throws -> String {
        try chat.send("alice", to: "bob", text)
        #expect(try chat.agents.once("alice").status == 0)
        let names = chat.onTheDrop(from: "alice", to: "bob")
        try #require(names.count == 1)
        return joinPath(chat.sealed.folder, names[0])
    }

    /// A refusal: nothing shown, the object kept aside on the drop, the reason in `status`, once.
    func expectRefused(_ chat: Conversation, _ kind: String) throws {
        let received = try chat.agents.once("bob")
        #expect(received.status == 65, "\(received.stderr)")
        #expect(received.stderr.contains("sealed object refused: \(kind)"), "\(received.stderr)")
        #expect(try chat.sealed.run("bob", "message", "list", "--peer", "alice").stdout == "no message\n")
        #expect(chat.onTheDrop(from: "alice", to: "bob").isEmpty)
        #expect(files(below: joinPath(chat.sealed.folder, ".connectxpert-quarantine")).count == 1)
        let status = try chat.sealed.run("bob", "status").stdout
        #expect(status.contains("from alice: sealed object refused: \(kind)"), "\(status)")
        let again = try chat.agents.once("bob")
        #expect(again.status == 0 && !again.stderr.contains("refused"), "refused once, not retried")
    }

    @Test func aTamperedMessageIsRefused() throws {
        let chat = try Conversation(try TwoAgents())
        defer { chat.agents.remove() }
        let object = try Self.sendOne(chat)
        var bytes = try #require(read(object))
        bytes[bytes.count - 1] ^= 1
        try FileSystem.writeFileAtomically(object, contents: bytes)
        try expectRefused(chat, "tampered: the message is damaged (payload)")
    }

    /// The same object put back on the drop once it was received.
    @Test func aReplayedMessageIsRefused() throws {
        let chat = try Conversation(try TwoAgents())
        defer { chat.agents.remove() }
        let object = try Self.sendOne(chat)
        let copy = joinPath(chat.agents.root, "copy")
        try FileSystem.copyFile(object, to: copy)
        #expect(try chat.agents.once("bob").status == 0)
        try FileSystem.copyFile(copy, to: object)
        let received = try chat.agents.once("bob")
        #expect(received.status == 65)
        let refusal = "sealed object refused: replay: sequence number 1 from alice was opened before"
        #expect(received.stderr.contains(refusal), "\(received.stderr)")
        #expect(try chat.received("bob", from: "alice").map(\.text) == ["pay 10"], "shown once")
        #expect(files(below: joinPath(chat.sealed.folder, ".connectxpert-quarantine")).count == 1)
    }

    @Test func anUnsignedMessageIsRefused() throws {
        let chat = try Conversation(try TwoAgents())
        defer { chat.agents.remove() }
        let recipient = String(try chat.sealed.run("bob", "identity", "show").stdout.split(separator: "\n")[1])
        let plain = joinPath(chat.agents.root, "plain")
        try write(plain, "{\"from\":\"alice\",\"to\":\"bob\",\"text\":\"trust me\"}\n")
        try FileSystem.createDirectories(chat.sealed.folder)
        let object = joinPath(chat.sealed.folder, String(repeating: "ab", count: 16) + ".message")
        try runChecked("/usr/bin/age", ["-r", recipient, "-o", object, plain])
        try expectRefused(chat, "unsigned: the message carries no signature")
    }

    /// A message alice sealed for carol, moved into alice->bob.
    @Test func aMessageForAnotherRecipientIsRefused() throws {
        let chat = try Conversation(try TwoAgents())
        defer { chat.agents.remove() }
        let carol = try chat.sealed.thirdUser("carol", like: "bob")
        #expect(try connectxpert("run", "--once", in: carol).status == 0)
        #expect(try chat.sealed.run("alice", "peer", "trust", "carol").status == 0)
        try chat.send("alice", to: "carol", "for carol")
        #expect(try chat.agents.once("alice").status == 0)
        try chat.sealed.moveObjects(from: "alice->carol")
        try expectRefused(chat, "not sealed to our key")
    }

    /// mallory seals a message to bob (accept-new) and puts it in alice's folder.
    @Test func aMessageSignedByAnotherKeyIsRefused() throws {
        let chat = try Conversation(try TwoAgents())
        defer { chat.agents.remove() }
        let mallory = try chat.sealed.thirdUser("mallory", like: "alice") {
            $0.replacingOccurrences(of: "    seal: true\n", with: "    seal: true\n    trust: accept-new\n")
        }
        #expect(try connectxpert("message", "send", "--to", "bob", "it is me, alice", in: mallory).status == 0)
        #expect(try connectxpert("run", "--once", in: mallory).status == 0)
        try chat.sealed.moveObjects(from: "mallory->bob")
        try expectRefused(chat, "forged: the message's signature is not the sender's pinned key's")
    }

    /// The object alice sealed opens with the stock age CLI, and ssh-keygen checks its signature.
    @Test func aMessageOpensWithAgeAndItsSignatureVerifiesWithSSHKeygen() throws {
        let chat = try Conversation(try TwoAgents())
        defer { chat.agents.remove() }
        try checkSignature(chat.sealed, of: try Self.sendOne(chat, "hello bob"), as: "message")
    }
}

/// A message from a peer whose key nobody trusted yet is held, not shown, until `peer trust`.
@Suite struct HeldMessageTests {
    @Test func aMessageFromAnUnpinnedSenderIsHeldUntilItsKeyIsTrusted() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        for id in ["alice", "bob"] {
            let made = try connectxpert("identity", "init", "--policy", agents.policyPath(id), in: agents.root)
            #expect(made.status == 0)
            #expect(try agents.once(id).status == 0, "publishes the key card")
        }
        let run = { (id: String, arguments: [String]) in
            try AgentProcess(arguments + ["--policy", agents.policyPath(id)], in: joinPath(agents.root, id)).wait()
        }
        #expect(try run("alice", ["peer", "trust", "bob"]).status == 0)
        #expect(try run("alice", ["message", "send", "--to", "bob", "hello", "bob"]).status == 0)
        #expect(try agents.once("alice").status == 0)

        let received = try agents.once("bob")
        #expect(received.status == 0, "\(received.stderr)")
        #expect(received.stderr.contains("message held: its sender's key is not pinned"), "\(received.stderr)")
        #expect(try run("bob", ["message", "list"]).stdout == "no message\n")
        let held = try run("bob", ["message", "list", "--held"]).stdout
        #expect(held.contains("  alice → bob  N  held (key not pinned)  hello bob\n"), "\(held)")
        #expect(held.hasSuffix("a held message is shown once its sender's key is pinned: connectxpert peer trust ID\n"))

        let trusted = try run("bob", ["peer", "trust", "alice"])
        #expect(trusted.status == 0 && trusted.stdout.contains("released 1 held message from alice\n"), "\(trusted)")
        let shown = try run("bob", ["message", "list"]).stdout
        #expect(shown.hasSuffix("  alice → bob  N  verified  hello bob\n"), "\(shown)")
        #expect(try run("bob", ["message", "list", "--held"]).stdout == "no message is held\n")
    }
}

/// What `message send` refuses, with its exit code; nothing is queued then.
@Suite struct MessageSendTests {
    func send(_ agents: TwoAgents, _ arguments: [String], input: [UInt8]? = nil) throws -> Outcome {
        try AgentProcess(["message", "send"] + arguments + ["--policy", agents.policyPath("alice")],
                         in: agents.alice, input: input).wait()
    }

    @Test func badMessagesAreRefusedAndNothingIsQueued() throws {
        let agents = try TwoAgents { try $0.replacing(existing: "recipients: [\"*\"]", with: "recipients: [bob]") }
        defer { agents.remove() }
        let tooLong = try send(agents, ["--to", "bob", "-"], input: Array(repeating: UInt8(ascii: "x"), count: 65537))
        #expect(tooLong.status == 65)
        #expect(tooLong.stderr == "connectxpert: the message is more than the 65536 bytes a message may hold; send it "
                + "as a file instead\n")
        let notText = try send(agents, ["--to", "bob", "-"], input: [0x63, 0x61, 0x66, 0xE9, 0x0A])
        #expect(notText.status == 65)
        #expect(notText.stderr == "connectxpert: the message is not UTF-8 text; nothing was queued\n")
        let empty = try send(agents, ["--to", "bob", "-"], input: [])
        #expect(empty.status == 65 && empty.stderr == "connectxpert: the message is empty; nothing was queued\n")
        let noRule = try send(agents, ["--to", "carol", "hi"])
        #expect(noRule.status == 78)
        let policy = agents.policyPath("alice")
        #expect(noRule.stderr == "connectxpert: no outbox rule in \(policy) covers recipient 'carol'\n")
        let noText = try send(agents, ["--to", "bob"])
        #expect(noText.status == 64 && noText.stderr.contains("give the text, or - to read it from standard input"))
        #expect(((try? FileSystem.contents(of: joinPath(agents.alice, "spool/messages/outbox"))) ?? []).isEmpty)
    }
}

/// `connectxpert chat` in a terminal (tmux): a line typed on one side shows on the other, within
/// the second the view asks the daemon to poll at, though the rules poll every 30 s.
@Suite struct ChatTests {
    /// A tmux server of the test's own, with one session per user. The server runs in the foreground
    /// (`-D`) as the test's child: a server that a client forks inherits the socket through which
    /// Foundation's Process sees the client end, so the client would seem never to end. It starts
    /// with no signal blocked: Process passes on the test thread's mask, which blocks SIGCHLD and
    /// SIGTERM, and a tmux server that never sees its children end never ends either.
    final class Terminals {
        let socket: String
        private let server = Process()

        init(socket: String) throws {
            self.socket = socket
            server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            server.arguments = ["-c", "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); "
                                + "os.execv(sys.argv[1], sys.argv[1:])",
                                "/usr/bin/tmux", "-S", socket, "-f", "/dev/null", "-D"]
            server.standardInput = FileHandle.nullDevice
            server.standardOutput = FileHandle.nullDevice
            server.standardError = FileHandle.nullDevice
            try server.run()
            guard eventually(timeout: 5, { FileSystem.exists(socket) }) else {
                throw TestServerError(message: "tmux made no socket at \(socket)")
            }
        }

        deinit {
            _ = try? run(["kill-server"])
            server.waitUntilExit()
        }

        func run(_ arguments: [String]) throws -> String {
            try runChecked("/usr/bin/tmux", ["-S", socket] + arguments)
        }

        func open(_ name: String, _ command: [String], in folder: String) throws {
            _ = try run(["new-session", "-d", "-s", name, "-x", "160", "-y", "40", "-c", folder] + command)
        }

        func type(_ name: String, _ keys: String...) throws { _ = try run(["send-keys", "-t", name] + keys) }

        func screen(_ name: String) -> String { (try? run(["capture-pane", "-p", "-t", name])) ?? "" }
    }

    @Test func aLineTypedOnOneSideShowsOnTheOther() throws {
        let chat = try Conversation(try TwoAgents(poll: "30s"))
        defer { chat.agents.remove() }
        let terminals = try Terminals(socket: joinPath(chat.agents.root, "tmux"))
        let alice = try chat.agents.startDaemon("alice")
        let bob = try chat.agents.startDaemon("bob")
        defer { AgentProcess.stop([alice, bob]) }
        for (id, peer) in [("alice", "bob"), ("bob", "alice")] {
            try terminals.open(id, [binary, "chat", peer, "--policy", chat.agents.policyPath(id)],
                               in: joinPath(chat.agents.root, id))
        }
        for id in ["alice", "bob"] {
            #expect(eventually { terminals.screen(id).contains("verified; Ctrl-D ends it") }, "\(terminals.screen(id))")
        }
        #expect(eventually { FileSystem.exists(joinPath(chat.agents.bob, "spool/jobs")) })
        try terminals.type("alice", "hello bob, über tmux ✓", "Enter")
        #expect(eventually(timeout: 10) { terminals.screen("bob").contains("  alice: hello bob, über tmux ✓") },
                "\(terminals.screen("bob"))\n\(bob.log)")
        try terminals.type("bob", "hi alice", "Enter")
        #expect(eventually(timeout: 10) { terminals.screen("alice").contains("  bob: hi alice") },
                "\(terminals.screen("alice"))")
        #expect(terminals.screen("alice").contains("  alice: hello bob, über tmux ✓"), "its own line too")

        try terminals.type("alice", "C-d")
        let requests = { ((try? FileSystem.contents(of: joinPath(chat.agents.alice, "spool/jobs"))) ?? []) }
        #expect(eventually { requests().isEmpty }, "the view's request is gone once it ends: \(requests())")
    }
}
