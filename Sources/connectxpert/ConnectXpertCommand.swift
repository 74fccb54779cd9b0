import ArgumentParser
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
            HistoryCommand.self, MailCommand.self, SendmailCommand.self, ScreenCommand.self, InitCommand.self, SystemdUnitsCommand.self,
        ])
}

/// Prints `connectxpert: message` to standard error and returns the sysexits code to throw.
func fail(_ message: String, _ code: SysExit) -> ExitCode {
    printError("connectxpert: \(message)")
    return ExitCode(code.rawValue)
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
