import AsyncHTTPClient
import Foundation
import NIOHTTP1
import Testing
import TernTestSupport

/// What clients were told succeeded before the crash.
actor Ledger {
    struct UserState {
        var phone: String
        var token: String
        /// Names sent, in order; `acked` = how many of them got a 2xx.
        var sent: [String] = []
        var acked = 0
    }

    private(set) var users: [String: UserState] = [:]
    private(set) var acknowledged = 0

    func loggedIn(_ session: TestSession) {
        users[session.userID] = UserState(phone: session.phone, token: session.accessToken)
        acknowledged += 1
    }

    func sending(_ user: String, _ name: String) { users[user]?.sent.append(name) }

    func acked(_ user: String) {
        users[user]?.acked += 1
        acknowledged += 1
    }
}

@Suite("Crash safety", .serialized)
struct CrashTests {
    @Test("kill -9 during logins and profile updates: every change that got a 2xx is there after restart")
    func killDuringWrites() async throws {
        let dir = TemporaryDirectory("tern-crash")
        defer { dir.remove() }
        let data = dir.file("data")
        var server = try await ChildServer.start(dataDirectory: data)
        let client = TestClient(port: server.port)
        let ledger = Ledger()

        let workers = (0..<4).map { _ in
            Task {
                outer: while true {
                    guard let session = try? await client.login(testPhone()) else { break }
                    await ledger.loggedIn(session)
                    for round in 0..<4 {
                        let name = "name-\(round)-\(Int.random(in: 0...999_999))"
                        await ledger.sending(session.userID, name)
                        guard let r = try? await client.request(.PATCH, "/api/v1/users/me", json: ["display_name": name], token: session.accessToken)
                        else { break outer }
                        if r.status == 200 { await ledger.acked(session.userID) } else { break outer }
                    }
                }
            }
        }
        // Let real traffic build up (a count, not a duration), then pull the plug.
        let deadline = Date().addingTimeInterval(120)
        while await ledger.acknowledged < 150 && Date() < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        server.kill9()
        for worker in workers { await worker.value }
        await client.shutdown()
        let acknowledged = await ledger.acknowledged
        #expect(acknowledged >= 150, "traffic before the kill: \(acknowledged)")

        server = try await ChildServer.start(dataDirectory: data)
        let after = TestClient(port: server.port)
        let users = await ledger.users
        #expect(users.count >= 10)
        for (id, state) in users {
            let me = try await after.request(.GET, "/api/v1/users/me", token: state.token)
            #expect(me.status == 200, "session of \(id) lost: \(me.body)")
            #expect(me.data["id"] as? String == id)
            let name = me.data["display_name"] as? String ?? ""
            // The last acknowledged name, or a later one that was in flight at the kill.
            let allowed = state.acked == 0 ? [""] + state.sent : Array(state.sent[(state.acked - 1)...])
            #expect(allowed.contains(name), "user \(id): stored \(name), acknowledged \(state.sent.prefix(state.acked))")
        }
        // The phone index survived too: logging in again finds the same user.
        for (id, state) in users.prefix(3) {
            let again = try await after.login(state.phone)
            #expect(again.userID == id)
        }
        await after.shutdown()
        #expect(server.terminate() == 0, "clean exit on SIGTERM")
    }
}
