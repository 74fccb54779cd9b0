import ConnectXpertSystem
import Foundation
import Testing

@testable import ConnectXpertTransport

@Suite struct LocalDropTransportTests {
    private let base = NSTemporaryDirectory() + "cx-drop-" + UUID().uuidString

    private func transport() throws -> LocalDropTransport {
        try FileSystem.createDirectories(base)
        return try LocalDropTransport(base: base)
    }

    private func source(_ bytes: [UInt8]) throws -> FileDescriptor {
        let path = base + ".src-" + UUID().uuidString
        try FileSystem.writeFileAtomically(path, contents: bytes)
        return try FileDescriptor.openForReading(path)
    }

    @Test func uploadRenameDownloadDeleteRoundTrip() throws {
        let drop = try transport()
        let bytes = (0..<300_000).map { UInt8($0 % 251) }
        try drop.makeDirectories("a->b/sub")
        #expect(try drop.upload(from: try source(bytes), to: "a->b/sub/.f.part", attributes: .init(modificationNanoseconds: 1_000_000_000, mode: 0o640)) { _ in true }
                == Int64(bytes.count))
        try drop.rename("a->b/sub/.f.part", to: "a->b/sub/f", replacing: false)
        #expect(try drop.list("a->b/sub").map(\.name) == ["f"])
        #expect(try drop.entry(at: "a->b/sub/f")?.size == Int64(bytes.count))
        #expect(try drop.entry(at: "a->b/sub/f")?.modificationNanoseconds == 1_000_000_000)
        #expect(try FileSystem.status(joinPath(base, "a->b/sub/f"))?.mode == 0o640)

        let outputPath = base + ".out"
        let output = try FileDescriptor.create(outputPath)
        #expect(try drop.download("a->b/sub/f", size: Int64(bytes.count), from: 0, to: output) { _ in true } == Int64(bytes.count))
        #expect(try FileSystem.readFile(outputPath) == bytes)

        try drop.delete("a->b/sub/f")
        try drop.delete("a->b/sub/f")  // a missing file is not an error
        #expect(try drop.list("a->b/sub").isEmpty)
        #expect(try drop.list("absent").isEmpty)
    }

    @Test func renameWithoutReplaceRefusesAnExistingTarget() throws {
        let drop = try transport()
        for name in [".t1", "target"] {
            _ = try drop.upload(from: try source(Array(name.utf8)), to: name, attributes: .init(modificationNanoseconds: 0, mode: nil)) { _ in true }
        }
        #expect {
            try drop.rename(".t1", to: "target", replacing: false)
        } throws: { error in
            (error as? TransportError)?.kind == .alreadyExists
        }
        #expect(try FileSystem.readFile(joinPath(base, "target")) == Array("target".utf8))
        try drop.rename(".t1", to: "target", replacing: true)
        #expect(try FileSystem.readFile(joinPath(base, "target")) == Array(".t1".utf8))
    }

    @Test func cancellingAnUploadStopsIt() throws {
        let drop = try transport()
        let bytes = [UInt8](repeating: 1, count: 4 << 20)
        #expect(throws: TransferCancelled.self) {
            _ = try drop.upload(from: try source(bytes), to: ".big.part", attributes: .init(modificationNanoseconds: 0, mode: nil)) { _ in false }
        }
    }

    @Test func missingBaseIsTransient() {
        #expect {
            _ = try LocalDropTransport(base: "/nonexistent/drop")
        } throws: { error in
            (error as? TransportError)?.kind == .transient
        }
    }

    @Test func symlinksAreListedAsSuch() throws {
        let drop = try transport()
        try FileManager.default.createSymbolicLink(atPath: joinPath(base, "link"), withDestinationPath: "/etc/passwd")
        #expect(try drop.list("").first?.kind == .symlink)
    }
}
