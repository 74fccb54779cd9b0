import ConnectXpertAge
import ConnectXpertSeal
import Foundation
import Testing

/// A message is a signed statement sealed to its recipient: only the recipient opens it, its
/// signature is the sender's under the message namespace, and once opened it can be checked again
/// later (a held message).
@Suite struct SealedMessageTests {
    let alice: IdentityKeys
    let bob: IdentityKeys
    let message: SealedMessage

    init() throws {
        let folder = NSTemporaryDirectory() + "cx-message-" + UUID().uuidString.prefix(8)
        alice = try IdentityKeys.create(in: folder + "/alice", id: "alice", passphrase: nil)
        bob = try IdentityKeys.create(in: folder + "/bob", id: "bob", passphrase: nil)
        message = SealedMessage(from: "alice", fromKey: alice.signing.publicKey.fingerprint, to: "bob",
                                toKey: bob.signing.publicKey.fingerprint, sequence: 7, time: "2026-12-02T10:00:00Z",
                                object: "0123456789abcdef0123456789abcdef", text: "hello ✓\nsecond line")
    }

    @Test func theRecipientOpensItAndTheSendersKeySignedIt() throws {
        let sealed = try message.sealed(signedBy: alice, to: bob.age.recipient)
        let opened = try SignedMessage(sealed, with: [bob.age])
        #expect(opened.content.text == message.text && opened.content.sequence == 7)
        #expect(opened.content.object == message.object && opened.content.fromKey == message.fromKey)
        #expect(opened.isSigned(by: alice.signing.publicKey))
        #expect(!opened.isSigned(by: bob.signing.publicKey))
        #expect(opened.plaintext.count % 1024 == 0, "padded to a multiple of 1 KiB")
        let again = try SignedMessage(plaintext: opened.plaintext)
        #expect(again.content.text == message.text && again.isSigned(by: alice.signing.publicKey),
                "the opened statement, kept, is checked again later")
    }

    @Test func anotherKeyCannotOpenIt() throws {
        let sealed = try message.sealed(signedBy: alice, to: bob.age.recipient)
        #expect(throws: SealRefusal.notForUs) { try SignedMessage(sealed, with: [alice.age]) }
    }

    @Test func aChangedByteIsTampering() throws {
        var sealed = try message.sealed(signedBy: alice, to: bob.age.recipient)
        sealed[sealed.count - 20] ^= 1
        #expect { try SignedMessage(sealed, with: [bob.age]) } throws: {
            "\($0)".hasPrefix("tampered: the message is damaged")
        }
    }

    @Test func aStatementWithoutASignatureIsUnsigned() throws {
        let body = Array(try JSONEncoder().encode(message)) + [10] + [UInt8](repeating: 10, count: 100)
        #expect(throws: SealRefusal.unsigned("message")) { try SignedMessage(plaintext: body) }
        #expect("\(SealRefusal.unsigned("message"))" == "unsigned: the message carries no signature")
    }
}
