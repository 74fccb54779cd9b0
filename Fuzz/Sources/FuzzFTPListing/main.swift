// FTP listings as a server sends them, MLSD and Unix LIST alike.
@testable import ConnectXpertFTP
import FuzzDriver

fuzz { input in
    let text = String(decoding: input, as: UTF8.self)
    for entry in FTPListing.parseMLSD(text) + FTPListing.parseUnix(text) {
        precondition(!entry.name.unicodeScalars.contains("\n"), "a name holds a line feed")
    }
}
