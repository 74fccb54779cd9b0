import Crypto
import ConnectXpertSystem
import Foundation
import Synchronization

/// Where a viewer's RFB bytes go: a TCP connection, or a WebSocket over one.
protocol ViewerLink: RFBInput, Sendable {
    /// `host:port` of the viewer, for the log.
    var peer: String { get }
    func write(_ bytes: [UInt8]) throws
}

extension RFBConnection: ViewerLink {}

/// The agent's web port (`jobs.screen_share.websocket`): each connection is one HTTP request,
/// either a WebSocket upgrade (RFC 6455) carrying RFB in binary messages, as websockify and
/// libvncserver serve noVNC, or a GET for a file of the noVNC page (`pages`, Debian's
/// `/usr/share/novnc`, when installed).
struct WebPort: Sendable {
    /// The folder of the pages served, or `nil`: WebSocket only.
    let pages: String?

    /// Debian's `novnc` package.
    static let debianPages = "/usr/share/novnc"

    /// Reads the request; returns the WebSocket to speak RFB over, or `nil` when the request was for
    /// a page (answered, and the connection is done).
    func open(_ connection: RFBConnection) throws -> WebSocketLink? {
        let request = try HTTPRequest(reading: connection)
        if request.header("upgrade")?.lowercased() == "websocket" {
            return try WebSocketLink.accept(request, on: connection)
        }
        try serve(request, on: connection)
        return nil
    }

    private func serve(_ request: HTTPRequest, on connection: RFBConnection) throws {
        guard request.method == "GET" || request.method == "HEAD" else {
            return try connection.respond(405, "Method Not Allowed", body: "only GET is served here\n")
        }
        guard let pages else {
            return try connection.respond(404, "Not Found", body: "this port serves RFB over WebSocket only; install "
                + "Debian's novnc package for its page\n")
        }
        var path = request.path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/"
        path = path.removingPercentEncoding ?? path
        if path == "/" {
            return try connection.respond(302, "Found", headers: ["Location: /vnc.html"], body: "")
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard !parts.contains(where: { $0.isEmpty || $0.hasPrefix(".") }),
              let contents = try? FileSystem.readFile(joinPath(pages, parts.joined(separator: "/"))) else {
            return try connection.respond(404, "Not Found", body: "no such page\n")
        }
        let type = Self.contentTypes[path.split(separator: ".").last.map { String($0).lowercased() } ?? ""]
        try connection.respond(200, "OK", headers: ["Content-Type: \(type ?? "application/octet-stream")"],
                               body: request.method == "HEAD" ? [] : contents, length: contents.count)
    }

    private static let contentTypes = [
        "html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css",
        "json": "application/json", "svg": "image/svg+xml", "png": "image/png", "ico": "image/x-icon",
        "oga": "audio/ogg", "mp3": "audio/mpeg", "woff": "font/woff", "woff2": "font/woff2",
    ]
}

/// One HTTP/1.1 request line and its header fields.
struct HTTPRequest {
    let method: String
    let path: String
    private let fields: [(name: String, value: String)]

    /// The largest request header taken.
    static let limit = 16 * 1024

    init(reading connection: RFBConnection) throws {
        var header: [UInt8] = []
        while !header.suffix(4).elementsEqual([13, 10, 13, 10]) {
            guard header.count < Self.limit else {
                try? connection.respond(431, "Request Header Fields Too Large", body: "")
                throw RFBError.protocolViolation("an HTTP request header over \(Self.limit) bytes")
            }
            header += try connection.read(1)
        }
        let lines = String(decoding: header, as: UTF8.self).components(separatedBy: "\r\n")
        let request = lines[0].split(separator: " ")
        guard request.count == 3, request[2].hasPrefix("HTTP/1.") else {
            throw RFBError.protocolViolation("not an HTTP request: \(lines[0].prefix(60))")
        }
        method = String(request[0])
        path = String(request[1])
        fields = lines.dropFirst().compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
    }

    /// A field's value; fields given more than once are joined with commas (RFC 9110 5.3).
    func header(_ name: String) -> String? {
        let values = fields.filter { $0.name == name }.map(\.value)
        return values.isEmpty ? nil : values.joined(separator: ", ")
    }

    /// The comma-separated tokens of a field.
    func tokens(_ name: String) -> [String] {
        (header(name) ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
    }
}

extension RFBConnection {
    /// An HTTP response, after which the connection is closed.
    func respond(_ status: Int, _ reason: String, headers: [String] = [], body: String) throws {
        try respond(status, reason, headers: headers + ["Content-Type: text/plain; charset=utf-8"],
                    body: Array(body.utf8), length: body.utf8.count)
    }

