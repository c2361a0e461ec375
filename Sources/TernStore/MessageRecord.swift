import TernCore
import TernLMDB

/// Where a message lives: its chat and its sequence number in the chat's history. Its string
/// form is the public `message_id`: 32 hex digits of the chat id and 16 of the sequence.
public struct MessageID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var chat: TernID
    public var seq: UInt64

    public init(chat: TernID, seq: UInt64) {
        self.chat = chat
        self.seq = seq
    }

    @inlinable
    public init?(_ text: some StringProtocol) {
        self.init(utf8: text.utf8)
    }

    /// Parses the 48 lowercase hex digits from bytes (a frame's string value, uncopied).
    @inlinable
    public init?(utf8: some Sequence<UInt8>) {
        // Frames hand over contiguous bytes: three words of 16 digits, without the generic walk.
        if let parsed = utf8.withContiguousStorageIfAvailable({ Self.parse(hex: $0) }) {
            guard let parsed else { return nil }
            self = parsed
            return
        }
        var values: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var i = 0
        for c in utf8 {
            // Lowercase only: the form the server writes.
            guard i < 48, c < UInt8(ascii: "A") || c > UInt8(ascii: "F"), let d = Hex.value(c) else { return nil }
            switch i / 16 {
            case 0: values.0 = values.0 << 4 | d
            case 1: values.1 = values.1 << 4 | d
            default: values.2 = values.2 << 4 | d
            }
            i += 1
        }
        guard i == 48 else { return nil }
        chat = TernID(high: values.0, low: values.1)
        seq = values.2
    }

    /// The 48 lowercase hex digits in `hex`, or nil.
    @inlinable
    static func parse(hex: UnsafeBufferPointer<UInt8>) -> MessageID? {
        guard hex.count == 48 else { return nil }
        func word(_ start: Int) -> UInt64? {
            var v: UInt64 = 0
            for i in start..<(start + 16) {
                let c = hex[i]
                let d: UInt8
                if c &- UInt8(ascii: "0") < 10 {
                    d = c &- UInt8(ascii: "0")
                } else if c &- UInt8(ascii: "a") < 6 {
                    d = c &- UInt8(ascii: "a") &+ 10
                } else {
                    return nil
                }
                v = v << 4 | UInt64(d)
            }
            return v
        }
        guard let high = word(0), let low = word(16), let seq = word(32) else { return nil }
        return MessageID(chat: TernID(high: high, low: low), seq: seq)
    }

    public var description: String {
        String(unsafeUninitializedCapacity: 48) { buffer in
            write(to: buffer.baseAddress!)
            return 48
        }
    }

    /// Writes the 48 hex digits at `p`.
    @inlinable
    public func write(to p: UnsafeMutablePointer<UInt8>) {
        Hex.write(chat.high, digits: 16, to: p)
        Hex.write(chat.low, digits: 16, to: p + 16)
        Hex.write(seq, digits: 16, to: p + 32)
    }

    /// Appends the 48 hex digits to `bytes`.
    @inlinable
    public func append(to bytes: inout [UInt8]) {
        bytes.appendFilled(count: 48) { write(to: $0) }
    }

    /// The history key.
    public var key: [UInt8] { Keys.idSeq(chat, seq) }

    /// The history key, built inline.
    public var inlineKey: InlineBytes { Keys.idSeqInline(chat, seq) }

    /// One word into the hasher (message ids key the relay's in-flight and receipt tables).
    public func hash(into hasher: inout Hasher) {
        hasher.combine(chat)
        hasher.combine(seq)
    }

    /// Sets and dictionaries: the chat id's mix, mixed again with the sequence number
    /// (see `TernID._rawHashValue`).
    @inlinable
    public func _rawHashValue(seed: Int) -> Int {
        Int(truncatingIfNeeded: HashMix.mix(UInt64(truncatingIfNeeded: chat._rawHashValue(seed: seed)), seq, seed: seed))
    }

    public static func < (a: MessageID, b: MessageID) -> Bool { (a.chat, a.seq) < (b.chat, b.seq) }
}

