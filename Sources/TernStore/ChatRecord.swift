import TernCore

/// A chat's kind.
public enum ChatKind: UInt8, Sendable {
    case direct = 1
    case group = 2

    public var name: String { self == .direct ? "direct" : "group" }
}

/// A chat's stable facts. Table `chats`, key = chat id (16).
///
/// Layout v1: `kind (u8) | created_at (i64) | created_by (16) | name (str) | description (str) |
///  avatar_url (str) | admin_only (u8 bool) | member_count (u32) | updated_at (i64)`
public struct ChatRecord: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 1

    public var kind: ChatKind
    public var createdAt: Timestamp
    public var createdBy: TernID
    public var name: String
    public var description: String
    public var avatarURL: String
    public var adminOnly: Bool
    public var memberCount: UInt32
    public var updatedAt: Timestamp

    public init(
        kind: ChatKind, createdAt: Timestamp, createdBy: TernID, name: String = "", description: String = "",
        avatarURL: String = "", adminOnly: Bool = false, memberCount: UInt32, updatedAt: Timestamp
    ) {
        self.kind = kind
        self.createdAt = createdAt
        self.createdBy = createdBy
        self.name = name
        self.description = description
        self.avatarURL = avatarURL
        self.adminOnly = adminOnly
        self.memberCount = memberCount
        self.updatedAt = updatedAt
    }

    public func encode(into w: inout ByteWriter) {
        w.u8(kind.rawValue)
        w.timestamp(createdAt)
        w.id(createdBy)
        w.string(name)
        w.string(description)
        w.string(avatarURL)
        w.bool(adminOnly)
        w.u32(memberCount)
        w.timestamp(updatedAt)
    }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        guard let kind = ChatKind(rawValue: try r.u8()) else { throw StoreError.corrupt("chat: unknown kind") }
        self.kind = kind
        createdAt = try r.timestamp()
        createdBy = try r.id()
        name = try r.string()
        description = try r.string()
        avatarURL = try r.string()
        adminOnly = try r.bool()
        memberCount = try r.u32()
        updatedAt = try r.timestamp()
    }
}

/// The part of a chat that changes with every message, kept apart from `ChatRecord` so a
/// send rewrites 17 bytes, not the chat's name and description.
/// Table `chat_heads`, key = chat id (16). Layout v1: `last_seq (u64) | last_activity (i64)`
public struct ChatHead: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 1

    /// Sequence number of the newest message in the chat's history (0 = none).
    public var lastSeq: UInt64
    public var lastActivity: Timestamp

    public init(lastSeq: UInt64, lastActivity: Timestamp) {
        self.lastSeq = lastSeq
        self.lastActivity = lastActivity
    }

    public func encode(into w: inout ByteWriter) {
        w.u64(lastSeq)
        w.timestamp(lastActivity)
    }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        lastSeq = try r.u64()
        lastActivity = try r.timestamp()
    }
}

/// A member's role in a chat.
public enum MemberRole: UInt8, Sendable {
    case member = 0
    case admin = 1

    public var name: String { self == .admin ? "admin" : "member" }
}

/// Membership. Table `chat_members`, key = chat id (16) ‖ user id (16).
/// Layout v1: `role (u8) | joined_at (i64) | added_by (16)`
public struct MemberRecord: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 1

    public var role: MemberRole
    public var joinedAt: Timestamp
    public var addedBy: TernID

    public init(role: MemberRole, joinedAt: Timestamp, addedBy: TernID) {
        self.role = role
        self.joinedAt = joinedAt
        self.addedBy = addedBy
    }

    public func encode(into w: inout ByteWriter) {
        w.u8(role.rawValue)
        w.timestamp(joinedAt)
        w.id(addedBy)
    }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        role = MemberRole(rawValue: try r.u8()) ?? .member
        joinedAt = try r.timestamp()
        addedBy = try r.id()
    }
}

