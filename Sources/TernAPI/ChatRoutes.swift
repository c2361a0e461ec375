import Hummingbird
import TernCore
import TernRelay
import TernStore
import TernWire

/// `/api/v1/chats`: create a direct chat or a group, list, get, mute, pin; group settings,
/// members and roles.
struct ChatRoutes {
    let deps: APIDependencies
    let chats: ChatService
    let groups: GroupService

    func register(on api: RouterGroup<TernRequestContext>) {
        api.post("chats") { request, context in try await create(request, context) }
        api.get("chats") { request, context in
            let limit = request.uri.queryParameters.get("limit").flatMap { Int($0) } ?? 20
            let cursor = request.uri.queryParameters.get("cursor").map { String($0) }
            return Envelope.ok(raw: try await chats.list(viewer: try context.caller().userID, limit: limit, cursor: cursor))
        }
        api.get("chats/:id") { _, context in
            Envelope.ok(raw: try await chats.chat(try chatID(context), viewer: try context.caller().userID))
        }
        api.put("chats/:id/mute") { request, context in try await mute(request, context) }
        api.patch("chats/:id/mute") { request, context in try await mute(request, context) }
        api.put("chats/:id/pin") { request, context in
            let body = try await json(request)
            guard let pinned = (body["pinned"] ?? body["is_pinned"])?.boolValue else { throw TernError.validation("pinned (true or false) is required") }
            try await chats.setPinned(chat: try chatID(context), user: try context.caller().userID, pinned: pinned)
            return Envelope.noContent()
        }
        api.patch("chats/:id") { request, context in
            let body = try await json(request)
            var changes = GroupChanges()
            changes.name = try optionalString(body, "name")
            changes.description = try optionalString(body, "description")
            changes.avatarURL = try optionalString(body, "avatar_url")
            if let raw = body["is_admin_only"], !raw.isNull {
                guard let flag = raw.boolValue else { throw TernError.validation("is_admin_only must be true or false") }
                changes.adminOnly = flag
            }
            try await groups.update(chat: try chatID(context), actor: try context.caller().userID, changes: changes)
            return Envelope.noContent()
        }
        api.get("chats/:id/participants") { _, context in
            Envelope.ok(raw: try await groups.members(chat: try chatID(context), viewer: try context.caller().userID))
        }
        api.post("chats/:id/participants") { request, context in
            let body = try await json(request)
            var users: [TernID] = []
            if let single = body["user_id"], !single.isNull {
                users = [try userID(single, field: "user_id")]
            } else if let list = body["user_ids"]?.arrayValue {
                users = try list.map { try userID($0, field: "user_ids") }
            } else {
                throw TernError.validation("user_id or user_ids is required")
            }
            try await groups.addMembers(chat: try chatID(context), actor: try context.caller().userID, users: users)
            return Envelope.noContent()
        }
        api.delete("chats/:id/participants/:userId") { _, context in
            try await groups.removeMember(chat: try chatID(context), actor: try context.caller().userID, target: try targetID(context))
            return Envelope.noContent()
        }
        api.patch("chats/:id/participants/:userId/role") { request, context in
            let body = try await json(request)
            let role: MemberRole
            switch body["role"]?.stringValue {
            case "admin": role = .admin
            case "member": role = .member
            default: throw TernError.validation("role must be \"admin\" or \"member\"")
            }
            try await groups.setRole(chat: try chatID(context), actor: try context.caller().userID, target: try targetID(context), role: role)
            return Envelope.noContent()
        }
    }

