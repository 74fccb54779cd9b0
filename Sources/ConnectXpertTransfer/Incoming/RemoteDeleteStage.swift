import ConnectXpertJournal
import ConnectXpertTransport

/// The last step, once the local copy is durable under its final name: the remote copy is deleted
/// (if the rule says so), and only if it is still the version received: a writer may have gone on
/// since. The file is then `done`.
struct RemoteDeleteStage: Stage {
    let agent: Agent

    var takes: Set<TransferState> { [.delivered] }

    func run(_ job: inout Incoming, through transport: any Transport) throws {
        if job.rule.deleteRemote {
            if let now = try transport.entry(at: job.record.source), !job.record.isVersion(of: now) {
                job.log.warning("""
                    the remote file changed after it was received; it is left on the remote, to be received again \
                    as a new version once stable
                    """, metadata: ["transfer.bytes": "\(now.size)"])
            } else {
                if job.record.sealed != nil { try transport.delete(SealedName.data(beside: job.record.source)) }
                try transport.delete(job.record.source)
            }
        }
        job.record.state = .done
        try agent.journal.save(job.record)
    }
}
