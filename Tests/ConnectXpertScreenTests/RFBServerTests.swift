@testable import ConnectXpertScreen
import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Logging
import Testing

/// An RFBServer on a test display, driven byte by byte as old and odd viewers would.
@Suite(.serialized, .enabled(if: canRunScreenTests, "needs Xvfb"))
struct RFBServerTests {
    private func server(_ display: XTestDisplay, password: String? = "secret") throws -> RFBServer {
        let server = RFBServer(display: try X11Display(name: display.name), configuration: RFBServerConfiguration(
            host: "127.0.0.1", port: 0, password: password, viewOnly: false, name: "test"), logger: Logger(label: "test"))
        try server.start()
        return server
    }

    /// A viewer of `server`, through ServerInit with RFB 3.8 and the test password.
    private func viewer(of server: RFBServer) throws -> RFBConnection {
        let connection = try RFBConnection.connect(host: "127.0.0.1", port: server.boundPort, timeout: 10)
        _ = try handshake(connection, minor: 8, password: "secret")
        return connection
    }

    /// Through ServerInit with RFB 3.3 (the server picks VNC Authentication) or 3.7 / 3.8.
    private func handshake(_ connection: RFBConnection, minor: Int, password: String) throws -> (Int, Int) {
        #expect(try connection.read(12) == Array("RFB 003.008\n".utf8))
        try connection.write(Array("RFB 003.00\(minor)\n".utf8))
        if minor == 3 {
            #expect(try connection.readUInt32() == 2)
        } else {
            #expect(try connection.read(2) == [1, 2])
            try connection.write([2])
        }
        let challenge = try connection.read(16)
        try connection.write(VNCAuthentication.response(challenge: challenge, password: password))
        #expect(try connection.readUInt32() == 0)
        try connection.write([1])
        let width = Int(try connection.readUInt16()), height = Int(try connection.readUInt16())
        #expect(PixelFormat(bytes: try connection.read(16)[...]) == .native)
        #expect(try connection.readString() == "test")
        return (width, height)
    }

    @Test func oldViewersAndSixteenBitPixels() throws {
        let display = try XTestDisplay()
        let server = try server(display)
        defer { server.stop() }
        for minor in [3, 7, 8] {
            let connection = try RFBConnection.connect(host: "127.0.0.1", port: server.boundPort, timeout: 10)
            #expect(try handshake(connection, minor: minor, password: "secret") == (640, 480))
        }
        // RGB565, big-endian, Raw: the top-left pixel of the picture is pure red.
        let connection = try viewer(of: server)
        let rgb565 = PixelFormat(bitsPerPixel: 16, depth: 16, bigEndian: true, trueColour: true, redMax: 31, greenMax: 63,
                                 blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0)
        try connection.write([0, 0, 0, 0] + rgb565.bytes)
        try connection.write([2, 0, 0, 1, 0, 0, 0, 0])  // SetEncodings: Raw
        try connection.write([3, 0, 0, 0, 0, 0, 0, 2, 0, 1])  // 2x1 at 0,0, not incremental
        #expect(try connection.read(4) == [0, 0, 0, 1])
        #expect(try connection.read(12) == [0, 0, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0])
        #expect(try connection.read(4) == [0xf8, 0x00, 0xf8, 0x00])
        // Both viewers are counted while connected: sessions are shared.
        #expect(server.viewerCount >= 1)
    }

