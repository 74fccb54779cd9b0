import Crypto
import CryptoExtras

/// Something a file key can be wrapped to: it makes the stanzas that carry the key.
public protocol AgeRecipient: Sendable {
    func wrap(_ fileKey: SymmetricKey) throws -> [AgeStanza]
}

/// Something that can unwrap a file key from the stanzas meant for it.
public protocol AgeIdentity: Sendable {
    /// The file key, or nil when no stanza is for this identity. Throws `AgeError.header` when a
    /// stanza of this identity's type is malformed.
    func unwrap(_ stanzas: [AgeStanza]) throws -> SymmetricKey?
}

/// ChaCha20-Poly1305 with the all-zero nonce, as stanzas wrap their 16-byte file key.
private enum KeyWrap {
    static let zeroNonce = try! ChaChaPoly.Nonce(data: [UInt8](repeating: 0, count: 12))  // 12 bytes: cannot fail

    static func seal(_ fileKey: SymmetricKey, with key: SymmetricKey) throws -> [UInt8] {
        let box = try ChaChaPoly.seal(fileKey.withUnsafeBytes { Array($0) }, using: key, nonce: zeroNonce)
        return Array(box.ciphertext) + Array(box.tag)
    }

    /// The file key, or nil when `body` was not sealed with `key` (the stanza is for someone else).
    static func open(_ body: [UInt8], with key: SymmetricKey) -> SymmetricKey? {
        guard let box = try? ChaChaPoly.SealedBox(nonce: zeroNonce, ciphertext: body.prefix(16), tag: body.suffix(16)),
              let fileKey = try? ChaChaPoly.open(box, using: key) else { return nil }
        return SymmetricKey(data: fileKey)
    }
}

/// An X25519 recipient, `age1…`: what `age -r` takes and `age-keygen` prints as the public key.
public struct X25519Recipient: AgeRecipient, Hashable, CustomStringConvertible {
    public let publicKey: [UInt8]

    /// Nil when `text` is not an `age1…` Bech32 key of 32 bytes.
    public init?(_ text: String) {
        guard let (prefix, data) = Bech32.decode(text), prefix == "age", data.count == 32,
              text == text.lowercased() else { return nil }
        publicKey = data
    }

    init(publicKey: [UInt8]) { self.publicKey = publicKey }

    public var description: String { Bech32.encode("age", publicKey) }

    public func wrap(_ fileKey: SymmetricKey) throws -> [AgeStanza] {
        let ephemeral = Curve25519.KeyAgreement.PrivateKey()
        let share = Array(ephemeral.publicKey.rawRepresentation)
        let shared = try ephemeral.sharedSecretFromKeyAgreement(with: .init(rawRepresentation: publicKey))
        let key = try X25519Identity.wrapKey(shared, share: share, recipient: publicKey)
        let body = try KeyWrap.seal(fileKey, with: key)
        return [AgeStanza(type: "X25519", arguments: [AgeBase64.encode(share)], body: body)]
    }
}

/// An X25519 identity, `AGE-SECRET-KEY-1…`, in the form `age-keygen` writes and `age -i` reads.
public struct X25519Identity: AgeIdentity {
    private let privateKey: Curve25519.KeyAgreement.PrivateKey

    /// A new random identity.
    public init() { privateKey = .init() }

