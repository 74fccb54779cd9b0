import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTransport

/// The rule's after-step on the local file once it is delivered (delete, archive or keep), done
/// only if the file is still the version sent; the file is then `done`.
struct AfterUploadStage: Stage {
    let agent: Agent

    var takes: Set<TransferState> { [.delivered] }

    func run(_ job: inout Outgoing, through transport: any Transport) throws {
        try finish(&job.record, rule: job.rule, source: job.source)
    }

    func finish(_ record: inout TransferRecord, rule: OutboxRule, source: String) throws {
        if let status = try FileSystem.status(source), record.matches(status) {
            switch rule.after {
            case .delete:
                // No directory fsync: should the deletion be lost, the journal knows this version was sent.
                try FileSystem.remove(source)
            case .archive:
                try agent.spool.archive(recipient: record.peer, path: record.source)
            case .keep:
                break
            }
        }
        record.state = .done
        record.manifest = nil
        try agent.journal.save(record)
    }
}
