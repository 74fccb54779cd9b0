/// The shapes of `policies.yaml` as written, decoded with Codable from a Yams node. Each type rejects
/// keys it does not know, so a typo is reported with a suggestion instead of being ignored.
struct PolicyDocument: Decodable {
    var identity: IdentityDocument
    var spool: String?
    var remotes: [String: RemoteDocument]
    var outbox: [OutboxRuleDocument]?
    var inbox: [InboxRuleDocument]?
    var mail: MailDocument?
    var jobs: JobsDocument?

    enum CodingKeys: String, CodingKey, CaseIterable { case identity, spool, remotes, outbox, inbox, mail, jobs }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self, rejectingUnknownKeys: true)
        identity = try c.decode(IdentityDocument.self, forKey: .identity)
        spool = try c.decodeIfPresent(String.self, forKey: .spool)
        remotes = try c.decode([String: RemoteDocument].self, forKey: .remotes)
        outbox = try c.decodeIfPresent([OutboxRuleDocument].self, forKey: .outbox)
        inbox = try c.decodeIfPresent([InboxRuleDocument].self, forKey: .inbox)
        mail = try c.decodeIfPresent(MailDocument.self, forKey: .mail)
        jobs = try c.decodeIfPresent(JobsDocument.self, forKey: .jobs)
    }
}

struct JobsDocument: Decodable {
    var screenShare: ScreenShareDocument?

    enum CodingKeys: String, CodingKey, CaseIterable { case screenShare = "screen_share" }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self, rejectingUnknownKeys: true)
        screenShare = try c.decodeIfPresent(ScreenShareDocument.self, forKey: .screenShare)
    }
}

/// `jobs.screen_share` in the policy, and the same fields in a request file in `spool/jobs/`.
public struct ScreenShareDocument: Decodable, Sendable {
    public var display: String?
    public var listen: String?
    public var maxDuration: TimeSpan?
    public var duration: TimeSpan?
    public var passwordFile: String?
    public var auth: ScreenShareSettings.Authentication?
    public var viewOnly: Bool?
    public var once: Bool?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case display, listen, maxDuration = "max_duration", duration, passwordFile = "password_file", auth
        case viewOnly = "view_only", once
    }

    /// No field set: everything from the policy.
    public init() {}

    public init(from decoder: Decoder) throws {
        try rejectInlineSecrets(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self, rejectingUnknownKeys: true)
        display = try c.decodeIfPresent(String.self, forKey: .display)
        listen = try c.decodeIfPresent(String.self, forKey: .listen)
        maxDuration = try c.decodeIfPresent(TimeSpan.self, forKey: .maxDuration)
        duration = try c.decodeIfPresent(TimeSpan.self, forKey: .duration)
        passwordFile = try c.decodeIfPresent(String.self, forKey: .passwordFile)
        auth = try c.decodeChoiceIfPresent(ScreenShareSettings.Authentication.self, forKey: .auth)
        viewOnly = try c.decodeIfPresent(Bool.self, forKey: .viewOnly)
        once = try c.decodeIfPresent(Bool.self, forKey: .once)
    }
}

struct MailDocument: Decodable {
    var from: String?
    var smtp: MailServerDocument?
    var inbox: [IMAPSourceDocument]?
    var after: AfterUpload?
    var queueLifetime: TimeSpan?
    var retry: RetryDocument?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case from, smtp, inbox, after, queueLifetime = "queue_lifetime", retry
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self, rejectingUnknownKeys: true)
        from = try c.decodeIfPresent(String.self, forKey: .from)
        smtp = try c.decodeIfPresent(MailServerDocument.self, forKey: .smtp)
        inbox = try c.decodeListIfPresent(IMAPSourceDocument.self, forKey: .inbox)
        after = try c.decodeChoiceIfPresent(AfterUpload.self, forKey: .after)
        queueLifetime = try c.decodeIfPresent(TimeSpan.self, forKey: .queueLifetime)
        retry = try c.decodeIfPresent(RetryDocument.self, forKey: .retry)
    }
}

