import ConnectXpertSystem
import ConnectXpertTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A spool and policy for screen sharing on a test X display.
private struct ShareAgent {
    let root = NSTemporaryDirectory() + "cx-screen-" + UUID().uuidString.prefix(8)
    let display: XTestDisplay
    let port: Int

    init(_ display: XTestDisplay, screenShare: String = "") throws {
        self.display = display
        port = try freePort()
        try FileSystem.createDirectories(root)
        try FileSystem.writeFileAtomically(passwordFile, contents: Array("secret-pw\n".utf8), mode: 0o600)
        try FileSystem.writeFileAtomically(joinPath(root, "wrong"), contents: Array("nope\n".utf8), mode: 0o600)
        try write(joinPath(root, "policies.yaml"), """
            identity:
              id: alice
            remotes:
              drop:
                url: file:drop
            jobs:
              screen_share:
                display: "\(display.name)"
                listen: 127.0.0.1:\(port)
                password_file: password
            \(screenShare)
            """)
    }

    var passwordFile: String { joinPath(root, "password") }
    var server: String { "127.0.0.1::\(port)" }
    var status: String { joinPath(root, "spool/jobs/screen-share.status") }

    /// `screen share` running, once it listens.
    func share(_ arguments: [String] = []) throws -> AgentProcess {
        let job = try AgentProcess(["screen", "share"] + arguments, in: root)
        let pid = "\(job.process.processIdentifier)"
        #expect(eventually { statusFields()["state"] == "running" && statusFields()["pid"] == pid }, "\(job.log)")
        return job
    }

    func statusFields() -> [String: String] {
        var fields: [String: String] = [:]
        for line in ((try? String(contentsOfFile: status, encoding: .utf8)) ?? "").split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                .trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        return fields
    }
}

private func expectSamePicture(_ first: String, _ second: String) throws {
    let result = try xhelper(["same", first, second])
    #expect(result.status == 0, "\(result.output)\(result.errors)")
}

@Suite(.serialized, .enabled(if: canRunScreenTests, "needs Xvfb"))
struct ScreenShareTests {
    @Test func viewersSeeTheScreenPixelForPixelInRawZRLEAndHextile() throws {
        let display = try XTestDisplay()
        let agent = try ShareAgent(display, screenShare: "    once: false\n")
        let job = try agent.share()
        let truth = try display.screenshot()
        for encoding in ["raw", "zrle", "hextile"] {
            let shot = joinPath(agent.root, "\(encoding).png")
            let result = try xhelper(["vnccapture", agent.server, shot, encoding, "secret-pw"])
            #expect(result.status == 0, "\(result.errors)")
            try expectSamePicture(shot, truth)
        }
        let snapshot = try connectxpert("screen", "snapshot", "127.0.0.1:\(agent.port)", "--out", "snap.png",
                                        "--password-file", "password", in: agent.root)
        #expect(snapshot.status == 0, "\(snapshot.stderr)")
        #expect(snapshot.stdout.hasPrefix("saved snap.png (640x480, 'connectxpert "))
        try expectSamePicture(joinPath(agent.root, "snap.png"), truth)
        job.signal(SIGTERM)
        #expect(job.wait(timeout: 20).stdout.hasSuffix("screen share ended: stopped by a signal\n"))
        #expect(agent.statusFields()["state"] == "ended")
    }

