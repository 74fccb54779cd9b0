import Foundation

/// What the agent knows of one queued message beyond the file itself: the failures so far and
/// when to try again. Keyed by the file's name and inode, so a new message under a reused name
/// starts afresh. A message without a record has not failed yet.
public struct MailQueueRecord: Equatable, Sendable {
    public var name: String
    public var inode: Int64
    public var attempts: Int
    public var firstFailure: Double?
    public var nextAttempt: Double?
    public var lastError: String?

    public init(name: String, inode: Int64) {
        self.name = name
        self.inode = inode
        attempts = 0
    }

    static func createTable(in db: SQLiteDatabase) throws {
        try db.execute("""
            CREATE TABLE IF NOT EXISTS mail_queue (
                name TEXT PRIMARY KEY, inode INTEGER NOT NULL, attempts INTEGER NOT NULL,
                first_failure REAL, next_attempt REAL, last_error TEXT)
            """)
    }
}

extension Journal {
    /// The record of the message queued as `name`, if it has failed before.
    public func mailRecord(name: String, inode: Int64) throws -> MailQueueRecord? {
        try mailRecords(where: "WHERE name = ? AND inode = ?", [.text(name), .integer(inode)]).first
    }

    public func mailRecords() throws -> [MailQueueRecord] {
        try mailRecords(where: "", [])
    }

    public func saveMailRecord(_ record: MailQueueRecord) throws {
        try database.withLock { db in
            try db.execute("""
                INSERT OR REPLACE INTO mail_queue (name, inode, attempts, first_failure, next_attempt, last_error)
                VALUES (?, ?, ?, ?, ?, ?)
                """, [.text(record.name), .integer(record.inode), .integer(Int64(record.attempts)),
                      record.firstFailure.map { .real($0) } ?? .null, record.nextAttempt.map { .real($0) } ?? .null,
                      record.lastError.map { .text($0) } ?? .null])
        }
    }

    /// Drops the record of a message that left the queue.
    public func forgetMailRecord(name: String) throws {
        try database.withLock { db in try db.execute("DELETE FROM mail_queue WHERE name = ?", [.text(name)]) }
    }

    private func mailRecords(where clause: String, _ bindings: [SQLiteValue]) throws -> [MailQueueRecord] {
        try database.withLock { db in
            try db.query("SELECT name, inode, attempts, first_failure, next_attempt, last_error FROM mail_queue \(clause)",
                         bindings)
        }.map { row in
            var record = MailQueueRecord(name: row[0].string ?? "", inode: row[1].int ?? 0)
            record.attempts = Int(row[2].int ?? 0)
            record.firstFailure = row[3].double
            record.nextAttempt = row[4].double
            record.lastError = row[5].string
            return record
        }
    }
}
