import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// Links, special files, hostile remote names, oversize files, unreachable drops.
@Suite struct BadInputTests {
    @Test func symlinkGoesToFailedAndFifoIsIgnored() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let outbox = agents.outbox("alice", to: "bob")
        try FileSystem.createDirectories(outbox)
        try FileManager.default.createSymbolicLink(atPath: joinPath(outbox, "passwd"), withDestinationPath: "/etc/passwd")
        #expect(mkfifo(joinPath(outbox, "pipe"), 0o644) == 0)
        try write(joinPath(outbox, "good.txt"), "good")

        let outcome = try agents.once("alice")
        #expect(outcome.status == 65, "a file moved to failed/ makes the pass fail")
        #expect(outcome.stderr.contains("ignored: not a regular file"))
        #expect(outcome.stderr.contains("sent 1, received 0, failed 1, to retry 0"))
        let failed = agents.failed("alice", to: "bob")
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: joinPath(failed, "passwd"))
        #expect(link == "/etc/passwd", "the link itself is moved, never followed")
        let reason = String(decoding: read(joinPath(failed, "passwd.reason")) ?? [], as: UTF8.self)
        #expect(reason.contains("reason: passwd is a symbolic link; links in the outbox are not followed"))
        #expect(reason.contains("what to do: copy the file itself (cp -L) into outbox/bob/"))
        #expect(FileSystem.exists(joinPath(outbox, "pipe")), "a FIFO is left alone")
        #expect(files(below: joinPath(agents.drop, "alice->bob")) == ["good.txt"])
    }

    @Test func aNameWithANewlineGoesToFailedAndForgesNoLogLine() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let forged = "\n2026-12-01T00:00:00+0000 critical connectxpert: FORGED line"
        let name = "innocent.txt" + forged
        try write(joinPath(agents.outbox("alice", to: "bob"), name), "x")
        let outcome = try agents.once("alice")
        #expect(outcome.status == 65, "\(outcome.stderr)")
        #expect(!outcome.stderr.contains(forged), "every name in a log line is escaped: \(outcome.stderr)")
        #expect(outcome.stderr.contains("innocent.txt\\n2026-12-01T00:00:00+0000 critical connectxpert: FORGED line"))
        #expect(outcome.stderr.split(separator: "\n").allSatisfy { !$0.hasPrefix("2026-12-01T00:00:00") })
        let reason = String(decoding: read(joinPath(agents.failed("alice", to: "bob"), name + ".reason")) ?? [], as: UTF8.self)
        #expect(reason.contains("reason: the name innocent.txt\\n2026-12-01T00:00:00+0000 critical connectxpert: FORGED line "
            + "holds a control character (such as a newline), which receivers refuse"), "\(reason)")
        #expect(!reason.contains(forged))
        #expect(files(below: agents.drop).isEmpty, "never sent")
    }

    @Test func oversizeFileGoesToFailedWithAReason() throws {
        let agents = try TwoAgents {
            try $0.replacing(existing: "    remote: drop\n    retry",
                             with: "    remote: drop\n    max_size: 1KiB\n    retry")
        }
        defer { agents.remove() }
        try write(joinPath(agents.outbox("alice", to: "bob"), "huge.bin"), randomBytes(2048))
        let outcome = try agents.once("alice")
        #expect(outcome.status == 65)
        let reason = String(decoding: read(joinPath(agents.failed("alice", to: "bob"), "huge.bin.reason")) ?? [], as: UTF8.self)
        #expect(reason.contains("reason: huge.bin is 2KiB, over the rule's max_size of 1KiB"))
        #expect(read(joinPath(agents.failed("alice", to: "bob"), "huge.bin"))?.count == 2048, "the file is kept")

        let longest = String(repeating: "h", count: 251) + ".bin"  // 255 bytes: no room for ".reason"
        try write(joinPath(agents.outbox("alice", to: "bob"), longest), randomBytes(2048))
        #expect(try agents.once("alice").status == 65)
        let cut = joinPath(agents.failed("alice", to: "bob"), String(longest.prefix(248)) + ".reason")
        let longReason = String(decoding: read(cut) ?? [], as: UTF8.self)
        #expect(longReason.contains("file: \(longest)\n"), "the .reason of a name too long to take it is cut short")
        #expect(read(joinPath(agents.failed("alice", to: "bob"), longest))?.count == 2048)
    }

    @Test func hostileRemoteNamesAreNeverWrittenLocally() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let drop = joinPath(agents.drop, "alice->bob")
        try write(joinPath(drop, "fine.txt"), "fine")
        try write(joinPath(drop, ".hidden"), "hidden")
        try write(joinPath(drop, "bell\u{7}name"), "control")
        try write(joinPath(drop, "new\nline"), "control")
        try write(joinPath(drop, ".in-progress.part"), "partial")
        try FileManager.default.createSymbolicLink(atPath: joinPath(drop, "link"), withDestinationPath: "/etc/passwd")
        try write(joinPath(agents.drop, "x/y->bob/nested-sender.txt"), "not a sender folder")
        try write(joinPath(agents.drop, "..->bob/dots.txt"), "dots")

        let outcome = try agents.once("bob")
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stderr.contains("unsafe remote name left on the remote"))
        #expect(outcome.stderr.contains("remote entry is not a regular file; left on the remote"))
        #expect(files(below: joinPath(agents.bob, "spool/inbox")) == ["alice/fine.txt"])
        #expect(FileSystem.exists(joinPath(drop, ".hidden")))
        #expect(FileSystem.exists(joinPath(drop, "bell\u{7}name")))
        #expect(FileSystem.exists(joinPath(agents.drop, "..->bob/dots.txt")))
        #expect(!FileSystem.exists(joinPath(drop, "fine.txt")))
    }

    @Test func unreachableDropIsRetriedNotFailed() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        try FileManager.default.removeItem(atPath: agents.drop)
        let file = joinPath(agents.outbox("alice", to: "bob"), "waiting.txt")
        try write(file, "w")
        let outcome = try agents.once("alice")
        #expect(outcome.status == 75)
        #expect(outcome.stderr.contains("sent 0, received 0, failed 0, to retry 2 (transient failures; run again later)"))
        #expect(read(file) == Array("w".utf8), "the file stays in the outbox")

        let status = try connectxpert("status", "--policy", agents.policyPath("alice"), in: agents.alice)
        #expect(status.status == 0)
        #expect(status.stdout.contains("bob: 1 file, 1 B (to drop)"))
        #expect(status.stdout.contains("bob/waiting.txt -> drop: attempt 1"))
        #expect(status.stdout.contains("does not exist (not mounted, or not created yet)"))

        try FileSystem.createDirectories(agents.drop)
        #expect(try agents.once("alice").status == 0)
        #expect(read(joinPath(agents.drop, "alice->bob/waiting.txt")) == Array("w".utf8))
    }

    @Test func invalidPolicyExitsWithConfigError() throws {
        let agents = try TwoAgents { try $0.replacing(existing: "every: 200ms", with: "every: soon") }
        defer { agents.remove() }
        let outcome = try agents.once("bob")
        #expect(outcome.status == 78)
        #expect(outcome.stderr.contains("policies.yaml:14:12: error: inbox[0].every: 'soon' is not a duration"))
    }
}
