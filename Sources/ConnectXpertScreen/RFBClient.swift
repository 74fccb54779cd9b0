import Foundation

/// A cursor shape as a viewer gets it (the Cursor pseudo-encoding): `0x00RRGGBB` pixels, and a
/// bit mask of the opaque ones, each row padded to a byte.
public struct ViewerCursor: Sendable, Equatable {
    public let hotX: Int
    public let hotY: Int
    public let width: Int
    public let height: Int
    public let pixels: [UInt32]
    public let mask: [UInt8]

    /// Whether the pixel at `x`, `y` is drawn.
    public func isOpaque(_ x: Int, _ y: Int) -> Bool {
        mask[y * ((width + 7) / 8) + x / 8] & (0x80 >> UInt8(x % 8)) != 0
    }
}

/// A small RFB client that takes one frame from a server (`connectxpert screen snapshot`): the
/// role of the original tool's viewer, for headless use. It asks for ZRLE, and accepts CopyRect
/// and Raw; with `cursorShape`, for the cursor's shape too.
public final class RFBClient {
    private let connection: RFBConnection
    public private(set) var frame: Frame
    /// The cursor's shape, once the server sent one (`cursorShape`).
    public private(set) var cursor: ViewerCursor?
    public let desktopName: String
    private var inflater: InflateStream?

    /// Connects and authenticates (VNC Authentication when the server asks and `password` is given).
    public init(host: String, port: Int, password: String?, timeout: Double = 10, cursorShape: Bool = false) throws {
        connection = try RFBConnection.connect(host: host, port: port, timeout: timeout)
        let greeting = try connection.read(12)
        guard greeting.starts(with: Array("RFB 003.".utf8)), let minor = Int(String(decoding: greeting[8..<11], as: UTF8.self)) else {
            throw RFBError.protocolViolation("\(host):\(port) is not an RFB (VNC) server")
        }
        let version = minor >= 8 ? 8 : minor == 7 ? 7 : 3
        try connection.write(Array("RFB 003.00\(version)\n".utf8))
        var securityType: UInt8
        if version == 3 {
            securityType = UInt8(truncatingIfNeeded: try connection.readUInt32())
        } else {
            let count = Int(try connection.readByte())
            let offered = try connection.read(count)
            if count == 0 { throw RFBError.connection("\(host):\(port) refused the connection: \(try connection.readString())") }
            if offered.contains(2) && password != nil { securityType = 2 } else if offered.contains(1) { securityType = 1 } else if offered.contains(2) {
                throw RFBError.authenticationFailed("\(host):\(port) asks for a VNC password; give --password-file")
            } else {
                throw RFBError.protocolViolation("\(host):\(port) offers no security type this client knows (\(offered))")
            }
            try connection.write([securityType])
        }
        switch securityType {
        case 0:
            throw RFBError.connection("\(host):\(port) refused the connection: \(try connection.readString())")
        case 2:
            guard let password else { throw RFBError.authenticationFailed("\(host):\(port) asks for a VNC password; give --password-file") }
            let challenge = try connection.read(16)
            try connection.write(VNCAuthentication.response(challenge: challenge, password: password))
        default:
            break
        }
        if securityType == 2 || version == 8 {
            if try connection.readUInt32() != 0 {
                let reason = version == 8 ? try connection.readString() : "wrong password"
                throw RFBError.authenticationFailed("\(host):\(port): \(reason)")
            }
        }
        try connection.write([1])  // shared
        let width = Int(try connection.readUInt16()), height = Int(try connection.readUInt16())
        _ = try connection.read(16)
        desktopName = try connection.readString()
        frame = Frame(width: width, height: height, pixels: [UInt32](repeating: 0, count: width * height))
        var setup: [UInt8] = [0, 0, 0, 0] + PixelFormat.native.bytes
        setup += [2, 0]
        let encodings = [Encoding.copyRect, Encoding.zrle, Encoding.raw, Encoding.desktopSize]
            + (cursorShape ? [Encoding.cursor] : [])
        appendBigEndian(UInt16(encodings.count), to: &setup)
        for encoding in encodings { appendBigEndian(UInt32(bitPattern: encoding), to: &setup) }
        try connection.write(setup)
    }

    /// The encodings of the rectangles of the last update, in order.
    public private(set) var lastEncodings: [Int32] = []

    /// Asks for the whole screen (or, `incremental`, for what changed) and reads the update.
    public func update(incremental: Bool = false) throws {
        var request: [UInt8] = [3, incremental ? 1 : 0, 0, 0, 0, 0]
        appendBigEndian(UInt16(frame.width), to: &request)
        appendBigEndian(UInt16(frame.height), to: &request)
        try connection.write(request)
        while true {
            let type = try connection.readByte()
            switch type {
            case 0:
                _ = try connection.readByte()
                let count = Int(try connection.readUInt16())
                lastEncodings = []
                var resized = false
                for _ in 0..<count { resized = try readRectangle() || resized }
                if resized { return try update() }
                return
            case 2:
                continue  // Bell
            case 3:
                _ = try connection.read(3)
                _ = try connection.read(Int(try connection.readUInt32()))
            default:
                throw RFBError.protocolViolation("unknown server message \(type)")
            }
        }
    }

