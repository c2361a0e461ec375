/// Why a JSON text was rejected.
public enum JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Bytes that are not UTF-8.
    case invalidUTF8(offset: Int)
    /// Not JSON: what was expected and where.
    case syntax(String, offset: Int)
    /// Nested deeper than the limit.
    case tooDeep(limit: Int)

    public var description: String {
        switch self {
        case .invalidUTF8(let offset): "invalid UTF-8 at byte \(offset)"
        case .syntax(let what, let offset): "\(what) at byte \(offset)"
        case .tooDeep(let limit): "nested deeper than \(limit) levels"
        }
    }
}

/// A strict RFC 8259 parser over UTF-8 bytes. Rejects invalid UTF-8 anywhere, lone
/// surrogates in escapes, trailing garbage, leading zeros, and nesting deeper than
/// `maxDepth`. Duplicate object keys: the last one wins.
public struct JSONParser {
    public static let defaultMaxDepth = 32

    /// Parses one JSON value that spans all of `bytes` (whitespace around it allowed).
    public static func parse(_ bytes: some Collection<UInt8>, maxDepth: Int = defaultMaxDepth) throws(JSONError) -> JSON {
        try parse(Array(bytes), maxDepth: maxDepth)
    }

    /// `parse` for an array: no copy (the generic form copies element by element when the
    /// caller is in another module).
    public static func parse(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws(JSONError) -> JSON {
        var parser = JSONParser(bytes, maxDepth: maxDepth)
        return try parser.parseDocument()
    }

    private let b: [UInt8]
    private var i = 0
    private let maxDepth: Int

    private init(_ bytes: [UInt8], maxDepth: Int) {
        b = bytes
        self.maxDepth = maxDepth
    }

    private mutating func parseDocument() throws(JSONError) -> JSON {
        skipWhitespace()
        let value = try parseValue(depth: 0)
        skipWhitespace()
        if i != b.count { throw .syntax("unexpected data after the JSON value", offset: i) }
        return value
    }

    private mutating func skipWhitespace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    private mutating func parseValue(depth: Int) throws(JSONError) -> JSON {
        guard i < b.count else { throw .syntax("unexpected end of input", offset: i) }
        switch b[i] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default:
            if b[i] >= 0x80 { try checkUTF8Sequence() }
            throw .syntax("expected a JSON value", offset: i)
        }
    }

    private mutating func literal(_ word: StaticString, _ value: JSON) throws(JSONError) -> JSON {
        let count = word.utf8CodeUnitCount
        guard i + count <= b.count else { throw .syntax("unexpected end of input", offset: i) }
        let start = word.utf8Start
        for k in 0..<count where b[i + k] != start[k] {
            throw .syntax("expected \(word)", offset: i)
        }
        i += count
        return value
    }

    private mutating func parseObject(depth: Int) throws(JSONError) -> JSON {
        if depth > maxDepth { throw .tooDeep(limit: maxDepth) }
        i += 1
        var members: [String: JSON] = [:]
        skipWhitespace()
        if i < b.count, b[i] == UInt8(ascii: "}") {
            i += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw .syntax("expected an object key", offset: i) }
            let key = try parseString()
            skipWhitespace()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { throw .syntax("expected ':'", offset: i) }
            i += 1
            skipWhitespace()
            members[key] = try parseValue(depth: depth)
            skipWhitespace()
            guard i < b.count else { throw .syntax("unexpected end of input", offset: i) }
            if b[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if b[i] == UInt8(ascii: "}") {
                i += 1
                return .object(members)
            }
            throw .syntax("expected ',' or '}'", offset: i)
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONError) -> JSON {
        if depth > maxDepth { throw .tooDeep(limit: maxDepth) }
        i += 1
        var items: [JSON] = []
        skipWhitespace()
        if i < b.count, b[i] == UInt8(ascii: "]") {
            i += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth))
            skipWhitespace()
            guard i < b.count else { throw .syntax("unexpected end of input", offset: i) }
            if b[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if b[i] == UInt8(ascii: "]") {
                i += 1
                return .array(items)
            }
            throw .syntax("expected ',' or ']'", offset: i)
        }
    }

