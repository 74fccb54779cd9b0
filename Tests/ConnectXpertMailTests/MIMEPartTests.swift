@testable import ConnectXpertMail
import ConnectXpertPolicy
import Foundation
import Testing

@Suite struct MIMEPartTests {
    private func part(_ text: String) -> MIMEPart { MIMEPart(parsing: Array(text.utf8)[...]) }

    @Test func encodedWordsInHeaders() {
        #expect(MailDecoding.headerText(Array("=?UTF-8?B?w6TDtsO8?= =?UTF-8?Q?_und_=C3=9F?=".utf8)) == "äöü und ß")
        #expect(MailDecoding.headerText(Array("Re: =?iso-8859-1?q?Caf=E9?= ok".utf8)) == "Re: Café ok")
        #expect(MailDecoding.headerText(Array("=?ISO-8859-15?Q?=A4uro?=".utf8)) == "€uro")
        #expect(MailDecoding.headerText(Array("=?x-unknown?Q?plain?= =?broken".utf8)) == "plain =?broken")
        // Raw 8-bit bytes: UTF-8 when valid, else ISO-8859-1.
        #expect(MailDecoding.headerText([0x43, 0x61, 0x66, 0xc3, 0xa9]) == "Café")
        #expect(MailDecoding.headerText([0x43, 0x61, 0x66, 0xe9]) == "Café")
    }

    /// Charsets beyond the few decoded by hand go through iconv; an unknown one, or bytes not valid
    /// in theirs, are read as UTF-8, else ISO-8859-1.
    @Test func charsetsThatIconvKnows() {
        #expect(MailDecoding.text([0xf0, 0xd2, 0xc9, 0xd7, 0xc5, 0xd4], charset: "koi8-r") == "Привет")
        #expect(MailDecoding.text([0x1b, 0x24, 0x42, 0x46, 0x7c, 0x4b, 0x5c, 0x1b, 0x28, 0x42], charset: "ISO-2022-JP")
                == "日本")
        #expect(MailDecoding.text([0x50, 0xf8, 0xed, 0x6c, 0x69, 0xb9], charset: "iso-8859-2") == "Příliš")
        #expect(MailDecoding.text(Array("café".utf8), charset: "x-unknown") == "café")
        #expect(MailDecoding.text([0x63, 0x61, 0x66, 0xe9], charset: "x-unknown") == "café")
    }

    @Test func parametersWithRFC2231() {
        let (value, parameters) = MailDecoding.parameters(
            "attachment; filename*0*=utf-8''%E2%82%AC%20; filename*1=\"part two.txt\"; size=3")
        #expect(value == "attachment")
        #expect(parameters["filename"] == "€ part two.txt")
        #expect(parameters["size"] == "3")
        #expect(MailDecoding.parameters("text/plain; charset=\"utf-8\"; name=\"a;b.txt\"").parameters["name"] == "a;b.txt")
    }

    @Test func quotedPrintableAndBase64() {
        #expect(MailDecoding.quotedPrintable(Array("f=C3=BCr =\nweiter =XY=".utf8)) == Array("für weiter =XY".utf8))
        #expect(MailDecoding.base64(Array("SGVs\nbG8=\n".utf8)) == Array("Hello".utf8))
    }

    @Test func alternativePrefersPlainAndListsAttachments() {
        let message = part("""
            Content-Type: multipart/mixed; boundary=outer

            --outer
            Content-Type: multipart/alternative; boundary=inner

            --inner
            Content-Type: text/html

            <b>bold</b>
            --inner
            Content-Type: text/plain; charset=iso-8859-1
            Content-Transfer-Encoding: quoted-printable

            caf=E9
            --inner--
            --outer
            Content-Type: image/png
            Content-Transfer-Encoding: base64

            iVBORw==
            --outer--
            """)
        let reading = MessageReading(message)
        #expect(reading.texts == ["caf\u{e9}"])
        #expect(reading.attachments.map(\.contentType) == ["image/png"])
        #expect(reading.attachments.first?.decodedBody == [0x89, 0x50, 0x4e, 0x47])
        #expect(reading.attachments.first?.filename == nil)
    }

    @Test func htmlOnlyIsReducedToText() {
        let message = part("Content-Type: text/html\n\n<script>x()</script><p>One &lt;two&gt;</p><p>&#8364;&#x41;</p>\n")
        #expect(MessageReading(message).texts == ["One <two>\n€A"])
    }

    @Test func malformedMessagesStillShowSomething() {
        // No closing boundary, a part without header, garbage instead of a header.
        let unclosed = part("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nfirst\n--b\nContent-Type: text/plain\n\nsecond")
        #expect(unclosed.parts.count == 2)
        #expect(MessageReading(unclosed).texts == ["first", "second"])
        #expect(MessageReading(part("no header here\n")).texts == ["no header here\n"])
        let missingBoundary = part("Content-Type: multipart/mixed\n\nbody\n")
        #expect(missingBoundary.parts.isEmpty && MessageReading(missingBoundary).texts.isEmpty)
        // Deep nesting stops instead of recursing without end.
        var deep = "Content-Type: multipart/mixed; boundary=b\n\n"
        for _ in 0..<100 { deep += "--b\nContent-Type: multipart/mixed; boundary=b\n\n" }
        _ = MessageReading(part(deep)).attachments
        // A huge header block.
        let huge = part("Subject: " + String(repeating: "x", count: 2_000_000) + "\n\nbody\n")
        #expect(MessageReading(huge).texts == ["body\n"])
    }

    @Test func summaryDecodesDatesAndSenders() {
        #expect(MessageSummary.parseDate("Fri, 20 Nov 2026 14:03:00 +0100") == Date(timeIntervalSince1970: 1795179780))
        #expect(MessageSummary.parseDate("20 Nov 26 13:03 GMT") == Date(timeIntervalSince1970: 1795179780))
        #expect(MessageSummary.parseDate("Fri, 20 Nov 2026 08:03:00 -0500 (EST)") == Date(timeIntervalSince1970: 1795179780))
        #expect(MessageSummary.parseDate("yesterday") == nil)
        #expect(MessageSummary.displayName("\"Alice Example\" <alice@example.org>") == "Alice Example")
        #expect(MessageSummary.displayName("<bob@example.org>") == "bob@example.org")
        #expect(MessageSummary.displayName("carol@example.org (Carol)") == "Carol")
    }

    @Test func attachmentNamesAreMadeSafe() {
        #expect(Names.safeFileName("../../etc/passwd", fallback: "x") == "passwd")
        #expect(Names.safeFileName("C:\\Users\\evil.exe", fallback: "x") == "evil.exe")
        #expect(Names.safeFileName(".hidden\u{1b}[31m.txt", fallback: "x") == "hidden[31m.txt")
        #expect(Names.safeFileName("..", fallback: "attachment-1") == "attachment-1")
    }
}
