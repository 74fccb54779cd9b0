import ConnectXpertPolicy
import ConnectXpertSystem
import Foundation

/// The spool tree:
///
///     outbox/<recipient>/…   files users drop to send (sub-folders kept)
///     inbox/<sender>/…       files received (default destination)
///     sent/<recipient>/…     sent files, when a rule archives
///     failed/<recipient>/…   files that cannot be sent, each with a `.reason`
///     messages/outbox/       messages queued by `message send`
///     jobs/                  job requests (`screen-share.yaml`) and their `.status` files
///     .state/                the journal and the agent's lock
public struct Spool: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    public var outbox: String { joinPath(root, "outbox") }
    public var inbox: String { joinPath(root, "inbox") }
    public var sent: String { joinPath(root, "sent") }
    public var failed: String { joinPath(root, "failed") }
    public var jobs: String { joinPath(root, "jobs") }
    public var state: String { joinPath(root, ".state") }
    public var journal: String { joinPath(state, "journal.sqlite") }
    public var lock: String { joinPath(state, "agent.lock") }

    public func outbox(for recipient: String) -> String { joinPath(outbox, recipient) }

    /// The recipient whose outbox folder holds `path` (or is `path`).
    public func recipient(containing path: String) -> String? {
        let prefix = outbox + "/"
        guard path.hasPrefix(prefix) else { return nil }
        return path.dropFirst(prefix.count).split(separator: "/").first.map(String.init)
    }

    /// Creates the folders that are missing.
    public func createLayout() throws {
        for folder in [outbox, inbox, sent, failed, jobs, state, messageOutbox] {
            try FileSystem.createDirectories(folder)
        }
    }

    /// Splits an absolute path below `outbox/` into recipient and path below the recipient's folder.
    public func outboxItem(at path: String) -> (recipient: String, path: String)? {
        let prefix = outbox + "/"
        guard path.hasPrefix(prefix) else { return nil }
        let parts = path.dropFirst(prefix.count).split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return nil }
        return (parts[0], parts[1])
    }

    /// Moves a file that cannot be sent to `failed/<recipient>/<path>` (never over another file)
    /// and writes `<name>.reason` beside it. Returns where the file went.
    @discardableResult
    public func moveToFailed(recipient: String, path: String, reason: String, advice: String) throws -> String {
        let source = joinPath(outbox(for: recipient), path)
        let destination = try moveAside(source, into: joinPath(failed, recipient), path: path)
        try Spool.writeReason(for: destination, about: ["file: \(Names.printable(path))", "recipient: \(recipient)"],
                              reason: reason, advice: advice)
        return destination
    }

    /// Writes `<failed file>.reason`: what it is (`about`), when and why it failed, what to do; one
    /// line each, whatever names and server texts they hold. A name too long for `.reason` to be added
    /// is cut short for it.
    public static func writeReason(for failedFile: String, about: [String], reason: String, advice: String) throws {
        let lines = about + ["failed at: \(ISO8601DateFormatter().string(from: Date()))", "reason: \(reason)", "what to do: \(advice)"]
        let name = prefix(of: lastComponent(of: failedFile), fittingIn: 255 - ".reason".utf8.count)
        try FileSystem.writeFileAtomically(joinPath(parentDirectory(of: failedFile), name + ".reason"),
                                           contents: Array((lines.map(Names.printable).joined(separator: "\n") + "\n").utf8))
    }

    /// Moves a sent file to `sent/<recipient>/<path>`; returns where it went.
    @discardableResult
    public func archive(recipient: String, path: String) throws -> String {
        try moveAside(joinPath(outbox(for: recipient), path), into: joinPath(sent, recipient), path: path)
    }

    private func moveAside(_ source: String, into folder: String, path: String) throws -> String {
        try Spool.move(source, toFreeNameAt: joinPath(folder, path))
    }

    /// Renames `source` to `destination`, or to `name (1).ext`, `name (2).ext`, … when that is
    /// taken (never over another file); creates the folder and fsyncs it. Returns the name used.
    /// With `linking`, `source` stays and a hard link is made instead.
    public static func move(_ source: String, toFreeNameAt wanted: String, linking: Bool = false) throws -> String {
        var destination = wanted
        try FileSystem.createDirectories(parentDirectory(of: destination))
        var number = 0
        while true {
            do {
                if linking { try FileSystem.link(source, to: destination) } else { try FileSystem.renameNoReplace(source, to: destination) }
                try FileSystem.syncDirectory(parentDirectory(of: destination))
                return destination
            } catch let error as SystemError where error.isAlreadyExists {
                number += 1
                destination = Names.alternative(to: wanted, number: number)
            }
        }
    }
}

