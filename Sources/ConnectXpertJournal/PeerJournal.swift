import Foundation

/// How a peer's key came to be pinned.
public enum PeerTrust: String, Sendable {
    /// A person compared the fingerprint and trusted it (`peer trust`).
    case verified
    /// Pinned on first sight, as the rule's `trust: accept-new` allows.
    case accepted
}

/// A peer's key card as we pinned it, and a different card seen since, which waits for a person.
public struct PinnedPeer: Equatable, Sendable {
    public var id: String
    /// The card as published (its text, signature included).
    public var card: String
    public var fingerprint: String
    public var trust: PeerTrust
    public var pinned: Double
    /// A card under the same ID with another key, seen on the drop: nothing goes to or comes from
    /// the peer until `peer trust ID --replace`.
    public var changedCard: String?
    public var changedFingerprint: String?

    public init(id: String, card: String, fingerprint: String, trust: PeerTrust, pinned: Double,
                changedCard: String? = nil, changedFingerprint: String? = nil) {
        self.id = id
        self.card = card
        self.fingerprint = fingerprint
        self.trust = trust
        self.pinned = pinned
        self.changedCard = changedCard
        self.changedFingerprint = changedFingerprint
    }

    static func createTable(in db: SQLiteDatabase) throws {
        try db.execute("""
            CREATE TABLE IF NOT EXISTS peers (
                id TEXT PRIMARY KEY, card TEXT NOT NULL, fingerprint TEXT NOT NULL, trust TEXT NOT NULL,
                pinned REAL NOT NULL, changed_card TEXT, changed_fingerprint TEXT)
            """)
    }
}

extension Journal {
    public func peer(_ id: String) throws -> PinnedPeer? {
        try peers(where: "WHERE id = ?", [.text(id)]).first
    }

    public func peers() throws -> [PinnedPeer] { try peers(where: "ORDER BY id", []) }

