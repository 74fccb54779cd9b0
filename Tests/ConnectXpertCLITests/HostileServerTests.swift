import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// A server that lies about sizes, streams without end or never answers: every wait is bounded by
/// the remote's `timeout`, and nothing past what was listed is stored or held in memory.
@Suite struct HostileServerTests {
    /// Bob's agent, reading the hostile server's drop over plain FTP with a 2 s timeout.
    static func bob(_ server: HostileFTPTestServer) throws -> TwoAgents {
        try TwoAgents {
            try $0.replacing(existing: "    url: file:../drop\n", with: """
                    url: \(server.url)
                    password_file: \(server.passwordFile)
                    tls: off
                    timeout: 2s

                """)
        }
    }

    @Test func aServerWhoseFeatOffersMLSDIsListedWithIt() throws {
        let server = try HostileFTPTestServer()
        let agents = try Self.bob(server)
        defer { agents.remove() }
        let outcome = try agents.once("bob")
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(read(joinPath(agents.inbox("bob", from: "alice"), "lies.bin")) == Array(repeating: UInt8(ascii: "x"), count: 100))
        let commands = try String(contentsOfFile: joinPath(server.folder, "commands"), encoding: .utf8)
        #expect(commands.contains("MLSD") && !commands.contains("LIST"), "\(commands)")
        #expect(commands.contains("RNFR /alice->bob/lies.bin"), "claimed")
        #expect(commands.contains("DELE /alice->bob/.lies.bin.taken-"),
                "deleted: the stat before the delete agrees with MLSD")
    }

    @Test func aFileThatStreamsPastItsListedSizeIsStoppedThere() throws {
        let server = try HostileFTPTestServer()
        try server.behave(.endless)
        let agents = try Self.bob(server)
        defer { agents.remove() }
        let started = Date()
        let outcome = try agents.once("bob")
        #expect(outcome.status == 75, "\(outcome.stderr)")
        #expect(outcome.stderr.contains("alice->bob/lies.bin was listed with 100 bytes but more arrived (the download was "
            + "stopped there)"), "\(outcome.stderr)")
        #expect(Date().timeIntervalSince(started) < 10, "not the server's 4 GiB")
        #expect(files(below: agents.inbox("bob", from: "alice")).isEmpty, "nothing kept, not even a temporary file")
    }

    @Test func aServerThatNeverEndsADownloadIsGivenUpAfterTheTimeout() throws {
        let server = try HostileFTPTestServer()
        try server.behave(.silent)
        let agents = try Self.bob(server)
        defer { agents.remove() }
        let started = Date()
        let outcome = try agents.once("bob")
        #expect(outcome.status == 75, "\(outcome.stderr)")
        #expect(Date().timeIntervalSince(started) < 15, "bounded by timeout: 2s, not libcurl's 60 s default")
        #expect(outcome.stderr.contains("download failed; will retry"), "\(outcome.stderr)")
    }

    @Test func aListingWithoutEndIsRefusedAtItsLimit() throws {
        let server = try HostileFTPTestServer()
        try server.behave(.hugeListing)
        let agents = try Self.bob(server)
        defer { agents.remove() }
        let (result, peak) = try Self.passWithPeakMemory(agents)
        #expect(result.status == 75, "\(result.stderr)")
        #expect(result.stderr.contains("the listing is over 64MiB"), "\(result.stderr)")
        #expect(peak < 600, "the agent's memory stays bounded: \(peak) MiB")
    }

    @Test func anSFTPListingWithoutEndIsRefusedAtItsLimit() throws {
        let server = try HostileSFTPTestServer()
        let agents = try TwoAgents {
            try $0.replacing(existing: "    url: file:../drop\n", with: """
                    url: \(server.url)
                    key_file: \(server.clientKey)
                    known_hosts: \(server.knownHosts)
                    timeout: 10s

                """)
        }
        defer { agents.remove() }
        let (result, peak) = try withExtendedLifetime(server) { try Self.passWithPeakMemory(agents) }
        #expect(result.status == 75, "\(result.stderr)")
        #expect(result.stderr.contains("cannot list /drop: the listing is over 64MiB"), "\(result.stderr)")
        #expect(peak < 600, "the agent's memory stays bounded: \(peak) MiB")
    }

    /// A connection cut in the middle of the login is no refusal: the pass ends with 75 (try again
    /// later), not 77, and the daemon would try again by itself.
    @Test func aConnectionCutDuringTheLoginIsTriedAgainNotRefused() throws {
        let server = try HostileSFTPTestServer()
        let agents = try TwoAgents {
            try $0.replacing(existing: "    url: file:../drop\n", with: """
                    url: \(server.url.replacing("anyone@", with: "hangs-up@"))
                    key_file: \(server.clientKey)
                    known_hosts: \(server.knownHosts)

                """)
        }
        defer { agents.remove() }
        let result = try withExtendedLifetime(server) { try agents.once("bob") }
        #expect(result.status == 75, "\(result.stderr)")
        #expect(result.stderr.contains("the connection ended during the login"), "\(result.stderr)")
        #expect(!result.stderr.contains("authentication failed"), "\(result.stderr)")
    }

    /// Bob's batch pass, and the most resident memory it used, in MiB.
    static func passWithPeakMemory(_ agents: TwoAgents) throws -> (Outcome, Int) {
        let pass = try AgentProcess(["run", "--once", "--policy", agents.policyPath("bob")], in: agents.bob)
        var peak = 0
        while pass.process.isRunning {
            peak = max(peak, residentMegabytes(pass.process.processIdentifier))
            usleep(50_000)
        }
        return (pass.wait(), peak)
    }
}

/// A process's resident memory in MiB (0 once it is gone).
private func residentMegabytes(_ pid: Int32) -> Int {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) / 1024
}
