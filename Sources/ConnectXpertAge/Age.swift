import Crypto
import Foundation

/// Sealing and opening files in the age format (age-encryption.org/v1), as a stream: the payload
/// is 64 KiB chunks of ChaCha20-Poly1305, so memory stays small whatever the file's size.
public enum Age {
    static let chunkSize = 64 * 1024
    static let tagSize = 16

    /// Seals `plaintext` to `recipients` and writes the age file to `output`.
    public static func encrypt(to recipients: [any AgeRecipient], from plaintext: some AgeInput,
                               to output: inout some AgeOutput) throws {
        let fileKey = SymmetricKey(size: .bits128)
        let header = AgeHeader(stanzas: try recipients.flatMap { try $0.wrap(fileKey) }, fileKey: fileKey)
        precondition(!header.stanzas.contains { $0.type == "scrypt" } || header.stanzas.count == 1,
                     "an scrypt recipient must be the only one")
        let nonce = Array(SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) })
        try write(header.encoded + nonce, to: &output)
        let key = payloadKey(fileKey, nonce: nonce)
        var input = AgeReader(plaintext)
        var counter: UInt64 = 0
        var sealed: [UInt8] = []
        sealed.reserveCapacity(chunkSize + tagSize)
        while true {
            let chunk = try input.read(upTo: chunkSize)
            let last = try input.isAtEnd()
            let box = try ChaChaPoly.seal(chunk, using: key, nonce: chunkNonce(counter, last: last))
            sealed.removeAll(keepingCapacity: true)
            sealed.append(contentsOf: box.ciphertext)
            sealed.append(contentsOf: box.tag)
            try write(sealed, to: &output)
            if last { return }
            counter += 1
        }
    }

    /// Opens the age file in `input` with the first of `identities` that a stanza is for, and
    /// writes the plaintext to `output` a chunk at a time, each only once its tag is checked. On
    /// `AgeError.payload`, what was written before is authentic but the rest is missing.
    public static func decrypt(with identities: [any AgeIdentity], from input: some AgeInput,
                               to output: inout some AgeOutput) throws {
        var reader = AgeReader(input)
        let header = try AgeHeader(reading: &reader)
        if header.stanzas.contains(where: { $0.type == "scrypt" }) && header.stanzas.count != 1 {
            throw AgeError.header("an scrypt stanza is not the only one")
        }
        var fileKey: SymmetricKey?
        for identity in identities where fileKey == nil { fileKey = try identity.unwrap(header.stanzas) }
        guard let fileKey else { throw AgeError.noMatch }
        guard fileKey.bitCount == 128 else { throw AgeError.header("the file key is not 16 bytes") }
        guard header.isAuthentic(with: fileKey) else { throw AgeError.headerMAC }
        let nonce = try reader.read(upTo: 16)
        guard nonce.count == 16 else { throw AgeError.header("the payload's nonce is missing or short") }
        let key = payloadKey(fileKey, nonce: Array(nonce))
        var counter: UInt64 = 0
        while true {
            let chunk = try reader.read(upTo: chunkSize + tagSize)
            guard chunk.count >= tagSize else {
                throw AgeError.payload(counter == 0 ? "it has no chunks"
                    : chunk.isEmpty ? "it ends without its last chunk (cut short)" : "it ends inside a chunk's tag")
            }
            // A short chunk is the last; a full one is the last when it opens only as the last.
            var last = chunk.count < chunkSize + tagSize
            var plaintext = try? open(chunk, counter: counter, last: last, key: key)
            if plaintext == nil && !last {
                last = true
                plaintext = try? open(chunk, counter: counter, last: true, key: key)
            }
            guard let plaintext else {
                throw AgeError.payload("chunk \(counter + 1)'s tag is wrong: it was changed, cut short or reordered")
            }
            if last && plaintext.isEmpty && counter > 0 {
                throw AgeError.payload("the last chunk is empty, which only an empty file's may be")
            }
            try plaintext.withUnsafeBytes { try output.write($0) }
            if last {
                guard try reader.isAtEnd() else { throw AgeError.payload("data follows the last chunk") }
                return
            }
            counter += 1
        }
    }

    private static func open(_ chunk: ArraySlice<UInt8>, counter: UInt64, last: Bool,
                             key: SymmetricKey) throws -> Data {
        let box = try ChaChaPoly.SealedBox(nonce: chunkNonce(counter, last: last), ciphertext: chunk.dropLast(tagSize),
                                           tag: chunk.suffix(tagSize))
        return try ChaChaPoly.open(box, using: key)
    }

    private static func write(_ bytes: [UInt8], to output: inout some AgeOutput) throws {
        try bytes.withUnsafeBytes { try output.write($0) }
    }

    private static func payloadKey(_ fileKey: SymmetricKey, nonce: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: fileKey, salt: nonce, info: Array("payload".utf8), outputByteCount: 32)
    }

    /// An 11-byte big-endian chunk counter and the last-chunk flag.
    private static func chunkNonce(_ counter: UInt64, last: Bool) throws -> ChaChaPoly.Nonce {
        let bytes = [0, 0, 0] + withUnsafeBytes(of: counter.bigEndian) { Array($0) } + [last ? 1 : 0]
        return try ChaChaPoly.Nonce(data: bytes)
    }
}
