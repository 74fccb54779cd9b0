import ConnectXpertSystem

/// A file holding a secret (a password, a passphrase): it must be a regular file only its owner
/// can read.
public enum SecretFile {
    /// Why `path` cannot hold a secret, with what to do, or `nil` when it can.
    public static func problem(at path: String) -> String? {
        let status: FileStatus?
        do { status = try FileSystem.status(path) } catch { return "cannot read \(path): \(error)" }
        guard let status else { return "\(path) does not exist; create it with the secret and 'chmod 600 \(path)'" }
        guard status.kind == .regular else { return "\(path) is not a regular file" }
        if status.mode & 0o077 != 0 {
            return "\(path) can be read by others (mode \(String(status.mode, radix: 8))); run 'chmod 600 \(path)'"
        }
        return nil
    }

    /// The file's contents without the final line break.
    public static func read(_ path: String) throws -> String {
        var text = String(decoding: try FileSystem.readFile(path), as: UTF8.self)
        while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
        return text
    }
}
