// Groups: creation, settings, membership and roles. Every change is one store write, in the
// same one-at-a-time group commits that store messages, so a message sent to a group uses
// the membership as of its own commit, and admin-only mode is checked in that transaction.
//
// Every change is also an event that reaches clients: a system message in the group's
// history and a frame in the mailbox of every affected member device (the removed member
// gets their own removal, then nothing more), handed to connected devices after the commit.
//
// Invariant: a group with members always has an admin. The last admin cannot demote
// themself; when the last admin leaves, the longest-standing member is promoted.
import TernCore
import TernStore
import TernWire

extension ServerEvent {
    public static let chatCreated = "chat.created"
    public static let chatUpdated = "chat.updated"
    public static let memberAdded = "group.member.added"
    public static let memberRemoved = "group.member.removed"
    public static let memberLeft = "group.member.left"
    public static let roleChanged = "group.member.role_changed"
}

/// What a group update changes; nil leaves a field as it is.
public struct GroupChanges: Sendable {
    public var name: String?
    public var description: String?
    public var avatarURL: String?
    public var adminOnly: Bool?

    public init(name: String? = nil, description: String? = nil, avatarURL: String? = nil, adminOnly: Bool? = nil) {
        self.name = name
        self.description = description
        self.avatarURL = avatarURL
        self.adminOnly = adminOnly
    }

    public var isEmpty: Bool { name == nil && description == nil && avatarURL == nil && adminOnly == nil }

    /// Checks each field that is set (400 naming the field).
    public func validate() throws(TernError) {
        if let name { try GroupService.validateName(name) }
        if let description { try Validate.text(description, field: "description", max: Limits.groupDescriptionMax, multiline: true) }
        if let avatarURL { try Validate.url(avatarURL, field: "avatar_url", max: Limits.avatarURLMax) }
    }
}

/// A group event stored in mailboxes, to hand to the connected devices after the commit.
struct StoredEvent: Sendable {
    var event: String
    var data: [UInt8]
    var message: MessageID
    var deliveries: [MailboxDelivery]
}

/// One mailbox entry written for a device.
struct MailboxDelivery: Sendable {
    var device: UInt64
    var seq: UInt64
}

extension WriteTx {
    /// Puts one encoded entry into the mailbox of every active device of `users` (distinct
    /// users, in order) except the device `skipping`: the fan-out of messages and group
    /// events.
    func fanOut(_ encoded: [UInt8], to users: [TernID], skipping: UInt64? = nil) throws -> [MailboxDelivery] {
        var deliveries: [MailboxDelivery] = []
        deliveries.reserveCapacity(users.count)
        for user in users {
            for device in try cachedActiveDevices(of: user) where device != skipping {
                deliveries.append(MailboxDelivery(device: device, seq: try appendToMailbox(device: device, encoded: encoded)))
            }
        }
        return deliveries
    }
}

/// Group chats over the store and the relay.
public struct GroupService: Sendable {
    public let relay: Relay

    public init(relay: Relay) {
        self.relay = relay
    }

    /// Users added by one request, at most.
    public static let addMax = 256

    var store: Store { relay.store }
    var maxMembers: Int { relay.settings.groupMaxMembers }

    static func validateName(_ name: String) throws(TernError) {
        try Validate.text(name, field: "name", max: Limits.groupNameMax, allowEmpty: false)
    }

    // MARK: creating and changing

    /// Creates a group with `creator` as its admin and `members` as members; returns the chat
    /// as the creator sees it. Everyone, the creator included, gets `chat.created`.
    public func create(creator: TernID, name: String, description: String, avatarURL: String, members: [TernID]) async throws -> [UInt8] {
        try GroupChanges(name: name, description: description, avatarURL: avatarURL).validate()
        var seen: Set<TernID> = [creator]
        let others = members.filter { seen.insert($0).inserted }
        let max = maxMembers
        guard others.count + 1 <= max else { throw TernError.validation("a group has at most \(max) members, the creator included") }
        let now = relay.clock.now()
        let chat = try await commit { tx -> (TernID, [StoredEvent]) in
            for user in others { try Self.checkAddable(tx, user, by: creator) }
            let id = TernID.random()
            let record = ChatRecord(
                kind: .group, createdAt: now, createdBy: creator, name: name, description: description, avatarURL: avatarURL,
                memberCount: UInt32(others.count + 1), updatedAt: now)
            try tx.putChat(id, record)
            try tx.putChatHead(id, ChatHead(lastSeq: 0, lastActivity: now))
            try tx.putMember(
                chat: id, user: creator, MemberRecord(role: .admin, joinedAt: now, addedBy: creator), state: UserChatState(updatedAt: now))
            for user in others {
                try tx.putMember(
                    chat: id, user: user, MemberRecord(role: .member, joinedAt: now, addedBy: creator), state: UserChatState(updatedAt: now))
            }
            let event = try Self.record(
                tx, chat: id, actor: creator, event: ServerEvent.chatCreated, now: now, audience: [creator] + others,
                fields: { w in Self.summary(&w, chat: id, record: record) },
                historyOnly: { w in try Self.participants(&w, tx, chat: id) })
            return (id, [event])
        }
        return try await store.read { tx in try ChatService.chatJSON(tx, chat: chat, viewer: creator, now: now) }
    }

