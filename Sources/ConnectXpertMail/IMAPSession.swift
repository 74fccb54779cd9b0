import Foundation
import ConnectXpertCurl
import ConnectXpertPolicy

/// A logged-in IMAP session. libcurl connects, negotiates TLS (STARTTLS or implicit) and logs in
/// (`CURLOPT_CONNECT_ONLY`); the commands after that are ours, sent through `curl_easy_send`:
/// libcurl's own IMAP requests cannot peek (`BODY.PEEK[]`), pipeline, or stream a literal of any
/// line length. Not thread-safe: one fetcher owns it.
public final class IMAPSession {
    public struct Mailbox: Sendable {
        public let uidValidity: Int64
    }

    /// Where the bytes of one message go: the sink for its data, and what to do once all arrived.
    public struct MessageTarget {
        public var write: (UnsafeRawBufferPointer) throws -> Void
        public var finish: () throws -> Void

        public init(write: @escaping (UnsafeRawBufferPointer) throws -> Void, finish: @escaping () throws -> Void) {
            self.write = write
            self.finish = finish
        }
    }

    private let curl: CurlEasy
    private let server: MailServer
    private let timeout: Double
    private var input = [UInt8](repeating: 0, count: 256 * 1024)
    private var inputStart = 0
    private var inputEnd = 0
    private var tagCounter = 0
    private var capabilities: Set<String> = []
    /// Set when a read or write failed, or a response was left half read: the connection can no
    /// longer carry a command, not even LOGOUT.
    private var broken = false

    public var endpoint: String { "IMAP server \(server.host):\(server.port)" }

    public init(server: MailServer, environment: [String: String]) throws {
        self.server = server
        timeout = max(1, server.timeout.seconds)
        curl = try CurlEasy()
        let password = try server.password(environment: environment, place: "IMAP server \(server.host):\(server.port)")
        curl.reset()
        curl.set(.url, "\(server.tls == .implicit ? "imaps" : "imap")://\(server.host):\(server.port)/")
        curl.setLogin(user: server.user, password: password, tls: server.tls, caFile: server.caFile)
        curl.set(.connectTimeout, Int(timeout.rounded(.up)))
        curl.set(.serverResponseTimeout, Int(timeout.rounded(.up)))
        curl.set(.connectOnly, 1)
        do {
            try curl.perform()
        } catch let error as CurlError {
            if let refusal = MailServerError(refusal: error, server: server, endpoint: endpoint, section: "mail.inbox") {
                throw refusal
            }
            throw MailServerError(.unreachable, "\(endpoint): \(error)")
        }
        try run("CAPABILITY") { line in
            if line.hasPrefix("* CAPABILITY ") {
                self.capabilities = Set(line.split(separator: " ").dropFirst(2).map { $0.uppercased() })
            }
        }
    }

    /// Opens `name` read-write (flags and deletions are ours to set).
    public func select(_ name: String) throws -> Mailbox {
        var uidValidity: Int64?
        do {
            try run("SELECT \(quoted(IMAPSession.mailboxName(name)))") { line in
                if let value = number(after: "[UIDVALIDITY ", in: line) { uidValidity = value }
            }
        } catch let error as MailServerError where error.kind == .transient {
            throw MailServerError(.refused, "\(endpoint) has no mailbox \(quoted(name)) that we may open (\(error)); "
                + "check the URL's path under mail.inbox")
        }
        guard let uidValidity else { throw MailServerError(.unreachable, "\(endpoint) sent no UIDVALIDITY for \(quoted(name))") }
        return Mailbox(uidValidity: uidValidity)
    }

    /// The UIDs of the messages not yet seen (`unseenOnly`), or of all messages, ascending.
    public func searchUIDs(unseenOnly: Bool) throws -> [Int64] {
        var uids: [Int64] = []
        try run(unseenOnly ? "UID SEARCH UNSEEN" : "UID SEARCH ALL") { line in
            if line.hasPrefix("* SEARCH") { uids += line.split(separator: " ").dropFirst(2).compactMap { Int64($0) } }
        }
        return uids.sorted()
    }

