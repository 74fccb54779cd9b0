import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTestSupport
import ConnectXpertTransport
import Foundation
import Testing

@testable import ConnectXpertFTP
import ConnectXpertCurl

/// A remote as a policy would define it, for a folder of its own below the test login's home.
func remote(_ server: FTPTestServer, folder: String = "f-" + UUID().uuidString.prefix(8), passwordFile: String? = nil,
            extra: String = "") throws -> Remote {
    let lines = ["url: \(server.url(folder))", "password_file: \(passwordFile ?? server.passwordFile)"]
        + (server.tls ? ["ca_file: \(server.certificate)"] : ["tls: off"])
        + extra.split(separator: "\n").map(String.init)
    return try parseRemote(lines)
}

@Suite(.enabled(if: canRunServerTests, "needs root to run vsftpd"), .serialized)
struct FTPTransportTests {
    let server = FTPTestServer.shared

    @Test(arguments: [("empty", 0), ("one-byte", 1), ("name with spaces", 3_000_001), ("ünïcödé ñame", 10)])
    func roundTripOverTLSIsByteIdentical(name: String, size: Int) throws {
        let folder = "f-" + UUID().uuidString.prefix(8)
        let ftp = try FTPTransport(remote: try remote(server, folder: folder))
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try ftp.makeDirectories("alice->bob")
        let written = try ftp.upload(from: try temporaryFile(bytes), to: "alice->bob/.\(name).part",
                                     attributes: .init(modificationNanoseconds: 1_700_000_000_000_000_000, mode: 0o640)) { _ in true }
        #expect(written == Int64(size))
        try ftp.rename("alice->bob/.\(name).part", to: "alice->bob/\(name)", replacing: false)
        let onServer = try #require(try FileSystem.status("\(server.home)/\(folder)/alice->bob/\(name)"))
        #expect(onServer.modificationNanoseconds == 1_700_000_000_000_000_000, "mtime kept (MDTM)")
        #expect(onServer.mode == 0o640, "SITE CHMOD applied")
        let listed = try ftp.list("alice->bob")
        #expect(listed.map(\.name) == [name])
        #expect(listed.first?.size == Int64(size))

        let local = NSTemporaryDirectory() + "cx-dl-" + UUID().uuidString
        #expect(try ftp.download("alice->bob/\(name)", size: Int64(size), from: 0, to: try FileDescriptor.create(local)) { _ in true }
                == Int64(size))
        #expect(try FileSystem.readFile(local) == bytes)
        try ftp.delete("alice->bob/\(name)")
        try ftp.delete("alice->bob/\(name)")
        #expect(try ftp.list("alice->bob").isEmpty)
        #expect(try ftp.list("absent").isEmpty)
    }

    @Test func hundredMiBRoundTrip() throws {
        try expectRoundTrip(randomBytes(100 << 20), through: try FTPTransport(remote: try remote(server)))
    }

    @Test func activeModeWorksWithoutTLSAndIsRefusedWithTLSWhereLibcurlBreaksIt() throws {
        let plain = try FTPTestServer(tls: false)
        try expectRoundTrip(randomBytes(1 << 20), through: try FTPTransport(remote: try remote(plain, extra: "active: true")))
        let tls = transportError { _ = try FTPTransport(remote: try remote(server, extra: "active: true")) }
        if (0x07_57_00..<0x07_59_00).contains(CurlEasy.libraryVersion) {
            #expect(tls?.kind == .refused)
            #expect(tls?.message.contains("active mode with TLS does not work with libcurl 7.8") == true, "\(tls?.message ?? "")")
        } else {
            #expect(tls == nil, "\(tls?.message ?? "")")
        }
    }

    private func expectRoundTrip(_ bytes: [UInt8], through ftp: FTPTransport) throws {
        try ftp.makeDirectories("")
        #expect(try ftp.upload(from: try temporaryFile(bytes), to: "big.bin", attributes: .init(modificationNanoseconds: nil, mode: nil)) { _ in true }
                == Int64(bytes.count))
        let local = NSTemporaryDirectory() + "cx-dl-" + UUID().uuidString
        defer { _ = try? FileSystem.removeIfPresent(local) }
        #expect(try ftp.download("big.bin", size: Int64(bytes.count), from: 0, to: try FileDescriptor.create(local)) { _ in true }
                == Int64(bytes.count))
        #expect(try FileSystem.readFile(local) == bytes)
        try ftp.delete("big.bin")
    }

    @Test func fullRemoteDiskIsATransientErrorNamingThePath() throws {
        try withFullDisk(below: server.home, owner: server.user) { folder, mountPoint in
            let ftp = try FTPTransport(remote: try remote(server, folder: folder))
            let error = transportError {
                _ = try ftp.upload(from: try temporaryFile([UInt8](repeating: 7, count: 3 << 20)), to: ".big.part",
                                   attributes: .init(modificationNanoseconds: nil, mode: nil)) { _ in true }
            }
            #expect(error?.kind == .transient, "space may be freed: worth retrying")
            #expect(error?.message.contains("cannot upload \(mountPoint)/.big.part") == true, "\(error?.message ?? "")")
        }
    }

    @Test func downloadResumesFromAnOffset() throws {
        let ftp = try FTPTransport(remote: try remote(server))
        try ftp.makeDirectories("")
        let bytes = (0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        _ = try ftp.upload(from: try temporaryFile(bytes), to: "resume.bin", attributes: .init(modificationNanoseconds: nil, mode: nil)) { _ in true }
        let local = NSTemporaryDirectory() + "cx-dl-" + UUID().uuidString
        try FileSystem.writeFileAtomically(local, contents: Array(bytes[0..<400_000]))
        #expect(try ftp.download("resume.bin", size: 1_000_000, from: 400_000, to: try FileDescriptor.open(local, flags: O_WRONLY | O_APPEND)) { _ in true }
                == 600_000)
        #expect(try FileSystem.readFile(local) == bytes)
    }

    @Test func renameWithoutReplaceRefuses() throws {
        let ftp = try FTPTransport(remote: try remote(server))
        try ftp.makeDirectories("")
        for (name, text) in [(".new.part", "new"), ("target", "old")] {
            _ = try ftp.upload(from: try temporaryFile(Array(text.utf8)), to: name, attributes: .init(modificationNanoseconds: nil, mode: nil)) { _ in true }
        }
        #expect(transportError { try ftp.rename(".new.part", to: "target", replacing: false) }?.kind == .alreadyExists)
        try ftp.rename(".new.part", to: "target", replacing: true)
        #expect(try ftp.list("").map(\.name) == ["target"])
    }

    /// An upload told the name it is to be renamed to checks that name on its own request; the
    /// rename then relies on the check only if nothing else was asked in between.
    @Test func theUploadChecksTheNameItIsToBeRenamedTo() throws {
        let folder = "f-" + UUID().uuidString.prefix(8)
        let ftp = try FTPTransport(remote: try remote(server, folder: folder))
        try ftp.makeDirectories("")
        func upload(_ name: String, renamedTo: String) throws {
            _ = try ftp.upload(from: try temporaryFile([1]), to: name,
                               attributes: .init(modificationNanoseconds: nil, mode: nil, renamedTo: renamedTo)) { _ in true }
        }
        try upload(".a.part", renamedTo: "a")
        try ftp.rename(".a.part", to: "a", replacing: false)
        try upload(".b.part", renamedTo: "a")
        #expect(transportError { try ftp.rename(".b.part", to: "a", replacing: false) }?.kind == .alreadyExists)

        // Taken after the upload's check, with a request in between: the rename checks again.
        try upload(".c.part", renamedTo: "c")
        try FileSystem.writeFileAtomically("\(server.home)/\(folder)/c", contents: [2])
        #expect(try ftp.list("").count == 4)
        #expect(transportError { try ftp.rename(".c.part", to: "c", replacing: false) }?.kind == .alreadyExists)
        #expect(try FileSystem.readFile("\(server.home)/\(folder)/c") == [2])
    }

    /// What is asked about a file is asked from its folder: a missing folder means no file, and a
    /// file's time and size come back.
    @Test func entriesAndDeletesInMissingAndExistingFolders() throws {
        let ftp = try FTPTransport(remote: try remote(server))
        #expect(try ftp.entry(at: "no-such-folder/file") == nil)
        try ftp.delete("no-such-folder/file")
        try ftp.makeDirectories("sub")
        #expect(try ftp.entry(at: "sub/file") == nil)
        _ = try ftp.upload(from: try temporaryFile(Array("12345".utf8)), to: "sub/file",
                           attributes: .init(modificationNanoseconds: 1_500_000_000_000_000_000, mode: nil)) { _ in true }
        let entry = try ftp.entry(at: "sub/file")
        #expect(entry?.size == 5)
        #expect(entry?.modificationNanoseconds == 1_500_000_000_000_000_000)
        try ftp.delete("sub/file")
        #expect(try ftp.entry(at: "sub/file") == nil)
    }

    @Test func listingTellsLinksAndFolders() throws {
        let folder = "f-" + UUID().uuidString.prefix(8)
        let ftp = try FTPTransport(remote: try remote(server, folder: folder))
        try ftp.makeDirectories("sub")
        try FileManager.default.createSymbolicLink(atPath: "\(server.home)/\(folder)/link", withDestinationPath: "/etc/passwd")
        #expect(try ftp.list("").map { "\($0.name):\($0.kind)" } == ["link:symlink", "sub:directory"])
    }

    @Test func wrongPasswordIsRefused() throws {
        let error = transportError { _ = try FTPTransport(remote: try remote(server, passwordFile: server.wrongPasswordFile)) }
        #expect(error?.kind == .refused)
        #expect(error?.message.hasPrefix("authentication failed for cxdrop@127.0.0.1:\(server.port)") == true, "\(error?.message ?? "")")
    }

    @Test func certificateFromAnotherCAIsRefused() throws {
        let remote = try parseRemote([
            "url: \(server.url("x"))",
            "password_file: \(server.passwordFile)",
            "ca_file: \(server.otherCA)",
        ])
        let error = transportError { _ = try FTPTransport(remote: remote) }
        #expect(error?.kind == .refused)
        #expect(error?.message.contains("the server's TLS certificate cannot be trusted") == true, "\(error?.message ?? "")")
    }

    /// Each upload has a TLS data connection of its own; the CA file must be read once per
    /// connection, not for each of them (OpenSSL 3 takes about 40 ms for the system's CA file).
    @Test func theCAFileIsReadOncePerConnectionNotPerFile() throws {
        let caFile = NSTemporaryDirectory() + "cx-ca-" + UUID().uuidString
        try FileSystem.writeFileAtomically(caFile, contents: try FileSystem.readFile(server.certificate))
        defer { _ = try? FileSystem.removeIfPresent(caFile) }
        // Opens and closes: inotify merges an event into an identical one still unread.
        let watch = inotify_init1(Int32(IN_NONBLOCK))
        defer { close(watch) }
        #expect(inotify_add_watch(watch, caFile, UInt32(IN_OPEN | IN_CLOSE_NOWRITE)) >= 0)

        let ftp = try FTPTransport(remote: try parseRemote([
            "url: \(server.url("ca-" + UUID().uuidString.prefix(8)))", "password_file: \(server.passwordFile)", "ca_file: \(caFile)",
        ]))
        try ftp.makeDirectories("")
        for index in 0..<10 {
            _ = try ftp.upload(from: try temporaryFile([UInt8(index)]), to: "f\(index)", attributes: .init(modificationNanoseconds: nil, mode: nil)) { _ in true }
        }
        var events = [UInt8](repeating: 0, count: 64 * 1024)
        let bytes = max(0, read(watch, &events, events.count))
        // The watch is on the file itself: its events carry no name, so each is one inotify_event.
        let opens = stride(from: 0, to: bytes, by: MemoryLayout<inotify_event>.size).filter { offset in
            events.withUnsafeBytes { $0.load(fromByteOffset: offset, as: inotify_event.self).mask & UInt32(IN_OPEN) != 0 }
        }.count
        #expect(opens == 1, "the CA file was opened \(opens) times for one connection and 10 uploads")
    }

    @Test func tlsRequiredButServerWithoutTLSIsRefused() throws {
        let plain = try FTPTestServer(tls: false)
        let remote = try parseRemote([
            "url: \(plain.url("x"))",
            "password_file: \(plain.passwordFile)",
        ])
        let error = transportError { _ = try FTPTransport(remote: remote) }
        #expect(error?.kind == .refused)
        #expect(error?.message.contains("the server does not offer TLS (AUTH TLS refused)") == true, "\(error?.message ?? "")")
        // Plain FTP works when the policy says so.
        let allowed = try FTPTransport(remote: try ConnectXpertFTPTests.remote(plain))
        try allowed.makeDirectories("")
        #expect(try allowed.list("").isEmpty)
    }

    @Test func permissionDeniedNamesThePath() throws {
        let remote = try parseRemote([
            "url: ftp://cxdrop@127.0.0.1:\(server.port)/etc/connectxpert-test",
            "password_file: \(server.passwordFile)",
            "ca_file: \(server.certificate)",
        ])
        let ftp = try FTPTransport(remote: remote)
        let error = transportError {
            _ = try ftp.upload(from: try temporaryFile([1]), to: "x.part", attributes: .init(modificationNanoseconds: nil, mode: nil)) { _ in true }
        }
        #expect(error?.kind == .permanent)
        #expect(error?.message.contains("cannot upload /etc/connectxpert-test/x.part") == true, "\(error?.message ?? "")")
    }
}
