import Foundation

/// Decoding of what mail encodes: charsets, RFC 2047 encoded words, quoted-printable, base64,
/// RFC 2231 parameters. Lenient throughout: what cannot be decoded is shown as it is, never
/// an error, as mail clients do.
public enum MailDecoding {
    /// Text in `charset`. UTF-8, US-ASCII, ISO-8859-1 and -15, Windows-1252 and UTF-16 are
    /// decoded here, any other charset the C library's iconv knows (KOI8-R, ISO-2022-JP, GB2312,
    /// ISO-8859-2 …) by iconv; what is in none of them, or does not decode in its charset, is read
    /// as UTF-8 where valid, else as ISO-8859-1.
    public static func text(_ bytes: some Collection<UInt8>, charset: String?) -> String {
        let bytes = Array(bytes)
        switch charset?.lowercased().trimmingCharacters(in: .whitespaces) {
        case "iso-8859-1", "latin1", "iso8859-1", "iso_8859-1", "l1":
            return latin1(bytes)
        case "iso-8859-15", "latin-9", "iso8859-15":
            return String(latin1(bytes).map { latin9Differences[$0] ?? $0 })
        case "windows-1252", "cp1252":
            return String(data: Data(bytes), encoding: .windowsCP1252) ?? latin1(bytes)
        case "utf-16", "utf-16le", "utf-16be":
            return String(data: Data(bytes), encoding: .utf16) ?? latin1(bytes)
        case nil, "utf-8", "utf8", "us-ascii", "ascii":
            return String(validating: bytes, as: UTF8.self) ?? latin1(bytes)
        case let other?:
            return converted(bytes, from: other) ?? String(validating: bytes, as: UTF8.self) ?? latin1(bytes)
        }
    }

