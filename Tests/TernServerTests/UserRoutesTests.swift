import AsyncHTTPClient
import Foundation
import NIOHTTP1
import Testing
import TernTestSupport

@Suite("Users routes over HTTP")
struct UserRoutesTests {
    @Test("me: get, put, patch, and every validation error is a 400")
    func me() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let me = try await c.request(.GET, "/api/v1/users/me", token: a.accessToken)
        #expect(me.status == 200)
        for field in ["id", "phone", "created_at", "display_name", "status_text", "avatar_url", "updated_at"] {
            #expect(me.data[field] != nil, "users/me lacks \(field)")
        }
        #expect(me.data["status_text"] as? String == "Hey there! I am using WhatsApp.")

        let put = try await c.request(.PUT, "/api/v1/users/me", json: ["display_name": "Ana", "status_text": "busy"], token: a.accessToken)
        #expect(put.status == 200)
        #expect(put.data["display_name"] as? String == "Ana")
        let patch = try await c.request(.PATCH, "/api/v1/users/me", json: ["avatar_url": "https://cdn.example/a.jpg"], token: a.accessToken)
        #expect(patch.data["avatar_url"] as? String == "https://cdn.example/a.jpg")
        #expect(patch.data["display_name"] as? String == "Ana", "patch keeps other fields")

