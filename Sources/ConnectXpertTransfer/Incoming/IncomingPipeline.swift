import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation
import Logging

/// A remote file to receive: what a receive job is about.
struct IncomingFile: Sendable {
    let ruleIndex: Int
    let sender: String
    /// Its path on the remote.
    let source: String
    /// Its path below the sender's folder, and its entry in the listing that found it; both nil when
    /// resuming, where the journal holds the names.
    let relative: String?
    let listed: RemoteEntry?
    /// The claim of an agent taken as dead that the file is under: it is claimed from there.
    var claimFrom: String? = nil

    /// Its job's key, on the remote it is received from.
    func key(on remote: String) -> JobKey { JobKey("in", remote, source) }
}

/// One remote file on its way.
struct Incoming: TransferJob {
    let running: RunningJob
    let subject: Subject<IncomingFile>
    let rule: InboxRule
    var record: TransferRecord
    /// The entry a download starts from, when a listing just found the file.
    var listed: RemoteEntry?
    let started = Date()
}

/// The receive pipeline, journaled like the send pipeline. The remote copy is deleted only once the
/// local one is durable:
///
///     list (InboxListing) → admit (queued) → claim (renamed to our claim name, when the remote
///     copy is to be deleted) → download (transferring, to a local temp name; staged once complete
///     and fsynced; a sealed object's manifest is downloaded) → open, when sealed (checked, the data
///     downloaded and opened into the temp file: staged) → take (the claim renamed to its taken
///     name) → place (delivered, renamed into the destination; the folders fsynced) → remote
///     delete (done; data first)
struct IncomingPipeline: Pipeline {
    let agent: Agent

    var staging: [any Stage<Incoming>] {
        [ClaimStage(agent: agent), DownloadStage(agent: agent), OpenStage(agent: agent)]
    }
    var completing: [Step<Incoming>] {
        [
            .each(TakeStage()),
            .each(PlaceStage(agent: agent)),
            .together(FolderSyncStage(agent: agent)),
            .each(RemoteDeleteStage(agent: agent)),
        ]
    }

    /// Finds or begins the transfer of a remote file: none when it is kept on the remote and was
    /// received already, or over the rule's `max_size`.
    func admit(_ file: IncomingFile, as running: RunningJob) -> Admission<Incoming> {
        let policy = agent.policy
        guard let rule = policy.inbox[safe: file.ruleIndex], let remote = policy.remotes[rule.remote],
              !agent.isRefused(remote.name, item: file.key(on: remote.name)) else { return .skip(.finished) }
        var log = agent.logger
        log[metadataKey: "transfer.remote"] = "\(remote.name)"
        log[metadataKey: "transfer.sender"] = "\(file.sender)"
        log[metadataKey: "transfer.source"] = "\(file.source)"
        let subject = Subject(item: file, key: file.key(on: remote.name), remote: remote, retry: rule.retry, log: log)
        var attempt = Attempt(subject: subject)
        do {
            let standing = try agent.journal.standing(.incoming, remote: remote.name, peer: file.sender,
                                                      source: file.source)
            if let active = standing.active {
                return .ready(Incoming(running: running, subject: subject, rule: rule, record: active))
            }
            guard let relative = file.relative, let entry = file.listed, entry.kind == .file else {
                return .skip(.finished)
            }
            if !rule.deleteRemote, let done = standing.lastDone, done.isVersion(of: entry) {
                return .skip(.finished)  // kept on the remote and received already
            }
            if let limit = rule.maxSize, entry.size > limit.bytes {
                agent.warnOnce("remote file is over the inbox max_size of \(limit); left on the remote",
                               key: file.source, metadata: ["transfer.bytes": "\(entry.size)"])
                return .skip(.finished)
            }
            let destination = joinPath(destinationFolder(rule, sender: file.sender), relative)
            let name = lastComponent(of: file.source)
            let record = try agent.journal.begin(
                .incoming, peer: file.sender, remote: remote.name, source: file.source, size: entry.size,
                modificationNanoseconds: entry.modificationNanoseconds, inode: 0, destination: destination,
                temporary: agent.temporaryName(for: destination),
                sealed: SealedName.parse(name).flatMap { $0.part == .manifest ? $0.object : nil },
                // A file deleted once received is first claimed, as other agents of our identity may
                // read the same drop.
                claim: rule.deleteRemote ? Claim.path(of: file.source, by: policy.identity.agent) : nil)
            attempt.record = record
            return .ready(Incoming(running: running, subject: subject, rule: rule, record: record, listed: entry))
        } catch {
            return .skip(agent.outcome(of: attempt, failing: error, in: self))
        }
    }

