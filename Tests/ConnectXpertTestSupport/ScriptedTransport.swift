import ConnectXpertPolicy
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation
import Synchronization

/// A remote for in-process tests of the pipelines: its files are kept in memory, and its script says
/// which calls fail, and how. It stands in for no server: the integration tests run against real
/// ones. Every call is recorded (`calls`), so a test can read what the agent asked for.
public final class ScriptedRemote: Sendable {
    /// The calls a transport makes, and a connection attempt.
    public enum Operation: String, Sendable {
        case connect, list, entry, makeDirectories, upload, rename, download, delete
    }

    /// A file on the remote.
    public struct File: Sendable, Equatable {
        public var bytes: [UInt8]
        public var modificationNanoseconds: Int64
    }

    private struct Fault {
        let operation: Operation
        /// A part of the path the call must concern, if any.
        let path: String?
        let error: any Error & Sendable
        var times: Int
    }

    private struct Action {
        let operation: Operation
        let path: String?
        let run: @Sendable () -> Void
    }

    private struct State {
        var files: [String: File] = [:]
        var faults: [Fault] = []
        var actions: [Action] = []
        var calls: [String] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// The next `times` calls of `operation` (whose path contains `path`, if given) throw `error`.
    public func fail(_ operation: Operation, at path: String? = nil, with error: any Error & Sendable, times: Int = 1) {
        state.withLock { $0.faults.append(Fault(operation: operation, path: path, error: error, times: times)) }
    }

    /// Runs `action` once, at the next call of `operation` (whose path contains `path`, if given),
    /// before the call is made.
    public func before(_ operation: Operation, at path: String? = nil, run action: @escaping @Sendable () -> Void) {
        state.withLock { $0.actions.append(Action(operation: operation, path: path, run: action)) }
    }

    /// Puts a file on the remote, as a peer would.
    public func put(_ path: String, _ text: String, modified: Int64 = 1_700_000_000_000_000_000) {
        state.withLock { $0.files[path] = File(bytes: Array(text.utf8), modificationNanoseconds: modified) }
    }

    /// The files on the remote, by path.
    public var files: [String: File] { state.withLock { $0.files } }

    /// The text of a file on the remote, if it is there.
    public func text(_ path: String) -> String? { files[path].map { String(decoding: $0.bytes, as: UTF8.self) } }

    /// Each call so far, as `operation path`.
    public var calls: [String] { state.withLock { $0.calls } }

    /// Opens a connection; the agent's `connect`.
    public func connect(_ remote: Remote) throws -> any Transport {
        try call(.connect, remote.name)
        return ScriptedTransport(remote: self)
    }

    /// Records a call, and throws the error the script has for it.
    fileprivate func call(_ operation: Operation, _ path: String) throws {
        let action = state.withLock { state in
            state.actions.firstIndex { $0.operation == operation && ($0.path.map { path.contains($0) } ?? true) }
                .map { state.actions.remove(at: $0).run }
        }
        action?()
        let fault: (any Error)? = state.withLock { state in
            state.calls.append("\(operation.rawValue) \(path)")
            guard let index = state.faults.firstIndex(where: {
                $0.operation == operation && ($0.path.map { path.contains($0) } ?? true)
            }) else { return nil }
            let error = state.faults[index].error
            state.faults[index].times -= 1
            if state.faults[index].times == 0 { state.faults.remove(at: index) }
            return error
        }
        if let fault { throw fault }
    }

    fileprivate func withFiles<T>(_ body: (inout [String: File]) throws -> T) rethrows -> T {
        try state.withLock { try body(&$0.files) }
    }
}

/// A connection to a `ScriptedRemote`.
final class ScriptedTransport: Transport {
    private let remote: ScriptedRemote

    init(remote: ScriptedRemote) { self.remote = remote }

    var endpoint: String { "scripted:" }
    var features: RemoteFeatures { RemoteFeatures() }

    func list(_ folder: String) throws -> [RemoteEntry] {
        try remote.call(.list, folder)
        let prefix = folder.isEmpty ? "" : folder + "/"
        var entries: [String: RemoteEntry] = [:]
        for (path, file) in remote.files where path.hasPrefix(prefix) {
            let rest = path.dropFirst(prefix.count)
            if let slash = rest.firstIndex(of: "/") {
                let name = String(rest[..<slash])
                entries[name] = RemoteEntry(name: name, kind: .directory, size: 0, modificationNanoseconds: 0)
            } else {
                let name = String(rest)
                entries[name] = RemoteEntry(name: name, kind: .file, size: Int64(file.bytes.count),
                                            modificationNanoseconds: file.modificationNanoseconds)
            }
        }
        return entries.keys.sorted().compactMap { entries[$0] }
    }

    func entry(at path: String) throws -> RemoteEntry? {
        try remote.call(.entry, path)
        return remote.files[path].map {
            RemoteEntry(name: lastComponent(of: path), kind: .file, size: Int64($0.bytes.count),
                        modificationNanoseconds: $0.modificationNanoseconds)
        }
    }

    /// Folders exist where files are; there is nothing to make.
    func makeDirectories(_ folder: String) throws { try remote.call(.makeDirectories, folder) }

    func upload(from source: any UploadSource, to path: String, attributes: UploadAttributes,
                progress: TransferProgress) throws -> Int64 {
        try remote.call(.upload, path)
        var bytes = [UInt8](repeating: 0, count: Int(try source.size()))
        bytes.removeLast(bytes.count - (try bytes.withUnsafeMutableBytes { try source.read(filling: $0, at: 0) }))
        guard progress(Int64(bytes.count)) else { throw TransferCancelled() }
        let modified = attributes.modificationNanoseconds ?? Int64(Date().timeIntervalSince1970 * 1e9)
        remote.withFiles { $0[path] = ScriptedRemote.File(bytes: bytes, modificationNanoseconds: modified) }
        return Int64(bytes.count)
    }

    func rename(_ from: String, to: String, replacing: Bool) throws {
        try remote.call(.rename, "\(from) -> \(to)")
        try remote.withFiles { files in
            guard let file = files[from] else { throw TransportError(.notFound, "\(from) is not there") }
            if !replacing, files[to] != nil { throw TransportError(.alreadyExists, "\(to) exists") }
            files[from] = nil
            files[to] = file
        }
    }

    func download(_ path: String, size: Int64, from offset: Int64, to destination: any DownloadSink,
                  progress: TransferProgress) throws -> Int64 {
        try remote.call(.download, path)
        guard let file = remote.files[path] else { throw TransportError(.notFound, "\(path) is not there") }
        let part = Array(file.bytes.dropFirst(Int(offset)))
        try part.withUnsafeBytes { try destination.write($0) }
        guard progress(Int64(part.count)) else { throw TransferCancelled() }
        return Int64(part.count)
    }

    func delete(_ path: String) throws {
        try remote.call(.delete, path)
        _ = remote.withFiles { $0.removeValue(forKey: path) }
    }
}
