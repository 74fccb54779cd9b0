import ConnectXpertPolicy
import ConnectXpertSystem
import Foundation
import Logging
import Synchronization

/// One screen share as asked for (on the command line or in a request file), checked against the
/// policy's `jobs.screen_share` defaults and limits.
public struct ScreenShareOptions: Equatable, Sendable {
    public var display: String
    public var listen: ListenAddress
    /// Where RFB over WebSocket (and noVNC's page) is served too, if anywhere.
    public var webSocket: ListenAddress?
    public var duration: TimeSpan
    /// `nil`: no authentication (a loopback listener only).
    public var password: String?
    public var viewOnly: Bool
    public var once: Bool

    /// The options, or an error saying which limit a value breaks.
    public static func resolve(_ request: ScreenShareDocument, policy settings: ScreenShareSettings) throws -> ScreenShareOptions {
        /// A request's address: on loopback, or on the host the policy names (any, for a wildcard).
        func address(_ text: String?, policy: ListenAddress?, key: String) throws -> ListenAddress? {
            guard let text else { return policy }
            guard let address = ListenAddress(parsing: text) else {
                throw RFBError.connection("'\(text)' is not host:port, such as 127.0.0.1:5900")
            }
            let allowed = policy.map { ["0.0.0.0", "::", address.host].contains($0.host) } ?? false
            guard address.isLoopback || allowed else {
                throw RFBError.connection("the policy lets screen shares listen on loopback addresses"
                    + (policy.map { " and on \($0.host)" } ?? "") + " only (jobs.screen_share.\(key)); "
                    + "\(address.host) is " + (policy == nil ? "not one" : "neither"))
            }
            return address
        }
        let listen = try address(request.listen, policy: settings.listen, key: "listen") ?? settings.listen
        let webSocket = try address(request.websocket, policy: settings.webSocket, key: "websocket")
        let duration = request.duration ?? settings.maxDuration
        guard duration <= settings.maxDuration, duration.seconds > 0 else {
            throw RFBError.connection("a screen share may last \(settings.maxDuration) at most (jobs.screen_share.max_duration), "
                + "not \(duration)")
        }
        var password: String?
        if let file = request.passwordFile ?? settings.passwordFile {
            if let problem = SecretFile.problem(at: file) { throw RFBError.connection(problem) }
            password = try SecretFile.read(file)
            guard !(password ?? "").isEmpty else { throw RFBError.connection("\(file) holds no password") }
        } else if settings.authentication == .vnc {
            throw RFBError.connection("a screen share needs a password: give --password-file, set password_file under "
                + "jobs.screen_share, or set auth: none there for a share on a loopback address")
        }
        if password == nil, let open = [listen, webSocket].compactMap({ $0 }).first(where: { !$0.isLoopback }) {
            throw RFBError.connection(
                "a screen share without a password listens on a loopback address only, not \(open)")
        }
        return ScreenShareOptions(display: request.display ?? settings.display, listen: listen, webSocket: webSocket,
                                  duration: duration,
                                  password: password, viewOnly: request.viewOnly ?? settings.viewOnly,
                                  once: request.once ?? settings.once)
    }
}

/// Runs a screen share until its duration is over, its viewer leaves (`once`), or `stop()`;
/// keeps a status file (address, started, expires, viewers, or the error) up to date.
// Sendable: `started` and `server` are set by `run` before the server starts its threads, then only read.
public final class ScreenShareJob: @unchecked Sendable {
    public let options: ScreenShareOptions
    private let statusFile: String?
    private let logger: Logger
    private let ended = DispatchSemaphore(value: 0)
    private let endReason = Mutex<String?>(nil)
    private var started = Date()
    private var server: RFBServer?
    private let everConnected = Atomic<Bool>(false)

    public init(options: ScreenShareOptions, statusFile: String?, logger: Logger) {
        self.options = options
        self.statusFile = statusFile
        self.logger = logger
    }

