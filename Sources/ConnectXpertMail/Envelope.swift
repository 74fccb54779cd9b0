/// Who a message is from and to, as SMTP's `MAIL FROM` and `RCPT TO` carry it, apart from the
/// header. `sendmail` stores it beside a queued message as `<name>.envelope`:
///
///     from alice@example.org
///     to bob@example.org
///     to carol@example.org
public struct Envelope: Equatable, Sendable {
    public var sender: String?
    public var recipients: [String]

    public init(sender: String?, recipients: [String]) {
        self.sender = sender
        self.recipients = recipients
    }

    public init(parsing text: String) {
        sender = nil
        recipients = []
        for line in text.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "from": sender = parts[1]
            case "to": recipients.append(parts[1])
            default: continue
            }
        }
    }

    public var text: String {
        let lines = (sender.map { ["from \($0)"] } ?? []) + recipients.map { "to \($0)" }
        return lines.map { $0 + "\n" }.joined()
    }

    /// The recipients a message's header names: the `Resent-` fields when the message was
    /// resent, else To, Cc and Bcc; each address once, in order.
    public static func recipients(of header: HeaderBlock) -> [String] {
        let resent = ["Resent-To", "Resent-Cc", "Resent-Bcc"]
        let names = resent.contains(where: header.contains) ? resent : ["To", "Cc", "Bcc"]
        var seen = Set<String>()
        var addresses: [String] = []
        for field in header.fields where names.contains(where: field.is) {
            for address in AddressList.addresses(in: field.value) where seen.insert(address.lowercased()).inserted {
                addresses.append(address)
            }
        }
        return addresses
    }
}
