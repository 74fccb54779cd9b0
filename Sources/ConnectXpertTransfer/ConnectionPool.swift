import ConnectXpertPolicy
import ConnectXpertTransport
import Foundation

/// Open connections per remote, reused across files so many small files do not pay a handshake
/// each. A connection is lent to one job at a time; the scheduler's per-remote limit bounds how
/// many exist. Idle connections get a keep-alive round trip every `keepAliveInterval` (as
/// OpenSSH's ServerAliveInterval would) and are closed after `idleLimit` (as lftp's `net:idle` and
/// rclone's idle timeout do), releasing the server's session; the next file connects again.
// Sendable: `idle` is guarded by `lock`.
public final class ConnectionPool: @unchecked Sendable {
    private struct IdleConnection {
        let transport: any Transport
        let remote: Remote
        let since: Date
        var checked: Date
    }

    /// Opens a connection to a remote.
    public typealias Connect = @Sendable (Remote) throws -> any Transport

    private let connect: Connect
    private let lock = NSLock()
    private var idle: [String: [IdleConnection]] = [:]
    let keepAliveInterval: TimeInterval
    let idleLimit: TimeInterval

    public init(keepAliveInterval: TimeInterval = 30, idleLimit: TimeInterval = 300, connect: @escaping Connect) {
        self.connect = connect
        self.keepAliveInterval = keepAliveInterval
        self.idleLimit = idleLimit
    }

    /// Runs `body` with a connection to `remote`; a connection that failed is not reused. A pooled
    /// connection may have gone stale (the server restarted, a firewall forgot it): if it fails,
    /// `body` runs once more on a new connection. The pipelines resume from the journal state, so a
    /// second run continues where the first stopped.
    public func withConnection<T>(to remote: Remote, _ body: (any Transport) throws -> T) throws -> T {
        if let pooled = takeIdle(remote) {
            do {
                return try use([pooled], for: remote) { try body(pooled) }
            } catch let error as TransportError where error.kind == .transient {
                // fall through to a new connection
            }
        }
        let connection = try connect(remote)
        return try use([connection], for: remote) { try body(connection) }
    }

    /// Runs `body` with `count` connections to `remote` besides the one a job holds (idle ones, or
    /// new), each opened when `body` first asks for it. The caller must hold a scheduler slot for
    /// each. Each connection opened is given back afterwards, unless `body` threw a transient error.
    public func withExtraConnections<T>(_ count: Int, to remote: Remote, _ body: ([HelperConnection]) throws -> T) throws -> T {
        let helpers = (0..<count).map { _ in
            HelperConnection { [self] in try takeIdle(remote) ?? connect(remote) }
        }
        return try use(helpers.compactMap(\.transport), for: remote) { try body(helpers) }
    }

    /// Runs `body`, then gives `connections` (known once `body` has run) back to the pool, unless
    /// `body` threw a transient error: any of them may be broken, so they are let go.
    private func use<T>(_ connections: @autoclosure () -> [any Transport], for remote: Remote, _ body: () throws -> T) throws -> T {
        do {
            let result = try body()
            for connection in connections() { give(connection, for: remote) }
            return result
        } catch let error as TransportError where error.kind == .transient {
            throw error
        } catch {
            for connection in connections() { give(connection, for: remote) }
            throw error
        }
    }

    /// Closes the connections idle longer than `idleLimit`; returns the remotes with connections
    /// due for a keep-alive (`keepAlive(_:)`).
    public func remotesDueForKeepAlive(now: Date = Date()) -> [Remote] {
        var expired: [IdleConnection] = []
        var due: [String: Remote] = [:]
        lock.lock()
        for (key, connections) in idle {
            expired += connections.filter { now.timeIntervalSince($0.since) >= idleLimit }
            let kept = connections.filter { now.timeIntervalSince($0.since) < idleLimit }
            idle[key] = kept
            if let stale = kept.first(where: { now.timeIntervalSince($0.checked) >= keepAliveInterval }) {
                due[key] = stale.remote
            }
        }
        lock.unlock()
        expired.removeAll()  // closes them (network I/O) outside the lock
        return due.keys.sorted().compactMap { due[$0] }
    }

    /// Sends a keep-alive on each of `remote`'s idle connections that is due; one that fails is closed.
    public func keepAlive(_ remote: Remote, now: Date = Date()) {
        lock.lock()
        let connections = idle[key(remote)] ?? []
        let due = connections.filter { now.timeIntervalSince($0.checked) >= keepAliveInterval }
        idle[key(remote)] = connections.filter { now.timeIntervalSince($0.checked) < keepAliveInterval }
        lock.unlock()
        var alive: [IdleConnection] = []
        for var connection in due where (try? connection.transport.keepAlive()) != nil {
            connection.checked = Date()
            alive.append(connection)
        }
        lock.lock()
        idle[key(remote), default: []] += alive
        lock.unlock()
    }

    /// How many idle connections to `remote` the pool holds.
    func idleCount(_ remote: Remote) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return idle[key(remote)]?.count ?? 0
    }

    /// Closes idle connections to remotes whose definition changed or went away.
    public func retain(only remotes: [String: Remote]) {
        let kept = Set(remotes.values.map(key))
        lock.lock()
        defer { lock.unlock() }
        idle = idle.filter { kept.contains($0.key) }
    }

    public func closeAll() {
        lock.lock()
        defer { lock.unlock() }
        idle.removeAll()
    }

    private func takeIdle(_ remote: Remote) -> (any Transport)? {
        lock.lock()
        defer { lock.unlock() }
        return idle[key(remote)]?.popLast()?.transport
    }

    private func give(_ connection: any Transport, for remote: Remote) {
        let now = Date()
        lock.lock()
        defer { lock.unlock() }
        idle[key(remote), default: []].append(IdleConnection(transport: connection, remote: remote, since: now, checked: now))
    }

    /// Keyed by name and URL, so an edited remote gets new connections.
    private func key(_ remote: Remote) -> String { remote.name + "\0" + remote.url }
}
