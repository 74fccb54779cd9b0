import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// Two agents exchanging files through a real sshd, in the ConnectXpert 0.7 layout.
extension TwoAgents {
    /// Agents whose remote is `server`, in a folder of their own below the test login's home.
    init(sftp server: SSHTestServer, folder: String = "cli-" + UUID().uuidString.prefix(8)) throws {
        try self.init(server: server, folder: folder, lines: [
            "url: \(server.url(folder))", "key_file: \(server.clientKey)", "known_hosts: \(server.knownHosts)",
        ])
    }
}

@Suite(.enabled(if: canRunServerTests, "needs root to run sshd"))
struct SFTPAgentTests {
    @Test func agentsExchangeFilesOverSFTP() throws {
        let agents = try TwoAgents(sftp: SSHTestServer.shared)
        defer { agents.remove() }
        try checkExchange(agents)
    }

    @Test func agentsExchangeFilesOverDropbearWithItsSmallWindow() throws {
        let server = try SSHTestServer(.dropbear)
        let agents = try TwoAgents(sftp: server)
        defer { agents.remove() }
        try withExtendedLifetime(server) { try checkExchange(agents) }  // with a 3 MiB file: 128 windows of 24 KiB
    }

    /// `rclone serve sftp` refuses a write at an offset, which a large upload's second stream needs:
    /// asked before a second connection opens the file (rclone then keeps one handle's writes only:
    /// a file half zeros, or empty, under the right size), and the file goes in one stream; the
    /// remote is remembered as one for one stream, said once.
    @Test func largeFilesGoInOneStreamToAServerThatCannotWriteAtAnOffset() throws {
        let server = try SSHTestServer(.rclone)
        let agents = try TwoAgents(sftp: server)
        defer { agents.remove() }
        let first = randomBytes(65 << 20), second = randomBytes(65 << 20)
        try write(joinPath(agents.outbox("alice", to: "bob"), "first.bin"), first)
        try write(joinPath(agents.outbox("alice", to: "bob"), "second.bin"), second)
        let sent = try withExtendedLifetime(server) { try agents.once("alice") }
        #expect(sent.status == 0, "\(sent.stderr)")
        let said = sent.stderr.components(separatedBy: "the server cannot write a file at an offset").count - 1
        #expect(said == 1, "\(sent.stderr)")
        let stored = (read(joinPath(agents.remoteFolder!, "alice->bob/first.bin")) == first,
                      read(joinPath(agents.remoteFolder!, "alice->bob/second.bin")) == second)
        #expect(stored == (true, true), "each file whole")
    }

    @Test func aFileStillBeingWrittenIsTakenWhole() throws {
        let agents = try TwoAgents(sftp: SSHTestServer.shared)
        defer { agents.remove() }
        try checkAFileStillBeingWrittenIsTakenWhole(agents)
    }

    @Test func namesThatAreNotUTF8AreSaidAndLeft() throws {
        let agents = try TwoAgents(sftp: SSHTestServer.shared)
        defer { agents.remove() }
        try checkNamesThatAreNotUTF8AreSaidAndLeft(agents)
    }

