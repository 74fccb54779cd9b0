import ArgumentParser
import ConnectXpertDaemon
import ConnectXpertJournal
import ConnectXpertMail
import ConnectXpertPolicy
import ConnectXpertSpool
import ConnectXpertSystem
import Foundation

struct MailCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mail",
        abstract: "Send mail through the queue, fetch mail into a Maildir and read it.",
        subcommands: [MailSendCommand.self, MailQueueCommand.self, MailFlushCommand.self, MailFetchCommand.self,
                      MailListCommand.self, MailShowCommand.self, MailSaveCommand.self])
}

/// Sends `signal` to the agent running on the policy's spool, if one runs, and says so; `false`
/// when none runs (the command then does the work itself).
func askRunningAgent(policy: Policy, signal: Int32, to request: String) throws -> Bool {
    guard let holder = AgentLock.holder(path: Spool(root: policy.spool).lock) else { return false }
    guard let pid = Int32(holder), kill(pid, signal) == 0 else {
        throw fail("the agent (pid \(holder)) cannot be signalled: \(String(cString: strerror(errno)))", .noPermission)
    }
    print("asked the agent (pid \(pid)) to \(request)")
    return true
}

/// The From: address for mail composed here when none is given: `mail.from`, else user@host.
func defaultSender(_ policy: Policy) -> String {
    policy.mail.from ?? "\(ProcessInfo.processInfo.environment["USER"] ?? "root")@\(ProcessInfo.processInfo.hostName)"
}

struct MailSendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Build a MIME message and queue it in spool/mail/outbox/.",
        discussion: """
            The message is text/plain (UTF-8 when needed), with each --attach file in base64 under \
            multipart/mixed. Non-ASCII subjects and file names are encoded as mail clients expect. The \
            running agent sends it at once; otherwise the next 'run' or 'mail flush' does.
            """)

    @Option(name: .long, help: ArgumentHelp("A recipient (repeat for more).", valueName: "address"))
    var to: [String] = []
    @Option(name: .long, help: ArgumentHelp("A copy recipient.", valueName: "address"))
    var cc: [String] = []
    @Option(name: .long, help: ArgumentHelp("A blind copy recipient (not shown to the others).", valueName: "address"))
    var bcc: [String] = []
    @Option(name: .long, help: ArgumentHelp("The From: address. Default: mail.from from the policy, else user@host.", valueName: "address"))
    var from: String?
    @Option(name: .long, help: "The subject.")
    var subject: String
    @Option(name: .long, help: "The body text.")
    var body: String?
    @Option(name: .long, help: ArgumentHelp("A file holding the body text (- for standard input).", valueName: "file"))
    var bodyFile: String?
    @Option(name: .long, help: ArgumentHelp("A file to attach (repeat for more).", valueName: "file"))
    var attach: [String] = []

    @OptionGroup var policyOptions: PolicyOptions

    func validate() throws {
        if to.isEmpty && cc.isEmpty && bcc.isEmpty { throw ValidationError("name a recipient with --to, --cc or --bcc") }
        if (body == nil) == (bodyFile == nil) { throw ValidationError("give the body with either --body or --body-file") }
        for address in to + cc + bcc + (from.map { [$0] } ?? []) {
            let bare = AddressList.addresses(in: address).first ?? ""
            if !MailAddress.isPlausible(bare) {
                throw ValidationError("'\(address)' is not a mail address such as bob@example.org or \"Bob <bob@example.org>\"")
            }
        }
    }

    func run() throws {
        let policy = try policyOptions.load()
        for file in attach where (try? FileSystem.status(file))??.kind != .regular {
            throw fail("cannot attach \(file): not a readable regular file", .noInput)
        }
        let text: String
        if let bodyFile {
            guard let data = bodyFile == "-" ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: bodyFile) else {
                throw fail("cannot read the body from \(bodyFile)", .noInput)
            }
            text = String(decoding: data, as: UTF8.self)
        } else {
            text = body ?? ""
        }
        let hostname = ProcessInfo.processInfo.hostName
        let sender = from ?? defaultSender(policy)
        let composition = Composition(from: sender, to: to, cc: cc, bcc: bcc, subject: subject, body: text,
                                      attachments: attach, domain: sender.split(separator: "@").last.map(String.init) ?? hostname)
        let spool = MailSpool(spool: policy.spool)
        do {
            let name = try spool.enqueue(envelope: nil) { write in try MessageComposer.compose(composition, write: write) }
            print("queued \(joinPath(spool.outbox, name)) for \((to + cc + bcc).joined(separator: ", "))")
        } catch {
            throw fail("cannot queue the message in \(spool.outbox): \(error)", .cantCreate)
        }
    }
}

struct MailQueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "List the messages waiting in spool/mail/outbox/: recipients, attempts, last error, next try.")

    @OptionGroup var policyOptions: PolicyOptions

    func run() throws {
        let policy = try policyOptions.load()
        let spool = MailSpool(spool: policy.spool)
        let queued: [MailSpool.Entry]
        do { queued = try spool.queued() } catch let error as SystemError where error.isNotFound { queued = [] }
        guard !queued.isEmpty else {
            print("the mail queue is empty")
            return
        }
        let journal = Spool(root: policy.spool).journal
        let records = FileSystem.exists(journal) ? try Journal(path: journal).mailRecords() : []
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = .current
        for entry in queued {
            let envelope = try? spool.envelope(for: entry.name)
            var line = entry.name
            do {
                let message = try OutgoingMessage(path: entry.path, envelope: envelope, policySender: policy.mail.from,
                                                  hostname: ProcessInfo.processInfo.hostName)
                line += "  from \(message.sender) to \(message.recipients.joined(separator: ", "))  \(ByteSize(bytes: message.size))"
            } catch {
                line += "  (cannot be sent: \(error))"
            }
            print(line)
            if let record = records.first(where: { $0.name == entry.name && $0.inode == entry.inode }) {
                let next = record.nextAttempt.map { formatter.string(from: Date(timeIntervalSince1970: $0)) } ?? "now"
                print("    attempts \(record.attempts), next try \(next), last error: \(record.lastError ?? "none")")
            } else {
                print("    not tried yet")
            }
        }
    }
}

struct MailFlushCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flush",
        abstract: "Send the mail queue now, ignoring the pauses after failures.",
        discussion: """
            With the agent running, asks it to (SIGUSR1) and returns. Otherwise sends the queue itself and \
            exits like 'run --once': 0, 65 when messages went to failed/, 75 when some wait for a retry, \
            77 when the server refused the login or TLS.
            """)

    @OptionGroup var policyOptions: PolicyOptions
    @OptionGroup var loggingOptions: LoggingOptions

    func run() throws {
        let logger = loggingOptions.bootstrap()
        let policy = try policyOptions.load()
        if try askRunningAgent(policy: policy, signal: SIGUSR1, to: "send the mail queue now") { return }
        let (agent, mail, lock) = try startAgent(policy: policy, mode: .batch, logger: logger)
        defer { withExtendedLifetime(lock) {} }
        do { try mail.sendQueue() } catch { throw fail("cannot send the mail queue: \(error)", .cantCreate) }
        try completeBatch(agent, mail) {
            "mail sent \($0.mail.sent), failed \($0.failed), to retry \($0.deferred)"
                + ($0.refused > 0 ? ", refused \($0.refused)" : "")
        }
    }
}
