import TernCore

/// The relay's most frequent client frames — `message.delivered` and `ack` (one per message
/// delivered) and `message.send` — recognised without building a JSON tree (the general
/// parser allocates a dictionary per object and a String per key and value: a quarter of a
/// delivery's parsing cost went there).
///
/// The scanner accepts only the plain form: one object with `event`/`type`, `data`/`payload`
/// and nothing else at the top; a data object whose members are ASCII strings without
/// escapes, non-negative integers, or objects of such members (one level: a message's
/// `payload`). Anything else (escapes, non-ASCII, arrays, deeper nesting, numbers with a
/// sign, fraction or exponent, `null`, `ref`, malformed input) returns nil and the frame takes
/// the general parser, so every other frame — and every error case — is handled exactly as
/// before. Duplicate keys: the last one wins, as there.
public struct FlatFrame: Sendable {
    /// A member value: a string's byte range in the frame, an integer, or a nested object's
    /// members (a range of `inner`).
    public enum Value: Sendable, Equatable {
        case string(Range<Int>)
        case integer(UInt64)
        case object(Range<Int>)
    }

    public let bytes: [UInt8]
    /// The event name's byte range.
    public private(set) var event: Range<Int> = 0..<0
    /// The data members in frame order: key range, value.
    public private(set) var members: [(key: Range<Int>, value: Value)] = []
    /// The members of nested objects (never objects themselves).
    public private(set) var inner: [(key: Range<Int>, value: Value)] = []

    /// True when the event name is exactly `name`.
    public func isEvent(_ name: StaticString) -> Bool { matches(event, name) }

    /// The last data member called `key`.
    public func member(_ key: StaticString) -> Value? {
        for member in members.reversed() where matches(member.key, key) { return member.value }
        return nil
    }

    /// The bytes of a string value.
    public func slice(_ range: Range<Int>) -> ArraySlice<UInt8> { bytes[range] }

    /// The data object as fields, for code written against `[String: JSON]`.
    public var fields: Fields { Fields(frame: self, range: 0..<members.count, nested: false) }

    private func matches(_ range: Range<Int>, _ name: StaticString) -> Bool {
        matches(range, UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
    }

    /// Whether the frame's bytes in `range` are `name`.
    fileprivate func matches(_ range: Range<Int>, _ name: UnsafeBufferPointer<UInt8>) -> Bool {
        guard range.count == name.count else { return false }
        for k in 0..<range.count where bytes[range.lowerBound + k] != name[k] { return false }
        return true
    }

    /// Scans `bytes`; nil when the frame is not in the plain form.
    public static func scan(_ bytes: [UInt8]) -> FlatFrame? {
        var storage = Storage()
        return scan(bytes, storage: &storage)
    }

    /// The member lists of a scanned frame, kept between frames: a connection scans one
    /// frame at a time, so its frames can share two arrays instead of allocating them each.
    public struct Storage: Sendable {
        fileprivate var members: [(key: Range<Int>, value: Value)] = []
        fileprivate var inner: [(key: Range<Int>, value: Value)] = []

        public init() {}
    }

    /// `scan` with member lists taken from `storage` (given back on failure; a frame returns
    /// them with `release(into:)`).
    public static func scan(_ bytes: [UInt8], storage: inout Storage) -> FlatFrame? {
        var frame = FlatFrame(bytes: bytes, storage: &storage)
        var scanner = Scanner(b: bytes)
        guard frame.scanTop(&scanner) else {
            frame.release(into: &storage)
            return nil
        }
        return frame
    }

    /// Hands the member lists back to `storage` (the frame is done with).
    public consuming func release(into storage: inout Storage) {
        storage.members = members
        storage.inner = inner
    }

    private init(bytes: [UInt8], storage: inout Storage) {
        self.bytes = bytes
        members = storage.members
        inner = storage.inner
        storage = Storage()
        members.removeAll(keepingCapacity: true)
        inner.removeAll(keepingCapacity: true)
        members.reserveCapacity(6)
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
                guard !sawData, scanObject(&s, nested: false) else { return false }
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

    /// An object of plain members into `members` (or, nested, into `inner`).
    private mutating func scanObject(_ s: inout Scanner, nested: Bool) -> Bool {
        guard s.expect(UInt8(ascii: "{")) else { return false }
        if s.expect(UInt8(ascii: "}")) { return true }
        repeat {
            guard let key = s.string(), s.expect(UInt8(ascii: ":")) else { return false }
            s.skipWhitespace()
            let value: Value
            if s.peek(UInt8(ascii: "\"")) {
                guard let string = s.string() else { return false }
                value = .string(string)
            } else if s.peek(UInt8(ascii: "{")) {
                guard !nested else { return false }
                let start = inner.count
                guard scanObject(&s, nested: true) else { return false }
                value = .object(start..<inner.count)
            } else if let integer = s.integer() {
                value = .integer(integer)
            } else {
                return false
            }
            if nested { inner.append((key, value)) } else { members.append((key, value)) }
        } while s.expect(UInt8(ascii: ","))
        return s.expect(UInt8(ascii: "}"))
    }

    /// Read access to the data object (or a nested one) as JSON values.
    public struct Fields: JSONFields {
        let frame: FlatFrame
        let range: Range<Int>
        let nested: Bool

        private var list: [(key: Range<Int>, value: Value)] { nested ? frame.inner : frame.members }

        private func find(_ key: String) -> Value? {
            var key = key
            return key.withUTF8 { name -> Value? in
                let list = self.list
                for index in range.reversed() where frame.matches(list[index].key, name) { return list[index].value }
                return nil
            }
        }

        private func json(_ value: Value) -> JSON {
            switch value {
            case .string(let r): return .string(String(decoding: frame.bytes[r], as: UTF8.self))
            case .integer(let v): return .int(Int64(v))
            case .object(let r):
                var object: [String: JSON] = [:]
                for member in frame.inner[r] { object[String(decoding: frame.bytes[member.key], as: UTF8.self)] = json(member.value) }
                return .object(object)
            }
        }

        public subscript(_ key: String) -> JSON? {
            find(key).map(json)
        }

        public func fields(_ key: String) -> Fields? {
            guard case .object(let r)? = find(key) else { return nil }
            return Fields(frame: frame, range: r, nested: true)
        }

        public func withString<R>(_ key: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R? {
            guard case .string(let r)? = find(key) else { return nil }
            return frame.bytes.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[r])) }
        }
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
            // Eight bytes at a time while every byte is printable ASCII other than '"' and
            // '\'; a word with anything else is looked at bytewise below.
            let from = i
            i = b.withUnsafeBytes { WordScan.skip($0, from: from, stops: [.controls, .quoteAndBackslash, .delete, .nonASCII]) }
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

/// Read access to a JSON object's members, whatever holds them: validation written once
/// serves the parsed tree (`[String: JSON]`) and the flat frames alike.
public protocol JSONFields {
    associatedtype Nested: JSONFields
    /// The member `key`, or nil.
    subscript(_ key: String) -> JSON? { get }
    /// The member `key` when it is an object, else nil.
    func fields(_ key: String) -> Nested?
    /// `body` over the UTF-8 bytes of member `key` when it is a string, else nil (no
    /// `String` made where the bytes are at hand).
    func withString<R>(_ key: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R?
}

extension Dictionary: JSONFields where Key == String, Value == JSON {
    public func fields(_ key: String) -> [String: JSON]? {
        if case .object(let object)? = self[key] { return object }
        return nil
    }

    public func withString<R>(_ key: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R? {
        guard var text = self[key]?.stringValue else { return nil }
        return text.withUTF8(body)
    }
}
