import ConnectXpertSystem
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where a file stands in its transfer. The order of the states is the order of the steps, and
/// recovery after a crash reads the state to know which steps are done.
public enum TransferState: String, Sendable, CaseIterable {
    /// Waiting for its next attempt (a transfer cancelled by a shutdown).
    case queued
    /// Being copied to a temporary name (remote temp when sending, local temp when receiving).
    case transferring
    /// Receiving sealed: the manifest is downloaded; checking it, downloading the data and opening
    /// it into the temporary file is next.
    case downloaded
    /// Complete under the temporary name; the rename to the final name comes next.
    case staged
    /// Present under its final name at the destination; the after-step (delete, archive, remote delete)
    /// is next. Written only when that step fails: after a crash, `staged` with the temporary name
    /// gone means the same.
    case delivered
    case done
    case failed
}

public enum TransferDirection: String, Sendable { case outgoing = "out", incoming = "in" }

/// One row of the journal.
public struct TransferRecord: Equatable, Sendable {
    public var id: Int64
    public var direction: TransferDirection
    /// The recipient of an outgoing file, the sender of an incoming one.
    public var peer: String
    public var remote: String
    /// Outgoing: the path below `outbox/<peer>/`. Incoming: the path on the remote.
    public var source: String
    /// Outgoing: the remote path; incoming: the local path. Set once chosen (at `staged`).
    public var destination: String?
    /// The temporary name the data is written under.
    public var temporary: String?
    public var size: Int64
    /// The source's identity when the transfer began, to notice a changed file.
    public var modificationNanoseconds: Int64
    public var inode: Int64
    public var state: TransferState
    public var attempts: Int
    public var firstFailure: Double?
    public var nextAttempt: Double?
    public var lastError: String?
    public var bytesDone: Int64
    public var started: Double
    public var updated: Double
    /// The object name of a sealed transfer (its data and manifest on the drop); nil for a plain one.
    public var sealed: String? = nil
    /// A sealed file's manifest, sealed and signed, from `staged` until it is on the drop: it is
    /// made as the data object is uploaded, and goes up once the data is under its final name.
    public var manifest: [UInt8]? = nil
    /// Incoming: the name the remote file is claimed under (renamed to, so that no other agent of our
    /// identity takes it), chosen before the rename; nil for a file received where it is.
    public var claim: String? = nil
}

/// The fsyncs of SQLite's write-ahead log, shared by the commits they cover (a group commit): an
/// fsync that began after a commit covers it, so that commit's writer need not fsync again.
/// Concurrent fsyncs are not serialized here: the kernel's journal merges them.
final class LogSync: Sendable {
    /// The log, kept open for fsync; SQLite keeps the file while a connection is open.
    private let file: FileDescriptor
    /// Commits so far; each takes the next number, under the database lock, once committed.
    private let commits = Atomic<UInt64>(0)
    /// The highest commit number known to be on disk.
    private let synced = Atomic<UInt64>(0)

    init(path: String) throws {
        file = try FileDescriptor.open(path, flags: O_RDWR)
    }

    /// Numbers a commit; call it under the database lock, right after the commit.
    func committed() -> UInt64 {
        commits.add(1, ordering: .sequentiallyConsistent).newValue
    }

    /// The number of the last commit so far.
    var lastCommit: UInt64 { commits.load(ordering: .sequentiallyConsistent) }

    /// Returns once the commit numbered `ticket` is on disk.
    func sync(through ticket: UInt64) throws {
        guard synced.load(ordering: .sequentiallyConsistent) < ticket else { return }
        let covered = commits.load(ordering: .sequentiallyConsistent)
        try file.sync()
        var known = synced.load(ordering: .sequentiallyConsistent)
        while known < covered {
            let (exchanged, current) = synced.compareExchange(expected: known, desired: covered, ordering: .sequentiallyConsistent)
            if exchanged { break }
            known = current
        }
    }
}

/// The durable record of every transfer: SQLite in WAL mode with `synchronous=NORMAL`, so every
/// commit survives a crash of the process (`kill -9`). A write marked `durable` also survives a
/// power loss: after its commit the write-ahead log is fsynced, outside the database lock and shared
/// with concurrent durable writes. Safe to share between threads.
public final class Journal: Sendable {
    let database: Mutex<SQLiteDatabase>
    private let log: LogSync
    public let path: String

