internal import CCurl
import ConnectXpertPolicy
import ConnectXpertSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// curl_global_init, once per process, before any thread uses libcurl.
private enum LibCurl {
    static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
}

/// One libcurl easy handle with the lists and callback state it uses; cleaned up in `deinit`.
/// libcurl keeps the control connection in the handle between requests, so one handle is one
/// connection. Not thread-safe: a connection serves one transfer at a time.
public final class CurlEasy {
    private let raw: UnsafeMutableRawPointer
    /// Lists handed to libcurl for the request in progress; libcurl does not copy them.
    private var lists: [UnsafeMutablePointer<curl_slist>] = []
    /// Where response bodies go, and where upload data comes from, for the request in progress.
    fileprivate var sink: ((UnsafeRawBufferPointer) -> Bool)?
    fileprivate var source: ((UnsafeMutableRawBufferPointer) -> Int?)?
    /// The server's replies to the request in progress (`"550 No such file"`).
    public private(set) var replies: [String] = []
    /// The commands of the request in progress, each with the server's final reply, when
    /// `recordExchanges()` was called (SMTP needs to know which `RCPT TO` a reply answers).
    public private(set) var exchanges: [CurlExchange] = []

    /// The server's reply to `command` (as sent, without a leading `*`) in the request in progress,
    /// when `recordExchanges()` was called.
    public func reply(to command: String) -> String? {
        exchanges.last { $0.command == command }?.reply
    }

    /// The linked libcurl's version, as a number (`0x075801` for 7.88.1) and as text.
    public static var libraryVersion: Int { Int(curl_version_info(CURLVERSION_FOURTH).pointee.version_num) }
    public static var libraryVersionText: String { String(cString: curl_version_info(CURLVERSION_FOURTH).pointee.version) }

    public init() throws {
        _ = LibCurl.initialized
        guard let handle = curl_easy_init() else { throw CurlError(code: CURLE_FAILED_INIT, reply: nil) }
        raw = handle
    }

    deinit {
        curl_easy_cleanup(raw)
        freeLists()
    }

    /// Clears the options of the previous request (the connection stays) and sets the callbacks.
    public func reset() {
        curl_easy_reset(raw)
        freeLists()
        sink = nil
        source = nil
        replies = []
        exchanges = []
        let context = Unmanaged.passUnretained(self).toOpaque()
        _ = cx_curl_setopt_pointer(raw, CURLOPT_WRITEDATA, context)
        _ = cx_curl_setopt_data_callback(raw, CURLOPT_WRITEFUNCTION, curlWrite)
        _ = cx_curl_setopt_pointer(raw, CURLOPT_READDATA, context)
        _ = cx_curl_setopt_data_callback(raw, CURLOPT_READFUNCTION, curlRead)
        _ = cx_curl_setopt_pointer(raw, CURLOPT_HEADERDATA, context)
        _ = cx_curl_setopt_data_callback(raw, CURLOPT_HEADERFUNCTION, curlHeader)
        set(CurlOption(raw: CURLOPT_NOSIGNAL), 1)
    }

    public func set(_ option: CurlOption, _ value: Int) { _ = cx_curl_setopt_long(raw, option.raw, value) }
    public func set(_ option: CurlOption, _ value: String) { _ = cx_curl_setopt_string(raw, option.raw, value) }
    public func set(_ option: CurlOption, offset value: Int64) {
        _ = cx_curl_setopt_offset(raw, option.raw, curl_off_t(value))
    }

    /// Sets a list option (QUOTE, POSTQUOTE); the list lives until the next `reset`.
    public func set(_ option: CurlOption, lines: [String]) {
        var list: UnsafeMutablePointer<curl_slist>?
        for line in lines { list = curl_slist_append(list, line) }
        guard let list else { return }
        lists.append(list)
        _ = cx_curl_setopt_slist(raw, option.raw, list)
    }

