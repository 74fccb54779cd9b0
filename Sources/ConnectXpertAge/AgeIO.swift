/// Where the bytes of an age file, or of a plaintext, come from: a file, a socket, memory.
public protocol AgeInput {
    /// Reads at most `buffer.count` bytes; 0 only at the end.
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// Where they go. A plaintext is written as it is released, 64 KiB at a time.
public protocol AgeOutput {
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws
}

/// Bytes in memory, read from the start.
public struct AgeBytesInput: AgeInput {
    private let bytes: [UInt8]
    private var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = min(buffer.count, bytes.count - offset)
        bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + count])) }
        offset += count
        return count
    }
}

extension Array: AgeOutput where Element == UInt8 {
    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws { append(contentsOf: bytes) }
}

/// A header's bytes, read a line at a time.
struct AgeLines {
    private let bytes: ArraySlice<UInt8>
    private var start: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        start = bytes.startIndex
    }

    /// The next line without its `\n`; nil at the end of the bytes or when no `\n` comes within
    /// `maximum` bytes (a header line is never that long).
    mutating func line(maximum: Int) -> [UInt8]? {
        guard let end = bytes[start...].prefix(maximum + 1).firstIndex(of: 10) else { return nil }
        defer { start = end + 1 }
        return Array(bytes[start..<end])
    }
}
