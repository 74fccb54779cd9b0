import CX11
import Foundation

/// The X DAMAGE extension on the root window, on a connection of its own: tells whether anything
/// was drawn since the last look, so an idle screen is not captured again and again. Closed in
/// `deinit`.
// Sendable: its X connection is used under `lock` alone.
final class DamageWatch: @unchecked Sendable {
    private let display: OpaquePointer
    private let damage: Damage
    private let eventBase: Int32
    private let lock = NSLock()

    init?(name: String) {
        guard let display = XOpenDisplay(name) else { return nil }
        var eventBase: Int32 = 0, errorBase: Int32 = 0
        guard XDamageQueryExtension(display, &eventBase, &errorBase) != 0 else {
            XCloseDisplay(display)
            return nil
        }
        self.display = display
        self.eventBase = eventBase
        damage = XDamageCreate(display, XDefaultRootWindow(display), Int32(XDamageReportNonEmpty))
        XFlush(display)
    }

    deinit {
        XDamageDestroy(display, damage)
        XCloseDisplay(display)
    }

    /// Whether the screen was drawn on since the last call (true the first time).
    func takeChanges() -> Bool {
        lock.withLock {
            var changed = false
            while XPending(display) > 0 {
                var event = XEvent()
                XNextEvent(display, &event)
                if event.type == eventBase + XDamageNotify { changed = true }
            }
            if changed {
                // Re-arms the report (ReportNonEmpty reports once until the damage is cleared).
                XDamageSubtract(display, damage, 0, 0)
                XFlush(display)
            }
            return changed
        }
    }
}
