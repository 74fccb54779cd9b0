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

/// The X cursor's shape (XFIXES): `0xAARRGGBB` pixels, alpha premultiplied, row by row; its hot
/// spot; and a serial that changes with the shape.
public struct CursorImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public let hotX: Int
    public let hotY: Int
    public let serial: UInt
    public let pixels: [UInt32]
}

/// An X11 display connection and what the screen share does with it: capture the root window
/// (MIT-SHM where the server offers it, else `XGetImage`) and inject input (XTest). Xlib calls on
/// one connection must not overlap: every call goes through `lock`. Closed in `deinit`.
// Sendable: every Xlib call, and `shared`, `clipboard` and `keyboard`, are under `lock`.
public final class X11Display: @unchecked Sendable {
    private let display: OpaquePointer
    private let root: Window
    private let lock = NSLock()
    public let name: String
    private var shared: SharedImage?
    private var clipboard: ClipboardOwner?
    /// Whether the server has XFIXES 2, which gives the cursor's image.
    private let hasXFixes: Bool
    /// The keys pressed for the viewer's keysyms, and the keycodes given keysyms with when each was
    /// last pressed, longest ago first.
    private var keyboard = (pressed: [KeySym: KeyCode](),
                            spare: [(keycode: KeyCode, pressed: ContinuousClock.Instant)]())

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
        var eventBase: Int32 = 0, errorBase: Int32 = 0, major: Int32 = 2, minor: Int32 = 0
        hasXFixes = XFixesQueryExtension(display, &eventBase, &errorBase) != 0
            && XFixesQueryVersion(display, &major, &minor) != 0 && major >= 2
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