/// A message in a chat's history. Table `messages`, key = chat id (16) ‖ seq (u64).
///
/// Layout v2: `sender (16) | sender_device (u64) | client_msg_id (str) | kind (str) |
///  payload (data: canonical JSON object) | reply_to (str message id, "" = none) |
///  created_at (i64) | recipients (u32) | delivered (u32) | read (u32) |
///  delivered_at (i64) | read_at (i64) | flags (u8)`
/// (v1, still read: the same without `delivered_at` and `read_at`).
///
/// `flags`: bit 0 deleted for everyone, bit 1 a system message (group events), bit 2 the
/// receipt is inline. `recipients` is the number of users the message was addressed to;
/// `delivered`/`read` count those who reached that state, so the sender's aggregate (the
/// minimum over recipients) is a comparison, not a scan. A message with one recipient (every
/// direct message) keeps that recipient's receipt here — its state is the counters, its
/// times `delivered_at`/`read_at` — instead of in `receipts`: one B-tree write less per
/// acknowledgement. Messages with several recipients, and those stored before v2, keep
/// their receipts in `receipts` (their `delivered_at`/`read_at` are 0).
public struct MessageRecord: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 2

    public var sender: TernID
    public var senderDevice: UInt64
    public var clientMsgID: String
    public var kind: String
    public var payload: [UInt8]
    public var replyTo: String
    public var createdAt: Timestamp
    public var recipients: UInt32
    public var delivered: UInt32
    public var read: UInt32
    /// The single recipient's times, for a record with the inline receipt flag.
    public var deliveredAt: Timestamp?
    public var readAt: Timestamp?
    public var flags: UInt8

    public init(
        sender: TernID, senderDevice: UInt64, clientMsgID: String, kind: String, payload: [UInt8], replyTo: String = "",
        createdAt: Timestamp, recipients: UInt32, delivered: UInt32 = 0, read: UInt32 = 0,
        deliveredAt: Timestamp? = nil, readAt: Timestamp? = nil, flags: UInt8 = 0
    ) {
        self.sender = sender
        self.senderDevice = senderDevice
        self.clientMsgID = clientMsgID
        self.kind = kind
        self.payload = payload
        self.replyTo = replyTo
        self.createdAt = createdAt
        self.recipients = recipients
        self.delivered = delivered
        self.read = read
        self.deliveredAt = deliveredAt
        self.readAt = readAt
        self.flags = flags
    }

    /// `flags` bit: the message was deleted for everyone.
    public static let deletedFlag: UInt8 = 1
    /// `flags` bit: a system message (a group event such as "member added"), written by the
    /// server: it has no receipts and does not count as unread.
    public static let systemFlag: UInt8 = 2

    /// `flags` bit: the single recipient's receipt is kept in this record (set when a
    /// message with one recipient is stored), not in `receipts`.
    public static let inlineReceiptFlag: UInt8 = 4

    public var isSystem: Bool { flags & Self.systemFlag != 0 }

    /// The single recipient's receipt, when this record keeps it (nil: look in `receipts`).
    public var inlineReceipt: ReceiptRecord? {
        guard flags & Self.inlineReceiptFlag != 0 else { return nil }
        let status: ReceiptStatus = read > 0 ? .read : delivered > 0 ? .delivered : .sent
        return ReceiptRecord(status: status, deliveredAt: deliveredAt, readAt: readAt)
    }

    /// Bytes after the counters' start in a stored record of layout `version`:
    /// recipients, delivered, read (u32 each), the two times of v2 (i64 each), flags.
    static func tailLength(version: UInt8) -> Int { version >= 2 ? 29 : 13 }

    /// The status the sender sees: the lowest state over all recipients.
    public var aggregateStatus: ReceiptStatus {
        if recipients > 0 && read >= recipients { return .read }
        if recipients > 0 && delivered >= recipients { return .delivered }
        return .sent
    }

    /// Only the sender of a stored message (it comes first in every layout version): for
    /// scans that need nothing else, such as unread counts.
    public static func decodeSender(_ buffer: UnsafeRawBufferPointer) throws(StoreError) -> TernID {
        var r = ByteReader(buffer, what: "MessageRecord")
        _ = try r.u8()
        return try r.id()
    }

    /// The sender and whether the message is a system message, without decoding the rest
    /// (the flags byte is the last byte in every layout version).
    public static func decodeSenderAndSystem(_ buffer: UnsafeRawBufferPointer) throws(StoreError) -> (sender: TernID, system: Bool) {
        let sender = try decodeSender(buffer)
        return (sender, buffer[buffer.count - 1] & systemFlag != 0)
    }

    public var encodedCapacity: Int {
        // version, sender, device, four length-prefixed fields, created_at, counters, times, flags
        1 + 16 + 8 + 16 + clientMsgID.utf8.count + kind.utf8.count + payload.count + replyTo.utf8.count + 8 + 12 + 16 + 1
    }

    public func encode(into w: inout ByteWriter) {
        w.id(sender)
        w.u64(senderDevice)
        w.string(clientMsgID)
        w.string(kind)
        w.data(payload)
        w.string(replyTo)
        w.timestamp(createdAt)
        w.u32(recipients)
        w.u32(delivered)
        w.u32(read)
        w.i64(deliveredAt?.milliseconds ?? 0)
        w.i64(readAt?.milliseconds ?? 0)
        w.u8(flags)
    }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        sender = try r.id()
        senderDevice = try r.u64()
        clientMsgID = try r.string()
        kind = try r.string()
        payload = try r.data()
        replyTo = try r.string()
        createdAt = try r.timestamp()
        recipients = try r.u32()
        delivered = try r.u32()
        read = try r.u32()
        if version >= 2 {
            let d = try r.i64()
            let rd = try r.i64()
            deliveredAt = d == 0 ? nil : Timestamp(milliseconds: d)
            readAt = rd == 0 ? nil : Timestamp(milliseconds: rd)
        }
        flags = try r.u8()
    }
}