    private mutating func parseNumber() throws(JSONError) -> JSON {
        let start = i
        var integral = true
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count, isDigit(b[i]) else { throw .syntax("expected a digit", offset: i) }
        if b[i] == UInt8(ascii: "0") {
            i += 1
            if i < b.count, isDigit(b[i]) { throw .syntax("leading zero in a number", offset: i) }
        } else {
            while i < b.count, isDigit(b[i]) { i += 1 }
        }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            integral = false
            i += 1
            guard i < b.count, isDigit(b[i]) else { throw .syntax("expected a digit after '.'", offset: i) }
            while i < b.count, isDigit(b[i]) { i += 1 }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            integral = false
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count, isDigit(b[i]) else { throw .syntax("expected a digit in the exponent", offset: i) }
            while i < b.count, isDigit(b[i]) { i += 1 }
        }
        let text = String(decoding: b[start..<i], as: UTF8.self)
        if integral, let value = Int64(text) { return .int(value) }
        guard let value = Double(text), value.isFinite else { throw .syntax("number out of range", offset: start) }
        return .double(value)
    }

    @inline(__always)
    private func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    private mutating func parseString() throws(JSONError) -> String {
        i += 1  // opening quote
        let start = i
        // Fast path: no escapes.
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                let s = String(decoding: b[start..<i], as: UTF8.self)
                i += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw .syntax("control character in a string", offset: i) }
            if c >= 0x80 { try checkUTF8Sequence() } else { i += 1 }
        }
        guard i < b.count else { throw .syntax("unterminated string", offset: start - 1) }
        // Slow path: with escapes.
        var out = Array(b[start..<i])
        while i < b.count {
            let c = b[i]
            switch c {
            case UInt8(ascii: "\""):
                i += 1
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                i += 1
                guard i < b.count else { throw .syntax("unterminated escape", offset: i) }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                            throw .syntax("lone surrogate in \\u escape", offset: i)
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw .syntax("invalid surrogate pair", offset: i) }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw .syntax("lone surrogate in \\u escape", offset: i)
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar)!)).utf8))
                default:
                    throw .syntax("invalid escape", offset: i - 1)
                }
            default:
                if c < 0x20 { throw .syntax("control character in a string", offset: i) }
                if c >= 0x80 {
                    let from = i
                    try checkUTF8Sequence()
                    out.append(contentsOf: b[from..<i])
                } else {
                    out.append(c)
                    i += 1
                }
            }
        }
        throw .syntax("unterminated string", offset: start - 1)
    }

    private mutating func hex4() throws(JSONError) -> UInt32 {
        guard i + 4 <= b.count else { throw .syntax("short \\u escape", offset: i) }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw .syntax("invalid hex digit in \\u escape", offset: i)
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    /// Validates one multi-byte UTF-8 sequence starting at `i` and advances past it.
    private mutating func checkUTF8Sequence() throws(JSONError) {
        let c = b[i]
        let length: Int
        var scalar: UInt32
        switch c {
        case 0xC2...0xDF:
            length = 2
            scalar = UInt32(c & 0x1F)
        case 0xE0...0xEF:
            length = 3
            scalar = UInt32(c & 0x0F)
        case 0xF0...0xF4:
            length = 4
            scalar = UInt32(c & 0x07)
        default:
            throw .invalidUTF8(offset: i)
        }
        guard i + length <= b.count else { throw .invalidUTF8(offset: i) }
        for k in 1..<length {
            let cc = b[i + k]
            guard cc & 0xC0 == 0x80 else { throw .invalidUTF8(offset: i) }
            scalar = scalar << 6 | UInt32(cc & 0x3F)
        }
        // Overlong forms, surrogates and values past U+10FFFF.
        let minimum: UInt32 = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000
        guard scalar >= minimum, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else {
            throw .invalidUTF8(offset: i)
        }
        i += length
    }
}
