import CSSH2
import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation

/// The server's host key, described the way OpenSSH describes keys.
struct HostKey: Equatable {
    /// The key blob as sent by the server (what known_hosts stores, base64-encoded).
    let blob: [UInt8]
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, …
    let algorithm: String
    /// `SHA256:` and the unpadded base64 digest of the blob.
    let fingerprint: String

    init?(session: SSHSession) {
        var length = 0
        var type: Int32 = 0
        guard let key = libssh2_session_hostkey(session.raw, &length, &type), length > 0,
              let hash = libssh2_hostkey_hash(session.raw, LIBSSH2_HOSTKEY_HASH_SHA256) else { return nil }
        blob = Array(UnsafeRawBufferPointer(start: key, count: length))
        fingerprint = "SHA256:" + Data(bytes: hash, count: 32).base64EncodedString().replacingOccurrences(of: "=", with: "")
        algorithm = HostKey.readString(blob, at: 0).map { String(decoding: $0.value, as: UTF8.self) } ?? "unknown"
    }

    /// `ED25519`, `ECDSA`, `RSA`, `DSA`: the name ssh-keygen puts in brackets.
    var typeName: String {
        switch algorithm {
        case "ssh-ed25519": return "ED25519"
        case "ssh-rsa": return "RSA"
        case "ssh-dss": return "DSA"
        default: return algorithm.hasPrefix("ecdsa-") ? "ECDSA" : algorithm.uppercased()
        }
    }

    /// The key size in bits, as ssh-keygen reports it.
    var bits: Int {
        switch algorithm {
        case "ssh-ed25519": return 256
        case "ecdsa-sha2-nistp256": return 256
        case "ecdsa-sha2-nistp384": return 384
        case "ecdsa-sha2-nistp521": return 521
        case "ssh-rsa":
            // string "ssh-rsa", mpint e, mpint n: the size of n.
            guard let name = HostKey.readString(blob, at: 0), let exponent = HostKey.readString(blob, at: name.next),
                  let modulus = HostKey.readString(blob, at: exponent.next) else { return 0 }
            let digits = modulus.value.drop(while: { $0 == 0 })
            guard let top = digits.first else { return 0 }
            return (digits.count - 1) * 8 + (8 - top.leadingZeroBitCount)
        default: return 1024
        }
    }

    /// `256 SHA256:… [host]:port (ED25519)`: what `ssh-keygen -lf` prints for the known_hosts line.
    func description(for hostName: String) -> String { "\(bits) \(fingerprint) \(hostName) (\(typeName))" }

    /// The known_hosts line that trusts this key.
    func knownHostsLine(for hostName: String) -> String {
        "\(hostName) \(algorithm) \(Data(blob).base64EncodedString())"
    }

    var libssh2KeyType: Int32 {
        switch algorithm {
        case "ssh-ed25519": return LIBSSH2_KNOWNHOST_KEY_ED25519
        case "ssh-rsa": return LIBSSH2_KNOWNHOST_KEY_SSHRSA
        case "ssh-dss": return LIBSSH2_KNOWNHOST_KEY_SSHDSS
        case "ecdsa-sha2-nistp256": return LIBSSH2_KNOWNHOST_KEY_ECDSA_256
        case "ecdsa-sha2-nistp384": return LIBSSH2_KNOWNHOST_KEY_ECDSA_384
        case "ecdsa-sha2-nistp521": return LIBSSH2_KNOWNHOST_KEY_ECDSA_521
        default: return LIBSSH2_KNOWNHOST_KEY_UNKNOWN
        }
    }

    /// An SSH wire-format string (uint32 length, bytes) at `offset`.
    private static func readString(_ bytes: [UInt8], at offset: Int) -> (value: ArraySlice<UInt8>, next: Int)? {
        guard offset + 4 <= bytes.count else { return nil }
        let length = bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
        guard offset + 4 + length <= bytes.count else { return nil }
        return (bytes[(offset + 4)..<(offset + 4 + length)], offset + 4 + length)
    }
}

