import ArgumentParser
import ConnectXpertPolicy
import ConnectXpertScreen
import ConnectXpertSpool
import ConnectXpertSystem
import Foundation
import Yams
#if canImport(Glibc)
import Glibc
#endif

struct ScreenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "screen",
        abstract: "Share this machine's X display with VNC viewers, or take a frame from a VNC server.",
        subcommands: [ScreenShareCommand.self, ScreenStopCommand.self, ScreenSnapshotCommand.self])
}

struct ScreenShareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "share",
        abstract: "Serve an X display over RFB (VNC) until the duration ends or the viewer leaves.",
        discussion: """
            Defaults and limits come from jobs.screen_share in the policy. Viewers log in with the VNC \
            password in the password file; without one, only a share on a loopback address is allowed, and \
            only with auth: none in the policy. The job's status (address, started, expires, viewers) is \
            kept in spool/jobs/screen-share.status. Ends on Ctrl-C, SIGTERM or 'connectxpert screen stop'.
            """)

    @Option(help: ArgumentHelp("The X display. Default: jobs.screen_share.display, else :0.", valueName: "display"))
    var display: String?
    @Option(help: ArgumentHelp("Where viewers connect. Default: jobs.screen_share.listen, else 127.0.0.1:5900.",
                               valueName: "host:port"))
    var listen: String?
    @Option(help: ArgumentHelp("How long to share (30m, 1h). Default and limit: jobs.screen_share.max_duration.",
                               valueName: "time"))
    var duration: String?
    @Flag(help: "Viewers see the screen but cannot type or click.")
    var viewOnly = false
    @Option(help: ArgumentHelp("The VNC password's file (mode 0600).", valueName: "file"))
    var passwordFile: String?
    @Option(help: .hidden)
    var request: String?
    @OptionGroup var policyOptions: PolicyOptions
    @OptionGroup var loggingOptions: LoggingOptions

    func validate() throws {
        if let duration, TimeSpan(parsing: duration) == nil {
            throw ValidationError("'\(duration)' is not a duration such as 30m or 1h")
        }
        if request != nil && (display != nil || listen != nil || self.duration != nil || viewOnly || passwordFile != nil) {
            throw ValidationError("--request takes its settings from the request file only")
        }
    }

    func run() throws {
        let logger = loggingOptions.bootstrap()
        let policy = try policyOptions.load()
        let spool = Spool(root: policy.spool)
        let document: ScreenShareDocument
        let statusFile: String
        if let request {
            statusFile = ScreenShareStatus.path(forRequest: request)
            do {
                document = try PolicyLoader.screenShareRequest(path: request)
            } catch {
                try? ScreenShareStatus.write(["state": "failed", "error": "\(error)"], to: statusFile)
                _ = try? FileSystem.removeIfPresent(request)
                throw fail("\(error)", .dataError)
            }
        } else {
            var flags = ScreenShareDocument()
            flags.display = display
            flags.listen = listen
            flags.duration = duration.flatMap(TimeSpan.init(parsing:))
            flags.viewOnly = viewOnly ? true : nil
            flags.passwordFile = passwordFile.map { absolutePath($0, relativeTo: FileSystem.currentDirectory) }
            document = flags
            statusFile = joinPath(spool.jobs, "screen-share.status")
        }
        // The request goes when the job ends, unless it was replaced by a new one meanwhile.
        let requestVersion = try? request.flatMap(FileSystem.status)
        defer {
            if let request, let requestVersion, let now = try? FileSystem.status(request), now.isSameVersion(as: requestVersion) {
                _ = try? FileSystem.removeIfPresent(request)
            }
        }
        let options: ScreenShareOptions
        do {
            options = try ScreenShareOptions.resolve(document, policy: policy.screenShare)
        } catch {
            try? ScreenShareStatus.write(["state": "failed", "error": "\(error)"], to: statusFile)
            throw fail("\(error)", .usage)
        }
        if let running = runningShares(in: spool).first(where: { $0.status == statusFile }) {
            throw fail("a screen share is already running (pid \(running.pid), \(running.address)); "
                + "'connectxpert screen stop' ends it", .tempFail)
        }
        try? FileSystem.createDirectories(spool.jobs)
        let job = ScreenShareJob(options: options, statusFile: statusFile, logger: logger)
        let signals = [SIGTERM, SIGINT, SIGHUP].map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { job.stop(reason: number == SIGINT ? "interrupted" : "stopped by a signal") }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        do {
            let reason = try job.run { server in
                let until = Date().addingTimeInterval(options.duration.seconds)
                print("sharing display \(options.display) at \(ListenAddress(host: options.listen.host, port: server.boundPort)) "
                    + "until \(ISO8601DateFormatter().string(from: until))"
                    + (options.password == nil ? " without a password" : " (VNC password)")
                    + (options.viewOnly ? ", view only" : ""))
                if let web = job.webAddress(of: server) {
                    print(web.hasPrefix("http") ? "in a browser: \(web)" : "RFB over WebSocket at \(web) "
                        + "(install Debian's novnc package for a page to open in a browser)")
                }
                fflush(nil)  // every stream: the line reaches a pipe at once
            }
            print("screen share ended: \(reason)")
        } catch let error as RFBError {
            if case .display = error { throw fail("\(error)", .unavailable) }
            throw fail("\(error)", .unavailable)
        }
    }
}

