#if canImport(Glibc)
import Glibc
#endif

/// Tells when the files in a folder are written: an inotify descriptor of its own, closed in
/// `deinit` (not libinotifytools, whose global state is the daemon's watcher's).
public final class FolderChanges {
    public let rawValue: Int32

    public init(_ folder: String) throws {
        rawValue = try syscall("inotify_init1") { inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK)) }
        let events = UInt32(IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO)
        do {
            try syscall("inotify_add_watch", path: folder) { inotify_add_watch(rawValue, folder, events) }
        } catch {
            close(rawValue)
            throw error
        }
    }

    deinit { close(rawValue) }

    /// Takes the events that came: they are all the same news.
    public func drain() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while buffer.withUnsafeMutableBytes({ Glibc.read(rawValue, $0.baseAddress, $0.count) }) > 0 {}
    }
}

/// Waits until one of `descriptors` can be read (or is at its end); returns which can.
public func waitUntilReadable(_ descriptors: [Int32]) throws -> [Bool] {
    var entries = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
    try syscall("poll") { poll(&entries, nfds_t(entries.count), -1) }
    return entries.map { $0.revents != 0 }
}
