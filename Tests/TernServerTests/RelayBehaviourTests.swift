import AsyncHTTPClient
import Foundation
import NIOHTTP1
import NIOWebSocket
import Testing
import TernCore
import TernStore
import TernTestSupport
import TernWSClient

/// Waits for `client`'s drain marker; returns the frames before it.
func drained(_ client: WSTestClient) async -> [[String: Any]] {
    let result = await client.next(event: "mailbox.drained")
    #expect(result.frame != nil, "no mailbox.drained")
    return result.skipped
}

@Suite("Relay behaviour")
struct RelayBehaviourTests {
    @Test("live delivery, idempotent re-sends over WebSocket and REST", arguments: CommitMode.allCases)
    func liveAndIdempotent(commits: CommitMode) async throws {
        let s = try await InProcessServer.start(commits: commits)
        let c = s.client
        let a = try await c.login(testPhone())
        let b = try await c.login(testPhone())
        let chat = try await c.directChat(a, b)
        let wa = try await c.ws(a)
        let wb = try await c.ws(b)
        _ = await drained(wa)
        _ = await drained(wb)

        wa.send("message.send", textMessage(chat, "hi", id: "same-1"))
        let sent = try #require(await wa.next(event: "message.sent").frame)
        let id = try #require(sent.data["message_id"] as? String)
        #expect(sent.data["created_at"] is String)
        #expect(sent.data["timestamp"] is Int)
        let new = try #require(await wb.next(event: "message.new").frame)
        #expect(new.data["message_id"] as? String == id)
        #expect(new.seq != nil)
        // The same client_msg_id again: the original, no second copy.
        wa.send("message.send", textMessage(chat, "hi again", id: "same-1"))
        let again = try #require(await wa.next(event: "message.sent").frame)
        #expect(again.data["message_id"] as? String == id)
        #expect(again.data["duplicate"] as? Bool == true)
        // REST with the same id returns the original too; a fresh id makes a new message.
        let rest = try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "x", id: "same-1"), token: a.accessToken)
        #expect(rest.status == 201)
        #expect(rest.data["message_id"] as? String == id)
        #expect((rest.data["payload"] as? [String: Any])?["body"] as? String == "hi")
        let fresh = try await c.request(.POST, "/api/v1/chats/\(chat)/messages", json: ["type": "text", "payload": ["body": "via alias"], "client_msg_id": "fresh-1"], token: a.accessToken)
        #expect(fresh.status == 201)
        let freshID = try #require(fresh.data["message_id"] as? String)
        #expect(freshID != id)
        #expect(try await c.request(.POST, "/api/v1/chats/\(chat)/messages", json: ["type": "text", "payload": ["body": "via alias"], "client_msg_id": "fresh-1"], token: a.accessToken).data["message_id"] as? String == freshID)
        let next = try #require(await wb.next(event: "message.new").frame)
        #expect(next.data["message_id"] as? String == freshID, "B got exactly one copy of each message")
        let quiet = await wb.drain(for: .milliseconds(300))
        #expect(quiet.filter { $0.event == "message.new" }.isEmpty)
        // Another user reusing the client id gets their own message, not A's (seed bug 7).
        let other = try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "b's", id: "same-1"), token: b.accessToken)
        #expect(other.data["message_id"] as? String != id)
        await wa.close()
        await wb.close()
        await s.stop()
    }

    @Test("sends arriving together: each succeeds or fails on its own, in order, and a repeated id in the same burst is one message", arguments: CommitMode.allCases)
    func burstOfSends(commits: CommitMode) async throws {
        let s = try await InProcessServer.start(commits: commits)
        let c = s.client
        let a = try await c.login(testPhone())
        let b = try await c.login(testPhone())
        let chat = try await c.directChat(a, b)
        let wa = try await c.ws(a)
        let wb = try await c.ws(b)
        _ = await drained(wa)
        _ = await drained(wb)
        let nowhere = UUID().uuidString.lowercased()
        wa.sendTogether([
            ("message.send", textMessage(chat, "one", id: "burst-1")),
            ("message.send", textMessage(nowhere, "lost", id: "burst-2")),
            ("message.send", textMessage(chat, "one again", id: "burst-1")),
            ("message.send", ["chat_id": chat, "type": "text", "payload": ["body": ""], "client_msg_id": "burst-3"]),
            ("message.send", textMessage(chat, "two", id: "burst-4")),
        ])
        var answers: [[String: Any]] = []
        while answers.count < 5, let frame = await wa.next() {
            if frame.event == "message.sent" || frame.event == "error" { answers.append(frame) }
        }
        // The invalid body is refused at once; the stored ones are answered in the order sent.
        let stored = answers.filter { $0.data["code"] as? String != "VALIDATION_ERROR" }
        #expect(stored.map { $0.event ?? "" } == ["message.sent", "error", "message.sent", "message.sent"])
        let sent = answers.filter { $0.event == "message.sent" }
        let errors = answers.filter { $0.event == "error" }
        #expect(sent.map { $0.data["client_msg_id"] as? String ?? "" } == ["burst-1", "burst-1", "burst-4"])
        #expect(sent[0].data["message_id"] as? String == sent[1].data["message_id"] as? String)
        #expect(sent[1].data["duplicate"] as? Bool == true)
        #expect(Set(errors.map { $0.data["code"] as? String ?? "" }) == ["CHAT_NOT_FOUND", "VALIDATION_ERROR"])
        #expect(errors.contains { $0.data["ref"] as? String == "burst-2" && $0.data["code"] as? String == "CHAT_NOT_FOUND" })
        // A frame's own `ref` names a send the store refuses, rather than its client_msg_id.
        wa.connection.send(text: #"{"event":"message.send","ref":"mine-1","data":{"chat_id":""# + nowhere
            + #"","type":"text","payload":{"body":"x"},"client_msg_id":"burst-9"}}"#)
        let refused = try #require(await wa.next(event: "error").frame)
        #expect(refused.data["ref"] as? String == "mine-1")
        #expect(refused.data["code"] as? String == "CHAT_NOT_FOUND")
        // B gets the two stored messages, once each, in order.
        var bodies: [String] = []
        while bodies.count < 2, let frame = await wb.next(event: "message.new").frame {
            bodies.append((frame.data["payload"] as? [String: Any])?["body"] as? String ?? "")
        }
        #expect(bodies == ["one", "two"])
        #expect(await wb.drain(for: .milliseconds(300)).filter { $0.event == "message.new" }.isEmpty)
        await wa.close()
        await wb.close()
        await s.stop()
    }

    @Test("multi-device: both devices drain independently, the sender's other device gets the copy, one read gives one read", arguments: CommitMode.allCases)
    func multiDevice(commits: CommitMode) async throws {
        let s = try await InProcessServer.start(commits: commits)
        let c = s.client
        let phoneA = testPhone()
        let phoneB = testPhone()
        let a1 = try await c.login(phoneA, deviceID: "a1")
        let a2 = try await c.login(phoneA, deviceID: "a2")
        let b1 = try await c.login(phoneB, deviceID: "b1")
        let b2 = try await c.login(phoneB, deviceID: "b2")
        let chat = try await c.directChat(a1, b1)
        let wa1 = try await c.ws(a1)
        let wa2 = try await c.ws(a2)
        let wb1 = try await c.ws(b1)
        _ = await drained(wa1)
        _ = await drained(wa2)
        _ = await drained(wb1)
        wa1.send("message.send", textMessage(chat, "to both", id: "m1"))
        let id = try #require(await wa1.next(event: "message.sent").frame?.data["message_id"] as? String)
        let copy = try #require(await wa2.next(event: "message.new").frame)
        #expect(copy.data["message_id"] as? String == id)
        #expect(copy.data["sender_id"] as? String == a1.userID)
        let atB1 = try #require(await wb1.next(event: "message.new").frame)
        #expect(atB1.data["message_id"] as? String == id)
        wb1.send("message.delivered", ["message_id": id])
        wa2.send("message.delivered", ["message_id": id])
        // b2 was offline: it drains the same message on its own.
        let wb2 = try await c.ws(b2)
        let backlog = await drained(wb2)
        #expect(backlog.compactMap { $0.data["message_id"] as? String } == [id])
        wb2.send("message.delivered", ["message_id": id])
        // Both sender devices learn "delivered" once (from the first recipient device).
        for device in [wa1, wa2] {
            let status = try #require(await device.next(event: "message.status").frame)
            #expect(status.data["status"] as? String == "delivered")
        }
        // Read on b1, then on b2: one "read" per sender device.
        wb1.send("message.read", ["message_id": id, "chat_id": chat])
        for device in [wa1, wa2] {
            let status = try #require(await device.next(event: "message.status").frame)
            #expect(status.data["status"] as? String == "read")
            #expect(status.data["aggregate_status"] as? String == "read")
        }
        wb2.send("message.read", ["message_id": id, "chat_id": chat])
        let extra = await wa1.drain(for: .milliseconds(400))
        #expect(extra.filter { $0.event == "message.status" }.isEmpty, "no second read or delivered")
        for ws in [wa1, wa2, wb1, wb2] { await ws.close() }
        await s.stop()
    }

    @Test("a sender with one device connected and one not: the connected one gets the receipt live, the other from its mailbox", arguments: [0, 1])
    func receiptToMixedSenderDevices(_ connected: Int) async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let phoneA = testPhone()
        let a = [try await c.login(phoneA, deviceID: "a1"), try await c.login(phoneA, deviceID: "a2")]
        let b = try await c.login(testPhone(), deviceID: "b1")
        let chat = try await c.directChat(a[0], b)
        let online = try await c.ws(a[connected])
        let wb = try await c.ws(b)
        _ = await drained(online)
        _ = await drained(wb)
        online.send("message.send", textMessage(chat, "mixed", id: "m1"))
        let id = try #require(await online.next(event: "message.sent").frame?.data["message_id"] as? String)
        #expect(try #require(await wb.next(event: "message.new").frame).data["message_id"] as? String == id)
        wb.send("message.delivered", ["message_id": id])
        let live = try #require(await online.next(event: "message.status").frame)
        #expect(live.data["message_id"] as? String == id)
        #expect(live.data["status"] as? String == "delivered")
        #expect(live.seq == nil, "live receipts are not stored")
        // The other device connects later: its mailbox holds the message and its receipt.
        let later = try await c.ws(a[1 - connected])
        let backlog = await drained(later)
        #expect(backlog.map(\.event) == ["message.new", "message.status"])
        #expect(backlog.last?.data["status"] as? String == "delivered")
        #expect(backlog.last?.seq != nil)
        for ws in [online, wb, later] { await ws.close() }
        await s.stop()
    }

    /// A server with a relay window of `window` frames and drain pages of `page` entries,
    /// and `messages` messages from `a` waiting in the mailbox of `b`'s device "b1".
    static func backlog(window: Int, page: Int, messages: Int, commits: CommitMode) async throws -> (
        s: InProcessServer, a: TestSession, b: TestSession, chat: String, ids: [String]
    ) {
        let s = try await InProcessServer.start(commits: commits) { config in
            config.relayWindow = window
            config.relayDrainPage = page
        }
        let c = s.client
        let a = try await c.login(testPhone())
        let b = try await c.login(testPhone(), deviceID: "b1")
        let chat = try await c.directChat(a, b)
        var ids: [String] = []
        for n in 0..<messages {
            let sent = try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "backlog \(n)"), token: a.accessToken)
            ids.append(try #require(sent.data["message_id"] as? String))
        }
        return (s, a, b, chat, ids)
    }

    @Test("a backlog of many pages through a small window: every entry once, in order, then live", arguments: CommitMode.allCases)
    func drainThroughSmallWindow(commits: CommitMode) async throws {
        // A window of 5 frames and pages of 4 entries: the drain reads ahead while frames are
        // unacknowledged and must neither skip, repeat nor reorder entries across pages.
        let (s, a, b, chat, ids) = try await Self.backlog(window: 5, page: 4, messages: 41, commits: commits)
        let c = s.client
        let wb = try await c.ws(b)
        var received: [String] = []
        var seqs: [Int] = []
        var marker: [String: Any]?
        while marker == nil, let frame = await wb.next() {
            switch frame.event {
            case "message.new":
                let id = try #require(frame.data["message_id"] as? String)
                received.append(id)
                seqs.append(try #require(frame.seq))
                wb.send("message.delivered", ["message_id": id])
            case "mailbox.drained":
                marker = frame.data
            default:
                break
            }
        }
        #expect(received == ids)
        #expect(seqs == seqs.sorted() && Set(seqs).count == seqs.count)
        #expect(marker?["count"] as? Int == ids.count)
        // Then live, on the same connection.
        let live = try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "live"), token: a.accessToken)
        let liveID = try #require(live.data["message_id"] as? String)
        let next = try #require(await wb.next(event: "message.new").frame)
        #expect(next.data["message_id"] as? String == liveID)
        wb.send("message.delivered", ["message_id": liveID])
        var state: String?
        for _ in 0..<500 where state != "delivered" {
            state = try await c.request(.GET, "/api/v1/messages/\(liveID)/receipts", token: a.accessToken).dataArray.first?["status"] as? String
            if state != "delivered" { try await Task.sleep(for: .milliseconds(10)) }
        }
        await wb.close()
        // Everything was acknowledged: a new connection drains nothing.
        let again = try await c.ws(b)
        #expect(await drained(again).filter { $0.event == "message.new" }.isEmpty)
        await again.close()
        await s.stop()
    }

    @Test("acknowledgements out of order and mixed with cumulative acks keep the window moving: every entry once, in order", arguments: CommitMode.allCases)
    func drainWithScrambledAcks(commits: CommitMode) async throws {
        let (s, _, b, _, ids) = try await Self.backlog(window: 6, page: 4, messages: 40, commits: commits)
        let c = s.client
        let wb = try await c.ws(b)
        var received: [String] = []
        var held: [(id: String, seq: Int)] = []
        var drained = false
        while !drained, let frame = await wb.next() {
            switch frame.event {
            case "message.new":
                held.append((try #require(frame.data["message_id"] as? String), try #require(frame.seq)))
                received.append(held.last!.id)
                guard held.count == 3 else { break }
                if received.count % 9 == 0 {
                    // The newest singly, then a cumulative ack covering the two before it.
                    wb.send("message.delivered", ["message_id": held[2].id])
                    wb.send("ack", ["seq": held[1].seq])
                } else {
                    // Newest first: the oldest unacknowledged frame is acknowledged last.
                    for item in held.reversed() { wb.send("message.delivered", ["message_id": item.id]) }
                }
                held = []
            case "mailbox.drained":
                drained = true
            default:
                break
            }
        }
        for item in held { wb.send("message.delivered", ["message_id": item.id]) }
        #expect(drained)
        #expect(received == ids)
        // Everything was acknowledged: once stored, a new connection drains nothing.
        var left = -1
        for _ in 0..<500 where left != 0 {
            left = try await s.server.store.read { tx -> Int in
                try tx.mailboxCount(device: try tx.device(user: TernID(b.userID)!, clientID: "b1")!.number)
            }
            if left != 0 { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(left == 0)
        await wb.close()
        await s.stop()
    }

    @Test("receipts reach a sender that was offline, from its mailbox", arguments: CommitMode.allCases)
    func offlineSenderReceipts(commits: CommitMode) async throws {
        let s = try await InProcessServer.start(commits: commits)
        let c = s.client
        let a = try await c.login(testPhone())
        let b = try await c.login(testPhone())
        let chat = try await c.directChat(a, b)
        let sent = try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "while you sleep"), token: a.accessToken)
        let id = try #require(sent.data["message_id"] as? String)
        let wb = try await c.ws(b)
        let backlog = await drained(wb)
        #expect(backlog.first?.data["message_id"] as? String == id)
        wb.send("message.delivered", ["message_id": id])
        // The acknowledgement is written asynchronously: wait until it is stored, so that the
        // read below is a second step and not the first (a read implies delivered).
        var state: String?
        for _ in 0..<500 where state != "delivered" {
            state = try await c.request(.GET, "/api/v1/messages/\(id)/receipts", token: a.accessToken).dataArray.first?["status"] as? String
            if state != "delivered" { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(state == "delivered")
        #expect(try await c.request(.POST, "/api/v1/messages/read", json: ["chat_id": chat, "up_to_message_id": id], token: b.accessToken).status == 204)
        // A was offline for both: its mailbox holds both receipts, in order.
        try await Task.sleep(for: .milliseconds(200))
        let wa = try await c.ws(a)
        let receipts = await drained(wa)
        #expect(receipts.map { $0.event } == ["message.status", "message.status"])
        #expect(receipts.map { $0.data["status"] as? String } == ["delivered", "read"])
        #expect(receipts.allSatisfy { $0.data["message_id"] as? String == id && $0.seq != nil })
        // A direct message keeps its one receipt in the history record, not in `receipts`.
        let rows = try await c.request(.GET, "/api/v1/messages/\(id)/receipts", token: a.accessToken).dataArray
        #expect(rows.count == 1)
        #expect(rows.first?["user_id"] as? String == b.userID)
        #expect(rows.first?["status"] as? String == "read")
        #expect(try await s.server.store.read { try $0.count($0.tables.receipts) } == 0)
        await wa.close()
        await wb.close()
        await s.stop()
    }

    @Test("read-receipt privacy: off means neither sending nor receiving read receipts")
    func readReceiptPrivacy() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let b = try await c.login(testPhone())
        let chat = try await c.directChat(a, b)
        #expect(try await c.request(.PUT, "/api/v1/users/privacy", json: ["read_receipts": false], token: b.accessToken).status == 204)
        let wa = try await c.ws(a)
        _ = await drained(wa)
        let id = try #require(try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "read me"), token: a.accessToken).data["message_id"] as? String)
        #expect(try await c.request(.POST, "/api/v1/chats/\(chat)/messages/read", json: ["up_to_message_id": id], token: b.accessToken).status == 204)
        let status = try #require(await wa.next(event: "message.status").frame)
        #expect(status.data["status"] as? String == "delivered", "reading implies delivery, but no read receipt")
        #expect(await wa.drain(for: .milliseconds(300)).filter { $0.data["status"] as? String == "read" }.isEmpty)
        let receipts = try await c.request(.GET, "/api/v1/messages/\(id)/receipts", token: a.accessToken)
        #expect(receipts.dataArray.first?["status"] as? String == "delivered")
        // B (receipts off) does not get read receipts for its own messages either.
        let wb = try await c.ws(b)
        _ = await drained(wb)
        let reply = try #require(try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "reply"), token: b.accessToken).data["message_id"] as? String)
        #expect(try await c.request(.POST, "/api/v1/messages/read", json: ["chat_id": chat, "message_id": reply], token: a.accessToken).status == 204)
        // Wait for the delivered receipt (however loaded the machine), then make sure no
        // read receipt follows it.
        let delivered = await wb.next(event: "message.status", timeout: .seconds(20))
        #expect(delivered.frame?.data["status"] as? String == "delivered")
        let toB = delivered.skipped + [delivered.frame ?? [:]] + (await wb.drain(for: .milliseconds(400)))
        #expect(toB.filter { $0.data["status"] as? String == "read" }.isEmpty)
        await wa.close()
        await wb.close()
        await s.stop()
    }

    @Test("typing goes to online devices only, is never stored, and expires")
    func typing() async throws {
        let s = try await InProcessServer.start { $0.relayTypingTTL = .seconds(1) }
        let c = s.client
        let a = try await c.login(testPhone())
        let phoneB = testPhone()
        let b1 = try await c.login(phoneB, deviceID: "b1")
        let b2 = try await c.login(phoneB, deviceID: "b2")
        let chat = try await c.directChat(a, b1)
        let wa = try await c.ws(a)
        let wb1 = try await c.ws(b1)
        _ = await drained(wa)
        _ = await drained(wb1)
        wa.send("typing.start", ["chat_id": chat])
        let on = try #require(await wb1.next(event: "typing").frame)
        #expect(on.data["typing"] as? Bool == true)
        #expect(on.data["user_id"] as? String == a.userID)
        #expect(on.seq == nil, "typing is not a mailbox frame")
        // Not refreshed: it ends by itself.
        let off = try #require(await wb1.next(event: "typing", timeout: .seconds(5)).frame)
        #expect(off.data["typing"] as? Bool == false)
        // b2 was offline: nothing in its mailbox, nothing on connect.
        let pending = try await s.server.store.read { tx -> Int in
            let device = try tx.device(user: TernID(b2.userID)!, clientID: "b2")!.number
            return try tx.mailboxCount(device: device)
        }
        #expect(pending == 0)
        let wb2 = try await c.ws(b2)
        #expect(await drained(wb2).isEmpty)
        for ws in [wa, wb1, wb2] { await ws.close() }
        await s.stop()
    }

    @Test("non-members cannot send, read history, fetch receipts, mark read or type; blocked users cannot send")
    func authorization() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let b = try await c.login(testPhone())
        let outsider = try await c.login(testPhone())
        let chat = try await c.directChat(a, b)
        let id = try #require(try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "private"), token: a.accessToken).data["message_id"] as? String)
        let send = try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "intrude"), token: outsider.accessToken)
        #expect(send.status == 403)
        #expect(send.errorCode == "NOT_CHAT_MEMBER")
        #expect(try await c.request(.GET, "/api/v1/messages?chat_id=\(chat)", token: outsider.accessToken).status == 403)
        #expect(try await c.request(.GET, "/api/v1/chats/\(chat)", token: outsider.accessToken).status == 403)
        #expect(try await c.request(.GET, "/api/v1/messages/\(id)/receipts", token: outsider.accessToken).status == 404)
        #expect(try await c.request(.POST, "/api/v1/messages/read", json: ["chat_id": chat, "message_id": id], token: outsider.accessToken).status == 403)
        let ws = try await c.ws(outsider)
        _ = await drained(ws)
        ws.send("message.send", textMessage(chat, "intrude", id: "x1"))
        let error = try #require(await ws.next(event: "error").frame)
        #expect(error.data["code"] as? String == "NOT_CHAT_MEMBER")
        #expect(error.data["client_msg_id"] as? String == "x1")
        ws.send("typing.start", ["chat_id": chat])
        #expect(try #require(await ws.next(event: "error").frame).data["code"] as? String == "NOT_CHAT_MEMBER")
        ws.send("message.read", ["message_id": id, "chat_id": chat])
        #expect(try #require(await ws.next(event: "error").frame).data["code"] as? String == "NOT_CHAT_MEMBER")
        // A chat that does not exist.
        let missing = try await c.request(.POST, "/api/v1/messages", json: textMessage(UUID().uuidString, "x"), token: a.accessToken)
        #expect(missing.status == 404)
        #expect(missing.errorCode == "CHAT_NOT_FOUND")
        // Blocking stops sending both ways.
        #expect(try await c.request(.POST, "/api/v1/users/contacts/\(a.userID)/block", token: b.accessToken).status == 204)
        let blocked = try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "hello?"), token: a.accessToken)
        #expect(blocked.status == 403)
        #expect(blocked.errorCode == "USER_BLOCKED")
        #expect(try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "hello?"), token: b.accessToken).errorCode == "USER_BLOCKED")
        await ws.close()
        await s.stop()
    }

    @Test("bad frames get an error frame naming the problem; the connection and other clients keep working")
    func badFrames() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let b = try await c.login(testPhone())
        let chat = try await c.directChat(a, b)
        let wa = try await c.ws(a)
        let wb = try await c.ws(b)
        _ = await drained(wa)
        _ = await drained(wb)
        let cases: [(bytes: [UInt8], opcode: WebSocketOpcode, code: String)] = [
            (Array("{not json".utf8), .text, "MALFORMED_JSON"),
            ([0x7B, 0x22, 0x65, 0xFF, 0x22, 0x3A, 0x31, 0x7D], .text, "INVALID_UTF8"),
            (Array(#"[1,2]"#.utf8), .text, "BAD_FRAME"),
            (Array(#"{"data":{}}"#.utf8), .text, "BAD_FRAME"),
            (Array(#"{"event":"no.such.event","ref":"r9"}"#.utf8), .text, "UNKNOWN_EVENT"),
            (Array(#"{"event":"message.send","data":{"chat_id":"\#(chat)","type":"text","payload":{"body":"x"}}}"#.utf8), .text, "VALIDATION_ERROR"),
            (Array(#"{"event":"message.send","data":{"chat_id":"\#(chat)","type":"sticker","payload":{},"client_msg_id":"c"}}"#.utf8), .text, "VALIDATION_ERROR"),
            (Array(#"{"event":"message.send","data":{"chat_id":"\#(chat)","type":"location","payload":{"latitude":"north","longitude":1},"client_msg_id":"c"}}"#.utf8), .text, "VALIDATION_ERROR"),
            (Array(#"{"event":"message.send","data":{"chat_id":"\#(chat)","type":"text","payload":{"body":"\#(String(repeating: "x", count: 5000))"},"client_msg_id":"c"}}"#.utf8), .text, "VALIDATION_ERROR"),
            (Array(repeating: 0x20, count: 70_000) + Array("{}".utf8), .text, "PAYLOAD_TOO_LARGE"),
            ([1, 2, 3], .binary, "UNSUPPORTED_FRAME"),
        ]
        for item in cases {
            wa.connection.send(opcode: item.opcode, bytes: item.bytes)
            let error = try #require(await wa.next(event: "error").frame, "no error for \(item.code)")
            #expect(error.data["code"] as? String == item.code)
            #expect((error.data["message"] as? String)?.isEmpty == false)
        }
        wa.connection.send(text: #"{"type":"no.such","payload":{"client_msg_id":"ref-7"}}"#)
        #expect(try #require(await wa.next(event: "error").frame).data["ref"] as? String == "ref-7")
        // Still alive, and the other client is unaffected.
        wa.send("ping", [:])
        #expect(await wa.next(event: "pong").frame != nil)
        wa.send("message.send", textMessage(chat, "after the noise", id: "ok-1"))
        #expect(await wa.next(event: "message.sent").frame != nil)
        #expect(try #require(await wb.next(event: "message.new").frame).data["client_msg_id"] as? String == "ok-1")
        // A message in three fragments with a ping between them is one message.
        let whole = Array(try JSONSerialization.data(withJSONObject: ["event": "message.send", "data": textMessage(chat, "in pieces", id: "frag-1")]))
        wa.connection.send(opcode: .text, bytes: Array(whole[..<10]), fin: false)
        wa.connection.send(opcode: .ping, bytes: [7])
        wa.connection.send(opcode: .continuation, bytes: Array(whole[10..<40]), fin: false)
        wa.connection.send(opcode: .continuation, bytes: Array(whole[40...]), fin: true)
        #expect(await wa.next(event: "message.sent").frame != nil)
        #expect(try #require(await wb.next(event: "message.new").frame).data["client_msg_id"] as? String == "frag-1")
        // A protocol violation (a continuation without a message) closes that connection
        // with 1002; the other client keeps going.
        wa.connection.send(opcode: .continuation, bytes: [1], fin: true)
        var closeFrame: WSFrame?
        while closeFrame == nil, let frame = await wa.nextFrame() {
            if frame.opcode == .connectionClose { closeFrame = frame }
        }
        let closeCode = closeFrame.flatMap { $0.data.count >= 2 ? UInt16($0.data[0]) << 8 | UInt16($0.data[1]) : nil }
        #expect(closeCode == 1002)
        wb.send("message.send", textMessage(chat, "still here", id: "ok-2"))
        #expect(await wb.next(event: "message.sent").frame != nil)
        await wa.close()
        await wb.close()
        await s.stop()
    }

    @Test("presence: online and last seen to subscribers, as privacy allows")
    func presence() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let b = try await c.login(testPhone())
        let hidden = try await c.login(testPhone())
        #expect(try await c.request(.PUT, "/api/v1/users/privacy", json: ["last_seen": "nobody"], token: hidden.accessToken).status == 204)
        let wa = try await c.ws(a)
        _ = await drained(wa)
        wa.send("presence.subscribe", ["user_ids": [b.userID, hidden.userID]])
        var initial: [String: [String: Any]] = [:]
        for _ in 0..<2 {
            let frame = try #require(await wa.next(event: "presence").frame)
            initial[frame.data["user_id"] as! String] = frame.data
        }
        #expect(initial[b.userID]?["online"] as? Bool == false)
        #expect(initial[b.userID]?["last_seen"] is String)
        #expect(initial[hidden.userID]?["last_seen"] == nil)
        let wb = try await c.ws(b)
        let online = try #require(await wa.next(event: "presence").frame)
        #expect(online.data["user_id"] as? String == b.userID)
        #expect(online.data["online"] as? Bool == true)
        #expect(try await c.request(.GET, "/api/v1/users/\(b.userID)/presence", token: a.accessToken).data["online"] as? Bool == true)
        let wh = try await c.ws(hidden)
        await wb.close()
        let offline = try #require(await wa.next(event: "presence").frame)
        #expect(offline.data["user_id"] as? String == b.userID)
        #expect(offline.data["online"] as? Bool == false)
        #expect(offline.data["last_seen"] is String)
        let rest = try await c.request(.GET, "/api/v1/users/\(hidden.userID)/presence", token: a.accessToken)
        #expect(rest.data["online"] as? Bool == false, "last_seen=nobody hides online too")
        #expect(rest.data["last_seen"] == nil)
        #expect(await wa.drain(for: .milliseconds(300)).filter { $0.data["user_id"] as? String == hidden.userID }.isEmpty)
        await wh.close()
        await wa.close()
        await s.stop()
    }

    @Test("chat list: newest activity first, last message, unread counts, mute and pin, pages")
    func chatList() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let me = try await c.login(testPhone())
        var friends: [TestSession] = []
        var chats: [String] = []
        for _ in 0..<3 {
            let friend = try await c.login(testPhone())
            friends.append(friend)
            chats.append(try await c.directChat(me, friend))
        }
        #expect(try await c.directChat(me, friends[0]) == chats[0], "creating again returns the same chat")
        // Activity: chat 0 oldest, chat 2 newest; friend 1 sends two messages.
        _ = try await c.request(.POST, "/api/v1/messages", json: textMessage(chats[0], "first"), token: friends[0].accessToken)
        _ = try await c.request(.POST, "/api/v1/messages", json: textMessage(chats[1], "one"), token: friends[1].accessToken)
        _ = try await c.request(.POST, "/api/v1/messages", json: textMessage(chats[1], "two"), token: friends[1].accessToken)
        _ = try await c.request(.POST, "/api/v1/messages", json: textMessage(chats[2], "mine"), token: me.accessToken)
        let list = try await c.request(.GET, "/api/v1/chats", token: me.accessToken)
        let items = try #require(list.data["items"] as? [[String: Any]])
        #expect(items.map { $0["chat_id"] as? String } == chats.reversed())
        #expect(items[1]["unread_count"] as? Int == 2)
        #expect(items[0]["unread_count"] as? Int == 0, "own messages are not unread")
        #expect((items[1]["last_message"] as? [String: Any])?["preview"] as? String == "two")
        #expect(items[0]["type"] as? String == "direct")
        #expect((items[0]["participants"] as? [Any])?.count == 2)
        // Mute and pin are the caller's own.
        #expect(try await c.request(.PUT, "/api/v1/chats/\(chats[0])/mute", json: ["muted": true], token: me.accessToken).status == 204)
        #expect(try await c.request(.PUT, "/api/v1/chats/\(chats[0])/pin", json: ["pinned": true], token: me.accessToken).status == 204)
        let mine = try await c.request(.GET, "/api/v1/chats/\(chats[0])", token: me.accessToken)
        #expect(mine.data["is_muted"] as? Bool == true)
        #expect(mine.data["is_pinned"] as? Bool == true)
        let theirs = try await c.request(.GET, "/api/v1/chats/\(chats[0])", token: friends[0].accessToken)
        #expect(theirs.data["is_muted"] as? Bool == false)
        #expect(try await c.request(.PUT, "/api/v1/chats/\(chats[0])/mute", json: ["muted": "yes"], token: me.accessToken).status == 400)
        #expect(try await c.request(.PUT, "/api/v1/chats/\(chats[0])/mute", json: ["muted": true, "mute_until": "tomorrow"], token: me.accessToken).status == 400)
        // Reading clears the unread count.
        #expect(try await c.request(.POST, "/api/v1/chats/\(chats[1])/messages/read", json: [String: String](), token: me.accessToken).status == 204)
        let after = try await c.request(.GET, "/api/v1/chats/\(chats[1])", token: me.accessToken)
        #expect(after.data["unread_count"] as? Int == 0)
        // Pages of one.
        var seen: [String] = []
        var cursor: String?
        repeat {
            let path = "/api/v1/chats?limit=1" + (cursor.map { "&cursor=\($0)" } ?? "")
            let page = try await c.request(.GET, path, token: me.accessToken)
            seen += (page.data["items"] as? [[String: Any]] ?? []).compactMap { $0["chat_id"] as? String }
            cursor = page.data["nextCursor"] as? String
        } while cursor != nil
        #expect(seen == chats.reversed())
        // Creation rules.
        #expect(try await c.request(.POST, "/api/v1/chats", json: ["other_user_id": me.userID], token: me.accessToken).status == 400)
        #expect(try await c.request(.POST, "/api/v1/chats", json: ["other_user_id": UUID().uuidString], token: me.accessToken).status == 404)
        #expect(try await c.request(.POST, "/api/v1/chats", json: ["participant_ids": [friends[2].userID]], token: me.accessToken).data["chat_id"] as? String == chats[2])
        #expect(try await c.request(.POST, "/api/v1/chats", json: ["type": "chatroom", "other_user_id": friends[2].userID], token: me.accessToken).status == 400)
        await s.stop()
    }

    @Test("history pages newest first, members only, with cursors")
    func history() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let b = try await c.login(testPhone())
        let chat = try await c.directChat(a, b)
        var ids: [String] = []
        for i in 0..<7 {
            ids.append(try #require(try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "m\(i)"), token: i % 2 == 0 ? a.accessToken : b.accessToken).data["message_id"] as? String))
        }
        var seen: [String] = []
        var cursor: String?
        repeat {
            let path = "/api/v1/chats/\(chat)/messages?limit=3" + (cursor.map { "&cursor=\($0)" } ?? "")
            let page = try await c.request(.GET, path, token: b.accessToken)
            #expect(page.status == 200)
            seen += (page.data["items"] as? [[String: Any]] ?? []).compactMap { $0["message_id"] as? String }
            cursor = page.data["nextCursor"] as? String
            #expect((page.data["hasMore"] as? Bool) == (cursor != nil))
        } while cursor != nil
        #expect(seen == ids.reversed())
        #expect(try await c.request(.GET, "/api/v1/messages", token: a.accessToken).status == 400)
        #expect(try await c.request(.GET, "/api/v1/messages?chat_id=nope", token: a.accessToken).status == 400)
        #expect(try await c.request(.GET, "/api/v1/messages?chat_id=\(chat)&cursor=zzz", token: a.accessToken).status == 400)
        // Replies must point into the same chat.
        let reply = try await c.request(.POST, "/api/v1/messages", json: ["chat_id": chat, "type": "text", "payload": ["body": "re"], "client_msg_id": "r1", "reply_to_message_id": ids[0]], token: b.accessToken)
        #expect(reply.status == 201)
        #expect(reply.data["reply_to_message_id"] as? String == ids[0])
        let badReply = try await c.request(.POST, "/api/v1/messages", json: ["chat_id": chat, "type": "text", "payload": ["body": "re"], "client_msg_id": "r2", "reply_to_message_id": "0000"], token: b.accessToken)
        #expect(badReply.status == 400)
        await s.stop()
    }
}
