import ConnectXpertSystem
import Foundation

/// The whole of `policies.yaml`, decoded and validated. Paths in it are absolute.
public struct Policy: Equatable, Sendable {
    public var identity: Identity
    /// The spool folder, absolute.
    public var spool: String
    public var remotes: [String: Remote]
    public var outbox: [OutboxRule]
    public var inbox: [InboxRule]
    /// The file this policy was read from, absolute.
    public var sourceFile: String
    /// The `mail:` section; the defaults (no SMTP server: mail waits in the queue) when absent.
    public var mail: MailSettings
    /// `jobs.screen_share`: defaults and limits of screen sharing.
    public var screenShare: ScreenShareSettings

    /// The first outbox rule whose `recipients` match, or `nil` when no rule covers the recipient.
    public func outboxRule(for recipient: String) -> OutboxRule? {
        outbox.first { $0.recipients.anyMatches(recipient) }
    }
}

public struct Identity: Equatable, Sendable {
    /// Our user ID: the sender in remote paths we write, the recipient in those we read.
    public var id: String
    /// The folder of our key pairs (`identity.keys`; by default `.identity/` in the spool).
    public var keys: String
    /// What unlocks the key files when they are sealed with a passphrase: `passphrase_file`
    /// (private) or `passphrase_env`. Nil: the keys are not protected.
    public var passphrase: Credential?
    /// This agent's name among those sharing the identity (`identity.agent`; by default the host's
    /// name): it names the remote files the agent claims.
    public var agent: String

    public init(id: String, keys: String, passphrase: Credential? = nil, agent: String = Identity.hostAgentName) {
        self.id = id
        self.keys = keys
        self.passphrase = passphrase
        self.agent = agent
    }

    /// The host's name, reduced to the characters an agent's name may have.
    public static var hostAgentName: String {
        let host = ProcessInfo.processInfo.hostName.prefix { $0 != "." }
        let name = String(host.unicodeScalars.filter(Identity.isAgentNameCharacter).map(Character.init))
        return name.isEmpty ? "agent" : name
    }

    /// Letters, digits, `_` and `-`: what an agent's name may hold, as it goes into remote file names.
    static func isAgentNameCharacter(_ scalar: Unicode.Scalar) -> Bool {
        scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || scalar == "_" || scalar == "-")
    }
}

/// A named endpoint files are sent to and received from.
public struct Remote: Equatable, Sendable {
    /// What a remote's URL names, with that transport's own settings.
    public enum Endpoint: Equatable, Sendable {
        /// `file:` — a folder on this machine.
        case localDirectory
        /// `sftp://`
        case sftp(SSHSettings)
        /// `ftp://` and `ftps://` (whose `tls` says which).
        case ftp(FTPSettings)
    }

    public var name: String
    public var url: String
    public var endpoint: Endpoint
    /// The base folder: for `file:` remotes absolute; for `sftp:` on the server, where a relative
    /// path (or "") is below the login's home.
    public var path: String
    public var credentials: [Credential]
    public var maxConnections: Int
    public var timeout: TimeSpan
}

/// How a connection to an FTP or mail server is protected.
public enum TLSMode: String, CaseIterable, Sendable, Decodable {
    /// Upgraded in the protocol (FTP `AUTH TLS`, SMTP `STARTTLS`), refused if the server does not
    /// offer it (the default).
    case required
    /// No TLS: passwords and data cross the network readable. Only when written in the policy.
    case off
    /// TLS from the first byte (`ftps://`, `smtps://`).
    case implicit
}

/// How an FTP remote is reached.
public struct FTPSettings: Equatable, Sendable {
    public var host: String
    public var port: Int
    /// `nil` logs in anonymously (only with `anonymous: true`).
    public var user: String?
    public var tls: TLSMode
    /// A CA bundle for a private CA; the system's otherwise. Certificates are always verified.
    public var caFile: String?
    /// Active mode (PORT/EPRT) instead of passive (PASV/EPSV).
    public var active: Bool
}

/// How an SFTP remote is reached and how its host key is trusted.
public struct SSHSettings: Equatable, Sendable {
    public enum HostKeyPolicy: String, CaseIterable, Sendable, Decodable {
        /// Only keys already in `known_hosts` (or equal to `host_key_fingerprint`).
        case strict
        /// Trust on first use: an unknown host's key is added to `known_hosts`, then pinned.
        case acceptNew = "accept-new"
    }

    public var host: String
    public var port: Int
    public var user: String
    public var knownHosts: String
    public var hostKey: HostKeyPolicy
    /// `SHA256:…`: pins the key without a known_hosts file.
    public var fingerprint: String?
    public var passphraseFile: String?

    /// `host` or `[host]:port`, as known_hosts and ssh-keygen write it.
    public var knownHostsName: String { port == 22 ? host : "[\(host)]:\(port)" }
}

/// A secret, by reference only: policies never hold secrets themselves.
public enum Credential: Equatable, Sendable {
    case passwordFile(String)
    case passwordEnvironment(String)
    case keyFile(String)
    /// The keys an ssh-agent holds (`agent: true`, SFTP only).
    case agent
}

