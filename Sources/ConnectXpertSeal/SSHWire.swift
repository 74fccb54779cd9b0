import Foundation

/// The SSH wire encoding (RFC 4251 5): big-endian uint32s and length-prefixed strings, as the
/// OpenSSH key formats and SSHSIG signatures are written.
struct SSHWriter {
    private(set) var bytes: [UInt8] = []

    mutating func uint32(_ value: UInt32) { bytes += withUnsafeBytes(of: value.bigEndian, Array.init) }

    mutating func string(_ value: some Collection<UInt8>) {
        uint32(UInt32(value.count))
        bytes += value
    }

    mutating func string(_ text: String) { string(Array(text.utf8)) }

    mutating func raw(_ value: some Sequence<UInt8>) { bytes += value }
}

/// Reads what `SSHWriter` writes; every read fails (nil) past the end.
struct SSHReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset == bytes.count }
    var rest: ArraySlice<UInt8> { bytes[offset...] }

    mutating func raw(_ count: Int) -> [UInt8]? {
        guard count >= 0, bytes.count - offset >= count else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    mutating func uint32() -> UInt32? {
        raw(4).map { $0.reduce(0) { $0 << 8 | UInt32($1) } }
    }

    mutating func string() -> [UInt8]? {
        guard let count = uint32() else { return nil }
        return raw(Int(count))
    }

    mutating func text() -> String? { string().map { String(decoding: $0, as: UTF8.self) } }
}

/// Base64 wrapped at `width` columns between PEM-style BEGIN and END lines.
enum Armor {
    static func wrap(_ bytes: [UInt8], label: String, width: Int) -> String {
        var body = Substring(Data(bytes).base64EncodedString())
        var lines: [Substring] = []
        while !body.isEmpty {
            lines.append(body.prefix(width))
            body = body.dropFirst(width)
        }
        return "-----BEGIN \(label)-----\n" + lines.joined(separator: "\n") + "\n-----END \(label)-----\n"
    }

    static func unwrap(_ text: String, label: String) -> [UInt8]? {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let begin = lines.firstIndex(of: "-----BEGIN \(label)-----"),
              let end = lines.firstIndex(of: "-----END \(label)-----"), begin < end else { return nil }
        return Data(base64Encoded: lines[(begin + 1)..<end].joined()).map(Array.init)
    }
}


