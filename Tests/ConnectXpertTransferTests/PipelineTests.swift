import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTestSupport
import ConnectXpertTransport
import Foundation
import Logging
import Synchronization
import Testing

@testable import ConnectXpertTransfer

/// An agent on a spool of its own whose remotes (`drop`, and `other` for a policy change) are
/// scripted, so that every branch of both pipelines can be reached in-process.
private final class Rig {
    let folder: String
    let drop = ScriptedRemote()
    let other = ScriptedRemote()
    let agent: Agent

    /// - Parameters:
    ///   - outbox, inbox: lines added to the outbox and inbox rules (`conflict: fail`).
    ///   - giveUpAfter: the rules' `give_up_after`.
    ///   - syncFolder: the agent's folder fsync.
    init(mode: RunMode = .batch, outbox: [String] = [], inbox: [String] = [], giveUpAfter: String = "1h",
         syncFolder: @escaping @Sendable (String) throws -> Void = FileSystem.syncDirectory) throws {
        folder = NSTemporaryDirectory() + "cx-pipeline-" + UUID().uuidString
        try FileSystem.createDirectories(folder)
        let (drop, other) = (self.drop, self.other)
        let policy = try Rig.policy(folder, remote: "drop", outbox: outbox, inbox: inbox, giveUpAfter: giveUpAfter)
        agent = try Agent(policy: policy, mode: mode,
                          logger: Logger(label: "test"), connect: { remote in
            try (remote.name == "drop" ? drop : other).connect(remote)
        }, syncFolder: syncFolder)
    }

    /// One remote connection at a time, so that the files waiting go in the batch of the one running.
    static func policy(_ folder: String, remote: String, outbox: [String] = [], inbox: [String] = [],
                       giveUpAfter: String = "1h") throws -> Policy {
        let text = """
            identity:
              id: alice
            spool: \(folder)/spool
            remotes:
              drop:
                url: file://\(folder)/drop
                max_connections: 1
              other:
                url: file://\(folder)/other
                max_connections: 1
            outbox:
              - recipients: ["*"]
                remote: \(remote)
                remote_path: "{sender}->{recipient}/{path}"
                retry: {initial: 50ms, max: 50ms, give_up_after: \(giveUpAfter)}

            """ + outbox.map { "    \($0)\n" }.joined() + """
            inbox:
              - remote: drop
                senders: ["*"]
                remote_folder: "{sender}->{recipient}"
                destination: "{spool}/inbox/{sender}"
                stable_for: 0s
                retry: {initial: 50ms, max: 50ms, give_up_after: \(giveUpAfter)}

            """ + inbox.map { "    \($0)\n" }.joined()
        return try PolicyLoader.parse(text, file: folder + "/policies.yaml")
    }

