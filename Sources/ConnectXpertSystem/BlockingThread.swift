import Foundation

/// A thread of its own for work that blocks: a C library's calls, a wait on descriptors or on a
/// condition. Every thread the program starts is one of these, and whoever ends its work joins it.
public final class BlockingThread: Sendable {
    private let ended = DispatchSemaphore(value: 0)

    /// Starts `body` at once on a new thread called `name` (as `top` and `gdb` show it).
    @discardableResult
    public init(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread { [ended] in
            body()
            ended.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Waits until the body has returned; at once when it has already.
    public func join() {
        ended.wait()
        ended.signal()
    }
}

/// Runs `work` on a blocking thread and returns what it returns, so that a task never blocks
/// one of Swift's cooperative threads (the async bridge, as NIOThreadPool's `runIfActive`).
public func blocking<Result: Sendable>(_ name: String, _ work: @escaping @Sendable () -> Result) async -> Result {
    await withCheckedContinuation { (done: CheckedContinuation<Result, Never>) in
        BlockingThread(name) { done.resume(returning: work()) }
    }
}
