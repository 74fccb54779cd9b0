import CSSH2
import ConnectXpertPolicy
import ConnectXpertTransport
import Foundation

/// Logs a session in with the remote's credentials, in the order the policy names them (key file,
/// agent, password). A refused login is a `.refused` failure that names what was tried; a connection
/// lost or timed out meanwhile is `.transient`, as it is no answer of the server's.
enum Authenticator {
    /// What libssh2 says when the connection, not the server, ended a login.
    private static let connectionErrors: Set<Int32> = [
        LIBSSH2_ERROR_SOCKET_SEND, LIBSSH2_ERROR_SOCKET_RECV, LIBSSH2_ERROR_SOCKET_DISCONNECT,
        LIBSSH2_ERROR_SOCKET_TIMEOUT, LIBSSH2_ERROR_TIMEOUT,
    ]

    static func authenticate(_ session: SSHSession, user: String, settings: SSHSettings, credentials: [Credential],
                             environment: [String: String], endpoint: String) throws {
        var tried: [String] = []
        for credential in credentials {
            tried.append(describe(credential))
            switch credential {
            case .keyFile(let path):
                let passphrase = try settings.passphraseFile.map(SecretFile.read)
                if libssh2_userauth_publickey_fromfile_ex(session.raw, user, UInt32(user.utf8.count), nil, path, passphrase) == 0 {
                    return
                }
                try checkConnection(session, endpoint: endpoint)
            case .agent:
                if agentLogin(session, user: user) { return }
            case .passwordFile, .passwordEnvironment:
                guard let password = try Secrets.password(credential, environment: environment, place: endpoint) else { continue }
                if libssh2_userauth_password_ex(session.raw, user, UInt32(user.utf8.count), password,
                                                UInt32(password.utf8.count), nil) == 0 {
                    return
                }
                try checkConnection(session, endpoint: endpoint)
            }
        }
        throw TransportError(.refused, "authentication failed for \(user)@\(settings.host):\(settings.port) with "
            + tried.joined(separator: ", ") + " (\(session.lastError))")
    }

    /// Throws a transient failure when the login just tried ended with the connection, not a refusal.
    private static func checkConnection(_ session: SSHSession, endpoint: String) throws {
        // libssh2 1.10 reports a public key login cut short as a key not accepted (PUBLICKEY_UNVERIFIED),
        // so the socket is asked too.
        guard connectionErrors.contains(session.lastErrorCode) || session.connectionEnded else { return }
        throw TransportError(.transient, "\(endpoint): the connection ended during the login: \(session.lastError)")
    }

    private static func describe(_ credential: Credential) -> String {
        switch credential {
        case .passwordFile(let path): return "password from \(path)"
        case .passwordEnvironment(let name): return "password from $\(name)"
        case .keyFile(let path): return "key \(path)"
        case .agent: return "ssh-agent"
        }
    }

    private static func agentLogin(_ session: SSHSession, user: String) -> Bool {
        guard let agent = libssh2_agent_init(session.raw) else { return false }
        defer { libssh2_agent_free(agent) }
        guard libssh2_agent_connect(agent) == 0 else { return false }
        defer { libssh2_agent_disconnect(agent) }
        guard libssh2_agent_list_identities(agent) == 0 else { return false }
        var previous: UnsafeMutablePointer<libssh2_agent_publickey>?
        var identity: UnsafeMutablePointer<libssh2_agent_publickey>?
        while libssh2_agent_get_identity(agent, &identity, previous) == 0 {
            if libssh2_agent_userauth(agent, user, identity) == 0 { return true }
            previous = identity
        }
        return false
    }
}