    /// Serves until the job ends; returns why it ended. Throws when it cannot start (the status
    /// file then holds the error).
    public func run(onListening: (RFBServer) -> Void = { _ in }) throws -> String {
        let server: RFBServer
        do {
            let display = try X11Display(name: options.display)
            server = RFBServer(display: display, configuration: RFBServerConfiguration(
                host: options.listen.host, port: options.listen.port, password: options.password,
                viewOnly: options.viewOnly, name: "connectxpert \(ProcessInfo.processInfo.hostName)\(options.display)",
                webSocket: options.webSocket,
                pages: FileSystem.exists(WebPort.debianPages) ? WebPort.debianPages : nil),
                logger: logger)
            server.viewersChanged = { [self] count in viewersChanged(count) }
            try server.start()
        } catch {
            writeStatus(["state": "failed", "error": "\(error)"])
            throw error
        }
        self.server = server
        started = Date()
        writeStatus(viewers: 0)
        logger.notice("sharing the screen", metadata: [
            "screen.display": "\(options.display)", "screen.listen": "\(options.listen.host):\(server.boundPort)",
            "screen.expires": "\(iso(started.addingTimeInterval(options.duration.seconds)))",
            "screen.auth": "\(options.password == nil ? "none" : "vnc")", "screen.view_only": "\(options.viewOnly)",
            "screen.web": "\(webAddress(of: server) ?? "none")",
        ])
        onListening(server)
        if ended.wait(timeout: .now() + options.duration.seconds) == .timedOut {
            finish("its duration (\(options.duration)) is over")
        }
        server.stop()
        let reason = endReason.withLock { $0 } ?? "stopped"
        writeStatus(["state": "ended", "address": address(server), "started": iso(started), "ended": iso(Date()), "reason": reason])
        logger.notice("screen share ended", metadata: ["screen.reason": "\(reason)"])
        return reason
    }

    /// What a browser opens: noVNC's page on the web port, or the bare WebSocket when the page is not
    /// installed; `nil` without a web port.
    public func webAddress(of server: RFBServer) -> String? {
        guard let webSocket = options.webSocket else { return nil }
        let place = ListenAddress(host: webSocket.host, port: server.boundWebPort)
        return server.configuration.pages == nil ? "ws://\(place)/" : "http://\(place)/vnc.html"
    }

    /// Ends the job (SIGTERM, `screen stop`, the request removed).
    public func stop(reason: String = "stopped") { finish(reason) }

    private func finish(_ reason: String) {
        let first = endReason.withLock { current -> Bool in
            guard current == nil else { return false }
            current = reason
            return true
        }
        if first { ended.signal() }
    }

    private func viewersChanged(_ count: Int) {
        if count > 0 { everConnected.store(true, ordering: .relaxed) }
        writeStatus(viewers: count)
        if count == 0 && everConnected.load(ordering: .relaxed) && options.once { finish("its viewer left (once: true)") }
    }

    private func address(_ server: RFBServer) -> String {
        ListenAddress(host: options.listen.host, port: server.boundPort).description
    }

    private func writeStatus(viewers: Int) {
        guard let server else { return }
        writeStatus(["state": "running", "address": address(server), "web": webAddress(of: server) ?? "none",
                     "pid": "\(getpid())", "started": iso(started),
                     "expires": iso(started.addingTimeInterval(options.duration.seconds)), "viewers": "\(viewers)"])
    }

    private func writeStatus(_ fields: KeyValuePairs<String, String>) {
        guard let statusFile else { return }
        do { try ScreenShareStatus.write(fields, to: statusFile) } catch {
            logger.error("cannot write the status file", metadata: ["screen.status": "\(statusFile)", "screen.error": "\(error)"])
        }
    }

    private func iso(_ date: Date) -> String {
        ISO8601DateFormatter().string(from: date)
    }
}

/// A job's status file: `key: value` lines (YAML), replaced atomically.
public enum ScreenShareStatus {
    /// The status file beside a request: `screen-share.yaml` has `screen-share.status`.
    public static func path(forRequest request: String) -> String {
        (request.hasSuffix(".yaml") ? String(request.dropLast(5)) : request) + ".status"
    }

    public static func write(_ fields: KeyValuePairs<String, String>, to path: String) throws {
        let text = fields.map { "\($0.key): \(quoted($0.value))\n" }.joined()
        try FileSystem.writeFileAtomically(path, contents: Array(text.utf8))
    }

    private static func quoted(_ value: String) -> String {
        guard !value.allSatisfy({ $0.isLetter || $0.isNumber || "-.:[]_".contains($0) }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n") + "\""
    }
}
