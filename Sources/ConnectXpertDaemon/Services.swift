import ConnectXpertMail
import ConnectXpertPolicy
import ConnectXpertSpool
import ConnectXpertSystem
import ConnectXpertTransfer
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// Watches the outbox and the policy file and feeds the agent; on graceful shutdown stops the
/// watcher, aborts transfers in progress (removing their temporary files) and waits for them.
public struct TransferService: Service {
    let agent: Agent
    let reloader: PolicyReloader
    let mail: MailQueueWorker
    let logger: Logger

    let mailSpool: MailSpool
    let screen: ScreenShareRequestService
    let inbox: InboxPollingService

    public init(agent: Agent, mailSpool: MailSpool, screen: ScreenShareRequestService, inbox: InboxPollingService,
                reloader: PolicyReloader, mail: MailQueueWorker, logger: Logger) {
        self.inbox = inbox
        self.mailSpool = mailSpool
        self.screen = screen
        self.agent = agent
        self.reloader = reloader
        self.mail = mail
        self.logger = logger
    }

    public func run() async throws {
        let agent = self.agent
        let reloader = self.reloader
        let mail = self.mail
        let screen = self.screen
        let inbox = self.inbox
        let watcher = Watcher(spool: agent.spool, mailOutbox: mailSpool.outbox, policyFile: agent.policy.sourceFile,
                              logger: logger) { event in
            switch event {
            case let .file(recipient, path, closed): agent.enqueueSend(recipient: recipient, path: path, closed: closed)
            case let .folder(recipient): agent.scanOutbox(recipient: recipient)
            case .rescan:
                agent.scanOutbox()
                agent.takeQueuedMessages()
                mail.mailQueued()
            case .policyChanged: reloader.reload()
            case .mailQueued: mail.mailQueued()
            case .jobsChanged:
                screen.requestsChanged()
                inbox.chatsChanged()
            case .messageQueued: agent.takeQueuedMessages()
            }
        }
        try watcher.start()
        try mail.start()
        try agent.recover()
        agent.scanOutbox()
        screen.requestsChanged()  // what was requested before the watch
        logger.info("watching the outbox", metadata: ["spool.root": "\(agent.spool.root)"])
        try? await gracefulShutdown()
        logger.info("stopping: cancelling transfers in progress and removing their temporary files")
        await blocking("stop") {
            watcher.stop()
            mail.stop()
            agent.shutdown()
        }
        logger.info("stopped")
    }
}

/// Lists every inbox rule's drops at the rule's `every:` interval, and every second a rule that
/// reads the folder of a peer whose chat view is open (`connectxpert chat`). It sleeps until the
/// next rule is due, or until a policy reload (`policyChanged`) or a chat view opening or closing
/// (`chatsChanged`) changes the rules or their intervals.
public struct InboxPollingService: Service {
    let agent: Agent
    private let wakeups = Wakeups()
    /// How often a chat view's peer's folder is looked at.
    static let chatInterval = 1.0

    public init(agent: Agent) { self.agent = agent }

    /// The policy in force changed: the rules' next polls are worked out again.
    public func policyChanged() { wakeups.wake() }

    /// A chat view opened or closed.
    public func chatsChanged() { wakeups.wake() }

    public func run() async throws {
        var polled: [Int: (rule: InboxRule, at: Date)] = [:]  // a rule that changed is polled at once
        var alarm: Task<Void, Never>?
        defer { alarm?.cancel() }
        for await _ in wakeups.events.cancelOnGracefulShutdown() {
            let now = Date()
            let rules = agent.policy.inbox
            let chats = agent.spool.chatPeers()
            polled = polled.filter { $0.key < rules.count && rules[$0.key] == $0.value.rule }
            var next: Date?
            for (index, rule) in rules.enumerated() {
                let chatting = chats.contains { rule.senders.anyMatches($0) }
                let interval = chatting ? min(rule.every.seconds, Self.chatInterval) : rule.every.seconds
                if let last = polled[index]?.at, last.addingTimeInterval(interval) > now {
                    next = min(next ?? .distantFuture, last.addingTimeInterval(interval))
                    continue
                }
                agent.pollInbox(ruleIndex: index)
                polled[index] = (rule, now)
                next = min(next ?? .distantFuture, now.addingTimeInterval(interval))
            }
            alarm?.cancel()
            guard let next else { continue }
            alarm = Task { [wakeups] in
                guard (try? await Task.sleep(for: .seconds(max(0, next.timeIntervalSinceNow)))) != nil else { return }
                wakeups.wake()
            }
        }
    }
}

/// Every five seconds, has the agent keep its idle connections alive or close them.
public struct ConnectionKeepAliveService: Service {
    let agent: Agent

    public init(agent: Agent) { self.agent = agent }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while true {
                try await Task.sleep(for: .seconds(5))
                agent.keepConnectionsAlive()
            }
        }
    }
}

/// Polls the `mail.inbox` sources on the fetch worker's thread until graceful shutdown.
public struct MailFetchService: Service {
    let fetcher: MailFetchWorker

    public init(fetcher: MailFetchWorker) { self.fetcher = fetcher }

    public func run() async throws {
        fetcher.start()
        try? await gracefulShutdown()
        let fetcher = self.fetcher
        await blocking("mail-fetch-stop") { fetcher.stop() }
    }
}

/// Reloads the policy on SIGHUP (and, through the watcher, when the file is saved); sends the
/// mail queue at once, pauses ignored, on SIGUSR1 (`connectxpert mail flush`); fetches mail at once
/// on SIGUSR2 (`connectxpert mail fetch`).
public struct SignalService: Service {
    let reloader: PolicyReloader
    let mail: MailQueueWorker
    let fetcher: MailFetchWorker

    public init(reloader: PolicyReloader, mail: MailQueueWorker, fetcher: MailFetchWorker) {
        self.reloader = reloader
        self.mail = mail
        self.fetcher = fetcher
    }

    public func run() async throws {
        for await signal in await UnixSignalsSequence(trapping: .sighup, .sigusr1, .sigusr2).cancelOnGracefulShutdown() {
            switch signal {
            case .sigusr1: mail.flush()
            case .sigusr2: fetcher.fetchNow()
            default: reloader.reload()
            }
        }
    }
}

/// Reads the policy file again and puts it in force; an invalid edit is logged with the `check`
/// message and the policy in force stays.
public final class PolicyReloader: Sendable {
    let agent: Agent
    let mail: MailQueueWorker
    let fetcher: MailFetchWorker
    let inbox: InboxPollingService
    let path: String
    let logger: Logger

    public init(agent: Agent, mail: MailQueueWorker, fetcher: MailFetchWorker, inbox: InboxPollingService,
                path: String, logger: Logger) {
        self.agent = agent
        self.mail = mail
        self.fetcher = fetcher
        self.inbox = inbox
        self.path = path
        self.logger = logger
    }

    /// Also retries what waits in the outbox, so a fixed known_hosts file or credential takes
    /// effect on SIGHUP even when the policy itself did not change.
    public func reload() {
        do {
            let policy = try PolicyLoader.load(path: path)
            if policy != agent.policy {
                agent.replacePolicy(policy)
                inbox.policyChanged()
                logger.notice("policy reloaded", metadata: ["policy.file": "\(path)"])
            }
            agent.reloadIdentity()
            agent.forgetRefusals()
            agent.scanOutbox()
            mail.flush()
            fetcher.fetchNow()
        } catch {
            logger.error("policy edit rejected; the previous policy stays in force",
                         metadata: ["policy.file": "\(path)", "policy.error": "\(error)"])
        }
    }
}
