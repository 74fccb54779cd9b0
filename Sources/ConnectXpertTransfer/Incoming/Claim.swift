import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSystem
import Foundation

/// How agents sharing an identity share a drop, with the server's atomic rename as the only lock
/// (as Maildir readers share `new/`): before its download, an agent renames the remote file to a
/// claim name of its own beside it, `.<name>.claim-<agent>-<seconds>-<token>`; only the agent whose
/// rename succeeded downloads it. Once the local copy is durable, the agent renames its claim to
/// `.<name>.taken-<agent>-<token>`, which no agent takes back, then places the file and deletes the
/// remote copy. A claim older than the inbox rule's `claim_timeout` is an agent's that died: another
/// agent renames it to a claim of its own and starts over, and the agent that held it, if it was
/// only slow, fails to rename it to its taken name and drops its copy. Dot names: other agents,
/// ConnectXpert 0.7 and people's listings skip them.
struct Claim: Equatable {
    /// The claimed file's name, as its sender wrote it.
    let original: String
    let agent: String
    /// When it was claimed, in seconds since 1970, by the claiming agent's clock.
    let time: Int64
    let token: String

    /// A new claim of ours on the file named `original`.
    init(of original: String, by agent: String, at time: Date = Date()) {
        self.init(original: original, agent: agent, time: Int64(time.timeIntervalSince1970),
                  token: String(UInt64.random(in: 0...UInt64.max), radix: 36))
    }

    private init(original: String, agent: String, time: Int64, token: String) {
        self.original = original
        self.agent = agent
        self.time = time
        self.token = token
    }

    /// The claim a remote name is, if it is one.
    init?(name: String) {
        guard name.hasPrefix("."), let marker = name.range(of: ".claim-", options: .backwards) else { return nil }
        let original = String(name[name.index(after: name.startIndex)..<marker.lowerBound])
        var parts = name[marker.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 3, Names.problem(withComponent: original) == nil,
              let token = parts.popLast(), !token.isEmpty, let time = parts.popLast().flatMap({ Int64($0) }),
              case let agent = parts.joined(separator: "-"), !agent.isEmpty else { return nil }
        self.init(original: original, agent: agent, time: time, token: String(token))
    }

    /// A new claim of ours on the remote file at `source`, as a path beside it; nil when the claim's
    /// name would be longer than a name can be (255 bytes): such a file is received where it is.
    static func path(of source: String, by agent: String) -> String? {
        let claim = Claim(of: lastComponent(of: source), by: agent)
        guard claim.name.utf8.count <= 255 else { return nil }
        return joinPath(parentDirectory(of: source), claim.name)
    }

    var name: String { ".\(original).claim-\(agent)-\(time)-\(token)" }
    var takenName: String { ".\(original).taken-\(agent)-\(token)" }

    /// Whether `name` is a claim or a taken name of the file named `original`: an agent has it.
    static func holds(_ name: String, _ original: String) -> Bool {
        name.hasPrefix(".\(original).claim-") || name.hasPrefix(".\(original).taken-")
    }

    /// Whether the claim is older than `timeout`: its agent is taken as dead.
    func isStale(after timeout: TimeSpan, now: Date = Date()) -> Bool {
        now.timeIntervalSince1970 - Double(time) > timeout.seconds
    }
}

extension TransferRecord {
    /// Where the remote file is now: under its claim once claimed, else where it was listed.
    var remotePath: String { claim ?? source }

    /// Where the remote file is once its claim is taken for good: its taken name.
    var takenPath: String? {
        claim.flatMap { path in
            Claim(name: lastComponent(of: path)).map { joinPath(parentDirectory(of: path), $0.takenName) }
        }
    }
}
