import CSSH2
import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// libssh2_init, once per process.
enum LibSSH2 {
    static let initialized: Bool = libssh2_init(0) == 0
}

/// A TCP connection, closed in `deinit`.
final class TCPSocket {
    let descriptor: Int32

    /// Connects to `host:port` within `timeout` seconds, trying each address the name resolves to.
    init(host: String, port: Int, timeout: Double) throws {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw TransportError(.transient, "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var address: UnsafeMutablePointer<addrinfo>? = first
        while let current = address {
            address = current.pointee.ai_next
            let fd = socket(current.pointee.ai_family, current.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), current.pointee.ai_protocol)
            guard fd >= 0 else { continue }
            if let problem = Self.connect(fd, current.pointee.ai_addr, current.pointee.ai_addrlen, timeout: timeout) {
                lastError = problem
                close(fd)
                continue
            }
            var on: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
            descriptor = fd
            return
        }
        throw TransportError(.transient, "cannot connect to \(host):\(port): \(lastError)")
    }

    deinit { close(descriptor) }

    /// Whether the connection has ended (the peer closed it, or it broke): a read would find its end.
    var hasEnded: Bool {
        var byte: UInt8 = 0
        let count = recv(descriptor, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    }

    /// A non-blocking connect bounded by `timeout`; returns the problem, or `nil` once connected.
    private static func connect(_ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>, _ length: socklen_t, timeout: Double) -> String? {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        defer { _ = fcntl(fd, F_SETFL, flags) }
        if Glibc.connect(fd, address, length) == 0 { return nil }
        guard errno == EINPROGRESS else { return String(cString: strerror(errno)) }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let ready = (try? syscall("poll") { poll(&poller, 1, Int32(timeout * 1000)) }) ?? 0
        guard ready > 0 else { return "timed out after \(TimeSpan(seconds: timeout))" }
        var code: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &size)
        return code == 0 ? nil : String(cString: strerror(code))
    }
}

/// An SSH session over a socket; disconnected and freed in `deinit`.
final class SSHSession {
    let raw: OpaquePointer
    private let socket: TCPSocket

    init(socket: TCPSocket, timeout: Double, endpoint: String) throws {
        _ = LibSSH2.initialized
        guard let session = libssh2_session_init_ex(nil, nil, nil, nil) else {
            throw TransportError(.transient, "\(endpoint): cannot create an SSH session")
        }
        raw = session
        self.socket = socket
        libssh2_session_set_blocking(session, 1)
        libssh2_session_set_timeout(session, Int(timeout * 1000))
        guard libssh2_session_handshake(session, socket.descriptor) == 0 else {
            throw TransportError(.transient, "\(endpoint): SSH handshake failed: \(lastError)")
        }
    }

    deinit {
        libssh2_session_disconnect_ex(raw, SSH_DISCONNECT_BY_APPLICATION, "bye", "")
        libssh2_session_free(raw)
    }

    var lastErrorCode: Int32 { libssh2_session_last_errno(raw) }

    /// Whether the connection under the session has ended.
    var connectionEnded: Bool { socket.hasEnded }

    var lastError: String {
        var message: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        libssh2_session_last_error(raw, &message, &length, 0)
        return message.map { String(cString: $0) } ?? "unknown error"
    }
}

/// A request to send without waiting for its reply: `call` is the libssh2 function for it, which
/// returns 0, a failure, or, on a non-blocking session, `LIBSSH2_ERROR_EAGAIN` while the reply is
/// awaited (it is then called again to collect the reply).
struct InFlightRequest {
    let action: String
    let call: () -> Int32
}

extension SSHSession {
    /// Sends the requests one after another, then collects their replies in the order sent. Each
    /// request must be of a different kind: libssh2 keeps the state of one request per kind.
    ///
    /// A request goes out only once the one before it is out whole: should the socket take only
    /// part of a packet, the rest are sent after its reply, one at a time (two packets must never
    /// interleave). The first failure stops the sending; every request sent is still collected, or
    /// libssh2 would hand its late reply to the next request of that kind. The first failure,
    /// described by `failure(action)`, is thrown.
    func inFlight(_ requests: [InFlightRequest], failure: (String) -> Error) throws {
        var problem: Error?
        var awaited: [InFlightRequest] = []
        var unsent = requests[...]
        libssh2_session_set_blocking(raw, 0)
        while problem == nil, let request = unsent.popFirst() {
            let result = request.call()
            if result == LIBSSH2_ERROR_EAGAIN {
                awaited.append(request)
                if libssh2_session_block_directions(raw) & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { break }
            } else if result != 0 {
                problem = failure(request.action)
            }
        }
        libssh2_session_set_blocking(raw, 1)
        for request in awaited where request.call() != 0 && problem == nil {
            problem = failure(request.action)
        }
        for request in unsent where problem == nil && request.call() != 0 {
            problem = failure(request.action)
        }
        if let problem { throw problem }
    }
}

/// The SFTP subsystem of a session; shut down in `deinit`.
final class SFTPChannel {
    let raw: OpaquePointer
    let session: SSHSession

    init(session: SSHSession, endpoint: String) throws {
        guard let sftp = libssh2_sftp_init(session.raw) else {
            throw TransportError(.transient, "\(endpoint): cannot start SFTP: \(session.lastError)")
        }
        raw = sftp
        self.session = session
    }

    deinit { libssh2_sftp_shutdown(raw) }

    /// The SFTP status code of the last failed request, when the failure was an SFTP status.
    var lastStatus: UInt? {
        session.lastErrorCode == LIBSSH2_ERROR_SFTP_PROTOCOL ? UInt(libssh2_sftp_last_error(raw)) : nil
    }
}

/// An open remote file or directory; closed in `deinit` unless `close()` reported the result.
final class SFTPHandle {
    let raw: OpaquePointer
    private let channel: SFTPChannel
    private var isOpen = true

    init(raw: OpaquePointer, channel: SFTPChannel) {
        self.raw = raw
        self.channel = channel
    }

    /// Closes the handle: 0 when closed; `LIBSSH2_ERROR_EAGAIN` while a non-blocking session awaits
    /// the reply (call again); otherwise a failure, such as the server's error on a full disk.
    @discardableResult
    func close() -> Int32 {
        let result = libssh2_sftp_close_handle(raw)
        if result != LIBSSH2_ERROR_EAGAIN { isOpen = false }
        return result
    }

    deinit { if isOpen { libssh2_sftp_close_handle(raw) } }
}
