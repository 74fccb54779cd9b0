import ConnectXpertSeal
import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// The signing key is an OpenSSH Ed25519 key, and its signatures are SSHSIG: OpenSSH's own
/// `ssh-keygen` reads the one and checks the other.
@Suite struct SigningKeyTests {
    let folder = NSTemporaryDirectory() + "cx-sign-" + UUID().uuidString.prefix(8)
    let key = SigningKey(comment: "alice")

    init() throws {
        try FileSystem.createDirectories(folder, mode: 0o700)
        try FileSystem.writeFileAtomically(path("key"), contents: Array(key.openSSHPrivateKey.utf8), mode: 0o600)
        try FileSystem.writeFileAtomically(path("signers"),
                                           contents: Array("alice \(key.publicKey.openSSHLine(comment: ""))\n".utf8))
    }

    func path(_ name: String) -> String { joinPath(folder, name) }

    @Test func sshKeygenReadsTheKeyAndPrintsOurFingerprint() throws {
        let listed = try runChecked("/usr/bin/ssh-keygen", ["-lf", path("key")])
        #expect(listed == "256 \(key.publicKey.fingerprint) alice (ED25519)\n")
        #expect(try runChecked("/usr/bin/ssh-keygen", ["-y", "-f", path("key")])
                == key.publicKey.openSSHLine(comment: "alice") + "\n")
        #expect(SigningKey(openSSH: key.openSSHPrivateKey)?.publicKey == key.publicKey)
        #expect(SigningPublicKey(openSSHLine: key.publicKey.openSSHLine(comment: "alice")) == key.publicKey)
    }

    @Test func ourSignatureVerifiesWithSshKeygenAndATamperedMessageDoesNot() throws {
        let message = Array("a manifest\n".utf8)
        let signature = try key.sign(message, namespace: "test")
        try FileSystem.writeFileAtomically(path("signature"), contents: Array(signature.utf8))
        let verified = try verify(message, namespace: "test")
        #expect(verified.status == 0, "\(verified.errors)")
        #expect(verified.output.hasPrefix(
            "Good \"test\" signature for alice with ED25519 key \(key.publicKey.fingerprint)"))
        #expect(try verify(message + [0], namespace: "test").status != 0)
        #expect(try verify(message, namespace: "other").status != 0)
    }

    /// `ssh-keygen -Y verify` of `message` against the signature file, as alice's.
    func verify(_ message: [UInt8], namespace: String) throws -> ProgramResult {
        try runProgram("/usr/bin/ssh-keygen", ["-Y", "verify", "-f", path("signers"), "-I", "alice", "-n", namespace,
                                               "-s", path("signature")], input: message)
    }

    /// Ed25519 is deterministic: ssh-keygen's signature of the same message is ours, byte for byte.
    @Test func sshKeygensSignatureIsOursAndVerifiesHere() throws {
        let message = Array("the same words".utf8)
        try FileSystem.writeFileAtomically(path("message"), contents: message)
        try runChecked("/usr/bin/ssh-keygen", ["-q", "-Y", "sign", "-f", path("key"), "-n", "test", path("message")])
        let theirs = String(decoding: try FileSystem.readFile(path("message.sig")), as: UTF8.self)
        #expect(theirs == (try key.sign(message, namespace: "test")))
        #expect(key.publicKey.verifies(theirs, of: message, namespace: "test"))
        #expect(!key.publicKey.verifies(theirs, of: message + [1], namespace: "test"))
        #expect(!key.publicKey.verifies(theirs, of: message, namespace: "other"))
        #expect(!SigningKey(comment: "mallory").publicKey.verifies(theirs, of: message, namespace: "test"))
    }
}
