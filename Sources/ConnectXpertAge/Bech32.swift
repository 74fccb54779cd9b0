/// Bech32 (BIP 173), the text form of age's keys: `age1…` recipients and `AGE-SECRET-KEY-1…`
/// identities. As age does, no length limit is kept; mixed case is refused.
public enum Bech32 {
    private static let alphabet = Array("qpzry9x8gf2tvdw0s3jn54khce6mua7l".utf8)
    private static let values: [Int8] = {
        var table = [Int8](repeating: -1, count: 128)
        for (index, character) in alphabet.enumerated() { table[Int(character)] = Int8(index) }
        return table
    }()

    /// `data` under the human-readable part `prefix` (given in lower case), in lower case.
    public static func encode(_ prefix: String, _ data: [UInt8]) -> String {
        let words = regroup(data, from: 8, to: 5, pad: true) ?? []
        let checksum = polymod(expand(Array(prefix.utf8)) + words + [0, 0, 0, 0, 0, 0]) ^ 1
        let tail = (0..<6).map { UInt8((checksum >> (5 * (5 - $0))) & 31) }
        return prefix + "1" + String(decoding: (words + tail).map { alphabet[Int($0)] }, as: UTF8.self)
    }

    /// The human-readable part (in lower case) and the data of `text`; nil when it is not Bech32:
    /// mixed case, a character outside the alphabet, a wrong checksum or padding left over.
    public static func decode(_ text: String) -> (prefix: String, data: [UInt8])? {
        let bytes = Array(text.utf8)
        guard bytes.allSatisfy({ $0 >= 33 && $0 <= 126 }) else { return nil }
        let lower = bytes.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
        guard lower == bytes || bytes.map({ $0 >= 97 && $0 <= 122 ? $0 - 32 : $0 }) == bytes else { return nil }
        guard let separator = lower.lastIndex(of: UInt8(ascii: "1")), separator >= 1,
              lower.count - separator - 1 >= 6 else { return nil }
        var words: [UInt8] = []
        for character in lower[(separator + 1)...] {
            let value = values[Int(character)]
            guard value >= 0 else { return nil }
            words.append(UInt8(value))
        }
        let prefix = Array(lower[..<separator])
        guard polymod(expand(prefix) + words) == 1,
              let data = regroup(Array(words.dropLast(6)), from: 5, to: 8, pad: false) else { return nil }
        return (String(decoding: prefix, as: UTF8.self), data)
    }

    private static func polymod(_ values: [UInt8]) -> UInt32 {
        let generator: [UInt32] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3]
        var check: UInt32 = 1
        for value in values {
            let top = check >> 25
            check = (check & 0x1ff_ffff) << 5 ^ UInt32(value)
            for bit in 0..<5 where (top >> bit) & 1 == 1 { check ^= generator[bit] }
        }
        return check
    }

    private static func expand(_ prefix: [UInt8]) -> [UInt8] {
        prefix.map { $0 >> 5 } + [0] + prefix.map { $0 & 31 }
    }

    /// Regroups bits: 8-bit bytes into 5-bit words (padding the last), or back (refusing padding
    /// that is more than 4 bits or not zero).
    private static func regroup(_ input: [UInt8], from: Int, to: Int, pad: Bool) -> [UInt8]? {
        var accumulator = 0, bits = 0
        var output: [UInt8] = []
        let mask = (1 << to) - 1
        for value in input {
            accumulator = (accumulator << from) | Int(value)
            bits += from
            while bits >= to {
                bits -= to
                output.append(UInt8((accumulator >> bits) & mask))
            }
            accumulator &= (1 << bits) - 1
        }
        if pad {
            if bits > 0 { output.append(UInt8((accumulator << (to - bits)) & mask)) }
        } else if bits >= from || (accumulator << (to - bits)) & mask != 0 {
            return nil
        }
        return output
    }
}
