import ConnectXpertAge
import ConnectXpertSystem
import Foundation

/// Our identity's two key pairs, in the folder `identity.keys` (mode 0700, files 0600, as ssh
/// keeps `~/.ssh`):
/// - `age.key`, the X25519 key as `age-keygen` writes it, so `age -d -i age.key` opens what is
///   sealed to us;
/// - `signing.key`, the Ed25519 key that signs what we send, in OpenSSH's format, and
///   `signing.key.pub`, its public line.
/// With a passphrase, both key files are themselves age files sealed to it (scrypt), which
/// `age -d` opens with the passphrase.
public struct IdentityKeys: Sendable {
    public let age: X25519Identity
    public let signing: SigningKey
    /// When the keys were made (age.key's `# created:` line).
    public let created: Date

    static let ageFile = "age.key", signingFile = "signing.key", publicFile = "signing.key.pub"

    /// True when `folder` holds an identity (complete or not).
    public static func exists(in folder: String) -> Bool {
        [ageFile, signingFile].contains { FileSystem.exists(joinPath(folder, $0)) }
    }

    /// Makes both key pairs for `id` in `folder`, which may exist but must hold no key. A passphrase
    /// is stretched with scrypt at `workFactor` (age's own 18: about a second).
    public static func create(in folder: String, id: String, passphrase: [UInt8]?, workFactor: Int = 18,
                              now: Date = Date()) throws -> IdentityKeys {
        if let existing = [ageFile, signingFile].first(where: { FileSystem.exists(joinPath(folder, $0)) }) {
            throw IdentityError(
                "\(joinPath(folder, existing)) exists already: an identity is there; nothing was changed")
        }
        try FileSystem.createDirectories(parentDirectory(of: folder))
        try FileSystem.createDirectories(folder, mode: 0o700)
        try checkPrivate(folder, kind: "folder", fix: "chmod 700")
        let made = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let keys = IdentityKeys(age: X25519Identity(), signing: SigningKey(comment: id), created: made)
        let created = ISO8601DateFormatter().string(from: made)
        let ageText = "# created: \(created)\n# public key: \(keys.age.recipient)\n\(keys.age.encoded)\n"
        let seal = passphrase.map { ScryptRecipient(passphrase: $0, workFactor: workFactor) }
        try write(Array(ageText.utf8), to: joinPath(folder, ageFile), sealedTo: seal)
        try write(Array(keys.signing.openSSHPrivateKey.utf8), to: joinPath(folder, signingFile), sealedTo: seal)
        let publicLine = keys.signing.publicKey.openSSHLine(comment: id) + "\n"
        try FileSystem.writeFileAtomically(joinPath(folder, publicFile), contents: Array(publicLine.utf8))
        try FileSystem.syncDirectory(folder)
        return keys
    }

    /// Reads the keys in `folder`; refuses a folder or key file others can read, as ssh does.
    public static func load(from folder: String, passphrase: [UInt8]?) throws -> IdentityKeys {
        guard FileSystem.exists(joinPath(folder, ageFile)) else {
            throw IdentityError("no identity in \(folder): make one with 'connectxpert identity init'")
        }
        try checkPrivate(folder, kind: "folder", fix: "chmod 700")
        let ageText = try read(joinPath(folder, ageFile), passphrase: passphrase)
        guard let line = ageText.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("AGE-SECRET-KEY-1") }),
              let age = X25519Identity(String(line)) else {
            throw IdentityError("\(joinPath(folder, ageFile)) holds no AGE-SECRET-KEY-1… line")
        }
        guard let signing = SigningKey(openSSH: try read(joinPath(folder, signingFile), passphrase: passphrase)) else {
            throw IdentityError("\(joinPath(folder, signingFile)) is not an unencrypted OpenSSH Ed25519 key")
        }
        let created = ageText.split(whereSeparator: \.isNewline).first { $0.hasPrefix("# created: ") }
            .flatMap { ISO8601DateFormatter().date(from: String($0.dropFirst("# created: ".count))) }
        return IdentityKeys(age: age, signing: signing, created: created ?? Date(timeIntervalSince1970: 0))
    }

    /// `256 SHA256:… alice (ED25519)`, as `ssh-keygen -lf` prints the signing key.
    public var summary: String { "256 \(signing.publicKey.fingerprint) \(signing.comment) (ED25519)" }

    private static func write(_ contents: [UInt8], to path: String, sealedTo passphrase: ScryptRecipient?) throws {
        var file = contents
        if let passphrase {
            file = []
            try Age.encrypt(to: [passphrase], from: AgeBytesInput(contents), to: &file)
        }
        try FileSystem.writeFileAtomically(path, contents: file, mode: 0o600)
    }

    private static func read(_ path: String, passphrase: [UInt8]?) throws -> String {
        try checkPrivate(path, kind: "key file", fix: "chmod 600")
        let contents = try FileSystem.readFile(path)
        guard contents.starts(with: Array("age-encryption.org/v1\n".utf8)) else {
            return String(decoding: contents, as: UTF8.self)
        }
        guard let passphrase else {
            throw IdentityError("\(path) is sealed with a passphrase: name it with identity.passphrase_file "
                                + "or identity.passphrase_env")
        }
        var opened: [UInt8] = []
        do {
            try Age.decrypt(with: [ScryptIdentity(passphrase: passphrase)], from: AgeBytesInput(contents), to: &opened)
        } catch AgeError.noMatch {
            throw IdentityError("\(path): the passphrase is wrong")
        }
        return String(decoding: opened, as: UTF8.self)
    }

    /// Refuses `path` when its group or others may read it, with the command that fixes it.
    private static func checkPrivate(_ path: String, kind: String, fix: String) throws {
        guard let status = try FileSystem.status(path) else { throw IdentityError("\(path) does not exist") }
        guard status.mode & 0o077 == 0 else {
            throw IdentityError("the \(kind) \(path) can be read by others (mode \(String(status.mode, radix: 8))); "
                                + "its keys are not used until '\(fix) \(path)'")
        }
    }
}

/// A problem with our keys or a peer's, said so a person knows what to do.
public struct IdentityError: Error, CustomStringConvertible {
    public let description: String

    init(_ description: String) { self.description = description }
}
