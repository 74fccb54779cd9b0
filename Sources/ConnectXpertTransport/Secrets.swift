import ConnectXpertPolicy
import ConnectXpertSystem

/// Reads the secrets a policy names by reference.
public enum Secrets {
    /// A secret file's contents without the final line break.
    public static func read(_ path: String) throws -> String {
        var text = String(decoding: try FileSystem.readFile(path), as: UTF8.self)
        while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
        return text
    }

    /// The password a credential holds; `nil` for a key file. An unset variable refuses the
    /// login, naming `place`.
    public static func password(_ credential: Credential, environment: [String: String], place: String) throws -> String? {
        switch credential {
        case .passwordFile(let path):
            return try read(path)
        case .passwordEnvironment(let name):
            guard let value = environment[name] else {
                throw TransportError(.refused, "\(place): environment variable \(name) (password_env) is not set")
            }
            return value
        case .keyFile:
            return nil
        }
    }
}