/// The counters at the end of a stored message record (times: layout 2 only).
struct StoredCounters {
    var recipients: UInt32
    var delivered: UInt32
    var read: UInt32
    var deliveredAt: Int64 = 0
    var readAt: Int64 = 0
}

extension MessageRecord {
    /// The single recipient's state when the stored record keeps its receipt (the inline
    /// flag), read from the bytes without decoding; nil when its receipts are in `receipts`.
    public static func inlineStatus(_ stored: [UInt8]) -> ReceiptStatus? {
        guard stored.count >= 1 + 16 + tailLength(version: 2), stored[0] == 2, stored[stored.count - 1] & inlineReceiptFlag != 0 else { return nil }
        let at = stored.count - tailLength(version: 2)
        return stored.withUnsafeBytes { raw in
            if raw.loadUnaligned(fromByteOffset: at + 8, as: UInt32.self) != 0 { return .read }
            return raw.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self) != 0 ? .delivered : .sent
        }
    }
}

/// A stored message record (layout 1 or 2) read in place: its fields as views into the stored
/// bytes, valid only inside the read transaction's closure. A drained `message.new` is
/// written from it without building a `MessageRecord` (four allocations and UTF-8
/// validation per message); strings are unvalidated bytes, so a writer must check what it
/// copies (`RelayFrames` takes only printable ASCII this way and decodes anything else).
public struct StoredMessageView {
    public let sender: TernID
    public let clientMsgID: UnsafeRawBufferPointer
    public let kind: UnsafeRawBufferPointer
    public let payload: UnsafeRawBufferPointer
    public let replyTo: UnsafeRawBufferPointer
    public let createdAt: Timestamp
    public let flags: UInt8

    /// The same fields from elsewhere (a decoded record's strings, for one shared writer).
    public init(
        sender: TernID, clientMsgID: UnsafeRawBufferPointer, kind: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer,
        replyTo: UnsafeRawBufferPointer, createdAt: Timestamp, flags: UInt8
    ) {
        (self.sender, self.clientMsgID, self.kind, self.payload) = (sender, clientMsgID, kind, payload)
        (self.replyTo, self.createdAt, self.flags) = (replyTo, createdAt, flags)
    }

    /// Nil for another layout version (decode those with `MessageRecord`).
    public init?(_ buffer: UnsafeRawBufferPointer) throws(StoreError) {
        var r = ByteReader(buffer, what: "MessageRecord")
        let version = try r.u8()
        guard version == 1 || version == 2 else { return nil }
        sender = try r.id()
        _ = try r.u64()
        clientMsgID = try r.field()
        kind = try r.field()
        payload = try r.field()
        replyTo = try r.field()
        createdAt = try r.timestamp()
        _ = try r.u32()
        _ = try r.u32()
        _ = try r.u32()
        if version == 2 {
            _ = try r.i64()
            _ = try r.i64()
        }
        flags = try r.u8()
    }
}

