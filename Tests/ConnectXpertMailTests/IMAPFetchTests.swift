import ConnectXpertJournal
@testable import ConnectXpertMail
@testable import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Logging
import Testing

/// A Maildir in a temporary folder, filled by a `MailFetcher` from a real Dovecot.
private struct Mailbox {
    let root = NSTemporaryDirectory() + "cx-imap-" + UUID().uuidString.prefix(8)
    let journal: Journal
    let fetcher: MailFetcher
    var source: IMAPSource

    init(_ server: IMAPTestServer, after: IMAPSource.AfterFetch = .markSeen, select: IMAPSource.Selection = .unseen,
         passwordFile: String? = nil, tls: TLSMode? = nil) throws {
        try FileSystem.createDirectories(root)
        journal = try Journal(path: joinPath(root, "journal.sqlite"))
        fetcher = MailFetcher(journal: journal, logger: Logger(label: "test"))
        let server = MailServer(url: server.url, host: "127.0.0.1", port: server.port, user: server.user,
                                credentials: [.passwordFile(passwordFile ?? server.passwordFile)],
                                tls: tls ?? (server.mode == .implicit ? .implicit : .required), caFile: server.certificate,
                                timeout: TimeSpan(seconds: 10))
        source = IMAPSource(server: server, mailbox: "INBOX", every: TimeSpan(seconds: 60), select: select, after: after,
                            maildir: joinPath(root, "Maildir"))
    }

    func fetch() throws -> FetchTally { try fetcher.fetch(source) }

    /// The messages in the Maildir (`new/` and `cur/`), sorted by content.
    func messages() throws -> [String] {
        try ["new", "cur"].flatMap { folder in
            try FileSystem.contents(of: joinPath(source.maildir, folder)).map {
                String(decoding: try FileSystem.readFile(joinPath(source.maildir, folder, $0)), as: UTF8.self)
            }
        }.sorted()
    }
}

private func message(_ number: Int, body: String = "hello") -> String {
    "From: Sender <sender@example.org>\nTo: alice@example.org\nSubject: message \(number)\n"
        + "Message-ID: <\(number)@example.org>\n\n\(body) \(number)\n"
}

@Suite(.serialized, .enabled(if: canRunServerTests, "needs root to start Dovecot"))
struct IMAPFetchTests {
    @Test func fetchesOnlyUnseenAndMarksThemSeen() throws {
        let server = try IMAPTestServer()
        try server.deliver(message(1))
        try server.deliver(message(2), seen: true)
        try server.deliver(message(3))
        let mailbox = try Mailbox(server)
        var tally = try mailbox.fetch()
        #expect(tally.delivered == 2 && tally.settled == 2)
        #expect(try mailbox.messages() == [message(1), message(3)])
        #expect(try server.flags() == ["S", "S", "S"])
        tally = try mailbox.fetch()
        #expect(tally == FetchTally())
        #expect(try mailbox.messages().count == 2)
    }
}

extension IMAPFetchTests {
    @Test func deleteExpungesAndKeepLeavesTheServerAlone() throws {
        let server = try IMAPTestServer()
        for number in 1...3 { try server.deliver(message(number)) }
        let keeping = try Mailbox(server, after: .keep)
        #expect(try keeping.fetch().delivered == 3)
        #expect(try server.flags() == ["", "", ""])
        #expect(try keeping.fetch() == FetchTally())

        let deleting = try Mailbox(server, after: .delete)
        let tally = try deleting.fetch()
        #expect(tally.delivered == 3 && tally.settled == 3)
        #expect(try server.flags() == [])
        #expect(try deleting.messages() == (1...3).map { message($0) })
    }

    @Test func selectAllFetchesSeenMailToo() throws {
        let server = try IMAPTestServer()
        try server.deliver(message(1), seen: true)
        try server.deliver(message(2))
        let mailbox = try Mailbox(server, select: .all)
        #expect(try mailbox.fetch().delivered == 2)
        #expect(try mailbox.fetch() == FetchTally())
    }

    @Test func bytesArriveAsSentWithLFLineEnds() throws {
        let server = try IMAPTestServer()
        let longLine = String(repeating: "0123456789", count: 20_000)
        let binary: [UInt8] = (1...255).filter { $0 != 13 && $0 != 10 }
        var text: [UInt8] = Array("From: a@example.org\nSubject: =?UTF-8?B?w6TDtsO8?=\n\n\(longLine)\n".utf8)
        text += binary
        text += Array("\nend\n".utf8)
        try server.deliver(text)
        try expectFetchedAlone(text, from: server)
    }

