import Foundation
import ConnectXpertCurl
import ConnectXpertPolicy
import ConnectXpertTransport

/// What the server made of one message's recipients.
public struct SMTPDelivery: Equatable, Sendable {
    public var accepted: [String]
    /// Recipients the server refused while taking the message for the others.
    public var refused: [RecipientRefusal]
}

public struct RecipientRefusal: Equatable, Sendable {
    public var address: String
    /// The server's reply to `RCPT TO` (`550 5.1.1 <x@y>: user unknown`).
    public var reply: String
    public var isPermanent: Bool { reply.hasPrefix("5") }
}

/// A session with an SMTP submission server through libcurl. The easy handle keeps the
/// connection, so a queue run logs in once and sends every message on the same session (servers
/// such as Gmail throttle repeated logins). Not thread-safe: one queue runner owns it.
public final class SMTPClient {
    private let curl: CurlEasy
    private let settings: MailServer
    private let password: String?
    /// `smtp://host:port/<our name>`: libcurl sends the path as the EHLO name.
    private let url: String
    /// Whether the session was opened (`greet`).
    private var greeted = false
    /// The largest message the server takes: the SIZE of its EHLO reply (RFC 1870); nil when it
    /// names none.
    private var sizeLimit: Int64?

    public init(settings: MailServer, environment: [String: String], hostname: String) throws {
        curl = try CurlEasy()
        self.settings = settings
        password = try settings.password(environment: environment, place: "SMTP server \(settings.host):\(settings.port)")
        let scheme = settings.tls == .implicit ? "smtps" : "smtp"
        url = "\(scheme)://\(settings.host):\(settings.port)/\(hostname)"
    }

    /// Sends one message; throws `MailServerError`, or `TransferCancelled` when `shouldContinue`
    /// returned false. `shouldContinue` is asked between
    /// pieces of the message; returning false aborts it (`TransferCancelled`).
    public func send(_ message: OutgoingMessage, shouldContinue: @escaping () -> Bool) throws -> SMTPDelivery {
        if !greeted { try greet() }
        try checkSize(of: message)
        let stream = try MessageStream(message)
        var readError: Error?
        prepareRequest()
        curl.set(.mailFrom, "<\(message.sender)>")
        curl.set(.mailRecipients, lines: message.recipients.map { "<\($0)>" })
        curl.set(.mailRecipientAllowFails, 1)
        curl.set(.upload, 1)
        curl.send { buffer in
            guard shouldContinue() else { return nil }
            do { return try stream.read(into: buffer) } catch {
                readError = error
                return nil
            }
        }
        do {
            defer { learnSizeLimit() }
            try curl.perform()
        } catch let error as CurlError {
            if let readError { throw readError }
            if error.code == .abortedByCallback { throw TransferCancelled() }
            try checkSize(of: message)  // a new connection's EHLO may have named a smaller limit
            throw classify(error)
        }
        let refused = refusedRecipients()
        let refusedAddresses = Set(refused.map(\.address))
        return SMTPDelivery(accepted: message.recipients.filter { !refusedAddresses.contains($0) }, refused: refused)
    }

    /// Opens the session with a NOOP, so that what the server's EHLO reply says (its SIZE) is known
    /// before the first message; the connection stays open for the messages.
    private func greet() throws {
        prepareRequest()
        curl.set(.customRequest, "NOOP")
        do {
            defer { learnSizeLimit() }
            try curl.perform()
        } catch let error as CurlError {
            throw classify(error)
        }
        greeted = true
    }

    /// The settings every request of the session has: server, login, timeouts; the exchange recorded.
    private func prepareRequest() {
        curl.reset()
        curl.set(.url, url)
        curl.setLogin(user: settings.user, password: password, tls: settings.tls, caFile: settings.caFile)
        if settings.user != nil { curl.set(.saslInitialResponse, 1) }
        let timeout = max(1, Int(settings.timeout.seconds.rounded()))
        curl.set(.connectTimeout, timeout)
        curl.set(.lowSpeedLimit, 1)
        curl.set(.lowSpeedTime, timeout)
        // Also bounds each wait for a reply, the QUIT at the end included (libcurl's default is 120 s).
        curl.set(.serverResponseTimeout, timeout)
        curl.recordExchanges()
    }

    /// Reads the SIZE of the EHLO reply of the request just made, if it made a new connection (the
    /// last EHLO counts: after STARTTLS the server says it again).
    private func learnSizeLimit() {
        guard let ehlo = curl.exchanges.last(where: { $0.command.uppercased().hasPrefix("EHLO") }),
              ehlo.reply.hasPrefix("250") else { return }
        let keywords = ehlo.reply.split(separator: "\n").map { $0.dropFirst(4).split(separator: " ") }
        let size = keywords.first { $0.first?.uppercased() == "SIZE" }.flatMap { $0.dropFirst().first }
        sizeLimit = size.flatMap { Int64($0) }.flatMap { $0 > 0 ? $0 : nil }  // SIZE 0: no fixed limit
    }

    /// Fails a message larger than the server takes, before a byte of it is sent.
    private func checkSize(of message: OutgoingMessage) throws {
        guard let sizeLimit, message.transmittedSize > sizeLimit else { return }
        throw MailServerError(.permanent, "the message is \(message.transmittedSize) bytes, over the \(sizeLimit) "
                              + "bytes \(endpoint) takes (the SIZE of its EHLO reply): none of it was sent")
    }

    /// The `RCPT TO`s of the request just made that the server did not accept, with its replies.
    private func refusedRecipients() -> [RecipientRefusal] {
        curl.exchanges.compactMap { exchange in
            guard exchange.command.uppercased().hasPrefix("RCPT TO:"), !exchange.reply.hasPrefix("2") else { return nil }
            let address = exchange.command.dropFirst("RCPT TO:".count)
                .trimmingCharacters(in: CharacterSet(charactersIn: " <>"))
            return RecipientRefusal(address: address, reply: exchange.reply)
        }
    }

    private var endpoint: String { "SMTP server \(settings.host):\(settings.port)" }

    private func classify(_ error: CurlError) -> MailServerError {
        if let refusal = MailServerError(refusal: error, server: settings, endpoint: endpoint, section: "mail.smtp") {
            return refusal
        }
        // A reply the server gave: 4xx is worth retrying, 5xx is final for this message.
        if let failed = curl.exchanges.last(where: { ($0.replyCode ?? 0) >= 400 }) {
            let rcpts = refusedRecipients()
            if failed.command.uppercased().hasPrefix("RCPT TO:") && !rcpts.isEmpty {
                let kind: MailServerError.Kind = rcpts.allSatisfy(\.isPermanent) ? .permanent : .transient
                return MailServerError(kind, "\(endpoint) refused every recipient: "
                    + rcpts.map { "\($0.address): \($0.reply)" }.joined(separator: "; "))
            }
            let command = failed.command.isEmpty ? "the end of the message" : failed.command
            let code = failed.replyCode ?? 0
            let kind: MailServerError.Kind = code == 421 ? .unreachable : code >= 500 ? .permanent : .transient
            return MailServerError(kind, "\(endpoint) answered \(command) with: \(failed.reply.replacingOccurrences(of: "\n", with: " "))")
        }
        return MailServerError(.unreachable, "\(endpoint): \(error)")
    }
}