    /// Fetches whole messages without setting `\Seen` (`BODY.PEEK[]`), one pipelined command
    /// each. `target` gives where the message with a UID and size goes (`nil` skips it). Returns
    /// the UIDs delivered; a UID missing from it was expunged by someone else meanwhile.
    public func fetchMessages(_ uids: [Int64], target: (_ uid: Int64, _ size: Int) throws -> MessageTarget?) throws -> Set<Int64> {
        var delivered: Set<Int64> = []
        var pending: [(tag: String, uid: Int64)] = []
        var commands = ""
        for uid in uids {
            let tag = nextTag()
            pending.append((tag, uid))
            commands += "\(tag) UID FETCH \(uid) (UID BODY.PEEK[])\r\n"
        }
        try send(commands)
        var failure: MailServerError?
        for (tag, uid) in pending {
            do {
                try complete(tag, command: "UID FETCH \(uid)") { line, size in
                    // `* 12 FETCH (UID 345 BODY[] {size}`; the UID of the command when the server
                    // names it after the data.
                    guard line.hasSuffix("BODY[]"), line.contains(" FETCH ") else { return nil }
                    let messageUID = number(after: "UID ", in: line) ?? uid
                    guard let message = try target(messageUID, size) else { return nil }
                    return MessageTarget(write: message.write, finish: {
                        try message.finish()
                        delivered.insert(messageUID)
                    })
                } untagged: { _ in }
            } catch let error as MailServerError where error.kind == .transient {
                failure = failure ?? error
            }
        }
        if let failure { throw failure }
        return delivered
    }

    /// The size and header section of each message, for recognising messages after the server
    /// changed UIDVALIDITY. Peeks: `\Seen` is not set.
    public func fetchHeaders(_ uids: [Int64]) throws -> [Int64: (size: Int64, header: [UInt8])] {
        var found: [Int64: (size: Int64, header: [UInt8])] = [:]
        guard !uids.isEmpty else { return found }
        let tag = nextTag()
        try send("\(tag) UID FETCH \(uidSet(uids)) (UID RFC822.SIZE BODY.PEEK[HEADER])\r\n")
        try complete(tag, command: "UID FETCH (headers)") { line, _ in
            guard let uid = number(after: "UID ", in: line), let size = number(after: "RFC822.SIZE ", in: line) else { return nil }
            var header: [UInt8] = []
            return MessageTarget(write: { header += $0 }, finish: { found[uid] = (size, header) })
        } untagged: { _ in }
        return found
    }

    /// Adds `flags` (`\Seen`, `\Deleted`) to the messages.
    public func addFlags(_ flags: String, to uids: [Int64]) throws {
        guard !uids.isEmpty else { return }
        try run("UID STORE \(uidSet(uids)) +FLAGS.SILENT (\(flags))") { _ in }
    }

    /// Removes the messages marked `\Deleted`: only `uids` where the server can (UIDPLUS),
    /// else every message so marked, as `EXPUNGE` does.
    public func expunge(_ uids: [Int64]) throws {
        guard !uids.isEmpty else { return }
        try run(capabilities.contains("UIDPLUS") ? "UID EXPUNGE \(uidSet(uids))" : "EXPUNGE") { _ in }
    }

    /// Ends the session politely; errors do not matter any more.
    public func logout() {
        guard !broken else { return }
        try? run("LOGOUT") { _ in }
    }

    // MARK: Commands and responses

    private func nextTag() -> String {
        tagCounter += 1
        return "cx\(tagCounter)"
    }

    private func run(_ command: String, untagged: (String) -> Void) throws {
        let tag = nextTag()
        try send("\(tag) \(command)\r\n")
        try complete(tag, command: command, literal: { _, _ in nil }, untagged: untagged)
    }

    private func send(_ text: String) throws {
        var bytes = Array(text.utf8)
        do {
            try bytes.withUnsafeMutableBytes { try curl.sendRaw(UnsafeRawBufferPointer($0), timeout: timeout) }
        } catch let error as CurlError {
            broken = true
            throw MailServerError(.unreachable, "\(endpoint): sending failed: \(error)")
        }
    }

    /// Reads responses up to the tagged completion of `tag`. Untagged responses go to `untagged`
    /// (literals in them replaced by `{}`); `literal` is asked where each literal goes, given the
    /// response text before it and the literal's size (`nil`: read and dropped).
    private func complete(_ tag: String, command: String,
                          literal: (_ before: String, _ size: Int) throws -> MessageTarget?,
                          untagged: (String) -> Void) throws {
        while true {
            var text = try readLine()
            while let size = literalSize(at: text) {
                let before = String(text[..<text.lastIndex(of: "{")!]).trimmingTrailingSpace
                do {
                    let target = try literal(before, size)
                    try readLiteral(size, into: target?.write)
                    try target?.finish()
                } catch {
                    broken = true
                    throw error
                }
                text = before + " {}" + (try readLine())
            }
            if text.hasPrefix(tag + " ") {
                let status = text.dropFirst(tag.count + 1)
                if status.hasPrefix("OK") { return }
                throw MailServerError(.transient, "\(endpoint) answered \(command) with: \(status)")
            }
            if text.hasPrefix("* BYE") && !command.hasPrefix("LOGOUT") {
                throw MailServerError(.unreachable, "\(endpoint) closed the session: \(text.dropFirst(2))")
            }
            untagged(text)
        }
    }

