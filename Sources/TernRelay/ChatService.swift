import TernCore
import TernStore
import TernWire

/// Chats and history over the store: direct chat creation, the chat list, one chat, mute and
/// pin, message history and receipts. Results are JSON bytes (the `data` of the envelope),
/// written with the same field builders as the WebSocket frames.
public struct ChatService: Sendable {
    public let store: Store
    public let clock: any TernClock
    public let registry: SessionRegistry

    public init(store: Store, clock: any TernClock, registry: SessionRegistry) {
        self.store = store
        self.clock = clock
        self.registry = registry
    }

    /// Most unread messages counted per chat (the list shows "999+" beyond).
    public static let unreadCountMax = 999
    public static let pageDefault = 50
    public static let pageMax = 100

    // MARK: creating

    /// The direct chat between `user` and `other`, created if needed. Idempotent.
    public func createDirect(user: TernID, other: TernID) async throws -> (data: [UInt8], created: Bool) {
        if user == other { throw TernError.validation("you cannot open a chat with yourself") }
        let now = clock.now()
        let (chat, created) = try await store.write { tx -> (TernID, Bool) in
            guard try tx.user(other) != nil else { throw TernError(.notFound, "user not found") }
            if let existing = try tx.directChat(user, other) { return (existing, false) }
            if try tx.eitherBlocked(user, other) { throw TernError(.userBlocked, "you cannot message this user") }
            let id = TernID.random()
            try tx.putChat(id, ChatRecord(kind: .direct, createdAt: now, createdBy: user, memberCount: 2, updatedAt: now))
            try tx.putChatHead(id, ChatHead(lastSeq: 0, lastActivity: now))
            for member in [user, other] {
                try tx.putMember(chat: id, user: member, MemberRecord(role: .member, joinedAt: now, addedBy: user), state: UserChatState(updatedAt: now))
            }
            try tx.putDirectIndex(user, other, chat: id)
            return (id, true)
        }
        let data = try await store.read { tx in try Self.chatJSON(tx, chat: chat, viewer: user, now: now) }
        return (data, created)
    }

    // MARK: reading chats

    /// One chat as the viewer sees it; 404 / 403 otherwise.
    public func chat(_ chat: TernID, viewer: TernID) async throws -> [UInt8] {
        let now = clock.now()
        return try await store.read { tx in
            _ = try tx.membership(chat: chat, user: viewer)
            return try Self.chatJSON(tx, chat: chat, viewer: viewer, now: now)
        }
    }

    /// The viewer's chats, most recent activity first, `limit` per page after `cursor`.
    public func list(viewer: TernID, limit: Int, cursor: String?) async throws -> [UInt8] {
        let limit = min(max(1, limit), Self.pageMax)
        var after: (Int64, TernID)?
        if let cursor {
            let parts = cursor.split(separator: "_")
            guard parts.count == 2, let ms = Int64(parts[0]), let id = TernID(parts[1]) else {
                throw TernError.validation("cursor is not a cursor from this list")
            }
            after = (ms, id)
        }
        let now = clock.now()
        let start = after
        return try await store.read { tx in
            var entries: [(activity: Int64, chat: TernID)] = []
            for (chat, _) in try tx.userChats(of: viewer) {
                let activity = try tx.chatHead(chat)?.lastActivity.milliseconds ?? 0
                entries.append((activity, chat))
            }
            // Newest first; ties broken by id so that the cursor is exact.
            entries.sort { $0.activity != $1.activity ? $0.activity > $1.activity : $0.chat > $1.chat }
            if let start {
                entries = entries.filter { $0.activity < start.0 || ($0.activity == start.0 && $0.chat < start.1) }
            }
            let page = entries.prefix(limit)
            let hasMore = entries.count > page.count
            var w = JSONWriter(capacity: 512 * page.count + 64)
            w.beginObject()
            w.key("items")
            w.beginArray()
            for entry in page { w.raw(try Self.chatJSON(tx, chat: entry.chat, viewer: viewer, now: now)) }
            w.endArray()
            let next = hasMore ? page.last.map { "\($0.activity)_\($0.chat)" } : nil
            for key in ["nextCursor", "next_cursor"] {
                w.key(key)
                if let next { w.string(next) } else { w.null() }
            }
            w.member("hasMore", hasMore)
            w.member("has_more", hasMore)
            w.endObject()
            return w.bytes
        }
    }

