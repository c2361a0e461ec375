// TernSodium owns every unsafe call into libsodium (Debian's libsodium-dev, 1.0.18).
//
// What it promises: randomness from libsodium's CSPRNG, Ed25519 signatures, BLAKE2b,
// SHA-256, HMAC-SHA-512/256 and constant-time comparison, all over Swift byte arrays, with
// sizes checked before any pointer is handed to C. Every entry point initialises the
// library first (`sodium_init` is idempotent and thread-safe).
//
// Concurrency contract: every function is thread-safe; no state is kept besides libsodium's
// own initialisation.
import CSodium

/// libsodium's one-time initialisation.
public enum Sodium {
    private static let initialized: Bool = sodium_init() >= 0

    /// Initialises libsodium; traps if the library cannot start (no entropy source).
    @inline(__always)
    public static func ensureInitialized() {
        precondition(initialized, "libsodium failed to initialise")
    }

    /// The linked library's version string.
    public static var version: String {
        ensureInitialized()
        return String(cString: sodium_version_string())
    }
}

/// Bytes and numbers from libsodium's cryptographically secure generator.
public enum SecureRandom {
    /// `count` random bytes.
    public static func bytes(_ count: Int) -> [UInt8] {
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) }
        return out
    }

    /// A uniformly distributed number in `0..<upperBound` (no modulo bias).
    public static func uniform(_ upperBound: UInt32) -> UInt32 {
        Sodium.ensureInitialized()
        return randombytes_uniform(upperBound)
    }

    /// A string of `length` random decimal digits, e.g. a one-time code.
    public static func digits(_ length: Int) -> String {
        String((0..<length).map { _ in Character(Unicode.Scalar(UInt8(48 + uniform(10)))) })
    }
}

/// Compares two byte strings in time independent of their contents.
public func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    Sodium.ensureInitialized()
    guard a.count == b.count else { return false }
    if a.isEmpty { return true }
    return a.withUnsafeBytes { pa in
        b.withUnsafeBytes { pb in sodium_memcmp(pa.baseAddress!, pb.baseAddress!, a.count) == 0 }
    }
}
