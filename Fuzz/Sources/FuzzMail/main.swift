// A fetched message as `mail list` and `mail show` read it: header fields, encoded words, MIME
// parts nested in any way, transfer encodings and charsets.
import ConnectXpertMail
import FuzzDriver

fuzz { input in
    let message = MIMEPart(parsing: Array(input)[...])
    let summary = MessageSummary(header: message.header)
    _ = (summary.date, summary.sender, summary.subject)
    let reading = MessageReading(message)
    _ = reading.texts
    for attachment in reading.attachments { _ = (attachment.filename, attachment.decodedBody.count) }
}
