import Crypto
import Foundation

/// Sealing and opening files in the age format (age-encryption.org/v1), as a stream: the payload
/// is 64 KiB chunks of ChaCha20-Poly1305, so memory stays small whatever the file's size.
public enum Age {
    static let chunkSize = 64 * 1024
    static let tagSize = 16
    static let nonceSize = 16

    /// Seals `plaintext` to `recipients` and writes the age file to `output`.
    public static func encrypt(to recipients: [any AgeRecipient], from plaintext: some AgeInput,
                               to output: inout some AgeOutput) throws {
        let sealing = try AgeSealing(to: recipients, from: plaintext)
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        try buffer.withUnsafeMutableBytes { buffer in
            while case let count = try sealing.read(into: buffer), count > 0 {
                try output.write(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
            }
        }
    }

    /// Opens the age file in `input` with the first of `identities` that a stanza is for, and
    /// writes the plaintext to `output` a chunk at a time, each only once its tag is checked. On
    /// `AgeError.payload`, what was written before is authentic but the rest is missing.
    public static func decrypt(with identities: [any AgeIdentity], from input: some AgeInput,
                               to output: inout some AgeOutput) throws {
        var input = input
        let opening = AgeOpening(with: identities, to: output)
        defer { output = opening.output }  // what was released before a failure, too
        var buffer = [UInt8](repeating: 0, count: chunkSize + tagSize)
        try buffer.withUnsafeMutableBytes { buffer in
            while case let count = try input.read(into: buffer), count > 0 {
                try opening.write(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
            }
        }
        try opening.finish()
    }

    /// The size of the age file that sealing `plaintextSize` bytes makes, behind a header of
    /// `headerSize` bytes: the payload's nonce, then each chunk and its tag.
    public static func sealedSize(ofPlaintext plaintextSize: Int64, headerSize: Int) -> Int64 {
        let chunks = max(1, (plaintextSize + Int64(chunkSize) - 1) / Int64(chunkSize))
        return Int64(headerSize + nonceSize) + plaintextSize + chunks * Int64(tagSize)
    }

    static func payloadKey(_ fileKey: SymmetricKey, nonce: some DataProtocol) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: fileKey, salt: nonce, info: Array("payload".utf8), outputByteCount: 32)
    }

    /// An 11-byte big-endian chunk counter and the last-chunk flag.
    static func chunkNonce(_ counter: UInt64, last: Bool) throws -> ChaChaPoly.Nonce {
        let bytes = [0, 0, 0] + withUnsafeBytes(of: counter.bigEndian) { Array($0) } + [last ? 1 : 0]
        return try ChaChaPoly.Nonce(data: bytes)
    }
}

/// An age file made as it is read: the header and the payload's nonce, then each chunk, sealed
/// when the read reaches it. Reading it to its end is encrypting; nothing is kept but one chunk.
public final class AgeSealing<Plaintext: AgeInput>: AgeInput {
    private var plaintext: Plaintext
    private let key: SymmetricKey
    /// Sealed bytes not yet read, from `start` on.
    private var pending: [UInt8]
    private var start = 0
    /// The next chunk's plaintext, read one byte beyond it to know whether it is the last.
    private var chunk: [UInt8]
    private var buffered = 0
    private var counter: UInt64 = 0
    private var sealedLast = false
    /// The bytes of the header, which the payload follows.
    public let headerSize: Int

    public init(to recipients: [any AgeRecipient], from plaintext: Plaintext) throws {
        let fileKey = SymmetricKey(size: .bits128)
        let header = AgeHeader(stanzas: try recipients.flatMap { try $0.wrap(fileKey) }, fileKey: fileKey)
        precondition(!header.stanzas.contains { $0.type == "scrypt" } || header.stanzas.count == 1,
                     "an scrypt recipient must be the only one")
        let nonce = SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) }
        self.plaintext = plaintext
        key = Age.payloadKey(fileKey, nonce: nonce)
        pending = header.encoded + nonce
        headerSize = pending.count - Age.nonceSize
        // Not zeroed: reads fill it before any byte of it is used, and a small file's seal would
        // spend more on zeroing 64 KiB than on its own bytes.
        chunk = [UInt8](unsafeUninitializedCapacity: Age.chunkSize + 1) { _, count in count = Age.chunkSize + 1 }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if start == pending.count {
            guard !sealedLast else { return 0 }
            try sealNextChunk()
        }
        let count = min(buffer.count, pending.count - start)
        pending.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[start..<start + count])) }
        start += count
        return count
    }

    private func sealNextChunk() throws {
        try chunk.withUnsafeMutableBytes { chunk in
            while buffered < chunk.count,
                  case let count = try plaintext.read(into: .init(rebasing: chunk[buffered...])), count > 0 {
                buffered += count
            }
        }
        let last = buffered <= Age.chunkSize
        let size = min(buffered, Age.chunkSize)
        let box = try ChaChaPoly.seal(chunk[..<size], using: key, nonce: Age.chunkNonce(counter, last: last))
        pending.removeAll(keepingCapacity: true)
        pending.append(contentsOf: box.ciphertext)
        pending.append(contentsOf: box.tag)
        start = 0
        if last {
            sealedLast = true
        } else {
            chunk[0] = chunk[Age.chunkSize]
            buffered = 1
            counter += 1
        }
    }
}