    deinit {
        agent.shutdown()
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// Puts a file in the outbox for bob, as a user would.
    func drop(_ name: String, _ text: String = "hello") throws {
        try FileSystem.createDirectories(agent.spool.outbox(for: "bob"))
        try FileSystem.writeFileAtomically(joinPath(agent.spool.outbox(for: "bob"), name), contents: Array(text.utf8))
    }

    /// Sends what the outbox holds, in one batch pass.
    func send() {
        agent.scanOutbox()
        agent.waitUntilIdle()
    }

    /// Receives what the drop holds for alice, in one batch pass.
    func receive() {
        agent.pollInboxes()
        agent.waitUntilIdle()
    }

    /// Puts a file of ours in bob's inbox folder, where a received one may conflict with it.
    func keep(_ name: String, _ text: String) throws {
        try FileSystem.createDirectories(joinPath(agent.spool.root, "inbox/bob"))
        try FileSystem.writeFileAtomically(joinPath(agent.spool.root, "inbox/bob", name), contents: Array(text.utf8))
    }

    func outbox(_ name: String) -> String? { text(joinPath(agent.spool.outbox(for: "bob"), name)) }
    func inbox(_ name: String) -> String? { text(joinPath(agent.spool.root, "inbox/bob", name)) }
    func failed(_ name: String) -> String? { text(joinPath(agent.spool.failed, "bob", name)) }
    func reason(_ name: String) -> String? { failed(name + ".reason") }

    private func text(_ path: String) -> String? {
        (try? FileSystem.readFile(path)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The journal's records of files, newest first.
    var records: [TransferRecord] {
        let all = ((try? agent.journal.unfinished()) ?? []) + ((try? agent.journal.history(limit: 100)) ?? [])
        return all.sorted { $0.id > $1.id }
    }
}

private let transient = TransportError(.transient, "connection reset")

@Suite struct OutgoingPipelineTests {
    /// A file is uploaded under a temporary name, renamed to its final name, then deleted locally.
    @Test func aFileIsUploadedUnderATemporaryNameThenRenamed() throws {
        let rig = try Rig()
        try rig.drop("a.txt")
        rig.send()
        #expect(rig.drop.text("alice->bob/a.txt") == "hello")
        #expect(rig.drop.files.count == 1)
        #expect(rig.drop.calls.filter { $0.hasPrefix("upload") || $0.hasPrefix("rename") }.map { $0.prefix(6) }
                == ["upload", "rename"])
        #expect(rig.outbox("a.txt") == nil)
        #expect(rig.agent.tally == Tally(sent: 1))
        #expect(rig.records.map(\.state) == [.done])
    }

    /// `conflict: rename` (the default) gives the file the next free name.
    @Test func aConflictIsRenamedAround() throws {
        let rig = try Rig()
        rig.drop.put("alice->bob/a.txt", "theirs")
        rig.drop.put("alice->bob/a (1).txt", "theirs too")
        try rig.drop("a.txt")
        rig.send()
        #expect(rig.drop.text("alice->bob/a.txt") == "theirs")
        #expect(rig.drop.text("alice->bob/a (2).txt") == "hello")
        #expect(rig.records.first?.destination == "alice->bob/a (2).txt")
    }

    @Test func aConflictIsOverwritten() throws {
        let rig = try Rig(outbox: ["conflict: overwrite"])
        rig.drop.put("alice->bob/a.txt", "theirs")
        try rig.drop("a.txt")
        rig.send()
        #expect(rig.drop.text("alice->bob/a.txt") == "hello")
        #expect(rig.drop.files.count == 1)
    }

    /// `conflict: fail` leaves the remote file alone, removes the upload and moves ours to `failed/`.
    @Test func aConflictFails() throws {
        let rig = try Rig(outbox: ["conflict: fail"])
        rig.drop.put("alice->bob/a.txt", "theirs")
        try rig.drop("a.txt")
        rig.send()
        #expect(rig.drop.files == ["alice->bob/a.txt": rig.drop.files["alice->bob/a.txt"]!])
        #expect(rig.drop.text("alice->bob/a.txt") == "theirs")
        #expect(rig.failed("a.txt") == "hello")
        #expect(rig.reason("a.txt")?.contains("exists already and the rule says conflict: fail") == true)
        #expect(rig.agent.tally == Tally(failed: 1))
        #expect(rig.records.map(\.state) == [.failed])
    }

    /// A transient error in the upload or in the rename leaves the file for the next pass, its
    /// attempt counted; the next pass sends it.
    @Test(arguments: [ScriptedRemote.Operation.upload, .rename])
    func aTransientErrorIsLeftForTheNextPass(in operation: ScriptedRemote.Operation) throws {
        let rig = try Rig()
        rig.drop.fail(operation, with: transient)
        try rig.drop("a.txt")
        rig.send()
        #expect(rig.agent.tally == Tally(deferred: 1))
        #expect(rig.outbox("a.txt") == "hello")
        #expect(rig.records.map(\.attempts) == [1])
        #expect(rig.records.first?.lastError == "connection reset")
        #expect(rig.drop.files.keys.allSatisfy { !$0.hasPrefix("alice->bob/") })
        rig.send()
        #expect(rig.drop.text("alice->bob/a.txt") == "hello")
        #expect(rig.agent.tally == Tally(sent: 1, deferred: 1))
    }

    /// In the daemon a transient failure is retried after the rule's pause, on the scheduler's wait.
    @Test func theDaemonRetriesAfterThePause() throws {
        let rig = try Rig(mode: .daemon)
        rig.drop.fail(.upload, with: transient, times: 2)
        try rig.drop("a.txt")
        rig.send()
        #expect(rig.drop.text("alice->bob/a.txt") == "hello")
        #expect(rig.agent.tally == Tally(sent: 1))
        #expect(rig.records.first?.attempts == 2)
    }

    /// Past `give_up_after`, a transient failure is given up: the file goes to `failed/`.
    @Test func aTransientFailureIsGivenUpAfterItsTime() throws {
        let rig = try Rig(mode: .daemon, giveUpAfter: "0s")
        rig.drop.fail(.upload, with: transient, times: 100)
        try rig.drop("a.txt")
        rig.send()
        #expect(rig.reason("a.txt")?.contains("gave up after 0ms of failed attempts; the last error: connection reset")
                == true)
        #expect(rig.agent.tally == Tally(failed: 1))
    }

    /// A permanent error (the server's "permission denied") moves the file to `failed/` at once.
    @Test func aPermanentErrorMovesTheFileToFailed() throws {
        let rig = try Rig(mode: .daemon)
        rig.drop.fail(.upload, with: TransportError(.permanent, "permission denied"))
        try rig.drop("a.txt")
        rig.send()
        #expect(rig.reason("a.txt")?.contains("permission denied") == true)
        #expect(rig.agent.tally == Tally(failed: 1))
    }

    /// A refusal (a changed host key) keeps the file waiting and the remote untouched until a reload.
    @Test func aRefusalKeepsTheFileWaiting() throws {
        let rig = try Rig(mode: .daemon)
        rig.drop.fail(.connect, with: TransportError(.refused, "host key changed"))
        try rig.drop("a.txt")
        try rig.drop("b.txt")
        rig.send()
        #expect(rig.agent.tally == Tally(refused: 2))
        #expect(rig.drop.calls == ["connect drop"], "the second file does not connect again")
        #expect(rig.outbox("a.txt") == "hello" && rig.outbox("b.txt") == "hello")
        rig.agent.forgetRefusals()
        rig.send()
        #expect(rig.agent.tally.sent == 2)
    }

    /// A delivered file whose after-step fails is counted sent and never sent again.
    @Test func aFailedAfterStepDoesNotSendTwice() throws {
        let rig = try Rig(outbox: ["after: archive"])
        let sent = joinPath(rig.agent.spool.root, "sent")
        try FileManager.default.removeItem(atPath: sent)
        try FileSystem.writeFileAtomically(sent, contents: [])  // a file where the folder should be: archive fails
        try rig.drop("a.txt")
        rig.send()
        #expect(rig.agent.tally == Tally(sent: 1))
        #expect(rig.records.map(\.state) == [.delivered])
        rig.send()
        #expect(rig.drop.calls.filter { $0.hasPrefix("upload") }.count == 1)
    }

    /// In a batch, a file whose upload fails is left for later; the others are sent.
    @Test func aBatchWithAFailingFile() throws {
        let rig = try Rig()
        let queued = DispatchSemaphore(value: 0)
        let drop = rig.drop
        drop.before(.upload) {
            queued.wait()  // until b and c wait in the queue, to be taken into this batch
            drop.before(.upload) { drop.fail(.upload, with: transient) }  // the second upload fails
        }
        for name in ["a.txt", "b.txt", "c.txt"] { try rig.drop(name) }
        rig.agent.scanOutbox()
        queued.signal()
        rig.agent.waitUntilIdle()
        #expect(rig.agent.tally == Tally(sent: 2, deferred: 1))
        rig.send()
        #expect(Set(rig.drop.files.keys) == ["alice->bob/a.txt", "alice->bob/b.txt", "alice->bob/c.txt"])
    }

    /// However many files wait, at most `OutboxFeed.window` of them are jobs at once: the walk of the
    /// outbox queues more as they are sent. A file the watcher reports while the window is full is
    /// left to a scan of its folder, after the walk.
    @Test func theOutboxIsQueuedAWindowAtATime() throws {
        let rig = try Rig()
        let window = OutboxFeed.window
        for index in 0..<window { try rig.drop("f\(index)") }
        let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        rig.drop.before(.upload) {
            started.signal()
            release.wait()
        }
        rig.agent.scanOutbox()
        started.wait()
        #expect(rig.agent.scheduler.backlog(of: OutboxFile.self) == window - 1, "the walk queued the window")
        for name in ["late 1", "late 2"] {
            try rig.drop(name)
            rig.agent.enqueueSend(recipient: "bob", path: name)
        }
        #expect(rig.agent.scheduler.backlog(of: OutboxFile.self) == window, "the second late file was not queued")
        release.signal()
        rig.agent.waitUntilIdle()
        #expect(rig.agent.tally == Tally(sent: window + 2))
        #expect(rig.drop.files.count == window + 2)
    }

    /// A file taken into a batch after the policy moved its recipient to another remote is not sent
    /// over the batch's connection: it goes to the new remote.
    @Test func aPolicyReloadBetweenTakeAndStage() throws {
        let rig = try Rig()
        let queued = DispatchSemaphore(value: 0)
        let agent = rig.agent, folder = rig.folder
        rig.drop.before(.upload) {
            queued.wait()  // until b and c wait in the queue
            agent.replacePolicy(try! Rig.policy(folder, remote: "other"))
        }
        try rig.drop("a.txt")
        agent.enqueueSend(recipient: "bob", path: "a.txt")
        try rig.drop("b.txt")
        try rig.drop("c.txt")
        agent.enqueueSend(recipient: "bob", path: "b.txt")
        agent.enqueueSend(recipient: "bob", path: "c.txt")
        queued.signal()
        agent.waitUntilIdle()
        #expect(Set(rig.drop.files.keys) == ["alice->bob/a.txt"])
        #expect(Set(rig.other.files.keys) == ["alice->bob/b.txt", "alice->bob/c.txt"])
    }
}

@Suite struct IncomingPipelineTests {
    /// A listed file is downloaded, placed in the inbox, and only then deleted on the remote.
    @Test func aFileIsReceivedThenDeletedOnTheRemote() throws {
        let rig = try Rig()
        rig.drop.put("bob->alice/x.txt", "from bob")
        rig.receive()
        #expect(rig.inbox("x.txt") == "from bob")
        #expect(rig.drop.files.isEmpty)
        #expect(rig.agent.tally == Tally(received: 1))
        #expect(rig.records.map(\.state) == [.done])
    }

