import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// alice and bob, each with an identity, each having pinned the other's key (`peer trust`),
/// alice's outbox rule sealing (`seal: true`).
struct SealedAgents {
    let agents: TwoAgents

    init(_ agents: TwoAgents) throws {
        self.agents = agents
        for id in ["alice", "bob"] {
            try agents.editPolicy(id, replacing: "  - recipients: [\"*\"]\n    remote: drop\n",
                                  with: "  - recipients: [\"*\"]\n    remote: drop\n    seal: true\n")
            try #require(try run(id, "identity", "init").status == 0)
            try #require(try agents.once(id).status == 0, "publishes the key card")
        }
        try #require(try run("alice", "peer", "trust", "bob").status == 0)
        try #require(try run("bob", "peer", "trust", "alice").status == 0)
    }

    func run(_ id: String, _ arguments: String...) throws -> Outcome {
        try AgentProcess(arguments + ["--policy", agents.policyPath(id)], in: joinPath(agents.root, id)).wait()
    }

    /// Where the drop's files are, as the server keeps them.
    var drop: String { agents.remoteFolder ?? agents.drop }
    var folder: String { joinPath(drop, "alice->bob") }
    func key(_ id: String, _ name: String) -> String { joinPath(agents.root, id, "spool/.identity", name) }

    /// A third user on the same drop, with `other`'s policy under its own ID (and `edit`), and an
    /// identity; returns its folder.
    func thirdUser(_ id: String, like other: String, edit: (String) -> String = { $0 }) throws -> String {
        let folder = joinPath(agents.root, id)
        try FileSystem.createDirectories(folder)
        let policy = try String(contentsOfFile: agents.policyPath(other), encoding: .utf8)
        let edited = edit(policy.replacingOccurrences(of: "id: \(other)", with: "id: \(id)"))
        try FileSystem.writeFileAtomically(joinPath(folder, "policies.yaml"), contents: Array(edited.utf8))
        #expect(try connectxpert("identity", "init", in: folder).status == 0)
        return folder
    }

    /// Moves what waits in another drop folder into alice->bob/, as someone who can write there would.
    func moveObjects(from other: String) throws {
        let source = joinPath(drop, other)
        try FileSystem.createDirectories(folder)
        for name in files(below: source) { try FileSystem.rename(joinPath(source, name), to: joinPath(folder, name)) }
    }

    /// The objects waiting in alice->bob/, by object name.
    func objects() -> [String] {
        Set(files(below: folder).filter { !$0.hasPrefix(".") }.map { String($0.prefix(32)) }).sorted()
    }
}

/// Files sealed end to end: what the drop holds says nothing but sizes, the stock age CLI and
/// ssh-keygen check what was made, and every object that was changed, forged or replayed is
/// refused, kept aside and shown.
@Suite struct SealedExchangeTests {
    static let marker = "PLUGH-marker"

    static func send(_ sealed: SealedAgents, _ contents: [String: [UInt8]]) throws {
        for (path, bytes) in contents { try write(joinPath(sealed.agents.outbox("alice", to: "bob"), path), bytes) }
        let sent = try sealed.agents.once("alice")
        #expect(sent.status == 0, "\(sent.stderr)")
    }

