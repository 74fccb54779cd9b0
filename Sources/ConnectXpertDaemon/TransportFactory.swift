import ConnectXpertFTP
import ConnectXpertPolicy
import ConnectXpertSFTP
import ConnectXpertTransport

/// Opens a connection to a remote with the transport its URL names.
public enum TransportFactory {
    @Sendable public static func connect(_ remote: Remote) throws -> any Transport {
        switch remote.kind {
        case .localDirectory:
            return try LocalDropTransport(base: remote.path)
        case .sftp:
            return try SFTPTransport(remote: remote)
        case .ftp, .ftps:
            return try FTPTransport(remote: remote)
        }
    }
}
