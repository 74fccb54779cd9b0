import CSSH2
import ConnectXpertTransport

/// A second SFTP session, on a channel of its own in the same SSH connection, spoken to in SFTP v3
/// packets directly: libssh2 1.10 has no call for OpenSSH's `posix-rename@openssh.com`, the one
/// rename that replaces a file in a single step. Freed in `deinit`.
final class SFTPExtensionChannel {
    private let raw: OpaquePointer
    private let session: SSHSession
    /// The extensions the server named in its VERSION reply.
    let extensions: Set<String>
    private var nextRequest: UInt32 = 1

    private enum PacketType {
        static let initialize: UInt8 = 1, version: UInt8 = 2, status: UInt8 = 101, extended: UInt8 = 200
    }

    init(session: SSHSession, endpoint: String) throws {
        guard let channel = libssh2_channel_open_ex(session.raw, "session", 7, 256 * 1024, 32 * 1024, nil, 0) else {
            throw TransportError(.transient, "\(endpoint): cannot open a second SSH channel: \(session.lastError)")
        }
        do {
            guard libssh2_channel_process_startup(channel, "subsystem", 9, "sftp", 4) == 0 else {
                throw TransportError(.transient, "\(endpoint): cannot start a second SFTP session: \(session.lastError)")
            }
            var hello = PacketWriter(type: PacketType.initialize)
            hello.add(UInt32(3))
            try Self.send(hello, on: channel, session: session)
            var reply = try Self.receive(on: channel, session: session)
            guard try reply.byte() == PacketType.version, try reply.uint32() >= 3 else {
                throw TransportError(.transient, "\(endpoint): the second SFTP session did not answer with a version")
            }
            var names: Set<String> = []
            while !reply.atEnd {
                names.insert(String(decoding: try reply.string(), as: UTF8.self))
                _ = try reply.string()  // the extension's version
            }
            extensions = names
        } catch {
            libssh2_channel_free(channel)
            throw error
        }
        raw = channel
        self.session = session
    }

    deinit { libssh2_channel_free(raw) }

    /// Renames `source` to `target`, replacing a file there in one step (rename(2) on the server);
    /// returns the SFTP status, 0 when done.
    func posixRename(_ source: String, to target: String) throws -> UInt {
        let id = nextRequest
        nextRequest &+= 1
        var request = PacketWriter(type: PacketType.extended)
        request.add(id)
        request.add("posix-rename@openssh.com")
        request.add(source)
        request.add(target)
        try Self.send(request, on: raw, session: session)
        var reply = try Self.receive(on: raw, session: session)
        guard try reply.byte() == PacketType.status, try reply.uint32() == id else {
            throw TransportError(.transient, "the server answered posix-rename with something other than its status")
        }
        return UInt(try reply.uint32())
    }

    private static func send(_ packet: PacketWriter, on channel: OpaquePointer, session: SSHSession) throws {
        let bytes = packet.finished
        var sent = 0
        try bytes.withUnsafeBytes { raw in
            while sent < raw.count {
                let count = libssh2_channel_write_ex(channel, 0, raw.baseAddress!.advanced(by: sent).assumingMemoryBound(to: CChar.self),
                                                     raw.count - sent)
                guard count > 0 else { throw TransportError(.transient, "cannot send an SFTP request: \(session.lastError)") }
                sent += count
            }
        }
    }

    /// The next packet, after its length.
    private static func receive(on channel: OpaquePointer, session: SSHSession) throws -> PacketReader {
        var length = PacketReader(bytes: try read(4, on: channel, session: session))
        let size = Int(try length.uint32())
        guard size > 0 && size <= 256 * 1024 else { throw TransportError(.transient, "an SFTP reply of \(size) bytes") }
        return PacketReader(bytes: try read(size, on: channel, session: session))
    }

    private static func read(_ count: Int, on channel: OpaquePointer, session: SSHSession) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var received = 0
        try bytes.withUnsafeMutableBytes { raw in
            while received < count {
                let got = libssh2_channel_read_ex(channel, 0, raw.baseAddress!.advanced(by: received).assumingMemoryBound(to: CChar.self),
                                                  count - received)
                guard got > 0 else { throw TransportError(.transient, "the SFTP session ended: \(session.lastError)") }
                received += got
            }
        }
        return bytes
    }
}

/// An SFTP packet being built: its length (filled in by `finished`), its type, then its fields.
private struct PacketWriter {
    private var bytes: [UInt8]

    init(type: UInt8) { bytes = [0, 0, 0, 0, type] }

    mutating func add(_ value: UInt32) { withUnsafeBytes(of: value.bigEndian) { bytes += $0 } }

    mutating func add(_ text: String) {
        add(UInt32(text.utf8.count))
        bytes += text.utf8
    }

    var finished: [UInt8] {
        var packet = bytes
        withUnsafeBytes(of: UInt32(packet.count - 4).bigEndian) { packet.replaceSubrange(0..<4, with: $0) }
        return packet
    }
}

/// The fields of a received packet, read in order.
private struct PacketReader {
    let bytes: [UInt8]
    private var offset = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { offset >= bytes.count }

    mutating func byte() throws -> UInt8 { try take(1)[0] }

    mutating func uint32() throws -> UInt32 { try take(4).reduce(0) { $0 << 8 | UInt32($1) } }

    mutating func string() throws -> ArraySlice<UInt8> { try take(Int(try uint32())) }

    private mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count <= bytes.count - offset else { throw TransportError(.transient, "a truncated SFTP reply") }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }
}