    /// A small file, one over 1 MiB (its hashes are made on a thread of their own), an empty one.
    static let contents: [String: [UInt8]] = [
        "\(marker)-report.txt": Array("the \(marker) is inside\n".utf8),
        "sub/deep \(marker).bin": (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) },
        "empty.txt": [],
    ]

    @Test func sealedFilesArriveWholeAndTheDropLearnsNothingOfThem() throws {
        let sealed = try SealedAgents(try TwoAgents())
        defer { sealed.agents.remove() }
        try checkSealedExchange(sealed, send: Self.send)
    }

    /// A refusal: nothing delivered, no temporary file, both objects kept aside on the drop,
    /// the reason in `status`, and no retry loop.
    func expectRefused(_ sealed: SealedAgents, _ kind: String, objects: Int = 1) throws {
        let received = try sealed.agents.once("bob")
        #expect(received.status == 65, "\(received.stderr)")
        #expect(received.stderr.contains("sealed object refused: \(kind)"), "\(received.stderr)")
        #expect(files(below: sealed.agents.inbox("bob", from: "alice")).isEmpty, "nothing delivered, no temporary file")
        #expect(sealed.objects().isEmpty)
        #expect(files(below: joinPath(sealed.folder, ".connectxpert-quarantine")).count == 2 * objects)
        let status = try sealed.run("bob", "status").stdout
        #expect(status.contains("Refused sealed objects (kept aside on the drop):"))
        #expect(status.contains("from alice: sealed object refused: \(kind)"), "\(status)")
        let again = try sealed.agents.once("bob")
        #expect(again.status == 0 && !again.stderr.contains("refused"), "refused once, not retried")
    }

    @Test func aTamperedDataObjectIsRefused() throws {
        let sealed = try SealedAgents(try TwoAgents())
        defer { sealed.agents.remove() }
        try Self.send(sealed, ["letter.txt": Array("dear bob".utf8)])
        let data = joinPath(sealed.folder, sealed.objects()[0] + ".data")
        var bytes = try #require(read(data))
        bytes[bytes.count - 1] ^= 1
        try FileSystem.writeFileAtomically(data, contents: bytes)
        try expectRefused(sealed, "tampered: the data object is not the one the manifest names")
    }

    @Test func dataObjectsSwappedBetweenTwoTransfersAreRefused() throws {
        let sealed = try SealedAgents(try TwoAgents())
        defer { sealed.agents.remove() }
        try Self.send(sealed, ["one.txt": Array("one".utf8), "two.txt": Array("two".utf8)])
        let (first, second) = (sealed.objects()[0], sealed.objects()[1])
        let swap = joinPath(sealed.agents.root, "swap")
        try FileSystem.rename(joinPath(sealed.folder, first + ".data"), to: swap)
        try FileSystem.rename(joinPath(sealed.folder, second + ".data"), to: joinPath(sealed.folder, first + ".data"))
        try FileSystem.rename(swap, to: joinPath(sealed.folder, second + ".data"))
        try expectRefused(sealed, "tampered: the data object is not the one the manifest names", objects: 2)
    }

    @Test func aReplayedObjectIsRefused() throws {
        let sealed = try SealedAgents(try TwoAgents())
        defer { sealed.agents.remove() }
        try Self.send(sealed, ["pay.txt": Array("pay 10".utf8)])
        let object = sealed.objects()[0]
        let copies = joinPath(sealed.agents.root, "copies")
        try FileSystem.createDirectories(copies)
        for name in [object + ".data", object + ".manifest"] {
            try FileSystem.copyFile(joinPath(sealed.folder, name), to: joinPath(copies, name))
        }
        #expect(try sealed.agents.once("bob").status == 0)
        for name in [object + ".data", object + ".manifest"] {
            try FileSystem.copyFile(joinPath(copies, name), to: joinPath(sealed.folder, name))
        }
        try FileManager.default.removeItem(atPath: joinPath(sealed.agents.inbox("bob", from: "alice"), "pay.txt"))
        try expectRefused(sealed, "replay: sequence number 1 from alice was opened before")
    }

    /// An object alice sealed for carol, moved into alice->bob.
    @Test func anObjectForAnotherRecipientIsRefused() throws {
        let sealed = try SealedAgents(try TwoAgents())
        defer { sealed.agents.remove() }
        let carol = try sealed.thirdUser("carol", like: "bob")
        #expect(try connectxpert("run", "--once", in: carol).status == 0)
        #expect(try sealed.run("alice", "peer", "trust", "carol").status == 0)
        try write(joinPath(sealed.agents.outbox("alice", to: "carol"), "for-carol.txt"), "c")
        #expect(try sealed.agents.once("alice").status == 0)
        try sealed.moveObjects(from: "alice->carol")
        try expectRefused(sealed, "not sealed to our key")
    }

    @Test func aManifestSignedByAnotherKeyIsRefused() throws {
        let sealed = try SealedAgents(try TwoAgents())
        defer { sealed.agents.remove() }
        // mallory seals to bob (accept-new) and puts it in alice's folder.
        let mallory = try sealed.thirdUser("mallory", like: "alice") {
            $0.replacingOccurrences(of: "    seal: true\n", with: "    seal: true\n    trust: accept-new\n")
        }
        try write(joinPath(mallory, "spool/outbox/bob/forged.txt"), "trust me")
        #expect(try connectxpert("run", "--once", in: mallory).status == 0)
        try sealed.moveObjects(from: "mallory->bob")
        try expectRefused(sealed, "forged: the manifest's signature is not the sender's pinned key's")
    }

    /// zed seals to bob and then takes its key card off the drop: nobody vouches for zed's key.
    @Test func anUnknownSenderIsRefused() throws {
        let sealed = try SealedAgents(try TwoAgents())
        defer { sealed.agents.remove() }
        let zed = try sealed.thirdUser("zed", like: "alice") {
            $0.replacingOccurrences(of: "    seal: true\n", with: "    seal: true\n    trust: accept-new\n")
        }
        try write(joinPath(zed, "spool/outbox/bob/hello.txt"), "hello")
        #expect(try connectxpert("run", "--once", in: zed).status == 0)
        try FileManager.default.removeItem(atPath: joinPath(sealed.drop, "keys/zed.pub"))
        let received = try sealed.agents.once("bob")
        #expect(received.status == 65)
        #expect(received.stderr.contains(
            "sealed object refused: forged: zed has no key card on the drop (keys/zed.pub)"), "\(received.stderr)")
        #expect(files(below: sealed.agents.inbox("bob", from: "zed")).isEmpty)
        #expect(files(below: joinPath(sealed.drop, "zed->bob/.connectxpert-quarantine")).count == 2)
    }

    @Test func anUnsignedManifestIsRefused() throws {
        let sealed = try SealedAgents(try TwoAgents())
        defer { sealed.agents.remove() }
        let recipient = String(try sealed.run("bob", "identity", "show").stdout.split(separator: "\n")[1])
        let object = String(repeating: "ab", count: 16)
        let plain = joinPath(sealed.agents.root, "plain")
        try write(plain, "{\"from\":\"alice\",\"to\":\"bob\"}\n")
        try FileSystem.createDirectories(sealed.folder)
        try runChecked("/usr/bin/age", ["-r", recipient, "-o", joinPath(sealed.folder, object + ".manifest"), plain])
        try runChecked("/usr/bin/age", ["-r", recipient, "-o", joinPath(sealed.folder, object + ".data"), plain])
        try expectRefused(sealed, "unsigned: the manifest carries no signature")
    }

    /// A sender whose key is pinned sends sealed: a plain file in its folder is left on the drop, said
    /// once, unless the rule says `require_seal: false`.
    @Test func aPlainFileFromAPinnedSenderIsLeftOnTheDrop() throws {
        let sealed = try SealedAgents(try TwoAgents())
        defer { sealed.agents.remove() }
        try write(joinPath(sealed.folder, "plain.txt"), "not sealed")
        let first = try sealed.agents.once("bob")
        #expect(first.status == 0)
        #expect(first.stderr.components(separatedBy: "a file that is not sealed is left on the drop").count == 2)
        #expect(FileSystem.exists(joinPath(sealed.folder, "plain.txt")))
        #expect(files(below: sealed.agents.inbox("bob", from: "alice")).isEmpty)
        try sealed.agents.editPolicy("bob", replacing: "    every: 200ms\n",
                                     with: "    every: 200ms\n    require_seal: false\n")
        #expect(try sealed.agents.once("bob").status == 0)
        #expect(read(joinPath(sealed.agents.inbox("bob", from: "alice"), "plain.txt")) == Array("not sealed".utf8))
    }

    /// With `trust: accept-new` on both sides, nobody runs `peer trust`: each key is pinned on first
    /// sight, and said so.
    @Test func acceptNewPinsOnFirstSight() throws {
        let agents = try TwoAgents {
            try $0.replacing(existing: "  - recipients: [\"*\"]\n    remote: drop\n",
                             with: "  - recipients: [\"*\"]\n    remote: drop\n    seal: true\n    trust: accept-new\n")
                .replacing(existing: "    every: 200ms\n", with: "    every: 200ms\n    trust: accept-new\n")
        }
        defer { agents.remove() }
        let run = { (id: String, arguments: [String]) throws -> Outcome in
            try AgentProcess(arguments + ["--policy", agents.policyPath(id)], in: joinPath(agents.root, id)).wait()
        }
        for id in ["bob", "alice"] {
            #expect(try run(id, ["identity", "init"]).status == 0)
            #expect(try agents.once(id).status == 0)
        }
        try write(joinPath(agents.outbox("alice", to: "bob"), "first.txt"), "first contact")
        let sent = try agents.once("alice")
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stderr.contains("peer.id=bob [ConnectXpertTransfer] pinned a peer's key on first sight"))
        let received = try agents.once("bob")
        #expect(received.stderr.contains("peer.id=alice [ConnectXpertTransfer] pinned a peer's key on first sight"))
        #expect(read(joinPath(agents.inbox("bob", from: "alice"), "first.txt")) == Array("first contact".utf8))
        #expect(try run("bob", ["peer", "list"]).stdout.hasSuffix("  accepted\n"))
    }

    /// alice's run stops after the manifest went up, before the transfer is marked done; bob takes
    /// the file meanwhile. When alice resumes, the manifest is not put up again (bob would find a
    /// manifest without its data, and refuse it). Found by the `kill -9` test, once in a few runs.
    @Test func aResumedSendDoesNotPutUpAManifestTheRecipientTookAlready() throws {
        let sealed = try SealedAgents(try TwoAgents())
        defer { sealed.agents.remove() }
        try Self.send(sealed, ["once.txt": Array("taken once".utf8)])
        let object = sealed.objects()[0]
        let manifest = joinPath(sealed.agents.root, "manifest")
        try FileSystem.copyFile(joinPath(sealed.folder, object + ".manifest"), to: manifest)
        #expect(try sealed.agents.once("bob").status == 0)
        #expect(sealed.objects().isEmpty)
        // As if alice had stopped after the manifest's upload: the record is staged again, with its manifest.
        try runChecked("/usr/bin/python3", ["-c", """
            import base64, sqlite3; db = sqlite3.connect('\(sealed.agents.alice)/spool/.state/journal.sqlite')
            manifest = base64.b64encode(open('\(manifest)', 'rb').read()).decode()
            db.execute("UPDATE transfers SET state = 'staged', manifest = ? WHERE sealed = '\(object)'", (manifest,))
            db.commit()
            """])
        #expect(try sealed.agents.once("alice").status == 0)
        #expect(files(below: sealed.folder).isEmpty, "no manifest put up again")
    }

    /// `open` on a data object with its manifest beside it, as on the drop, says who signed it,
    /// and refuses a data object that is not the one its manifest names.
    @Test func openSaysWhoSignedADataObjectWithItsManifest() throws {
        let sealed = try SealedAgents(try TwoAgents())
        defer { sealed.agents.remove() }
        try Self.send(sealed, ["letter.txt": Array("signed words".utf8)])
        let data = joinPath(sealed.folder, sealed.objects()[0] + ".data")
        let out = joinPath(sealed.agents.root, "letter.out")
        let alice = String(try sealed.run("alice", "identity", "show").stdout.split(separator: " ")[1])
        let opened = try sealed.run("bob", "open", data, "-o", out)
        #expect(opened.status == 0, "\(opened.stderr)")
        #expect(opened.stderr == "connectxpert: opened \(data) into \(out); signed by alice (\(alice)), "
            + "whose key is pinned\n")
        #expect(read(out) == Array("signed words".utf8))

        var bytes = try #require(read(data))
        bytes[bytes.count - 1] ^= 1
        try FileSystem.writeFileAtomically(data, contents: bytes)
        try FileManager.default.removeItem(atPath: out)
        let refused = try sealed.run("bob", "open", data, "-o", out)
        #expect(refused.status == 65)
        #expect(refused.stderr == "connectxpert: cannot open \(data): tampered: the data object is not the one its "
            + "manifest names (its hash differs)\n")
        #expect(!FileSystem.exists(out))
    }

    /// alice makes new keys: bob's agent refuses her files, keeps them on the drop, and says so,
    /// until bob replaces the pin.
    @Test func aChangedKeyStopsTheSenderUntilAPersonReplacesIt() throws {
        let sealed = try SealedAgents(try TwoAgents())
        defer { sealed.agents.remove() }
        try FileManager.default.removeItem(atPath: joinPath(sealed.agents.alice, "spool/.identity"))
        try FileManager.default.removeItem(atPath: joinPath(sealed.drop, "keys/alice.pub"))
        #expect(try sealed.run("alice", "identity", "init").status == 0)
        try Self.send(sealed, ["after.txt": Array("new keys".utf8)])
        let waiting = try sealed.agents.once("bob")
        #expect(waiting.status == 75, "\(waiting.stderr)")
        #expect(waiting.stderr.contains("a peer's key changed"))
        #expect(sealed.objects().count == 1, "the objects stay on the drop")
        #expect(files(below: sealed.agents.inbox("bob", from: "alice")).filter { !$0.hasPrefix(".") }.isEmpty)
        #expect(try sealed.run("bob", "peer", "list").stdout.contains("KEY CHANGED to "))
        #expect(try sealed.run("bob", "peer", "trust", "alice", "--replace").status == 0)
        #expect(try sealed.agents.once("bob").status == 0)
        #expect(read(joinPath(sealed.agents.inbox("bob", from: "alice"), "after.txt")) == Array("new keys".utf8))
    }
}

