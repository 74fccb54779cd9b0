/// Yams' decoder with the policy's rules added, so each document type declares its fields and
/// nothing else (its `init(from:)` is synthesized):
/// - a mapping read as a `PolicySection` refuses keys its `CodingKeys` do not list, with a
///   suggestion, and keys that would put a secret into the policy, with advice;
/// - a `PolicyChoice` misspelled gets a suggestion;
/// - a list of `StandsAlone` elements may be written as its one element (`recipients: "*"`).
/// Problems are `PolicyIssue`s located by their coding path; Yams' own errors pass through.
struct PolicyDecoder: Decoder {
    let base: Decoder

    var codingPath: [CodingKey] { base.codingPath }
    var userInfo: [CodingUserInfoKey: Any] { base.userInfo }

    /// Decodes `type` from the value `base` reads, by the policy's rules.
    static func decode<T: Decodable>(_ type: T.Type, from base: Decoder) throws -> T {
        if let choice = type as? any PolicyChoice.Type {
            return try choice.decodeChoice(from: base) as! T  // swiftlint:disable:this force_cast
        }
        if let list = type as? any ListOfStandsAlone.Type, (try? base.unkeyedContainer()) == nil {
            return try list.one(from: base) as! T  // swiftlint:disable:this force_cast
        }
        if let section = type as? any PolicySection.Type {
            try checkKeys(of: base, known: section.knownKeys)
        }
        return try T(from: PolicyDecoder(base: base))
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(KeyedContainer(base: try base.container(keyedBy: type)))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        UnkeyedContainer(base: try base.unkeyedContainer())
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer {
        SingleValueContainer(base: try base.singleValueContainer(), decoder: base)
    }

    /// Refuses a secret's key first (its advice beats a suggestion), then any key not `known`.
    private static func checkKeys(of decoder: Decoder, known: [String]) throws {
        let keys = try decoder.container(keyedBy: AnyCodingKey.self).allKeys
        if let key = keys.first(where: { inlineSecretKeys.contains($0.stringValue) }) {
            throw PolicyIssue(
                codingPath: decoder.codingPath + [key], atKey: true,
                message: "secrets are never written in policies.yaml: put it in a file only its owner can read "
                    + "(chmod 600) and name it with password_file: (or key_file:), or name an environment variable "
                    + "with password_env:")
        }
        for key in keys where !known.contains(key.stringValue) {
            var message = "unknown key '\(key.stringValue)'"
            if let suggestion = closestMatch(to: key.stringValue, in: known) {
                message += "; did you mean '\(suggestion)'?"
            } else {
                message += "; known keys here: " + known.joined(separator: ", ")
            }
            throw PolicyIssue(codingPath: decoder.codingPath + [key], atKey: true, message: message)
        }
    }
}

/// Keys that would put a secret into the policy itself.
private let inlineSecretKeys = ["password", "passphrase", "secret", "token", "private_key", "key"]

/// A mapping in the policy: the keys it takes are its `CodingKeys`, and `alsoKnown`.
protocol PolicySection: Decodable {
    associatedtype CodingKeys: CodingKey & CaseIterable
    /// Keys that another section reads from the same mapping.
    static var alsoKnown: [String] { get }
}

extension PolicySection {
    static var alsoKnown: [String] { [] }
    static var knownKeys: [String] { CodingKeys.allCases.map(\.stringValue) + alsoKnown }
}

/// One of a fixed set of words.
protocol PolicyChoice: RawRepresentable<String>, CaseIterable, Decodable {}

extension PolicyChoice {
    static func decodeChoice(from decoder: Decoder) throws -> Self {
        let text = try decoder.singleValueContainer().decode(String.self)
        if let value = Self(rawValue: text) { return value }
        let choices = allCases.map(\.rawValue)
        var message = "'\(text)' is not one of " + choices.joined(separator: ", ")
        if let suggestion = closestMatch(to: text, in: choices) { message += "; did you mean '\(suggestion)'?" }
        throw PolicyIssue(codingPath: decoder.codingPath, atKey: false, message: message)
    }
}

/// An element whose list may be written as the element alone.
protocol StandsAlone: Decodable {}

/// A list of `StandsAlone` elements.
protocol ListOfStandsAlone {
    static func one(from decoder: Decoder) throws -> Self
}

extension Array: ListOfStandsAlone where Element: StandsAlone {
    static func one(from decoder: Decoder) throws -> [Element] {
        [try PolicyDecoder.decode(Element.self, from: decoder)]
    }
}

/// A problem found while decoding, located by its coding path; turned into a `PolicyError` with a
/// line and column by the loader.
struct PolicyIssue: Error {
    var codingPath: [CodingKey]
    /// Point at the key itself rather than its value.
    var atKey: Bool
    var message: String
}

struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) {
        self.stringValue = "\(intValue)"
        self.intValue = intValue
    }
}

