import ArgumentParser
import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSpool
import ConnectXpertSystem
import Foundation

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the queue per recipient, transfers in progress, and what waits for a retry.")

    @OptionGroup var policyOptions: PolicyOptions

    func run() throws {
        let policy = try policyOptions.load()
        let spool = Spool(root: policy.spool)
        let running = AgentLock.holder(path: spool.lock).map { "running (pid \($0))" } ?? "not running"
        print("Spool \(spool.root): agent '\(policy.identity.agent)' of '\(policy.identity.id)', \(running)")

        print("\nOutbox:")
        var byRecipient: [String: (files: Int, bytes: Int64)] = [:]
        for case .file(let entry) in IteratorSequence(spool.walkOutbox()) {
            byRecipient[entry.recipient, default: (0, 0)].files += 1
            byRecipient[entry.recipient, default: (0, 0)].bytes += entry.size
        }
        if byRecipient.isEmpty { print("  empty") }
        for (recipient, waiting) in byRecipient.sorted(by: { $0.key < $1.key }) {
            let rule = policy.outboxRule(for: recipient).map { "to \($0.remote)" } ?? "no rule covers this recipient"
            let files = "\(waiting.files) file\(waiting.files == 1 ? "" : "s")"
            print("  \(recipient): \(files), \(ByteSize(bytes: waiting.bytes)) (\(rule))")
        }

        let unfinished = FileSystem.exists(spool.journal) ? try openJournal(spool.journal).unfinished() : []
        let now = Date().timeIntervalSince1970
        let retrying = unfinished.filter { $0.nextAttempt != nil || $0.lastError != nil }
        let moving = unfinished.filter { $0.state == .transferring && $0.lastError == nil }
        print("\nIn progress:")
        if moving.isEmpty { print("  nothing") }
        for record in moving {
            let rate = Double(record.bytesDone) / max(0.001, record.updated - record.started)
            let percent = record.size > 0 ? Int(Double(record.bytesDone) * 100 / Double(record.size)) : 100
            print("  \(describe(record)): \(ByteSize(bytes: record.bytesDone)) of \(ByteSize(bytes: record.size)) (\(percent)%), \(ByteSize(bytes: Int64(rate)))/s")
        }
        print("\nWaiting to retry:")
        if retrying.isEmpty { print("  nothing") }
        for record in retrying {
            let next = record.nextAttempt.map { $0 > now ? "next try in \(TimeSpan(seconds: $0 - now))" : "next try now" } ?? "next try on the next pass"
            print("  \(describe(record)): attempt \(record.attempts), \(next); last error: \(record.lastError ?? "none")")
        }
        let registrations = FileSystem.exists(spool.journal) ? try openJournal(spool.journal).registrations() : []
        if !registrations.isEmpty { print("\nKey card (\(policy.identity.id)):") }
        for registration in registrations {
            switch registration.state {
            case .published: print("  \(registration.remote): published, \(registration.fingerprint)")
            case .taken:
                print("  \(registration.remote): ID TAKEN by another key \(registration.otherFingerprint ?? "?") "
                      + "(ours \(registration.fingerprint)); nothing is sent sealed there")
            }
        }
        let refused = FileSystem.exists(spool.journal) ? try openJournal(spool.journal).refusedSealed(limit: 20) : []
        if !refused.isEmpty { print("\nRefused sealed objects (kept aside on the drop):") }
        for record in refused {
            print("  \(record.remote):\(record.source) from \(record.peer): \(record.lastError ?? "refused")")
        }
        let reasons = FileManager.default.enumerator(atPath: spool.failed)?.allObjects
            .compactMap { $0 as? String }.filter { $0.hasSuffix(".reason") }.count ?? 0
        if reasons > 0 {
            print("\nFailed: \(reasons) file\(reasons == 1 ? "" : "s") in \(spool.failed) (each with a .reason)")
        }
    }

    private func describe(_ record: TransferRecord) -> String {
        switch record.direction {
        case .outgoing: return "\(record.peer)/\(record.source) -> \(record.remote)"
        case .incoming: return "\(record.remote):\(record.source) from \(record.peer)"
        }
    }
}

struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "List finished transfers, newest first.")

    @OptionGroup var policyOptions: PolicyOptions

    @Option(name: .long, help: "How many transfers to list.")
    var limit = 20

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        let policy = try policyOptions.load()
        let spool = Spool(root: policy.spool)
        guard FileSystem.exists(spool.journal) else {
            print("no transfers yet")
            return
        }
        let records = try openJournal(spool.journal).history(limit: limit)
        if records.isEmpty { print("no transfers yet") }
        let formatter = ISO8601DateFormatter()
        for record in records {
            let when = formatter.string(from: Date(timeIntervalSince1970: record.updated))
            let size = ByteSize(bytes: record.size)
            switch (record.direction, record.state) {
            case (.outgoing, .done):
                print("\(when)  sent      \(record.peer)/\(record.source) -> \(record.remote):\(record.destination ?? "?")  \(size)")
            case (.incoming, .done):
                print("\(when)  received  \(record.remote):\(record.source) -> \(record.destination ?? "?")  \(size)")
            default:
                print("\(when)  failed    \(record.direction == .outgoing ? "\(record.peer)/" : "\(record.remote):")\(record.source): \(record.lastError ?? "unknown error")")
            }
        }
    }
}
