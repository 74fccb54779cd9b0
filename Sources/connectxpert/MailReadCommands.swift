import ArgumentParser
import ConnectXpertDaemon
import ConnectXpertMail
import ConnectXpertPolicy
import ConnectXpertSpool
import ConnectXpertSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct MailFetchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "Fetch new mail from the mail.inbox mailboxes into their Maildirs now.",
        discussion: """
            With the agent running, asks it to (SIGUSR2) and returns. Otherwise fetches itself and exits \
            like 'run --once': 0, 75 when a server could not be reached, 77 when one refused the login \
            or TLS.
            """)

    @OptionGroup var policyOptions: PolicyOptions
    @OptionGroup var loggingOptions: LoggingOptions

    func run() throws {
        let logger = loggingOptions.bootstrap()
        let policy = try policyOptions.load()
        guard !policy.mail.inbox.isEmpty else {
            throw fail("no mailbox to fetch from: add mail.inbox to \(policy.sourceFile)", .config)
        }
        if try askRunningAgent(policy: policy, signal: SIGUSR2, to: "fetch mail now") { return }
        let (agent, mail, lock) = try startAgent(policy: policy, mode: .batch, logger: logger)
        defer { withExtendedLifetime(lock) {} }
        mail.fetch()
        try completeBatch(agent, mail) {
            "mail fetched \($0.mail.fetched)" + ($0.deferred > 0 ? ", to retry \($0.deferred)" : "")
                + ($0.refused > 0 ? ", refused \($0.refused)" : "")
        }
    }
}

/// Which Maildir the reading commands open.
struct MaildirOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The Maildir to read. Default: the first mail.inbox source's, else spool/mail/inbox.", valueName: "folder"))
    var maildir: String?

    @OptionGroup var policyOptions: PolicyOptions

    /// The Maildir and its messages in delivery order (numbered from 1 in that order).
    func open() throws -> (Maildir, [Maildir.Message]) {
        let path: String
        if let maildir {
            path = absolutePath(maildir, relativeTo: FileSystem.currentDirectory)
        } else {
            let policy = try policyOptions.load()
            path = policy.mail.inbox.first?.maildir ?? joinPath(policy.spool, "mail/inbox")
        }
        let box = Maildir(path: path)
        do {
            return (box, try box.messages())
        } catch let error as SystemError where error.isNotFound {
            return (box, [])
        } catch {
            throw fail("cannot read the Maildir \(path): \(error)", .noInput)
        }
    }

    /// Message `number` (from 1), or a clear error.
    func message(_ number: Int) throws -> (Maildir, Maildir.Message, MIMEPart) {
        let (box, messages) = try open()
        guard messages.indices.contains(number - 1) else {
            throw fail("there is no message \(number) in \(box.path) (it holds \(messages.count)); "
                + "'connectxpert mail list' shows their numbers", .noInput)
        }
        let message = messages[number - 1]
        do {
            let bytes = try FileSystem.readFile(message.path)
            return (box, message, MIMEPart(parsing: bytes[...]))
        } catch {
            throw fail("cannot read \(message.path): \(error)", .noInput)
        }
    }
}

struct MailListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the fetched mail: number, N for unread, date, sender, subject.")

    @Flag(name: .long, help: "Only unread messages.")
    var unread = false
    @Option(name: .long, help: ArgumentHelp("Only the newest N messages.", valueName: "N"))
    var limit: Int?
    @OptionGroup var maildirOptions: MaildirOptions

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        let (box, messages) = try maildirOptions.open()
        var numbered = Array(messages.enumerated()).filter { !unread || $0.element.isUnread }
        if let limit { numbered = Array(numbered.suffix(limit)) }
        guard !numbered.isEmpty else {
            print(unread ? "no unread mail in \(box.path)" : "no mail in \(box.path)")
            return
        }
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm"
        formatter.locale = Locale(identifier: "en_US_POSIX")
        let width = String(messages.count).count
        for (index, message) in numbered {
            let summary = MessageSummary(header: try? HeaderBlock(parsing: headerBytes(of: message.path)))
            let date = summary.date ?? Date(timeIntervalSince1970: Double(message.modificationNanoseconds) / 1e9)
            let number = String(repeating: " ", count: width - String(index + 1).count) + String(index + 1)
            print("\(number) \(message.isUnread ? "N" : " ") \(formatter.string(from: date))  "
                + "\(column(summary.sender, width: 24))  \(terminalText(summary.subject))")
        }
    }

    /// The start of the file, where the header is: a huge message is not read whole for one line.
    private func headerBytes(of path: String) -> [UInt8] {
        guard let file = try? FileDescriptor.openForReading(path) else { return [] }
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        let count = (try? buffer.withUnsafeMutableBytes { try file.read(filling: $0) }) ?? 0
        return Array(buffer.prefix(count))
    }

    private func column(_ text: String, width: Int) -> String {
        let line = terminalText(text)
        return line.count > width ? String(line.prefix(width - 1)) + "…" : line + String(repeating: " ", count: width - line.count)
    }
}

