import ConnectXpertPolicy
import ConnectXpertSFTP
import ConnectXpertTestSupport
import Foundation

extension SFTPTransport {
    /// Connects to a remote the tests parsed from an `sftp://` URL.
    convenience init(remote: Remote, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard case .sftp(let settings) = remote.endpoint else {
            throw TestServerError(message: "\(remote.url) is not an sftp:// remote")
        }
        try self.init(remote: remote, settings: settings, environment: environment)
    }
}
