import CSSH2
import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation

/// A connection to an SFTP server through libssh2. Large writes and reads are handed to libssh2 in
/// big slices, which it splits into pipelined SFTP packets.
public final class SFTPTransport: Transport {
    public private(set) var features = RemoteFeatures()
    public let endpoint: String
    private let channel: SFTPChannel
    private let base: String
    /// Folders known to exist, so each upload does not re-create its folder.
    private var knownFolders: Set<String> = []
    /// The second SFTP session for `posix-rename@openssh.com`, opened on the first replacing
    /// rename; `nil` when the server will not open one (`MaxSessions 1`), and renames then fall back.
    private lazy var extensionChannel: SFTPExtensionChannel? = try? SFTPExtensionChannel(session: channel.session, endpoint: endpoint)
    /// One transfer buffer per connection: memory stays constant whatever the file size. 2 MiB
    /// keeps about 70 writes in flight; with 4 MiB, a split upload's two streams took the agent to
    /// 62 MiB, near the 64 MiB it must stay under, for no measurable gain.
    private var buffer = [UInt8](repeating: 0, count: 2 << 20)
    /// The file just uploaded, whose CLOSE goes out with the next request (the rename, as a rule):
    /// a round trip less per file. Its data, time and size are confirmed by then.
    private var unclosed: (handle: SFTPHandle, path: String)?

    /// Connects to an `sftp://` remote, whose settings are `settings`.
    public init(remote: Remote, settings: SSHSettings,
                environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        endpoint = "sftp://\(settings.user)@\(settings.host):\(settings.port)" + (remote.path.isEmpty ? "" : "/" + remote.path)
        let socket = try TCPSocket(host: settings.host, port: settings.port, timeout: remote.timeout.seconds)
        let session = try SSHSession(socket: socket, timeout: remote.timeout.seconds, endpoint: endpoint)
        try HostKeyVerifier.verify(session, settings: settings, endpoint: endpoint)
        try Authenticator.authenticate(session, user: settings.user, settings: settings, credentials: remote.credentials,
                                       environment: environment, endpoint: endpoint)
        channel = try SFTPChannel(session: session, endpoint: endpoint)
        base = remote.path
    }

    private func full(_ path: String) -> String {
        if base.isEmpty { return path.isEmpty ? "." : path }
        return path.isEmpty ? base : joinPath(base, path)
    }

    // MARK: Transport

    public func list(_ folder: String) throws -> [RemoteEntry] {
        try closeUploaded()
        let path = full(folder)
        guard let handle = try open(path, flags: 0, mode: 0, type: LIBSSH2_SFTP_OPENDIR, missingIsNil: true) else { return [] }
        var entries: [RemoteEntry] = []
        var name = [CChar](repeating: 0, count: 4096)
        var listed = 0
        while true {
            var attributes = LIBSSH2_SFTP_ATTRIBUTES()
            let length = libssh2_sftp_readdir_ex(handle.raw, &name, name.count, nil, 0, &attributes)
            if length == 0 { break }
            guard length > 0 else { throw failure("list", path) }
            listed += Int(length)
            guard listed <= RemoteEntry.listingLimit else { throw RemoteEntry.listingTooLarge(endpoint, path) }
            let bytes = name.withUnsafeBufferPointer { buffer in
                Array(UnsafeRawBufferPointer(start: buffer.baseAddress, count: Int(length)))
            }
            guard let entryName = FileSystem.text(ofName: bytes) else {
                entries.append(.notText(escapedName: FileSystem.escapedName(bytes)))
                continue
            }
            if entryName == "." || entryName == ".." { continue }
            entries.append(Self.entry(name: entryName, attributes))
        }
        return entries.sorted { $0.name < $1.name }
    }

    public func entry(at path: String) throws -> RemoteEntry? {
        try closeUploaded()
        return try attributes(of: full(path)).map { Self.entry(name: lastComponent(of: path), $0) }
    }

