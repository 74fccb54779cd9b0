import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// An agent whose policy fetches mail from a test Dovecot into spool/mail/inbox.
private struct FetchingAgent {
    let root = NSTemporaryDirectory() + "cx-fetch-" + UUID().uuidString.prefix(8)
    let server: IMAPTestServer

    init(_ server: IMAPTestServer, passwordFile: String? = nil, every: String = "1h", after: String = "mark-seen") throws {
        self.server = server
        try FileSystem.createDirectories(root)
        try write(joinPath(root, "policies.yaml"), """
            identity:
              id: alice
            remotes:
              drop:
                url: file:drop
            mail:
              inbox:
                - url: \(server.url)
                  user: cxdrop
                  password_file: \(passwordFile ?? server.passwordFile)
                  ca_file: \(server.certificate)
                  every: \(every)
                  after: \(after)
                  timeout: 5s

            """)
    }

    var maildir: String { joinPath(root, "spool/mail/inbox") }

    /// The messages in the Maildir, by content.
    func messages() throws -> [String] {
        try ["new", "cur"].flatMap { folder in
            try FileSystem.contents(of: joinPath(maildir, folder)).map {
                String(decoding: try FileSystem.readFile(joinPath(maildir, folder, $0)), as: UTF8.self)
            }
        }.sorted()
    }

    func run(_ arguments: [String]) throws -> Outcome {
        try AgentProcess(arguments, in: root, environment: ["TZ": "UTC"]).wait(timeout: 120)
    }
}

private func numbered(_ number: Int) -> String {
    "From: sender@example.org\nTo: alice@example.org\nSubject: \(number)\nMessage-ID: <\(number)@example.org>\n\nmessage \(number)\n"
}

/// A message as mail clients send them: encoded headers, text and HTML alternatives, attachments.
private let report = """
    From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.org>
    To: alice@example.org
    Cc: "Bob" <bob@example.org>
    Subject: =?UTF-8?B?UXVhcnRhbHNiZXJpY2h0?= =?UTF-8?B?IMOEbmRlcnVuZ2Vu?=
    Date: Fri, 20 Nov 2026 14:03:00 +0100
    MIME-Version: 1.0
    Content-Type: multipart/mixed; boundary="XYZ"

    This is a multi-part message in MIME format.
    --XYZ
    Content-Type: multipart/alternative; boundary="ALT"

    --ALT
    Content-Type: text/plain; charset=utf-8
    Content-Transfer-Encoding: quoted-printable

    Hallo Alice,

    anbei der Bericht f=C3=BCr Q3, mit einer sehr langen Zeile, die weich umbroch=
    en wurde.
    Gr=C3=BC=C3=9Fe
    --ALT
    Content-Type: text/html; charset=utf-8

    <p>Hallo Alice</p>
    --ALT--

    --XYZ
    Content-Type: application/pdf; name="bericht.pdf"
    Content-Disposition: attachment; filename*=utf-8''Bericht%20Q3%20%E2%82%AC.pdf
    Content-Transfer-Encoding: base64

    JVBERi0xLjQKJcOkw7zDtsOfCg==
    --XYZ
    Content-Type: text/plain; name="passwd"
    Content-Disposition: attachment; filename="../../etc/passwd"

    root:x:0:0
    --XYZ--

    """

/// A message forwarded as an attachment, after two text parts (as Groupwise and others send it).
private let forwarded = """
    From: bob@example.org
    Subject: Fwd: the plan
    Content-Type: multipart/mixed; boundary="FWD"

    --FWD
    Content-Type: text/plain

    See below.
    --FWD
    Content-Type: text/plain; charset=utf-8
    Content-Transfer-Encoding: base64

    QW5kIGEgc2Vjb25kIHBhcnQu
    --FWD
    Content-Type: message/rfc822

    From: Alice <alice@example.org>
    Subject: the plan
    Content-Type: multipart/mixed; boundary="IN"

    --IN
    Content-Type: text/plain

    Here is the plan.
    --IN
    Content-Type: application/pdf; name="plan.pdf"
    Content-Transfer-Encoding: base64

    JVBERi0=
    --IN--
    --FWD--

    """

private let menu = "From: \"Bob\" <bob@example.org>\nSubject: =?ISO-8859-1?Q?Caf=E9?= menu\nDate: 21 Nov 2026 08:00 GMT\n"
    + "Content-Type: text/html; charset=iso-8859-1\n\n<html><head><style>p {}</style></head><body><h1>Menu</h1>"
    + "<p>Caf\u{e9} &amp; croissants<br>Tea &euro;2</p><ul><li>one</li><li>two</li></ul></body></html>\n"

