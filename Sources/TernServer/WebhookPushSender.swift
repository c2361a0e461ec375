import AsyncHTTPClient
import Foundation
import NIOCore
import TernRelay

/// Sends pushes as JSON to a webhook (a gateway that speaks FCM/APNs):
///
///     POST <push.webhook_url>
///     Authorization: Bearer <push.webhook_token>
///     {"tokens": [{"token": "…", "platform": "android"}],
///      "data": {"event": "message.new", "chat_id": "…", "message_id": "…", "sender_id": "…"}}
///
/// No message content is pushed. A non-2xx answer is an error (logged by the caller).
struct WebhookPushSender: PushSender {
    let url: String
    let bearer: String
    let client: HTTPClient

    func send(_ push: PushRequest) async throws {
        var data: [String: Any] = ["event": push.event]
        if let chat = push.chat { data["chat_id"] = chat.description }
        if let message = push.message { data["message_id"] = message.description }
        if let sender = push.sender { data["sender_id"] = sender.description }
        if let pending = push.pending { data["pending"] = pending }
        let body: [String: Any] = ["tokens": push.tokens.map { ["token": $0.token, "platform": $0.platform] }, "data": data]
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if !bearer.isEmpty { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])))
        let response = try await client.execute(request, timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 64 << 10)
        guard (200..<300).contains(Int(response.status.code)) else {
            throw PushError(status: Int(response.status.code))
        }
    }
}

struct PushError: Error, CustomStringConvertible {
    var status: Int
    var description: String { "push webhook answered HTTP \(status)" }
}
