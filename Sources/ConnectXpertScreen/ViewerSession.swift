import ConnectXpertSystem
import Foundation
import Logging
import Synchronization

/// RFB encoding numbers (RFC 6143 7.7, 7.8).
enum Encoding {
    static let raw: Int32 = 0
    static let copyRect: Int32 = 1
    static let hextile: Int32 = 5
    static let zrle: Int32 = 16
    static let desktopSize: Int32 = -223
    static let cursor: Int32 = -239
}

/// One viewer: the handshake, then a reader thread (its messages, input to X) and a writer thread
/// (framebuffer updates when asked for, only what changed on incremental requests).
// Sendable: `state` is a Mutex; `buttons` is used by the reader thread alone; `link` is set by it
// before the writer thread starts.
final class ViewerSession: @unchecked Sendable {
    private unowned let server: RFBServer
    private let connection: RFBConnection
    /// Where the RFB bytes go: the connection itself, or the WebSocket over it.
    private var link: any ViewerLink
    /// For a connection to the web port: what turns it into a WebSocket, or serves a page.
    private let webPort: WebPort?
    private let logger: Logger

    /// What the reader learned and the writer acts on.
    private struct State {
        var format = PixelFormat.native
        var encodings: [Int32] = [Encoding.raw]
        /// The region of the pending update request and whether it is incremental.
        var request: (x: Int, y: Int, width: Int, height: Int, incremental: Bool)?
        var closed = false
    }

    private let state = Mutex(State())
    private let requestArrived = DispatchSemaphore(value: 0)
    private let thread = Mutex<BlockingThread?>(nil)
    private let authenticated = Atomic<Bool>(false)
    /// The buttons held after the last pointer event.
    private var buttons: UInt8 = 0

    init(server: RFBServer, connection: RFBConnection, webPort: WebPort? = nil) {
        self.server = server
        self.connection = connection
        link = connection
        self.webPort = webPort
        var logger = server.logger
        logger[metadataKey: "screen.peer"] = "\(connection.peer)"
        self.logger = logger
    }

    var isAuthenticated: Bool { authenticated.load(ordering: .relaxed) }

    func start() {
        let started = BlockingThread("rfb-viewer") { [self] in run() }
        thread.withLock { $0 = started }
    }

    func close() {
        state.withLock { $0.closed = true }
        connection.shutdown()
        requestArrived.signal()
    }

    func waitUntilFinished() { thread.withLock { $0 }?.join() }

    private func run() {
        defer { server.sessionEnded(self) }
        do {
            connection.setReadTimeout(30)
            if let webPort {
                guard let webSocket = try webPort.open(connection) else { return }  // a page, served
                link = webSocket
            }
            let size = try handshake()
            connection.setReadTimeout(0)
            authenticated.store(true, ordering: .relaxed)
            logger.info("viewer connected")
            server.sessionAuthenticated()
            let writer = BlockingThread("rfb-updates") { [self] in writeUpdates(announced: size) }
            defer {
                close()
                writer.join()
            }
            try readMessages()
        } catch RFBError.authenticationFailed(let reason) {
            logger.warning("viewer refused", metadata: ["screen.error": "authentication failed: \(reason)"])
        } catch RFBError.protocolViolation(let problem) {
            logger.warning("viewer disconnected for a protocol error", metadata: ["screen.error": "protocol error: \(problem)"])
        } catch {
            // The viewer left, or the server is stopping: nothing to report.
        }
        if isAuthenticated { logger.info("viewer left") }
    }

    // MARK: Handshake

