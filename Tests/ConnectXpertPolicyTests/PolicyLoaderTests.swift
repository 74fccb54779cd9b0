import ConnectXpertSystem
import Foundation
import Testing

@testable import ConnectXpertPolicy

/// A policy that is valid as written; tests change one thing at a time.
let validPolicy = """
    identity:
      id: alice
    remotes:
      drop:
        url: file:///srv/drop
    outbox:
      - recipients: ["*"]
        remote: drop
    inbox:
      - remote: drop

    """

func parse(_ text: String, environment: [String: String] = [:]) throws -> Policy {
    try PolicyLoader.parse(text, file: "/etc/cx/policies.yaml", displayName: "policies.yaml", environment: environment)
}

/// The diagnostics for an invalid policy, one string per error.
func problems(_ text: String) -> [String] {
    do {
        _ = try parse(text)
        return []
    } catch let errors as PolicyErrors {
        return errors.errors.map(\.description)
    } catch {
        return ["unexpected \(error)"]
    }
}

@Suite struct PolicyLoaderTests {
    @Test func validPolicyGetsDefaults() throws {
        let policy = try parse(validPolicy)
        #expect(policy.identity.id == "alice")
        #expect(policy.spool == "/etc/cx/spool")
        #expect(policy.remotes["drop"]?.path == "/srv/drop")
        #expect(policy.remotes["drop"]?.maxConnections == 4)
        let rule = try #require(policy.outbox.first)
        #expect(rule.remotePath.text == "{sender}->{recipient}/{path}")
        #expect(rule.after == .delete)
        #expect(rule.conflict == .rename)
        #expect(rule.maxSize == nil)
        let inbox = try #require(policy.inbox.first)
        #expect(inbox.remoteFolder.text == "{sender}->{recipient}")
        #expect(inbox.destination.text == "{spool}/inbox/{sender}")
        #expect(inbox.deleteRemote)
        #expect(inbox.every == TimeSpan(seconds: 30))
    }

    @Test func relativeDropIsResolvedAgainstThePolicyFolder() throws {
        let policy = try parse(validPolicy.replacingOccurrences(of: "file:///srv/drop", with: "file:drop"))
        #expect(policy.remotes["drop"]?.path == "/etc/cx/drop")
    }

