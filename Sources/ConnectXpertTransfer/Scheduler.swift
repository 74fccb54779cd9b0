import ConnectXpertSystem
import Foundation

/// What a job asks for when it ends.
public enum JobOutcome: Sendable, Equatable {
    case finished
    /// Run the job again after this many seconds (a transient failure).
    case retry(after: Double)
}

/// Identifies a job so one file is never worked on twice at once. Compared byte by byte: two names
/// that differ only in Unicode normalisation (NFC and NFD) are different files on Linux.
public struct JobKey: Hashable, Sendable, CustomStringConvertible {
    private let bytes: [UInt8]
    public let description: String

    public init(_ parts: String...) {
        description = parts.joined(separator: ":")
        bytes = Array(parts.joined(separator: "\0").utf8)
    }
}

/// A job that is running, on a worker of its own or taken over by another job (`Scheduler.take`).
/// It ends once, with `end(_:)`, whichever ran it.
public struct RunningJob: Sendable {
    public let key: JobKey
    /// Which run of the job this is: a job queued again while it runs runs again under its key.
    fileprivate let run: UInt64
    fileprivate let scheduler: Scheduler

    public func end(_ outcome: JobOutcome) { scheduler.end(self, outcome: outcome) }
}

/// A pool of worker threads that runs jobs: transports block, so jobs run on threads of their own
/// rather than on Swift's cooperative pool. A job enqueued while it runs runs once more afterwards;
/// each remote gets at most its `max_connections` jobs at once. A job to retry waits in the
/// scheduler until its time, and an idle worker wakes for it then.
// Sendable: `state` is guarded by `condition`; `workers` is set in init, then only read.
public final class Scheduler: @unchecked Sendable {
    public typealias Work = @Sendable (RunningJob) -> Void

    private struct Job {
        let key: JobKey
        let remote: String
        /// What the job is about, for a running job that takes it over (`take`).
        let payload: (any Sendable)?
        let work: Work
    }

    private struct State {
        var queue: [Job] = []
        var queued: Set<JobKey> = []
        /// Running jobs, with the number of their run, until they end.
        var running: [JobKey: (job: Job, run: UInt64)] = [:]
        var runs: UInt64 = 0
        var again: [JobKey: Job] = [:]
        /// Jobs to run again, with when.
        var retries: [(due: Date, job: Job)] = []
        var runningPerRemote: [String: Int] = [:]
        var stopping = false
    }

    /// Guards `state`; workers and waiters sleep on it.
    private let condition = NSCondition()
    private var state = State()
    private let limit: @Sendable (String) -> Int
    private var workers: [BlockingThread] = []

    /// - Parameter limit: how many jobs of a remote may run at once.
    public init(threads: Int, limit: @escaping @Sendable (String) -> Int) {
        self.limit = limit
        workers = (0..<threads).map { index in BlockingThread("transfer-\(index)") { [self] in workerLoop() } }
    }

    /// Adds a job. A job already waiting under the same key is replaced (the newer call knows more);
    /// a running one is run again afterwards. `payload` says what it is about, for `take`.
    public func enqueue(_ key: JobKey, remote: String, payload: (any Sendable)? = nil, work: @escaping Work) {
        condition.lock()
        defer { condition.unlock() }
        enqueue(Job(key: key, remote: remote, payload: payload, work: work))
    }

    /// `enqueue(_:remote:payload:work:)` with the lock held.
    private func enqueue(_ job: Job) {
        guard !state.stopping else { return }
        let key = job.key
        if state.running[key] != nil {
            state.again[key] = job
        } else if state.queued.insert(key).inserted {
            state.queue.append(job)
            condition.signal()  // one idle worker is enough; a busy one looks at the queue when it is done
        } else if let index = state.queue.firstIndex(where: { $0.key == key }) {
            state.queue[index] = job
        }
    }

    /// Blocks until nothing is queued, running or waiting to retry, or the scheduler stops.
    public func waitUntilIdle() {
        condition.lock()
        defer { condition.unlock() }
        while !state.stopping && !(state.queue.isEmpty && state.running.isEmpty && state.retries.isEmpty) {
            condition.wait()
        }
    }