    /// Version, security and initialisation (RFC 6143 7.1-7.3); returns the size announced.
    private func handshake() throws -> (Int, Int) {
        try link.write(Array("RFB 003.008\n".utf8))
        let version = try link.read(12)
        guard version.starts(with: Array("RFB 003.".utf8)), version[11] == 10,
              let minor = Int(String(decoding: version[8..<11], as: UTF8.self)) else {
            throw RFBError.protocolViolation("the viewer's greeting is not an RFB version")
        }
        let protocolMinor = minor >= 8 ? 8 : minor == 7 ? 7 : 3
        let securityType: UInt8 = server.configuration.password == nil ? 1 : 2
        if protocolMinor == 3 {
            try link.write([0, 0, 0, securityType])
        } else {
            try link.write([1, securityType])
            let chosen = try link.readByte()
            guard chosen == securityType else {
                try? sendFailure("security type \(chosen) was not offered", minor: protocolMinor)
                throw RFBError.protocolViolation("the viewer chose security type \(chosen), which was not offered")
            }
        }
        if let password = server.configuration.password {
            var challenge = [UInt8](repeating: 0, count: 16)
            for index in challenge.indices { challenge[index] = UInt8.random(in: 0...255) }
            try link.write(challenge)
            let response = try link.read(16)
            guard response == VNCAuthentication.response(challenge: challenge, password: password) else {
                try? sendFailure("wrong password", minor: protocolMinor)
                throw RFBError.authenticationFailed("wrong VNC password from \(link.peer)")
            }
            try link.write([0, 0, 0, 0])
        } else if protocolMinor == 8 {
            try link.write([0, 0, 0, 0])
        }
        _ = try link.readByte()  // shared flag: sessions are always shared
        let frame = try server.latestFrame()
        var initMessage: [UInt8] = []
        appendBigEndian(UInt16(frame.width), to: &initMessage)
        appendBigEndian(UInt16(frame.height), to: &initMessage)
        initMessage += PixelFormat.native.bytes
        let name = Array(server.configuration.name.utf8)
        appendBigEndian(UInt32(name.count), to: &initMessage)
        initMessage += name
        try link.write(initMessage)
        return (frame.width, frame.height)
    }

    /// SecurityResult "failed"; RFB 3.8 adds the reason.
    private func sendFailure(_ reason: String, minor: Int) throws {
        var message: [UInt8] = [0, 0, 0, 1]
        if minor >= 8 {
            appendBigEndian(UInt32(reason.utf8.count), to: &message)
            message += Array(reason.utf8)
        }
        try link.write(message)
    }

    // MARK: Messages from the viewer

    private func readMessages() throws {
        let input = link
        while true {
            switch try ClientMessage.read(from: input) {
            case .setPixelFormat(let format):
                state.withLock { $0.format = format }
            case .setEncodings(let encodings):
                state.withLock { $0.encodings = encodings }
            case let .framebufferUpdateRequest(incremental, x, y, width, height):
                state.withLock { state in
                    // A full request wins over an incremental one still pending.
                    let keepFull = state.request.map { !$0.incremental } ?? false
                    state.request = (x, y, width, height, incremental && !keepFull)
                }
                requestArrived.signal()
            case let .key(down, keysym):
                if !server.configuration.viewOnly { server.display.key(keysym, down: down) }
            case let .pointer(mask, x, y):
                if !server.configuration.viewOnly { server.display.pointer(x: x, y: y, mask: mask, previous: buttons) }
                buttons = mask
            case .cutText(let text):
                if !server.configuration.viewOnly { server.display.setClipboard(text) }
            }
        }
    }

    // MARK: Updates to the viewer

