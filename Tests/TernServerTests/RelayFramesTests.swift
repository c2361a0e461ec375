import Foundation
import Testing
import TernCore
import TernStore
import TernWire

@testable import TernRelay

@Suite("Relay frames: the piecewise writers equal the general writer")
struct RelayFramesTests {
    @Test("message.sent, one-recipient message.status and message.new data (live, and drained in place) are byte for byte what JSONWriter writes")
    func piecewiseEqualsGeneral() throws {
        var rng = SystemRandomNumberGenerator()
        let statuses: [ReceiptStatus] = [.sent, .delivered, .read]
        let tokenCharacters = Array("abcXYZ019._:-")
        for _ in 0..<2000 {
            let id = MessageID(chat: TernID.random(), seq: UInt64.random(in: 1...UInt64(Int64.max), using: &rng))
            let at = Timestamp(milliseconds: Int64.random(in: 0...4_000_000_000_000, using: &rng))
            let clientID = String((0..<Int.random(in: 1...64, using: &rng)).map { _ in tokenCharacters.randomElement(using: &rng)! })
            let duplicate = Bool.random(using: &rng)
            #expect(
                RelayFrames.sent(id: id, clientMsgID: clientID, createdAt: at, duplicate: duplicate)
                    == RelayFrames.sentGeneral(id: id, clientMsgID: clientID, createdAt: at, duplicate: duplicate))
            let receipts = [(user: TernID.random(), status: statuses.randomElement(using: &rng)!)]
            let aggregate = statuses.randomElement(using: &rng)!
            #expect(
                RelayFrames.statusFrame(id: id, receipts: receipts, aggregate: aggregate, at: at.rfc3339)
                    == RelayFrames.statusFrameGeneral(id: id, receipts: receipts, aggregate: aggregate, at: at.rfc3339))
        }
        // message.new data, live (template) and from the history.
        let kinds = ["text", "image", "location", "contact"]
        for _ in 0..<2000 {
            let id = MessageID(chat: TernID.random(), seq: UInt64.random(in: 1...1_000_000, using: &rng))
            let payload = Array(#"{"body":"hi \"there\"","n":\#(Int.random(in: 0...9999, using: &rng))}"#.utf8)
            let record = MessageRecord(
                sender: TernID.random(), senderDevice: 3,
                clientMsgID: String((0..<Int.random(in: 1...64, using: &rng)).map { _ in tokenCharacters.randomElement(using: &rng)! }),
                kind: kinds.randomElement(using: &rng)!, payload: payload,
                replyTo: Bool.random(using: &rng) ? MessageID(chat: id.chat, seq: 1).description : "",
                createdAt: Timestamp(milliseconds: Int64.random(in: 0...4_000_000_000_000, using: &rng)), recipients: 1,
                flags: Bool.random(using: &rng) ? MessageRecord.deletedFlag : 0)
            let status = statuses.randomElement(using: &rng)!
            #expect(RelayFrames.messageData(id: id, record: record, status: status) == RelayFrames.messageDataGeneral(id: id, record: record, status: status))
            #expect(RelayFrames.MessageTemplate(chat: id.chat, record: record).data(id: id) == RelayFrames.messageDataGeneral(id: id, record: record))
            // Drained: written from the stored bytes in place.
            let inPlace = try record.encoded().withUnsafeBytes { buffer in
                try StoredMessageView(buffer).flatMap { RelayFrames.messageData(id: id, view: $0) }
            }
            #expect(inPlace == RelayFrames.messageDataGeneral(id: id, record: record))
        }
        // What the piecewise writer must not take goes the general way, escaped.
        let id = MessageID(chat: TernID.random(), seq: 7)
        let odd = #"quote"and\back"#
        let frame = RelayFrames.sent(id: id, clientMsgID: odd, createdAt: Timestamp(milliseconds: 5), duplicate: false)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(frame)) as? [String: Any])
        #expect((parsed["data"] as? [String: Any])?["client_msg_id"] as? String == odd)
    }

    @Test("acknowledgements grouped per message: the groups of a dictionary walk, in first-seen order, items in order")
    func groupedLikeADictionary() {
        var rng = SystemRandomNumberGenerator()
        let chats = (0..<3).map { _ in TernID.random() }
        for round in 0..<500 {
            // Every second round without repeats (the usual 1:1 case), else with many.
            let pool = round % 2 == 0 ? 1_000_000 : 6
            let items: [(id: MessageID, tag: Int)] = (0..<Int.random(in: 0...40, using: &rng)).map { tag in
                (MessageID(chat: chats.randomElement(using: &rng)!, seq: UInt64.random(in: 1...UInt64(pool), using: &rng)), tag)
            }
            var expected: [(id: MessageID, tags: [Int])] = []
            var slot: [MessageID: Int] = [:]
            for item in items {
                if let at = slot[item.id] { expected[at].tags.append(item.tag) } else {
                    slot[item.id] = expected.count
                    expected.append((item.id, [item.tag]))
                }
            }
            let (ordered, groups) = Relay.grouped(items, by: \.id)
            #expect(ordered.count == items.count)
            #expect(groups.map(\.id) == expected.map(\.id))
            #expect(groups.map { ordered[$0.range].map(\.tag) } == expected.map(\.tags))
        }
    }

    @Test("message ids parse the same from contiguous bytes and from any sequence; only 48 lowercase hex digits")
    func messageIDParsing() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let id = MessageID(chat: TernID.random(), seq: UInt64.random(in: 0...UInt64.max, using: &rng) >> UInt64.random(in: 0...63, using: &rng))
            var text = Array(id.description.utf8)
            #expect(MessageID(utf8: text) == id)
            #expect(MessageID(utf8: AnySequence(text)) == id)
            // One byte changed to something else: uppercase, a non-digit, cut or extended.
            let at = Int.random(in: 0..<48, using: &rng)
            let original = text[at]
            text[at] = [UInt8(ascii: "A"), UInt8(ascii: "g"), UInt8(ascii: "/"), UInt8(ascii: ":"), UInt8(ascii: "`"), 0xFF].randomElement(using: &rng)!
            #expect(MessageID(utf8: text) == nil)
            #expect(MessageID(utf8: AnySequence(text)) == nil)
            text[at] = original
            #expect(MessageID(utf8: text.dropLast()) == nil)
            #expect(MessageID(utf8: text + [UInt8(ascii: "0")]) == nil)
            #expect(MessageID(utf8: AnySequence(text + [UInt8(ascii: "0")])) == nil)
        }
    }

    @Test("times written in place equal their RFC 3339 strings, in and past the four-digit years")
    func timesInPlace() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let time = Timestamp(milliseconds: Int64.random(in: -62_000_000_000_000...500_000_000_000_000, using: &rng))
            var f = PlainFrameBytes(capacity: 8)
            f.literal("<")
            f.rfc3339(time)
            f.literal(">")
            #expect(f.bytes == Array("<\(time.rfc3339)>".utf8))
        }
    }
}
