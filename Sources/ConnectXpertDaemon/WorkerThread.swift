import ConnectXpertSystem
import Foundation
import Synchronization

/// A thread of its own for work that blocks (libcurl): runs rounds until stopped, sleeping between
/// them until woken or until the time the last round asked for.
final class WorkerThread: Sendable {
    private let stopping = Atomic<Bool>(false)
    private let wakeUp = DispatchSemaphore(value: 0)
    private let thread = Mutex<BlockingThread?>(nil)

    var isRunning: Bool { !stopping.load(ordering: .relaxed) }

    /// `round` does the work and returns when to run again (`nil`: only when woken). A wake-up
    /// during a round makes the next one start at once.
    func start(name: String, round: @escaping @Sendable () -> Date?) {
        let started = BlockingThread(name) { [self] in
            while isRunning {
                let next = round()
                guard isRunning else { break }
                let pause = min(3600, max(0, next?.timeIntervalSinceNow ?? 3600))
                if pause > 0 { _ = wakeUp.wait(timeout: .now() + pause) }
            }
        }
        thread.withLock { $0 = started }
    }

    func wake() { wakeUp.signal() }

    /// Ends the thread after its round in progress (which should watch `isRunning`).
    func stop() {
        stopping.store(true, ordering: .relaxed)
        wakeUp.signal()
        thread.withLock { $0 }?.join()
    }
}