    /// The cursor's shape now; nil without XFIXES.
    public func cursor() -> CursorImage? {
        lock.withLock {
            guard hasXFixes, let image = XFixesGetCursorImage(display) else { return nil }
            defer { XFree(image) }
            let cursor = image.pointee
            let count = Int(cursor.width) * Int(cursor.height)
            // XFIXES gives each pixel in a C long.
            let pixels = (0..<count).map { UInt32(truncatingIfNeeded: cursor.pixels[$0]) }
            return CursorImage(width: Int(cursor.width), height: Int(cursor.height), hotX: Int(cursor.xhot),
                               hotY: Int(cursor.yhot), serial: cursor.cursor_serial, pixels: pixels)
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

    /// Presses or releases the key for an X keysym so that X clients get exactly that keysym,
    /// whatever modifiers are down: a key that has it at its plain level is pressed with Shift and
    /// AltGr released, one that has it at its shifted level with Shift down and AltGr released, each
    /// for that key only (as x11vnc does). A keysym that no key has at either level is put on a
    /// spare keycode first; when every spare keycode was pressed within `spareReuseDelay`, this waits
    /// for the one pressed longest ago. Modifier keys themselves are pressed as they are.
    public func key(_ keysym: UInt32, down: Bool) {
        while let wait = lock.withLock({ keyOrWait(KeySym(keysym), down: down) }) {
            Thread.sleep(forTimeInterval: wait / .seconds(1))
        }
    }

    /// How long a spare keycode keeps the keysym it was last pressed for. An X client looks a key
    /// up in the mapping of the moment it reads the event (Xlib fetches the mapping again after a
    /// MappingNotify), so a keycode given another keysym before a slow client read its last press
    /// would reach that client as the new keysym. A person never types this many symbols that no key
    /// has within a second.
    private static let spareReuseDelay = Duration.seconds(1)

    /// Presses or releases the key for `symbol`, or returns how long to wait for a spare keycode.
    /// Called with the lock held.
    private func keyOrWait(_ symbol: KeySym, down: Bool) -> Duration? {
        if !down, let keycode = keyboard.pressed.removeValue(forKey: symbol) {
            XTestFakeKeyEvent(display, UInt32(keycode), 0, 0)
        } else if Self.modifiers.contains(symbol) || !down {
            let keycode = XKeysymToKeycode(display, symbol)
            if keycode != 0 { XTestFakeKeyEvent(display, UInt32(keycode), down ? 1 : 0, 0) }
        } else {
            let mapping = KeyboardMapping(display)
            switch key(for: symbol, in: mapping) {
            case .wait(let duration):
                return duration
            case .key(let keycode, let level):
                press(keycode, level: level, mapping: mapping)
                keyboard.pressed[symbol] = keycode
                if keyboard.spare.contains(where: { $0.keycode == keycode }) { pressedSpare(keycode) }
            case nil:
                return nil
            }
        }
        XFlush(display)
        return nil
    }

    private static let shifts: Set<KeySym> = [KeySym(XK_Shift_L), KeySym(XK_Shift_R)]
    private static let altGr: Set<KeySym> = [KeySym(XK_ISO_Level3_Shift), KeySym(XK_Mode_switch)]
    private static let modifiers = shifts.union(altGr).union((0xffe3...0xffee).map { KeySym($0) })
        .union([KeySym(XK_Num_Lock), KeySym(XK_ISO_Level5_Shift)])

    /// Presses `keycode` at `level` (0 plain, 1 shifted; nil when both are the same keysym), with
    /// the Shift and AltGr keys that are down released, or Shift pressed, for it alone. Called with
    /// the lock held.
    private func press(_ keycode: KeyCode, level: Int?, mapping: KeyboardMapping) {
        let down = keysDown()
        let shiftsDown = down.filter { Self.shifts.contains(mapping.symbol(of: $0, level: 0)) }
        var released = down.filter { Self.altGr.contains(mapping.symbol(of: $0, level: 0)) }
        var pressed: [KeyCode] = []
        if level == 0 { released += shiftsDown }
        if level == 1, shiftsDown.isEmpty {
            let shift = XKeysymToKeycode(display, KeySym(XK_Shift_L))
            if shift != 0 { pressed.append(shift) }
        }
        for key in released { XTestFakeKeyEvent(display, UInt32(key), 0, 0) }
        for key in pressed { XTestFakeKeyEvent(display, UInt32(key), 1, 0) }
        XTestFakeKeyEvent(display, UInt32(keycode), 1, 0)
        for key in pressed.reversed() { XTestFakeKeyEvent(display, UInt32(key), 0, 0) }
        for key in released.reversed() { XTestFakeKeyEvent(display, UInt32(key), 1, 0) }
    }

    /// The keycodes that are down now. Called with the lock held.
    private func keysDown() -> [KeyCode] {
        var keys = [CChar](repeating: 0, count: 32)
        XQueryKeymap(display, &keys)
        return (8..<256).filter { UInt8(bitPattern: keys[$0 / 8]) & (1 << ($0 % 8)) != 0 }.map { KeyCode($0) }
    }

    /// A key for a keysym, with its level (0 plain, 1 shifted, nil when both are the keysym); or how
    /// long to wait until a spare keycode may be given the keysym.
    private enum KeyChoice {
        case key(KeyCode, level: Int?)
        case wait(Duration)
    }

    /// A key that has `keysym` at its plain or shifted level, the plain one first; else a spare
    /// keycode given it at both. Called with the lock held.
    private func key(for keysym: KeySym, in mapping: KeyboardMapping) -> KeyChoice? {
        for level in 0...1 {
            if let keycode = mapping.keycodes.first(where: { mapping.symbol(of: $0, level: level) == keysym }) {
                let same = mapping.symbol(of: keycode, level: 1 - level) == keysym
                return .key(keycode, level: same ? nil : level)
            }
        }
        return spareKeycode(for: keysym, in: mapping)
    }

    /// Gives `keysym` to the highest keycode that has no symbol, as x11vnc does; once there is none,
    /// to the spare keycode pressed longest ago (and not down), once `spareReuseDelay` has passed
    /// since that press. Called with the lock held.
    private func spareKeycode(for keysym: KeySym, in mapping: KeyboardMapping) -> KeyChoice? {
        let empty = mapping.keycodes.reversed().first { keycode in
            (0..<mapping.perKeycode).allSatisfy { mapping.symbol(of: keycode, level: $0) == 0 }
        }
        let down = Set(keyboard.pressed.values)
        let reusable = keyboard.spare.first { !down.contains($0.keycode) }
        if empty == nil, let reusable, case let wait = reusable.pressed + Self.spareReuseDelay - .now, wait > .zero {
            return .wait(wait)
        }
        guard let keycode = empty ?? reusable?.keycode else { return nil }
        var symbols = [keysym, keysym]
        XChangeKeyboardMapping(display, Int32(keycode), 2, &symbols, 1)
        XSync(display, 0)
        pressedSpare(keycode)
        return .key(keycode, level: nil)
    }

    /// Puts a spare keycode last in `keyboard.spare`, as pressed now. Called with the lock held.
    private func pressedSpare(_ keycode: KeyCode) {
        keyboard.spare.removeAll { $0.keycode == keycode }
        keyboard.spare.append((keycode, .now))
    }
}

/// The X server's keyboard mapping: the keysyms of each keycode, by level. Read in one request.
private struct KeyboardMapping {
    let minimum: Int
    let perKeycode: Int
    let symbols: [KeySym]

    init(_ display: OpaquePointer) {
        var minimum: Int32 = 0, maximum: Int32 = 0, perKeycode: Int32 = 0
        XDisplayKeycodes(display, &minimum, &maximum)
        let count = Int(maximum - minimum + 1)
        let mapping = XGetKeyboardMapping(display, KeyCode(minimum), Int32(count), &perKeycode)
        defer { if let mapping { XFree(mapping) } }
        self.minimum = Int(minimum)
        self.perKeycode = mapping == nil ? 0 : Int(perKeycode)
        symbols = mapping.map { Array(UnsafeBufferPointer(start: $0, count: count * Int(perKeycode))) } ?? []
    }

    var keycodes: [KeyCode] {
        perKeycode == 0 ? [] : (0..<(symbols.count / perKeycode)).map { KeyCode(minimum + $0) }
    }

    func symbol(of keycode: KeyCode, level: Int) -> KeySym {
        let index = (Int(keycode) - minimum) * perKeycode + level
        return level < perKeycode && symbols.indices.contains(index) ? symbols[index] : 0
    }
}
