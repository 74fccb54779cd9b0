import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

extension TwoAgents {
    /// One more agent of bob's identity, `bob-<number>`: bob's policy (with `edit`) and a spool of its own.
    func addBob(_ number: Int, edit: (String) throws -> String = { $0 }) throws -> String {
        let name = "bob-\(number)"
        let policy = String(decoding: try FileSystem.readFile(policyPath("bob")), as: UTF8.self)
        try FileSystem.createDirectories(joinPath(root, name))
        let named = try policy.replacing(existing: "  id: bob\n", with: "  id: bob\n  agent: \(name)\n")
        try writePolicy(name, try edit(named))
        return name
    }

    /// alice's folder for bob on the drop, as seen on this machine.
    var aliceToBob: String { joinPath(remoteFolder ?? drop, "alice->bob") }

    /// Queues `count` small files in alice's outbox for bob and sends them with one batch pass.
    func sendSmallFiles(_ count: Int) throws {
        for index in 0..<count {
            try write(joinPath(outbox("alice", to: "bob"), "file-\(index)"), "payload \(index)\n")
        }
        let sent = try once("alice")
        try #require(sent.status == 0, "\(sent.stderr)")
    }

    /// Checks that bob's agents `bobs` received alice's `count` small files between them, each once:
    /// those of `sendSmallFiles`, or, with `size`, files of that size for their number.
    func expectEachSmallFileOnce(_ count: Int, by bobs: [String], size: ((Int) -> Int)? = nil) {
        var copies: [String: Int] = [:]
        for bob in bobs {
            for name in files(below: inbox(bob, from: "alice")) {
                copies[name, default: 0] += 1
                let path = joinPath(inbox(bob, from: "alice"), name)
                if let size, let index = Int(name.dropFirst("file-".count)) {
                    #expect((try? FileSystem.status(path))??.size == Int64(size(index)))
                } else {
                    #expect(read(path) == Array("payload \(name.dropFirst(5))\n".utf8))
                }
            }
        }
        #expect(copies.count == count, "files missing: \(count - copies.count)")
        #expect(copies.filter { $0.value > 1 }.count == 0, "files received twice or more")
    }
}