    /// The login and its protection, as FTP, SMTP and IMAP share them: `required` upgrades in the
    /// protocol (AUTH TLS, STARTTLS) and refuses a server that cannot; `implicit` comes from the
    /// URL's scheme. Certificates are always verified, against `caFile` when given.
    public func setLogin(user: String?, password: String?, tls: TLSMode, caFile: String?) {
        if let user {
            set(CurlOption(raw: CURLOPT_USERNAME), user)
            set(CurlOption(raw: CURLOPT_PASSWORD), password ?? "")
        }
        switch tls {
        case .required: set(CurlOption(raw: CURLOPT_USE_SSL), Int(CURLUSESSL_ALL.rawValue))
        case .off: set(CurlOption(raw: CURLOPT_USE_SSL), Int(CURLUSESSL_NONE.rawValue))
        case .implicit: break
        }
        if let caFile { set(CurlOption(raw: CURLOPT_CAINFO), caFile) }
        // Trust one CA file and no CA folder: only then does libcurl keep the parsed CA list
        // between connections (CURLOPT_CA_CACHE_TIMEOUT) instead of parsing it for every FTP data
        // connection. OpenSSL 3 takes about 40 ms for the system's file: 200 small uploads took 4.9 s
        // before, 0.9 s after. Debian's default CA folder holds the same CAs as its default file.
        if caFile != nil || defaultCAFile != nil { _ = cx_curl_setopt_string(raw, CURLOPT_CAPATH, nil) }
    }

    /// The CA file libcurl trusts when none is set (`CURLINFO_CAINFO`), if it has one.
    private var defaultCAFile: String? { info(string: CurlInfo(raw: CURLINFO_CAINFO)) }

    public func receive(into sink: @escaping (UnsafeRawBufferPointer) -> Bool) { self.sink = sink }
    /// Upload data: the source fills the buffer and returns the byte count (0 at the end), or `nil`
    /// to abort the request.
    public func send(from source: @escaping (UnsafeMutableRawBufferPointer) -> Int?) { self.source = source }

    /// Records each command with its reply in `exchanges` for this request (through libcurl's
    /// debug callback, which sees both directions). Credentials sent after `AUTH` are not recorded.
    public func recordExchanges() {
        set(CurlOption(raw: CURLOPT_VERBOSE), 1)
        _ = cx_curl_setopt_pointer(raw, CURLOPT_DEBUGDATA, Unmanaged.passUnretained(self).toOpaque())
        _ = cx_curl_setopt_debug_callback(raw, curlDebug)
    }

    /// Runs the request; throws `CurlError` with the server's last reply. The data callbacks are
    /// dropped when it ends: they belong to this request only.
    public func perform() throws {
        defer {
            sink = nil
            source = nil
        }
        let code = curl_easy_perform(raw)
        guard code == CURLE_OK else { throw CurlError(code: code, reply: replies.last) }
    }

    /// Writes all of `bytes` on a connection opened with `CURLOPT_CONNECT_ONLY` (libcurl did the
    /// TLS and the login; the caller speaks the protocol), waiting at most `timeout` seconds for
    /// the socket to take more.
    public func sendRaw(_ bytes: UnsafeRawBufferPointer, timeout: Double) throws {
        var offset = 0
        while offset < bytes.count {
            var sent = 0
            let code = curl_easy_send(raw, bytes.baseAddress! + offset, bytes.count - offset, &sent)
            switch code {
            case CURLE_OK: offset += sent
            case CURLE_AGAIN: try waitForSocket(events: Int16(POLLOUT), timeout: timeout)
            default: throw CurlError(code: code, reply: nil)
            }
        }
    }

    /// Reads what the connection has (at least one byte) into `buffer`; 0 means the server
    /// closed the connection. Throws `CURLE_OPERATION_TIMEDOUT` after `timeout` seconds of silence.
    public func receiveRaw(into buffer: UnsafeMutableRawBufferPointer, timeout: Double) throws -> Int {
        while true {
            var received = 0
            // Asked first, not after a poll: TLS may hold decrypted bytes the socket no longer shows.
            let code = curl_easy_recv(raw, buffer.baseAddress, buffer.count, &received)
            switch code {
            case CURLE_OK: return received
            case CURLE_AGAIN: try waitForSocket(events: Int16(POLLIN), timeout: timeout)
            default: throw CurlError(code: code, reply: nil)
            }
        }
    }

    private func waitForSocket(events: Int16, timeout: Double) throws {
        var socket: curl_socket_t = -1
        _ = cx_curl_getinfo_socket(raw, CURLINFO_ACTIVESOCKET, &socket)
        guard socket >= 0 else { throw CurlError(code: CURLE_RECV_ERROR, reply: nil) }
        var descriptor = pollfd(fd: socket, events: events, revents: 0)
        let ready = try syscall("poll") { poll(&descriptor, 1, Int32(timeout * 1000)) }
        if ready == 0 { throw CurlError(code: CURLE_OPERATION_TIMEDOUT, reply: nil) }
    }

    public func info(string info: CurlInfo) -> String? {
        var value: UnsafePointer<CChar>?
        _ = cx_curl_getinfo_string(raw, info.raw, &value)
        return value.map { String(cString: $0) }
    }