    private func destinationFolder(_ rule: InboxRule, sender: String) -> String {
        let rendered = rule.destination.render(["sender": sender, "spool": agent.spool.root,
                                                "date": PathTemplate.today()])
        return absolutePath(rendered, relativeTo: parentDirectory(of: agent.policy.sourceFile))
    }

    var delivered: (word: String, count: WritableKeyPath<Tally, Int>) { ("received", \.received) }
    var noun: String { "download" }

    func deliveredButUnfinished(_ attempt: Attempt<IncomingFile>) -> Logger.Message {
        "received, but the remote copy could not be deleted"  // the next poll tries again, and never downloads it twice
    }

    /// A file taken or deleted since it was listed (or received by a job that ran first).
    func isGone(_ error: Error) -> Bool { error is SourceGone || (error as? TransportError)?.kind == .notFound }

    func forget(_ attempt: Attempt<IncomingFile>) {
        guard let record = attempt.record else { return }
        record.removeTemporaryFiles()
        try? agent.journal.forget(id: record.id)
    }

    /// The partial temporary file stays: the next run resumes from it.
    func cancel(_ attempt: Attempt<IncomingFile>) {
        guard var record = attempt.record, record.state == .transferring else { return }
        record.state = .queued
        try? agent.journal.save(record)
    }

    /// The remote copy stays where it is, and a person has to look.
    func giveUp(_ attempt: Attempt<IncomingFile>, reason: String, advice: String?, log: Logger) {
        if var record = attempt.record {
            record.removeTemporaryFiles()
            record.state = .failed
            record.lastError = reason
            try? agent.journal.save(record)
        }
        var metadata: Logger.Metadata = ["transfer.reason": "\(reason)"]
        if let advice { metadata["transfer.advice"] = "\(advice)" }
        log.error("cannot receive; the file is left on the remote", metadata: metadata)
        agent.count {
            $0.failed += 1
            $0.failedDownloads += 1
        }
    }

    /// A claim is given back (renamed to the file's name) when its job fails before the file is
    /// staged, so that another agent, or this one's next try, takes the file; a file given up is
    /// given back even once taken, so that a person finds it where its sender put it. Best effort,
    /// on a connection of its own: a claim left behind goes stale, and is taken back after the
    /// rule's `claim_timeout`.
    func release(_ attempt: Attempt<IncomingFile>, givenUp: Bool) {
        guard let record = attempt.record, let claim = record.claim else { return }
        let held = [.queued, .transferring].contains(record.state) ? [claim]
            : givenUp ? [record.takenPath, claim].compactMap { $0 } : []
        guard !held.isEmpty else { return }
        try? agent.pool.withConnection(to: attempt.remote) { transport in
            for path in held where (try? transport.rename(path, to: record.source, replacing: false)) != nil {
                return
            }
        }
    }

    func advice(_ attempt: Attempt<IncomingFile>, afterRetries: Bool) -> String? { nil }
}

extension TransferRecord {
    /// Whether a remote file's entry, from a listing or a stat, shows the version this record
    /// received: the same size and modification time. Times are compared to the minute or the day
    /// where either is a whole minute or day (a Unix-style FTP listing gives no seconds, and only
    /// the day for files older than six months, while a stat gives seconds), and not at all where
    /// either is unknown (0: a server without MDTM).
    func isVersion(of entry: RemoteEntry) -> Bool {
        guard entry.size == size else { return false }
        let times = [modificationNanoseconds, entry.modificationNanoseconds]
        guard !times.contains(0) else { return true }
        let minute: Int64 = 60_000_000_000, day = 1440 * minute
        let unit = times.contains { $0 % day == 0 } ? day : times.contains { $0 % minute == 0 } ? minute : 1
        return times[0] / unit == times[1] / unit
    }
}