    /// Drops what is queued, lets running jobs end (they see `isStopping`), and ends the threads.
    public func stop() {
        condition.lock()
        state.stopping = true
        state.queue.removeAll()
        state.queued.removeAll()
        state.again.removeAll()
        state.retries.removeAll()
        condition.broadcast()
        condition.unlock()
        for worker in workers { worker.join() }
    }

    /// Takes up to `count` more of `remote`'s slots for a running job that wants more connections
    /// (a large upload in several streams), as far as the remote's limit allows; returns how many it
    /// got, to be given back with `releaseSlots`.
    public func reserveSlots(_ count: Int, for remote: String) -> Int {
        condition.lock()
        defer { condition.unlock() }
        let free = limit(remote) - state.runningPerRemote[remote, default: 0]
        let taken = max(0, min(count, free))
        state.runningPerRemote[remote, default: 0] += taken
        return taken
    }

    public func releaseSlots(_ count: Int, for remote: String) {
        guard count > 0 else { return }
        condition.lock()
        defer { condition.unlock() }
        state.runningPerRemote[remote, default: count] -= count
        condition.broadcast()  // queued jobs of that remote may run now
    }

    /// The first waiting job of `remote` whose payload is a `Payload`, for a running job to do along
    /// with its own, on its connection: it is running from now on (without a connection slot of its
    /// own), and ends as every job does, with `RunningJob.end(_:)`.
    public func take<Payload: Sendable>(_: Payload.Type, remote: String) -> (job: RunningJob, payload: Payload)? {
        condition.lock()
        defer { condition.unlock() }
        guard !state.stopping,
              let index = state.queue.firstIndex(where: { $0.remote == remote && $0.payload is Payload }),
              let payload = state.queue[index].payload as? Payload else { return nil }
        return (start(state.queue.remove(at: index)), payload)
    }

    public var isStopping: Bool {
        condition.lock()
        defer { condition.unlock() }
        return state.stopping
    }

    /// Takes a job off the queue to run; called with the lock held.
    private func start(_ job: Job) -> RunningJob {
        state.queued.remove(job.key)
        state.runs += 1
        state.running[job.key] = (job, state.runs)
        return RunningJob(key: job.key, run: state.runs, scheduler: self)
    }

    /// Ends a running job with its outcome: what it asks for, or its next version, is queued.
    fileprivate func end(_ running: RunningJob, outcome: JobOutcome) {
        condition.lock()
        defer { condition.unlock() }
        let key = running.key
        guard let (job, run) = state.running[key], run == running.run else { return }
        state.running[key] = nil
        if let again = state.again.removeValue(forKey: key), !state.stopping {
            state.queued.insert(again.key)
            state.queue.append(again)
            condition.signal()
        } else if case .retry(let delay) = outcome, !state.stopping {
            state.retries.append((Date().addingTimeInterval(delay), job))
            condition.signal()  // an idle worker waits until the new deadline, if it is the soonest
        }
        if state.queue.isEmpty && state.running.isEmpty && state.retries.isEmpty {
            condition.broadcast()  // wake waitUntilIdle
        }
    }

    private func workerLoop() {
        condition.lock()
        while !state.stopping {
            queueRetriesDue()
            guard let index = state.queue.firstIndex(where: {
                state.runningPerRemote[$0.remote, default: 0] < limit($0.remote)
            }) else {
                if let soonest = state.retries.map(\.due).min() {
                    _ = condition.wait(until: soonest)
                } else {
                    condition.wait()
                }
                continue
            }
            let job = state.queue.remove(at: index)
            let running = start(job)
            state.runningPerRemote[job.remote, default: 0] += 1
            condition.unlock()

            job.work(running)

            condition.lock()
            state.runningPerRemote[job.remote, default: 1] -= 1
            precondition(state.running[job.key]?.run != running.run || state.stopping,
                         "job \(job.key) returned without ending")
        }
        condition.unlock()
    }

    /// Moves the retries whose time has come to the queue; called with the lock held.
    private func queueRetriesDue() {
        let now = Date()
        guard state.retries.contains(where: { $0.due <= now }) else { return }
        let due = state.retries.filter { $0.due <= now }
        state.retries.removeAll { $0.due <= now }
        for (_, job) in due { enqueue(job) }
    }
}
