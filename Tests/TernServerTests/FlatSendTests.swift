import Foundation
import Logging
import TernOps
import TernStore
import TernTestSupport
import Testing
import TernCore
import TernRelay
import TernWire

@Suite("message.send without the JSON tree: the flat path decides exactly as the general one")
struct FlatSendTests {
    /// The outcome of parsing a send, comparable across both paths.
    func outcome(_ parse: () throws(TernError) -> SendCommand) -> String {
        do {
            let c = try parse()
            return "ok \(c.chat) \(c.clientMsgID) \(c.content.kind) \(String(decoding: c.content.payload, as: UTF8.self)) "
                + "\(c.content.previewText) \(String(describing: c.content.mediaID)) \(String(describing: c.replyTo))"
        } catch {
            return "error \(error.code.rawValue) \(error.message)"
        }
    }

    static let chat = "5c0e8a4e-1b2c-4d3e-8f70-0123456789ab"
    static let seeds: [String] = [
        #"{"event":"message.send","data":{"chat_id":"\#(chat)","type":"text","payload":{"body":"hello there"},"client_msg_id":"c-1"}}"#,
        #"{"type":"message.send","payload":{"chat_id":"\#(chat)","type":"image","payload":{"media_id":"\#(chat)","caption":"look","duration_ms":1200},"client_msg_id":"c-2"}}"#,
        #"{"event":"message.send","data":{"chat_id":"\#(chat)","type":"location","payload":{"latitude":52,"longitude":13,"name":"Berlin"},"client_msg_id":"c-3","reply_to_message_id":"5c0e8a4e1b2c4d3e8f700123456789ab0000000000000007"}}"#,
        #"{"event":"message.send","data":{"chat_id":"\#(chat)","type":"contact","payload":{"name":"Ana","phone":"+4915112345678"},"client_msg_id":"c-4"}}"#,
        #"{"event":"message.send","data":{"chat_id":"\#(chat)","type":"text","payload":{"body":""},"client_msg_id":"c-5"}}"#,
    ]

    @Test("the plain forms are taken by the flat path and agree with the general parser")
    func seedsAgree() throws {
        for text in Self.seeds {
            let bytes = Array(text.utf8)
            let flat = try #require(FlatFrame.scan(bytes), "\(text)")
            let general = try InboundFrame.parse(bytes)
            #expect(outcome { () throws(TernError) in try SendCommand.parse(flat.fields) }
                == outcome { () throws(TernError) in try SendCommand.parse(general.data) }, "\(text)")
        }
    }

    @Test("chat_id: missing, not a string, not a UUID, or in capitals — the same answer on both paths")
    func chatIDForms() throws {
        let cases: [(chat: String, expected: String)] = [
            ("", "error VALIDATION_ERROR chat_id is required"),
            (#""chat_id":7,"#, "error VALIDATION_ERROR chat_id is required"),
            (#""chat_id":"5c0e8a4e-1b2c-4d3e-8f70-0123456789a","#, "error VALIDATION_ERROR chat_id must be a UUID"),
            (#""chat_id":"5c0e8a4e-1b2c-4d3e-8f70_0123456789ab","#, "error VALIDATION_ERROR chat_id must be a UUID"),
            (#""chat_id":"5C0E8A4E-1B2C-4D3E-8F70-0123456789AB","#, "ok \(Self.chat)"),
        ]
        for (chat, expected) in cases {
            let bytes = Array(#"{"event":"message.send","data":{\#(chat)"type":"text","payload":{"body":"hi"},"client_msg_id":"c-1"}}"#.utf8)
            let flat = try #require(FlatFrame.scan(bytes))
            let general = try InboundFrame.parse(bytes)
            for result in [
                outcome { () throws(TernError) in try SendCommand.parse(flat.fields) },
                outcome { () throws(TernError) in try SendCommand.parse(general.data) },
            ] {
                #expect(result.hasPrefix(expected), "\(chat): \(result)")
            }
        }
    }

    @Test("random mutations: whenever the flat path accepts a frame, the outcome is the same")
    func fuzz() throws {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array(#"{}[]":,0123456789 abcdeilnoprstxy-_.\"#.utf8) + [0xC3, 0x00]
        var accepted = 0
        for _ in 0..<20_000 {
            let bytes = mutated(Array(Self.seeds.randomElement(using: &rng)!.utf8), alphabet: alphabet, using: &rng)
            guard let flat = FlatFrame.scan(bytes), flat.isEvent("message.send") else { continue }
            accepted += 1
            let general = try InboundFrame.parse(bytes)
            #expect(general.event == "message.send")
            #expect(outcome { () throws(TernError) in try SendCommand.parse(flat.fields) }
                == outcome { () throws(TernError) in try SendCommand.parse(general.data) }, "\(String(decoding: bytes, as: UTF8.self))")
        }
        #expect(accepted > 1_000)
    }
}

@Suite("tern check knows mailbox entries are references")
struct CheckReferenceTests {
    @Test("a message entry whose message is not in the history is reported")
    func missingMessage() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(configuration: StoreConfiguration(path: dir.file("store"), mapSize: 64 << 20), logger: Logger(label: "test"))
        let ghost = MessageID(chat: TernID.random(), seq: 7)
        try await store.write { tx in
            _ = try tx.appendToMailbox(device: 1, MailboxEntry(
                kind: .message, event: "message.new", data: [], message: ghost, sender: TernID.random(), enqueuedAt: Timestamp(milliseconds: 1)))
        }
        await store.close()
        let report = try Inspector(storePath: dir.file("store")).check()
        #expect(report.problems.contains { $0.rule == "mailbox.message_missing" && $0.detail.contains(ghost.description) })
    }

    @Test("an inline receipt on a message with several recipients, or a receipts row beside one, is reported")
    func inlineReceiptConsistency() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try Store(configuration: StoreConfiguration(path: dir.file("store"), mapSize: 64 << 20), logger: Logger(label: "test"))
        let chat = TernID.random()
        let sender = TernID.random()
        let odd = MessageID(chat: chat, seq: 1)
        let direct = MessageID(chat: chat, seq: 2)
        @Sendable func record(recipients: UInt32) -> MessageRecord {
            MessageRecord(
                sender: sender, senderDevice: 1, clientMsgID: "c-\(recipients)", kind: "text", payload: Array(#"{"body":"x"}"#.utf8),
                createdAt: Timestamp(milliseconds: 1), recipients: recipients, flags: MessageRecord.inlineReceiptFlag)
        }
        try await store.write { tx in
            try tx.putChatHead(chat, ChatHead(lastSeq: 2, lastActivity: Timestamp(milliseconds: 1)))
            try tx.putMessage(odd, record(recipients: 3))
            try tx.putMessage(direct, record(recipients: 1))
            try tx.putReceipt(direct, user: TernID.random(), ReceiptRecord(status: .delivered, deliveredAt: Timestamp(milliseconds: 2)))
        }
        await store.close()
        let report = try Inspector(storePath: dir.file("store")).check()
        #expect(report.problems.contains { $0.rule == "messages.inline_receipt" })
        #expect(report.problems.contains { $0.rule == "receipts.inline_message" && $0.detail.contains(direct.description) })
        #expect(report.problems.filter { $0.rule.hasPrefix("messages.inline") }.count == 1)
    }
}
