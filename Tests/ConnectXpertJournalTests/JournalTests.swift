import Foundation
import Testing

@testable import ConnectXpertJournal

@Suite struct JournalTests {
    private func journal() throws -> Journal {
        try Journal(path: NSTemporaryDirectory() + "cx-journal-\(UUID().uuidString).sqlite")
    }

    @Test func recordsSurviveReopening() throws {
        let path = NSTemporaryDirectory() + "cx-journal-\(UUID().uuidString).sqlite"
        var record = try Journal(path: path).begin(.outgoing, peer: "bob", remote: "drop", source: "a/b.txt",
                                                   size: 10, modificationNanoseconds: 7, inode: 99,
                                                   destination: "alice->bob/a/b.txt", temporary: "alice->bob/a/.b.txt.cx1.part")
        #expect(record.state == .transferring)
        record.state = .staged
        try Journal(path: path).save(record, durable: true)

        let reopened = try Journal(path: path)
        let active = try #require(try reopened.standing(.outgoing, remote: "drop", peer: "bob", source: "a/b.txt").active)
        #expect(active.state == .staged)
        #expect(active.temporary == record.temporary)
        #expect(active.destination == record.destination)
        #expect(try reopened.unfinished().map(\.id) == [record.id])
    }

    @Test func doneRecordsAreNotActiveButAreRemembered() throws {
        let journal = try journal()
        var record = try journal.begin(.incoming, peer: "alice", remote: "drop", source: "alice->bob/x", size: 1,
                                       modificationNanoseconds: 5, inode: 0, destination: "/in/x", temporary: "/in/.x.part")
        record.state = .done
        try journal.save(record)
        let standing = try journal.standing(.incoming, remote: "drop", peer: "alice", source: "alice->bob/x")
        #expect(standing.active == nil)
        #expect(standing.lastDone?.id == record.id)
        #expect(try journal.standing(.incoming, remote: "other", peer: "alice", source: "alice->bob/x") == (nil, nil))
        #expect(try journal.history(limit: 5).map(\.id) == [record.id])
        #expect(try journal.unfinished().isEmpty)
    }

    @Test func standingLooksPastFailedTransfers() throws {
        let journal = try journal()
        func begin() throws -> TransferRecord {
            try journal.begin(.outgoing, peer: "bob", remote: "drop", source: "x", size: 1, modificationNanoseconds: 1,
                              inode: 1, destination: "x", temporary: ".x")
        }
        var done = try begin()
        done.state = .done
        try journal.save(done)
        var failed = try begin()
        failed.state = .failed
        try journal.save(failed)
        let afterFailure = try journal.standing(.outgoing, remote: "drop", peer: "bob", source: "x")
        #expect(afterFailure.active == nil && afterFailure.lastDone?.id == done.id)
        let retried = try begin()
        let whileRetried = try journal.standing(.outgoing, remote: "drop", peer: "bob", source: "x")
        #expect(whileRetried.active?.id == retried.id && whileRetried.lastDone == nil)
    }

    /// A run stopped right after `begin` resumes a received manifest as what it is, never as a plain file.
    @Test func aReceivedSealedObjectIsSealedFromItsFirstCommit() throws {
        let path = NSTemporaryDirectory() + "cx-journal-\(UUID().uuidString).sqlite"
        let begun = try Journal(path: path).begin(
            .incoming, peer: "alice", remote: "drop", source: "alice->bob/0123.manifest", size: 1024,
            modificationNanoseconds: 5, inode: 0, destination: "/in/0123.manifest", temporary: "/in/.0123.part",
            sealed: "0123")
        #expect(begun.sealed == "0123")
        #expect(try Journal(path: path).unfinished().map(\.sealed) == ["0123"])
    }

    @Test func namesDifferingOnlyInNormalisationAreDistinct() throws {
        let journal = try journal()
        let nfc = try journal.begin(.outgoing, peer: "bob", remote: "drop", source: "caf\u{E9}", size: 1,
                                    modificationNanoseconds: 1, inode: 1, destination: "a", temporary: ".a")
        _ = try journal.begin(.outgoing, peer: "bob", remote: "drop", source: "cafe\u{301}", size: 2,
                              modificationNanoseconds: 1, inode: 2, destination: "b", temporary: ".b")
        #expect(try journal.standing(.outgoing, remote: "drop", peer: "bob", source: "caf\u{E9}").active?.id == nfc.id)
    }
}
