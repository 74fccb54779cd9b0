import ConnectXpertSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One agent per spool: an exclusive `flock` on `.state/agent.lock`, held while the descriptor lives.
public final class AgentLock {
    private let descriptor: FileDescriptor

    /// Takes the lock, or throws `AgentLock.Busy` naming the holder's process ID.
    public init(path: String) throws {
        descriptor = try FileDescriptor.open(path, flags: O_RDWR | O_CREAT, mode: 0o644)
        do {
            try syscall("flock", path: path) { flock(descriptor.rawValue, LOCK_EX | LOCK_NB) }
        } catch let error as SystemError where error.errno == EWOULDBLOCK {
            let holder = String(decoding: (try? descriptor.readAll()) ?? [], as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            throw Busy(path: path, holder: holder)
        }
        try syscall("ftruncate", path: path) { ftruncate(descriptor.rawValue, 0) }
        try descriptor.write(Array("\(getpid())\n".utf8))
    }

    /// The process ID of the agent holding the lock, or `nil` when no agent runs on the spool.
    public static func holder(path: String) -> String? {
        guard let descriptor = try? FileDescriptor.open(path, flags: O_RDONLY) else { return nil }
        if flock(descriptor.rawValue, LOCK_SH | LOCK_NB) == 0 { return nil }
        let pid = String(decoding: (try? descriptor.readAll()) ?? [], as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return pid.isEmpty ? "unknown" : pid
    }

    public struct Busy: Error, CustomStringConvertible {
        public let path: String
        public let holder: String
        public var description: String {
            "another connectxpert agent (pid \(holder.isEmpty ? "unknown" : holder)) is using this spool (lock \(path))"
        }
    }
}
