import Testing
import TernTestSupport

@testable import TernWire

@Suite("Flat frames: the ack fast path agrees with the general parser")
struct FlatFrameTests {
    /// The data members the fast path reports, as the general parser's JSON.
    func members(_ frame: FlatFrame) -> [String: JSON] {
        var out: [String: JSON] = [:]
        for member in frame.members {
            let key = String(decoding: frame.slice(member.key), as: UTF8.self)
            out[key] = frame.fields[key]
        }
        return out
    }

    @Test("plain frames are recognised with the same event and data", arguments: [
        #"{"event":"message.delivered","data":{"message_id":"abc"}}"#,
        #"{"type":"message.delivered","payload":{"message_id":"abc","chat_id":"c","sender_id":"s"}}"#,
        #" { "data" : { "seq" : 17 } , "event" : "ack" } "#,
        #"{"event":"ack","data":{"seq":0}}"#,
        #"{"event":"ack","data":{}}"#,
        #"{"type":"x","event":"ack","data":{"seq":1}}"#,
        #"{"event":"ack","type":"x","data":{"seq":5,"seq":6}}"#,
        #"{"event":"ack","data":{"seq":{"x":1,"y":"z","x":2}}}"#,
    ])
    func agrees(_ text: String) throws {
        let bytes = Array(text.utf8)
        let flat = try #require(FlatFrame.scan(bytes))
        let general = try InboundFrame.parse(bytes)
        #expect(String(decoding: flat.bytes[flat.event], as: UTF8.self) == general.event)
        #expect(members(flat) == general.data)
        #expect(general.ref == nil)
    }

    @Test("anything else is left to the general parser", arguments: [
        #"{"event":"ack","data":{"seq":1},"ref":"r1"}"#,  // ref must be echoed on errors
        #"{"event":"message.delivered","data":{"message_id":"a\"b"}}"#,  // escapes
        #"{"event":"message.delivered","data":{"message_id":"é"}}"#,  // non-ASCII
        #"{"event":"ack","data":{"seq":-1}}"#,
        #"{"event":"ack","data":{"seq":1.5}}"#,
        #"{"event":"ack","data":{"seq":1e3}}"#,
        #"{"event":"ack","data":{"seq":01}}"#,
        #"{"event":"ack","data":{"seq":12345678901234567890}}"#,
        #"{"event":"ack","data":{"seq":true}}"#,
        #"{"event":"ack","data":{"seq":{"x":{"y":1}}}}"#,  // deeper than one nested object
        #"{"event":"ack","data":{"seq":[1]}}"#,
        #"{"event":"ack","data":{"seq":1}} x"#,
        #"{"event":"ack","data":{"seq":1}"#,
        #"{"event":"ack"}"#,
        #"{"event":"ack","data":null}"#,
        #"{"event":"","data":{}}"#,
        #"{"event":"ack","data":{},"payload":{}}"#,
        #"{"event":1,"data":{}}"#,
        #"[]"#,
        #""#,
    ])
    func refuses(_ text: String) {
        #expect(FlatFrame.scan(Array(text.utf8)) == nil)
    }

    @Test("random mutations of plain frames: whenever the fast path accepts, the general parser agrees")
    func fuzz() throws {
        let seeds = [
            #"{"event":"message.delivered","data":{"message_id":"0123456789abcdef0123456789abcdef0123456789abcdef"}}"#,
            #"{"event":"ack","data":{"seq":123}}"#,
        ].map { Array($0.utf8) }
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array(#"{}[]":,0123456789 aeqs\."#.utf8) + [0x00, 0xC3, 0xFF]
        for _ in 0..<20_000 {
            let bytes = mutated(seeds.randomElement(using: &rng)!, alphabet: alphabet, using: &rng)
            guard let flat = FlatFrame.scan(bytes) else { continue }
            let general = try InboundFrame.parse(bytes)
            #expect(String(decoding: flat.bytes[flat.event], as: UTF8.self) == general.event, "\(bytes)")
            #expect(members(flat) == general.data, "\(String(decoding: bytes, as: UTF8.self))")
        }
    }

    @Test("frames scanned one after another with shared member lists read as frames scanned alone")
    func sharedStorage() throws {
        let seeds = [
            #"{"event":"message.send","data":{"chat_id":"c","type":"text","payload":{"body":"hi","n":7},"client_msg_id":"m"}}"#,
            #"{"event":"message.delivered","data":{"message_id":"0123456789abcdef0123456789abcdef0123456789abcdef"}}"#,
            #"{"event":"ack","data":{"seq":123}}"#,
            #"{"event":"ack","data":{"seq":-1}}"#,
        ].map { Array($0.utf8) }
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array(#"{}[]":,0123456789 aeqs\."#.utf8) + [0x00, 0xC3]
        var storage = FlatFrame.Storage()
        for _ in 0..<5_000 {
            let seed = seeds.randomElement(using: &rng)!
            let bytes = Bool.random(using: &rng) ? seed : mutated(seed, alphabet: alphabet, using: &rng)
            let alone = FlatFrame.scan(bytes)
            let shared = FlatFrame.scan(bytes, storage: &storage)
            #expect((alone == nil) == (shared == nil))
            if let alone, let shared {
                #expect(alone.event == shared.event)
                #expect(members(alone) == members(shared))
                shared.release(into: &storage)
            }
        }
    }
}
