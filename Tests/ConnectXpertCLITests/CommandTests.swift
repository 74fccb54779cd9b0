import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// `check`, `send`, `init`, `history`, `systemd-units`: exact output and exit codes.
@Suite struct CommandTests {
    @Test func checkExplainsTheShippedPolicy() throws {
        let outcome = try connectxpert("check", "--policy", "policies.yaml", in: packageRoot)
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout.hasPrefix("\(packageRoot)/policies.yaml: OK\n\n"
                                         + "We are 'alice', agent '\(Identity.hostAgentName)'. Spool: \(packageRoot)/spool\n"))
        #expect(outcome.stdout.contains("""
                each file is claimed (renamed to a name of this agent's) before its download, so other agents of \
            'alice' may read the same drop; a claim older than 10m is taken back
            """))
        #expect(outcome.stdout.contains("  drop: file:drop (local folder \(packageRoot)/drop), up to 4 connections, timeout 30s"))
        #expect(outcome.stdout.contains("  outbox/<*>/ -> drop:{sender}->{recipient}/{path}"))
    }

    @Test func checkExplainsWhatProtectsAnFTPRemote() throws {
        let folder = try temporaryFolder()
        try write(joinPath(folder, "ca.pem"), "not read by check")
        try write(joinPath(folder, "policies.yaml"), """
            identity:
              id: alice
            remotes:
              plain:
                url: ftp://cx@ftp.example.org/
                password_env: FTP_PASSWORD
                tls: off
              private:
                url: ftp://cx@ftp.example.org/
                password_env: FTP_PASSWORD
                ca_file: ca.pem
              public:
                url: ftps://cx@ftp.example.org/
                password_env: FTP_PASSWORD

            """)
        let outcome = try connectxpert("check", "--policy", joinPath(folder, "policies.yaml"), in: folder)
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout.contains("""
              plain: ftp://cx@ftp.example.org/, up to 4 connections, timeout 30s
                NO TLS (tls: off): the password and the files cross the network readable
              private: ftp://cx@ftp.example.org/, up to 4 connections, timeout 30s
                TLS required (AUTH TLS, refused if the server lacks it), trusting certificates signed by the CA in \
            \(folder)/ca.pem (instead of the system's)
              public: ftps://cx@ftp.example.org/, up to 4 connections, timeout 30s
                TLS from the first byte (ftps://), trusting certificates the system's CAs sign
            """), "\(outcome.stdout)")
    }

    @Test func checkExplainsSealingAndTrust() throws {
        let folder = try temporaryFolder()
        try write(joinPath(folder, "policies.yaml"), """
            identity:
              id: alice
            remotes:
              drop:
                url: file:drop
            outbox:
              - remote: drop
                seal: true
                trust: accept-new
            inbox:
              - remote: drop
                require_seal: true
              - remote: drop
                senders: [legacy]

            """)
        let outcome = try connectxpert("check", "--policy", "policies.yaml", in: folder)
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let lines = outcome.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("    sealed (seal: true): each file goes as an age file to the recipient's pinned key, "
            + "with a signed manifest; the drop sees sizes, times and the pair of IDs only"), "\(outcome.stdout)")
        #expect(lines.contains("    trust: accept-new: a recipient key seen for the first time is pinned (and logged); "
            + "a changed key stops the recipient's files"))
        #expect(lines.contains("    sealed objects only (require_seal: true): plain files are left on the drop"))
        #expect(lines.contains("    sealed objects only from senders whose key is pinned; plain files from the others"))
        #expect(lines.filter { $0 == "    trust: verified: only a sender key a person pinned with 'connectxpert peer "
            + "trust ID' is used; a changed key stops the sender's files" }.count == 2)
    }

    @Test func checkReportsAnInvalidPolicyWithEXConfig() throws {
        let folder = try temporaryFolder()
        try write(joinPath(folder, "policies.yaml"), "identity:\n  id: alice\nremotes:\n  drop:\n    url: file:drop\n    max_conections: 4\n")
        let outcome = try connectxpert("check", "--policy", "policies.yaml", in: folder)
        #expect(outcome.status == 78)
        #expect(outcome.stdout.isEmpty)
        #expect(outcome.stderr == """
            policies.yaml:6:5: error: remotes.drop.max_conections: unknown key 'max_conections'; did you mean 'max_connections'?
                    max_conections: 4
                    ^

            """)
    }

    @Test func aDamagedJournalIsExplainedWithWhatToDo() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        #expect(try agents.once("alice").status == 0)
        let journal = joinPath(agents.alice, "spool/.state/journal.sqlite")
        let file = try FileDescriptor.open(journal, flags: O_WRONLY)
        try file.write(Array(repeating: 0xa5, count: 4096))  // over the header
        for arguments in [["run", "--once"], ["status"], ["history"]] {
            let outcome = try AgentProcess(arguments + ["--policy", agents.policyPath("alice")], in: agents.alice).wait()
            #expect(outcome.status == 74, "EX_IOERR: \(arguments) \(outcome.stderr)")
            #expect(outcome.stderr.contains("connectxpert: the journal \(journal) is damaged (file is not a database). "
                + "To go on, stop every agent on this spool and move it aside"), "\(outcome.stderr)")
        }
        let advice = "cd \(parentDirectory(of: journal)) && for f in journal.sqlite*; do mv \"$f\" \"$f.damaged\"; done"
        _ = try runChecked("/bin/sh", ["-c", advice])
        try write(joinPath(agents.outbox("alice", to: "bob"), "after.txt"), "a")
        let after = try agents.once("alice")
        #expect(after.status == 0, "following the advice works: \(after.stderr)")
        #expect(FileSystem.exists(joinPath(agents.drop, "alice->bob/after.txt")))
    }

    @Test func missingPolicyIsExplained() throws {
        let folder = try temporaryFolder()
        let outcome = try connectxpert("check", "--policy", "nowhere.yaml", in: folder)
        #expect(outcome.status == 78)
        #expect(outcome.stderr.hasPrefix("nowhere.yaml: error: cannot read the policy (open \(folder)/nowhere.yaml: No such file or directory); create one with 'connectxpert init --id YOUR_ID'"))
    }

    @Test func initWritesAStarterPolicyEqualToTheShippedOneAndNeverOverwrites() throws {
        let folder = try temporaryFolder()
        let first = try connectxpert("init", "--id", "alice", in: folder)
        #expect(first.status == 0)
        let lines = first.stdout.split(separator: "\n")
        #expect(lines.first == "wrote policies.yaml; check it with: connectxpert check --policy policies.yaml")
        #expect(lines.dropFirst().first == "made the drop folder \(folder)/drop", "the drop the policy names")
        #expect(try FileSystem.status(joinPath(folder, "drop"))?.kind == .directory)
        #expect(lines.dropFirst(2).first == "made the identity alice in \(folder)/spool/.identity",
                "init makes the identity")
        #expect(read(joinPath(folder, "policies.yaml")) == read(joinPath(packageRoot, "policies.yaml")),
                "the shipped policies.yaml is what 'init --id alice' writes")
        let second = try connectxpert("init", "--id", "bob", in: folder)
        #expect(second.status == 73)
        #expect(second.stderr == "connectxpert: policies.yaml exists already; it was not changed\n")
        let bad = try connectxpert("init", "--id", "../x", in: folder)
        #expect(bad.status == 64)
        #expect(bad.stderr.hasPrefix("Error: '../x' cannot be an ID: '..' would leave the folder") || bad.stderr.contains("cannot be an ID"))
    }

    @Test func sendPlacesFilesAtomicallyAndWaitsForDelivery() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        let source = joinPath(agents.root, "report.txt")
        try write(source, "report")
        let policy = agents.policyPath("alice")
        let first = try connectxpert("send", source, "--to", "bob", "--policy", policy, in: agents.alice)
        #expect(first.status == 0)
        #expect(first.stdout == "queued \(source) for bob as \(agents.outbox("alice", to: "bob"))/report.txt\n")
        let second = try connectxpert("send", source, "--to", "bob", "--policy", policy, in: agents.alice)
        #expect(second.stdout.hasSuffix("/report (1).txt\n"))
        #expect(files(below: agents.outbox("alice", to: "bob")) == ["report (1).txt", "report.txt"])

        let unavailable = try connectxpert("send", source, "--to", "bob", "--wait", "--policy", policy, in: agents.alice)
        #expect(unavailable.status == 69)
        #expect(unavailable.stderr.contains("no agent is running"))

        let alice = try agents.startDaemon("alice")
        defer { alice.signal(SIGTERM); alice.wait() }
        let waited = try connectxpert("send", source, "--to", "carol", "--wait", "--policy", policy, in: agents.alice)
        #expect(waited.status == 0, "\(waited.stderr)")
        #expect(waited.stdout.contains("delivered report.txt (6 B)"))

        let invalid = try connectxpert("send", source, "--to", "../etc", "--policy", policy, in: agents.alice)
        #expect(invalid.status == 64)
        #expect(invalid.stderr.contains("'../etc' cannot be a recipient: '..' would leave the folder") || invalid.stderr.contains("cannot be a recipient"))
    }

    @Test func sendWaitEndsWhenTheAgentStops() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        try FileManager.default.removeItem(atPath: agents.drop)  // every upload fails, and is retried
        let alice = try agents.startDaemon("alice")
        defer { AgentProcess.stop([alice]) }
        try write(joinPath(agents.outbox("alice", to: "bob"), "first.txt"), "1")
        #expect(eventually { agents.attempts("alice") >= 1 }, "the daemon runs")
        let source = joinPath(agents.root, "report.txt")
        try write(source, "report")
        let policy = agents.policyPath("alice")
        let waiting = try AgentProcess(["send", source, "--to", "bob", "--wait", "--policy", policy], in: agents.alice)
        let status = { (try? connectxpert("status", "--policy", policy, in: agents.alice).stdout) ?? "" }
        #expect(eventually { status().contains("report.txt") }, "report.txt is queued and retried too")
        AgentProcess.stop([alice])
        let outcome = waiting.wait(timeout: 10)
        #expect(outcome.status == 69)
        #expect(outcome.stderr.hasSuffix("connectxpert: the agent on \(agents.alice)/spool stopped before report.txt "
                                         + "was delivered; it waits in the outbox until 'connectxpert run' starts\n"),
                "\(outcome.stderr)")
        #expect(files(below: agents.outbox("alice", to: "bob")) == ["first.txt", "report.txt"])
    }

    @Test func historyListsFinishedTransfers() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        try write(joinPath(agents.outbox("alice", to: "bob"), "h.txt"), "h")
        #expect(try agents.once("alice").status == 0)
        let history = try connectxpert("history", "--policy", agents.policyPath("alice"), in: agents.alice)
        #expect(history.status == 0)
        #expect(history.stdout.contains("  sent      bob/h.txt -> drop:alice->bob/h.txt  1 B\n"))
    }

    @Test func systemdUnitsVerify() throws {
        guard let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first(where: FileSystem.exists) else {
            Issue.record("systemd-analyze is not installed (make test installs the systemd package)")
            return
        }
        let shipped = try temporaryFolder()
        for unit in ["connectxpert.service", "connectxpert-batch.service", "connectxpert-batch.path"] {
            let text = String(decoding: read(joinPath(packageRoot, "systemd", unit)) ?? [], as: UTF8.self)
                .replacingOccurrences(of: "/usr/local/bin/connectxpert", with: binary)
            try write(joinPath(shipped, unit), text)
        }
        #expect(try verify(analyze, folder: shipped, units: ["connectxpert.service", "connectxpert-batch.service", "connectxpert-batch.path"]) == "")

        let agents = try TwoAgents {
            try $0.replacing(existing: "recipients: [\"*\"]",
                             with: "recipients: [\"bob\", \"team-*\"]")
        }
        defer { agents.remove() }
        try FileSystem.createDirectories(agents.outbox("alice", to: "team-a"))
        let generated = try connectxpert("systemd-units", "--policy", agents.policyPath("alice"), in: agents.alice)
        #expect(generated.status == 0)
        let lines = generated.stdout.split(separator: "\n").filter { $0.hasPrefix("DirectoryNotEmpty=") }
        #expect(lines == ["DirectoryNotEmpty=\(agents.outbox("alice", to: "bob"))", "DirectoryNotEmpty=\(agents.outbox("alice", to: "team-a"))"])
        let custom = try temporaryFolder()
        try write(joinPath(custom, "connectxpert-batch.path"), generated.stdout)
        try write(joinPath(custom, "connectxpert-batch.service"), String(decoding: read(joinPath(shipped, "connectxpert-batch.service")) ?? [], as: UTF8.self))
        #expect(try verify(analyze, folder: custom, units: ["connectxpert-batch.path"]) == "")
    }

    /// Runs `systemd-analyze verify`; returns what it complained about ("" when the units are valid).
    private func verify(_ analyze: String, folder: String, units: [String]) throws -> String {
        let result = try runProgram(analyze, ["verify"] + units.map { joinPath(folder, $0) })
        return result.status == 0 ? "" : "exit \(result.status): \(result.errors)"
    }
}

func temporaryFolder() throws -> String {
    let path = NSTemporaryDirectory() + "cx-test-" + UUID().uuidString.prefix(8)
    try FileSystem.createDirectories(path)
    return path
}
