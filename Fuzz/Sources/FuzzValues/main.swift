// Sizes (`max_size: 1.5GiB`) and durations (`timeout: 1h30m`) as written in a policy.
import ConnectXpertPolicy
import FuzzDriver

fuzz { input in
    let text = String(decoding: input, as: UTF8.self)
    if let size = ByteSize(parsing: text) {
        precondition((0...ByteSize.maximum.bytes).contains(size.bytes), "\(size.bytes) bytes from '\(text)'")
        _ = size.description
    }
    if let span = TimeSpan(parsing: text) {
        precondition((0...TimeSpan.maximum.seconds).contains(span.seconds), "\(span.seconds) s from '\(text)'")
        _ = span.description
    }
}
