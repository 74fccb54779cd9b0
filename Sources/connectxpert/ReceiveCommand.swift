import ArgumentParser

struct ReceiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receive",
        abstract: "Poll every inbox once and receive what is waiting.",
        discussion: "Exits 0 when all succeeded, 65 when files could not be received, 75 when a drop could not be reached.")

    @OptionGroup var policyOptions: PolicyOptions
    @OptionGroup var loggingOptions: LoggingOptions

    func run() throws {
        let logger = loggingOptions.bootstrap()
        let policy = try policyOptions.load()
        let (agent, mail, lock) = try startAgent(policy: policy, mode: .batch, logger: logger)
        defer { withExtendedLifetime(lock) {} }
        try agent.recover()
        agent.pollInboxes()
        try completeBatch(agent, mail) {
            "received \($0.transfers.received), failed \($0.failed), to retry \($0.deferred)"
                + ($0.refused > 0 ? ", refused \($0.refused)" : "")
        }
    }
}
