import ConnectXpertPolicy

/// Extracts the addresses (`local@domain`) from address-list header values (`To`, `Cc`, …):
/// `Name <a@b>`, bare `a@b`, quoted names with commas, comments and groups
/// (`undisclosed-recipients:;`). Lenient: what does not look like an address is skipped.
public enum AddressList {
    public static func addresses(in value: String) -> [String] {
        var addresses: [String] = []
        var text = ""           // a bare address, or a display name
        var bracketed: String?  // inside <…>
        var found: String?      // the last complete <…>
        var inQuotes = false
        var commentDepth = 0
        var escaped = false

        func finish() {
            let candidate = (found ?? text).trimmingCharacters(in: .whitespaces)
            if MailAddress.isPlausible(candidate) { addresses.append(candidate) }
            text = ""
            bracketed = nil
            found = nil
        }

        for character in value {
            if escaped {
                escaped = false
                continue
            }
            if inQuotes {
                if character == "\\" { escaped = true } else if character == "\"" { inQuotes = false }
                continue
            }
            if commentDepth > 0 {
                if character == "\\" { escaped = true } else if character == "(" { commentDepth += 1 } else if character == ")" { commentDepth -= 1 }
                continue
            }
            switch character {
            case "\"": inQuotes = true
            case "(": commentDepth = 1
            case "<": bracketed = ""
            case ">":
                found = bracketed
                bracketed = nil
            case ",", ";": finish()
            case ":" where bracketed == nil: text = ""  // a group's name; its addresses follow
            default:
                if bracketed != nil { bracketed?.append(character) } else { text.append(character) }
            }
        }
        finish()
        return addresses
    }
}
