import ConnectXpertAge
import ConnectXpertTestSupport
import Foundation
import Testing

/// What we seal opens with the stock `age` CLI (Debian's 1.1.1), byte for byte, and what it seals
/// opens here: to keys `age-keygen` made, to ours, and to a passphrase.
@Suite struct AgeCLITests {
    let folder = NSTemporaryDirectory() + "cx-age-" + UUID().uuidString.prefix(8)

    init() throws { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }

    /// Sizes around the 64 KiB chunk: empty, one byte, one chunk, one chunk and a byte, several.
    static let sizes = [0, 1, 65536, 65537, 300_000]

    func path(_ name: String) -> String { folder + "/" + name }

    func content(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) } }

    func write(_ bytes: [UInt8], _ name: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path(name)))
    }

    func read(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path(name)))) }

    /// `age -d` with `arguments`; the plaintext it wrote. (age 1.1.1 does not create `-o` for an
    /// empty plaintext, so an empty one is read from its standard output.)
    func ageDecrypt(_ arguments: [String], size: Int) throws -> [UInt8] {
        guard size > 0 else {
            let result = try runProgram("/usr/bin/age", ["-d"] + arguments)
            #expect(result.status == 0, "\(result.errors)")
            return Array(result.output.utf8)
        }
        try runChecked("/usr/bin/age", ["-d", "-o", path("opened")] + arguments)
        return try read("opened")
    }

    func seal(_ plaintext: [UInt8], to recipients: [any AgeRecipient]) throws -> [UInt8] {
        var sealed: [UInt8] = []
        try Age.encrypt(to: recipients, from: AgeBytesInput(plaintext), to: &sealed)
        return sealed
    }

    func open(_ file: [UInt8], with identities: [any AgeIdentity]) throws -> [UInt8] {
        var opened: [UInt8] = []
        try Age.decrypt(with: identities, from: AgeBytesInput(file), to: &opened)
        return opened
    }

    @Test(arguments: sizes)
    func whatWeSealToAnAgeKeygenKeyOpensWithAge(size: Int) throws {
        try runChecked("/usr/bin/age-keygen", ["-o", path("key.txt")])
        let keyFile = try String(contentsOfFile: path("key.txt"), encoding: .utf8)
        let publicKey = try #require(keyFile.split(separator: "\n").first { $0.hasPrefix("# public key: ") })
        let recipient = try #require(X25519Recipient(String(publicKey.dropFirst("# public key: ".count))))
        try write(try seal(content(size), to: [recipient]), "sealed.age")
        #expect(try ageDecrypt(["-i", path("key.txt"), path("sealed.age")], size: size) == content(size))
    }

    @Test(arguments: sizes)
    func whatAgeSealsToOurKeyOpensHere(size: Int) throws {
        let identity = X25519Identity()
        try write(content(size), "plain")
        try runChecked("/usr/bin/age", ["-r", identity.recipient.description, "-o", path("sealed.age"), path("plain")])
        #expect(try open(try read("sealed.age"), with: [identity]) == content(size))
    }

    /// Our identity, written as `age-keygen` writes one, is one `age -i` takes.
    @Test func ourIdentityIsOneAgeTakes() throws {
        let identity = X25519Identity(), other = X25519Identity()
        try write(Array("# created by ConnectXpert\n\(identity.encoded)\n".utf8), "ours.txt")
        let sealed = try seal(content(70_000), to: [other.recipient, identity.recipient])
        try write(sealed, "sealed.age")
        #expect(try ageDecrypt(["-i", path("ours.txt"), path("sealed.age")], size: 70_000) == content(70_000))
        #expect(try open(sealed, with: [other]) == content(70_000), "each recipient opens it")
    }

    /// Runs `command` with a terminal (`script`), typing `text` into it: age reads a passphrase
    /// from the terminal only.
    func inTerminal(_ command: String, typing text: String) throws -> ProgramResult {
        try runProgram("/usr/bin/script", ["-qec", command, "/dev/null"], input: Array(text.utf8))
    }

    @Test func aPassphraseSealedFileOpensBothWays() throws {
        let passphrase = "correct horse battery staple"
        try write(try seal(content(100_000), to: [ScryptRecipient(passphrase: Array(passphrase.utf8), workFactor: 10)]),
                  "ours.age")
        let opened = try inTerminal("/usr/bin/age -d -o \(path("opened")) \(path("ours.age"))",
                                    typing: "\(passphrase)\n")
        #expect(opened.status == 0, "\(opened.output)")
        #expect(try read("opened") == content(100_000))

        try write(content(5000), "plain")
        let sealed = try inTerminal("/usr/bin/age -p -o \(path("theirs.age")) \(path("plain"))",
                                    typing: "\(passphrase)\n\(passphrase)\n")
        #expect(sealed.status == 0, "\(sealed.output)")
        let identity = ScryptIdentity(passphrase: Array(passphrase.utf8))
        #expect(try open(try read("theirs.age"), with: [identity]) == content(5000))
        #expect(throws: AgeError.noMatch) { try open(try read("theirs.age"), with: [ScryptIdentity(passphrase: [1])]) }
    }
}