        let invalid: [[String: Any]] = [
            [:],
            ["display_name": String(repeating: "x", count: 101)],
            ["display_name": "bad\u{7}name"],
            ["status_text": String(repeating: "y", count: 501)],
            ["avatar_url": "javascript:alert(1)"],
            ["avatar_url": "https://x/" + String(repeating: "a", count: 1100)],
            ["display_name": 12],
            ["display_name": NSNull()],
        ]
        for body in invalid {
            let r = try await c.request(.PATCH, "/api/v1/users/me", json: body, token: a.accessToken)
            #expect(r.status == 400, "\(body) → \(r.status) \(r.body)")
            #expect(["VALIDATION_ERROR", "BAD_REQUEST"].contains(r.errorCode ?? ""))
        }
        // 100 characters of emoji is fine (characters, not bytes).
        let emoji = try await c.request(.PATCH, "/api/v1/users/me", json: ["display_name": String(repeating: "👋", count: 100)], token: a.accessToken)
        #expect(emoji.status == 200)
        await s.stop()
    }

    @Test("another user's profile follows their privacy settings; phone only for contacts; 403 when blocked")
    func profiles() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let b = try await c.login(testPhone())
        _ = try await c.request(.PATCH, "/api/v1/users/me", json: ["display_name": "Bea", "avatar_url": "https://cdn/b.jpg", "status_text": "hi"], token: b.accessToken)

        var view = try await c.request(.GET, "/api/v1/users/\(b.userID)", token: a.accessToken)
        #expect(view.status == 200)
        #expect(view.data["display_name"] as? String == "Bea")
        #expect(view.data["avatar_url"] as? String == "https://cdn/b.jpg")
        #expect(view.data["status_text"] as? String == "hi")
        #expect(view.data["phone"] == nil, "a stranger does not see the phone number")

        // B hides the photo from everyone and the about text from non-contacts.
        #expect(try await c.request(.PUT, "/api/v1/users/privacy", json: ["profile_photo": "nobody", "about": "contacts"], token: b.accessToken).status == 204)
        view = try await c.request(.GET, "/api/v1/users/\(b.userID)", token: a.accessToken)
        #expect(view.data["avatar_url"] == nil)
        #expect(view.data["status_text"] == nil)
        // Once B has A as a contact, A sees the about text and the phone.
        let sync = try await c.request(.POST, "/api/v1/users/contacts/sync", json: ["phones": [a.phone]], token: b.accessToken)
        #expect(sync.status == 200)
        view = try await c.request(.GET, "/api/v1/users/\(b.userID)", token: a.accessToken)
        #expect(view.data["status_text"] as? String == "hi")
        #expect(view.data["avatar_url"] == nil)
        #expect(view.data["phone"] as? String == b.phone)

        // Blocking: B blocks A → A gets 403 for B's profile; B still sees A.
        #expect(try await c.request(.POST, "/api/v1/users/contacts/\(a.userID)/block", token: b.accessToken).status == 204)
        let blocked = try await c.request(.GET, "/api/v1/users/\(b.userID)", token: a.accessToken)
        #expect(blocked.status == 403)
        #expect(blocked.errorCode == "FORBIDDEN")
        #expect(try await c.request(.GET, "/api/v1/users/\(a.userID)", token: b.accessToken).status == 200)
        // The seed's alias unblocks.
        #expect(try await c.request(.DELETE, "/api/v1/users/\(a.userID)/block", token: b.accessToken).status == 204)
        #expect(try await c.request(.GET, "/api/v1/users/\(b.userID)", token: a.accessToken).status == 200)

        #expect(try await c.request(.GET, "/api/v1/users/not-a-uuid", token: a.accessToken).status == 400)
        #expect(try await c.request(.GET, "/api/v1/users/\(UUID().uuidString.lowercased())", token: a.accessToken).status == 404)
        #expect(try await c.request(.POST, "/api/v1/users/contacts/\(a.userID)/block", token: a.accessToken).status == 400)
        #expect(try await c.request(.POST, "/api/v1/users/contacts/\(UUID().uuidString)/block", token: a.accessToken).status == 404)
        await s.stop()
    }

    @Test("presence: last seen obeys the last_seen setting and blocking")
    func presence() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let b = try await c.login(testPhone())
        var p = try await c.request(.GET, "/api/v1/users/\(b.userID)/presence", token: a.accessToken)
        #expect(p.status == 200)
        #expect(p.data["online"] as? Bool == false)
        #expect(p.data["last_seen"] is String)
        _ = try await c.request(.PUT, "/api/v1/users/privacy", json: ["last_seen": "nobody"], token: b.accessToken)
        p = try await c.request(.GET, "/api/v1/users/\(b.userID)/presence", token: a.accessToken)
        #expect(p.data["last_seen"] == nil)
        _ = try await c.request(.PUT, "/api/v1/users/privacy", json: ["last_seen": "everyone"], token: b.accessToken)
        _ = try await c.request(.POST, "/api/v1/users/contacts/\(a.userID)/block", token: b.accessToken)
        p = try await c.request(.GET, "/api/v1/users/\(b.userID)/presence", token: a.accessToken)
        #expect(p.data["last_seen"] == nil, "a blocked user sees no last seen")
        await s.stop()
    }

    @Test("privacy: defaults, partial updates, enum validation")
    func privacy() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let initial = try await c.request(.GET, "/api/v1/users/privacy", token: a.accessToken)
        #expect(initial.data["last_seen"] as? String == "everyone")
        #expect(initial.data["profile_photo"] as? String == "everyone")
        #expect(initial.data["about"] as? String == "everyone")
        #expect(initial.data["read_receipts"] as? Bool == true)
        #expect(try await c.request(.PUT, "/api/v1/users/privacy", json: ["read_receipts": false], token: a.accessToken).status == 204)
        let patched = try await c.request(.PATCH, "/api/v1/users/privacy", json: ["about": "nobody"], token: a.accessToken)
        #expect(patched.status == 200)
        #expect(patched.data["about"] as? String == "nobody")
        #expect(patched.data["read_receipts"] as? Bool == false, "earlier change kept")
        #expect(patched.data["last_seen"] as? String == "everyone")
        for body: [String: Any] in [["last_seen": "friends"], ["read_receipts": "no"], [:], ["about": 3]] {
            let r = try await c.request(.PUT, "/api/v1/users/privacy", json: body, token: a.accessToken)
            #expect(r.status == 400, "\(body)")
        }
        #expect(try await c.request(.GET, "/api/v1/users/me/privacy", token: a.accessToken).data["about"] as? String == "nobody")
        await s.stop()
    }

    @Test("contact sync finds registered users, reports junk, enforces the 1000 limit; contacts list")
    func contacts() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let b = try await c.login(testPhone())
        let unregistered = testPhone()
        let formatted = "+1 (" + b.phone.dropFirst(2).prefix(3) + ") " + b.phone.dropFirst(5)
        let sync = try await c.request(
            .POST, "/api/v1/users/contacts/sync", json: ["phone_numbers": [formatted, unregistered, "hello", a.phone]], token: a.accessToken)
        #expect(sync.status == 200)
        let found = try #require(sync.data["registered_users"] as? [[String: Any]])
        #expect(found.count == 1)
        #expect(found.first?["user_id"] as? String == b.userID)
        #expect(found.first?["phone"] as? String == b.phone)
        #expect(sync.data["invalid_phones"] as? [String] == ["hello"])

        let none = try await c.request(.POST, "/api/v1/users/contacts/sync", json: ["phones": [unregistered]], token: a.accessToken)
        #expect((none.data["registered_users"] as? [Any])?.isEmpty == true, "an empty list, not null")
        #expect(try await c.request(.POST, "/api/v1/users/contacts/sync", json: ["phones": [String]()], token: a.accessToken).status == 400)
        #expect(try await c.request(.POST, "/api/v1/users/contacts/sync", json: [String: String](), token: a.accessToken).status == 400)
        let tooMany = (0..<1001).map { "+1555\(1_000_000 + $0)" }
        #expect(try await c.request(.POST, "/api/v1/users/contacts/sync", json: ["phones": tooMany], token: a.accessToken).status == 400)

        let outsider = try await c.login(testPhone())
        _ = try await c.request(.POST, "/api/v1/users/contacts/\(outsider.userID)/block", token: a.accessToken)
        let list = try await c.request(.GET, "/api/v1/users/contacts", token: a.accessToken)
        #expect(list.status == 200)
        let entries = list.dataArray
        #expect(entries.count == 2)
        let bEntry = try #require(entries.first { $0["contact_id"] as? String == b.userID })
        #expect(bEntry["is_blocked"] as? Bool == false)
        #expect(bEntry["phone"] as? String == b.phone)
        let oEntry = try #require(entries.first { $0["contact_id"] as? String == outsider.userID })
        #expect(oEntry["is_blocked"] as? Bool == true)
        #expect(oEntry["is_contact"] as? Bool == false)
        await s.stop()
    }

    @Test("push tokens: register (201), validate, move between users, delete (204/404), removed at logout")
    func pushTokens() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone(), deviceID: "a-phone")
        let registered = try await c.request(.POST, "/api/v1/users/devices", json: ["token": "fcm-token-1", "platform": "android"], token: a.accessToken)
        #expect(registered.status == 201)
        #expect(registered.data["token"] as? String == "fcm-token-1")
        #expect(registered.data["device_id"] as? String == "a-phone")
        #expect(registered.data["user_id"] as? String == a.userID)
        #expect(try await c.request(.POST, "/api/v1/users/devices", json: ["token": "t", "platform": "symbian"], token: a.accessToken).status == 400)
        #expect(try await c.request(.POST, "/api/v1/users/devices", json: ["platform": "ios"], token: a.accessToken).status == 400)
        #expect(try await c.request(.POST, "/api/v1/users/devices", json: ["token": String(repeating: "t", count: 600), "platform": "ios"], token: a.accessToken).status == 400)
        // The seed's alias and the `fcm_token` spelling.
        #expect(try await c.request(.POST, "/api/v1/notifications/devices", json: ["fcm_token": "fcm-token-2", "platform": "web"], token: a.accessToken).status == 201)

        let b = try await c.login(testPhone())
        #expect(try await c.request(.DELETE, "/api/v1/users/devices/fcm-token-1", token: b.accessToken).status == 404, "not B's token")
        #expect(try await c.request(.DELETE, "/api/v1/users/devices/fcm-token-1", token: a.accessToken).status == 204)
        #expect(try await c.request(.DELETE, "/api/v1/users/devices/fcm-token-1", token: a.accessToken).status == 404)

        // Logging out removes that device's push tokens: re-registering by B then works and
        // A can no longer delete it.
        #expect(try await c.request(.POST, "/api/v1/auth/logout", json: ["refresh_token": a.refreshToken]).status == 200)
        let a2 = try await c.login(a.phone, deviceID: "a-phone")
        #expect(try await c.request(.DELETE, "/api/v1/notifications/devices/fcm-token-2", token: a2.accessToken).status == 404)
        await s.stop()
    }
}
