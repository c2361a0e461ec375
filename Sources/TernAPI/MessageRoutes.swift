import Hummingbird
import TernAuth
import TernCore
import TernRelay
import TernStore
import TernWire

/// `/api/v1/messages` and the `/api/v1/chats/:id/messages` aliases: send, history, mark
/// read, receipts.
struct MessageRoutes {
    let deps: APIDependencies
    let chats: ChatService

    func register(on api: RouterGroup<TernRequestContext>) {
        api.post("messages") { request, context in try await send(request, context, chat: nil) }
        api.post("chats/:id/messages") { request, context in try await send(request, context, chat: try chatID(context)) }

        api.get("messages") { request, context in
            guard let raw = request.uri.queryParameters.get("chat_id") else { throw TernError.validation("chat_id is required") }
            guard let chat = TernID(raw) else { throw TernError.validation("chat_id must be a UUID") }
            return try await history(request, context, chat: chat)
        }
        api.get("chats/:id/messages") { request, context in try await history(request, context, chat: try chatID(context)) }

        api.post("messages/read") { request, context in try await read(request, context, chat: nil) }
        api.post("chats/:id/messages/read") { request, context in try await read(request, context, chat: try chatID(context)) }

        api.get("messages/:mid/receipts") { _, context in try await receipts(context) }
        api.get("chats/:id/messages/:mid/receipts") { _, context in try await receipts(context) }
    }

    /// 201 with the message; a re-send with the same client_msg_id returns the original.
    private func send(_ request: Request, _ context: TernRequestContext, chat: TernID?) async throws -> Response {
        let claims = try context.caller()
        let body = try await BodyDecoding.object(from: request, limit: deps.maxBodySize)
        let command = try SendCommand.parse(body, chatOverride: chat)
        let identity = DeviceIdentity(user: claims.userID, deviceNumber: claims.deviceNumber, deviceID: claims.deviceID, session: claims.sessionID)
        let outcome = try await deps.relay.send(command, from: identity)
        return Envelope.ok(raw: ChatService.messageJSON(id: outcome.id, record: outcome.record, viewer: claims.userID), status: .created)
    }

    private func history(_ request: Request, _ context: TernRequestContext, chat: TernID) async throws -> Response {
        let limit = request.uri.queryParameters.get("limit").flatMap { Int($0) } ?? ChatService.pageDefault
        let cursor = request.uri.queryParameters.get("cursor").map { String($0) }
        return Envelope.ok(raw: try await chats.history(chat: chat, viewer: try context.caller().userID, limit: limit, cursor: cursor))
    }

    /// Marks the chat read up to `up_to_message_id` (or `message_id`), or to the newest
    /// message when neither is given. 204.
    private func read(_ request: Request, _ context: TernRequestContext, chat: TernID?) async throws -> Response {
        let user = try context.caller().userID
        let body = try await BodyDecoding.object(from: request, limit: deps.maxBodySize)
        var chatID = chat
        if chatID == nil {
            guard let raw = body["chat_id"]?.stringValue else { throw TernError.validation("chat_id is required") }
            guard let id = TernID(raw) else { throw TernError.validation("chat_id must be a UUID") }
            chatID = id
        }
        let chat = chatID!
        var upTo: UInt64
        if let raw = (body["up_to_message_id"] ?? body["message_id"])?.stringValue {
            guard let id = MessageID(raw), id.chat == chat else { throw TernError.validation("up_to_message_id is not a message of this chat") }
            upTo = id.seq
        } else {
            upTo = try await chats.lastSeq(chat: chat)
        }
        try await deps.relay.markRead(user: user, chat: chat, upTo: upTo)
        return Envelope.noContent()
    }

    private func receipts(_ context: TernRequestContext) async throws -> Response {
        let raw = try context.parameters.require("mid")
        guard let id = MessageID(raw) else { throw TernError.validation("message id is not a message id") }
        return Envelope.ok(raw: try await chats.receipts(of: id, viewer: try context.caller().userID))
    }
}