/// A mail server's keys, shared by `mail.smtp` and each `mail.inbox` source.
struct MailServerDocument: Decodable {
    var url: String
    var user: String?
    var passwordFile: String?
    var passwordEnv: String?
    var tls: TLSMode?
    var caFile: String?
    var timeout: TimeSpan?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case url, user, passwordFile = "password_file", passwordEnv = "password_env", tls, caFile = "ca_file", timeout
    }

    init(from decoder: Decoder) throws {
        try self.init(from: decoder, alsoKnown: [])
    }

    /// Reads the server's keys from a mapping that may also hold the keys `alsoKnown`.
    init(from decoder: Decoder, alsoKnown: [String]) throws {
        try rejectInlineSecrets(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self, rejectingUnknownKeys: true, alsoKnown: alsoKnown)
        url = try c.decode(String.self, forKey: .url)
        user = try c.decodeIfPresent(String.self, forKey: .user)
        passwordFile = try c.decodeIfPresent(String.self, forKey: .passwordFile)
        passwordEnv = try c.decodeIfPresent(String.self, forKey: .passwordEnv)
        tls = try c.decodeChoiceIfPresent(TLSMode.self, forKey: .tls)
        caFile = try c.decodeIfPresent(String.self, forKey: .caFile)
        timeout = try c.decodeIfPresent(TimeSpan.self, forKey: .timeout)
    }
}

/// One `mail.inbox` entry: an IMAP mailbox and what to do with its mail.
struct IMAPSourceDocument: Decodable {
    var server: MailServerDocument
    var every: TimeSpan?
    var select: IMAPSource.Selection?
    var after: IMAPSource.AfterFetch?
    var maildir: String?

    enum CodingKeys: String, CodingKey, CaseIterable { case every, select, after, maildir }

    init(from decoder: Decoder) throws {
        server = try MailServerDocument(from: decoder, alsoKnown: CodingKeys.allCases.map(\.stringValue))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        every = try c.decodeIfPresent(TimeSpan.self, forKey: .every)
        select = try c.decodeChoiceIfPresent(IMAPSource.Selection.self, forKey: .select)
        after = try c.decodeChoiceIfPresent(IMAPSource.AfterFetch.self, forKey: .after)
        maildir = try c.decodeIfPresent(String.self, forKey: .maildir)
    }
}

struct IdentityDocument: Decodable {
    var id: String
    var keys: String?
    var passphraseFile: String?
    var passphraseEnv: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, keys, passphraseFile = "passphrase_file", passphraseEnv = "passphrase_env"
    }

    init(from decoder: Decoder) throws {
        try rejectInlineSecrets(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self, rejectingUnknownKeys: true)
        id = try c.decode(String.self, forKey: .id)
        keys = try c.decodeIfPresent(String.self, forKey: .keys)
        passphraseFile = try c.decodeIfPresent(String.self, forKey: .passphraseFile)
        passphraseEnv = try c.decodeIfPresent(String.self, forKey: .passphraseEnv)
    }
}

struct RemoteDocument: Decodable {
    var url: String
    var passwordFile: String?
    var passwordEnv: String?
    var keyFile: String?
    var passphraseFile: String?
    var agent: Bool?
    var knownHosts: String?
    var hostKey: SSHSettings.HostKeyPolicy?
    var hostKeyFingerprint: String?
    var tls: TLSMode?
    var caFile: String?
    var anonymous: Bool?
    var active: Bool?
    var maxConnections: Int?
    var timeout: TimeSpan?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case url, passwordFile = "password_file", passwordEnv = "password_env", keyFile = "key_file"
        case passphraseFile = "passphrase_file", agent, knownHosts = "known_hosts", hostKey = "host_key"
        case hostKeyFingerprint = "host_key_fingerprint", tls, caFile = "ca_file", anonymous, active
        case maxConnections = "max_connections", timeout
    }

    init(from decoder: Decoder) throws {
        try rejectInlineSecrets(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self, rejectingUnknownKeys: true)
        url = try c.decode(String.self, forKey: .url)
        passwordFile = try c.decodeIfPresent(String.self, forKey: .passwordFile)
        passwordEnv = try c.decodeIfPresent(String.self, forKey: .passwordEnv)
        keyFile = try c.decodeIfPresent(String.self, forKey: .keyFile)
        passphraseFile = try c.decodeIfPresent(String.self, forKey: .passphraseFile)
        agent = try c.decodeIfPresent(Bool.self, forKey: .agent)
        knownHosts = try c.decodeIfPresent(String.self, forKey: .knownHosts)
        hostKey = try c.decodeChoiceIfPresent(SSHSettings.HostKeyPolicy.self, forKey: .hostKey)
        hostKeyFingerprint = try c.decodeIfPresent(String.self, forKey: .hostKeyFingerprint)
        tls = try c.decodeChoiceIfPresent(TLSMode.self, forKey: .tls)
        caFile = try c.decodeIfPresent(String.self, forKey: .caFile)
        anonymous = try c.decodeIfPresent(Bool.self, forKey: .anonymous)
        active = try c.decodeIfPresent(Bool.self, forKey: .active)
        maxConnections = try c.decodeIfPresent(Int.self, forKey: .maxConnections)
        timeout = try c.decodeIfPresent(TimeSpan.self, forKey: .timeout)
    }
}

