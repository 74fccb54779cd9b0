import ConnectXpertJournal
import ConnectXpertTransport

/// Claims the remote file before its download: renames it (or the stale claim of a dead agent) to
/// the claim name its record holds. A file already renamed away was claimed by another agent first:
/// it is gone for us. A run resumed from the journal finds its claim made, or, when the claim was
/// given back or never made, makes a new one, recorded before the rename. See `Claim`.
struct ClaimStage: Stage {
    let agent: Agent

    var takes: Set<TransferState> { [.queued, .transferring] }

    func run(_ job: inout Incoming, through transport: any Transport) throws {
        guard var claim = job.record.claim else { return }
        if job.listed == nil {
            if try transport.entry(at: claim) != nil { return }
            job.record.claim = Claim.path(of: job.record.source, by: agent.policy.identity.agent)
            try agent.journal.save(job.record)
            guard let fresh = job.record.claim else { return }  // a longer agent name than before
            claim = fresh
        }
        let from = job.subject.item.claimFrom ?? job.record.source
        do {
            // The target is no one else's name: a rename that replaces is good enough, and costs FTP
            // no check of the target.
            try transport.rename(from, to: claim, replacing: true)
        } catch {
            // The rename may have been made by a first try whose connection then broke.
            if try transport.entry(at: claim) != nil { return }
            guard try transport.entry(at: from) != nil else { throw SourceGone() }
            throw error
        }
    }
}

/// Once the local copy is durable, takes the claim for good (its taken name), before the file is
/// placed: if another agent took the claim back meanwhile (this agent was taken as dead), the
/// rename fails, and this copy is dropped, so the file is delivered once. A run resumed from the
/// journal finds the taken name already there.
struct TakeStage: Stage {
    var takes: Set<TransferState> { [.staged] }

    func run(_ job: inout Incoming, through transport: any Transport) throws {
        guard let claim = job.record.claim, let taken = job.record.takenPath else { return }
        do {
            try transport.rename(claim, to: taken, replacing: true)
        } catch {
            if try transport.entry(at: taken) != nil { return }
            guard try transport.entry(at: claim) != nil else { throw SourceGone() }
            throw error
        }
    }
}
