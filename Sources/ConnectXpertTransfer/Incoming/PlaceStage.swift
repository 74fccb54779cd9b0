import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSpool
import ConnectXpertSystem
import ConnectXpertTransport

/// Renames the local temporary file to its final name, following the rule on conflicts: the file
/// is then `delivered` (saved with the next step; see `TransferState.delivered`), once
/// `FolderSyncStage` has made the rename durable. A missing temporary file means the rename happened
/// before the previous run stopped.
struct PlaceStage: Stage {
    let agent: Agent

    var takes: Set<TransferState> { [.staged] }

    func run(_ job: inout Incoming, through transport: any Transport) throws {
        guard let temporary = job.record.temporary, let wanted = job.record.destination else {
            throw TransportError(.transient, "journal record without names")
        }
        if try FileSystem.status(temporary) != nil {
            var candidate = wanted
            var number = 0
            while true {
                do {
                    if job.rule.conflict == .overwrite {
                        try FileSystem.rename(temporary, to: candidate)
                    } else {
                        try FileSystem.renameNoReplace(temporary, to: candidate)
                    }
                    break
                } catch let error as SystemError where error.isAlreadyExists {
                    if job.rule.conflict == .fail {
                        throw PermanentFailure(
                            reason: "\(candidate) exists already and the inbox rule says conflict: fail",
                            advice: "move the local file away; the remote copy is kept until then")
                    }
                    number += 1
                    candidate = Names.alternative(to: wanted, number: number)
                    job.record.destination = candidate
                    try agent.journal.save(job.record, durable: true)
                }
            }
        }
        if job.record.sealed != nil { _ = try? FileSystem.removeIfPresent(temporary + ".manifest") }
        job.record.state = .delivered
    }
}

/// One fsync per folder makes a batch's renames durable. Should it fail, the files are renamed but
/// maybe not durably: not delivered yet, so their remote copies stay.
struct FolderSyncStage: BatchStage {
    let agent: Agent

    func run(_ jobs: inout [Incoming]) throws {
        let folders = Set(jobs.compactMap { $0.record.destination }.map(parentDirectory(of:)))
        do {
            for folder in folders.sorted() { try agent.syncFolder(folder) }
        } catch {
            for index in jobs.indices { jobs[index].record.state = .staged }
            throw error
        }
    }
}
