import ConnectXpertTransport
import Foundation
import Testing

@testable import ConnectXpertFTP

/// Listings are split at LF and CRLF only: any other line separator is part of a name.
@Suite struct FTPListingTests {
    @Test func unixListingsKeepNamesWithOtherLineSeparators() {
        let text = "total 8\r\n"
            + "-rw-r--r--    1 1001  1001   6 Nov 21 07:40 nl\u{2028}then more\r\n"
            + "-rw-r--r--    1 1001  1001   7 Nov 21 07:40 lone\rcr\r\n"
            + "drwxr-xr-x    2 1001  1001   4096 Jan 01  2025 folder with spaces\n"
        let entries = FTPListing.parseUnix(text)
        #expect(entries.map(\.name) == ["nl\u{2028}then more", "lone\rcr", "folder with spaces"])
        #expect(entries.map(\.size) == [6, 7, 4096])
        #expect(entries.last?.kind == .directory)
    }

    @Test func mlsdListingsKeepNamesWithOtherLineSeparators() {
        let text = "type=file;size=6;modify=20261121074000; nl\u{2028}x\r\ntype=cdir;modify=20261121074000; .\r\n"
            + "type=dir;modify=20261121074000; sub\u{85}folder\r\n"
        let entries = FTPListing.parseMLSD(text)
        #expect(entries.map(\.name) == ["nl\u{2028}x", "sub\u{85}folder"])
        #expect(entries.first?.modificationNanoseconds == Int64(1_795_246_800) * 1_000_000_000)
    }

    /// A lying server's dates (found by `make fuzz`: year 20 overflowed the nanoseconds and crashed
    /// the agent) leave the time unknown and keep the entry.
    @Test func madeUpDatesLeaveTheTimeUnknown() {
        let text = "-rw-r--r-- 1 0 0 6 Jan  1  20 year twenty\r\n"
            + "-rw-r--r-- 1 0 0 6 Jan  1  99999999999999 far future\r\n"
            + "-rw-r--r-- 1 0 0 6 Feb 99 25:61 no such time\r\n"
        #expect(FTPListing.parseUnix(text).map(\.modificationNanoseconds) == [0, 0, 0])
        let mlsd = "type=file;size=1;modify=00011231235959; year one\r\n"
            + "type=file;size=1;modify=-9999999999999; minus\r\n"
            + "type=file;size=1;modify=30261121074000; year 3026\r\n"
        #expect(FTPListing.parseMLSD(mlsd).map(\.modificationNanoseconds) == [0, 0, 0])
    }

    /// A line that is not UTF-8 gives its entry escaped and marked, so that it is reported, not
    /// asked for under a name that does not exist (`RETR caf?.txt`).
    @Test func namesThatAreNotUTF8AreEscapedAndMarked() {
        let listing = Array("type=file;size=3;modify=20261121074000; caf".utf8) + [0xE9] + Array(".txt\r\n".utf8)
            + Array("type=file;size=2;modify=20261121074000; fine.txt\r\n".utf8)
        let entries = FTPListing.entries(in: listing, FTPListing.parseMLSD)
        #expect(entries.map(\.name) == ["caf\\xE9.txt", "fine.txt"])
        #expect(entries.map(\.nameIsText) == [false, true])
        #expect(entries.map(\.size) == [3, 2])
    }
}
