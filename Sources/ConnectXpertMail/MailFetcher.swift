import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSystem
import Foundation
import Logging

/// What one fetch from one mailbox did.
public struct FetchTally: Equatable, Sendable {
    /// Messages written into the Maildir.
    public var delivered = 0
    /// Messages recognised as already delivered after the server changed UIDVALIDITY.
    public var recognised = 0
    /// Messages marked seen or deleted on the server (this run's and those a crash left undone).
    public var settled = 0

    public init() {}
}

/// Fetches the mail of IMAP mailboxes into Maildirs, as mbsync and getmail do, so that nothing is
/// fetched twice or lost:
/// 1. each message to fetch is journalled `fetching` with its future Maildir name;
/// 2. it is written to `tmp/`, fsynced and renamed into `new/` (the rename is fsynced per batch);
/// 3. it is journalled `delivered` (durably), and only then
/// 4. marked `\Seen`, or deleted and expunged, on the server, and journalled `done`.
/// A crash after 1 is settled by looking for the name in the Maildir; after 3 by redoing 4.
/// Holds no state of its own, but two fetches of one source must not overlap (the agent's lock and
/// its one fetch thread see to that).
public final class MailFetcher: Sendable {
    private let journal: Journal
    private let logger: Logger
    private let environment: [String: String]
    /// Messages fetched per round trip (one pipelined command each, then one fsync of `new/`,
    /// one journal commit and one STORE for all of them).
    private let batchSize = 64

    public init(journal: Journal, logger: Logger, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.journal = journal
        self.logger = logger
        self.environment = environment
    }

    /// Fetches what `source` selects; throws `MailServerError` (what was delivered stays delivered).
    public func fetch(_ source: IMAPSource, shouldContinue: () -> Bool = { true }) throws -> FetchTally {
        var tally = FetchTally()
        let maildir = Maildir(path: source.maildir)
        try maildir.create()
        try settleInterruptedFetches(of: source, maildir: maildir)

        let session = try IMAPSession(server: source.server, environment: environment)
        defer { session.logout() }
        let mailbox = try session.select(source.mailbox)
        let known = Dictionary(try journal.fetchedMessages(source: source.name, uidValidity: mailbox.uidValidity)
            .map { ($0.uid, $0) }, uniquingKeysWith: { first, _ in first })
        let uids = try session.searchUIDs(unseenOnly: source.select == .unseen)

        // Delivered before a crash or an error, but the server was not told yet.
        let unsettled = uids.compactMap { known[$0] }.filter { $0.state == .delivered }
        tally.settled += try settle(unsettled, of: source, session: session)

        var fresh = uids.filter { known[$0] == nil }
        if !fresh.isEmpty, try journal.hasFetches(source: source.name, otherThan: mailbox.uidValidity) {
            let recognised = try recogniseDelivered(fresh, of: source, uidValidity: mailbox.uidValidity, session: session)
            tally.recognised += recognised.count
            tally.settled += try settle(recognised, of: source, session: session)
            let recognisedUIDs = Set(recognised.map(\.uid))
            fresh.removeAll { recognisedUIDs.contains($0) }
        }

        var start = 0
        while start < fresh.count && shouldContinue() {
            let batch = Array(fresh[start..<min(start + batchSize, fresh.count)])
            start += batch.count
            let delivered = try fetchBatch(batch, of: source, uidValidity: mailbox.uidValidity, maildir: maildir, session: session)
            tally.delivered += delivered.count
            tally.settled += try settle(delivered, of: source, session: session)
        }
        if tally.delivered + tally.recognised > 0 {
            logger.info("fetched mail", metadata: [
                "mail.source": "\(source.name)", "mail.delivered": "\(tally.delivered)",
                "mail.recognised": "\(tally.recognised)", "mail.maildir": "\(source.maildir)",
            ])
        }
        return tally
    }

    /// Settles the fetches a crash interrupted: delivered if the message is in the Maildir,
    /// forgotten (to be fetched again) if not.
    private func settleInterruptedFetches(of source: IMAPSource, maildir: Maildir) throws {
        let interrupted = try journal.unsettledFetches(source: source.name)
        guard !interrupted.isEmpty else { return }
        var delivered: [FetchedMessage] = []
        var lost: [FetchedMessage] = []
        for var record in interrupted {
            if try maildir.location(of: record.maildirName) != nil {
                record.state = .delivered
                delivered.append(record)
            } else {
                try maildir.discardPartial(name: record.maildirName)
                lost.append(record)
            }
        }
        try journal.saveFetched(delivered, durable: true)
        try journal.forgetFetched(lost)
    }

