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
