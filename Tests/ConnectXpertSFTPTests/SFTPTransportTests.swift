import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTestSupport
import ConnectXpertTransport
import Foundation
import Synchronization
import Testing

@testable import ConnectXpertSFTP

/// A remote as a policy would define it, for a folder of its own below the test login's home.
func remote(_ server: SSHTestServer, folder: String = "t-" + UUID().uuidString.prefix(8), extra: String) throws -> Remote {
    try parseRemote(["url: \(server.url(folder))"] + extra.split(separator: "\n").map(String.init))
}

func keyLogin(_ server: SSHTestServer) -> String {
    "key_file: \(server.clientKey)\nknown_hosts: \(server.knownHosts)"
}

func sha256(_ path: String) throws -> String {
    String(try runChecked("/usr/bin/sha256sum", [path]).prefix(64))
}

@Suite(.enabled(if: canRunServerTests, "needs root to run sshd"), .serialized)
struct SFTPTransportTests {
    let server = SSHTestServer.shared

    @Test(arguments: [("empty", 0), ("one-byte", 1), ("mixed size", 3_000_001), ("ünïcödé ñame", 10)])
    func roundTripIsByteIdentical(name: String, size: Int) throws {
        let folder = "t-" + UUID().uuidString.prefix(8)
        let sftp = try SFTPTransport(remote: try remote(server, folder: folder, extra: keyLogin(server)))
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try sftp.makeDirectories("alice->bob")
        let written = try sftp.upload(from: try temporaryFile(bytes), to: "alice->bob/.\(name).part",
                                      attributes: .init(modificationNanoseconds: 1_700_000_000_000_000_000, mode: 0o640)) { _ in true }
        #expect(written == Int64(size))
        try sftp.rename("alice->bob/.\(name).part", to: "alice->bob/\(name)", replacing: false)
        let entry = try #require(try sftp.entry(at: "alice->bob/\(name)"))
        #expect(entry.kind == .file)
        #expect(entry.size == Int64(size))
        #expect(entry.modificationNanoseconds == 1_700_000_000_000_000_000, "mtime kept")
        #expect(try FileSystem.status("\(server.home)/\(folder)/alice->bob/\(name)")?.mode == 0o640, "chmod applied")
        #expect(try sftp.list("alice->bob").map(\.name) == [name])

        let local = NSTemporaryDirectory() + "cx-dl-" + UUID().uuidString
        #expect(try sftp.download("alice->bob/\(name)", size: Int64(size), from: 0, to: try FileDescriptor.create(local)) { _ in true } == Int64(size))
        #expect(try FileSystem.readFile(local) == bytes)
        try sftp.delete("alice->bob/\(name)")
        try sftp.delete("alice->bob/\(name)")
        #expect(try sftp.list("alice->bob").isEmpty)
    }