    /// Reads one rectangle into the frame; true when it announced a new desktop size.
    private func readRectangle() throws -> Bool {
        let x = Int(try connection.readUInt16()), y = Int(try connection.readUInt16())
        let width = Int(try connection.readUInt16()), height = Int(try connection.readUInt16())
        let encoding = Int32(bitPattern: try connection.readUInt32())
        lastEncodings.append(encoding)
        switch encoding {
        case Encoding.desktopSize:
            frame = Frame(width: width, height: height, pixels: [UInt32](repeating: 0, count: width * height))
            return true
        case Encoding.copyRect:
            let sourceX = Int(try connection.readUInt16()), sourceY = Int(try connection.readUInt16())
            try checkInside(x, y, width, height)
            try checkInside(sourceX, sourceY, width, height)
            let rows = (0..<height).map { row in
                Array(frame.pixels[((sourceY + row) * frame.width + sourceX)..<((sourceY + row) * frame.width + sourceX + width)])
            }
            for (row, pixels) in rows.enumerated() {
                let start = (y + row) * frame.width + x
                frame.pixels.replaceSubrange(start..<(start + width), with: pixels)
            }
        case Encoding.raw:
            let bytes = try connection.read(width * height * 4)
            try checkInside(x, y, width, height)
            for row in 0..<height {
                for column in 0..<width {
                    let offset = (row * width + column) * 4
                    frame.pixels[(y + row) * frame.width + x + column] =
                        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
                }
            }
        case Encoding.cursor:
            let bytes = try connection.read(width * height * 4)
            let pixels = (0..<(width * height)).map { (index: Int) -> UInt32 in
                let blue = UInt32(bytes[index * 4]), green = UInt32(bytes[index * 4 + 1])
                return blue | green << 8 | UInt32(bytes[index * 4 + 2]) << 16
            }
            cursor = ViewerCursor(hotX: x, hotY: y, width: width, height: height, pixels: pixels,
                                  mask: try connection.read((width + 7) / 8 * height))
        case Encoding.zrle:
            let length = Int(try connection.readUInt32())
            if inflater == nil { inflater = try InflateStream() }
            let data = try inflater!.decompress(try connection.read(length))
            try checkInside(x, y, width, height)
            try ZRLEDecoder.decode(data, into: &frame, x: x, y: y, width: width, height: height)
        default:
            throw RFBError.protocolViolation("the server sent encoding \(encoding), which was not asked for")
        }
        return false
    }

    private func checkInside(_ x: Int, _ y: Int, _ width: Int, _ height: Int) throws {
        guard x + width <= frame.width, y + height <= frame.height else {
            throw RFBError.protocolViolation("a rectangle outside the screen")
        }
    }
}

/// Reads ZRLE tiles (in the native 32-bit format, 3-byte compressed pixels) into a frame.
enum ZRLEDecoder {
    static func decode(_ data: [UInt8], into frame: inout Frame, x: Int, y: Int, width: Int, height: Int) throws {
        var offset = 0
        func byte() throws -> UInt8 {
            guard offset < data.count else { throw RFBError.protocolViolation("ZRLE data ends early") }
            offset += 1
            return data[offset - 1]
        }
        func pixel() throws -> UInt32 {
            UInt32(try byte()) | UInt32(try byte()) << 8 | UInt32(try byte()) << 16
        }
        func runLength() throws -> Int {
            var length = 1
            while true {
                let value = try byte()
                length += Int(value)
                if value != 255 { return length }
            }
        }
        for tileY in stride(from: y, to: y + height, by: 64) {
            let tileHeight = min(64, y + height - tileY)
            for tileX in stride(from: x, to: x + width, by: 64) {
                let tileWidth = min(64, x + width - tileX)
                var tile: [UInt32] = []
                tile.reserveCapacity(tileWidth * tileHeight)
                let count = tileWidth * tileHeight
                let kind = try byte()
                switch kind {
                case 0:
                    for _ in 0..<count { tile.append(try pixel()) }
                case 1:
                    tile = [UInt32](repeating: try pixel(), count: count)
                case 2...16:
                    let palette = try (0..<Int(kind)).map { _ in try pixel() }
                    let bits = kind == 2 ? 1 : kind <= 4 ? 2 : 4
                    for _ in 0..<tileHeight {
                        var used = 8
                        var current: UInt8 = 0
                        for _ in 0..<tileWidth {
                            if used == 8 {
                                current = try byte()
                                used = 0
                            }
                            let index = Int(current >> UInt8(8 - bits - used)) & ((1 << bits) - 1)
                            used += bits
                            guard index < palette.count else { throw RFBError.protocolViolation("ZRLE palette index out of range") }
                            tile.append(palette[index])
                        }
                    }
                case 128:
                    while tile.count < count {
                        let value = try pixel()
                        tile += [UInt32](repeating: value, count: try runLength())
                    }
                case 130...255:
                    let palette = try (0..<(Int(kind) - 128)).map { _ in try pixel() }
                    while tile.count < count {
                        let index = try byte()
                        guard Int(index & 0x7f) < palette.count else { throw RFBError.protocolViolation("ZRLE palette index out of range") }
                        let length = index & 0x80 != 0 ? try runLength() : 1
                        tile += [UInt32](repeating: palette[Int(index & 0x7f)], count: length)
                    }
                default:
                    throw RFBError.protocolViolation("ZRLE sub-encoding \(kind)")
                }
                guard tile.count == count else { throw RFBError.protocolViolation("a ZRLE run crosses its tile") }
                for row in 0..<tileHeight {
                    let start = (tileY + row) * frame.width + tileX
                    frame.pixels.replaceSubrange(start..<(start + tileWidth), with: tile[(row * tileWidth)..<((row + 1) * tileWidth)])
                }
            }
        }
    }
}
