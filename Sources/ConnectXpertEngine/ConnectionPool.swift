import ConnectXpertPolicy
import ConnectXpertTransport
import Foundation

/// Open connections per remote, reused across files so many small files do not pay a handshake
/// each. A connection is lent to one job at a time; the scheduler's per-remote limit bounds how
/// many exist.
public final class ConnectionPool: @unchecked Sendable {
    private let lock = NSLock()
    private var idle: [String: [any Transport]] = [:]

    public init() {}

    /// Runs `body` with a connection to `remote`; a connection that failed is not reused.
    public func withConnection<T>(to remote: Remote, _ body: (any Transport) throws -> T) throws -> T {
        let connection = try take(remote)
        do {
            let result = try body(connection)
            give(connection, for: remote)
            return result
        } catch let error as TransportError where error.kind == .transient {
            throw error  // the connection may be broken: let it go
        } catch {
            give(connection, for: remote)
            throw error
        }
    }

    /// Closes idle connections to remotes whose definition changed or went away.
    public func retain(only remotes: [String: Remote]) {
        lock.lock()
        defer { lock.unlock() }
        idle = idle.filter { remotes[$0.key] != nil }
    }

    public func closeAll() {
        lock.lock()
        defer { lock.unlock() }
        idle.removeAll()
    }

    private func take(_ remote: Remote) throws -> any Transport {
        lock.lock()
        if let connection = idle[key(remote)]?.popLast() {
            lock.unlock()
            return connection
        }
        lock.unlock()
        return try TransportFactory.connect(to: remote)
    }

    private func give(_ connection: any Transport, for remote: Remote) {
        lock.lock()
        defer { lock.unlock() }
        idle[key(remote), default: []].append(connection)
    }

    /// Keyed by name and URL, so an edited remote gets new connections.
    private func key(_ remote: Remote) -> String { remote.name + "\0" + remote.url }
}
