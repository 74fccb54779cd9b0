import ConnectXpertSystem
import Foundation

/// A message `connectxpert message send` queued: a file in `messages/outbox/`, until the agent
/// takes it into the journal (and seals and sends it from there).
public struct QueuedMessage: Codable, Equatable, Sendable {
    public var to: String
    public var text: String
    /// When it was written (seconds since 1970).
    public var time: Double

    public init(to: String, text: String, time: Double) {
        self.to = to
        self.text = text
        self.time = time
    }
}

extension Spool {
    /// Where `message send` queues messages, one file each, written whole under a hidden name and
    /// renamed, named so that the names sort in the order they were queued.
    public var messageOutbox: String { joinPath(root, "messages/outbox") }

    /// Queues a message; returns the file's name.
    @discardableResult
    public func queue(_ message: QueuedMessage) throws -> String {
        let nanoseconds = Int64(message.time * 1e9)
        let name = String(repeating: "0", count: max(0, 20 - String(nanoseconds).count)) + String(nanoseconds)
            + "-" + String(UInt64.random(in: 0...UInt64.max), radix: 36) + ".json"
        try FileSystem.createDirectories(messageOutbox)
        let contents = Array(try JSONEncoder().encode(message))
        try FileSystem.writeFileAtomically(joinPath(messageOutbox, name), contents: contents)
        return name
    }

    /// The messages queued in `messages/outbox/`, oldest first, by file name; a file that is not
    /// one is left where it is and named in `unreadable`.
    public func queuedMessages() throws -> (messages: [(name: String, message: QueuedMessage)], unreadable: [String]) {
        let names: [String]
        do {
            names = try FileSystem.contents(of: messageOutbox).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }
        } catch let error as SystemError where error.isNotFound {
            return ([], [])
        }
        var found: [(String, QueuedMessage)] = [], unreadable: [String] = []
        for name in names.sorted() {
            guard let bytes = try? FileSystem.readFile(joinPath(messageOutbox, name)),
                  let message = try? JSONDecoder().decode(QueuedMessage.self, from: Data(bytes)) else {
                unreadable.append(name)
                continue
            }
            found.append((name, message))
        }
        return (found, unreadable)
    }
}
