import TernCore
import TernStore
import TernWire

/// Server frame names (docs/protocol.md, "WebSocket frames").
public enum ServerEvent {
    public static let messageNew = "message.new"
    public static let messageSent = "message.sent"
    public static let messageStatus = "message.status"
    public static let drained = "mailbox.drained"
    public static let typing = "typing"
    public static let presence = "presence"
    public static let pong = "pong"
    public static let error = "error"
    public static let sessionReplaced = "session.replaced"
}

/// Builders for the data objects of server frames. Message data is built once per message
/// and shared by every recipient device (only the frame's `seq` differs).
public enum RelayFrames {
    /// The `message.new` data of a stored message: the message's fields in the shape the
    /// seed's clients read (REST and WebSocket alike).
    public static func messageData(id: MessageID, record: MessageRecord, status: ReceiptStatus? = nil) -> [UInt8] {
        withView(record) { messageData(id: id, view: $0, status: status ?? .sent) }
            ?? messageDataGeneral(id: id, record: record, status: status)
    }

    /// `messageData` from a record's fields as bytes (read in place from the store, or
    /// `withView`); nil unless every string field is plain and the time not negative (then
    /// the decoded record goes through the general writer).
    static func messageData(id: MessageID, view: StoredMessageView, status: ReceiptStatus = .sent) -> [UInt8]? {
        guard view.isPlain else { return nil }
        var f = PlainFrameBytes(capacity: 320 + view.payload.count)
        f.literal(#"{"message_id":""#)
        f.fixed(count: 48) { id.write(to: $0) }
        plainFieldsAfterID(&f, chat: id.chat, view, status: status)
        return f.bytes
    }

    /// `messageData` through the general writer (the reference for tests).
    static func messageDataGeneral(id: MessageID, record: MessageRecord, status: ReceiptStatus? = nil) -> [UInt8] {
        var w = JSONWriter(capacity: 256 + record.payload.count)
        w.beginObject()
        messageFields(&w, id: id, record: record, status: status ?? .sent)
        w.endObject()
        return w.bytes
    }

    /// The `message.new` data of a message about to be stored, built on the sender's event
    /// loop so that the writer thread only splices in the message id (assigned in the
    /// commit): `{"message_id":"<id>"` + `tail`.
    public struct MessageTemplate: Sendable {
        let tail: [UInt8]

        public init(chat: TernID, record: MessageRecord) {
            let plain = RelayFrames.withView(record) { view -> [UInt8]? in
                guard view.isPlain else { return nil }
                var f = PlainFrameBytes(capacity: 280 + record.payload.count)
                RelayFrames.plainFieldsAfterID(&f, chat: chat, view, status: .sent)
                return f.bytes
            }
            if let plain {
                tail = plain
                return
            }
            var w = JSONWriter(capacity: 256 + record.payload.count)
            w.beginObject()
            w.member("message_id", "")
            messageFieldsAfterID(&w, chat: chat, record: record, status: .sent)
            w.endObject()
            // Everything after the empty id's closing quote.
            tail = Array(w.bytes.dropFirst(Self.head.count))
        }

        /// The data with `id` in place.
        public func data(id: MessageID) -> [UInt8] {
            var out = [UInt8]()
            out.reserveCapacity(Self.head.count + 48 + tail.count)
            out += Self.head
            id.append(to: &out)
            out += tail
            return out
        }

        private static let head = Array(#"{"message_id":""#.utf8)
    }

    /// The data a stored mailbox entry is sent with: its own bytes, or for a message entry
    /// stored as a reference to the history (empty data), the message as the history holds
    /// it — byte for byte what the live `message.new` carried.
    public static func storedData(_ entry: MailboxEntry, in tx: ReadTx) throws -> [UInt8] {
        try tx.withHistoryReader { history in try storedData(entry, in: tx, history: &history) }
    }

    /// `storedData` for the entries of one mailbox page, their messages read through one
    /// history cursor.
    public static func storedData(_ entry: MailboxEntry, in tx: ReadTx, history: inout HistoryReader) throws -> [UInt8] {
        guard entry.kind == .message, entry.data.isEmpty else { return entry.data }
        // Straight from the stored bytes when every string is plain (always, in practice);
        // otherwise, or for another layout, through the decoded record.
        let inPlace = try history.withStoredMessage(entry.message) { view -> [UInt8]? in
            guard let view else { return nil }
            return messageData(id: entry.message, view: view)
        }
        if let data = inPlace ?? nil { return data }
        guard let record = try tx.message(entry.message) else {
            // The history never loses messages; a damaged store still drains (and the
            // acknowledgement still removes the entry) instead of wedging the device.
            var w = JSONWriter(capacity: 128)
            w.beginObject()
            w.member("message_id", entry.message)
            w.member("chat_id", entry.message.chat)
            w.member("missing", true)
            w.endObject()
            return w.bytes
        }
        return messageData(id: entry.message, record: record)
    }

    /// The members of a message object (without braces), for embedding.
    public static func messageFields(_ w: inout JSONWriter, id: MessageID, record: MessageRecord, status: ReceiptStatus) {
        w.member("message_id", id)
        messageFieldsAfterID(&w, chat: id.chat, record: record, status: status)
    }

    /// `body` over `record`'s fields as bytes, the form the piecewise writer takes (one
    /// writer for decoded records and for records read in place).
    static func withView<T>(_ record: MessageRecord, _ body: (StoredMessageView) -> T) -> T {
        var clientMsgID = record.clientMsgID
        var kind = record.kind
        var replyTo = record.replyTo
        return clientMsgID.withUTF8 { c in
            kind.withUTF8 { k in
                replyTo.withUTF8 { r in
                    record.payload.withUnsafeBytes { p in
                        body(StoredMessageView(
                            sender: record.sender, clientMsgID: UnsafeRawBufferPointer(c), kind: UnsafeRawBufferPointer(k), payload: p,
                            replyTo: UnsafeRawBufferPointer(r), createdAt: record.createdAt, flags: record.flags))
                    }
                }
            }
        }
    }

    /// `messageFieldsAfterID` piece by piece, from just after the message id's value to the
    /// closing brace: `","chat_id":…}`.
    private static func plainFieldsAfterID(_ f: inout PlainFrameBytes, chat: TernID, _ m: StoredMessageView, status: ReceiptStatus) {
        f.literal(#"","chat_id":""#)
        f.fixed(count: 36) { chat.writeUUID(to: $0) }
        f.literal(#"","sender_id":""#)
        f.fixed(count: 36) { m.sender.writeUUID(to: $0) }
        f.literal(#"","client_msg_id":""#)
        f.raw(m.clientMsgID)
        f.literal(#"","type":""#)
        f.raw(m.kind)
        f.literal(#"","payload":"#)
        f.raw(m.payload)
        if !m.replyTo.isEmpty {
            f.literal(#","reply_to_message_id":""#)
            f.raw(m.replyTo)
            f.literal(#"""#)
        }
        f.literal(#","status":""#)
        f.plain(status.name)
        f.literal(#"","created_at":""#)
        f.rfc3339(m.createdAt)
        f.literal(#"","timestamp":"#)
        f.decimal(UInt64(m.createdAt.milliseconds))
        f.literal(m.flags & MessageRecord.deletedFlag != 0 ? #","is_deleted":true}"# : #","is_deleted":false}"#)
    }

    static func messageFieldsAfterID(_ w: inout JSONWriter, chat: TernID, record: MessageRecord, status: ReceiptStatus) {
        w.member("chat_id", chat)
        w.member("sender_id", record.sender)
        w.member("client_msg_id", record.clientMsgID)
        w.member("type", record.kind)
        w.key("payload")
        w.raw(record.payload)
        if !record.replyTo.isEmpty { w.member("reply_to_message_id", record.replyTo) }
        w.member("status", status.name)
        w.member("created_at", record.createdAt.rfc3339)
        w.member("timestamp", record.createdAt.milliseconds)
        w.member("is_deleted", record.flags & MessageRecord.deletedFlag != 0)
    }

    /// `message.sent`: the commit happened.
    public static func sent(id: MessageID, clientMsgID: String, createdAt: Timestamp, duplicate: Bool) -> [UInt8] {
        // The usual case, piece by piece: every string is an id, a token or a time.
        if createdAt.milliseconds >= 0 && PlainFrameBytes.needsNoEscaping(clientMsgID) {
            var f = PlainFrameBytes(capacity: 260 + clientMsgID.utf8.count)
            f.literal(#"{"event":"message.sent","type":"message.sent","data":{"chat_id":""#)
            f.fixed(count: 36) { id.chat.writeUUID(to: $0) }
            f.literal(#"","client_msg_id":""#)
            f.plain(clientMsgID)
            f.literal(#"","message_id":""#)
            f.fixed(count: 48) { id.write(to: $0) }
            f.literal(#"","created_at":""#)
            f.rfc3339(createdAt)
            f.literal(#"","timestamp":"#)
            f.decimal(UInt64(createdAt.milliseconds))
            f.literal(duplicate ? #","status":"sent","duplicate":true}}"# : #","status":"sent"}}"#)
            return f.bytes
        }
        return sentGeneral(id: id, clientMsgID: clientMsgID, createdAt: createdAt, duplicate: duplicate)
    }

    /// `sent` through the general writer (any client_msg_id; the reference for tests).
    static func sentGeneral(id: MessageID, clientMsgID: String, createdAt: Timestamp, duplicate: Bool) -> [UInt8] {
        OutboundFrame.make(ServerEvent.messageSent) { w in
            w.member("chat_id", id.chat)
            w.member("client_msg_id", clientMsgID)
            w.member("message_id", id)
            w.member("created_at", createdAt.rfc3339)
            w.member("timestamp", createdAt.milliseconds)
            w.member("status", "sent")
            if duplicate { w.member("duplicate", true) }
        }
    }

    /// The data of a `message.status` receipt: `user_id`/`status` of the last recipient
    /// whose state advanced, and — when several did in the same write (group members) — all
    /// of them in `receipts`. `at` is the RFC 3339 time, formatted once per write.
    public static func statusData(
        id: MessageID, receipts: [(user: TernID, status: ReceiptStatus)], aggregate: ReceiptStatus, at: String
    ) -> [UInt8] {
        var w = JSONWriter(capacity: 200 + (receipts.count > 1 ? 90 * receipts.count : 0))
        w.beginObject()
        statusMembers(&w, id: id, receipts: receipts, aggregate: aggregate, at: at)
        w.endObject()
        return w.bytes
    }

    /// The whole `message.status` frame in one pass (live receipts: no stored data to wrap).
    public static func statusFrame(
        id: MessageID, receipts: [(user: TernID, status: ReceiptStatus)], aggregate: ReceiptStatus, at: String
    ) -> [UInt8] {
        // One recipient (every 1:1 receipt), piece by piece: ids, status names and a time
        // the server formatted need no escaping.
        if receipts.count == 1, let only = receipts.first, PlainFrameBytes.needsNoEscaping(at) {
            var f = PlainFrameBytes(capacity: 300)
            f.literal(#"{"event":"message.status","type":"message.status","data":{"message_id":""#)
            f.fixed(count: 48) { id.write(to: $0) }
            f.literal(#"","chat_id":""#)
            f.fixed(count: 36) { id.chat.writeUUID(to: $0) }
            f.literal(#"","user_id":""#)
            f.fixed(count: 36) { only.user.writeUUID(to: $0) }
            f.literal(#"","status":""#)
            f.plain(only.status.name)
            f.literal(#"","aggregate_status":""#)
            f.plain(aggregate.name)
            f.literal(#"","updated_at":""#)
            f.plain(at)
            f.literal(#""}}"#)
            return f.bytes
        }
        return statusFrameGeneral(id: id, receipts: receipts, aggregate: aggregate, at: at)
    }

    /// `statusFrame` through the general writer (several receipts; the reference for tests).
    static func statusFrameGeneral(
        id: MessageID, receipts: [(user: TernID, status: ReceiptStatus)], aggregate: ReceiptStatus, at: String
    ) -> [UInt8] {
        OutboundFrame.make(ServerEvent.messageStatus, capacity: 260 + (receipts.count > 1 ? 90 * receipts.count : 0)) { w in
            statusMembers(&w, id: id, receipts: receipts, aggregate: aggregate, at: at)
        }
    }

    private static func statusMembers(
        _ w: inout JSONWriter, id: MessageID, receipts: [(user: TernID, status: ReceiptStatus)], aggregate: ReceiptStatus, at: String
    ) {
        w.member("message_id", id)
        w.member("chat_id", id.chat)
        if let last = receipts.last {
            w.member("user_id", last.user)
            w.member("status", last.status.name)
        }
        w.member("aggregate_status", aggregate.name)
        w.member("updated_at", at)
        if receipts.count > 1 {
            w.key("receipts")
            w.beginArray()
            for receipt in receipts {
                w.beginObject()
                w.member("user_id", receipt.user)
                w.member("status", receipt.status.name)
                w.member("updated_at", at)
                w.endObject()
            }
            w.endArray()
        }
    }

    public static func drained(count: Int, lastSeq: UInt64) -> [UInt8] {
        OutboundFrame.make(ServerEvent.drained) { w in
            w.member("count", Int64(count))
            w.key("last_seq")
            w.uint(lastSeq)
        }
    }

    public static func typing(chat: TernID, user: TernID, typing: Bool) -> [UInt8] {
        OutboundFrame.make(ServerEvent.typing) { w in
            w.member("chat_id", chat)
            w.member("user_id", user)
            w.member("typing", typing)
            w.member("is_typing", typing)
        }
    }

    public static func presence(user: TernID, online: Bool, lastSeen: Timestamp?) -> [UInt8] {
        OutboundFrame.make(ServerEvent.presence) { w in
            w.member("user_id", user)
            w.member("online", online)
            if let lastSeen { w.member("last_seen", lastSeen.rfc3339) }
        }
    }

    public static func pong(at: Timestamp) -> [UInt8] {
        OutboundFrame.make(ServerEvent.pong) { w in w.member("timestamp", at.milliseconds) }
    }

    public static func error(_ error: TernError, ref: String?) -> [UInt8] {
        OutboundFrame.error(code: error.code.rawValue, message: error.message, ref: ref)
    }
}

extension JSONWriter {
    /// An id member without an intermediate string.
    mutating func member(_ k: String, _ id: TernID) {
        asciiMember(k, count: 36) { id.writeUUID(to: $0) }
    }

    /// A message id member without an intermediate string.
    mutating func member(_ k: String, _ id: MessageID) {
        asciiMember(k, count: 48) { id.write(to: $0) }
    }
}

extension StoredMessageView {
    /// Whether the piecewise writer may take these fields: plain strings, a time not negative.
    fileprivate var isPlain: Bool {
        createdAt.milliseconds >= 0 && PlainFrameBytes.needsNoEscaping(clientMsgID) && PlainFrameBytes.needsNoEscaping(kind)
            && PlainFrameBytes.needsNoEscaping(replyTo)
    }
}
