import ConnectXpertSystem
import Foundation

/// A queued message made ready for SMTP: its envelope, the header as transmitted (without Bcc,
/// with Date, Message-ID and From added when missing, CRLF line ends) and where its body starts.
/// The added Date and Message-ID come from the file's identity, so a retry sends the same ones.
public struct OutgoingMessage: Sendable {
    public let path: String
    public let sender: String
    public let recipients: [String]
    /// The header section as transmitted, ending with the empty line.
    public let header: [UInt8]
    public let bodyOffset: Int64
    public let size: Int64

    /// The bytes the message takes on the wire, at least: its header as transmitted and its body
    /// (a bare LF becomes CRLF, and a dot is doubled at the start of a line, so it may take more).
    public var transmittedSize: Int64 { Int64(header.count) + size - bodyOffset }

    /// Reads the header of the message at `path`. The envelope comes from `envelope` (written by
    /// `sendmail`) where given; the sender from `policySender` before anything else.
    public init(path: String, envelope: Envelope?, policySender: String?, hostname: String) throws {
        let file = try FileDescriptor.openForReading(path)
        let status = try file.status()
        var head = [UInt8](repeating: 0, count: Int(min(status.size, Int64(HeaderBlock.maximumSize))))
        let filled = try head.withUnsafeMutableBytes { try file.read(filling: $0) }
        head.removeSubrange(filled...)
        let block = try HeaderBlock(parsing: head)
        if block.bodyOffset == head.count && status.size > Int64(head.count) {
            throw MessageError.headerTooLarge(HeaderBlock.maximumSize)
        }

        let headerSender = block.values("From").lazy.flatMap(AddressList.addresses(in:)).first
        guard let sender = policySender ?? envelope?.sender ?? headerSender else { throw MessageError.noSender }
        let recipients = envelope.map(\.recipients).flatMap { $0.isEmpty ? nil : $0 } ?? Envelope.recipients(of: block)
        guard !recipients.isEmpty else { throw MessageError.noRecipients }

        var header: [UInt8] = []
        let crlf: [UInt8] = [13, 10]
        for field in block.fields where !field.is("Bcc") && !field.is("Resent-Bcc") {
            for line in field.lines { header += line + crlf }
        }
        if !block.contains("From") { header += Array("From: <\(sender)>".utf8) + crlf }
        if !block.contains("Date") {
            header += Array("Date: \(Self.dateFormatter.string(from: Date(timeIntervalSince1970: Double(status.modificationNanoseconds) / 1e9)))".utf8) + crlf
        }
        if !block.contains("Message-ID") {
            let token = String(UInt64(bitPattern: status.modificationNanoseconds), radix: 36) + "." + String(status.inode, radix: 36)
            header += Array("Message-ID: <cx.\(token)@\(hostname)>".utf8) + crlf
        }
        header += crlf

        self.path = path
        self.sender = sender
        self.recipients = recipients
        self.header = header
        bodyOffset = Int64(block.bodyOffset)
        size = status.size
    }

    /// RFC 5322 dates: `Sat, 21 Nov 2026 14:03:00 +0100`.
    static let dateFormatter: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        return formatter
    }()
}

/// Streams a message for transmission: the prepared header, then the body read from the file in
/// pieces with bare LF line ends turned into CRLF (libcurl dot-stuffs only lines that end in CRLF).
/// Memory stays at one buffer whatever the message's size.
final class MessageStream {
    private let file: FileDescriptor
    private var pending: [UInt8]
    private var pendingStart = 0
    private var previousWasCR = false
    private var atEnd = false
    private var chunk = [UInt8](repeating: 0, count: 64 * 1024)

    init(_ message: OutgoingMessage) throws {
        file = try FileDescriptor.openForReading(message.path)
        try file.seek(to: message.bodyOffset)
        pending = message.header
    }

    /// Fills `buffer`; returns the bytes written, 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while pendingStart == pending.count && !atEnd { try refill() }
        let count = min(buffer.count, pending.count - pendingStart)
        pending.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[pendingStart..<(pendingStart + count)]))
        }
        pendingStart += count
        return count
    }

    private func refill() throws {
        let n = try chunk.withUnsafeMutableBytes { try file.read(into: $0) }
        pending.removeAll(keepingCapacity: true)
        pendingStart = 0
        guard n > 0 else {
            atEnd = true
            return
        }
        for byte in chunk[0..<n] {
            if byte == 10 && !previousWasCR { pending.append(13) }
            pending.append(byte)
            previousWasCR = byte == 13
        }
    }
}
