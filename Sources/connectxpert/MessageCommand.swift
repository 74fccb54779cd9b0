import ArgumentParser
import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSeal
import ConnectXpertSpool
import ConnectXpertSystem
import Foundation

struct MessageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "message",
        abstract: "Short texts sealed to a peer and signed by us, waiting on the drop until the peer comes online.",
        subcommands: [MessageSendCommand.self, MessageListCommand.self, MessageReadCommand.self])
}

struct MessageSendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Queue a message for a peer: the agent seals it and puts it on the drop.",
        discussion: """
            The words given are the text, joined by spaces; with - it is read from standard input (UTF-8, at \
            most 64 KiB). The message is queued in the spool at once, whether or not the peer is online; the \
            running agent sends it at once, 'run --once' on its next pass.
            """)

    @Option(name: .long, help: "The peer's ID.") var to: String
    @Argument(help: ArgumentHelp("The text, or - to read it from standard input.", valueName: "text"))
    var words: [String] = []
    @OptionGroup var policyOptions: PolicyOptions

    func validate() throws {
        if let problem = Names.problem(withComponent: to) {
            throw ValidationError("'\(Names.printable(to))' cannot be a recipient: \(problem)")
        }
        if words.isEmpty { throw ValidationError("give the text, or - to read it from standard input") }
    }

    func run() throws {
        let policy = try policyOptions.load()
        guard policy.outboxRule(for: to) != nil else {
            throw fail("no outbox rule in \(policy.sourceFile) covers recipient '\(to)'", .config)
        }
        let text = try self.text()
        guard !text.isEmpty else { throw fail("the message is empty; nothing was queued", .dataError) }
        guard text.utf8.count <= SealedMessage.textLimit else {
            throw fail("the message is \(text.utf8.count) bytes, more than the \(SealedMessage.textLimit) a message "
                       + "may hold; send it as a file instead", .dataError)
        }
        let spool = Spool(root: policy.spool)
        do {
            try spool.queue(QueuedMessage(to: to, text: text, time: Date().timeIntervalSince1970))
        } catch {
            throw fail("cannot queue the message in \(spool.messageOutbox): \(error)", .cantCreate)
        }
        print("queued a message for \(to) (\(text.utf8.count) bytes)")
    }

    private func text() throws -> String {
        guard words == ["-"] else { return words.joined(separator: " ") }
        let bytes = FileHandle.standardInput.readDataToEndOfFile()
        guard bytes.count <= SealedMessage.textLimit else {
            throw fail("the message is more than the \(SealedMessage.textLimit) bytes a message may hold; send it as a "
                       + "file instead", .dataError)
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw fail("the message is not UTF-8 text; nothing was queued", .dataError)
        }
        return text.hasSuffix("\n") ? String(text.dropLast()) : text
    }
}

/// How the message commands show a message: its number, local time, who to whom, whether it is
/// unread, what is known of its signature, and its text (or first line).
struct MessageLines {
    let us: String
    private let formatter: DateFormatter

    init(us: String) {
        self.us = us
        formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm"
        formatter.locale = Locale(identifier: "en_US_POSIX")
    }

    /// `number`: what stands for the message's number (one the agent has not taken yet has none).
    func heading(_ message: StoredMessage, number: String? = nil) -> String {
        let (from, to) = message.direction == .outgoing ? (us, message.peer) : (message.peer, us)
        let time = formatter.string(from: Date(timeIntervalSince1970: message.time))
        let unread = message.unread ? "N" : " "
        return "\(number ?? String(message.id))  \(time)  \(from) → \(to)  \(unread)  \(Self.standing(message))"
    }

    func line(_ message: StoredMessage, number: String? = nil) -> String {
        let first = message.text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let shown = first.count > 60 ? first.prefix(59) + "…" : first
        return heading(message, number: number) + "  " + terminalText(String(shown))
    }

    /// What is known of who wrote it: ours queued or sent; theirs verified (signed by a key a person
    /// trusted), unverified (a key pinned on first sight) or held (a key not pinned).
    static func standing(_ message: StoredMessage) -> String {
        switch message.state {
        case .queued, .staged: message.lastError.map { "queued (waiting: \($0))" } ?? "queued"
        case .sent: "sent"
        case .held: "held (key not pinned)"
        case .delivered: message.trust == .verified ? "verified" : "unverified (key accepted on first sight)"
        }
    }

    func whole(_ message: StoredMessage) -> String {
        heading(message) + "\n" + terminalText(message.text, multiline: true) + "\n"
    }
}

struct MessageListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "One line per message, both ways, oldest first.")

    @Option(help: ArgumentHelp("Only the conversation with this peer.", valueName: "ID")) var peer: String?
    @Flag(help: "Only the unread messages.") var unread = false
    @Flag(help: "Only the messages held because their sender's key is not pinned.") var held = false
    @Option(help: ArgumentHelp("Only the last N.", valueName: "N")) var limit: Int?
    @OptionGroup var policyOptions: PolicyOptions

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        let policy = try policyOptions.load()
        let spool = Spool(root: policy.spool)
        let journal = try openJournal(spool.journal)
        let messages = try journal.messages(with: peer, unread: unread, held: held, limit: limit)
        let waiting = unread || held ? [] : try spool.queuedMessages().messages.filter {
            peer == nil || $0.message.to == peer
        }
        guard !messages.isEmpty || !waiting.isEmpty else {
            print(held ? "no message is held" : unread ? "no unread message" : "no message")
            return
        }
        let lines = MessageLines(us: policy.identity.id)
        for message in messages { print(lines.line(message)) }
        for (_, queued) in waiting {
            print(lines.line(StoredMessage(id: 0, direction: .outgoing, peer: queued.to, time: queued.time,
                                           text: queued.text, state: .queued, unread: false), number: "-"))
        }
        if held {
            print("a held message is shown once its sender's key is pinned: connectxpert peer trust ID")
        }
    }
}

struct MessageReadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read", abstract: "Print a message whole, or a whole conversation, and mark it read.")

    @Argument(help: ArgumentHelp("The message's number in 'message list'.", valueName: "N")) var number: Int64?
    @Option(help: ArgumentHelp("Print the conversation with this peer.", valueName: "ID")) var peer: String?
    @OptionGroup var policyOptions: PolicyOptions

    func validate() throws {
        if (number == nil) == (peer == nil) { throw ValidationError("give a message's number, or --peer ID") }
    }

    func run() throws {
        let policy = try policyOptions.load()
        let journal = try openJournal(Spool(root: policy.spool).journal)
        let messages: [StoredMessage]
        if let number {
            guard let message = try journal.message(number), message.state != .held else {
                throw fail("there is no message \(number); see connectxpert message list", .noInput)
            }
            messages = [message]
        } else {
            messages = try journal.messages(with: peer)
            if messages.isEmpty { print("no message with \(peer ?? "")") }
        }
        let lines = MessageLines(us: policy.identity.id)
        print(messages.map(lines.whole).joined(separator: "\n"), terminator: "")
        try journal.markRead(messages.filter(\.unread).map(\.id))
    }
}
