import CInotifyTools
import ConnectXpertSystem
import Foundation
import Synchronization
import Logging

/// What the watcher saw.
public enum WatchEvent: Sendable, Equatable {
    /// A file in the outbox was closed after writing or moved in (`closed`), or just created
    /// (a link, or a file still being written).
    case file(recipient: String, path: String, closed: Bool)
    /// A folder appeared in the outbox (a new recipient or sub-folder): scan it.
    case folder(recipient: String?)
    /// Events were lost (queue overflow) or a watch failed: scan everything.
    case rescan
    /// The policy file was written or replaced.
    case policyChanged
    /// A message was queued in the mail outbox (closed after writing, or moved in).
    case mailQueued
    /// A job request in `jobs/` was written, moved in or out, or removed.
    case jobsChanged
    /// A message was queued in `messages/outbox/` (moved in whole).
    case messageQueued
}

/// Watches `outbox/` recursively, the mail and message outboxes, `jobs/` and the policy file with libinotifytools, on a
/// thread of its own.
/// libinotifytools keeps global state, so this is the only code that calls it and there is one
/// watcher per process.
public final class Watcher: Sendable {
    private let spool: Spool
    private let policyFile: String
    private let mailOutbox: String
    private let logger: Logger
    private let handler: @Sendable (WatchEvent) -> Void
    private let stopRequested = Mutex(false)
    private let thread = Mutex<BlockingThread?>(nil)

