import ArgumentParser
import ConnectXpertMail
import ConnectXpertPolicy
import ConnectXpertSystem
import Foundation

/// What a sendmail command line asks for. Parsed by hand: sendmail's flags (`-oi`, `-f addr`,
/// `-bm`) are not in the shape argument parsers expect.
struct SendmailArguments: Equatable {
    var readRecipientsFromHeader = false
    /// `-i`/`-oi`: a line holding only "." does not end the message.
    var ignoreDots = false
    var sender: String?
    var fullName: String?
    var recipients: [String] = []

    /// Flags sendmail implementations accept that change nothing here (delivery mode, error mode,
    /// DSN and 8BITMIME requests, verbosity).
    private static let ignoredWithValue: Set<String> = ["-B", "-N", "-R", "-V", "-X", "-O", "-L"]

    init(parsing arguments: [String]) throws {
        var rest = arguments[...]
        func value(of flag: String, attached: Substring) throws -> String {
            if !attached.isEmpty { return String(attached) }
            guard let next = rest.popFirst() else { throw ValidationError("\(flag) needs a value") }
            return next
        }
        while let argument = rest.popFirst() {
            if argument == "--" {
                recipients += rest
                break
            }
            guard argument.hasPrefix("-"), argument.count > 1 else {
                recipients += argument.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                continue
            }
            let flag = String(argument.prefix(2))
            let attached = argument.dropFirst(2)
            switch flag {
            case "-t" where attached.isEmpty: readRecipientsFromHeader = true
            case "-i" where attached.isEmpty: ignoreDots = true
            case "-f", "-r": sender = try value(of: flag, attached: attached)
            case "-F": fullName = try value(of: flag, attached: attached)
            case "-o":
                if attached == "i" { ignoreDots = true } else if attached.isEmpty { _ = try value(of: flag, attached: attached) }
            case "-b":
                guard attached == "m" else {
                    throw ValidationError("sendmail mode \(argument) is not supported: only sending a message (-bm) is; "
                        + "see 'connectxpert mail queue' and 'connectxpert mail flush'")
                }
            case "-q":
                throw ValidationError("-q: use 'connectxpert mail flush'")
            case "-v", "-m", "-n", "-U", "-G", "-e", "-d", "-A", "-C":
                continue
            default:
                if Self.ignoredWithValue.contains(flag) {
                    if attached.isEmpty { _ = try value(of: flag, attached: attached) }
                } else {
                    throw ValidationError("unknown option \(argument)")
                }
            }
        }
        for address in recipients + (sender.map { [$0] } ?? []) where !MailAddress.isPlausible(address) {
            throw ValidationError("'\(address)' is not a mail address")
        }
    }
}

struct SendmailCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sendmail",
        abstract: "A sendmail-compatible front: read a message from standard input and queue it.",
        discussion: """
            For programs that call /usr/sbin/sendmail (cron, mutt, git send-email, mail); \
            'make install-sendmail' makes that link. Recipients are the arguments; with -t also those in \
            To, Cc and Bcc (Bcc is removed when the message is sent). -f/-r set the envelope sender, -F \
            the full name for an added From:, -i/-oi keep a lone "." line; other common flags are \
            accepted and ignored. The message is queued atomically in spool/mail/outbox/ with its envelope. \
            Exit codes: 0 queued, 64 bad usage or no recipient, 65 not a message, 73 the queue cannot be \
            written, 78 the policy is invalid.
            """)

    @OptionGroup var policyOptions: PolicyOptions

    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Flags and recipients, as for sendmail.", valueName: "argument"))
    var arguments: [String] = []

    func validate() throws { _ = try SendmailArguments(parsing: arguments) }

    func run() throws {
        let options = try SendmailArguments(parsing: arguments)
        let policy = try policyOptions.load()
        var message = Array(FileHandle.standardInput.readDataToEndOfFile())
        if !options.ignoreDots { message = Self.truncatedAtLoneDot(message) }
        let header: HeaderBlock
        do { header = try HeaderBlock(parsing: message) } catch {
            throw fail("\(error)", .dataError)
        }
        var recipients = options.readRecipientsFromHeader ? Envelope.recipients(of: header) : []
        for address in options.recipients where !recipients.contains(where: { $0.lowercased() == address.lowercased() }) {
            recipients.append(address)
        }
        guard !recipients.isEmpty else {
            throw fail(options.readRecipientsFromHeader ? "no recipients: the message has no To, Cc or Bcc, and none were given"
                                                       : "no recipients given (name them as arguments, or use -t)", .usage)
        }
        if !header.contains("From") {
            let address = options.sender ?? defaultSender(policy)
            let name = options.fullName.map { "\(MessageComposer.encodeHeaderText($0)) " } ?? ""
            message = Array("From: \(name)<\(address)>\n".utf8) + message
        }
        let spool = MailSpool(spool: policy.spool)
        do {
            _ = try spool.enqueue(envelope: Envelope(sender: options.sender, recipients: recipients)) { write in try write(message) }
        } catch {
            throw fail("cannot queue the message in \(spool.outbox): \(error)", .cantCreate)
        }
    }

    /// Without -i, sendmail ends the message at a line holding only "." (the line is dropped).
    static func truncatedAtLoneDot(_ data: [UInt8]) -> [UInt8] {
        var lineStart = 0
        while lineStart < data.count {
            let end = data[lineStart...].firstIndex(of: 10) ?? data.count
            var line = data[lineStart..<end]
            if line.last == 13 { line = line.dropLast() }
            if line.elementsEqual([UInt8(ascii: ".")]) { return Array(data[..<lineStart]) }
            lineStart = end + 1
        }
        return data
    }
}
