import ConnectXpertJournal
import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// An agent whose policy sends mail to a test SMTP server.
private struct MailAgent {
    let root = NSTemporaryDirectory() + "cx-mailagent-" + UUID().uuidString.prefix(8)
    let server: SMTPTestServer

    init(_ server: SMTPTestServer, firstRetryAfter: String = "300ms") throws {
        self.server = server
        try FileSystem.createDirectories(root)
        try write(joinPath(root, "policies.yaml"), """
            identity:
              id: alice
            remotes:
              drop:
                url: file:drop
            mail:
              from: alice@example.org
              smtp:
                url: \(server.url)
                user: cx
                password_file: \(server.passwordFile)
                ca_file: \(server.certificate)
                timeout: 5s
              retry:
                initial: \(firstRetryAfter)
                max: \(firstRetryAfter)

            """)
    }

    var outbox: String { joinPath(root, "spool/mail/outbox") }
    var queued: [String] { ((try? FileSystem.contents(of: outbox)) ?? []).filter { $0.hasSuffix(".eml") && !$0.hasPrefix(".") }.sorted() }

    func run(_ arguments: [String], input: String? = nil) throws -> Outcome {
        try AgentProcess(arguments, in: root, input: input.map { Array($0.utf8) }).wait(timeout: 120)
    }

    func daemon() throws -> AgentProcess {
        let agent = try AgentProcess(["run"], in: root)
        #expect(eventually { agent.log.contains("watching the outbox") }, "\(agent.log)")
        return agent
    }

    /// Writes `count` messages straight into the queue, subjects "0" … "count-1".
    func queueNumbered(_ count: Int) throws {
        try FileSystem.createDirectories(outbox)
        for n in 0..<count {
            let temporary = joinPath(outbox, ".m\(n).tmp")
            try write(temporary, "From: alice@example.org\nTo: bob@example.org\nSubject: \(n)\n\nmessage \(n)\n")
            try FileSystem.rename(temporary, to: joinPath(outbox, String(format: "m%05d.eml", n)))
        }
    }

    /// The Message-IDs the server received for each numbered subject, in order.
    func deliveries() throws -> [String: [String]] {
        var deliveries: [String: [String]] = [:]
        for message in try server.received() {
            let lines = String(decoding: message.data, as: UTF8.self).components(separatedBy: "\r\n")
            func field(_ name: String) -> String? { lines.first { $0.hasPrefix(name + ": ") }.map { String($0.dropFirst(name.count + 2)) } }
            guard let subject = field("Subject") else { continue }
            deliveries[subject, default: []].append(field("Message-ID") ?? "")
        }
        return deliveries
    }

    /// Every numbered message arrived. A crash (of the agent or the server) between the server
    /// storing a message and the agent reading its `250` is the one case SMTP cannot tell apart
    /// from a message that never arrived (RFC 1047): that one message is sent again, with the same
    /// Message-ID, so a receiver's duplicate suppression drops it. Anything else is a failure.
    func checkEachDeliveredOnce(count: Int, crashes: Int) throws {
        let deliveries = try self.deliveries()
        #expect(deliveries.count == count)
        let repeated = deliveries.filter { $0.value.count > 1 }
        #expect(repeated.count <= crashes, "\(repeated)")
        for (subject, ids) in repeated {
            #expect(ids.count == 2 && ids[0] == ids[1] && ids[0].hasPrefix("<cx."), "message \(subject): \(ids)")
        }
    }
}

@Suite(.serialized) struct MailCommandTests {
    @Test func sendmailQueuesTheMessageWithItsEnvelope() throws {
        let agent = try MailAgent(try SMTPTestServer())
        let message = "To: a@example.org\nBcc: b@example.org\nSubject: cron\n\nfirst\n.\nafter the dot\n"
        let outcome = try agent.run(["sendmail", "-t", "-oi", "-f", "root@host.example", "extra@example.org"], input: message)
        #expect(outcome.status == 0 && outcome.stdout.isEmpty && outcome.stderr.isEmpty, "\(outcome.stderr)")
        let name = try #require(agent.queued.first)
        #expect(String(decoding: read(joinPath(agent.outbox, name)) ?? [], as: UTF8.self) == "From: <root@host.example>\n" + message)
        let envelope = String(decoding: read(joinPath(agent.outbox, String(name.dropLast(4)) + ".envelope")) ?? [], as: UTF8.self)
        #expect(envelope == "from root@host.example\nto a@example.org\nto b@example.org\nto extra@example.org\n")

        // Without -i a lone "." ends the message; without -t only the arguments are recipients.
        _ = try agent.run(["sendmail", "c@example.org"], input: "Subject: dot\n\nfirst\n.\nnever\n")
        let second = try #require(agent.queued.last)
        let text = String(decoding: read(joinPath(agent.outbox, second)) ?? [], as: UTF8.self)
        #expect(text.hasPrefix("From: <alice@example.org>\nSubject: dot\n\nfirst\n") && !text.contains("never"), "\(text)")
    }

