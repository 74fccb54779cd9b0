/// Where RFB bytes come from: exact reads, throwing when the other side ends first. A viewer's
/// connection in the server; a byte buffer for the fuzz target.
protocol RFBInput {
    func read(_ count: Int) throws -> [UInt8]
}

extension RFBInput {
    func readByte() throws -> UInt8 { try read(1)[0] }

    func readUInt16() throws -> UInt16 {
        let bytes = try read(2)
        return UInt16(bytes[0]) << 8 | UInt16(bytes[1])
    }

    func readUInt32() throws -> UInt32 {
        let bytes = try read(4)
        return bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// A length-prefixed string (a reason, a desktop name), at most 64 KiB.
    func readString() throws -> String {
        let length = try readUInt32()
        guard length <= 65536 else { throw RFBError.protocolViolation("a string of \(length) bytes") }
        return String(decoding: try read(Int(length)), as: UTF8.self)
    }
}

/// A message from a viewer to the server (RFC 6143 7.5), checked as it is read: a format the server
/// cannot serve, an oversize clipboard or an unknown type is a protocol violation.
enum ClientMessage {
    case setPixelFormat(PixelFormat)
    case setEncodings([Int32])
    case framebufferUpdateRequest(incremental: Bool, x: Int, y: Int, width: Int, height: Int)
    case key(down: Bool, keysym: UInt32)
    case pointer(buttons: UInt8, x: Int, y: Int)
    /// The text, Latin-1 as the protocol says.
    case cutText(String)

    /// The longest clipboard text a viewer may send.
    static let maximumCutText = 1 << 20

    /// Reads the next message.
    static func read(from input: some RFBInput) throws -> ClientMessage {
        let type = try input.readByte()
        switch type {
        case 0:
            let bytes = try input.read(19)
            let format = PixelFormat(bytes: bytes[3...])
            if let problem = format.problem { throw RFBError.protocolViolation("SetPixelFormat: \(problem)") }
            return .setPixelFormat(format)
        case 2:
            _ = try input.readByte()
            let count = Int(try input.readUInt16())
            let bytes = try input.read(count * 4)
            return .setEncodings(stride(from: 0, to: bytes.count, by: 4).map {
                Int32(bitPattern: bytes[$0..<($0 + 4)].reduce(0) { $0 << 8 | UInt32($1) })
            })
        case 3:
            let incremental = try input.readByte() != 0
            let x = Int(try input.readUInt16()), y = Int(try input.readUInt16())
            let width = Int(try input.readUInt16()), height = Int(try input.readUInt16())
            return .framebufferUpdateRequest(incremental: incremental, x: x, y: y, width: width, height: height)
        case 4:
            let down = try input.readByte() != 0
            _ = try input.read(2)
            return .key(down: down, keysym: try input.readUInt32())
        case 5:
            let buttons = try input.readByte()
            let x = Int(try input.readUInt16()), y = Int(try input.readUInt16())
            return .pointer(buttons: buttons, x: x, y: y)
        case 6:
            _ = try input.read(3)
            let length = Int(try input.readUInt32())
            guard length <= maximumCutText else { throw RFBError.protocolViolation("ClientCutText of \(length) bytes") }
            let text = try input.read(length)
            return .cutText(String(String.UnicodeScalarView(text.map { Unicode.Scalar($0) })))
        default:
            throw RFBError.protocolViolation("unknown message type \(type)")
        }
    }
}
