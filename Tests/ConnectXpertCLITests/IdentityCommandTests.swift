import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// `identity init`, `identity show` and `open`: our keys as ssh-keygen and age see them, and age
/// files sealed to us opened, or refused with the kind of failure and nothing left behind.
@Suite struct IdentityCommandTests {
    let folder: String
    let keys: String

    init() throws {
        folder = try temporaryFolder()
        keys = joinPath(folder, "spool/.identity")
        try connectxpert("init", "--id", "alice", in: folder)
    }

    func path(_ name: String) -> String { joinPath(folder, name) }

    var recipient: String { (try? connectxpert("identity", "show", in: folder).stdout.split(separator: "\n").last)
        .map(String.init) ?? "" }

    @Test func showPrintsTheFingerprintAsSshKeygenDoesAndOurAgeRecipient() throws {
        let show = try connectxpert("identity", "show", in: folder)
        #expect(show.status == 0)
        let keygen = try runChecked("/usr/bin/ssh-keygen", ["-lf", joinPath(keys, "signing.key.pub")])
        let ageKey = try #require(String(decoding: try FileSystem.readFile(joinPath(keys, "age.key")), as: UTF8.self)
            .split(separator: "\n").first { $0.hasPrefix("# public key: ") })
        #expect(show.stdout == keygen + ageKey.dropFirst("# public key: ".count) + "\n")

        let again = try connectxpert("identity", "init", in: folder)
        #expect(again.status == 73)
        #expect(again.stderr
                == "connectxpert: \(keys)/age.key exists already: an identity is there; nothing was changed\n")
    }

    @Test func showRefusesKeysOthersCanRead() throws {
        try FileSystem.setPermissions(joinPath(keys, "age.key"), mode: 0o640)
        let show = try connectxpert("identity", "show", in: folder)
        #expect(show.status == 77)
        #expect(show.stderr == "connectxpert: the key file \(keys)/age.key can be read by others (mode 640); "
            + "its keys are not used until 'chmod 600 \(keys)/age.key'\n")
    }

    @Test func openOpensAFileAgeSealedToUsAndSaysItIsNotSigned() throws {
        try write(path("letter.txt"), "for alice only\n")
        try runChecked("/usr/bin/age", ["-r", recipient, "-o", path("letter.age"), path("letter.txt")])
        let opened = try connectxpert("open", "letter.age", "-o", "letter.out", in: folder)
        #expect(opened.status == 0)
        #expect(opened.stderr == "connectxpert: opened letter.age into letter.out; not signed: sender unknown\n")
        #expect(read(path("letter.out")) == Array("for alice only\n".utf8))
        let toStdout = try connectxpert("open", "letter.age", in: folder)
        #expect(toStdout.stdout == "for alice only\n")
    }

    @Test func openTakesAnAgeKeygenIdentityFile() throws {
        try runChecked("/usr/bin/age-keygen", ["-o", path("other.key")])
        try write(path("letter.txt"), "for the other key\n")
        try runChecked("/usr/bin/age", ["-e", "-i", path("other.key"), "-o", path("letter.age"), path("letter.txt")])
        let ours = try connectxpert("open", "letter.age", "-o", "out", in: folder)
        #expect(ours.status == 65)
        #expect(ours.stderr == "connectxpert: cannot open letter.age (no match): no identity matches: the file is not "
            + "sealed to this key\n")
        let theirs = try connectxpert("open", "letter.age", "--identity", "other.key", "-o", "out", in: folder)
        #expect(theirs.status == 0, "\(theirs.stderr)")
        #expect(read(path("out")) == Array("for the other key\n".utf8))
    }

    /// A header, MAC or payload that was changed: exit 65 naming the kind; no output, no temporary file.
    @Test(arguments: [("header", 0), ("header MAC", -1), ("payload", 1)])
    func openRefusesADamagedFileAndLeavesNothing(kind: String, damage: Int) throws {
        try write(path("letter.txt"), String(repeating: "x", count: 70_000))
        try runChecked("/usr/bin/age", ["-r", recipient, "-o", path("letter.age"), path("letter.txt")])
        var sealed = try #require(read(path("letter.age")))
        let macLine = try #require(sealed.firstRange(of: Array("\n--- ".utf8))).upperBound
        switch damage {
        case 0: sealed[0] ^= 0x20  // "Age-encryption.org/v1"
        case -1: sealed[macLine] = sealed[macLine] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        default: sealed[sealed.count - 1] ^= 1
        }
        try FileSystem.writeFileAtomically(path("letter.age"), contents: sealed)
        let before = try FileSystem.contents(of: folder).sorted()
        let opened = try connectxpert("open", "letter.age", "-o", "letter.out", in: folder)
        #expect(opened.status == 65)
        #expect(opened.stderr.hasPrefix("connectxpert: cannot open letter.age (\(kind)): "), "\(opened.stderr)")
        #expect(try FileSystem.contents(of: folder).sorted() == before, "no output and no temporary file")
    }
}
