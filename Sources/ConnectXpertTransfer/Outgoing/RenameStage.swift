import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSpool
import ConnectXpertTransport

/// Renames the complete temporary file to its final name, following the rule on conflicts: the
/// file is then `delivered` (saved only if the after-step fails; see `TransferState.delivered`).
/// Unless the upload just happened, the temporary name may be gone already: renamed before the
/// previous run stopped (the name is ours alone).
struct RenameStage: Stage {
    let agent: Agent

    var takes: Set<TransferState> { [.staged] }

    func run(_ job: inout Outgoing, through transport: any Transport) throws {
        guard let temporary = job.record.temporary else {
            throw TransportError(.transient, "journal record without a temporary name")
        }
        if !job.uploadedNow, try transport.entry(at: temporary) == nil {
            job.record.state = .delivered
            return
        }
        if job.record.sealed != nil, let destination = job.record.destination {
            try transport.rename(temporary, to: destination, replacing: false)  // a random name: no conflict
            job.record.state = .delivered
            return
        }
        let wanted = agent.remotePath(recipient: job.record.peer, path: job.record.source, rule: job.rule)
        switch job.rule.conflict {
        case .overwrite:
            try transport.rename(temporary, to: wanted, replacing: true)
            job.record.destination = wanted
        case .fail:
            do {
                try transport.rename(temporary, to: wanted, replacing: false)
            } catch let error as TransportError where error.kind == .alreadyExists {
                try transport.delete(temporary)
                throw PermanentFailure(
                    reason: "\(transport.endpoint)/\(wanted) exists already and the rule says conflict: fail",
                    advice: "remove or rename the remote file, or set conflict: rename or overwrite; "
                        + "then move this file back into the outbox")
            }
            job.record.destination = wanted
        case .rename:
            var candidate = job.record.destination ?? wanted
            var number = 0
            while true {
                if job.record.destination != candidate {
                    job.record.destination = candidate
                    try agent.journal.save(job.record, durable: true)
                }
                do {
                    try transport.rename(temporary, to: candidate, replacing: false)
                    break
                } catch let error as TransportError where error.kind == .alreadyExists {
                    number += 1
                    candidate = Names.alternative(to: wanted, number: number)
                }
            }
        }
        job.record.state = .delivered
    }
}
