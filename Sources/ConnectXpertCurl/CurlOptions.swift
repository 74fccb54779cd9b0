internal import CCurl

/// A libcurl option, by a Swift name: what FTP and mail set, without libcurl's C types in their code.
public struct CurlOption: Sendable {
    let raw: CURLoption

    public static let connectTimeout = CurlOption(raw: CURLOPT_CONNECTTIMEOUT)
    public static let connectOnly = CurlOption(raw: CURLOPT_CONNECT_ONLY)
    public static let customRequest = CurlOption(raw: CURLOPT_CUSTOMREQUEST)
    public static let ftpPort = CurlOption(raw: CURLOPT_FTPPORT)
    public static let ignoreContentLength = CurlOption(raw: CURLOPT_IGNORE_CONTENT_LENGTH)
    public static let inFileSize = CurlOption(raw: CURLOPT_INFILESIZE_LARGE)
    public static let lowSpeedLimit = CurlOption(raw: CURLOPT_LOW_SPEED_LIMIT)
    public static let lowSpeedTime = CurlOption(raw: CURLOPT_LOW_SPEED_TIME)
    public static let mailFrom = CurlOption(raw: CURLOPT_MAIL_FROM)
    public static let mailRecipients = CurlOption(raw: CURLOPT_MAIL_RCPT)
    public static let mailRecipientAllowFails = CurlOption(raw: CURLOPT_MAIL_RCPT_ALLLOWFAILS)
    public static let noBody = CurlOption(raw: CURLOPT_NOBODY)
    public static let postQuote = CurlOption(raw: CURLOPT_POSTQUOTE)
    public static let quote = CurlOption(raw: CURLOPT_QUOTE)
    public static let resumeFrom = CurlOption(raw: CURLOPT_RESUME_FROM_LARGE)
    public static let saslInitialResponse = CurlOption(raw: CURLOPT_SASL_IR)
    public static let serverResponseTimeout = CurlOption(raw: CURLOPT_SERVER_RESPONSE_TIMEOUT)
    public static let sslVersion = CurlOption(raw: CURLOPT_SSLVERSION)
    public static let upload = CurlOption(raw: CURLOPT_UPLOAD)
    public static let uploadBufferSize = CurlOption(raw: CURLOPT_UPLOAD_BUFFERSIZE)
    public static let url = CurlOption(raw: CURLOPT_URL)
}

/// The libcurl results that FTP and mail tell apart.
public struct CurlCode: Equatable, Sendable {
    let raw: CURLcode

    public static let abortedByCallback = CurlCode(raw: CURLE_ABORTED_BY_CALLBACK)
    public static let couldNotConnect = CurlCode(raw: CURLE_COULDNT_CONNECT)
    public static let couldNotResolveHost = CurlCode(raw: CURLE_COULDNT_RESOLVE_HOST)
    public static let ftpAcceptFailed = CurlCode(raw: CURLE_FTP_ACCEPT_FAILED)
    public static let ftpCannotGetHost = CurlCode(raw: CURLE_FTP_CANT_GET_HOST)
    public static let ftpWeird227Format = CurlCode(raw: CURLE_FTP_WEIRD_227_FORMAT)
    public static let ftpWeirdPASVReply = CurlCode(raw: CURLE_FTP_WEIRD_PASV_REPLY)
    public static let gotNothing = CurlCode(raw: CURLE_GOT_NOTHING)
    public static let loginDenied = CurlCode(raw: CURLE_LOGIN_DENIED)
    public static let operationTimedOut = CurlCode(raw: CURLE_OPERATION_TIMEDOUT)
    public static let partialFile = CurlCode(raw: CURLE_PARTIAL_FILE)
    public static let peerFailedVerification = CurlCode(raw: CURLE_PEER_FAILED_VERIFICATION)
    public static let readError = CurlCode(raw: CURLE_READ_ERROR)
    public static let receiveError = CurlCode(raw: CURLE_RECV_ERROR)
    public static let sendError = CurlCode(raw: CURLE_SEND_ERROR)
    public static let sslCACertBadFile = CurlCode(raw: CURLE_SSL_CACERT_BADFILE)
    public static let sslConnectError = CurlCode(raw: CURLE_SSL_CONNECT_ERROR)
    public static let useSSLFailed = CurlCode(raw: CURLE_USE_SSL_FAILED)
    public static let writeError = CurlCode(raw: CURLE_WRITE_ERROR)
}

/// What a transfer tells afterwards.
public struct CurlInfo: Sendable {
    let raw: CURLINFO

    /// The folder the FTP login starts in.
    public static let ftpEntryPath = CurlInfo(raw: CURLINFO_FTP_ENTRY_PATH)
}

extension CurlEasy {
    /// TLS 1.2 and later, for `CurlOption.sslVersion`.
    public static let tls12OrLater = Int(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2)
}
