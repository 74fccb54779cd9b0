import ConnectXpertJournal
@testable import ConnectXpertMail
@testable import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Logging
import Testing

/// A mail queue in a temporary spool, sent by a `MailQueueRunner` to a real SMTP server.
private struct Queue {
    let root = NSTemporaryDirectory() + "cx-mail-" + UUID().uuidString.prefix(8)
    let spool: MailSpool
    let journal: Journal
    let runner: MailQueueRunner
    var settings: MailSettings

    init(_ server: SMTPTestServer, passwordFile: String? = nil, timeout: Double = 10) throws {
        spool = MailSpool(spool: root)
        try FileSystem.createDirectories(root)
        journal = try Journal(path: joinPath(root, "journal.sqlite"))
        runner = try MailQueueRunner(spool: spool, journal: journal, logger: Logger(label: "test"))
        settings = .default
        settings.smtp = MailServer(
            url: server.url, host: "127.0.0.1", port: server.port, user: "cx",
            credentials: [.passwordFile(passwordFile ?? server.passwordFile)],
            tls: server.mode == .implicit ? .implicit : .required, caFile: server.certificate,
            timeout: TimeSpan(seconds: timeout))
    }

    @discardableResult
    func queue(_ text: String, envelope: Envelope? = nil) throws -> String {
        try spool.enqueue(envelope: envelope) { write in try write(Array(text.utf8)) }
    }

    func run() -> MailTally { runner.run(settings: settings, ignoringBackoff: true) { true } }

    func names(in folder: String) -> [String] { ((try? FileSystem.contents(of: folder)) ?? []).sorted() }
}

@Suite(.serialized)
struct SMTPDeliveryTests {
    static let server = try! SMTPTestServer()

    private func fresh(_ mode: SMTPTestServer.Mode = .starttls) throws -> SMTPTestServer {
        mode == .starttls ? Self.server : try SMTPTestServer(mode)
    }

    @Test func messageArrivesByteForByte() throws {
        let server = try SMTPTestServer()
        let queue = try Queue(server)
        try queue.queue("From: Alice <alice@example.org>\nTo: bob@example.org\nCc: Carol <carol@example.org>\n"
            + "Bcc: hidden@example.org\nSubject: dots\n\nline\n.leading dot\n..two dots\n.\nend\n")
        #expect(queue.run() == tally(sent: 1))
        let received = try server.received()
        try #require(received.count == 1)
        #expect(received[0].sender == "alice@example.org")
        #expect(received[0].recipients == ["bob@example.org", "carol@example.org", "hidden@example.org"])
        #expect(received[0].login == "cx")
        let text = String(decoding: received[0].data, as: UTF8.self)
        #expect(text.hasPrefix("From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nCc: Carol <carol@example.org>\r\nSubject: dots\r\nDate: "))
        #expect(!text.contains("hidden"))
        #expect(text.hasSuffix("\r\n\r\nline\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n"))
        #expect(!text.replacingOccurrences(of: "\r\n", with: "").contains("\n"))
        #expect(queue.names(in: queue.spool.sent).count == 1 && queue.names(in: queue.spool.outbox).isEmpty)
    }

    @Test func composedMessageDecodesBackToItsParts() throws {
        let server = try SMTPTestServer(.implicit)
        let queue = try Queue(server)
        let big = try temporaryFile(randomBytes(25 * 1024 * 1024)).path
        let named = NSTemporaryDirectory() + "Bericht-ü-\(UUID().uuidString.prefix(4)).pdf"
        try FileSystem.writeFileAtomically(named, contents: Array("%PDF-1.4 small".utf8))
        let composition = Composition(from: "alice@example.org", to: ["Jörg <joerg@example.org>"], cc: [], bcc: ["b@example.org"],
                                      subject: "Grüße – 25 MiB", body: "Hallo,\nanbei.\n.\n", attachments: [big, named],
                                      domain: "example.org")
        _ = try queue.spool.enqueue(envelope: nil) { write in try MessageComposer.compose(composition, write: write) }
        #expect(queue.run() == tally(sent: 1))
        let received = try server.received()
        try #require(received.count == 1)
        let path = NSTemporaryDirectory() + "cx-received-\(UUID().uuidString.prefix(8)).eml"
        try FileSystem.writeFileAtomically(path, contents: received[0].data)
        // Python's email package is the independent reader.
        let script = """
            import email, email.policy, hashlib, sys
            m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
            print(m['subject']); print(m['to']); print('bcc' in m)
            print(m.get_body(('plain',)).get_content(), end='')
            for part in m.iter_attachments():
                print(part.get_filename(), part.get_content_type(), hashlib.sha256(part.get_payload(decode=True)).hexdigest())
            """
        let output = try runChecked("/usr/bin/python3", ["-c", script, path])
        let expected = "Grüße – 25 MiB\nJörg <joerg@example.org>\nFalse\nHallo,\nanbei.\n.\n"
            + "\(lastComponent(of: big)) application/octet-stream \(try sha256(big))\n"
            + "\(lastComponent(of: named)) application/pdf \(try sha256(named))\n"
        #expect(output == expected)
    }

