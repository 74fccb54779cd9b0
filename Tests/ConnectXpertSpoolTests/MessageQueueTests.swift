import ConnectXpertSystem
import Foundation
import Testing

@testable import ConnectXpertSpool

/// Messages queued in the spool by `message send`, and the requests of open chat views.
@Suite struct MessageQueueTests {
    let spool = Spool(root: NSTemporaryDirectory() + "cx-spool-" + UUID().uuidString)

    @Test func queuedMessagesComeBackInTheOrderTheyWereWritten() throws {
        #expect(try spool.queuedMessages().messages.isEmpty, "no queue yet")
        let later = QueuedMessage(to: "bob", text: "second", time: 1_800_000_000.5)
        let earlier = QueuedMessage(to: "bob", text: "first ✓\nline two", time: 999_999_999.25)
        let names = [try spool.queue(later), try spool.queue(earlier)]
        #expect(names.allSatisfy { $0.wholeMatch(of: /\d{20}-[0-9a-z]+\.json/) != nil }, "\(names)")
        let queued = try spool.queuedMessages()
        #expect(queued.messages.map(\.message) == [earlier, later], "by time, though the earlier has fewer digits")
        #expect(queued.messages.map(\.name) == names.reversed())
        #expect(queued.unreadable.isEmpty)
    }

    @Test func aFileThatIsNotAMessageIsNamedAndLeft() throws {
        try spool.queue(QueuedMessage(to: "bob", text: "hi", time: 1))
        let stray = joinPath(spool.messageOutbox, "not-a-message.json")
        try FileSystem.writeFileAtomically(stray, contents: Array("{".utf8))
        try FileSystem.writeFileAtomically(joinPath(spool.messageOutbox, ".being-written.json"), contents: [])
        let queued = try spool.queuedMessages()
        #expect(queued.messages.map(\.message.text) == ["hi"])
        #expect(queued.unreadable == ["not-a-message.json"])
        #expect(FileSystem.exists(stray))
    }

    @Test func aChatViewsRequestCountsWhileItsProcessLives() throws {
        let request = try spool.requestChatPolling(with: "alice")
        #expect(lastComponent(of: request) == "chat-\(getpid()).yaml" && Spool.isChatRequest("chat-\(getpid()).yaml"))
        #expect(!Spool.isChatRequest("screen-share.yaml"))
        #expect(spool.chatPeers() == ["alice"])
        let dead = joinPath(spool.jobs, "chat-999999999.yaml")
        try FileSystem.writeFileAtomically(dead, contents: Array(#"{"peer":"carol","pid":999999999}"#.utf8))
        #expect(spool.chatPeers() == ["alice"], "a killed view's request is not one")
        #expect(!FileSystem.exists(dead), "and is removed")
        _ = try FileSystem.removeIfPresent(request)
        #expect(spool.chatPeers().isEmpty)
    }
}
