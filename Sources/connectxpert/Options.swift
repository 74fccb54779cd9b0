import ArgumentParser
import ConnectXpertPolicy
import ConnectXpertSystem
import Foundation
import Logging

/// `--policy F`, shared by every command that reads the policy.
struct PolicyOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The policy file. Default: $CONNECTXPERT_POLICY, else ./policies.yaml if it exists, else /etc/connectxpert/policies.yaml.",
        valueName: "file"))
    var policy: String?

    var path: String {
        if let policy { return policy }
        if let fromEnvironment = ProcessInfo.processInfo.environment["CONNECTXPERT_POLICY"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return FileSystem.exists("policies.yaml") ? "policies.yaml" : "/etc/connectxpert/policies.yaml"
    }

    /// Loads the policy; an invalid one is reported like `check` does and ends with EX_CONFIG.
    func load() throws -> Policy {
        do {
            return try PolicyLoader.load(path: path)
        } catch let errors as PolicyErrors {
            printError(errors.description)
            throw ExitCode(SysExit.config.rawValue)
        }
    }
}

/// `--log-level`, for commands that log.
struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    /// Sends swift-log output to standard error; called once, by the command that runs.
    func bootstrap() -> Logger {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = OneLineLogHandler(StreamLogHandler.standardError(label: label))
            handler.logLevel = level
            return handler
        }
        return Logger(label: "connectxpert")
    }
}

/// One log line per event, whatever the names and server texts in it: the message and every
/// metadata value are written with `Names.printable`, so a file name holding a newline cannot end
/// the line and forge the next one.
struct OneLineLogHandler<Handler: LogHandler>: LogHandler {
    private var handler: Handler

    init(_ handler: Handler) { self.handler = handler }

    var logLevel: Logger.Level {
        get { handler.logLevel }
        set { handler.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { handler.metadata }
        set { handler.metadata = newValue.mapValues(Self.printable) }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { handler[metadataKey: key] }
        set { handler[metadataKey: key] = newValue.map(Self.printable) }
    }

    func log(event: LogEvent) {
        var event = event
        event.message = "\(Names.printable(event.message.description))"
        event.metadata = event.metadata?.mapValues(Self.printable)
        handler.log(event: event)
    }

    private static func printable(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        .string(Names.printable(value.description))
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