/// One thing found in the outbox.
public struct OutboxEntry: Hashable, Sendable {
    public var recipient: String
    /// Below `outbox/<recipient>/`, `/`-separated.
    public var path: String
    public var kind: FileStatus.Kind
    public var size: Int64
}

extension Spool {
    /// A walk over everything below `outbox/<recipient>/` folders (or one recipient's), except
    /// temporary names; sub-folders are entered, symlinks are reported, not followed.
    public func walkOutbox(recipient: String? = nil) -> OutboxWalk { OutboxWalk(spool: self, recipient: recipient) }

    /// What stands in `outbox/` (or is `outbox/<recipient>`) but is no recipient folder, with its
    /// kind: a symbolic link (never followed), a file put there directly, and the like.
    public func strays(recipient: String? = nil) -> [(name: String, kind: FileStatus.Kind)] {
        let names = recipient.map { [$0] } ?? (try? FileSystem.contents(of: outbox)) ?? []
        return names.filter { !Names.isTemporary($0) }.compactMap { name in
            guard let status = (try? FileSystem.status(outbox(for: name))) ?? nil, status.kind != .directory else { return nil }
            return (name, status.kind)
        }
    }
}

/// The outbox's files, found one at a time by a walk with open directory streams, in the file
/// system's order: the walk holds a folder's stream, not its listing, so it costs the same memory
/// however many files wait.
public final class OutboxWalk: IteratorProtocol {
    public enum Item: Hashable {
        case file(OutboxEntry)
        /// A path below `outbox/` whose name is not UTF-8, escaped (`bob/caf\xE9.txt`): it cannot be
        /// sent, as names on a drop are text.
        case nameNotText(String)
        /// A folder that cannot be read, with why.
        case unreadable(path: String, error: String)
    }

    private let spool: Spool
    /// The recipient folders still to walk: read from `outbox/`, or the one asked for.
    private var recipients: DirectoryStream?
    private var only: String?
    private var recipient = ""
    /// The folders being read, the deepest last, with their paths below the recipient's folder.
    private var folders: [(stream: DirectoryStream, relative: String)] = []
    /// Why the outbox itself cannot be read, said first.
    private var failure: Item?

    init(spool: Spool, recipient: String?) {
        self.spool = spool
        only = recipient
        if recipient == nil { failure = enter(spool.outbox, relative: nil) }
    }

    public func next() -> Item? {
        if let failure {
            self.failure = nil
            return failure
        }
        while true {
            guard let (stream, relative) = folders.last else {
                switch nextRecipient() {
                case nil: return nil
                case .notText(let escaped): return .nameNotText(escaped)
                case .text(let name):
                    if let item = enterRecipient(name) { return item }
                    continue
                }
            }
            guard let entry = stream.next() else {
                folders.removeLast()
                continue
            }
            let name: String
            switch entry {
            case .notText(let escaped): return .nameNotText(joinPath(recipient, relative, escaped))
            case .text(let text): name = text
            }
            guard !Names.isTemporary(name) else { continue }
            let path = relative.isEmpty ? name : relative + "/" + name
            let full = joinPath(spool.outbox(for: recipient), path)
            guard let status = (try? FileSystem.status(full)) ?? nil else { continue }
            if status.kind == .directory {
                if let item = enter(full, relative: path) { return item }
            } else {
                return .file(OutboxEntry(recipient: recipient, path: path, kind: status.kind, size: status.size))
            }
        }
    }

    /// The name of the next recipient folder to walk: the one asked for, or the next in `outbox/`.
    private func nextRecipient() -> DirectoryStream.Name? {
        if let one = only {
            only = nil
            return .text(one)
        }
        guard let name = recipients?.next() else {
            recipients = nil
            return nil
        }
        return name
    }

    /// Starts on a recipient's folder, unless it is a temporary name or no folder; an item when it
    /// cannot be read.
    private func enterRecipient(_ name: String) -> Item? {
        let folder = spool.outbox(for: name)
        guard !Names.isTemporary(name), (try? FileSystem.status(folder))??.kind == .directory else { return nil }
        recipient = name
        return enter(folder, relative: "")
    }

    /// Opens a folder to read next (`outbox/` itself when `relative` is nil); an item when it
    /// cannot be read (nil too when it went away).
    private func enter(_ folder: String, relative: String?) -> Item? {
        do {
            let stream = try DirectoryStream(folder)
            if let relative { folders.append((stream, relative)) } else { recipients = stream }
            return nil
        } catch let error as SystemError where error.isNotFound {
            return nil
        } catch {
            return .unreadable(path: folder, error: "\(error)")
        }
    }
}
