import Testing

@testable import TernWire

@Suite("JSON parser and writer")
struct JSONTests {
    func parse(_ s: String) throws -> JSON { try JSONParser.parse(Array(s.utf8)) }

    @Test("parses every JSON type")
    func values() throws {
        let v = try parse(#" {"a": [1, -2, 3.5, 1e3, true, false, null, "x\n\u00e9\ud83d\ude00"], "b": {}} "#)
        #expect(v["a"]?.arrayValue?.count == 8)
        #expect(v["a"]?.arrayValue?[0] == .int(1))
        #expect(v["a"]?.arrayValue?[1] == .int(-2))
        #expect(v["a"]?.arrayValue?[2] == .double(3.5))
        #expect(v["a"]?.arrayValue?[3] == .double(1000))
        #expect(v["a"]?.arrayValue?[7] == .string("x\né😀"))
        #expect(v["b"] == .object([:]))
        #expect(try parse("12345678901234567890") == .double(12345678901234567890))
        #expect(try parse(#""\/\\\"""#) == .string("/\\\""))
    }

    @Test("rejects malformed input with a typed error, never a crash")
    func rejections() {
        let bad = [
            "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{a:1}", "01", "1.", ".5", "-", "1e", "tru", "nul",
            "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00x\"", "\"\u{01}\"", "[1] [2]", "{\"a\" 1}",
            "NaN", "Infinity", "'a'", "[" + String(repeating: "[", count: 40) + String(repeating: "]", count: 41),
        ]
        for text in bad {
            #expect(throws: JSONError.self, "\(text.debugDescription)") { try parse(text) }
        }
    }

    @Test("invalid UTF-8 is its own error: overlong, surrogate, truncated, stray continuation")
    func utf8() throws {
        let cases: [[UInt8]] = [
            [0x22, 0xC3, 0x28, 0x22], [0x22, 0xC0, 0xAF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22],
            [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], [0x22, 0xE2, 0x82, 0x22], [0x22, 0x80, 0x22], [0xFF],
        ]
        for bytes in cases {
            #expect(throws: JSONError.invalidUTF8(offset: bytes[0] == 0xFF ? 0 : 1), "\(bytes)") {
                try JSONParser.parse(bytes)
            }
        }
        #expect(try JSONParser.parse([0x22, 0xF0, 0x9F, 0x98, 0x80, 0x22]) == .string("😀"))
    }

    @Test("random strings, integers and deep nesting round-trip through writer and parser")
    func writerFuzz() throws {
        var rng = SystemRandomNumberGenerator()
        let pieces: [String] = ["a", "Z", " ", "\"", "\\", "\n", "\t", "\u{01}", "\u{1F}", "\u{7F}", "é", "😀", "~", "/", "0"]
        for _ in 0..<3_000 {
            let text = (0..<Int.random(in: 0...40, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined()
            let number = Int64.random(in: Int64.min...Int64.max, using: &rng)
            let value = JSON.array([.string(text), .int(number), .int(0), .int(Int64.min)])
            #expect(try JSONParser.parse(value.bytes) == value, "\(text.unicodeScalars.map { $0.value })")
        }
        // Deeper than the writer's 64 inline flags: commas still right.
        var deep = JSON.array([.int(1), .int(2)])
        for _ in 0..<80 { deep = .array([deep, .string("x")]) }
        #expect(try JSONParser.parse(deep.bytes, maxDepth: 100) == deep)
    }

    @Test("writer escapes and round-trips through the parser")
    func writer() throws {
        let value = JSON.object([
            "s": .string("quote\" back\\ nl\n tab\t ctl\u{01} é 😀"), "i": .int(-42), "d": .double(0.25),
            "b": .bool(true), "n": .null, "a": .array([.int(1), .object(["k": .string("v")])]),
        ])
        #expect(try JSONParser.parse(value.bytes) == value)
        #expect(JSON.object(["b": .int(1), "a": .int(2)]).text == #"{"a":2,"b":1}"#)
        var w = JSONWriter()
        w.beginObject()
        w.member("x", "1")
        w.key("raw")
        w.raw(Array(#"{"pre":true}"#.utf8))
        w.key("list")
        w.beginArray()
        w.int(1)
        w.int(2)
        w.endArray()
        w.endObject()
        #expect(String(decoding: w.bytes, as: UTF8.self) == #"{"x":"1","raw":{"pre":true},"list":[1,2]}"#)
    }

    @Test("frames: both client shapes, references, and refusals")
    func frames() throws {
        let a = try InboundFrame.parse(Array(#"{"event":"message.send","data":{"client_msg_id":"c1"},"ref":"r1"}"#.utf8))
        #expect(a.event == "message.send")
        #expect(a.reference == "r1")
        let b = try InboundFrame.parse(Array(#"{"type":"ping","payload":{"client_msg_id":"c2"}}"#.utf8))
        #expect(b.event == "ping")
        #expect(b.reference == "c2")
        #expect(try InboundFrame.parse(Array(#"{"event":"ping"}"#.utf8)).data.isEmpty)
        #expect(throws: FrameError.notAnObject) { try InboundFrame.parse(Array("[1]".utf8)) }
        #expect(throws: FrameError.missingEvent) { try InboundFrame.parse(Array(#"{"data":{}}"#.utf8)) }
        #expect(throws: FrameError.missingEvent) { try InboundFrame.parse(Array(#"{"event":5}"#.utf8)) }
        #expect(throws: FrameError.invalidUTF8) { try InboundFrame.parse([0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]) }
        #expect(throws: FrameError.self) { try InboundFrame.parse(Array(#"{"event":"x","data":[1]}"#.utf8)) }
        let out = OutboundFrame.wrap("message.new", seq: 7, data: Array(#"{"a":1}"#.utf8))
        let parsed = try JSONParser.parse(out)
        #expect(parsed["event"] == .string("message.new"))
        #expect(parsed["type"] == .string("message.new"))
        #expect(parsed["seq"] == .int(7))
        #expect(parsed["data"]?["a"] == .int(1))
        let error = try JSONParser.parse(OutboundFrame.error(code: "BAD_FRAME", message: "m", ref: "r"))
        #expect(error["data"]?["code"] == .string("BAD_FRAME"))
        #expect(error["data"]?["ref"] == .string("r"))
    }
}
