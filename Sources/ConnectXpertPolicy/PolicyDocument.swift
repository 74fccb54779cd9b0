/// The shapes of `policies.yaml` as written, decoded from a Yams node by `PolicyDecoder`: each type
/// declares its fields and their keys, and the decoder refuses keys it does not list, so a typo is
/// reported with a suggestion instead of being ignored.
struct PolicyDocument: PolicySection {
    var identity: IdentityDocument
    var spool: String?
    var remotes: [String: RemoteDocument]
    var outbox: [OutboxRuleDocument]?
    var inbox: [InboxRuleDocument]?
    var mail: MailDocument?
    var jobs: JobsDocument?

    enum CodingKeys: String, CodingKey, CaseIterable { case identity, spool, remotes, outbox, inbox, mail, jobs }
}

struct JobsDocument: PolicySection {
    var screenShare: ScreenShareDocument?

    enum CodingKeys: String, CodingKey, CaseIterable { case screenShare = "screen_share" }
}

/// `jobs.screen_share` in the policy, and the same fields in a request file in `spool/jobs/`.
public struct ScreenShareDocument: Decodable, PolicySection, Sendable {
    public var display: String?
    public var listen: String?
    public var websocket: String?
    public var maxDuration: TimeSpan?
    public var duration: TimeSpan?
    public var passwordFile: String?
    public var auth: ScreenShareSettings.Authentication?
    public var viewOnly: Bool?
    public var once: Bool?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case display, listen, websocket, maxDuration = "max_duration", duration, passwordFile = "password_file"
        case auth, viewOnly = "view_only", once
    }

    /// No field set: everything from the policy.
    public init() {}
}

struct MailDocument: PolicySection {
    var from: String?
    var smtp: MailServerDocument?
    var inbox: [IMAPSourceDocument]?
    var after: AfterUpload?
    var queueLifetime: TimeSpan?
    var retry: RetryDocument?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case from, smtp, inbox, after, queueLifetime = "queue_lifetime", retry
    }
}

/// A mail server's keys, shared by `mail.smtp` and each `mail.inbox` source.
struct MailServerDocument: PolicySection {
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
}

/// One `mail.inbox` entry: an IMAP mailbox and what to do with its mail.
struct IMAPSourceDocument: PolicySection, StandsAlone {
    var server: MailServerDocument
    var every: TimeSpan?
    var select: IMAPSource.Selection?
    var after: IMAPSource.AfterFetch?
    var maildir: String?

    enum CodingKeys: String, CodingKey, CaseIterable { case every, select, after, maildir }

    static var alsoKnown: [String] { MailServerDocument.knownKeys }

    /// The server's keys and the source's own share one mapping.
    init(from decoder: Decoder) throws {
        server = try MailServerDocument(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        every = try c.decodeIfPresent(TimeSpan.self, forKey: .every)
        select = try c.decodeIfPresent(IMAPSource.Selection.self, forKey: .select)
        after = try c.decodeIfPresent(IMAPSource.AfterFetch.self, forKey: .after)
        maildir = try c.decodeIfPresent(String.self, forKey: .maildir)
    }
}

struct IdentityDocument: PolicySection {
    var id: String
    var keys: String?
    var passphraseFile: String?
    var passphraseEnv: String?
    var agent: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, keys, passphraseFile = "passphrase_file", passphraseEnv = "passphrase_env", agent
    }
}

struct RemoteDocument: PolicySection {
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
}

struct RetryDocument: PolicySection {
    var initial: TimeSpan?
    var max: TimeSpan?
    var giveUpAfter: TimeSpan?

    enum CodingKeys: String, CodingKey, CaseIterable { case initial, max, giveUpAfter = "give_up_after" }
}

struct OutboxRuleDocument: PolicySection {
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
}

struct InboxRuleDocument: PolicySection {
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
    var claimTimeout: TimeSpan?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case remote, senders, remoteFolder = "remote_folder", every, destination
        case deleteRemote = "delete_remote", conflict, maxSize = "max_size", stableFor = "stable_for", retry
        case requireSeal = "require_seal", trust, claimTimeout = "claim_timeout"
    }
}

extension Glob: StandsAlone {}
extension TLSMode: PolicyChoice {}
extension SSHSettings.HostKeyPolicy: PolicyChoice {}
extension AfterUpload: PolicyChoice {}
extension PeerTrustMode: PolicyChoice {}
extension ConflictHandling: PolicyChoice {}
extension IMAPSource.Selection: PolicyChoice {}
extension IMAPSource.AfterFetch: PolicyChoice {}
extension ScreenShareSettings.Authentication: PolicyChoice {}
