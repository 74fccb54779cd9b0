// FTP listings as a server sends them, MLSD and Unix LIST alike.
@testable import ConnectXpertFTP
import FuzzDriver

fuzz { input in
    let mlsd = FTPListing.entries(in: input, FTPListing.parseMLSD)
    for entry in mlsd + FTPListing.entries(in: input) { FTPListing.parseUnix($0) } {
        precondition(!entry.name.unicodeScalars.contains("\n"), "a name holds a line feed")
    }
}
