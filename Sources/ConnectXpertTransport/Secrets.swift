import ConnectXpertPolicy
import ConnectXpertSystem

/// Reads the secrets a policy names by reference.
public enum Secrets {
    /// The password a credential holds; `nil` for a key file. An unset variable refuses the
    /// login, naming `place`.
    public static func password(_ credential: Credential, environment: [String: String], place: String) throws -> String? {
        switch credential {
        case .passwordFile(let path):
            return try SecretFile.read(path)
        case .passwordEnvironment(let name):
            guard let value = environment[name] else {
                throw TransportError(.refused, "\(place): environment variable \(name) (password_env) is not set")
            }
            return value
        case .keyFile, .agent:
            return nil
        }
    }

    /// The password of the first credential that holds one (`nil` when none does).
    public static func firstPassword(in credentials: [Credential], environment: [String: String], place: String) throws -> String? {
        try credentials.lazy.compactMap { try password($0, environment: environment, place: place) }.first
    }
}
