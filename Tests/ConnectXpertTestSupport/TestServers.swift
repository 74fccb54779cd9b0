import ConnectXpertSystem
import Foundation

/// The package's root folder.
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// Whether integration tests that need root (a real sshd logging a user in) can run. Under CI
/// they always run, so that a missing server or privilege fails instead of skipping.
public let canRunServerTests = getuid() == 0 || ProcessInfo.processInfo.environment["CI"] == "true"

/// A server for the tests, started on 127.0.0.1 by a script in `scripts/test-servers/`, with the
/// test login `cxdrop` (home /var/lib/cxdrop). Stopped when released, and at the latest when the
/// test process exits.
public class TestServer: @unchecked Sendable {
    public let folder: String
    public let port: Int
    public let user = "cxdrop"
    public let home = "/var/lib/cxdrop"
    private let script: String
    private let options: [String]

    init(script: String, options: [String] = []) throws {
        self.script = joinPath(packageRoot, "scripts/test-servers", script)
        self.options = options
        folder = NSTemporaryDirectory() + "cx-\(script)-" + UUID().uuidString.prefix(8)
        port = try freePort()
        try start()
        TestServer.stopAtExit(script: self.script, folder: folder)
    }

    deinit { stop() }

    public func start() throws {
        try runChecked(script, ["start", folder, String(port)] + options)
    }

    public func stop() {
        _ = try? runProgram(script, ["stop", folder])
    }

    public var passwordFile: String { joinPath(folder, "password") }
    public var wrongPasswordFile: String { joinPath(folder, "wrong_password") }

    /// Servers still running when the test process exits (shared ones are never released).
    nonisolated(unsafe) private static var running: [(script: String, folder: String)] = []
    private static let exitLock = NSLock()

    private static func stopAtExit(script: String, folder: String) {
        exitLock.lock()
        defer { exitLock.unlock() }
        if running.isEmpty {
            atexit {
                for server in TestServer.running { _ = try? runProgram(server.script, ["stop", server.folder]) }
            }
        }
        running.append((script, folder))
    }
}

/// A private SSH server: OpenSSH (`scripts/test-servers/sshd`), dropbear with OpenSSH's sftp-server
/// and a small channel window (`scripts/test-servers/dropbear`), or `rclone serve sftp`, which cannot
/// write at an offset (`scripts/test-servers/rclone-sftp`); only the client key and known_hosts with
/// the last two.
public final class SSHTestServer: TestServer, @unchecked Sendable {
    public enum Kind: String { case openssh = "sshd", dropbear, rclone = "rclone-sftp" }

    /// One server for the tests that do not stop or restart theirs.
    public static let shared: SSHTestServer = try! SSHTestServer()

    public init(_ kind: Kind = .openssh) throws { try super.init(script: kind.rawValue) }

    public var knownHosts: String { joinPath(folder, "known_hosts") }
    public var clientKey: String { joinPath(folder, "client_key") }
    public var protectedKey: String { joinPath(folder, "client_key_protected") }
    public var passphraseFile: String { joinPath(folder, "passphrase") }
    public var strangerKey: String { joinPath(folder, "stranger_key") }
    public var hostPublicKey: String { joinPath(folder, "host_ed25519.pub") }

    /// An sftp URL for a folder below the login's home.
    public func url(_ folder: String) -> String { "sftp://\(user)@127.0.0.1:\(port)/~/\(folder)" }
}

/// A private FTP server: vsftpd (`scripts/test-servers/vsftpd`), explicit TLS required or plain FTP;
/// or pure-ftpd (`scripts/test-servers/pure-ftpd`), without vsftpd's upload lock, TLS offered.
public final class FTPTestServer: TestServer, @unchecked Sendable {
    public static let shared: FTPTestServer = try! FTPTestServer(tls: true)

    public let tls: Bool

    /// - Parameter keepsTimes: false for a server that refuses to set a file's time.
    public init(tls: Bool, keepsTimes: Bool = true) throws {
        self.tls = tls
        try super.init(script: "vsftpd", options: [tls ? "tls" : "plain", keepsTimes ? "times" : "no-times"])
    }

    /// pure-ftpd, reached over explicit TLS.
    public static func pureFTPd() throws -> FTPTestServer { try FTPTestServer(script: "pure-ftpd") }

    private init(script: String) throws {
        tls = true
        try super.init(script: script)
    }

    /// The server's certificate, to trust with `ca_file`.
    public var certificate: String { joinPath(folder, "cert.pem") }
    /// A CA that did not sign the server's certificate.
    public var otherCA: String { joinPath(folder, "other-ca.pem") }

