import ConnectXpertSystem
import Foundation

/// A path with `{variable}` placeholders, such as the default remote layout `{sender}->{recipient}/{path}`.
public struct PathTemplate: Equatable, Sendable, CustomStringConvertible {
    public let text: String

    /// Every variable a template may use, and what it stands for.
    public static let variables: [String: String] = [
        "sender": "the sending user's ID",
        "recipient": "the receiving user's ID",
        "path": "the file's path below the recipient's outbox folder (sub-folders kept)",
        "name": "the file's name without folders",
        "date": "today's date, YYYY-MM-DD",
        "spool": "the spool folder",
    ]

    public init(_ text: String) { self.text = text }

    /// The names of the `{…}` placeholders, in order.
    public var placeholders: [String] {
        var names: [String] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else { break }
            names.append(String(rest[rest.index(after: open)..<close]))
            rest = rest[rest.index(after: close)...]
        }
        return names
    }

    /// Why the template is unusable with the given variables, or `nil`.
    public func problem(allowed: Set<String>, required: Set<String> = []) -> String? {
        if text.filter({ $0 == "{" }).count != text.filter({ $0 == "}" }).count {
            return "unbalanced '{' or '}' in '\(text)'"
        }
        for name in placeholders where !allowed.contains(name) {
            let hint = closestMatch(to: name, in: Array(allowed)).map { "; did you mean {\($0)}?" }
                ?? "; use one of " + allowed.sorted().map { "{\($0)}" }.joined(separator: ", ")
            return "unknown variable {\(name)} in '\(text)'" + hint
        }
        for name in required.sorted() where !placeholders.contains(name) {
            return "'\(text)' must contain {\(name)}"
        }
        return nil
    }

    /// The text with each placeholder that has a value replaced by it, in one pass: a value that
    /// itself holds braces is taken as it is, and placeholders without a value stay.
    public func render(_ values: [String: String]) -> String {
        var result = ""
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            result += rest[..<open]
            result += values[String(rest[rest.index(after: open)..<close])] ?? String(rest[open...close])
            rest = rest[rest.index(after: close)...]
        }
        return result + rest
    }

    public var description: String { text }

    /// Today's local date as `YYYY-MM-DD` (strftime: cheap, and safe on any thread).
    public static func today() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var text = [CChar](repeating: 0, count: 16)
        strftime(&text, text.count, "%Y-%m-%d", &parts)
        return String(nulTerminated: text)
    }
}

/// The remote folders an inbox rule reads: a folder template such as `{sender}->{recipient}` with our
/// own ID filled in, split around the one component that holds `{sender}`.
public struct SenderFolderPattern: Equatable, Sendable {
    /// Folders above the sender component, relative to the remote's base.
    public let parent: String
    public let prefix: String
    public let suffix: String
    /// Folders below the sender component.
    public let below: String

    public init?(template: PathTemplate, recipient: String) {
        let rendered = template.render(["recipient": recipient])
        let components = rendered.split(separator: "/").map(String.init)
        guard let index = components.firstIndex(where: { $0.contains("{sender}") }),
              let range = components[index].range(of: "{sender}") else { return nil }
        parent = components[..<index].joined(separator: "/")
        prefix = String(components[index][..<range.lowerBound])
        suffix = String(components[index][range.upperBound...])
        below = components[(index + 1)...].joined(separator: "/")
    }

    /// The sender named by a folder name in `parent`, or `nil` when the name does not fit.
    public func sender(inFolderNamed name: String) -> String? {
        guard name.count > prefix.count + suffix.count, name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        let sender = String(name.dropFirst(prefix.count).dropLast(suffix.count))
        return Names.problem(withComponent: sender) == nil ? sender : nil
    }

    /// The folder, relative to the remote's base, that holds files from `sender`.
    public func folder(for sender: String) -> String {
        joinParts([parent, prefix + sender + suffix, below])
    }
}

func joinParts(_ parts: [String]) -> String {
    parts.filter { !$0.isEmpty }.joined(separator: "/")
}