    fileprivate func record(reply line: String) {
        replies.append(line)
        if replies.count > 20 { replies.removeFirst() }
    }

    fileprivate func record(command line: String) {
        let words = line.split(separator: " ", maxSplits: 2)
        let verb = words.first.map { $0.uppercased() } ?? ""
        let previous = exchanges.last
        let command: String
        if verb == "AUTH" {
            command = words.prefix(2).joined(separator: " ")
        } else if previous?.command.hasPrefix("AUTH") == true && previous?.reply.hasPrefix("334") == true {
            command = "AUTH (credentials)"
        } else {
            command = line
        }
        exchanges.append(CurlExchange(command: command, reply: ""))
        if exchanges.count > 1000 { exchanges.removeFirst(500) }
    }

    /// Adds a reply line to the last command, or stands alone (the greeting) when that command
    /// already has its final reply.
    fileprivate func record(replyLine line: String) {
        guard let last = exchanges.indices.last, !isFinal(exchanges[last].reply) else {
            exchanges.append(CurlExchange(command: "", reply: line))
            return
        }
        exchanges[last].reply = exchanges[last].reply.isEmpty ? line : exchanges[last].reply + "\n" + line
    }

    /// `250 OK` ends a reply; `250-PIPELINING` is followed by more lines.
    private func isFinal(_ reply: String) -> Bool {
        let lastLine = reply.split(separator: "\n").last ?? ""
        return lastLine.count == 3 || lastLine.dropFirst(3).first == " "
    }

    private func freeLists() {
        for list in lists { curl_slist_free_all(list) }
        lists = []
    }
}

/// A command sent and the server's whole reply (several lines joined by `\n` when multi-line).
public struct CurlExchange: Equatable, Sendable {
    public var command: String
    public var reply: String

    public var replyCode: Int? { Int(reply.prefix(3)) }
}

/// A failed libcurl request: libcurl's code and the server's last reply.
public struct CurlError: Error, CustomStringConvertible {
    public let code: CurlCode
    public let reply: String?

    init(code: CURLcode, reply: String?) {
        self.code = CurlCode(raw: code)
        self.reply = reply
    }

    public var replyCode: Int? { reply.flatMap { Int($0.prefix(3)) } }
    public var description: String {
        let message = String(cString: curl_easy_strerror(code.raw))
        return reply.map { "\(message) (server: \($0))" } ?? message
    }
}

private func easy(_ context: UnsafeMutableRawPointer?) -> CurlEasy {
    Unmanaged<CurlEasy>.fromOpaque(context!).takeUnretainedValue()
}

private let curlWrite: cx_curl_data_callback = { buffer, size, count, context in
    let bytes = UnsafeRawBufferPointer(start: buffer, count: size * count)
    guard let sink = easy(context).sink else { return size * count }
    return sink(bytes) ? size * count : 0
}

private let curlRead: cx_curl_data_callback = { buffer, size, count, context in
    guard let source = easy(context).source else { return 0 }
    return source(UnsafeMutableRawBufferPointer(start: buffer, count: size * count)) ?? Int(CURL_READFUNC_ABORT)
}

/// Keeps the lines that are server replies (`213 4096`), without their line end.
private let curlHeader: cx_curl_data_callback = { buffer, size, count, context in
    var line = UnsafeRawBufferPointer(start: buffer, count: size * count)[...]
    while let last = line.last, last == UInt8(ascii: "\r") || last == UInt8(ascii: "\n") || last == UInt8(ascii: " ") {
        line = line.dropLast()
    }
    if line.count >= 3, line.prefix(3).allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) {
        easy(context).record(reply: String(decoding: line, as: UTF8.self))
    }
    return size * count
}

/// Split into lines as bytes: splitting the decoded text on `isNewline` (grapheme by grapheme) had
/// cost 4 % of the agent's CPU on FTP uploads of small files.
private let curlDebug: cx_curl_debug_callback = { _, type, data, size, context in
    guard type == CURLINFO_HEADER_OUT || type == CURLINFO_HEADER_IN, let data else { return 0 }
    for line in UnsafeRawBufferPointer(start: data, count: size).split(separator: UInt8(ascii: "\n")) {
        let text = String(decoding: line.last == UInt8(ascii: "\r") ? line.dropLast() : line, as: UTF8.self)
        guard !text.isEmpty else { continue }
        if type == CURLINFO_HEADER_OUT {
            easy(context).record(command: text)
        } else {
            easy(context).record(replyLine: text)
        }
    }
    return 0
}
