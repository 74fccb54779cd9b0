import ArgumentParser
import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSpool
import ConnectXpertSystem
import Foundation

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "A live view of the conversation with a peer: its history, then messages as they come; "
            + "each line typed is sent.",
        discussion: """
            While the view is open the running agent looks at the peer's folder every second. Ctrl-D (or \
            Ctrl-C) ends it. Messages typed while no agent runs wait in the spool until one does.
            """)

    @Argument(help: "The peer's ID.") var peer: String
    @OptionGroup var policyOptions: PolicyOptions

    func validate() throws {
        if let problem = Names.problem(withComponent: peer) {
            throw ValidationError("'\(Names.printable(peer))' cannot be a peer: \(problem)")
        }
    }

    func run() throws {
        let policy = try policyOptions.load()
        guard policy.outboxRule(for: peer) != nil else {
            throw fail("no outbox rule in \(policy.sourceFile) covers recipient '\(peer)'", .config)
        }
        let spool = Spool(root: policy.spool)
        try spool.createLayout()
        let journal = try openJournal(spool.journal)
        let changes = try FolderChanges(spool.state)
        let request = try spool.requestChatPolling(with: peer)
        defer { _ = try? FileSystem.removeIfPresent(request) }
        say("chat with \(peer): \(try keyStanding(journal)); Ctrl-D ends it")
        if AgentLock.holder(path: spool.lock) == nil {
            say("no agent runs on \(spool.root): what you write waits until 'connectxpert run' starts")
        }
        let view = ChatView(us: policy.identity.id, peer: peer, journal: journal)
        try view.showNew()
        var typed: [UInt8] = []
        while true {
            let ready = try waitUntilReadable([FileHandle.standardInput.fileDescriptor, changes.rawValue])
            if ready[1] {
                changes.drain()
                try view.showNew()
            }
            guard ready[0] else { continue }
            let input = FileHandle.standardInput.availableData
            typed += input
            while let end = typed.firstIndex(of: 10) {
                try queue(String(decoding: typed[..<end], as: UTF8.self), in: spool)
                typed.removeSubrange(...end)
            }
            if input.isEmpty {
                try queue(String(decoding: typed, as: UTF8.self), in: spool)
                return
            }
        }
    }

    private func queue(_ line: String, in spool: Spool) throws {
        guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { return }
        try spool.queue(QueuedMessage(to: peer, text: line, time: Date().timeIntervalSince1970))
    }

    /// What is known of the peer's key: verified, pinned on first sight, changed, or not pinned.
    private func keyStanding(_ journal: Journal) throws -> String {
        guard let pin = try journal.peer(peer) else {
            return "\(peer)'s key is not pinned: its messages are held and yours wait; compare fingerprints, then run "
                + "connectxpert peer trust \(peer)"
        }
        if let changed = pin.changedFingerprint {
            return "\(peer)'s KEY CHANGED (pinned \(pin.fingerprint), now \(changed)): nothing goes either way until "
                + "you compare it with \(peer) and run connectxpert peer trust \(peer) --replace"
        }
        return pin.trust == .verified ? "key \(pin.fingerprint), verified"
            : "key \(pin.fingerprint), UNVERIFIED (accepted on first sight): compare it with "
                + "connectxpert peer show \(peer)"
    }
}

/// The conversation as the chat view prints it: one line per message, `HH:mm  who: text`, with
/// what is not verified said, and the lines after a message's first indented.
final class ChatView {
    let us: String
    let peer: String
    let journal: Journal
    private let formatter: DateFormatter
    /// The last message shown.
    private var shown: Int64 = 0

    init(us: String, peer: String, journal: Journal) {
        self.us = us
        self.peer = peer
        self.journal = journal
        formatter = DateFormatter()
        formatter.dateFormat = "HH:mm"
        formatter.locale = Locale(identifier: "en_US_POSIX")
    }

    /// Prints the messages not shown yet, and marks those received read.
    func showNew() throws {
        let messages = try journal.messages(with: peer, after: shown)
        guard let last = messages.last else { return }
        for message in messages {
            let who = message.direction == .outgoing ? us : peer
            let note = message.direction == .incoming && message.trust != .verified ? " (unverified)" : ""
            let lines = terminalText(message.text, multiline: true)
                .split(separator: "\n", omittingEmptySubsequences: false)
            say("\(formatter.string(from: Date(timeIntervalSince1970: message.time)))  \(who)\(note): "
                + lines.joined(separator: "\n       "))
        }
        shown = last.id
        try journal.markRead(messages.filter(\.unread).map(\.id))
    }
}

/// Prints a line at once, even when standard output is not a terminal.
private func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