    /// Debian's noVNC in headless Chromium, through the agent's own web port and through websockify:
    /// the canvas is the X screen pixel for pixel (every pixel opaque), a click and typed text reach
    /// an X client, and a wrong password gets noVNC's refusal with the agent's reason.
    @Test(arguments: ["the agent's web port", "websockify"])
    func noVNCInABrowserShowsTheScreenAndTakesInput(through path: String) throws {
        let display = try XTestDisplay()
        let webPort = try freePort()
        let agent = try ShareAgent(display, screenShare: "    once: false\n    websocket: 127.0.0.1:\(webPort)\n")
        let job = try agent.share()
        defer { withExtendedLifetime(job) {} }
        let page = "http://127.0.0.1:\(webPort)/vnc.html"
        #expect(eventually { (try? String(contentsOfFile: job.stdoutPath, encoding: .utf8))?
            .hasSuffix("\nin a browser: \(page)\n") == true })
        let proxy = path == "websockify" ? try Websockify(to: agent.port) : nil
        defer { proxy?.stop() }
        let opened = proxy.map { "http://127.0.0.1:\($0.port)/vnc.html" } ?? page
        let truth = try display.screenshot()
        let shown = try novnc([opened, "--password", "secret-pw", "--expect", truth, "--click", "100,200",
                               "--type", "Hi there!"])
        let name = "connectxpert \(ProcessInfo.processInfo.hostName)\(display.name)"
        #expect(shown.output == "status: Connected (unencrypted) to \(name)\nsame\ndone\n", "\(shown.errors)")
        #expect(eventually { display.events().contains("release 1 100 200") }, "\(display.events())")
        #expect(display.events().contains("press 1 100 200"))
        #expect(eventually { display.typed() == "Hi there!" }, "\(display.events())")
        let refused = try novnc([opened, "--password", "wrong"])
        #expect(refused.output == "status: New connection has been rejected with reason: wrong password\n",
                "\(refused.errors)")
    }

    /// The web port serves noVNC's files and nothing outside them.
    @Test func theWebPortServesTheNoVNCPageOnly() throws {
        let display = try XTestDisplay()
        let webPort = try freePort()
        let agent = try ShareAgent(display, screenShare: "    once: false\n    websocket: 127.0.0.1:\(webPort)\n")
        let job = try agent.share()
        defer { withExtendedLifetime(job) {} }
        func status(_ path: String) throws -> String {
            try runProgram("/usr/bin/curl", ["-s", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
                                             "http://127.0.0.1:\(webPort)\(path)"]).output
        }
        #expect(try status("/vnc.html") == "200")
        #expect(try status("/core/rfb.js") == "200")
        #expect(try status("/") == "302")
        for path in ["/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/app/../../../etc/passwd", "/missing.html"] {
            #expect(try status(path) == "404", "\(path)")
        }
        let page = try runProgram("/usr/bin/curl", ["-s", "http://127.0.0.1:\(webPort)/vnc.html"]).output
        #expect(page == (try String(contentsOfFile: "/usr/share/novnc/vnc.html", encoding: .utf8)))
    }

    @Test func pointerAndKeysReachTheXServer() throws {
        let display = try XTestDisplay()
        let agent = try ShareAgent(display)
        let job = try agent.share()
        defer { withExtendedLifetime(job) {} }
        let result = try vncdo(["-s", agent.server, "-p", "secret-pw", "move", "100", "200", "click", "1", "type", "Hello!"])
        #expect(result.status == 0, "\(result.errors) \(result.output)")
        #expect(eventually { display.events().contains("release 1 100 200") })
        #expect(display.events().contains("press 1 100 200"))
        #expect(eventually { display.typed() == "Hello!" }, "\(display.events())")
    }

    @Test func viewOnlyIgnoresInputAndPastedTextReachesTheClipboardOtherwise() throws {
        let display = try XTestDisplay()
        let viewOnly = try ShareAgent(display, screenShare: "    once: false\n")
        let job = try viewOnly.share(["--view-only"])
        #expect(try vncdo(["-s", viewOnly.server, "-p", "secret-pw", "move", "50", "60", "click", "1", "type", "x"]).status == 0)
        // The reader handles a viewer's messages in order, then says it left: all of them were seen.
        #expect(eventually { job.log.contains("viewer left") }, "\(job.log)")
        #expect(!display.events().contains { $0.hasPrefix("press") || $0.hasPrefix("text") }, "\(display.events())")
        job.signal(SIGTERM)
        job.wait(timeout: 20)

        let agent = try ShareAgent(display, screenShare: "    once: false\n")
        let pasteJob = try agent.share()
        defer { withExtendedLifetime(pasteJob) {} }
        try write(joinPath(agent.root, "clip.txt"), "pasted café")
        #expect(try vncdo(["-s", agent.server, "-p", "secret-pw", "pastefile", joinPath(agent.root, "clip.txt")]).status == 0)
        #expect(eventually { (try? xhelper(["clipboard", display.name]).output) == "pasted café" })
    }

    @Test func wrongPasswordIsRefusedAndLogged() throws {
        let display = try XTestDisplay()
        let agent = try ShareAgent(display, screenShare: "    once: false\n")
        let job = try agent.share()
        let refused = try vncdo(["-s", agent.server, "-p", "nope", "capture", joinPath(agent.root, "x.png")])
        #expect(refused.status != 0)
        #expect(eventually { job.log.contains("viewer refused") }, "\(job.log)")
        #expect(job.log.contains("authentication failed: wrong VNC password from 127.0.0.1:"))
        let snapshot = try connectxpert("screen", "snapshot", "127.0.0.1:\(agent.port)", "--out", "x.png",
                                        "--password-file", "wrong", in: agent.root)
        #expect(snapshot.status == 77)
        #expect(snapshot.stderr == "connectxpert: authentication failed: 127.0.0.1:\(agent.port): wrong password\n")
    }

    @Test func jobEndsAtItsDurationAndWhenItsViewerLeaves() throws {
        let display = try XTestDisplay()
        let agent = try ShareAgent(display)
        let timed = try agent.share(["--duration", "1s"])
        let outcome = timed.wait(timeout: 20)
        #expect(outcome.status == 0)
        #expect(outcome.stdout.hasSuffix("screen share ended: its duration (1s) is over\n"))

        let once = try agent.share()
        #expect(eventually { agent.statusFields()["viewers"] == "0" && agent.statusFields()["state"] == "running" })
        #expect(agent.statusFields()["address"] == "127.0.0.1:\(agent.port)")
        #expect(try vncdo(["-s", agent.server, "-p", "secret-pw", "capture", joinPath(agent.root, "x.png")]).status == 0)
        #expect(once.wait(timeout: 20).stdout.hasSuffix("screen share ended: its viewer left (once: true)\n"))
        #expect(agent.statusFields()["state"] == "ended")

        let tooLong = try connectxpert("screen", "share", "--duration", "2h", in: agent.root)
        #expect(tooLong.status == 64)
        #expect(tooLong.stderr == "connectxpert: a screen share may last 1h at most (jobs.screen_share.max_duration), not 2h\n")
        let open = try connectxpert("screen", "share", "--listen", "0.0.0.0:\(agent.port)", in: agent.root)
        #expect(open.status == 64)
        #expect(open.stderr.contains("the policy lets screen shares listen on loopback addresses and on 127.0.0.1 only"))
    }

    @Test func screenStopEndsTheRunningShare() throws {
        let display = try XTestDisplay()
        let agent = try ShareAgent(display, screenShare: "    once: false\n")
        #expect(try connectxpert("screen", "stop", in: agent.root).stdout == "no screen share is running\n")
        let job = try agent.share()
        let second = try connectxpert("screen", "share", in: agent.root)
        #expect(second.status == 75)
        #expect(second.stderr == "connectxpert: a screen share is already running (pid \(job.process.processIdentifier), "
            + "127.0.0.1:\(agent.port)); 'connectxpert screen stop' ends it\n")
        let stop = try connectxpert("screen", "stop", in: agent.root)
        #expect(stop.stdout == "stopped the screen share at 127.0.0.1:\(agent.port) (pid \(job.process.processIdentifier))\n")
        #expect(job.wait(timeout: 20).status == 0)
    }

    @Test func requestFileStartsTheJobInTheDaemon() throws {
        let display = try XTestDisplay()
        let agent = try ShareAgent(display)
        let daemon = try AgentProcess(["run"], in: agent.root)
        #expect(eventually { daemon.log.contains("watching the outbox") })
        let request = joinPath(agent.root, "spool/jobs/screen-share.yaml")
        try write(request + ".tmp", "duration: 10m\nview_only: true\n")
        try FileSystem.rename(request + ".tmp", to: request)
        #expect(eventually { agent.statusFields()["state"] == "running" }, "\(daemon.log)")
        let pid = Int32(agent.statusFields()["pid"] ?? "") ?? 0
        #expect(pid > 0 && pid != daemon.process.processIdentifier)
        let snapshot = try connectxpert("screen", "snapshot", "127.0.0.1:\(agent.port)", "--out", "s.png",
                                        "--password-file", "password", in: agent.root)
        #expect(snapshot.status == 0, "\(snapshot.stderr)")
        // The job ended when its viewer left (once), and removed its request.
        #expect(eventually { agent.statusFields()["state"] == "ended" && !FileSystem.exists(request) }, "\(daemon.log)")

        // Removing a request ends its job.
        try write(request, "duration: 10m\n")
        #expect(eventually { agent.statusFields()["state"] == "running" }, "\(agent.statusFields()) \(daemon.log)")
        try FileSystem.remove(request)
        #expect(eventually { agent.statusFields()["state"] == "ended" }, "\(daemon.log)")

        // A bad request is answered in its status file.
        try write(request, "duration: 10m\nlisten: 10.1.2.3:5900\n")
        #expect(eventually { agent.statusFields()["state"] == "failed" })
        #expect(agent.statusFields()["error"]?.contains("listen on loopback addresses") == true, "\(agent.statusFields())")
        // The job writes its status before it removes its request (the daemon ends a job whose request goes).
        #expect(eventually { !FileSystem.exists(request) })
        daemon.signal(SIGTERM)
        #expect(daemon.wait(timeout: 30).status == 0)
    }

    @Test func garbageFromOneViewerClosesThatViewerOnly() throws {
        let display = try XTestDisplay()
        let agent = try ShareAgent(display, screenShare: "    once: false\n")
        let job = try agent.share()
        // Not RFB at all, then a greeting cut short, then an unknown message after a good handshake.
        try rawSession(port: agent.port) { send, _ in send(Array("GET / HTTP/1.1\r\n\r\n".utf8)) }
        try rawSession(port: agent.port) { send, _ in send(Array("RFB 003.0".utf8)) }
        try rawSession(port: agent.port) { send, receive in
            _ = receive(12)
            send(Array("RFB 003.008\n".utf8))
            _ = receive(2)
            send([1])
        }
        #expect(eventually { job.log.contains("protocol error") }, "\(job.log)")
        let result = try xhelper(["vnccapture", agent.server, joinPath(agent.root, "after.png"), "zrle", "secret-pw"])
        #expect(result.status == 0, "\(result.errors)")
        try expectSamePicture(joinPath(agent.root, "after.png"), try display.screenshot())
    }
}

/// A TCP session driven by hand: `send` writes, `receive(n)` reads up to n bytes.
private func rawSession(port: Int, _ body: (_ send: ([UInt8]) -> Void, _ receive: (Int) -> [UInt8]) -> Void) throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw TestServerError(message: "cannot connect to port \(port)") }
    body({ bytes in _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }, { count in
        var buffer = [UInt8](repeating: 0, count: count)
        let read = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, count, 0) }
        return Array(buffer.prefix(max(0, read)))
    })
}