public enum AfterUpload: String, CaseIterable, Sendable, Decodable {
    case delete, archive, keep
}

/// Which peer keys sealed files use.
public enum PeerTrustMode: String, CaseIterable, Sendable, Decodable {
    /// Only keys a person trusted (`connectxpert peer trust ID`).
    case verified
    /// A key seen for the first time is pinned (and said in the log), as ssh's accept-new.
    case acceptNew = "accept-new"
}

public enum ConflictHandling: String, CaseIterable, Sendable, Decodable {
    /// Keep both: the new file becomes `name (1).ext`.
    case rename
    case overwrite
    /// Treat an existing file as a permanent failure.
    case fail
}

public struct RetryPolicy: Equatable, Sendable {
    /// The first pause after a transient failure; it doubles (with jitter) up to `maximum`.
    public var initial: TimeSpan
    public var maximum: TimeSpan
    /// Transient failures for this long since the first one make the failure permanent.
    public var giveUpAfter: TimeSpan

    public static let `default` = RetryPolicy(
        initial: TimeSpan(seconds: 5), maximum: TimeSpan(seconds: 600), giveUpAfter: TimeSpan(seconds: 3 * 86400))

    /// The pause after failed attempt `attempt` (counting from 1) whose first failure was at
    /// `firstFailure`, or `nil` once `giveUpAfter` has passed and the failure is permanent.
    public func pause(afterAttempt attempt: Int, firstFailure: Double, now: Double) -> Double? {
        now - firstFailure >= giveUpAfter.seconds ? nil : delay(afterAttempt: attempt)
    }

    /// The pause before attempt `attempt + 1` (attempt counts from 1; a smaller number counts as
    /// 1), with ±20 % jitter.
    public func delay(afterAttempt attempt: Int) -> Double {
        let doublings = min(max(attempt, 1) - 1, 30)
        let base = min(maximum.seconds, initial.seconds * Double(1 << doublings))
        return base * Double.random(in: 0.8...1.2)
    }
}

public struct OutboxRule: Equatable, Sendable {
    public var recipients: [Glob]
    public var remote: String
    public var remotePath: PathTemplate
    public var include: [Glob]
    public var exclude: [Glob]
    public var after: AfterUpload
    public var maxSize: ByteSize?
    public var conflict: ConflictHandling
    public var retry: RetryPolicy
    /// Permissions given to the remote file (`chmod: "0640"`); `nil` leaves the server's default.
    public var mode: UInt32?
    /// Give the remote file the local file's modification time.
    public var preserveModificationTime: Bool
    /// The name an upload is written under until complete (`temp_name`): `{name}` is the final
    /// name, `{token}` a random word that keeps two attempts apart. A pattern without `/` names a
    /// file beside the final one; one with `/` a path below the remote's folder, out of every
    /// recipient's folder.
    public var temporaryName: String

    /// Uploads are written in a hidden folder beside the drop folders, never in the recipient's:
    /// a ConnectXpert 0.7 peer takes every name in its folder, dot names too, so it would take a
    /// partial file there. The name is of a fixed length, so it fits wherever the final name fits.
    public static let defaultTemporaryName = ".connectxpert-temp/{token}.part"

    /// Each file goes sealed to the recipient's pinned key and signed with ours (`seal: true`).
    public var seal: Bool
    /// Which keys of recipients are used (`trust`).
    public var trust: PeerTrustMode

    /// The temporary name beside the final one that receiving uses, and the pattern of `temp_name`
    /// before it could name a folder.
    public static let besideTemporaryName = ".{name}.cx{token}.part"

    /// The temporary path for `path` that `pattern` (a `temp_name`) gives. `{name}` is cut short
    /// where the whole name would be longer than a file name can be (255 bytes).
    public static func temporaryPath(for path: String, pattern: String, token: String) -> String {
        // The standard library's `replacing`, not Foundation's: this runs for every file sent.
        let filled = pattern.replacing("{token}", with: token)
        let room = 255 - lastComponent(of: filled.replacing("{name}", with: "")).utf8.count
        let name = prefix(of: lastComponent(of: path), fittingIn: room)
        let temporary = filled.replacing("{name}", with: name)
        return temporary.contains("/") ? temporary : joinPath(folder(ofRelative: path), temporary)
    }

    /// Whether a file at `path` (relative to the recipient's folder) is for this rule.
    public func selects(_ path: String) -> Bool {
        include.anyMatches(path) && !exclude.anyMatches(path)
    }
}

