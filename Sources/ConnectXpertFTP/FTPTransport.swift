import ConnectXpertCurl
import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation

/// A connection to an FTP server through libcurl: `ftp://` with AUTH TLS (required unless the
/// policy says `tls: off`), or `ftps://` (implicit TLS). Certificates are verified. Commands name
/// absolute paths, so they do not depend on the directory libcurl left the connection in.
public final class FTPTransport: Transport {
    public private(set) var features = RemoteFeatures()
    public let endpoint: String
    private let settings: FTPSettings
    private let remote: Remote
    private let password: String?
    private let curl: CurlEasy
    /// The login directory (PWD after login), to make the base folder absolute.
    private var home = ""
    private var knownFolders: Set<String> = []
    /// What the server's FEAT reply offers: MLSD listings (MLST) and setting times with MFMT.
    private var supportsMLSD = true
    private var supportsMFMT = true
    /// Whether a file was at this absolute path, as the last request (an upload told the name it is
    /// to be renamed to) found; any other request forgets it.
    private var checkedTarget: (path: String, exists: Bool)?

    /// Connects to an `ftp://` or `ftps://` remote, whose settings are `settings`.
    public init(remote: Remote, settings: FTPSettings,
                environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.settings = settings
        self.remote = remote
        let scheme = settings.tls == .implicit ? "ftps" : "ftp"
        endpoint = "\(scheme)://\(settings.user ?? "anonymous")@\(settings.host):\(settings.port)"
            + (remote.path.isEmpty ? "" : "/" + remote.path)
        password = try Secrets.firstPassword(in: remote.credentials, environment: environment, place: remote.name)
        if settings.active && settings.tls != .off && CurlEasy.libraryVersion >= 0x07_57_00 && CurlEasy.libraryVersion < 0x07_59_00 {
            throw TransportError(.refused, "\(endpoint): active mode with TLS does not work with libcurl "
                + "\(CurlEasy.libraryVersionText) (curl issue #10666, fixed in 7.89): remove active: true for passive "
                + "mode, which is the default")
        }
        curl = try CurlEasy()
        // Log in now: a refused login or TLS problem shows at connect time; learn the home and
        // what the server offers.
        try request(url: serverURL(""), action: "log in to", path: "") {
            $0.set(.noBody, 1)
            $0.set(.quote, lines: ["*FEAT"])
            $0.recordExchanges()  // FEAT's feature lines (" MLST …") are no reply lines of their own
        }
        home = curl.info(string: .ftpEntryPath) ?? "/"
        if let reply = curl.reply(to: "FEAT"), reply.hasPrefix("211") {
            let features = reply.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces).uppercased() }
            supportsMLSD = features.contains { $0.hasPrefix("MLST") }
            supportsMFMT = features.contains { $0 == "MFMT" || $0.hasPrefix("MFMT ") }
        }
    }

    // MARK: Paths

    /// The absolute server path of a path below the base folder.
    private func absolute(_ path: String) -> String {
        let base = remote.path.hasPrefix("/") ? remote.path : joinPath(home, remote.path)
        return path.isEmpty ? base : joinPath(base, path)
    }

    /// What a path component keeps unencoded in a URL: built once, as a mutated CharacterSet is
    /// costly (measured: 4 % of the agent's CPU on small uploads when built for each URL).
    private static let componentCharacters = CharacterSet.urlPathAllowed.subtracting(CharacterSet(charactersIn: "/;?#%"))

    /// A URL for an absolute server path (`%2F` marks it absolute for libcurl). libcurl walks to a
    /// URL's folder with one CWD per component, unless the connection's last request was in the same
    /// folder: so commands about a file (RNFR/RNTO, DELE) are sent from the file's folder, as its
    /// upload or download was (measured: 7 CWDs saved per file uploaded).
    private func serverURL(_ absolutePath: String, folder: Bool = false) -> String {
        let scheme = settings.tls == .implicit ? "ftps" : "ftp"
        let host = settings.host.contains(":") ? "[\(settings.host)]" : settings.host
        let encoded = absolutePath.split(separator: "/").map { $0.addingPercentEncoding(withAllowedCharacters: Self.componentCharacters) ?? String($0) }
        let path = (absolutePath.hasPrefix("/") ? "%2F" : "") + encoded.joined(separator: "/")
        return "\(scheme)://\(host):\(settings.port)/\(path)" + (folder && !path.isEmpty ? "/" : "")
    }

    // MARK: Requests

    /// Runs one request with the connection's common options; maps failures to `TransportError`.
    /// A request that `transfers` data (STOR, RETR, a listing) opens with a NOOP: libcurl 7.88
    /// stalls for a second after EPSV when EPSV is the request's first command, as it is when the
    /// request needs no CWD (measured: one upload in three took 0.3-1 s instead of 5 ms).
    private func request(url: String, action: String, path: String, transfers: Bool = false,
                         configure: (CurlEasy) -> Void) throws {
        checkedTarget = nil
        curl.reset()
        if transfers { curl.set(.quote, lines: ["NOOP"]) }
        curl.set(.url, url)
        curl.setLogin(user: settings.user, password: password, tls: settings.tls, caFile: settings.caFile)
        // TLS 1.2 at most: with 1.3 the server sends session tickets on each data connection after
        // the handshake, and closing an upload's data connection with a ticket unread resets it,
        // which vsftpd reports as "426 Failure reading network stream" (seen in the tests).
        if settings.tls != .off { curl.set(.sslVersion, CurlEasy.tls12OrLater) }
        if settings.active { curl.set(.ftpPort, "-") }
        let timeout = Int(max(1, remote.timeout.seconds))
        curl.set(.connectTimeout, timeout)
        curl.set(.lowSpeedLimit, 1)
        curl.set(.lowSpeedTime, timeout)
        curl.set(.serverResponseTimeout, timeout)  // a reply that never comes (226 after a transfer)
        configure(curl)
        do {
            try curl.perform()
        } catch let error as CurlError {
            throw classify(error, action: action, path: path)
        }
    }

    private func classify(_ error: CurlError, action: String, path: String) -> TransportError {
        let place = "\(endpoint): cannot \(action) \(path.isEmpty ? "the server" : path)"
        switch error.code {
        case .loginDenied:
            return TransportError(.refused, "authentication failed for \(settings.user ?? "anonymous")@\(settings.host):\(settings.port)"
                + (error.reply.map { " (server: \($0))" } ?? ""))
        case .useSSLFailed:
            return TransportError(.refused, "\(endpoint): the server does not offer TLS (AUTH TLS refused); "
                + "files and passwords would cross the network readable. Set tls: off for this remote only if that is acceptable")
        case .peerFailedVerification, .sslCACertBadFile, .sslConnectError:
            return TransportError(.refused, "\(endpoint): the server's TLS certificate cannot be trusted (\(error)); "
                + "for a private CA set ca_file")
        case .couldNotConnect, .couldNotResolveHost, .operationTimedOut, .receiveError,
             .sendError, .gotNothing, .partialFile, .ftpAcceptFailed, .ftpCannotGetHost,
             .ftpWeirdPASVReply, .ftpWeird227Format:
            return TransportError(.transient, "\(place): \(error)")
        case .abortedByCallback, .writeError, .readError:
            return TransportError(.transient, "\(place): \(error)")
        default:
            // Reply codes: 4xx pass (busy, 421 closing, 452 disk full); 5xx need a person.
            if let reply = error.replyCode, (500...599).contains(reply) {
                let kind: TransportError.Kind = reply == 552 ? .transient : .permanent
                return TransportError(kind, "\(place): \(error)")
            }
            return TransportError(.transient, "\(place): \(error)")
        }
    }

    // MARK: Transport

    public func list(_ folder: String) throws -> [RemoteEntry] {
        let path = absolute(folder)
        var listing = Data()
        let collect: (UnsafeRawBufferPointer) -> Bool = { bytes in
            listing.append(contentsOf: bytes)
            return listing.count <= RemoteEntry.listingLimit
        }
        func fetch() throws -> [RemoteEntry] {
            if supportsMLSD {
                do {
                    try request(url: serverURL(path, folder: true), action: "list", path: path, transfers: true) {
                        $0.set(.customRequest, "MLSD")
                        $0.receive(into: collect)
                    }
                    return FTPListing.entries(in: listing, FTPListing.parseMLSD)
                } catch {
                    guard serverRefusedCommand else {
                        if isMissingFolder { return [] }
                        throw error
                    }
                    supportsMLSD = false  // 500/502: the server has no MLSD; LIST from now on
                    listing = Data()
                }
            }
            do {
                try request(url: serverURL(path, folder: true), action: "list", path: path, transfers: true) {
                    $0.set(.customRequest, "LIST -a")
                    $0.receive(into: collect)
                }
            } catch {
                if isMissingFolder { return [] }
                throw error
            }
            return FTPListing.entries(in: listing) { FTPListing.parseUnix($0) }
        }
        do {
            return try fetch()
        } catch where listing.count > RemoteEntry.listingLimit {
            throw RemoteEntry.listingTooLarge(endpoint, path)
        }
    }

    /// The last request's command is unknown to the server (500, 502).
    private var serverRefusedCommand: Bool {
        curl.replies.last.map { $0.hasPrefix("500") || $0.hasPrefix("502") } ?? false
    }

    /// The last request failed because a folder on its way does not exist (CWD refused with 550).
    private var isMissingFolder: Bool {
        curl.replies.last?.hasPrefix("550") ?? false
    }

    public func entry(at path: String) throws -> RemoteEntry? {
        let target = absolute(path)
        guard let found = try probe(target, askingTime: true) else { return nil }
        return RemoteEntry(name: lastComponent(of: path), kind: .file, size: found.size,
                           modificationNanoseconds: found.modificationNanoseconds ?? 0)
    }

    /// The size of the file at `target` (SIZE), and its time (MDTM) when `askingTime`; `nil` when no
    /// file is there (550). Both are sent from the file's folder as commands whose failure is
    /// expected ('*'): a failed request would make libcurl forget its place on the server and walk
    /// there again with CWDs for the next file, and a failed plain QUOTE would close the connection.
    private func probe(_ target: String, askingTime: Bool) throws -> (size: Int64, modificationNanoseconds: Int64?)? {
        let size = "SIZE \(target)", time = "MDTM \(target)"
        do {
            try request(url: serverURL(parentDirectory(of: target), folder: true), action: "stat", path: target) {
                $0.set(.noBody, 1)
                $0.set(.quote, lines: ["*" + size] + (askingTime ? ["*" + time] : []))
                $0.recordExchanges()
            }
        } catch {
            if isMissingFolder { return nil }  // no folder, no file
            throw error
        }
        let reply = curl.reply(to: size) ?? ""
        if reply.hasPrefix("550") { return nil }
        guard let bytes = byteCount(in: reply) else {
            throw TransportError(.transient, "\(endpoint): cannot stat \(target): the server answered SIZE with '\(reply)'")
        }
        let stamp = curl.reply(to: time)
        return (bytes, stamp.flatMap { $0.hasPrefix("213 ") ? FTPListing.timestamp(String($0.dropFirst(4))) : nil })
    }

    /// The byte count in a reply to SIZE (`213 4096`), if it is one.
    private func byteCount(in reply: String?) -> Int64? {
        guard let reply, reply.hasPrefix("213 ") else { return nil }
        return Int64(reply.dropFirst(4))
    }

    public func makeDirectories(_ folder: String) throws {
        let target = absolute(folder)
        guard !knownFolders.contains(target) else { return }
        var commands: [String] = []
        var prefix = ""
        for component in target.split(separator: "/") {
            prefix += "/" + component
            commands.append("*MKD \(prefix)")
        }
        try request(url: serverURL(""), action: "create the folder", path: target) {
            $0.set(.noBody, 1)
            $0.set(.quote, lines: commands)
        }
        // MKD failures were ignored ('*'): the folder exists now, or using it will say why not.
        knownFolders.insert(target)
    }

    public func upload(from source: any UploadSource, to path: String, attributes: UploadAttributes,
                       progress: TransferProgress) throws -> Int64 {
        let target = absolute(path)
        let length = try source.size()
        var sent: Int64 = 0
        var after: [String] = []
        // MFMT where FEAT offers it, else MDTM with a time (vsftpd); a refusal fails nothing, and is
        // kept in `features`.
        let setTime = attributes.modificationNanoseconds.map { time in
            let stamp = FTPListing.format(nanoseconds: time)
            return supportsMFMT ? "MFMT \(stamp) \(target)" : "MDTM \(stamp) \(target)"
        }
        if let setTime { after.append("*" + setTime) }
        if let mode = attributes.mode { after.append("*SITE CHMOD \(String(mode, radix: 8)) \(target)") }
        // The server's own byte count, asked on the same request; and whether the name the file is
        // to be renamed to is taken, which the rename would otherwise ask on a request of its own.
        let size = "SIZE \(target)"
        after.append(size)
        let renamedTo = attributes.renamedTo.map(absolute)
        if let renamedTo { after.append("*SIZE \(renamedTo)") }
        // The callbacks live only as long as the request.
        try withoutActuallyEscaping(progress) { progress in
            try request(url: serverURL(target), action: "upload", path: target, transfers: true) { curl in
                curl.set(.upload, 1)
                curl.set(.uploadBufferSize, 1 << 20)
                curl.set(.inFileSize, offset: length)
                curl.set(.postQuote, lines: after)
                curl.recordExchanges()
                curl.send { buffer in
                    guard let count = try? source.read(into: buffer, at: sent) else { return nil }
                    sent += Int64(count)
                    return progress(sent) ? count : nil
                }
            }
        }
        guard sent == length || sent == 0 && length == 0 else { throw TransferCancelled() }
        if let setTime, let reply = curl.reply(to: setTime), !reply.hasPrefix("2") {
            features.keepsModificationTimes = false
        }
        guard let stored = byteCount(in: curl.reply(to: size)) else {
            throw TransportError(.transient, "\(endpoint): no byte count for \(target) after the upload (SIZE)")
        }
        if let renamedTo, let reply = curl.reply(to: "SIZE \(renamedTo)"), reply.hasPrefix("213 ") || reply.hasPrefix("550") {
            checkedTarget = (renamedTo, reply.hasPrefix("213 "))
        }
        return stored
    }

    public func rename(_ from: String, to: String, replacing: Bool) throws {
        let source = absolute(from), target = absolute(to)
        // FTP's RNTO replaces on most servers, and nothing can ask it not to: the check and the
        // rename are two steps. The check may have been made on the upload's request, just before.
        let checked = checkedTarget?.path == target ? checkedTarget?.exists : nil
        if !replacing, try checked ?? (probe(target, askingTime: false) != nil) {
            throw TransportError(.alreadyExists, "\(endpoint)/\(target) exists already")
        }
        try request(url: serverURL(parentDirectory(of: source), folder: true), action: "rename \(source) to", path: target) {
            $0.set(.noBody, 1)
            $0.set(.quote, lines: ["RNFR \(source)", "RNTO \(target)"])
        }
    }

    public func download(_ path: String, size: Int64, from offset: Int64, to destination: any DownloadSink,
                         progress: TransferProgress) throws -> Int64 {
        let target = absolute(path)
        var received: Int64 = 0
        var failure: Error?
        do {
            // The callbacks live only as long as the request.
            try withoutActuallyEscaping(progress) { progress in
                try request(url: serverURL(target), action: "download", path: target, transfers: true) { curl in
                    if offset > 0 {
                        curl.set(.resumeFrom, offset: offset)  // REST: libcurl needs SIZE for it
                    } else {
                        // No SIZE before RETR: the listing gave the size, and the caller checks the bytes
                        // against it. (vsftpd answers a SIZE sent while a passive connection waits only
                        // after about 200 ms: ten times the cost of a small download.)
                        curl.set(.ignoreContentLength, 1)
                    }
                    curl.receive { bytes in
                        do {
                            try destination.write(bytes)
                        } catch {
                            failure = error
                            return false
                        }
                        received += Int64(bytes.count)
                        return progress(received)
                    }
                }
            }
        } catch {
            if let failure { throw failure }
            if curl.replies.last?.hasPrefix("550") ?? false, try entry(at: path) == nil {
                throw TransportError(.notFound, "\(endpoint)/\(target) is not there any more")
            }
            throw error
        }
        return received
    }

    public func keepAlive() throws {
        try request(url: serverURL(""), action: "keep the connection alive (NOOP) on", path: "") {
            $0.set(.noBody, 1)
            $0.set(.quote, lines: ["NOOP"])
        }
    }

    public func delete(_ path: String) throws {
        let target = absolute(path)
        do {
            try request(url: serverURL(parentDirectory(of: target), folder: true), action: "delete", path: target) {
                $0.set(.noBody, 1)
                $0.set(.quote, lines: ["DELE \(target)"])
            }
        } catch {
            // 550 is both "no such file" and "not allowed": a file that is not there is deleted.
            if try entry(at: path) == nil { return }
            throw error
        }
    }
}
