import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// The daemon's life: policy reloads, SIGTERM, and `kill -9` at any moment.
@Suite struct DaemonTests {
    @Test func policyEditsAreReloadedAndInvalidEditsRejected() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let alice = try agents.startDaemon("alice")
        defer { alice.signal(SIGTERM); alice.wait() }
        let outbox = agents.outbox("alice", to: "bob")

        let original = TwoAgents.policy(id: "alice", poll: "200ms")
        try agents.writePolicy("alice", try original.replacing(
            existing: "    remote: drop\n    retry",
            with: "    remote: drop\n    remote_path: \"to-{recipient}/{path}\"\n    retry"))
        #expect(eventually { alice.log.contains("policy reloaded") })
        try write(joinPath(outbox, "new-layout.txt"), "n")
        #expect(eventually { FileSystem.exists(joinPath(agents.drop, "to-bob/new-layout.txt")) })

        try agents.writePolicy("alice", original + "bogus: true\n")
        #expect(eventually { alice.log.contains("policy edit rejected; the previous policy stays in force") })
        #expect(alice.log.contains("unknown key 'bogus'"))
        let tooLarge = try original.replacing(existing: "    remote: drop\n    retry",
                                               with: "    remote: drop\n    max_size: 9000000000GiB\n    retry")
        try agents.writePolicy("alice", tooLarge)
        #expect(eventually { alice.log.contains("policies.yaml:9:15: error: outbox[0].max_size: '9000000000GiB' is too large") },
                "\(alice.log)")
        try write(joinPath(outbox, "still-working.txt"), "s")
        #expect(eventually { FileSystem.exists(joinPath(agents.drop, "to-bob/still-working.txt")) },
                "the policy in force before the bad edit keeps working")

        let rejections = alice.log.components(separatedBy: "policy edit rejected").count
        alice.signal(SIGHUP)
        #expect(eventually { alice.log.components(separatedBy: "policy edit rejected").count > rejections }, "SIGHUP reloads too")
    }

    /// The poll schedule follows a reload: a rule that changed is listed at once, not when the
    /// interval of the rule it replaces runs out.
    @Test func aChangedInboxRuleIsPolledAtOnce() throws {
        let agents = try TwoAgents(poll: "1h") {
            try $0.replacing(existing: "    every: 1h\n", with: "    senders: [carol]\n    every: 1h\n")
        }
        defer { agents.remove() }
        try write(joinPath(agents.drop, "alice->bob/waiting.txt"), "w")
        let bob = try agents.startDaemon("bob")
        defer { bob.signal(SIGTERM); bob.wait() }
        try agents.editPolicy("bob", replacing: "    senders: [carol]\n", with: "    senders: [alice]\n")
        #expect(eventually { FileSystem.exists(joinPath(agents.inbox("bob", from: "alice"), "waiting.txt")) },
                "\(bob.log)")
    }

    @Test func anOutboxRemovedAndMadeAgainIsWatchedAgain() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let alice = try agents.startDaemon("alice")
        defer { alice.signal(SIGTERM); alice.wait() }
        let outbox = joinPath(agents.alice, "spool/outbox")
        try FileManager.default.removeItem(atPath: outbox)
        try FileSystem.createDirectories(joinPath(outbox, "bob"))
        for index in 0..<4 { try write(joinPath(outbox, "bob/back-\(index).txt"), "\(index)") }
        #expect(eventually { files(below: joinPath(agents.drop, "alice->bob")).count == 4 }, "\(alice.log)")
        #expect(alice.log.contains("the outbox folder was made again; watching it"))
    }

    @Test func aRecipientFolderThatIsALinkIsSaidOnce() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let elsewhere = joinPath(agents.root, "elsewhere")
        try write(joinPath(elsewhere, "secret.txt"), "s")
        let alice = try agents.startDaemon("alice")
        defer { alice.signal(SIGTERM); alice.wait() }
        try FileManager.default.createSymbolicLink(atPath: joinPath(agents.alice, "spool/outbox/carol"),
                                                   withDestinationPath: elsewhere)
        #expect(eventually { alice.log.contains("a recipient folder is a symbolic link, which is not followed") }, "\(alice.log)")
        #expect(files(below: agents.drop).isEmpty)
    }

    /// The watcher sees a name that is not UTF-8 as it is written, and the warning comes once.
    @Test func aNameThatIsNotUTF8IsSaidOnceAsItArrives() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let outbox = agents.outbox("alice", to: "bob")
        try FileSystem.createDirectories(outbox)
        let alice = try agents.startDaemon("alice")
        defer { alice.signal(SIGTERM); alice.wait() }
        #expect(eventually { alice.log.contains("watching the outbox") })
        try createFile(namedBytes: Array("r".utf8) + [0xE9, 0x73] + Array("um\u{E9}.txt".utf8), in: outbox)
        let said = "spool.path=\(outbox)/r\\xE9sum\\xC3\\xA9.txt"
        #expect(eventually(timeout: 3) { alice.log.contains(said) }, "\(alice.log)")
        try agents.moveIntoOutbox(Array("after".utf8), named: "after.txt")
        #expect(eventually { files(below: agents.drop) == ["alice->bob/after.txt"] })
        #expect(alice.log.components(separatedBy: "name is not UTF-8").count == 2, "\(alice.log)")
    }

    @Test func sigtermStopsCleanlyWithoutPartialFiles() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let alice = try agents.startDaemon("alice")
        let big = randomBytes(64 << 20)
        try agents.moveIntoOutbox(big, named: "big.bin")
        _ = eventually(timeout: 5) { !((try? FileSystem.contents(of: agents.temporaryFolder)) ?? []).isEmpty }
        alice.signal(SIGTERM)
        let outcome = alice.wait(timeout: 30)
        #expect(outcome.status == 0)
        #expect(outcome.stderr.contains("stopped"))
        let left = files(below: agents.drop)
        #expect(left.allSatisfy { !$0.contains(".part") }, "\(left)")
        // Whatever the moment of the signal, the next pass delivers the file exactly once.
        #expect(try agents.once("alice").status == 0)
        #expect(files(below: agents.drop) == ["alice->bob/big.bin"])
        #expect(read(joinPath(agents.drop, "alice->bob/big.bin")) == big)
    }

    @Test func killDashNineDuringFiveHundredFilesDeliversEachExactlyOnce() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let outbox = agents.outbox("alice", to: "bob")
        let staging = joinPath(agents.root, "staging")
        try FileSystem.createDirectories(outbox)
        try FileSystem.createDirectories(staging)
        let count = 500
        var expected: [String: [UInt8]] = [:]
        for index in 0..<count {
            let name = "file-\(index).txt"
            expected["alice->bob/" + name] = Array("content of file \(index)\n".utf8)
            try write(joinPath(staging, name), expected["alice->bob/" + name]!)
        }

        // Kill the daemon twice while it works through the batch, then let a batch pass finish.
        var alice = try agents.startDaemon("alice")
        for name in try FileSystem.contents(of: staging) {
            try FileSystem.rename(joinPath(staging, name), to: joinPath(outbox, name))
        }
        for threshold in [60, 250] {
            #expect(eventually(timeout: 60) { files(below: agents.drop).count >= threshold })
            alice.signal(SIGKILL)
            alice.wait()
            if threshold == 60 {
                alice = try agents.daemon("alice")
            }
        }
        let finish = try agents.once("alice")
        #expect(finish.status == 0, "\(finish.stderr.suffix(2000))")

        let delivered = files(below: agents.drop)
        #expect(delivered.count == count, "no file lost, none twice, no temporary left")
        #expect(delivered.filter { $0.contains(" (") || $0.contains(".part") }.isEmpty, "\(delivered.filter { $0.contains(" (") || $0.contains(".part") })")
        for path in delivered { #expect(read(joinPath(agents.drop, path)) == expected[path], "\(path)") }
        #expect(files(below: outbox).isEmpty)
    }

    @Test func secondAgentOnTheSameSpoolIsRefused() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let alice = try agents.startDaemon("alice")
        defer { alice.signal(SIGTERM); alice.wait() }
        let second = try agents.once("alice")
        #expect(second.status == 75)
        #expect(second.stderr.contains("connectxpert: another connectxpert agent (pid \(alice.process.processIdentifier)) is using this spool"))
    }
}
