/// Why the screen share, or one viewer's session, ended.
public enum RFBError: Error, CustomStringConvertible, Equatable {
    /// The X display cannot be used.
    case display(String)
    /// The peer broke the protocol (garbage, an unknown message, a truncated message); only that
    /// peer's connection ends.
    case protocolViolation(String)
    /// The password was wrong, or the server refused us.
    case authenticationFailed(String)
    case connection(String)

    public var description: String {
        switch self {
        case .display(let message), .connection(let message): return message
        case .protocolViolation(let message): return "protocol error: \(message)"
        case .authenticationFailed(let message): return "authentication failed: \(message)"
        }
    }
}