    @Test func renumberedMailboxIsNotFetchedAgain() throws {
        let server = try IMAPTestServer()
        for number in 1...3 { try server.deliver(message(number)) }
        let mailbox = try Mailbox(server, after: .keep)
        #expect(try mailbox.fetch().delivered == 3)
        try server.renumber()
        try server.deliver(message(4))
        let tally = try mailbox.fetch()
        #expect(tally.delivered == 1 && tally.recognised == 3)
        #expect(try mailbox.messages() == (1...4).map { message($0) })
        #expect(try mailbox.fetch() == FetchTally())
    }

    @Test func crashBetweenDeliveryAndSeenDoesNotDuplicate() throws {
        let server = try IMAPTestServer()
        for number in 1...2 { try server.deliver(message(number)) }
        let keeping = try Mailbox(server, after: .keep)
        #expect(try keeping.fetch().delivered == 2)
        // The same journal and Maildir, now marking seen: as if the agent died before the STORE.
        var marking = keeping
        marking.source.after = .markSeen
        let tally = try marking.fetch()
        #expect(tally.delivered == 0 && tally.settled == 2)
        #expect(try server.flags() == ["S", "S"])
        #expect(try marking.messages().count == 2)
    }

    @Test func crashDuringFetchIsSettledFromTheMaildir() throws {
        let server = try IMAPTestServer()
        for number in 1...2 { try server.deliver(message(number)) }
        let mailbox = try Mailbox(server)
        // Journalled as being fetched: one made it into new/, the other only into tmp/.
        let maildir = Maildir(path: mailbox.source.maildir)
        try maildir.create()
        let landed = try maildir.beginDelivery(name: "landed.test")
        try Array(message(1).replacingOccurrences(of: "\n", with: "\r\n").utf8).withUnsafeBytes { try landed.write($0) }
        try landed.commit()
        try FileSystem.writeFileAtomically(joinPath(maildir.path, "tmp", "partial.test"), contents: Array("From: x".utf8))
        let validity = try #require(try uidValidity(of: server))
        try mailbox.journal.saveFetched([
            FetchedMessage(source: mailbox.source.name, uidValidity: validity, uid: 1, maildirName: "landed.test", state: .fetching),
            FetchedMessage(source: mailbox.source.name, uidValidity: validity, uid: 2, maildirName: "partial.test", state: .fetching),
        ])
        let tally = try mailbox.fetch()
        #expect(tally.delivered == 1 && tally.settled == 2)
        #expect(try mailbox.messages() == [message(1), message(2)])
        #expect(try FileSystem.contents(of: joinPath(maildir.path, "tmp")) == [])
    }

    @Test func wrongPasswordIsARefusal() throws {
        let server = try IMAPTestServer()
        let mailbox = try Mailbox(server, passwordFile: server.wrongPasswordFile)
        let error = try #require(throws: MailServerError.self) { try mailbox.fetch() }
        #expect(error.kind == .refused)
        #expect(error.message.hasPrefix("authentication failed for cxdrop@127.0.0.1:\(server.port)"))
    }

    @Test func tlsRequiredButNotOfferedIsARefusal() throws {
        let server = try IMAPTestServer(.plain)
        try server.deliver(message(1))
        let mailbox = try Mailbox(server, tls: .required)
        let error = try #require(throws: MailServerError.self) { try mailbox.fetch() }
        #expect(error.kind == .refused)
        #expect(error.message == "IMAP server 127.0.0.1:\(server.port) does not offer STARTTLS; mail and passwords would "
            + "cross the network readable. Set tls: off under mail.inbox only if that is acceptable")
        #expect(try server.flags() == [""])
        #expect(try mailbox.messages() == [])
    }

    @Test func implicitTLSAndPlainOptIn() throws {
        let implicit = try IMAPTestServer(.implicit)
        try implicit.deliver(message(1))
        #expect(try Mailbox(implicit).fetch().delivered == 1)
        let plain = try IMAPTestServer(.plain)
        try plain.deliver(message(2))
        #expect(try Mailbox(plain, tls: .off).fetch().delivered == 1)
    }

    @Test func untrustedCertificateIsARefusal() throws {
        let server = try IMAPTestServer(.implicit)
        var mailbox = try Mailbox(server)
        mailbox.source.server.caFile = nil
        let error = try #require(throws: MailServerError.self) { try mailbox.fetch() }
        #expect(error.kind == .refused)
        #expect(error.message.contains("the server's TLS certificate cannot be trusted"))
    }

    @Test func missingMailboxIsARefusal() throws {
        let server = try IMAPTestServer()
        var mailbox = try Mailbox(server)
        mailbox.source.mailbox = "Nowhere"
        let error = try #require(throws: MailServerError.self) { try mailbox.fetch() }
        #expect(error.kind == .refused)
        #expect(error.message.contains("has no mailbox \"Nowhere\""))
    }
}