    @Test func aConflictIsRenamedAround() throws {
        let rig = try Rig()
        try rig.keep("x.txt", "ours")
        rig.drop.put("bob->alice/x.txt", "from bob")
        rig.receive()
        #expect(rig.inbox("x.txt") == "ours")
        #expect(rig.inbox("x (1).txt") == "from bob")
    }

    /// `conflict: fail` keeps the remote copy until the local file is moved away.
    @Test func aConflictFailsAndTheRemoteCopyStays() throws {
        let rig = try Rig(inbox: ["conflict: fail"])
        try rig.keep("x.txt", "ours")
        rig.drop.put("bob->alice/x.txt", "from bob")
        rig.receive()
        #expect(rig.inbox("x.txt") == "ours")
        #expect(rig.drop.text("bob->alice/x.txt") == "from bob")
        #expect(rig.agent.tally == Tally(failed: 1, failedDownloads: 1))
        #expect(rig.records.map(\.state) == [.failed])
    }

    /// A transient error in the download leaves the file on the remote for the next pass. (The
    /// listing's connection, pooled, fails first; the download is tried once more on a new one.)
    @Test func aTransientErrorIsLeftForTheNextPass() throws {
        let rig = try Rig()
        rig.drop.fail(.download, with: transient, times: 2)
        rig.drop.put("bob->alice/x.txt", "from bob")
        rig.receive()
        #expect(rig.agent.tally == Tally(deferred: 1))
        #expect(rig.inbox("x.txt") == nil)
        #expect(rig.drop.text("bob->alice/x.txt") == "from bob")
        rig.receive()
        #expect(rig.inbox("x.txt") == "from bob")
    }

