import AsyncHTTPClient
import Foundation
import NIOHTTP1
import Testing
import TernTestSupport

@Suite("Auth routes over HTTP")
struct AuthRoutesTests {
    @Test("request-otp and verify-otp: shapes and every status code")
    func otpFlow() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let phone = testPhone()

        let sent = try await c.request(.POST, "/api/v1/auth/request-otp", json: ["phone": phone])
        #expect(sent.status == 200)
        #expect(sent.data["expires_in_seconds"] as? Int == 300)
        #expect((sent.data["message"] as? String)?.isEmpty == false)
        let code = try #require(sent.data["otp"] as? String)
        #expect(code.count == 6)

        #expect(try await c.request(.POST, "/api/v1/auth/request-otp", json: ["phone": "555-1234"]).errorCode == "VALIDATION_ERROR")
        #expect(try await c.request(.POST, "/api/v1/auth/request-otp", json: [String: String]()).status == 400)
        #expect(try await c.request(.POST, "/api/v1/auth/verify-otp", json: ["phone": phone]).errorCode == "BAD_REQUEST")
        let unknown = try await c.request(.POST, "/api/v1/auth/verify-otp", json: ["phone": testPhone(), "code": "123456"])
        #expect(unknown.status == 400)
        #expect(unknown.errorCode == "OTP_EXPIRED")
        let wrong = code == "000000" ? "111111" : "000000"
        let bad = try await c.request(.POST, "/api/v1/auth/verify-otp", json: ["phone": phone, "code": wrong])
        #expect(bad.status == 400)
        #expect(bad.errorCode == "OTP_INVALID")

