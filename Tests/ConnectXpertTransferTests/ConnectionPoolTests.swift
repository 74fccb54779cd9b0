import ConnectXpertPolicy
import ConnectXpertTestSupport
import Foundation
import Testing

@testable import ConnectXpertTransfer
import ConnectXpertDaemon

@Suite(.enabled(if: canRunServerTests, "needs root to run sshd and vsftpd"), .serialized)
struct ConnectionPoolTests {
    /// An idle SFTP connection answers its keep-alives; once the server is gone the keep-alive
    /// fails and the pool closes the connection, so no file is handed a dead one.
    @Test func idleConnectionsAreKeptAliveAndDeadOnesClosed() throws {
        let server = try SSHTestServer()
        let remote = try parseRemote(["url: \(server.url("t-pool"))", "key_file: \(server.clientKey)",
                                      "known_hosts: \(server.knownHosts)"])
        let pool = ConnectionPool(keepAliveInterval: 0, idleLimit: 3600, connect: TransportFactory.connect)
        try pool.withConnection(to: remote) { _ in }
        #expect(pool.remotesDueForKeepAlive().map(\.name) == [remote.name])
        pool.keepAlive(remote)
        #expect(pool.idleCount(remote) == 1)
        server.stop()
        pool.keepAlive(remote)
        #expect(pool.idleCount(remote) == 0)
    }

    /// FTP keeps a connection alive with NOOP; a connection idle past the limit is closed.
    @Test func ftpKeepAliveAndIdleLimit() throws {
        let server = FTPTestServer.shared
        let remote = try parseRemote(["url: \(server.url("t-pool"))", "password_file: \(server.passwordFile)",
                                      "ca_file: \(server.certificate)"])
        let pool = ConnectionPool(keepAliveInterval: 0, idleLimit: 60, connect: TransportFactory.connect)
        try pool.withConnection(to: remote) { _ in }
        pool.keepAlive(remote)
        #expect(pool.idleCount(remote) == 1)
        #expect(pool.remotesDueForKeepAlive(now: Date().addingTimeInterval(61)).isEmpty)
        #expect(pool.idleCount(remote) == 0)
    }
}

/// A policy reload keeps the connections of remotes it did not change.
@Test func reloadKeepsConnectionsOfUnchangedRemotes() throws {
    let folder = NSTemporaryDirectory() + "cx-pool-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let remote = try parseRemote(["url: file://\(folder)"])
    let pool = ConnectionPool(connect: TransportFactory.connect)
    try pool.withConnection(to: remote) { _ in }
    pool.retain(only: [remote.name: remote])
    #expect(pool.idleCount(remote) == 1)
    let moved = try parseRemote(["url: file://\(folder)-moved"])
    pool.retain(only: [moved.name: moved])
    #expect(pool.idleCount(remote) == 0)
}
