import ConnectXpertSystem
import Foundation
import Yams

/// Reads `policies.yaml`: parses it, decodes it and checks it, reporting every problem with its
/// file, line and column.
public enum PolicyLoader {
    /// Loads and validates the policy at `path`. Throws `PolicyErrors`.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Policy {
        let file = absolutePath(path, relativeTo: FileSystem.currentDirectory)
        let text: String
        do {
            text = String(decoding: try FileSystem.readFile(file), as: UTF8.self)
        } catch {
            throw PolicyErrors(errors: [PolicyError(
                file: path, location: nil, keyPath: "",
                message: "cannot read the policy (\(error)); create one with 'connectxpert init --id YOUR_ID'",
                sourceLine: nil)])
        }
        return try parse(text, file: file, displayName: path, environment: environment)
    }

    /// Parses policy text; `file` anchors relative paths, `displayName` is what messages show.
    public static func parse(
        _ text: String, file: String, displayName: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> Policy {
        let context = Context(text: text, file: file, displayName: displayName ?? file, environment: environment)
        let (document, root) = try decode(PolicyDocument.self, context: context, what: "the policy")
        var validator = Validator(context: context, root: root)
        let policy = validator.build(document)
        if !validator.errors.isEmpty { throw PolicyErrors(errors: validator.errors) }
        return policy!
    }

    /// Reads a screen share request (`spool/jobs/screen-share.yaml`): the fields of
    /// `jobs.screen_share` and `duration`, checked as the policy is. Throws `PolicyErrors`.
    public static func screenShareRequest(path: String) throws -> ScreenShareDocument {
        let text: String
        do { text = String(decoding: try FileSystem.readFile(path), as: UTF8.self) } catch {
            throw PolicyErrors(errors: [PolicyError(file: path, location: nil, keyPath: "", message: "cannot read it: \(error)",
                                                    sourceLine: nil)])
        }
        let context = Context(text: text, file: path, displayName: path, environment: [:])
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            return ScreenShareDocument()
        }
        var (request, _) = try decode(ScreenShareDocument.self, context: context, what: "the request")
        request.passwordFile = request.passwordFile.map { absolutePath($0, relativeTo: context.directory) }
        return request
    }

    /// Parses and decodes a YAML document, every problem located by line and column.
    private static func decode<T: Decodable>(_ type: T.Type, context: Context, what: String) throws -> (T, Node) {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: context.text) else {
                throw PolicyErrors(errors: [context.error(at: nil, keyPath: "", "\(what) is empty")])
            }
            root = node
        } catch let error as YamlError {
            throw PolicyErrors(errors: [context.error(for: error)])
        }
        do {
            return (try YAMLDecoder().decode(Document<T>.self, from: root).value, root)
        } catch {
            throw PolicyErrors(errors: [context.error(for: error, root: root)])
        }
    }
}

/// The document's top, where Yams hands its decoder to `PolicyDecoder`.
private struct Document<Value: Decodable>: Decodable {
    let value: Value

    init(from decoder: Decoder) throws { value = try PolicyDecoder.decode(Value.self, from: decoder) }
}

/// The text being read, for locating and quoting problems.
struct Context {
    let text: String
    let file: String
    let displayName: String
    let environment: [String: String]

    var directory: String { parentDirectory(of: file) }

    func line(_ number: Int) -> String? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard number >= 1, number <= lines.count else { return nil }
        return String(lines[number - 1])
    }

    func error(at mark: Mark?, keyPath: String, _ message: String) -> PolicyError {
        let location = mark.map { SourceLocation(line: $0.line, column: $0.column) }
        return PolicyError(
            file: displayName, location: location, keyPath: keyPath, message: message,
            sourceLine: location.flatMap { line($0.line) })
    }

    func error(for yamlError: YamlError) -> PolicyError {
        switch yamlError {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            let prefix = context.map { "\($0.text) " } ?? ""
            return error(at: mark, keyPath: "", "malformed YAML: \(prefix)\(problem)")
        case let .duplicatedKeysInMapping(duplicates, context):
            return error(at: context.mark, keyPath: "", "duplicate key " + duplicates.map { "'\($0)'" }.joined(separator: ", "))
        default:
            return error(at: nil, keyPath: "", "malformed YAML: \(yamlError)")
        }
    }

    func error(for decodingError: Error, root: Node) -> PolicyError {
        switch decodingError {
        case let issue as PolicyIssue:
            return error(at: root.mark(at: issue.codingPath, atKey: issue.atKey), keyPath: keyPath(issue.codingPath), issue.message)
        case let DecodingError.keyNotFound(key, context):
            return error(at: root.mark(at: context.codingPath, atKey: false), keyPath: keyPath(context.codingPath),
                         "missing required key '\(key.stringValue)'")
        case let DecodingError.typeMismatch(type, context), let DecodingError.valueNotFound(type, context):
            let found = root.node(at: context.codingPath).map(describe) ?? "nothing"
            return error(at: root.mark(at: context.codingPath, atKey: false), keyPath: keyPath(context.codingPath),
                         "expected \(describe(type)), found \(found)")
        case let DecodingError.dataCorrupted(context):
            return error(at: root.mark(at: context.codingPath, atKey: false), keyPath: keyPath(context.codingPath),
                         context.debugDescription)
        case let yamlError as YamlError:
            return error(for: yamlError)
        default:
            return error(at: nil, keyPath: "", "\(decodingError)")
        }
    }

    private func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "text"
        case is Int.Type, is Int64.Type: return "a whole number"
        case is Bool.Type: return "true or false"
        case is Double.Type: return "a number"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "a list" }
            if name.hasPrefix("Dictionary") || name.hasSuffix("Document") { return "a mapping of keys to values" }
            return name
        }
    }

    private func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): return "'\(scalar.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }
}

/// `outbox[0].after` from a coding path.
func keyPath(_ path: [CodingKey]) -> String {
    var text = ""
    for key in path {
        if let index = key.intValue, key.stringValue == "\(index)" || key.stringValue.hasPrefix("Index") {
            text += "[\(index)]"
        } else {
            text += text.isEmpty ? key.stringValue : "." + key.stringValue
        }
    }
    return text
}

extension Node {
    /// The node at a coding path, or `nil` where the path leaves the document.
    func node(at path: [CodingKey]) -> Node? {
        var node: Node = self
        for key in path {
            if let index = key.intValue, case .sequence(let sequence) = node {
                guard index < sequence.count else { return nil }
                node = sequence[index]
            } else if case .mapping(let mapping) = node, let value = mapping[key.stringValue] {
                node = value
            } else {
                return nil
            }
        }
        return node
    }

    /// Where a coding path points: its value, or its key with `atKey`, or the deepest node that exists.
    func mark(at path: [CodingKey], atKey: Bool) -> Mark? {
        var node: Node = self
        for (offset, key) in path.enumerated() {
            if let index = key.intValue, case .sequence(let sequence) = node, index < sequence.count {
                node = sequence[index]
            } else if case .mapping(let mapping) = node,
                      let pair = mapping.first(where: { $0.key.string == key.stringValue }) {
                if atKey && offset == path.count - 1 { return pair.key.mark }
                node = pair.value
            } else {
                return node.mark
            }
        }
        return node.mark
    }
}
