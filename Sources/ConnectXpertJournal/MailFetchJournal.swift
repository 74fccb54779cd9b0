/// Where one fetched message stands. A message is journalled as `fetching` (with the Maildir
/// name it will get) before its first byte is written, `delivered` once it is durable in the
/// Maildir, and `done` once the server has been told (`\Seen`, or deleted and expunged). After a
/// crash, `fetching` is settled by looking for the name in the Maildir.
public enum FetchState: String, Sendable {
    case fetching, delivered, done
}

/// One message of an IMAP mailbox that the agent has fetched or is fetching, keyed by the
/// source, UIDVALIDITY and UID.
public struct FetchedMessage: Equatable, Sendable {
    /// Names the account and mailbox (`cxdrop@imap.example.org:993/INBOX`).
    public var source: String
    public var uidValidity: Int64
    public var uid: Int64
    /// The file's unique name in the Maildir (without the `:2,` flags).
    public var maildirName: String
    public var state: FetchState
    /// RFC822.SIZE and a hash of the header section: how a message is recognised after the
    /// server changed UIDVALIDITY.
    public var size: Int64
    public var fingerprint: String

    public init(source: String, uidValidity: Int64, uid: Int64, maildirName: String, state: FetchState,
                size: Int64 = 0, fingerprint: String = "") {
        self.source = source
        self.uidValidity = uidValidity
        self.uid = uid
        self.maildirName = maildirName
        self.state = state
        self.size = size
        self.fingerprint = fingerprint
    }

    static func createTable(in db: SQLiteDatabase) throws {
        try db.execute("""
            CREATE TABLE IF NOT EXISTS mail_fetched (
                source TEXT NOT NULL, uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,
                maildir_name TEXT NOT NULL, state TEXT NOT NULL, size INTEGER NOT NULL,
                fingerprint TEXT NOT NULL, PRIMARY KEY (source, uidvalidity, uid))
            """)
        try db.execute("CREATE INDEX IF NOT EXISTS mail_fetched_by_fingerprint ON mail_fetched(source, fingerprint)")
    }
}

extension Journal {
    /// What is known of the messages of `source` under `uidValidity`.
    public func fetchedMessages(source: String, uidValidity: Int64) throws -> [FetchedMessage] {
        try fetchedMessages(where: "WHERE source = ? AND uidvalidity = ?", [.text(source), .integer(uidValidity)])
    }

    /// Messages of `source` left `fetching` by a crash, under any UIDVALIDITY.
    public func unsettledFetches(source: String) throws -> [FetchedMessage] {
        try fetchedMessages(where: "WHERE source = ? AND state = 'fetching'", [.text(source)])
    }

    /// Whether `source` has messages journalled under another UIDVALIDITY than `uidValidity`:
    /// then the server renumbered the mailbox and UIDs no longer tell what we have.
    public func hasFetches(source: String, otherThan uidValidity: Int64) throws -> Bool {
        try database.withLock { db in
            try db.query("SELECT 1 FROM mail_fetched WHERE source = ? AND uidvalidity != ? LIMIT 1",
                         [.text(source), .integer(uidValidity)])
        }.isEmpty == false
    }

    /// Whether a message with this size and header fingerprint was delivered from `source`.
    public func hasDelivered(source: String, size: Int64, fingerprint: String) throws -> Bool {
        try database.withLock { db in
            try db.query("SELECT 1 FROM mail_fetched WHERE source = ? AND fingerprint = ? AND size = ? AND state != 'fetching' LIMIT 1",
                         [.text(source), .text(fingerprint), .integer(size)])
        }.isEmpty == false
    }

    /// Saves the records in one transaction; `durable` fsyncs the log before returning (a message is
    /// marked seen or deleted on the server only after its record is durable).
    public func saveFetched(_ records: [FetchedMessage], durable: Bool = false) throws {
        guard !records.isEmpty else { return }
        try write(durable: durable) { db in
            try db.execute("BEGIN")
            do {
                for record in records {
                    try db.execute("""
                        INSERT OR REPLACE INTO mail_fetched (source, uidvalidity, uid, maildir_name, state, size, fingerprint)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """, [.text(record.source), .integer(record.uidValidity), .integer(record.uid),
                              .text(record.maildirName), .text(record.state.rawValue), .integer(record.size),
                              .text(record.fingerprint)])
                }
                try db.execute("COMMIT")
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// Drops the records of fetches that never completed (the message was not in the Maildir).
    public func forgetFetched(_ records: [FetchedMessage]) throws {
        try database.withLock { db in
            for record in records {
                try db.execute("DELETE FROM mail_fetched WHERE source = ? AND uidvalidity = ? AND uid = ?",
                               [.text(record.source), .integer(record.uidValidity), .integer(record.uid)])
            }
        }
    }

    private func fetchedMessages(where clause: String, _ bindings: [SQLiteValue]) throws -> [FetchedMessage] {
        try database.withLock { db in
            try db.query("SELECT source, uidvalidity, uid, maildir_name, state, size, fingerprint FROM mail_fetched \(clause)",
                         bindings)
        }.map { row in
            FetchedMessage(source: row[0].string ?? "", uidValidity: row[1].int ?? 0, uid: row[2].int ?? 0,
                           maildirName: row[3].string ?? "", state: FetchState(rawValue: row[4].string ?? "") ?? .fetching,
                           size: row[5].int ?? 0, fingerprint: row[6].string ?? "")
        }
    }
}