    public init(path: String) throws {
        let db = try SQLiteDatabase(path: path)
        try db.execute("PRAGMA journal_mode=WAL")
        try db.execute("PRAGMA synchronous=NORMAL")
        try db.execute("""
            CREATE TABLE IF NOT EXISTS transfers (
                id INTEGER PRIMARY KEY,
                direction TEXT NOT NULL, peer TEXT NOT NULL, remote TEXT NOT NULL,
                source TEXT NOT NULL, destination TEXT, temporary TEXT,
                size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,
                state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                first_failure REAL, next_attempt REAL, last_error TEXT,
                bytes_done INTEGER NOT NULL DEFAULT 0, started REAL NOT NULL, updated REAL NOT NULL)
            """)
        // One index, on columns a transfer never changes: a state change then rewrites one page of
        // the database, not three (journals of earlier versions also indexed the state).
        // `unfinished()` and `history()` scan the table, but only at start-up and for `status`.
        // Journals of earlier versions lack the sealed exchange's and the claims' columns.
        let columns = try db.query("PRAGMA table_info(transfers)").compactMap { $0[1].string }
        for added in ["sealed", "manifest", "claim"] where !columns.contains(added) {
            try db.execute("ALTER TABLE transfers ADD COLUMN \(added) TEXT")
        }
        try db.execute("DROP INDEX IF EXISTS transfers_by_state")
        try db.execute("DROP INDEX IF EXISTS transfers_by_source")
        try db.execute("CREATE INDEX IF NOT EXISTS transfers_of_source ON transfers(direction, peer, source, remote)")
        try MailQueueRecord.createTable(in: db)
        try FetchedMessage.createTable(in: db)
        try PinnedPeer.createTable(in: db)
        try Registration.createTable(in: db)
        try SealedSequences.createTables(in: db)
        try StoredMessage.createTable(in: db)
        database = Mutex(db)
        log = try LogSync(path: path + "-wal")
        self.path = path
    }

    private static let columns = """
        id, direction, peer, remote, source, destination, temporary, size, mtime_ns, inode, state, attempts,
        first_failure, next_attempt, last_error, bytes_done, started, updated, sealed, manifest, claim
        """

    /// The unfinished transfer of a source, or else its last finished one (`done`), in one query:
    /// every file asks this first. A source has one unfinished transfer at most (one begins only
    /// when there is none), and it is the source's newest record.
    public func standing(_ direction: TransferDirection, remote: String, peer: String,
                         source: String) throws -> (active: TransferRecord?, lastDone: TransferRecord?) {
        guard let newest = try select(
            "WHERE direction = ? AND peer = ? AND source = ? AND remote = ? AND state != 'failed' ORDER BY id DESC LIMIT 1",
            [.text(direction.rawValue), .text(peer), .text(source), .text(remote)]).first else { return (nil, nil) }
        return newest.state == .done ? (nil, newest) : (newest, nil)
    }

    /// The newest record of a source, in any state.
    public func latest(_ direction: TransferDirection, remote: String, peer: String, source: String) throws -> TransferRecord? {
        try select("WHERE direction = ? AND peer = ? AND source = ? AND remote = ? ORDER BY id DESC LIMIT 1",
                   [.text(direction.rawValue), .text(peer), .text(source), .text(remote)]).first
    }

    /// Every transfer that is not done or failed.
    public func unfinished() throws -> [TransferRecord] {
        try select("WHERE state NOT IN ('done', 'failed') ORDER BY id", [])
    }

    /// Sealed objects refused on receipt (tampered, forged, replayed…), the newest first.
    public func refusedSealed(limit: Int) throws -> [TransferRecord] {
        try select("WHERE direction = 'in' AND state = 'failed' AND sealed IS NOT NULL ORDER BY id DESC LIMIT ?",
                   [.integer(Int64(limit))])
    }

    /// The newest transfers first.
    public func history(limit: Int) throws -> [TransferRecord] {
        try select("WHERE state IN ('done', 'failed') ORDER BY updated DESC, id DESC LIMIT ?", [.integer(Int64(limit))])
    }

    /// Starts a record in `transferring`, with the names it will use: a temporary file that a
    /// stopped process (`kill -9`) leaves behind is then always found and removed. Not fsynced: after
    /// a power loss during the transfer, a hidden temporary file may be left; the next durable write
    /// (`staged`) makes this one durable too. A received sealed object's record names its object
    /// from the first commit on: a run stopped before a second one would otherwise resume it as a
    /// plain file, and deliver its manifest. So does the claim of a received file, made once this
    /// commit is: a run stopped after the rename then finds the file. Returns the record.
    public func begin(_ direction: TransferDirection, peer: String, remote: String, source: String, size: Int64,
                      modificationNanoseconds: Int64, inode: Int64, destination: String, temporary: String,
                      sealed: String? = nil, claim: String? = nil) throws -> TransferRecord {
        let now = Date().timeIntervalSince1970
        let id = try write(durable: false) { db in
            try db.execute("""
                INSERT INTO transfers (direction, peer, remote, source, destination, temporary, size, mtime_ns, inode,
                                       state, started, updated, sealed, claim)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'transferring', ?, ?, ?, ?)
                """, [.text(direction.rawValue), .text(peer), .text(remote), .text(source), .text(destination),
                      .text(temporary), .integer(size), .integer(modificationNanoseconds), .integer(inode),
                      .real(now), .real(now), sealed.map { .text($0) } ?? .null, claim.map { .text($0) } ?? .null])
            return db.lastInsertedRow
        }
        return TransferRecord(
            id: id, direction: direction, peer: peer, remote: remote, source: source, destination: destination,
            temporary: temporary, size: size, modificationNanoseconds: modificationNanoseconds, inode: inode,
            state: .transferring, attempts: 0, firstFailure: nil, nextAttempt: nil, lastError: nil, bytesDone: 0,
            started: now, updated: now, sealed: sealed, claim: claim)
    }

