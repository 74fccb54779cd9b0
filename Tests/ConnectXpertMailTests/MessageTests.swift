@testable import ConnectXpertMail
import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

@Suite struct MessageTests {
    @Test func addressListsYieldBareAddresses() {
        #expect(AddressList.addresses(in: #""Doe, John" <john@example.org>, jane@example.org (Jane)"#)
            == ["john@example.org", "jane@example.org"])
        #expect(AddressList.addresses(in: "undisclosed-recipients:;") == [])
        #expect(AddressList.addresses(in: "team: a@x.org, B <b@y.org>;, c@z.org") == ["a@x.org", "b@y.org", "c@z.org"])
        #expect(AddressList.addresses(in: "not an address") == [])
    }

    @Test func headerBlockUnfoldsAndFindsTheBody() throws {
        let text = "From alice Sat Nov 21\nSubject: a long\n  subject\r\nTo: b@x.org\n\nbody\n"
        let block = try HeaderBlock(parsing: Array(text.utf8))
        #expect(block.fields.map(\.name) == ["Subject", "To"])
        #expect(block.values("subject") == ["a long  subject"])
        #expect(Array(text.utf8)[block.bodyOffset...].elementsEqual(Array("body\n".utf8)))
    }

    /// Hostile headers are read in time linear in their size: 40 000 continuation lines and a
    /// Subject of 200 000 encoded words took 15 s and over 20 s (a copy of the field per line, and a
    /// Foundation search that copied the rest of the value for every word). The bound is loose, a
    /// guard against a quadratic return, not a speed target.
    @Test func hugeFoldedHeadersAndManyEncodedWordsAreReadInLinearTime() throws {
        let started = Date()
        let folded = "Subject: start\r\n" + String(repeating: " more\r\n", count: 40_000) + "\r\nbody"
        let block = try HeaderBlock(parsing: Array(folded.utf8))
        #expect(block.fields.first?.lines.count == 40_001)
        let words = "Subject: " + String(repeating: "=?UTF-8?B?w6Q=?= ", count: 200_000) + "\r\n\r\n"
        #expect(try HeaderBlock(parsing: Array(words.utf8)).text("Subject") == String(repeating: "ä", count: 200_000))
        let unclosed = "Subject: " + String(repeating: "=?x ", count: 200_000) + "\r\n\r\n"
        #expect(try HeaderBlock(parsing: Array(unclosed.utf8)).text("Subject")?.count == 800_000 - 1)
        #expect(Date().timeIntervalSince(started) < 20, "\(Date().timeIntervalSince(started)) s")
    }

    /// A header over 4 MiB is not read as one: `mail show` shows such a file as text, and the queue
    /// refuses it.
    @Test func aHeaderOver4MiBIsRefused() {
        let long = Array(("Subject: x\r\n" + String(repeating: " more words\r\n", count: 400_000) + "\r\nbody").utf8)
        #expect(throws: MessageError.headerTooLarge(4 << 20)) { try HeaderBlock(parsing: long) }
        #expect(MIMEPart(parsing: long[...]).header == nil)
    }

    @Test func somethingElseIsNotAMessage() {
        #expect(throws: MessageError.self) { try HeaderBlock(parsing: Array("just some text\n\nmore".utf8)) }
        #expect(throws: MessageError.self) { try HeaderBlock(parsing: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a]) }
    }

    @Test func recipientsComeFromResentFieldsWhenResent() throws {
        let plain = try HeaderBlock(parsing: Array("To: a@x.org\nCc: b@x.org, a@x.org\nBcc: c@x.org\n\n".utf8))
        #expect(Envelope.recipients(of: plain) == ["a@x.org", "b@x.org", "c@x.org"])
        let resent = try HeaderBlock(parsing: Array("To: a@x.org\nResent-To: d@x.org\nResent-Bcc: e@x.org\n\n".utf8))
        #expect(Envelope.recipients(of: resent) == ["d@x.org", "e@x.org"])
    }

    @Test func transmittedHeaderDropsBccAndAddsWhatIsMissing() throws {
        let path = try temporaryFile(Array("From: A <a@x.org>\nTo: b@x.org\nBcc: secret@x.org\nSubject: s\n\nhi\n".utf8)).path
        let message = try OutgoingMessage(path: path, envelope: nil, policySender: nil, hostname: "host.example")
        let header = String(decoding: message.header, as: UTF8.self)
        #expect(message.sender == "a@x.org")
        #expect(message.recipients == ["b@x.org", "secret@x.org"])
        #expect(!header.contains("secret"))
        #expect(header.hasPrefix("From: A <a@x.org>\r\nTo: b@x.org\r\nSubject: s\r\nDate: "))
        #expect(header.contains("\r\nMessage-ID: <cx.") && header.hasSuffix("@host.example>\r\n\r\n"))
        // A retry sends the same Date and Message-ID.
        let again = try OutgoingMessage(path: path, envelope: nil, policySender: nil, hostname: "host.example")
        #expect(again.header == message.header)
    }

    @Test func envelopeAndPolicyDecideTheSender() throws {
        let path = try temporaryFile(Array("From: a@x.org\nTo: b@x.org\n\nhi\n".utf8)).path
        let envelope = Envelope(sender: "bounce@x.org", recipients: ["only@x.org"])
        let fromEnvelope = try OutgoingMessage(path: path, envelope: envelope, policySender: nil, hostname: "h")
        #expect(fromEnvelope.sender == "bounce@x.org" && fromEnvelope.recipients == ["only@x.org"])
        let fromPolicy = try OutgoingMessage(path: path, envelope: envelope, policySender: "agent@x.org", hostname: "h")
        #expect(fromPolicy.sender == "agent@x.org")
        #expect(Envelope(parsing: envelope.text) == envelope)
    }

    @Test func messagesWithoutRecipientOrSenderAreRefused() throws {
        let noRecipient = try temporaryFile(Array("From: a@x.org\nSubject: s\n\nhi\n".utf8)).path
        #expect(throws: MessageError.noRecipients) {
            try OutgoingMessage(path: noRecipient, envelope: nil, policySender: nil, hostname: "h")
        }
        let noSender = try temporaryFile(Array("To: b@x.org\n\nhi\n".utf8)).path
        #expect(throws: MessageError.noSender) {
            try OutgoingMessage(path: noSender, envelope: nil, policySender: nil, hostname: "h")
        }
    }

    @Test func headerTextIsEncodedOnlyWhenNeeded() {
        #expect(MessageComposer.encodeHeaderText("Plain subject") == "Plain subject")
        let encoded = MessageComposer.encodeHeaderText(String(repeating: "Grüße ", count: 12))
        let words = encoded.components(separatedBy: "\r\n ")
        #expect(words.count > 1 && words.allSatisfy { $0.hasPrefix("=?UTF-8?B?") && $0.hasSuffix("?=") && $0.count <= 75 })
        let decoded = words.map { word -> String in
            let base64 = word.dropFirst("=?UTF-8?B?".count).dropLast(2)
            return String(decoding: Data(base64Encoded: String(base64))!, as: UTF8.self)
        }.joined()
        #expect(decoded == String(repeating: "Grüße ", count: 12))
    }

    @Test func quotedPrintableKeepsLinesShortAndEscapes() {
        let line = Array((String(repeating: "é", count: 40) + " = end ").utf8)
        let encoded = String(decoding: MessageComposer.quotedPrintable(line), as: UTF8.self)
        #expect(encoded.components(separatedBy: "\r\n").allSatisfy { $0.count <= 76 })
        #expect(encoded.contains("=3D") && encoded.hasSuffix("end=20"))
    }
}
