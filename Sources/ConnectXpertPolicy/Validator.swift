import ConnectXpertSystem
import Foundation
import Yams

/// Turns a decoded document into a `Policy`: fills in defaults, resolves paths and checks what
/// Codable cannot (references between sections, templates, credential files).
struct Validator {
    let context: Context
    let root: Node
    private(set) var errors: [PolicyError] = []

    init(context: Context, root: Node) {
        self.context = context
        self.root = root
    }

    /// The policy, or `nil` when `errors` is not empty.
    mutating func build(_ document: PolicyDocument) -> Policy? {
        let id = document.identity.id
        if let problem = Names.problem(withComponent: id) {
            report(["identity", "id"], "'\(Names.printable(id))' cannot be used as an ID: \(problem)")
        }
        let spool = absolutePath(document.spool ?? "spool", relativeTo: context.directory)
        let identity = buildIdentity(document.identity, spool: spool)

        var remotes: [String: Remote] = [:]
        for (name, remoteDocument) in document.remotes.sorted(by: { $0.key < $1.key }) {
            if let remote = buildRemote(name: name, remoteDocument) { remotes[name] = remote }
        }
        if document.remotes.isEmpty { report(["remotes"], "at least one remote is needed") }

        let outbox = (document.outbox ?? []).enumerated().compactMap { index, rule in
            buildOutboxRule(index: index, rule, remotes: document.remotes)
        }
        let inbox = (document.inbox ?? []).enumerated().compactMap { index, rule in
            buildInboxRule(index: index, rule, remotes: document.remotes, me: id)
        }
        var mail = MailSettings.default
        if let document = document.mail { mail = buildMail(document, spool: spool) }
        var screenShare = ScreenShareSettings.default
        if let document = document.jobs?.screenShare { screenShare = buildScreenShare(document) }
        guard errors.isEmpty else { return nil }
        return Policy(identity: identity, spool: spool, remotes: remotes, outbox: outbox, inbox: inbox,
                      sourceFile: context.file, mail: mail, screenShare: screenShare)
    }

    // MARK: Sections

    private mutating func buildIdentity(_ document: IdentityDocument, spool: String) -> Identity {
        let path: PolicyPath = ["identity"]
        let credentials = passwordCredentials(file: document.passphraseFile, environment: document.passphraseEnv,
                                              path: path, keys: ("passphrase_file", "passphrase_env"))
        if credentials.count > 1 {
            report(path + ["passphrase_env"], "name one passphrase: passphrase_file or passphrase_env, not both")
        }
        let keys = absolutePath(document.keys ?? joinPath(spool, ".identity"), relativeTo: context.directory)
        if let agent = document.agent,
           agent.isEmpty || agent.count > 64 || !agent.unicodeScalars.allSatisfy(Identity.isAgentNameCharacter) {
            report(path + ["agent"], "an agent's name is one word of letters, digits, '_' and '-', such as 'bob-2'")
        }
        return Identity(id: document.id, keys: keys, passphrase: credentials.first,
                        agent: document.agent ?? Identity.hostAgentName)
    }

