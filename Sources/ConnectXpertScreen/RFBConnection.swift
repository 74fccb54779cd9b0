import ConnectXpertSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A TCP connection to a viewer (or, for the snapshot client, to a server): exact reads and
/// whole writes over the socket, which it closes in `deinit`.
// Sendable: the read buffer is used by the one reading thread alone; writes go whole to the socket.
final class RFBConnection: RFBInput, @unchecked Sendable {
    let descriptor: Int32
    /// `host:port` of the other side, for the log.
    let peer: String
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    private var start = 0
    private var end = 0

    init(descriptor: Int32, peer: String) {
        self.descriptor = descriptor
        self.peer = peer
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(descriptor) }

    /// Connects to `host:port` (the snapshot client).
    static func connect(host: String, port: Int, timeout: Double) throws -> RFBConnection {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &found) == 0, let first = found else {
            throw RFBError.connection("cannot resolve \(host)")
        }
        defer { freeaddrinfo(found) }
        var lastError = ECONNREFUSED
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let address = entry {
            let fd = socket(address.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd >= 0 {
                var time = timeval(tv_sec: Int(timeout), tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
                do {
                    try syscall("connect") { Glibc.connect(fd, address.pointee.ai_addr, address.pointee.ai_addrlen) }
                    return RFBConnection(descriptor: fd, peer: "\(host):\(port)")
                } catch let error as SystemError {
                    lastError = error.errno
                    close(fd)
                }
            }
            entry = address.pointee.ai_next
        }
        throw RFBError.connection("cannot connect to \(host):\(port): \(String(cString: strerror(lastError)))")
    }

    /// Makes reads give up after `seconds` of silence (0: wait for ever).
    func setReadTimeout(_ seconds: Double) {
        var time = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    }

    func read(_ count: Int) throws -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(count)
        while output.count < count {
            if start == end { try fill() }
            let taken = min(count - output.count, end - start)
            output += buffer[start..<(start + taken)]
            start += taken
        }
        return output
    }

    private func fill() throws {
        let count: Int
        do {
            count = try buffer.withUnsafeMutableBytes { bytes in
                try syscall("read", path: peer) { Glibc.read(descriptor, bytes.baseAddress, bytes.count) }
            }
        } catch let error as SystemError where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            throw RFBError.connection("\(peer) sent nothing in time")
        } catch {
            throw RFBError.connection("\(error)")
        }
        guard count > 0 else { throw RFBError.connection("\(peer) closed the connection") }
        start = 0
        end = count
    }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            do {
                offset += try bytes.withUnsafeBytes { data in
                    try syscall("send", path: peer) { Glibc.send(descriptor, data.baseAddress! + offset, data.count - offset, Int32(MSG_NOSIGNAL)) }
                }
            } catch {
                throw RFBError.connection("\(error)")
            }
        }
    }

    /// Ends both directions now: a thread blocked reading returns.
    func shutdown() { Glibc.shutdown(descriptor, Int32(SHUT_RDWR)) }
}
