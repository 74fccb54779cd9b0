import CZlib
import ConnectXpertAge
import Crypto
import Foundation
import Testing

/// The C2SP age conformance vectors (`../shared/age-testkit`, beside the project): each gives
/// exactly its expected outcome, and the plaintext released before any failure has its hash.
@Suite struct ConformanceTests {
    @Test(arguments: Vector.all.filter(\.isOffered))
    func eachVectorGivesItsExpectedOutcome(vector: Vector) throws {
        var released: [UInt8] = []
        let identities: [any AgeIdentity] = vector.identities.compactMap(X25519Identity.init)
            + vector.passphrases.map { ScryptIdentity(passphrase: Array($0.utf8)) }
        var outcome = "success"
        do {
            try Age.decrypt(with: identities, from: AgeBytesInput(vector.file), to: &released)
        } catch let error as AgeError {
            outcome = ["header": "header failure", "no match": "no match", "header MAC": "HMAC failure",
                       "payload": "payload failure"][error.kind]!
        }
        #expect(outcome == vector.expect)
        #expect(vector.payload.map { SHA256.hash(data: released).hex == $0 } ?? released.isEmpty)
    }

    @Test("ASCII armor and the post-quantum hybrid (mlkem768x25519) are not offered: their vectors are not run")
    func theVectorsLeftOutAreArmorAndHybridOnly() {
        let left = Vector.all.filter { !$0.isOffered }
        #expect(left.count == 51)
        #expect(left.allSatisfy { $0.name.hasPrefix("armor") || $0.name.hasPrefix("hybrid") })
        #expect(Vector.all.count == 143)
    }
}

struct Vector: CustomTestStringConvertible, Sendable {
    let name: String
    let fields: [(String, String)]
    let file: [UInt8]

    var testDescription: String { name }
    func values(_ key: String) -> [String] { fields.filter { $0.0 == key }.map(\.1) }
    var expect: String { values("expect").first ?? "" }
    /// The hash of the plaintext released, when there is any.
    var payload: String? { values("payload").first }
    var identities: [String] { values("identity") }
    var passphrases: [String] { values("passphrase") }
    var isOffered: Bool { values("armored") != ["yes"] && !identities.contains { $0.hasPrefix("AGE-SECRET-KEY-PQ-") } }

    /// `AGE_TESTKIT`, or `shared/age-testkit` beside the project.
    static let folder: String = ProcessInfo.processInfo.environment["AGE_TESTKIT"]
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/age-testkit").path

    static let all: [Vector] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter { $0 != "README.md" }.sorted().compactMap { name in
            FileManager.default.contents(atPath: folder + "/" + name).map { Vector(name: name, contents: Array($0)) }
        }
    }()

    init(name: String, contents: [UInt8]) {
        self.name = name
        var fields: [(String, String)] = []
        var offset = 0
        while let end = contents[offset...].firstIndex(of: 10), end > offset {
            let line = String(decoding: contents[offset..<end], as: UTF8.self)
            if let colon = line.firstIndex(of: ":") {
                fields.append((String(line[..<colon]), String(line[line.index(after: colon)...].dropFirst())))
            }
            offset = end + 1
        }
        let body = Array(contents[min(offset + 1, contents.count)...])
        self.fields = fields
        file = fields.contains { $0 == ("compressed", "zlib") } ? inflate(body) : body
    }
}

private func inflate(_ input: [UInt8]) -> [UInt8] {
    var stream = z_stream()
    guard cx_inflate_init(&stream) == Z_OK else { return [] }
    defer { inflateEnd(&stream) }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    var input = input
    input.withUnsafeMutableBufferPointer { source in
        stream.next_in = source.baseAddress
        stream.avail_in = UInt32(source.count)
        var status = Z_OK
        while status == Z_OK {
            let produced = chunk.withUnsafeMutableBufferPointer { buffer -> Int in
                stream.next_out = buffer.baseAddress
                stream.avail_out = UInt32(buffer.count)
                status = CZlib.inflate(&stream, Z_NO_FLUSH)
                return buffer.count - Int(stream.avail_out)
            }
            output += chunk[0..<produced]
        }
    }
    return output
}

extension Digest {
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}
