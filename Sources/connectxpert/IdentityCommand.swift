import ArgumentParser
import ConnectXpertPolicy
import ConnectXpertSeal
import ConnectXpertSystem
import ConnectXpertTransfer
import Foundation

struct IdentityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity",
        abstract: "Our identity: the key pairs that seal what is sent to us and sign what we send.",
        subcommands: [IdentityInitCommand.self, IdentityShowCommand.self])
}

struct IdentityInitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Make our key pairs in the policy's identity.keys folder (never over existing ones).",
        discussion: """
            An X25519 key as age-keygen writes it (age.key) and an Ed25519 signing key in OpenSSH's format \
            (signing.key, signing.key.pub). With identity.passphrase_file or passphrase_env, both key files are \
            sealed with that passphrase (age -d opens them with it).
            """)

    @OptionGroup var policyOptions: PolicyOptions

    func run() throws {
        let policy = try policyOptions.load()
        let keys = try makeIdentity(policy)
        print("made the identity \(policy.identity.id) in \(policy.identity.keys)")
        print(keys.summary)
        print(keys.age.recipient)
        _ = try askRunningAgent(policy: policy, signal: SIGHUP, to: "take it and publish its key card")
    }
}

struct IdentityShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print our signing key's fingerprint (as ssh-keygen -lf does) and our age recipient.")

    @OptionGroup var policyOptions: PolicyOptions

    func run() throws {
        let keys = try loadIdentity(try policyOptions.load())
        print(keys.summary)
        print(keys.age.recipient)
    }
}

/// Makes the policy's identity; an existing one or a folder others can read ends with EX_CANTCREAT.
func makeIdentity(_ policy: Policy) throws -> IdentityKeys {
    let passphrase = try identityPassphrase(policy)
    do {
        return try IdentityKeys.create(in: policy.identity.keys, id: policy.identity.id, passphrase: passphrase)
    } catch let error as IdentityError {
        throw fail(error.description, .cantCreate)
    }
}

/// The policy's identity; a missing or unusable one ends with EX_NOINPUT or EX_NOPERM.
func loadIdentity(_ policy: Policy) throws -> IdentityKeys {
    let passphrase = try identityPassphrase(policy)
    do {
        return try IdentityKeys.load(from: policy.identity.keys, passphrase: passphrase)
    } catch let error as IdentityError {
        throw fail(error.description, FileSystem.exists(policy.identity.keys) ? .noPermission : .noInput)
    }
}

/// The passphrase the policy names for the key files, if it names one.
private func identityPassphrase(_ policy: Policy) throws -> [UInt8]? {
    do {
        return try Agent.passphrase(for: policy)
    } catch {
        throw fail("\(error)", .config)
    }
}