/// A screen share whose status file says it runs, with a live process.
struct RunningShare {
    let status: String
    let pid: Int32
    let address: String
}

/// The screen shares running on the spool, from their status files in `jobs/`.
func runningShares(in spool: Spool) -> [RunningShare] {
    let names = (try? FileSystem.contents(of: spool.jobs)) ?? []
    return names.filter { $0.hasSuffix(".status") }.compactMap { name in
        let path = joinPath(spool.jobs, name)
        guard let text = try? FileSystem.readFile(path),
              let fields = try? YAMLDecoder().decode([String: String].self, from: String(decoding: text, as: UTF8.self)),
              fields["state"] == "running", let pid = fields["pid"].flatMap(Int32.init), kill(pid, 0) == 0 else { return nil }
        return RunningShare(status: path, pid: pid, address: fields["address"] ?? "")
    }
}

struct ScreenStopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "End the screen shares running on this spool.")

    @OptionGroup var policyOptions: PolicyOptions

    func run() throws {
        let policy = try policyOptions.load()
        let shares = runningShares(in: Spool(root: policy.spool))
        guard !shares.isEmpty else {
            print("no screen share is running")
            return
        }
        for share in shares {
            kill(share.pid, SIGTERM)
            guard waitForExit(of: share.pid, timeout: 10) else {
                throw fail("the screen share at \(share.address) (pid \(share.pid)) did not end within 10 s of "
                           + "SIGTERM; 'kill -9 \(share.pid)' ends it", .tempFail)
            }
            print("stopped the screen share at \(share.address) (pid \(share.pid))")
        }
    }
}

struct ScreenSnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Save one frame of a VNC server's screen as a PNG file.")

    @Argument(help: ArgumentHelp("The server.", valueName: "host:port"))
    var server: String
    @Option(help: ArgumentHelp("The PNG file to write.", valueName: "file"))
    var out: String
    @Option(help: ArgumentHelp("The VNC password's file.", valueName: "file"))
    var passwordFile: String?

    func validate() throws {
        if ListenAddress(parsing: server) == nil { throw ValidationError("'\(server)' is not host:port, such as 127.0.0.1:5900") }
    }

    func run() throws {
        let address = ListenAddress(parsing: server)!
        let password: String?
        do { password = try passwordFile.map(SecretFile.read) } catch {
            throw fail("cannot read the password: \(error)", .noInput)
        }
        do {
            let client = try RFBClient(host: address.host, port: address.port, password: password)
            try client.update()
            try FileSystem.writeFileAtomically(out, contents: PNGWriter.png(client.frame))
            print("saved \(out) (\(client.frame.width)x\(client.frame.height), '\(client.desktopName)')")
        } catch let error as RFBError {
            switch error {
            case .authenticationFailed: throw fail("\(error)", .noPermission)
            case .protocolViolation: throw fail("\(error)", .protocolError)
            default: throw fail("\(error)", .unavailable)
            }
        } catch {
            throw fail("cannot write \(out): \(error)", .cantCreate)
        }
    }
}
