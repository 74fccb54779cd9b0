import ArgumentParser
import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSpool
import ConnectXpertSystem
import Foundation

struct SendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Queue files for a recipient by placing them in its outbox folder atomically.",
        discussion: """
            Each file is copied under a temporary name and renamed into outbox/<recipient>/, so the agent \
            never sees half a file. A name already waiting becomes "name (1).ext". With --wait the command \
            shows progress until the running agent has delivered every file.
            """)

    @Argument(help: "The files to send.")
    var files: [String]

    @Option(name: .long, help: "The recipient's ID.")
    var to: String

    @Flag(name: .long, help: "Wait until the files are delivered, with a progress bar.")
    var wait = false

    @OptionGroup var policyOptions: PolicyOptions

    func validate() throws {
        if let problem = Names.problem(withComponent: to) {
            throw ValidationError("'\(Names.printable(to))' cannot be a recipient: \(problem)")
        }
    }

    func run() throws {
        let policy = try policyOptions.load()
        let spool = Spool(root: policy.spool)
        let folder = spool.outbox(for: to)
        guard let rule = policy.outboxRule(for: to) else {
            throw fail("no outbox rule in \(policy.sourceFile) covers recipient '\(to)'", .config)
        }
        var placed: [(name: String, since: Double)] = []
        for file in files {
            guard let status = try? FileSystem.status(file), status.kind == .regular else {
                throw fail("\(file) is not a regular file", .noInput)
            }
            do {
                try FileSystem.createDirectories(folder)
                let name = try place(file, into: folder)
                placed.append((name, Date().timeIntervalSince1970 - 1))
                print("queued \(file) for \(to) as \(joinPath(folder, name))")
            } catch {
                throw fail("cannot queue \(file): \(error)", .cantCreate)
            }
        }
        guard wait else { return }
        guard AgentLock.holder(path: spool.lock) != nil else {
            throw fail("no agent is running on \(spool.root); the files wait in the outbox until 'connectxpert run' starts", .unavailable)
        }
        try waitForDelivery(placed, remote: rule.remote, spool: spool)
    }

    /// Copies `file` to a temporary name in `folder`, then renames it to a free name; returns that name.
    private func place(_ file: String, into folder: String) throws -> String {
        let name = lastComponent(of: file)
        let temporary = joinPath(folder, ".\(name).send-\(getpid()).tmp")
        try FileSystem.removeIfPresent(temporary)
        try FileSystem.copyFile(file, to: temporary)
        var candidate = name
        var number = 0
        while true {
            do {
                try FileSystem.renameNoReplace(temporary, to: joinPath(folder, candidate))
                try FileSystem.syncDirectory(folder)
                return candidate
            } catch let error as SystemError where error.isAlreadyExists {
                number += 1
                candidate = Names.alternative(to: name, number: number)
            }
        }
    }

    private func waitForDelivery(_ placed: [(name: String, since: Double)], remote: String, spool: Spool) throws {
        let journal = try Journal(path: spool.journal)
        let bar = ProgressBar()
        var failures: [String] = []
        for (name, since) in placed {
            while true {
                let record = try journal.latest(.outgoing, remote: remote, peer: to, source: name)
                    .flatMap { $0.started >= since ? $0 : nil }
                if let record, record.state == .done {
                    bar.finish(name, bytes: record.size)
                    break
                }
                if let record, record.state == .failed {
                    bar.clear()
                    failures.append("\(name): \(record.lastError ?? "failed")")
                    break
                }
                guard AgentLock.holder(path: spool.lock) != nil else {
                    bar.clear()
                    throw fail("the agent on \(spool.root) stopped before \(name) was delivered; it waits in the "
                               + "outbox until 'connectxpert run' starts", .unavailable)
                }
                bar.show(name, done: record?.bytesDone ?? 0, total: record?.size ?? 0, note: record?.lastError)
                usleep(100_000)
            }
        }
        if !failures.isEmpty {
            throw fail("not delivered: " + failures.joined(separator: "; "), .dataError)
        }
    }
}

/// A one-line progress bar on standard error.
final class ProgressBar {
    private var started = Date()
    private var current = ""

    func show(_ name: String, done: Int64, total: Int64, note: String?) {
        if name != current {
            current = name
            started = Date()
        }
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 0
        let width = 30
        let filled = Int(fraction * Double(width))
        let rate = Double(done) / max(0.001, Date().timeIntervalSince(started))
        var line = "\r\(name) [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
        line += String(format: " %3.0f%% %@/s", fraction * 100, ByteSize(bytes: Int64(rate)).description)
        if let note { line += " (retrying: \(note))" }
        FileHandle.standardError.write(Data((line + "\u{1B}[K").utf8))
    }

    func finish(_ name: String, bytes: Int64) {
        clear()
        print("delivered \(name) (\(ByteSize(bytes: bytes)))")
    }

    func clear() {
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
