import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// Two agents exchanging files through one local drop, as separate processes.
@Suite struct ExchangeTests {
    @Test func aFileStillBeingWrittenIsTakenWhole() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        try checkAFileStillBeingWrittenIsTakenWhole(agents)
    }

    @Test func namesThatAreNotUTF8AreSaidAndLeft() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        try checkNamesThatAreNotUTF8AreSaidAndLeft(agents)
    }

    @Test func aSentFileMovedOrLinkedBackIntoTheOutboxIsSentAgain() throws {
        let agents = try TwoAgents {
            try $0.replacing(existing: "    remote: drop\n    retry",
                             with: "    remote: drop\n    after: archive\n    retry")
        }
        defer { agents.remove() }
        let outbox = joinPath(agents.outbox("alice", to: "bob"), "again.txt")
        let archived = joinPath(agents.alice, "spool/sent/bob/again.txt")
        try write(outbox, "again")
        #expect(try agents.once("alice").stderr.contains("sent 1,"))
        try FileSystem.rename(archived, to: outbox)  // same inode, same mtime
        let moved = try agents.once("alice")
        #expect(moved.stderr.contains("sent 1,"), "\(moved.stderr)")
        #expect(link(archived, outbox) == 0)
        let linked = try agents.once("alice")
        #expect(linked.stderr.contains("sent 1,"), "\(linked.stderr)")
        #expect(files(below: joinPath(agents.drop, "alice->bob")) == ["again (1).txt", "again (2).txt", "again.txt"])
    }

    @Test func namesOfTheLongestLengthAreSentAndReceived() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let name = String(repeating: "n", count: 251) + ".txt"  // 255 bytes: the temporary names must be shorter
        try write(joinPath(agents.outbox("alice", to: "bob"), name), "long")
        let sent = try agents.once("alice")
        #expect(sent.status == 0, "\(sent.stderr)")
        let received = try agents.once("bob")
        #expect(received.status == 0, "\(received.stderr)")
        #expect(read(joinPath(agents.inbox("bob", from: "alice"), name)) == Array("long".utf8))
    }

    @Test func aRemoteFileChangedWhileItIsReceivedIsLeftThereAndReceivedAgain() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let remote = joinPath(agents.drop, "alice->bob/big.bin")
        try write(remote, [UInt8](repeating: 7, count: 256 << 20))
        let bob = try AgentProcess(["run", "--once", "--policy", agents.policyPath("bob")], in: agents.bob)
        let inbox = agents.inbox("bob", from: "alice")
        try #require(eventually(timeout: 30) { ((try? FileSystem.contents(of: inbox)) ?? []).contains { $0.hasSuffix(".part") } })
        // A writer went on meanwhile, into the file bob claimed.
        let folder = parentDirectory(of: remote)
        let claim = try #require(FileSystem.contents(of: folder).first { $0.hasPrefix(".big.bin.claim-") })
        try FileSystem.setModificationTime(joinPath(folder, claim), nanoseconds: 1_000_000_000)
        let first = bob.wait()
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("the remote file changed after it was received; it is left on the remote"))
        #expect(FileSystem.exists(remote), "not deleted: it is not the version received")
        let second = try agents.once("bob")
        #expect(second.stderr.contains("received 1,"), "\(second.stderr)")
        #expect(files(below: inbox) == ["big (1).bin", "big.bin"], "the new version is kept beside the first")
        #expect(files(below: agents.drop).isEmpty)
    }

    @Test func batchPassesDeliverByteIdenticalFiles() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let outbox = agents.outbox("alice", to: "bob")
        // A list, not a dictionary: Swift strings compare NFC and NFD as equal, the file system does not.
        let contents: [(String, [UInt8])] = [
            ("empty.bin", []),
            ("one.bin", [42]),
            ("big.bin", randomBytes(5 << 20)),
            ("name with spaces.txt", Array("spaces\n".utf8)),
            ("caf\u{E9}.txt", Array("NFC\n".utf8)),
            ("cafe\u{301}.txt", Array("NFD\n".utf8)),
            ("sub/folder/nested.txt", Array("nested\n".utf8)),
        ]
        for (name, bytes) in contents { try write(joinPath(outbox, name), bytes) }

        let sent = try agents.once("alice")
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stderr.contains("connectxpert: sent 7, received 0, failed 0, to retry 0"))
        #expect(files(below: outbox).isEmpty)
        #expect(files(below: joinPath(agents.drop, "alice->bob")).count == 7)

        let received = try agents.once("bob")
        #expect(received.status == 0, "\(received.stderr)")
        #expect(received.stderr.contains("connectxpert: sent 0, received 7, failed 0, to retry 0"))
        let inbox = agents.inbox("bob", from: "alice")
        for (name, bytes) in contents {
            #expect(read(joinPath(inbox, name)) == bytes, "\(name)")
        }
        #expect(files(below: inbox).count == 7)
        #expect(files(below: agents.drop).isEmpty, "remote copies are deleted once received")
    }

    @Test func uploadsGoUnderTheRulesTemporaryName() throws {
        let agents = try TwoAgents {
            try $0.replacing(existing: "    remote: drop\n    retry:",
                             with: "    remote: drop\n    temp_name: \"{name}.uploading\"\n    retry:")
        }
        defer { agents.remove() }
        try write(joinPath(agents.outbox("alice", to: "bob"), "big.bin"), randomBytes(100 << 20))
        let folder = joinPath(agents.drop, "alice->bob")
        let agent = try AgentProcess(["run", "--once"], in: agents.alice)
        var seen = Set<String>()
        while agent.process.isRunning {
            seen.formUnion((try? FileSystem.contents(of: folder)) ?? [])
        }
        #expect(agent.wait().status == 0)
        #expect(seen.contains("big.bin.uploading"), "\(seen)")
        #expect(try FileSystem.contents(of: folder) == ["big.bin"])
    }

    @Test func daemonSendsCopiedMovedAndSlowlyWrittenFiles() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let alice = try agents.startDaemon("alice")
        let bob = try agents.startDaemon("bob")
        defer { alice.signal(SIGTERM); bob.signal(SIGTERM); alice.wait(); bob.wait() }

        let outbox = agents.outbox("alice", to: "bob")
        try FileSystem.createDirectories(outbox)
        try write(joinPath(outbox, "copied.txt"), "copied\n")

        let staging = joinPath(agents.root, "staging.txt")
        try write(staging, "moved\n")
        try FileSystem.rename(staging, to: joinPath(outbox, "moved.txt"))

        // A slow writer: four chunks over about a second, then close. Nothing may leave before the close.
        var written: [UInt8] = []
        do {
            let slow = try FileDescriptor.open(joinPath(outbox, "slow.txt"), flags: O_WRONLY | O_CREAT | O_TRUNC)
            try withExtendedLifetime(slow) {
                for chunk in 0..<4 {
                    let bytes = Array("chunk \(chunk)\n".utf8)
                    try slow.write(bytes)
                    written += bytes
                    usleep(250_000)
                    #expect(!FileSystem.exists(joinPath(agents.drop, "alice->bob/slow.txt")), "a file still being written was sent")
                }
            }
        }  // closed here

        let inbox = agents.inbox("bob", from: "alice")
        #expect(eventually { read(joinPath(inbox, "slow.txt")) == written })
        #expect(eventually { read(joinPath(inbox, "copied.txt")) == Array("copied\n".utf8) })
        #expect(eventually { read(joinPath(inbox, "moved.txt")) == Array("moved\n".utf8) })
        #expect(eventually { files(below: inbox) == ["copied.txt", "moved.txt", "slow.txt"] })
    }

    @Test func recipientFolderCreatedWhileRunningIsWatched() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let alice = try agents.startDaemon("alice")
        defer { alice.signal(SIGTERM); alice.wait() }
        let carol = agents.outbox("alice", to: "carol")
        try FileSystem.createDirectories(carol)
        try write(joinPath(carol, "first.txt"), "1")
        try FileSystem.createDirectories(joinPath(carol, "deeper/still"))
        try write(joinPath(carol, "deeper/still/second.txt"), "2")
        #expect(eventually { read(joinPath(agents.drop, "alice->carol/first.txt")) == Array("1".utf8) })
        #expect(eventually { read(joinPath(agents.drop, "alice->carol/deeper/still/second.txt")) == Array("2".utf8) })
    }

    @Test func filesPresentBeforeStartAreSent() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        try write(joinPath(agents.outbox("alice", to: "bob"), "early.txt"), "early")
        let alice = try agents.daemon("alice")
        defer { alice.signal(SIGTERM); alice.wait() }
        #expect(eventually { read(joinPath(agents.drop, "alice->bob/early.txt")) == Array("early".utf8) })
    }

    @Test func afterKeepSendsEachVersionOnce() throws {
        let agents = try TwoAgents {
            try $0.replacing(existing: "    remote: drop\n    retry",
                             with: "    remote: drop\n    after: keep\n    retry")
        }
        defer { agents.remove() }
        let file = joinPath(agents.outbox("alice", to: "bob"), "kept.txt")
        try write(file, "v1")
        #expect(try agents.once("alice").stderr.contains("sent 1,"))
        #expect(try agents.once("alice").stderr.contains("sent 0,"), "an unchanged kept file is not sent again")
        #expect(read(file) == Array("v1".utf8))
        try write(file, "version 2")
        #expect(try agents.once("alice").stderr.contains("sent 1,"))
        #expect(files(below: joinPath(agents.drop, "alice->bob")) == ["kept (1).txt", "kept.txt"])
        #expect(read(joinPath(agents.drop, "alice->bob/kept (1).txt")) == Array("version 2".utf8))
    }

    @Test func afterArchiveMovesToSent() throws {
        let agents = try TwoAgents {
            try $0.replacing(existing: "    remote: drop\n    retry",
                             with: "    remote: drop\n    after: archive\n    retry")
        }
        defer { agents.remove() }
        try write(joinPath(agents.outbox("alice", to: "bob"), "a/report.txt"), "r")
        #expect(try agents.once("alice").status == 0)
        #expect(read(joinPath(agents.root, "alice/spool/sent/bob/a/report.txt")) == Array("r".utf8))
        #expect(files(below: agents.outbox("alice", to: "bob")).isEmpty)
    }

    @Test func conflictsFollowTheRule() throws {
        let agents = try TwoAgents {
            try $0.replacing(existing: "    remote: drop\n    retry",
                             with: "    remote: drop\n    conflict: fail\n    retry")
        }
        defer { agents.remove() }
        try write(joinPath(agents.drop, "alice->bob/taken.txt"), "theirs")
        try write(joinPath(agents.outbox("alice", to: "bob"), "taken.txt"), "ours")
        let outcome = try agents.once("alice")
        #expect(outcome.status == 65)
        #expect(read(joinPath(agents.drop, "alice->bob/taken.txt")) == Array("theirs".utf8))
        #expect(read(joinPath(agents.failed("alice", to: "bob"), "taken.txt")) == Array("ours".utf8))
        let reason = String(decoding: read(joinPath(agents.failed("alice", to: "bob"), "taken.txt.reason")) ?? [], as: UTF8.self)
        #expect(reason.contains("exists already and the rule says conflict: fail"))
        #expect(files(below: agents.drop) == ["alice->bob/taken.txt"], "no temporary file is left behind")
    }
}