// MARK: - The containers: each passes a value it holds back to `PolicyDecoder.decode`.

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let base: KeyedDecodingContainer<Key>

    var codingPath: [CodingKey] { base.codingPath }
    var allKeys: [Key] { base.allKeys }
    func contains(_ key: Key) -> Bool { base.contains(key) }
    func decodeNil(forKey key: Key) throws -> Bool { try base.decodeNil(forKey: key) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try PolicyDecoder.decode(type, from: base.superDecoder(forKey: key))
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try base.decode(type, forKey: key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try base.decode(type, forKey: key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try base.decode(type, forKey: key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try base.decode(type, forKey: key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try base.decode(type, forKey: key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try base.decode(type, forKey: key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try base.decode(type, forKey: key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try base.decode(type, forKey: key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try base.decode(type, forKey: key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try base.decode(type, forKey: key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try base.decode(type, forKey: key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try base.decode(type, forKey: key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try base.decode(type, forKey: key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try base.decode(type, forKey: key) }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try PolicyDecoder(base: base.superDecoder(forKey: key)).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try PolicyDecoder(base: base.superDecoder(forKey: key)).unkeyedContainer()
    }

    func superDecoder() throws -> Decoder { PolicyDecoder(base: try base.superDecoder()) }
    func superDecoder(forKey key: Key) throws -> Decoder { PolicyDecoder(base: try base.superDecoder(forKey: key)) }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    var base: UnkeyedDecodingContainer

    var codingPath: [CodingKey] { base.codingPath }
    var count: Int? { base.count }
    var isAtEnd: Bool { base.isAtEnd }
    var currentIndex: Int { base.currentIndex }
    mutating func decodeNil() throws -> Bool { try base.decodeNil() }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try PolicyDecoder.decode(type, from: base.superDecoder())
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try base.decode(type) }
    mutating func decode(_ type: String.Type) throws -> String { try base.decode(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try base.decode(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try base.decode(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try base.decode(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try base.decode(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try base.decode(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try base.decode(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try base.decode(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try base.decode(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try base.decode(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try base.decode(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try base.decode(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try base.decode(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try PolicyDecoder(base: base.superDecoder()).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        try PolicyDecoder(base: base.superDecoder()).unkeyedContainer()
    }

    mutating func superDecoder() throws -> Decoder { PolicyDecoder(base: try base.superDecoder()) }
}

private struct SingleValueContainer: SingleValueDecodingContainer {
    let base: SingleValueDecodingContainer
    /// The decoder `base` came from, which reads the same value.
    let decoder: Decoder

    var codingPath: [CodingKey] { base.codingPath }
    func decodeNil() -> Bool { base.decodeNil() }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try PolicyDecoder.decode(type, from: decoder) }

    func decode(_ type: Bool.Type) throws -> Bool { try base.decode(type) }
    func decode(_ type: String.Type) throws -> String { try base.decode(type) }
    func decode(_ type: Double.Type) throws -> Double { try base.decode(type) }
    func decode(_ type: Float.Type) throws -> Float { try base.decode(type) }
    func decode(_ type: Int.Type) throws -> Int { try base.decode(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try base.decode(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try base.decode(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try base.decode(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try base.decode(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try base.decode(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try base.decode(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try base.decode(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try base.decode(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try base.decode(type) }
}