    /// In 32-bit pixels the byte no colour uses is 0xFF, in either byte order (noVNC takes it as
    /// alpha: a 0 there left its canvas transparent).
    @Test func theUnusedByteOf32BitPixelsIsFF() throws {
        let display = try XTestDisplay()
        let server = try server(display)
        defer { server.stop() }
        let connection = try viewer(of: server)
        try connection.write([2, 0, 0, 1, 0, 0, 0, 0])  // SetEncodings: Raw
        var swapped = PixelFormat.native
        swapped.bigEndian = true
        for (format, unused) in [(PixelFormat.native, 3), (swapped, 0)] {
            try connection.write([0, 0, 0, 0] + format.bytes)
            try connection.write([3, 0, 0, 0, 0, 0, 0, 2, 0, 1])  // 2x1 at 0,0, not incremental
            #expect(try connection.read(4) == [0, 0, 0, 1])
            #expect(try connection.read(12) == [0, 0, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0])
            let pixels = try connection.read(8)
            #expect(pixels[unused] == 0xff && pixels[4 + unused] == 0xff, "\(pixels)")
            // The top-left pixel of the picture is pure red.
            #expect(Array(pixels[0..<4]) == (format.bigEndian ? [0xff, 0xff, 0, 0] : [0, 0, 0xff, 0xff]))
        }
    }

    /// A viewer that lists Hextile before Raw (noVNC 1.3, which has no ZRLE) gets Hextile, and its
    /// tiles (solid, one foreground, coloured subrects, raw) decode to the screen's pixels.
    @Test func aViewerWithoutZRLEGetsHextileThatDecodesToTheScreen() throws {
        let display = try XTestDisplay()
        let server = try server(display)
        defer { server.stop() }
        let connection = try viewer(of: server)
        try connection.write([2, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 0])  // SetEncodings: Hextile, Raw
        try connection.write([3, 0, 0, 0, 0, 0, 0x02, 0x80, 0x01, 0xe0])  // the whole 640x480 screen
        #expect(try connection.read(4) == [0, 0, 0, 1])
        #expect(try connection.read(12) == [0, 0, 0, 0, 0x02, 0x80, 0x01, 0xe0, 0, 0, 0, 5])
        let decoded = try decodeHextile(connection, width: 640, height: 480)
        #expect(decoded == (try X11Display(name: display.name).capture()).pixels)
    }

    /// A Hextile rectangle of native 32-bit pixels, decoded as RFC 6143 7.7.4 says.
    private func decodeHextile(_ connection: RFBConnection, width: Int, height: Int) throws -> [UInt32] {
        var pixels = [UInt32](repeating: 0, count: width * height)
        var background: UInt32 = 0, foreground: UInt32 = 0
        // Native pixels are little-endian; the unused byte is dropped.
        func pixel() throws -> UInt32 { try connection.readUInt32().byteSwapped & 0xffffff }
        for tileY in stride(from: 0, to: height, by: 16) {
            for tileX in stride(from: 0, to: width, by: 16) {
                let (tileWidth, tileHeight) = (min(16, width - tileX), min(16, height - tileY))
                func fill(_ colour: UInt32, _ x: Int, _ y: Int, _ w: Int, _ h: Int) {
                    for row in y..<(y + h) {
                        for column in x..<(x + w) { pixels[(tileY + row) * width + tileX + column] = colour }
                    }
                }
                let mask = try connection.readByte()
                if mask & 1 != 0 {
                    for row in 0..<tileHeight {
                        for column in 0..<tileWidth { fill(try pixel(), column, row, 1, 1) }
                    }
                    continue
                }
                if mask & 2 != 0 { background = try pixel() }
                fill(background, 0, 0, tileWidth, tileHeight)
                if mask & 4 != 0 { foreground = try pixel() }
                guard mask & 8 != 0 else { continue }
                for _ in 0..<Int(try connection.readByte()) {
                    let colour = mask & 16 != 0 ? try pixel() : foreground
                    let (position, size) = (try connection.readByte(), try connection.readByte())
                    fill(colour, Int(position >> 4), Int(position & 15), Int(size >> 4) + 1, Int(size & 15) + 1)
                }
            }
        }
        return pixels
    }

