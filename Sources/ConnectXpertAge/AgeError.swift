/// Why an age file could not be opened, in the four kinds the age spec's test vectors name.
public enum AgeError: Error, Equatable, CustomStringConvertible {
    /// The header is malformed, or a stanza meant for one of our keys is.
    case header(String)
    /// No stanza is for any identity given.
    case noMatch
    /// The header's MAC is wrong: the header was changed after it was made.
    case headerMAC
    /// The payload was changed, cut short or has data after its end; what was released before is valid.
    case payload(String)

    /// One word for the kind: header, no match, header MAC, payload.
    public var kind: String {
        switch self {
        case .header: "header"
        case .noMatch: "no match"
        case .headerMAC: "header MAC"
        case .payload: "payload"
        }
    }

    public var description: String {
        switch self {
        case let .header(problem): "not a valid age header: \(problem)"
        case .noMatch: "no identity matches: the file is not sealed to this key"
        case .headerMAC: "the header's MAC is wrong: the header was changed"
        case let .payload(problem): "the payload is damaged: \(problem)"
        }
    }
}