/// alice sends three sealed files (one in a subfolder, one empty, names and contents with a
/// marker); the drop holds nothing but pairs of random names without the marker; the data objects
/// open with `age -d` and the manifests' signatures verify with `ssh-keygen -Y verify`; bob receives
/// them whole, and both objects of each are deleted.
func checkSealedExchange(_ sealed: SealedAgents, send: (SealedAgents, [String: [UInt8]]) throws -> Void) throws {
    let contents = SealedExchangeTests.contents
    try send(sealed, contents)
    #expect(sealed.objects().count == 3)
    #expect(files(below: sealed.folder).filter { !$0.hasPrefix(".") }.allSatisfy {
        $0.range(of: #"^[0-9a-f]{32}\.(data|manifest)$"#, options: .regularExpression) != nil
    })
    try expectNoTrace(of: SealedExchangeTests.marker, in: sealed.drop)
    var opened: Set<[UInt8]> = []
    for object in sealed.objects() {
        let data = try runProgram("/usr/bin/age", ["-d", "-i", sealed.key("bob", "age.key"),
                                                   joinPath(sealed.folder, object + ".data")])
        #expect(data.status == 0)
        opened.insert(Array(data.output.utf8))
        try checkSignature(sealed, of: joinPath(sealed.folder, object + ".manifest"), as: "manifest")
    }
    #expect(opened.contains(contents["\(SealedExchangeTests.marker)-report.txt"]!) && opened.contains([]))

    let received = try sealed.agents.once("bob")
    #expect(received.status == 0, "\(received.stderr)")
    for (path, bytes) in contents {
        let arrived = read(joinPath(sealed.agents.inbox("bob", from: "alice"), path))
        #expect(arrived == bytes ? true : false, "\(path) arrived whole: \(arrived?.count ?? -1) bytes")
    }
    #expect(files(below: sealed.folder).filter { !$0.hasPrefix(".") }.isEmpty, "both objects deleted")
    #expect(files(below: sealed.agents.inbox("bob", from: "alice")).count == 3, "no temporary file left")
}