/// Several agents of one identity reading one drop: each file is claimed (renamed) by one agent
/// before its download, and so received once across them all.
@Suite struct SharedDropTests {
    @Test(arguments: [1, 2, 4])
    func agentsOfOneIdentityOnALocalDropReceiveEachFileOnce(agentCount: Int) throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        try checkEachFileOnce(agents, agentCount: agentCount)
    }

    @Test(.enabled(if: canRunServerTests, "needs root to run sshd"), arguments: [1, 2, 4])
    func agentsOfOneIdentityOverSFTPReceiveEachFileOnce(agentCount: Int) throws {
        let agents = try TwoAgents(sftp: SSHTestServer.shared)
        defer { agents.remove() }
        try checkEachFileOnce(agents, agentCount: agentCount)
    }

    private func checkEachFileOnce(_ agents: TwoAgents, agentCount: Int) throws {
        try agents.sendSmallFiles(2000)
        let bobs = try ["bob"] + (2...max(agentCount, 2)).prefix(agentCount - 1).map { try agents.addBob($0) }
        let daemons = try bobs.map { try agents.daemon($0) }
        let last = try #require(bobs.last)
        let status = try connectxpert("status", "--policy", agents.policyPath(last), in: joinPath(agents.root, last))
        #expect(status.stdout.contains("agent '\(agentCount > 1 ? last : Identity.hostAgentName)' of 'bob', "),
                "\(status.stdout)")
        #expect(eventually(timeout: 120) { (try? FileSystem.contents(of: agents.aliceToBob)) == [] },
                """
                the drop is emptied: \((try? FileSystem.contents(of: agents.aliceToBob))?.prefix(5) ?? []); the end \
                of each agent's log: \(daemons.map { String($0.log.suffix(2000)) })
                """)
        AgentProcess.stop(daemons)
        agents.expectEachSmallFileOnce(2000, by: bobs)
    }

    /// While two of bob's agents claim and receive alice's files, a plain `sftp` user listing bob's
    /// folder sees only whole files; so would a ConnectXpert 0.7 peer, which takes dot names too:
    /// every name there, claims included, holds the whole file its sender put.
    @Test(.enabled(if: canRunServerTests, "needs root to run sshd"))
    func aPlainSFTPListingShowsOnlyWholeFilesWhileAgentsClaim() throws {
        let server = SSHTestServer.shared
        let agents = try TwoAgents(sftp: server)
        defer { agents.remove() }
        let count = 300
        func size(_ index: Int) -> Int { 4096 * (1 + index % 64) }
        for index in 0..<count { try agents.moveIntoOutbox(randomBytes(size(index)), named: "file-\(index)") }
        try #require(try agents.once("alice").status == 0)
        let folder = lastComponent(of: try #require(agents.remoteFolder)) + "/alice->bob"
        /// The files a listing shows, each checked to hold its whole size.
        func listWholeFiles() throws -> Int {
            var shown = 0
            for line in try sftpBatch(server, "ls -la \(folder)").split(separator: "\n") {
                let fields = line.split(separator: " ", maxSplits: 8)
                guard fields.count == 9, fields[0].hasPrefix("-") else { continue }
                let name = lastComponent(of: String(fields[8]))
                // A claim is .<name>.claim-… or .<name>.taken-…; the files' own names have no dot.
                let original = name.hasPrefix(".") ? String(name.dropFirst().prefix { $0 != "." }) : name
                let index = Int(original.dropFirst("file-".count)) ?? -1
                #expect(original.hasPrefix("file-") && Int(fields[4]) == size(index), "listed: \(line)")
                shown += 1
            }
            return shown
        }
        try #require(try listWholeFiles() == count, "the listing shows what alice sent")

        let bobs = ["bob", try agents.addBob(2)]
        let daemons = try bobs.map { try agents.daemon($0) }
        defer { AgentProcess.stop(daemons) }
        var listings = 0
        #expect(try eventually(timeout: 120) {
            listings += 1
            let received = bobs.map { files(below: agents.inbox($0, from: "alice")).count }.reduce(0, +)
            return try listWholeFiles() == 0 && received >= count
        })
        #expect(listings > 1, "the folder was listed while the agents received")
        agents.expectEachSmallFileOnce(count, by: bobs, size: size)
    }

    @Test func killingAgentsAtRandomLosesAndDuplicatesNothing() throws {
        let agents = try TwoAgents()
        defer { agents.remove() }
        try agents.sendSmallFiles(2000)
        let bobs = ["bob", try agents.addBob(2)]
        var daemons = try bobs.map { try agents.daemon($0) }
        for _ in 0..<20 {
            usleep(useconds_t.random(in: 100_000...300_000))
            let victim = Int.random(in: 0..<daemons.count)
            daemons[victim].signal(SIGKILL)
            daemons[victim].wait()
            daemons[victim] = try agents.daemon(bobs[victim])
        }
        #expect(eventually(timeout: 120) { (try? FileSystem.contents(of: agents.aliceToBob)) == [] })
        AgentProcess.stop(daemons)
        agents.expectEachSmallFileOnce(2000, by: bobs)
    }

    @Test(.enabled(if: canRunServerTests, "needs root to run sshd"))
    func theClaimOfAnAgentKilledForGoodIsTakenBackAfterTheTimeout() throws {
        let agents = try TwoAgents(sftp: SSHTestServer.shared)
        defer { agents.remove() }
        let bytes = randomBytes(256 << 20)
        try agents.moveIntoOutbox(bytes, named: "large.bin")
        try #require(try agents.once("alice").status == 0)
        let dead = try agents.daemon("bob")
        try #require(eventually {
            ((try? FileSystem.contents(of: agents.aliceToBob)) ?? []).contains { $0.hasPrefix(".large.bin.claim-") }
        }, "bob claims the file: \(dead.log)")
        dead.signal(SIGKILL)
        dead.wait()
        try #require(read(joinPath(agents.inbox("bob", from: "alice"), "large.bin")) == nil,
                     "bob was killed during the download")
        let listed = try FileSystem.contents(of: agents.aliceToBob)
        #expect(listed.filter { !$0.hasPrefix(".") } == [], "a plain listing shows no claimed file: \(listed)")

        let bob2 = try agents.addBob(2) {
            try $0.replacing(existing: "    stable_for: 100ms\n",
                             with: "    stable_for: 100ms\n    claim_timeout: 2s\n")
        }
        let taker = try agents.daemon(bob2)
        defer { AgentProcess.stop([taker]) }
        #expect(eventually(timeout: 60) { read(joinPath(agents.inbox(bob2, from: "alice"), "large.bin")) == bytes },
                "\(taker.log)")
        #expect(eventually { (try? FileSystem.contents(of: agents.aliceToBob)) == [] })
        #expect(taker.log.contains("taking back a file claimed by an agent taken as dead"))
    }
}
