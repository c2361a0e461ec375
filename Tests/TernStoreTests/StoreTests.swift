import Foundation
import Logging
import Testing
import TernCore
import TernLMDB
import TernTestSupport

@testable import TernStore

func openStore(_ dir: TemporaryDirectory, mapSize: Int = 64 << 20, readOnly: Bool = false) throws -> Store {
    try Store(
        configuration: StoreConfiguration(path: dir.file("store"), mapSize: mapSize, readOnly: readOnly),
        logger: Logger(label: "test"))
}

@Suite("Store: schema, durability, errors")
struct StoreTests {
    @Test("writes survive close and reopen")
    func reopen() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let now = Timestamp(milliseconds: 1_800_000_000_000)
        let user = UserRecord(id: TernID.random(), phone: "+14155550100", displayName: "Ana", createdAt: now, updatedAt: now)
        do {
            let store = try openStore(dir)
            try await store.write { try $0.putUser(user) }
            await store.close()
        }
        let store = try openStore(dir)
        #expect(try await store.read { try $0.user(user.id) } == user)
        #expect(try await store.read { try $0.userID(phone: "+14155550100") } == user.id)
        await store.close()
    }

    @Test("a data folder from a newer schema is refused with a clear message")
    func schemaTooNew() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        try await store.write { tx in
            var w = ByteWriter()
            w.u32(Schema.version + 1)
            try tx.putBytes(w.bytes, in: tx.tables.meta, at: MetaKey.schemaVersion)
        }
        await store.close()
        do {
            _ = try openStore(dir)
            Issue.record("a newer schema must be refused")
        } catch let error as StoreError {
            #expect(error == .schemaTooNew(found: Schema.version + 1, supported: Schema.version))
            #expect(error.description.contains("upgrade tern"))
        }
    }

    @Test("a full map is StoreError.mapFull; reads keep working; other writes still fit")
    func mapFull() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir, mapSize: 1 << 20)
        let now = Timestamp(milliseconds: 1)
        let keep = UserRecord(id: TernID.random(), phone: "+10000000001", createdAt: now, updatedAt: now)
        try await store.write { try $0.putUser(keep) }
        var hitFull = false
        for i in 0..<2000 {
            do {
                let big = UserRecord(
                    id: TernID.random(), phone: "+1\(1_000_000_000 + i)", displayName: "x",
                    statusText: String(repeating: "s", count: 3000), createdAt: now, updatedAt: now)
                try await store.write { try $0.putUser(big) }
            } catch let error as StoreError {
                #expect(error == .mapFull)
                #expect(error.clientError.code == .storageFull)
                #expect(error.clientError.status == 507)
                hitFull = true
                break
            }
        }
        #expect(hitFull)
        #expect(try await store.read { try $0.user(keep.id) } == keep)
        await store.close()
    }

    @Test("records round-trip through their layouts; damage and newer layouts are errors")
    func codecs() throws {
        let t = Timestamp(milliseconds: 1_800_000_000_123)
        let user = UserRecord(id: TernID.random(), phone: "+14155550100", displayName: "Zoë 👋", avatarURL: "https://a/b", statusText: "hi", createdAt: t, updatedAt: t, disabled: true)
        #expect(try UserRecord.decode(user.encoded()) == user)
        let device = DeviceRecord(number: 42, userID: TernID.random(), clientID: "install-1", name: "Pixel", platform: "android", createdAt: t, lastLoginAt: t, sessionID: TernID.random())
        #expect(try DeviceRecord.decode(device.encoded()) == device)
        let session = SessionRecord(id: TernID.random(), userID: TernID.random(), deviceNumber: 3, createdAt: t, expiresAt: t, revokedAt: t, revokeReason: .refreshReuse, generation: 9)
        #expect(try SessionRecord.decode(session.encoded()) == session)
        let live = SessionRecord(id: TernID.random(), userID: TernID.random(), deviceNumber: 3, createdAt: t, expiresAt: t)
        #expect(try SessionRecord.decode(live.encoded()) == live)
        let refresh = RefreshTokenRecord(sessionID: TernID.random(), generation: 2, expiresAt: t)
        #expect(try RefreshTokenRecord.decode(refresh.encoded()) == refresh)
        let otp = OtpRecord(codeTag: [UInt8](repeating: 5, count: 32), issuedAt: t, expiresAt: t, failedAttempts: 3, lockedUntil: t, windowStart: t, sendsInWindow: 2)
        #expect(try OtpRecord.decode(otp.encoded()) == otp)
        let spent = OtpRecord(codeTag: [], issuedAt: t, expiresAt: t, windowStart: t, sendsInWindow: 1)
        #expect(try OtpRecord.decode(spent.encoded()) == spent)
        let privacy = PrivacyRecord(lastSeen: .nobody, profilePhoto: .contacts, about: .everyone, readReceipts: false, updatedAt: t)
        #expect(try PrivacyRecord.decode(privacy.encoded()) == privacy)
        let push = PushTokenRecord(userID: TernID.random(), deviceNumber: 1, platform: "ios", createdAt: t, updatedAt: t)
        #expect(try PushTokenRecord.decode(push.encoded()) == push)
        #expect(try ContactRecord.decode(ContactRecord(nickname: "mum", createdAt: t).encoded()) == ContactRecord(nickname: "mum", createdAt: t))
        #expect(try PresenceRecord.decode(PresenceRecord(lastSeen: t).encoded()) == PresenceRecord(lastSeen: t))

        var bytes = user.encoded()
        #expect(throws: StoreError.self) { try UserRecord.decode(Array(bytes.prefix(bytes.count - 3))) }
        bytes[0] = UserRecord.layoutVersion + 1
        #expect(throws: StoreError.self) { try UserRecord.decode(bytes) }
        #expect(throws: StoreError.self) { try UserRecord.decode([]) }
        var badPrivacy = privacy.encoded()
        badPrivacy[1] = 9
        #expect(throws: StoreError.self) { try PrivacyRecord.decode(badPrivacy) }
        // Integer keys sort numerically.
        #expect(Keys.u64(255).lexicographicallyPrecedes(Keys.u64(256)))
    }

    @Test("indexes: devices per user, contacts, blocks, push tokens move between users")
    func indexes() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        let t = Timestamp(milliseconds: 1)
        let a = TernID.random()
        let b = TernID.random()
        try await store.write { tx in
            for name in ["z", "a", "m"] {
                let n = try tx.allocateDeviceNumber()
                try tx.putDevice(DeviceRecord(number: n, userID: a, clientID: name, name: "", platform: "", createdAt: t, lastLoginAt: t, sessionID: TernID.random()))
            }
            try tx.putContact(owner: a, contact: b, ContactRecord(createdAt: t))
            try tx.putBlock(blocker: b, blocked: a, BlockRecord(createdAt: t))
            try tx.putPushToken("tok", PushTokenRecord(userID: a, deviceNumber: 1, platform: "android", createdAt: t, updatedAt: t))
            try tx.putPushToken("tok", PushTokenRecord(userID: b, deviceNumber: 2, platform: "android", createdAt: t, updatedAt: t))
        }
        try store.readNow { tx throws in
            #expect(try tx.devices(of: a).map(\.clientID) == ["a", "m", "z"])
            #expect(try tx.devices(of: b).isEmpty)
            #expect(try tx.device(user: a, clientID: "m")?.number == 3)
            #expect(try tx.hasContact(owner: a, contact: b))
            #expect(try !tx.hasContact(owner: b, contact: a))
            #expect(try tx.isBlocked(blocker: b, blocked: a))
            #expect(try tx.eitherBlocked(a, b))
            #expect(try tx.pushTokens(of: a).isEmpty)
            #expect(try tx.pushTokens(of: b).map(\.token) == ["tok"])
        }
        await store.close()
    }

    @Test("a read-only store beside a writer sees committed data and refuses writes")
    func readOnly() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        let t = Timestamp(milliseconds: 1)
        let user = UserRecord(id: TernID.random(), phone: "+14155550100", createdAt: t, updatedAt: t)
        try await store.write { try $0.putUser(user) }
        await store.close()
        let ro = try openStore(dir, readOnly: true)
        #expect(try ro.readNow { try $0.user(user.id) } == user)
        await #expect(throws: StoreError.self) { try await ro.write { try $0.putUser(user) } }
        await ro.close()
    }

    @Test("message ids: 48 lowercase hex digits round-trip; anything else is refused")
    func messageIDs() {
        let id = MessageID(chat: TernID(high: 0x0123_4567_89ab_cdef, low: 0xfedc_ba98_7654_3210), seq: 42)
        #expect(id.description == "0123456789abcdeffedcba9876543210000000000000002a")
        #expect(MessageID(id.description) == id)
        var bytes: [UInt8] = Array("x".utf8)
        id.append(to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == "x" + id.description)
        #expect(MessageID(id.description.uppercased()) == nil)
        #expect(MessageID(String(id.description.dropLast())) == nil)
        #expect(MessageID(id.description + "0") == nil)
        #expect(MessageID(String(id.description.dropLast()) + "g") == nil)
        for _ in 0..<100 {
            let random = MessageID(chat: TernID.random(), seq: UInt64.random(in: 0...UInt64.max))
            #expect(MessageID(random.description) == random)
        }
    }

    @Test("receipt counters are patched in place and the rest of the message is unchanged")
    func receiptCounters() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        let sender = TernID.random()
        let id = MessageID(chat: TernID.random(), seq: 7)
        let record = MessageRecord(
            sender: sender, senderDevice: 3, clientMsgID: "c-1", kind: "text", payload: Array(#"{"body":"hi"}"#.utf8),
            replyTo: "", createdAt: Timestamp(milliseconds: 5), recipients: 2, flags: 1)
        try await store.write { try $0.putMessage(id, record) }
        let first = try await store.write { try $0.countReceipt(id, delivered: true, read: false) }
        #expect(first?.sender == sender)
        #expect(first?.aggregate == .sent)  // one of two recipients
        let second = try await store.write { try $0.countReceipt(id, delivered: true, read: true) }
        #expect(second?.aggregate == .delivered)
        let third = try await store.write { try $0.countReceipt(id, delivered: false, read: true) }
        #expect(third?.aggregate == .read)
        var expected = record
        expected.delivered = 2
        expected.read = 2
        #expect(try store.readNow { try $0.message(id) } == expected)
        #expect(try store.readNow { try $0.message(id)?.sender } == sender)
        let missing = try await store.write { try $0.countReceipt(MessageID(chat: id.chat, seq: 8), delivered: true, read: false) }
        #expect(missing == nil)
        await store.close()
    }

    @Test("a one-recipient message keeps its receipt in the record (layout 2); layout-1 records still read, drain and count")
    func inlineReceiptAndLayoutOne() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        let sender = TernID.random()
        let chat = TernID.random()
        let direct = MessageID(chat: chat, seq: 1)
        let record = MessageRecord(
            sender: sender, senderDevice: 1, clientMsgID: "c-1", kind: "text", payload: Array(#"{"body":"hi"}"#.utf8),
            createdAt: Timestamp(milliseconds: 5), recipients: 1, flags: MessageRecord.inlineReceiptFlag)
        try await store.write { try $0.putMessage(direct, record) }
        func advance(_ id: MessageID, to status: ReceiptStatus, at ms: Int64) async throws -> (sender: TernID, aggregate: ReceiptStatus)? {
            try await store.write { tx in
                try tx.advanceInlineReceipt(id, stored: try #require(try tx.messageBytes(id)), to: status, at: Timestamp(milliseconds: ms))
            }
        }
        #expect(try store.readNow { try $0.bytes($0.tables.messages, direct.key) }.flatMap(MessageRecord.inlineStatus) == .sent)
        let delivered = try await advance(direct, to: .delivered, at: 100)
        #expect(delivered?.sender == sender)
        #expect(delivered?.aggregate == .delivered)
        #expect(try await advance(direct, to: .read, at: 200)?.aggregate == .read)
        _ = try await advance(direct, to: .delivered, at: 300)  // a lower state changes nothing
        let stored = try #require(try store.readNow { try $0.message(direct) })
        #expect(stored.inlineReceipt == ReceiptRecord(status: .read, deliveredAt: Timestamp(milliseconds: 100), readAt: Timestamp(milliseconds: 200)))
        #expect((stored.delivered, stored.read, stored.clientMsgID, stored.payload) == (1, 1, "c-1", record.payload))
        #expect(try store.readNow { try $0.bytes($0.tables.messages, direct.key) }.flatMap(MessageRecord.inlineStatus) == .read)
        // Straight to read: delivered at the same time.
        let second = MessageID(chat: chat, seq: 2)
        try await store.write { try $0.putMessage(second, record) }
        _ = try await advance(second, to: .read, at: 400)
        #expect(try store.readNow { try $0.message(second) }?.inlineReceipt == ReceiptRecord(
            status: .read, deliveredAt: Timestamp(milliseconds: 400), readAt: Timestamp(milliseconds: 400)))
        #expect(try store.readNow { try $0.count($0.tables.receipts) } == 0)

        // A record stored before layout 2 (no times, no inline flag).
        var w = ByteWriter()
        w.u8(1)
        w.id(sender)
        w.u64(2)
        w.string("c-old")
        w.string("text")
        w.data(Array(#"{"body":"old"}"#.utf8))
        w.string("")
        w.timestamp(Timestamp(milliseconds: 7))
        w.u32(1)
        w.u32(0)
        w.u32(0)
        w.u8(0)
        let old = MessageID(chat: chat, seq: 3)
        let v1 = w.bytes
        try await store.write { tx in _ = try tx.putBytes(v1, in: tx.tables.messages, at: old.key) }
        let decoded = try #require(try store.readNow { try $0.message(old) })
        #expect(decoded.clientMsgID == "c-old")
        #expect(decoded.inlineReceipt == nil)
        #expect(MessageRecord.inlineStatus(v1) == nil)
        #expect(try store.readNow { tx in try tx.withHistoryReader { history -> [UInt8]?? in try history.withStoredMessage(old) { $0.map { Array($0.payload) } } } } == Array(#"{"body":"old"}"#.utf8))
        #expect(try await store.write { try $0.countReceipt(old, delivered: true, read: false) }?.aggregate == .delivered)
        let patched = try #require(try store.readNow { try $0.bytes($0.tables.messages, old.key) })
        #expect(patched.first == 1)  // patched in place, still layout 1
        #expect(try store.readNow { try $0.message(old) }?.delivered == 1)
        await store.close()
    }

    @Test("the reserved size of a message record and a mailbox entry is their encoded size")
    func encodedCapacities() {
        for n in [0, 1, 100, 5000] {
            let record = MessageRecord(
                sender: TernID.random(), senderDevice: 9, clientMsgID: String(repeating: "c", count: n % 64 + 1), kind: "text",
                payload: [UInt8](repeating: 0x61, count: n), replyTo: n > 1 ? "r" : "", createdAt: Timestamp(milliseconds: 5),
                recipients: 1, deliveredAt: Timestamp(milliseconds: 6), flags: MessageRecord.inlineReceiptFlag)
            #expect(record.encoded().count == record.encodedCapacity)
            let entry = MailboxEntry(
                kind: .receipt, event: "message.status", data: [UInt8](repeating: 1, count: n), message: MessageID(chat: TernID.random(), seq: 3),
                sender: TernID.random(), enqueuedAt: Timestamp(milliseconds: 7))
            #expect(entry.encoded().count == entry.encodedCapacity)
        }
    }

    @Test("keys built inline equal the array keys; a dedupe key too long to build inline still works")
    func inlineKeys() async throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let id = TernID.random()
            let (a, b) = (UInt64.random(in: 0...UInt64.max, using: &rng), UInt64.random(in: 0...UInt64.max, using: &rng))
            #expect(Keys.idInline(id).array == Keys.id(id))
            #expect(Keys.idSeqInline(id, a).array == Keys.idSeq(id, a))
            #expect(Keys.u64Inline(a).array == Keys.u64(a))
            #expect(Keys.u64PairInline(a, b).array == Keys.u64Pair(a, b))
            let text = String(repeating: "é", count: Int.random(in: 0...70, using: &rng))
            if let inline = Keys.idThenInline(id, text) {
                #expect(inline.array == Keys.idThen(id, text.utf8))
            } else {
                #expect(16 + text.utf8.count > InlineBytes.capacity)
            }
        }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try openStore(dir)
        let sender = TernID.random()
        let message = MessageID(chat: TernID.random(), seq: 4)
        for clientMsgID in ["c-1", String(repeating: "x", count: 112), String(repeating: "y", count: 113), String(repeating: "z", count: 400)] {
            try await store.write { try $0.putDedupe(sender: sender, clientMsgID: clientMsgID, message) }
            #expect(try store.readNow { try $0.dedupe(sender: sender, clientMsgID: clientMsgID) } == message)
            // Stored under the same key either way.
            #expect(try store.readNow { try $0.bytes($0.tables.dedupe, Keys.idThen(sender, clientMsgID.utf8)) } == message.key)
        }
        #expect(try store.readNow { try $0.dedupe(sender: sender, clientMsgID: "c-2") } == nil)
        await store.close()
    }
}
