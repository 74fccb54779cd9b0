import ConnectXpertSystem
import Foundation
import Testing

@testable import ConnectXpertSpool

@Suite struct SpoolTests {
    private func spool() throws -> Spool {
        let spool = Spool(root: NSTemporaryDirectory() + "cx-spool-" + UUID().uuidString)
        try spool.createLayout()
        return spool
    }

    private func touch(_ path: String) throws {
        try FileSystem.createDirectories(parentDirectory(of: path))
        try FileSystem.writeFileAtomically(path, contents: Array("x".utf8))
    }

    @Test func scanSkipsTemporaryNamesAndEntersSubfolders() throws {
        let spool = try spool()
        for name in ["a.txt", "sub/b.txt", ".hidden", "c.part", "d.tmp", "e~", ".dir/f.txt"] {
            try touch(joinPath(spool.outbox(for: "bob"), name))
        }
        try touch(joinPath(spool.outbox, ".staging/x"))
        let items = Array(IteratorSequence(spool.walkOutbox()))
        #expect(Set(items) == [.file(OutboxEntry(recipient: "bob", path: "a.txt", kind: .regular, size: 1)),
                               .file(OutboxEntry(recipient: "bob", path: "sub/b.txt", kind: .regular, size: 1))])
        #expect(items.count == 2)
    }

    /// A walk of one recipient's folder stays in it; names that are not UTF-8 are reported, escaped,
    /// and links are files of their kind, not followed.
    @Test func aWalkOfOneRecipientReportsNamesNotTextAndLinks() throws {
        let spool = try spool()
        try touch(joinPath(spool.outbox(for: "bob"), "a.txt"))
        try touch(joinPath(spool.outbox(for: "carol"), "c.txt"))
        let bob = spool.outbox(for: "bob")
        #expect(symlink("/etc", bob + "/link") == 0)
        close(creat(bob + "/caf\u{E9}", 0o644))  // é in UTF-8: text
        let latin1 = Array((bob + "/caf").utf8) + [0xE9, 0]  // é in Latin-1
        close(latin1.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { creat($0.baseAddress!, 0o644) } })
        let items = Set(IteratorSequence(spool.walkOutbox(recipient: "bob")))
        #expect(items == [.file(OutboxEntry(recipient: "bob", path: "a.txt", kind: .regular, size: 1)),
                          .file(OutboxEntry(recipient: "bob", path: "link", kind: .symlink, size: 4)),
                          .file(OutboxEntry(recipient: "bob", path: "caf\u{E9}", kind: .regular, size: 0)),
                          .nameNotText("bob/caf\\xE9")])
    }

    @Test func failedFilesGetAReasonAndNeverReplaceEachOther() throws {
        let spool = try spool()
        for _ in 0..<2 {
            try touch(joinPath(spool.outbox(for: "bob"), "dir/x.bin"))
            try spool.moveToFailed(recipient: "bob", path: "dir/x.bin", reason: "too big", advice: "make it smaller")
        }
        let folder = joinPath(spool.failed, "bob/dir")
        #expect(try FileSystem.contents(of: folder) == ["x (1).bin", "x (1).bin.reason", "x.bin", "x.bin.reason"])
        let reason = String(decoding: try FileSystem.readFile(joinPath(folder, "x.bin.reason")), as: UTF8.self)
        #expect(reason.hasPrefix("file: dir/x.bin\nrecipient: bob\nfailed at: "))
        #expect(reason.hasSuffix("reason: too big\nwhat to do: make it smaller\n"))
    }

    @Test func outboxPathsSplitIntoRecipientAndPath() throws {
        let spool = Spool(root: "/s")
        #expect(spool.outboxItem(at: "/s/outbox/bob/a/b.txt")! == ("bob", "a/b.txt"))
        #expect(spool.outboxItem(at: "/s/outbox/bob") == nil)
        #expect(spool.recipient(containing: "/s/outbox/bob") == "bob")
        #expect(spool.recipient(containing: "/s/inbox/bob") == nil)
    }

    @Test func oneAgentPerSpool() throws {
        let spool = try spool()
        #expect(AgentLock.holder(path: spool.lock) == nil)
        do {
            let lock = try AgentLock(path: spool.lock)
            withExtendedLifetime(lock) {
                #expect(AgentLock.holder(path: spool.lock) == "\(getpid())")
                #expect(throws: AgentLock.Busy.self) { try AgentLock(path: spool.lock) }
                try? FileSystem.remove(spool.lock)
                #expect(throws: AgentLock.Busy.self, "a removed lock file frees nothing") { try AgentLock(path: spool.lock) }
            }
        }
        #expect(AgentLock.holder(path: spool.lock) == nil, "released with its owner")
    }
}
