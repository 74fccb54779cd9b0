import Foundation

/// A message between us and a peer, either way, as the journal keeps it: the conversation's
/// history, in the order we queued or received the messages (its `id`).
public struct StoredMessage: Equatable, Sendable {
    public enum State: String, Sendable {
        /// Ours, waiting to go to the drop (sealed once, then sent as sealed).
        case queued
        /// Ours, whole on the drop under its temporary name; the rename to its own is next.
        case staged
        /// Ours, on the drop.
        case sent
        /// From a peer whose key is not pinned: opened, but whose signature waits for `peer trust`.
        case held
        /// From a peer, signed by its pinned key.
        case delivered
    }

    public var id: Int64
    public var direction: TransferDirection
    public var peer: String
    /// When it was written, by the sender's clock (seconds since 1970).
    public var time: Double
    public var text: String
    public var state: State
    public var unread: Bool
    /// How the key that signed an incoming message was pinned; nil while it is held.
    public var trust: PeerTrust?
    /// The pair's sequence number, once sealed.
    public var sequence: Int64?
    public var lastError: String?

    public init(id: Int64, direction: TransferDirection, peer: String, time: Double, text: String, state: State,
                unread: Bool, trust: PeerTrust? = nil, sequence: Int64? = nil, lastError: String? = nil) {
        self.id = id
        self.direction = direction
        self.peer = peer
        self.time = time
        self.text = text
        self.state = state
        self.unread = unread
        self.trust = trust
        self.sequence = sequence
        self.lastError = lastError
    }

    static func createTable(in db: SQLiteDatabase) throws {
        try db.execute("""
            CREATE TABLE IF NOT EXISTS messages (
                id INTEGER PRIMARY KEY, direction TEXT NOT NULL, peer TEXT NOT NULL, time REAL NOT NULL,
                text TEXT NOT NULL, state TEXT NOT NULL, unread INTEGER NOT NULL, trust TEXT, sequence INTEGER,
                object TEXT, sealed TEXT, destination TEXT, temporary TEXT, queued_as TEXT UNIQUE, last_error TEXT)
            """)
        try db.execute("CREATE INDEX IF NOT EXISTS messages_of_peer ON messages(peer, direction)")
    }

    static let columns = "id, direction, peer, time, text, state, unread, trust, sequence, last_error"

    init?(_ row: [SQLiteValue]) {
        guard let id = row[0].int, let direction = row[1].string.flatMap(TransferDirection.init(rawValue:)),
              let state = row[5].string.flatMap(State.init(rawValue:)) else { return nil }
        self.init(id: id, direction: direction, peer: row[2].string ?? "", time: row[3].double ?? 0,
                  text: row[4].string ?? "", state: state, unread: row[6].int == 1,
                  trust: row[7].string.flatMap(PeerTrust.init(rawValue:)), sequence: row[8].int,
                  lastError: row[9].string)
    }
}

/// A message sealed to its peer, with where it goes on the drop and the temporary name it is
/// written under first.
public struct OutgoingMessage: Sendable {
    public var object: String
    public var sealed: [UInt8]
    public var destination: String
    public var temporary: String

    public init(object: String, sealed: [UInt8], destination: String, temporary: String) {
        self.object = object
        self.sealed = sealed
        self.destination = destination
        self.temporary = temporary
    }
}

/// A message from a peer, opened and checked, to store: `plaintext` (the opened object) is kept
/// for a held one, to check its signature once the sender's key is pinned.
public struct ReceivedMessage: Sendable {
    public var peer: String
    public var time: Double
    public var text: String
    public var sequence: Int64
    public var object: String
    public var trust: PeerTrust?
    public var plaintext: [UInt8]?
    /// Its path on the drop, until its copy there is deleted.
    public var remotePath: String

    public init(peer: String, time: Double, text: String, sequence: Int64, object: String, trust: PeerTrust?,
                plaintext: [UInt8]?, remotePath: String) {
        self.remotePath = remotePath
        self.peer = peer
        self.time = time
        self.text = text
        self.sequence = sequence
        self.object = object
        self.trust = trust
        self.plaintext = plaintext
    }
}

extension Journal {
    /// Queues messages, oldest first, in one durable commit, each under the name of the spool file
    /// that asked for it: a name queued before is not queued again.
    public func queueMessages(_ queued: [(name: String, to: String, text: String, time: Double)]) throws {
        guard !queued.isEmpty else { return }
        try write(durable: true) { db in
            for message in queued {
                try db.execute("""
                    INSERT OR IGNORE INTO messages (direction, peer, time, text, state, unread, queued_as)
                    VALUES ('out', ?, ?, ?, 'queued', 0, ?)
                    """, [.text(message.to), .real(message.time), .text(message.text), .text(message.name)])
            }
        }
    }