struct RetryDocument: Decodable {
    var initial: TimeSpan?
    var max: TimeSpan?
    var giveUpAfter: TimeSpan?

    enum CodingKeys: String, CodingKey, CaseIterable { case initial, max, giveUpAfter = "give_up_after" }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self, rejectingUnknownKeys: true)
        initial = try c.decodeIfPresent(TimeSpan.self, forKey: .initial)
        max = try c.decodeIfPresent(TimeSpan.self, forKey: .max)
        giveUpAfter = try c.decodeIfPresent(TimeSpan.self, forKey: .giveUpAfter)
    }
}

struct OutboxRuleDocument: Decodable {
    var recipients: [Glob]?
    var remote: String
    var remotePath: String?
    var include: [Glob]?
    var exclude: [Glob]?
    var after: AfterUpload?
    var maxSize: ByteSize?
    var conflict: ConflictHandling?
    var retry: RetryDocument?
    var chmod: String?
    var preserveMtime: Bool?
    var tempName: String?
    var seal: Bool?
    var trust: PeerTrustMode?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case recipients, remote, remotePath = "remote_path", include, exclude, after
        case maxSize = "max_size", conflict, retry, chmod, preserveMtime = "preserve_mtime", tempName = "temp_name"
        case seal, trust
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self, rejectingUnknownKeys: true)
        recipients = try c.decodeListIfPresent(Glob.self, forKey: .recipients)
        remote = try c.decode(String.self, forKey: .remote)
        remotePath = try c.decodeIfPresent(String.self, forKey: .remotePath)
        include = try c.decodeListIfPresent(Glob.self, forKey: .include)
        exclude = try c.decodeListIfPresent(Glob.self, forKey: .exclude)
        after = try c.decodeChoiceIfPresent(AfterUpload.self, forKey: .after)
        maxSize = try c.decodeIfPresent(ByteSize.self, forKey: .maxSize)
        conflict = try c.decodeChoiceIfPresent(ConflictHandling.self, forKey: .conflict)
        retry = try c.decodeIfPresent(RetryDocument.self, forKey: .retry)
        chmod = try c.decodeIfPresent(String.self, forKey: .chmod)
        preserveMtime = try c.decodeIfPresent(Bool.self, forKey: .preserveMtime)
        tempName = try c.decodeIfPresent(String.self, forKey: .tempName)
        seal = try c.decodeIfPresent(Bool.self, forKey: .seal)
        trust = try c.decodeChoiceIfPresent(PeerTrustMode.self, forKey: .trust)
    }
}

