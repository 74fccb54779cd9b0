@testable import ConnectXpertAge
import Testing

/// The base64 of age headers: standard alphabet, no padding, one spelling per value.
@Suite struct AgeBase64Tests {
    @Test(arguments: [([UInt8](), ""), ([0], "AA"), ([0, 0], "AAA"), ([0, 0, 0], "AAAA"), ([0xfb, 0xff], "+/8")])
    func valuesAreWrittenWithoutPadding(bytes: [UInt8], text: String) {
        #expect(AgeBase64.encode(bytes) == text)
        #expect(AgeBase64.decode(Substring(text)) == bytes)
    }

    @Test(arguments: [
        "AA==",  // padding
        "AB",  // low bits set: not the canonical spelling of [0]
        "AAB",  // the same for two bytes
        "A",  // no encoding is one character long
        "AA\n",  // a line break
        "A-_A",  // the URL alphabet
        "AA AA",  // a space
    ])
    func anyOtherSpellingIsRefused(text: String) {
        #expect(AgeBase64.decode(Substring(text)) == nil)
    }
}
