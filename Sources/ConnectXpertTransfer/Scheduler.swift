import ConnectXpertSystem
import DequeModule
import Foundation
import HeapModule

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
///
/// Each step costs the same however many jobs wait: jobs wait in lines, one per remote and kind of
/// payload, in the order they came; a worker looks only at the front of each line, `take` at the
/// front of its kind's line, and the retries are a heap by their time.
// Sendable: `state` is guarded by `condition`; `workers` is set in init, then only read.
public final class Scheduler: @unchecked Sendable {
    public typealias Work = @Sendable (RunningJob) -> Void

    private struct Job {
        let key: JobKey
        let remote: String
        /// What the job is about, for a running job that takes it over (`take`).
        let payload: (any Sendable)?
        let work: Work

        var line: Line { Line(remote: remote, kind: payload.map { ObjectIdentifier(type(of: $0)) }) }
    }

    /// Where a job waits: its remote's line for its kind of payload.
    private struct Line: Hashable {
        let remote: String
        let kind: ObjectIdentifier?
    }

    /// A place in a line. It is out of date when its job has run, or was queued again into another
    /// line, since: `waiting` no longer has the job with that `order`.
    private struct Place {
        let order: UInt64
        let key: JobKey
    }

    private struct Retry: Comparable {
        let due: Date
        let order: UInt64
        let job: Job

        static func < (a: Retry, b: Retry) -> Bool { (a.due, a.order) < (b.due, b.order) }
        static func == (a: Retry, b: Retry) -> Bool { a.order == b.order }
    }

    private struct State {
        /// Jobs waiting to run, each with its place in its line.
        var waiting: [JobKey: (job: Job, order: UInt64)] = [:]
        var lines: [Line: Deque<Place>] = [:]
        /// How many jobs were ever queued or retried: the order of the next one.
        var orders: UInt64 = 0
        /// Running jobs, with the number of their run, until they end.
        var running: [JobKey: (job: Job, run: UInt64)] = [:]
        var runs: UInt64 = 0
        var again: [JobKey: Job] = [:]
        /// Jobs to run again, the soonest first.
        var retries = Heap<Retry>()
        var runningPerRemote: [String: Int] = [:]
        /// How many jobs of each kind of payload wait to run or to be retried.
        var backlogs: [ObjectIdentifier: Int] = [:]
        var stopping = false

        var isIdle: Bool { waiting.isEmpty && running.isEmpty && retries.isEmpty }

        mutating func count(_ job: Job, _ change: Int) {
            if let kind = job.line.kind { backlogs[kind, default: 0] += change }
        }

        mutating func nextOrder() -> UInt64 {
            orders += 1
            return orders
        }

        /// The first job waiting in `line`, its out-of-date places dropped; nil when none waits.
        mutating func front(of line: Line) -> Place? {
            while let place = lines[line]?.first {
                if waiting[place.key]?.order == place.order { return place }
                lines[line]?.removeFirst()
            }
            lines[line] = nil
            return nil
        }
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
        } else if let waiting = state.waiting[key], waiting.job.line == job.line {
            state.waiting[key] = (job, waiting.order)  // keeps its place
        } else {
            if let replaced = state.waiting[key] { state.count(replaced.job, -1) }
            state.count(job, 1)
            let order = state.nextOrder()
            state.waiting[key] = (job, order)
            state.lines[job.line, default: []].append(Place(order: order, key: key))
            condition.signal()  // one idle worker is enough; a busy one looks at the queue when it is done
        }
    }

    /// Blocks until nothing is queued, running or waiting to retry, or the scheduler stops.
    public func waitUntilIdle() {
        condition.lock()
        defer { condition.unlock() }
        while !state.stopping && !state.isIdle {
            condition.wait()
        }
    }

    /// Drops what is queued, lets running jobs end (they see `isStopping`), and ends the threads.
    public func stop() {
        condition.lock()
        state.stopping = true
        state.waiting.removeAll()
        state.lines.removeAll()
        state.again.removeAll()
        state.retries = Heap()
        state.backlogs.removeAll()
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
        guard !state.stopping, let place = state.front(of: Line(remote: remote, kind: ObjectIdentifier(Payload.self))),
              let job = state.waiting[place.key]?.job, let payload = job.payload as? Payload else { return nil }
        return (start(job), payload)
    }

    /// How many jobs about a `Payload` wait to run or to be retried.
    public func backlog<Payload: Sendable>(of _: Payload.Type) -> Int {
        condition.lock()
        defer { condition.unlock() }
        return state.backlogs[ObjectIdentifier(Payload.self), default: 0]
    }

    public var isStopping: Bool {
        condition.lock()
        defer { condition.unlock() }
        return state.stopping
    }

    /// Takes a waiting job to run; called with the lock held.
    private func start(_ job: Job) -> RunningJob {
        state.waiting[job.key] = nil
        state.count(job, -1)
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
        if let again = state.again.removeValue(forKey: key) {
            enqueue(again)
        } else if case .retry(let delay) = outcome, !state.stopping {
            state.retries.insert(Retry(due: Date().addingTimeInterval(delay), order: state.nextOrder(), job: job))
            state.count(job, 1)
            condition.signal()  // an idle worker waits until the new deadline, if it is the soonest
        }
        if state.isIdle {
            condition.broadcast()  // wake waitUntilIdle
        }
    }

    private func workerLoop() {
        condition.lock()
        while !state.stopping {
            queueRetriesDue()
            guard let job = nextJob() else {
                if let soonest = state.retries.min?.due {
                    _ = condition.wait(until: soonest)
                } else {
                    condition.wait()
                }
                continue
            }
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

    /// The job that waited longest of those whose remote has a free slot; called with the lock held.
    private func nextJob() -> Job? {
        var first: Place?
        for line in Array(state.lines.keys)
        where state.runningPerRemote[line.remote, default: 0] < limit(line.remote) {
            if let place = state.front(of: line), place.order < first?.order ?? .max { first = place }
        }
        return first.flatMap { state.waiting[$0.key]?.job }
    }

    /// Queues the retries whose time has come; called with the lock held.
    private func queueRetriesDue() {
        let now = Date()
        while let soonest = state.retries.min, soonest.due <= now {
            let job = state.retries.removeMin().job
            state.count(job, -1)
            enqueue(job)
        }
    }
}