/// Fetches the one message on `server` and checks it arrived as `text`.
private func expectFetchedAlone(_ text: [UInt8], from server: IMAPTestServer) throws {
    let mailbox = try Mailbox(server)
    #expect(try mailbox.fetch().delivered == 1)
    let folder = joinPath(mailbox.source.maildir, "new")
    let names = try FileSystem.contents(of: folder)
    try #require(names.count == 1)
    #expect(try FileSystem.readFile(joinPath(folder, names[0])) == text)
}

/// The mailbox's UIDVALIDITY, as the server's own uidlist file gives it (`3 V1234 N5 …`).
private func uidValidity(of server: IMAPTestServer) throws -> Int64? {
    // The server writes the file on first access: a login makes it.
    _ = try? MailFetcher(journal: Journal(path: NSTemporaryDirectory() + "cx-probe-\(UUID().uuidString).sqlite"),
                         logger: Logger(label: "probe"))
        .fetch(IMAPSource(server: MailServer(url: server.url, host: "127.0.0.1", port: server.port, user: server.user,
                                             credentials: [.passwordFile(server.passwordFile)], tls: .required,
                                             caFile: server.certificate, timeout: TimeSpan(seconds: 10)),
                          mailbox: "INBOX", every: TimeSpan(seconds: 60), select: .unseen, after: .keep,
                          maildir: NSTemporaryDirectory() + "cx-probe-\(UUID().uuidString)"))
    let text = String(decoding: try FileSystem.readFile(joinPath(server.maildir, "dovecot-uidlist")), as: UTF8.self)
    return text.split(separator: " ").first { $0.hasPrefix("V") }.flatMap { Int64($0.dropFirst()) }
}

extension IMAPFetchTests {
    @Test func fiftyMiBMessageArrivesWhole() throws {
        let server = try IMAPTestServer()
        var text = Array("From: a@example.org\nSubject: big\n\n".utf8)
        let line = Array(String(repeating: "x", count: 75).utf8) + [10]
        text.reserveCapacity(50 * 1024 * 1024 + 100)
        while text.count < 50 * 1024 * 1024 { text += line }
        try server.deliver(text)
        try expectFetchedAlone(text, from: server)
    }
}

@Suite struct MaildirTests {
    @Test func lineEndsSplitAcrossChunksBecomeLF() throws {
        let maildir = Maildir(path: NSTemporaryDirectory() + "cx-maildir-" + UUID().uuidString.prefix(8))
        try maildir.create()
        let delivery = try maildir.beginDelivery(name: "one")
        for chunk in ["a\r", "\nb\r", "x\r\n\r", "\n", "lone\r"] {
            try Array(chunk.utf8).withUnsafeBytes { try delivery.write($0) }
        }
        let path = try delivery.commit()
        #expect(try FileSystem.readFile(path) == Array("a\nb\rx\n\nlone\r".utf8))
        #expect(try maildir.location(of: "one") == path)
        let message = try #require(try maildir.messages().first)
        #expect(message.isUnread)
        let seen = try maildir.markSeen(message)
        #expect(seen == joinPath(maildir.path, "cur", "one:2,S"))
        #expect(try maildir.location(of: "one") == seen)
        #expect(try maildir.messages().map(\.isUnread) == [false])
    }

    @Test func mailboxNamesInModifiedUTF7() {
        #expect(IMAPSession.mailboxName("INBOX") == "INBOX")
        #expect(IMAPSession.mailboxName("Entwürfe") == "Entw&APw-rfe")
        #expect(IMAPSession.mailboxName("A&B") == "A&-B")
        #expect(IMAPSession.mailboxName("台北") == "&U,BTFw-")
    }

    @Test func uidSetsAreCompact() {
        #expect(uidSet([9, 1, 2, 3, 7, 10]) == "1:3,7,9:10")
        #expect(uidSet([5]) == "5")
    }
}
