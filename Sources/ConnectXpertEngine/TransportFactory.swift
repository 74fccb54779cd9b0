import ConnectXpertFTP
import ConnectXpertPolicy
import ConnectXpertSFTP
import ConnectXpertTransport

/// Opens a connection to a remote with the transport its URL names.
enum TransportFactory {
    static func connect(to remote: Remote) throws -> any Transport {
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
