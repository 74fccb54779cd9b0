import ConnectXpertAge
import Testing

/// Bech32 as BIP 173 specifies it, checked on its own vectors, and the age keys written in it.
@Suite struct Bech32Tests {
    @Test(arguments: [
        "A12UEL5L", "a12uel5l",
        "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
        "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
        "11" + String(repeating: "q", count: 82) + "c8247j",
        "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    ])
    func theSpecificationsValidStringsDecode(text: String) {
        #expect(Bech32.decode(text) != nil)
    }

    @Test(arguments: [
        "\u{20}1nwldj5",  // a space in the human-readable part
        "pzry9x0s0muk",  // no separator
        "1pzry9x0s0muk",  // empty human-readable part
        "x1b4n0q5v",  // invalid data character
        "li1dgmt3",  // checksum too short
        "A1G7SGD8",  // checksum computed with an upper-case human-readable part
        "A12UEL5l",  // mixed case
        "a12uel5m",  // wrong checksum
    ])
    func theSpecificationsInvalidStringsAreRefused(text: String) {
        #expect(Bech32.decode(text) == nil)
    }

    @Test func dataSurvivesARoundTrip() throws {
        let data: [UInt8] = Array(0..<32)
        let text = Bech32.encode("age", data)
        #expect(text.hasPrefix("age1"))
        let decoded = try #require(Bech32.decode(text))
        #expect(decoded.prefix == "age" && decoded.data == data)
    }

    /// The pair `age-keygen` printed for the spec's test identity.
    @Test func anIdentityAndItsRecipientAreWrittenAsAgeKeygenWritesThem() throws {
        let text = "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0"
        let identity = try #require(X25519Identity(text))
        #expect(identity.encoded == text)
        #expect(X25519Identity(text.lowercased()) == nil, "age-keygen writes identities in upper case only")
        let recipient = identity.recipient.description
        #expect(recipient.hasPrefix("age1") && recipient.count == 62)
        #expect(X25519Recipient(recipient)?.description == recipient)
        #expect(X25519Recipient(recipient.uppercased()) == nil)
    }
}
