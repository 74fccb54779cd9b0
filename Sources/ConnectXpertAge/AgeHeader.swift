import Crypto

/// One recipient stanza: `-> type arguments…` and its body, the wrapped file key.
public struct AgeStanza: Equatable, Sendable {
    public var type: String
    public var arguments: [String]
    public var body: [UInt8]

    public init(type: String, arguments: [String], body: [UInt8]) {
        self.type = type
        self.arguments = arguments
        self.body = body
    }
}

/// The header of an age file: the version line, the stanzas and the MAC over them.
struct AgeHeader {
    static let versionLine = "age-encryption.org/v1"
    /// Bounds on what a header may hold, so a hostile file cannot make us read without end.
    static let maximumLine = 8 * 1024
    static let maximumStanzas = 256
    static let maximumSize = 256 * 1024

    var stanzas: [AgeStanza]
    var mac: [UInt8]
    /// The header's bytes through `---`, which the MAC covers.
    var authenticated: [UInt8]

    /// A header for `stanzas`, its MAC made with the file key.
    init(stanzas: [AgeStanza], fileKey: SymmetricKey) {
        self.stanzas = stanzas
        var text = Self.versionLine + "\n"
        for stanza in stanzas {
            text += (["->", stanza.type] + stanza.arguments).joined(separator: " ") + "\n"
            // Lines of 64 columns; the last is shorter, so it is empty after a full one.
            var body = Substring(AgeBase64.encode(stanza.body))
            while body.count >= 64 {
                text += body.prefix(64) + "\n"
                body = body.dropFirst(64)
            }
            text += body + "\n"
        }
        text += "---"
        authenticated = Array(text.utf8)
        mac = Self.mac(of: authenticated, fileKey: fileKey)
    }

    /// The whole header as written: through `---`, a space, the MAC and a newline.
    var encoded: [UInt8] { authenticated + Array((" " + AgeBase64.encode(mac) + "\n").utf8) }

    static func mac(of authenticated: [UInt8], fileKey: SymmetricKey) -> [UInt8] {
        let key = HKDF<SHA256>.deriveKey(inputKeyMaterial: fileKey, salt: [UInt8](), info: Array("header".utf8),
                                         outputByteCount: 32)
        return Array(HMAC<SHA256>.authenticationCode(for: authenticated, using: key))
    }

    /// True when the MAC is the one `fileKey` makes, compared in constant time.
    func isAuthentic(with fileKey: SymmetricKey) -> Bool {
        let key = HKDF<SHA256>.deriveKey(inputKeyMaterial: fileKey, salt: [UInt8](), info: Array("header".utf8),
                                         outputByteCount: 32)
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: authenticated, using: key)
    }

    /// Reads a header from `input`.
    init(reading input: inout AgeLines) throws {
        var authenticated: [UInt8] = []
        func line() throws -> Substring {
            guard let bytes = input.line(maximum: Self.maximumLine) else {
                throw AgeError.header("the header ends before its MAC line")
            }
            authenticated += bytes + [10]
            guard authenticated.count <= Self.maximumSize else {
                throw AgeError.header("the header is larger than \(Self.maximumSize / 1024) KiB")
            }
            guard bytes.allSatisfy({ $0 >= 32 && $0 <= 126 }) else {
                throw AgeError.header("a header line holds a character that is not printable ASCII")
            }
            return Substring(decoding: bytes, as: UTF8.self)
        }
        guard try line() == Self.versionLine else {
            throw AgeError.header("the first line is not '\(Self.versionLine)' (not an age file, or another version)")
        }
        var stanzas: [AgeStanza] = []
        var next = try line()
        while next.hasPrefix("-> ") || next == "->" {
            guard stanzas.count < Self.maximumStanzas else {
                throw AgeError.header("more than \(Self.maximumStanzas) stanzas")
            }
            let words = next.dropFirst(3).split(separator: " ", omittingEmptySubsequences: false)
            guard next.count > 3, words.allSatisfy({ !$0.isEmpty }) else {
                throw AgeError.header("a stanza line has no type or an empty argument")
            }
            var body: [UInt8] = []
            while true {
                let bodyLine = try line()
                guard bodyLine.count <= 64, let bytes = AgeBase64.decode(bodyLine) else {
                    throw AgeError.header("a stanza's body line is not canonical base64 of at most 64 columns")
                }
                body += bytes
                if bodyLine.count < 64 { break }
            }
            stanzas.append(AgeStanza(type: String(words[0]), arguments: words.dropFirst().map(String.init), body: body))
            next = try line()
        }
        guard next.hasPrefix("--- "), let mac = AgeBase64.decode(next.dropFirst(4)), mac.count == 32 else {
            throw AgeError.header("the MAC line is not '--- ' and the base64 of 32 bytes")
        }
        self.stanzas = stanzas
        self.mac = mac
        self.authenticated = authenticated.dropLast(next.count - 3 + 1)
    }
}
