import ConnectXpertSystem
#if canImport(Glibc)
import Glibc
#endif

/// A drop that is a local folder (`file:///srv/drop`): a shared disk, or two agents on one machine.
/// Files are fsynced before they are renamed into place, and directories after, so a drop is as
/// durable as a remote server's.
public final class LocalDropTransport: Transport {
    public let features = RemoteFeatures()
    public let base: String
    public var endpoint: String { "file:\(base)" }

    private let bufferSize = 1 << 20

    public init(base: String) throws {
        self.base = base
        guard let status = try? FileSystem.status(base), status.kind == .directory else {
            throw TransportError(.transient, "drop folder \(base) does not exist (not mounted, or not created yet)")
        }
    }

    private func full(_ path: String) -> String { joinPath(base, path) }

    public func list(_ folder: String) throws -> [RemoteEntry] {
        let directory = full(folder)
        let listing: (names: [String], notText: [String])
        do {
            listing = try FileSystem.listing(of: directory)
        } catch let error as SystemError where error.errno == ENOENT {
            return []
        } catch {
            throw classify(error)
        }
        return listing.names.compactMap { name in
            guard let status = try? FileSystem.status(joinPath(directory, name)) else { return nil }
            return Self.entry(name: name, status)
        } + listing.notText.map { RemoteEntry.notText(escapedName: $0) }
    }

    public func entry(at path: String) throws -> RemoteEntry? {
        do {
            return try FileSystem.status(full(path)).map { Self.entry(name: lastComponent(of: path), $0) }
        } catch {
            throw classify(error)
        }
    }

    public func makeDirectories(_ folder: String) throws {
        do { try FileSystem.createDirectories(full(folder)) } catch { throw classify(error) }
    }

    public func upload(from source: any UploadSource, to path: String, attributes: UploadAttributes,
                       progress: TransferProgress) throws -> Int64 {
        let target = full(path)
        do {
            try FileSystem.removeIfPresent(target)
            let output = try FileDescriptor.create(target)
            try copy(from: source, at: 0, to: output, progress: progress)
            if let mode = attributes.mode { try FileSystem.setPermissions(target, mode: mode_t(mode)) }
            if let time = attributes.modificationNanoseconds { try FileSystem.setModificationTime(target, nanoseconds: time) }
            try output.sync()
            return try output.status().size
        } catch {
            throw classify(error)
        }
    }

    public func rename(_ from: String, to: String, replacing: Bool) throws {
        do {
            if replacing {
                try FileSystem.rename(full(from), to: full(to))
            } else {
                try FileSystem.renameNoReplace(full(from), to: full(to))
            }
            try FileSystem.syncDirectory(parentDirectory(of: full(to)))
        } catch let error as SystemError where error.errno == EEXIST {
            throw TransportError(.alreadyExists, "\(full(to)) exists already")
        } catch {
            throw classify(error)
        }
    }

    public func download(_ path: String, size: Int64, from offset: Int64, to destination: any DownloadSink,
                         progress: TransferProgress) throws -> Int64 {
        do {
            let input: FileDescriptor
            do { input = try FileDescriptor.openForReading(full(path)) } catch let error as SystemError where error.isNotFound {
                throw TransportError(.notFound, "\(full(path)) is not there any more")
            }
            return try copy(from: input, at: offset, to: destination, progress: progress)
        } catch {
            throw classify(error)
        }
    }

    public func delete(_ path: String) throws {
        do {
            if try FileSystem.removeIfPresent(full(path)) {
                try FileSystem.syncDirectory(parentDirectory(of: full(path)))
            }
        } catch {
            throw classify(error)
        }
    }

    @discardableResult
    private func copy(from input: any UploadSource, at offset: Int64, to output: any DownloadSink,
                      progress: TransferProgress) throws -> Int64 {
        var buffer = [UInt8](repeating: 0, count: bufferSize)
        var total: Int64 = 0
        while true {
            let count = try buffer.withUnsafeMutableBytes { try input.read(into: $0, at: offset + total) }
            if count == 0 { return total }
            try buffer.withUnsafeBytes { try output.write(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            total += Int64(count)
            guard progress(total) else { throw TransferCancelled() }
        }
    }

    private static func entry(name: String, _ status: FileStatus) -> RemoteEntry {
        let kind: RemoteEntry.Kind
        switch status.kind {
        case .regular: kind = .file
        case .directory: kind = .directory
        case .symlink: kind = .symlink
        default: kind = .other
        }
        return RemoteEntry(name: name, kind: kind, size: status.size, modificationNanoseconds: status.modificationNanoseconds)
    }

    /// Permission and naming problems need a person; everything else may pass.
    private func classify(_ error: Error) -> Error {
        guard let error = error as? SystemError else { return error }
        switch error.errno {
        case EACCES, EPERM, EROFS, ENAMETOOLONG, EINVAL, EISDIR, ENOTDIR, ELOOP:
            return TransportError(.permanent, "drop \(base): \(error)")
        default:
            return TransportError(.transient, "drop \(base): \(error)")
        }
    }
}
