import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSpool
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation
import Logging

/// The listing that feeds the receive pipeline: one inbox rule's drops, listed, and a receive job
/// queued for each file that is stable.
extension Agent {
    /// Lists the drops one inbox rule reads and queues a download for each file found.
    func listInbox(ruleIndex: Int) -> JobOutcome {
        let policy = self.policy
        guard let rule = policy.inbox[safe: ruleIndex], let remote = policy.remotes[rule.remote],
              let pattern = SenderFolderPattern(template: rule.remoteFolder, recipient: policy.identity.id) else {
            return .finished
        }
        guard !isRefused(remote.name, item: nil) else { return .finished }
        var log = logger
        log[metadataKey: "transfer.remote"] = "\(remote.name)"
        var seen = Sightings(after: sightings.withLock { $0[ruleIndex] })
        let now = Date().timeIntervalSince1970
        do {
            try pool.withConnection(to: remote) { transport in
                // Hidden folders are nobody's drop (uploads in progress are in .connectxpert-temp).
                for folder in try transport.list(pattern.parent)
                    where folder.kind == .directory && folder.nameIsText && !folder.name.hasPrefix(".") {
                    guard let sender = pattern.sender(inFolderNamed: folder.name),
                          rule.senders.anyMatches(sender) else { continue }
                    let senderFolder = pattern.folder(for: sender)
                    let sealedOnly = try rule.requireSeal ?? (journal.peer(sender) != nil)
                    var messages: [(path: String, size: Int64)] = []
                    try collect(transport, folder: senderFolder, below: "", depth: 0) { listedPath, entry in
                        // Another agent's claim is skipped, unless it is so old that the agent is dead.
                        let claim = Claim(name: entry.name)
                        if let claim, !rule.deleteRemote || !claim.isStale(after: rule.claimTimeout) { return }
                        let path = claim.map { joinPath(parentDirectory(of: listedPath), $0.original) } ?? listedPath
                        let source = joinPath(senderFolder, path)
                        // A sealed file is taken by its manifest, renamed into place after its data;
                        // the folder's messages, all at once, in their sender's order.
                        let sealed = !path.contains("/") ? SealedName.parse(lastComponent(of: path)) : nil
                        if sealed?.part == .message { return messages.append((source, entry.size)) }
                        if sealed?.part == .data { return }
                        if sealed == nil && sealedOnly {
                            return warnOnce("""
                                a file that is not sealed is left on the drop: only sealed objects are taken from \
                                this sender
                                """, key: source,
                                            metadata: ["transfer.source": "\(Names.printable(source))"])
                        }
                        let stable = sealed != nil || claim != nil
                            || seen.isStable(source, entry, for: rule.stableFor.seconds, now: now)
                        guard stable else {
                            return log.debug("still changing or just seen; taken once stable", metadata: [
                                "transfer.source": "\(Names.printable(source))",
                            ])
                        }
                        if let claim {
                            log.info("taking back a file claimed by an agent taken as dead", metadata: [
                                "transfer.source": "\(Names.printable(source))", "transfer.agent": "\(claim.agent)",
                                "transfer.claimed": "\(Date(timeIntervalSince1970: Double(claim.time)))",
                            ])
                        }
                        let file = IncomingFile(
                            ruleIndex: ruleIndex, sender: sender, source: source, relative: path, listed: entry,
                            claimFrom: claim.map { _ in joinPath(senderFolder, listedPath) })
                        enqueueReceive(file, remote: remote.name)
                    }
                    if !messages.isEmpty {
                        enqueueReceive(IncomingMessages(ruleIndex: ruleIndex, sender: sender, folder: senderFolder,
                                                        objects: messages), remote: remote.name)
                    }
                }
            }
        } catch where classify(error) == .refused {
            refused(error, remote: remote.name, item: nil)
            return .finished
        } catch {
            log.warning("cannot list the inbox drops", metadata: ["transfer.error": "\(error)"])
            if mode == .batch { count { $0.deferred += 1 } }
            return .finished
        }
        sightings.withLock { $0[ruleIndex] = seen }
        guard let wait = seen.soonest else { return .finished }
        // The daemon lists again as soon as the first unsettled file can be stable; a batch pass
        // once, and leaves what is still changing then for the next run.
        if mode == .daemon || seen.pass == 1 { return .retry(after: max(wait, 0.05)) }
        log.info("files still being written are left for the next run",
                 metadata: ["transfer.files": "\(seen.unsettled)"])
        count { $0.deferred += seen.unsettled }
        return .finished
    }

    /// Walks a sender's folder; hands over regular files with safe names and claims (`Claim`), skips
    /// temp names, and leaves unsafe names, links and special files on the remote with a log line.
    private func collect(_ transport: any Transport, folder: String, below: String, depth: Int,
                         _ found: (String, RemoteEntry) -> Void) throws {
        let entries = try transport.list(joinPath(folder, below))
        // Agents of one identity list the same folder at about the same time: each pass starts at a
        // place of its own, so that they mostly claim different files instead of racing for the same.
        let start = entries.isEmpty ? 0 : Int.random(in: 0..<entries.count)
        for index in entries.indices {
            let entry = entries[(start + index) % entries.count]
            let path = below.isEmpty ? entry.name : below + "/" + entry.name
            guard entry.nameIsText else {
                warnOnce("remote name is not UTF-8, so it cannot be received: left on the remote",
                         key: folder + "/" + path,
                         metadata: ["transfer.source": "\(joinPath(folder, path))"])
                continue
            }
            if entry.kind == .file, Claim(name: entry.name) != nil {
                found(path, entry)
                continue
            }
            if let problem = Names.problem(withComponent: entry.name) {
                if !Names.isTemporary(entry.name) || entry.name.hasPrefix("..") {
                    warnOnce("unsafe remote name left on the remote: \(problem)", key: folder + "/" + path,
                             metadata: ["transfer.source": "\(Names.printable(joinPath(folder, path)))"])
                }
                continue
            }
            switch entry.kind {
            case .file where !Names.isTemporary(entry.name):
                found(path, entry)
            case .directory where depth < 32:
                try collect(transport, folder: folder, below: path, depth: depth + 1, found)
            case .symlink, .other:
                warnOnce("remote entry is not a regular file; left on the remote", key: folder + "/" + path,
                         metadata: ["transfer.source": "\(Names.printable(joinPath(folder, path)))"])
            default:
                break
            }
        }
    }
}
