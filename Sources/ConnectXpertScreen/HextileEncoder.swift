/// Hextile (RFC 6143 7.7.4), for viewers that have no ZRLE decoder (noVNC 1.3 among them): a
/// rectangle is cut into 16x16 tiles, left to right and top to bottom; each is a solid background,
/// a background with rectangles of one foreground colour, a background with rectangles of their
/// own colours, or raw pixels, whichever is smallest. Lossless. The background is given again
/// after a raw tile, and the foreground in each tile that uses it, so a viewer never depends on
/// how it keeps them across tiles.
struct HextileEncoder {
    private static let raw: UInt8 = 1, backgroundSpecified: UInt8 = 2, foregroundSpecified: UInt8 = 4
    private static let anySubrects: UInt8 = 8, subrectsColoured: UInt8 = 16

    /// The rectangle's bytes after its header.
    static func encode(_ frame: Frame, x: Int, y: Int, width: Int, height: Int, format: PixelFormat) -> [UInt8] {
        var output: [UInt8] = []
        var background: UInt32?
        for tileY in stride(from: y, to: y + height, by: 16) {
            for tileX in stride(from: x, to: x + width, by: 16) {
                let tileWidth = min(16, x + width - tileX), tileHeight = min(16, y + height - tileY)
                var tile: [UInt32] = []
                tile.reserveCapacity(tileWidth * tileHeight)
                for row in tileY..<(tileY + tileHeight) {
                    let start = row * frame.width + tileX
                    tile += frame.pixels[start..<(start + tileWidth)].map { format.value(ofNative: $0) }
                }
                encodeTile(tile, width: tileWidth, height: tileHeight, format: format, background: &background,
                           into: &output)
            }
        }
        return output
    }

    private static func encodeTile(_ tile: [UInt32], width: Int, height: Int, format: PixelFormat,
                                   background: inout UInt32?, into output: inout [UInt8]) {
        let size = format.bytesPerPixel
        var counts: [UInt32: Int] = [:]
        for pixel in tile { counts[pixel, default: 0] += 1 }
        let common = counts.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }!.key
        var mask: UInt8 = common == background ? 0 : backgroundSpecified
        let subrects = counts.count == 1 ? [] : rectangles(of: tile, width: width, height: height, besides: common)
        let mono = counts.count == 2
        let encodedSize = 1 + (mask == 0 ? 0 : size) + (subrects.isEmpty ? 0 : 1)
            + (mono ? size + 2 * subrects.count : (size + 2) * subrects.count)
        guard subrects.count <= 255, encodedSize <= 1 + tile.count * size else {
            output.append(raw)
            for pixel in tile { format.append(pixel, count: size, to: &output) }
            background = nil
            return
        }
        if !subrects.isEmpty { mask |= anySubrects | (mono ? foregroundSpecified : subrectsColoured) }
        output.append(mask)
        if mask & backgroundSpecified != 0 { format.append(common, count: size, to: &output) }
        background = common
        guard !subrects.isEmpty else { return }
        if mono { format.append(subrects[0].colour, count: size, to: &output) }
        output.append(UInt8(subrects.count))
        for subrect in subrects {
            if !mono { format.append(subrect.colour, count: size, to: &output) }
            output.append(UInt8(subrect.x << 4 | subrect.y))
            output.append(UInt8((subrect.width - 1) << 4 | (subrect.height - 1)))
        }
    }

    /// The tile's pixels other than `background` as rectangles of one colour each: from each pixel
    /// not yet covered, as far right as the colour goes, then as far down as whole rows of it go.
    private static func rectangles(of tile: [UInt32], width: Int, height: Int, besides background: UInt32)
        -> [(colour: UInt32, x: Int, y: Int, width: Int, height: Int)] {
        var covered = [Bool](repeating: false, count: tile.count)
        var found: [(colour: UInt32, x: Int, y: Int, width: Int, height: Int)] = []
        for y in 0..<height {
            for x in 0..<width where !covered[y * width + x] && tile[y * width + x] != background {
                let colour = tile[y * width + x]
                var right = x + 1
                while right < width && !covered[y * width + right] && tile[y * width + right] == colour { right += 1 }
                var bottom = y + 1
                while bottom < height && (x..<right).allSatisfy({
                    !covered[bottom * width + $0] && tile[bottom * width + $0] == colour
                }) { bottom += 1 }
                for row in y..<bottom {
                    for column in x..<right { covered[row * width + column] = true }
                }
                found.append((colour, x, y, right - x, bottom - y))
            }
        }
        return found
    }
}