    /// `bytes` in `charset` through iconv, as UTF-8; nil when iconv does not know the charset or
    /// the bytes are not valid in it.
    private static func converted(_ bytes: [UInt8], from charset: String) -> String? {
        let converter = iconv_open("UTF-8", charset)
        guard let converter, converter != iconv_t(bitPattern: -1) else { return nil }
        defer { iconv_close(converter) }
        var input = bytes.map { CChar(bitPattern: $0) }
        var output = [CChar](repeating: 0, count: bytes.count * 4 + 16)
        let written = input.withUnsafeMutableBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target -> Int? in
                var inPointer = source.baseAddress, inLeft = source.count
                var outPointer = target.baseAddress, outLeft = target.count
                guard iconv(converter, &inPointer, &inLeft, &outPointer, &outLeft) != -1, inLeft == 0,
                      iconv(converter, nil, nil, &outPointer, &outLeft) != -1 else { return nil }
                return target.count - outLeft
            }
        }
        guard let written else { return nil }
        return String(validating: output.prefix(written).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func latin1(_ bytes: [UInt8]) -> String {
        String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
    }

    /// Where ISO-8859-15 differs from ISO-8859-1.
    private static let latin9Differences: [Character: Character] = [
        "\u{A4}": "€", "\u{A6}": "Š", "\u{A8}": "š", "\u{B4}": "Ž", "\u{B8}": "ž", "\u{BC}": "Œ", "\u{BD}": "œ", "\u{BE}": "Ÿ",
    ]

    /// A header value with its RFC 2047 encoded words (`=?UTF-8?B?w6Q=?=`) decoded; whitespace
    /// between two encoded words is dropped, as the RFC says. 8-bit bytes in a raw header are
    /// taken as UTF-8, else ISO-8859-1.
    public static func headerText(_ raw: [UInt8]) -> String {
        let value = text(raw, charset: nil)
        var result = ""
        var rest = Substring(value)
        var pendingSpace = ""
        var previousWasEncoded = false
        while let start = rest.firstRange(of: "=?") {  // the standard library's: Foundation's copies `rest` each time
            let before = rest[..<start.lowerBound]
            guard let word = encodedWord(at: rest[start.lowerBound...]) else {
                result += pendingSpace + before + "=?"
                pendingSpace = ""
                previousWasEncoded = false
                rest = rest[start.upperBound...]
                continue
            }
            if previousWasEncoded && before.allSatisfy(\.isWhitespace) {
                // Joined to the previous encoded word.
            } else {
                result += pendingSpace + before
            }
            result += word.text
            pendingSpace = ""
            previousWasEncoded = true
            rest = rest[word.end...]
        }
        return (result + pendingSpace + rest).replacingOccurrences(of: "\r", with: "").replacingOccurrences(of: "\n", with: "")
    }

    /// `=?charset?B|Q?text?=` at the start of `text`: the decoded text and where the word ends.
    private static func encodedWord(at text: Substring) -> (text: String, end: Substring.Index)? {
        // A word is short (RFC 2047: 75 characters); looking further would read the rest of the
        // header for every "=?" that starts no word.
        let parts = text.dropFirst(2).prefix(1100).split(separator: "?", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, parts[3].hasPrefix("="), !parts[0].isEmpty, parts[2].count < 1000,
              !parts[2].contains(where: \.isWhitespace) else { return nil }
        let charset = parts[0].split(separator: "*").first.map(String.init)  // RFC 2231 language suffix
        let payload = Array(parts[2].utf8)
        let bytes: [UInt8]
        switch parts[1].uppercased() {
        case "B": bytes = base64(payload)
        case "Q": bytes = quotedPrintable(payload.map { $0 == UInt8(ascii: "_") ? UInt8(ascii: " ") : $0 })
        default: return nil
        }
        return (self.text(bytes, charset: charset), text.index(after: parts[3].startIndex))
    }

    /// Quoted-printable (`=C3=A4`, soft line breaks `=` at a line end) decoded; a stray `=` stays.
    public static func quotedPrintable(_ bytes: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "=") else {
                output.append(byte)
                index += 1
                continue
            }
            var next = index + 1
            while next < bytes.count && (bytes[next] == UInt8(ascii: " ") || bytes[next] == UInt8(ascii: "\t")) { next += 1 }
            if next < bytes.count && bytes[next] == UInt8(ascii: "\r") { next += 1 }
            if next < bytes.count && bytes[next] == UInt8(ascii: "\n") {
                index = next + 1  // soft line break
            } else if index + 2 < bytes.count, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) {
                output.append(high << 4 | low)
                index += 3
            } else if next >= bytes.count {
                index = next  // `=` at the very end: a soft break without its newline
            } else {
                output.append(byte)
                index += 1
            }
        }
        return output
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    /// Base64 decoded, skipping line breaks and anything else outside the alphabet.
    public static func base64(_ bytes: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in bytes {
            let value: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"), UInt8(ascii: "-"): value = 62
            case UInt8(ascii: "/"), UInt8(ascii: "_"): value = 63
            case UInt8(ascii: "="): return output
            default: continue
            }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return output
    }

    /// A structured header value split into its main value and parameters
    /// (`text/plain; charset="utf-8"`), with RFC 2231 forms (`filename*=utf-8''%E2%82%AC`,
    /// `name*0*=…; name*1*=…`) joined and decoded, and RFC 2047 words in values decoded unless
    /// `decodingWords` is false (a boundary is taken exactly as written).
    public static func parameters(_ value: String, decodingWords: Bool = true)
        -> (value: String, parameters: [String: String]) {
        var pieces: [String] = []
        var current = ""
        var inQuotes = false
        var escaped = false
        for character in value {
            if escaped {
                current.append(character)
                escaped = false
            } else if inQuotes && character == "\\" {
                escaped = true
            } else if character == "\"" {
                inQuotes.toggle()
            } else if character == ";" && !inQuotes {
                pieces.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        pieces.append(current)
        let main = pieces.removeFirst().trimmingCharacters(in: .whitespaces)
        var plain: [String: String] = [:]
        var extended: [String: [(index: Int, encoded: Bool, text: String)]] = [:]
        for piece in pieces {
            guard let equals = piece.firstIndex(of: "=") else { continue }
            var name = piece[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let text = piece[piece.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            let encoded = name.hasSuffix("*")
            if encoded { name.removeLast() }
            if let star = name.firstIndex(of: "*"), let index = Int(name[name.index(after: star)...]) {
                extended[String(name[..<star]), default: []].append((index, encoded, text))
            } else if encoded {
                extended[name, default: []].append((0, true, text))
            } else {
                plain[name] = decodingWords ? headerText(Array(text.utf8)) : text
            }
        }
        for (name, sections) in extended {
            let ordered = sections.sorted { $0.index < $1.index }
            var charset: String?
            var bytes: [UInt8] = []
            for (position, section) in ordered.enumerated() {
                var text = Substring(section.text)
                if section.encoded && position == 0 {
                    let fields = text.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
                    if fields.count == 3 {
                        charset = String(fields[0])
                        text = fields[2]
                    }
                }
                bytes += section.encoded ? percentDecoded(text) : Array(text.utf8)
            }
            plain[name] = self.text(bytes, charset: charset)
        }
        return (main, plain)
    }

    private static func percentDecoded(_ text: Substring) -> [UInt8] {
        let bytes = Array(text.utf8)
        var output: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.count,
               let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) {
                output.append(high << 4 | low)
                index += 3
            } else {
                output.append(bytes[index])
                index += 1
            }
        }
        return output
    }

    /// The readable text of an HTML body: scripts and styles dropped, block ends as line breaks,
    /// tags removed, entities decoded, blank lines collapsed.
    public static func plainText(fromHTML html: String) -> String {
        var text = html
        for element in ["script", "style", "head"] {
            text = text.replacingOccurrences(of: "<\(element)[^>]*>.*?</\(element)\\s*>", with: "",
                                             options: [.regularExpression, .caseInsensitive])
        }
        text = text.replacingOccurrences(of: "<!--.*?-->", with: "", options: .regularExpression)
        text = text.replacingOccurrences(of: "\\s+", with: " ", options: .regularExpression)
        text = text.replacingOccurrences(of: "<(br|/p|/div|/tr|/h[1-6]|/table|/ul|/ol|hr)[^>]*>", with: "\n",
                                         options: [.regularExpression, .caseInsensitive])
        text = text.replacingOccurrences(of: "<li[^>]*>", with: "\n- ", options: [.regularExpression, .caseInsensitive])
        text = text.replacingOccurrences(of: "<[^>]*>", with: "", options: .regularExpression)
        text = decodeEntities(text)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        var result: [String] = []
        for line in lines where !(line.isEmpty && (result.last?.isEmpty ?? true)) { result.append(line) }
        while result.last?.isEmpty == true { result.removeLast() }
        return result.joined(separator: "\n")
    }

    private static let namedEntities: [String: String] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": " ", "copy": "©", "reg": "®",
        "euro": "€", "hellip": "…", "mdash": "—", "ndash": "–", "laquo": "«", "raquo": "»",
    ]

    private static func decodeEntities(_ text: String) -> String {
        var result = ""
        var rest = Substring(text)
        while let ampersand = rest.firstIndex(of: "&") {
            result += rest[..<ampersand]
            let after = rest[rest.index(after: ampersand)...]
            if let semicolon = after.prefix(10).firstIndex(of: ";") {
                let name = after[..<semicolon]
                var replacement: String?
                if name.hasPrefix("#x") || name.hasPrefix("#X") {
                    replacement = UInt32(name.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init).map { String($0) }
                } else if name.hasPrefix("#") {
                    replacement = UInt32(name.dropFirst()).flatMap(Unicode.Scalar.init).map { String($0) }
                } else {
                    replacement = namedEntities[String(name)]
                }
                if let replacement {
                    result += replacement
                    rest = after[after.index(after: semicolon)...]
                    continue
                }
            }
            result += "&"
            rest = after
        }
        return result + rest
    }
}
