/// What a reader is shown of a message, and what it can save, from one walk of its MIME tree, as
/// mutt shows a message:
/// - every inline text part, in order: in a multipart/alternative the version with plain text (else
///   the last one, HTML reduced to text); in a multipart/related its root part (its `start`, else
///   the first); any other text type as it is (text/rfc822-headers included);
/// - each enclosed message (message/rfc822, and the parts of a multipart/digest) as its header
///   fields, then what is shown of it in turn;
/// - the attachments: every part not shown (not text, or marked `attachment`), the other parts of a
///   multipart/related, text parts that carry a file name, and each enclosed message itself.
///
/// `mail show` prints the pieces and lists the attachments, `mail save` saves the same
/// attachments: what is shown, listed and saved cannot disagree.
public struct MessageReading: Sendable {
    public enum Piece: Sendable {
        /// A text part's text, decoded.
        case text(String)
        /// Where an enclosed message begins: its header (nil when it has none).
        case message(HeaderBlock?)
    }

    public private(set) var pieces: [Piece] = []
    public private(set) var attachments: [MIMEPart] = []

    public init(_ message: MIMEPart) {
        walk(message)
    }

    /// The texts shown, without the enclosed messages' headers.
    public var texts: [String] {
        pieces.compactMap { if case .text(let text) = $0 { text } else { nil } }
    }

    private mutating func walk(_ part: MIMEPart) {
        if part.isMultipart {
            switch part.contentType {
            case "multipart/alternative":
                let shown = part.parts.last { $0.hasInlinePlainText } ?? part.parts.last { MessageReading($0).hasText }
                if let shown { walk(shown) }
            case "multipart/related":
                let start = part.parameters["start"]
                let root = part.parts.firstIndex { start != nil && $0.header?.text("Content-ID") == start } ?? 0
                for (index, child) in part.parts.enumerated() {
                    if index == root { walk(child) } else { attach(child) }
                }
            default:
                part.parts.forEach { walk($0) }
            }
        } else if let enclosed = part.enclosed {
            attachments.append(part)
            pieces.append(.message(enclosed.header))
            walk(enclosed)
        } else if part.contentType.hasPrefix("text/") && !part.isMarkedAttachment {
            let text = part.contentType == "text/html" ? MailDecoding.plainText(fromHTML: part.text) : part.text
            pieces.append(.text(text))
            if part.filename != nil { attachments.append(part) }
        } else {
            attachments.append(part)
        }
    }

    /// Every leaf below `part` as an attachment (the parts of a multipart/related besides its root).
    private mutating func attach(_ part: MIMEPart) {
        if part.isMultipart { part.parts.forEach { attach($0) } } else { attachments.append(part) }
    }

    private var hasText: Bool { !texts.isEmpty }
}

extension MIMEPart {
    /// Whether it is, or holds, an inline text/plain part: the version of a multipart/alternative
    /// a terminal shows.
    var hasInlinePlainText: Bool {
        isMultipart ? parts.contains { $0.hasInlinePlainText } : contentType == "text/plain" && !isMarkedAttachment
    }
}
