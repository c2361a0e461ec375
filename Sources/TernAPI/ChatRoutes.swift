import Hummingbird
import TernCore
import TernRelay
import TernWire

/// `/api/v1/chats`: create a direct chat, list, get, mute, pin.
struct ChatRoutes {
    let deps: APIDependencies
    let chats: ChatService

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
    }

    /// Direct chats only for now: `{other_user_id}` or `{participant_ids: [id]}` (with or
    /// without `type: "direct"`). Answers 201 for a new and for an existing chat (the seed).
    private func create(_ request: Request, _ context: TernRequestContext) async throws -> Response {
        let body = try await json(request)
        let type = body["type"]?.stringValue
        if type == "group" || (type == nil && body["name"]?.stringValue?.isEmpty == false) {
            throw TernError.validation("group chats are not available yet")
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
