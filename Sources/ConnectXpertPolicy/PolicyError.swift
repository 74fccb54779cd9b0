/// A position in the policy file, 1-based.
public struct SourceLocation: Equatable, Sendable, CustomStringConvertible {
    public let line: Int
    public let column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }
}

/// One problem in a policy file, printed like a compiler diagnostic:
///
///     policies.yaml:12:5: error: outbox[0]: unknown key 'afer'; did you mean 'after'?
///         afer: delete
///         ^
public struct PolicyError: Error, Equatable, Sendable, CustomStringConvertible {
    public let file: String
    public let location: SourceLocation?
    /// The key path in the document, such as `outbox[0].after`; empty for the whole document.
    public let keyPath: String
    public let message: String
    /// The offending line of the file, for the caret display.
    public let sourceLine: String?

    public init(file: String, location: SourceLocation?, keyPath: String, message: String, sourceLine: String?) {
        self.file = file
        self.location = location
        self.keyPath = keyPath
        self.message = message
        self.sourceLine = sourceLine
    }

    public var description: String {
        var head = file
        if let location { head += ":\(location)" }
        head += ": error: "
        if !keyPath.isEmpty { head += "\(keyPath): " }
        head += message
        guard let location, let sourceLine else { return head }
        let caret = String(repeating: " ", count: max(0, location.column - 1)) + "^"
        return head + "\n    " + sourceLine + "\n    " + caret
    }
}

/// All the problems found in one policy file.
public struct PolicyErrors: Error, Sendable, CustomStringConvertible {
    public let errors: [PolicyError]

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
