import Testing

@testable import ConnectXpertPolicy

@Suite struct ValuesTests {
    @Test(arguments: [("500ms", 0.5), ("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("1.5s", 1.5), ("0", 0)])
    func durations(text: String, seconds: Double) {
        #expect(TimeSpan(parsing: text)?.seconds == seconds)
    }

    @Test(arguments: ["", "5", "5 minutes", "m", "-1s", "1x", "99999999999999999999m", "36501d", "٣s",
                      String(repeating: "9", count: 400) + "s"])
    func badDurations(text: String) {
        #expect(TimeSpan(parsing: text) == nil)
    }

    @Test func durationsPrintCompactly() {
        #expect(TimeSpan(seconds: 5400).description == "1h30m")
        #expect(TimeSpan(seconds: 0.25).description == "250ms")
        #expect(TimeSpan(seconds: 3 * 86400).description == "3d")
    }

    @Test(arguments: [("100", Int64(100)), ("512KiB", 524_288), ("10MB", 10_000_000), ("2GiB", 2_147_483_648), ("1K", 1024), ("1.5MiB", 1_572_864)])
    func sizes(text: String, bytes: Int64) {
        #expect(ByteSize(parsing: text)?.bytes == bytes)
    }

    @Test(arguments: ["", "ten", "10 parsecs", "-5", "9000000000GiB", "1025TiB", "99999999999999999999",
                      String(repeating: "9", count: 400)])
    func badSizes(text: String) {
        #expect(ByteSize(parsing: text) == nil)
    }

    @Test func theLargestValuesParse() {
        #expect(TimeSpan(parsing: "36500d") == TimeSpan.maximum)
        #expect(TimeSpan.maximum.description == "36500d")
        #expect(ByteSize(parsing: "1024TiB") == ByteSize.maximum)
    }

    @Test(arguments: [-1, 0, 1])
    func aRetryAfterNoCountedAttemptWaitsTheInitialPause(attempt: Int) {
        let retry = RetryPolicy(initial: TimeSpan(seconds: 10), maximum: TimeSpan(seconds: 600),
                                giveUpAfter: TimeSpan(seconds: 3600))
        #expect((8...12).contains(retry.delay(afterAttempt: attempt)))
        #expect((480...720).contains(retry.delay(afterAttempt: Int.max)))
    }

    @Test func globsMatchNamesOrWholePaths() {
        #expect(Glob("*.pdf").matches("report.pdf"))
        #expect(Glob("*.pdf").matches("2026/report.pdf"))
        #expect(!Glob("*.pdf").matches("report.pdf.part"))
        #expect(Glob("2026/*.pdf").matches("2026/report.pdf"))
        #expect(!Glob("2026/*.pdf").matches("2026/q1/report.pdf"))
    }
}

@Suite struct NamesTests {
    @Test(arguments: [".hidden", "x.part", "x.tmp", "x~", ".x.cx1.part"])
    func temporaryNames(name: String) {
        #expect(Names.isTemporary(name))
    }

    @Test(arguments: ["report.pdf", "a b.txt", "ünïcödé", "e\u{301}", "part", "tmp.txt"])
    func ordinaryNames(name: String) {
        #expect(!Names.isTemporary(name))
        #expect(Names.problem(withComponent: name) == nil)
    }

    @Test(arguments: ["", ".", "..", ".hidden", "a/b", "bell\u{7}", "nul\u{0}", "del\u{7f}", "new\nline"])
    func unsafeNames(name: String) {
        #expect(Names.problem(withComponent: name) != nil)
    }

    @Test func relativePaths() {
        #expect(Names.problem(withRelativePath: "a/b/c.txt") == nil)
        #expect(Names.problem(withRelativePath: "a/../c.txt") != nil)
        #expect(Names.problem(withRelativePath: "/etc/passwd") != nil)
        #expect(Names.problem(withRelativePath: "a//b") != nil)
    }

    @Test func alternativesKeepTheExtension() {
        #expect(Names.alternative(to: "report.pdf", number: 1) == "report (1).pdf")
        #expect(Names.alternative(to: "dir/archive.tar.gz", number: 2) == "dir/archive.tar (2).gz")
        #expect(Names.alternative(to: "README", number: 1) == "README (1)")
        #expect(Names.alternative(to: ".profile", number: 1) == ".profile (1)")
    }

    @Test func printableEscapesControlCharacters() {
        #expect(Names.printable("a\u{1}b") == "a\\x01b")
        #expect(Names.printable("x\n2026-12-01 critical: FORGED\r\t\u{7f}\u{85}\u{2028}é")
            == "x\\n2026-12-01 critical: FORGED\\r\\t\\x7f\\x85\\u{2028}é")
    }
}

@Suite struct PathTemplateTests {
    @Test func rendersTheDefaultLayout() {
        let template = PathTemplate("{sender}->{recipient}/{path}")
        #expect(template.render(["sender": "alice", "recipient": "bob", "path": "sub/x.txt"]) == "alice->bob/sub/x.txt")
        #expect(template.placeholders == ["sender", "recipient", "path"])
    }

    @Test func senderFolderPattern() throws {
        let pattern = try #require(SenderFolderPattern(template: PathTemplate("{sender}->{recipient}"), recipient: "bob"))
        #expect(pattern.parent == "")
        #expect(pattern.sender(inFolderNamed: "alice->bob") == "alice")
        #expect(pattern.sender(inFolderNamed: "alice->carol") == nil)
        #expect(pattern.sender(inFolderNamed: "->bob") == nil)
        #expect(pattern.sender(inFolderNamed: "..->bob") == nil)
        #expect(pattern.folder(for: "alice") == "alice->bob")

        let nested = try #require(SenderFolderPattern(template: PathTemplate("drops/{recipient}/from-{sender}/in"), recipient: "bob"))
        #expect(nested.parent == "drops/bob")
        #expect(nested.sender(inFolderNamed: "from-alice") == "alice")
        #expect(nested.folder(for: "alice") == "drops/bob/from-alice/in")
    }
}