        // The seed's `otp` field name works too, and device details are returned.
        let ok = try await c.request(
            .POST, "/api/v1/auth/verify-otp",
            json: ["phone": phone, "otp": code, "device_id": "android-1", "device_name": "Pixel", "platform": "android"])
        #expect(ok.status == 200)
        #expect(ok.data["device_id"] as? String == "android-1")
        #expect(ok.data["expires_in"] as? Int == 900, "expires_in is the access token's lifetime")
        #expect(ok.data["is_new_user"] as? Bool == true)
        let user = try #require(ok.data["user"] as? [String: Any])
        #expect(user["phone"] as? String == phone)
        #expect((ok.data["access_token"] as? String)?.hasPrefix("v4.public.") == true)
        await s.stop()
    }

    @Test("five wrong codes: 429 OTP_MAX_ATTEMPTS, also for the right code and for a new request")
    func lockout() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let phone = testPhone()
        let code = try #require(try await c.request(.POST, "/api/v1/auth/request-otp", json: ["phone": phone]).data["otp"] as? String)
        let wrong = code == "000000" ? "111111" : "000000"
        for _ in 0..<5 {
            #expect(try await c.request(.POST, "/api/v1/auth/verify-otp", json: ["phone": phone, "code": wrong]).status == 400)
        }
        let locked = try await c.request(.POST, "/api/v1/auth/verify-otp", json: ["phone": phone, "code": code])
        #expect(locked.status == 429)
        #expect(locked.errorCode == "OTP_MAX_ATTEMPTS")
        #expect(locked.headers.first(name: "Retry-After") != nil)
        let again = try await c.request(.POST, "/api/v1/auth/request-otp", json: ["phone": phone])
        #expect(again.status == 429)
        #expect(again.errorCode == "OTP_MAX_ATTEMPTS")
        await s.stop()
    }

    @Test("per-phone send limit without dev mode")
    func sendLimit() async throws {
        let s = try await InProcessServer.start { $0.devMode = false; $0.otpEcho = true }
        let phone = testPhone()
        for _ in 0..<3 {
            #expect(try await s.client.request(.POST, "/api/v1/auth/request-otp", json: ["phone": phone]).status == 200)
        }
        let limited = try await s.client.request(.POST, "/api/v1/auth/request-otp", json: ["phone": phone])
        #expect(limited.status == 429)
        #expect(limited.errorCode == "TOO_MANY_REQUESTS")
        #expect(Int(limited.headers.first(name: "Retry-After") ?? "") ?? 0 > 0)
        await s.stop()
    }

    @Test("codes are echoed only in test mode")
    func noEchoByDefault() async throws {
        let s = try await InProcessServer.start { $0.devMode = false; $0.otpEcho = false }
        let sent = try await s.client.request(.POST, "/api/v1/auth/request-otp", json: ["phone": testPhone()])
        #expect(sent.status == 200)
        #expect(sent.data["otp"] == nil)
        #expect(!sent.body.contains("\"otp\""))
        await s.stop()
    }

    @Test("refresh rotates, reuse revokes the session (401), logout works with or without a bearer")
    func refreshAndLogout() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let session = try await c.login(testPhone())
        let refreshed = try await c.request(.POST, "/api/v1/auth/refresh", json: ["refresh_token": session.refreshToken])
        #expect(refreshed.status == 200)
        let newRefresh = try #require(refreshed.data["refresh_token"] as? String)
        let newAccess = try #require(refreshed.data["access_token"] as? String)
        #expect(refreshed.data["expires_in"] as? Int == 900)
        // The seed's alias.
        let viaAlias = try await c.request(.POST, "/api/v1/auth/token/refresh", json: ["refresh_token": newRefresh])
        #expect(viaAlias.status == 200)
        let latestAccess = try #require(viaAlias.data["access_token"] as? String)
        // Reuse of a rotated token: 401 and the whole session is gone.
        let reused = try await c.request(.POST, "/api/v1/auth/refresh", json: ["refresh_token": session.refreshToken])
        #expect(reused.status == 401)
        #expect(reused.errorCode == "TOKEN_REUSED")
        #expect(try await c.request(.GET, "/api/v1/users/me", token: latestAccess).errorCode == "SESSION_REVOKED")
        #expect(try await c.request(.GET, "/api/v1/users/me", token: newAccess).status == 401)
        #expect(try await c.request(.POST, "/api/v1/auth/refresh", json: ["refresh_token": "nonsense"]).status == 401)
        #expect(try await c.request(.POST, "/api/v1/auth/refresh", json: [String: String]()).status == 400)

        // Logout by refresh token, without a bearer header (the seed's contract).
        let second = try await c.login(testPhone())
        let out = try await c.request(.POST, "/api/v1/auth/logout", json: ["refresh_token": second.refreshToken])
        #expect(out.status == 200)
        #expect(try await c.request(.GET, "/api/v1/users/me", token: second.accessToken).errorCode == "SESSION_REVOKED")
        #expect(try await c.request(.POST, "/api/v1/auth/refresh", json: ["refresh_token": second.refreshToken]).status == 401)
        // Logout with only a bearer (the Android app sends no body).
        let third = try await c.login(testPhone())
        #expect(try await c.request(.POST, "/api/v1/auth/logout", token: third.accessToken).status == 200)
        #expect(try await c.request(.GET, "/api/v1/users/me", token: third.accessToken).status == 401)
        // Unknown tokens are fine (idempotent); nothing at all is a 400.
        #expect(try await c.request(.POST, "/api/v1/auth/logout", json: ["refresh_token": "unknown"]).status == 200)
        #expect(try await c.request(.POST, "/api/v1/auth/logout").status == 400)
        await s.stop()
    }

    @Test("protected routes: missing, malformed and foreign tokens are 401")
    func unauthorized() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let none = try await c.request(.GET, "/api/v1/users/me")
        #expect(none.status == 401)
        #expect(none.errorCode == "UNAUTHORIZED")
        #expect(try await c.request(.GET, "/api/v1/users/me", token: "garbage").errorCode == "TOKEN_INVALID")
        #expect(try await c.request(.GET, "/api/v1/users/me", headers: [("Authorization", "Basic abc")]).status == 401)
        let session = try await c.login(testPhone())
        var forged = Array(session.accessToken)
        forged[20] = forged[20] == "A" ? "B" : "A"
        #expect(try await c.request(.GET, "/api/v1/users/me", token: String(forged)).status == 401)
        #expect(try await c.request(.GET, "/api/v1/users/me", token: session.accessToken).status == 200)
        await s.stop()
    }

    @Test("the seed's route aliases: otp/send and otp/verify")
    func aliases() async throws {
        let s = try await InProcessServer.start()
        let phone = testPhone()
        let sent = try await s.client.request(.POST, "/api/v1/auth/otp/send", json: ["phone": phone])
        let code = try #require(sent.data["otp"] as? String)
        let ok = try await s.client.request(.POST, "/api/v1/auth/otp/verify", json: ["phone": phone, "code": code])
        #expect(ok.status == 200)
        await s.stop()
    }
}
