/// An RFB pixel format (RFC 6143 7.4): how a client wants pixel values laid out. Only true colour
/// is supported (colour maps date from 8-bit displays; no current viewer asks for one).
public struct PixelFormat: Equatable, Sendable {
    public var bitsPerPixel: UInt8
    public var depth: UInt8
    public var bigEndian: Bool
    public var trueColour: Bool
    public var redMax: UInt16
    public var greenMax: UInt16
    public var blueMax: UInt16
    public var redShift: UInt8
    public var greenShift: UInt8
    public var blueShift: UInt8

    /// What the server sends unless told otherwise, and what X11 gives at depth 24:
    /// `0x00RRGGBB` in 32 little-endian bits.
    public static let native = PixelFormat(bitsPerPixel: 32, depth: 24, bigEndian: false, trueColour: true,
                                           redMax: 255, greenMax: 255, blueMax: 255,
                                           redShift: 16, greenShift: 8, blueShift: 0)

    public init(bitsPerPixel: UInt8, depth: UInt8, bigEndian: Bool, trueColour: Bool, redMax: UInt16, greenMax: UInt16,
                blueMax: UInt16, redShift: UInt8, greenShift: UInt8, blueShift: UInt8) {
        self.bitsPerPixel = bitsPerPixel
        self.depth = depth
        self.bigEndian = bigEndian
        self.trueColour = trueColour
        self.redMax = redMax
        self.greenMax = greenMax
        self.blueMax = blueMax
        self.redShift = redShift
        self.greenShift = greenShift
        self.blueShift = blueShift
    }

    /// Reads the 16 bytes of the wire form.
    public init(bytes: ArraySlice<UInt8>) {
        let b = Array(bytes)
        bitsPerPixel = b[0]
        depth = b[1]
        bigEndian = b[2] != 0
        trueColour = b[3] != 0
        redMax = UInt16(b[4]) << 8 | UInt16(b[5])
        greenMax = UInt16(b[6]) << 8 | UInt16(b[7])
        blueMax = UInt16(b[8]) << 8 | UInt16(b[9])
        redShift = b[10]
        greenShift = b[11]
        blueShift = b[12]
    }

    public var bytes: [UInt8] {
        [bitsPerPixel, depth, bigEndian ? 1 : 0, trueColour ? 1 : 0,
         UInt8(redMax >> 8), UInt8(redMax & 0xff), UInt8(greenMax >> 8), UInt8(greenMax & 0xff),
         UInt8(blueMax >> 8), UInt8(blueMax & 0xff), redShift, greenShift, blueShift, 0, 0, 0]
    }

    /// Why a client's format cannot be served, or `nil`.
    public var problem: String? {
        guard trueColour else { return "colour-map pixel formats are not supported" }
        guard [8, 16, 32].contains(bitsPerPixel) else { return "\(bitsPerPixel) bits per pixel is not a valid RFB format" }
        guard redMax > 0, greenMax > 0, blueMax > 0 else { return "a colour maximum of 0" }
        return nil
    }

    public var bytesPerPixel: Int { Int(bitsPerPixel) / 8 }

    /// The value of an `0x00RRGGBB` pixel in this format. In 32 bits, the bits no colour uses (the
    /// unused byte) are ones: viewers that take that byte as alpha (noVNC) then draw the pixel
    /// opaque.
    @inline(__always)
    public func value(ofNative pixel: UInt32) -> UInt32 {
        if self == .native { return pixel | 0xff00_0000 }
        let red = (pixel >> 16) & 0xff, green = (pixel >> 8) & 0xff, blue = pixel & 0xff
        let colour = (red * UInt32(redMax) / 255) << UInt32(redShift)
            | (green * UInt32(greenMax) / 255) << UInt32(greenShift)
            | (blue * UInt32(blueMax) / 255) << UInt32(blueShift)
        guard bitsPerPixel == 32 else { return colour }
        let used = UInt32(redMax) << UInt32(redShift) | UInt32(greenMax) << UInt32(greenShift)
            | UInt32(blueMax) << UInt32(blueShift)
        return colour | ~used
    }

    /// Appends `value` as `count` bytes in this format's byte order.
    @inline(__always)
    public func append(_ value: UInt32, count: Int, to output: inout [UInt8]) {
        if bigEndian {
            for index in stride(from: count - 1, through: 0, by: -1) { output.append(UInt8(truncatingIfNeeded: value >> (8 * UInt32(index)))) }
        } else {
            for index in 0..<count { output.append(UInt8(truncatingIfNeeded: value >> (8 * UInt32(index)))) }
        }
    }

    /// The size of a ZRLE "compressed pixel" (RFC 6143 7.7.6): 3 bytes when a 32-bit true-colour
    /// value fits in its low or high three bytes, else the whole pixel.
    public var compressedPixel: (count: Int, shift: UInt32) {
        guard bitsPerPixel == 32, depth <= 24, trueColour else { return (bytesPerPixel, 0) }
        let maxima = [(redMax, redShift), (greenMax, greenShift), (blueMax, blueShift)]
        let top = maxima.map { UInt32($0.0) << UInt32($0.1) }.reduce(0, |)
        if top & 0xff00_0000 == 0 { return (3, 0) }
        if top & 0x0000_00ff == 0 { return (3, 8) }
        return (4, 0)
    }
}