/// Text a message may hold, made safe for a terminal: control characters (an escape sequence in a
/// subject) become spaces, so a message cannot drive the terminal. Line breaks and tabs are kept
/// when `multiline`.
func terminalText(_ text: String, multiline: Bool = false) -> String {
    String(String.UnicodeScalarView(text.unicodeScalars.map { scalar in
        let kept = multiline && (scalar == "\n" || scalar == "\t")
        return (scalar.value < 0x20 && !kept) || scalar.value == 0x7f ? " " : scalar
    }))
}

struct MailShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show a message: its headers, its text and the list of its attachments; marks it read.")

    @Argument(help: ArgumentHelp("The message's number in 'mail list'.", valueName: "N"))
    var number: Int
    @OptionGroup var maildirOptions: MaildirOptions

    func run() throws {
        let (box, message, part) = try maildirOptions.message(number)
        printHeader(part.header, fields: ["Date", "From", "To", "Cc", "Reply-To", "Subject"])
        let reading = MessageReading(part)
        if reading.texts.isEmpty { print("(no text to show)") }
        var afterText = false
        for piece in reading.pieces {
            switch piece {
            case .text(let text):
                if afterText { print("") }
                let body = text.replacingOccurrences(of: "\r\n", with: "\n")
                print(terminalText(body.hasSuffix("\n") ? String(body.dropLast()) : body, multiline: true))
                afterText = true
            case .message(let header):
                if afterText { print("") }
                print("--- enclosed message ---")
                printHeader(header, fields: ["Date", "From", "To", "Cc", "Subject"])
                afterText = false
            }
        }
        let attachments = reading.attachments
        if !attachments.isEmpty {
            print("")
            print("Attachments (save them with 'connectxpert mail save \(number)'):")
            for (index, attachment) in attachments.enumerated() {
                let subject = attachment.enclosed.map { "message \"\($0.header?.text("Subject") ?? "")\"" }
                let name = (attachment.filename ?? subject).map { terminalText($0) } ?? "(no name)"
                let size = ByteSize(bytes: Int64(attachment.decodedBody.count))
                print("  \(index + 1). \(name)  \(attachment.contentType), \(size)")
            }
        }
        _ = try? box.markSeen(message)
    }

    /// The header fields named, those present, and the empty line after them.
    private func printHeader(_ header: HeaderBlock?, fields: [String]) {
        for name in fields {
            if let value = header?.text(name) { print("\(name): \(terminalText(value))") }
        }
        print("")
    }
}

struct MailSaveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "save",
        abstract: "Save a message's attachments into a folder, under safe names that never replace a file.")

    @Argument(help: ArgumentHelp("The message's number in 'mail list'.", valueName: "N"))
    var number: Int
    @Option(name: .long, help: ArgumentHelp("Where to save them (default: the current folder).", valueName: "folder"))
    var dir = "."
    @OptionGroup var maildirOptions: MaildirOptions

    func run() throws {
        let (_, _, part) = try maildirOptions.message(number)
        let attachments = MessageReading(part).attachments
        guard !attachments.isEmpty else {
            print("message \(number) has no attachments")
            return
        }
        let folder = absolutePath(dir, relativeTo: FileSystem.currentDirectory)
        for (index, attachment) in attachments.enumerated() {
            let fallback = attachment.enclosed == nil ? "attachment-\(index + 1)" : "message-\(index + 1).eml"
            let name = Names.safeFileName(attachment.filename ?? "", fallback: fallback)
            let bytes = attachment.decodedBody
            do {
                try FileSystem.createDirectories(folder)
                let temporary = joinPath(folder, ".\(name).cx\(getpid()).part")
                try FileSystem.writeFileAtomically(temporary, contents: bytes, mode: 0o644)
                let saved = try Spool.move(temporary, toFreeNameAt: joinPath(folder, name))
                print("saved \(saved) (\(ByteSize(bytes: Int64(bytes.count))))")
            } catch {
                throw fail("cannot save \(name) in \(folder): \(error)", .cantCreate)
            }
        }
    }
}
