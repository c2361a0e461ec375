import Foundation
import Hummingbird
import Logging
import Testing
import TernCore
import TernTestSupport

/// A stand-in push gateway on 127.0.0.1 that records what it receives.
final class PushSink: @unchecked Sendable {
    private let lock = Mutex()
    private var received: [(authorization: String?, body: [String: Any])] = []
    var port = 0

    var pushes: [(authorization: String?, body: [String: Any])] { lock.withLock { received } }

    static func start() async throws -> (PushSink, Task<Void, any Error>) {
        let sink = PushSink()
        let router = Router()
        router.post("push") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 16)
            let json = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
            sink.lock.withLock { sink.received.append((request.headers[.authorization], json)) }
            return Response(status: .accepted)
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "push-sink")
        logger.logLevel = .error
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        for await p in ports {
            sink.port = p
            break
        }
        return (sink, task)
    }

    /// Waits (up to 10 s) until `count` pushes arrived.
    func wait(for count: Int) async throws {
        let deadline = Date().addingTimeInterval(10)
        while pushes.count < count && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
    }
}

@Suite("Push for offline devices, and the operator's resend")
struct PushTests {
    @Test("an offline device with a push token gets a push without content; online devices get none; the admin API resends")
    func pushes() async throws {
        let (sink, sinkTask) = try await PushSink.start()
        defer { sinkTask.cancel() }
        let s = try await InProcessServer.start { config in
            config.pushWebhookURL = "http://127.0.0.1:\(sink.port)/push"
            config.pushWebhookToken = "gateway-secret"
        }
        let c = s.client
        let users = try await c.users(2)
        let (a, b) = (users[0], users[1])
        let r = try await c.request(.POST, "/api/v1/users/devices", json: ["token": "fcm-token-of-b", "platform": "android"], token: b.accessToken)
        #expect(r.status == 200 || r.status == 201 || r.status == 204, "\(r.body)")
        let chat = try await c.directChat(a, b)

        // b offline: one push naming the message, never its text.
        let sent = try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "secret text"), token: a.accessToken)
        let id = try #require(sent.data["message_id"] as? String)
        try await sink.wait(for: 1)
        let push = try #require(sink.pushes.first)
        #expect(push.authorization == "Bearer gateway-secret")
        #expect((push.body["tokens"] as? [[String: Any]])?.first?["token"] as? String == "fcm-token-of-b")
        let data = push.body["data"] as? [String: Any] ?? [:]
        #expect(data["event"] as? String == "message.new" && data["message_id"] as? String == id && data["chat_id"] as? String == chat)
        #expect(!String(describing: push.body).contains("secret text"))

        // b online: no push.
        let ws = try await c.ws(b)
        _ = await ws.next(event: "mailbox.drained")
        _ = try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "live"), token: a.accessToken)
        _ = await ws.next(event: "message.new")
        try await Task.sleep(for: .milliseconds(200))
        #expect(sink.pushes.count == 1)
        await ws.close()

        // The operator resends: the device's tokens learn how many frames wait.
        let admin = TestClient(port: try #require(s.adminPort))
        let token = try String(contentsOfFile: s.dir.path + "/keys/admin.token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let device = try await s.server.store.read { tx in try tx.device(user: TernID(b.userID)!, clientID: b.deviceID)!.number }
        var resent = try await admin.request(.POST, "/admin/v1/devices/\(device)/push")
        #expect(resent.status == 401)
        resent = try await admin.request(.POST, "/admin/v1/devices/\(device)/push", token: token)
        #expect(resent.status == 200 && resent.data["tokens"] as? Int == 1, "\(resent.body)")
        try await sink.wait(for: 2)
        let pending = sink.pushes.last?.body["data"] as? [String: Any]
        #expect(pending?["event"] as? String == "mailbox.pending" && (pending?["pending"] as? Int ?? 0) >= 1)
        await admin.shutdown()
        await s.stop()
    }

    @Test("without a push webhook the resend is refused with 409 and nothing is sent")
    func pushOff() async throws {
        let s = try await InProcessServer.start()
        let a = try await s.client.login(testPhone())
        let admin = TestClient(port: try #require(s.adminPort))
        let token = try String(contentsOfFile: s.dir.path + "/keys/admin.token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let device = try await s.server.store.read { tx in try tx.device(user: TernID(a.userID)!, clientID: a.deviceID)!.number }
        let r = try await admin.request(.POST, "/admin/v1/devices/\(device)/push", token: token)
        #expect(r.status == 409 && (r.errorMessage ?? "").contains("push.webhook_url"))
        await admin.shutdown()
        await s.stop()
    }
}
