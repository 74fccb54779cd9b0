/// The header section of an RFC 5322 message, read from its raw bytes. Each field keeps its raw
/// lines (continuations included, line ends stripped) so that what is sent is what was written.
public struct HeaderBlock: Sendable {
    public struct Field: Sendable {
        /// As written (`Subject`); compare with `is(_:)`, names are case-insensitive.
        public let name: String
        /// The raw lines of the field: the first (`Name: value`) and its continuations.
        public fileprivate(set) var lines: [[UInt8]]

        public func `is`(_ other: String) -> Bool { name.lowercased() == other.lowercased() }

        /// The value's bytes unfolded (continuation line breaks removed).
        public var rawValue: [UInt8] {
            var bytes = Array(lines[0].drop(while: { $0 != UInt8(ascii: ":") }).dropFirst())
            for line in lines.dropFirst() { bytes += line }
            return bytes
        }

        /// The value unfolded, decoded as UTF-8 where valid.
        public var value: String {
            String(decoding: rawValue, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        }

        /// The value for reading: RFC 2047 encoded words and 8-bit bytes decoded.
        public var text: String {
            MailDecoding.headerText(rawValue).trimmingCharacters(in: .whitespaces)
        }
    }

    public let fields: [Field]
    /// Where the body starts in the bytes the block was read from (after the empty line), or the
    /// end of the data when the message has no body.
    public let bodyOffset: Int

    /// The most header a message may have (Postfix takes 100 KiB); beyond it, it is not read as one.
    public static let maximumSize = 4 << 20

    /// Reads the header section at the start of `data`. A leading mbox `From ` line is skipped.
    /// Fails when the data does not start with a header field: then it is not a message; and when
    /// the header is over `maximumSize`. A later line that is not a field fails it too, unless
    /// `lenient` (a message being read, not sent): then the body starts there, as mail readers take
    /// a header whose empty line is missing.
    public init(parsing data: [UInt8], lenient: Bool = false) throws(MessageError) {
        var lines: [(bytes: ArraySlice<UInt8>, next: Int)] = []
        var start = 0
        var end = data.count
        while start < data.count {
            let newline = data[start...].firstIndex(of: UInt8(ascii: "\n"))
            var line = data[start..<(newline ?? data.count)]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            let next = newline.map { $0 + 1 } ?? data.count
            if line.isEmpty {
                end = next
                break
            }
            if lenient, !lines.isEmpty, Self.nameEnd(of: line) == nil, line.first != UInt8(ascii: " "),
               line.first != UInt8(ascii: "\t") {
                end = start
                break
            }
            guard next <= Self.maximumSize else { throw .headerTooLarge(Self.maximumSize) }
            lines.append((line, next))
            start = next
        }
        if start >= data.count { end = data.count }
        if let first = lines.first, first.bytes.starts(with: Array("From ".utf8)) { lines.removeFirst() }

        var fields: [Field] = []
        for (line, _) in lines {
            if let first = line.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") {
                guard !fields.isEmpty else { throw .notAMessage("it starts with a continuation line") }
                fields[fields.count - 1].lines.append(Array(line))  // in place: a copy per line was quadratic
                continue
            }
            guard let colon = Self.nameEnd(of: line) else {
                let shown = String(decoding: line.prefix(60), as: UTF8.self)
                throw .notAMessage(fields.isEmpty
                    ? "it does not start with a header field (first line: \(shown.debugDescription))"
                    : "the header line \(shown.debugDescription) is not a field (Name: value)")
            }
            fields.append(Field(name: String(decoding: line[..<colon], as: UTF8.self), lines: [Array(line)]))
        }
        guard !fields.isEmpty else { throw .notAMessage("it has no header fields") }
        self.fields = fields
        bodyOffset = end
    }

    /// Where the name of a `Name: value` line ends (its colon); nil when the line is not a field
    /// (no colon, or a name that is empty or not printable ASCII).
    private static func nameEnd(of line: ArraySlice<UInt8>) -> ArraySlice<UInt8>.Index? {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
              line[..<colon].allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { return nil }
        return colon
    }

    /// The unfolded values of every field named `name`, in order.
    public func values(_ name: String) -> [String] {
        fields.filter { $0.is(name) }.map(\.value)
    }

    public func contains(_ name: String) -> Bool { fields.contains { $0.is(name) } }

    /// The decoded text of the first field named `name`.
    public func text(_ name: String) -> String? {
        fields.first { $0.is(name) }?.text
    }
}

/// Why a file cannot be sent as mail; the message goes to `mail/failed/` with this as its reason.
public enum MessageError: Error, CustomStringConvertible, Equatable {
    case notAMessage(String)
    case noRecipients
    case noSender
    case headerTooLarge(Int)

    public var description: String {
        switch self {
        case .notAMessage(let why): return "this is not a mail message: \(why)"
        case .noRecipients: return "the message has no recipient (no To:, Cc: or Bcc: address, and none given to sendmail)"
        case .noSender: return "the message has no sender: add a From: header or set mail.from in the policy"
        case .headerTooLarge(let limit): return "the header section is larger than \(limit / 1024 / 1024) MiB"
        }
    }
}
