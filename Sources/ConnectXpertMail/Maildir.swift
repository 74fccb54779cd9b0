import ConnectXpertSystem
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A Maildir (`tmp/`, `new/`, `cur/`) as mutt, Dovecot and mbsync use it. A message is written to
/// `tmp/`, fsynced, then renamed into `new/`; readers never see part of a message.
public struct Maildir: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    public func create() throws {
        for folder in ["tmp", "new", "cur"] { try FileSystem.createDirectories(joinPath(path, folder), mode: 0o700) }
    }

    /// A name no other delivery uses: `<seconds>.M<microseconds>P<pid>Q<count>R<random>.<host>`,
    /// as qmail and Dovecot make them.
    public static func uniqueName() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let count = deliveryCounter.add(1, ordering: .relaxed).newValue
        let host = ProcessInfo.processInfo.hostName.replacingOccurrences(of: "/", with: "\\057")
            .replacingOccurrences(of: ":", with: "\\072")
        return "\(now.tv_sec).M\(now.tv_nsec / 1000)P\(getpid())Q\(count)R\(String(UInt32.random(in: .min ... .max), radix: 16)).\(host)"
    }

    /// Starts writing a message that will be called `name`.
    public func beginDelivery(name: String) throws -> MaildirDelivery {
        try MaildirDelivery(maildir: self, name: name)
    }

    /// Where the message called `name` is now: in `new/`, or in `cur/` with flags after a reader
    /// saw it (`name:2,S`); `nil` when it is in neither.
    public func location(of name: String) throws -> String? {
        let fresh = joinPath(path, "new", name)
        if FileSystem.exists(fresh) { return fresh }
        return try FileSystem.contents(of: joinPath(path, "cur"))
            .first { $0 == name || $0.hasPrefix(name + ":") }
            .map { joinPath(path, "cur", $0) }
    }

    /// Removes what a crash left of the delivery of `name` in `tmp/`.
    public func discardPartial(name: String) throws {
        _ = try FileSystem.removeIfPresent(joinPath(path, "tmp", name))
    }

    /// Makes the renames into `new/` durable (once for a batch of deliveries).
    public func syncNew() throws {
        try FileSystem.syncDirectory(joinPath(path, "new"))
    }
}

/// Numbers the deliveries of this process, for unique names.
private let deliveryCounter = Atomic<Int>(0)

/// One message being written into `tmp/`. Bytes arrive as the server sends them (CRLF line ends)
/// and are stored with LF, as Maildir readers expect.
public final class MaildirDelivery {
    public let name: String
    private let maildir: Maildir
    private let file: FileDescriptor
    private var buffer: [UInt8] = []
    /// A CR ended the previous chunk; whether it ends a line is known with the next byte.
    private var pendingCarriageReturn = false

    fileprivate init(maildir: Maildir, name: String) throws {
        self.maildir = maildir
        self.name = name
        file = try FileDescriptor.open(joinPath(maildir.path, "tmp", name), flags: O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                                       mode: 0o600)
        buffer.reserveCapacity(256 * 1024)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        var offset = 0
        if pendingCarriageReturn {
            pendingCarriageReturn = false
            if bytes[0] != UInt8(ascii: "\n") { buffer.append(UInt8(ascii: "\r")) }
        }
        while offset < bytes.count {
            guard let found = memchr(base + offset, Int32(UInt8(ascii: "\r")), bytes.count - offset) else {
                buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset...]))
                break
            }
            let carriageReturn = base.distance(to: UnsafeRawPointer(found))
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<carriageReturn]))
            offset = carriageReturn + 1
            if offset == bytes.count {
                pendingCarriageReturn = true
            } else if bytes[offset] != UInt8(ascii: "\n") {
                buffer.append(UInt8(ascii: "\r"))
            }
        }
        if buffer.count >= 256 * 1024 { try flush() }
    }

    /// Makes the message durable and moves it into `new/`; returns its path there.
    @discardableResult
    public func commit() throws -> String {
        if pendingCarriageReturn { buffer.append(UInt8(ascii: "\r")) }
        try flush()
        try file.sync()
        let destination = joinPath(maildir.path, "new", name)
        try FileSystem.renameNoReplace(joinPath(maildir.path, "tmp", name), to: destination)
        return destination
    }

    /// Removes the partial message.
    public func discard() {
        _ = try? maildir.discardPartial(name: name)
    }

    private func flush() throws {
        try buffer.withUnsafeBytes { try file.write($0) }
        buffer.removeAll(keepingCapacity: true)
    }
}

extension Maildir {
    /// A message in the Maildir.
    public struct Message: Sendable {
        public let path: String
        /// In `new/`, or in `cur/` without the `S` (seen) flag.
        public let isUnread: Bool
        public let modificationNanoseconds: Int64
    }

    /// The messages in `new/` and `cur/`, in the order they were delivered.
    public func messages() throws -> [Message] {
        var found: [Message] = []
        for folder in ["new", "cur"] {
            let directory = joinPath(path, folder)
            for name in try FileSystem.contents(of: directory) where !name.hasPrefix(".") {
                guard let status = try FileSystem.status(joinPath(directory, name)), status.kind == .regular else { continue }
                let flags = name.range(of: ":2,").map { name[$0.upperBound...] } ?? ""
                found.append(Message(path: joinPath(directory, name), isUnread: folder == "new" || !flags.contains("S"),
                                     modificationNanoseconds: status.modificationNanoseconds))
            }
        }
        return found.sorted {
            ($0.modificationNanoseconds, lastComponent(of: $0.path)) < ($1.modificationNanoseconds, lastComponent(of: $1.path))
        }
    }

    /// Marks a message seen, as a mail reader does: `new/name` becomes `cur/name:2,S`, and `S` is
    /// added to the flags of one in `cur/`. Returns its new path.
    @discardableResult
    public func markSeen(_ message: Message) throws -> String {
        guard message.isUnread else { return message.path }
        let name = lastComponent(of: message.path)
        let base = name.range(of: ":2,").map { String(name[..<$0.lowerBound]) } ?? name
        let flags = name.range(of: ":2,").map { String(name[$0.upperBound...]) } ?? ""
        let destination = joinPath(path, "cur", base + ":2," + String((flags + "S").sorted()))
        try FileSystem.rename(message.path, to: destination)
        return destination
    }
}