    @Test func anUnknownHostKeyRefusesOnceInOneLineAndCountsEachFileOnce() throws {
        let server = SSHTestServer.shared
        let folder = "refused-" + UUID().uuidString.prefix(8)
        let empty = NSTemporaryDirectory() + "cx-kh-" + UUID().uuidString
        let agents = try TwoAgents(server: server, folder: folder, lines: [
            "url: \(server.url(folder))", "key_file: \(server.clientKey)", "known_hosts: \(empty)",
        ])
        defer { agents.remove() }
        try write(joinPath(agents.outbox("alice", to: "bob"), "waits.txt"), "w")
        try write(joinPath(agents.outbox("alice", to: "bob"), "waits too.txt"), "w")
        let outcome = try agents.once("alice")
        #expect(outcome.status == 77, "\(outcome.stderr)")
        #expect(outcome.stderr.hasSuffix("connectxpert: sent 0, received 0, failed 0, to retry 0, refused 2; a server refused "
            + "us (authentication, host key or TLS; see the log), the files and mail wait in their outboxes\n"),
                "two files, whatever the attempts and the inbox listing: \(outcome.stderr)")
        let lines = outcome.stderr.split(separator: "\n").filter { $0.contains("is not known") }
        #expect(lines.count == 1, "one line, once: \(outcome.stderr)")
        #expect(lines.first?.contains("\\nRefused. If this is the right key, add this line to") == true)
        #expect(files(below: agents.outbox("alice", to: "bob")) == ["waits too.txt", "waits.txt"])
    }

    @Test func aPeerWithTheSameLayoutInteroperates() throws {
        // OpenSSH's sftp stands in for ConnectXpert 0.7: it puts into sender->receiver/ under the
        // login's home, and receives by listing, getting and removing.
        let server = SSHTestServer.shared
        let folder = "interop-" + UUID().uuidString.prefix(8)
        let agents = try TwoAgents(sftp: server, folder: folder)
        defer { agents.remove() }
        let legacyFile = joinPath(agents.root, "from-legacy.txt")
        try write(legacyFile, "sent by the old tool")
        try sftpBatch(server, """
            -mkdir \(folder)
            -mkdir \(folder)/carol->bob
            put \(legacyFile) \(folder)/carol->bob/from-legacy.txt
            """)
        #expect(try agents.once("bob").status == 0)
        #expect(read(joinPath(agents.inbox("bob", from: "carol"), "from-legacy.txt")) == Array("sent by the old tool".utf8))

        try write(joinPath(agents.outbox("bob", to: "carol"), "for-legacy.txt"), "sent by the agent")
        #expect(try agents.once("bob").status == 0)
        let fetched = joinPath(agents.root, "fetched.txt")
        try sftpBatch(server, "get \(folder)/bob->carol/for-legacy.txt \(fetched)\nrm \(folder)/bob->carol/for-legacy.txt")
        #expect(read(fetched) == Array("sent by the agent".utf8))
    }

    @Test func noPartialFileIsEverVisibleUnderItsFinalName() throws {
        let agents = try TwoAgents(sftp: SSHTestServer.shared)
        defer { agents.remove() }
        let alice = try agents.startDaemon("alice")
        defer { alice.signal(SIGTERM); alice.wait() }
        let size = 200 << 20
        try agents.moveIntoOutbox(randomBytes(size), named: "large.bin")
        // A ConnectXpert 0.7 peer takes every name in its folder, dot names too: nothing but the
        // complete file may ever show there.
        let folder = joinPath(agents.remoteFolder!, "alice->bob")
        var sawTemporary = false
        let delivered = eventually(timeout: 60) {
            sawTemporary = sawTemporary || ((try? FileSystem.contents(of: agents.temporaryFolder)) ?? []).contains {
                $0.hasSuffix(".part")
            }
            for name in (try? FileSystem.contents(of: folder)) ?? [] {
                let status = (try? FileSystem.status(joinPath(folder, name))) ?? nil
                #expect(name == "large.bin" && status?.size == Int64(size), "\(name) visible with \(status?.size ?? -1) bytes")
                return true
            }
            return false
        }
        #expect(delivered)
        #expect(sawTemporary, "the upload was observed while in progress, beside the drop folders")
    }

    @Test func serverStoppedMidTransferThenRestartedDeliversOnce() throws {
        let server = try SSHTestServer()
        let agents = try TwoAgents(sftp: server)
        defer { agents.remove() }
        try checkServerRestartDeliversOnce(agents, stop: server.stop, start: server.start)
    }

    @Test func killDashNineDuringFiveHundredUploadsDeliversEachOnce() throws {
        let agents = try TwoAgents(sftp: SSHTestServer.shared)
        defer { agents.remove() }
        try checkKillDuringUploadsDeliversEachOnce(agents, killAfter: 100)
    }

    /// libssh2 frees a file's handle as soon as the reply to its CLOSE arrives. With freed memory
    /// overwritten at once (glibc's MALLOC_PERTURB_, without its per-thread cache), a request that
    /// still used the handle after that crashed the agent: it happened when a CLOSE, sent along with
    /// the requests before it, was answered before their replies had been collected.
    @Test func noRequestUsesAFileHandleAfterItsClose() throws {
        let agents = try TwoAgents(sftp: SSHTestServer.shared)
        defer { agents.remove() }
        let outbox = agents.outbox("alice", to: "bob")
        for index in 0..<500 { try write(joinPath(outbox, "file-\(index)"), "payload \(index)\n") }
        let run = try AgentProcess(["run", "--once", "--policy", agents.policyPath("alice")], in: agents.alice,
                                   environment: ["GLIBC_TUNABLES": "glibc.malloc.tcache_count=0", "MALLOC_PERTURB_": "165"]).wait()
        #expect(run.status == 0, "\(run.stderr.suffix(3000))")
        #expect(try FileSystem.contents(of: joinPath(agents.remoteFolder!, "alice->bob")).count == 500)
    }

    /// Small files go in batches (one fsync, then the renames); a file that fails in a batch, before
    /// its upload or at its rename, fails alone and the others are delivered once.
    @Test func aBatchDeliversAllButItsFailingFiles() throws {
        let agents = try TwoAgents(sftp: SSHTestServer.shared)
        defer { agents.remove() }
        try agents.editPolicy("alice", replacing: "    remote: drop\n    retry", with: "    remote: drop\n    conflict: fail\n    retry")
        let drop = joinPath(agents.remoteFolder!, "alice->bob")
        let taken = ["file-05", "file-15", "file-25"]
        for name in taken { try write(joinPath(drop, name), "theirs") }
        try chown(agents.remoteFolder!)
        let outbox = agents.outbox("alice", to: "bob")
        for index in 0..<30 { try write(joinPath(outbox, String(format: "file-%02d", index)), "payload \(index)") }
        try FileManager.default.createSymbolicLink(atPath: joinPath(outbox, "file-10-link"), withDestinationPath: "/etc/passwd")

        let outcome = try agents.once("alice")
        #expect(outcome.status == 65, "\(outcome.stderr.suffix(2000))")
        #expect(outcome.stderr.contains("sent 27, received 0, failed 4, to retry 0"))
        #expect(try FileSystem.contents(of: agents.failed("alice", to: "bob")).filter { !$0.hasSuffix(".reason") }.sorted()
                    == ["file-05", "file-10-link", "file-15", "file-25"])
        for index in 0..<30 {
            let name = String(format: "file-%02d", index)
            #expect(read(joinPath(drop, name)) == Array((taken.contains(name) ? "theirs" : "payload \(index)").utf8), "\(name)")
        }
        #expect(try FileSystem.contents(of: drop).count == 30, "no temporary file is left behind")
    }

    /// Small files are received in batches (one fsync for their records, one per folder for their
    /// renames, then the remote deletes); a file that fails in a batch fails alone, left on the
    /// remote, and the others are received once and deleted there.
    @Test func aReceivedBatchStoresAllButItsFailingFiles() throws {
        let agents = try TwoAgents(sftp: SSHTestServer.shared)
        defer { agents.remove() }
        try agents.editPolicy("bob", replacing: "  - remote: drop\n    every:", with: "  - remote: drop\n    conflict: fail\n    every:")
        let drop = joinPath(agents.remoteFolder!, "alice->bob")
        for index in 0..<30 { try write(joinPath(drop, String(format: "file-%02d", index)), "payload \(index)") }
        try chown(agents.remoteFolder!)
        let inbox = agents.inbox("bob", from: "alice")
        let taken = ["file-05", "file-15", "file-25"]
        for name in taken { try write(joinPath(inbox, name), "mine") }

        let outcome = try agents.once("bob")
        #expect(outcome.status == 65, "\(outcome.stderr.suffix(2000))")
        #expect(outcome.stderr.contains("sent 0, received 27, failed 3, to retry 0"))
        for index in 0..<30 {
            let name = String(format: "file-%02d", index)
            #expect(read(joinPath(inbox, name)) == Array((taken.contains(name) ? "mine" : "payload \(index)").utf8), "\(name)")
        }
        #expect(try FileSystem.contents(of: inbox).count == 30, "no temporary file is left behind")
        #expect(try FileSystem.contents(of: drop).sorted() == taken, "only the files that failed are left on the remote")
    }

    @Test func anInterruptedDownloadResumes() throws {
        let agents = try TwoAgents(sftp: SSHTestServer.shared)
        defer { agents.remove() }
        try checkAnInterruptedDownloadResumes(agents)
    }

    @Test func hostileRemoteEntriesAreNotFollowed() throws {
        let agents = try TwoAgents(sftp: SSHTestServer.shared)
        defer { agents.remove() }
        let drop = joinPath(agents.remoteFolder!, "alice->bob")
        try write(joinPath(drop, "fine.txt"), "fine")
        try write(joinPath(drop, "bell\u{7}name"), "control")
        try write(joinPath(drop, ".hidden"), "hidden")
        try FileManager.default.createSymbolicLink(atPath: joinPath(drop, "passwd"), withDestinationPath: "/etc/passwd")
        try FileManager.default.createSymbolicLink(atPath: joinPath(drop, "escape"), withDestinationPath: "..")
        try chown(agents.remoteFolder!)
        let outcome = try agents.once("bob")
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(files(below: joinPath(agents.bob, "spool/inbox")) == ["alice/fine.txt"])
        #expect(FileSystem.exists(joinPath(drop, "passwd")))
    }
}

/// Runs an OpenSSH `sftp -b` batch as the test login; returns what it printed.
@discardableResult
func sftpBatch(_ server: SSHTestServer, _ commands: String) throws -> String {
    let batch = NSTemporaryDirectory() + "cx-batch-" + UUID().uuidString
    try write(batch, commands + "\n")
    defer { try? FileManager.default.removeItem(atPath: batch) }
    return try runChecked("/usr/bin/sftp", ["-q", "-b", batch, "-i", server.clientKey, "-o", "UserKnownHostsFile=\(server.knownHosts)",
                                     "-P", String(server.port), "\(server.user)@127.0.0.1"])
}

/// Gives a folder made by the tests (as root) to the test login, as if it had written it.
func chown(_ path: String) throws {
    try runChecked("/bin/chown", ["-hR", "cxdrop:cxdrop", path])
}
