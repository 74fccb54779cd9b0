import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// The `connectxpert` binary under test: $CONNECTXPERT_BINARY (set by `make test`), else the debug build.
let binary: String = {
    if let path = ProcessInfo.processInfo.environment["CONNECTXPERT_BINARY"], !path.isEmpty { return path }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return root.appendingPathComponent(".build/debug/connectxpert").path
}()

/// What a finished command printed and how it ended.
struct Outcome {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// A running `connectxpert` process, its output going to files.
final class AgentProcess {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    /// - Parameter input: written to the process's standard input (else it reads nothing).
    init(_ arguments: [String], in folder: String, environment: [String: String] = [:], input: [UInt8]? = nil) throws {
        // Logs go to the temporary folder, never into `folder` (which may be the package itself).
        let id = UUID().uuidString.prefix(8)
        stdoutPath = NSTemporaryDirectory() + "cx-out-\(id).log"
        stderrPath = NSTemporaryDirectory() + "cx-err-\(id).log"
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: folder)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        if let input {
            let inputPath = NSTemporaryDirectory() + "cx-in-\(id)"
            try FileSystem.writeFileAtomically(inputPath, contents: input)
            process.standardInput = FileHandle(forReadingAtPath: inputPath)
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
    }

    var log: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Stops daemons as systemd does, with SIGTERM, and waits for each to end.
    static func stop(_ daemons: [AgentProcess]) {
        for daemon in daemons {
            daemon.signal(SIGTERM)
            daemon.wait()
        }
    }

    /// Waits for the process to end; kills it after `timeout` seconds.
    @discardableResult
    func wait(timeout: Double = 60) -> Outcome {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            signal(SIGKILL)
        }
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus,
                       stdout: (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "",
                       stderr: log)
    }

    deinit {
        if process.isRunning { signal(SIGKILL) }
    }
}

/// Runs `connectxpert` to completion.
@discardableResult
func connectxpert(_ arguments: String..., in folder: String, timeout: Double = 120) throws -> Outcome {
    try AgentProcess(arguments, in: folder).wait(timeout: timeout)
}

/// Two users, alice and bob, each with a policy and a spool, sharing one local drop folder.
struct TwoAgents {
    let root: String
    var drop: String { joinPath(root, "drop") }
    /// For agents on an SFTP remote: the remote folder, as seen on this machine.
    var remoteFolder: String?
    var alice: String { joinPath(root, "alice") }
    var bob: String { joinPath(root, "bob") }

    /// - Parameter edit: applied to each policy's text before it is written.
    init(poll: String = "200ms", edit: (String) throws -> String = { $0 }) throws {
        root = NSTemporaryDirectory() + "cx-" + UUID().uuidString.prefix(8)
        try FileSystem.createDirectories(joinPath(root, "drop"))
        for id in ["alice", "bob"] {
            try FileSystem.createDirectories(joinPath(root, id))
            try writePolicy(id, try edit(Self.policy(id: id, poll: poll)))
        }
    }

    static func policy(id: String, poll: String) -> String {
        """
        identity:
          id: \(id)
        remotes:
          drop:
            url: file:../drop
        outbox:
          - recipients: ["*"]
            remote: drop
            retry:
              initial: 200ms
              max: 1s
        inbox:
          - remote: drop
            every: \(poll)
            stable_for: 100ms

        """
    }

    /// Agents whose remote is on `server`, reached with `lines` (url and credentials), in `folder`
    /// below the test login's home.
    init(server: TestServer, folder: String, lines: [String]) throws {
        try self.init {
            try $0.replacing(existing: "    url: file:../drop\n", with: lines.map { "    " + $0 + "\n" }.joined())
        }
        remoteFolder = joinPath(server.home, folder)
    }

    func policyPath(_ id: String) -> String { joinPath(root, id, "policies.yaml") }

    /// Where uploads are written until complete, beside the drop folders.
    var temporaryFolder: String { joinPath(remoteFolder ?? drop, ".connectxpert-temp") }

