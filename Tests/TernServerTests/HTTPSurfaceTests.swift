import AsyncHTTPClient
import Foundation
import NIOHTTP1
import Testing
import TernTestSupport

@Suite("HTTP surface: envelope, errors, limits, health")
struct HTTPSurfaceTests {
    @Test("health and ready keep the seed's shapes inside the envelope")
    func health() async throws {
        let s = try await InProcessServer.start()
        let health = try await s.client.request(.GET, "/health")
        #expect(health.status == 200)
        #expect(health.json?["status"] as? String == "alive")
        #expect(health.success == true)
        let ready = try await s.client.request(.GET, "/ready")
        #expect(ready.status == 200)
        #expect((ready.json?["status"] as? [String: String])?["store"] == "ok")
        await s.stop()
    }

    @Test("unknown routes are 404 and wrong methods 405, both in the envelope, with request ids")
    func notFoundAndMethod() async throws {
        let s = try await InProcessServer.start()
        let missing = try await s.client.request(.GET, "/api/v1/nothing-here")
        #expect(missing.status == 404)
        #expect(missing.success == false)
        #expect(missing.errorCode == "NOT_FOUND")
        let requestID = try #require(missing.headers.first(name: "X-Request-ID"))
        #expect((missing.json?["error"] as? [String: Any])?["request_id"] as? String == requestID)

        let wrong = try await s.client.request(.DELETE, "/api/v1/auth/request-otp")
        #expect(wrong.status == 405)
        #expect(wrong.errorCode == "METHOD_NOT_ALLOWED")
        #expect(wrong.headers.first(name: "Allow") == "POST")

        let echoed = try await s.client.request(.GET, "/health", headers: [("X-Request-ID", "client-abc.1")])
        #expect(echoed.headers.first(name: "X-Request-ID") == "client-abc.1")
        let replaced = try await s.client.request(.GET, "/health", headers: [("X-Request-ID", "bad id with spaces")])
        #expect(replaced.headers.first(name: "X-Request-ID") != "bad id with spaces")
        await s.stop()
    }

    @Test("bad bodies are 400/413 with a message naming the problem, never 500")
    func badBodies() async throws {
        let s = try await InProcessServer.start { $0.maxBodySize = 4096 }
        let notJSON = try await s.client.request(.POST, "/api/v1/auth/request-otp", raw: "{phone:")
        #expect(notJSON.status == 400)
        #expect(notJSON.errorCode == "BAD_REQUEST")
        let empty = try await s.client.request(.POST, "/api/v1/auth/request-otp", raw: "")
        #expect(empty.status == 400)
        let wrongType = try await s.client.request(.POST, "/api/v1/auth/request-otp", json: ["phone": 5])
        #expect(wrongType.status == 400)
        #expect(wrongType.errorMessage?.contains("phone") == true)
        let array = try await s.client.request(.POST, "/api/v1/auth/request-otp", raw: "[1,2]")
        #expect(array.status == 400)
        let big = try await s.client.request(.POST, "/api/v1/auth/request-otp", json: ["phone": String(repeating: "1", count: 10_000)])
        #expect(big.status == 413)
        #expect(big.errorCode == "PAYLOAD_TOO_LARGE")
        let invalidUTF8 = try await s.client.request(
            .POST, "/api/v1/auth/request-otp", bytes: Array("{\"phone\":\"".utf8) + [0xC3, 0x28] + Array("\"}".utf8))
        #expect(invalidUTF8.status == 400)
        // The server is fine afterwards.
        #expect(try await s.client.request(.GET, "/health").status == 200)
        await s.stop()
    }

    @Test("per-IP and per-user rate limits answer 429 with Retry-After")
    func rateLimits() async throws {
        let s = try await InProcessServer.start { config in
            config.devMode = false
            config.otpEcho = true
            config.ipRateLimit = .per(.seconds(3600), 8)  // refills one per 450 s: none during the test
            config.userRateLimit = .per(.seconds(3600), 3)
        }
        let session = try await s.client.login(testPhone())  // 2 requests
        var statuses: [Int] = []
        for _ in 0..<4 {
            statuses.append(try await s.client.request(.GET, "/api/v1/users/me", token: session.accessToken).status)
        }
        #expect(statuses == [200, 200, 200, 429], "per-user: \(statuses)")
        let limited = try await s.client.request(.GET, "/api/v1/users/me", token: session.accessToken)
        #expect(limited.status == 429)
        #expect(limited.errorCode == "TOO_MANY_REQUESTS")
        #expect(Int(limited.headers.first(name: "Retry-After") ?? "") ?? 0 >= 1)
        // Keep going until the IP bucket (8) is empty too; health stays exempt.
        var last = 0
        for _ in 0..<4 { last = try await s.client.request(.POST, "/api/v1/auth/refresh", json: ["refresh_token": "x"]).status }
        #expect(last == 429)
        #expect(try await s.client.request(.GET, "/health").status == 200)
        await s.stop()
    }
}