extension ReadTx {
    /// `body` with a reader of history records that mostly follow each other (a drained
    /// mailbox's messages): the next message of a chat is one cursor step, not a search.
    public func withHistoryReader<T>(_ body: (inout HistoryReader) throws -> T) throws -> T {
        try raw.withSequentialReader(tables.messages) { reader in
            var history = HistoryReader(reader: reader)
            return try body(&history)
        }
    }
}

/// History records read through one cursor, valid inside `ReadTx.withHistoryReader` only.
public struct HistoryReader {
    fileprivate var reader: LMDBSequentialReader

    /// `body` over message `id` read in place (nil: no such message). `body` gets nil for a
    /// record of another layout version.
    public mutating func withStoredMessage<T>(_ id: MessageID, _ body: (StoredMessageView?) throws -> T) throws -> T? {
        try reader.withValue(id.inlineKey) { buffer in try body(try StoredMessageView(buffer)) }
    }
}

/// Delivery state of a message for one recipient.
public enum ReceiptStatus: UInt8, Sendable, Comparable {
    case sent = 0
    case delivered = 1
    case read = 2

    public var name: String {
        switch self {
        case .sent: "sent"
        case .delivered: "delivered"
        case .read: "read"
        }
    }

    public static func < (a: ReceiptStatus, b: ReceiptStatus) -> Bool { a.rawValue < b.rawValue }
}

/// One recipient's state of one message. Table `receipts`, key = chat id (16) ‖ seq (u64) ‖
/// user id (16). Absent = sent. Layout v1: `status (u8) | delivered_at (i64) | read_at (i64)`
public struct ReceiptRecord: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 1

    public var status: ReceiptStatus
    public var deliveredAt: Timestamp?
    public var readAt: Timestamp?

    public init(status: ReceiptStatus, deliveredAt: Timestamp? = nil, readAt: Timestamp? = nil) {
        self.status = status
        self.deliveredAt = deliveredAt
        self.readAt = readAt
    }

    public func encode(into w: inout ByteWriter) {
        w.u8(status.rawValue)
        w.i64(deliveredAt?.milliseconds ?? 0)
        w.i64(readAt?.milliseconds ?? 0)
    }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        status = ReceiptStatus(rawValue: try r.u8()) ?? .sent
        let d = try r.i64()
        let rd = try r.i64()
        deliveredAt = d == 0 ? nil : Timestamp(milliseconds: d)
        readAt = rd == 0 ? nil : Timestamp(milliseconds: rd)
    }
}

extension ReadTx {
    public func message(_ id: MessageID) throws -> MessageRecord? {
        try record(MessageRecord.self, in: tables.messages, at: id.inlineKey)
    }

    /// Messages of `chat` with `lower <= seq < upper`, newest first if `newestFirst`, at most
    /// `limit`.
    public func messages(chat: TernID, from lower: UInt64, to upper: UInt64, newestFirst: Bool, limit: Int) throws -> [(seq: UInt64, record: MessageRecord)] {
        var out: [(UInt64, MessageRecord)] = []
        guard lower < upper, limit > 0 else { return out }
        try scan(tables.messages, from: Keys.idSeq(chat, lower), to: Keys.idSeq(chat, upper), reverse: newestFirst) { key, value in
            var r = ByteReader(UnsafeRawBufferPointer(rebasing: key[16...]), what: "messages key")
            out.append((try r.u64(), try MessageRecord.decode(value)))
            return out.count < limit
        }
        return out
    }

    public func receipt(_ id: MessageID, user: TernID) throws -> ReceiptRecord? {
        try record(ReceiptRecord.self, in: tables.receipts, at: Keys.idSeqID(id.chat, id.seq, user))
    }

    /// Every recipient's receipt record of a message (users without one are at "sent").
    public func receipts(_ id: MessageID) throws -> [TernID: ReceiptRecord] {
        var out: [TernID: ReceiptRecord] = [:]
        try scan(tables.receipts, prefix: id.key) { key, value in
            out[TernID(bytes: key[24..<40])!] = try ReceiptRecord.decode(value)
            return true
        }
        return out
    }

