import ConnectXpertCurl
import ConnectXpertPolicy
import ConnectXpertTransport

/// A failed exchange with a mail server (SMTP or IMAP), classified for the caller's retry logic.
public struct MailServerError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// The server cannot be reached or went silent: nothing can be done now; retry later.
        case unreachable
        /// A 4xx reply (SMTP) or a NO to a command (IMAP): retry later.
        case transient
        /// A 5xx reply to this message: it goes to `failed/`.
        case permanent
        /// Login, STARTTLS, certificate or mailbox refused: nothing works until a person acts.
        case refused
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    /// The refusals libcurl reports while connecting and logging in (wrong password, no STARTTLS,
    /// an untrusted certificate), worded for the user; `nil` for other errors.
    init?(refusal error: CurlError, server: MailServer, endpoint: String, section: String) {
        switch error.code {
        case .loginDenied:
            self.init(.refused, "authentication failed for \(server.user ?? "")@\(server.host):\(server.port)"
                + (error.reply.map { " (server: \($0))" } ?? "") + "; check the password")
        case .useSSLFailed:
            self.init(.refused, "\(endpoint) does not offer STARTTLS; mail and passwords would cross the "
                + "network readable. Set tls: off under \(section) only if that is acceptable")
        case .peerFailedVerification, .sslCACertBadFile, .sslConnectError:
            self.init(.refused, "\(endpoint): the server's TLS certificate cannot be trusted (\(error)); "
                + "for a private CA set ca_file")
        default:
            return nil
        }
    }
}

extension MailServer {
    /// The password from the first credential that has one; a missing or unreadable one is a refusal.
    func password(environment: [String: String], place: String) throws -> String? {
        do {
            return try Secrets.firstPassword(in: credentials, environment: environment, place: place)
        } catch let error as TransportError {
            throw MailServerError(.refused, error.message)
        }
    }
}
