import CSystemShims
#if canImport(Glibc)
import Glibc
#endif

/// What `lstat`/`fstat` report, in the terms the agent cares about.
public struct FileStatus: Equatable, Sendable {
    public enum Kind: String, Sendable { case regular, directory, symlink, fifo, socket, device, other }

    public let kind: Kind
    public let size: Int64
    public let modificationNanoseconds: Int64
    /// When the inode last changed (ctime): a rename or a new link sets it, unlike the mtime.
    public let changeNanoseconds: Int64
    public let device: UInt64
    public let inode: UInt64
    public let mode: UInt32
    public let owner: UInt32

    init(_ st: stat) {
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        case S_IFIFO: kind = .fifo
        case S_IFSOCK: kind = .socket
        case S_IFCHR, S_IFBLK: kind = .device
        default: kind = .other
        }
        size = Int64(st.st_size)
        modificationNanoseconds = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        changeNanoseconds = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        mode = UInt32(st.st_mode & 0o7777)
        owner = UInt32(st.st_uid)
    }

    /// Same file, same content as far as metadata can tell: used to notice a file changed under us.
    public func isSameVersion(as other: FileStatus) -> Bool {
        device == other.device && inode == other.inode && size == other.size
            && modificationNanoseconds == other.modificationNanoseconds
    }
}

/// Thin, typed wrappers over the file system calls the agent uses; every one goes through `syscall`.
public enum FileSystem {
    /// `lstat`: does not follow a final symlink. `nil` if the path does not exist.
    public static func status(_ path: String) throws -> FileStatus? {
        var st = stat()
        do {
            try syscall("lstat", path: path) { lstat(path, &st) }
        } catch let error as SystemError where error.errno == ENOENT || error.errno == ENOTDIR {
            return nil
        }
        return FileStatus(st)
    }

    public static func exists(_ path: String) -> Bool {
        (try? status(path)) != nil
    }

    /// `mkdir -p`, then fsyncs nothing: callers that need the directory entry durable call `syncDirectory`.
    public static func createDirectories(_ path: String, mode: mode_t = 0o755) throws {
        if let st = try status(path) {
            if st.kind == .directory { return }
            throw SystemError(call: "mkdir", path: path, errno: ENOTDIR)
        }
        let parent = parentDirectory(of: path)
        if parent != path && !parent.isEmpty { try createDirectories(parent, mode: mode) }
        do {
            try syscall("mkdir", path: path) { mkdir(path, mode) }
        } catch let error as SystemError where error.errno == EEXIST {
            return
        }
    }

    /// Names in a directory, without `.` and `..`, sorted; names that are not UTF-8 are left out
    /// (`listing(of:)` tells them).
    public static func contents(of path: String) throws -> [String] {
        try listing(of: path).names
    }

    /// Names in a directory, without `.` and `..`, sorted, and apart from them the names that are
    /// not UTF-8, escaped (`escapedName`): a path of this program is text, so those cannot be
    /// opened by name, only reported.
    public static func listing(of path: String) throws -> (names: [String], notText: [String]) {
        let directory = try DirectoryStream(path)
        var names: [String] = [], notText: [String] = []
        while let entry = directory.next() {
            switch entry {
            case .text(let name): names.append(name)
            case .notText(let escaped): notText.append(escaped)
            }
        }
        return (names.sorted(), notText.sorted())
    }

    /// A name's bytes as text: the name when they are UTF-8, else nil.
    public static func text(ofName bytes: some Collection<UInt8>) -> String? {
        String(validating: bytes, as: UTF8.self)
    }

    /// A name that is not UTF-8 written for a reader: printable ASCII as it is, every other byte as
    /// `\xE9` (`caf\xE9.txt`).
    public static func escapedName(_ bytes: some Collection<UInt8>) -> String {
        bytes.map { byte in
            let printable = (0x20..<0x7f).contains(byte) && byte != UInt8(ascii: "\\")
            guard !printable else { return String(UnicodeScalar(byte)) }
            return "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
        }.joined()
    }

    public static func rename(_ from: String, to: String) throws {
        try syscall("rename", path: "\(from) -> \(to)") { Glibc.rename(from, to) }
    }

    /// Renames only if `to` does not exist; throws EEXIST otherwise. Atomic where the file system
    /// supports RENAME_NOREPLACE; elsewhere link + unlink, which is atomic for the no-replace check.
    public static func renameNoReplace(_ from: String, to: String) throws {
        do {
            try syscall("rename", path: "\(from) -> \(to)") { cx_rename_noreplace(from, to) }
        } catch let error as SystemError where error.errno == EINVAL || error.errno == ENOSYS {
            try link(from, to: to)
            try remove(from)
        }
    }

    /// A hard link at `to`; fails with EEXIST when `to` exists.
    public static func link(_ from: String, to: String) throws {
        _ = try syscall("link", path: to) { Glibc.link(from, to) }
    }

    public static func remove(_ path: String) throws {
        try syscall("unlink", path: path) { unlink(path) }
    }

    /// Removes a file; a missing file is not an error. Returns whether there was one.
    @discardableResult
    public static func removeIfPresent(_ path: String) throws -> Bool {
        do {
            try remove(path)
            return true
        } catch let error as SystemError where error.errno == ENOENT {
            return false
        }
    }

    public static func removeDirectory(_ path: String) throws {
        try syscall("rmdir", path: path) { rmdir(path) }
    }

    /// Makes a directory's entries (creations, renames) durable.
    public static func syncDirectory(_ path: String) throws {
        try FileDescriptor.openDirectory(path).sync()
    }

