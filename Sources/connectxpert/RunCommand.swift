import ArgumentParser
import ConnectXpertDaemon
import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSpool
import ConnectXpertSystem
import ConnectXpertTransfer
import Logging
import ServiceLifecycle

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the agent: as a daemon, or one batch pass with --once.",
        discussion: """
            The daemon sends files as soon as they are closed in the outbox, polls the inboxes, reloads \
            the policy on SIGHUP or when the file is saved, and stops cleanly on SIGTERM or SIGINT.
            With --once it sends what is waiting (files and mail), polls every inbox and mailbox once \
            and exits: 0 when all \
            succeeded, 65 when files went to failed/, 75 when some must be retried later, 78 for an \
            invalid policy.
            """)

    @OptionGroup var policyOptions: PolicyOptions
    @OptionGroup var loggingOptions: LoggingOptions

    @Flag(name: .long, help: "Send what is waiting, poll every inbox once, then exit.")
    var once = false

    func run() async throws {
        let logger = loggingOptions.bootstrap()
        let policy = try policyOptions.load()
        let (agent, mailAgent, lock) = try startAgent(policy: policy, mode: once ? .batch : .daemon, logger: logger)
        defer { withExtendedLifetime(lock) {} }
        if once {
            try runOnce(agent, mailAgent)
            return
        }
        let mail = MailQueueWorker(mail: mailAgent, logger: logger)
        let fetcher = MailFetchWorker(mail: mailAgent, logger: logger)
        let inbox = InboxPollingService(agent: agent)
        let reloader = PolicyReloader(agent: agent, mail: mail, fetcher: fetcher, inbox: inbox,
                                      path: policyOptions.path, logger: logger)
        let screen = ScreenShareRequestService(spool: agent.spool, policyPath: policyOptions.path,
                                               logLevel: loggingOptions.logLevel, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: TransferService(agent: agent, mailSpool: mailAgent.spool, screen: screen, inbox: inbox,
                                               reloader: reloader, mail: mail, logger: logger)),
                .init(service: inbox),
                .init(service: ConnectionKeepAliveService(agent: agent)),
                .init(service: MailFetchService(fetcher: fetcher)),
                .init(service: screen),
                .init(service: SignalService(reloader: reloader, mail: mail, fetcher: fetcher)),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        do {
            try await group.run()
        } catch {
            throw fail("\(error)", .unavailable)
        }
    }

    private func runOnce(_ agent: Agent, _ mail: MailAgent) throws {
        try agent.recover()
        agent.scanOutbox()
        agent.pollInboxes()
        agent.waitUntilIdle()
        try mail.sendQueue()
        mail.fetch()
        try completeBatch(agent, mail) {
            "sent \($0.transfers.sent), received \($0.transfers.received)"
                + ($0.transfers.messagesSent > 0 ? ", messages sent \($0.transfers.messagesSent)" : "")
                + ($0.transfers.messagesReceived > 0 ? ", messages received \($0.transfers.messagesReceived)" : "")
                + ($0.mail.sent > 0 ? ", mail sent \($0.mail.sent)" : "")
                + ($0.mail.fetched > 0 ? ", mail fetched \($0.mail.fetched)" : "")
                + ", failed \($0.failed), to retry \($0.deferred)" + ($0.refused > 0 ? ", refused \($0.refused)" : "")
        }
    }
}

/// Waits for a batch pass to finish, stops the agent and ends with the code its tally calls for:
/// 0, 65 (EX_DATAERR) when something failed for good, 75 (EX_TEMPFAIL) when something must be retried.
func completeBatch(_ agent: Agent, _ mail: MailAgent, summary: (RunTally) -> String) throws {
    agent.waitUntilIdle()
    agent.shutdown()
    let tally = RunTally(transfers: agent.tally, mail: mail.tally)
    if tally.refused > 0 || agent.wasRefused {
        throw fail("\(summary(tally)); a server refused us (authentication, host key or TLS; see the log), "
            + "the files and mail wait in their outboxes", .noPermission)
    }
    if tally.failed > 0 {
        let places = [
            tally.transfers.failed > tally.transfers.failedDownloads ? agent.spool.failed : nil,
            tally.mail.failed > 0 ? mail.spool.failed : nil,
            tally.transfers.failedDownloads > 0 ? "the files left on the remote" : nil,
        ].compactMap { $0 }
        throw fail("\(summary(tally)) (see \(places.joined(separator: ", ")) and the log)", .dataError)
    }
    if tally.deferred > 0 {
        throw fail("\(summary(tally)) (transient failures; run again later)", .tempFail)
    }
    printError("connectxpert: \(summary(tally))")
}

/// Takes the spool's lock and opens the agent; a second agent on the same spool is refused.
func startAgent(policy: Policy, mode: RunMode, logger: Logger) throws -> (Agent, MailAgent, AgentLock) {
    let spool = Spool(root: policy.spool)
    do {
        try spool.createLayout()
        let lock = try AgentLock(path: spool.lock)
        let agent = try Agent(policy: policy, mode: mode, logger: logger, connect: TransportFactory.connect,
                              identity: Agent.identity(for: policy, logger: logger))
        return (agent, try MailAgent(agent: agent), lock)
    } catch let busy as AgentLock.Busy {
        throw fail("\(busy)", .tempFail)
    } catch let error as SQLiteError where error.isDamage {
        throw damagedJournal(error)
    } catch {
        throw fail("cannot open the spool \(spool.root): \(error)", .cantCreate)
    }
}
