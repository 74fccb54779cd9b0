import ConnectXpertMail
import ConnectXpertPolicy
import ConnectXpertTransfer
import Logging
import Synchronization

/// What one run's mail did, for the batch summary.
public struct MailCounts: Sendable, Equatable {
    /// Messages the SMTP server took.
    public var sent = 0
    /// Messages moved to `mail/failed/`.
    public var failed = 0
    /// Messages and fetches left for a later attempt.
    public var deferred = 0
    /// Messages and fetches a server refused (login, TLS): they wait for a person.
    public var refused = 0
    /// Messages fetched from IMAP mailboxes into Maildirs.
    public var fetched = 0

    mutating func add(_ queue: MailTally) {
        sent += queue.sent
        failed += queue.failed
        deferred += queue.deferred
        refused += queue.refused
    }
}

/// What one run did, files and mail, for the batch summary and its exit code.
public struct RunTally: Sendable, Equatable {
    public let transfers: Tally
    public let mail: MailCounts

    public init(transfers: Tally, mail: MailCounts) {
        self.transfers = transfers
        self.mail = mail
    }

    public var failed: Int { transfers.failed + mail.failed }
    public var deferred: Int { transfers.deferred + mail.deferred }
    public var refused: Int { transfers.refused + mail.refused }
}

/// The mail side of the agent: the queue sent over SMTP and the `mail.inbox` sources fetched into
/// Maildirs, under the policy in force of the transfer agent it goes with, and counted.
public final class MailAgent: Sendable {
    public let spool: MailSpool
    let agent: Agent
    private let counts = Mutex(MailCounts())

    public init(agent: Agent) throws {
        self.agent = agent
        spool = MailSpool(spool: agent.policy.spool)
        try spool.createLayout()
    }

    public var tally: MailCounts { counts.withLock { $0 } }

    func count(_ change: (inout MailCounts) -> Void) { counts.withLock { change(&$0) } }

    /// Sends the mail queue once, on this thread, trying every message whatever its pause (batch
    /// mode and `mail flush`: the pass is the retry).
    public func sendQueue() throws {
        let runner = try MailQueueRunner(spool: spool, journal: agent.journal, logger: agent.logger)
        let tally = runner.run(settings: agent.policy.mail, ignoringBackoff: true) { [agent] in !agent.isStopping }
        count { $0.add(tally) }
    }

    /// Fetches every `mail.inbox` source once, on this thread (batch mode and `mail fetch`).
    public func fetch() {
        let fetcher = MailFetcher(journal: agent.journal, logger: agent.logger)
        for source in agent.policy.mail.inbox where !agent.isStopping {
            fetch(from: source, fetcher: fetcher) { [agent] in !agent.isStopping }
        }
    }

    /// Fetches one source and counts the outcome; returns the reason when the server refused us
    /// (the source waits for a person: a policy edit or `mail fetch`).
    @discardableResult
    func fetch(from source: IMAPSource, fetcher: MailFetcher, shouldContinue: () -> Bool) -> String? {
        let logger = agent.logger
        do {
            let tally = try fetcher.fetch(source, shouldContinue: shouldContinue)
            count { $0.fetched += tally.delivered }
            return nil
        } catch let error as MailServerError {
            let refused = error.kind == .refused
            logger.error(refused ? "cannot fetch mail until the policy or the server changes"
                             : "cannot fetch mail now; will retry",
                         metadata: ["mail.source": "\(source.name)", "mail.error": "\(error)"])
            count { if refused { $0.refused += 1 } else { $0.deferred += 1 } }
            return refused ? error.message : nil
        } catch {
            logger.error("cannot deliver fetched mail; will retry", metadata: [
                "mail.source": "\(source.name)", "mail.maildir": "\(source.maildir)", "mail.error": "\(error)",
            ])
            count { $0.deferred += 1 }
            return nil
        }
    }
}
