import ConnectXpertAge
import Crypto
import Foundation

/// What an identity publishes on a drop, as `keys/<id>.pub` at its root: the ID, the Ed25519
/// key that signs what it sends, the age recipient things are sealed to, and when it was made,
/// signed by the Ed25519 key itself (so the card cannot be altered without the key):
///
///     connectxpert key card v1
///     id: alice
///     signing: ssh-ed25519 AAAA…
///     age: age1…
///     created: 2026-12-01T18:00:00Z
///     -----BEGIN SSH SIGNATURE-----
///     …
///     -----END SSH SIGNATURE-----
public struct KeyCard: Equatable, Sendable {
    public let id: String
    public let signing: SigningPublicKey
    public let age: X25519Recipient
    public let created: Date

    static let header = "connectxpert key card v1"
    static let namespace = "connectxpert-key-card@v1"

    /// The card of our own keys.
    public init(id: String, keys: IdentityKeys, created: Date) {
        self.id = id
        signing = keys.signing.publicKey
        age = keys.age.recipient
        self.created = created
    }

    /// The fingerprint people compare: the signing key's, as ssh-keygen prints it.
    public var fingerprint: String { signing.fingerprint }

    private var signedText: String {
        "\(Self.header)\nid: \(id)\nsigning: \(signing.openSSHLine(comment: ""))\nage: \(age)\n"
            + "created: \(ISO8601DateFormatter().string(from: created))\n"
    }

    /// The card as published, signed with `keys` (which must be its own).
    public func signed(with keys: IdentityKeys) throws -> [UInt8] {
        precondition(keys.signing.publicKey == signing, "a card is signed by its own key")
        let text = signedText
        return Array((text + (try keys.signing.sign(Array(text.utf8), namespace: Self.namespace))).utf8)
    }

    /// Reads a published card; throws when it is malformed, not signed by its own key, or for
    /// another ID than `expectedID` (the name it was found under).
    public init(published bytes: [UInt8], expectedID: String) throws {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let signatureStart = text.range(of: "-----BEGIN SSH SIGNATURE-----") else {
            throw IdentityError("the key card of \(expectedID) is not signed")
        }
        let signedPart = String(text[..<signatureStart.lowerBound])
        var fields: [String: String] = [:]
        let lines = signedPart.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first == Substring(Self.header), lines.last == "" else {
            throw IdentityError("the key card of \(expectedID) is not a '\(Self.header)'")
        }
        for line in lines.dropFirst().dropLast() {
            guard let colon = line.firstIndex(of: ":") else {
                throw IdentityError("the key card of \(expectedID) is malformed")
            }
            fields[String(line[..<colon])] = String(line[line.index(after: colon)...].drop { $0 == " " })
        }
        guard let id = fields["id"], let signing = fields["signing"].flatMap(SigningPublicKey.init(openSSHLine:)),
              let age = fields["age"].flatMap(X25519Recipient.init),
              let created = fields["created"].flatMap(ISO8601DateFormatter().date(from:)), fields.count == 4 else {
            throw IdentityError("the key card of \(expectedID) lacks its id, signing, age or created line")
        }
        guard id == expectedID else {
            throw IdentityError("the key card found as \(expectedID) is the card of '\(id)'")
        }
        self.id = id
        self.signing = signing
        self.age = age
        self.created = created
        guard signedText == signedPart,
              signing.verifies(String(text[signatureStart.lowerBound...]), of: Array(signedPart.utf8),
                               namespace: Self.namespace) else {
            throw IdentityError("the key card of \(expectedID) is not signed by its own key: it was altered")
        }
    }

    /// The safety number of two identities, the same on both sides (as Signal's): 60 digits in
    /// twelve groups of five, from both signing keys and IDs, for two people to compare.
    public static func safetyNumber(_ one: KeyCard, _ other: KeyCard) -> String {
        let halves = [one, other].map { card -> String in
            var hash = Array(SHA512.hash(data: [0, 0] + card.signing.raw + Array(card.id.utf8)))
            for _ in 0..<5200 { hash = Array(SHA512.hash(data: hash + card.signing.raw)) }
            return (0..<6).map { index in
                let chunk = hash[index * 5..<index * 5 + 5].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                return String(format: "%05llu", chunk % 100_000)
            }.joined()
        }.sorted()
        let digits = Array(halves.joined())
        return stride(from: 0, to: 60, by: 5).map { String(digits[$0..<$0 + 5]) }.joined(separator: " ")
    }
}
