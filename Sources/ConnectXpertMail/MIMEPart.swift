/// One part of a received message (the message itself is the outermost part): its header and
/// body, and the parts inside it when it is multipart. Built leniently: a malformed header is
/// taken as body, a missing closing boundary ends at the end of the data, nesting stops at 20
/// levels, so any message can be shown.
public struct MIMEPart: Sendable {
    /// The header fields; empty when the part starts with something that is not a field.
    public let header: HeaderBlock?
    /// The body as written (still transfer-encoded).
    public let body: ArraySlice<UInt8>
    public let parts: [MIMEPart]
    /// `text/plain` when not given, lower case.
    public let contentType: String
    public let parameters: [String: String]

    public init(parsing data: ArraySlice<UInt8>, depth: Int = 0, defaultType: String = "text/plain") {
        let header = try? HeaderBlock(parsing: Array(data))
        self.header = header
        if let header {
            body = data[(data.startIndex + header.bodyOffset)...]
        } else {
            // A part without header fields starts with the empty line that ends its (empty) header.
            body = data.starts(with: [13, 10]) ? data.dropFirst(2) : data.first == 10 ? data.dropFirst() : data
        }
        let (type, parameters) = header?.fields.last { $0.is("Content-Type") }
            .map { MailDecoding.parameters($0.text) } ?? (defaultType, [:])
        contentType = type.isEmpty ? defaultType : type.lowercased()
        self.parameters = parameters
        if contentType.hasPrefix("multipart/"), depth < 20, let boundary = parameters["boundary"], !boundary.isEmpty {
            let childType = contentType == "multipart/digest" ? "message/rfc822" : "text/plain"
            parts = MIMEPart.split(body, boundary: boundary).map { MIMEPart(parsing: $0, depth: depth + 1, defaultType: childType) }
        } else {
            parts = []
        }
    }

    public var isMultipart: Bool { contentType.hasPrefix("multipart/") }

    /// The body with its Content-Transfer-Encoding (base64, quoted-printable) undone.
    public var decodedBody: [UInt8] {
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

    private var isMarkedAttachment: Bool {
        header?.text("Content-Disposition").map { MailDecoding.parameters($0).value.lowercased() == "attachment" } ?? false
    }

    /// The text to read: in multipart/alternative the plain version (HTML reduced to text if it is
    /// all there is), in other multiparts the first readable part.
    public var readableText: String? { readablePart()?.readable }

    /// The parts that are not the readable text: marked as attachments, named, or not text.
    public var attachments: [MIMEPart] {
        let chosen = readablePart()?.part
        var found: [MIMEPart] = []
        func visit(_ part: MIMEPart) {
            if part.isMultipart {
                part.parts.forEach(visit)
            } else if !part.isSame(as: chosen) && (part.isMarkedAttachment || part.filename != nil
                || !(part.contentType == "text/plain" || part.contentType == "text/html")) {
                found.append(part)
            }
        }
        if isMultipart { parts.forEach(visit) } else if isMarkedAttachment { found.append(self) }
        return found
    }

    private func readablePart() -> (part: MIMEPart, readable: String)? {
        if isMultipart {
            if contentType == "multipart/alternative" {
                let candidates = parts.compactMap { $0.readablePart() }
                return candidates.first { $0.part.contentType == "text/plain" } ?? candidates.first
            }
            for part in parts where !part.isMarkedAttachment {
                if let readable = part.readablePart() { return readable }
            }
            return nil
        }
        guard !isMarkedAttachment else { return nil }
        switch contentType {
        case "text/plain": return (self, text)
        case "text/html": return (self, MailDecoding.plainText(fromHTML: text))
        default: return nil
        }
    }

    private func isSame(as other: MIMEPart?) -> Bool {
        guard let other else { return false }
        return body.startIndex == other.body.startIndex && body.endIndex == other.body.endIndex
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
                let rest = line.dropFirst(delimiter.count)
                let closing = rest.starts(with: [UInt8(ascii: "-"), UInt8(ascii: "-")])
                if closing || rest.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }) {
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
