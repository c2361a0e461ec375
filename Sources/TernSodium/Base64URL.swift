import CSodium

/// Base64 in its URL-safe alphabet without padding (RFC 4648 §5), strict on input: padding,
/// whitespace, other alphabets and non-zero trailing bits are rejected.
public enum Base64URL {
    public static func encode(_ bytes: [UInt8]) -> String {
        Sodium.ensureInitialized()
        let variant = Int32(sodium_base64_VARIANT_URLSAFE_NO_PADDING)
        let capacity = sodium_base64_encoded_len(bytes.count, variant)
        var out = [CChar](repeating: 0, count: capacity)
        out.withUnsafeMutableBufferPointer { o in
            bytes.withUnsafeBufferPointer { b in _ = sodium_bin2base64(o.baseAddress!, capacity, b.baseAddress, b.count, variant) }
        }
        return String(decoding: out.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func decode(_ text: Substring) throws(SodiumError) -> [UInt8] {
        Sodium.ensureInitialized()
        let utf8 = Array(text.utf8)
        if utf8.isEmpty { return [] }
        var out = [UInt8](repeating: 0, count: utf8.count * 3 / 4 + 1)
        var length = 0
        let rc = out.withUnsafeMutableBufferPointer { o in
            utf8.withUnsafeBufferPointer { t in
                t.withMemoryRebound(to: CChar.self) { c in
                    sodium_base642bin(
                        o.baseAddress!, o.count, c.baseAddress!, c.count, nil, &length, nil,
                        Int32(sodium_base64_VARIANT_URLSAFE_NO_PADDING)
                    )
                }
            }
        }
        guard rc == 0 else { throw .invalidBase64 }
        return Array(out.prefix(length))
    }

    public static func decode(_ text: String) throws(SodiumError) -> [UInt8] {
        try decode(text[...])
    }
}
