// policies.yaml as an admin might save it: any text is parsed, decoded and checked, and a refusal
// is rendered as `check` prints it (line:column and a caret).
import ConnectXpertPolicy
import FuzzDriver

fuzz { input in
    let text = String(decoding: input, as: UTF8.self)
    do {
        _ = try PolicyLoader.parse(text, file: "/nonexistent/fuzz/policies.yaml", environment: [:])
    } catch {
        _ = "\(error)"
    }
}
