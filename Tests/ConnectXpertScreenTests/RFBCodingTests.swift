@testable import ConnectXpertScreen
import ConnectXpertPolicy
import Foundation
import Testing

@Suite struct RFBCodingTests {
    /// A frame whose tiles call for each ZRLE sub-encoding: solid, 2/4/16-colour packed palettes,
    /// palette RLE, plain RLE and raw (noise).
    private func mixedFrame(width: Int = 200, height: Int = 150) -> Frame {
        var generator = SystemRandomNumberGenerator()
        var pixels = [UInt32](repeating: 0x336699, count: width * height)
        for y in 0..<height {
            for x in 0..<width {
                let index = y * width + x
                switch (x / 64, y / 64) {
                case (0, 0): pixels[index] = (x + y) % 2 == 0 ? 0xffffff : 0x000000
                case (1, 0): pixels[index] = [0xff0000, 0x00ff00, 0x0000ff, 0xffff00][(x * 7 + y * 3) % 4]
                case (2, 0): pixels[index] = UInt32((x * 13 + y * 5) % 16) * 0x101010
                case (0, 1): pixels[index] = UInt32((x / 9 + y / 5) % 60) * 0x030201
                case (1, 1): pixels[index] = UInt32(x / 2) << 16 | UInt32(y)
                case (2, 1): pixels[index] = UInt32.random(in: 0...0xffffff, using: &generator)
                default: break
                }
            }
        }
        return Frame(width: width, height: height, pixels: pixels)
    }

    @Test func zrleRoundTripsEverySubEncoding() throws {
        let frame = mixedFrame()
        let encoder = try ZRLEEncoder()
        let inflater = try InflateStream()
        var decoded = Frame(width: frame.width, height: frame.height, pixels: [UInt32](repeating: 0, count: frame.pixels.count))
        // Two rectangles through one zlib stream, as a connection sends them.
        for (y, height) in [(0, 70), (70, 80)] {
            let encoded = encoder.encode(frame, x: 0, y: y, width: frame.width, height: height, format: .native)
            let length = Int(encoded[0..<4].reduce(0) { $0 << 8 | UInt32($1) })
            #expect(length == encoded.count - 4)
            try ZRLEDecoder.decode(try inflater.decompress(Array(encoded[4...])), into: &decoded, x: 0, y: y,
                                   width: frame.width, height: height)
        }
        #expect(decoded == frame)
    }

    @Test func solidScreenCompressesToAlmostNothing() throws {
        let frame = Frame(width: 1920, height: 1080, pixels: [UInt32](repeating: 0x204080, count: 1920 * 1080))
        let encoded = try ZRLEEncoder().encode(frame, x: 0, y: 0, width: 1920, height: 1080, format: .native)
        #expect(encoded.count < 1000)
    }

    @Test func pixelFormats() {
        let rgb565 = PixelFormat(bitsPerPixel: 16, depth: 16, bigEndian: false, trueColour: true, redMax: 31, greenMax: 63,
                                 blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0)
        #expect(rgb565.value(ofNative: 0xffffff) == 0xffff)
        #expect(rgb565.value(ofNative: 0xff0000) == 0xf800)
        #expect(rgb565.value(ofNative: 0x00ff00) == 0x07e0)
        var bytes: [UInt8] = []
        rgb565.append(0xf800, count: 2, to: &bytes)
        #expect(bytes == [0x00, 0xf8])
        var bigEndian = rgb565
        bigEndian.bigEndian = true
        bytes = []
        bigEndian.append(0xf800, count: 2, to: &bytes)
        #expect(bytes == [0xf8, 0x00])
        #expect(PixelFormat(bytes: PixelFormat.native.bytes[...]) == .native)
        #expect(PixelFormat.native.compressedPixel == (3, 0))
        var high = PixelFormat.native
        (high.redShift, high.greenShift, high.blueShift) = (24, 16, 8)
        #expect(high.compressedPixel == (3, 8))
        #expect(rgb565.compressedPixel == (2, 0))
        var colourMap = PixelFormat.native
        colourMap.trueColour = false
        #expect(colourMap.problem == "colour-map pixel formats are not supported")
    }

    @Test func vncAuthenticationMatchesAnotherImplementation() {
        // vncdotool's answer (rfb.des_encrypt(rfb.reverse_bits(b"password"), bytes(range(16))),
        // through the cryptography package) to this challenge.
        let challenge = (0..<16).map { UInt8($0) }
        let response = VNCAuthentication.response(challenge: challenge, password: "password")
        #expect(response.map { String(format: "%02x", $0) }.joined() == "b866924125c8eebb9debc1db61c538e2")
    }

    @Test func pngHasTheRightStructure() {
        let png = PNGWriter.png(Frame(width: 2, height: 1, pixels: [0xff0000, 0x0000ff]))
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
        #expect(String(decoding: png[12..<16], as: UTF8.self) == "IHDR")
        #expect(String(decoding: png.suffix(8).prefix(4), as: UTF8.self) == "IEND")
    }

    @Test func listenAddresses() {
        #expect(ListenAddress(parsing: "127.0.0.1:5900") == ListenAddress(host: "127.0.0.1", port: 5900))
        #expect(ListenAddress(parsing: "[::1]:5901") == ListenAddress(host: "::1", port: 5901))
        #expect(ListenAddress(parsing: "[::1]:5901")?.description == "[::1]:5901")
        #expect(ListenAddress(parsing: "localhost:5900")?.isLoopback == true)
        #expect(ListenAddress(parsing: "0.0.0.0:5900")?.isLoopback == false)
        #expect(ListenAddress(parsing: "5900") == nil)
        #expect(ListenAddress(parsing: "h:99999") == nil)
    }
}

extension RFBCodingTests {
    @Test func scrollsAreFoundAndOnlyWhereTheyHappened() {
        let old = mixedFrame()
        // The band from row 20 to 130 moved up by 10 rows; new content below it.
        var new = old
        for row in 20..<120 {
            new.pixels.replaceSubrange((row * old.width)..<((row + 1) * old.width),
                                       with: old.pixels[((row + 10) * old.width)..<((row + 11) * old.width)])
        }
        for row in 120..<130 { for column in 0..<old.width { new.pixels[row * old.width + column] = 0x123456 } }
        let copy = ScrollDetector.find(old: old, new: new, in: (0, 20, old.width, 110))
        #expect(copy == ScrollDetector.Copy(x: 0, y: 20, width: old.width, height: 100, sourceY: 30))
        if let copy {
            let moved = ScrollDetector.apply(copy, to: old)
            #expect(Array(moved.pixels[(20 * old.width)..<(120 * old.width)]) == Array(new.pixels[(20 * old.width)..<(120 * old.width)]))
        }
        // A plain background that changed colour is not a scroll.
        let plain = Frame(width: 64, height: 64, pixels: [UInt32](repeating: 1, count: 64 * 64))
        let other = Frame(width: 64, height: 64, pixels: [UInt32](repeating: 2, count: 64 * 64))
        #expect(ScrollDetector.find(old: plain, new: other, in: (0, 0, 64, 64)) == nil)
    }
}