    private mutating func buildRemote(name: String, _ document: RemoteDocument) -> Remote? {
        let path: PolicyPath = ["remotes", .key(name)]
        if Names.problem(withComponent: name) != nil || name.contains(" ") {
            report(path, "a remote's name must be one word, such as 'drop' or 'partner-sftp'", atKey: true)
        }
        guard let (kind, location, server) = parseURL(document.url, path: path + ["url"]) else { return nil }
        let ssh = kind == .sftp ? server.map { SSHSettings(host: $0.host, port: $0.port ?? 22, user: $0.user ?? "root",
                                                         knownHosts: "", hostKey: .strict, fingerprint: nil,
                                                         passphraseFile: nil) } : nil
        var credentials = passwordCredentials(file: document.passwordFile, environment: document.passwordEnv, path: path)
        if let file = document.keyFile {
            let resolved = absolutePath(file, relativeTo: context.directory)
            if checkSecretFile(resolved, path: path + ["key_file"]) { credentials.append(.keyFile(resolved)) }
        }
        var settings = ssh
        if var ssh {
            if let file = document.passphraseFile {
                let resolved = absolutePath(file, relativeTo: context.directory)
                if checkSecretFile(resolved, path: path + ["passphrase_file"]) { ssh.passphraseFile = resolved }
            }
            if document.agent == true { credentials.append(.agent) }
            credentials = inPolicyOrder(credentials, remote: name)
            ssh.hostKey = document.hostKey ?? .strict
            ssh.knownHosts = absolutePath(document.knownHosts ?? "~/.ssh/known_hosts", relativeTo: context.directory)
            if let fingerprint = document.hostKeyFingerprint {
                let digest = fingerprint.dropFirst("SHA256:".count)
                if fingerprint.hasPrefix("SHA256:") && digest.count == 43
                    && digest.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "/" }) {
                    ssh.fingerprint = fingerprint
                } else {
                    report(path + ["host_key_fingerprint"], "'\(fingerprint)' is not a SHA256 fingerprint; "
                        + "copy it as ssh-keygen -lf prints it: SHA256: and 43 characters")
                }
            }
            // A named credential that failed its check was reported already.
            if credentials.isEmpty && !namesCredential(document.keyFile, document.passwordFile, document.passwordEnv) {
                report(path, "an sftp remote needs key_file, agent: true, password_file or password_env", atKey: true)
            }
            settings = ssh
        } else {
            for (key, value) in [("agent", document.agent.map { "\($0)" }), ("known_hosts", document.knownHosts),
                                 ("host_key", document.hostKey?.rawValue), ("host_key_fingerprint", document.hostKeyFingerprint),
                                 ("passphrase_file", document.passphraseFile)] where value != nil {
                report(path + [.key(key)], "\(key) applies to sftp:// remotes only", atKey: true)
            }
        }
        var ftp: FTPSettings?
        if let server, kind == .ftp || kind == .ftps {
            var settings = FTPSettings(host: server.host, port: server.port ?? (kind == .ftps ? 990 : 21),
                                       user: server.user, tls: kind == .ftps ? .implicit : .required, caFile: nil,
                                       active: document.active ?? false)
            switch (kind, document.tls) {
            case (.ftps, .some(let tls)) where tls != .implicit:
                report(path + ["tls"], "ftps:// is TLS from the first byte; for AUTH TLS or plain FTP use ftp://")
            case (.ftp, .implicit?):
                report(path + ["tls"], "implicit TLS is written as an ftps:// URL")
            case (.ftp, let tls?):
                settings.tls = tls
            default:
                break
            }
            if let file = document.caFile {
                let resolved = absolutePath(file, relativeTo: context.directory)
                if FileSystem.exists(resolved) { settings.caFile = resolved } else { report(path + ["ca_file"], "\(resolved) does not exist") }
            }
            if document.anonymous == true {
                settings.user = nil
            } else if settings.user == nil {
                report(path + ["url"], "name the FTP user in the URL (ftp://user@host/folder), or set anonymous: true")
            } else if credentials.isEmpty && !namesCredential(document.passwordFile, document.passwordEnv) {
                report(path, "an ftp remote needs password_file or password_env (or anonymous: true)", atKey: true)
            }
            ftp = settings
        } else {
            for (key, value) in [("tls", document.tls?.rawValue), ("ca_file", document.caFile),
                                 ("anonymous", document.anonymous.map { "\($0)" }), ("active", document.active.map { "\($0)" })]
            where value != nil {
                report(path + [.key(key)], "\(key) applies to ftp:// and ftps:// remotes only", atKey: true)
            }
        }
        let maxConnections = document.maxConnections ?? 4
        if !(1...16).contains(maxConnections) {
            report(path + ["max_connections"], "must be between 1 and 16, not \(maxConnections)")
        }
        let endpoint: Remote.Endpoint
        switch kind {
        case .localDirectory: endpoint = .localDirectory
        case .sftp:
            guard let settings else { return nil }
            endpoint = .sftp(settings)
        case .ftp, .ftps:
            guard let ftp else { return nil }
            endpoint = .ftp(ftp)
        }
        return Remote(name: name, url: document.url, endpoint: endpoint, path: location, credentials: credentials,
                      maxConnections: maxConnections, timeout: document.timeout ?? TimeSpan(seconds: 30))
    }

    /// The credentials in the order the remote's entry names them, the order logins are tried in.
    private func inPolicyOrder(_ credentials: [Credential], remote: String) -> [Credential] {
        let path: PolicyPath = ["remotes", .key(remote)]
        guard case .mapping(let mapping)? = root.node(at: path.keys) else { return credentials }
        let keys = mapping.map { $0.key.string ?? "" }
        func key(_ credential: Credential) -> String {
            switch credential {
            case .keyFile: return "key_file"
            case .agent: return "agent"
            case .passwordFile: return "password_file"
            case .passwordEnvironment: return "password_env"
            }
        }
        return credentials.sorted { (keys.firstIndex(of: key($0)) ?? 0) < (keys.firstIndex(of: key($1)) ?? 0) }
    }

    /// Whether any of these credential keys is written (then a missing credential was reported already).
    private func namesCredential(_ values: String?...) -> Bool {
        values.contains { $0 != nil }
    }

    /// `password_file` (checked to be private) and `password_env`, in that order; `keys` names them
    /// where the policy calls them otherwise.
    private mutating func passwordCredentials(
        file: String?, environment: String?, path: PolicyPath,
        keys: (file: String, environment: String) = ("password_file", "password_env")
    ) -> [Credential] {
        var credentials: [Credential] = []
        if let file {
            let resolved = absolutePath(file, relativeTo: context.directory)
            if checkSecretFile(resolved, path: path + [.key(keys.file)]) { credentials.append(.passwordFile(resolved)) }
        }
        if let environment {
            if environment.isEmpty || !environment.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) {
                report(path + [.key(keys.environment)], "'\(environment)' is not an environment variable name")
            } else {
                credentials.append(.passwordEnvironment(environment))
            }
        }
        return credentials
    }

    private mutating func buildMail(_ document: MailDocument, spool: String) -> MailSettings {
        var mail = MailSettings.default
        if let from = document.from {
            if MailAddress.isPlausible(from) { mail.from = from } else {
                report(["mail", "from"], "'\(from)' is not a mail address such as alice@example.org")
            }
        }
        mail.after = document.after ?? .archive
        if mail.after == .keep { report(["mail", "after"], "a sent message is archived or deleted; 'keep' would send it again") }
        mail.retry = buildRetry(document.retry, default: mail.retry, path: ["mail", "retry"])
        if document.retry?.giveUpAfter != nil {
            report(["mail", "retry", "give_up_after"], "for mail this is mail.queue_lifetime", atKey: true)
        }
        mail.retry.giveUpAfter = document.queueLifetime ?? mail.retry.giveUpAfter
        if let smtp = document.smtp { mail.smtp = buildMailServer(smtp, protocol: .smtp, path: ["mail", "smtp"]) }
        mail.inbox = (document.inbox ?? []).enumerated().compactMap { index, source in
            buildIMAPSource(source, path: ["mail", "inbox", .index(index)], spool: spool)
        }
        let names = mail.inbox.map(\.name)
        if Set(names).count < names.count {
            report(["mail", "inbox"], "the same mailbox is listed twice", atKey: true)
        }
        return mail
    }

    private mutating func buildScreenShare(_ document: ScreenShareDocument) -> ScreenShareSettings {
        let path: PolicyPath = ["jobs", "screen_share"]
        var settings = ScreenShareSettings.default
        settings.display = document.display ?? settings.display
        /// The address written at `key`, or nil (an address that does not parse is reported).
        func address(_ text: String?, key: String, examplePort: Int) -> ListenAddress? {
            guard let text else { return nil }
            if let address = ListenAddress(parsing: text) { return address }
            report(path + [.key(key)],
                   "'\(text)' is not host:port, such as 127.0.0.1:\(examplePort) or [::1]:\(examplePort)")
            return nil
        }
        settings.listen = address(document.listen, key: "listen", examplePort: 5900) ?? settings.listen
        settings.webSocket = address(document.websocket, key: "websocket", examplePort: 5800)
        settings.maxDuration = document.maxDuration ?? settings.maxDuration
        if document.duration != nil {
            report(path + ["duration"], "the policy sets max_duration; duration belongs in a request", atKey: true)
        }
        if let file = document.passwordFile {
            let resolved = absolutePath(file, relativeTo: context.directory)
            if checkSecretFile(resolved, path: path + ["password_file"]) { settings.passwordFile = resolved }
        }
        settings.authentication = document.auth ?? .vnc
        if settings.authentication == .none,
           let open = [settings.listen, settings.webSocket].compactMap({ $0 }).first(where: { !$0.isLoopback }) {
            report(path + ["auth"], "auth: none lets anyone who reaches \(open) see the screen; "
                + "it is allowed on a loopback address only (127.0.0.1, ::1)")
        }
        settings.viewOnly = document.viewOnly ?? false
        settings.once = document.once ?? true
        return settings
    }

    private mutating func buildIMAPSource(_ document: IMAPSourceDocument, path: PolicyPath, spool: String) -> IMAPSource? {
        guard let server = buildMailServer(document.server, protocol: .imap, path: path) else { return nil }
        if server.user == nil { report(path, "an IMAP source needs user: and password_file or password_env", atKey: true) }
        let components = URLComponents(string: document.server.url)
        let mailbox = (components?.path ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let every = document.every ?? TimeSpan(seconds: 300)
        if every.seconds < 1 { report(path + ["every"], "must be at least 1s") }
        return IMAPSource(server: server, mailbox: mailbox.isEmpty ? "INBOX" : mailbox, every: every,
                          select: document.select ?? .unseen, after: document.after ?? .markSeen,
                          maildir: absolutePath(document.maildir ?? joinPath(spool, "mail/inbox"), relativeTo: context.directory))
    }

    /// The URL schemes and ports of a mail protocol.
    enum MailProtocol {
        case smtp, imap

        var plainScheme: String { self == .smtp ? "smtp" : "imap" }
        var tlsScheme: String { plainScheme + "s" }
        var example: String {
            self == .smtp ? "smtp://host:587 (STARTTLS) or smtps://host:465" : "imaps://host/INBOX or imap://host/INBOX (STARTTLS)"
        }
        func defaultPort(tls: Bool) -> Int {
            switch self {
            case .smtp: return tls ? 465 : 587
            case .imap: return tls ? 993 : 143
            }
        }
    }

    private mutating func buildMailServer(_ document: MailServerDocument, protocol kind: MailProtocol, path: PolicyPath) -> MailServer? {
        guard let components = URLComponents(string: document.url), let host = components.host, !host.isEmpty,
              let scheme = components.scheme?.lowercased(), [kind.plainScheme, kind.tlsScheme].contains(scheme) else {
            report(path + ["url"], "'\(document.url)' is not an \(kind.plainScheme.uppercased()) server: write \(kind.example)")
            return nil
        }
        if components.password != nil {
            report(path + ["url"], "the URL holds a password; secrets are never written in policies.yaml: "
                + "use password_file: (mode 0600) or password_env: instead")
        }
        let implicit = scheme == kind.tlsScheme
        var tls: TLSMode = implicit ? .implicit : .required
        switch (implicit, document.tls) {
        case (true, .some(let mode)) where mode != .implicit:
            report(path + ["tls"], "\(kind.tlsScheme):// is TLS from the first byte; for STARTTLS or no TLS use \(kind.plainScheme)://")
        case (false, .implicit?):
            report(path + ["tls"], "implicit TLS is written as an \(kind.tlsScheme):// URL")
        case (false, let mode?):
            tls = mode
        default:
            break
        }
        var caFile: String?
        if let file = document.caFile {
            let resolved = absolutePath(file, relativeTo: context.directory)
            if FileSystem.exists(resolved) { caFile = resolved } else { report(path + ["ca_file"], "\(resolved) does not exist") }
        }
        let user = document.user ?? components.user?.removingPercentEncoding
        let credentials = passwordCredentials(file: document.passwordFile, environment: document.passwordEnv, path: path)
        if user != nil && credentials.isEmpty && !namesCredential(document.passwordFile, document.passwordEnv) {
            report(path, "a user needs password_file or password_env", atKey: true)
        } else if user == nil && !credentials.isEmpty {
            report(path, "a password needs a user: write user: or \(kind.plainScheme)://user@host", atKey: true)
        }
        return MailServer(url: document.url, host: host, port: components.port ?? kind.defaultPort(tls: implicit),
                          user: user, credentials: credentials, tls: tls, caFile: caFile,
                          timeout: document.timeout ?? TimeSpan(seconds: 60))
    }

    private mutating func buildRetry(_ document: RetryDocument?, default retry: RetryPolicy, path: PolicyPath) -> RetryPolicy {
        var retry = retry
        guard let document else { return retry }
        retry.initial = document.initial ?? retry.initial
        retry.maximum = document.max ?? max(retry.maximum, retry.initial)
        retry.giveUpAfter = document.giveUpAfter ?? retry.giveUpAfter
        if retry.initial.seconds <= 0 { report(path + ["initial"], "must be more than 0s") }
        if retry.maximum < retry.initial { report(path + ["max"], "must not be less than retry.initial") }
        return retry
    }

    /// Where a network remote is: host, port (`nil`: the scheme's default) and user.
    struct ServerAddress {
        var host: String
        var port: Int?
        var user: String?
    }

    private mutating func parseURL(_ url: String, path: PolicyPath) -> (URLScheme, String, ServerAddress?)? {
        guard let colon = url.firstIndex(of: ":") else {
            report(path, "'\(url)' is not a URL: write file:///absolute/folder, file:relative/folder, "
                + "sftp://user@host:port/folder, ftp://user@host/folder or ftps://user@host/folder")
            return nil
        }
        let scheme = String(url[..<colon]).lowercased()
        let rest = String(url[url.index(after: colon)...])
        // user:password@, also percent-encoded (user%3Apassword@)
        let authority = rest.hasPrefix("//") ? rest.dropFirst(2).prefix { $0 != "/" } : ""
        if let at = authority.lastIndex(of: "@"),
           case let userInfo = String(authority[..<at]), (userInfo.removingPercentEncoding ?? userInfo).contains(":") {
            report(path, "the URL holds a password; secrets are never written in policies.yaml: "
                + "use password_file: (mode 0600) or password_env: instead")
            return nil
        }
        guard let kind = URLScheme(rawValue: scheme) else {
            report(path, "unknown URL scheme '\(scheme)'; use file, sftp, ftp or ftps")
            return nil
        }
        if kind == .localDirectory {
            return parseFileURL(url, rest: rest, path: path).map { (kind, $0, nil) }
        }
        return parseServerURL(url, path: path).map { (kind, $0.base, $0.address) }
    }

    private mutating func parseFileURL(_ url: String, rest: String, path: PolicyPath) -> String? {
        let folder: String
        if rest.hasPrefix("//") {
            let afterSlashes = rest.dropFirst(2)
            guard afterSlashes.hasPrefix("/") || afterSlashes.hasPrefix("localhost/") else {
                report(path, "file:// URLs name a local folder: write file:///absolute/folder or file:relative/folder")
                return nil
            }
            folder = String(afterSlashes.hasPrefix("/") ? afterSlashes : afterSlashes.dropFirst("localhost".count))
        } else {
            folder = rest
        }
        let decoded = folder.removingPercentEncoding ?? folder
        guard !decoded.isEmpty else {
            report(path, "'\(url)' names no folder")
            return nil
        }
        return absolutePath(decoded, relativeTo: context.directory)
    }

    /// `scheme://user@host:port/path`: a path starting with `/~/` (or none) is below the login's home.
    private mutating func parseServerURL(_ url: String, path: PolicyPath) -> (base: String, address: ServerAddress)? {
        guard let components = URLComponents(string: url), let host = components.host, !host.isEmpty else {
            report(path, "'\(url)' is not a valid URL: write scheme://user@host:port/folder")
            return nil
        }
        if let port = components.port, !(1...65535).contains(port) {
            report(path, "port \(port) is out of range")
            return nil
        }
        var base = components.path
        if base == "/~" || base.hasPrefix("/~/") { base = String(base.dropFirst(base == "/~" ? 2 : 3)) }
        while base.count > 1 && base.hasSuffix("/") { base.removeLast() }
        let user = components.user ?? (url.hasPrefix("sftp") ? ProcessInfo.processInfo.environment["USER"] : nil)
        return (base, ServerAddress(host: host, port: components.port, user: user))
    }

    /// A credential file must exist and be readable by its owner only, as OpenSSH demands of keys.
    private mutating func checkSecretFile(_ file: String, path: PolicyPath) -> Bool {
        guard let problem = SecretFile.problem(at: file) else { return true }
        report(path, problem)
        return false
    }

    private mutating func buildOutboxRule(index: Int, _ document: OutboxRuleDocument, remotes: [String: RemoteDocument]) -> OutboxRule? {
        let path: PolicyPath = ["outbox", .index(index)]
        checkRemoteReference(document.remote, path: path + ["remote"], remotes: remotes)
        let template = PathTemplate(document.remotePath ?? "{sender}->{recipient}/{path}")
        if let problem = template.problem(allowed: ["sender", "recipient", "path", "name", "date"]) {
            report(path + ["remote_path"], problem)
        } else if !template.placeholders.contains("path") && !template.placeholders.contains("name") {
            report(path + ["remote_path"], "'\(template)' must contain {path} or {name}, or every file would get the same name")
        } else if let problem = Names.problem(withRelativePath: template.render(
            ["sender": "s", "recipient": "r", "path": "p", "name": "n", "date": "d"])) {
            report(path + ["remote_path"], "'\(template)' is not a safe relative path: \(problem)")
        }
        let retry = buildRetry(document.retry, default: .default, path: path + ["retry"])
        var mode: UInt32?
        if let chmod = document.chmod {
            if let value = UInt32(chmod, radix: 8), value <= 0o777 {
                mode = value
            } else {
                report(path + ["chmod"], "'\(chmod)' is not a file mode: write it in octal, in quotes, such as \"0640\"")
            }
        }
        let temporaryName = document.tempName ?? OutboxRule.defaultTemporaryName
        if let problem = temporaryNameProblem(temporaryName) {
            report(path + ["temp_name"], "'\(temporaryName)' cannot name an upload in progress: \(problem)")
        }
        return OutboxRule(
            recipients: document.recipients ?? [Glob("*")], remote: document.remote, remotePath: template,
            include: document.include ?? [Glob("*")], exclude: document.exclude ?? [],
            after: document.after ?? .delete, maxSize: document.maxSize, conflict: document.conflict ?? .rename,
            retry: retry, mode: mode, preserveModificationTime: document.preserveMtime ?? true,
            temporaryName: temporaryName, seal: document.seal ?? false, trust: document.trust ?? .verified)
    }

    /// Why a `temp_name` pattern cannot be used, or `nil`.
    private func temporaryNameProblem(_ pattern: String) -> String? {
        let rest = pattern.replacingOccurrences(of: "{name}", with: "").replacingOccurrences(of: "{token}", with: "")
        if rest.contains("{") || rest.contains("}") { return "only {name} and {token} can be filled in" }
        if rest.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) { return "it contains a control character" }
        guard pattern.contains("/") else {
            guard pattern.contains("{name}") else {
                return "beside the final name it must contain {name} (or name a folder: .tmp/{token}.part)"
            }
            if rest.isEmpty { return "it must differ from the final name (add a prefix or suffix, such as .{name}.part)" }
            return nil
        }
        let components = pattern.split(separator: "/", omittingEmptySubsequences: false)
        if pattern.hasPrefix("/") || components.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) {
            return "a folder in it is named below the remote's folder, without a leading '/', '.' or '..'"
        }
        guard pattern.contains("{token}") else { return "a name in a folder all uploads share must contain {token}" }
        if components.last?.contains("{token}") != true { return "{token} must be in its last part, the file's name" }
        return nil
    }

    private mutating func buildInboxRule(index: Int, _ document: InboxRuleDocument, remotes: [String: RemoteDocument], me: String) -> InboxRule? {
        let path: PolicyPath = ["inbox", .index(index)]
        checkRemoteReference(document.remote, path: path + ["remote"], remotes: remotes)
        let folder = PathTemplate(document.remoteFolder ?? "{sender}->{recipient}")
        if let problem = folder.problem(allowed: ["sender", "recipient"], required: ["sender"]) {
            report(path + ["remote_folder"], problem)
        } else if folder.placeholders.filter({ $0 == "sender" }).count != 1
                    || SenderFolderPattern(template: folder, recipient: me) == nil {
            report(path + ["remote_folder"], "'\(folder)' must contain {sender} exactly once")
        }
        let destination = PathTemplate(document.destination ?? "{spool}/inbox/{sender}")
        if let problem = destination.problem(allowed: ["sender", "spool", "date"]) {
            report(path + ["destination"], problem)
        }
        let every = document.every ?? TimeSpan(seconds: 30)
        if every.seconds < 0.1 { report(path + ["every"], "must be at least 100ms") }
        let claimTimeout = document.claimTimeout ?? InboxRule.defaultClaimTimeout
        if claimTimeout.seconds < 1 { report(path + ["claim_timeout"], "must be at least 1s") }
        return InboxRule(
            remote: document.remote, senders: document.senders ?? [Glob("*")], remoteFolder: folder, every: every,
            destination: destination, deleteRemote: document.deleteRemote ?? true,
            conflict: document.conflict ?? .rename, maxSize: document.maxSize,
            stableFor: document.stableFor ?? InboxRule.defaultStableFor,
            retry: buildRetry(document.retry, default: .default, path: path + ["retry"]),
            requireSeal: document.requireSeal, trust: document.trust ?? .verified, claimTimeout: claimTimeout)
    }

    private mutating func checkRemoteReference(_ name: String, path: PolicyPath, remotes: [String: RemoteDocument]) {
        guard remotes[name] == nil else { return }
        var message = "no remote named '\(name)' in remotes"
        if let suggestion = closestMatch(to: name, in: Array(remotes.keys)) {
            message += "; did you mean '\(suggestion)'?"
        } else if !remotes.isEmpty {
            message += " (defined: " + remotes.keys.sorted().joined(separator: ", ") + ")"
        }
        report(path, message)
    }

    // MARK: Reporting

    private mutating func report(_ path: PolicyPath, _ message: String, atKey: Bool = false) {
        errors.append(context.error(at: root.mark(at: path.keys, atKey: atKey), keyPath: keyPath(path.keys), message))
    }
}

/// The schemes a remote's URL may have.
enum URLScheme: String { case localDirectory = "file", sftp, ftp, ftps }

/// A place in the policy document, from its top: keys, and indices in lists (`outbox[0].after`).
struct PolicyPath: ExpressibleByArrayLiteral {
    enum Step: ExpressibleByStringLiteral {
        case key(String)
        case index(Int)

        init(stringLiteral key: String) { self = .key(key) }
    }

    let steps: [Step]

    init(arrayLiteral steps: Step...) { self.steps = steps }

    private init(_ steps: [Step]) { self.steps = steps }

    static func + (path: PolicyPath, more: PolicyPath) -> PolicyPath { PolicyPath(path.steps + more.steps) }

    /// The path as the coding keys the document's nodes are found by.
    var keys: [CodingKey] {
        steps.map { step in
            switch step {
            case .key(let key): AnyCodingKey(stringValue: key)
            case .index(let index): AnyCodingKey(intValue: index)
            }
        }
    }
}