/// A signed object alice sealed to bob (a manifest, a message) opens with `age -d`, and its
/// signature verifies with `ssh-keygen -Y verify` in the namespace of its `kind`.
func checkSignature(_ sealed: SealedAgents, of path: String, as kind: String) throws {
    let manifest = try runProgram("/usr/bin/age", ["-d", "-i", sealed.key("bob", "age.key"), path])
    #expect(manifest.status == 0 && manifest.output.utf8.count % 1024 == 0, "padded to 1 KiB")
    let body = String(manifest.output.prefix { $0 != "\n" }) + "\n"
    let signature = String(manifest.output.dropFirst(body.count)).trimmingCharacters(in: .newlines) + "\n"
    let signatureFile = joinPath(sealed.agents.root, "manifest.sig")
    try FileSystem.writeFileAtomically(signatureFile, contents: Array(signature.utf8))
    let publicKey = try String(contentsOfFile: sealed.key("alice", "signing.key.pub"), encoding: .utf8)
    let signers = joinPath(sealed.agents.root, "allowed_signers")
    try FileSystem.writeFileAtomically(signers, contents: Array("alice \(publicKey)".utf8))
    let verified = try runProgram("/usr/bin/ssh-keygen", [
        "-Y", "verify", "-f", signers, "-I", "alice", "-n", "connectxpert-\(kind)@v1", "-s", signatureFile,
    ], input: Array(body.utf8))
    #expect(verified.status == 0, "\(verified.errors)")
    #expect(body.contains("\"from\":\"alice\"") && body.contains("\"to\":\"bob\""))
}

