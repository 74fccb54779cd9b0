import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation

/// Runs `body` with a folder below a test server's `home` (its name, and its path) on a 1 MiB
/// tmpfs owned by the login `owner`, so that an upload there finds the disk full; unmounts it and
/// removes the mount point after.
public func withFullDisk<T>(below home: String, owner: String, _ body: (_ folder: String, _ mountPoint: String) throws -> T) throws -> T {
    let folder = "full-" + UUID().uuidString.prefix(8)
    let mountPoint = "\(home)/\(folder)"
    try FileSystem.createDirectories(mountPoint)
    try runChecked("/bin/mount", ["-t", "tmpfs", "-o", "size=1m,uid=\(owner),gid=\(owner)", "tmpfs", mountPoint])
    defer {
        _ = try? runProgram("/bin/umount", [mountPoint])
        try? FileManager.default.removeItem(atPath: mountPoint)
    }
    return try body(folder, mountPoint)
}

/// A new file holding `bytes`, open for reading: an upload's source.
public func temporaryFile(_ bytes: [UInt8]) throws -> FileDescriptor {
    let path = NSTemporaryDirectory() + "cx-src-" + UUID().uuidString
    try FileSystem.writeFileAtomically(path, contents: bytes)
    return try FileDescriptor.openForReading(path)
}

/// The `TransportError` that `body` throws (an unexpected error becomes a transient one saying so),
/// or `nil` when it succeeds.
public func transportError(_ body: () throws -> Void) -> TransportError? {
    do {
        try body()
        return nil
    } catch let error as TransportError {
        return error
    } catch {
        return TransportError(.transient, "unexpected \(error)")
    }
}

/// The remote a policy defines with these `lines` (`url: …`, `key_file: …`), parsed by the real
/// policy loader.
public func parseRemote(_ lines: [String]) throws -> Remote {
    let text = "identity:\n  id: alice\nremotes:\n  server:\n" + lines.map { "    " + $0 + "\n" }.joined()
    guard let remote = try PolicyLoader.parse(text, file: "/tmp/policies.yaml").remotes["server"] else {
        throw TestServerError(message: "no remote in:\n\(text)")
    }
    return remote
}

public func randomBytes(_ count: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    let source = try! FileDescriptor.openForReading("/dev/urandom")
    var filled = 0
    while filled < count {
        filled += bytes.withUnsafeMutableBytes { raw in
            try! source.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[filled...]))
        }
    }
    return bytes
}

extension String {
    /// This text with `original` replaced by `replacement`; throws when the text does not hold
    /// `original`, so that a test whose edit of a policy no longer matches fails instead of running on
    /// the unedited policy.
    public func replacing(existing original: String, with replacement: String) throws -> String {
        guard contains(original) else { throw TestServerError(message: "no \(original.debugDescription) in:\n\(self)") }
        return replacingOccurrences(of: original, with: replacement)
    }
}
