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
    public init?(_ text: some StringProtocol) {
        let utf8 = Array(text.utf8)
        guard utf8.count == 36 else { return nil }
        var value: (UInt64, UInt64) = (0, 0)
        var nibbles = 0
        for (i, c) in utf8.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                guard c == UInt8(ascii: "-") else { return nil }
                continue
            }
            let n: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): n = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): n = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): n = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            if nibbles < 16 {
                value.0 = value.0 << 4 | UInt64(n)
            } else {
                value.1 = value.1 << 4 | UInt64(n)
            }
            nibbles += 1
        }
        self.init(high: value.0, low: value.1)
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
        let hex = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(36)
        for (i, b) in bytes.enumerated() {
            if i == 4 || i == 6 || i == 8 || i == 10 { out.append(UInt8(ascii: "-")) }
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func < (a: TernID, b: TernID) -> Bool { (a.high, a.low) < (b.high, b.low) }
}
