import CX11
import Foundation
import Synchronization

/// A screen's pixels, `0x00RRGGBB` each, row by row.
public struct Frame: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt32]

    public init(width: Int, height: Int, pixels: [UInt32]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// An X11 display connection and what the screen share does with it: capture the root window
/// (MIT-SHM where the server offers it, else `XGetImage`) and inject input (XTest). Xlib calls on
/// one connection must not overlap: every call goes through `lock`. Closed in `deinit`.
// Sendable: every Xlib call, and `shared` and `clipboard`, are under `lock`.
public final class X11Display: @unchecked Sendable {
    private let display: OpaquePointer
    private let root: Window
    private let lock = NSLock()
    public let name: String
    private var shared: SharedImage?
    private var clipboard: ClipboardOwner?

    /// An XImage in a shared-memory segment, attached to the X server.
    private final class SharedImage {
        var info = XShmSegmentInfo()
        let image: UnsafeMutablePointer<XImage>
        let width: Int
        let height: Int

        init?(display: OpaquePointer, width: Int, height: Int) {
            let screen = XDefaultScreen(display)
            guard let image = XShmCreateImage(display, XDefaultVisual(display, screen), UInt32(XDefaultDepth(display, screen)),
                                              ZPixmap, nil, &info, UInt32(width), UInt32(height)) else { return nil }
            self.image = image
            self.width = width
            self.height = height
            info.shmid = shmget(IPC_PRIVATE, Int(image.pointee.bytes_per_line) * height, IPC_CREAT | 0o600)
            guard info.shmid >= 0, let address = shmat(info.shmid, nil, 0), address != UnsafeMutableRawPointer(bitPattern: -1) else {
                cx_x_destroy_image(image)
                return nil
            }
            info.shmaddr = address.assumingMemoryBound(to: CChar.self)
            image.pointee.data = info.shmaddr
            info.readOnly = 0
            // Marked for removal now: the segment goes when both sides detach, even after a crash.
            shmctl(info.shmid, IPC_RMID, nil)
            guard XShmAttach(display, &info) != 0 else {
                shmdt(address)
                image.pointee.data = nil
                cx_x_destroy_image(image)
                return nil
            }
            XSync(display, 0)
            if cx_x_take_error() != 0 {
                shmdt(address)
                image.pointee.data = nil
                cx_x_destroy_image(image)
                return nil
            }
        }

        func release(display: OpaquePointer) {
            XShmDetach(display, &info)
            XSync(display, 0)
            shmdt(info.shmaddr)
            image.pointee.data = nil
            cx_x_destroy_image(image)
        }
    }

    public init(name: String) throws {
        _ = X11Display.setUp
        guard let display = XOpenDisplay(name) else {
            throw RFBError.display("cannot open the X display \(name): is an X server running there, and may we connect "
                + "(DISPLAY, XAUTHORITY)?")
        }
        self.display = display
        self.name = name
        root = XDefaultRootWindow(display)
        let depth = XDefaultDepth(display, XDefaultScreen(display))
        guard depth == 24 || depth == 32 else {
            XCloseDisplay(display)
            throw RFBError.display("the X display \(name) has depth \(depth); screen share needs depth 24 or 32")
        }
    }

    deinit {
        clipboard = nil
        shared?.release(display: display)
        XCloseDisplay(display)
    }

    private static let setUp: Void = {
        XInitThreads()
        cx_x_install_error_handler()
    }()

    public func capture() throws -> Frame {
        try lock.withLock {
            var attributes = XWindowAttributes()
            XGetWindowAttributes(display, root, &attributes)
            let width = Int(attributes.width), height = Int(attributes.height)
            if let current = shared, current.width != width || current.height != height {
                current.release(display: display)
                shared = nil
            }
            if shared == nil, XShmQueryExtension(display) != 0 {
                shared = SharedImage(display: display, width: width, height: height)
            }
            if let shared, XShmGetImage(display, root, shared.image, 0, 0, UInt(bitPattern: -1)) != 0, cx_x_take_error() == 0 {
                return frame(from: shared.image, width: width, height: height)
            }
            guard let image = XGetImage(display, root, 0, 0, UInt32(width), UInt32(height), UInt(bitPattern: -1), ZPixmap) else {
                throw RFBError.display("cannot read the screen of \(name)")
            }
            defer { cx_x_destroy_image(image) }
            return frame(from: image, width: width, height: height)
        }
    }

    /// Copies a 32-bit ZPixmap into `0x00RRGGBB` pixels.
    private func frame(from image: UnsafeMutablePointer<XImage>, width: Int, height: Int) -> Frame {
        let stride = Int(image.pointee.bytes_per_line)
        let data = UnsafeRawPointer(image.pointee.data!)
        let standard = image.pointee.red_mask == 0xff0000 && image.pointee.green_mask == 0xff00 && image.pointee.blue_mask == 0xff
        var pixels = [UInt32](repeating: 0, count: width * height)
        pixels.withUnsafeMutableBufferPointer { output in
            for row in 0..<height {
                let source = data + row * stride
                if standard && image.pointee.byte_order == LSBFirst {
                    memcpy(output.baseAddress! + row * width, source, width * 4)
                    for column in 0..<width { output[row * width + column] &= 0x00ff_ffff }
                } else {
                    for column in 0..<width {
                        let pixel = cx_x_get_pixel(image, Int32(column), Int32(row))
                        output[row * width + column] = channel(pixel, image.pointee.red_mask) << 16
                            | channel(pixel, image.pointee.green_mask) << 8 | channel(pixel, image.pointee.blue_mask)
                    }
                }
            }
        }
        return Frame(width: width, height: height, pixels: pixels)
    }

    /// The 8-bit value of the channel `mask` selects.
    private func channel(_ pixel: UInt, _ mask: UInt) -> UInt32 {
        guard mask != 0 else { return 0 }
        let value = (pixel & mask) >> UInt(mask.trailingZeroBitCount)
        let maximum = mask >> UInt(mask.trailingZeroBitCount)
        return UInt32(value * 255 / maximum)
    }

    // MARK: Input

    /// Offers `text` as the X clipboard (CLIPBOARD and PRIMARY).
    public func setClipboard(_ text: String) {
        lock.withLock {
            if clipboard == nil { clipboard = ClipboardOwner(name: name) }
            clipboard?.set(text)
        }
    }

    /// Moves the pointer and presses or releases buttons 1-5 to match `mask` (bit 0 is button 1;
    /// 4 and 5 are the wheel), given the mask before.
    public func pointer(x: Int, y: Int, mask: UInt8, previous: UInt8) {
        lock.withLock {
            XTestFakeMotionEvent(display, XDefaultScreen(display), Int32(x), Int32(y), 0)
            for button in 0..<8 where (mask ^ previous) & (1 << button) != 0 {
                XTestFakeButtonEvent(display, UInt32(button + 1), mask & (1 << button) != 0 ? 1 : 0, 0)
            }
            XFlush(display)
        }
    }

    /// Presses or releases the key for an X keysym. A keysym that no key produces is put on a
    /// spare keycode first; one found only at a key's shifted level gets a faked Shift.
    public func key(_ keysym: UInt32, down: Bool, shiftHeld: Bool) {
        lock.withLock {
            guard let (keycode, shifted) = keycode(for: KeySym(keysym)) else { return }
            let shiftKey = XKeysymToKeycode(display, KeySym(XK_Shift_L))
            let fakeShift = shifted && !shiftHeld && down && shiftKey != 0
            if fakeShift { XTestFakeKeyEvent(display, UInt32(shiftKey), 1, 0) }
            XTestFakeKeyEvent(display, UInt32(keycode), down ? 1 : 0, 0)
            if fakeShift { XTestFakeKeyEvent(display, UInt32(shiftKey), 0, 0) }
            XFlush(display)
        }
    }

    /// The keycode producing `keysym`, and whether it needs Shift. Called with the lock held.
    private func keycode(for keysym: KeySym) -> (KeyCode, Bool)? {
        let found = XKeysymToKeycode(display, keysym)
        if found != 0 {
            let plain = symbol(of: found, level: 0)
            return (found, plain != keysym && symbol(of: found, level: 1) == keysym)
        }
        return remapSpareKeycode(to: keysym).map { ($0, false) }
    }

    /// The keysym a keycode produces at a shift level (0 plain, 1 shifted). Called with the lock held.
    private func symbol(of keycode: KeyCode, level: Int32) -> KeySym {
        var count: Int32 = 0
        guard let symbols = XGetKeyboardMapping(display, keycode, 1, &count) else { return 0 }
        defer { XFree(symbols) }
        return level < count ? symbols[Int(level)] : 0
    }

    /// Assigns `keysym` to the highest keycode that has none, as x11vnc does.
    private func remapSpareKeycode(to keysym: KeySym) -> KeyCode? {
        var minimum: Int32 = 0, maximum: Int32 = 0
        XDisplayKeycodes(display, &minimum, &maximum)
        var perKeycode: Int32 = 0
        guard let mapping = XGetKeyboardMapping(display, KeyCode(minimum), maximum - minimum + 1, &perKeycode) else { return nil }
        defer { XFree(mapping) }
        for keycode in stride(from: maximum, through: minimum, by: -1) {
            let offset = Int((keycode - minimum) * perKeycode)
            if (0..<Int(perKeycode)).allSatisfy({ mapping[offset + $0] == 0 }) {
                var symbols = [keysym, keysym]
                XChangeKeyboardMapping(display, keycode, 2, &symbols, 1)
                XSync(display, 0)
                return KeyCode(keycode)
            }
        }
        return nil
    }
}
