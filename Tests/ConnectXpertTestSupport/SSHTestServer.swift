import ConnectXpertSystem
import Foundation

/// The package's root folder.
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// Whether integration tests that need root (a real sshd logging a user in) can run. Under CI
/// they always run, so that a missing server or privilege fails instead of skipping.
public let canRunServerTests = getuid() == 0 || ProcessInfo.processInfo.environment["CI"] == "true"

/// A private OpenSSH server on 127.0.0.1 started by `scripts/test-servers/sshd`, with the test
/// login `cxdrop` (home /var/lib/cxdrop).
public final class SSHTestServer: @unchecked Sendable {
    /// One server for the tests that do not stop or restart theirs.
    public static let shared: SSHTestServer = try! SSHTestServer()

    public let folder: String
    public let port: Int
    public let user = "cxdrop"
    public let home = "/var/lib/cxdrop"

    public init() throws {
        folder = NSTemporaryDirectory() + "cx-sshd-" + UUID().uuidString.prefix(8)
        port = try freePort()
        try start()
        SSHTestServer.stopAtExit(folder)
    }

    /// Servers still running when the test process exits (the shared one is never deinitialized).
    nonisolated(unsafe) private static var running: Set<String> = []
    private static let exitLock = NSLock()

    private static func stopAtExit(_ folder: String) {
        exitLock.lock()
        defer { exitLock.unlock() }
        if running.isEmpty {
            atexit {
                for folder in SSHTestServer.running {
                    _ = try? runProgram(joinPath(packageRoot, "scripts/test-servers/sshd"), ["stop", folder])
                }
            }
        }
        running.insert(folder)
    }

    deinit { stop() }

    public func start() throws {
        try runScript(["start", folder, String(port)])
    }

    public func stop() {
        try? runScript(["stop", folder])
    }

    public var knownHosts: String { joinPath(folder, "known_hosts") }
    public var clientKey: String { joinPath(folder, "client_key") }
    public var protectedKey: String { joinPath(folder, "client_key_protected") }
    public var passphraseFile: String { joinPath(folder, "passphrase") }
    public var strangerKey: String { joinPath(folder, "stranger_key") }
    public var passwordFile: String { joinPath(folder, "password") }
    public var wrongPasswordFile: String { joinPath(folder, "wrong_password") }
    public var hostPublicKey: String { joinPath(folder, "host_ed25519.pub") }

    /// An sftp URL for a folder below the login's home.
    public func url(_ folder: String) -> String { "sftp://\(user)@127.0.0.1:\(port)/~/\(folder)" }

    private func runScript(_ arguments: [String]) throws {
        try runChecked(joinPath(packageRoot, "scripts/test-servers/sshd"), arguments)
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
