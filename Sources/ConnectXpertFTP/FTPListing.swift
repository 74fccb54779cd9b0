import ConnectXpertSystem
import ConnectXpertTransport
import Foundation

/// Parses FTP directory listings: MLSD (RFC 3659) where the server offers it, else `LIST` in the
/// common Unix `ls -l` format.
enum FTPListing {
    /// The entries of a listing as the server sent it, each line read by `parse`. A line that is not
    /// UTF-8 is read escaped, and its entry marked as a name that is not text.
    static func entries(in listing: some Collection<UInt8>, _ parse: (String) -> [RemoteEntry]) -> [RemoteEntry] {
        listing.split(separator: UInt8(ascii: "\n")).flatMap { line in
            if let text = FileSystem.text(ofName: line) { return parse(text) }
            let bytes = line.last == UInt8(ascii: "\r") ? line.dropLast() : line[...]
            return parse(FileSystem.escapedName(bytes)).map { entry in
                var entry = entry
                entry.nameIsText = false
                return entry
            }
        }
    }

    /// A listing's lines, ended by LF or CRLF only: a name may hold any other line separator
    /// (U+2028, a lone CR, VT), which Unicode's notion of a newline would split it at.
    static func lines(of text: String) -> [Substring] {
        text.unicodeScalars.split(separator: "\n").map { scalars in
            let line = Substring(scalars)
            return line.unicodeScalars.last == "\r" ? Substring(line.unicodeScalars.dropLast()) : line
        }
    }

    /// `type=file;size=6;modify=20261121074000; name`
    static func parseMLSD(_ text: String) -> [RemoteEntry] {
        lines(of: text).compactMap { line in
            guard let space = line.firstIndex(of: " ") else { return nil }
            let name = String(line[line.index(after: space)...])
            var facts: [String: String] = [:]
            for fact in line[..<space].split(separator: ";") {
                let parts = fact.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { facts[parts[0].lowercased()] = String(parts[1]) }
            }
            let kind: RemoteEntry.Kind
            switch facts["type"]?.lowercased() {
            case "file": kind = .file
            case "dir": kind = .directory
            case "cdir", "pdir": return nil
            case let type? where type.hasPrefix("os.unix=symlink") || type.hasPrefix("os.unix=slink"): kind = .symlink
            default: kind = .other
            }
            let modified = facts["modify"].flatMap(timestamp) ?? 0
            return RemoteEntry(name: name, kind: kind, size: Int64(facts["size"] ?? "") ?? 0, modificationNanoseconds: modified)
        }
    }

    /// `-rw-r--r--    1 1001  1001   6 Nov 21 07:40 name with spaces` (or a year instead of the time).
    static func parseUnix(_ text: String, now: Date = Date()) -> [RemoteEntry] {
        lines(of: text).compactMap { line in
            guard let kindLetter = line.first, "-dlbcps".contains(kindLetter) else { return nil }  // "total 12"
            // Eight fields, then the name, which may hold spaces.
            var fields: [Substring] = []
            var rest = Substring(line)
            for _ in 0..<8 {
                rest = rest.drop(while: { $0 == " " })
                let field = rest.prefix(while: { $0 != " " })
                guard !field.isEmpty else { return nil }
                fields.append(field)
                rest = rest.dropFirst(field.count)
            }
            guard rest.first == " " else { return nil }
            var name = String(rest.dropFirst())
            let kind: RemoteEntry.Kind
            switch kindLetter {
            case "-": kind = .file
            case "d": kind = .directory
            case "l":
                kind = .symlink
                if let arrow = name.range(of: " -> ") { name = String(name[..<arrow.lowerBound]) }
            default: kind = .other
            }
            if name == "." || name == ".." { return nil }
            let modified = unixDate(month: fields[5], day: fields[6], timeOrYear: fields[7], now: now) ?? 0
            return RemoteEntry(name: name, kind: kind, size: Int64(fields[4]) ?? 0, modificationNanoseconds: modified)
        }
    }

    /// `YYYYMMDDHHMMSS[.sss]`, UTC, in nanoseconds.
    static func timestamp(_ text: String) -> Int64? {
        let digits = text.prefix(14)
        guard digits.count == 14, let year = Int(digits.prefix(4)), let month = Int(digits.dropFirst(4).prefix(2)),
              let day = Int(digits.dropFirst(6).prefix(2)), let hour = Int(digits.dropFirst(8).prefix(2)),
              let minute = Int(digits.dropFirst(10).prefix(2)), let second = Int(digits.dropFirst(12).prefix(2)) else { return nil }
        return epochNanoseconds(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
    }

    /// The time as `MFMT` and `MDTM` take it.
    static func format(nanoseconds: Int64) -> String {
        var seconds = time_t(nanoseconds / 1_000_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d%02d%02d%02d%02d%02d", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec)
    }

    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    private static func unixDate(month: Substring, day: Substring, timeOrYear: Substring, now: Date) -> Int64? {
        guard let monthIndex = months.firstIndex(of: month.lowercased()), let dayNumber = Int(day) else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let currentYear = calendar.component(.year, from: now)
        if timeOrYear.contains(":") {
            let parts = timeOrYear.split(separator: ":")
            guard parts.count == 2, let hour = Int(parts[0]), let minute = Int(parts[1]) else { return nil }
            // Recent files show a time and no year: this year, or last year for a date still ahead.
            var year = currentYear
            if let value = epochNanoseconds(year: year, month: monthIndex + 1, day: dayNumber, hour: hour, minute: minute, second: 0),
               Double(value) / 1e9 > now.timeIntervalSince1970 + 86400 {
                year -= 1
            }
            return epochNanoseconds(year: year, month: monthIndex + 1, day: dayNumber, hour: hour, minute: minute, second: 0)
        }
        guard let year = Int(timeOrYear) else { return nil }
        return epochNanoseconds(year: year, month: monthIndex + 1, day: dayNumber, hour: 0, minute: 0, second: 0)
    }

    /// Nil for a date a server made up (month 13, minute 61, the year 3026): no file has one.
    private static func epochNanoseconds(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) -> Int64? {
        guard (1970...9999).contains(year), (1...12).contains(month), (1...31).contains(day), (0...23).contains(hour),
              (0...59).contains(minute), (0...60).contains(second) else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = timegm(&parts)
        let (nanoseconds, overflow) = Int64(seconds).multipliedReportingOverflow(by: 1_000_000_000)  // past 2262
        return seconds == -1 || overflow ? nil : nanoseconds
    }
}