    /// The message an earlier send with (`sender`, `clientMsgID`) created.
    public func dedupe(sender: TernID, clientMsgID: String) throws -> MessageID? {
        func decode(_ buffer: UnsafeRawBufferPointer) throws(StoreError) -> MessageID {
            var r = ByteReader(buffer, what: "dedupe")
            return MessageID(chat: try r.id(), seq: try r.u64())
        }
        guard let key = Keys.idThenInline(sender, clientMsgID) else {
            return try raw.withValue(tables.dedupe, Keys.idThen(sender, clientMsgID.utf8), decode)
        }
        return try raw.withValue(tables.dedupe, key, decode)
    }
}

extension WriteTx {
    /// Counts one more recipient as delivered and/or read on a stored message without
    /// decoding it: the counters sit at a fixed place from the end of a layout-1 or -2 record,
    /// so the value is copied and patched. Returns the sender and the new aggregate, or nil
    /// if there is no such message.
    public func countReceipt(_ id: MessageID, delivered: Bool, read: Bool) throws -> (sender: TernID, aggregate: ReceiptStatus)? {
        guard let value = try messageBytes(id) else { return nil }
        return try countReceipts(id, stored: value, delivered: delivered ? 1 : 0, read: read ? 1 : 0)
    }

    /// The stored bytes of message `id`: read once by a step that needs the sender first
    /// (`MessageRecord.decodeSender`) and then patches the counters (`countReceipts(_:stored:…)`).
    public func messageBytes(_ id: MessageID) throws -> [UInt8]? {
        // The writer's record buffer, taken out (so that patching it does not copy it) and
        // given back by the patch's put.
        var out = cache.recordBuffer
        cache.recordBuffer = []
        // Read through the update cursor, which the patch then writes back through.
        if messageCursor == nil { messageCursor = try raw.updateCursor(tables.messages) }
        let found = try messageCursor!.withValue(id.inlineKey) { buffer -> Bool in
            out.removeAll(keepingCapacity: true)
            out.append(contentsOf: buffer)
            return true
        } ?? false
        guard found else {
            cache.recordBuffer = out
            return nil
        }
        return out
    }

    /// `countReceipt` for several recipients at once, on bytes already read in this
    /// transaction by `messageBytes` (nothing wrote the message since): one read and one
    /// write of the record for all the acknowledgements of a message in one write request.
    public func countReceipts(_ id: MessageID, stored: consuming [UInt8], delivered: UInt32, read: UInt32) throws -> (sender: TernID, aggregate: ReceiptStatus)? {
        try patchCounters(id, stored: consume stored) { counters in
            counters.delivered &+= delivered
            counters.read &+= read
        } decoded: { record in
            record.delivered += delivered
            record.read += read
        }
    }

    /// Moves the single recipient's receipt kept in the record (bytes from `messageBytes`,
    /// `MessageRecord.inlineStatus` not nil) on to `status`, reached at `now`.
    public func advanceInlineReceipt(_ id: MessageID, stored: consuming [UInt8], to status: ReceiptStatus, at now: Timestamp) throws -> (sender: TernID, aggregate: ReceiptStatus)? {
        func advance(_ delivered: inout UInt32, _ read: inout UInt32, _ deliveredAt: inout Int64, _ readAt: inout Int64) {
            if status >= .delivered && delivered == 0 {
                delivered = 1
                deliveredAt = now.milliseconds
            }
            if status == .read && read == 0 {
                read = 1
                readAt = now.milliseconds
            }
        }
        return try patchCounters(id, stored: consume stored) { counters in
            advance(&counters.delivered, &counters.read, &counters.deliveredAt, &counters.readAt)
        } decoded: { record in
            var (deliveredAt, readAt) = (record.deliveredAt?.milliseconds ?? 0, record.readAt?.milliseconds ?? 0)
            advance(&record.delivered, &record.read, &deliveredAt, &readAt)
            record.deliveredAt = deliveredAt == 0 ? nil : Timestamp(milliseconds: deliveredAt)
            record.readAt = readAt == 0 ? nil : Timestamp(milliseconds: readAt)
        }
    }

