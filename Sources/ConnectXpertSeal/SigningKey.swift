import Crypto
import Foundation

/// An Ed25519 key that signs what we send, kept in OpenSSH's own format (`ssh-keygen -lf` and
/// `ssh-keygen -Y verify` read it), with our ID as its comment.
public struct SigningKey: Sendable {
    let privateKey: Curve25519.Signing.PrivateKey
    public let comment: String

    public init(comment: String) {
        privateKey = .init()
        self.comment = comment
    }

    public var publicKey: SigningPublicKey {
        SigningPublicKey(raw: Array(privateKey.publicKey.rawRepresentation))
    }

    /// The file `ssh-keygen -t ed25519 -N ''` writes: an unencrypted `openssh-key-v1`.
    public var openSSHPrivateKey: String {
        var section = SSHWriter()
        let check = UInt32.random(in: .min ... .max)
        section.uint32(check)
        section.uint32(check)
        section.string("ssh-ed25519")
        section.string(publicKey.raw)
        section.string(Array(privateKey.rawRepresentation) + publicKey.raw)
        section.string(comment)
        var padding: UInt8 = 1
        while section.bytes.count % 8 != 0 {
            section.raw([padding])
            padding += 1
        }
        var file = SSHWriter()
        file.raw(Array("openssh-key-v1\0".utf8))
        file.string("none")
        file.string("none")
        file.string("")
        file.uint32(1)
        file.string(publicKey.blob)
        file.string(section.bytes)
        return Armor.wrap(file.bytes, label: "OPENSSH PRIVATE KEY", width: 70)
    }

    /// Reads an unencrypted `openssh-key-v1` Ed25519 key; nil for anything else.
    public init?(openSSH text: String) {
        guard let bytes = Armor.unwrap(text, label: "OPENSSH PRIVATE KEY") else { return nil }
        var file = SSHReader(bytes)
        guard file.raw(15) == Array("openssh-key-v1\0".utf8), file.text() == "none", file.text() == "none",
              file.string() == [], file.uint32() == 1, file.string() != nil, let sectionBytes = file.string() else {
            return nil
        }
        var section = SSHReader(sectionBytes)
        guard let first = section.uint32(), section.uint32() == first, section.text() == "ssh-ed25519",
              let raw = section.string(), raw.count == 32, let secret = section.string(), secret.count == 64,
              Array(secret.suffix(32)) == raw, let comment = section.text(),
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: secret.prefix(32)),
              Array(key.publicKey.rawRepresentation) == raw else { return nil }
        privateKey = key
        self.comment = comment
    }

    /// An SSHSIG signature of `message` (PROTOCOL.sshsig), armored as `ssh-keygen -Y sign` writes
    /// it; `ssh-keygen -Y verify -n namespace` checks it.
    public func sign(_ message: some DataProtocol, namespace: String) throws -> String {
        let signed = SSHSignature.signedData(message, namespace: namespace)
        var signature = SSHWriter()
        signature.string("ssh-ed25519")
        signature.string(Array(try privateKey.signature(for: signed)))
        var blob = SSHWriter()
        blob.raw(Array("SSHSIG".utf8))
        blob.uint32(1)
        blob.string(publicKey.blob)
        blob.string(namespace)
        blob.string("")
        blob.string("sha512")
        blob.string(signature.bytes)
        return Armor.wrap(blob.bytes, label: "SSH SIGNATURE", width: 70)
    }
}

/// The public half of a `SigningKey`: what peers pin.
public struct SigningPublicKey: Hashable, Sendable {
    /// The 32 bytes of the Ed25519 point.
    public let raw: [UInt8]

    public init(raw: [UInt8]) { self.raw = raw }

    /// The key as the SSH wire format writes it: `string "ssh-ed25519", string key`.
    var blob: [UInt8] {
        var writer = SSHWriter()
        writer.string("ssh-ed25519")
        writer.string(raw)
        return writer.bytes
    }

    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    public var fingerprint: String {
        var text = Data(SHA256.hash(data: blob)).base64EncodedString()
        while text.hasSuffix("=") { text.removeLast() }
        return "SHA256:" + text
    }

    /// `ssh-ed25519 AAAA… comment`: a `.pub` file's line, an allowed_signers entry's key.
    public func openSSHLine(comment: String) -> String {
        "ssh-ed25519 " + Data(blob).base64EncodedString() + (comment.isEmpty ? "" : " " + comment)
    }

    /// Reads `ssh-ed25519 AAAA… [comment]`; nil for anything else.
    public init?(openSSHLine line: String) {
        let words = line.split(separator: " ")
        guard words.count >= 2, words[0] == "ssh-ed25519", let blob = Data(base64Encoded: String(words[1])) else {
            return nil
        }
        var reader = SSHReader(Array(blob))
        guard reader.text() == "ssh-ed25519", let raw = reader.string(), raw.count == 32, reader.isAtEnd else {
            return nil
        }
        self.raw = raw
    }

    /// True when `armored` is an SSHSIG signature of `message` by this key in `namespace`.
    public func verifies(_ armored: String, of message: some DataProtocol, namespace: String) -> Bool {
        guard let bytes = Armor.unwrap(armored, label: "SSH SIGNATURE") else { return false }
        var blob = SSHReader(bytes)
        guard blob.raw(6) == Array("SSHSIG".utf8), blob.uint32() == 1, blob.string() == self.blob,
              blob.text() == namespace, blob.string() != nil, blob.text() == "sha512",
              let signatureBytes = blob.string(), blob.isAtEnd else { return false }
        var signature = SSHReader(signatureBytes)
        guard signature.text() == "ssh-ed25519", let raw = signature.string(), raw.count == 64, signature.isAtEnd,
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: self.raw) else { return false }
        return key.isValidSignature(raw, for: SSHSignature.signedData(message, namespace: namespace))
    }
}

enum SSHSignature {
    /// What an SSHSIG signature signs: the preamble, the namespace and the SHA-512 of the message.
    static func signedData(_ message: some DataProtocol, namespace: String) -> [UInt8] {
        var signed = SSHWriter()
        signed.raw(Array("SSHSIG".utf8))
        signed.string(namespace)
        signed.string("")
        signed.string("sha512")
        signed.string(Array(SHA512.hash(data: message)))
        return signed.bytes
    }
}