    /// The peers that messages wait for.
    public func peersWithQueuedMessages() throws -> [String] {
        try database.withLock { db in
            try db.query("SELECT DISTINCT peer FROM messages WHERE direction = 'out' AND state IN ('queued', 'staged')")
        }.compactMap { $0[0].string }
    }

    /// Seals every queued message to `peer` not sealed yet, oldest first, in one durable commit:
    /// each takes the pair's next sequence number, and `seal` makes its object and its names on the
    /// drop, kept until it is there. A number on the drop is so never given again, even across a
    /// power loss.
    public func sealQueuedMessages(to peer: String, _ seal: (StoredMessage, Int64) throws -> OutgoingMessage) throws {
        try write(durable: true) { db in
            let rows = try db.query("""
                SELECT \(StoredMessage.columns) FROM messages
                WHERE direction = 'out' AND peer = ? AND state = 'queued' AND sealed IS NULL ORDER BY id
                """, [.text(peer)])
            for message in rows.compactMap(StoredMessage.init) {
                let sequence = try Self.takeSequence(to: peer, in: db)
                let sealed = try seal(message, sequence)
                try db.execute("""
                    UPDATE messages SET sequence = ?, object = ?, sealed = ?, destination = ?, temporary = ?
                    WHERE id = ?
                    """, [.integer(sequence), .text(sealed.object), .text(Data(sealed.sealed).base64EncodedString()),
                          .text(sealed.destination), .text(sealed.temporary), .integer(message.id)])
            }
        }
    }

    /// The sealed messages on their way to `peer` (queued or staged), oldest first.
    public func sealedMessages(to peer: String) throws -> [(message: StoredMessage, sealed: OutgoingMessage)] {
        try database.withLock { db in
            try db.query("""
                SELECT \(StoredMessage.columns), object, sealed, destination, temporary FROM messages
                WHERE direction = 'out' AND peer = ? AND state IN ('queued', 'staged') AND sealed IS NOT NULL
                ORDER BY id
                """, [.text(peer)])
        }.compactMap { row in
            guard let message = StoredMessage(row), let object = row[10].string,
                  let sealed = row[11].string.flatMap({ Data(base64Encoded: $0) }),
                  let destination = row[12].string, let temporary = row[13].string else { return nil }
            return (message, OutgoingMessage(object: object, sealed: Array(sealed), destination: destination,
                                             temporary: temporary))
        }
    }

    /// Messages whole on the drop under their temporary names, durably: each is renamed next, and a
    /// temporary name gone then means it was.
    public func markStaged(messages ids: [Int64]) throws {
        guard !ids.isEmpty else { return }
        try write(durable: true) { db in
            for id in ids { try db.execute("UPDATE messages SET state = 'staged' WHERE id = ?", [.integer(id)]) }
        }
    }

    /// Messages on the drop under their own names: their sealed objects are no longer kept.
    public func markSent(messages ids: [Int64]) throws {
        guard !ids.isEmpty else { return }
        try write(durable: false) { db in
            for id in ids {
                try db.execute("UPDATE messages SET state = 'sent', sealed = NULL, last_error = NULL WHERE id = ?",
                               [.integer(id)])
            }
        }
    }

    /// Why the queued messages to `peer` wait, for `message list`; nil once they went.
    public func saveMessageError(to peer: String, _ error: String?) throws {
        try write(durable: false) { db in
            try db.execute("""
                UPDATE messages SET last_error = ?
                WHERE direction = 'out' AND peer = ? AND state IN ('queued', 'staged')
                """,
                           [error.map(SQLiteValue.text) ?? .null, .text(peer)])
        }
    }

    /// Stores messages received, in the order given, with their sequence numbers marked opened,
    /// in one durable commit: their remote copies may be deleted once this returns (and then
    /// `markRemoteCopiesDeleted`).
    public func store(_ received: [ReceivedMessage]) throws {
        guard !received.isEmpty else { return }
        try write(durable: true) { db in
            for message in received {
                try db.execute("""
                    INSERT INTO messages (direction, peer, time, text, state, unread, trust, sequence, object, sealed,
                                          destination)
                    VALUES ('in', ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)
                    """, [.text(message.peer), .real(message.time), .text(message.text),
                          .text(message.trust == nil ? "held" : "delivered"),
                          message.trust.map { .text($0.rawValue) } ?? .null, .integer(message.sequence),
                          .text(message.object),
                          message.plaintext.map { .text(Data($0).base64EncodedString()) } ?? .null,
                          .text(message.remotePath)])
                // A message's number is opened by no transfer: its record is the message's, negated.
                try db.execute("""
                    INSERT OR REPLACE INTO sequences_opened (sender, sequence, object, record) VALUES (?, ?, ?, ?)
                    """, [.text(message.peer), .integer(message.sequence), .text(message.object),
                          .integer(-db.lastInsertedRow)])
            }
        }
    }

