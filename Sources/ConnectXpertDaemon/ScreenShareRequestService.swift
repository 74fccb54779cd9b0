import ConnectXpertScreen
import ConnectXpertSpool
import ConnectXpertSystem
import Foundation
import Logging
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// Starts a screen share for each request dropped into `spool/jobs/` (`screen-share*.yaml`), as a
/// child process (`connectxpert screen share --request FILE`), so that X11 trouble never touches
/// the daemon. Removing the request ends its job; the job removes the request when it ends. The
/// folder is looked at when the watcher says it changed (`requestsChanged`) and when a job ends.
public struct ScreenShareRequestService: Service {
    let spool: Spool
    let policyPath: String
    let logLevel: Logger.Level
    let logger: Logger
    private let wakeups = Wakeups()

    public init(spool: Spool, policyPath: String, logLevel: Logger.Level, logger: Logger) {
        self.spool = spool
        self.policyPath = absolutePath(policyPath, relativeTo: FileSystem.currentDirectory)
        self.logLevel = logLevel
        self.logger = logger
    }

    /// A job started for a request file, which is known by its inode and modification time: a new
    /// request under the same name is another job (even when the file system reuses the inode).
    private struct Job {
        let process: Process
        let identity: Identity
    }

    private struct Identity: Hashable {
        let inode: UInt64
        let modified: Int64
    }

    /// A request was written, moved or removed: the folder is looked at again.
    public func requestsChanged() { wakeups.wake() }

    public func run() async throws {
        var running: [String: Job] = [:]
        var ignored = Set<Identity>()
        for await _ in wakeups.events.cancelOnGracefulShutdown() {
            let names = ((try? FileSystem.contents(of: spool.jobs)) ?? []).filter {
                $0.hasSuffix(".yaml") && !$0.hasPrefix(".") && !Spool.isChatRequest($0)
            }
            let requests = Dictionary(uniqueKeysWithValues: names.compactMap { name in
                (try? FileSystem.status(joinPath(spool.jobs, name)))?.map { (name, Identity(inode: $0.inode, modified: $0.modificationNanoseconds)) }
            })
            for (name, job) in running where !job.process.isRunning {
                running[name] = nil
                settle(name, job, leftover: requests[name] == job.identity)
            }
            for (name, job) in running where requests[name] != job.identity && job.process.isRunning {
                logger.info("screen share request removed: ending the job", metadata: ["job.request": "\(name)"])
                job.process.terminate()
            }
            for (name, identity) in requests.sorted(by: { $0.key < $1.key })
            where running[name] == nil && !ignored.contains(identity) {
                guard name.hasPrefix("screen-share") else {
                    logger.warning("unknown job request: only screen-share*.yaml and chat-*.yaml requests exist",
                                   metadata: ["job.request": "\(joinPath(spool.jobs, name))"])
                    ignored.insert(identity)
                    continue
                }
                do { running[name] = Job(process: try start(name), identity: identity) } catch {
                    logger.error("cannot start the screen share", metadata: ["job.request": "\(name)", "job.error": "\(error)"])
                    ignored.insert(identity)
                }
            }
        }
        for job in running.values where job.process.isRunning { job.process.terminate() }
        for job in running.values { job.process.waitUntilExit() }
    }

    private func start(_ name: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0])
        process.arguments = ["screen", "share", "--request", joinPath(spool.jobs, name), "--policy", policyPath,
                             "--log-level", logLevel.rawValue]
        process.standardInput = FileHandle.nullDevice
        process.terminationHandler = { [wakeups] _ in wakeups.wake() }
        try process.run()
        logger.info("screen share started", metadata: ["job.request": "\(name)", "job.pid": "\(process.processIdentifier)"])
        return process
    }

    /// A job that died without cleaning up (a crash) leaves its request: removed here so that it is
    /// not started again and again, with the reason in the status file.
    private func settle(_ name: String, _ job: Job, leftover: Bool) {
        guard leftover else { return }
        _ = try? FileSystem.removeIfPresent(joinPath(spool.jobs, name))
        let status = job.process.terminationStatus
        let how = job.process.terminationReason == .uncaughtSignal ? "signal \(status)" : "exit status \(status)"
        try? ScreenShareStatus.write(["state": "failed", "error": "the job ended abnormally (\(how))"],
                                     to: ScreenShareStatus.path(forRequest: joinPath(spool.jobs, name)))
        logger.error("screen share ended abnormally", metadata: ["job.request": "\(name)", "job.exit": "\(how)"])
    }
}

/// Wakes an async waiter from any thread. Wake-ups that come while it is busy fold into one; the
/// first is given at once, for the look a service takes when it starts.
final class Wakeups: Sendable {
    let events: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (events, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        continuation.yield()
    }

    func wake() { continuation.yield() }
}