    /// The counters at the end of a stored record, patched in place (they sit at a fixed
    /// place from the end in layouts 1 and 2) or, for another layout, on the decoded record.
    private func patchCounters(
        _ id: MessageID, stored: consuming [UInt8], _ patch: (inout StoredCounters) -> Void, decoded: (inout MessageRecord) -> Void
    ) throws -> (sender: TernID, aggregate: ReceiptStatus)? {
        // The caller's last use of the bytes: patched in place, not copied.
        var value = stored
        let version = value.first ?? 0
        let tail = MessageRecord.tailLength(version: version)
        // version (1) | sender (16) | … | recipients (4) | delivered (4) | read (4) | [times (16)] | flags (1)
        guard version == 1 || version == 2, value.count >= 1 + 16 + tail else {
            guard var record = try message(id) else { return nil }
            decoded(&record)
            try putMessage(id, record)
            return (record.sender, record.aggregateStatus)
        }
        let (sender, counters) = value.withUnsafeMutableBytes { raw in
            let sender = TernID(bytes: UnsafeRawBufferPointer(rebasing: raw[1..<17]))!
            let at = raw.count - tail
            func load<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T { T(bigEndian: raw.loadUnaligned(fromByteOffset: at + offset, as: T.self)) }
            func store<T: FixedWidthInteger>(_ v: T, _ offset: Int) { raw.storeBytes(of: v.bigEndian, toByteOffset: at + offset, as: T.self) }
            var counters = StoredCounters(recipients: load(0, UInt32.self), delivered: load(4, UInt32.self), read: load(8, UInt32.self))
            if version == 2 { (counters.deliveredAt, counters.readAt) = (load(12, Int64.self), load(20, Int64.self)) }
            patch(&counters)
            store(counters.delivered, 4)
            store(counters.read, 8)
            if version == 2 {
                store(counters.deliveredAt, 12)
                store(counters.readAt, 20)
            }
            return (sender, counters)
        }
        if let cursor = messageCursor {
            cache.wrote(tables.messages)
            try value.withUnsafeBytes { try raw.replace(cursor, id.inlineKey, $0) }
        } else {
            try putBytes(value, in: tables.messages, at: id.inlineKey)
        }
        cache.recordBuffer = value
        let counts = MessageRecord(
            sender: sender, senderDevice: 0, clientMsgID: "", kind: "", payload: [], createdAt: Timestamp(milliseconds: 0),
            recipients: counters.recipients, delivered: counters.delivered, read: counters.read)
        return (sender, counts.aggregateStatus)
    }

    public func putMessage(_ id: MessageID, _ message: MessageRecord) throws {
        try put(message, in: tables.messages, at: id.inlineKey)
    }

    /// Stores `receipt` only if `user` has none for the message yet: one B-tree operation
    /// for the common first acknowledgement. False (nothing written) if one existed.
    public func insertReceipt(_ id: MessageID, user: TernID, _ receipt: ReceiptRecord) throws -> Bool {
        try putBytes(receipt.encoded(), in: tables.receipts, at: Keys.idSeqID(id.chat, id.seq, user), overwrite: false)
    }

    public func putReceipt(_ id: MessageID, user: TernID, _ receipt: ReceiptRecord) throws {
        try put(receipt, in: tables.receipts, at: Keys.idSeqID(id.chat, id.seq, user))
    }

    /// Records that (sender, client_msg_id) is `id`, unless it already names a message:
    /// then nothing is written and that message's id is returned. `dedupe` and `putDedupe`
    /// in one lookup.
    public func claimDedupe(sender: TernID, clientMsgID: String, _ id: MessageID) throws -> MessageID? {
        guard let key = Keys.idThenInline(sender, clientMsgID) else {
            if let existing = try dedupe(sender: sender, clientMsgID: clientMsgID) { return existing }
            try putDedupe(sender: sender, clientMsgID: clientMsgID, id)
            return nil
        }
        let existing = try raw.insert(tables.dedupe, key, id.inlineKey) { buffer throws(StoreError) -> MessageID in
            var r = ByteReader(buffer, what: "dedupe")
            return MessageID(chat: try r.id(), seq: try r.u64())
        }
        if existing == nil { cache.wrote(tables.dedupe) }
        return existing
    }

    public func putDedupe(sender: TernID, clientMsgID: String, _ id: MessageID) throws {
        guard let key = Keys.idThenInline(sender, clientMsgID) else {
            try putBytes(id.key, in: tables.dedupe, at: Keys.idThen(sender, clientMsgID.utf8))
            return
        }
        try putBytes(id.inlineKey, in: tables.dedupe, at: key)
    }
}