    /// `{"type":"group", "name", "description"?, "avatar_url"?, "participant_ids" | "member_ids" |
    /// "user_ids": [...]}` → 201 with the group as the creator sees it.
    private func createGroup(_ body: [String: JSON], _ context: TernRequestContext) async throws -> Response {
        guard let name = try optionalString(body, "name") else { throw TernError.validation("name is required for a group") }
        var members: [TernID] = []
        if let list = (body["participant_ids"] ?? body["member_ids"] ?? body["user_ids"]), !list.isNull {
            guard let items = list.arrayValue else { throw TernError.validation("participant_ids must be a list of user ids") }
            members = try items.map { try userID($0, field: "participant_ids") }
        }
        let data = try await groups.create(
            creator: try context.caller().userID, name: name, description: try optionalString(body, "description") ?? "",
            avatarURL: try optionalString(body, "avatar_url") ?? "", members: members)
        return Envelope.ok(raw: data, status: .created)
    }

    /// A string field, nil when absent or null, 400 when another type.
    private func optionalString(_ body: [String: JSON], _ key: String) throws -> String? {
        guard let raw = body[key], !raw.isNull else { return nil }
        guard let text = raw.stringValue else { throw TernError.validation("\(key) must be a string") }
        return text
    }

    private func userID(_ value: JSON, field: String) throws -> TernID {
        guard let text = value.stringValue, let id = TernID(text) else { throw TernError.validation("\(field) must be user ids (UUIDs)") }
        return id
    }

    private func targetID(_ context: TernRequestContext) throws -> TernID {
        guard let id = TernID(try context.parameters.require("userId")) else { throw TernError.validation("user id must be a UUID") }
        return id
    }

    /// A group (`type: "group"`, or no type and a non-empty `name`, as the seed decided), or a
    /// direct chat: `{other_user_id}` or `{participant_ids: [id]}` (with or without
    /// `type: "direct"`). Direct answers 201 for a new and for an existing chat (the seed).
    private func create(_ request: Request, _ context: TernRequestContext) async throws -> Response {
        let body = try await json(request)
        let type = body["type"]?.stringValue
        if type == "group" || (type == nil && body["name"]?.stringValue?.isEmpty == false) {
            return try await createGroup(body, context)
        }
        if let type, type != "direct" { throw TernError.validation("type must be direct or group") }
        var other: String?
        if let id = body["other_user_id"]?.stringValue {
            other = id
        } else if let list = (body["participant_ids"] ?? body["member_ids"] ?? body["user_ids"])?.arrayValue {
            let ids = list.compactMap(\.stringValue)
            guard ids.count == list.count else { throw TernError.validation("participant_ids must be user ids") }
            let caller = try context.caller().userID.description
            let others = Set(ids.map { $0.lowercased() }).subtracting([caller])
            guard others.count == 1 else { throw TernError.validation("a direct chat has exactly one other participant") }
            other = others.first
        }
        guard let other else { throw TernError.validation("other_user_id is required") }
        guard let otherID = TernID(other) else { throw TernError.validation("other_user_id must be a UUID") }
        let (data, _) = try await chats.createDirect(user: try context.caller().userID, other: otherID)
        return Envelope.ok(raw: data, status: .created)
    }

    private func mute(_ request: Request, _ context: TernRequestContext) async throws -> Response {
        let body = try await json(request)
        guard let muted = (body["muted"] ?? body["is_muted"])?.boolValue else { throw TernError.validation("muted (true or false) is required") }
        var until: Timestamp?
        if let raw = body["mute_until"], !raw.isNull {
            guard let text = raw.stringValue, let time = Timestamp(rfc3339: text) else {
                throw TernError.validation("mute_until must be an RFC 3339 time")
            }
            until = time
        }
        try await chats.setMuted(chat: try chatID(context), user: try context.caller().userID, muted: muted, until: until)
        return Envelope.noContent()
    }

    private func json(_ request: Request) async throws -> [String: JSON] {
        try await BodyDecoding.object(from: request, limit: deps.maxBodySize)
    }
}

/// The `:id` path parameter as a chat id (400 if it is not a UUID).
func chatID(_ context: TernRequestContext) throws -> TernID {
    let raw = try context.parameters.require("id")
    guard let id = TernID(raw) else { throw TernError.validation("chat id must be a UUID") }
    return id
}
