// TernWire owns Tern's wire formats: a strict JSON value type with its own parser and
// writer (RFC 8259, UTF-8 checked, depth-limited), and the WebSocket frame envelope.
//
// Why our own JSON: every WebSocket frame is parsed and written on the hot path; Foundation's
// JSONSerialization bridges through NSObject types and is several times slower on Linux, and
// Codable cannot report "which field is wrong" cheaply for untyped frames. Decoding is total:
// any input yields a value or a typed error, never a crash.
//
// Concurrency contract: pure value types and functions; everything is Sendable.

/// A JSON value. Numbers without fraction or exponent that fit in Int64 are `.int`.
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    /// The member `key` of an object, or nil.
    public subscript(key: String) -> JSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// Integers, and doubles that hold an integral value.
    public var intValue: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d.rounded() == d && abs(d) < 9.0e15: return Int64(d)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    public var arrayValue: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: [String: JSON]? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// The JSON type name, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .int, .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// Compact serialisation (object keys sorted, for stable output).
    public var bytes: [UInt8] {
        var writer = JSONWriter()
        writer.value(self)
        return writer.bytes
    }

    public var text: String { String(decoding: bytes, as: UTF8.self) }
}
