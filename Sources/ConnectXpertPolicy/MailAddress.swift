/// Mail addresses as the policy and the envelope use them: a bare `local@domain`.
public enum MailAddress {
    /// `local@domain` with no spaces, angle brackets or control characters; what SMTP's
    /// `MAIL FROM:<…>` and `RCPT TO:<…>` can carry. Not a full RFC 5321 check: the server has the
    /// last word.
    public static func isPlausible(_ address: String) -> Bool {
        guard let at = address.lastIndex(of: "@"), at != address.startIndex,
              address.index(after: at) != address.endIndex else { return false }
        return !address.unicodeScalars.contains { $0.value <= 0x20 || $0.value == 0x7f || "<>(),;\\\"".unicodeScalars.contains($0) }
    }
}
