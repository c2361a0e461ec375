// TernCore holds the value types every other target shares: identifiers, time, the error
// vocabulary (stable codes with an HTTP status and a safe message) and input rules.
// Nothing here does I/O; everything is Sendable and pure.

/// A 128-bit identifier (users, chats, sessions), written as a lowercase UUID string.
///
/// Random (version 4 layout). Stored as 16 raw bytes, which is also its key encoding.
public struct TernID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The 16 bytes, big-endian halves.
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(high)
        hasher.combine(low)
    }

    /// What sets and dictionaries hash ids with: both halves through a keyed 64-bit mix
    /// (`HashMix`) instead of SipHash, which cost ~2 % of the relay's CPU in the per-message
    /// and per-user tables. Keyed by the table's per-process `seed`, and not foldable: two
    /// ids do not collide for every seed just because some combination of their halves
    /// agrees.
    @inlinable
    public func _rawHashValue(seed: Int) -> Int {
        Int(truncatingIfNeeded: HashMix.mix(high, low, seed: seed))
    }

    /// A new random identifier (the system CSPRNG).
    public static func random() -> TernID {
        var rng = SystemRandomNumberGenerator()
        var high = rng.next() as UInt64
        var low = rng.next() as UInt64
        high = (high & ~0xF000) | 0x4000  // version 4
        low = (low & ~(0xC << 60)) | (0x8 << 60)  // RFC 4122 variant
        return TernID(high: high, low: low)
    }

    /// Parses the canonical 36-character form (either case). Nil for anything else.
    /// Inlinable so that callers in other modules get a specialised loop (ids are parsed from
    /// every client frame).
    @inlinable
    public init?(_ text: some StringProtocol) {
        self.init(utf8: text.utf8)
    }

    /// The canonical form from its UTF-8 bytes (a frame's string value, uncopied).
    @inlinable
    public init?(utf8: some Sequence<UInt8>) {
        var high: UInt64 = 0
        var low: UInt64 = 0
        var i = 0
        var nibbles = 0
        for c in utf8 {
            defer { i += 1 }
            guard i < 36 else { return nil }
            if i == 8 || i == 13 || i == 18 || i == 23 {
                guard c == UInt8(ascii: "-") else { return nil }
                continue
            }
            guard let n = Hex.value(c) else { return nil }
            if nibbles < 16 {
                high = high << 4 | n
            } else {
                low = low << 4 | n
            }
            nibbles += 1
        }
        guard i == 36 else { return nil }
        self.init(high: high, low: low)
    }

    /// Reads 16 raw bytes (big-endian halves). Hot: keys are decoded with it in every scan.
    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count == 16 else { return nil }
        self.init(
            high: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
            low: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
    }

    /// Reads 16 raw bytes from a slice of a raw buffer (a key part).
    public init?(bytes: Slice<UnsafeRawBufferPointer>) {
        self.init(bytes: UnsafeRawBufferPointer(rebasing: bytes))
    }

    /// Reads 16 raw bytes.
    public init?(bytes: [UInt8]) {
        guard let id = bytes.withUnsafeBytes({ TernID(bytes: $0) }) else { return nil }
        self = id
    }

    /// The 16 raw bytes (big-endian), the key encoding.
    public var bytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 16) { buffer, count in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            raw.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
            count = 16
        }
    }

    public var description: String {
        String(unsafeUninitializedCapacity: 36) { buffer in
            writeUUID(to: buffer.baseAddress!)
            return 36
        }
    }

    /// Writes the 36-character UUID form at `p`.
    @inlinable
    public func writeUUID(to p: UnsafeMutablePointer<UInt8>) {
        // 8-4-4 from the high half, 4-12 from the low half.
        Hex.write(high >> 32, digits: 8, to: p)
        p[8] = UInt8(ascii: "-")
        Hex.write(high >> 16, digits: 4, to: p + 9)
        p[13] = UInt8(ascii: "-")
        Hex.write(high, digits: 4, to: p + 14)
        p[18] = UInt8(ascii: "-")
        Hex.write(low >> 48, digits: 4, to: p + 19)
        p[23] = UInt8(ascii: "-")
        Hex.write(low, digits: 12, to: p + 24)
    }

    /// Appends the 36-character UUID form to `bytes` (JSON writers, keys).
    @inlinable
    public func appendUUID(to bytes: inout [UInt8]) {
        bytes.appendFilled(count: 36) { writeUUID(to: $0) }
    }

    public static func < (a: TernID, b: TernID) -> Bool { (a.high, a.low) < (b.high, b.low) }
}

/// Lowercase hexadecimal digits without intermediate strings (ids are formatted on hot paths).
/// Decimal digits written straight into memory (frames and timestamps are written this way).
public enum DecimalText {
    /// How many decimal digits `v` has.
    @inlinable
    public static func count(_ v: UInt64) -> Int {
        var n = 1
        var v = v
        while v >= 10 {
            v /= 10
            n += 1
        }
        return n
    }

    /// Writes the low `digits` decimal digits of `v` at `p`, zero-padded (`count(v)` digits
    /// for the plain form).
    @inlinable
    public static func write(_ v: UInt64, digits: Int, to p: UnsafeMutableRawPointer) {
        var x = v
        for i in stride(from: digits - 1, through: 0, by: -1) {
            p.storeBytes(of: UInt8(truncatingIfNeeded: x % 10) &+ 48, toByteOffset: i, as: UInt8.self)
            x /= 10
        }
    }
}

public enum Hex {
    /// Writes the low `digits` nibbles of `value`, most significant first, at `p`.
    @inlinable
    public static func write(_ value: UInt64, digits: Int, to p: UnsafeMutablePointer<UInt8>) {
        var v = value
        var i = digits - 1
        while i >= 0 {
            let n = UInt8(truncatingIfNeeded: v & 0xF)
            p[i] = n < 10 ? n &+ 48 : n &+ 87
            v >>= 4
            i -= 1
        }
    }

    /// The value of one hex digit (either case), or nil.
    @inlinable
    public static func value(_ c: UInt8) -> UInt64? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt64(c &- 48)
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt64(c &- 87)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt64(c &- 55)
        default: nil
        }
    }
}

/// A fast keyed mix of two words for hash tables (the finalizer of splitmix64 applied
/// twice). Not a cryptographic hash: it spreads random ids evenly and keeps the layout of a
/// table unpredictable without its seed.
public enum HashMix {
    @inlinable
    public static func mix(_ a: UInt64, _ b: UInt64, seed: Int) -> UInt64 {
        let s = UInt64(truncatingIfNeeded: seed)
        return spread((spread(a ^ s) ^ b) &+ s)
    }

    @inlinable
    public static func spread(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