    @Test func sendmailRefusesWhatItCannotQueue() throws {
        let agent = try MailAgent(try SMTPTestServer())
        let noRecipient = try agent.run(["sendmail"], input: "Subject: x\n\nbody\n")
        #expect(noRecipient.status == 64)
        #expect(noRecipient.stderr == "connectxpert: no recipients given (name them as arguments, or use -t)\n")
        let notMail = try agent.run(["sendmail", "a@example.org"], input: "\u{1}binary garbage\n")
        #expect(notMail.status == 65)
        #expect(notMail.stderr.hasPrefix("connectxpert: this is not a mail message: it does not start with a header field"))
        let daemonMode = try agent.run(["sendmail", "-bd"])
        #expect(daemonMode.status == 64 && daemonMode.stderr.contains("sendmail mode -bd is not supported"), "\(daemonMode.stderr)")
        #expect(agent.queued.isEmpty)
    }

    @Test func mailSendQueueAndBatchRun() throws {
        let agent = try MailAgent(try SMTPTestServer())
        let sent = try agent.run(["mail", "send", "--to", "bob@example.org", "--subject", "hi", "--body", "hello"])
        #expect(sent.status == 0, "\(sent.stderr)")
        let name = try #require(agent.queued.first)
        #expect(sent.stdout == "queued \(joinPath(agent.outbox, name)) for bob@example.org\n")
        let size = try #require(try FileSystem.status(joinPath(agent.outbox, name))).size
        let queue = try agent.run(["mail", "queue"])
        #expect(queue.stdout == "\(name)  from alice@example.org to bob@example.org  \(size) B\n    not tried yet\n", "\(queue.stdout)")
        let once = try agent.run(["run", "--once"])
        #expect(once.status == 0)
        #expect(once.stderr.hasSuffix("connectxpert: sent 0, received 0, mail sent 1, failed 0, to retry 0\n"), "\(once.stderr)")
        #expect(try agent.run(["mail", "queue"]).stdout == "the mail queue is empty\n")
        #expect(try agent.server.received().count == 1)
    }

    @Test func aFailedBatchRunSaysWhenTheQueueIsRetried() throws {
        let agent = try MailAgent(try SMTPTestServer())
        try agent.server.failNextData(["451 4.3.0 busy"])
        _ = try agent.run(["sendmail", "bob@example.org"], input: "Subject: later\n\nbody\n")
        let once = try agent.run(["run", "--once"])
        #expect(once.status == 75, "\(once.stderr)")
        let queue = try agent.run(["mail", "queue"]).stdout
        #expect(queue.contains("    attempts 1, next try ") && queue.hasSuffix("last error: SMTP server 127.0.0.1:\(agent.server.port) answered the end of the message with: 451 4.3.0 busy\n"), "\(queue)")
        let flush = try agent.run(["mail", "flush"])
        #expect(flush.status == 0 && flush.stderr.hasSuffix("connectxpert: mail sent 1, failed 0, to retry 0\n"), "\(flush.stderr)")
    }

    @Test func theDaemonSendsQueuedMailAtOnce() throws {
        let agent = try MailAgent(try SMTPTestServer())
        let daemon = try agent.daemon()
        _ = try agent.run(["sendmail", "bob@example.org"], input: "Subject: now\n\nbody\n")
        #expect(eventually(timeout: 10) { (try? agent.server.received().count) == 1 }, "\(daemon.log)")
        #expect(eventually { agent.queued.isEmpty })
        daemon.signal(SIGTERM)
        #expect(daemon.wait().status == 0)
    }

