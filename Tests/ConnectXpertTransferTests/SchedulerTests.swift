import Foundation
import Synchronization
import Testing

@testable import ConnectXpertTransfer

/// What the jobs of a test did, in order.
private final class Events: Sendable {
    private let list = Mutex<[String]>([])
    func add(_ event: String) { list.withLock { $0.append(event) } }
    var all: [String] { list.withLock { $0 } }
}

@Suite struct SchedulerTests {
    /// A running job takes over the waiting jobs of its remote that carry a payload of the kind it
    /// asks for; their own work never runs, and the scheduler is idle once it ends them.
    @Test func aRunningJobTakesOverWaitingJobsOfItsRemote() {
        let scheduler = Scheduler(threads: 2) { _ in 1 }
        defer { scheduler.stop() }
        let events = Events()
        let release = DispatchSemaphore(value: 0)
        scheduler.enqueue(JobKey("first"), remote: "r", payload: "first") { first in
            release.wait()  // until the others are queued
            while let (job, payload) = scheduler.take(String.self, remote: "r") {
                events.add("took \(payload)")
                job.end(.finished)
            }
            first.end(.finished)
        }
        for name in ["second", "third"] {
            scheduler.enqueue(JobKey(name), remote: "r", payload: name) { job in
                events.add("ran \(name)")
                job.end(.finished)
            }
        }
        scheduler.enqueue(JobKey("other remote"), remote: "s", payload: "other remote") { job in
            events.add("ran other remote")
            job.end(.finished)
        }
        scheduler.enqueue(JobKey("no payload"), remote: "r") { job in events.add("ran no payload"); job.end(.finished) }
        release.signal()
        scheduler.waitUntilIdle()
        #expect(events.all.filter { $0.hasPrefix("took") } == ["took second", "took third"])
        #expect(Set(events.all.filter { $0.hasPrefix("ran") }) == ["ran other remote", "ran no payload"])
    }

    /// A job queued again while it was taken over runs once more after it is ended, as a running
    /// job's would; a taken job ended with a retry runs again too.
    @Test func takenJobsEndAsRunningJobsDo() {
        let scheduler = Scheduler(threads: 2) { _ in 1 }
        defer { scheduler.stop() }
        let events = Events()
        let release = DispatchSemaphore(value: 0)
        scheduler.enqueue(JobKey("first"), remote: "r", payload: 0) { first in
            release.wait()
            let queuedAgain = scheduler.take(Int.self, remote: "r")!
            let retried = scheduler.take(Int.self, remote: "r")!
            scheduler.enqueue(queuedAgain.job.key, remote: "r", payload: 1) { job in
                events.add("queued again ran")
                job.end(.finished)
            }
            queuedAgain.job.end(.finished)
            retried.job.end(.retry(after: 0.01))
            first.end(.finished)
        }
        scheduler.enqueue(JobKey("queued again"), remote: "r", payload: 1) { job in
            events.add("first version ran")
            job.end(.finished)
        }
        scheduler.enqueue(JobKey("retried"), remote: "r", payload: 2) { job in
            events.add("retry ran")
            job.end(.finished)
        }
        release.signal()
        scheduler.waitUntilIdle()  // a retry waiting for its time counts as work
        #expect(Set(events.all) == ["queued again ran", "retry ran"])
    }

    /// A job retried while a batch pass waits for idleness runs again at its time: the idle worker
    /// waits for the retry's deadline, not only for a wake-up.
    @Test func aRetryRunsWhileAPassWaitsUntilIdle() {
        let scheduler = Scheduler(threads: 1) { _ in 1 }
        defer { scheduler.stop() }
        let runs = Mutex(0)
        scheduler.enqueue(JobKey("job"), remote: "r") { job in
            usleep(50_000)  // the waiter waits first; the worker, once done, after it
            job.end(runs.withLock { $0 += 1; return $0 } == 1 ? .retry(after: 0.1) : .finished)
        }
        let idle = DispatchSemaphore(value: 0)
        Thread { scheduler.waitUntilIdle(); idle.signal() }.start()
        #expect(idle.wait(timeout: .now() + 10) == .success, "the pass ends")
        #expect(runs.withLock { $0 } == 2)
    }

    /// Jobs run in the order they were queued, whatever their remote and kind, as long as their
    /// remote has a free connection.
    @Test func jobsRunInTheOrderTheyCame() {
        let scheduler = Scheduler(threads: 1) { _ in 1 }
        defer { scheduler.stop() }
        let events = Events()
        let release = DispatchSemaphore(value: 0)
        scheduler.enqueue(JobKey("gate"), remote: "g") { job in
            release.wait()
            job.end(.finished)
        }
        let jobs: [(String, String, (any Sendable)?)] = [("a", "r", 1), ("b", "s", "b"), ("c", "r", nil), ("d", "s", 4)]
        for (name, remote, payload) in jobs {
            scheduler.enqueue(JobKey(name), remote: remote, payload: payload) { job in
                events.add(name)
                job.end(.finished)
            }
        }
        release.signal()
        scheduler.waitUntilIdle()
        #expect(events.all == ["a", "b", "c", "d"])
    }

    /// The backlog of a kind counts its jobs that wait to run or to be retried, once each however
    /// often they are queued; running ones are not counted.
    @Test func theBacklogCountsWaitingAndRetryingJobsOfAKind() {
        let scheduler = Scheduler(threads: 1) { _ in 1 }
        defer { scheduler.stop() }
        let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        scheduler.enqueue(JobKey("running"), remote: "r", payload: "running") { job in
            started.signal()
            release.wait()
            job.end(.retry(after: 3600))
        }
        started.wait()
        for name in ["a", "b", "a"] {
            scheduler.enqueue(JobKey(name), remote: "r", payload: name) { job in job.end(.finished) }
        }
        scheduler.enqueue(JobKey("number"), remote: "r", payload: 1) { job in job.end(.finished) }
        let last = DispatchSemaphore(value: 0)
        scheduler.enqueue(JobKey("last"), remote: "r") { job in
            job.end(.finished)
            last.signal()
        }
        #expect(scheduler.backlog(of: String.self) == 2)
        #expect(scheduler.backlog(of: Int.self) == 1)
        release.signal()
        last.wait()  // the others ran before it
        #expect(scheduler.backlog(of: String.self) == 1, "the retry waits")
        #expect(scheduler.backlog(of: Int.self) == 0)
    }
}