    @Test func malformedYAMLShowsLineColumnAndCaret() {
        let text = "identity:\n  id: alice\nremotes: [unclosed\n"
        #expect(problems(text) == ["""
            policies.yaml:4:1: error: malformed YAML: while parsing a flow sequence did not find expected ',' or ']'
                
                ^
            """])
    }

    @Test func badIndentationPointsAtTheLine() {
        let text = "identity:\n  id: alice\n   extra: 1\nremotes: {}\n"
        let result = problems(text)
        #expect(result.count == 1)
        #expect(result.first?.hasPrefix("policies.yaml:3:") == true)
        #expect(result.first?.contains("malformed YAML") == true)
    }

    @Test func unknownKeySuggestsTheClosestOne() {
        let text = validPolicy.replacingOccurrences(of: "    remote: drop\ninbox", with: "    remote: drop\n    afer: delete\ninbox")
        #expect(problems(text) == ["""
            policies.yaml:9:5: error: outbox[0].afer: unknown key 'afer'; did you mean 'after'?
                    afer: delete
                    ^
            """])
    }

    @Test func unknownTopLevelKey() {
        #expect(problems(validPolicy + "inboxes: []\n") == ["""
            policies.yaml:11:1: error: inboxes: unknown key 'inboxes'; did you mean 'inbox'?
                inboxes: []
                ^
            """])
    }

    @Test func wrongTypeNamesWhatWasExpected() {
        let text = validPolicy.replacingOccurrences(of: "url: file:///srv/drop", with: "url: file:///srv/drop\n    max_connections: many")
        #expect(problems(text) == ["""
            policies.yaml:6:22: error: remotes.drop.max_connections: expected a whole number, found 'many'
                    max_connections: many
                                     ^
            """])
    }

    @Test func badDuration() {
        let text = validPolicy.replacingOccurrences(of: "  - remote: drop\n", with: "  - remote: drop\n    every: 5 minutes\n")
        #expect(problems(text) == ["""
            policies.yaml:11:12: error: inbox[0].every: '5 minutes' is not a duration: write a number and a unit, such as 500ms, 30s, 5m, 2h or 1d
                    every: 5 minutes
                           ^
            """])
    }

    @Test func badSize() {
        let text = validPolicy.replacingOccurrences(of: "    remote: drop\ninbox", with: "    remote: drop\n    max_size: 10 parsecs\ninbox")
        #expect(problems(text) == ["""
            policies.yaml:9:15: error: outbox[0].max_size: '10 parsecs' is not a size: write bytes or a number with a unit, such as 512KiB, 10MB or 2GiB
                    max_size: 10 parsecs
                              ^
            """])
    }

    @Test func sizesAndDurationsTooLargeToHoldAreRefused() {
        let longTimeout = validPolicy.replacingOccurrences(
            of: "    url: file:///srv/drop\n", with: "    url: file:///srv/drop\n    timeout: 99999999999999999999m\n")
        #expect(problems(longTimeout) == ["""
            policies.yaml:6:14: error: remotes.drop.timeout: '99999999999999999999m' is too long: a duration is at most 36500d
                    timeout: 99999999999999999999m
                             ^
            """])
        let largeSize = validPolicy.replacingOccurrences(
            of: "    remote: drop\ninbox", with: "    remote: drop\n    max_size: 9000000000GiB\ninbox")
        #expect(problems(largeSize) == ["""
            policies.yaml:9:15: error: outbox[0].max_size: '9000000000GiB' is too large: a size is at most 1024TiB
                    max_size: 9000000000GiB
                              ^
            """])
    }

    @Test func misspelledChoice() {
        let text = validPolicy.replacingOccurrences(of: "    remote: drop\ninbox", with: "    remote: drop\n    after: archiv\ninbox")
        #expect(problems(text) == ["""
            policies.yaml:9:12: error: outbox[0].after: 'archiv' is not one of delete, archive, keep; did you mean 'archive'?
                    after: archiv
                           ^
            """])
    }

    @Test func inlineSecretIsRefused() {
        let text = validPolicy.replacingOccurrences(of: "url: file:///srv/drop", with: "url: file:///srv/drop\n    password: hunter2")
        #expect(problems(text) == ["""
            policies.yaml:6:5: error: remotes.drop.password: secrets are never written in policies.yaml: put it in a file only its owner can read (chmod 600) and name it with password_file: (or key_file:), or name an environment variable with password_env:
                    password: hunter2
                    ^
            """])
    }

    @Test func aSecretIsRefusedInEverySection() {
        let text = validPolicy.replacingOccurrences(of: "    remote: drop\ninbox",
                                                    with: "    remote: drop\n    token: t\ninbox")
        #expect(problems(text).first?.hasPrefix(
            "policies.yaml:9:5: error: outbox[0].token: secrets are never written in policies.yaml") == true)
    }

    @Test func aListMayBeWrittenAsItsOneEntry() throws {
        let single = validPolicy.replacingOccurrences(of: "recipients: [\"*\"]", with: "recipients: bob")
            + "mail:\n  inbox:\n    url: imaps://h\n    user: a\n    password_env: P\n"
        let policy = try parse(single)
        #expect(policy.outbox[0].recipients == [Glob("bob")])
        #expect(policy.mail.inbox.map(\.mailbox) == ["INBOX"])
        #expect(problems(single + "    maildri: x\n") == ["""
            policies.yaml:16:5: error: mail.inbox.maildri: unknown key 'maildri'; did you mean 'maildir'?
                    maildri: x
                    ^
            """])
    }

    @Test(arguments: ["sftp://alice:hunter2@example.org/drop", "sftp://alice%3Ahunter2@example.org/drop",
                      "ftp://alice%3ahunter2@example.org"])
    func passwordInURLIsRefused(url: String) {
        let text = validPolicy.replacingOccurrences(of: "file:///srv/drop", with: url)
        #expect(problems(text).first?.contains("the URL holds a password; secrets are never written in policies.yaml") == true)
    }

    @Test func anAtSignInTheURLPathIsNoPassword() {
        let text = validPolicy.replacingOccurrences(of: "file:///srv/drop", with: "sftp://alice@example.org/a:b@c")
        #expect(problems(text).allSatisfy { !$0.contains("holds a password") }, "\(problems(text))")
    }

    @Test func missingCredentialFile() {
        let text = validPolicy.replacingOccurrences(of: "url: file:///srv/drop", with: "url: file:///srv/drop\n    password_file: /nonexistent/secret")
        #expect(problems(text) == ["""
            policies.yaml:6:20: error: remotes.drop.password_file: /nonexistent/secret does not exist; create it with the secret and 'chmod 600 /nonexistent/secret'
                    password_file: /nonexistent/secret
                                   ^
            """])
    }

    @Test func credentialFileReadableByOthers() throws {
        let folder = try temporaryFolder()
        let secret = joinPath(folder, "secret")
        try FileSystem.writeFileAtomically(secret, contents: Array("pw\n".utf8), mode: 0o644)
        try FileSystem.setPermissions(secret, mode: 0o644)
        let text = validPolicy.replacingOccurrences(of: "url: file:///srv/drop", with: "url: file:///srv/drop\n    password_file: \(secret)")
        #expect(problems(text).first?.contains("\(secret) can be read by others (mode 644); run 'chmod 600 \(secret)'") == true)

        try FileSystem.setPermissions(secret, mode: 0o600)
        let policy = try parse(text)
        #expect(policy.remotes["drop"]?.credentials == [.passwordFile(secret)])
    }

    @Test func unknownRemoteIsNamedWithASuggestion() {
        let text = validPolicy.replacingOccurrences(of: "  - recipients: [\"*\"]\n    remote: drop", with: "  - recipients: [\"*\"]\n    remote: dorp")
        #expect(problems(text) == ["""
            policies.yaml:8:13: error: outbox[0].remote: no remote named 'dorp' in remotes; did you mean 'drop'?
                    remote: dorp
                            ^
            """])
    }

    @Test func templatesAreChecked() {
        let unknown = validPolicy.replacingOccurrences(of: "    remote: drop\ninbox", with: "    remote: drop\n    remote_path: \"{sendr}/{path}\"\ninbox")
        #expect(problems(unknown).first?.contains("unknown variable {sendr} in '{sendr}/{path}'; did you mean {sender}?") == true)
        let noName = validPolicy.replacingOccurrences(of: "    remote: drop\ninbox", with: "    remote: drop\n    remote_path: \"{recipient}/fixed\"\ninbox")
        #expect(problems(noName).first?.contains("must contain {path} or {name}") == true)
        let escaping = validPolicy.replacingOccurrences(of: "    remote: drop\ninbox", with: "    remote: drop\n    remote_path: \"../{path}\"\ninbox")
        #expect(problems(escaping).first?.contains("is not a safe relative path") == true)
        let noSender = validPolicy.replacingOccurrences(of: "  - remote: drop\n", with: "  - remote: drop\n    remote_folder: \"to-{recipient}\"\n")
        #expect(problems(noSender).first?.contains("'to-{recipient}' must contain {sender}") == true)
    }

    @Test func chmodIsOctal() throws {
        let good = validPolicy.replacingOccurrences(of: "    remote: drop\ninbox", with: "    remote: drop\n    chmod: \"0640\"\n    preserve_mtime: false\ninbox")
        let rule = try #require(try parse(good).outbox.first)
        #expect(rule.mode == 0o640)
        #expect(!rule.preserveModificationTime)
        let bad = validPolicy.replacingOccurrences(of: "    remote: drop\ninbox", with: "    remote: drop\n    chmod: rw-r-----\ninbox")
        #expect(problems(bad).first?.contains("'rw-r-----' is not a file mode: write it in octal") == true)
    }

    @Test func ftpRemotes() throws {
        let folder = try temporaryFolder()
        let secret = joinPath(folder, "pw")
        try FileSystem.writeFileAtomically(secret, contents: Array("pw".utf8), mode: 0o600)
        func ftp(_ url: String, _ extra: String = "") -> String {
            validPolicy.replacingOccurrences(of: "url: file:///srv/drop", with: "url: \(url)\n    password_file: \(secret)\(extra)")
        }
        let explicit = try #require(try parse(ftp("ftp://cx@ftp.example.org/~/drop")).remotes["drop"]?.ftp)
        #expect(explicit == FTPSettings(host: "ftp.example.org", port: 21, user: "cx", tls: .required, caFile: nil, active: false))
        #expect(try parse(ftp("ftp://cx@h/~/drop")).remotes["drop"]?.path == "drop")
        let implicit = try #require(try parse(ftp("ftps://cx@h:2990/srv/drop")).remotes["drop"])
        #expect(implicit.ftp?.tls == .implicit)
        #expect(implicit.ftp?.port == 2990)
        #expect(implicit.path == "/srv/drop")
        #expect(try parse(ftp("ftp://cx@h/", "\n    tls: off\n    active: true")).remotes["drop"]?.ftp?.tls == .off)

        #expect(problems(ftp("ftps://cx@h/", "\n    tls: off")).first?.contains("ftps:// is TLS from the first byte") == true)
        #expect(problems(ftp("ftp://cx@h/", "\n    tls: implicit")).first?.contains("implicit TLS is written as an ftps:// URL") == true)
        #expect(problems(ftp("ftp://h/")).first?.contains("name the FTP user in the URL") == true)
        #expect(problems(validPolicy.replacingOccurrences(of: "file:///srv/drop", with: "ftp://cx@h/")).first?
            .contains("an ftp remote needs password_file or password_env (or anonymous: true)") == true)
        #expect(problems(validPolicy.replacingOccurrences(of: "url: file:///srv/drop", with: "url: file:///srv/drop\n    tls: off")).first?
            .contains("tls applies to ftp:// and ftps:// remotes only") == true)
        #expect(try parse(validPolicy.replacingOccurrences(of: "url: file:///srv/drop", with: "url: ftp://h/\n    anonymous: true"))
            .remotes["drop"]?.ftp?.user == nil)
    }

    @Test func sftpCredentialsKeepThePolicysOrder() throws {
        let folder = try temporaryFolder()
        let key = joinPath(folder, "key"), password = joinPath(folder, "pw")
        for file in [key, password] { try FileSystem.writeFileAtomically(file, contents: Array("x".utf8), mode: 0o600) }
        func remote(_ lines: String) throws -> [Credential] {
            try parse("identity:\n  id: alice\nremotes:\n  drop:\n    url: sftp://u@h/x\n" + lines).remotes["drop"]?.credentials ?? []
        }
        #expect(try remote("    agent: true\n    password_file: \(password)\n    key_file: \(key)\n")
            == [.agent, .passwordFile(password), .keyFile(key)])
        #expect(try remote("    key_file: \(key)\n    password_env: P\n    agent: true\n")
            == [.keyFile(key), .passwordEnvironment("P"), .agent])
        #expect(try remote("    agent: false\n    key_file: \(key)\n") == [.keyFile(key)])
    }

    @Test func temporaryNamePatterns() throws {
        let base = "identity:\n  id: alice\nremotes:\n  drop:\n    url: file:///srv/drop\noutbox:\n  - remote: drop\n"
        func rule(_ pattern: String) -> String { base + "    temp_name: \"\(pattern)\"\n" }
        #expect(try parse(base).outbox.first?.temporaryName == ".connectxpert-temp/{token}.part")
        #expect(OutboxRule.temporaryPath(for: "a->b/sub/x.txt", pattern: ".connectxpert-temp/{token}.part", token: "t")
            == ".connectxpert-temp/t.part", "in a folder below the remote's, out of every recipient's folder")
        #expect(try parse(rule("{name}.{token}.tmp")).outbox.first?.temporaryName == "{name}.{token}.tmp")
        #expect(OutboxRule.temporaryPath(for: "a->b/x.txt", pattern: "{name}.{token}.tmp", token: "t") == "a->b/x.txt.t.tmp")
        #expect(try parse(rule("tmp/{name}.{token}")).outbox.first?.temporaryName == "tmp/{name}.{token}")
        #expect(problems(rule("upload.tmp")).first?.contains("it must contain {name}") == true)
        #expect(problems(rule("{name}")).first?.contains("it must differ from the final name") == true)
        #expect(problems(rule("tmp/{name}")).first?.contains("must contain {token}") == true)
        #expect(problems(rule("{token}/{name}")).first?.contains("{token} must be in its last part") == true)
        for escaping in ["/tmp/{token}", "../{token}", "a//{token}", "./{token}"] {
            #expect(problems(rule(escaping)).first?.contains("without a leading '/', '.' or '..'") == true, "\(escaping)")
        }
        #expect(problems(rule("{name}.{date}")).first?.contains("only {name} and {token} can be filled in") == true)
    }

    @Test func aTemporaryNameBesideTheFinalOneAlwaysFits() {
        let long = String(repeating: "ü", count: 127)  // 254 bytes
        let temporary = OutboxRule.temporaryPath(for: "a->b/" + long, pattern: OutboxRule.besideTemporaryName, token: "tok")
        #expect(temporary == "a->b/." + String(repeating: "ü", count: 121) + ".cxtok.part", "cut at a whole character")
        #expect(lastComponent(of: temporary).utf8.count == 254)
    }

    @Test func mailInboxSources() throws {
        let folder = try temporaryFolder()
        let secret = joinPath(folder, "pw")
        try FileSystem.writeFileAtomically(secret, contents: Array("pw".utf8), mode: 0o600)
        func inbox(_ body: String) -> String { validPolicy + "mail:\n  inbox:\n" + body }
        let sources = try parse(inbox("""
                - url: imaps://imap.example.org
                  user: alice
                  password_file: \(secret)
                - url: imap://alice@mail.example.org/Archive/2026
                  password_env: IMAP_PASSWORD
                  every: 30s
                  select: all
                  after: delete
                  maildir: /var/mail/alice

            """)).mail.inbox
        try #require(sources.count == 2)
        #expect(sources[0].server.port == 993 && sources[0].server.tls == .implicit && sources[0].mailbox == "INBOX")
        #expect(sources[0].select == .unseen && sources[0].after == .markSeen && sources[0].every == TimeSpan(seconds: 300))
        #expect(sources[0].maildir == "/etc/cx/spool/mail/inbox")
        #expect(sources[0].name == "alice@imap.example.org:993/INBOX")
        #expect(sources[1].server.port == 143 && sources[1].server.tls == .required && sources[1].mailbox == "Archive/2026")
        #expect(sources[1].server.user == "alice" && sources[1].server.credentials == [.passwordEnvironment("IMAP_PASSWORD")])
        #expect(sources[1].select == .all && sources[1].after == .delete && sources[1].maildir == "/var/mail/alice")

        #expect(problems(inbox("    - url: imaps://h\n      user: a\n      password_env: P\n      after: mark-read\n")).first?
            .contains("'mark-read' is not one of mark-seen, delete, keep; did you mean 'mark-seen'?") == true)
        #expect(problems(inbox("    - url: imaps://h\n      user: a\n      password_env: P\n      maildri: x\n")).first?
            .contains("unknown key 'maildri'; did you mean 'maildir'?") == true)
        #expect(problems(inbox("    - url: imaps://h\n      user: a\n      password: x\n")).first?
            .contains("secrets are never written in policies.yaml") == true)
        #expect(problems(inbox("    - url: imaps://h\n")).first?.contains("an IMAP source needs user:") == true)
        #expect(problems(inbox("    - url: smtp://h\n      user: a\n      password_env: P\n")).first?
            .contains("is not an IMAP server: write imaps://host/INBOX or imap://host/INBOX (STARTTLS)") == true)
        #expect(problems(inbox("    - url: imaps://h\n      user: a\n      password_env: P\n      tls: off\n")).first?
            .contains("imaps:// is TLS from the first byte") == true)
    }

    @Test func screenShareSection() throws {
        let folder = try temporaryFolder()
        let secret = joinPath(folder, "vnc")
        try FileSystem.writeFileAtomically(secret, contents: Array("pw".utf8), mode: 0o600)
        func jobs(_ body: String) -> String { validPolicy + "jobs:\n  screen_share:\n" + body }
        #expect(try parse(validPolicy).screenShare == .default)
        let settings = try parse(jobs("""
                display: ":1"
                listen: "[::1]:5901"
                max_duration: 30m
                password_file: \(secret)
                view_only: true
                once: false

            """)).screenShare
        #expect(settings == ScreenShareSettings(display: ":1", listen: ListenAddress(host: "::1", port: 5901),
                                                maxDuration: TimeSpan(seconds: 1800), passwordFile: secret,
                                                authentication: .vnc, viewOnly: true, once: false))
        #expect(problems(jobs("    auth: none\n    listen: 0.0.0.0:5900\n")).first?
            .contains("auth: none lets anyone who reaches 0.0.0.0:5900 see the screen") == true)
        #expect(problems(jobs("    listen: somewhere\n")).first?.contains("'somewhere' is not host:port") == true)
        #expect(try parse(jobs("    websocket: 127.0.0.1:5800\n")).screenShare.webSocket
            == ListenAddress(host: "127.0.0.1", port: 5800))
        #expect(problems(jobs("    websocket: 5800\n")).first?.contains("'5800' is not host:port") == true)
        #expect(problems(jobs("    auth: none\n    websocket: 0.0.0.0:5800\n")).first?
            .contains("auth: none lets anyone who reaches 0.0.0.0:5800 see the screen") == true)
        #expect(problems(jobs("    password: x\n")).first?.contains("secrets are never written in policies.yaml") == true)
        #expect(problems(jobs("    max_duraton: 1h\n")).first?.contains("did you mean 'max_duration'?") == true)
        #expect(problems(jobs("    duration: 1h\n")).first?.contains("the policy sets max_duration") == true)
    }

    @Test func mailSection() throws {
        let folder = try temporaryFolder()
        let secret = joinPath(folder, "pw")
        try FileSystem.writeFileAtomically(secret, contents: Array("pw".utf8), mode: 0o600)
        func mail(_ body: String) -> String { validPolicy + "mail:\n" + body }
        #expect(try parse(validPolicy).mail == .default)
        let settings = try parse(mail("""
              from: alice@example.org
              smtp:
                url: smtp://alice%40example.org@mail.example.org
                password_file: \(secret)
              after: delete
              queue_lifetime: 2d
              retry: {initial: 30s}

            """)).mail
        #expect(settings.from == "alice@example.org" && settings.after == .delete)
        #expect(settings.retry == RetryPolicy(initial: TimeSpan(seconds: 30), maximum: TimeSpan(seconds: 3600),
                                              giveUpAfter: TimeSpan(seconds: 2 * 86400)))
        #expect(settings.smtp == MailServer(url: "smtp://alice%40example.org@mail.example.org", host: "mail.example.org", port: 587,
                                              user: "alice@example.org", credentials: [.passwordFile(secret)], tls: .required,
                                              caFile: nil, timeout: TimeSpan(seconds: 60)))
        #expect(try parse(mail("  smtp:\n    url: smtps://h\n")).mail.smtp?.port == 465)

        #expect(problems(mail("  smtp:\n    url: smtp://h\n    password: hunter2\n")).first?
            .contains("secrets are never written in policies.yaml") == true)
        #expect(problems(mail("  smtp:\n    url: smtps://h\n    tls: off\n")).first?.contains("smtps:// is TLS from the first byte") == true)
        #expect(problems(mail("  smtp:\n    url: imap://h\n")).first?.contains("is not an SMTP server") == true)
        #expect(problems(mail("  smtp:\n    url: smtp://h\n    user: cx\n")).first?.contains("a user needs password_file or password_env") == true)
        #expect(problems(mail("  form: a@b.org\n")).first?.contains("unknown key 'form'; did you mean 'from'?") == true)
        #expect(problems(mail("  from: not-an-address\n")).first?.contains("is not a mail address") == true)
        #expect(problems(mail("  retry: {give_up_after: 1d}\n")).first?.contains("for mail this is mail.queue_lifetime") == true)
    }

    @Test func unsupportedSchemeIsExplained() {
        let text = validPolicy.replacingOccurrences(of: "file:///srv/drop", with: "gopher://x/")
        #expect(problems(text).first?.contains("unknown URL scheme 'gopher'; use file, sftp, ftp or ftps") == true)
    }

    @Test func severalProblemsAreReportedTogether() {
        let text = validPolicy
            .replacingOccurrences(of: "  - recipients: [\"*\"]\n    remote: drop", with: "  - recipients: [\"*\"]\n    remote: nowhere")
            .replacingOccurrences(of: "  - remote: drop\n", with: "  - remote: elsewhere\n")
        #expect(problems(text).count == 2)
    }

    @Test func unsafeIdentity() {
        let text = validPolicy.replacingOccurrences(of: "id: alice", with: "id: ../root")
        #expect(problems(text).first?.contains("cannot be used as an ID") == true)
    }

    @Test func emptyPolicy() {
        #expect(problems("") == ["policies.yaml: error: the policy is empty"])
    }
}

func temporaryFolder() throws -> String {
    let path = NSTemporaryDirectory() + "cx-test-" + UUID().uuidString
    try FileSystem.createDirectories(path)
    return path
}

@Suite struct MissingSecretTests {
    @Test func aMissingSecretFileIsOneErrorNotTwo() {
        let text = "identity:\n  id: alice\nremotes:\n  drop:\n    url: sftp://u@h/x\n    password_file: /nonexistent/pw\n"
        #expect(problems(text).count == 1)
        #expect(problems(text).first?.contains("/nonexistent/pw does not exist") == true)
    }
}

extension Remote {
    /// An FTP remote's settings; nil for another transport.
    fileprivate var ftp: FTPSettings? {
        if case .ftp(let settings) = endpoint { settings } else { nil }
    }
}