    @Test func wrongPasswordGetsAReasonIn38AndNothingMore() throws {
        let display = try XTestDisplay()
        let server = try server(display)
        defer { server.stop() }
        let connection = try RFBConnection.connect(host: "127.0.0.1", port: server.boundPort, timeout: 10)
        _ = try connection.read(12)
        try connection.write(Array("RFB 003.008\n".utf8))
        _ = try connection.read(2)
        try connection.write([2])
        _ = try connection.read(16)
        try connection.write([UInt8](repeating: 0, count: 16))
        #expect(try connection.readUInt32() == 1)
        #expect(try connection.readString() == "wrong password")
        #expect(throws: RFBError.self) { try connection.read(1) }
        #expect(server.viewerCount == 0)
    }

    @Test func wheelAndKeysymsWithoutAKeyReachTheXServer() throws {
        let display = try XTestDisplay()
        let server = try server(display)
        defer { server.stop() }
        let connection = try viewer(of: server)
        // Wheel down (button 5) at 30,40; then ☺ (keysym 0x100263a), which no key of the
        // default keymap produces.
        try connection.write([5, 0x10, 0, 30, 0, 40, 5, 0, 0, 30, 0, 40])
        try connection.write([4, 1, 0, 0, 0x01, 0x00, 0x26, 0x3a, 4, 0, 0, 0, 0x01, 0x00, 0x26, 0x3a])
        #expect(eventually { display.events().contains("press 5 30 40") && display.events().contains("key \(0x100263a)") },
                "\(display.events())")
    }

    /// Every printable ASCII and Latin-1 keysym reaches an X client as itself, typed with and
    /// without Shift held by the viewer (a viewer sends Shift, then the shifted keysym: `<` typed
    /// so must not arrive as `>`, the other symbol of the pc105 key that has `<` unshifted), even by
    /// an X client that reads them late, after the keycodes they came on were given other keysyms.
    @Test func eachPrintableKeysymArrivesAsItselfWithOrWithoutShift() throws {
        let display = try XTestDisplay()
        let server = try server(display)
        defer { server.stop() }
        let connection = try viewer(of: server)
        func key(_ keysym: Int, down: Bool) -> [UInt8] {
            [4, down ? 1 : 0, 0, 0] + (0..<4).map { UInt8(truncatingIfNeeded: keysym >> (24 - 8 * $0)) }
        }
        let keysyms = Array(0x20...0x7e) + Array(0xa0...0xff)
        try display.withClientStopped(for: .milliseconds(500)) {
            for shift in [false, true] {
                var keys = shift ? key(0xffe1, down: true) : []
                for keysym in keysyms { keys += key(keysym, down: true) + key(keysym, down: false) }
                try connection.write(keys + (shift ? key(0xffe1, down: false) : []))
            }
        }
        let expected = (keysyms + keysyms).map { "text " + String(Character(Unicode.Scalar($0)!)) }
        func typed() -> [String] { display.events().filter { $0.hasPrefix("text ") } }
        #expect(eventually(timeout: 30) { typed().count >= expected.count })
        let wrong = zip(expected, typed()).enumerated().filter { $0.element.0 != $0.element.1 }
        #expect(typed().count == expected.count && wrong.isEmpty,
                "\(wrong.prefix(20).map { "\($0.offset < keysyms.count ? "" : "shift+")\($0.element)" })")
    }
}


extension RFBServerTests {
    /// A viewer that asks for the Cursor pseudo-encoding gets the X cursor's shape (XFIXES): its
    /// size, hot spot, the opaque pixels' colours and the mask; and its new shape, on the next
    /// update, when an X client changes the cursor.
    @Test func aViewerAskingForTheCursorGetsItsShapeAndItsChanges() throws {
        let display = try XTestDisplay()
        let server = try server(display, password: nil)
        defer { server.stop() }
        let client = try RFBClient(host: "127.0.0.1", port: server.boundPort, password: nil, cursorShape: true)
        // XFIXES knows the cursor once the server has drawn it (the pointer moved): until then the
        // viewer has none, and it comes with a later update.
        try X11Display(name: display.name).pointer(x: 5, y: 5, mask: 0, previous: 0)
        try client.update()
        #expect(eventually(timeout: 10) { client.cursor != nil || (try? client.update(incremental: true)) == nil })
        try expectCursor(client.cursor, isTheCursorOf: display)
        let first = client.cursor
        let setter = try RunningXhelper(["set-cursor", display.name, "60"])
        defer { setter.stop() }
        #expect(eventually(timeout: 10) { (try? client.update(incremental: true)) != nil && client.cursor != first })
        try expectCursor(client.cursor, isTheCursorOf: display)
        #expect(client.lastEncodings.last == Encoding.cursor)
    }