/// One user's own state in a chat: mute, pin, how far they have read, and from where their
/// history starts. Table `user_chats`, key = user id (16) ‖ chat id (16).
///
/// Layout v1: `muted (u8) | mute_until (i64, 0 = forever) | pinned (u8) | last_read_seq (u64) |
///  first_seq (u64, the first message this member may see) | updated_at (i64)`
public struct UserChatState: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 1

    public var muted: Bool
    public var muteUntil: Timestamp?
    public var pinned: Bool
    public var lastReadSeq: UInt64
    public var firstSeq: UInt64
    public var updatedAt: Timestamp

    public init(
        muted: Bool = false, muteUntil: Timestamp? = nil, pinned: Bool = false, lastReadSeq: UInt64 = 0,
        firstSeq: UInt64 = 1, updatedAt: Timestamp
    ) {
        self.muted = muted
        self.muteUntil = muteUntil
        self.pinned = pinned
        self.lastReadSeq = lastReadSeq
        self.firstSeq = firstSeq
        self.updatedAt = updatedAt
    }

    /// Muted at `now` (a mute with an end in the past has run out).
    public func isMuted(at now: Timestamp) -> Bool {
        guard muted else { return false }
        if let until = muteUntil { return now < until }
        return true
    }

    public func encode(into w: inout ByteWriter) {
        w.bool(muted)
        w.i64(muteUntil?.milliseconds ?? 0)
        w.bool(pinned)
        w.u64(lastReadSeq)
        w.u64(firstSeq)
        w.timestamp(updatedAt)
    }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        muted = try r.bool()
        let until = try r.i64()
        muteUntil = until == 0 ? nil : Timestamp(milliseconds: until)
        pinned = try r.bool()
        lastReadSeq = try r.u64()
        firstSeq = try r.u64()
        updatedAt = try r.timestamp()
    }
}

extension ReadTx {
    public func chat(_ id: TernID) throws -> ChatRecord? {
        try record(ChatRecord.self, in: tables.chats, at: Keys.id(id))
    }

    public func chatHead(_ id: TernID) throws -> ChatHead? {
        try record(ChatHead.self, in: tables.chatHeads, at: Keys.idInline(id))
    }

    public func member(chat: TernID, user: TernID) throws -> MemberRecord? {
        try record(MemberRecord.self, in: tables.chatMembers, at: Keys.pair(chat, user))
    }

    /// Members of `chat` in user-id order.
    public func members(of chat: TernID) throws -> [(user: TernID, record: MemberRecord)] {
        var out: [(TernID, MemberRecord)] = []
        try scan(tables.chatMembers, prefix: chat.bytes) { key, value in
            out.append((TernID(bytes: key[16..<32])!, try MemberRecord.decode(value)))
            return true
        }
        return out
    }

    /// Member ids only (no record decoding), for fan-out.
    public func memberIDs(of chat: TernID) throws -> [TernID] {
        var out: [TernID] = []
        try scan(tables.chatMembers, prefix: chat.bytes) { key, _ in
            out.append(TernID(bytes: key[16..<32])!)
            return true
        }
        return out
    }

    public func userChat(user: TernID, chat: TernID) throws -> UserChatState? {
        try record(UserChatState.self, in: tables.userChats, at: Keys.pair(user, chat))
    }

    /// Every chat `user` belongs to, with their state in it.
    public func userChats(of user: TernID) throws -> [(chat: TernID, state: UserChatState)] {
        var out: [(TernID, UserChatState)] = []
        try scan(tables.userChats, prefix: user.bytes) { key, value in
            out.append((TernID(bytes: key[16..<32])!, try UserChatState.decode(value)))
            return true
        }
        return out
    }

    /// The direct chat between `a` and `b`, if one exists.
    public func directChat(_ a: TernID, _ b: TernID) throws -> TernID? {
        try raw.withValue(tables.directChats, Keys.unorderedPair(a, b)) { TernID(bytes: $0) } ?? nil
    }
}

extension WriteTx {
    public func putChat(_ id: TernID, _ chat: ChatRecord) throws {
        try put(chat, in: tables.chats, at: Keys.id(id))
    }

    public func putChatHead(_ id: TernID, _ head: ChatHead) throws {
        try putEncoded(head, in: tables.chatHeads, at: Keys.idInline(id))
        cache.setChatHead(head, chat: id)
    }

    /// Adds or updates a membership and the member's own chat state.
    public func putMember(chat: TernID, user: TernID, _ member: MemberRecord, state: UserChatState) throws {
        try put(member, in: tables.chatMembers, at: Keys.pair(chat, user))
        try put(state, in: tables.userChats, at: Keys.pair(user, chat))
    }

    /// Changes a member's record (role) without touching their chat state.
    public func putMemberRecord(chat: TernID, user: TernID, _ member: MemberRecord) throws {
        try put(member, in: tables.chatMembers, at: Keys.pair(chat, user))
    }

    /// Ends a membership: the member row and the member's own chat state (the chat leaves
    /// their chat list). False if `user` was not a member.
    @discardableResult
    public func removeMember(chat: TernID, user: TernID) throws -> Bool {
        let removed = try delete(tables.chatMembers, Keys.pair(chat, user))
        try delete(tables.userChats, Keys.pair(user, chat))
        return removed
    }

    public func putUserChat(user: TernID, chat: TernID, _ state: UserChatState) throws {
        try put(state, in: tables.userChats, at: Keys.pair(user, chat))
    }

    public func putDirectIndex(_ a: TernID, _ b: TernID, chat: TernID) throws {
        try putBytes(chat.bytes, in: tables.directChats, at: Keys.unorderedPair(a, b))
    }
}