    /// The daemon retries a download after the rule's pause; past `give_up_after` the file is left
    /// on the remote as failed.
    @Test func aDownloadIsRetriedThenGivenUp() throws {
        let rig = try Rig(mode: .daemon)
        rig.drop.fail(.download, with: transient, times: 2)
        rig.drop.put("bob->alice/x.txt", "from bob")
        rig.receive()
        #expect(rig.inbox("x.txt") == "from bob")
        #expect(rig.records.first?.attempts == 1)

        let giving = try Rig(mode: .daemon, giveUpAfter: "0s")
        giving.drop.fail(.download, with: transient, times: 100)
        giving.drop.put("bob->alice/x.txt", "from bob")
        giving.receive()
        #expect(giving.agent.tally == Tally(failed: 1, failedDownloads: 1))
        #expect(giving.drop.text("bob->alice/x.txt") == "from bob")
        #expect(giving.records.first?.lastError?.hasPrefix("gave up after 0ms") == true)
    }

    /// A file whose remote delete fails is received once: it stays under the name this agent took
    /// it by, and the next run deletes it without downloading it again.
    @Test func aFailedRemoteDeleteDoesNotReceiveTwice() throws {
        let rig = try Rig()
        rig.drop.fail(.delete, with: transient)
        rig.drop.put("bob->alice/x.txt", "from bob")
        rig.receive()
        #expect(rig.agent.tally == Tally(received: 1))
        let taken = try #require(rig.drop.files.keys.first)
        #expect(taken.hasPrefix("bob->alice/.x.txt.taken-") && rig.drop.text(taken) == "from bob")
        try rig.agent.recover()
        rig.agent.waitUntilIdle()
        #expect(rig.drop.files.isEmpty)
        #expect(rig.drop.calls.filter { $0.hasPrefix("download") }.count == 1)
        #expect(rig.inbox("x (1).txt") == nil)
    }