    /// Creates the folder and any missing parent, the base folder included.
    public func makeDirectories(_ folder: String) throws {
        try closeUploaded()
        let target = full(folder)
        var prefix = target.hasPrefix("/") ? "/" : ""
        for component in target.split(separator: "/") where component != "." {
            prefix += (prefix.isEmpty || prefix == "/" ? "" : "/") + component
            guard !knownFolders.contains(prefix) else { continue }
            if libssh2_sftp_mkdir_ex(channel.raw, prefix, UInt32(prefix.utf8.count), 0o755) != 0 {
                // Usually it exists already; otherwise report why it could not be made.
                let mkdirError = failure("create the folder", prefix)
                guard let existing = try attributes(of: prefix), Self.entry(name: "", existing).kind == .directory else {
                    throw mkdirError
                }
            }
            knownFolders.insert(prefix)
        }
    }

    /// `lstat` of a full path; `nil` when nothing is there.
    private func attributes(of path: String) throws -> LIBSSH2_SFTP_ATTRIBUTES? {
        var attributes = LIBSSH2_SFTP_ATTRIBUTES()
        guard libssh2_sftp_stat_ex(channel.raw, path, UInt32(path.utf8.count), LIBSSH2_SFTP_LSTAT, &attributes) == 0 else {
            if isMissing { return nil }
            throw failure("stat", path)
        }
        return attributes
    }

    public func upload(from source: any UploadSource, to path: String, attributes: UploadAttributes,
                       progress: TransferProgress) throws -> Int64 {
        try store(source, at: path, attributes: attributes, helpers: [], progress: progress)
    }

    /// Files of this size and more are written in two streams over two connections: libssh2 1.10
    /// encrypts a connection's data on one core (measured: 10-20 % faster for 512 MiB on 2 cores).
    static let splitThreshold: Int64 = 64 << 20

    public func extraStreams(forUploadOf size: Int64) -> Int {
        features.writesAtOffsets && size >= Self.splitThreshold ? 1 : 0
    }

    /// Files up to this size go out in one WRITE, sent together with the setting of the time and
    /// mode and the size check: a small file costs three round trips (open; write, set, stat;
    /// close and rename), not four.
    static let oneWriteLimit = 16 << 10

    /// With helpers (as many as `extraStreams` asked for), the file is cut into as many parts: this
    /// connection creates the file and writes the first part while each helper, on a thread of its
    /// own, writes one of the others. A server that refuses a write at an offset (asked first) gets
    /// the file in one stream, and `features` says so.
    public func upload(from source: FileDescriptor, to path: String, attributes: UploadAttributes, helpers: [HelperConnection],
                       progress: TransferProgress) throws -> Int64 {
        do {
            return try store(source, at: path, attributes: attributes, helpers: helpers, progress: progress)
        } catch is OffsetWriteRefused {
            features.writesAtOffsets = false
            return try store(source, at: path, attributes: attributes, helpers: [], progress: progress)
        }
    }