    func writePolicy(_ id: String, _ text: String) throws {
        try FileSystem.writeFileAtomically(policyPath(id), contents: Array(text.utf8))
    }

    /// Replaces `original` in a user's policy; throws when the policy does not hold it, so that a
    /// test whose edit no longer matches fails instead of testing the unedited policy.
    func editPolicy(_ id: String, replacing original: String, with text: String) throws {
        let policy = String(decoding: try FileSystem.readFile(policyPath(id)), as: UTF8.self)
        try writePolicy(id, policy.replacing(existing: original, with: text))
    }

    func outbox(_ id: String, to recipient: String) -> String { joinPath(root, id, "spool/outbox", recipient) }
    func inbox(_ id: String, from sender: String) -> String { joinPath(root, id, "spool/inbox", sender) }
    func failed(_ id: String, to recipient: String) -> String { joinPath(root, id, "spool/failed", recipient) }

    /// The attempts `status` shows for the first transfer waiting to retry (0 when none waits).
    func attempts(_ id: String) -> Int {
        let output = (try? connectxpert("status", "--policy", policyPath(id), in: joinPath(root, id)).stdout) ?? ""
        guard let range = output.range(of: #"attempt \d+"#, options: .regularExpression) else { return 0 }
        return Int(output[range].dropFirst("attempt ".count)) ?? 0
    }

    /// `run --once` for one user.
    func once(_ id: String) throws -> Outcome {
        try connectxpert("run", "--once", "--policy", policyPath(id), in: joinPath(root, id))
    }

    func daemon(_ id: String) throws -> AgentProcess {
        try AgentProcess(["run", "--policy", policyPath(id), "--log-level", "debug"], in: joinPath(root, id))
    }

    /// Starts a user's daemon and waits until it watches the outbox.
    func startDaemon(_ id: String) throws -> AgentProcess {
        let process = try daemon(id)
        try #require(eventually { process.log.contains("watching the outbox") })
        return process
    }

    /// Puts a file into alice's outbox for bob the way a careful writer does: written elsewhere,
    /// then moved in whole.
    func moveIntoOutbox(_ bytes: [UInt8], named name: String) throws {
        let staging = joinPath(root, "staging-" + name)
        try write(staging, bytes)
        try FileSystem.createDirectories(outbox("alice", to: "bob"))
        try FileSystem.rename(staging, to: joinPath(outbox("alice", to: "bob"), name))
    }

    /// Removes the agents' folders, and their folder on the server, if any.
    func remove() {
        for folder in [root] + (remoteFolder.map { [$0] } ?? []) { try? FileManager.default.removeItem(atPath: folder) }
    }
}

/// Writes a file in place (create, write, close): what `cp` does.
func write(_ path: String, _ bytes: [UInt8]) throws {
    try FileSystem.createDirectories(parentDirectory(of: path))
    let file = try FileDescriptor.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC)
    try file.write(bytes)
}

func write(_ path: String, _ text: String) throws { try write(path, Array(text.utf8)) }

func read(_ path: String) -> [UInt8]? { try? FileSystem.readFile(path) }

/// Every file below `folder`, as paths relative to it.
func files(below folder: String) -> [String] {
    guard let enumerator = FileManager.default.enumerator(atPath: folder) else { return [] }
    var result: [String] = []
    while let path = enumerator.nextObject() as? String {
        var isDirectory: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: joinPath(folder, path), isDirectory: &isDirectory)
        if !isDirectory.boolValue { result.append(path) }
    }
    return result.sorted()
}

// MARK: - Scenarios every network transport must pass

