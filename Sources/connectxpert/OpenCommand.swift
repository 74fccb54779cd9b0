import ArgumentParser
import ConnectXpertAge
import ConnectXpertPolicy
import ConnectXpertSeal
import ConnectXpertSystem
import Foundation

struct OpenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "open",
        abstract: "Open an age file sealed to us (age -r age1… makes one) and write what it holds.",
        discussion: """
            Exits 0 when the file opened, 65 when it did not, naming the kind of failure: header, no match (not \
            sealed to our key), header MAC or payload. With -o, nothing is left at OUT on failure. age files say \
            nothing about who made them: one that reaches us outside the sealed exchange is not signed.
            """)

    @Argument(help: ArgumentHelp("The age file.", valueName: "file"))
    var file: String

    @Option(name: .shortAndLong, help: ArgumentHelp("Where to write the plaintext (default: standard output).",
                                                   valueName: "out"))
    var output: String?

    @Option(name: .long, help: ArgumentHelp("An age identity file (AGE-SECRET-KEY-1… lines, as age-keygen writes) "
                                            + "instead of ours.", valueName: "file"))
    var identity: String?

    @Option(name: .long, help: ArgumentHelp("A file holding the passphrase of a file sealed with one (age -p).",
                                            valueName: "file"))
    var passphraseFile: String?

    @OptionGroup var policyOptions: PolicyOptions

    func run() throws {
        let identities = try self.identities()
        let input: FileDescriptor
        do {
            input = try FileDescriptor.openForReading(file)
        } catch {
            throw fail("cannot read \(file): \(error)", .noInput)
        }
        do {
            if let output {
                try FileSystem.writeAtomically(output) { destination in
                    var sink = destination
                    try Age.decrypt(with: identities, from: input, to: &sink)
                }
            } else {
                var sink = StandardOutput()
                try Age.decrypt(with: identities, from: input, to: &sink)
            }
        } catch let error as AgeError {
            throw fail("cannot open \(file) (\(error.kind)): \(error)", .dataError)
        } catch {
            throw fail("cannot open \(file): \(error)", .ioError)
        }
        printError("connectxpert: opened \(file)\(output.map { " into \($0)" } ?? ""); not signed: sender unknown")
    }

    private func identities() throws -> [any AgeIdentity] {
        if let passphraseFile {
            guard let passphrase = try? SecretFile.read(passphraseFile) else {
                throw fail("cannot read \(passphraseFile)", .noInput)
            }
            return [ScryptIdentity(passphrase: Array(passphrase.utf8))]
        }
        guard let identity else { return [try loadIdentity(try policyOptions.load()).age] }
        let text: String
        do { text = String(decoding: try FileSystem.readFile(identity), as: UTF8.self) } catch {
            throw fail("cannot read \(identity): \(error)", .noInput)
        }
        let found = text.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("AGE-SECRET-KEY-1") }
            .compactMap { X25519Identity(String($0)) }
        guard !found.isEmpty else { throw fail("\(identity) holds no AGE-SECRET-KEY-1… identity", .dataError) }
        return found
    }
}

/// Standard output as an age output.
private struct StandardOutput: AgeOutput {
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        try FileHandle.standardOutput.write(contentsOf: Data(bytes))
    }
}
