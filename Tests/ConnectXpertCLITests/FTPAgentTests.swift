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

    /// ConnectXpert 0.7's ftplib mode: `STOR sender->receiver/name`; receiving is NLST, RETR, DELE.
    @Test func anInterruptedDownloadResumes() throws {
        let agents = try TwoAgents(ftp: FTPTestServer.shared)
        defer { agents.remove() }
        try checkAnInterruptedDownloadResumes(agents)
    }

    @Test func aFileStillBeingWrittenIsTakenWhole() throws {
        let agents = try TwoAgents(ftp: FTPTestServer.shared)
        defer { agents.remove() }
        try checkAFileStillBeingWrittenIsTakenWhole(agents)
    }

    /// vsftpd with `mdtm_write=NO` refuses to set a file's time: said once however many files go,
    /// and the files still go.
    @Test func aServerThatCannotSetTimesIsSaidOnce() throws {
        let server = try FTPTestServer(tls: true, keepsTimes: false)
        let agents = try TwoAgents(ftp: server)
        defer { agents.remove() }
        for index in 0..<3 { try write(joinPath(agents.outbox("alice", to: "bob"), "file-\(index).txt"), "\(index)") }
        let outcome = try withExtendedLifetime(server) { try agents.once("alice") }
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let said = outcome.stderr.components(separatedBy: "the server refused to set an uploaded file's time").count - 1
        #expect(said == 1, "\(outcome.stderr)")
        #expect(files(below: joinPath(agents.remoteFolder!, "alice->bob")).count == 3)
    }

    @Test func namesThatAreNotUTF8AreSaidAndLeft() throws {
        let agents = try TwoAgents(ftp: FTPTestServer.shared)
        defer { agents.remove() }
        try checkNamesThatAreNotUTF8AreSaidAndLeft(agents)
    }

    /// pure-ftpd has no upload lock: a peer's file still being written can be listed, fetched and
    /// deleted meanwhile (a `DELE` during the upload was seen), so only `stable_for` protects it.
    @Test func aFileStillBeingWrittenToPureFTPdIsTakenWhole() throws {
        let server = try FTPTestServer.pureFTPd()
        let agents = try TwoAgents(ftp: server)
        defer { agents.remove() }
        try withExtendedLifetime(server) { try checkAFileStillBeingWrittenIsTakenWhole(agents) }
    }

    @Test func agentsExchangeFilesOverPureFTPd() throws {
        let server = try FTPTestServer.pureFTPd()
        let agents = try TwoAgents(ftp: server)
        defer { agents.remove() }
        try withExtendedLifetime(server) { try checkExchange(agents) }
    }

    @Test func anInterruptedDownloadFromPureFTPdResumes() throws {
        let server = try FTPTestServer.pureFTPd()
        let agents = try TwoAgents(ftp: server)
        defer { agents.remove() }
        try withExtendedLifetime(server) { try checkAnInterruptedDownloadResumes(agents) }
    }

    @Test func interoperatesWithThe07ToolsFtplibMode() throws {
        let server = FTPTestServer.shared
        let folder = "ftp07-" + UUID().uuidString.prefix(8)
        let agents = try TwoAgents(ftp: server, folder: folder)
        defer { agents.remove() }
        func peer07(_ body: String) throws -> ProgramResult {
            try runProgram("/usr/bin/env", ["python3", "-c", """
                import ftplib, ssl, sys
                context = ssl.create_default_context(cafile="\(server.certificate)")
                context.maximum_version = ssl.TLSVersion.TLSv1_2
                ftp = ftplib.FTP_TLS(context=context)
                ftp.connect("127.0.0.1", \(server.port))
                ftp.login("cxdrop", open("\(server.passwordFile)").read().strip())
                ftp.prot_p()
                try: ftp.mkd("\(server.home)/\(folder)")
                except ftplib.error_perm: pass
                ftp.cwd("\(server.home)/\(folder)")
                \(body)
                ftp.quit()
                """])
        }
        // 0.7's bob sends to alice.
        var result = try peer07("""
            import io
            try: ftp.mkd("bob->alice")
            except ftplib.error_perm: pass
            ftp.storbinary("STOR bob->alice/hello.txt", io.BytesIO(b"from 0.7\\n"))
            """)
        #expect(result.status == 0, "\(result.errors)")
        #expect(try agents.once("alice").status == 0)
        #expect(read(joinPath(agents.inbox("alice", from: "bob"), "hello.txt")) == Array("from 0.7\n".utf8))

        // alice sends to 0.7's bob, who lists, fetches and deletes.
        try write(joinPath(agents.outbox("alice", to: "bob"), "report.txt"), "for 0.7\n")
        #expect(try agents.once("alice").status == 0)
        result = try peer07("""
            for name in ftp.nlst("alice->bob"):
                chunks = []
                ftp.retrbinary("RETR " + name, chunks.append)
                sys.stdout.write(name + ": " + b"".join(chunks).decode())
                ftp.delete(name)
            """)
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output == "alice->bob/report.txt: for 0.7\n")
        #expect(try FileSystem.contents(of: "\(server.home)/\(folder)/alice->bob") == [])
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
