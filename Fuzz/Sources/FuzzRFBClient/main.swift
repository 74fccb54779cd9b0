// What a viewer sends once connected: every client message, then, for each pixel format a viewer
// asks for, a frame encoded in it as the server would send it (raw, ZRLE and Hextile).
@testable import ConnectXpertScreen
import FuzzDriver

/// The fuzzer's bytes as a viewer's stream, ending where the input does.
final class Bytes: RFBInput {
    private var rest: ArraySlice<UInt8>
    init(_ bytes: UnsafeRawBufferPointer) { rest = Array(bytes)[...] }

    func read(_ count: Int) throws -> [UInt8] {
        guard rest.count >= count else { throw RFBError.connection("the input ended") }
        defer { rest = rest.dropFirst(count) }
        return Array(rest.prefix(count))
    }
}

let frame = Frame(width: 70, height: 3, pixels: (0..<210).map { UInt32($0 % 7) * 0x10305 })
let encoder = try! ZRLEEncoder()

fuzz { input in
    let viewer = Bytes(input)
    while let message = try? ClientMessage.read(from: viewer) {
        guard case .setPixelFormat(let format) = message else { continue }
        var raw: [UInt8] = []
        for pixel in frame.pixels {
            format.append(format.value(ofNative: pixel), count: format.bytesPerPixel, to: &raw)
        }
        precondition(raw.count == frame.pixels.count * format.bytesPerPixel)
        _ = encoder.encode(frame, x: 0, y: 0, width: frame.width, height: frame.height, format: format)
        _ = HextileEncoder.encode(frame, x: 0, y: 0, width: frame.width, height: frame.height, format: format)
    }
}
