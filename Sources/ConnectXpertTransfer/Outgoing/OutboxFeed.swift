import ConnectXpertSpool
import ConnectXpertSystem
import Logging
import Synchronization

/// Feeds the outbox's files to the scheduler a window at a time, from a walk of the outbox: however
/// many files wait, at most `window` of them are jobs in memory, and sending starts as soon as the
/// first are found. A scan asked for while a walk is under way (a new folder, lost events, a reload)
/// is walked after it, as files may stand where the walk has already been.
final class OutboxFeed: Sendable {
    /// At most this many outbox files wait in the scheduler (to run or to be retried).
    static let window = 1024

    private struct State {
        var walk: OutboxWalk?
        /// Scans still to walk: everything, or these recipients' folders.
        var everything = false
        var recipients: [String] = []
    }

    private let state = Mutex(State())

    /// Asks for a walk of the whole outbox, or of one recipient's folder.
    func scan(recipient: String?) {
        state.withLock { state in
            if let recipient {
                if !state.recipients.contains(recipient) { state.recipients.append(recipient) }
            } else {
                state.everything = true
                state.recipients = []
            }
        }
    }

    /// Whether a file met as an event can be queued now: if not, a scan of its recipient's folder
    /// will find it.
    func hasRoom(_ agent: Agent) -> Bool { agent.scheduler.backlog(of: OutboxFile.self) < Self.window }

    /// Queues the next files of the walk, and of the scans asked for after it, while the window has
    /// room; does nothing while it is at least half full. Returns whether it queued anything.
    @discardableResult
    func topUp(_ agent: Agent) -> Bool {
        guard agent.scheduler.backlog(of: OutboxFile.self) <= Self.window / 2 else { return false }
        return state.withLock { state in
            var queued = false
            while agent.scheduler.backlog(of: OutboxFile.self) < Self.window, let item = next(&state, agent.spool) {
                switch item {
                case .file(let entry):
                    agent.queueSend(recipient: entry.recipient, path: entry.path)
                    queued = true
                case .nameNotText(let path):
                    agent.warnOnce("name is not UTF-8, so the file cannot be sent: left in the outbox; rename it",
                                   key: "not text " + path,
                                   metadata: ["spool.path": "\(joinPath(agent.spool.outbox, path))"])
                case .unreadable(let path, let error):
                    agent.warnOnce("cannot read an outbox folder: its files are not sent", key: "unreadable " + path,
                                   metadata: ["spool.path": "\(path)", "spool.error": "\(error)"], level: .error)
                }
            }
            return queued
        }
    }

    /// The walk's next item, the next scan begun when it ends; nil when nothing is left to walk.
    private func next(_ state: inout State, _ spool: Spool) -> OutboxWalk.Item? {
        while true {
            if let item = state.walk?.next() { return item }
            if state.everything {
                state.everything = false
                state.walk = spool.walkOutbox()
            } else if !state.recipients.isEmpty {
                state.walk = spool.walkOutbox(recipient: state.recipients.removeFirst())
            } else {
                state.walk = nil
                return nil
            }
        }
    }
}
