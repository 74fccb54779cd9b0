import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

extension TwoAgents {
    /// Agents whose remote is an FTP `server` (explicit TLS), in a folder of their own below the
    /// test login's home.
    init(ftp server: FTPTestServer, folder: String = "ftp-" + UUID().uuidString.prefix(8)) throws {
        try self.init {
            $0.replacingOccurrences(of: "    url: file:../drop\n", with: """
                    url: \(server.url(folder))
                    password_file: \(server.passwordFile)
                    ca_file: \(server.certificate)

                """)
        }
        remoteFolder = joinPath(server.home, folder)
    }
}

@Suite(.enabled(if: canRunServerTests, "needs root to run vsftpd"))
struct FTPAgentTests {
    @Test func agentsExchangeFilesOverFTPS() throws {
        let agents = try TwoAgents(ftp: FTPTestServer.shared)
        defer { agents.remove() }
        let outbox = agents.outbox("alice", to: "bob")
        let contents: [(String, [UInt8])] = [
            ("empty", []), ("one", [1]), ("big.bin", randomBytes(3 << 20)), ("sub/ünï cödé.txt", Array("u".utf8)),
        ]
        for (name, bytes) in contents { try write(joinPath(outbox, name), bytes) }
        let sent = try agents.once("alice")
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(files(below: agents.remoteFolder!) == ["alice->bob/big.bin", "alice->bob/empty", "alice->bob/one", "alice->bob/sub/ünï cödé.txt"])
        let received = try agents.once("bob")
        #expect(received.status == 0, "\(received.stderr)")
        for (name, bytes) in contents { #expect(read(joinPath(agents.inbox("bob", from: "alice"), name)) == bytes, "\(name)") }
        #expect(files(below: agents.remoteFolder!).isEmpty)
    }

    @Test func serverRestartedMidTransferDeliversOnce() throws {
        let server = try FTPTestServer(tls: true)
        let agents = try TwoAgents(ftp: server)
        defer { agents.remove() }
        let alice = try agents.daemon("alice")
        defer { alice.signal(SIGTERM); alice.wait() }
        try #require(eventually { alice.log.contains("watching the outbox") })
        let bytes = randomBytes(150 << 20)
        try agents.moveIntoOutbox(bytes, named: "interrupted.bin")
        let folder = joinPath(agents.remoteFolder!, "alice->bob")
        try #require(eventually { ((try? FileSystem.contents(of: folder)) ?? []).contains { $0.hasSuffix(".part") } })
        server.stop()
        #expect(eventually { alice.log.contains("transfer failed; will retry") })
        try server.start()
        #expect(eventually(timeout: 60) { read(joinPath(folder, "interrupted.bin")) == bytes })
        #expect(eventually { (try? FileSystem.contents(of: folder)) == ["interrupted.bin"] }, "no duplicate, no temporary left")
    }

    @Test func killDashNineDuringFiveHundredUploadsDeliversEachOnce() throws {
        let agents = try TwoAgents(ftp: FTPTestServer.shared)
        defer { agents.remove() }
        let outbox = agents.outbox("alice", to: "bob")
        let staging = joinPath(agents.root, "staging")
        try FileSystem.createDirectories(outbox)
        var expected: [String: [UInt8]] = [:]
        for index in 0..<500 {
            expected["file-\(index)"] = Array("payload \(index)\n".utf8)
            try write(joinPath(staging, "file-\(index)"), expected["file-\(index)"]!)
        }
        let alice = try agents.daemon("alice")
        try #require(eventually { alice.log.contains("watching the outbox") })
        for name in try FileSystem.contents(of: staging) {
            try FileSystem.rename(joinPath(staging, name), to: joinPath(outbox, name))
        }
        let folder = joinPath(agents.remoteFolder!, "alice->bob")
        #expect(eventually(timeout: 60) { ((try? FileSystem.contents(of: folder)) ?? []).count >= 60 })
        alice.signal(SIGKILL)
        alice.wait()
        let finish = try agents.once("alice")
        #expect(finish.status == 0, "\(finish.stderr.suffix(2000))")
        let delivered = try FileSystem.contents(of: folder)
        #expect(delivered.count == 500, "\(delivered.filter { $0.hasPrefix(".") || $0.contains(" (") })")
        for name in delivered { #expect(read(joinPath(folder, name)) == expected[name], "\(name)") }
    }
}
