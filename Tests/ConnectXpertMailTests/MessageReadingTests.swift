@testable import ConnectXpertMail
import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// What a reader is shown of a message and what it can save (`MessageReading`), on messages made
/// for each fault found with real mailers, and on CPython's corpus of email test messages (from
/// Mutt, KMail, Outlook Express, Mailman, VM and others), compared with what Python's email
/// package reads of them.
@Suite struct MessageReadingTests {
    private func reading(_ text: String) -> MessageReading {
        MessageReading(MIMEPart(parsing: Array(text.utf8)[...]))
    }

    /// mutt shows every inline text part of a multipart/mixed, whatever its transfer encoding.
    @Test func everyInlineTextPartOfAMixedMessageIsShown() {
        let message = reading("""
            Content-Type: multipart/mixed; boundary=five

            --five
            Content-Type: text/plain; charset=us-ascii
            Content-Transfer-Encoding: 7bit

            one, 7bit
            --five
            Content-Type: text/plain; charset=utf-8
            Content-Transfer-Encoding: quoted-printable

            two, quoted-printable: caf=C3=A9
            --five
            Content-Type: text/plain; charset=utf-8
            Content-Transfer-Encoding: base64

            dGhyZWUsIGJhc2U2NA==
            --five
            Content-Type: text/plain; charset=utf-8
            Content-Transfer-Encoding: base64

            Zm91ciwgYmFzZTY0
            --five

            five, plain
            --five--
            """)
        #expect(message.texts == ["one, 7bit", "two, quoted-printable: café", "three, base64", "four, base64",
                                  "five, plain"])
        #expect(message.attachments.isEmpty)
    }

    /// A message whose type is message/rfc822 (a forwarded message) shows the enclosed message's
    /// header and text; its attachments are listed, and so is the enclosed message itself.
    @Test func aForwardedMessageShowsTheEnclosedOne() {
        let message = reading("""
            From: groupwise@example.org
            Subject: Fwd: the plan
            Content-Type: message/rfc822

            From: alice@example.org
            Subject: the plan
            Content-Type: multipart/mixed; boundary=inner

            --inner
            Content-Type: text/plain

            Here is the plan.
            --inner
            Content-Type: application/pdf; name=plan.pdf
            Content-Transfer-Encoding: base64

            JVBERi0=
            --inner--
            """)
        #expect(message.pieces.count == 2)
        guard case .message(let header)? = message.pieces.first else {
            Issue.record("no enclosed message: \(message.pieces)")
            return
        }
        #expect(header?.text("Subject") == "the plan" && header?.text("From") == "alice@example.org")
        #expect(message.texts == ["Here is the plan."])
        #expect(message.attachments.map(\.contentType) == ["message/rfc822", "application/pdf"])
        #expect(message.attachments.last?.filename == "plan.pdf")
        #expect(message.attachments.last?.decodedBody == Array("%PDF-".utf8))
    }

    /// RFC 2045 5.2: a Content-Type that cannot be parsed (`text` without a subtype) is text/plain.
    @Test func aTypeThatCannotBeParsedIsPlainText() {
        #expect(reading("Subject: x\nContent-Type: text\n\nshown\n").texts == ["shown\n"])
        #expect(reading("Subject: x\nContent-Type: ;charset=utf-8\n\nshown too\n").texts == ["shown too\n"])
        #expect(reading("Subject: x\nContent-Type: image/\n\nand this\n").texts == ["and this\n"])
    }

    /// Multiparts three deep whose boundaries differ only in their last character (and hold a
    /// space and `=`), text holding lines that look like boundaries, a digest (its parts are
    /// messages) and text/rfc822-headers: each part is found as RFC 2046 delimits it.
    @Test func nestedMultipartsAreSplitExactlyAtTheirDelimiters() {
        let message = reading("""
            From: list@example.org
            Subject: nested
            Content-Type: multipart/mixed; boundary="=_cx part=1"

            preamble, not shown
            --=_cx part=1
            Content-Type: multipart/alternative; boundary="=_cx part=2"

            --=_cx part=2
            Content-Type: multipart/mixed; boundary="=_cx part=3"

            --=_cx part=3
            Content-Type: text/plain

            deepest text
            --=_cx part=1 is how the outer boundary looks
            --=_cx part=3-- is how the innermost one ends
            --=_cx part=3
            Content-Type: text/rfc822-headers

            Received: from somewhere
            Subject: bounced
            --=_cx part=3--
            --=_cx part=2
            Content-Type: text/html

            <p>deepest text</p>
            --=_cx part=2--
            --=_cx part=1
            Content-Type: multipart/digest; boundary="=_cx part=4"

            --=_cx part=4

            Subject: first of the digest

            digest one
            --=_cx part=4

            Subject: second of the digest

            digest two
            --=_cx part=4--
            --=_cx part=1--
            epilogue, not shown
            """)
        #expect(message.texts == [
            "deepest text\n--=_cx part=1 is how the outer boundary looks"
                + "\n--=_cx part=3-- is how the innermost one ends",
            "Received: from somewhere\nSubject: bounced", "digest one", "digest two",
        ])
        let subjects = message.pieces.compactMap { piece -> String? in
            if case .message(let header) = piece { header?.text("Subject") } else { nil }
        }
        #expect(subjects == ["first of the digest", "second of the digest"])
        #expect(message.attachments.map(\.contentType) == ["message/rfc822", "message/rfc822"])
    }

    /// A header whose empty line is missing ends at its first line that is not a field.
    @Test func aHeaderWithoutItsEmptyLineEndsAtItsFirstLineThatIsNoField() {
        let part = MIMEPart(parsing: Array("From: a@example.org\nSubject: hi\nthe body, at once\n".utf8)[...])
        #expect(part.header?.text("Subject") == "hi")
        #expect(MessageReading(part).texts == ["the body, at once\n"])
    }

    @Test func theCorpusReadsAsPythonsEmailPackageReadsIt() throws {
        let script = joinPath(packageRoot, "scripts/mail-test/reading")
        let output = try runProgram(script, ["--corpus"])
        try #require(output.status == 0, "\(output.errors)")
        let json = try JSONSerialization.jsonObject(with: Data(output.output.utf8))
        let expected = try #require(json as? [[String: Any]])
        #expect(expected.count >= 40, "the corpus of CPython's email tests (libpython3-testsuite)")
        for message in expected {
            let path = message["file"] as? String ?? ""
            let name = lastComponent(of: path)
            let ours = MessageReading(MIMEPart(parsing: try FileSystem.readFile(path)[...]))
            let pieces = message["pieces"] as? [[String: Any]] ?? []
            #expect(ours.pieces.count == pieces.count, "\(name): \(ours.pieces.count) pieces, Python \(pieces.count)")
            for (piece, theirs) in zip(ours.pieces, pieces) {
                switch piece {
                case .text(let text):
                    #expect(theirs["kind"] as? String == "text", "\(name)")
                    if theirs["type"] as? String != "text/html" {
                        #expect(lines(text) == lines(theirs["text"] as? String ?? ""), "\(name)")
                    }
                case .message(let header):
                    #expect(theirs["kind"] as? String == "message", "\(name)")
                    #expect(header?.text("Subject") == theirs["subject"] as? String, "\(name)")
                }
            }
            let attachments = message["attachments"] as? [[String: Any]] ?? []
            #expect(ours.attachments.map(\.contentType) == attachments.map { $0["type"] as? String ?? "" }, "\(name)")
            for (attachment, theirs) in zip(ours.attachments, attachments) {
                #expect(attachment.filename == theirs["filename"] as? String, "\(name)")
                if let data = theirs["data"] as? String {
                    #expect(attachment.decodedBody == Array(Data(base64Encoded: data) ?? Data()), "\(name)")
                }
            }
        }
    }

    /// Text compared line by line, whatever the line ends.
    private func lines(_ text: String) -> [String] {
        text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false)
            .map(String.init)
    }
}