    /// The seed's ChatDto plus the viewer's pin, mute end and unread count.
    static func chatJSON(_ tx: ReadTx, chat id: TernID, viewer: TernID, now: Timestamp) throws -> [UInt8] {
        guard let chat = try tx.chat(id) else { throw TernError(.chatNotFound, "chat not found") }
        let head = try tx.chatHead(id) ?? ChatHead(lastSeq: 0, lastActivity: chat.createdAt)
        let state = try tx.userChat(user: viewer, chat: id) ?? UserChatState(updatedAt: chat.createdAt)
        let members = try tx.members(of: id)
        var w = JSONWriter(capacity: 512)
        w.beginObject()
        w.member("chat_id", id)
        w.member("id", id)
        w.member("type", chat.kind.name)
        var name = chat.name
        if chat.kind == .direct, let other = members.first(where: { $0.user != viewer }), let user = try tx.user(other.user) {
            name = user.displayName
            w.member("other_user_id", other.user)
        }
        w.member("name", name)
        w.member("description", chat.description)
        w.member("avatar_url", chat.avatarURL)
        w.key("participants")
        w.beginArray()
        for member in members {
            w.beginObject()
            w.member("user_id", member.user)
            w.member("role", member.record.role.name)
            if let user = try tx.user(member.user) { w.member("display_name", user.displayName) }
            w.endObject()
        }
        w.endArray()
        w.key("last_message")
        if head.lastSeq >= state.firstSeq, let last = try tx.messages(chat: id, from: state.firstSeq, to: head.lastSeq + 1, newestFirst: true, limit: 1).first {
            w.beginObject()
            w.member("message_id", MessageID(chat: id, seq: last.seq))
            w.member("preview", Self.preview(last.record))
            w.member("sender_id", last.record.sender)
            w.member("type", last.record.kind)
            w.member("timestamp", last.record.createdAt.milliseconds)
            w.member("created_at", last.record.createdAt.rfc3339)
            w.endObject()
        } else {
            w.null()
        }
        w.member("unread_count", Int64(try unreadCount(tx, chat: id, viewer: viewer, state: state, lastSeq: head.lastSeq)))
        w.member("is_muted", state.isMuted(at: now))
        if let until = state.muteUntil, state.isMuted(at: now) { w.member("mute_until", until.rfc3339) }
        w.member("is_pinned", state.pinned)
        w.member("is_admin_only", chat.adminOnly)
        if chat.kind == .group {
            w.member("created_by", chat.createdBy)
            w.member("member_count", Int64(members.count))
        }
        w.member("created_at", chat.createdAt.rfc3339)
        w.member("updated_at", max(chat.updatedAt, head.lastActivity).rfc3339)
        w.endObject()
        return w.bytes
    }

    /// Messages from others after the viewer's last read one, up to `unreadCountMax`.
    static func unreadCount(_ tx: ReadTx, chat: TernID, viewer: TernID, state: UserChatState, lastSeq: UInt64) throws -> Int {
        let from = max(state.lastReadSeq + 1, state.firstSeq)
        guard from <= lastSeq else { return 0 }
        var count = 0
        try tx.scan(tx.tables.messages, from: Keys.idSeq(chat, from), to: Keys.idSeq(chat, lastSeq + 1)) { _, value in
            let (sender, system) = try MessageRecord.decodeSenderAndSystem(value)
            if sender != viewer && !system { count += 1 }
            return count < unreadCountMax
        }
        return count
    }

    /// Body (≤ 100 characters, cut on a character boundary) or `[type]`.
    static func preview(_ record: MessageRecord) -> String {
        if record.isSystem {
            return "[\((try? JSONParser.parse(record.payload))?["event"]?.stringValue ?? "system")]"
        }
        if let payload = try? JSONParser.parse(record.payload) {
            let text = payload["body"]?.stringValue ?? payload["caption"]?.stringValue ?? payload["name"]?.stringValue ?? ""
            if !text.isEmpty { return text.count <= 100 ? text : String(text.prefix(97)) + "..." }
        }
        return "[\(record.kind)]"
    }

    // MARK: per-user chat settings

    /// Mutes (optionally until a time) or unmutes the chat for `user`.
    public func setMuted(chat: TernID, user: TernID, muted: Bool, until: Timestamp?) async throws {
        let now = clock.now()
        try await store.write { tx in
            guard var state = try tx.userChat(user: user, chat: chat), try tx.member(chat: chat, user: user) != nil else {
                throw try tx.chat(chat) == nil ? TernError(.chatNotFound, "chat not found") : TernError(.notChatMember, "you are not a member of this chat")
            }
            state.muted = muted
            state.muteUntil = muted ? until : nil
            state.updatedAt = now
            try tx.putUserChat(user: user, chat: chat, state)
        }
    }

    public func setPinned(chat: TernID, user: TernID, pinned: Bool) async throws {
        let now = clock.now()
        try await store.write { tx in
            guard var state = try tx.userChat(user: user, chat: chat), try tx.member(chat: chat, user: user) != nil else {
                throw try tx.chat(chat) == nil ? TernError(.chatNotFound, "chat not found") : TernError(.notChatMember, "you are not a member of this chat")
            }
            state.pinned = pinned
            state.updatedAt = now
            try tx.putUserChat(user: user, chat: chat, state)
        }
    }

    // MARK: history

