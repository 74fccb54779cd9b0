import ConnectXpertAge
import ConnectXpertSeal
import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing

/// Our identity's folder: made private, refused when others can read it, and sealed with a
/// passphrase that `age -d` takes too.
@Suite struct IdentityKeysTests {
    let folder = NSTemporaryDirectory() + "cx-identity-" + UUID().uuidString.prefix(8) + "/keys"

    @Test func keysAreMadeOnceAndReadBack() throws {
        let made = try IdentityKeys.create(in: folder, id: "alice", passphrase: nil)
        #expect(try FileSystem.status(folder)?.mode == 0o700)
        #expect(try FileSystem.status(joinPath(folder, "age.key"))?.mode == 0o600)
        #expect(try FileSystem.status(joinPath(folder, "signing.key"))?.mode == 0o600)
        let loaded = try IdentityKeys.load(from: folder, passphrase: nil)
        #expect(loaded.age.encoded == made.age.encoded)
        #expect(loaded.signing.publicKey == made.signing.publicKey)
        #expect(loaded.summary == "256 \(made.signing.publicKey.fingerprint) alice (ED25519)")
        #expect(throws: IdentityError.self) { try IdentityKeys.create(in: folder, id: "alice", passphrase: nil) }
        #expect(try IdentityKeys.load(from: folder, passphrase: nil).age.encoded == made.age.encoded,
                "a second init changes nothing")
    }

    @Test func aFolderOrKeyFileOthersCanReadIsRefused() throws {
        _ = try IdentityKeys.create(in: folder, id: "alice", passphrase: nil)
        try FileSystem.setPermissions(folder, mode: 0o755)
        #expect { try IdentityKeys.load(from: folder, passphrase: nil) } throws: {
            "\($0)" == "the folder \(folder) can be read by others (mode 755); "
                + "its keys are not used until 'chmod 700 \(folder)'"
        }
        try FileSystem.setPermissions(folder, mode: 0o700)
        try FileSystem.setPermissions(joinPath(folder, "signing.key"), mode: 0o644)
        #expect { try IdentityKeys.load(from: folder, passphrase: nil) } throws: {
            "\($0)".hasPrefix("the key file \(folder)/signing.key can be read by others (mode 644)")
        }
    }

    @Test func aPassphraseSealsTheKeyFilesAsAgeFilesThatAgeOpens() throws {
        let passphrase = "a long passphrase"
        let made = try IdentityKeys.create(in: folder, id: "alice", passphrase: Array(passphrase.utf8), workFactor: 12)
        let sealed = try FileSystem.readFile(joinPath(folder, "age.key"))
        #expect(sealed.starts(with: Array("age-encryption.org/v1\n-> scrypt ".utf8)))
        #expect(!String(decoding: sealed, as: UTF8.self).contains("AGE-SECRET-KEY"))
        #expect(try IdentityKeys.load(from: folder, passphrase: Array(passphrase.utf8)).age.encoded == made.age.encoded)
        #expect { try IdentityKeys.load(from: folder, passphrase: nil) } throws: {
            "\($0)" == "\(folder)/age.key is sealed with a passphrase: name it with identity.passphrase_file or "
                + "identity.passphrase_env"
        }
        #expect { try IdentityKeys.load(from: folder, passphrase: Array("wrong".utf8)) } throws: {
            "\($0)" == "\(folder)/age.key: the passphrase is wrong"
        }
        let opened = try runProgram("/usr/bin/script", ["-qec", "/usr/bin/age -d \(folder)/age.key", "/dev/null"],
                                    input: Array("\(passphrase)\n".utf8))
        #expect(opened.status == 0)
        #expect(opened.output.contains(made.age.encoded))
    }
}