    func respond(_ status: Int, _ reason: String, headers: [String], body: [UInt8], length: Int) throws {
        let head = (["HTTP/1.1 \(status) \(reason)", "Content-Length: \(length)", "Connection: close",
                     "Cache-Control: no-cache"] + headers).joined(separator: "\r\n") + "\r\n\r\n"
        try write(Array(head.utf8) + body)
    }
}

/// RFB in WebSocket binary messages (RFC 6455), the server's side: what the viewer sends is
/// unmasked and read as one stream whatever its framing; what the server writes goes as one binary
/// message a write. Pings are answered; a close is answered and ends the link.
// Sendable: the read state is used by the one reading thread alone; writes are serialized by `writing`.
final class WebSocketLink: ViewerLink, @unchecked Sendable {
    private let connection: RFBConnection
    private let writing = Mutex(())
    /// Payload bytes of the current message not read yet.
    private var pending: [UInt8] = []
    private var offset = 0

    var peer: String { connection.peer }

    private init(connection: RFBConnection) { self.connection = connection }

    /// Answers an upgrade request (RFC 6455 4.2.2); a request it cannot take is answered 400.
    static func accept(_ request: HTTPRequest, on connection: RFBConnection) throws -> WebSocketLink {
        guard request.method == "GET", request.tokens("connection").contains("upgrade"),
              request.header("sec-websocket-version") == "13", let key = request.header("sec-websocket-key") else {
            try? connection.respond(400, "Bad Request", headers: ["Sec-WebSocket-Version: 13"],
                                    body: "a WebSocket upgrade needs Connection: Upgrade, version 13 and a key\n")
            throw RFBError.protocolViolation("a WebSocket upgrade that is not RFC 6455")
        }
        // noVNC asks for "binary", or for no subprotocol; websockify's old "base64" is not spoken.
        let offered = request.tokens("sec-websocket-protocol")
        guard offered.isEmpty || offered.contains("binary") else {
            try? connection.respond(400, "Bad Request", body: "only the binary subprotocol is spoken\n")
            throw RFBError.protocolViolation("the viewer offered WebSocket subprotocols \(offered), not binary")
        }
        let digest = Insecure.SHA1.hash(data: Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))
        var response = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
                        "Sec-WebSocket-Accept: \(Data(digest).base64EncodedString())"]
        if !offered.isEmpty { response.append("Sec-WebSocket-Protocol: binary") }
        try connection.write(Array((response.joined(separator: "\r\n") + "\r\n\r\n").utf8))
        return WebSocketLink(connection: connection)
    }

    func read(_ count: Int) throws -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(count)
        while output.count < count {
            if offset == pending.count { try nextData() }
            let taken = min(count - output.count, pending.count - offset)
            output += pending[offset..<(offset + taken)]
            offset += taken
        }
        return output
    }

    func write(_ bytes: [UInt8]) throws { try send(opcode: 2, bytes) }

    /// Reads frames until one carries data (binary, text or continuation), answering control frames.
    private func nextData() throws {
        while true {
            let head = try connection.read(2)
            let opcode = head[0] & 0x0F
            guard head[1] & 0x80 != 0 else { throw RFBError.protocolViolation("a WebSocket frame not masked") }
            var length = UInt64(head[1] & 0x7F)
            if length == 126 {
                length = try connection.read(2).reduce(0) { $0 << 8 | UInt64($1) }
            } else if length == 127 {
                length = try connection.read(8).reduce(0) { $0 << 8 | UInt64($1) }
            }
            guard length <= 1 << 24 else {
                throw RFBError.protocolViolation("a WebSocket frame of \(length) bytes")
            }
            let mask = try connection.read(4)
            var payload = try connection.read(Int(length))
            for index in payload.indices { payload[index] ^= mask[index & 3] }
            switch opcode {
            case 0, 1, 2:
                guard !payload.isEmpty else { continue }
                pending = payload
                offset = 0
                return
            case 8:
                try? send(opcode: 8, Array(payload.prefix(2)))
                throw RFBError.connection("\(peer) closed the WebSocket")
            case 9:
                try send(opcode: 10, payload)
            case 10:
                continue
            default:
                throw RFBError.protocolViolation("WebSocket opcode \(opcode)")
            }
        }
    }

    /// One unmasked final frame.
    private func send(opcode: UInt8, _ payload: [UInt8]) throws {
        var frame: [UInt8] = [0x80 | opcode]
        switch payload.count {
        case ..<126: frame.append(UInt8(payload.count))
        case ..<65536: frame += [126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        default: frame += [127] + (0..<8).reversed().map { UInt8(UInt64(payload.count) >> ($0 * 8) & 0xFF) }
        }
        try writing.withLock { _ in
            try connection.write(frame)
            try connection.write(payload)
        }
    }
}