    private func writeUpdates(announced: (Int, Int)) {
        var sent: Frame?
        var size = announced
        var encoder: ZRLEEncoder?
        /// The serial of the cursor shape the viewer has (Cursor pseudo-encoding).
        var sentCursor: UInt?
        while true {
            requestArrived.wait()
            while true {
                let (request, format, encodings, closed) = state.withLock { ($0.request, $0.format, $0.encodings, $0.closed) }
                if closed { return }
                guard let request else { break }
                let frame: Frame
                do { frame = try server.latestFrame() } catch {
                    logger.error("cannot capture the screen", metadata: ["screen.error": "\(error)"])
                    close()
                    return
                }
                var message: [UInt8] = []
                var rectangles = 0
                if (frame.width, frame.height) != size {
                    guard encodings.contains(Encoding.desktopSize) else {
                        logger.warning("the screen size changed and the viewer cannot follow (no DesktopSize)")
                        close()
                        return
                    }
                    appendRectangleHeader(0, 0, frame.width, frame.height, Encoding.desktopSize, to: &message)
                    rectangles = 1
                    size = (frame.width, frame.height)
                    sent = nil
                } else {
                    let region = clip(request, to: frame)
                    var dirty = [region].filter { $0.width > 0 && $0.height > 0 }
                    var copies: [ScrollDetector.Copy] = []
                    if request.incremental, let previous = sent {
                        dirty = changedRectangles(from: previous, to: frame, in: region)
                        // A scroll: the viewer copies what it has (CopyRect) and gets only the rest.
                        if encodings.contains(Encoding.copyRect), let box = boundingBox(of: dirty),
                           let copy = ScrollDetector.find(old: previous, new: frame, in: box) {
                            copies = [copy]
                            dirty = changedRectangles(from: ScrollDetector.apply(copy, to: previous), to: frame, in: region)
                        }
                    }
                    for copy in copies {
                        appendRectangleHeader(copy.x, copy.y, copy.width, copy.height, Encoding.copyRect, to: &message)
                        appendBigEndian(UInt16(copy.x), to: &message)
                        appendBigEndian(UInt16(copy.sourceY), to: &message)
                        rectangles += 1
                    }
                    let cursor = encodings.contains(Encoding.cursor) ? server.latestCursor() : nil
                    let newCursor = cursor.flatMap { $0.serial == sentCursor ? nil : $0 }
                    if dirty.isEmpty && copies.isEmpty && request.incremental && newCursor == nil {
                        // Nothing new: keep the request and look again shortly (or at once for a new one).
                        _ = requestArrived.wait(timeout: .now() + 0.015)
                        continue
                    }
                    // The first of the encodings it asks for that carry pixels (a viewer lists them best first).
                    let chosen = encodings.first { [Encoding.zrle, Encoding.hextile, Encoding.raw].contains($0) }
                    if chosen == Encoding.zrle && encoder == nil { encoder = try? ZRLEEncoder() }
                    for rect in dirty {
                        if chosen == Encoding.zrle, let encoder {
                            appendRectangleHeader(rect.x, rect.y, rect.width, rect.height, Encoding.zrle, to: &message)
                            message += encoder.encode(frame, x: rect.x, y: rect.y, width: rect.width, height: rect.height, format: format)
                        } else if chosen == Encoding.hextile {
                            appendRectangleHeader(rect.x, rect.y, rect.width, rect.height, Encoding.hextile,
                                                  to: &message)
                            message += HextileEncoder.encode(frame, x: rect.x, y: rect.y, width: rect.width,
                                                             height: rect.height, format: format)
                        } else {
                            appendRectangleHeader(rect.x, rect.y, rect.width, rect.height, Encoding.raw, to: &message)
                            appendRaw(frame, rect, format: format, to: &message)
                        }
                        rectangles += 1
                    }
                    if let newCursor {
                        appendCursor(newCursor, format: format, to: &message)
                        rectangles += 1
                        sentCursor = newCursor.serial
                    }
                    sent = merge(frame, into: sent, region: region)
                }
                state.withLock { state in
                    if let pending = state.request, pending == request { state.request = nil }
                }
                var header: [UInt8] = [0, 0]
                appendBigEndian(UInt16(rectangles), to: &header)
                do { try link.write(header + message) } catch {
                    close()
                    return
                }
            }
        }
    }

    private typealias Rectangle = (x: Int, y: Int, width: Int, height: Int)

    private func boundingBox(of rectangles: [Rectangle]) -> Rectangle? {
        guard let first = rectangles.first else { return nil }
        var (left, top, right, bottom) = (first.x, first.y, first.x + first.width, first.y + first.height)
        for rect in rectangles.dropFirst() {
            left = min(left, rect.x)
            top = min(top, rect.y)
            right = max(right, rect.x + rect.width)
            bottom = max(bottom, rect.y + rect.height)
        }
        return (left, top, right - left, bottom - top)
    }

    private func clip(_ request: (x: Int, y: Int, width: Int, height: Int, incremental: Bool), to frame: Frame) -> Rectangle {
        let x = min(request.x, frame.width), y = min(request.y, frame.height)
        return (x, y, min(request.width, frame.width - x), min(request.height, frame.height - y))
    }

