import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// Transient failures in the daemon: backoff, recovery, giving up.
@Suite struct RetryTests {
    @Test func daemonRetriesUntilTheDropIsBack() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        try FileManager.default.removeItem(atPath: agents.drop)
        let alice = try agents.startDaemon("alice")
        defer { alice.signal(SIGTERM); alice.wait() }
        try write(joinPath(agents.outbox("alice", to: "bob"), "patient.txt"), "p")
        #expect(eventually { agents.attempts("alice") >= 3 }, "retried with a growing pause")
        try FileSystem.createDirectories(agents.drop)
        #expect(eventually { read(joinPath(agents.drop, "alice->bob/patient.txt")) == Array("p".utf8) })
        #expect(files(below: agents.outbox("alice", to: "bob")).isEmpty)
    }

    @Test func givesUpAfterTheRulesLimit() throws {
        let agents = try TwoAgents {
            try $0.replacing(existing: "      max: 1s\n",
                             with: "      max: 1s\n      give_up_after: 1s\n")
        }
        defer { agents.remove() }
        try FileManager.default.removeItem(atPath: agents.drop)
        let alice = try agents.daemon("alice")
        defer { alice.signal(SIGTERM); alice.wait() }
        try write(joinPath(agents.outbox("alice", to: "bob"), "doomed.txt"), "d")
        let reasonFile = joinPath(agents.failed("alice", to: "bob"), "doomed.txt.reason")
        #expect(eventually { FileSystem.exists(reasonFile) })
        let reason = String(decoding: read(reasonFile) ?? [], as: UTF8.self)
        #expect(reason.contains("reason: gave up after 1s of failed attempts; the last error: drop "))
        #expect(reason.contains("does not exist (not mounted, or not created yet)"))
        #expect(read(joinPath(agents.failed("alice", to: "bob"), "doomed.txt")) == Array("d".utf8))
    }
}

/// Downloads that fail for a while: the daemon keeps running, and the file arrives once it can.
@Suite struct ReceiveRetryTests {
    /// Bob's destination on a 1 MiB tmpfs filled to the last byte: a download fails (ENOSPC) after
    /// its temporary file was created, and leaves it empty.
    static func withFullDestination(_ agents: TwoAgents, _ body: (_ filler: String) throws -> Void) throws {
        try withFullDisk(below: agents.root, owner: "root") { _, mountPoint in
            try agents.editPolicy("bob", replacing: "    every: 200ms\n", with: """
                    every: 200ms
                    destination: \(mountPoint)/{sender}
                    retry:
                      initial: 200ms
                      max: 500ms

                """)
            let filler = joinPath(mountPoint, "filler")
            _ = try runProgram("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=64k"])  // ends at ENOSPC
            try body(filler)
        }
    }

    @Test func theDaemonRetriesAFailedDownloadUntilItIsStored() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        try write(joinPath(agents.drop, "alice->bob/later.txt"), "stored at last")
        try Self.withFullDestination(agents) { filler in
            let bob = try agents.startDaemon("bob")
            defer { bob.signal(SIGTERM); bob.wait() }
            #expect(eventually { agents.attempts("bob") >= 3 },
                    "retried with the rule's backoff: \(bob.log)")
            #expect(bob.process.isRunning, "the daemon survives a failed download")
            try FileSystem.removeIfPresent(filler)
            let stored = joinPath(parentDirectory(of: filler), "alice/later.txt")
            #expect(eventually { read(stored) == Array("stored at last".utf8) }, "\(bob.log)")
            #expect(!bob.log.contains("File exists"), "an empty temporary file is begun again: \(bob.log)")
            #expect(eventually { files(below: agents.drop).isEmpty }, "the remote copy is deleted once stored")
        }
    }

    @Test func aDownloadThatStoppedBeforeItsFirstByteIsBegunAgain() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        try write(joinPath(agents.drop, "alice->bob/again.txt"), "whole")
        try Self.withFullDestination(agents) { filler in
            let full = try agents.once("bob")
            #expect(full.status == 75, "\(full.stderr)")
            #expect(full.stderr.contains("No space left on device"), "\(full.stderr)")
            let folder = joinPath(parentDirectory(of: filler), "alice")
            #expect(try FileManager.default.contentsOfDirectory(atPath: folder).count == 1, "the empty temporary file")
            try FileSystem.removeIfPresent(filler)
            let next = try agents.once("bob")
            #expect(next.status == 0, "\(next.stderr)")
            #expect(next.stderr.hasSuffix("received 1, failed 0, to retry 0\n"), "\(next.stderr)")
            #expect(files(below: folder) == ["again.txt"])
            #expect(read(joinPath(folder, "again.txt")) == Array("whole".utf8))
        }
    }
}

/// Receiving: `receive`, and remote copies that are kept.
@Suite struct ReceiveTests {
    @Test func receiveCommandPollsOnce() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        try write(joinPath(agents.drop, "alice->bob/one.txt"), "1")
        try write(joinPath(agents.drop, "carol->bob/two.txt"), "2")
        try write(joinPath(agents.drop, "alice->dave/not-ours.txt"), "x")
        let outcome = try connectxpert("receive", "--policy", agents.policyPath("bob"), in: agents.bob)
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stderr.hasSuffix("connectxpert: received 2, failed 0, to retry 0\n"))
        #expect(files(below: joinPath(agents.bob, "spool/inbox")) == ["alice/one.txt", "carol/two.txt"])
        #expect(files(below: agents.drop) == ["alice->dave/not-ours.txt"])
    }

    @Test func aDownloadThatNeedsAPersonPointsAtTheRemoteNotAtFailedFolders() throws {
        let agents = try TwoAgents {
            try $0.replacing(existing: "    every: 200ms\n", with: "    every: 200ms\n    conflict: fail\n")
        }
        defer { agents.remove() }
        try write(joinPath(agents.inbox("bob", from: "alice"), "taken.txt"), "mine")
        try write(joinPath(agents.drop, "alice->bob/taken.txt"), "theirs")
        let outcome = try agents.once("bob")
        #expect(outcome.status == 65, "\(outcome.stderr)")
        #expect(outcome.stderr.hasSuffix("connectxpert: sent 0, received 0, failed 1, to retry 0 (see the files left on the "
            + "remote and the log)\n"), "\(outcome.stderr)")
        #expect(FileSystem.exists(joinPath(agents.drop, "alice->bob/taken.txt")))
    }

    @Test func keptRemoteCopiesAreReceivedOncePerVersion() throws {
        let agents = try TwoAgents {
            try $0.replacing(existing: "    every: 200ms\n",
                             with: "    every: 200ms\n    delete_remote: false\n    senders: [\"alice\"]\n")
        }
        defer { agents.remove() }
        let remote = joinPath(agents.drop, "alice->bob/kept.txt")
        try write(remote, "v1")
        try write(joinPath(agents.drop, "mallory->bob/spam.txt"), "no")
        #expect(try agents.once("bob").stderr.contains("received 1,"))
        #expect(try agents.once("bob").stderr.contains("received 0,"), "an unchanged remote file is not received again")
        #expect(FileSystem.exists(remote))
        try write(remote, "version 2")
        #expect(try agents.once("bob").stderr.contains("received 1,"))
        let inbox = agents.inbox("bob", from: "alice")
        #expect(files(below: inbox) == ["kept (1).txt", "kept.txt"])
        #expect(read(joinPath(inbox, "kept (1).txt")) == Array("version 2".utf8))
        #expect(!FileSystem.exists(agents.inbox("bob", from: "mallory")), "senders not allowed are not received")
    }
}