    /// A little over 100 MiB: in one stream; split over two helper connections (three parts: the
    /// middle one has both ends inside the file); and with a helper that cannot connect, whose part
    /// then goes up over the first connection, after its own.
    @Test(arguments: [0, 2, -1])
    func hundredMebibytesRoundTripBySHA256(helpers: Int) throws {
        let settings = try remote(server, extra: keyLogin(server))
        let sftp = try SFTPTransport(remote: settings)
        try sftp.makeDirectories("")
        let size = 100 << 20 + 12345
        let source = NSTemporaryDirectory() + "cx-100m-" + UUID().uuidString
        let random = try FileDescriptor.openForReading("/dev/urandom")
        let output = try FileDescriptor.create(source)
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var left = size
        while left > 0 {
            let count = min(left, chunk.count)
            var filled = 0
            while filled < count {
                filled += try chunk.withUnsafeMutableBytes { try random.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[filled..<count])) }
            }
            try output.write(Array(chunk[0..<count]))
            left -= count
        }
        let parts = helpers < 0
            ? [HelperConnection { throw TransportError(.transient, "cannot connect") }]
            : (0..<helpers).map { _ in HelperConnection { try SFTPTransport(remote: settings) } }
        var reported: Int64 = 0
        #expect(try sftp.upload(from: try FileDescriptor.openForReading(source), to: "big.bin", attributes: .init(modificationNanoseconds: 0, mode: nil),
                                helpers: parts) { reported = $0; return true } == size)
        if helpers > 0 {
            #expect(reported > Int64(size) / 3, "progress counts the helpers' bytes too")
        } else {
            #expect(reported == Int64(size), "progress counts a part left over by a helper")
        }
        #expect(parts.allSatisfy { ($0.transport != nil) == (helpers > 0) })
        let copy = source + ".back"
        _ = try sftp.download("big.bin", size: Int64(size), from: 0, to: try FileDescriptor.create(copy)) { _ in true }
        #expect(try sha256(copy) == sha256(source))
        try sftp.delete("big.bin")
    }

    @Test func downloadResumesFromAnOffset() throws {
        let sftp = try SFTPTransport(remote: try remote(server, extra: keyLogin(server)))
        try sftp.makeDirectories("")
        let bytes = (0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        _ = try sftp.upload(from: try temporaryFile(bytes), to: "resume.bin", attributes: .init(modificationNanoseconds: nil, mode: nil)) { _ in true }
        let local = NSTemporaryDirectory() + "cx-dl-" + UUID().uuidString
        try FileSystem.writeFileAtomically(local, contents: Array(bytes[0..<400_000]))
        let partial = try FileDescriptor.open(local, flags: O_WRONLY | O_APPEND)
        #expect(try sftp.download("resume.bin", size: 1_000_000, from: 400_000, to: partial) { _ in true } == 600_000)
        #expect(try FileSystem.readFile(local) == bytes)
    }

    @Test func renameWithoutReplaceRefusesAndReplaceReplaces() throws {
        let sftp = try SFTPTransport(remote: try remote(server, extra: keyLogin(server)))
        try sftp.makeDirectories("")
        for (name, text) in [(".new.part", "new"), ("target", "old")] {
            _ = try sftp.upload(from: try temporaryFile(Array(text.utf8)), to: name, attributes: .init(modificationNanoseconds: 0, mode: nil)) { _ in true }
        }
        #expect(transportError { try sftp.rename(".new.part", to: "target", replacing: false) }?.kind == .alreadyExists)
        try sftp.rename(".new.part", to: "target", replacing: true)
        #expect(try sftp.list("").map(\.name) == ["target"], "nothing left aside")
        let local = NSTemporaryDirectory() + "cx-dl-" + UUID().uuidString
        _ = try sftp.download("target", size: 3, from: 0, to: try FileDescriptor.create(local)) { _ in true }
        #expect(try FileSystem.readFile(local) == Array("new".utf8))
    }

    /// With posix-rename@openssh.com the old file is replaced in one step: another connection
    /// watching the name never finds it missing (the move-aside fallback leaves a gap each time).
    @Test func replacingRenameNeverLeavesTheNameMissing() throws {
        let folder = "t-" + UUID().uuidString.prefix(8)
        let settings = try remote(server, folder: folder, extra: keyLogin(server))
        let sftp = try SFTPTransport(remote: settings)
        try sftp.makeDirectories("")
        _ = try sftp.upload(from: try temporaryFile(Array("0".utf8)), to: "target", attributes: .init(modificationNanoseconds: 0, mode: nil)) { _ in true }
        let watching = Mutex(true)
        let missing = Mutex(0), looks = Mutex(0)
        let connected = DispatchSemaphore(value: 0)
        let watcher = Thread {
            let observer = try? SFTPTransport(remote: settings)
            connected.signal()
            guard let observer else { return }
            while watching.withLock({ $0 }) {
                let found = (try? observer.entry(at: "target")) ?? nil
                looks.withLock { $0 += 1 }
                if found == nil { missing.withLock { $0 += 1 } }
            }
        }
        watcher.start()
        connected.wait()  // under load its login can take longer than the renames
        var round = 0
        while round < 100 || looks.withLock({ $0 }) <= 100 && round < 5000 {
            round += 1
            _ = try sftp.upload(from: try temporaryFile(Array("\(round)".utf8)), to: ".new.part",
                                attributes: .init(modificationNanoseconds: 0, mode: nil)) { _ in true }
            try sftp.rename(".new.part", to: "target", replacing: true)
        }
        watching.withLock { $0 = false }
        while !watcher.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        #expect(looks.withLock { $0 } > 100, "the watcher looked often enough to see a gap")
        #expect(missing.withLock { $0 } == 0)
        #expect(try sftp.list("").map(\.name) == ["target"])
        let local = NSTemporaryDirectory() + "cx-dl-" + UUID().uuidString
        let last = Array("\(round)".utf8)
        _ = try sftp.download("target", size: Int64(last.count), from: 0, to: try FileDescriptor.create(local)) { _ in
            true
        }
        #expect(try FileSystem.readFile(local) == last)
    }

    @Test func listingReportsLinksAndFoldersAsSuch() throws {
        let folder = "t-" + UUID().uuidString.prefix(8)
        let sftp = try SFTPTransport(remote: try remote(server, folder: folder, extra: keyLogin(server)))
        try sftp.makeDirectories("sub")
        try FileManager.default.createSymbolicLink(atPath: "\(server.home)/\(folder)/link", withDestinationPath: "/etc/passwd")
        let kinds = try sftp.list("").map { "\($0.name):\($0.kind)" }
        #expect(kinds == ["link:symlink", "sub:directory"])
    }

    @Test func passwordAndProtectedKeyLogIn() throws {
        _ = try SFTPTransport(remote: try remote(server, extra: "password_file: \(server.passwordFile)\nknown_hosts: \(server.knownHosts)"))
        _ = try SFTPTransport(remote: try remote(server, extra: """
            key_file: \(server.protectedKey)
            passphrase_file: \(server.passphraseFile)
            known_hosts: \(server.knownHosts)
            """))
        _ = try SFTPTransport(remote: try remote(server, extra: "password_env: CX_TEST_PASSWORD\nknown_hosts: \(server.knownHosts)"),
                              environment: ["CX_TEST_PASSWORD": "cx-test-password"])
    }

    @Test func wrongCredentialsAreRefusedWithWhatWasTried() throws {
        let wrongKey = transportError { _ = try SFTPTransport(remote: try remote(server, extra: "key_file: \(server.strangerKey)\nknown_hosts: \(server.knownHosts)")) }
        #expect(wrongKey?.kind == .refused)
        #expect(wrongKey?.message.hasPrefix("authentication failed for cxdrop@127.0.0.1:\(server.port) with key \(server.strangerKey)") == true)

        let wrongPassword = transportError { _ = try SFTPTransport(remote: try remote(server, extra: "password_file: \(server.wrongPasswordFile)\nknown_hosts: \(server.knownHosts)")) }
        #expect(wrongPassword?.kind == .refused)
        #expect(wrongPassword?.message.contains("with password from \(server.wrongPasswordFile)") == true)
    }

    @Test func loginsAreTriedInThePolicysOrder() throws {
        // Password first: it logs in, and the stranger's key is never offered.
        _ = try SFTPTransport(remote: try remote(server, extra: """
            password_file: \(server.passwordFile)
            key_file: \(server.strangerKey)
            known_hosts: \(server.knownHosts)
            """))
        let both = transportError { _ = try SFTPTransport(remote: try remote(server, extra: """
            password_file: \(server.wrongPasswordFile)
            key_file: \(server.strangerKey)
            known_hosts: \(server.knownHosts)
            """)) }
        #expect(both?.message.hasPrefix("authentication failed for cxdrop@127.0.0.1:\(server.port) with password from "
            + "\(server.wrongPasswordFile), key \(server.strangerKey)") == true, "\(both?.message ?? "")")
    }

    @Test func unknownHostKeyIsRefusedWithItsFingerprint() throws {
        let empty = NSTemporaryDirectory() + "cx-kh-" + UUID().uuidString
        let error = transportError { _ = try SFTPTransport(remote: try remote(server, extra: "key_file: \(server.clientKey)\nknown_hosts: \(empty)")) }
        #expect(error?.kind == .refused)
        let fingerprint = try keygenFingerprint(server.hostPublicKey)
        #expect(error?.message.contains("256 \(fingerprint) [127.0.0.1]:\(server.port) (ED25519)") == true, "\(error?.message ?? "")")
        let line = try String(contentsOfFile: server.knownHosts, encoding: .utf8).trimmingCharacters(in: .newlines)
        #expect(error?.message.contains(line) == true, "the line to add is shown")
        #expect(!FileSystem.exists(empty), "strict mode writes nothing")
    }

    @Test func changedHostKeyIsRefused() throws {
        let other = NSTemporaryDirectory() + "cx-kh-" + UUID().uuidString
        try FileSystem.writeFileAtomically(other, contents: Array(
            "[127.0.0.1]:\(server.port) ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n".utf8))
        for policy in ["strict", "accept-new"] {
            let error = transportError { _ = try SFTPTransport(remote: try remote(server, extra: "key_file: \(server.clientKey)\nknown_hosts: \(other)\nhost_key: \(policy)")) }
            #expect(error?.kind == .refused)
            #expect(error?.message.contains("has CHANGED") == true)
            #expect(error?.message.contains(try keygenFingerprint(server.hostPublicKey)) == true)
        }
    }

    @Test func acceptNewPinsTheKeyOnFirstUse() throws {
        let file = NSTemporaryDirectory() + "cx-kh-" + UUID().uuidString + "/known_hosts"
        _ = try SFTPTransport(remote: try remote(server, extra: "key_file: \(server.clientKey)\nknown_hosts: \(file)\nhost_key: accept-new"))
        let pinned = try String(contentsOfFile: file, encoding: .utf8)
        #expect(pinned == (try String(contentsOfFile: server.knownHosts, encoding: .utf8)))
        #expect(try FileSystem.status(file)?.mode == 0o600)
        // Now pinned: a strict connection with the same file works.
        _ = try SFTPTransport(remote: try remote(server, extra: "key_file: \(server.clientKey)\nknown_hosts: \(file)"))
    }

    @Test func connectionsMeetingAnUnknownHostAtOnceAddItsKeyOnce() throws {
        let file = NSTemporaryDirectory() + "cx-kh-" + UUID().uuidString + "/known_hosts"
        let remote = try remote(server, extra: "key_file: \(server.clientKey)\nknown_hosts: \(file)\nhost_key: accept-new")
        let failures = Mutex<[String]>([])
        let finished = DispatchGroup()
        for _ in 0..<8 {
            finished.enter()
            Thread {
                do { _ = try SFTPTransport(remote: remote) } catch { failures.withLock { $0.append("\(error)") } }
                finished.leave()
            }.start()
        }
        finished.wait()
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(try String(contentsOfFile: file, encoding: .utf8) == (try String(contentsOfFile: server.knownHosts, encoding: .utf8)),
                "one line, written once")
    }

    @Test func pinnedFingerprintNeedsNoKnownHosts() throws {
        let fingerprint = try keygenFingerprint(server.hostPublicKey)
        _ = try SFTPTransport(remote: try remote(server, extra: "key_file: \(server.clientKey)\nknown_hosts: /nonexistent\nhost_key_fingerprint: \(fingerprint)"))
        let wrong = "SHA256:" + String(repeating: "A", count: 43)
        let error = transportError { _ = try SFTPTransport(remote: try remote(server, extra: "key_file: \(server.clientKey)\nhost_key_fingerprint: \(wrong)")) }
        #expect(error?.kind == .refused)
        #expect(error?.message.contains("does not match the pinned host_key_fingerprint") == true)
    }

    @Test func unreachableServerIsTransient() throws {
        let port = try freePort()
        let remote = try parseRemote(["url: sftp://cxdrop@127.0.0.1:\(port)/", "key_file: \(server.clientKey)", "timeout: 2s"])
        let error = transportError { _ = try SFTPTransport(remote: remote) }
        #expect(error?.kind == .transient)
        #expect(error?.message == "cannot connect to 127.0.0.1:\(port): Connection refused")
    }

    @Test func aFullRemoteDiskIsReportedWithThePath() throws {
        try withFullDisk(below: server.home, owner: server.user) { folder, _ in
            let sftp = try SFTPTransport(remote: try remote(server, folder: folder, extra: keyLogin(server)))
            let error = transportError {
                _ = try sftp.upload(from: try temporaryFile([UInt8](repeating: 7, count: 3 << 20)), to: ".big.part",
                                    attributes: .init(modificationNanoseconds: nil, mode: nil)) { _ in true }
            }
            #expect(error?.kind == .transient, "space may be freed: worth retrying")
            #expect(error?.message.contains("\(folder)/.big.part: the remote disk is full") == true, "\(error?.message ?? "")")
        }
    }

    @Test func permissionDeniedNamesThePath() throws {
        let remote = try parseRemote([
            "url: sftp://cxdrop@127.0.0.1:\(server.port)/etc/connectxpert-test",
            "key_file: \(server.clientKey)",
            "known_hosts: \(server.knownHosts)",
        ])
        let sftp = try SFTPTransport(remote: remote)
        let error = transportError { try sftp.makeDirectories("alice->bob") }
        #expect(error?.kind == .permanent)
        #expect(error?.message == "sftp://cxdrop@127.0.0.1:\(server.port)//etc/connectxpert-test: cannot create the folder /etc/connectxpert-test: permission denied")
    }
}

/// What `ssh-keygen -lf` prints as the fingerprint of a public key file.
func keygenFingerprint(_ publicKey: String) throws -> String {
    String(try runChecked("/usr/bin/ssh-keygen", ["-lf", publicKey]).split(separator: " ")[1])
}