/// Fails when `marker` is in any file's name or content below `folder`.
func expectNoTrace(of marker: String, in folder: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    for path in files(below: folder) {
        #expect(!path.contains(marker), "a name on the drop holds the marker: \(path)", sourceLocation: sourceLocation)
        let bytes = try FileSystem.readFile(joinPath(folder, path))
        #expect(bytes.firstRange(of: Array(marker.utf8)) == nil, "\(path) holds the marker",
                sourceLocation: sourceLocation)
    }
}

/// The same over the servers: sshd, and plain FTP (`tls: off`), where sealing matters most.
@Suite(.enabled(if: canRunServerTests, "needs root to run sshd and vsftpd"))
struct SealedServerExchangeTests {
    @Test func overSFTP() throws {
        let folder = "sealed-" + UUID().uuidString.prefix(8)
        let sealed = try SealedAgents(try TwoAgents(sftp: SSHTestServer.shared, folder: folder))
        defer { sealed.agents.remove() }
        try checkSealedExchange(sealed, send: SealedExchangeTests.send)
    }

    @Test func overPlainFTP() throws {
        let server = try FTPTestServer(tls: false)
        let folder = "sealed-" + UUID().uuidString.prefix(8)
        let sealed = try SealedAgents(try TwoAgents(server: server, folder: folder, lines: [
            "url: \(server.url(folder))", "password_file: \(server.passwordFile)", "tls: off",
        ]))
        defer { sealed.agents.remove() }
        try withExtendedLifetime(server) { try checkSealedExchange(sealed, send: SealedExchangeTests.send) }
    }
}

