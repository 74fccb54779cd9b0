import CZlib

/// A frame as a PNG file's bytes: 8-bit RGB, no filtering, one zlib stream.
public enum PNGWriter {
    public static func png(_ frame: Frame) -> [UInt8] {
        var scanlines: [UInt8] = []
        scanlines.reserveCapacity(frame.height * (frame.width * 3 + 1))
        for row in 0..<frame.height {
            scanlines.append(0)
            for pixel in frame.pixels[(row * frame.width)..<((row + 1) * frame.width)] {
                scanlines += [UInt8(pixel >> 16 & 0xff), UInt8(pixel >> 8 & 0xff), UInt8(pixel & 0xff)]
            }
        }
        var header: [UInt8] = []
        appendBigEndian(UInt32(frame.width), to: &header)
        appendBigEndian(UInt32(frame.height), to: &header)
        header += [8, 2, 0, 0, 0]  // depth 8, truecolour, deflate, no filter, no interlace
        var output: [UInt8] = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
        chunk("IHDR", header, into: &output)
        chunk("IDAT", compress(scanlines), into: &output)
        chunk("IEND", [], into: &output)
        return output
    }

    private static func chunk(_ type: String, _ data: [UInt8], into output: inout [UInt8]) {
        appendBigEndian(UInt32(data.count), to: &output)
        let body = Array(type.utf8) + data
        output += body
        let crc = body.withUnsafeBufferPointer { crc32(0, $0.baseAddress, UInt32($0.count)) }
        appendBigEndian(UInt32(crc), to: &output)
    }

    private static func compress(_ data: [UInt8]) -> [UInt8] {
        var length = compressBound(UInt(data.count))
        var output = [UInt8](repeating: 0, count: Int(length))
        _ = output.withUnsafeMutableBufferPointer { destination in
            data.withUnsafeBufferPointer { source in
                compress2(destination.baseAddress, &length, source.baseAddress, UInt(source.count), 6)
            }
        }
        return Array(output.prefix(Int(length)))
    }
}