    public func url(_ folder: String) -> String { "ftp://\(user)@127.0.0.1:\(port)/~/\(folder)" }
}

/// A hostile FTP server (`scripts/test-servers/hostile-ftpd`): plain FTP, any login, one file
/// `alice->bob/lies.bin` listed with 100 bytes, and what it does next set with `behave(_:)`.
public final class HostileFTPTestServer: TestServer, @unchecked Sendable {
    public enum Behaviour: String {
        /// RETR sends what it listed.
        case honest
        /// RETR streams without end (4 GiB at most).
        case endless
        /// RETR sends what it listed and never answers 226.
        case silent
        /// LIST streams lines without end (4 GiB at most).
        case hugeListing = "huge-listing"
    }

    public init() throws { try super.init(script: "hostile-ftpd") }

    public func behave(_ behaviour: Behaviour) throws {
        try FileSystem.writeFileAtomically(joinPath(folder, "behaviour"), contents: Array(behaviour.rawValue.utf8))
    }

    public var url: String { "ftp://anyone@127.0.0.1:\(port)/" }
}

/// A hostile SFTP server (`scripts/test-servers/hostile-sftpd`, paramiko): any key logs in, and
/// every folder lists names without end.
public final class HostileSFTPTestServer: TestServer, @unchecked Sendable {
    public init() throws { try super.init(script: "hostile-sftpd") }

    public var url: String { "sftp://anyone@127.0.0.1:\(port)/drop" }
    public var clientKey: String { joinPath(folder, "client_key") }
    public var knownHosts: String { joinPath(folder, "known_hosts") }
}

/// A private SMTP server (`scripts/test-servers/smtpd`, aiosmtpd): STARTTLS and AUTH required
/// (`starttls`), TLS from the first byte (`implicit`) or no TLS (`plain`). Login `cx`. It takes
/// messages up to `sizeLimit` bytes, the SIZE it announces.
public final class SMTPTestServer: TestServer, @unchecked Sendable {
    public enum Mode: String { case starttls, implicit, plain }

    public let mode: Mode

    public init(_ mode: Mode = .starttls, sizeLimit: Int = 64 << 20) throws {
        self.mode = mode
        try super.init(script: "smtpd", options: [mode.rawValue, String(sizeLimit)])
    }

    /// How many DATA commands the server was given (refused ones too).
    public func dataCommands() -> Int {
        ((try? FileSystem.readFile(joinPath(folder, "data-commands"))) ?? []).filter { $0 == 10 }.count
    }

    public var certificate: String { joinPath(folder, "cert.pem") }
    public var url: String { "\(mode == .implicit ? "smtps" : "smtp")://127.0.0.1:\(port)" }

    /// One message as the server stored it.
    public struct Received {
        public let sender: String
        public let recipients: [String]
        public let login: String
        /// The DATA bytes as they arrived, dot-unstuffed.
        public let data: [UInt8]
    }

    /// Everything the server accepted, in order.
    public func received() throws -> [Received] {
        let folder = joinPath(self.folder, "received")
        return try FileSystem.contents(of: folder).filter { $0.hasSuffix(".eml") }.sorted().map { name in
            let stem = joinPath(folder, String(name.dropLast(4)))
            let meta = try JSONSerialization.jsonObject(with: Data(try FileSystem.readFile(stem + ".json"))) as? [String: Any] ?? [:]
            return Received(sender: meta["mail_from"] as? String ?? "", recipients: meta["rcpt_tos"] as? [String] ?? [],
                            login: meta["login"] as? String ?? "", data: try FileSystem.readFile(stem + ".eml"))
        }
    }

    /// The replies the next DATA commands get, one per line ("451 4.3.0 busy").
    public func failNextData(_ replies: [String]) throws {
        try FileSystem.writeFileAtomically(joinPath(folder, "fail-data"), contents: Array(replies.map { $0 + "\n" }.joined().utf8))
    }

    /// While hanging, the server does not answer the end of a message.
    public func hang(_ on: Bool) throws {
        if on { try FileSystem.writeFileAtomically(joinPath(folder, "hang"), contents: []) } else { _ = try FileSystem.removeIfPresent(joinPath(folder, "hang")) }
    }

    /// How many logins (successful AUTH) the server has seen.
    public func logins() -> Int {
        ((try? FileSystem.readFile(joinPath(folder, "logins"))) ?? []).filter { $0 == 10 }.count
    }
}

