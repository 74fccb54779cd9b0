import ConnectXpertSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A live chat view (`connectxpert chat`) asking the running agent to poll its peer's folder every
/// second while it is open: `jobs/chat-<pid>.yaml`, removed when the view ends. One whose process
/// has ended (killed) is no longer a request, and is removed by whoever reads it.
public struct ChatRequest: Codable, Equatable, Sendable {
    public var peer: String
    public var pid: Int32

    public init(peer: String, pid: Int32) {
        self.peer = peer
        self.pid = pid
    }
}

extension Spool {
    static let chatRequestPrefix = "chat-"

    /// Whether a name in `jobs/` is a chat view's request (not a job to start).
    public static func isChatRequest(_ name: String) -> Bool { name.hasPrefix(chatRequestPrefix) }

    /// Asks for `peer`'s folder to be polled often, for this process; returns the request's path.
    public func requestChatPolling(with peer: String) throws -> String {
        let path = joinPath(jobs, "\(Self.chatRequestPrefix)\(getpid()).yaml")
        try FileSystem.createDirectories(jobs)
        // JSON is YAML too.
        let request = try JSONEncoder().encode(ChatRequest(peer: peer, pid: getpid()))
        try FileSystem.writeFileAtomically(path, contents: Array(request))
        return path
    }

    /// The peers of the chat views open now.
    public func chatPeers() -> Set<String> {
        let names = ((try? FileSystem.contents(of: jobs)) ?? []).filter {
            Self.isChatRequest($0) && $0.hasSuffix(".yaml")
        }
        var peers = Set<String>()
        for name in names {
            let path = joinPath(jobs, name)
            guard let bytes = try? FileSystem.readFile(path),
                  let request = try? JSONDecoder().decode(ChatRequest.self, from: Data(bytes)) else { continue }
            guard kill(request.pid, 0) == 0 || errno == EPERM else {
                _ = try? FileSystem.removeIfPresent(path)  // its view was killed
                continue
            }
            peers.insert(request.peer)
        }
        return peers
    }
}
