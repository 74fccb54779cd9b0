import ConnectXpertMail
import ConnectXpertPolicy
import ConnectXpertTransfer
import Foundation
import Logging
import Synchronization

/// The daemon's mail sender: runs the queue on a thread of its own (libcurl blocks) whenever mail
/// is queued, a pause ends, or it is asked to; one SMTP session per run.
public final class MailQueueWorker: Sendable {
    private struct Requests {
        var pending = true
        var ignoreBackoff = false
        var endPause = false
        var forgetRefusal = false
    }

    private let mail: MailAgent
    private let logger: Logger
    private let requests = Mutex(Requests())
    private let thread = WorkerThread()

    public init(mail: MailAgent, logger: Logger) {
        self.mail = mail
        self.logger = logger
    }

    public func start() throws {
        let runner = try MailQueueRunner(spool: mail.spool, journal: mail.agent.journal, logger: logger)
        thread.start(name: "mail") { [self] in round(runner) }
    }

    /// New mail was queued: it is tried at once, even while the server is paused after a failure
    /// (the network may be back); the messages that failed before keep their own schedule.
    public func mailQueued() {
        requests.withLock { $0.endPause = true }
        wake()
    }

    /// `mail flush`, a reload or SIGHUP: try everything now, even after a refusal.
    public func flush() {
        requests.withLock {
            $0.ignoreBackoff = true
            $0.forgetRefusal = true
        }
        wake()
    }

    /// Ends the run in progress (the message being sent stays queued) and the thread.
    public func stop() { thread.stop() }

    private func wake() {
        requests.withLock { $0.pending = true }
        thread.wake()
    }

    /// One queue run; returns when the next message falls due (`nil`: when woken).
    private func round(_ runner: MailQueueRunner) -> Date? {
        let request = requests.withLock { state -> Requests in
            let taken = state
            state = Requests(pending: false)
            return taken
        }
        if request.forgetRefusal { runner.forgetRefusal() }
        if request.endPause { runner.endPause() }
        let settings = mail.agent.policy.mail
        let tally = runner.run(settings: settings, ignoringBackoff: request.ignoreBackoff) { [thread] in thread.isRunning }
        mail.count { $0.add(tally) }
        if requests.withLock({ $0.pending }) { return .distantPast }
        return runner.nextDue(settings: settings)
    }
}