    /// When the fsync of the inbox folder fails, the batch's renames may not be durable: its files
    /// are not delivered yet and their remote copies stay, under the names this agent took them by.
    /// The next run finds them renamed, syncs the folder and deletes the remote copies, receiving
    /// each once.
    @Test func aFailedFolderSyncKeepsTheRemoteCopies() throws {
        let failures = Mutex(1)
        let rig = try Rig { folder in
            if failures.withLock({ $0 -= 1; return $0 >= 0 }) {
                throw SystemError(call: "fsync", path: folder, errno: EIO)
            }
            try FileSystem.syncDirectory(folder)
        }
        rig.drop.put("bob->alice/x.txt", "x")
        rig.drop.put("bob->alice/y.txt", "y")
        rig.receive()
        #expect(rig.agent.tally == Tally(deferred: 2))
        #expect(rig.drop.files.keys.map { $0.replacing(/\.taken-.*$/, with: ".taken") }.sorted()
                == ["bob->alice/.x.txt.taken", "bob->alice/.y.txt.taken"])
        try rig.agent.recover()
        rig.agent.waitUntilIdle()
        #expect(rig.agent.tally == Tally(received: 2, deferred: 2))
        #expect(rig.drop.files.isEmpty)
        #expect(rig.inbox("x.txt") == "x" && rig.inbox("y.txt") == "y")
        #expect(rig.inbox("x (1).txt") == nil && rig.drop.calls.filter { $0.hasPrefix("download") }.count == 2)
    }

    /// In a batch, a file whose download fails is left for later; the others are received.
    @Test func aBatchWithAFailingFile() throws {
        let rig = try Rig()
        for name in ["x.txt", "y.txt", "z.txt"] { rig.drop.put("bob->alice/" + name, name) }
        // Twice: a listing pass starts at a place of its own, and when y is the first of its batch, its
        // download is tried once more on a new connection (the pooled one may have gone stale).
        rig.drop.fail(.download, at: "y.txt", with: transient, times: 2)
        rig.receive()
        #expect(rig.agent.tally == Tally(received: 2, deferred: 1))
        #expect(rig.drop.files.keys.sorted() == ["bob->alice/y.txt"])
        rig.receive()
        #expect(rig.inbox("y.txt") == "y.txt")
    }
}