    /// Changes name, description, avatar or admin-only mode (admins only); `chat.updated` to
    /// every member. Setting a field to its current value is not a change.
    public func update(chat: TernID, actor: TernID, changes: GroupChanges) async throws {
        try changes.validate()
        guard !changes.isEmpty else { throw TernError.validation("nothing to change: send name, description, avatar_url or is_admin_only") }
        let now = relay.clock.now()
        try await commit { tx -> ((), [StoredEvent]) in
            var record = try Self.group(tx, chat, actor: actor, admin: true)
            var changed: [String] = []
            func apply<V: Equatable>(_ value: V?, to field: WritableKeyPath<ChatRecord, V>, named name: String) {
                guard let value, value != record[keyPath: field] else { return }
                record[keyPath: field] = value
                changed.append(name)
            }
            apply(changes.name, to: \.name, named: "name")
            apply(changes.description, to: \.description, named: "description")
            apply(changes.avatarURL, to: \.avatarURL, named: "avatar_url")
            apply(changes.adminOnly, to: \.adminOnly, named: "is_admin_only")
            guard !changed.isEmpty else { return ((), []) }
            record.updatedAt = now
            try tx.putChat(chat, record)
            let audience = try tx.memberIDs(of: chat)
            let event = try Self.record(tx, chat: chat, actor: actor, event: ServerEvent.chatUpdated, now: now, audience: audience) { w in
                w.member("action", "group_updated")
                w.member("updated_by", actor)
                w.key("changed")
                w.beginArray()
                for field in changed { w.string(field) }
                w.endArray()
                w.member("name", record.name)
                w.member("description", record.description)
                w.member("avatar_url", record.avatarURL)
                w.member("is_admin_only", record.adminOnly)
            }
            return ((), [event])
        }
    }

    /// Adds `users` as members (admins only). All or nothing: an unknown user is 404, a
    /// current member 409, going over the size limit 400. One `group.member.added` to every
    /// member, the new ones included; they see history from that event on.
    public func addMembers(chat: TernID, actor: TernID, users: [TernID]) async throws {
        var seen: Set<TernID> = []
        let added = users.filter { seen.insert($0).inserted }
        guard !added.isEmpty else { throw TernError.validation("user_id or user_ids is required") }
        // The event lists the added users and is copied to every member device: bounded.
        guard added.count <= Self.addMax else { throw TernError.validation("at most \(Self.addMax) users can be added at once") }
        let max = maxMembers
        let now = relay.clock.now()
        try await commit { tx -> ((), [StoredEvent]) in
            var record = try Self.group(tx, chat, actor: actor, admin: true)
            for user in added {
                if try tx.member(chat: chat, user: user) != nil { throw TernError(.alreadyMember, "user \(user) is already a member") }
                try Self.checkAddable(tx, user, by: actor)
            }
            let current = try tx.memberIDs(of: chat).count
            guard current + added.count <= max else {
                throw TernError.validation("a group has at most \(max) members; it has \(current)")
            }
            // The new members' history starts at this event.
            let firstSeq = (try tx.chatHead(chat)?.lastSeq ?? 0) + 1
            for user in added {
                try tx.putMember(
                    chat: chat, user: user, MemberRecord(role: .member, joinedAt: now, addedBy: actor),
                    state: UserChatState(lastReadSeq: firstSeq - 1, firstSeq: firstSeq, updatedAt: now))
            }
            record.memberCount = UInt32(current + added.count)
            record.updatedAt = now
            try tx.putChat(chat, record)
            let audience = try tx.memberIDs(of: chat)
            let event = try Self.record(tx, chat: chat, actor: actor, event: ServerEvent.memberAdded, now: now, audience: audience) { w in
                if added.count == 1 { w.member("user_id", added[0]) }
                w.key("user_ids")
                w.beginArray()
                for user in added { w.string(user.description) }
                w.endArray()
                w.member("added_by", actor)
                w.member("role", MemberRole.member.name)
                w.key("chat")
                w.beginObject()
                Self.summary(&w, chat: chat, record: record)
                w.endObject()
            }
            return ((), [event])
        }
    }

