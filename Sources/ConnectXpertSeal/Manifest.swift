import ConnectXpertAge
import ConnectXpertSystem
import Crypto
import Foundation

/// What a sealed file's second object says: who sealed it to whom, its place in their sequence,
/// the file's path, size, time and mode, and the hashes of the plaintext and of the data object.
/// It is signed by the sender (SSHSIG, so `ssh-keygen -Y verify` checks it), padded to a multiple
/// of 1 KiB and sealed to the recipient: the drop learns nothing from it but that it exists.
public struct Manifest: Codable, Equatable, Sendable {
    public var from: String
    public var fromKey: String
    public var to: String
    public var toKey: String
    public var sequence: Int64
    public var time: String
    public var path: String
    public var size: Int64
    public var mtime: Int64
    public var mode: UInt32
    public var sha256: String
    public var dataSHA256: String
    public var object: String

    public init(from: String, fromKey: String, to: String, toKey: String, sequence: Int64, time: Date, path: String,
                size: Int64, mtime: Int64, mode: UInt32, sha256: String, dataSHA256: String, object: String) {
        self.from = from
        self.fromKey = fromKey
        self.to = to
        self.toKey = toKey
        self.sequence = sequence
        self.time = time.formatted(Date.ISO8601FormatStyle())
        self.path = path
        self.size = size
        self.mtime = mtime
        self.mode = mode
        self.sha256 = sha256
        self.dataSHA256 = dataSHA256
        self.object = object
    }

    /// Opens a sealed manifest with our keys and checks its signature with `senderKey`.
    public static func open(_ sealed: [UInt8], with keys: IdentityKeys, senderKey: SigningPublicKey) throws(SealRefusal)
        -> Manifest {
        let signed = try SignedManifest(sealed, with: [keys.age])
        guard signed.isSigned(by: senderKey) else {
            throw .forged("the manifest's signature is not the sender's pinned key's")
        }
        return signed.content
    }
}

extension Manifest: SignedContent {
    public static let kind = "manifest"
    public static let signatureNamespace = "connectxpert-manifest@v1"
    public static let plaintextLimit = 64 * 1024
}

public typealias SignedManifest = SignedStatement<Manifest>

/// What a sealed object's signed statement says (a manifest, a message): its name in errors, the
/// SSHSIG namespace its signature is made in, and the most bytes its opened object may hold.
public protocol SignedContent: Codable, Sendable {
    static var kind: String { get }
    static var signatureNamespace: String { get }
    static var plaintextLimit: Int { get }
}

extension SignedContent {
    /// The statement signed by `sender` and sealed to `recipient`.
    public func sealed(signedBy sender: IdentityKeys, to recipient: X25519Recipient) throws -> [UInt8] {
        try SignedStatement.seal(self, signedBy: sender, to: recipient)
    }
}

/// A statement signed by its sender and sealed to its recipient: its JSON on one line, the SSHSIG
/// of that line, and newlines up to a multiple of 1 KiB, all in one age file. Opened, what it
/// says can be read before it is known who signed it (to find the key that must have).
public struct SignedStatement<Content: SignedContent>: Sendable {
    public let content: Content
    /// The opened object, whose signature can be checked again later (a held message).
    public let plaintext: [UInt8]
    let body: [UInt8]
    let signature: String