/// Two batch passes move files of every awkward kind from alice to bob byte-identical, and the
/// remote copies are gone afterwards.
func checkExchange(_ agents: TwoAgents) throws {
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

/// A peer writing 2 MB in 20 chunks under its final name, as ConnectXpert 0.7 and most tools do,
/// straight into the drop folder (on the server's disk, owned by its login): bob's daemon takes the
/// file only once it is complete, and deletes the remote copy only then.
func checkAFileStillBeingWrittenIsTakenWhole(_ agents: TwoAgents) throws {
    try agents.editPolicy("bob", replacing: "stable_for: 100ms", with: "stable_for: 1s")
    let folder = joinPath(agents.remoteFolder ?? agents.drop, "alice->bob")
    try FileSystem.createDirectories(folder)
    if let remoteFolder = agents.remoteFolder { try chown(remoteFolder) }
    let bob = try agents.startDaemon("bob")
    defer { bob.signal(SIGTERM); bob.wait() }
    let bytes = randomBytes(2_000_000)
    let file = try FileDescriptor.open(joinPath(folder, "slow.bin"), flags: O_WRONLY | O_CREAT | O_TRUNC)
    for chunk in stride(from: 0, to: bytes.count, by: 100_000) {
        try file.write(Array(bytes[chunk..<chunk + 100_000]))
        usleep(150_000)  // more than bob's poll interval, less than its stable_for
    }
    #expect(!bob.log.contains("] received"), "nothing is taken while it is being written: \(bob.log)")
    let received = joinPath(agents.inbox("bob", from: "alice"), "slow.bin")
    #expect(eventually { read(received) == bytes }, "\(bob.log)")
    #expect(eventually { files(below: folder).isEmpty }, "the remote copy is deleted once it is stored")
}

/// `kill -9` of bob's batch pass in the middle of a 300 MiB download, then another pass: it goes on
/// from the partial file and stores the file whole.
func checkAnInterruptedDownloadResumes(_ agents: TwoAgents) throws {
    let bytes = randomBytes(300 << 20)
    try write(joinPath(agents.remoteFolder!, "alice->bob/large.bin"), bytes)
    try chown(agents.remoteFolder!)
    let bob = try AgentProcess(["run", "--once", "--policy", agents.policyPath("bob")], in: agents.bob)
    let inbox = agents.inbox("bob", from: "alice")
    let started = eventually(timeout: 30) {
        ((try? FileSystem.contents(of: inbox)) ?? []).contains { name in
            name.hasSuffix(".part") && ((try? FileSystem.status(joinPath(inbox, name)))??.size ?? 0) > 10 << 20
        }
    }
    bob.signal(SIGKILL)
    bob.wait()
    try #require(started, "the download was interrupted while in progress")
    let resumed = try agents.once("bob")
    #expect(resumed.status == 0, "\(resumed.stderr)")
    #expect(resumed.stderr.contains("resuming the download"), "\(resumed.stderr)")
    #expect(read(joinPath(inbox, "large.bin")) == bytes)
    #expect(try FileSystem.contents(of: inbox) == ["large.bin"], "no partial file left")
    #expect(!FileSystem.exists(joinPath(agents.remoteFolder!, "alice->bob/large.bin")), "the remote copy is deleted once stored")
}

/// A daemon sending a large file while its server is stopped (connections killed) and started
/// again delivers the file once, with no duplicate and no temporary file left.
func checkServerRestartDeliversOnce(_ agents: TwoAgents, stop: () -> Void, start: () throws -> Void) throws {
    let alice = try agents.startDaemon("alice")
    defer { alice.signal(SIGTERM); alice.wait() }
    let bytes = randomBytes(150 << 20)
    try agents.moveIntoOutbox(bytes, named: "interrupted.bin")
    let folder = joinPath(agents.remoteFolder!, "alice->bob")
    try #require(eventually { ((try? FileSystem.contents(of: agents.temporaryFolder)) ?? []).contains { $0.hasSuffix(".part") } })
    stop()
    #expect(eventually { agents.attempts("alice") >= 1 }, "the failed upload waits to retry: \(alice.log)")
    try start()
    #expect(eventually(timeout: 60) { read(joinPath(folder, "interrupted.bin")) == bytes })
    #expect(eventually { (try? FileSystem.contents(of: folder)) == ["interrupted.bin"] }, "no duplicate")
    #expect(eventually { (try? FileSystem.contents(of: agents.temporaryFolder)) == [] }, "no temporary left")
}

/// `kill -9` of a daemon in the middle of 500 uploads, then a batch pass: each file arrives once.
func checkKillDuringUploadsDeliversEachOnce(_ agents: TwoAgents, killAfter delivered: Int) throws {
    let outbox = agents.outbox("alice", to: "bob")
    let staging = joinPath(agents.root, "staging")
    try FileSystem.createDirectories(outbox)
    var expected: [String: [UInt8]] = [:]
    for index in 0..<500 {
        expected["file-\(index)"] = Array("payload \(index)\n".utf8)
        try write(joinPath(staging, "file-\(index)"), expected["file-\(index)"]!)
    }
    let alice = try agents.startDaemon("alice")
    for name in try FileSystem.contents(of: staging) {
        try FileSystem.rename(joinPath(staging, name), to: joinPath(outbox, name))
    }
    let folder = joinPath(agents.remoteFolder!, "alice->bob")
    #expect(eventually(timeout: 60) { ((try? FileSystem.contents(of: folder)) ?? []).count >= delivered })
    alice.signal(SIGKILL)
    alice.wait()
    let finish = try agents.once("alice")
    #expect(finish.status == 0, "\(finish.stderr.suffix(2000))")
    let names = try FileSystem.contents(of: folder)
    #expect(names.count == 500, "\(names.filter { $0.hasPrefix(".") || $0.contains(" (") })")
    for name in names { #expect(read(joinPath(folder, name)) == expected[name], "\(name)") }
}

/// Creates a file whose name is `name`'s bytes, which need not be UTF-8, in `folder`.
func createFile(namedBytes name: [UInt8], in folder: String, contents: String = "x") throws {
    let path = Array(folder.utf8) + [UInt8(ascii: "/")] + name + [0]
    let descriptor = path.withUnsafeBufferPointer { bytes in
        bytes.withMemoryRebound(to: CChar.self) { Glibc.open($0.baseAddress!, O_WRONLY | O_CREAT | O_EXCL, 0o644) }
    }
    guard descriptor >= 0 else { throw SystemError(call: "open", path: FileSystem.escapedName(name), errno: errno) }
    defer { close(descriptor) }
    #expect(Glibc.write(descriptor, contents, contents.utf8.count) == contents.utf8.count)
}

/// `na\xEFve.txt` in alice's outbox and `caf\xE9.txt` on the drop, Latin-1 names that are not
/// UTF-8: each side says once, with the name escaped, that it cannot take the file, and leaves it
/// where it is; the files beside them go through.
func checkNamesThatAreNotUTF8AreSaidAndLeft(_ agents: TwoAgents) throws {
    let outbox = agents.outbox("alice", to: "bob")
    try FileSystem.createDirectories(outbox)
    try createFile(namedBytes: Array("na".utf8) + [0xEF] + Array("ve.txt".utf8), in: outbox)
    try write(joinPath(outbox, "plain.txt"), "p")
    let sent = try agents.once("alice")
    #expect(sent.stderr.contains("name is not UTF-8, so the file cannot be sent: left in the outbox; rename it"),
            "\(sent.stderr)")
    #expect(sent.stderr.contains("spool.path=\(outbox)/na\\xEFve.txt"), "\(sent.stderr)")
    #expect(try FileSystem.listing(of: outbox).notText == ["na\\xEFve.txt"])

    let folder = joinPath(agents.remoteFolder ?? agents.drop, "alice->bob")
    try createFile(namedBytes: Array("caf".utf8) + [0xE9] + Array(".txt".utf8), in: folder)
    if let remoteFolder = agents.remoteFolder { try chown(remoteFolder) }
    let received = try agents.once("bob")
    #expect(received.stderr.contains("remote name is not UTF-8, so it cannot be received: left on the remote"),
            "\(received.stderr)")
    #expect(received.stderr.contains("alice->bob/caf\\xE9.txt"), "\(received.stderr)")
    #expect(read(joinPath(agents.inbox("bob", from: "alice"), "plain.txt")) == Array("p".utf8))
    #expect(try FileSystem.listing(of: folder) == (names: [], notText: ["caf\\xE9.txt"]))
}