    private static let outboxEvents = Int32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE)

    public init(spool: Spool, mailOutbox: String, policyFile: String, logger: Logger,
                handler: @escaping @Sendable (WatchEvent) -> Void) {
        self.spool = spool
        self.mailOutbox = mailOutbox
        self.policyFile = policyFile
        self.logger = logger
        self.handler = handler
    }

    /// Sets up the watches (so nothing written after this returns is missed) and starts the thread.
    public func start() throws {
        let ready = DispatchSemaphore(value: 0)
        let setupError = Mutex<Error?>(nil)
        let started = BlockingThread("inotify") { [self] in
            do {
                try setUp()
            } catch {
                setupError.withLock { $0 = error }
                ready.signal()
                return
            }
            ready.signal()
            loop()
            inotifytools_cleanup()
        }
        thread.withLock { $0 = started }
        ready.wait()
        if let error = setupError.withLock({ $0 }) { throw error }
    }

    /// Stops the thread; returns once it has ended (within about a second).
    public func stop() {
        stopRequested.withLock { $0 = true }
        thread.withLock { $0 }?.join()
    }

    private func setUp() throws {
        guard inotifytools_initialize() != 0 else {
            throw WatcherError(message: "cannot start inotify: \(String(cString: strerror(inotifytools_error())))")
        }
        try watch(spool.outbox, recursively: true)
        try watch(mailOutbox, recursively: false, events: Int32(IN_CLOSE_WRITE | IN_MOVED_TO))
        try watch(spool.messageOutbox, recursively: false, events: Int32(IN_MOVED_TO))
        try watch(spool.jobs, recursively: false,
                  events: Int32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE))
        // The spool itself, for an outbox that is removed and made again; one mask for a folder
        // that is both (a watch's mask is replaced, not added to).
        let policyFolder = parentDirectory(of: policyFile)
        let policyEvents = Int32(IN_CLOSE_WRITE | IN_MOVED_TO), spoolEvents = Int32(IN_CREATE | IN_MOVED_TO)
        if policyFolder == spool.root {
            try watch(policyFolder, recursively: false, events: policyEvents | spoolEvents)
        } else {
            try watch(policyFolder, recursively: false, events: policyEvents)
            try watch(spool.root, recursively: false, events: spoolEvents)
        }
    }

    /// Watches `path`, and with `recursively` every folder below it, each before it is read: a
    /// folder made meanwhile shows as an event. (inotifytools' own recursion promises no such order;
    /// a folder made while it ran could stay unwatched, and a file written into it later unseen.)
    private func watch(_ path: String, recursively: Bool, events: Int32 = outboxEvents) throws {
        guard inotifytools_watch_file(path, events) != 0 else {
            let code = inotifytools_error()
            if code == ENOSPC {
                throw WatcherError(message: "cannot watch \(path): the inotify watch limit is reached "
                    + "(fs.inotify.max_user_watches = \(inotifytools_get_max_user_watches())); raise it with "
                    + "'sysctl fs.inotify.max_user_watches=524288'")
            }
            if code == ENOENT { return }  // removed meanwhile; a rescan covers it
            throw WatcherError(message: "cannot watch \(path): \(String(cString: strerror(code)))")
        }
        guard recursively else { return }
        for name in (try? FileSystem.contents(of: path)) ?? []
        where (try? FileSystem.status(joinPath(path, name)))??.kind == .directory {
            try watch(joinPath(path, name), recursively: true, events: events)
        }
    }

    private func loop() {
        let policyName = lastComponent(of: policyFile)
        let policyFolder = parentDirectory(of: policyFile)
        while !stopRequested.withLock({ $0 }) {
            guard let event = inotifytools_next_event(1) else { continue }
            let mask = Int32(bitPattern: event.pointee.mask)
            if mask & Int32(IN_Q_OVERFLOW) != 0 {
                logger.warning("inotify queue overflowed; rescanning the outbox")
                handler(.rescan)
                continue
            }
            guard let folderPointer = inotifytools_filename_from_wd(event.pointee.wd) else { continue }
            let folder = String(cString: folderPointer).trimmingSuffix("/")
            var name = ""
            if event.pointee.len > 0, let raw = inotifytools_event_name(event) {
                guard let text = FileSystem.text(ofName: UnsafeRawBufferPointer(start: raw, count: strlen(raw))) else {
                    // No path of ours can name it: a scan of its folder reports it.
                    if folder.hasPrefix(spool.outbox + "/") {
                        handler(.folder(recipient: spool.recipient(containing: folder)))
                    } else if folder == spool.outbox {
                        handler(.rescan)
                    }
                    continue
                }
                name = text
            }
            if folder == policyFolder && name == policyName {
                handler(.policyChanged)
                continue
            }
            if folder == mailOutbox {
                if name.hasSuffix(".eml") && !name.hasPrefix(".") { handler(.mailQueued) }
                continue
            }
            if folder == spool.messageOutbox {
                if name.hasSuffix(".json") && !name.hasPrefix(".") { handler(.messageQueued) }
                continue
            }
            if folder == spool.jobs {
                if name.hasSuffix(".yaml") && !name.hasPrefix(".") { handler(.jobsChanged) }
                continue
            }
            if folder == spool.root {
                if joinPath(folder, name) == spool.outbox && mask & Int32(IN_ISDIR) != 0 {
                    logger.notice("the outbox folder was made again; watching it", metadata: ["spool.path": "\(spool.outbox)"])
                    do { try watch(spool.outbox, recursively: true) } catch { logger.error("\(error)") }
                    handler(.rescan)  // what was written into it before the watch
                }
                continue
            }
            let path = joinPath(folder, name)
            guard path.hasPrefix(spool.outbox + "/") else { continue }
            if folder == spool.outbox && mask & Int32(IN_ISDIR) == 0 {
                handler(.folder(recipient: name))  // a link or a file where a recipient folder belongs: said once
                continue
            }
            if mask & Int32(IN_ISDIR) != 0 {
                if mask & Int32(IN_CREATE | IN_MOVED_TO) != 0 {
                    do { try watch(path, recursively: true) } catch {
                        logger.error("\(error)")
                    }
                    handler(.folder(recipient: spool.recipient(containing: path)))
                }
                continue
            }
            if let item = spool.outboxItem(at: path) {
                handler(.file(recipient: item.recipient, path: item.path,
                              closed: mask & Int32(IN_CLOSE_WRITE | IN_MOVED_TO) != 0))
            }
        }
    }
}

public struct WatcherError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) && count > 1 ? String(dropLast(suffix.count)) : self
    }
}
