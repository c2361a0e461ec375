import Foundation
import Testing
import TernCore
import TernTestSupport

@testable import TernStore

/// The writer's cache across transactions must never outlive what it describes.
@Suite("Store: the writer's cache")
struct WriterCacheTests {
    struct Refused: Error {}

    static func entry(_ n: Int) -> MailboxEntry {
        MailboxEntry(
            kind: .message, event: "message.new", data: Array("{\"n\":\(n)}".utf8), message: MessageID(chat: TernID.random(), seq: 1),
            sender: TernID.random(), enqueuedAt: Timestamp(milliseconds: 1_800_000_000_000))
    }

    @Test("a thrown-away transaction is forgotten: mailbox numbers stay dense after a replay")
    func replayForgetsHeads() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        let device: UInt64 = 7
        // Known to the cache before the batch: head 1.
        #expect(try await store.write { try $0.appendToMailbox(device: device, Self.entry(0)) } == 1)
        // Hold the writer so that the next three writes share one transaction.
        let hold = WriterHold()
        let blocker = Task { try await store.write { _ in hold.hold() } }
        await hold.held()
        let first = Task { try await store.write { try $0.appendToMailbox(device: device, Self.entry(1)) } }
        while store.pendingWrites < 1 { try await Task.sleep(for: .milliseconds(2)) }
        let failing = Task { () -> Bool in
            do {
                _ = try await store.write { tx -> UInt64 in
                    _ = try tx.appendToMailbox(device: device, Self.entry(99))
                    throw Refused()  // after writing: the batch is replayed without it
                }
                return true
            } catch {
                return false
            }
        }
        while store.pendingWrites < 2 { try await Task.sleep(for: .milliseconds(2)) }
        let third = Task { try await store.write { try $0.appendToMailbox(device: device, Self.entry(2)) } }
        while store.pendingWrites < 3 { try await Task.sleep(for: .milliseconds(2)) }
        hold.release()
        try await blocker.value
        #expect(try await first.value == 2)
        #expect(await failing.value == false)
        #expect(try await third.value == 3)
        let stored = try await store.read { try $0.mailbox(device: device, after: 0, limit: 10) }
        #expect(stored.map(\.seq) == [1, 2, 3])
        #expect(stored.map { String(decoding: $0.entry.data, as: UTF8.self) } == [#"{"n":0}"#, #"{"n":1}"#, #"{"n":2}"#])
        await store.close()
    }

    @Test("a write to a table a cached lookup came from drops it: a new device is seen at once")
    func tableWritesInvalidate() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        let user = TernID.random()
        let now = Timestamp(milliseconds: 1_800_000_000_000)
        @Sendable func device(_ number: UInt64, _ client: String, active: Bool = true) -> DeviceRecord {
            DeviceRecord(
                number: number, userID: user, clientID: client, name: "", platform: "android", createdAt: now, lastLoginAt: now,
                sessionID: TernID.random(), active: active)
        }
        try await store.write { try $0.putDevice(device(1, "a")) }
        #expect(try await store.write { try $0.cachedActiveDevices(of: user) } == [1])
        try await store.write { try $0.putDevice(device(2, "b")) }
        #expect(try await store.write { try $0.cachedActiveDevices(of: user) }.sorted() == [1, 2])
        try await store.write { try $0.putDevice(device(1, "a", active: false)) }
        #expect(try await store.write { try $0.cachedActiveDevices(of: user) } == [2])
        // A chat head written by a send is read back from the cache; one written any other
        // way (a plain put) replaces it.
        let chat = TernID.random()
        try await store.write { try $0.putChatHead(chat, ChatHead(lastSeq: 5, lastActivity: now)) }
        #expect(try await store.write { try $0.cachedChatHead(chat)?.lastSeq } == 5)
        try await store.write { try $0.put(ChatHead(lastSeq: 9, lastActivity: now), in: $0.tables.chatHeads, at: Keys.id(chat)) }
        #expect(try await store.write { try $0.cachedChatHead(chat)?.lastSeq } == 9)
        await store.close()
    }
}
