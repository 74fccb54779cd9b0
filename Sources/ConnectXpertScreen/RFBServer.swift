import ConnectXpertPolicy
import ConnectXpertSystem
import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a screen share serves its viewers.
public struct RFBServerConfiguration: Sendable {
    /// The address to listen on (`127.0.0.1`, `0.0.0.0`, `::1`) and the port (0: any free one).
    public var host: String
    public var port: Int
    /// The VNC password (first 8 characters count), or `nil` for no authentication.
    public var password: String?
    public var viewOnly: Bool
    /// The desktop name viewers show.
    public var name: String
    /// Where RFB over WebSocket is served too, with the pages of `pages` (noVNC), if any.
    public var webSocket: ListenAddress?
    public var pages: String?

    public init(host: String, port: Int, password: String?, viewOnly: Bool, name: String,
                webSocket: ListenAddress? = nil, pages: String? = nil) {
        self.host = host
        self.port = port
        self.password = password
        self.viewOnly = viewOnly
        self.name = name
        self.webSocket = webSocket
        self.pages = pages
    }
}

/// An RFB 3.8 server (3.3 and 3.7 viewers accepted) for one X display. Each viewer has a thread
/// reading its messages and one writing its updates; viewers share the session. Garbage or a
/// truncated message from a viewer ends that viewer's connection only.
// Sendable: the listeners, bound ports, `accepting` and `viewersChanged` are set before the threads start
// (`start`), then only read.
public final class RFBServer: @unchecked Sendable {
    public let configuration: RFBServerConfiguration
    let display: X11Display
    let logger: Logger
    private var listener: Int32 = -1
    private var webListener: Int32 = -1
    private let stopping = Atomic<Bool>(false)
    private let sessions = Mutex<[ObjectIdentifier: ViewerSession]>([:])
    private var accepting: BlockingThread?
    private let frames: FrameSource
    /// Called with the number of viewers after one connects (past authentication) or leaves.
    public var viewersChanged: @Sendable (Int) -> Void = { _ in }
    /// The port actually bound (when `port` was 0).
    public private(set) var boundPort = 0
    /// The web port's, when it has one.
    public private(set) var boundWebPort = 0

    public init(display: X11Display, configuration: RFBServerConfiguration, logger: Logger) {
        self.display = display
        self.configuration = configuration
        self.logger = logger
        frames = FrameSource(display: display)
    }

    deinit {
        if listener >= 0 { close(listener) }
        if webListener >= 0 { close(webListener) }
    }

    public var viewerCount: Int { sessions.withLock { $0.values.filter(\.isAuthenticated).count } }

    /// Binds the listeners and starts accepting viewers on a thread of its own.
    public func start() throws {
        let rfb = try Self.listen(host: configuration.host, port: configuration.port)
        listener = rfb.descriptor
        boundPort = rfb.port
        if let web = configuration.webSocket {
            do {
                let bound = try Self.listen(host: web.host, port: web.port)
                webListener = bound.descriptor
                boundWebPort = bound.port
            } catch {
                close(listener)
                listener = -1
                throw error
            }
        }
        accepting = BlockingThread("rfb-accept") { [self] in acceptLoop() }
    }