public struct InboxRule: Equatable, Sendable {
    public var remote: String
    public var senders: [Glob]
    public var remoteFolder: PathTemplate
    public var every: TimeSpan
    /// Where received files go; may use `{sender}`, `{spool}`, `{date}`.
    public var destination: PathTemplate
    public var deleteRemote: Bool
    public var conflict: ConflictHandling
    public var maxSize: ByteSize?
    /// How long a remote file must keep its size and modification time, across two listings, before
    /// it is taken: a writer may be writing it under its final name. Zero takes files at the first
    /// listing, for drops whose writers always rename into place.
    public var stableFor: TimeSpan
    /// The backoff for transient failures of a download; after `giveUpAfter` the file is left on
    /// the remote as failed.
    public var retry: RetryPolicy
    /// Take only sealed objects (`require_seal`); nil: only from senders whose key is pinned.
    public var requireSeal: Bool?
    /// Which keys of senders are used (`trust`).
    public var trust: PeerTrustMode
    /// How long another agent of our identity may hold a file it claimed (renamed to its claim name)
    /// before it is taken as dead and the file is claimed back (`claim_timeout`). It must exceed the
    /// longest download: a claim taken back from a live agent costs that agent its download.
    public var claimTimeout: TimeSpan

    public static let defaultClaimTimeout = TimeSpan(seconds: 600)

    /// Long enough for a writer that pauses between chunks, short enough not to hold up a file.
    public static let defaultStableFor = TimeSpan(seconds: 3)
}

/// The `mail:` section.
public struct MailSettings: Equatable, Sendable {
    /// The envelope sender; `nil` takes the address in each message's `From:` header.
    public var from: String?
    /// Where queued mail is sent; `nil` keeps it queued (and says so in the log).
    public var smtp: MailServer?
    /// The IMAP mailboxes fetched into Maildirs.
    public var inbox: [IMAPSource]
    /// What happens to a sent message: kept in `mail/sent/` (`archive`) or deleted.
    public var after: AfterUpload
    /// Backoff after a transient failure; `giveUpAfter` is the queue lifetime (default 5 days).
    public var retry: RetryPolicy

    public static let `default` = MailSettings(
        from: nil, smtp: nil, inbox: [], after: .archive,
        retry: RetryPolicy(initial: TimeSpan(seconds: 60), maximum: TimeSpan(seconds: 3600),
                           giveUpAfter: TimeSpan(seconds: 5 * 86400)))
}

/// A mail server: SMTP submission (`smtp://host:587` with STARTTLS, `smtps://host:465`) or IMAP
/// (`imap://host:143` with STARTTLS, `imaps://host:993`).
public struct MailServer: Equatable, Sendable {
    public var url: String
    public var host: String
    public var port: Int
    /// `nil` sends without logging in.
    public var user: String?
    public var credentials: [Credential]
    public var tls: TLSMode
    /// A CA bundle for a private CA; the system's otherwise. Certificates are always verified.
    public var caFile: String?
    /// A server that stays silent this long is cut off (the message is retried later).
    public var timeout: TimeSpan
}

/// One `mail.inbox` source: an IMAP mailbox fetched into a Maildir.
public struct IMAPSource: Equatable, Sendable {
    public enum Selection: String, CaseIterable, Sendable, Decodable { case unseen, all }
    /// What is done on the server once a message is safe in the Maildir.
    public enum AfterFetch: String, CaseIterable, Sendable, Decodable {
        case markSeen = "mark-seen", delete, keep
    }

    public var server: MailServer
    /// The mailbox (`INBOX`), from the URL's path.
    public var mailbox: String
    public var every: TimeSpan
    public var select: Selection
    public var after: AfterFetch
    /// The Maildir messages are delivered to, absolute.
    public var maildir: String

    /// Names the account and mailbox in the journal and the log (`alice@imap.example.org:993/INBOX`).
    public var name: String { "\(server.user ?? "")@\(server.host):\(server.port)/\(mailbox)" }
}

/// `jobs.screen_share`: the defaults of a screen share, and its limits.
public struct ScreenShareSettings: Equatable, Sendable {
    public enum Authentication: String, CaseIterable, Sendable, Decodable {
        /// VNC Authentication with the password in `password_file`.
        case vnc
        /// None: anyone who can reach the port sees the screen. Only on a loopback listener.
        case none
    }

    /// The X display (`:0`).
    public var display: String
    /// Where to listen; a loopback address unless written otherwise here.
    public var listen: ListenAddress
    /// Where to serve RFB over WebSocket too (and noVNC's page), if anywhere.
    public var webSocket: ListenAddress?
    /// No job runs longer; also the default duration.
    public var maxDuration: TimeSpan
    public var passwordFile: String?
    public var authentication: Authentication
    public var viewOnly: Bool
    /// End the job when its viewer leaves.
    public var once: Bool

    public static let `default` = ScreenShareSettings(
        display: ":0", listen: ListenAddress(host: "127.0.0.1", port: 5900), webSocket: nil,
        maxDuration: TimeSpan(seconds: 3600),
        passwordFile: nil, authentication: .vnc, viewOnly: false, once: true)
}

/// `host:port` to listen on; IPv6 hosts in brackets (`[::1]:5900`).
public struct ListenAddress: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(parsing text: String) {
        let host: Substring, port: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            port = text[close...].dropFirst().drop { $0 == ":" }
        } else if let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") {
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        } else {
            return nil
        }
        guard !host.isEmpty, let number = Int(port), (0...65535).contains(number) else { return nil }
        self.host = String(host)
        self.port = number
    }

    /// 127.0.0.0/8, ::1 and localhost.
    public var isLoopback: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