    /// The 64x64 tiles of `region` that differ, joined into runs along each row of tiles.
    private func changedRectangles(from old: Frame, to new: Frame, in region: Rectangle) -> [Rectangle] {
        var result: [Rectangle] = []
        old.pixels.withUnsafeBufferPointer { before in
            new.pixels.withUnsafeBufferPointer { after in
                for tileY in stride(from: region.y, to: region.y + region.height, by: 64) {
                    let tileHeight = min(64, region.y + region.height - tileY)
                    var runStart: Int?
                    for tileX in stride(from: region.x, to: region.x + region.width + 1, by: 64) {
                        var changed = false
                        if tileX < region.x + region.width {
                            let tileWidth = min(64, region.x + region.width - tileX)
                            for row in tileY..<(tileY + tileHeight) {
                                let offset = row * new.width + tileX
                                if memcmp(before.baseAddress! + offset, after.baseAddress! + offset, tileWidth * 4) != 0 {
                                    changed = true
                                    break
                                }
                            }
                        }
                        if changed, runStart == nil { runStart = tileX }
                        if !changed, let start = runStart {
                            result.append((start, tileY, min(tileX, region.x + region.width) - start, tileHeight))
                            runStart = nil
                        }
                    }
                }
            }
        }
        return result
    }

    /// What the viewer has now: `frame` inside `region`, the previous picture elsewhere.
    private func merge(_ frame: Frame, into previous: Frame?, region: Rectangle) -> Frame {
        guard var merged = previous, region != (0, 0, frame.width, frame.height) else { return frame }
        for row in region.y..<(region.y + region.height) {
            let start = row * frame.width + region.x
            merged.pixels.replaceSubrange(start..<(start + region.width), with: frame.pixels[start..<(start + region.width)])
        }
        return merged
    }

    private func appendRectangleHeader(_ x: Int, _ y: Int, _ width: Int, _ height: Int, _ encoding: Int32, to output: inout [UInt8]) {
        appendBigEndian(UInt16(x), to: &output)
        appendBigEndian(UInt16(y), to: &output)
        appendBigEndian(UInt16(width), to: &output)
        appendBigEndian(UInt16(height), to: &output)
        appendBigEndian(UInt32(bitPattern: encoding), to: &output)
    }

    /// The Cursor pseudo-encoding (RFC 6143 7.8.1): the hot spot as the position, the pixels in the
    /// viewer's format, then a bit mask of the opaque ones (alpha from 0x80), each row padded to
    /// a byte. XFIXES premultiplies the colours by alpha; they are divided back.
    private func appendCursor(_ cursor: CursorImage, format: PixelFormat, to output: inout [UInt8]) {
        appendRectangleHeader(cursor.hotX, cursor.hotY, cursor.width, cursor.height, Encoding.cursor, to: &output)
        let colours = cursor.pixels.map { pixel -> UInt32 in
            let alpha = pixel >> 24
            guard alpha > 0 && alpha < 0xff else { return pixel & 0xffffff }
            let channels = [16, 8, 0].map { min(0xff, (pixel >> UInt32($0) & 0xff) * 0xff / alpha) << UInt32($0) }
            return channels.reduce(0, |)
        }
        appendRaw(Frame(width: cursor.width, height: cursor.height, pixels: colours),
                  (0, 0, cursor.width, cursor.height), format: format, to: &output)
        for row in 0..<cursor.height {
            var byte: UInt8 = 0
            for column in 0..<cursor.width {
                if cursor.pixels[row * cursor.width + column] >> 24 >= 0x80 { byte |= 0x80 >> UInt8(column % 8) }
                if column % 8 == 7 || column == cursor.width - 1 {
                    output.append(byte)
                    byte = 0
                }
            }
        }
    }

    private func appendRaw(_ frame: Frame, _ rect: Rectangle, format: PixelFormat, to output: inout [UInt8]) {
        let size = format.bytesPerPixel
        output.reserveCapacity(output.count + rect.width * rect.height * size)
        for row in rect.y..<(rect.y + rect.height) {
            let start = row * frame.width + rect.x
            for pixel in frame.pixels[start..<(start + rect.width)] {
                format.append(format.value(ofNative: pixel), count: size, to: &output)
            }
        }
    }
}