    private func expectCursor(_ cursor: ViewerCursor?, isTheCursorOf display: XTestDisplay) throws {
        let result = try xhelper(["cursor", display.name])
        let x = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        let cursor = try #require(cursor, "no cursor shape arrived")
        #expect([cursor.width, cursor.height, cursor.hotX, cursor.hotY]
                == ["width", "height", "xhot", "yhot"].map { x[$0] as? Int ?? -1 })
        let pixels = (x["pixels"] as? [Int] ?? []).map { UInt32(truncatingIfNeeded: $0) }
        #expect(pixels.count == cursor.width * cursor.height && pixels.contains { $0 >> 24 == 0xff })
        for (index, pixel) in pixels.enumerated() {
            let (column, row) = (index % cursor.width, index / cursor.width)
            #expect(cursor.isOpaque(column, row) == (pixel >> 24 >= 0x80), "mask at \(column),\(row)")
            if pixel >> 24 == 0xff { #expect(cursor.pixels[index] == pixel & 0xffffff, "colour at \(column),\(row)") }
        }
    }

    @Test func aScrollIsSentAsCopyRect() throws {
        let display = try XTestDisplay()
        let server = try server(display, password: nil)
        defer { server.stop() }
        let client = try RFBClient(host: "127.0.0.1", port: server.boundPort, password: nil)
        try client.update()
        let result = try xhelper(["scroll", display.name, "48"])
        #expect(result.status == 0, "\(result.errors)")
        try client.update(incremental: true)
        #expect(client.lastEncodings.first == Encoding.copyRect, "\(client.lastEncodings)")
        #expect(client.frame == (try X11Display(name: display.name).capture()))
    }
}

extension RFBServerTests {
    @Test func aNewScreenSizeIsAnnouncedWithDesktopSize() throws {
        let display = try XTestDisplay()
        let server = try server(display, password: nil)
        defer { server.stop() }
        let client = try RFBClient(host: "127.0.0.1", port: server.boundPort, password: nil)
        try client.update()
        #expect((client.frame.width, client.frame.height) == (640, 480))
        let result = try xhelper(["resize", display.name, "320", "240"])
        #expect(result.status == 0, "\(result.errors)")
        try client.update(incremental: true)
        #expect((client.frame.width, client.frame.height) == (320, 240))
        #expect(client.frame == (try X11Display(name: display.name).capture()))
    }
}

extension RFBServerTests {
    @Test func aTakenPortIsReportedAndStopFreesIt() throws {
        let display = try XTestDisplay()
        let first = try server(display)
        let second = RFBServer(display: try X11Display(name: display.name), configuration: RFBServerConfiguration(
            host: "127.0.0.1", port: first.boundPort, password: nil, viewOnly: false, name: "test"), logger: Logger(label: "test"))
        #expect(throws: RFBError.connection("cannot listen on 127.0.0.1:\(first.boundPort): Address already in use")) {
            try second.start()
        }
        first.stop()
        let third = RFBServer(display: try X11Display(name: display.name), configuration: RFBServerConfiguration(
            host: "127.0.0.1", port: first.boundPort, password: nil, viewOnly: false, name: "test"), logger: Logger(label: "test"))
        try third.start()
        third.stop()
    }
}
