import Foundation

/// A span of time written as `500ms`, `30s`, `5m`, `2h`, `1d` or combined (`1h30m`).
public struct TimeSpan: Equatable, Comparable, Sendable, CustomStringConvertible, Decodable {
    public let seconds: Double

    /// The longest duration a policy may give: 100 years, far beyond any use, and well within what
    /// every timer and counter the agent hands a duration to can hold.
    public static let maximum = TimeSpan(seconds: 36_500 * 86_400)

    public init(seconds: Double) { self.seconds = seconds }

    /// Nil when `text` is not a duration or is longer than `maximum`.
    public init?(parsing text: String) {
        guard let seconds = Self.seconds(in: text), seconds <= Self.maximum.seconds else { return nil }
        self.seconds = seconds
    }

    /// The seconds `text` says, however many.
    private static func seconds(in text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400), ("w", 604_800)]
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        var total = 0.0
        guard !rest.isEmpty else { return nil }
        if rest == "0" { return 0 }  // nothing, in any unit
        while !rest.isEmpty {
            let number = rest.prefix(while: { $0.isASCII && ($0.isNumber || $0 == ".") })
            guard let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unitText = rest.prefix(while: { $0.isLetter })
            guard let unit = units.first(where: { $0.0 == unitText }) else { return nil }
            rest = rest.dropFirst(unitText.count)
            total += value * unit.1
        }
        return total
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let seconds = Self.seconds(in: text) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "'\(text)' is not a duration: write a number and a unit, such as 500ms, 30s, 5m, 2h or 1d")
        }
        guard seconds <= Self.maximum.seconds else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "'\(text)' is too long: a duration is at most \(Self.maximum)")
        }
        self.init(seconds: seconds)
    }

    public static func < (lhs: TimeSpan, rhs: TimeSpan) -> Bool { lhs.seconds < rhs.seconds }

    public var description: String {
        let units: [(String, Double)] = [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)]
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        var rest = Int(seconds.rounded())
        var text = ""
        for (unit, size) in units where rest >= Int(size) {
            text += "\(rest / Int(size))\(unit)"
            rest %= Int(size)
        }
        return text
    }
}

/// A size in bytes written as `100`, `512KiB`, `10MB`, `1.5GiB`; K, M, G alone are binary.
public struct ByteSize: Equatable, Comparable, Sendable, CustomStringConvertible, Decodable {
    public let bytes: Int64

    /// The largest size a policy may give: 1024 TiB, beyond any file system, and well within the
    /// 64-bit byte counts sizes are compared with.
    public static let maximum = ByteSize(bytes: 1 << 50)

    public init(bytes: Int64) { self.bytes = bytes }

    /// Nil when `text` is not a size or is larger than `maximum`.
    public init?(parsing text: String) {
        guard let bytes = Self.bytes(in: text), bytes <= Double(Self.maximum.bytes) else { return nil }
        self.bytes = Int64(bytes)
    }

    /// The bytes `text` says, however many.
    private static func bytes(in text: String) -> Double? {
        let units: [String: Double] = [
            "": 1, "B": 1,
            "K": 1024, "KiB": 1024, "KB": 1000,
            "M": 1_048_576, "MiB": 1_048_576, "MB": 1e6,
            "G": 1_073_741_824, "GiB": 1_073_741_824, "GB": 1e9,
            "T": 1_099_511_627_776, "TiB": 1_099_511_627_776, "TB": 1e12,
        ]
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let number = trimmed.prefix(while: { $0.isASCII && ($0.isNumber || $0 == ".") })
        let unit = trimmed.dropFirst(number.count).trimmingCharacters(in: .whitespaces)
        guard let value = Double(number), let factor = units[unit] else { return nil }
        return (value * factor).rounded(.down)
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try (try? container.decode(Int64.self)).map(String.init) ?? container.decode(String.self)
        guard let bytes = Self.bytes(in: text) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "'\(text)' is not a size: write bytes or a number with a unit, such as 512KiB, 10MB or 2GiB")
        }
        guard bytes <= Double(Self.maximum.bytes) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "'\(text)' is too large: a size is at most \(Self.maximum)")
        }
        self.init(bytes: Int64(bytes))
    }

    public static func < (lhs: ByteSize, rhs: ByteSize) -> Bool { lhs.bytes < rhs.bytes }

    public var description: String {
        let units: [(String, Int64)] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        for (unit, size) in units where bytes >= size && bytes % size == 0 { return "\(bytes / size)\(unit)" }
        for (unit, size) in units where bytes >= size {
            return String(format: "%.1f%@", Double(bytes) / Double(size), unit)
        }
        return "\(bytes) B"
    }
}
