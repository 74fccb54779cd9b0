#if canImport(Glibc)
import Glibc
#endif

/// A shell glob. A pattern without `/` matches a file's name in any folder; one with `/` matches the
/// whole relative path, and `*` then stops at `/`.
public struct Glob: Equatable, Sendable, CustomStringConvertible, Decodable {
    public let pattern: String

    public init(_ pattern: String) { self.pattern = pattern }

    public init(from decoder: Decoder) throws {
        pattern = try decoder.singleValueContainer().decode(String.self)
    }

    public func matches(_ path: String) -> Bool {
        if pattern.contains("/") {
            return fnmatch(pattern, path, FNM_PATHNAME) == 0
        }
        let name = path.split(separator: "/").last.map(String.init) ?? path
        return fnmatch(pattern, name, 0) == 0
    }

    public var description: String { pattern }
}

extension Array where Element == Glob {
    public func anyMatches(_ path: String) -> Bool { contains { $0.matches(path) } }
}