    /// A page of the chat's history, newest first, for members only. The cursor is the seq
    /// of the last message of the previous page.
    public func history(chat: TernID, viewer: TernID, limit: Int, cursor: String?) async throws -> [UInt8] {
        let limit = min(max(1, limit), Self.pageMax)
        var before = UInt64.max
        if let cursor, !cursor.isEmpty {
            guard let seq = UInt64(cursor) ?? MessageID(cursor)?.seq else { throw TernError.validation("cursor is not a cursor from this list") }
            before = seq
        }
        let end = before
        return try await store.read { tx in
            guard try tx.chat(chat) != nil else { throw TernError(.chatNotFound, "chat not found") }
            guard try tx.member(chat: chat, user: viewer) != nil, let state = try tx.userChat(user: viewer, chat: chat) else {
                throw TernError(.notChatMember, "you are not a member of this chat")
            }
            let page = try tx.messages(chat: chat, from: state.firstSeq, to: end, newestFirst: true, limit: limit + 1)
            let items = page.prefix(limit)
            var w = JSONWriter(capacity: 400 * items.count + 64)
            w.beginObject()
            w.key("items")
            w.beginArray()
            for (seq, record) in items {
                let id = MessageID(chat: chat, seq: seq)
                w.beginObject()
                RelayFrames.messageFields(&w, id: id, record: record, status: try Self.status(tx, id, record, viewer: viewer))
                w.endObject()
            }
            w.endArray()
            let hasMore = page.count > limit
            let next = hasMore ? items.last.map { String($0.seq) } : nil
            for key in ["nextCursor", "next_cursor"] {
                w.key(key)
                if let next { w.string(next) } else { w.null() }
            }
            w.member("hasMore", hasMore)
            w.member("has_more", hasMore)
            w.endObject()
            return w.bytes
        }
    }

    /// The status of a message as `viewer` sees it: the aggregate for their own messages,
    /// their own receipt for others'.
    static func status(_ tx: ReadTx, _ id: MessageID, _ record: MessageRecord, viewer: TernID) throws -> ReceiptStatus {
        if record.sender == viewer { return record.aggregateStatus }
        if let inline = record.inlineReceipt { return inline.status }
        return try tx.receipt(id, user: viewer)?.status ?? .sent
    }

    /// One message as its REST shape (for the send response).
    public static func messageJSON(id: MessageID, record: MessageRecord, viewer: TernID) -> [UInt8] {
        var w = JSONWriter(capacity: 400)
        w.beginObject()
        RelayFrames.messageFields(&w, id: id, record: record, status: record.sender == viewer ? record.aggregateStatus : .sent)
        w.member("is_starred", false)
        w.endObject()
        return w.bytes
    }

    /// Every recipient's state of a message, for chat members only.
    public func receipts(of id: MessageID, viewer: TernID) async throws -> [UInt8] {
        try await store.read { tx in
            guard try tx.member(chat: id.chat, user: viewer) != nil, let state = try tx.userChat(user: viewer, chat: id.chat) else {
                throw TernError(.notFound, "message not found")
            }
            guard id.seq >= state.firstSeq, let record = try tx.message(id) else { throw TernError(.notFound, "message not found") }
            // A message with one recipient keeps that receipt in its record.
            let inline = record.inlineReceipt
            let receipts = inline == nil ? try tx.receipts(id) : [:]
            var w = JSONWriter(capacity: 256)
            w.beginArray()
            // Members who could receive it: not the sender, and in the chat since before it
            // (a member added later has no receipt to show).
            for user in try tx.memberIDs(of: id.chat) where user != record.sender && !record.isSystem {
                guard let since = try tx.userChat(user: user, chat: id.chat), since.firstSeq <= id.seq else { continue }
                let receipt = inline ?? receipts[user]
                w.beginObject()
                w.member("user_id", user)
                w.member("status", (receipt?.status ?? .sent).name)
                w.member("updated_at", (receipt?.readAt ?? receipt?.deliveredAt ?? record.createdAt).rfc3339)
                w.endObject()
            }
            w.endArray()
            return w.bytes
        }
    }

    /// The newest message seq of a chat (for "mark everything read").
    public func lastSeq(chat: TernID) async throws -> UInt64 {
        try await store.read { tx in try tx.chatHead(chat)?.lastSeq ?? 0 }
    }
}

extension ReadTx {
    /// The chat and `user`'s membership in it: 404 `CHAT_NOT_FOUND` when there is no such
    /// chat, 403 `NOT_CHAT_MEMBER` when `user` is not in it. The check every chat route and
    /// frame starts with.
    func membership(chat: TernID, user: TernID) throws -> (chat: ChatRecord, member: MemberRecord) {
        guard let record = try self.chat(chat) else { throw TernError(.chatNotFound, "chat not found") }
        guard let member = try member(chat: chat, user: user) else { throw TernError(.notChatMember, "you are not a member of this chat") }
        return (record, member)
    }
}