    /// A listening socket on `host:port`, and the port it is bound to.
    private static func listen(host: String, port: Int) throws -> (descriptor: Int32, port: Int) {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &found) == 0, let address = found else {
            throw RFBError.connection("\(host) is not an address to listen on (write an IP address such as 127.0.0.1)")
        }
        defer { freeaddrinfo(found) }
        let place = "\(host):\(port)"
        var descriptor: Int32 = -1
        do {
            descriptor = try syscall("socket", path: place) {
                socket(address.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            }
            var one: Int32 = 1
            setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            try syscall("bind", path: place) { bind(descriptor, address.pointee.ai_addr, address.pointee.ai_addrlen) }
            try syscall("listen", path: place) { Glibc.listen(descriptor, 16) }
        } catch let error as SystemError {
            if descriptor >= 0 { close(descriptor) }
            throw RFBError.connection("cannot listen on \(place): \(error.reason)")
        }
        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(descriptor, $0, &length) }
        }
        let port = withUnsafeBytes(of: bound) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
        return (descriptor, Int(port))
    }

    /// Closes the listeners (the ports are free again at once) and every viewer's connection, and
    /// waits for their threads.
    public func stop() {
        guard !stopping.exchange(true, ordering: .relaxed), listener >= 0 else { return }
        accepting?.join()
        close(listener)
        listener = -1
        if webListener >= 0 { close(webListener) }
        webListener = -1
        let current = sessions.withLock { Array($0.values) }
        for session in current { session.close() }
        for session in current { session.waitUntilFinished() }
    }

    private func acceptLoop() {
        let webPort = WebPort(pages: configuration.pages)
        while !stopping.load(ordering: .relaxed) {
            var pollers = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            if webListener >= 0 { pollers.append(pollfd(fd: webListener, events: Int16(POLLIN), revents: 0)) }
            guard (try? syscall("poll") { poll(&pollers, nfds_t(pollers.count), 200) }) ?? 0 > 0 else { continue }
            for poller in pollers where poller.revents & Int16(POLLIN) != 0 {
                guard let connection = accept(on: poller.fd) else { continue }
                let session = ViewerSession(server: self, connection: connection,
                                            webPort: poller.fd == webListener ? webPort : nil)
                sessions.withLock { $0[ObjectIdentifier(session)] = session }
                session.start()
            }
        }
    }

    private func accept(on descriptor: Int32) -> RFBConnection? {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let accepted = try? withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                try syscall("accept") { Glibc.accept(descriptor, address, &length) }
            }
        }
        guard let fd = accepted else { return nil }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return RFBConnection(descriptor: fd, peer: Self.describe(address))
    }

    func sessionAuthenticated() {
        viewersChanged(viewerCount)
    }

    func sessionEnded(_ session: ViewerSession) {
        let wasCounted = session.isAuthenticated
        sessions.withLock { $0[ObjectIdentifier(session)] = nil }
        if wasCounted && !stopping.load(ordering: .relaxed) { viewersChanged(viewerCount) }
    }

    func latestFrame() throws -> Frame { try frames.latest() }

    func latestCursor() -> CursorImage? { frames.cursor() }

    private static func describe(_ address: sockaddr_storage) -> String {
        var copy = address
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let status = withUnsafePointer(to: &copy) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, socklen_t(MemoryLayout<sockaddr_storage>.size), &host, socklen_t(host.count),
                            &service, socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard status == 0 else { return "unknown" }
        return "\(String(nulTerminated: host)):\(String(nulTerminated: service))"
    }
}

/// The screen, captured at most once per few milliseconds however many viewers ask, and not at
/// all while X DAMAGE says nothing was drawn. DAMAGE is taken as a hint, as x11vnc does: the
/// screen is captured anyway at least every quarter second, so nothing stays stale for long.
// Sendable: `cached` and `cachedCursor` are guarded by `lock`.
final class FrameSource: @unchecked Sendable {
    private let display: X11Display
    private let damage: DamageWatch?
    private let lock = NSLock()
    private var cached: (frame: Frame, time: Double)?
    private var cachedCursor: (cursor: CursorImage?, time: Double)?

    init(display: X11Display) {
        self.display = display
        damage = DamageWatch(name: display.name)
        _ = damage?.takeChanges()
    }

    func latest(maxAge: Double = 0.005, idleMaxAge: Double = 0.25) throws -> Frame {
        try lock.withLock {
            let now = Date().timeIntervalSince1970
            if let cached {
                let age = now - cached.time
                if age < maxAge { return cached.frame }
                if let damage, age < idleMaxAge, !damage.takeChanges() { return cached.frame }
            } else {
                _ = damage?.takeChanges()
            }
            let frame = try display.capture()
            cached = (frame, now)
            return frame
        }
    }

    /// The cursor's shape, read at most every `maxAge` seconds however many viewers ask.
    func cursor(maxAge: Double = 0.05) -> CursorImage? {
        lock.withLock {
            let now = Date().timeIntervalSince1970
            if let cachedCursor, now - cachedCursor.time < maxAge { return cachedCursor.cursor }
            let cursor = display.cursor()
            cachedCursor = (cursor, now)
            return cursor
        }
    }
}
