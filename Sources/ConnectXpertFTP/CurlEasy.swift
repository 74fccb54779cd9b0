import CCurl
import Foundation

/// curl_global_init, once per process, before any thread uses libcurl.
enum LibCurl {
    static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
}

/// One libcurl easy handle with the lists and callback state it uses; cleaned up in `deinit`.
/// libcurl keeps the control connection in the handle between requests, so one handle is one
/// connection. Not thread-safe: a connection serves one transfer at a time.
final class CurlEasy {
    private let raw: UnsafeMutableRawPointer
    /// Lists handed to libcurl for the request in progress; libcurl does not copy them.
    private var lists: [UnsafeMutablePointer<curl_slist>] = []
    /// Where response bodies go, and where upload data comes from, for the request in progress.
    fileprivate var sink: ((UnsafeRawBufferPointer) -> Bool)?
    fileprivate var source: ((UnsafeMutableRawBufferPointer) -> Int?)?
    /// The server's replies to the request in progress (`"550 No such file"`).
    private(set) var replies: [String] = []

    init() throws {
        _ = LibCurl.initialized
        guard let handle = curl_easy_init() else { throw CurlError(code: CURLE_FAILED_INIT, reply: nil) }
        raw = handle
    }

    deinit {
        curl_easy_cleanup(raw)
        freeLists()
    }

    /// Clears the options of the previous request (the connection stays) and sets the callbacks.
    func reset() {
        curl_easy_reset(raw)
        freeLists()
        sink = nil
        source = nil
        replies = []
        let context = Unmanaged.passUnretained(self).toOpaque()
        _ = cx_curl_setopt_pointer(raw, CURLOPT_WRITEDATA, context)
        _ = cx_curl_setopt_data_callback(raw, CURLOPT_WRITEFUNCTION, curlWrite)
        _ = cx_curl_setopt_pointer(raw, CURLOPT_READDATA, context)
        _ = cx_curl_setopt_data_callback(raw, CURLOPT_READFUNCTION, curlRead)
        _ = cx_curl_setopt_pointer(raw, CURLOPT_HEADERDATA, context)
        _ = cx_curl_setopt_data_callback(raw, CURLOPT_HEADERFUNCTION, curlHeader)
        set(CURLOPT_NOSIGNAL, 1)
    }

    func set(_ option: CURLoption, _ value: Int) { _ = cx_curl_setopt_long(raw, option, value) }
    func set(_ option: CURLoption, _ value: String) { _ = cx_curl_setopt_string(raw, option, value) }
    func set(_ option: CURLoption, offset value: Int64) { _ = cx_curl_setopt_offset(raw, option, curl_off_t(value)) }

    /// Sets a list option (QUOTE, POSTQUOTE); the list lives until the next `reset`.
    func set(_ option: CURLoption, lines: [String]) {
        var list: UnsafeMutablePointer<curl_slist>?
        for line in lines { list = curl_slist_append(list, line) }
        guard let list else { return }
        lists.append(list)
        _ = cx_curl_setopt_slist(raw, option, list)
    }

    func receive(into sink: @escaping (UnsafeRawBufferPointer) -> Bool) { self.sink = sink }
    func send(from source: @escaping (UnsafeMutableRawBufferPointer) -> Int?) { self.source = source }

    /// Runs the request; throws `CurlError` with the server's last reply. The data callbacks are
    /// dropped when it ends: they belong to this request only.
    func perform() throws {
        defer {
            sink = nil
            source = nil
        }
        let code = curl_easy_perform(raw)
        guard code == CURLE_OK else { throw CurlError(code: code, reply: replies.last) }
    }

    func info(_ info: CURLINFO) -> Int {
        var value = 0
        _ = cx_curl_getinfo_long(raw, info, &value)
        return value
    }

    func info(offset info: CURLINFO) -> Int64 {
        var value: curl_off_t = -1
        _ = cx_curl_getinfo_offset(raw, info, &value)
        return Int64(value)
    }

    func info(string info: CURLINFO) -> String? {
        var value: UnsafePointer<CChar>?
        _ = cx_curl_getinfo_string(raw, info, &value)
        return value.map { String(cString: $0) }
    }

    fileprivate func record(reply line: String) {
        replies.append(line)
        if replies.count > 20 { replies.removeFirst() }
    }

    private func freeLists() {
        for list in lists { curl_slist_free_all(list) }
        lists = []
    }
}

/// A failed libcurl request: libcurl's code and the server's last reply.
struct CurlError: Error, CustomStringConvertible {
    let code: CURLcode
    let reply: String?

    var replyCode: Int? { reply.flatMap { Int($0.prefix(3)) } }
    var description: String {
        let message = String(cString: curl_easy_strerror(code))
        return reply.map { "\(message) (server: \($0))" } ?? message
    }
}

private func easy(_ context: UnsafeMutableRawPointer?) -> CurlEasy {
    Unmanaged<CurlEasy>.fromOpaque(context!).takeUnretainedValue()
}

private let curlWrite: cx_curl_data_callback = { buffer, size, count, context in
    let bytes = UnsafeRawBufferPointer(start: buffer, count: size * count)
    guard let sink = easy(context).sink else { return size * count }
    return sink(bytes) ? size * count : 0
}

private let curlRead: cx_curl_data_callback = { buffer, size, count, context in
    guard let source = easy(context).source else { return 0 }
    return source(UnsafeMutableRawBufferPointer(start: buffer, count: size * count)) ?? Int(CURL_READFUNC_ABORT)
}

private let curlHeader: cx_curl_data_callback = { buffer, size, count, context in
    let line = String(decoding: UnsafeRawBufferPointer(start: buffer, count: size * count), as: UTF8.self)
        .trimmingCharacters(in: .whitespacesAndNewlines)
    if line.count >= 3, line.prefix(3).allSatisfy(\.isNumber) { easy(context).record(reply: line) }
    return size * count
}
