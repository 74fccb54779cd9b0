/// One part of a received message (the message itself is the outermost part): its header and
/// body, and the parts inside it: a multipart's parts, or the message a message/rfc822 part
/// encloses. Built leniently: a malformed header is taken as body, a missing closing boundary ends
/// at the end of the data, nesting stops at 20 levels, so any message can be shown.
/// `MessageReading` says what of it is shown and what is attached.
public struct MIMEPart: Sendable {
    /// The header fields; empty when the part starts with something that is not a field.
    public let header: HeaderBlock?
    /// The body as written (still transfer-encoded).
    public let body: ArraySlice<UInt8>
    /// A multipart's parts, or the one message a message/rfc822 part encloses.
    public let parts: [MIMEPart]
    /// Lower case; `defaultType` when not given (text/plain, or message/rfc822 in a digest), and
    /// text/plain when it is not a valid `type/subtype` (RFC 2045 5.2).
    public let contentType: String
    public let parameters: [String: String]

    public init(parsing data: ArraySlice<UInt8>, depth: Int = 0, defaultType: String = "text/plain") {
        let header = try? HeaderBlock(parsing: Array(data), lenient: true)
        self.header = header
        let body: ArraySlice<UInt8>
        if let header {
            body = data[(data.startIndex + header.bodyOffset)...]
        } else {
            // A part without header fields starts with the empty line that ends its (empty) header.
            body = data.starts(with: [13, 10]) ? data.dropFirst(2) : data.first == 10 ? data.dropFirst() : data
        }
        self.body = body
        let field = header?.fields.last { $0.is("Content-Type") }
        let (type, parameters) = field.map { MailDecoding.parameters($0.text) } ?? (defaultType, [:])
        contentType = field == nil ? defaultType : Self.isValid(type) ? type.lowercased() : "text/plain"
        self.parameters = parameters
        guard depth < 20 else {
            parts = []
            return
        }
        if contentType.hasPrefix("multipart/") {
            // The boundary exactly as written: no encoded word decoded in it.
            let boundary = field.flatMap {
                MailDecoding.parameters($0.value, decodingWords: false).parameters["boundary"]
            }
            let childType = contentType == "multipart/digest" ? "message/rfc822" : "text/plain"
            parts = boundary.map { boundary in
                // Two delimiters in a row enclose no part (as Python's email package and mutt read it).
                MIMEPart.split(body, boundary: boundary).filter { !$0.isEmpty }.map {
                    MIMEPart(parsing: $0, depth: depth + 1, defaultType: childType)
                }
            } ?? []
        } else if contentType == "message/rfc822" || contentType == "message/global" {
            parts = [MIMEPart(parsing: Self.decoded(body, header: header)[...], depth: depth + 1)]
        } else {
            parts = []
        }
    }

    /// `type/subtype`, both RFC 2045 tokens.
    private static func isValid(_ type: String) -> Bool {
        let halves = type.split(separator: "/", omittingEmptySubsequences: false)
        return halves.count == 2 && halves.allSatisfy { half in
            !half.isEmpty && half.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f
                && !"()<>@,;:\\\"/[]?=".unicodeScalars.contains($0) }
        }
    }

    public var isMultipart: Bool { contentType.hasPrefix("multipart/") }

    /// The message a message/rfc822 part encloses.
    public var enclosed: MIMEPart? { isMultipart ? nil : parts.first }

    /// The body with its Content-Transfer-Encoding (base64, quoted-printable) undone.
    public var decodedBody: [UInt8] { Self.decoded(body, header: header) }

    private static func decoded(_ body: ArraySlice<UInt8>, header: HeaderBlock?) -> [UInt8] {
        switch header?.text("Content-Transfer-Encoding")?.lowercased() {
        case "base64": return MailDecoding.base64(Array(body))
        case "quoted-printable": return MailDecoding.quotedPrintable(Array(body))
        default: return Array(body)
        }
    }

    /// The body as text in its charset.
    public var text: String { MailDecoding.text(decodedBody, charset: parameters["charset"]) }

    /// The file name it carries (Content-Disposition `filename`, else Content-Type `name`).
    public var filename: String? {
        let disposition = header?.text("Content-Disposition").map { MailDecoding.parameters($0) }
        let name = disposition?.parameters["filename"] ?? parameters["name"]
        return name.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Whether its Content-Disposition says `attachment`.
    var isMarkedAttachment: Bool {
        header?.text("Content-Disposition").map { MailDecoding.parameters($0).value.lowercased() == "attachment" } ?? false
    }

    /// The bodies between `--boundary` lines, up to `--boundary--` (or the end of the data).
    private static func split(_ body: ArraySlice<UInt8>, boundary: String) -> [ArraySlice<UInt8>] {
        let delimiter = Array(("--" + boundary).utf8)
        var parts: [ArraySlice<UInt8>] = []
        var partStart: Int?
        var lineStart = body.startIndex
        while lineStart < body.endIndex {
            let newline = body[lineStart...].firstIndex(of: UInt8(ascii: "\n"))
            let lineEnd = newline ?? body.endIndex
            let next = newline.map { $0 + 1 } ?? body.endIndex
            let line = body[lineStart..<lineEnd]
            if line.starts(with: delimiter) {
                // RFC 2046: after the delimiter only transport padding (linear white space), and
                // after a close delimiter's "--" too; any other line is text.
                var rest = line.dropFirst(delimiter.count)
                let closing = rest.starts(with: [UInt8(ascii: "-"), UInt8(ascii: "-")])
                if closing { rest = rest.dropFirst(2) }
                if rest.allSatisfy({ [UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r")].contains($0) }) {
                    if let start = partStart {
                        // The line break before the delimiter belongs to the delimiter.
                        var end = lineStart
                        if end > start && body[end - 1] == UInt8(ascii: "\n") { end -= 1 }
                        if end > start && body[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                        parts.append(body[start..<end])
                    }
                    if closing { return parts }
                    partStart = next
                }
            }
            lineStart = next
        }
        if let start = partStart, start < body.endIndex { parts.append(body[start...]) }
        return parts
    }
}