    @Test func flushMakesTheDaemonRetryAtOnce() throws {
        let agent = try MailAgent(try SMTPTestServer(), firstRetryAfter: "1h")
        try agent.server.failNextData(["451 4.3.0 busy"])
        let daemon = try agent.daemon()
        _ = try agent.run(["sendmail", "bob@example.org"], input: "Subject: flushed\n\nbody\n")
        let journal = try Journal(path: joinPath(agent.root, "spool/.state/journal.sqlite"))
        #expect(eventually { (try? journal.mailRecords().map(\.attempts)) == [1] }, "deferred: \(daemon.log)")
        let flush = try agent.run(["mail", "flush"])
        #expect(flush.status == 0 && flush.stdout == "asked the agent (pid \(daemon.process.processIdentifier)) to send the mail queue now\n",
                "\(flush.stdout) \(flush.stderr)")
        #expect(eventually(timeout: 10) { (try? agent.server.received().count) == 1 }, "\(daemon.log)")
        daemon.signal(SIGTERM)
        #expect(daemon.wait().status == 0)
    }

    /// During a server outage, mail queued meanwhile is tried at once, each message once; a message
    /// that failed before keeps its own schedule: it is not tried again, and its pause does not grow.
    @Test func newMailDuringAnOutageLeavesTheWaitingMailItsSchedule() throws {
        let agent = try MailAgent(try SMTPTestServer(), firstRetryAfter: "1h")
        agent.server.stop()
        let daemon = try agent.daemon()
        let journal = try Journal(path: joinPath(agent.root, "spool/.state/journal.sqlite"))
        func attempts() -> [Int] { ((try? journal.mailRecords()) ?? []).map(\.attempts) }
        for count in 1...4 {
            _ = try agent.run(["sendmail", "bob@example.org"], input: "Subject: \(count)\n\nbody\n")
            #expect(eventually(timeout: 10) { attempts().count == count }, "\(attempts()) \(daemon.log)")
        }
        #expect(attempts() == [1, 1, 1, 1])
        daemon.signal(SIGTERM)
        #expect(daemon.wait().status == 0)
    }

    @Test func mailThatCannotGoWaitsWithoutSpinning() throws {
        let agent = try MailAgent(try SMTPTestServer())
        let policy = joinPath(agent.root, "policies.yaml")
        let text = String(decoding: read(policy) ?? [], as: UTF8.self)
        try write(policy, String(text[..<text.range(of: "  smtp:")!.lowerBound]))  // no SMTP server
        let daemon = try agent.daemon()
        _ = try agent.run(["sendmail", "bob@example.org"], input: "Subject: waits\n\nbody\n")
        #expect(eventually { daemon.log.contains("mail is queued but no SMTP server is set") }, "\(daemon.log)")
        let before = cpuSeconds(daemon.process.processIdentifier)
        sleep(2)
        #expect(cpuSeconds(daemon.process.processIdentifier) - before < 0.5)
        #expect(agent.queued.count == 1)
        daemon.signal(SIGTERM)
        #expect(daemon.wait().status == 0)
    }

    @Test func killedDuringTheQueueNoMessageIsLostOrSentTwiceWithoutItsMessageID() throws {
        let agent = try MailAgent(try SMTPTestServer())
        try agent.queueNumbered(400)
        let first = try agent.daemon()
        #expect(eventually(timeout: 60) { ((try? agent.server.received().count) ?? 0) >= 120 })
        first.signal(SIGKILL)
        first.wait()
        let second = try agent.daemon()
        #expect(eventually(timeout: 120) { agent.queued.isEmpty }, "\(second.log)")
        second.signal(SIGTERM)
        second.wait()
        try agent.checkEachDeliveredOnce(count: 400, crashes: 1)
    }

    @Test func aServerKilledDuringTheQueueLosesNoMessage() throws {
        let agent = try MailAgent(try SMTPTestServer())
        try agent.queueNumbered(300)
        let daemon = try agent.daemon()
        #expect(eventually(timeout: 60) { ((try? agent.server.received().count) ?? 0) >= 80 })
        agent.server.stop()
        usleep(500_000)
        try agent.server.start()
        #expect(eventually(timeout: 120) { agent.queued.isEmpty }, "\(daemon.log)")
        daemon.signal(SIGTERM)
        daemon.wait()
        try agent.checkEachDeliveredOnce(count: 300, crashes: 1)
    }
}

/// User plus system CPU time of a process, from /proc/<pid>/stat.
private func cpuSeconds(_ pid: Int32) -> Double {
    let stat = String(decoding: read("/proc/\(pid)/stat") ?? [], as: UTF8.self)
    guard let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After the command: state is field 3 of stat(5), utime 14 and stime 15.
    let ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
    return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
}
