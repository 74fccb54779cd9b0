#if canImport(Glibc)
import Glibc
#endif

/// An open file descriptor with one owner; closed in `deinit`. Immutable, so it may be shared:
/// the kernel makes concurrent reads, writes and fsyncs on one descriptor safe.
public final class FileDescriptor: Sendable {
    public let rawValue: Int32
    public let path: String

    private init(rawValue: Int32, path: String) {
        self.rawValue = rawValue
        self.path = path
    }

    deinit { close(rawValue) }

    /// Opens `path` without following a final symlink.
    public static func open(_ path: String, flags: Int32, mode: mode_t = 0o644) throws -> FileDescriptor {
        let fd = try syscall("open", path: path) { Glibc.open(path, flags | O_CLOEXEC | O_NOFOLLOW, mode) }
        return FileDescriptor(rawValue: fd, path: path)
    }

    public static func openForReading(_ path: String) throws -> FileDescriptor {
        try open(path, flags: O_RDONLY)
    }

    /// Creates a new file; fails if it exists.
    public static func create(_ path: String, mode: mode_t = 0o644) throws -> FileDescriptor {
        try open(path, flags: O_WRONLY | O_CREAT | O_EXCL, mode: mode)
    }

    public static func openDirectory(_ path: String) throws -> FileDescriptor {
        try open(path, flags: O_RDONLY | O_DIRECTORY)
    }

    /// Reads up to `count` bytes into `buffer`; 0 at end of file.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try syscall("read", path: path) { Glibc.read(rawValue, buffer.baseAddress, buffer.count) }
    }

    /// Fills `buffer` unless the file ends first; returns the bytes read.
    public func read(filling buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var filled = 0
        while filled < buffer.count {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            if n == 0 { break }
            filled += n
        }
        return filled
    }

    /// Reads at an offset without moving the file position.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        try syscall("pread", path: path) { Glibc.pread(rawValue, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    /// Writes all of `buffer`.
    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        var written = 0
        while written < buffer.count {
            let rest = UnsafeRawBufferPointer(rebasing: buffer[written...])
            written += try syscall("write", path: path) { Glibc.write(rawValue, rest.baseAddress, rest.count) }
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Moves the file position to `offset` from the start.
    public func seek(to offset: Int64) throws {
        try syscall("lseek", path: path) { lseek(rawValue, off_t(offset), SEEK_SET) }
    }

    public func sync() throws {
        try syscall("fsync", path: path) { fsync(rawValue) }
    }

    public func status() throws -> FileStatus {
        var st = stat()
        try syscall("fstat", path: path) { fstat(rawValue, &st) }
        return FileStatus(st)
    }

    /// Reads the whole file.
    public func readAll() throws -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
        }
    }
}
