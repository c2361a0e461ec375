import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Testing
import TernTestSupport
import TernWSClient

extension TestClient {
    /// Opens (or finds) the direct chat of `a` and `b`; returns its id.
    func directChat(_ a: TestSession, _ b: TestSession) async throws -> String {
        let r = try await request(.POST, "/api/v1/chats", json: ["other_user_id": b.userID], token: a.accessToken)
        try #require(r.status == 201, "create chat: \(r.body)")
        return try #require(r.data["chat_id"] as? String)
    }

    func ws(_ session: TestSession) async throws -> WSTestClient {
        try await WSTestClient.connect(port: port, token: session.accessToken)
    }
}

func textMessage(_ chat: String, _ body: String, id: String = UUID().uuidString) -> [String: Any] {
    ["chat_id": chat, "type": "text", "payload": ["body": body], "client_msg_id": id]
}

@Suite("Relay: WebSocket sessions, mailboxes, receipts")
struct RelayTests {
    @Test("the upgrade needs a valid token: 401 with the envelope otherwise, never a 101")
    func upgradeAuth() async throws {
        let s = try await InProcessServer.start()
        let port = s.client.port
        for token: String? in [nil, "garbage"] {
            do {
                _ = try await WSTestClient.connect(port: port, token: token)
                Issue.record("upgrade accepted without a valid token")
            } catch let refused as WSUpgradeRefused {
                #expect(refused.status == 401)
                #expect(refused.body.contains("\"success\":false"))
            }
        }
        do {
            _ = try await WSTestClient.connect(port: port, token: nil, path: "/elsewhere")
            Issue.record("upgrade accepted on a wrong path")
        } catch let refused as WSUpgradeRefused {
            #expect(refused.status == 404)
        }
        let a = try await s.client.login(testPhone())
        let viaQuery = try await WSTestClient.connect(port: port, token: a.accessToken)
        let drained = await viaQuery.next(event: "mailbox.drained")
        #expect(drained.frame != nil)
        let viaHeader = try await WSTestClient.connect(port: port, token: a.accessToken, useHeader: true)
        // Same device: the newer connection wins, the older is told and closed.
        let replaced = await viaQuery.next(event: "session.replaced")
        #expect(replaced.frame != nil)
        #expect(await viaHeader.next(event: "mailbox.drained").frame != nil)
        // Logging out closes live connections of that session and its token no longer upgrades.
        #expect(try await s.client.request(.POST, "/api/v1/auth/logout", token: a.accessToken).status == 200)
        let revoked = await viaHeader.next(event: "session.revoked")
        #expect(revoked.frame != nil)
        do {
            _ = try await WSTestClient.connect(port: port, token: a.accessToken)
            Issue.record("a revoked session upgraded")
        } catch let refused as WSUpgradeRefused {
            #expect(refused.status == 401)
            #expect(refused.body.contains("SESSION_REVOKED"))
        }
        await s.stop()
    }

    @Test("keep-alive: a client that answers pings stays, one that does not is closed as idle (4002)")
    func keepAlive() async throws {
        let s = try await InProcessServer.start { config in
            // Wide margins: the answering client would have to go unheard for 5 s (50 pings)
            // to look idle; the test waits on events, not on a fixed window. (3 s was once
            // not enough with every suite running in parallel on 2 cores.)
            config.relayPingInterval = .milliseconds(100)
            config.relayIdleTimeout = .seconds(5)
        }
        let a = try await s.client.login(testPhone())
        let b = try await s.client.login(testPhone())
        let alive = try await WSTestClient.connect(port: s.client.port, token: a.accessToken)
        let silent = try await WSTestClient.connect(port: s.client.port, token: b.accessToken, answersPings: false)
        #expect(await alive.next(event: "mailbox.drained").frame != nil)
        #expect(await silent.next(event: "mailbox.drained").frame != nil)
        // The answering client is pinged again and again while it sends nothing else.
        var pings = 0
        while pings < 3, let frame = await alive.nextFrame(timeout: .seconds(20)) {
            if frame.opcode == .ping { pings += 1 }
            #expect(frame.opcode != .connectionClose, "the answering client was closed")
        }
        #expect(pings == 3)
        // The silent client (reads, but sends nothing, not even pongs) is closed as idle.
        let closed = await silent.next(event: "__closed__", timeout: .seconds(20))
        #expect(closed.frame?["code"] as? Int == 4002)
        alive.send("ping", [:])
        let pong = await alive.next(event: "pong", timeout: .seconds(20))
        #expect(pong.frame != nil, "the answering client is still connected")
        #expect(!pong.skipped.contains { $0["event"] as? String == "__closed__" })
        await alive.close()
        await s.stop()
    }