    /// Writes a record's state and names; `durable` when the next step must not happen unless this
    /// state survives a power loss.
    public func save(_ record: TransferRecord, durable: Bool = false) throws {
        let now = Date().timeIntervalSince1970
        try write(durable: durable) { db in
            try db.execute("""
                UPDATE transfers SET destination = ?, temporary = ?, size = ?, mtime_ns = ?, inode = ?, state = ?,
                    attempts = ?, first_failure = ?, next_attempt = ?, last_error = ?, bytes_done = ?, updated = ?,
                    sealed = ?, manifest = ?, claim = ?
                WHERE id = ?
                """, [record.destination.map { .text($0) } ?? .null, record.temporary.map { .text($0) } ?? .null,
                      .integer(record.size), .integer(record.modificationNanoseconds), .integer(record.inode),
                      .text(record.state.rawValue), .integer(Int64(record.attempts)),
                      record.firstFailure.map { .real($0) } ?? .null, record.nextAttempt.map { .real($0) } ?? .null,
                      record.lastError.map { .text($0) } ?? .null, .integer(record.bytesDone), .real(now),
                      record.sealed.map { .text($0) } ?? .null,
                      record.manifest.map { .text(Data($0).base64EncodedString()) } ?? .null,
                      record.claim.map { .text($0) } ?? .null, .integer(record.id)])
        }
    }

    /// Runs one commit under the database lock; when `durable`, returns only once it is on disk.
    func write<T>(durable: Bool, _ commit: (SQLiteDatabase) throws -> T) throws -> T {
        let (result, ticket) = try database.withLock { db in (try commit(db), log.committed()) }
        if durable { try log.sync(through: ticket) }
        return result
    }

    /// Returns once every commit so far is on disk: one fsync for the writes of several transfers.
    public func makeDurable() throws {
        try log.sync(through: log.lastCommit)
    }

    /// Records bytes moved so far, for `status`; not a durability point.
    public func saveProgress(id: Int64, bytes: Int64) throws {
        try database.withLock { db in
            try db.execute("UPDATE transfers SET bytes_done = ?, updated = ? WHERE id = ?",
                           [.integer(bytes), .real(Date().timeIntervalSince1970), .integer(id)])
        }
    }

    /// Drops records of sources that no longer need them: done records of deleted or replaced files.
    public func forget(id: Int64) throws {
        try database.withLock { db in try db.execute("DELETE FROM transfers WHERE id = ?", [.integer(id)]) }
    }

    private func select(_ clause: String, _ bindings: [SQLiteValue]) throws -> [TransferRecord] {
        try database.withLock { db in
            try db.query("SELECT \(Self.columns) FROM transfers \(clause)", bindings).compactMap(Self.record)
        }
    }

    private static func record(_ row: [SQLiteValue]) -> TransferRecord? {
        guard row.count == 21, let id = row[0].int,
              let direction = row[1].string.flatMap(TransferDirection.init(rawValue:)),
              let state = row[10].string.flatMap(TransferState.init(rawValue:)) else { return nil }
        return TransferRecord(
            id: id, direction: direction, peer: row[2].string ?? "", remote: row[3].string ?? "",
            source: row[4].string ?? "", destination: row[5].string, temporary: row[6].string,
            size: row[7].int ?? 0, modificationNanoseconds: row[8].int ?? 0, inode: row[9].int ?? 0, state: state,
            attempts: Int(row[11].int ?? 0), firstFailure: row[12].double, nextAttempt: row[13].double,
            lastError: row[14].string, bytesDone: row[15].int ?? 0, started: row[16].double ?? 0,
            updated: row[17].double ?? 0, sealed: row[18].string,
            manifest: row[19].string.flatMap { Data(base64Encoded: $0) }.map(Array.init), claim: row[20].string)
    }
}