    /// Received messages whose copies on the drop are deleted: one found there again is a replay.
    public func markRemoteCopiesDeleted(from sender: String, sequences: [Int64]) throws {
        guard !sequences.isEmpty else { return }
        try write(durable: false) { db in
            for sequence in sequences {
                try db.execute("""
                    UPDATE messages SET destination = NULL WHERE direction = 'in' AND peer = ? AND sequence = ?
                    """, [.text(sender), .integer(sequence)])
            }
        }
    }

    /// Where the copy of message `sequence` from `sender` is on the drop, when it was received but
    /// its copy there is not deleted yet (a run stopped in between).
    public func remoteCopy(from sender: String, sequence: Int64) throws -> String? {
        try database.withLock { db in
            try db.query("SELECT destination FROM messages WHERE direction = 'in' AND peer = ? AND sequence = ?",
                         [.text(sender), .integer(sequence)])
        }.first?[0].string
    }

    /// The highest sequence number of the messages received from `sender` (0 when none was).
    public func lastMessageSequence(from sender: String) throws -> Int64 {
        try database.withLock { db in
            try db.query("SELECT MAX(sequence) FROM messages WHERE direction = 'in' AND peer = ?", [.text(sender)])
        }.first?[0].int ?? 0
    }

    /// Messages either way, oldest first: those with `peer` (all when nil), only the unread or only
    /// the held ones, the last `limit`.
    public func messages(with peer: String? = nil, unread: Bool = false, held: Bool = false,
                         limit: Int? = nil) throws -> [StoredMessage] {
        var conditions: [String] = [], bindings: [SQLiteValue] = []
        if let peer {
            conditions.append("peer = ?")
            bindings.append(.text(peer))
        }
        if unread { conditions.append("unread = 1") }
        conditions.append(held ? "state = 'held'" : "state != 'held'")
        bindings.append(.integer(Int64(limit ?? Int(Int32.max))))
        return try database.withLock { db in
            try db.query("""
                SELECT * FROM (SELECT \(StoredMessage.columns) FROM messages
                WHERE \(conditions.joined(separator: " AND "))
                ORDER BY id DESC LIMIT ?) ORDER BY id
                """, bindings)
        }.compactMap(StoredMessage.init)
    }

    /// Messages newer than `id`, with `peer`, oldest first (the held ones left out).
    public func messages(with peer: String, after id: Int64) throws -> [StoredMessage] {
        try database.withLock { db in
            try db.query("""
                SELECT \(StoredMessage.columns) FROM messages WHERE peer = ? AND id > ? AND state != 'held' ORDER BY id
                """, [.text(peer), .integer(id)])
        }.compactMap(StoredMessage.init)
    }

    public func message(_ id: Int64) throws -> StoredMessage? {
        try database.withLock { db in
            try db.query("SELECT \(StoredMessage.columns) FROM messages WHERE id = ?", [.integer(id)])
        }.first.flatMap(StoredMessage.init)
    }

    public func markRead(_ ids: [Int64]) throws {
        try write(durable: false) { db in
            for id in ids { try db.execute("UPDATE messages SET unread = 0 WHERE id = ?", [.integer(id)]) }
        }
    }

    /// The held messages from `sender`, oldest first, with the opened objects their signatures are in.
    public func heldMessages(from sender: String) throws -> [(message: StoredMessage, plaintext: [UInt8])] {
        try database.withLock { db in
            try db.query("""
                SELECT \(StoredMessage.columns), sealed FROM messages WHERE peer = ? AND state = 'held' ORDER BY id
                """, [.text(sender)])
        }.compactMap { row in
            guard let message = StoredMessage(row), let plaintext = row[10].string.flatMap({ Data(base64Encoded: $0) })
            else { return nil }
            return (message, Array(plaintext))
        }
    }

    /// A held message's signature was checked with its sender's key, now pinned (`trust`): it is
    /// delivered; or it was not the key's (nil): it is deleted, as a forgery.
    public func release(held id: Int64, trust: PeerTrust?) throws {
        try write(durable: true) { db in
            if let trust {
                try db.execute("UPDATE messages SET state = 'delivered', trust = ?, sealed = NULL WHERE id = ?",
                               [.text(trust.rawValue), .integer(id)])
            } else {
                try db.execute("DELETE FROM messages WHERE id = ?", [.integer(id)])
            }
        }
    }
}
