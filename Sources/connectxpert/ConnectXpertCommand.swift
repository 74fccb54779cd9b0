import ArgumentParser
import ConnectXpertJournal
import ConnectXpertSystem
import Foundation

@main
struct ConnectXpertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connectxpert",
        abstract: "A spool-directory transfer agent.",
        discussion: """
            Files dropped into spool/outbox/<recipient>/ are sent to the remote drop for that recipient; \
            files addressed to us are received into spool/inbox/<sender>/. policies.yaml says where and how.
            """,
        version: "0.1.0",
        subcommands: [
            RunCommand.self, CheckCommand.self, SendCommand.self, ReceiveCommand.self, StatusCommand.self,
            HistoryCommand.self, MailCommand.self, SendmailCommand.self, ScreenCommand.self, InitCommand.self,
            IdentityCommand.self, PeerCommand.self, MessageCommand.self, ChatCommand.self,
            OpenCommand.self, SystemdUnitsCommand.self,
        ])
}

/// Prints `connectxpert: message` to standard error and returns the sysexits code to throw.
func fail(_ message: String, _ code: SysExit) -> ExitCode {
    printError("connectxpert: \(message)")
    return ExitCode(code.rawValue)
}

/// The exit for a journal that is damaged: what happened, and what to do.
func damagedJournal(_ error: SQLiteError) -> ExitCode {
    fail("""
        the journal \(error.path) is damaged (\(error.message)). To go on, stop every agent on this spool and move \
        it aside with its -wal and -shm files (cd \(parentDirectory(of: error.path)) && for f in \
        \(lastComponent(of: error.path))*; do mv "$f" "$f.damaged"; done): the next run starts a new journal from \
        the spool and the drop as they are. Files in the outbox are then sent and files on the drop received; a \
        transfer that was under way may arrive twice (as 'name (1)').
        """, .ioError)
}

/// The spool's journal, for the commands that read it.
func openJournal(_ path: String) throws -> Journal {
    do {
        return try Journal(path: path)
    } catch let error as SQLiteError where error.isDamage {
        throw damagedJournal(error)
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