    @Test func transientFailureThenSuccessDeliversOnce() throws {
        let server = try SMTPTestServer()
        let queue = try Queue(server)
        let name = try queue.queue("From: a@example.org\nTo: b@example.org\nSubject: retry\n\nhi\n")
        try server.failNextData(["451 4.3.0 try again later"])
        #expect(queue.run() == tally(deferred: 1))
        let record = try #require(try queue.journal.mailRecords().first)
        #expect(record.name == name && record.attempts == 1 && record.lastError?.contains("451 4.3.0 try again later") == true)
        #expect(try server.received().isEmpty)
        #expect(queue.run() == tally(sent: 1))
        #expect(try server.received().count == 1)
        #expect(try queue.journal.mailRecords().isEmpty)
    }

    @Test func permanentFailureGoesToFailedWithTheServersReply() throws {
        let server = try SMTPTestServer()
        let queue = try Queue(server)
        let name = try queue.queue("From: a@example.org\nTo: b@example.org\nSubject: no\n\nhi\n")
        try server.failNextData(["554 5.7.1 message rejected by policy"])
        #expect(queue.run() == tally(failed: 1))
        #expect(queue.names(in: queue.spool.failed) == [name, name + ".reason"])
        let reason = String(decoding: try FileSystem.readFile(joinPath(queue.spool.failed, name + ".reason")), as: UTF8.self)
        #expect(reason.contains("554 5.7.1 message rejected by policy"), "\(reason)")
    }

    /// A message over the SIZE the server announces fails at once, with the limit in its reason, and
    /// the server is given none of it (no DATA command); the others of the session go.
    @Test func aMessageOverTheServersSizeFailsBeforeAByteOfItIsSent() throws {
        let server = try SMTPTestServer(sizeLimit: 10_000)
        let queue = try Queue(server)
        let big = try queue.queue("From: a@example.org\nTo: b@example.org\nSubject: big\n\n"
                                  + String(repeating: "0123456789\n", count: 2_000))
        try queue.queue("From: a@example.org\nTo: b@example.org\nSubject: small\n\nhi\n")
        #expect(queue.run() == tally(sent: 1, failed: 1))
        #expect(queue.names(in: queue.spool.failed) == [big, big + ".reason"])
        let reason = String(decoding: try FileSystem.readFile(joinPath(queue.spool.failed, big + ".reason")),
                            as: UTF8.self)
        #expect(reason.contains("over the 10000 bytes SMTP server 127.0.0.1:\(server.port) takes"), "\(reason)")
        #expect(server.dataCommands() == 1, "only the small message's")
        #expect(try server.received().count == 1)
    }

    @Test func refusedRecipientsAreNamedAndDeferredOnesRetried() throws {
        let server = try SMTPTestServer()
        let queue = try Queue(server)
        let name = try queue.queue("From: a@example.org\nTo: ok@example.org, refuse1@example.org, defer1@example.org\n\nhi\n")
        #expect(queue.run() == tally(deferred: 1))
        let received = try server.received()
        #expect(received.map(\.recipients) == [["ok@example.org"]])
        let reason = String(decoding: try FileSystem.readFile(joinPath(queue.spool.failed, name + ".reason")), as: UTF8.self)
        #expect(reason.contains("refuse1@example.org (550 5.1.1"), "\(reason)")
        #expect(try queue.spool.envelope(for: name) == Envelope(sender: "a@example.org", recipients: ["defer1@example.org"]))
        #expect(queue.names(in: queue.spool.outbox).contains(name))
    }

