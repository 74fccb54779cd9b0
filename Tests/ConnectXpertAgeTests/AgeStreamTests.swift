import ConnectXpertAge
import ConnectXpertTestSupport
import Crypto
import Foundation
import Testing

/// Sealing as the file is read (`AgeSealing`) and opening as it is written (`AgeOpening`), the
/// way uploads and downloads drive them: whatever the size of each read or write, the age file and
/// the outcome are the same.
@Suite struct AgeStreamTests {
    /// Writes of one byte, of an odd size, and of a chunk and a byte (a chunk boundary in each),
    /// for the header and the first two chunks; the rest of a long file goes in writes of 1 MiB.
    static let pieces = [1, 13, 65553]

    @Test(arguments: AgeVector.all.filter(\.isOffered), pieces)
    func eachVectorWrittenInPiecesGivesItsExpectedOutcome(vector: AgeVector, piece: Int) throws {
        let identities: [any AgeIdentity] = vector.identities.compactMap(X25519Identity.init)
            + vector.passphrases.map { ScryptIdentity(passphrase: Array($0.utf8)) }
        let opening = AgeOpening(with: identities, to: [UInt8]())
        var outcome = "success"
        do {
            var start = 0
            while start < vector.file.count {
                let end = min(start + (start < 140_000 ? piece : 1 << 20), vector.file.count)
                try vector.file[start..<end].withUnsafeBytes { try opening.write($0) }
                start = end
            }
            try opening.finish()
        } catch let error as AgeError {
            outcome = AgeVector.expectation(ofKind: error.kind)
        }
        #expect(outcome == vector.expect)
        #expect(vector.payload.map { SHA256.hash(data: opening.output).hex == $0 } ?? opening.output.isEmpty)
    }

    /// The size an upload announces before it reads a byte is the size of what it then reads, and
    /// reads of any size give the same file, which opens to the plaintext.
    @Test(arguments: [0, 1, 65535, 65536, 65537, 200_000])
    func aSealedStreamIsAsLongAsItsAnnouncedSize(size: Int) throws {
        let identity = X25519Identity()
        let plaintext = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let sealing = try AgeSealing(to: [identity.recipient], from: AgeBytesInput(plaintext))
        var sealed: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1000)
        while case let count = try buffer.withUnsafeMutableBytes({ try sealing.read(into: $0) }), count > 0 {
            sealed += buffer[..<count]
        }
        #expect(Int64(sealed.count) == Age.sealedSize(ofPlaintext: Int64(size), headerSize: sealing.headerSize))
        var opened: [UInt8] = []
        try Age.decrypt(with: [identity], from: AgeBytesInput(sealed), to: &opened)
        #expect(opened == plaintext)
    }
}
