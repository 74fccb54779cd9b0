import CX11
import ConnectXpertSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Text viewers paste (ClientCutText) offered as the X clipboard: a window of ours owns CLIPBOARD
/// and PRIMARY and answers requests for them, on a connection and a thread of its own.
// Sendable: `text` and `stopping` are guarded by `lock`; `server` is set in init and read in deinit only;
// its X connection is used by its own thread alone.
final class ClipboardOwner: @unchecked Sendable {
    private let display: OpaquePointer
    private let window: Window
    private let lock = NSLock()
    private var text: [UInt8] = []
    private var stopping = false
    private var server: BlockingThread?
    private let atoms: (clipboard: Atom, targets: Atom, utf8: Atom)

    init?(name: String) {
        guard let display = XOpenDisplay(name) else { return nil }
        self.display = display
        let root = XDefaultRootWindow(display)
        window = XCreateSimpleWindow(display, root, 0, 0, 1, 1, 0, 0, 0)
        atoms = (XInternAtom(display, "CLIPBOARD", 0), XInternAtom(display, "TARGETS", 0), XInternAtom(display, "UTF8_STRING", 0))
        server = BlockingThread("x-clipboard") { [self] in serve() }
    }

    deinit {
        lock.withLock { stopping = true }
        server?.join()
        XDestroyWindow(display, window)
        XCloseDisplay(display)
    }

    func set(_ value: String) {
        lock.withLock {
            text = Array(value.utf8)
            XSetSelectionOwner(display, atoms.clipboard, window, UInt(CurrentTime))
            XSetSelectionOwner(display, Atom(XA_PRIMARY), window, UInt(CurrentTime))
            XFlush(display)
        }
    }

    private func serve() {
        let descriptor = XConnectionNumber(display)
        while !lock.withLock({ stopping }) {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&poller, 1, 200)
            lock.withLock {
                while XPending(display) > 0 {
                    var event = XEvent()
                    XNextEvent(display, &event)
                    if event.type == SelectionRequest { answer(event.xselectionrequest) }
                }
            }
        }
    }

    /// Called with the lock held.
    private func answer(_ request: XSelectionRequestEvent) {
        var reply = XEvent()
        reply.xselection.type = SelectionNotify
        reply.xselection.requestor = request.requestor
        reply.xselection.selection = request.selection
        reply.xselection.target = request.target
        reply.xselection.time = request.time
        reply.xselection.property = request.property
        if request.target == atoms.targets {
            var offered = [atoms.targets, atoms.utf8, Atom(XA_STRING)]
            offered.withUnsafeMutableBytes {
                _ = XChangeProperty(display, request.requestor, request.property, Atom(XA_ATOM), 32, PropModeReplace,
                                    $0.baseAddress!.assumingMemoryBound(to: UInt8.self), 3)
            }
        } else if request.target == atoms.utf8 || request.target == Atom(XA_STRING) {
            var bytes = request.target == atoms.utf8 ? text : Array(String(decoding: text, as: UTF8.self).unicodeScalars
                .map { $0.value < 256 ? UInt8($0.value) : UInt8(ascii: "?") })
            let count = Int32(bytes.count)
            bytes.withUnsafeMutableBufferPointer {
                _ = XChangeProperty(display, request.requestor, request.property, request.target, 8, PropModeReplace,
                                    $0.baseAddress, count)
            }
        } else {
            reply.xselection.property = 0
        }
        XSendEvent(display, request.requestor, 0, 0, &reply)
        XFlush(display)
    }
}
