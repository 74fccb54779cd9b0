import Foundation

/// What a job asks for when it ends.
public enum JobOutcome: Sendable {
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

/// A pool of worker threads that runs jobs: transports block, so jobs run on threads of their own
/// rather than on Swift's cooperative pool. A job enqueued while it runs runs once more afterwards;
/// each remote gets at most its `max_connections` jobs at once.
public final class Scheduler: @unchecked Sendable {
    public typealias Work = @Sendable () -> JobOutcome

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
        var running: Set<JobKey> = []
        /// Jobs a running job took over, until it ends them.
        var taken: [JobKey: Job] = [:]
        var again: [JobKey: Job] = [:]
        var runningPerRemote: [String: Int] = [:]
        var waitingRetries = 0
        var stopping = false
        var liveThreads = 0
    }

    /// Guards `state`; workers and waiters sleep on it.
    private let condition = NSCondition()
    private var state = State()
    private let limit: @Sendable (String) -> Int

    /// - Parameter limit: how many jobs of a remote may run at once.
    public init(threads: Int, limit: @escaping @Sendable (String) -> Int) {
        self.limit = limit
        state.liveThreads = threads
        for index in 0..<threads {
            let thread = Thread { [self] in workerLoop() }
            thread.name = "transfer-\(index)"
            thread.start()
        }
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
        if state.running.contains(key) {
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
        while !state.stopping && !(state.queue.isEmpty && state.running.isEmpty && state.waitingRetries == 0) {
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
        condition.broadcast()
        while state.liveThreads > 0 { condition.wait() }
        condition.unlock()
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
    /// own), and ends with `end(_:outcome:)`.
    public func take<Payload: Sendable>(_: Payload.Type, remote: String) -> (key: JobKey, payload: Payload)? {
        condition.lock()
        defer { condition.unlock() }
        guard !state.stopping,
              let index = state.queue.firstIndex(where: { $0.remote == remote && $0.payload is Payload }) else { return nil }
        let job = state.queue.remove(at: index)
        state.queued.remove(job.key)
        state.running.insert(job.key)
        state.taken[job.key] = job
        return (job.key, job.payload as! Payload)
    }

    /// Ends a job taken with `take`, as if it had run with this outcome.
    public func end(_ key: JobKey, outcome: JobOutcome) {
        condition.lock()
        defer { condition.unlock() }
        if let job = state.taken.removeValue(forKey: key) { conclude(job, outcome: outcome) }
    }

    public var isStopping: Bool {
        condition.lock()
        defer { condition.unlock() }
        return state.stopping
    }

    private func workerLoop() {
        condition.lock()
        while true {
            if state.stopping { break }
            guard let index = state.queue.firstIndex(where: { state.runningPerRemote[$0.remote, default: 0] < limit($0.remote) }) else {
                condition.wait()
                continue
            }
            let job = state.queue.remove(at: index)
            state.queued.remove(job.key)
            state.running.insert(job.key)
            state.runningPerRemote[job.remote, default: 0] += 1
            condition.unlock()

            let outcome = job.work()

            condition.lock()
            state.runningPerRemote[job.remote, default: 1] -= 1
            conclude(job, outcome: outcome)
        }
        state.liveThreads -= 1
        condition.broadcast()
        condition.unlock()
    }

    /// What follows the end of a job; called with the lock held.
    private func conclude(_ job: Job, outcome: JobOutcome) {
        state.running.remove(job.key)
        if let again = state.again.removeValue(forKey: job.key), !state.stopping {
            state.queued.insert(again.key)
            state.queue.append(again)
            condition.signal()
        } else if case .retry(let delay) = outcome, !state.stopping {
            state.waitingRetries += 1
            DispatchQueue.global().asyncAfter(deadline: .now() + delay) { [self] in
                condition.lock()
                defer { condition.unlock() }
                state.waitingRetries -= 1
                enqueue(job)  // under the same lock: waitUntilIdle never sees the retry gone and not queued
                // Every waiter: the one signal of `enqueue` can wake a batch pass's waitUntilIdle instead
                // of an idle worker, and from a timer no worker comes back for the job (seen: a pass hung).
                condition.broadcast()
            }
        }
        if state.queue.isEmpty && state.running.isEmpty { condition.broadcast() }  // wake waitUntilIdle
    }
}