    /// Pins (or re-pins) a peer, durably: a pin decides what is accepted later.
    public func pin(_ peer: PinnedPeer) throws {
        try write(durable: true) { db in
            try db.execute("""
                INSERT OR REPLACE INTO peers (id, card, fingerprint, trust, pinned, changed_card, changed_fingerprint)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, [.text(peer.id), .text(peer.card), .text(peer.fingerprint), .text(peer.trust.rawValue),
                      .real(peer.pinned), peer.changedCard.map(SQLiteValue.text) ?? .null,
                      peer.changedFingerprint.map(SQLiteValue.text) ?? .null])
        }
    }

    public func forgetPeer(_ id: String) throws {
        try write(durable: true) { db in try db.execute("DELETE FROM peers WHERE id = ?", [.text(id)]) }
    }

    private func peers(where clause: String, _ bindings: [SQLiteValue]) throws -> [PinnedPeer] {
        try database.withLock { db in
            try db.query("""
                SELECT id, card, fingerprint, trust, pinned, changed_card, changed_fingerprint FROM peers \(clause)
                """, bindings)
        }.map { row in
            PinnedPeer(id: row[0].string ?? "", card: row[1].string ?? "", fingerprint: row[2].string ?? "",
                       trust: PeerTrust(rawValue: row[3].string ?? "") ?? .accepted, pinned: row[4].double ?? 0,
                       changedCard: row[5].string, changedFingerprint: row[6].string)
        }
    }
}

/// Whether our key card is on a remote's drop: published (ours is there), or the ID is taken
/// by another key, which stops sealed sending there until a person acts.
public struct Registration: Equatable, Sendable {
    public enum State: String, Sendable { case published, taken }

    public var remote: String
    public var state: State
    public var fingerprint: String
    /// The fingerprint of the card found under our ID when it is taken.
    public var otherFingerprint: String?
    public var updated: Double

    public init(remote: String, state: State, fingerprint: String, otherFingerprint: String? = nil, updated: Double) {
        self.remote = remote
        self.state = state
        self.fingerprint = fingerprint
        self.otherFingerprint = otherFingerprint
        self.updated = updated
    }

    static func createTable(in db: SQLiteDatabase) throws {
        try db.execute("""
            CREATE TABLE IF NOT EXISTS registrations (
                remote TEXT PRIMARY KEY, state TEXT NOT NULL, fingerprint TEXT NOT NULL, other_fingerprint TEXT,
                updated REAL NOT NULL)
            """)
    }
}

extension Journal {
    public func registrations() throws -> [Registration] {
        try database.withLock { db in
            try db.query("""
                SELECT remote, state, fingerprint, other_fingerprint, updated FROM registrations ORDER BY remote
                """)
        }.map { row in
            Registration(remote: row[0].string ?? "",
                         state: Registration.State(rawValue: row[1].string ?? "") ?? .taken,
                         fingerprint: row[2].string ?? "", otherFingerprint: row[3].string, updated: row[4].double ?? 0)
        }
    }

    public func save(_ registration: Registration) throws {
        try write(durable: false) { db in
            try db.execute("""
                INSERT OR REPLACE INTO registrations (remote, state, fingerprint, other_fingerprint, updated)
                VALUES (?, ?, ?, ?, ?)
                """, [.text(registration.remote), .text(registration.state.rawValue), .text(registration.fingerprint),
                      registration.otherFingerprint.map(SQLiteValue.text) ?? .null, .real(registration.updated)])
        }
    }
}

/// The per-pair sequence numbers of sealed objects: the next we give what we seal to a peer, and
/// those we opened from one (a number opened before, by another transfer, is a replay).
enum SealedSequences {
    static func createTables(in db: SQLiteDatabase) throws {
        try db.execute("CREATE TABLE IF NOT EXISTS sequences_sent (peer TEXT PRIMARY KEY, next INTEGER NOT NULL)")
        try db.execute("""
            CREATE TABLE IF NOT EXISTS sequences_opened (
                sender TEXT NOT NULL, sequence INTEGER NOT NULL, object TEXT NOT NULL, record INTEGER NOT NULL,
                PRIMARY KEY (sender, sequence))
            """)
    }
}

extension Journal {
    /// The sequence number for the next object sealed to `peer`. Committed, not yet durable: the
    /// batch driver makes it so before the object is renamed into place, so a number on the drop is
    /// never given again, even across a power loss.
    public func takeSequence(to peer: String) throws -> Int64 {
        try write(durable: false) { db in try Self.takeSequence(to: peer, in: db) }
    }

    /// `takeSequence(to:)` within a commit.
    static func takeSequence(to peer: String, in db: SQLiteDatabase) throws -> Int64 {
        try db.execute("INSERT OR IGNORE INTO sequences_sent (peer, next) VALUES (?, 1)", [.text(peer)])
        let next = try db.query("SELECT next FROM sequences_sent WHERE peer = ?", [.text(peer)]).first?[0].int ?? 1
        try db.execute("UPDATE sequences_sent SET next = ? WHERE peer = ?", [.integer(next + 1), .text(peer)])
        return next
    }

    /// The transfer that opened `sequence` from `sender`, and the object it was; nil when none did.
    public func opened(from sender: String, sequence: Int64) throws -> (object: String, record: Int64)? {
        try database.withLock { db in
            try db.query("SELECT object, record FROM sequences_opened WHERE sender = ? AND sequence = ?",
                         [.text(sender), .integer(sequence)])
        }.first.map { ($0[0].string ?? "", $0[1].int ?? 0) }
    }

    /// Whether `object` from `sender` was opened by a transfer other than `record`.
    public func wasOpened(object: String, from sender: String, otherThan record: Int64) throws -> Bool {
        try database.withLock { db in
            try db.query("SELECT 1 FROM sequences_opened WHERE sender = ? AND object = ? AND record != ? LIMIT 1",
                         [.text(sender), .text(object), .integer(record)])
        }.isEmpty == false
    }

    public func markOpened(from sender: String, sequence: Int64, object: String, record: Int64) throws {
        try write(durable: false) { db in
            try db.execute("""
                INSERT OR REPLACE INTO sequences_opened (sender, sequence, object, record) VALUES (?, ?, ?, ?)
                """,
                           [.text(sender), .integer(sequence), .text(object), .integer(record)])
        }
    }
}
