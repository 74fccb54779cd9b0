import CZlib
import Foundation
import Testing

/// One C2SP age conformance vector (`../shared/age-testkit`, beside the project; `AGE_TESTKIT`
/// names another folder): its header fields and the age file, inflated when compressed.
public struct AgeVector: CustomTestStringConvertible, Sendable {
    public let name: String
    public let fields: [(String, String)]
    public let file: [UInt8]

    public var testDescription: String { name }
    public func values(_ key: String) -> [String] { fields.filter { $0.0 == key }.map(\.1) }
    public var expect: String { values("expect").first ?? "" }
    /// The hash of the plaintext released, when there is any.
    public var payload: String? { values("payload").first }
    public var identities: [String] { values("identity") }
    public var passphrases: [String] { values("passphrase") }
    public var isOffered: Bool {
        values("armored") != ["yes"] && !identities.contains { $0.hasPrefix("AGE-SECRET-KEY-PQ-") }
    }

    /// `AGE_TESTKIT`, or `shared/age-testkit` beside the project.
    public static let folder: String = ProcessInfo.processInfo.environment["AGE_TESTKIT"]
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/age-testkit").path

    public static let all: [AgeVector] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter { $0 != "README.md" }.sorted().compactMap { name in
            FileManager.default.contents(atPath: folder + "/" + name).map { AgeVector(name: name, contents: Array($0)) }
        }
    }()

    /// The vector's `expect:` words for an `AgeError` kind.
    public static func expectation(ofKind kind: String) -> String {
        ["header": "header failure", "no match": "no match", "header MAC": "HMAC failure",
         "payload": "payload failure"][kind] ?? kind
    }

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

