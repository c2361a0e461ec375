import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Testing
import TernCore
import TernTestSupport

/// A stand-in SMS gateway on 127.0.0.1 that records what it receives.
final class SMSSink: @unchecked Sendable {
    private let lock = Mutex()
    private var received: [(authorization: String?, body: [String: Any])] = []
    private var failNext = false
    let port: Int

    var messages: [(authorization: String?, body: [String: Any])] { lock.withLock { received } }

    func failNextRequest() { lock.withLock { failNext = true } }

    private init(port: Int) { self.port = port }

    static func start() async throws -> (SMSSink, Task<Void, any Error>) {
        let box = SinkBox()
        let router = Router()
        router.post("sms") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 16)
            let json = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
            let fail = box.sink!.record(authorization: request.headers[.authorization], body: json)
            return Response(status: fail ? .internalServerError : .accepted)
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "sms-sink")
        logger.logLevel = .error
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var port = 0
        for await p in ports {
            port = p
            break
        }
        let sink = SMSSink(port: port)
        box.sink = sink
        return (sink, task)
    }

    fileprivate func record(authorization: String?, body: [String: Any]) -> Bool {
        lock.withLock {
            received.append((authorization, body))
            defer { failNext = false }
            return failNext
        }
    }
}

private final class SinkBox: @unchecked Sendable {
    var sink: SMSSink?
}

@Suite("Login codes through the webhook sender")
struct WebhookSenderTests {
    @Test("the code reaches the gateway as JSON with the bearer token; a gateway failure is a 502")
    func webhook() async throws {
        let (sink, sinkTask) = try await SMSSink.start()
        let s = try await InProcessServer.start { config in
            config.devMode = false
            config.otpEcho = false
            config.otpSender = "webhook"
            config.webhookURL = "http://127.0.0.1:\(sink.port)/sms"
            config.webhookToken = "gateway-secret"
        }
        let phone = testPhone()
        let sent = try await s.client.request(.POST, "/api/v1/auth/request-otp", json: ["phone": phone])
        #expect(sent.status == 200)
        #expect(sent.data["otp"] == nil, "no echo outside test mode")
        let message = try #require(sink.messages.last)
        #expect(message.authorization == "Bearer gateway-secret")
        #expect(message.body["phone"] as? String == phone)
        #expect(message.body["expires_in_seconds"] as? Int == 300)
        let code = try #require(message.body["code"] as? String)
        #expect((message.body["message"] as? String)?.contains(code) == true)
        let verified = try await s.client.request(.POST, "/api/v1/auth/verify-otp", json: ["phone": phone, "code": code])
        #expect(verified.status == 200)

        sink.failNextRequest()
        let failed = try await s.client.request(.POST, "/api/v1/auth/request-otp", json: ["phone": testPhone()])
        #expect(failed.status == 502)
        #expect(failed.errorCode == "OTP_DELIVERY_FAILED")
        await s.stop()
        sinkTask.cancel()
        _ = try? await sinkTask.value
    }
}
