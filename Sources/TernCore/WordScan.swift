/// Eight bytes at a time (SWAR) over the hot byte checks — JSON string escaping, the flat
/// frame scanner's strings, text validation: `skip` passes whole 8-byte words in which no
/// byte is of a kind in `stops`, and the caller looks at the rest bytewise. A word may stop
/// the scan without holding such a byte (the borrow of a real one can flag the bytes above
/// it), never the other way round, so the bytewise look decides.
public enum WordScan {
    public struct Stops: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// Bytes below 0x20.
        public static let controls = Stops(rawValue: 1)
        /// `"` and `\`.
        public static let quoteAndBackslash = Stops(rawValue: 2)
        /// 0x7F.
        public static let delete = Stops(rawValue: 4)
        /// 0x80 and above.
        public static let nonASCII = Stops(rawValue: 8)
    }

    /// The offset, from `start`, of the first 8-byte word that may hold a byte of a kind in
    /// `stops`, or of the last partial word: the bytes before it hold none.
    @inlinable
    public static func skip(_ raw: UnsafeRawBufferPointer, from start: Int, stops: Stops) -> Int {
        let low: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        var i = start
        while i + 8 <= raw.count {
            let x = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            var flags: UInt64 = 0
            if stops.contains(.controls) { flags |= x &- low &* 0x20 }
            if stops.contains(.quoteAndBackslash) { flags |= ((x ^ (low &* 0x22)) &- low) | ((x ^ (low &* 0x5C)) &- low) }
            if stops.contains(.delete) { flags |= (x ^ (low &* 0x7F)) &- low }
            flags &= ~x
            if stops.contains(.nonASCII) { flags |= x }
            if flags & high != 0 { break }
            i += 8
        }
        return i
    }
}
