import CSodium

/// An Ed25519 signing key pair (libsodium `crypto_sign_*`).
public struct Ed25519KeyPair: Sendable {
    /// 32-byte public key.
    public let publicKey: [UInt8]
    /// 64-byte libsodium secret key (seed followed by the public key).
    public let secretKey: [UInt8]

    public static let seedLength = 32
    public static let publicKeyLength = 32
    public static let signatureLength = 64

    /// Derives the key pair from a 32-byte seed.
    public init(seed: [UInt8]) throws(SodiumError) {
        Sodium.ensureInitialized()
        guard seed.count == Self.seedLength else { throw .invalidLength("seed", seed.count) }
        var pk = [UInt8](repeating: 0, count: Int(crypto_sign_publickeybytes()))
        var sk = [UInt8](repeating: 0, count: Int(crypto_sign_secretkeybytes()))
        let rc = pk.withUnsafeMutableBufferPointer { p in
            sk.withUnsafeMutableBufferPointer { s in
                seed.withUnsafeBufferPointer { crypto_sign_seed_keypair(p.baseAddress!, s.baseAddress!, $0.baseAddress!) }
            }
        }
        guard rc == 0 else { throw .failed("crypto_sign_seed_keypair") }
        publicKey = pk
        secretKey = sk
    }

    /// A fresh random key pair; returns the seed as well so it can be stored.
    public static func generate() -> (keyPair: Ed25519KeyPair, seed: [UInt8]) {
        let seed = SecureRandom.bytes(seedLength)
        // A 32-byte seed is always accepted.
        return (try! Ed25519KeyPair(seed: seed), seed)
    }

    /// The 32-byte seed this key pair was derived from.
    public var seed: [UInt8] { Array(secretKey.prefix(Self.seedLength)) }

    /// A detached 64-byte signature of `message`.
    public func sign(_ message: [UInt8]) -> [UInt8] {
        var sig = [UInt8](repeating: 0, count: Self.signatureLength)
        var sigLength: UInt64 = 0
        let rc = sig.withUnsafeMutableBufferPointer { s in
            message.withUnsafeBufferPointer { m in
                secretKey.withUnsafeBufferPointer { k in
                    crypto_sign_detached(s.baseAddress!, &sigLength, m.baseAddress, UInt64(m.count), k.baseAddress!)
                }
            }
        }
        precondition(rc == 0 && sigLength == UInt64(Self.signatureLength), "crypto_sign_detached failed")
        return sig
    }

    /// Whether `signature` is a valid signature of `message` by `publicKey`.
    public static func verify(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        Sodium.ensureInitialized()
        guard signature.count == signatureLength, publicKey.count == publicKeyLength else { return false }
        return signature.withUnsafeBufferPointer { s in
            message.withUnsafeBufferPointer { m in
                publicKey.withUnsafeBufferPointer { k in
                    crypto_sign_verify_detached(s.baseAddress!, m.baseAddress, UInt64(m.count), k.baseAddress!) == 0
                }
            }
        }
    }
}

/// A libsodium call rejected its input.
public enum SodiumError: Error, Sendable, Equatable {
    /// An input had the wrong length: (what, actual length).
    case invalidLength(String, Int)
    /// Input that is not valid Base64 of the expected variant.
    case invalidBase64
    /// The named function reported failure.
    case failed(String)
}
