import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSeal
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation
import Logging

/// The key cards on a drop, `keys/<id>.pub` at its root. Publishing ours is signing up: the card
/// goes up under a temporary name and is renamed without replacing, so an ID is never taken over;
/// a card already there under our ID with another key is refused (both fingerprints said).
extension Agent {
    static let keysFolder = "keys"

    static func cardPath(of id: String) -> String { joinPath(keysFolder, id + ".pub") }

    /// Publishes our card on every remote a rule uses, when we have an identity.
    func publishKeyCards() {
        guard identity != nil else { return }
        let policy = self.policy
        let used = Set(policy.outbox.map(\.remote) + policy.inbox.map(\.remote))
        for remote in used.sorted() {
            scheduler.enqueue(JobKey("card", remote), remote: remote) { [self] job in
                job.end(publishCard(on: remote))
            }
        }
    }

    private func publishCard(on name: String) -> JobOutcome {
        guard let identity, let remote = policy.remotes[name] else { return .finished }
        let id = policy.identity.id
        let card = KeyCard(id: id, keys: identity, created: identity.created)
        var log = logger
        log[metadataKey: "transfer.remote"] = "\(name)"
        do {
            let registration = try pool.withConnection(to: remote) { transport -> Registration in
                let path = Self.cardPath(of: id)
                try transport.makeDirectories(Self.keysFolder)
                let now = Date().timeIntervalSince1970
                if try transport.putNew(try card.signed(with: identity), at: path) {
                    log.notice("published our key card", metadata: ["identity.fingerprint": "\(card.fingerprint)"])
                    return Registration(remote: name, state: .published, fingerprint: card.fingerprint, updated: now)
                }
                let found = try transport.fetch(path, limit: 64 * 1024)
                let theirs = try found.map { try KeyCard(published: $0, expectedID: id) }
                guard let theirs, theirs.signing != card.signing else {
                    return Registration(remote: name, state: .published, fingerprint: card.fingerprint, updated: now)
                }
                log.error("""
                    the ID is taken on this drop by another key: nothing is sent sealed under it; choose another \
                    identity.id, or have the drop's operator remove \(path)
                    """, metadata: [
                    "identity.fingerprint": "\(card.fingerprint)", "identity.other": "\(theirs.fingerprint)",
                ])
                return Registration(remote: name, state: .taken, fingerprint: card.fingerprint,
                                    otherFingerprint: theirs.fingerprint, updated: now)
            }
            try journal.save(registration)
            return .finished
        } catch {
            log.warning("cannot publish our key card", metadata: ["transfer.error": "\(error)"])
            return mode == .daemon ? .retry(after: 30) : .finished
        }
    }
}

extension Agent {
    /// The identity an agent works with: nil when there is none, or when it cannot be used (said in
    /// the log: files then go unsealed only, and no key card is published).
    public static func identity(for policy: Policy, logger: Logger) -> IdentityKeys? {
        guard IdentityKeys.exists(in: policy.identity.keys) else { return nil }
        do {
            return try IdentityKeys.load(from: policy.identity.keys, passphrase: try passphrase(for: policy))
        } catch {
            logger.error("our identity cannot be used: no key card is published and nothing is sealed or opened",
                         metadata: ["identity.keys": "\(policy.identity.keys)", "identity.error": "\(error)"])
            return nil
        }
    }

    /// The passphrase the policy names for the key files, if it names one.
    public static func passphrase(for policy: Policy) throws -> [UInt8]? {
        guard let credential = policy.identity.passphrase else { return nil }
        let text = try Secrets.password(credential, environment: ProcessInfo.processInfo.environment,
                                        place: "identity")
        return text.map { Array($0.utf8) }
    }

    /// Reads our identity again, as a start does (after `identity init`, or an edit of `identity.*`
    /// or of the key files); a new one's key card is published.
    public func reloadIdentity() {
        let loaded = Agent.identity(for: policy, logger: logger)
        let changed = keys.withLock { current in
            defer { current = loaded }
            return current?.signing.publicKey.fingerprint != loaded?.signing.publicKey.fingerprint
        }
        guard changed else { return }
        let message: Logger.Message = loaded == nil ? "our identity is gone: nothing is sealed or opened"
            : "our identity was read again"
        logger.notice(message, metadata: ["identity.keys": "\(policy.identity.keys)"])
        publishKeyCards()
    }
}

/// The key cards on a drop, read outside the agent (`peer trust`).
public enum KeyDirectory {
    /// The card published under `id` on `remote`, checked (signed by its own key, for that ID);
    /// nil when there is none.
    public static func card(of id: String, on remote: Remote, connect: ConnectionPool.Connect) throws
        -> (card: KeyCard, text: String)? {
        try connect(remote).keyCard(of: id)
    }
}

extension Transport {
    /// The key card published under `id`, checked (signed by its own key, for that ID), and its
    /// text; nil when there is none.
    func keyCard(of id: String) throws -> (card: KeyCard, text: String)? {
        guard let bytes = try fetch(Agent.cardPath(of: id), limit: 64 * 1024) else { return nil }
        return (try KeyCard(published: bytes, expectedID: id), String(decoding: bytes, as: UTF8.self))
    }

    /// Puts a small file at `path` through a temporary name beside it; false, replacing nothing,
    /// when `path` exists.
    func putNew(_ bytes: [UInt8], at path: String) throws -> Bool {
        let temporary = joinPath(parentDirectory(of: path),
                                 ".\(lastComponent(of: path)).\(UInt32.random(in: 0...UInt32.max)).tmp")
        return try putNew(BytesSource(bytes), at: path, through: temporary)
    }

    /// Uploads `source` to `temporary`, then renames it to `path` without replacing; false, the
    /// temporary file deleted, when `path` exists.
    func putNew(_ source: any UploadSource, at path: String, through temporary: String) throws -> Bool {
        _ = try upload(from: source, to: temporary,
                       attributes: UploadAttributes(modificationNanoseconds: nil, mode: nil, renamedTo: path),
                       progress: { _ in true })
        do {
            try rename(temporary, to: path, replacing: false)
            return true
        } catch let error as TransportError where error.kind == .alreadyExists {
            try delete(temporary)
            return false
        }
    }

    /// A small remote file's bytes; nil when there is none. One larger than `limit` is refused.
    func fetch(_ path: String, limit: Int64) throws -> [UInt8]? {
        guard let entry = try entry(at: path) else { return nil }
        guard entry.size <= limit else {
            throw TransportError(.permanent, "\(endpoint)/\(path) is \(entry.size) bytes, more than \(limit)")
        }
        let sink = BytesSink()
        guard try download(path, listedSize: entry.size, to: sink) <= entry.size else {
            throw TransportError(.transient, "\(endpoint)/\(path) sent more than the \(entry.size) bytes listed")
        }
        return sink.bytes
    }
}
