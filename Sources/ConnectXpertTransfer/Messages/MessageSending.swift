import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSeal
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation
import Logging

/// Messages out: `message send` queues a file in `messages/outbox/`; the agent takes it into the
/// journal, seals the peer's queued messages (each with the pair's next sequence number, in one
/// durable commit), and puts them on the drop one after the other, oldest first, each as
/// `<object>.message` through a temporary name. A message goes up only once the one before it is
/// on the drop, so the recipient, who takes a folder's messages in their sequence order, sees them
/// in the order they were written. They go where the recipient's outbox rule sends files, sealed
/// whatever the rule's `seal:` says, and wait, queued, as long as the drop or the peer's key do.
extension Agent {
    /// Takes the messages queued in the spool into the journal, and sends what waits.
    public func takeQueuedMessages() {
        do {
            let (queued, unreadable) = try spool.queuedMessages()
            for name in unreadable {
                warnOnce("a file in the message queue is not a queued message; left there", key: "message " + name,
                         metadata: ["spool.path": "\(joinPath(spool.messageOutbox, name))"])
            }
            try journal.queueMessages(queued.map { ($0.name, $0.message.to, $0.message.text, $0.message.time) })
            for (name, _) in queued { _ = try? FileSystem.removeIfPresent(joinPath(spool.messageOutbox, name)) }
            for peer in try journal.peersWithQueuedMessages() { enqueueMessages(to: peer) }
        } catch {
            logger.error("cannot take the queued messages", metadata: ["spool.error": "\(error)"])
        }
    }

    private func enqueueMessages(to peer: String) {
        let remote = policy.outboxRule(for: peer)?.remote ?? ""
        scheduler.enqueue(JobKey("messages", peer), remote: remote) { [self] job in
            job.end(sendMessages(to: peer, as: job.key))
        }
    }

    private func sendMessages(to peer: String, as key: JobKey) -> JobOutcome {
        var log = logger
        log[metadataKey: "message.to"] = "\(peer)"
        guard let rule = policy.outboxRule(for: peer), let remote = policy.remotes[rule.remote] else {
            warnOnce("messages wait: no outbox rule covers the recipient", key: "no rule for messages to " + peer,
                     metadata: ["message.to": "\(peer)"])
            return .finished
        }
        log[metadataKey: "transfer.remote"] = "\(remote.name)"
        guard !isRefused(remote.name, item: key) else { return .finished }
        do {
            let keys = try sealingKeys()
            try pool.withConnection(to: remote) { transport in
                let card = try peerCard(peer, trust: rule.trust, through: transport)
                try journal.sealQueuedMessages(to: peer) { message, sequence in
                    let object = SealedName.random()
                    let time = Date(timeIntervalSince1970: message.time).formatted(Date.ISO8601FormatStyle())
                    let sealed = SealedMessage(from: policy.identity.id, fromKey: keys.signing.publicKey.fingerprint,
                                               to: peer, toKey: card.fingerprint, sequence: sequence, time: time,
                                               object: object, text: message.text)
                    let destination = remotePath(recipient: peer, path: object + ".message", rule: rule)
                    return OutgoingMessage(object: object, sealed: try sealed.sealed(signedBy: keys, to: card.age),
                                           destination: destination,
                                           temporary: temporaryName(for: destination, pattern: rule.temporaryName))
                }
                try send(try journal.sealedMessages(to: peer), through: transport, log: log)
            }
            messageAttempts.withLock { $0[peer] = nil }
            try? journal.saveMessageError(to: peer, nil)
            return .finished
        } catch {
            return messagesWait(to: peer, failing: error, as: key, retry: rule.retry, log: log)
        }
    }

    /// Puts sealed messages on the drop, oldest first: each is written whole under its temporary name,
    /// one durable commit says they are, and then each is renamed to its own name, in order. A
    /// message staged by a run that stopped is renamed if its temporary file is still there; if it is
    /// not, it was renamed (and perhaps taken already), and is not sent again.
    private func send(_ messages: [(message: StoredMessage, sealed: OutgoingMessage)], through transport: any Transport,
                      log: Logger) throws {
        var folders = Set<String>(), written = Set<Int64>()
        for (message, sealed) in messages where message.state == .queued {
            for folder in [folder(ofRelative: sealed.destination), folder(ofRelative: sealed.temporary)]
            where folders.insert(folder).inserted {
                try transport.makeDirectories(folder)
            }
            _ = try transport.upload(from: BytesSource(sealed.sealed), to: sealed.temporary,
                                     attributes: UploadAttributes(modificationNanoseconds: nil, mode: nil,
                                                                  renamedTo: sealed.destination),
                                     progress: { _ in true })
            written.insert(message.id)
        }
        try journal.markStaged(messages: Array(written))
        for (message, sealed) in messages {
            let isWhole = try written.contains(message.id) || transport.entry(at: sealed.temporary) != nil
            if isWhole {
                do {
                    try transport.rename(sealed.temporary, to: sealed.destination, replacing: false)
                } catch let error as TransportError where error.kind == .alreadyExists {
                    try transport.delete(sealed.temporary)  // its name is ours alone: it is there already
                }
            }
            try journal.markSent(messages: [message.id])
            count { $0.messagesSent += 1 }
            log.info("message sent", metadata: ["message.id": "\(message.id)",
                                                "transfer.destination": "\(sealed.destination)"])
        }
    }

    /// Messages are never given up: after a failure they wait, queued, and are tried again after the
    /// rule's backoff (in the daemon; a batch pass leaves them for the next), or, when the remote
    /// refused us, once a person acted.
    private func messagesWait(to peer: String, failing error: Error, as key: JobKey, retry: RetryPolicy,
                              log: Logger) -> JobOutcome {
        try? journal.saveMessageError(to: peer, "\(error)")
        switch classify(error) {
        case .cancelled: return .finished
        case .refused:
            refused(error, remote: policy.outboxRule(for: peer)?.remote ?? "", item: key)
            return .finished
        case .permanent, .transient:
            let attempt = messageAttempts.withLock { attempts in
                attempts[peer, default: 0] += 1
                return attempts[peer, default: 1]
            }
            log.warning("messages wait; will retry", metadata: ["transfer.error": "\(error)",
                                                                "transfer.attempt": "\(attempt)"])
            if mode == .batch {
                count { $0.deferred += 1 }
                return .finished
            }
            return .retry(after: retry.delay(afterAttempt: attempt))
        }
    }
}