    /// Removes `target` (an admin removing a member) or leaves (`target == actor`). The
    /// removed member gets the event too, then nothing more from this group. When the last
    /// admin leaves, the longest-standing member becomes admin.
    public func removeMember(chat: TernID, actor: TernID, target: TernID) async throws {
        let now = relay.clock.now()
        try await commit { tx -> ((), [StoredEvent]) in
            let leaving = actor == target
            var record = try Self.group(tx, chat, actor: actor, admin: !leaving)
            guard let removed = try tx.member(chat: chat, user: target) else {
                throw TernError(.notFound, "user \(target) is not a member of this chat")
            }
            try tx.removeMember(chat: chat, user: target)
            var remaining = try tx.members(of: chat)
            record.memberCount = UInt32(remaining.count)
            record.updatedAt = now
            try tx.putChat(chat, record)
            var events: [StoredEvent] = []
            let audience = remaining.map(\.user) + [target]
            let name = leaving ? ServerEvent.memberLeft : ServerEvent.memberRemoved
            events.append(try Self.record(tx, chat: chat, actor: actor, event: name, now: now, audience: audience) { w in
                w.member("user_id", target)
                w.member("removed_by", actor)
                w.member("role", removed.role.name)
            })
            if removed.role == .admin, !remaining.isEmpty, !remaining.contains(where: { $0.record.role == .admin }) {
                // Longest-standing first; the user id breaks ties so the choice is stable.
                let heir = remaining.indices.min { a, b in
                    let (x, y) = (remaining[a], remaining[b])
                    return x.record.joinedAt != y.record.joinedAt ? x.record.joinedAt < y.record.joinedAt : x.user < y.user
                }!
                remaining[heir].record.role = .admin
                let user = remaining[heir].user
                try tx.putMemberRecord(chat: chat, user: user, remaining[heir].record)
                events.append(try Self.record(tx, chat: chat, actor: actor, event: ServerEvent.roleChanged, now: now, audience: remaining.map(\.user)) { w in
                    Self.roleFields(&w, user: user, role: .admin, by: actor, automatic: true)
                })
            }
            return ((), events)
        }
    }

    /// Promotes or demotes a member (admins only). The last admin cannot demote themself.
    public func setRole(chat: TernID, actor: TernID, target: TernID, role: MemberRole) async throws {
        let now = relay.clock.now()
        try await commit { tx -> ((), [StoredEvent]) in
            _ = try Self.group(tx, chat, actor: actor, admin: true)
            guard var member = try tx.member(chat: chat, user: target) else {
                throw TernError(.notFound, "user \(target) is not a member of this chat")
            }
            guard member.role != role else { return ((), []) }
            let members = try tx.members(of: chat)
            if role == .member, members.filter({ $0.record.role == .admin }).count <= 1 {
                throw TernError(.conflict, "a group needs at least one admin: promote another member first")
            }
            member.role = role
            try tx.putMemberRecord(chat: chat, user: target, member)
            let event = try Self.record(tx, chat: chat, actor: actor, event: ServerEvent.roleChanged, now: now, audience: members.map(\.user)) { w in
                Self.roleFields(&w, user: target, role: role, by: actor, automatic: false)
            }
            return ((), [event])
        }
    }

    // MARK: reading

    /// The members with their roles, for members only.
    public func members(chat: TernID, viewer: TernID) async throws -> [UInt8] {
        try await store.read { tx in
            _ = try tx.membership(chat: chat, user: viewer)
            let members = try tx.members(of: chat)
            var w = JSONWriter(capacity: 160 * members.count + 64)
            w.beginObject()
            w.key("items")
            w.beginArray()
            for member in members {
                w.beginObject()
                w.member("user_id", member.user)
                w.member("role", member.record.role.name)
                if let user = try tx.user(member.user) { w.member("display_name", user.displayName) }
                w.member("joined_at", member.record.joinedAt.rfc3339)
                w.member("added_by", member.record.addedBy)
                w.endObject()
            }
            w.endArray()
            w.member("count", Int64(members.count))
            w.endObject()
            return w.bytes
        }
    }

    // MARK: parts

