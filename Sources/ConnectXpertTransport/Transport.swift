import ConnectXpertPolicy
import ConnectXpertSystem
import Foundation

/// One entry of a remote listing.
public struct RemoteEntry: Equatable, Sendable {
    public enum Kind: Sendable { case file, directory, symlink, other }

    /// The name; for one whose bytes are not UTF-8, those bytes escaped (`caf\xE9.txt`).
    public var name: String
    public var kind: Kind
    public var size: Int64
    public var modificationNanoseconds: Int64
    /// False when the name's bytes are not UTF-8: the entry cannot be opened by `name`, only reported.
    public var nameIsText: Bool

    /// The most listing one folder may send (about a million entries, in FTP's listing text or in
    /// SFTP's names): a server that goes on is stopped there.
    public static let listingLimit = 64 << 20

    /// The failure of a listing stopped at `listingLimit`.
    public static func listingTooLarge(_ endpoint: String, _ path: String) -> TransportError {
        TransportError(.transient, "\(endpoint): cannot list \(path): the listing is over "
            + "\(ByteSize(bytes: Int64(listingLimit))); the server sends more than a folder should hold")
    }

    /// An entry whose name's bytes are not UTF-8, known by those bytes escaped: reported, never opened.
    public static func notText(escapedName: String) -> RemoteEntry {
        RemoteEntry(name: escapedName, kind: .other, size: 0, modificationNanoseconds: 0, nameIsText: false)
    }

    public init(name: String, kind: Kind, size: Int64, modificationNanoseconds: Int64, nameIsText: Bool = true) {
        self.name = name
        self.kind = kind
        self.size = size
        self.modificationNanoseconds = modificationNanoseconds
        self.nameIsText = nameIsText
    }
}

/// A failed remote operation, classified so the engine knows whether to retry.
public struct TransportError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// Worth retrying later: the network, a full disk, a server busy or restarting.
        case transient
        /// Needs a person, and concerns the file: permissions, a bad name.
        case permanent
        /// The remote refused us, whatever the file: authentication, an unknown or changed host key.
        /// Files wait where they are until a person acts; no retry loop.
        case refused
        /// The target of a no-replace rename exists.
        case alreadyExists
        /// The file is not there (any more): taken or deleted since it was listed.
        case notFound
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// What an uploaded file is given besides its bytes.
public struct UploadAttributes: Equatable, Sendable {
    /// The modification time to set, or `nil` to leave the server's.
    public var modificationNanoseconds: Int64?
    /// The permissions to set, or `nil` to leave the server's default.
    public var mode: UInt32?
    /// The name the upload is to be renamed to next, without replacing, when known. A transport whose
    /// rename cannot refuse to replace (FTP) checks that name on the upload's own exchange, instead
    /// of in one more before the rename.
    public var renamedTo: String?

    public init(modificationNanoseconds: Int64?, mode: UInt32?, renamedTo: String? = nil) {
        self.modificationNanoseconds = modificationNanoseconds
        self.mode = mode
        self.renamedTo = renamedTo
    }
}

/// Reports bytes moved so far; returns `false` to abort the transfer (shutdown).
public typealias TransferProgress = (Int64) -> Bool

/// What a remote's server turned out to be unable to do, learned on a connection (from its FEAT
/// reply, or from a refusal) and kept with it, as rclone keeps a remote's `fs.Features`.
public struct RemoteFeatures: Equatable, Sendable {
    /// False once the server refused to give an uploaded file its modification time.
    public var keepsModificationTimes = true
    /// False once the server refused a write at an offset (`rclone serve sftp` without a VFS cache
    /// writes each file as one stream): uploads then go in one stream.
    public var writesAtOffsets = true

    public init() {}
}

/// A connection to one remote. Paths are relative to the remote's base folder and use `/`.
/// Methods block; each connection is used by one transfer at a time.
public protocol Transport: AnyObject {
    /// Where this connection goes, for messages (`file:/srv/drop`, `sftp://user@host:22/base`).
    var endpoint: String { get }
    /// What this connection has learned its server cannot do.
    var features: RemoteFeatures { get }

