/// The relay's most frequent client frames — `message.delivered` and `ack`, one per message
/// delivered — recognised without building a JSON tree (the general parser allocates a
/// dictionary per object and a String per key and value: a quarter of a delivery's parsing
/// cost went there).
///
/// The scanner accepts only the plain form: one object with `event`/`type`, `data`/`payload`
/// and nothing else at the top, a data object whose members are ASCII strings without
/// escapes or non-negative integers. Anything else (escapes, nesting, other members, `ref`,
/// non-ASCII, malformed input) returns nil and the frame takes the general parser, so every
/// error case keeps its exact error frame. Duplicate keys: the last one wins, as there.
public struct FlatFrame: Sendable {
    /// A scalar member value: a string's byte range in the frame, or an integer.
    public enum Value: Sendable, Equatable {
        case string(Range<Int>)
        case integer(UInt64)
    }

    public let bytes: [UInt8]
    /// The event name's byte range.
    public private(set) var event: Range<Int> = 0..<0
    /// The data members in frame order: key range, value.
    public private(set) var members: [(key: Range<Int>, value: Value)] = []

    /// True when the event name is exactly `name`.
    public func isEvent(_ name: StaticString) -> Bool { matches(event, name) }

    /// The last data member called `key`.
    public func member(_ key: StaticString) -> Value? {
        for member in members.reversed() where matches(member.key, key) { return member.value }
        return nil
    }

    /// The bytes of a string value.
    public func slice(_ range: Range<Int>) -> ArraySlice<UInt8> { bytes[range] }

    private func matches(_ range: Range<Int>, _ name: StaticString) -> Bool {
        guard range.count == name.utf8CodeUnitCount else { return false }
        let start = name.utf8Start
        for k in 0..<range.count where bytes[range.lowerBound + k] != start[k] { return false }
        return true
    }

    /// Scans `bytes`; nil when the frame is not in the plain form.
    public static func scan(_ bytes: [UInt8]) -> FlatFrame? {
        var frame = FlatFrame(bytes: bytes)
        var scanner = Scanner(b: bytes)
        guard frame.scanTop(&scanner) else { return nil }
        return frame
    }

    private init(bytes: [UInt8]) {
        self.bytes = bytes
        members.reserveCapacity(4)
    }

    private mutating func scanTop(_ s: inout Scanner) -> Bool {
        // As the general parser: `event` wins over `type`, `data` over `payload`.
        var named: Range<Int>?
        var typed: Range<Int>?
        var sawData = false
        guard s.expect(UInt8(ascii: "{")) else { return false }
        if s.peek(UInt8(ascii: "}")) { return false }
        repeat {
            guard let key = s.string() else { return false }
            guard s.expect(UInt8(ascii: ":")) else { return false }
            if matches(key, "event") || matches(key, "type") {
                guard let value = s.string() else { return false }
                if matches(key, "event") { named = value } else { typed = value }
            } else if matches(key, "data") || matches(key, "payload") {
                guard !sawData, scanData(&s) else { return false }
                sawData = true
            } else {
                return false
            }
        } while s.expect(UInt8(ascii: ","))
        guard s.expect(UInt8(ascii: "}")), sawData, let name = named ?? typed, !name.isEmpty, name.count <= 64 else { return false }
        event = name
        s.skipWhitespace()
        return s.atEnd
    }

    private mutating func scanData(_ s: inout Scanner) -> Bool {
        guard s.expect(UInt8(ascii: "{")) else { return false }
        if s.expect(UInt8(ascii: "}")) { return true }
        repeat {
            guard let key = s.string(), s.expect(UInt8(ascii: ":")) else { return false }
            s.skipWhitespace()
            if s.peek(UInt8(ascii: "\"")) {
                guard let value = s.string() else { return false }
                members.append((key, .string(value)))
            } else if let value = s.integer() {
                members.append((key, .integer(value)))
            } else {
                return false
            }
        } while s.expect(UInt8(ascii: ","))
        return s.expect(UInt8(ascii: "}"))
    }

    private struct Scanner {
        let b: [UInt8]
        var i = 0

        var atEnd: Bool { i == b.count }

        mutating func skipWhitespace() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        mutating func peek(_ c: UInt8) -> Bool {
            skipWhitespace()
            return i < b.count && b[i] == c
        }

        mutating func expect(_ c: UInt8) -> Bool {
            guard peek(c) else { return false }
            i += 1
            return true
        }

        /// A string of printable ASCII without escapes: its content's range.
        mutating func string() -> Range<Int>? {
            guard expect(UInt8(ascii: "\"")) else { return nil }
            let start = i
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") {
                    i += 1
                    return start..<(i - 1)
                }
                guard c >= 0x20, c < 0x7F, c != UInt8(ascii: "\\") else { return nil }
                i += 1
            }
            return nil
        }

        /// A non-negative integer without sign, fraction, exponent or leading zero, up to 18
        /// digits (larger numbers take the general parser).
        mutating func integer() -> UInt64? {
            let start = i
            var v: UInt64 = 0
            while i < b.count, b[i] >= 48, b[i] <= 57, i - start < 18 {
                v = v * 10 + UInt64(b[i] - 48)
                i += 1
            }
            let count = i - start
            guard count > 0, !(count > 1 && b[start] == 48) else { return nil }
            if i < b.count, (b[i] >= 48 && b[i] <= 57) || b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
                return nil
            }
            return v
        }
    }
}