    @Test func wrongPasswordIsRefusedAndTheMailWaits() throws {
        let server = Self.server
        let queue = try Queue(server, passwordFile: server.wrongPasswordFile)
        let name = try queue.queue("From: a@example.org\nTo: b@example.org\n\nhi\n")
        try queue.queue("From: a@example.org\nTo: c@example.org\n\nhi\n")
        #expect(queue.run() == tally(refused: 1))
        #expect(queue.runner.refusal?.hasPrefix("authentication failed for cx@127.0.0.1:\(server.port) (server: 535") == true,
                "\(queue.runner.refusal ?? "")")
        #expect(queue.names(in: queue.spool.outbox).filter { $0.hasSuffix(".eml") }.count == 2)
        #expect(try queue.journal.mailRecords().first?.name == name)
    }

    @Test func tlsRequiredButNotOfferedIsRefused() throws {
        let server = try SMTPTestServer(.plain)
        let queue = try Queue(server)
        try queue.queue("From: a@example.org\nTo: b@example.org\n\nhi\n")
        #expect(queue.run() == tally(refused: 1))
        #expect(queue.runner.refusal == "SMTP server 127.0.0.1:\(server.port) does not offer STARTTLS; mail and passwords would "
            + "cross the network readable. Set tls: off under mail.smtp only if that is acceptable")
        #expect(try server.received().isEmpty)
    }

    @Test func aHungServerIsCutOffAndTheQueueGoesOn() throws {
        let server = try SMTPTestServer()
        let queue = try Queue(server, timeout: 1)
        try queue.queue("From: a@example.org\nTo: b@example.org\n\nhi\n")
        try server.hang(true)
        let started = Date()
        #expect(queue.run() == tally(deferred: 1))
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(try queue.journal.mailRecords().first?.lastError?.contains("Timeout") == true)
        try server.hang(false)
        #expect(queue.run() == tally(sent: 1))
    }

    @Test func oneLoginServesTheWholeQueue() throws {
        let server = try SMTPTestServer()
        let queue = try Queue(server)
        for n in 0..<25 { try queue.queue("From: a@example.org\nTo: b\(n)@example.org\nSubject: \(n)\n\nhi\n") }
        #expect(queue.run() == tally(sent: 25))
        #expect(server.logins() == 1)
    }

    @Test func whatIsNotAMessageGoesToFailedWithTheReason() throws {
        let queue = try Queue(Self.server)
        let garbage = try queue.queue("this is not mail\n")
        let lonely = try queue.queue("From: a@example.org\nSubject: to nobody\n\nhi\n")
        #expect(queue.run() == tally(failed: 2))
        let reason = { (name: String) in String(decoding: (try? FileSystem.readFile(joinPath(queue.spool.failed, name + ".reason"))) ?? [], as: UTF8.self) }
        #expect(reason(garbage).contains("reason: this is not a mail message: it does not start with a header field"))
        #expect(reason(lonely).contains("reason: the message has no recipient"))
    }

    @Test func pastTheQueueLifetimeATransientFailureIsFinal() throws {
        let server = try SMTPTestServer()
        var queue = try Queue(server)
        queue.settings.retry.giveUpAfter = TimeSpan(seconds: 0)
        let name = try queue.queue("From: a@example.org\nTo: b@example.org\n\nhi\n")
        try server.failNextData(["452 4.3.1 mailbox full"])
        #expect(queue.run() == tally(failed: 1))
        let reason = String(decoding: try FileSystem.readFile(joinPath(queue.spool.failed, name + ".reason")), as: UTF8.self)
        #expect(reason.contains("still failing after") && reason.contains("452 4.3.1 mailbox full"), "\(reason)")
    }
}

private func tally(sent: Int = 0, failed: Int = 0, deferred: Int = 0, refused: Int = 0) -> MailTally {
    var tally = MailTally()
    tally.sent = sent
    tally.failed = failed
    tally.deferred = deferred
    tally.refused = refused
    return tally
}

private func sha256(_ path: String) throws -> String {
    String(try runChecked("/usr/bin/sha256sum", [path]).prefix(64))
}