    /// `content` signed by `sender` and sealed to `recipient`.
    public static func seal(_ content: Content, signedBy sender: IdentityKeys, to recipient: X25519Recipient) throws
        -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = Array(try encoder.encode(content)) + [10]
        var plaintext = body + Array(try sender.signing.sign(body, namespace: Content.signatureNamespace).utf8)
        plaintext += [UInt8](repeating: 10, count: (1024 - plaintext.count % 1024) % 1024)
        var sealed: [UInt8] = []
        try Age.encrypt(to: [recipient], from: AgeBytesInput(plaintext), to: &sealed)
        return sealed
    }

    public init(_ sealed: [UInt8], with identities: [any AgeIdentity]) throws(SealRefusal) {
        var plaintext: [UInt8] = []
        do {
            try Age.decrypt(with: identities, from: AgeBytesInput(sealed), to: &plaintext)
        } catch let error as AgeError {
            throw error == .noMatch ? .notForUs : .tampered("the \(Content.kind) is damaged (\(error.kind)): \(error)")
        } catch {
            throw .tampered("the \(Content.kind) cannot be read: \(error)")
        }
        try self.init(plaintext: plaintext)
    }

    /// A statement already opened (`plaintext`).
    public init(plaintext: [UInt8]) throws(SealRefusal) {
        guard plaintext.count <= Content.plaintextLimit, let newline = plaintext.firstIndex(of: 10) else {
            throw .tampered("the \(Content.kind) is not one")
        }
        self.plaintext = plaintext
        body = Array(plaintext[...newline])
        let rest = String(decoding: plaintext[(newline + 1)...], as: UTF8.self)
        guard let end = rest.range(of: "-----END SSH SIGNATURE-----\n"),
              rest[end.upperBound...].allSatisfy({ $0 == "\n" }) else { throw .unsigned(Content.kind) }
        signature = String(rest[..<end.upperBound])
        guard let content = try? JSONDecoder().decode(Content.self, from: Data(body)) else {
            throw .tampered("the signed \(Content.kind) is not readable")
        }
        self.content = content
    }

    /// True when `key` made the signature.
    public func isSigned(by key: SigningPublicKey) -> Bool {
        key.verifies(signature, of: body, namespace: Content.signatureNamespace)
    }
}

/// Why a sealed object was refused. Nothing of it is delivered; it is kept aside on the drop.
public enum SealRefusal: Error, Equatable, CustomStringConvertible {
    /// It is not sealed to our key.
    case notForUs
    /// It was changed: a tag, a MAC or a hash does not match.
    case tampered(String)
    /// The manifest (or message: the kind named) carries no signature.
    case unsigned(String)
    /// A signature or a key is not the sender's pinned one.
    case forged(String)
    /// It names another recipient, or a sender other than the folder's.
    case misaddressed(String)
    /// Its sequence number or object was opened before.
    case replay(String)

    public var description: String {
        switch self {
        case .notForUs: "not sealed to our key"
        case .tampered(let what): "tampered: \(what)"
        case .unsigned(let kind): "unsigned: the \(kind) carries no signature"
        case .forged(let what): "forged: \(what)"
        case .misaddressed(let what): "misaddressed: \(what)"
        case .replay(let what): "replay: \(what)"
        }
    }
}

/// An input that hashes what is read through it, as digest `index` of `digests` (a class: what
/// reads it may hold a copy).
public final class HashingInput<Input: AgeInput>: AgeInput {
    var input: Input
    private let digests: Digests
    private let index: Int

    public init(_ input: Input, into digests: Digests, as index: Int) {
        self.input = input
        self.digests = digests
        self.index = index
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = try input.read(into: buffer)
        digests.update(index, with: UnsafeRawBufferPointer(rebasing: buffer[..<count]))
        return count
    }
}

/// An output that hashes what is written through it, as digest `index` of `digests`.
public struct HashingOutput<Output: AgeOutput>: AgeOutput {
    var output: Output
    private let digests: Digests
    private let index: Int

    public init(_ output: Output, into digests: Digests, as index: Int) {
        self.output = output
        self.digests = digests
        self.index = index
    }

    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        digests.update(index, with: bytes)
        try output.write(bytes)
    }
}

/// SHA-256 digests, made on a thread of their own beside the work that reads or writes the bytes
/// (sealing, opening a large file), which would otherwise spend a third of its time hashing:
/// `update` copies the bytes into a queue of up to 512 KiB that the thread hashes, and waits only
/// while it is full. For a small file, starting a thread costs more than it saves: its digests are
/// made as the bytes are given.
public final class Digests: Sendable {
    private let work: DigestWork
    private let thread: BlockingThread?

    /// `count` digests, on a thread of their own when `concurrent`.
    public init(count: Int, concurrent: Bool) {
        let work = DigestWork(count: count)
        self.work = work
        thread = concurrent ? BlockingThread("digests") { work.run() } : nil
    }

    deinit { work.end() }

    public func update(_ index: Int, with bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        guard thread != nil else { return work.hash(index, bytes) }
        var rest = bytes[...]
        repeat {
            let piece = rest.prefix(64 * 1024)
            rest = rest.dropFirst(piece.count)
            work.add(index, Array(piece))
        } while !rest.isEmpty
    }

