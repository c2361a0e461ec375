extension Array where Element == UInt8 {
    /// Appends `count` bytes written in place by `fill` (hex ids, UUIDs, digits, times).
    /// The room is made by copying zeros from a block (one `memcpy`) instead of appending
    /// `repeatElement(0, count:)`, which goes byte by byte.
    @inlinable
    public mutating func appendFilled(count: Int, _ fill: (UnsafeMutablePointer<UInt8>) -> Void) {
        let start = self.count
        if count <= ZeroBlock.bytes.count {
            ZeroBlock.bytes.withUnsafeBufferPointer { append(contentsOf: UnsafeBufferPointer(rebasing: $0[..<count])) }
        } else {
            append(contentsOf: repeatElement(0, count: count))
        }
        withUnsafeMutableBufferPointer { fill($0.baseAddress! + start) }
    }
}

/// Zeros to copy from (`appendFilled`).
public enum ZeroBlock {
    public static let bytes = [UInt8](repeating: 0, count: 64)
}
