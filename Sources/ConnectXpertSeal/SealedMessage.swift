import ConnectXpertAge
import Foundation

/// A short text from one identity to another, as one object on the drop (`<object>.message`):
/// signed by the sender (SSHSIG, so `ssh-keygen -Y verify -n connectxpert-message@v1` checks it),
/// padded to a multiple of 1 KiB and sealed to the recipient. Its sequence number is the pair's,
/// shared with sealed files: the recipient shows a sender's messages in that order, each once.
public struct SealedMessage: Codable, Equatable, Sendable {
    public var from: String
    public var fromKey: String
    public var to: String
    public var toKey: String
    public var sequence: Int64
    public var time: String
    public var object: String
    public var text: String

    /// The most bytes of UTF-8 a message's text may hold.
    public static let textLimit = 64 * 1024

    public init(from: String, fromKey: String, to: String, toKey: String, sequence: Int64, time: String,
                object: String, text: String) {
        self.from = from
        self.fromKey = fromKey
        self.to = to
        self.toKey = toKey
        self.sequence = sequence
        self.time = time
        self.object = object
        self.text = text
    }
}

extension SealedMessage: SignedContent {
    public static let kind = "message"
    public static let signatureNamespace = "connectxpert-message@v1"
    /// 64 KiB of text, escaped in JSON at worst six bytes for one, and the rest.
    public static let plaintextLimit = 6 * textLimit + 16 * 1024
}

public typealias SignedMessage = SignedStatement<SealedMessage>
