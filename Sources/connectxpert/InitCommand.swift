import ArgumentParser
import ConnectXpertPolicy
import ConnectXpertSeal
import ConnectXpertSystem

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a starter policy (never over an existing file) and make our identity.",
        discussion: """
            The starter policy sends through, and receives from, a local drop folder named 'drop' beside it, made \
            if missing. The identity's key pairs are made as 'connectxpert identity init' makes them; keys \
            already there are kept.
            """)

    @Option(name: .long, help: "Our user ID.")
    var id: String

    @Option(name: .long, help: ArgumentHelp("Where received files go (a folder per sender is made below it).", valueName: "dir"))
    var inbox: String?

    @Option(name: .long, help: ArgumentHelp("The file to write.", valueName: "file"))
    var policy = "policies.yaml"

    func validate() throws {
        if let problem = Names.problem(withComponent: id) {
            throw ValidationError("'\(Names.printable(id))' cannot be an ID: \(problem)")
        }
    }

    func run() throws {
        if FileSystem.exists(policy) {
            throw fail("\(policy) exists already; it was not changed", .cantCreate)
        }
        let destination = inbox.map { joinPath($0, "{sender}") } ?? "{spool}/inbox/{sender}"
        do {
            try FileSystem.writeFileAtomically(policy, contents: Array(StarterPolicy.text(id: id, destination: destination).utf8))
        } catch {
            throw fail("cannot write \(policy): \(error)", .cantCreate)
        }
        print("wrote \(policy); check it with: connectxpert check --policy \(policy)")
        let written = try PolicyLoader.load(path: policy)
        for remote in written.remotes.values.sorted(by: { $0.name < $1.name })
        where remote.endpoint == .localDirectory && !FileSystem.exists(remote.path) {
            try FileSystem.createDirectories(remote.path)
            print("made the drop folder \(remote.path)")
        }
        guard !IdentityKeys.exists(in: written.identity.keys) else {
            print("kept the identity already in \(written.identity.keys)")
            return
        }
        let keys = try makeIdentity(written)
        print("made the identity \(id) in \(written.identity.keys)")
        print(keys.summary)
        print(keys.age.recipient)
    }
}

/// The policy `init` writes; the shipped policies.yaml is this text for the ID 'alice'.
enum StarterPolicy {
    static func text(id: String, destination: String) -> String {
        """
        # ConnectXpert policy. Check it with: connectxpert check --policy <this file>
        # Durations: 500ms, 30s, 5m, 2h, 1d. Sizes: 512KiB, 10MB, 2GiB.
        # Relative paths are relative to this file's folder.

        identity:
          id: \(id)                  # our user ID: the sender in the remote paths we write
          # keys: spool/.identity    # our key pairs (connectxpert identity init); mode 0700
          # passphrase_file: /etc/connectxpert/identity.passphrase   # seals the key files; or passphrase_env

        spool: spool                 # outbox/, inbox/, sent/, failed/ and .state/ live here

        remotes:
          drop:                      # the name the rules below use
            url: file:drop           # a local folder: file:///absolute/path or file:relative/path
            max_connections: 4
            timeout: 30s
            # Secrets are never written here; name a file (mode 0600) or an environment variable:
            # password_file: /etc/connectxpert/drop.password
            # password_env: DROP_PASSWORD
            # key_file: ~/.ssh/id_ed25519

        outbox:                      # files in spool/outbox/<recipient>/; the first rule that matches is used
          - recipients: ["*"]        # globs on the recipient's ID
            remote: drop
            remote_path: "{sender}->{recipient}/{path}"   # also {name} and {date}
            include: ["*"]           # globs; without a '/' they match the file name in any sub-folder
            exclude: []
            after: delete            # delete | archive (to spool/sent/) | keep (each version sent once)
            conflict: rename         # rename ("name (1).ext") | overwrite | fail
            # max_size: 2GiB         # larger files go to spool/failed/ with a .reason
            retry:
              initial: 5s            # the first pause after a transient failure; doubles, with jitter
              max: 10m
              give_up_after: 3d      # then the file goes to spool/failed/

        inbox:                       # remote drops addressed to us
          - remote: drop
            senders: ["*"]
            remote_folder: "{sender}->{recipient}"
            every: 30s
            destination: "\(destination)"
            delete_remote: true      # delete the remote copy once ours is stored
            conflict: rename

        # Mail: queued *.eml files in spool/mail/outbox/ go out over SMTP; IMAP mail comes into a Maildir.
        # mail:
        #   from: \(id)@example.org
        #   smtp:
        #     url: smtp://mail.example.org:587    # STARTTLS required; smtps://host:465 for TLS from the start
        #     user: \(id)@example.org
        #     password_file: /etc/connectxpert/smtp.password
        #   inbox:
        #     - url: imaps://imap.example.org/INBOX
        #       user: \(id)@example.org
        #       password_file: /etc/connectxpert/imap.password
        #       every: 5m
        #       after: mark-seen               # mark-seen | delete | keep

        # Screen share (connectxpert screen share, or spool/jobs/screen-share.yaml with the daemon):
        # jobs:
        #   screen_share:
        #     display: ":0"
        #     listen: 127.0.0.1:5900           # loopback unless written otherwise
        #     max_duration: 1h
        #     password_file: /etc/connectxpert/vnc.password

        """
    }
}
