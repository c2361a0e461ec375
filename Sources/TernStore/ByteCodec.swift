import TernCore

/// Appends big-endian integers and length-prefixed fields: the encoding of every stored
/// record and key. Byte order equals numeric order for unsigned integers, which is what
/// makes `(chat, seq)`-style keys sort correctly in LMDB.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }

    /// Empties the writer, keeping its buffer (a writer reused for many records).
    public mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    public mutating func u16(_ v: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
        bytes.append(UInt8(truncatingIfNeeded: v))
    }

    public mutating func u32(_ v: UInt32) {
        withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func u64(_ v: UInt64) {
        withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// Signed values are stored as their two's-complement bit pattern.
    public mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }

    public mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }

    /// Raw bytes without a length (fixed-size fields and key parts).
    public mutating func raw(_ v: some Sequence<UInt8>) { bytes.append(contentsOf: v) }

    /// `raw` for an array (no element-by-element copy from other modules).
    public mutating func raw(_ v: [UInt8]) { bytes.append(contentsOf: v) }

    /// A 16-byte identifier.
    public mutating func id(_ v: TernID) {
        u64(v.high)
        u64(v.low)
    }

    public mutating func timestamp(_ v: Timestamp) { i64(v.milliseconds) }

    /// Bytes prefixed with a u32 length.
    public mutating func data(_ v: [UInt8]) {
        u32(UInt32(v.count))
        raw(v)
    }

    /// UTF-8 text prefixed with a u32 length.
    public mutating func string(_ v: String) {
        var v = v
        v.withUTF8 { buffer in
            u32(UInt32(buffer.count))
            bytes.append(contentsOf: buffer)
        }
    }
}

/// Reads what `ByteWriter` wrote; every read checks bounds and throws
/// `StoreError.corrupt` instead of trapping, so a damaged record is an error, not a crash.
public struct ByteReader {
    private let buffer: UnsafeRawBufferPointer
    public private(set) var offset = 0
    private let what: String

    /// `what` names the record for error messages.
    public init(_ buffer: UnsafeRawBufferPointer, what: String) {
        self.buffer = buffer
        self.what = what
    }

    public var remaining: Int { buffer.count - offset }

    private mutating func take(_ n: Int) throws(StoreError) -> UnsafeRawBufferPointer {
        guard n >= 0, n <= remaining else {
            throw StoreError.corrupt("\(what): record ends after \(offset) bytes, needed \(n) more")
        }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + n)])
    }

    public mutating func u8() throws(StoreError) -> UInt8 { try take(1)[0] }

    public mutating func u16() throws(StoreError) -> UInt16 {
        let b = try take(2)
        return UInt16(b[0]) << 8 | UInt16(b[1])
    }

    public mutating func u32() throws(StoreError) -> UInt32 {
        UInt32(bigEndian: try take(4).loadUnaligned(as: UInt32.self))
    }

    public mutating func u64() throws(StoreError) -> UInt64 {
        UInt64(bigEndian: try take(8).loadUnaligned(as: UInt64.self))
    }


    public mutating func i64() throws(StoreError) -> Int64 { Int64(bitPattern: try u64()) }

    public mutating func bool() throws(StoreError) -> Bool { try u8() != 0 }

    public mutating func raw(_ n: Int) throws(StoreError) -> [UInt8] { Array(try take(n)) }

    public mutating func id() throws(StoreError) -> TernID { TernID(bytes: try take(16))! }

    public mutating func timestamp() throws(StoreError) -> Timestamp { Timestamp(milliseconds: try i64()) }

    public mutating func data() throws(StoreError) -> [UInt8] {
        let n = Int(try u32())
        return Array(try take(n))
    }

    /// A length-prefixed field (`data` or `string`) as a view into the buffer, not copied
    /// and not validated.
    public mutating func field() throws(StoreError) -> UnsafeRawBufferPointer {
        let n = Int(try u32())
        return try take(n)
    }

    public mutating func string() throws(StoreError) -> String {
        let n = Int(try u32())
        let b = try take(n)
        guard let s = String(validating: b, as: UTF8.self) else {
            throw StoreError.corrupt("\(what): invalid UTF-8 at byte \(offset - n)")
        }
        return s
    }
}

/// A value type stored in one table, with an explicit versioned binary layout.
///
/// Every stored value starts with a layout version byte. A reader accepts every version up
/// to `layoutVersion` (older layouts are upgraded on read) and refuses newer ones, which can
/// only come from a newer binary.
public protocol StoreRecord: Sendable {
    /// The layout this binary writes.
    static var layoutVersion: UInt8 { get }
    /// Writes the fields after the version byte.
    func encode(into writer: inout ByteWriter)
    /// Reads the fields of a record written with layout `version`.
    init(from reader: inout ByteReader, version: UInt8) throws(StoreError)
    /// Bytes to reserve for `encoded()` (the exact size where cheap to know: a record that
    /// outgrows the reservation is copied once per doubling).
    var encodedCapacity: Int { get }
}

extension StoreRecord {
    public var encodedCapacity: Int { 64 }

    /// Version byte followed by the fields.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: encodedCapacity)
        writer.u8(Self.layoutVersion)
        encode(into: &writer)
        return writer.bytes
    }

    /// Decodes a stored value (version byte first).
    public static func decode(_ buffer: UnsafeRawBufferPointer) throws(StoreError) -> Self {
        var reader = ByteReader(buffer, what: "\(Self.self)")
        let version = try reader.u8()
        guard version >= 1, version <= layoutVersion else {
            throw StoreError.corrupt("\(Self.self): layout version \(version) is not supported (this binary writes \(layoutVersion))")
        }
        return try Self(from: &reader, version: version)
    }

    public static func decode(_ bytes: [UInt8]) throws(StoreError) -> Self {
        var result: Result<Self, StoreError> = .failure(.corrupt("\(Self.self): not decoded"))
        bytes.withUnsafeBytes { buffer in
            do throws(StoreError) { result = .success(try decode(buffer)) } catch { result = .failure(error) }
        }
        return try result.get()
    }
}