    /// The size of the literal announced at the end of a line (`{123}` or `{123+}`).
    private func literalSize(at line: String) -> Int? {
        guard line.hasSuffix("}"), let open = line.lastIndex(of: "{") else { return nil }
        let digits = line[line.index(after: open)..<line.index(before: line.endIndex)].filter { $0 != "+" }
        return Int(digits)
    }

    private func fill() throws {
        if inputStart == inputEnd {
            inputStart = 0
            inputEnd = 0
        } else if inputEnd == input.count {
            if inputStart > 0 {
                input.replaceSubrange(0..<(inputEnd - inputStart), with: input[inputStart..<inputEnd])
                inputEnd -= inputStart
                inputStart = 0
            } else {
                input += [UInt8](repeating: 0, count: input.count)
            }
        }
        let count: Int
        do {
            count = try input.withUnsafeMutableBytes { buffer in
                try curl.receiveRaw(into: UnsafeMutableRawBufferPointer(rebasing: buffer[inputEnd...]), timeout: timeout)
            }
        } catch let error as CurlError {
            broken = true
            throw MailServerError(.unreachable, error.code == .operationTimedOut
                ? "\(endpoint) sent nothing for \(Int(timeout)) s" : "\(endpoint): \(error)")
        }
        guard count > 0 else {
            broken = true
            throw MailServerError(.unreachable, "\(endpoint) closed the connection")
        }
        inputEnd += count
    }

    /// One line without its CRLF, decoded leniently (server text may hold any bytes).
    private func readLine() throws -> String {
        var searchFrom = inputStart
        while true {
            if let newline = input[searchFrom..<inputEnd].firstIndex(of: UInt8(ascii: "\n")) {
                var end = newline
                if end > inputStart && input[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                let line = String(decoding: input[inputStart..<end], as: UTF8.self)
                inputStart = newline + 1
                return line
            }
            guard inputEnd - inputStart < 64 * 1024 * 1024 else {
                throw MailServerError(.unreachable, "\(endpoint) sent a response line longer than 64 MiB")
            }
            searchFrom = inputEnd
            let consumed = inputStart
            try fill()
            searchFrom -= consumed - inputStart
        }
    }

    private func readLiteral(_ size: Int, into sink: ((UnsafeRawBufferPointer) throws -> Void)?) throws {
        var remaining = size
        while remaining > 0 {
            if inputStart == inputEnd { try fill() }
            let count = min(remaining, inputEnd - inputStart)
            try input.withUnsafeBytes { try sink?(UnsafeRawBufferPointer(rebasing: $0[inputStart..<(inputStart + count)])) }
            inputStart += count
            remaining -= count
        }
    }

    /// A mailbox name as IMAP writes it (RFC 3501 5.1.3, modified UTF-7): `Entwürfe` is
    /// `Entw&APw-rfe`, `&` is `&-`.
    static func mailboxName(_ name: String) -> String {
        var result = ""
        var pending: [UInt16] = []
        func flush() {
            guard !pending.isEmpty else { return }
            let bytes = pending.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
            let encoded = Data(bytes).base64EncodedString().replacingOccurrences(of: "/", with: ",")
                .replacingOccurrences(of: "=", with: "")
            result += "&" + encoded + "-"
            pending = []
        }
        for scalar in name.unicodeScalars {
            if (0x20...0x7e).contains(scalar.value) {
                flush()
                result += scalar == "&" ? "&-" : String(scalar)
            } else {
                pending += Array(String(scalar).utf16)
            }
        }
        flush()
        return result
    }

    /// The number right after `label` in a response line (`UID 345`, `[UIDVALIDITY 1234]`).
    private func number(after label: String, in line: String) -> Int64? {
        line.range(of: label).flatMap { Int64(line[$0.upperBound...].prefix { $0.isNumber }) }
    }

    private func quoted(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

/// `1:3,7,9:10` for [1, 2, 3, 7, 9, 10].
func uidSet(_ uids: [Int64]) -> String {
    var ranges: [String] = []
    var index = 0
    let sorted = uids.sorted()
    while index < sorted.count {
        var end = index
        while end + 1 < sorted.count && sorted[end + 1] == sorted[end] + 1 { end += 1 }
        ranges.append(end == index ? "\(sorted[index])" : "\(sorted[index]):\(sorted[end])")
        index = end + 1
    }
    return ranges.joined(separator: ",")
}

private extension String {
    var trimmingTrailingSpace: String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}
