import ConnectXpertAge
import ConnectXpertTestSupport
import Crypto
import Foundation
import Testing

/// The C2SP age conformance vectors (`../shared/age-testkit`, beside the project): each gives
/// exactly its expected outcome, and the plaintext released before any failure has its hash.
@Suite struct ConformanceTests {
    @Test(arguments: AgeVector.all.filter(\.isOffered))
    func eachVectorGivesItsExpectedOutcome(vector: AgeVector) throws {
        var released: [UInt8] = []
        let identities: [any AgeIdentity] = vector.identities.compactMap(X25519Identity.init)
            + vector.passphrases.map { ScryptIdentity(passphrase: Array($0.utf8)) }
        var outcome = "success"
        do {
            try Age.decrypt(with: identities, from: AgeBytesInput(vector.file), to: &released)
        } catch let error as AgeError {
            outcome = AgeVector.expectation(ofKind: error.kind)
        }
        #expect(outcome == vector.expect)
        #expect(vector.payload.map { SHA256.hash(data: released).hex == $0 } ?? released.isEmpty)
    }

    @Test("ASCII armor and the post-quantum hybrid (mlkem768x25519) are not offered: their vectors are not run")
    func theVectorsLeftOutAreArmorAndHybridOnly() {
        let left = AgeVector.all.filter { !$0.isOffered }
        #expect(left.count == 51)
        #expect(left.allSatisfy { $0.name.hasPrefix("armor") || $0.name.hasPrefix("hybrid") })
        #expect(AgeVector.all.count == 143)
    }
}

extension Digest {
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}