    private func store(_ source: any UploadSource, at path: String, attributes: UploadAttributes,
                       helpers: [HelperConnection], progress: TransferProgress) throws -> Int64 {
        try closeUploaded()
        let target = full(path)
        let flags = UInt(LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC)
        guard let handle = try open(target, flags: flags, mode: 0o644, type: LIBSSH2_SFTP_OPENFILE, missingIsNil: false) else {
            throw failure("open", target)
        }
        let size = try source.size()
        // The one WRITE must leave in one piece: the channel's window must take it whole.
        let window = libssh2_channel_window_write_ex(libssh2_sftp_get_channel(channel.raw), nil)
        let oneWrite = helpers.isEmpty && size <= Self.oneWriteLimit && Int64(window) > size + 1024
        if !helpers.isEmpty, let source = source as? FileDescriptor {
            guard try writesAtAnOffset(handle, target) else { throw OffsetWriteRefused() }
            try writeInParts(from: source, size: size, to: handle, target: target, helpers: helpers, progress: progress)
        } else if !oneWrite {
            try write(from: source, range: 0..<Int64.max, to: handle, target: target, progress: progress)
        }
        var settings = LIBSSH2_SFTP_ATTRIBUTES()
        if let time = attributes.modificationNanoseconds {
            settings.flags |= UInt(LIBSSH2_SFTP_ATTR_ACMODTIME)
            settings.atime = UInt(time / 1_000_000_000)
            settings.mtime = settings.atime
        }
        if let mode = attributes.mode {
            settings.flags |= UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS)
            settings.permissions = UInt(LIBSSH2_SFTP_S_IFREG) | UInt(mode)
        }
        var written = LIBSSH2_SFTP_ATTRIBUTES()
        let length = UInt32(target.utf8.count)
        try buffer.withUnsafeMutableBytes { raw in
            let count = oneWrite ? try source.read(filling: UnsafeMutableRawBufferPointer(rebasing: raw[0..<Int(size)]), at: 0) : 0
            // These requests go out together and cost one round trip: libssh2 keeps one request of
            // each kind in flight and matches the replies by id, and the server handles them in the
            // order sent. The CLOSE is not among them: libssh2 frees the handle as soon as the
            // CLOSE is answered, which can be before the others are collected.
            try channel.session.inFlight([
                count == 0 ? nil : InFlightRequest(action: "write") {
                    let sent = libssh2_sftp_write(handle.raw, raw.baseAddress!.assumingMemoryBound(to: CChar.self), count)
                    return sent == count ? 0 : sent < 0 ? Int32(sent) : LIBSSH2_ERROR_SOCKET_SEND
                },
                settings.flags == 0 ? nil : InFlightRequest(action: "set the time and mode of") {
                    libssh2_sftp_fstat_ex(handle.raw, &settings, 1)
                },
                InFlightRequest(action: "stat") {
                    libssh2_sftp_stat_ex(self.channel.raw, target, length, LIBSSH2_SFTP_LSTAT, &written)
                },
            ].compactMap { $0 }, failure: { failure($0, target) })
            if count > 0 { _ = progress(Int64(count)) }
        }
        unclosed = (handle, target)
        return Int64(written.filesize)
    }

    /// Closes the file just uploaded, if that is still to be done. Every request but a rename
    /// (which takes the CLOSE along) comes after this.
    private func closeUploaded() throws {
        guard let (handle, path) = unclosed else { return }
        unclosed = nil
        guard handle.close() == 0 else { throw failure("close", path) }
    }

    /// Writes the first part here and the others through the helpers, each on a thread of its own
    /// that first opens its connection. A part whose helper cannot connect or open the file is
    /// written here, after the first. The first failure of a write stops all of them and is thrown
    /// once all have ended.
    private func writeInParts(from source: FileDescriptor, size: Int64, to handle: SFTPHandle, target: String,
                              helpers: [HelperConnection], progress: TransferProgress) throws {
        let share = size / Int64(helpers.count + 1)
        let parts = SplitUpload()
        let threads = helpers.enumerated().map { index, helper in
            let range = share * Int64(index + 1)..<(index == helpers.count - 1 ? Int64.max : share * Int64(index + 2))
            return BlockingThread("sftp-part-\(index + 1)") {
                guard let connection = try? helper.open() as? SFTPTransport,
                      let part = try? connection.open(target, flags: UInt(LIBSSH2_FXF_WRITE), mode: 0, type: LIBSSH2_SFTP_OPENFILE,
                                                      missingIsNil: false) else {
                    parts.leave(range)
                    return
                }
                do {
                    try connection.writePart(of: source, range: range, to: part, target: target, parts: parts)
                } catch {
                    parts.fail(error)
                }
            }
        }
        var written: Int64 = 0  // by this connection, in the parts it finished
        func writeHere(_ range: Range<Int64>) throws {
            var acknowledged: Int64 = 0
            try write(from: source, range: range, to: handle, target: target) { bytes in
                acknowledged = bytes
                return !parts.failed && progress(written + bytes + parts.helperBytes)
            }
            written += acknowledged
        }
        do {
            try writeHere(0..<share)
            for thread in threads { thread.join() }
            for range in parts.leftOver where !parts.failed { try writeHere(range) }
        } catch {
            parts.fail(error)
        }
        for thread in threads { thread.join() }
        if let error = parts.firstError { throw error }
    }

    /// Whether the server takes a write at an offset, asked with one byte at offset 1 of the new file,
    /// before any other connection opens it (which a server that cannot, such as `rclone serve
    /// sftp` without a VFS cache, answers by keeping only one handle's writes). The first part
    /// overwrites the byte.
    private func writesAtAnOffset(_ handle: SFTPHandle, _ target: String) throws -> Bool {
        libssh2_sftp_seek64(handle.raw, 1)
        guard libssh2_sftp_write(handle.raw, "\0", 1) != 1 else { return true }
        let refusals = [UInt(LIBSSH2_FX_FAILURE), UInt(LIBSSH2_FX_OP_UNSUPPORTED)]
        guard let status = channel.lastStatus, refusals.contains(status) else { throw failure("write", target) }
        return false
    }

    /// A helper's part: bytes `range` of `source`, through `handle`, which it then closes.
    private func writePart(of source: FileDescriptor, range: Range<Int64>, to handle: SFTPHandle, target: String,
                           parts: SplitUpload) throws {
        var reported: Int64 = 0
        try write(from: source, range: range, to: handle, target: target) { bytes in
            parts.addHelperBytes(bytes - reported)
            reported = bytes
            return !parts.failed
        }
        guard handle.close() == 0 else { throw failure("close", target) }
    }

    /// Streams bytes `range` of `source` (to its end, if sooner) into `handle` at the same offset,
    /// keeping libssh2's pipeline full: libssh2 copies what it is given into outgoing packets and
    /// returns as soon as the first is acknowledged, so the bytes not yet acknowledged are handed to
    /// it again, with more read in behind them. The window slides through the buffer and is
    /// compacted when it passes the middle; the pipeline never drains until the end of the range.
    private func write(from source: any UploadSource, range: Range<Int64>, to handle: SFTPHandle, target: String,
                       progress: TransferProgress) throws {
        libssh2_sftp_seek64(handle.raw, UInt64(range.lowerBound))
        var next = range.lowerBound  // the next byte of the source to read
        var start = 0, end = 0
        var atEnd = false
        var acknowledged: Int64 = 0
        try buffer.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress!
            while true {
                if start > raw.count / 2 {
                    memmove(base, base + start, end - start)
                    end -= start
                    start = 0
                }
                while !atEnd && end < raw.count {
                    let wanted = Int(min(Int64(raw.count - end), range.upperBound - next))
                    let count = wanted == 0 ? 0 : try source.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[end..<end + wanted]), at: next)
                    if count == 0 { atEnd = true } else { end += count; next += Int64(count) }
                }
                if start == end { return }
                // No more than the channel's window takes: libssh2 1.10 does not read the server's
                // window adjustment while it waits to send, so a write larger than the window stalls
                // (dropbear's window is 24 KiB; OpenSSH's, 2 MiB, is as large as the buffer).
                let window = Int(libssh2_channel_window_write_ex(libssh2_sftp_get_channel(channel.raw), nil))
                let written = libssh2_sftp_write(handle.raw, (base + start).assumingMemoryBound(to: CChar.self),
                                                 min(end - start, max(window - 1024, 1024)))
                guard written > 0 else { throw failure("write", target) }
                start += written
                acknowledged += Int64(written)
                guard progress(acknowledged) else { throw TransferCancelled() }
            }
        }
    }

    public func rename(_ from: String, to: String, replacing: Bool) throws {
        let source = full(from), target = full(to)
        if replacing, let extensions = extensionChannel, extensions.extensions.contains("posix-rename@openssh.com") {
            try closeUploaded()  // the second channel's requests are not ordered with this one's
            let status = try extensions.posixRename(source, to: target)
            guard status == UInt(LIBSSH2_FX_OK) else { throw failure("rename \(source) to", target, status: status) }
            return
        }
        if try rawRename(source, target) { return }
        // SFTP v3 renames (OpenSSH: link + unlink) never replace: the target exists, or it failed.
        guard try entry(at: to) != nil else { throw failure("rename \(source) to", target) }
        guard replacing else { throw TransportError(.alreadyExists, "\(endpoint)/\(target) exists already") }
        // A server without posix-rename: move the old file aside, put the new one in place, drop
        // the old one. The final name never shows partial data; it is briefly absent.
        let aside = joinPath(parentDirectory(of: target), ".\(lastComponent(of: target)).replaced-\(UInt32.random(in: 0...UInt32.max)).part")
        guard try rawRename(target, aside) else { throw failure("rename \(target) to", aside) }
        guard try rawRename(source, target) else { throw failure("rename \(source) to", target) }
        try rawDelete(aside)
    }

    public func download(_ path: String, size: Int64, from offset: Int64, to destination: any DownloadSink,
                         progress: TransferProgress) throws -> Int64 {
        try closeUploaded()
        let target = full(path)
        guard let handle = try open(target, flags: UInt(LIBSSH2_FXF_READ), mode: 0, type: LIBSSH2_SFTP_OPENFILE, missingIsNil: true) else {
            throw TransportError(.notFound, "\(endpoint)/\(target) is not there any more")
        }
        libssh2_sftp_seek64(handle.raw, UInt64(offset))
        var total: Int64 = 0
        // libssh2 reads ahead as far as the buffer it is given: ask for what is left of the listed
        // size (plus one byte, to see the end), not a whole buffer, or a small file costs dozens of requests.
        while true {
            let wanted = Int(min(Int64(buffer.count), max(0, size - offset - total) + 1))
            let count = buffer.withUnsafeMutableBytes { raw in
                libssh2_sftp_read(handle.raw, raw.baseAddress!.assumingMemoryBound(to: CChar.self), wanted)
            }
            if count == 0 { break }
            guard count > 0 else { throw failure("read", target) }
            try buffer.withUnsafeBytes { try destination.write(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            total += Int64(count)
            guard progress(total) else { throw TransferCancelled() }
        }
        _ = handle.close()
        return total
    }

    public func delete(_ path: String) throws {
        try closeUploaded()
        try rawDelete(full(path))
    }

    /// A stat of the login folder: answered by the SFTP server, so the whole path is shown alive.
    public func keepAlive() throws {
        try closeUploaded()
        _ = try attributes(of: ".")
    }

    /// Deletes the file at a full server path; a missing file is not an error.
    private func rawDelete(_ target: String) throws {
        if libssh2_sftp_unlink_ex(channel.raw, target, UInt32(target.utf8.count)) != 0 && !isMissing {
            throw failure("delete", target)
        }
    }

    // MARK: Helpers

    /// An SFTP v3 rename; false when the server refuses it. The CLOSE of the file just uploaded, if
    /// still to be sent, goes out just before it, in the same round trip: the server handles the two
    /// in order, so the file is closed when it is renamed.
    private func rawRename(_ source: String, _ target: String) throws -> Bool {
        let flags = Int(LIBSSH2_SFTP_RENAME_ATOMIC | LIBSSH2_SFTP_RENAME_NATIVE)
        var renamed = false
        let closing = unclosed
        unclosed = nil
        try channel.session.inFlight([
            closing.map { handle, _ in InFlightRequest(action: "close") { handle.close() } },
            InFlightRequest(action: "rename") {
                let result = libssh2_sftp_rename_ex(self.channel.raw, source, UInt32(source.utf8.count), target,
                                                    UInt32(target.utf8.count), flags)
                renamed = result == 0
                return result == LIBSSH2_ERROR_SFTP_PROTOCOL ? 0 : result  // a refusal is the caller's to interpret
            },
        ].compactMap { $0 }, failure: { action in
            action == "close" ? failure("close", closing!.path) : failure("rename \(source) to", target)
        })
        return renamed
    }

    private func open(_ path: String, flags: UInt, mode: Int, type: Int32, missingIsNil: Bool) throws -> SFTPHandle? {
        guard let raw = libssh2_sftp_open_ex(channel.raw, path, UInt32(path.utf8.count), flags, mode, type) else {
            if missingIsNil && isMissing { return nil }
            throw failure("open", path)
        }
        return SFTPHandle(raw: raw, channel: channel)
    }

    private var isMissing: Bool {
        channel.lastStatus == UInt(LIBSSH2_FX_NO_SUCH_FILE) || channel.lastStatus == UInt(LIBSSH2_FX_NO_SUCH_PATH)
    }

    /// The last error, classified: a person must fix permissions and names; a full disk, a dropped
    /// connection or a timeout may pass.
    private func failure(_ action: String, _ path: String) -> TransportError {
        guard let status = channel.lastStatus else {
            let session = channel.session
            let why = session.lastErrorCode == LIBSSH2_ERROR_TIMEOUT || session.lastError.isEmpty
                ? "the server did not answer in time (libssh2 error \(session.lastErrorCode))"
                : session.lastError
            return TransportError(.transient, "\(endpoint): cannot \(action) \(path): \(why)")
        }
        return failure(action, path, status: status)
    }

    private func failure(_ action: String, _ path: String, status: UInt) -> TransportError {
        switch status {
        case UInt(LIBSSH2_FX_PERMISSION_DENIED), UInt(LIBSSH2_FX_WRITE_PROTECT):
            return TransportError(.permanent, "\(endpoint): cannot \(action) \(path): permission denied")
        case UInt(LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM), UInt(LIBSSH2_FX_QUOTA_EXCEEDED):
            return TransportError(.transient, "\(endpoint): cannot \(action) \(path): the remote disk is full (or over quota)")
        case UInt(LIBSSH2_FX_NO_SUCH_FILE), UInt(LIBSSH2_FX_NO_SUCH_PATH):
            return TransportError(.transient, "\(endpoint): cannot \(action) \(path): no such file or folder")
        case UInt(LIBSSH2_FX_INVALID_FILENAME):
            return TransportError(.permanent, "\(endpoint): cannot \(action) \(path): the server refuses the name")
        case UInt(LIBSSH2_FX_FAILURE):
            // SFTP v3 has no "disk full" status: a full disk shows as a plain failure. Ask the file
            // system (statvfs@openssh.com) whether that is the cause.
            if let free = freeSpace(near: path), free < 1 << 20 {
                return TransportError(.transient, "\(endpoint): cannot \(action) \(path): the remote disk is full "
                    + "(\(free) bytes free there)")
            }
            return TransportError(.transient, "\(endpoint): cannot \(action) \(path): the server reported a failure")
        default:
            return TransportError(.transient, "\(endpoint): cannot \(action) \(path): SFTP status \(status)")
        }
    }

    /// Bytes available to us in the file system holding `path`'s folder, if the server tells.
    private func freeSpace(near path: String) -> UInt64? {
        let folder = path.contains("/") ? parentDirectory(of: path) : "."
        var info = LIBSSH2_SFTP_STATVFS()
        guard libssh2_sftp_statvfs(channel.raw, folder, folder.utf8.count, &info) == 0 else { return nil }
        return info.f_bavail * info.f_frsize
    }

    private static func entry(name: String, _ attributes: LIBSSH2_SFTP_ATTRIBUTES) -> RemoteEntry {
        var kind = RemoteEntry.Kind.other
        if attributes.flags & UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS) != 0 {
            switch attributes.permissions & UInt(LIBSSH2_SFTP_S_IFMT) {
            case UInt(LIBSSH2_SFTP_S_IFREG): kind = .file
            case UInt(LIBSSH2_SFTP_S_IFDIR): kind = .directory
            case UInt(LIBSSH2_SFTP_S_IFLNK): kind = .symlink
            default: kind = .other
            }
        }
        return RemoteEntry(name: name, kind: kind, size: Int64(attributes.filesize),
                           modificationNanoseconds: Int64(attributes.mtime) * 1_000_000_000)
    }
}

/// The server refused a write at an offset: a split upload cannot be made.
private struct OffsetWriteRefused: Error {}

/// What the streams of one split upload share: the first failure (which stops the others), the
/// bytes the helpers have written, for progress, and the parts no helper could start.
// Sendable: `error`, `bytes` and `left` are guarded by `lock`.
private final class SplitUpload: @unchecked Sendable {
    private let lock = NSLock()
    private var error: Error?
    private var bytes: Int64 = 0
    private var left: [Range<Int64>] = []

    var failed: Bool { lock.withLock { error != nil } }
    var firstError: Error? { lock.withLock { error } }
    var helperBytes: Int64 { lock.withLock { bytes } }
    var leftOver: [Range<Int64>] { lock.withLock { left } }

    func fail(_ failure: Error) { lock.withLock { if error == nil { error = failure } } }
    func addHelperBytes(_ count: Int64) { lock.withLock { bytes += count } }
    /// A part whose helper could not connect or open the file, for the first connection to write.
    func leave(_ range: Range<Int64>) { lock.withLock { left.append(range) } }
}