struct InboxRuleDocument: Decodable {
    var remote: String
    var senders: [Glob]?
    var remoteFolder: String?
    var every: TimeSpan?
    var destination: String?
    var deleteRemote: Bool?
    var conflict: ConflictHandling?
    var maxSize: ByteSize?
    var stableFor: TimeSpan?
    var retry: RetryDocument?
    var requireSeal: Bool?
    var trust: PeerTrustMode?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case remote, senders, remoteFolder = "remote_folder", every, destination
        case deleteRemote = "delete_remote", conflict, maxSize = "max_size", stableFor = "stable_for", retry
        case requireSeal = "require_seal", trust
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self, rejectingUnknownKeys: true)
        remote = try c.decode(String.self, forKey: .remote)
        senders = try c.decodeListIfPresent(Glob.self, forKey: .senders)
        remoteFolder = try c.decodeIfPresent(String.self, forKey: .remoteFolder)
        every = try c.decodeIfPresent(TimeSpan.self, forKey: .every)
        destination = try c.decodeIfPresent(String.self, forKey: .destination)
        deleteRemote = try c.decodeIfPresent(Bool.self, forKey: .deleteRemote)
        conflict = try c.decodeChoiceIfPresent(ConflictHandling.self, forKey: .conflict)
        maxSize = try c.decodeIfPresent(ByteSize.self, forKey: .maxSize)
        stableFor = try c.decodeIfPresent(TimeSpan.self, forKey: .stableFor)
        retry = try c.decodeIfPresent(RetryDocument.self, forKey: .retry)
        requireSeal = try c.decodeIfPresent(Bool.self, forKey: .requireSeal)
        trust = try c.decodeChoiceIfPresent(PeerTrustMode.self, forKey: .trust)
    }
}

// MARK: - Decoding helpers

/// Keys that would put a secret into the policy itself.
private let inlineSecretKeys = ["password", "passphrase", "secret", "token", "private_key", "key"]

/// Refuses `password: …` and its kin with advice on where secrets go.
private func rejectInlineSecrets(_ decoder: Decoder) throws {
    let any = try decoder.container(keyedBy: AnyCodingKey.self)
    if let key = any.allKeys.first(where: { inlineSecretKeys.contains($0.stringValue) }) {
        throw PolicyIssue(
            codingPath: decoder.codingPath + [key], atKey: true,
            message: "secrets are never written in policies.yaml: put it in a file only its owner can read "
                + "(chmod 600) and name it with password_file: (or key_file:), or name an environment variable "
                + "with password_env:")
    }
}

/// A problem found while decoding, located by its coding path; turned into a `PolicyError` with a
/// line and column by the loader.
struct PolicyIssue: Error {
    var codingPath: [CodingKey]
    /// Point at the key itself rather than its value.
    var atKey: Bool
    var message: String
}

struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) {
        self.stringValue = "\(intValue)"
        self.intValue = intValue
    }
}

extension Decoder {
    /// A keyed container that refuses keys other than `Key`'s and `alsoKnown`, with a suggestion.
    func container<Key: CodingKey & CaseIterable>(
        keyedBy type: Key.Type, rejectingUnknownKeys: Bool, alsoKnown: [String] = []
    ) throws -> KeyedDecodingContainer<Key> {
        let any = try container(keyedBy: AnyCodingKey.self)
        let known = Key.allCases.map(\.stringValue) + alsoKnown
        for key in any.allKeys where !known.contains(key.stringValue) {
            var message = "unknown key '\(key.stringValue)'"
            if let suggestion = closestMatch(to: key.stringValue, in: known) {
                message += "; did you mean '\(suggestion)'?"
            } else {
                message += "; known keys here: " + known.joined(separator: ", ")
            }
            throw PolicyIssue(codingPath: codingPath + [key], atKey: true, message: message)
        }
        return try container(keyedBy: type)
    }
}

extension KeyedDecodingContainer {
    /// A list that may also be written as a single value (`recipients: "*"`).
    func decodeListIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> [T]? {
        if let single = try? decodeIfPresent(T.self, forKey: key) { return [single] }
        return try decodeIfPresent([T].self, forKey: key)
    }

    /// One of a fixed set of words, with a suggestion when it is misspelled.
    func decodeChoiceIfPresent<T: RawRepresentable & CaseIterable>(_ type: T.Type, forKey key: Key) throws -> T?
    where T.RawValue == String {
        guard let text = try decodeIfPresent(String.self, forKey: key) else { return nil }
        if let value = T(rawValue: text) { return value }
        let choices = T.allCases.map(\.rawValue)
        var message = "'\(text)' is not one of " + choices.joined(separator: ", ")
        if let suggestion = closestMatch(to: text, in: choices) { message += "; did you mean '\(suggestion)'?" }
        throw PolicyIssue(codingPath: codingPath + [key], atKey: false, message: message)
    }
}
