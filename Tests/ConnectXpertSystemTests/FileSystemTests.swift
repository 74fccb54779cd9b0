import ConnectXpertSystem
import Foundation
import Testing

@Suite struct FileSystemTests {
    /// Threads replacing one file at once (viewer sessions updating the screen share's status file)
    /// never meet each other's temporary file: with one temporary name per process, 300 of 1184
    /// viewer connections failed with `rename … .tmp: No such file or directory`.
    @Test func concurrentAtomicWritesOfOneFileAllSucceed() throws {
        let folder = NSTemporaryDirectory() + "cx-fs-" + UUID().uuidString.prefix(8)
        try FileSystem.createDirectories(folder)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = joinPath(folder, "screen-share.status")
        let failures = LockedCount()
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for round in 0..<200 {
                let contents = Array("state: \(thread).\(round)\n".utf8)
                do { try FileSystem.writeFileAtomically(path, contents: contents) } catch { failures.add() }
            }
        }
        #expect(failures.value == 0)
        #expect(try FileSystem.contents(of: folder) == ["screen-share.status"], "no temporary file left")
    }

    /// Names that are not UTF-8 are told apart, and written for a reader byte by byte.
    @Test func namesThatAreNotUTF8AreListedApartAndEscaped() throws {
        #expect(FileSystem.text(ofName: Array("café".utf8)) == "café")
        #expect(FileSystem.text(ofName: [0x63, 0x61, 0x66, 0xE9]) == nil)
        #expect(FileSystem.escapedName([0x63, 0x61, 0x66, 0xE9, 0x5C, 0x0A]) == "caf\\xE9\\x5C\\x0A")
    }
}

private final class LockedCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func add() { lock.withLock { count += 1 } }
}