    @Test("server shutdown tells connected devices 1001 and waits for their connections to close")
    func shutdownClosesSessions() async throws {
        let s = try await InProcessServer.start()
        let a = try await s.client.login(testPhone())
        let ws = try await WSTestClient.connect(port: s.client.port, token: a.accessToken)
        #expect(await ws.next(event: "mailbox.drained").frame != nil)
        async let stopped: Void = s.stop()
        let closed = await ws.next(event: "__closed__")
        #expect(closed.frame?["code"] as? Int == 1001)
        await stopped
    }

    @Test("a drained message (stored as a reference to the history) is the live message.new, field for field")
    func drainedEqualsLive() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let phone = testPhone()
        let online = try await c.login(phone, deviceID: "phone-\(UUID().uuidString)")
        let offline = try await c.login(phone, deviceID: "tablet-\(UUID().uuidString)")
        let chat = try await c.directChat(a, online)
        let wa = try await c.ws(a)
        let wOnline = try await c.ws(online)
        for ws in [wa, wOnline] { #expect(await ws.next(event: "mailbox.drained").frame != nil) }
        var message = textMessage(chat, "with \"quotes\", ünïcödé and a\nnewline")
        message["reply_to_message_id"] = nil
        wa.send("message.send", message)
        let live = try #require(await wOnline.next(event: "message.new").frame)
        let wOffline = try await c.ws(offline)
        let drained = try #require(await wOffline.next(event: "message.new").frame)
        #expect(NSDictionary(dictionary: drained.data) == NSDictionary(dictionary: live.data), "\(drained.data) vs \(live.data)")
        #expect((live.data["payload"] as? [String: Any])?["body"] as? String == "with \"quotes\", ünïcödé and a\nnewline")
        for ws in [wa, wOnline, wOffline] { await ws.close() }
        await s.stop()
    }

    @Test("offline drain: 3 messages in order with seqs, acks, delivered receipts, nothing twice", arguments: CommitMode.allCases)
    func offlineDrain(commits: CommitMode) async throws {
        let s = try await InProcessServer.start(commits: commits)
        let c = s.client
        let a = try await c.login(testPhone())
        let b = try await c.login(testPhone())
        let chat = try await c.directChat(a, b)
        let wa = try await c.ws(a)
        #expect(await wa.next(event: "mailbox.drained").frame != nil)
        var ids: [String] = []
        for i in 1...3 {
            wa.send("message.send", textMessage(chat, "hello \(i)", id: "c\(i)"))
            let sent = await wa.next(event: "message.sent")
            let data = try #require(sent.frame?.data)
            #expect(data["client_msg_id"] as? String == "c\(i)")
            #expect(data["chat_id"] as? String == chat)
            ids.append(try #require(data["message_id"] as? String))
        }
        // B connects and drains.
        let wb = try await c.ws(b)
        var seqs: [Int] = []
        for i in 1...3 {
            let frame = try #require(await wb.next(), "message \(i)")
            #expect(frame.event == "message.new")
            #expect(frame["type"] as? String == "message.new")
            #expect(frame.data["message_id"] as? String == ids[i - 1])
            #expect((frame.data["payload"] as? [String: Any])?["body"] as? String == "hello \(i)")
            #expect(frame.data["sender_id"] as? String == a.userID)
            #expect(frame.data["status"] as? String == "sent")
            seqs.append(try #require(frame.seq))
        }
        #expect(seqs == seqs.sorted() && Set(seqs).count == 3)
        let drained = try #require(await wb.next())
        #expect(drained.event == "mailbox.drained")
        #expect(drained.data["count"] as? Int == 3)
        for id in ids { wb.send("message.delivered", ["message_id": id, "chat_id": chat, "sender_id": a.userID]) }
        // A learns each delivery.
        var delivered: Set<String> = []
        for _ in 0..<3 {
            let status = try #require(await wa.next(event: "message.status").frame)
            #expect(status.data["status"] as? String == "delivered")
            #expect(status.data["user_id"] as? String == b.userID)
            delivered.insert(try #require(status.data["message_id"] as? String))
        }
        #expect(delivered == Set(ids))
        await wb.close()
        // A second connect gets nothing new.
        let again = try await c.ws(b)
        let first = try #require(await again.next())
        #expect(first.event == "mailbox.drained")
        #expect(first.data["count"] as? Int == 0)
        // History and receipts agree.
        let history = try await c.request(.GET, "/api/v1/messages?chat_id=\(chat)", token: a.accessToken)
        let items = try #require(history.data["items"] as? [[String: Any]])
        #expect(items.map { $0["message_id"] as? String } == ids.reversed())
        #expect(items.allSatisfy { $0["status"] as? String == "delivered" })
        let receipts = try await c.request(.GET, "/api/v1/messages/\(ids[0])/receipts", token: a.accessToken)
        #expect(receipts.dataArray.first?["status"] as? String == "delivered")
        await again.close()
        await wa.close()
        await s.stop()
    }
}
