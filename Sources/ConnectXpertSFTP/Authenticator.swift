import CSSH2
import ConnectXpertPolicy
import ConnectXpertTransport
import Foundation

/// Logs a session in with the remote's credentials, in the order key file, agent, password. A
/// refused login is a `.refused` failure that names what was tried.
enum Authenticator {
    static func authenticate(_ session: SSHSession, user: String, settings: SSHSettings, credentials: [Credential],
                             environment: [String: String], endpoint: String) throws {
        var tried: [String] = []
        for credential in credentials {
            switch credential {
            case .keyFile(let path):
                tried.append("key \(path)")
                let passphrase = try settings.passphraseFile.map(SecretFile.read)
                if libssh2_userauth_publickey_fromfile_ex(session.raw, user, UInt32(user.utf8.count), nil, path, passphrase) == 0 {
                    return
                }
            case .passwordFile, .passwordEnvironment:
                continue
            }
        }
        if settings.useAgent {
            tried.append("ssh-agent")
            if agentLogin(session, user: user) { return }
        }
        for credential in credentials {
            switch credential {
            case .passwordFile(let path): tried.append("password from \(path)")
            case .passwordEnvironment(let name): tried.append("password from $\(name)")
            case .keyFile: continue
            }
            guard let password = try Secrets.password(credential, environment: environment, place: endpoint) else { continue }
            if libssh2_userauth_password_ex(session.raw, user, UInt32(user.utf8.count), password,
                                            UInt32(password.utf8.count), nil) == 0 {
                return
            }
        }
        throw TransportError(.refused, "authentication failed for \(user)@\(settings.host):\(settings.port) with "
            + tried.joined(separator: ", ") + " (\(session.lastError))")
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
