import CCrypto

/// VNC Authentication (RFC 6143 7.2.2): the server sends 16 random bytes, the client returns them
/// DES-encrypted with the password (its first 8 bytes, zero-padded) as the key. Every viewer
/// reverses the bits of each key byte, so the server must too.
public enum VNCAuthentication {
    public static func response(challenge: [UInt8], password: String) -> [UInt8] {
        var key = Array(password.utf8.prefix(8))
        key += [UInt8](repeating: 0, count: 8 - key.count)
        key = key.map(reversedBits)
        var output = [UInt8](repeating: 0, count: 16)
        for block in 0..<2 {
            let input = Array(challenge[(block * 8)..<(block * 8 + 8)])
            var encrypted = [UInt8](repeating: 0, count: 8)
            cx_des_encrypt_block(key, input, &encrypted)
            output.replaceSubrange((block * 8)..<(block * 8 + 8), with: encrypted)
        }
        return output
    }

    private static func reversedBits(_ byte: UInt8) -> UInt8 {
        var input = byte
        var output: UInt8 = 0
        for _ in 0..<8 {
            output = output << 1 | input & 1
            input >>= 1
        }
        return output
    }
}