/// An age file opened as it is written: the header once it is whole, then each chunk, whose
/// plaintext goes to `output` once its tag is checked. `finish()` says the file has ended, which
/// only then opens its last chunk.
public final class AgeOpening<Output: AgeOutput>: AgeOutput {
    public private(set) var output: Output
    private let identities: [any AgeIdentity]
    /// Bytes written and not yet opened: the header, until it is whole; then the payload's.
    private var pending: [UInt8] = []
    private var start = 0
    /// Where the header's next line to look at begins, until the header is whole.
    private var lineStart = 0
    private var fileKey: SymmetricKey?
    private var key: SymmetricKey?
    private var counter: UInt64 = 0
    private static var fullChunk: Int { Age.chunkSize + Age.tagSize }

    public init(with identities: [any AgeIdentity], to output: Output) {
        self.identities = identities
        self.output = output
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        // A chunk at a time, so that no more than two are ever held, whatever the writes' size.
        var rest = bytes[...]
        repeat {
            let piece = rest.prefix(Self.fullChunk)
            rest = rest.dropFirst(piece.count)
            try take(UnsafeRawBufferPointer(rebasing: piece))
        } while !rest.isEmpty
    }

    private func take(_ bytes: UnsafeRawBufferPointer) throws {
        pending.append(contentsOf: bytes)
        if key == nil {
            try openHeader(atEnd: false)
            guard key != nil else { return }
        }
        // A full chunk with more behind it is not the last.
        while pending.count - start > Self.fullChunk {
            try openChunk(pending[start..<start + Self.fullChunk], more: true)
            start += Self.fullChunk
        }
        if start > Self.fullChunk {
            pending.removeFirst(start)
            start = 0
        }
    }

    /// Opens the rest: the last chunk, or the reason the file is cut short.
    public func finish() throws {
        if key == nil { try openHeader(atEnd: true) }
        let rest = pending[start...]
        guard rest.count >= Age.tagSize else {
            throw AgeError.payload(counter == 0 ? "it has no chunks"
                : rest.isEmpty ? "it ends without its last chunk (cut short)" : "it ends inside a chunk's tag")
        }
        try openChunk(rest, more: false)
        start = pending.count
    }

    /// Unwraps the file key once the header is whole (at the end of the first line that begins
    /// `---`, the MAC line), and derives the payload's key once its nonce is here too. A header
    /// that is too long, or cut short, is parsed as it is, and refused as the parser refuses it.
    private func openHeader(atEnd: Bool) throws {
        if fileKey == nil {
            guard let end = headerEnd()
                    ?? (atEnd || pending.count > AgeHeader.maximumSize + AgeHeader.maximumLine ? pending.count : nil)
            else { return }
            var lines = AgeLines(pending[..<end])
            let header = try AgeHeader(reading: &lines)
            if header.stanzas.contains(where: { $0.type == "scrypt" }) && header.stanzas.count != 1 {
                throw AgeError.header("an scrypt stanza is not the only one")
            }
            var unwrapped: SymmetricKey?
            for identity in identities where unwrapped == nil { unwrapped = try identity.unwrap(header.stanzas) }
            guard let unwrapped else { throw AgeError.noMatch }
            guard unwrapped.bitCount == 128 else { throw AgeError.header("the file key is not 16 bytes") }
            guard header.isAuthentic(with: unwrapped) else { throw AgeError.headerMAC }
            fileKey = unwrapped
            start = end
        }
        guard let fileKey, pending.count >= start + Age.nonceSize else {
            if atEnd { throw AgeError.header("the payload's nonce is missing or short") }
            return
        }
        key = Age.payloadKey(fileKey, nonce: pending[start..<start + Age.nonceSize])
        start += Age.nonceSize
    }

    private func headerEnd() -> Int? {
        while let newline = pending[lineStart...].firstIndex(of: 10) {
            if pending[lineStart...].starts(with: [45, 45, 45]) { return newline + 1 }
            lineStart = newline + 1
        }
        return nil
    }

    /// Opens one chunk; `more` says whether bytes follow it. A short chunk is the last; a full one
    /// is the last when it opens only as the last.
    private func openChunk(_ chunk: ArraySlice<UInt8>, more: Bool) throws {
        guard let key else { return }
        var last = chunk.count < Self.fullChunk
        var plaintext = try? open(chunk, last: last, key: key)
        if plaintext == nil && !last {
            last = true
            plaintext = try? open(chunk, last: true, key: key)
        }
        guard let plaintext else {
            throw AgeError.payload("chunk \(counter + 1)'s tag is wrong: it was changed, cut short or reordered")
        }
        if last && plaintext.isEmpty && counter > 0 {
            throw AgeError.payload("the last chunk is empty, which only an empty file's may be")
        }
        try plaintext.withUnsafeBytes { try output.write($0) }
        if last && more { throw AgeError.payload("data follows the last chunk") }
        if !last && !more { throw AgeError.payload("it ends without its last chunk (cut short)") }
        counter += 1
    }

    private func open(_ chunk: ArraySlice<UInt8>, last: Bool, key: SymmetricKey) throws -> Data {
        let box = try ChaChaPoly.SealedBox(nonce: Age.chunkNonce(counter, last: last),
                                           ciphertext: chunk.dropLast(Age.tagSize), tag: chunk.suffix(Age.tagSize))
        return try ChaChaPoly.open(box, using: key)
    }
}