    public static func setModificationTime(_ path: String, nanoseconds: Int64) throws {
        let time = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var times = [time, time]
        try syscall("utimensat", path: path) { utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) }
    }

    public static func setPermissions(_ path: String, mode: mode_t) throws {
        try syscall("chmod", path: path) { chmod(path, mode) }
    }

    /// True when some process has `fd`'s file open for writing. Probed with a read lease, which the
    /// kernel refuses (EAGAIN) while a writer exists; `nil` when leases are not available to us.
    public static func isOpenForWriting(_ fd: FileDescriptor) -> Bool? {
        if cx_set_lease(fd.rawValue, Int32(F_RDLCK)) == 0 {
            _ = cx_set_lease(fd.rawValue, Int32(F_UNLCK))
            return false
        }
        return errno == EAGAIN ? true : nil
    }

    /// Copies `source` into a new file at `destination` (which must not exist), then fsyncs it.
    public static func copyFile(_ source: String, to destination: String, mode: mode_t = 0o644) throws {
        let input = try FileDescriptor.openForReading(source)
        let output = try FileDescriptor.create(destination, mode: mode)
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try input.read(into: $0) }
            if n == 0 { break }
            try buffer.withUnsafeBytes { try output.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        try output.sync()
    }

    public static func readFile(_ path: String) throws -> [UInt8] {
        try FileDescriptor.openForReading(path).readAll()
    }

    /// Writes a file atomically: temp name in the same directory, fsync, rename, fsync the directory.
    public static func writeFileAtomically(_ path: String, contents: [UInt8], mode: mode_t = 0o644) throws {
        try writeAtomically(path, mode: mode) { try $0.write(contents) }
    }

    /// Writes a file through `write` under a temporary name beside `path`, fsyncs it and renames it
    /// into place: `path` holds the old file or the whole new one, never a part. When `write`
    /// throws, the temporary file is removed and `path` is left as it was.
    public static func writeAtomically(_ path: String, mode: mode_t = 0o644,
                                       _ write: (FileDescriptor) throws -> Void) throws {
        let directory = parentDirectory(of: path)
        // A name of its own for each write, even two at once in one process, that fits wherever the
        // final name fits.
        let name = prefix(of: lastComponent(of: path), fittingIn: 200)
        let temp = joinPath(directory, ".\(name).\(String(UInt64.random(in: 0...UInt64.max), radix: 36)).tmp")
        do {
            let fd = try FileDescriptor.create(temp, mode: mode)
            try write(fd)
            try fd.sync()
            try rename(temp, to: path)
        } catch {
            _ = try? removeIfPresent(temp)
            throw error
        }
        try syncDirectory(directory)
    }

    public static var currentDirectory: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        guard getcwd(&buffer, buffer.count) != nil else { return "." }
        return String(nulTerminated: buffer)
    }
}

extension String {
    /// The text a C function wrote into `characters`, up to its first NUL.
    public init(nulTerminated characters: [CChar]) {
        self.init(decoding: characters.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

// MARK: - Path strings

/// Joins path parts with single slashes.
public func joinPath(_ parts: String...) -> String {
    joinPath(parts)
}

public func joinPath(_ parts: [String]) -> String {
    var result = ""
    for part in parts where !part.isEmpty {
        if result.isEmpty {
            result = part
        } else if result.hasSuffix("/") {
            result += part.hasPrefix("/") ? String(part.dropFirst()) : part
        } else {
            result += part.hasPrefix("/") ? part : "/" + part
        }
    }
    return result
}

public func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    if slash == path.startIndex { return "/" }
    return String(path[..<slash])
}

/// The folder part of a relative path, "" when the path names a file at the top.
public func folder(ofRelative path: String) -> String {
    path.contains("/") ? parentDirectory(of: path) : ""
}

public func lastComponent(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return path }
    return String(path[path.index(after: slash)...])
}

/// The longest start of `name` of at most `bytes` bytes in UTF-8, cut at a whole character: a part
/// of a file name that leaves room for what is added to it.
public func prefix(of name: String, fittingIn bytes: Int) -> Substring {
    var cut = Substring(name)
    while cut.utf8.count > bytes { cut = cut.dropLast() }
    return cut
}

/// Makes `path` absolute against `base`, expanding a leading `~`.
public func absolutePath(_ path: String, relativeTo base: String) -> String {
    if path == "~" || path.hasPrefix("~/") {
        let home = getenv("HOME").map { String(cString: $0) } ?? "/"
        return joinPath(home, String(path.dropFirst(path == "~" ? 1 : 2)))
    }
    if path.hasPrefix("/") { return normalizedPath(path) }
    return normalizedPath(joinPath(base, path))
}

/// Removes `.` components and doubled slashes; leaves `..` to the caller's checks.
public func normalizedPath(_ path: String) -> String {
    let parts = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
    let joined = parts.joined(separator: "/")
    return path.hasPrefix("/") ? "/" + joined : (joined.isEmpty ? "." : joined)
}

/// A directory's names as `readdir` gives them, one at a time and in the file system's order, without
/// `.` and `..`: one open directory, however many entries it holds.
public final class DirectoryStream {
    public enum Name {
        case text(String)
        /// A name that is not UTF-8, escaped (`FileSystem.escapedName`).
        case notText(String)
    }

    private let directory: OpaquePointer

    public init(_ path: String) throws {
        guard let directory = opendir(path) else { throw SystemError(call: "opendir", path: path, errno: errno) }
        self.directory = directory
    }

    deinit { closedir(directory) }

    /// The next name; nil at the end.
    public func next() -> Name? {
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw -> Name? in
                let bytes = raw.prefix(while: { $0 != 0 })
                guard let text = FileSystem.text(ofName: bytes) else { return .notText(FileSystem.escapedName(bytes)) }
                return text == "." || text == ".." ? nil : .text(text)
            }
            if let name { return name }
        }
        return nil
    }
}