public struct TestServerError: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// A TCP port free on 127.0.0.1 at the time of asking.
public func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    try withUnsafeMutablePointer(to: &address) { pointer in
        try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
            try syscall("bind") { bind(fd, raw, length) }
            try syscall("getsockname") { getsockname(fd, raw, &length) }
        }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A private Dovecot IMAP server (`scripts/test-servers/dovecot`): STARTTLS required
/// (`starttls`), TLS from the first byte (`implicit`) or no TLS (`plain`). Login `cxdrop`; the
/// mailbox is the Maildir `maildir`, seeded and inspected through its files.
public final class IMAPTestServer: TestServer, @unchecked Sendable {
    public enum Mode: String { case starttls, implicit, plain }

    public let mode: Mode

    public init(_ mode: Mode = .starttls) throws {
        self.mode = mode
        try super.init(script: "dovecot", options: [mode.rawValue])
    }

    public var certificate: String { joinPath(folder, "cert.pem") }
    public var url: String { "\(mode == .implicit ? "imaps" : "imap")://127.0.0.1:\(port)/INBOX" }
    public var maildir: String { joinPath(folder, "mail") }

    /// Puts a message into the mailbox, unseen (`new/`) or seen (`cur/…:2,S`), owned by the login.
    public func deliver(_ message: [UInt8], seen: Bool = false) throws {
        let name = "\(Date().timeIntervalSince1970).\(UUID().uuidString.prefix(8)).test"
        let temporary = joinPath(maildir, "tmp", name)
        try FileSystem.writeFileAtomically(temporary, contents: message, mode: 0o600)
        guard let account = getpwnam(user), chown(temporary, account.pointee.pw_uid, account.pointee.pw_gid) == 0 else {
            throw TestServerError(message: "cannot give \(temporary) to \(user)")
        }
        try FileSystem.rename(temporary, to: seen ? joinPath(maildir, "cur", name + ":2,S") : joinPath(maildir, "new", name))
    }

    public func deliver(_ message: String, seen: Bool = false) throws {
        try deliver(Array(message.utf8), seen: seen)
    }

    /// The flags of each message now in the mailbox (`""` for a new one, `"S"` once seen).
    public func flags() throws -> [String] {
        let fresh = try FileSystem.contents(of: joinPath(maildir, "new")).map { _ in "" }
        let current = try FileSystem.contents(of: joinPath(maildir, "cur")).map { name in
            name.range(of: ":2,").map { String(name[$0.upperBound...]) } ?? ""
        }
        return (fresh + current).sorted()
    }

    /// Makes the server number the mailbox anew (a new UIDVALIDITY), as after a restore from backup.
    public func renumber() throws {
        for name in try FileSystem.contents(of: maildir) where name.hasPrefix("dovecot-uidlist") || name.hasPrefix("dovecot.index") {
            try FileSystem.remove(joinPath(maildir, name))
        }
    }
}

/// Whether the screen-share tests can run: Xvfb is installed. Under CI they always run.
public let canRunScreenTests = FileSystem.exists("/usr/bin/Xvfb") || ProcessInfo.processInfo.environment["CI"] == "true"

/// A private Xvfb (`scripts/test-servers/xvfb`) on a free display number, with the test picture
/// painted by `scripts/screen-test/xhelper.py pattern`, which also logs the input it receives.
public final class XTestDisplay: @unchecked Sendable {
    public let folder = NSTemporaryDirectory() + "cx-xvfb-" + UUID().uuidString.prefix(8)
    public let number: Int
    public var name: String { ":\(number)" }
    /// What the painted window received: "press 1 100 200", "text H", …
    public var eventLog: String { joinPath(folder, "events.log") }
    private let script = joinPath(packageRoot, "scripts/test-servers/xvfb")
    private let painter = Process()

    public init(width: Int = 640, height: Int = 480) throws {
        // A display number is free when no X server holds its lock (one killed leaves its lock behind).
        guard let number = (0..<10_000).lazy.map({ _ in Int.random(in: 200...899) }).first(where: { number in
            let lock = (try? FileSystem.readFile("/tmp/.X\(number)-lock")).map { String(decoding: $0, as: UTF8.self) }
            let holder = lock.flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            return holder.map { kill($0, 0) != 0 && errno == ESRCH } ?? true
        }) else { throw TestServerError(message: "no free X display number in :200-:899") }
        self.number = number
        try runChecked(script, ["start", folder, String(number), "\(width)x\(height)"])
        _ = FileManager.default.createFile(atPath: eventLog, contents: nil)
        painter.executableURL = URL(fileURLWithPath: try pythonTools())
        painter.arguments = [joinPath(packageRoot, "scripts/screen-test/xhelper.py"), "pattern", name, eventLog]
        let ready = Pipe()
        painter.standardOutput = ready
        // It complains when the X server goes away at the end of a test.
        painter.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try painter.run()
        let line = ready.fileHandleForReading.availableData
        guard String(decoding: line, as: UTF8.self).hasPrefix("ready") else {
            throw TestServerError(message: "the test picture was not painted on \(name)")
        }
    }

