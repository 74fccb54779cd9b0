import ConnectXpertMail
import ConnectXpertPolicy
import ConnectXpertTransfer
import Foundation
import Logging
import Synchronization

/// The daemon's mail fetcher: polls each `mail.inbox` source at its `every:` interval on a thread
/// of its own (libcurl blocks). A source that refused us (login, TLS, mailbox) waits until the
/// policy is reloaded or `mail fetch` asks again; one that cannot be reached is tried at its next
/// interval.
public final class MailFetchWorker: Sendable {
    private struct State {
        /// When each source (by name) is next due.
        var due: [String: Date] = [:]
        /// Sources that refused us, with the reason, until `fetchNow`.
        var refused: [String: String] = [:]
    }

    private let mail: MailAgent
    private let fetcher: MailFetcher
    private let state = Mutex(State())
    private let thread = WorkerThread()

    public init(mail: MailAgent, logger: Logger) {
        self.mail = mail
        fetcher = MailFetcher(journal: mail.agent.journal, logger: logger)
    }

    public func start() {
        thread.start(name: "mail-fetch") { [self] in round() }
    }

    /// `mail fetch`, SIGHUP or a policy edit: every source now, refusals forgotten.
    public func fetchNow() {
        state.withLock { $0 = State() }
        thread.wake()
    }

    public func stop() { thread.stop() }

    private func round() -> Date? {
        let sources = mail.agent.policy.mail.inbox
        for source in sources where thread.isRunning {
            let now = Date()
            let (due, refused) = state.withLock { ($0.due[source.name] ?? .distantPast, $0.refused[source.name] != nil) }
            guard due <= now, !refused else { continue }
            let refusal = mail.fetch(from: source, fetcher: fetcher) { [thread] in thread.isRunning }
            state.withLock {
                $0.due[source.name] = now.addingTimeInterval(source.every.seconds)
                if let refusal { $0.refused[source.name] = refusal }
            }
        }
        return state.withLock { state in
            sources.filter { state.refused[$0.name] == nil }.compactMap { state.due[$0.name] }.min()
        }
    }
}