/// An identity made while the daemon runs is taken at once: `identity init` asks the agent to
/// read it (SIGHUP, as a policy reload), and the agent publishes its key card.
@Suite struct IdentityReloadTests {
    @Test func anIdentityMadeWhileTheDaemonRunsIsTakenAndPublished() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let bob = try agents.startDaemon("bob")
        let card = joinPath(agents.drop, "keys/bob.pub")
        let made = try AgentProcess(["identity", "init", "--policy", agents.policyPath("bob")],
                                    in: joinPath(agents.root, "bob")).wait()
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.stdout.hasSuffix(
            "asked the agent (pid \(bob.process.processIdentifier)) to take it and publish its key card\n"))
        #expect(eventually(timeout: 20) { FileSystem.exists(card) }, "\(bob.log)")
        bob.signal(SIGTERM)
        #expect(bob.wait().status == 0)
    }
}

/// `kill -9` of both daemons at any moment during 200 sealed transfers, then a restart: each file
/// is delivered once and whole, and nothing is left on the drop or in the spools.
@Suite struct SealedCrashTests {
    @Test func killDashNineDuringTwoHundredSealedFilesDeliversEachExactlyOnce() throws {
        let sealed = try SealedAgents(try TwoAgents())
        let agents = sealed.agents
        defer { agents.remove() }
        let outbox = agents.outbox("alice", to: "bob"), inbox = agents.inbox("bob", from: "alice")
        let staging = joinPath(agents.root, "staging")
        try FileSystem.createDirectories(outbox)
        let count = 200
        var expected: [String: [UInt8]] = [:]
        for index in 0..<count {
            expected["file-\(index).txt"] = Array("sealed content of file \(index)\n".utf8)
            try write(joinPath(staging, "file-\(index).txt"), expected["file-\(index).txt"]!)
        }
        var alice = try agents.startDaemon("alice"), bob = try agents.startDaemon("bob")
        for name in try FileSystem.contents(of: staging) {
            try FileSystem.rename(joinPath(staging, name), to: joinPath(outbox, name))
        }
        for threshold in [30, 110] {
            #expect(eventually(timeout: 60) { files(below: inbox).count >= threshold })
            for agent in [alice, bob] {
                agent.signal(SIGKILL)
                agent.wait()
            }
            if threshold == 30 {
                alice = try agents.daemon("alice")
                bob = try agents.daemon("bob")
            }
        }
        #expect(try agents.once("alice").status == 0)
        let finish = try agents.once("bob")
        let status = try sealed.run("bob", "status").stdout
        #expect(finish.status == 0, "\(status)")
        let delivered = files(below: inbox)
        #expect(delivered.count == count, "no file lost, none twice, no temporary left: \(delivered.count)")
        #expect(delivered.filter { $0.contains(" (") || $0.hasPrefix(".") }.isEmpty)
        let wrong = delivered.filter { read(joinPath(inbox, $0)) != expected[$0] }
        #expect(wrong.isEmpty, "each file whole, under its own name: \(wrong)")
        let left = files(below: sealed.folder)
        #expect(left.isEmpty, "both objects of every file deleted from the drop: \(left)")
        #expect(files(below: outbox).isEmpty)
    }
}