    deinit {
        if painter.isRunning { painter.terminate() }
        _ = try? runProgram(script, ["stop", folder])
    }

    /// The X server's own screenshot, as a PNG file.
    public func screenshot() throws -> String {
        let path = joinPath(folder, "x-\(UUID().uuidString.prefix(6)).png")
        try runChecked(try pythonTools(), [joinPath(packageRoot, "scripts/screen-test/xhelper.py"), "shot", name, path])
        return path
    }

    /// Runs `body` while the X client that logs the events is stopped, and lets it go on `delay` later:
    /// a client that reads its events late.
    public func withClientStopped(for delay: Duration, _ body: () throws -> Void) rethrows {
        kill(painter.processIdentifier, SIGSTOP)
        defer { kill(painter.processIdentifier, SIGCONT) }
        try body()
        Thread.sleep(forTimeInterval: delay / .seconds(1))
    }

    /// The lines of the event log.
    public func events() -> [String] {
        ((try? String(contentsOfFile: eventLog, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// The text the X clients received, in order.
    public func typed() -> String {
        events().filter { $0.hasPrefix("text ") }.map { $0.dropFirst(5) }.joined()
    }
}

/// The python of the test tools' venv (vncdotool, python-xlib, Pillow), made on first use.
public func pythonTools() throws -> String { try toolsPython.get() }

private let toolsPython = Result<String, TestServerError> { () throws(TestServerError) -> String in
    do {
        return try runChecked(joinPath(packageRoot, "scripts/screen-test/python-tools"), [])
            .trimmingCharacters(in: .whitespacesAndNewlines)
    } catch {
        throw TestServerError(message: "the screen-test tools cannot be installed: \(error)")
    }
}

/// Runs `scripts/screen-test/xhelper.py` with the tools' python.
public func xhelper(_ arguments: [String]) throws -> ProgramResult {
    try runProgram(try pythonTools(), [joinPath(packageRoot, "scripts/screen-test/xhelper.py")] + arguments)
}

/// `scripts/screen-test/xhelper.py` running a command that lasts until its standard input closes
/// (`stop`, or `deinit`), started once it says "ready".
public final class RunningXhelper {
    private let process = Process()
    private let input = Pipe()

    public init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: try pythonTools())
        process.arguments = [joinPath(packageRoot, "scripts/screen-test/xhelper.py")] + arguments
        let ready = Pipe()
        process.standardInput = input
        process.standardOutput = ready
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        guard String(decoding: ready.fileHandleForReading.availableData, as: UTF8.self).hasPrefix("ready") else {
            stop()
            throw TestServerError(message: "xhelper \(arguments.joined(separator: " ")) did not start")
        }
    }

    deinit { stop() }

    public func stop() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

/// `scripts/screen-test/browser.py novnc`: noVNC in headless Chromium.
public func novnc(_ arguments: [String]) throws -> ProgramResult {
    try runProgram(try pythonTools(), [joinPath(packageRoot, "scripts/screen-test/browser.py"), "novnc"] + arguments)
}

/// Debian's websockify between a WebSocket port, which also serves noVNC's page, and an RFB server.
public final class Websockify {
    private let process = Process()
    public let port: Int

    public init(to target: Int) throws {
        port = try freePort()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/websockify")
        process.arguments = ["--web", "/usr/share/novnc", "127.0.0.1:\(port)", "127.0.0.1:\(target)"]
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let listening = eventually(timeout: 10) {
            (try? runProgram("/usr/bin/curl", ["-sf", "-o", "/dev/null", "http://127.0.0.1:\(port)/vnc.html"]))?
                .status == 0
        }
        guard listening else {
            stop()
            throw TestServerError(message: "websockify did not start on port \(port)")
        }
    }

    deinit { stop() }

    /// SIGKILL: websockify ends on SIGTERM only once its connections have.
    public func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// vncdotool's `vncdo` from the tools' venv.
public func vncdo(_ arguments: [String]) throws -> ProgramResult {
    let python = try pythonTools()
    return try runProgram(joinPath(parentDirectory(of: python), "vncdo"), arguments)
}