    /// Each digest, in lower-case hex, once every byte given is hashed.
    public func finish() -> [String] {
        work.end()
        thread?.join()
        return work.digests()
    }

    /// Whether a file of `size` bytes is worth a thread for its digests.
    public static func worthAThread(_ size: Int64) -> Bool { size >= 1 << 20 }

    /// The SHA-256 of what is left to read of `input`, in lower-case hex.
    public static func sha256(ofRest input: some AgeInput) throws -> String {
        let digests = Digests(count: 1, concurrent: false)
        let hashing = HashingInput(input, into: digests, as: 0)
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        while try buffer.withUnsafeMutableBytes({ try hashing.read(into: $0) }) > 0 {}
        return digests.finish()[0]
    }
}

/// The queue and the hashes of `Digests`, shared with its thread. The hashes are the thread's
/// alone until it has ended; without a thread, they are the caller's.
private final class DigestWork: @unchecked Sendable {
    /// The most bytes queued, in pieces of up to 64 KiB.
    private static let limit = 512 * 1024
    private let condition = NSCondition()
    private var queue: [(index: Int, bytes: [UInt8])] = []
    private var queued = 0
    private var ended = false
    private var hashes: [SHA256]

    init(count: Int) { hashes = Array(repeating: SHA256(), count: count) }

    func add(_ index: Int, _ bytes: [UInt8]) {
        condition.lock()
        defer { condition.unlock() }
        while queued > 0 && queued + bytes.count > Self.limit { condition.wait() }
        queue.append((index, bytes))
        queued += bytes.count
        condition.broadcast()
    }

    func end() {
        condition.lock()
        ended = true
        condition.broadcast()
        condition.unlock()
    }

    func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !ended { condition.wait() }
            guard !queue.isEmpty else {
                condition.unlock()
                return
            }
            let (index, bytes) = queue.removeFirst()
            queued -= bytes.count
            condition.broadcast()
            condition.unlock()
            bytes.withUnsafeBytes { hash(index, $0) }
        }
    }

    func hash(_ index: Int, _ bytes: UnsafeRawBufferPointer) { hashes[index].update(bufferPointer: bytes) }

    func digests() -> [String] { hashes.map { $0.hex() } }
}

extension SHA256 {
    /// The digest in lower-case hex, as the manifest writes it.
    func hex() -> String { lowercaseHex(finalize()) }
}

/// Bytes in lower-case hex.
public func lowercaseHex(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 15)])
    }
    return String(decoding: text, as: UTF8.self)
}

/// A sealed file's data object, opened as its bytes come (as it downloads): hashed, and opened into
/// `output`, whose plaintext is hashed too. One that does not open is still hashed to its end, so
/// that `finish(checking:)` refuses a data object that is not the one its manifest names as that,
/// first, as a check of its hash before opening it would. What reaches `output` before a refusal
/// must not be used: the caller's temporary file is then removed.
public final class DataObjectOpening<Output: AgeOutput>: AgeOutput {
    private let digests: Digests
    private let opening: AgeOpening<HashingOutput<Output>>
    private var failure: AgeError?

    /// Opens a data object of `size` bytes.
    public init(size: Int64, with identities: [any AgeIdentity], to output: Output) {
        digests = Digests(count: 2, concurrent: Digests.worthAThread(size))
        opening = AgeOpening(with: identities, to: HashingOutput(output, into: digests, as: 1))
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        digests.update(0, with: bytes)
        guard failure == nil else { return }
        do { try opening.write(bytes) } catch let error as AgeError { failure = error }
    }

    /// Ends the object and checks it against its manifest: its hash, then that it opened, then the
    /// plaintext's hash.
    public func finish(checking manifest: Manifest) throws {
        if failure == nil {
            do { try opening.finish() } catch let error as AgeError { failure = error }
        }
        let digests = digests.finish()
        guard digests[0] == manifest.dataSHA256 else {
            throw SealRefusal.tampered("the data object is not the one the manifest names (its hash differs)")
        }
        if let failure { throw SealRefusal.tampered("the data object does not open (\(failure.kind)): \(failure)") }
        guard digests[1] == manifest.sha256 else {
            throw SealRefusal.tampered("the opened file is not the one the manifest names (its hash differs)")
        }
    }
}
