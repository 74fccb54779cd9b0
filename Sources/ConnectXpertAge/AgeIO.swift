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

/// An input read through a buffer: lines for the header, then exact counts for the payload.
struct AgeReader {
    private var input: any AgeInput
    private var buffer: [UInt8] = []
    private var start = 0
    private var ended = false

    init(_ input: any AgeInput) { self.input = input }

    /// Fills the buffer to at least `count` unread bytes, or to the end of the input.
    private mutating func fill(_ count: Int) throws {
        guard buffer.count - start < count, !ended else { return }
        if start > 0 {
            buffer.removeFirst(start)
            start = 0
        }
        let chunk = max(count - buffer.count, 64 * 1024)
        while buffer.count < count && !ended {
            let old = buffer.count
            buffer += repeatElement(0, count: chunk)
            let read = try buffer.withUnsafeMutableBytes {
                try input.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[old...]))
            }
            buffer.removeLast(chunk - read)
            ended = read == 0
        }
    }

    /// The next line without its `\n`; nil at the end of the input or when no `\n` comes within
    /// `maximum` bytes (a header line is never that long).
    mutating func line(maximum: Int) throws -> [UInt8]? {
        var searched = start
        while true {
            if let end = buffer[searched...].firstIndex(of: 10) {
                defer { start = end + 1 }
                return Array(buffer[start..<end])
            }
            let unread = buffer.count - start
            guard unread <= maximum, !ended else { return nil }
            try fill(unread + 1)
            searched = start + unread
        }
    }

    /// True when every byte of the input has been read.
    mutating func isAtEnd() throws -> Bool {
        try fill(1)
        return buffer.count == start
    }

    /// Up to `count` bytes: fewer only at the end of the input.
    mutating func read(upTo count: Int) throws -> ArraySlice<UInt8> {
        try fill(count)
        let end = min(buffer.count, start + count)
        defer { start = end }
        return buffer[start..<end]
    }
}
