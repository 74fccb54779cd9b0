import ConnectXpertSeal
import ConnectXpertTestSupport
import Foundation
import Testing

/// Digests made on their own thread are the digests of every byte given, in order, whatever the
/// pieces' sizes (larger than the queue, too), and the same as digests made inline.
@Suite struct DigestsTests {
    /// The SHA-256 of the bytes, as `sha256sum` prints it.
    func sha256sum(_ bytes: [UInt8]) throws -> String {
        let result = try runProgram("/usr/bin/sha256sum", [], input: bytes)
        #expect(result.status == 0, "\(result.errors)")
        return String(result.output.prefix(64))
    }

    @Test(arguments: [false, true])
    func eachDigestCoversEveryByteGivenInOrder(concurrent: Bool) throws {
        let bytes = (0..<3_300_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 11) }
        // Pieces of 1 byte to 2 MiB, the largest more than the thread's queue holds.
        var pieces: [ArraySlice<UInt8>] = []
        var offset = 0
        for size in [1, 7, 65536, 65537, 2 << 20, 1 << 20] {
            pieces.append(bytes[offset..<min(offset + size, bytes.count)])
            offset = min(offset + size, bytes.count)
        }
        let digests = Digests(count: 2, concurrent: concurrent)
        for (piece, other) in zip(pieces, pieces.reversed()) {
            piece.withUnsafeBytes { digests.update(0, with: $0) }
            other.withUnsafeBytes { digests.update(1, with: $0) }
        }
        #expect(digests.finish() == [try sha256sum(Array(pieces.joined())),
                                     try sha256sum(Array(pieces.reversed().joined()))])
    }
}
