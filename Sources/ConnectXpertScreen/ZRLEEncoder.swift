/// ZRLE (RFC 6143 7.7.6): a rectangle is cut into 64x64 tiles, each written in whichever
/// sub-encoding is smallest (solid, packed palette, plain RLE, palette RLE, raw), and the whole
/// rectangle goes through the connection's one zlib stream.
final class ZRLEEncoder {
    private let deflater: DeflateStream
    /// Reused between tiles.
    private var palette: [UInt32: UInt8] = [:]
    private var paletteOrder: [UInt32] = []

    init() throws {
        deflater = try DeflateStream()
    }

    /// The rectangle's bytes after its header: a 4-byte length and the zlib data.
    func encode(_ frame: Frame, x: Int, y: Int, width: Int, height: Int, format: PixelFormat) -> [UInt8] {
        var raw: [UInt8] = []
        raw.reserveCapacity(width * height)
        var tile = [UInt32](repeating: 0, count: 64 * 64)
        for tileY in stride(from: y, to: y + height, by: 64) {
            let tileHeight = min(64, y + height - tileY)
            for tileX in stride(from: x, to: x + width, by: 64) {
                let tileWidth = min(64, x + width - tileX)
                var index = 0
                for row in tileY..<(tileY + tileHeight) {
                    let start = row * frame.width + tileX
                    for column in 0..<tileWidth {
                        tile[index] = format.value(ofNative: frame.pixels[start + column])
                        index += 1
                    }
                }
                encodeTile(tile[0..<index], width: tileWidth, height: tileHeight, format: format, into: &raw)
            }
        }
        let compressed = deflater.compress(raw)
        var output: [UInt8] = []
        output.reserveCapacity(compressed.count + 4)
        appendBigEndian(UInt32(compressed.count), to: &output)
        output += compressed
        return output
    }

    private func encodeTile(_ pixels: ArraySlice<UInt32>, width: Int, height: Int, format: PixelFormat,
                            into output: inout [UInt8]) {
        let (pixelSize, pixelShift) = format.compressedPixel
        func put(_ value: UInt32) { format.append(value >> pixelShift, count: pixelSize, to: &output) }

        // The palette (up to 127 colours) and the runs, in one pass.
        palette.removeAll(keepingCapacity: true)
        paletteOrder.removeAll(keepingCapacity: true)
        var runs = 0
        var runLengthBytes = 0
        var singleRuns = 0
        var runStart = pixels.startIndex
        var previous = pixels[pixels.startIndex]
        palette[previous] = 0
        paletteOrder.append(previous)
        for index in pixels.indices {
            let pixel = pixels[index]
            if pixel != previous {
                // A colour can only be new where a run starts.
                if paletteOrder.count <= 127 && palette[pixel] == nil {
                    palette[pixel] = UInt8(truncatingIfNeeded: paletteOrder.count)
                    paletteOrder.append(pixel)
                }
                let length = index - runStart
                runs += 1
                runLengthBytes += (length - 1) / 255 + 1
                if length == 1 { singleRuns += 1 }
                runStart = index
                previous = pixel
            }
        }
        let lastLength = pixels.endIndex - runStart
        runs += 1
        runLengthBytes += (lastLength - 1) / 255 + 1
        if lastLength == 1 { singleRuns += 1 }

        let count = pixels.count
        let colours = paletteOrder.count
        if colours == 1 {
            output.append(1)
            put(paletteOrder[0])
            return
        }
        var best = (size: count * pixelSize, kind: 0)  // raw
        let plainRLE = runs * pixelSize + runLengthBytes
        if plainRLE < best.size { best = (plainRLE, 128) }
        if colours <= 127 {
            let paletteRLE = colours * pixelSize + runs + (runLengthBytes - singleRuns)
            if paletteRLE < best.size { best = (paletteRLE, 130) }
        }
        if colours <= 16 {
            let bits = colours <= 2 ? 1 : colours <= 4 ? 2 : 4
            let packed = colours * pixelSize + height * ((width * bits + 7) / 8)
            if packed < best.size { best = (packed, bits) }
        }

        switch best.kind {
        case 0:
            output.append(0)
            for pixel in pixels { put(pixel) }
        case 128:
            output.append(128)
            forEachRun(pixels) { pixel, length in
                put(pixel)
                appendRunLength(length, to: &output)
            }
        case 130:
            output.append(UInt8(128 + colours))
            for colour in paletteOrder { put(colour) }
            forEachRun(pixels) { pixel, length in
                let index = palette[pixel]!
                if length == 1 {
                    output.append(index)
                } else {
                    output.append(index | 0x80)
                    appendRunLength(length, to: &output)
                }
            }
        default:
            let bits = best.kind
            output.append(UInt8(colours))
            for colour in paletteOrder { put(colour) }
            for row in 0..<height {
                var byte: UInt8 = 0
                var used = 0
                for column in 0..<width {
                    byte = byte << UInt8(bits) | palette[pixels[pixels.startIndex + row * width + column]]!
                    used += bits
                    if used == 8 {
                        output.append(byte)
                        byte = 0
                        used = 0
                    }
                }
                if used > 0 { output.append(byte << UInt8(8 - used)) }
            }
        }
    }

    private func forEachRun(_ pixels: ArraySlice<UInt32>, _ body: (UInt32, Int) -> Void) {
        var runStart = pixels.startIndex
        for index in pixels.indices.dropFirst() where pixels[index] != pixels[index - 1] {
            body(pixels[runStart], index - runStart)
            runStart = index
        }
        body(pixels[runStart], pixels.endIndex - runStart)
    }

    /// A run of `length` is written as `length - 1` in bytes of 255 and a final byte below 255.
    private func appendRunLength(_ length: Int, to output: inout [UInt8]) {
        var remaining = length - 1
        while remaining >= 255 {
            output.append(255)
            remaining -= 255
        }
        output.append(UInt8(remaining))
    }
}

func appendBigEndian(_ value: UInt32, to output: inout [UInt8]) {
    output += [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
}

func appendBigEndian(_ value: UInt16, to output: inout [UInt8]) {
    output += [UInt8(value >> 8), UInt8(value & 0xff)]
}
