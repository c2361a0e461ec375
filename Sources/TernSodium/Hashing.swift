import CSodium

/// BLAKE2b (libsodium `crypto_generichash`), optionally keyed.
public enum BLAKE2b {
    /// A digest of `outputLength` bytes (16...64), keyed with `key` (16...64 bytes) if given.
    public static func hash(_ data: [UInt8], outputLength: Int = 32, key: [UInt8]? = nil) -> [UInt8] {
        Sodium.ensureInitialized()
        precondition((16...64).contains(outputLength), "BLAKE2b output length out of range")
        precondition(key.map { (16...64).contains($0.count) } ?? true, "BLAKE2b key length out of range")
        var out = [UInt8](repeating: 0, count: outputLength)
        let rc = out.withUnsafeMutableBufferPointer { o in
            data.withUnsafeBufferPointer { d in
                (key ?? []).withUnsafeBufferPointer { k in
                    crypto_generichash(o.baseAddress!, outputLength, d.baseAddress, UInt64(d.count), k.baseAddress, k.count)
                }
            }
        }
        precondition(rc == 0, "crypto_generichash failed")
        return out
    }
}

/// SHA-256 (libsodium `crypto_hash_sha256`).
public enum SHA256 {
    public static func hash(_ data: [UInt8]) -> [UInt8] {
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { o in
            data.withUnsafeBufferPointer { d in _ = crypto_hash_sha256(o.baseAddress!, d.baseAddress, UInt64(d.count)) }
        }
        return out
    }
}

/// HMAC-SHA-512/256 (libsodium `crypto_auth`), 32-byte key and tag.
public enum MessageAuthentication {
    public static let keyLength = 32
    public static let tagLength = 32

    /// The authentication tag of `message` under `key`.
    public static func tag(_ message: [UInt8], key: [UInt8]) -> [UInt8] {
        Sodium.ensureInitialized()
        precondition(key.count == keyLength, "crypto_auth key must be 32 bytes")
        var out = [UInt8](repeating: 0, count: tagLength)
        out.withUnsafeMutableBufferPointer { o in
            message.withUnsafeBufferPointer { m in
                key.withUnsafeBufferPointer { k in _ = crypto_auth(o.baseAddress!, m.baseAddress, UInt64(m.count), k.baseAddress!) }
            }
        }
        return out
    }

    /// Whether `tag` authenticates `message` under `key` (constant time).
    public static func verify(_ tag: [UInt8], _ message: [UInt8], key: [UInt8]) -> Bool {
        Sodium.ensureInitialized()
        guard tag.count == tagLength, key.count == keyLength else { return false }
        return tag.withUnsafeBufferPointer { t in
            message.withUnsafeBufferPointer { m in
                key.withUnsafeBufferPointer { k in crypto_auth_verify(t.baseAddress!, m.baseAddress, UInt64(m.count), k.baseAddress!) == 0 }
            }
        }
    }
}
