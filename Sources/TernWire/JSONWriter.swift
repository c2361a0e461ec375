import TernCore

/// Writes compact JSON into a byte array. Callers build objects key by key; `raw` splices
/// pre-serialised JSON (e.g. a stored message payload) without re-encoding it.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8]
    /// Per open container, one bit: nothing written into it yet (bit n = depth n). A bit
    /// stack instead of an array: one heap allocation less for every frame written.
    private var emptyBits: UInt64 = 0
    private var depth = 0
    /// The same flags below depth 64 (parsed input is depth-limited far below; kept total).
    private var deepEmpty: [Bool] = []
    /// A key was just written; its value takes no comma.
    private var afterKey = false

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    // MARK: containers

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        push()
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        pop()
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        push()
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        pop()
    }

    /// The key of the next object member.
    public mutating func key(_ k: String) {
        separate()
        writeString(k)
        bytes.append(UInt8(ascii: ":"))
        afterKey = true
    }

    /// Writes the comma a value or key needs, if any.
    private mutating func separate() {
        if afterKey {
            afterKey = false
            return
        }
        guard depth > 0 else { return }
        let top = depth - 1
        if top < 64 {
            let bit: UInt64 = 1 << UInt64(top)
            if emptyBits & bit == 0 { bytes.append(UInt8(ascii: ",")) }
            emptyBits &= ~bit
        } else {
            if !deepEmpty[top - 64] { bytes.append(UInt8(ascii: ",")) }
            deepEmpty[top - 64] = false
        }
    }

    private mutating func push() {
        if depth < 64 {
            emptyBits |= 1 << UInt64(depth)
        } else {
            deepEmpty.append(true)
        }
        depth += 1
    }

    private mutating func pop() {
        depth -= 1
        if depth >= 64 { deepEmpty.removeLast() }
    }

    // MARK: scalars

    public mutating func string(_ s: String) {
        separate()
        writeString(s)
    }

    public mutating func int(_ v: Int64) {
        separate()
        if v < 0 { bytes.append(UInt8(ascii: "-")) }
        Self.appendDecimal(v.magnitude, to: &bytes)
    }

    public mutating func int(_ v: Int) { int(Int64(v)) }

    public mutating func uint(_ v: UInt64) {
        separate()
        Self.appendDecimal(v, to: &bytes)
    }

    /// The decimal digits of `v`, without an intermediate String.
    public static func appendDecimal(_ v: UInt64, to out: inout [UInt8]) {
        let digits = DecimalText.count(v)
        out.appendFilled(count: digits) { DecimalText.write(v, digits: digits, to: UnsafeMutableRawPointer($0)) }
    }

    /// Non-finite doubles have no JSON form and are written as null.
    public mutating func double(_ v: Double) {
        separate()
        if v.isFinite {
            if v.rounded() == v && abs(v) < 1e15 {
                bytes.append(contentsOf: String(Int64(v)).utf8)
            } else {
                bytes.append(contentsOf: String(v).utf8)
            }
        } else {
            bytes.append(contentsOf: "null".utf8)
        }
    }

    public mutating func bool(_ v: Bool) {
        separate()
        bytes.append(contentsOf: (v ? "true" : "false").utf8)
    }

    public mutating func null() {
        separate()
        bytes.append(contentsOf: "null".utf8)
    }

    /// `raw` for an array: one copy (the generic form appends element by element when the
    /// caller is in another module).
    public mutating func raw(_ json: [UInt8]) {
        separate()
        bytes.append(contentsOf: json)
    }

    /// Splices bytes that are already one complete JSON value.
    public mutating func raw(_ json: some Sequence<UInt8>) {
        separate()
        bytes.append(contentsOf: json)
    }

    public mutating func value(_ v: JSON) {
        switch v {
        case .null: null()
        case .bool(let b): bool(b)
        case .int(let i): int(i)
        case .double(let d): double(d)
        case .string(let s): string(s)
        case .array(let items):
            beginArray()
            for item in items { value(item) }
            endArray()
        case .object(let members):
            beginObject()
            for k in members.keys.sorted() {
                key(k)
                value(members[k]!)
            }
            endObject()
        }
    }

    // Convenience members.
    public mutating func member(_ k: String, _ v: String) {
        key(k)
        string(v)
    }

    /// A member whose value is a string of exactly `count` ASCII characters that need no
    /// escaping (hex ids), written by `fill` straight into the output.
    public mutating func asciiMember(_ k: String, count: Int, _ fill: (UnsafeMutablePointer<UInt8>) -> Void) {
        key(k)
        separate()
        bytes.append(UInt8(ascii: "\""))
        bytes.appendFilled(count: count, fill)
        bytes.append(UInt8(ascii: "\""))
    }

    public mutating func member(_ k: String, _ v: Int64) {
        key(k)
        int(v)
    }

    public mutating func member(_ k: String, _ v: Bool) {
        key(k)
        bool(v)
    }

    private mutating func writeString(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { utf8 in
            var runStart = 0
            var index = 0
            let count = utf8.count
            let raw = UnsafeRawBufferPointer(utf8)
            while index < count {
                // Eight bytes at a time while none needs escaping.
                index = WordScan.skip(raw, from: index, stops: [.controls, .quoteAndBackslash])
                guard index < count else { break }
                let c = utf8[index]
                // Only '"', '\\' and control characters need escaping.
                if c >= 0x20 && c != 0x22 && c != 0x5C {
                    index += 1
                    continue
                }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                switch c {
                case 0x22: bytes.append(contentsOf: [0x5C, 0x22])
                case 0x5C: bytes.append(contentsOf: [0x5C, 0x5C])
                case 0x0A: bytes.append(contentsOf: [0x5C, UInt8(ascii: "n")])
                case 0x0D: bytes.append(contentsOf: [0x5C, UInt8(ascii: "r")])
                case 0x09: bytes.append(contentsOf: [0x5C, UInt8(ascii: "t")])
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    bytes.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(c >> 4)], hex[Int(c & 0xF)]])
                }
                index += 1
                runStart = index
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<count]))
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// Appends the pieces of a fixed-shape frame whose every string is known to need no JSON
/// escaping (keys written as literals, ids, status names, times the server formats): the
/// hottest frames (`message.sent`, `message.status`) without a general writer's per-member
/// separator and escape checks. Callers must only pass such strings; tests compare the
/// output with `JSONWriter`'s.
public struct PlainFrameBytes {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    /// Literal JSON text (a key, punctuation).
    @inline(__always)
    public mutating func literal(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// A string's bytes as they are (no quotes, no escaping).
    public mutating func plain(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    /// A time as RFC 3339, written in place.
    public mutating func rfc3339(_ time: Timestamp) {
        var written = false
        bytes.appendFilled(count: 24) { written = time.writeRFC3339(to: $0) }
        if !written {
            bytes.removeLast(24)
            plain(time.rfc3339)
        }
    }

    /// `count` bytes written by `fill` (hex ids, UUIDs).
    public mutating func fixed(count: Int, _ fill: (UnsafeMutablePointer<UInt8>) -> Void) {
        bytes.appendFilled(count: count, fill)
    }

    /// Serialized JSON as it is.
    public mutating func raw(_ json: [UInt8]) {
        bytes.append(contentsOf: json)
    }

    /// Bytes as they are (serialized JSON, or string content that `needsNoEscaping`).
    public mutating func raw(_ buffer: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: buffer)
    }

    /// `needsNoEscaping` for bytes.
    public static func needsNoEscaping(_ buffer: UnsafeRawBufferPointer) -> Bool {
        let rest = WordScan.skip(buffer, from: 0, stops: [.controls, .quoteAndBackslash, .delete, .nonASCII])
        for byte in buffer[rest...] where byte < 0x20 || byte >= 0x7F || byte == 0x22 || byte == 0x5C { return false }
        return true
    }

    public mutating func decimal(_ value: UInt64) {
        JSONWriter.appendDecimal(value, to: &bytes)
    }

    /// Whether `text` can go through `plain` inside a JSON string: printable ASCII other
    /// than `"` and `\`.
    public static func needsNoEscaping(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { needsNoEscaping(UnsafeRawBufferPointer($0)) }
    }
}
