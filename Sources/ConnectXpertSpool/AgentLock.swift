import ConnectXpertSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One agent per spool: an exclusive `flock` on the folder of `.state/agent.lock` (a folder that
/// holds the journal cannot be removed from under a running agent the way a lock file can), held
/// while the descriptor lives. The lock file says which process holds it.
public final class AgentLock {
    private let folder: FileDescriptor

    /// Takes the lock, or throws `AgentLock.Busy` naming the holder's process ID.
    public init(path: String) throws {
        folder = try FileDescriptor.openDirectory(parentDirectory(of: path))
        do {
            try syscall("flock", path: folder.path) { flock(folder.rawValue, LOCK_EX | LOCK_NB) }
        } catch let error as SystemError where error.errno == EWOULDBLOCK {
            throw Busy(path: path, holder: Self.pid(in: path))
        }
        try FileSystem.writeFileAtomically(path, contents: Array("\(getpid())\n".utf8))
    }

    /// The process ID of the agent holding the lock, or `nil` when no agent runs on the spool.
    public static func holder(path: String) -> String? {
        guard let folder = try? FileDescriptor.openDirectory(parentDirectory(of: path)) else { return nil }
        if flock(folder.rawValue, LOCK_SH | LOCK_NB) == 0 { return nil }
        let pid = Self.pid(in: path)
        return pid.isEmpty ? "unknown" : pid
    }

    private static func pid(in path: String) -> String {
        String(decoding: (try? FileSystem.readFile(path)) ?? [], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public struct Busy: Error, CustomStringConvertible {
        public let path: String
        public let holder: String
        public var description: String {
            "another connectxpert agent (pid \(holder.isEmpty ? "unknown" : holder)) is using this spool (lock \(path))"
        }
    }
}