    private func fetchBatch(_ uids: [Int64], of source: IMAPSource, uidValidity: Int64, maildir: Maildir,
                            session: IMAPSession) throws -> [FetchedMessage] {
        var records = Dictionary(uniqueKeysWithValues: uids.map {
            ($0, FetchedMessage(source: source.name, uidValidity: uidValidity, uid: $0,
                                maildirName: Maildir.uniqueName(), state: .fetching))
        })
        try journal.saveFetched(Array(records.values))
        var current: MaildirDelivery?
        defer { current?.discard() }
        let deliveredUIDs = try session.fetchMessages(uids) { uid, size in
            guard let record = records[uid], record.state == .fetching else { return nil }
            let delivery = try maildir.beginDelivery(name: record.maildirName)
            current = delivery
            var fingerprint = HeaderFingerprint()
            return IMAPSession.MessageTarget(write: { bytes in
                fingerprint.add(bytes)
                try delivery.write(bytes)
            }, finish: {
                try delivery.commit()
                current = nil
                records[uid]?.state = .delivered
                records[uid]?.size = Int64(size)
                records[uid]?.fingerprint = fingerprint.value
            })
        }
        try maildir.syncNew()
        let delivered = uids.compactMap { records[$0] }.filter { deliveredUIDs.contains($0.uid) && $0.state == .delivered }
        try journal.saveFetched(delivered, durable: true)
        // Expunged by another client between the search and the fetch.
        try journal.forgetFetched(uids.compactMap { records[$0] }.filter { $0.state == .fetching })
        return delivered
    }

    /// After a UIDVALIDITY change: the messages among `uids` whose size and header match one
    /// delivered before, journalled under the new UIDVALIDITY instead of being fetched again.
    private func recogniseDelivered(_ uids: [Int64], of source: IMAPSource, uidValidity: Int64,
                                    session: IMAPSession) throws -> [FetchedMessage] {
        logger.warning("the server renumbered the mailbox (UIDVALIDITY changed); comparing headers to skip mail already fetched",
                       metadata: ["mail.source": "\(source.name)", "mail.uidvalidity": "\(uidValidity)"])
        var recognised: [FetchedMessage] = []
        for (uid, message) in try session.fetchHeaders(uids) {
            var fingerprint = HeaderFingerprint()
            message.header.withUnsafeBytes { fingerprint.add($0) }
            if try journal.hasDelivered(source: source.name, size: message.size, fingerprint: fingerprint.value) {
                recognised.append(FetchedMessage(source: source.name, uidValidity: uidValidity, uid: uid,
                                                 maildirName: "", state: .delivered, size: message.size,
                                                 fingerprint: fingerprint.value))
            }
        }
        try journal.saveFetched(recognised, durable: true)
        return recognised
    }

    /// Tells the server what `after` asks for the delivered messages, then journals them `done`.
    private func settle(_ records: [FetchedMessage], of source: IMAPSource, session: IMAPSession) throws -> Int {
        guard !records.isEmpty, source.after != .keep else { return 0 }
        let uids = records.map(\.uid)
        switch source.after {
        case .markSeen:
            try session.addFlags("\\Seen", to: uids)
        case .delete:
            try session.addFlags("\\Deleted", to: uids)
            try session.expunge(uids)
        case .keep:
            break
        }
        try journal.saveFetched(records.map { record in
            var record = record
            record.state = .done
            return record
        })
        return records.count
    }
}

/// FNV-1a (64 bit) of a message's header section as the server sends it (CRLF, through the empty
/// line): with the size, how a message is recognised under new UIDs.
struct HeaderFingerprint {
    private var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    /// The last bytes seen, to find the empty line (`\r\n\r\n`) across chunks.
    private var tail: UInt32 = 0
    private var complete = false

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        guard !complete else { return }
        for byte in bytes {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            tail = (tail << 8) | UInt32(byte)
            if tail == 0x0d0a_0d0a {
                complete = true
                return
            }
        }
    }

    var value: String { String(hash, radix: 16) }
}
