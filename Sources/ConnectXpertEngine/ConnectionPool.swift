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

    /// Runs `body` with a connection to `remote`; a connection that failed is not reused. A pooled
    /// connection may have gone stale (the server restarted, a firewall forgot it): if it fails,
    /// `body` runs once more on a new connection. The pipelines resume from the journal state, so a
    /// second run continues where the first stopped.
    public func withConnection<T>(to remote: Remote, _ body: (any Transport) throws -> T) throws -> T {
        if let pooled = takeIdle(remote) {
            do {
                return try use(pooled, for: remote, body)
            } catch let error as TransportError where error.kind == .transient {
                // fall through to a new connection
            }
        }
        return try use(try TransportFactory.connect(to: remote), for: remote, body)
    }

    private func use<T>(_ connection: any Transport, for remote: Remote, _ body: (any Transport) throws -> T) throws -> T {
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

    private func takeIdle(_ remote: Remote) -> (any Transport)? {
        lock.lock()
        defer { lock.unlock() }
        return idle[key(remote)]?.popLast()
    }

    private func give(_ connection: any Transport, for remote: Remote) {
        lock.lock()
        defer { lock.unlock() }
        idle[key(remote), default: []].append(connection)
    }

    /// Keyed by name and URL, so an edited remote gets new connections.
    private func key(_ remote: Remote) -> String { remote.name + "\0" + remote.url }
}
