import ConnectXpertFTP
import ConnectXpertPolicy
import ConnectXpertTestSupport
import Foundation

extension FTPTransport {
    /// Connects to a remote the tests parsed from an `ftp://` or `ftps://` URL.
    convenience init(remote: Remote, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard case .ftp(let settings) = remote.endpoint else {
            throw TestServerError(message: "\(remote.url) is not an ftp:// remote")
        }
        try self.init(remote: remote, settings: settings, environment: environment)
    }
}
