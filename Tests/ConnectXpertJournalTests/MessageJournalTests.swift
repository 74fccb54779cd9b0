import Foundation
import Testing

@testable import ConnectXpertJournal

/// Messages in the journal: queued once per spool file, sealed with the pair's sequence numbers,
/// staged then sent; received ones stored in order, held until their sender's key is pinned.
@Suite struct MessageJournalTests {
    let journal: Journal

    init() throws {
        journal = try Journal(path: NSTemporaryDirectory() + "cx-journal-\(UUID().uuidString).sqlite")
    }

    private func sealAll(to peer: String) throws {
        try journal.sealQueuedMessages(to: peer) { message, sequence in
            OutgoingMessage(object: "object-\(sequence)", sealed: Array(message.text.utf8),
                            destination: "alice->\(peer)/object-\(sequence).message",
                            temporary: "alice->\(peer)/.object-\(sequence).message.part")
        }
    }

    private func received(_ sequence: Int64, trust: PeerTrust?) -> ReceivedMessage {
        ReceivedMessage(peer: "alice", time: 1_700_000_000 + Double(sequence), text: "text \(sequence)",
                        sequence: sequence, object: "object-\(sequence)", trust: trust,
                        plaintext: trust == nil ? Array("signed \(sequence)".utf8) : nil,
                        remotePath: "alice->bob/object-\(sequence).message")
    }

    @Test func aSpoolFileIsQueuedOnce() throws {
        try journal.queueMessages([("1.json", "bob", "first", 1), ("2.json", "bob", "second", 2)])
        try journal.queueMessages([("1.json", "bob", "first", 1)])
        #expect(try journal.messages(with: "bob").map(\.text) == ["first", "second"])
        #expect(try journal.peersWithQueuedMessages() == ["bob"])
    }

    @Test func sealedMessagesTakeThePairsSequenceNumbersSharedWithFiles() throws {
        #expect(try journal.takeSequence(to: "bob") == 1, "a sealed file took the first")
        try journal.queueMessages([("1.json", "bob", "first", 1), ("2.json", "bob", "second", 2)])
        try sealAll(to: "bob")
        try sealAll(to: "bob")
        let sealed = try journal.sealedMessages(to: "bob")
        #expect(sealed.map(\.message.sequence) == [2, 3], "sealed once each, in the order queued")
        #expect(sealed.map(\.sealed.object) == ["object-2", "object-3"])
        #expect(try journal.takeSequence(to: "bob") == 4)
    }

    @Test func aStagedMessageWaitsUntilSentAndThenKeepsNoSealedObject() throws {
        try journal.queueMessages([("1.json", "bob", "first", 1)])
        try sealAll(to: "bob")
        let id = try #require(try journal.sealedMessages(to: "bob").first?.message.id)
        try journal.markStaged(messages: [id])
        #expect(try journal.message(id)?.state == .staged)
        #expect(try journal.sealedMessages(to: "bob").count == 1, "a staged message is still on its way")
        try journal.saveMessageError(to: "bob", "connection refused")
        #expect(try journal.message(id)?.lastError == "connection refused")
        try journal.markSent(messages: [id])
        #expect(try journal.message(id)?.state == .sent)
        #expect(try journal.message(id)?.lastError == nil)
        #expect(try journal.sealedMessages(to: "bob").isEmpty)
        #expect(try journal.peersWithQueuedMessages().isEmpty)
    }

    @Test func receivedMessagesAreStoredInOrderWithTheirNumbersOpened() throws {
        try journal.store([received(1, trust: .verified), received(2, trust: .verified)])
        #expect(try journal.messages(with: "alice", unread: true).map(\.text) == ["text 1", "text 2"])
        #expect(try journal.lastMessageSequence(from: "alice") == 2)
        #expect(try journal.opened(from: "alice", sequence: 2)?.object == "object-2")
        #expect(try journal.remoteCopy(from: "alice", sequence: 1) == "alice->bob/object-1.message")
        try journal.markRemoteCopiesDeleted(from: "alice", sequences: [1, 2])
        #expect(try journal.remoteCopy(from: "alice", sequence: 1) == nil)
        let first = try #require(try journal.messages(with: "alice").first)
        try journal.markRead([first.id])
        #expect(try journal.messages(with: "alice", unread: true).map(\.text) == ["text 2"])
        #expect(try journal.messages(with: "alice", after: first.id).map(\.text) == ["text 2"])
    }

    @Test func aHeldMessageIsHiddenUntilReleasedOrDeletedAsForged() throws {
        try journal.store([received(1, trust: nil), received(2, trust: nil)])
        #expect(try journal.messages(with: "alice").isEmpty)
        let held = try journal.heldMessages(from: "alice")
        #expect(held.map(\.plaintext) == [Array("signed 1".utf8), Array("signed 2".utf8)])
        #expect(try journal.messages(held: true).map(\.state) == [.held, .held])
        try journal.release(held: held[0].message.id, trust: .verified)
        try journal.release(held: held[1].message.id, trust: nil)
        let shown = try journal.messages(with: "alice")
        #expect(shown.map(\.text) == ["text 1"] && shown.map(\.trust) == [.verified])
        #expect(try journal.heldMessages(from: "alice").isEmpty)
    }
}