    /// Nil when `text` is not an `AGE-SECRET-KEY-1…` Bech32 key of 32 bytes, in upper case.
    public init?(_ text: String) {
        guard let (prefix, data) = Bech32.decode(text), prefix == "age-secret-key-", data.count == 32,
              text == text.uppercased(), let key = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: data)
        else { return nil }
        privateKey = key
    }

    /// The identity as `age-keygen` writes it.
    public var encoded: String {
        Bech32.encode("age-secret-key-", Array(privateKey.rawRepresentation)).uppercased()
    }

    public var recipient: X25519Recipient { X25519Recipient(publicKey: Array(privateKey.publicKey.rawRepresentation)) }

    public func unwrap(_ stanzas: [AgeStanza]) throws -> SymmetricKey? {
        let ours = Array(privateKey.publicKey.rawRepresentation)
        for stanza in stanzas where stanza.type == "X25519" {
            guard stanza.arguments.count == 1, let share = AgeBase64.decode(Substring(stanza.arguments[0])),
                  share.count == 32 else {
                throw AgeError.header("an X25519 stanza's argument is not one share of 32 bytes")
            }
            guard stanza.body.count == 32 else { throw AgeError.header("an X25519 stanza's body is not 32 bytes") }
            let shared = try privateKey.sharedSecretFromKeyAgreement(with: .init(rawRepresentation: share))
            if let fileKey = KeyWrap.open(stanza.body, with: try Self.wrapKey(shared, share: share, recipient: ours)) {
                return fileKey
            }
        }
        return nil
    }

    /// The key that wraps the file key. An all-zero shared secret (a share of low order, which
    /// swift-crypto does not refuse) is refused: it would make the key public.
    static func wrapKey(_ shared: SharedSecret, share: [UInt8], recipient: [UInt8]) throws -> SymmetricKey {
        guard shared.withUnsafeBytes({ $0.contains { $0 != 0 } }) else {
            throw AgeError.header("an X25519 share of low order (the shared secret is zero)")
        }
        return shared.hkdfDerivedSymmetricKey(using: SHA256.self, salt: share + recipient,
                                              sharedInfo: Array("age-encryption.org/v1/X25519".utf8),
                                              outputByteCount: 32)
    }
}

/// A passphrase, as `age -p` uses it: the file key wrapped with a key derived by scrypt.
public struct ScryptRecipient: AgeRecipient {
    let passphrase: [UInt8]
    let workFactor: Int

    /// - Parameter workFactor: log2 of scrypt's N; 18, age's own, takes about a second.
    public init(passphrase: [UInt8], workFactor: Int = 18) {
        self.passphrase = passphrase
        self.workFactor = workFactor
    }

    public func wrap(_ fileKey: SymmetricKey) throws -> [AgeStanza] {
        let salt = (0..<16).map { _ in UInt8.random(in: 0...255) }
        let key = try ScryptIdentity.derive(passphrase, salt: salt, workFactor: workFactor)
        return [AgeStanza(type: "scrypt", arguments: [AgeBase64.encode(salt), String(workFactor)],
                          body: try KeyWrap.seal(fileKey, with: key))]
    }
}

/// The passphrase side of `ScryptRecipient`.
public struct ScryptIdentity: AgeIdentity {
    /// The highest work factor opened, as age's own limit: 2^22 rounds take 4 GiB and seconds.
    public static let maximumWorkFactor = 22
    let passphrase: [UInt8]

    public init(passphrase: [UInt8]) { self.passphrase = passphrase }

    public func unwrap(_ stanzas: [AgeStanza]) throws -> SymmetricKey? {
        guard let stanza = stanzas.first(where: { $0.type == "scrypt" }) else { return nil }
        guard stanza.arguments.count == 2, let salt = AgeBase64.decode(Substring(stanza.arguments[0])),
              salt.count == 16 else {
            throw AgeError.header("an scrypt stanza's arguments are not a salt of 16 bytes and a work factor")
        }
        let factor = stanza.arguments[1]
        guard let first = factor.utf8.first, first != UInt8(ascii: "0"),
              factor.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let workFactor = Int(factor) else {
            throw AgeError.header("an scrypt stanza's work factor '\(factor)' is not a decimal number")
        }
        guard workFactor <= Self.maximumWorkFactor else {
            throw AgeError.header(
                "an scrypt work factor of \(workFactor) is above the limit of \(Self.maximumWorkFactor)")
        }
        guard stanza.body.count == 32 else { throw AgeError.header("an scrypt stanza's body is not 32 bytes") }
        return KeyWrap.open(stanza.body, with: try Self.derive(passphrase, salt: salt, workFactor: workFactor))
    }

    static func derive(_ passphrase: [UInt8], salt: [UInt8], workFactor: Int) throws -> SymmetricKey {
        try KDF.Scrypt.deriveKey(from: passphrase, salt: Array("age-encryption.org/v1/scrypt".utf8) + salt,
                                 outputByteCount: 32, rounds: 1 << workFactor, blockSize: 8, parallelism: 1)
    }
}
