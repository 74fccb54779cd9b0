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
        let entries = try spool.scanOutbox().files
        #expect(entries.map(\.path) == ["a.txt", "sub/b.txt"])
        #expect(entries.allSatisfy { $0.recipient == "bob" && $0.kind == .regular })
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
