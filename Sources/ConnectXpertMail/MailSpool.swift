import ConnectXpertPolicy
import ConnectXpertSpool
import ConnectXpertSystem
import Foundation

/// The mail queue's folders below the spool:
///
///     mail/outbox/   *.eml waiting to be sent (a `<name>.envelope` beside one written by sendmail)
///     mail/sent/     sent messages (unless the policy deletes them)
///     mail/failed/   messages that cannot be sent, each with `<name>.reason`
///
/// A message is queued by writing it under a name starting with `.` and renaming it to `*.eml`,
/// so the agent never sees half a message.
public struct MailSpool: Sendable {
    public let root: String

    public init(spool: String) { root = joinPath(spool, "mail") }

    public var outbox: String { joinPath(root, "outbox") }
    public var sent: String { joinPath(root, "sent") }
    public var failed: String { joinPath(root, "failed") }

    public func createLayout() throws {
        for folder in [outbox, sent, failed] { try FileSystem.createDirectories(folder) }
    }

    /// A message waiting in the outbox.
    public struct Entry: Sendable {
        public let name: String
        public let path: String
        public let status: FileStatus

        /// The journal keys retry state by name and inode, so a new file under an old name starts afresh.
        public var inode: Int64 { Int64(bitPattern: status.inode) }
    }

    /// The `*.eml` entries of the outbox, oldest first (by modification time, then name).
    public func queued() throws -> [Entry] {
        try FileSystem.contents(of: outbox).filter { $0.hasSuffix(".eml") && !Names.isTemporary($0) }.compactMap { name in
            let path = joinPath(outbox, name)
            return try FileSystem.status(path).map { Entry(name: name, path: path, status: $0) }
        }.sorted { ($0.status.modificationNanoseconds, $0.name) < ($1.status.modificationNanoseconds, $1.name) }
    }

    public func envelopePath(for name: String) -> String {
        joinPath(outbox, String(name.dropLast(".eml".count)) + ".envelope")
    }

    /// The envelope `sendmail` stored with a message, if any.
    public func envelope(for name: String) throws -> Envelope? {
        do {
            return Envelope(parsing: String(decoding: try FileSystem.readFile(envelopePath(for: name)), as: UTF8.self))
        } catch let error as SystemError where error.isNotFound {
            return nil
        }
    }

    public func saveEnvelope(_ envelope: Envelope, for name: String) throws {
        try FileSystem.writeFileAtomically(envelopePath(for: name), contents: Array(envelope.text.utf8))
    }

    /// Queues a message: `write` receives a function that appends bytes to it. The message is
    /// written under a hidden name, fsynced, its envelope (if any) put in place, then renamed to
    /// `<time>.<microseconds>P<pid>R<random>.eml`. Returns that name.
    public func enqueue(envelope: Envelope?, write: (([UInt8]) throws -> Void) throws -> Void) throws -> String {
        try createLayout()
        var now = timeval()
        gettimeofday(&now, nil)
        let stem = "\(now.tv_sec).\(String(format: "%06d", Int(now.tv_usec)))P\(getpid())R\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
        let name = stem + ".eml"
        let temporary = joinPath(outbox, ".\(stem).tmp")
        do {
            let file = try FileDescriptor.create(temporary, mode: 0o600)
            try write { try file.write($0) }
            try file.sync()
            if let envelope { try saveEnvelope(envelope, for: name) }
            try FileSystem.renameNoReplace(temporary, to: joinPath(outbox, name))
            try FileSystem.syncDirectory(outbox)
        } catch {
            _ = try? FileSystem.removeIfPresent(temporary)
            _ = try? FileSystem.removeIfPresent(envelopePath(for: name))
            throw error
        }
        return name
    }

    /// Moves a sent message to `sent/` (or deletes it) and drops its envelope.
    public func finish(_ name: String, archive: Bool) throws {
        let path = joinPath(outbox, name)
        if archive { _ = try Spool.move(path, toFreeNameAt: joinPath(sent, name)) } else { try FileSystem.remove(path) }
        _ = try FileSystem.removeIfPresent(envelopePath(for: name))
    }

    /// Moves a message that cannot be sent to `failed/` with `<name>.reason`; with `keepQueued`
    /// a link is made instead (the message was sent to some recipients and goes on).
    @discardableResult
    public func fail(_ name: String, reason: String, advice: String, keepQueued: Bool = false) throws -> String {
        let path = joinPath(outbox, name)
        let destination = try Spool.move(path, toFreeNameAt: joinPath(failed, name), linking: keepQueued)
        if !keepQueued { _ = try FileSystem.removeIfPresent(envelopePath(for: name)) }
        try Spool.writeReason(for: destination, about: ["message: \(name)"], reason: reason, advice: advice)
        return destination
    }
}
