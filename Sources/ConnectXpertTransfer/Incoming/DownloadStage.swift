import ConnectXpertJournal
import ConnectXpertSystem
import ConnectXpertTransport
import Foundation

/// Copies the remote file to its local temporary name (`transferring`) and makes it durable: the
/// file is then `staged`. A new attempt on an unchanged remote file continues from what the
/// previous one left in the temporary file. The record is committed, not yet durable: the batch
/// driver makes it so before the rename, as a rename without it would look undone, and be received
/// twice.
struct DownloadStage: Stage {
    let agent: Agent

    var takes: Set<TransferState> { [.queued, .transferring] }

    func run(_ job: inout Incoming, through transport: any Transport) throws {
        var record = job.record
        guard let destination = record.destination, let temporary = record.temporary else {
            throw TransportError(.transient, "journal record without names")
        }
        let entry: RemoteEntry
        var offset: Int64 = 0
        if let listed = job.listed {
            entry = listed
        } else {
            guard let current = try transport.entry(at: record.remotePath), current.kind == .file else {
                throw SourceGone()
            }
            entry = current
            let partial = try FileSystem.status(temporary)
            if let partial, partial.kind == .regular, record.isVersion(of: current), partial.size <= current.size {
                offset = partial.size
            } else {
                try FileSystem.removeIfPresent(temporary)
            }
            record.size = entry.size
            record.modificationNanoseconds = entry.modificationNanoseconds
            record.state = .transferring
            job.record = record
        }
        try FileSystem.createDirectories(parentDirectory(of: destination))
        // An empty temporary file (an earlier attempt stopped before its first byte) is begun anew.
        if offset == 0 { try FileSystem.removeIfPresent(temporary) }
        let file = offset > 0 ? try FileDescriptor.open(temporary, flags: O_WRONLY | O_APPEND)
            : try FileDescriptor.create(temporary)
        if offset > 0 {
            job.log.info("resuming the download", metadata: [
                "transfer.offset": "\(offset)", "transfer.bytes": "\(entry.size)",
            ])
        }
        let bytes = try transport.download(record.remotePath, listedSize: entry.size, from: offset, to: file,
                                           report: agent.progressReporter(for: record.id, from: offset))
        guard bytes == entry.size else {
            try FileSystem.removeIfPresent(temporary)
            let arrived = bytes > entry.size ? "more arrived (the download was stopped there)" : "\(bytes) arrived"
            throw TransportError(.transient, "\(transport.endpoint)/\(record.source) was listed with "
                                 + "\(entry.size) bytes but \(arrived)")
        }
        try file.sync()
        try FileSystem.setModificationTime(temporary, nanoseconds: entry.modificationNanoseconds)
        record.bytesDone = bytes
        record.state = record.sealed == nil ? .staged : .downloaded
        try agent.journal.save(record)
        job.record = record
        job.listed = nil  // a second run on a fresh connection looks again
    }
}

extension Transport {
    /// Downloads `path`, listed with `size` bytes, from `offset` on; returns how many bytes the file
    /// then has. Nothing past the listed size is stored: a server that streams on (a file still
    /// growing, or a server that lies) is stopped after one buffer more, and the count says more.
    func download(_ path: String, listedSize size: Int64, from offset: Int64 = 0, to file: any DownloadSink,
                  report: TransferProgress = { _ in true }) throws -> Int64 {
        var overrun = false
        do {
            return try offset + download(path, size: size, from: offset, to: file) { done in
                overrun = offset + done > size
                return !overrun && report(done)
            }
        } catch where overrun {
            return size + 1
        }
    }
}
