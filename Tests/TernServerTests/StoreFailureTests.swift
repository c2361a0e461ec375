import AsyncHTTPClient
import Foundation
import Logging
import NIOHTTP1
import Testing
import TernCore
import TernStore
import TernTestSupport

@Suite("Store failures reach clients as clear errors")
struct StoreFailureTests {
    /// Fills the store at `path` to the brim from outside the server.
    static func fill(_ path: String, mapSize: Int) async throws {
        let store = try Store(configuration: StoreConfiguration(path: path, mapSize: mapSize), logger: Logger(label: "fill"))
        var full = false
        var n = 0
        while !full {
            do {
                let base = n
                try await store.write { tx in
                    for i in 0..<16 {
                        try tx.putBytes([UInt8](repeating: 1, count: 2000), in: tx.tables.meta, at: Array("fill-\(base + i)".utf8))
                    }
                }
                n += 16
            } catch StoreError.mapFull {
                full = true
            }
        }
        // Top up with small entries so no room is left at all.
        for i in 0..<20_000 {
            do {
                _ = try await store.write { tx in try tx.putBytes([1], in: tx.tables.meta, at: Array("tiny-\(i)".utf8)) }
            } catch StoreError.mapFull {
                break
            }
        }
        await store.close()
    }

    @Test("a full map: writes get 507 STORAGE_FULL, reads keep answering, /ready says so")
    func mapFull() async throws {
        let dir = TemporaryDirectory("tern-mapfull")
        defer { dir.remove() }
        let mapSize = 2 << 20
        // Log in while there is room.
        var s = try await InProcessServer.start(dir: dir) { $0.storeMapSize = mapSize }
        let session = try await s.client.login(testPhone())
        await s.stop(removeData: false)

        try await Self.fill(dir.file("store"), mapSize: mapSize)

        s = try await InProcessServer.start(dir: dir) { $0.storeMapSize = mapSize }
        let me = try await s.client.request(.GET, "/api/v1/users/me", token: session.accessToken)
        #expect(me.status == 200, "reads keep working: \(me.body)")
        // Updates in place recycle their own pages forever, so grow the store: each code
        // request adds a record, until the store refuses one.
        var refused: TestResponse?
        var refusedPhone = ""
        for _ in 0..<5000 {
            let phone = testPhone()
            let sent = try await s.client.request(.POST, "/api/v1/auth/request-otp", json: ["phone": phone])
            if sent.status == 200 { continue }
            refused = sent
            refusedPhone = phone
            break
        }
        #expect(refused?.status == 507, "\(refused?.body ?? "the store never filled up")")
        #expect(refused?.errorCode == "STORAGE_FULL")
        let ready = try await s.client.request(.GET, "/ready")
        #expect(ready.status == 503)
        #expect((ready.json?["status"] as? [String: String])?["store"]?.isEmpty == false)
        // Nothing of the refused write is visible: no code is pending for that phone.
        let verify = try await s.client.request(.POST, "/api/v1/auth/verify-otp", json: ["phone": refusedPhone, "code": "123456"])
        #expect(verify.errorCode == "OTP_EXPIRED" || verify.status == 507)
        // Reads keep answering.
        let after = try await s.client.request(.GET, "/api/v1/users/me", token: session.accessToken)
        #expect(after.status == 200)
        #expect(try await s.client.request(.GET, "/health").status == 200)
        await s.stop(removeData: false)
    }

    @Test("a full store: a WebSocket send gets STORAGE_FULL, the connection keeps working, nothing unstored is delivered",
          arguments: CommitMode.allCases)
    func mapFullOverWebSocket(commits: CommitMode) async throws {
        let dir = TemporaryDirectory("tern-mapfull-ws")
        defer { dir.remove() }
        let mapSize = 2 << 20
        var s = try await InProcessServer.start(dir: dir, commits: commits) { $0.storeMapSize = mapSize }
        let a = try await s.client.login(testPhone())
        let b = try await s.client.login(testPhone())
        let chat = try await s.client.directChat(a, b)
        await s.stop(removeData: false)
        try await Self.fill(dir.file("store"), mapSize: mapSize)

        s = try await InProcessServer.start(dir: dir, commits: commits) { $0.storeMapSize = mapSize }
        let wa = try await s.client.ws(a)
        let wb = try await s.client.ws(b)
        _ = await drained(wa)
        _ = await drained(wb)
        // Send until the store refuses one (freed pages may take a few first).
        var sent = 0
        var refusal: [String: Any]?
        for n in 0..<5000 {
            wa.send("message.send", textMessage(chat, "m\(n)", id: "full-\(n)"))
            guard let answer = await wa.next(timeout: .seconds(10)) else { break }
            if answer.event == "message.sent" {
                sent += 1
                continue
            }
            if answer.event == "error" {
                refusal = answer
                break
            }
        }
        let error = try #require(refusal, "the store never refused a send")
        #expect(error.data["code"] as? String == "STORAGE_FULL")
        #expect(error.data["ref"] as? String == "full-\(sent)")
        // The connection is still open and answers.
        wa.send("ping", [:])
        #expect(await wa.next(event: "pong").frame != nil)
        // The recipient got what was stored and nothing else.
        var received: [String] = []
        while let frame = await wb.next(timeout: .seconds(2)), frame.event == "message.new" {
            received.append(frame.data["client_msg_id"] as? String ?? "")
        }
        #expect(received == (0..<sent).map { "full-\($0)" })
        await wa.close()
        await wb.close()
        await s.stop(removeData: false)
    }
}