    /// Runs `body` as one write; its events go to connected devices after the commit (on the
    /// committing thread, so in commit order with messages), then the caller resumes.
    private func commit<T: Sendable>(_ body: @escaping @Sendable (WriteTx) throws -> (T, [StoredEvent])) async throws -> T {
        let relay = self.relay
        return try await withCheckedThrowingContinuation { continuation in
            relay.store.submit(body) { result in
                switch result {
                case .success(let (value, events)):
                    relay.deliver(events)
                    continuation.resume(returning: value)
                case .failure(let error):
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// The group `chat` if `actor` is a member (an admin when `admin`): 404 for no such
    /// chat, 403 for a non-member or non-admin, 400 for a direct chat.
    static func group(_ tx: WriteTx, _ chat: TernID, actor: TernID, admin: Bool) throws -> ChatRecord {
        let (record, member) = try tx.membership(chat: chat, user: actor)
        guard record.kind == .group else { throw TernError.validation("this is a direct chat, not a group") }
        if admin && member.role != .admin { throw TernError(.notAdmin, "only group admins can do this") }
        return record
    }

    /// A user may be added when they exist and neither blocked the other.
    static func checkAddable(_ tx: WriteTx, _ user: TernID, by actor: TernID) throws {
        guard try tx.user(user) != nil else { throw TernError(.notFound, "user \(user) not found") }
        if try tx.eitherBlocked(actor, user) { throw TernError(.userBlocked, "user \(user) cannot be added by you") }
    }

    static func roleFields(_ w: inout JSONWriter, user: TernID, role: MemberRole, by actor: TernID, automatic: Bool) {
        w.member("user_id", user)
        w.member("role", role.name)
        w.member("new_role", role.name)
        w.member("changed_by", actor)
        w.member("automatic", automatic)
    }

    /// The group as every member sees it, without the member list: event frames are copied
    /// into every member device's mailbox, so a list in them would cost members² bytes
    /// (60 MB for one 1,024-member group). Clients read the list with
    /// `GET /api/v1/chats/:id/participants`.
    static func summary(_ w: inout JSONWriter, chat: TernID, record: ChatRecord) {
        w.member("chat_id", chat)
        w.member("type", record.kind.name)
        w.member("name", record.name)
        w.member("description", record.description)
        w.member("avatar_url", record.avatarURL)
        w.member("is_admin_only", record.adminOnly)
        w.member("created_by", record.createdBy)
        w.member("created_at", record.createdAt.rfc3339)
        w.member("member_count", Int64(record.memberCount))
    }

    /// The member list with roles (stored once, in the history's system message).
    static func participants(_ w: inout JSONWriter, _ tx: ReadTx, chat: TernID) throws {
        w.key("participants")
        w.beginArray()
        for member in try tx.members(of: chat) {
            w.beginObject()
            w.member("user_id", member.user)
            w.member("role", member.record.role.name)
            w.endObject()
        }
        w.endArray()
    }

    /// Appends the system message of `event` to the chat's history and copies the event's
    /// frame into the mailbox of every device of every user in `audience` (distinct users).
    ///
    /// The frame's data: `chat_id`, `message_id` (of the system message), `event`, the
    /// event's own fields, `created_at`, `timestamp`. The system message's payload: `event`,
    /// the same fields and `historyOnly`'s.
    static func record(
        _ tx: WriteTx, chat: TernID, actor: TernID, event: String, now: Timestamp, audience: [TernID],
        fields: (inout JSONWriter) throws -> Void, historyOnly: ((inout JSONWriter) throws -> Void)? = nil
    ) throws -> StoredEvent {
        var head = try tx.chatHead(chat) ?? ChatHead(lastSeq: 0, lastActivity: now)
        head.lastSeq += 1
        head.lastActivity = now
        try tx.putChatHead(chat, head)
        let id = MessageID(chat: chat, seq: head.lastSeq)
        var payload = JSONWriter(capacity: 256)
        payload.beginObject()
        payload.member("event", event)
        try fields(&payload)
        try historyOnly?(&payload)
        payload.endObject()
        try tx.putMessage(id, MessageRecord(
            sender: actor, senderDevice: 0, clientMsgID: "", kind: "system", payload: payload.bytes, createdAt: now,
            recipients: 0, flags: MessageRecord.systemFlag))
        var w = JSONWriter(capacity: 256 + payload.bytes.count)
        w.beginObject()
        w.member("chat_id", chat)
        w.member("message_id", id)
        w.member("event", event)
        try fields(&w)
        w.member("created_at", now.rfc3339)
        w.member("timestamp", now.milliseconds)
        w.endObject()
        let data = w.bytes
        let encoded = MailboxEntry(kind: .event, event: event, data: data, message: id, sender: actor, enqueuedAt: now).encoded()
        let deliveries = try tx.fanOut(encoded, to: audience)
        return StoredEvent(event: event, data: data, message: id, deliveries: deliveries)
    }
}

extension Relay {
    /// Hands stored group events to the connected devices among their recipients.
    func deliver(_ events: [StoredEvent]) {
        for event in events {
            for delivery in event.deliveries {
                registry.session(device: delivery.device)?.deliverStored(
                    seq: delivery.seq, kind: .event, event: event.event, data: event.data, message: event.message)
            }
        }
    }
}
