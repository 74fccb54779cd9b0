import ArgumentParser
import ConnectXpertAge
import ConnectXpertJournal
import ConnectXpertPolicy
import ConnectXpertSeal
import ConnectXpertSpool
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
        let manifest = try vouchingManifest(identities)
        do {
            if let output {
                try FileSystem.writeAtomically(output) { destination in
                    try decrypt(input, with: identities, to: destination, checking: manifest?.manifest)
                }
            } else {
                try decrypt(input, with: identities, to: StandardOutput(), checking: manifest?.manifest)
            }
        } catch let error as AgeError {
            throw fail("cannot open \(file) (\(error.kind)): \(error)", .dataError)
        } catch let refusal as SealRefusal {
            throw fail("cannot open \(file): \(refusal)", .dataError)
        } catch {
            throw fail("cannot open \(file): \(error)", .ioError)
        }
        printError("connectxpert: opened \(file)\(output.map { " into \($0)" } ?? ""); "
                   + (manifest?.said ?? "not signed: sender unknown"))
    }

    /// Decrypts into `output`; with a manifest, the plaintext must be the one it names.
    private func decrypt(_ input: FileDescriptor, with identities: [any AgeIdentity], to output: some AgeOutput,
                         checking manifest: Manifest?) throws {
        let digests = Digests(count: 1, concurrent: Digests.worthAThread(try input.status().size))
        var sink = HashingOutput(output, into: digests, as: 0)
        try Age.decrypt(with: identities, from: input, to: &sink)
        if let manifest, digests.finish()[0] != manifest.sha256 {
            throw SealRefusal.tampered("the opened file is not the one its manifest names (its hash differs)")
        }
    }

    /// For a sealed data object (`<name>.data`) with its manifest beside it, as on a drop: the
    /// manifest, checked against the pinned key of the peer it names, the data object's hash, and
    /// what to say of who sealed it. Nil for any other file.
    private func vouchingManifest(_ identities: [any AgeIdentity]) throws -> (manifest: Manifest, said: String)? {
        let object = lastComponent(of: file)
        guard object.hasSuffix(".data") else { return nil }
        let manifestPath = String(file.dropLast(".data".count)) + ".manifest"
        guard let sealed = try? FileSystem.readFile(manifestPath) else { return nil }
        do {
            let signed = try SignedManifest(sealed, with: identities)
            let manifest = signed.content
            guard manifest.object + ".data" == object else {
                throw SealRefusal.tampered("its manifest names the object \(manifest.object)")
            }
            guard try Digests.sha256(ofRest: try FileDescriptor.openForReading(file)) == manifest.dataSHA256 else {
                throw SealRefusal.tampered("the data object is not the one its manifest names (its hash differs)")
            }
            let policy = try? PolicyLoader.load(path: policyOptions.path)
            let journal = policy.flatMap { try? Journal(path: Spool(root: $0.spool).journal) }
            guard let pin = try journal?.peer(manifest.from),
                  let card = try? KeyCard(published: Array(pin.card.utf8), expectedID: manifest.from) else {
                return (manifest, "signed as \(manifest.from) (\(manifest.fromKey)), whose key is not pinned: "
                        + "not verified")
            }
            guard manifest.fromKey == card.fingerprint, signed.isSigned(by: card.signing) else {
                throw SealRefusal.forged("its manifest is not signed by \(manifest.from)'s pinned key "
                                         + "(\(card.fingerprint))")
            }
            return (manifest, "signed by \(manifest.from) (\(card.fingerprint)), whose key is pinned")
        } catch let refusal as SealRefusal {
            throw fail("cannot open \(file): \(refusal)", .dataError)
        }
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
