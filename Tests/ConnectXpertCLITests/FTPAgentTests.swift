import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

extension TwoAgents {
    /// Agents whose remote is an FTP `server` (explicit TLS), in a folder of their own below the
    /// test login's home.
    init(ftp server: FTPTestServer, folder: String = "ftp-" + UUID().uuidString.prefix(8)) throws {
        try self.init(server: server, folder: folder, lines: [
            "url: \(server.url(folder))", "password_file: \(server.passwordFile)", "ca_file: \(server.certificate)",
        ])
    }
}

@Suite(.enabled(if: canRunServerTests, "needs root to run vsftpd"))
struct FTPAgentTests {
    @Test func agentsExchangeFilesOverFTPS() throws {
        let agents = try TwoAgents(ftp: FTPTestServer.shared)
        defer { agents.remove() }
        try checkExchange(agents)
    }

    @Test func serverRestartedMidTransferDeliversOnce() throws {
        let server = try FTPTestServer(tls: true)
        let agents = try TwoAgents(ftp: server)
        defer { agents.remove() }
        try checkServerRestartDeliversOnce(agents, stop: server.stop, start: server.start)
    }

    @Test func killDashNineDuringFiveHundredUploadsDeliversEachOnce() throws {
        let agents = try TwoAgents(ftp: FTPTestServer.shared)
        defer { agents.remove() }
        try checkKillDuringUploadsDeliversEachOnce(agents, killAfter: 60)
    }
}
