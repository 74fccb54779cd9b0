import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// `connectxpert open` on every C2SP conformance vector of the features offered: its exit code
/// and the kind it names are the vector's `expect`, and what it wrote to standard output hashes to
/// the vector's `payload` (all that was released before a failure).
@Suite struct OpenConformanceTests {
    static let anyIdentity = "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0"

    @Test(arguments: AgeVector.all.filter(\.isOffered))
    func openGivesEachVectorsExpectedOutcome(vector: AgeVector) throws {
        let folder = try temporaryFolder()
        try FileSystem.writeFileAtomically(joinPath(folder, "file.age"), contents: vector.file)
        var arguments = ["open", "file.age"]
        if let passphrase = vector.passphrases.first {
            try FileSystem.writeFileAtomically(joinPath(folder, "passphrase"), contents: Array(passphrase.utf8),
                                               mode: 0o600)
            arguments += ["--passphrase-file", "passphrase"]
        } else {
            // A vector without an identity fails before one is needed: any will do.
            let identities = vector.identities.isEmpty ? [Self.anyIdentity] : vector.identities
            try FileSystem.writeFileAtomically(joinPath(folder, "identity"),
                                               contents: Array(identities.joined(separator: "\n").utf8))
            arguments += ["--identity", "identity"]
        }
        let process = try AgentProcess(arguments, in: folder)
        let outcome = process.wait()
        if vector.expect == "success" {
            #expect(outcome.status == 0, "\(outcome.stderr)")
        } else {
            #expect(outcome.status == 65, "\(outcome.stderr)")
            let kind = outcome.stderr.split(separator: "(").dropFirst().first?.split(separator: ")").first
            #expect(kind.map { AgeVector.expectation(ofKind: String($0)) } == vector.expect, "\(outcome.stderr)")
        }
        let released = try runChecked("/usr/bin/sha256sum", [process.stdoutPath]).prefix(64)
        let nothing = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        #expect(String(released) == vector.payload ?? nothing)
    }
}
