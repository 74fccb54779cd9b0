import ConnectXpertJournal
import ConnectXpertTransport

/// The last step, once the local copy is durable under its final name: the remote copy is deleted
/// (if the rule says so; under its taken name, when claimed), if it is still the version received:
/// a writer may have gone on since. A taken file that changed is given back under its name, to be
/// received again. The file is then `done`.
struct RemoteDeleteStage: Stage {
    let agent: Agent

    var takes: Set<TransferState> { [.delivered] }

    func run(_ job: inout Incoming, through transport: any Transport) throws {
        if job.rule.deleteRemote {
            let source = job.record.source, remote = job.record.takenPath ?? source
            if let now = try transport.entry(at: remote), !job.record.isVersion(of: now) {
                if remote != source { try transport.rename(remote, to: source, replacing: false) }
                job.log.warning("""
                    the remote file changed after it was received; it is left on the remote, to be received again \
                    as a new version once stable
                    """, metadata: ["transfer.bytes": "\(now.size)"])
            } else {
                if job.record.sealed != nil { try transport.delete(SealedName.data(beside: source)) }
                try transport.delete(remote)
            }
        }
        job.record.state = .done
        try agent.journal.save(job.record)
    }
}
