#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call, on which path, and the errno it returned.
public struct SystemError: Error, CustomStringConvertible, Equatable, Sendable {
    public let call: String
    public let path: String?
    public let errno: Int32

    public init(call: String, path: String?, errno: Int32) {
        self.call = call
        self.path = path
        self.errno = errno
    }

    public var reason: String { String(cString: strerror(errno)) }

    public var description: String {
        if let path { return "\(call) \(path): \(reason)" }
        return "\(call): \(reason)"
    }

    public var isNotFound: Bool { errno == ENOENT }
    public var isAlreadyExists: Bool { errno == EEXIST }
}

/// Runs a system call, retrying on EINTR; a `-1` result becomes a `SystemError` naming the call and path.
@discardableResult
@inline(__always)
public func syscall<T: FixedWidthInteger>(_ call: String, path: String? = nil, _ body: () -> T) throws -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemError(call: call, path: path, errno: code)
    }
}
