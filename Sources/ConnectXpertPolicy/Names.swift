/// Rules for the names of files and folders the agent handles.
public enum Names {
    /// Writers use these names while a file is incomplete; the agent never picks them up.
    public static func isTemporary(_ name: String) -> Bool {
        name.hasPrefix(".") || name.hasSuffix(".part") || name.hasSuffix(".tmp") || name.hasSuffix("~")
    }

    /// Why one path component (from a remote listing, an ID, a template value) must not be used as a
    /// local name, or `nil` when it is safe.
    public static func problem(withComponent name: String) -> String? {
        if name.isEmpty { return "the name is empty" }
        if name == ".." || name == "." { return "'\(name)' would leave the folder" }
        if name.hasPrefix(".") { return "names starting with '.' are hidden or temporary" }
        if name.contains("/") { return "the name contains '/'" }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            return "the name contains a control character"
        }
        return nil
    }

    /// Why a relative path (components joined by `/`) is unsafe, or `nil`.
    public static func problem(withRelativePath path: String) -> String? {
        if path.hasPrefix("/") { return "the path is absolute" }
        for component in path.split(separator: "/", omittingEmptySubsequences: false) {
            if let problem = problem(withComponent: String(component)) { return problem }
        }
        return nil
    }

    /// `name (1).ext`, `name (2).ext`, … for the n-th alternative to a taken name.
    public static func alternative(to path: String, number: Int) -> String {
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        if let dot = name.lastIndex(of: "."), dot != name.startIndex {
            return folder + name[..<dot] + " (\(number))" + name[dot...]
        }
        return folder + name + " (\(number))"
    }

    /// A file name made from an untrusted one (an attachment's): its last path component, without
    /// control characters, leading dots or spaces and trailing dots, at most 200 bytes; `fallback`
    /// when nothing usable is left.
    public static func safeFileName(_ untrusted: String, fallback: String) -> String {
        var name = String(untrusted.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last ?? "")
        name.unicodeScalars.removeAll { $0.value < 0x20 || $0.value == 0x7f }
        name = String(name.drop { $0 == "." || $0 == " " })
        while name.last == "." || name.last == " " { name.removeLast() }
        while name.utf8.count > 200 { name.removeFirst() }
        return name.isEmpty ? fallback : name
    }

    /// A printable form of an untrusted name for logs and reasons.
    public static func printable(_ name: String) -> String {
        name.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "\\x" + String($0.value, radix: 16) : String($0) }
            .joined()
    }
}
