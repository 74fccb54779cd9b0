import ConnectXpertFTP
import ConnectXpertPolicy
import ConnectXpertSFTP
import ConnectXpertTransport

/// Opens a connection to a remote with the transport its URL names.
public enum TransportFactory {
    @Sendable public static func connect(_ remote: Remote) throws -> any Transport {
        switch remote.endpoint {
        case .localDirectory:
            return try LocalDropTransport(base: remote.path)
        case .sftp(let settings):
            return try SFTPTransport(remote: remote, settings: settings)
        case .ftp(let settings):
            return try FTPTransport(remote: remote, settings: settings)
        }
    }
}
