/// Up to 128 bytes kept inline (on the stack): the keys and small values of the hot store
/// operations, which would otherwise each be an array allocated and freed per message.
public struct InlineBytes: Sendable {
    public static let capacity = 128

    private var storage: (
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
    ) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    public private(set) var count = 0

    public init() {}

    /// Whether `n` more bytes fit.
    public func fits(_ n: Int) -> Bool { count + n <= Self.capacity }

    /// Appends `v` big-endian (keys sort as numbers).
    public mutating func append(_ v: UInt64) {
        precondition(fits(8), "InlineBytes overflow")
        let at = count
        withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: v.bigEndian, toByteOffset: at, as: UInt64.self) }
        count += 8
    }

    /// Appends raw bytes; the caller checks `fits` first.
    public mutating func append(contentsOf bytes: UnsafeRawBufferPointer) {
        precondition(fits(bytes.count), "InlineBytes overflow")
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        let at = count
        withUnsafeMutableBytes(of: &storage) { ($0.baseAddress! + at).copyMemory(from: base, byteCount: bytes.count) }
        count += bytes.count
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var copy = storage
        let n = count
        return try Swift.withUnsafeBytes(of: &copy) { try body(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
    }

    /// The bytes as an array (for the few callers that keep them).
    public var array: [UInt8] { withUnsafeBytes { Array($0) } }
}