    /// The entries of a folder; an absent folder is empty.
    func list(_ folder: String) throws -> [RemoteEntry]
    /// What is at a path, without following a final symlink; `nil` when nothing is.
    func entry(at path: String) throws -> RemoteEntry?
    func makeDirectories(_ folder: String) throws
    /// Writes `source` to a new file at `path` (replacing a leftover there), gives it `attributes`,
    /// and returns the size the destination reports for it.
    func upload(from source: any UploadSource, to path: String, attributes: UploadAttributes,
                progress: TransferProgress) throws -> Int64
    /// Renames; with `replacing: false` an existing target throws `.alreadyExists`.
    func rename(_ from: String, to: String, replacing: Bool) throws
    /// Appends the file at `path`, listed with `size` bytes, from byte `offset` on, to `destination`;
    /// returns the number of bytes copied (a transport reads to the end, whatever the listing said).
    func download(_ path: String, size: Int64, from offset: Int64, to destination: any DownloadSink,
                  progress: TransferProgress) throws -> Int64
    /// Deletes a file; a missing file is not an error.
    func delete(_ path: String) throws
    /// A round trip that changes nothing, on a connection left idle: firewalls and NATs see it in
    /// use, and a connection the server dropped shows by throwing.
    func keepAlive() throws
    /// How many more connections an upload of `size` bytes can use, each writing a part of the file
    /// alongside this one; 0 when the transport does not split files.
    func extraStreams(forUploadOf size: Int64) -> Int
    /// `upload(from:to:attributes:progress:)` of a file with `helpers`, more connections to the same
    /// remote, each writing a part of it.
    func upload(from source: FileDescriptor, to path: String, attributes: UploadAttributes, helpers: [HelperConnection],
                progress: TransferProgress) throws -> Int64
}

/// A further connection to the same remote for an upload in parts, opened by the thread that writes
/// its part when it starts: the first part is already going up while it connects.
// Sendable: `opened` is guarded by `lock`.
public final class HelperConnection: @unchecked Sendable {
    private let connect: () throws -> any Transport
    private let lock = NSLock()
    private var opened: (any Transport)?

    public init(_ connect: @escaping () throws -> any Transport) {
        self.connect = connect
    }

    /// The connection, once open.
    public var transport: (any Transport)? { lock.withLock { opened } }

    /// Opens the connection, the first time.
    public func open() throws -> any Transport {
        try lock.withLock {
            if let opened { return opened }
            let connection = try connect()
            opened = connection
            return connection
        }
    }
}

extension Transport {
    public func keepAlive() throws {}

    public func extraStreams(forUploadOf size: Int64) -> Int { 0 }

    public func upload(from source: FileDescriptor, to path: String, attributes: UploadAttributes, helpers: [HelperConnection],
                       progress: TransferProgress) throws -> Int64 {
        try upload(from: source, to: path, attributes: attributes, progress: progress)
    }
}

/// Raised through `TransferProgress` returning `false`.
public struct TransferCancelled: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "cancelled by shutdown" }
}

/// What an upload reads: a file, or bytes made as they are read (a file being sealed), which are
/// read in order, from offset 0 to the end, once.
public protocol UploadSource: AnyObject {
    /// How many bytes there are to read.
    func size() throws -> Int64
    /// Reads up to `buffer.count` bytes from `offset` on; 0 only at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int
}

extension UploadSource {
    /// Fills `buffer` from `offset` on, unless the source ends first; returns the bytes read.
    public func read(filling buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        var filled = 0
        while filled < buffer.count,
              case let count = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]),
                                        at: offset + Int64(filled)), count > 0 {
            filled += count
        }
        return filled
    }
}

/// Where a download writes: a file, or a stream that works on the bytes as they come (a sealed
/// object being opened).
public protocol DownloadSink: AnyObject {
    func write(_ bytes: UnsafeRawBufferPointer) throws
}

extension FileDescriptor: UploadSource, DownloadSink {
    public func size() throws -> Int64 { try status().size }
}

/// Bytes in memory, uploaded as a file (a key card, a manifest).
public final class BytesSource: UploadSource {
    private let bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public func size() throws -> Int64 { Int64(bytes.count) }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        let start = Int(min(offset, Int64(bytes.count)))
        let count = min(buffer.count, bytes.count - start)
        bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[start..<start + count])) }
        return count
    }
}

/// A download kept in memory (a key card, a manifest).
public final class BytesSink: DownloadSink {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public func write(_ bytes: UnsafeRawBufferPointer) throws { self.bytes.append(contentsOf: bytes) }
}
