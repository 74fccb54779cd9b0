import CZlib

/// One zlib deflate stream, kept for a whole connection as ZRLE requires (the viewer inflates
/// every rectangle with one stream). Freed in `deinit`.
final class DeflateStream {
    private var stream = z_stream()

    init(level: Int32 = 6) throws {
        guard cx_deflate_init(&stream, level) == Z_OK else { throw RFBError.protocolViolation("zlib cannot be initialised") }
    }

    deinit { deflateEnd(&stream) }

    /// Compresses `input` and flushes (`Z_SYNC_FLUSH`), so the peer can decode all of it now.
    func compress(_ input: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: max(1024, input.count / 2 + 64))
        input.withUnsafeBufferPointer { source in
            stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
            stream.avail_in = UInt32(source.count)
            repeat {
                let produced = chunk.withUnsafeMutableBufferPointer { buffer -> Int in
                    stream.next_out = buffer.baseAddress
                    stream.avail_out = UInt32(buffer.count)
                    deflate(&stream, Z_SYNC_FLUSH)
                    return buffer.count - Int(stream.avail_out)
                }
                output += chunk[0..<produced]
            } while stream.avail_out == 0
        }
        return output
    }
}

/// The matching inflate stream, for the snapshot client.
final class InflateStream {
    private var stream = z_stream()

    init() throws {
        guard cx_inflate_init(&stream) == Z_OK else { throw RFBError.protocolViolation("zlib cannot be initialised") }
    }

    deinit { inflateEnd(&stream) }

    /// Decompresses one rectangle's data.
    func decompress(_ input: [UInt8]) throws -> [UInt8] {
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        try input.withUnsafeBufferPointer { source in
            stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
            stream.avail_in = UInt32(source.count)
            repeat {
                var status: Int32 = Z_OK
                let produced = chunk.withUnsafeMutableBufferPointer { buffer -> Int in
                    stream.next_out = buffer.baseAddress
                    stream.avail_out = UInt32(buffer.count)
                    status = inflate(&stream, Z_SYNC_FLUSH)
                    return buffer.count - Int(stream.avail_out)
                }
                guard status == Z_OK || status == Z_BUF_ERROR || status == Z_STREAM_END else {
                    throw RFBError.protocolViolation("the server's ZRLE data is not valid zlib")
                }
                output += chunk[0..<produced]
                if produced == 0 && status == Z_BUF_ERROR { break }
            } while stream.avail_in > 0 || stream.avail_out == 0
        }
        return output
    }
}