/// Checks a server's host key against the policy: a pinned fingerprint, or known_hosts (hashed
/// entries and `[host]:port` understood), with trust on first use only under `accept-new`.
enum HostKeyVerifier {
    static func verify(_ session: SSHSession, settings: SSHSettings, endpoint: String) throws {
        guard let key = HostKey(session: session) else {
            throw TransportError(.transient, "\(endpoint): the server sent no host key")
        }
        let name = settings.knownHostsName
        if let pinned = settings.fingerprint {
            guard key.fingerprint == pinned else {
                throw TransportError(.refused, """
                    host key for \(name) does not match the pinned host_key_fingerprint \(pinned); the server offered
                    \(key.description(for: name))
                    Refused: this may be an attack. If the key really changed, update host_key_fingerprint.
                    """)
            }
            return
        }
        var found = try check(key, settings: settings, session: session)
        if found != LIBSSH2_KNOWNHOST_CHECK_MATCH && found != LIBSSH2_KNOWNHOST_CHECK_MISMATCH
            && settings.hostKey == .acceptNew {
            found = try pin(key, settings: settings, session: session)
        }
        switch found {
        case LIBSSH2_KNOWNHOST_CHECK_MATCH:
            return
        case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
            throw TransportError(.refused, """
                host key for \(name) has CHANGED: known_hosts \(settings.knownHosts) holds another key. The server offered
                \(key.description(for: name))
                Refused: this may be an attack. If the key really changed, remove the old entry \
                (ssh-keygen -R '\(name)' -f \(settings.knownHosts)) and add:
                \(key.knownHostsLine(for: name))
                """)
        default:
            throw TransportError(.refused, """
                host key for \(name) is not known (known_hosts \(settings.knownHosts)). The server offered
                \(key.description(for: name))
                Refused. If this is the right key, add this line to \(settings.knownHosts):
                \(key.knownHostsLine(for: name))
                or set host_key: accept-new to trust it on first use.
                """)
        }
    }

    /// Reads known_hosts line by line, so one line libssh2 cannot parse does not hide the others.
    private static func check(_ key: HostKey, settings: SSHSettings, session: SSHSession) throws -> Int32 {
        guard let hosts = libssh2_knownhost_init(session.raw) else { return LIBSSH2_KNOWNHOST_CHECK_FAILURE }
        defer { libssh2_knownhost_free(hosts) }
        let text = (try? FileSystem.readFile(settings.knownHosts)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.isEmpty {
            _ = libssh2_knownhost_readline(hosts, String(line), line.utf8.count, LIBSSH2_KNOWNHOST_FILE_OPENSSH)
        }
        var found: UnsafeMutablePointer<libssh2_knownhost>?
        return key.blob.withUnsafeBytes { raw in
            libssh2_knownhost_checkp(hosts, settings.host, Int32(settings.port),
                                     raw.baseAddress!.assumingMemoryBound(to: CChar.self), key.blob.count,
                                     LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | key.libssh2KeyType, &found)
        }
    }

    /// Trusts an unknown host's key on first use (`accept-new`): appends its line to known_hosts,
    /// never rewriting the file, under an exclusive lock on it, and only if no other connection
    /// pinned a key for the host meanwhile (its key then decides). Returns the check's result.
    private static func pin(_ key: HostKey, settings: SSHSettings, session: SSHSession) throws -> Int32 {
        let path = settings.knownHosts
        try FileSystem.createDirectories(parentDirectory(of: path), mode: 0o700)
        let file = try FileDescriptor.open(path, flags: O_RDWR | O_APPEND | O_CREAT, mode: 0o600)
        try syscall("flock", path: path) { flock(file.rawValue, LOCK_EX) }  // released when the file is closed
        let found = try check(key, settings: settings, session: session)
        guard found != LIBSSH2_KNOWNHOST_CHECK_MATCH && found != LIBSSH2_KNOWNHOST_CHECK_MISMATCH else { return found }
        let existing = try file.readAll()
        let separator = existing.last.map { $0 == UInt8(ascii: "\n") ? "" : "\n" } ?? ""
        try file.write(Array((separator + key.knownHostsLine(for: settings.knownHostsName) + "\n").utf8))
        try file.sync()
        return LIBSSH2_KNOWNHOST_CHECK_MATCH
    }
}
