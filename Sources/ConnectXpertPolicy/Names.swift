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
        if hasControlCharacter(name) { return "the name contains a control character" }
        return nil
    }

    /// Whether a name holds a C0 control character (a newline, a tab, …) or DEL, which every
    /// receiver of ours refuses.
    public static func hasControlCharacter(_ name: String) -> Bool {
        name.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }
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

    /// A printable form of an untrusted name or server text for logs and reasons, on one line: the
    /// C0 and C1 controls, DEL and the Unicode line and paragraph separators are written as `\n`,
    /// `\r`, `\t`, `\xHH` or `\u{HHHH}`, so no text can end a log line and forge the next one.
    public static func printable(_ text: String) -> String {
        var result = ""
        result.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x0a: result += "\\n"
            case 0x0d: result += "\\r"
            case 0x09: result += "\\t"
            case 0..<0x20, 0x7f...0x9f: result += "\\x" + hex(scalar.value, digits: 2)
            case 0x2028, 0x2029: result += "\\u{" + hex(scalar.value, digits: 4) + "}"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    private static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
