import ConnectXpertSystem
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
        #expect(eventually { alice.log.components(separatedBy: "transfer failed; will retry").count >= 3 },
                "retried with a growing pause")
        try FileSystem.createDirectories(agents.drop)
        #expect(eventually { read(joinPath(agents.drop, "alice->bob/patient.txt")) == Array("p".utf8) })
        #expect(files(below: agents.outbox("alice", to: "bob")).isEmpty)
    }

    @Test func givesUpAfterTheRulesLimit() throws {
        let agents = try TwoAgents { $0.replacingOccurrences(of: "      max: 1s\n", with: "      max: 1s\n      give_up_after: 1s\n") }
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

    @Test func keptRemoteCopiesAreReceivedOncePerVersion() throws {
        let agents = try TwoAgents { $0.replacingOccurrences(of: "    every: 200ms\n", with: "    every: 200ms\n    delete_remote: false\n    senders: [\"alice\"]\n") }
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
