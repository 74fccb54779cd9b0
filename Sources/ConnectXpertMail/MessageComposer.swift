import ConnectXpertSystem
import Foundation

/// A message to build from its parts (`connectxpert mail send`).
public struct Composition: Sendable {
    public var from: String
    public var to: [String]
    public var cc: [String]
    public var bcc: [String]
    public var subject: String
    public var body: String
    /// Files to attach, by path; each is named by its last path component.
    public var attachments: [String]
    public var date: Date
    /// The domain for the Message-ID (`<random@domain>`).
    public var domain: String

    public init(from: String, to: [String], cc: [String], bcc: [String], subject: String, body: String,
                attachments: [String], date: Date = Date(), domain: String) {
        self.from = from
        self.to = to
        self.cc = cc
        self.bcc = bcc
        self.subject = subject
        self.body = body
        self.attachments = attachments
        self.date = date
        self.domain = domain
    }
}

/// Builds RFC 5322 / MIME messages: a text/plain body (7bit when it can be, else quoted-printable
/// UTF-8), attachments in base64 under multipart/mixed with a type guessed from the name, RFC 2047
/// encoded words for non-ASCII header text and RFC 2231 file names. Attachments are streamed to
/// `write` in pieces, so a large one is never held whole in memory.
public enum MessageComposer {
    public static func compose(_ message: Composition, write: ([UInt8]) throws -> Void) throws {
        var header = ""
        header += "From: \(encodeAddress(message.from))\r\n"
        if !message.to.isEmpty { header += "To: \(message.to.map(encodeAddress).joined(separator: ",\r\n "))\r\n" }
        if !message.cc.isEmpty { header += "Cc: \(message.cc.map(encodeAddress).joined(separator: ",\r\n "))\r\n" }
        if !message.bcc.isEmpty { header += "Bcc: \(message.bcc.map(encodeAddress).joined(separator: ",\r\n "))\r\n" }
        header += "Subject: \(encodeHeaderText(message.subject))\r\n"
        header += "Date: \(OutgoingMessage.dateFormatter.string(from: message.date))\r\n"
        let token = (0..<2).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 36) }.joined(separator: ".")
        header += "Message-ID: <\(token)@\(message.domain)>\r\n"
        header += "MIME-Version: 1.0\r\n"
        let text = textPart(message.body)
        guard !message.attachments.isEmpty else {
            try write(Array((header + text.header + "\r\n").utf8) + text.body)
            return
        }
        let boundary = "=_cx_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        header += "Content-Type: multipart/mixed; boundary=\"\(boundary)\"\r\n\r\n"
        header += "This is a message in MIME format.\r\n"
        try write(Array((header + "--\(boundary)\r\n" + text.header + "\r\n").utf8) + text.body)
        for path in message.attachments {
            let name = lastComponent(of: path)
            let part = "\r\n--\(boundary)\r\n"
                + "Content-Type: \(contentType(forName: name)); \(parameter("name", name))\r\n"
                + "Content-Disposition: attachment; \(parameter("filename", name))\r\n"
                + "Content-Transfer-Encoding: base64\r\n\r\n"
            try write(Array(part.utf8))
            try writeBase64(of: path, to: write)
        }
        try write(Array("\r\n--\(boundary)--\r\n".utf8))
    }

    /// The text part's header lines and its encoded body (CRLF line ends).
    static func textPart(_ body: String) -> (header: String, body: [UInt8]) {
        let lines = body.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false)
        let plain = body.utf8.allSatisfy { $0 < 0x80 } && lines.allSatisfy { $0.utf8.count <= 998 }
        var encoded: [UInt8] = []
        for (index, line) in lines.enumerated() {
            if index == lines.count - 1 && line.isEmpty { break }
            encoded += plain ? Array(line.utf8) : quotedPrintable(Array(line.utf8))
            encoded += [13, 10]
        }
        let header = "Content-Type: text/plain; charset=\(plain ? "us-ascii" : "utf-8")\r\n"
            + "Content-Transfer-Encoding: \(plain ? "7bit" : "quoted-printable")\r\n"
        return (header, encoded)
    }

    /// One line in quoted-printable (RFC 2045 §6.7), with soft breaks to keep lines at 76.
    static func quotedPrintable(_ line: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        var column = 0
        for (index, byte) in line.enumerated() {
            let isLast = index == line.count - 1
            let literal = (byte >= 33 && byte <= 126 && byte != UInt8(ascii: "=")) || ((byte == 32 || byte == 9) && !isLast)
            let piece: [UInt8] = literal ? [byte] : Array(String(format: "=%02X", byte).utf8)
            if column + piece.count > (isLast ? 76 : 75) {
                output += Array("=\r\n".utf8)
                column = 0
            }
            output += piece
            column += piece.count
        }
        return output
    }

    /// Base64 in 76-column lines, read from the file 57 KiB at a time (57 bytes make one line).
    static func writeBase64(of path: String, to write: ([UInt8]) throws -> Void) throws {
        let file = try FileDescriptor.openForReading(path)
        var chunk = [UInt8](repeating: 0, count: 57 * 1024)
        while true {
            let filled = try chunk.withUnsafeMutableBytes { try file.read(filling: $0) }
            if filled == 0 { return }
            let encoded = Data(chunk[0..<filled]).base64EncodedData(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
            try write(Array(encoded) + [13, 10])
            if filled < chunk.count { return }
        }
    }

    /// Header text as is when ASCII, else RFC 2047 encoded words (UTF-8, base64), each at most 75
    /// characters and never splitting a character, folded onto continuation lines.
    public static func encodeHeaderText(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { return text }
        var words: [[UInt8]] = []
        var current: [UInt8] = []
        for character in text {
            let bytes = Array(String(character).utf8)
            if current.count + bytes.count > 45 {
                words.append(current)
                current = []
            }
            current += bytes
        }
        if !current.isEmpty { words.append(current) }
        return words.map { "=?UTF-8?B?\(Data($0).base64EncodedString())?=" }.joined(separator: "\r\n ")
    }

    /// `Name <a@b>` with the name encoded when it is not ASCII; a bare address as is.
    static func encodeAddress(_ address: String) -> String {
        guard let open = address.lastIndex(of: "<") else { return address }
        let name = address[..<open].trimmingCharacters(in: .whitespaces)
        let rest = address[open...]
        guard !name.isEmpty else { return String(rest) }
        if name.utf8.allSatisfy({ $0 < 0x80 }) { return address }
        let unquoted = name.hasPrefix("\"") && name.hasSuffix("\"") && name.count >= 2 ? String(name.dropFirst().dropLast()) : name
        return "\(encodeHeaderText(unquoted)) \(rest)"
    }

    /// `name="file.pdf"`, or for a non-ASCII name RFC 2231's `name*=utf-8''%E2%82%AC.pdf`.
    static func parameter(_ key: String, _ value: String) -> String {
        if value.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) {
            return "\(key)=\"\(value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\""
        }
        let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)
        let encoded = value.utf8.map { unreserved.contains($0) ? String(UnicodeScalar($0)) : String(format: "%%%02X", $0) }.joined()
        return "\(key)*=utf-8''\(encoded)"
    }

    static func contentType(forName name: String) -> String {
        let ext = name.split(separator: ".").count > 1 ? name.split(separator: ".").last.map { $0.lowercased() } ?? "" : ""
        return contentTypes[ext] ?? "application/octet-stream"
    }

    static let contentTypes: [String: String] = [
        "txt": "text/plain", "text": "text/plain", "log": "text/plain", "csv": "text/csv", "html": "text/html",
        "htm": "text/html", "xml": "application/xml", "json": "application/json", "yaml": "application/yaml", "yml": "application/yaml", "pdf": "application/pdf",
        "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
        "svg": "image/svg+xml", "zip": "application/zip", "gz": "application/gzip", "tar": "application/x-tar",
        "doc": "application/msword", "xls": "application/vnd.ms-excel",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "odt": "application/vnd.oasis.opendocument.text", "ods": "application/vnd.oasis.opendocument.spreadsheet",
        "mp3": "audio/mpeg", "wav": "audio/wav", "mp4": "video/mp4", "eml": "message/rfc822", "ics": "text/calendar",
    ]
}