@Suite(.serialized, .enabled(if: canRunServerTests, "needs root to start Dovecot"))
struct MailInboxCommandTests {
    @Test func fetchThenListShowAndSave() throws {
        let server = try IMAPTestServer()
        try server.deliver(report)
        // Raw ISO-8859-1 bytes in the body, as old mailers send them.
        try server.deliver(Array(menu.unicodeScalars.map { UInt8($0.value) }))
        try server.deliver("not a header\n\u{1}binary\n")
        let agent = try FetchingAgent(server)

        var outcome = try agent.run(["mail", "fetch"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stderr.hasSuffix("connectxpert: mail fetched 3\n"), "\(outcome.stderr)")
        #expect(try server.flags() == ["S", "S", "S"])

        outcome = try agent.run(["mail", "list"])
        let lines = outcome.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == 3, "\(outcome.stdout)")
        #expect(lines[0] == "1 N 2026-11-20 13:03  Jürgen Müller             Quartalsbericht Änderungen")
        #expect(lines[1] == "2 N 2026-11-21 08:00  Bob                       Café menu")
        #expect(lines[2].hasPrefix("3 N ") && lines[2].hasSuffix("                            "))

        outcome = try agent.run(["mail", "show", "1"])
        #expect(outcome.status == 0)
        #expect(outcome.stdout == """
            Date: Fri, 20 Nov 2026 14:03:00 +0100
            From: Jürgen Müller <juergen@example.org>
            To: alice@example.org
            Cc: "Bob" <bob@example.org>
            Subject: Quartalsbericht Änderungen

            Hallo Alice,

            anbei der Bericht für Q3, mit einer sehr langen Zeile, die weich umbrochen wurde.
            Grüße

            Attachments (save them with 'connectxpert mail save 1'):
              1. Bericht Q3 €.pdf  application/pdf, 19 B
              2. ../../etc/passwd  text/plain, 10 B

            """)

        outcome = try agent.run(["mail", "show", "2"])
        #expect(outcome.stdout == """
            Date: 21 Nov 2026 08:00 GMT
            From: "Bob" <bob@example.org>
            Subject: Café menu

            Menu
            Café & croissants
            Tea €2

            - one
            - two

            """)

        outcome = try agent.run(["mail", "show", "3"])
        #expect(outcome.stdout == "\nnot a header\n binary\n")

        outcome = try agent.run(["mail", "list", "--unread"])
        #expect(outcome.stdout == "no unread mail in \(agent.maildir)\n")

        let saved = joinPath(agent.root, "saved")
        try FileSystem.createDirectories(saved)
        try write(joinPath(saved, "passwd"), "mine\n")
        outcome = try agent.run(["mail", "save", "1", "--dir", "saved"])
        #expect(outcome.stdout == "saved \(saved)/Bericht Q3 €.pdf (19 B)\nsaved \(saved)/passwd (1) (10 B)\n")
        #expect(read(joinPath(saved, "Bericht Q3 €.pdf")) == Array("%PDF-1.4\n%äüöß\n".utf8))
        #expect(read(joinPath(saved, "passwd")) == Array("mine\n".utf8))
        #expect(read(joinPath(saved, "passwd (1)")) == Array("root:x:0:0".utf8))

        outcome = try agent.run(["mail", "show", "4"])
        #expect(outcome.status == 66)
        #expect(outcome.stderr == "connectxpert: there is no message 4 in \(agent.maildir) (it holds 3); "
            + "'connectxpert mail list' shows their numbers\n")
    }

    /// A forwarded message: every inline text part is shown, the enclosed message with its header
    /// and text, and what is listed is what `save` saves (the enclosed message as an .eml file).
    @Test func aForwardedMessageIsShownWholeAndSavedAsListed() throws {
        let server = try IMAPTestServer()
        try server.deliver(forwarded)
        let agent = try FetchingAgent(server)
        #expect(try agent.run(["mail", "fetch"]).status == 0)
        var outcome = try agent.run(["mail", "show", "1"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout == """
            From: bob@example.org
            Subject: Fwd: the plan

            See below.

            And a second part.

            --- enclosed message ---
            From: Alice <alice@example.org>
            Subject: the plan

            Here is the plan.

            Attachments (save them with 'connectxpert mail save 1'):
              1. message "the plan"  message/rfc822, 247 B
              2. plan.pdf  application/pdf, 5 B

            """)
        let saved = joinPath(agent.root, "saved")
        outcome = try agent.run(["mail", "save", "1", "--dir", "saved"])
        #expect(outcome.stdout == "saved \(saved)/message-1.eml (247 B)\nsaved \(saved)/plan.pdf (5 B)\n")
        #expect(read(joinPath(saved, "plan.pdf")) == Array("%PDF-".utf8))
        let enclosed = String(decoding: read(joinPath(saved, "message-1.eml")) ?? [], as: UTF8.self)
        #expect(enclosed.hasPrefix("From: Alice <alice@example.org>\nSubject: the plan\n"), "\(enclosed)")
    }

    @Test func listLimitAndUnread() throws {
        let server = try IMAPTestServer()
        for number in 1...4 { try server.deliver(numbered(number)) }
        let agent = try FetchingAgent(server)
        #expect(try agent.run(["run", "--once"]).status == 0)
        #expect(try agent.run(["mail", "show", "2"]).status == 0)
        let unread = try agent.run(["mail", "list", "--unread", "--limit", "2"]).stdout
            .split(separator: "\n").map { $0.prefix(4) }
        #expect(unread == ["3 N ", "4 N "])
        let all = try agent.run(["mail", "list"]).stdout.split(separator: "\n").map { $0.prefix(4) }
        #expect(all == ["1 N ", "2   ", "3 N ", "4 N "])
        #expect(try agent.run(["mail", "list", "--limit", "0"]).status == 64)
    }

    @Test func wrongPasswordExits77AndLeavesTheMail() throws {
        let server = try IMAPTestServer()
        try server.deliver(numbered(1))
        let agent = try FetchingAgent(server, passwordFile: server.wrongPasswordFile)
        let outcome = try agent.run(["mail", "fetch"])
        #expect(outcome.status == 77)
        #expect(outcome.stderr.contains("authentication failed for cxdrop@127.0.0.1:\(server.port)"), "\(outcome.stderr)")
        #expect(try server.flags() == [""])
    }

    @Test func unreachableServerExits75AndNoMailboxExits78() throws {
        let server = try IMAPTestServer()
        let agent = try FetchingAgent(server)
        server.stop()
        var outcome = try agent.run(["mail", "fetch"])
        #expect(outcome.status == 75)
        #expect(outcome.stderr.hasSuffix("connectxpert: mail fetched 0, to retry 1 (transient failures; run again later)\n"),
                "\(outcome.stderr)")
        try write(joinPath(agent.root, "policies.yaml"), "identity:\n  id: alice\nremotes:\n  drop:\n    url: file:drop\n")
        outcome = try agent.run(["mail", "fetch"])
        #expect(outcome.status == 78)
        #expect(outcome.stderr == "connectxpert: no mailbox to fetch from: add mail.inbox to \(agent.root)/policies.yaml\n")
    }

    @Test func daemonPollsAndFetchSignalsIt() throws {
        let server = try IMAPTestServer()
        try server.deliver(numbered(1))
        let agent = try FetchingAgent(server, every: "1h")
        let daemon = try AgentProcess(["run"], in: agent.root)
        #expect(eventually { (try? agent.messages()) == [numbered(1)] }, "\(daemon.log)")
        // Not due for an hour: `mail fetch` asks the daemon now.
        try server.deliver(numbered(2))
        let outcome = try agent.run(["mail", "fetch"])
        #expect(outcome.stdout == "asked the agent (pid \(daemon.process.processIdentifier)) to fetch mail now\n")
        #expect(eventually { (try? agent.messages()) == [numbered(1), numbered(2)] }, "\(daemon.log)")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(timeout: 30).status == 0)
    }

    @Test func killedDuringFetchNothingIsLostOrFetchedTwice() throws {
        let server = try IMAPTestServer()
        let body = String(repeating: "0123456789abcdef\n", count: 600)  // 10 KiB each
        for number in 1...600 { try server.deliver(numbered(number).replacingOccurrences(of: "\n\nmessage", with: "\n\n\(body)message")) }
        let agent = try FetchingAgent(server, every: "1s", after: "delete")
        let first = try AgentProcess(["run"], in: agent.root)
        #expect(eventually(timeout: 60) {
            ((try? FileSystem.contents(of: joinPath(agent.maildir, "new")))?.count ?? 0) >= 100
        }, "\(first.log)")
        first.signal(SIGKILL)
        first.wait()
        let afterKill = try agent.messages().count
        #expect(afterKill < 600, "the fetch ended before the kill; the test proves nothing")
        let second = try AgentProcess(["run"], in: agent.root)
        #expect(eventually(timeout: 90) { (try? agent.messages().count) == 600 && (try? server.flags()) == [] }, "\(second.log)")
        second.signal(SIGTERM)
        second.wait(timeout: 30)
        let subjects = try agent.messages().map { $0.split(separator: "\n")[2] }
        #expect(Set(subjects).count == 600 && subjects.count == 600)
        #expect(try FileSystem.contents(of: joinPath(agent.maildir, "tmp")) == [])
    }
}
