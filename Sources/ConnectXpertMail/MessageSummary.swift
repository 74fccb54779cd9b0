import Foundation

/// What a mail list shows of a message: date, sender and subject, decoded.
public struct MessageSummary: Sendable {
    /// The `Date:` header, or `nil` when missing or unreadable.
    public let date: Date?
    /// The sender's display name, else its address (`From:`).
    public let sender: String
    public let subject: String

    public init(header: HeaderBlock?) {
        date = header?.text("Date").flatMap(MessageSummary.parseDate)
        sender = header?.text("From").map(MessageSummary.displayName) ?? ""
        subject = header?.text("Subject") ?? ""
    }

    /// `Alice Example` for `"Alice Example" <alice@example.org>`, the address when there is no name.
    static func displayName(_ from: String) -> String {
        if let open = from.firstIndex(of: "<") {
            let name = from[..<open].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            if !name.isEmpty { return name }
            return String(from[from.index(after: open)...].prefix { $0 != ">" })
        }
        if let comment = from.firstIndex(of: "("), let close = from.lastIndex(of: ")"), comment < close {
            let name = from[from.index(after: comment)..<close].trimmingCharacters(in: .whitespaces)
            if !name.isEmpty { return name }
        }
        return from.trimmingCharacters(in: .whitespaces)
    }

    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    private static let zones: [String: Int] = [
        "ut": 0, "utc": 0, "gmt": 0, "z": 0, "est": -5, "edt": -4, "cst": -6, "cdt": -5, "mst": -7, "mdt": -6, "pst": -8, "pdt": -7,
    ]

    /// An RFC 5322 date (`Fri, 20 Nov 2026 14:03:00 +0100`), leniently: the day name, seconds and
    /// zone may be missing, comments are ignored, two-digit years are read as RFC 5322 says.
    static func parseDate(_ text: String) -> Date? {
        let words = text.replacingOccurrences(of: "\\([^)]*\\)", with: " ", options: .regularExpression)
            .replacingOccurrences(of: ",", with: " ")
            .split(whereSeparator: \.isWhitespace).map { String($0) }
        guard let dayIndex = words.firstIndex(where: { Int($0) != nil }), dayIndex + 3 < words.count,
              let day = Int(words[dayIndex]),
              let month = months.firstIndex(of: String(words[dayIndex + 1].prefix(3)).lowercased()),
              var year = Int(words[dayIndex + 2]) else { return nil }
        if year < 50 { year += 2000 } else if year < 1000 { year += 1900 }
        let time = words[dayIndex + 3].split(separator: ":").map { Int($0) }
        guard time.count >= 2, let hour = time[0], let minute = time[1] else { return nil }
        let second = time.count > 2 ? time[2] ?? 0 : 0
        var offset = 0
        if dayIndex + 4 < words.count {
            let zone = words[dayIndex + 4]
            if let sign = zone.first, sign == "+" || sign == "-", zone.count == 5, let value = Int(zone.dropFirst()) {
                offset = (value / 100 * 3600 + value % 100 * 60) * (sign == "-" ? -1 : 1)
            } else if let hours = zones[zone.lowercased()] {
                offset = hours * 3600
            }
        }
        var components = DateComponents()
        components.calendar = Calendar(identifier: .gregorian)
        components.timeZone = TimeZone(secondsFromGMT: offset)
        components.year = year
        components.month = month + 1
        components.day = day
        components.hour = hour
        components.minute = minute
        components.second = second
        return components.date
    }
}
