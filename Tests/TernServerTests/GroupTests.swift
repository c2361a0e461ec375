import Foundation
import Testing
import NIOPosix
import TernCore
@testable import TernRelay
import TernStore
import TernTestSupport

extension TestClient {
    /// Creates a group owned by `owner` with `members`; returns its id.
    func group(_ owner: TestSession, name: String = "Team", _ members: [TestSession]) async throws -> String {
        let r = try await request(.POST, "/api/v1/chats", json: ["type": "group", "name": name, "participant_ids": members.map(\.userID)], token: owner.accessToken)
        try #require(r.status == 201, "create group: \(r.body)")
        return try #require(r.data["chat_id"] as? String)
    }

    /// `count` logged-in users, a few at a time.
    func users(_ count: Int) async throws -> [TestSession] {
        var out: [TestSession] = []
        var next = 0
        while next < count {
            let batch = min(16, count - next)
            out += try await withThrowingTaskGroup(of: TestSession.self) { group in
                for _ in 0..<batch { group.addTask { try await self.login(testPhone()) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            next += batch
        }
        return out
    }
}

/// What a device's mailbox holds, read from the store.
func mailbox(_ s: InProcessServer, _ user: TestSession) async throws -> [(seq: UInt64, entry: MailboxEntry)] {
    try await s.server.store.read { tx in
        let device = try tx.device(user: TernID(user.userID)!, clientID: user.deviceID)!.number
        return try tx.mailbox(device: device, after: 0, limit: 1_000_000)
    }
}

@Suite("Groups: routes, roles, invariants")
struct GroupRouteTests {
    @Test("create, get, update, members, add, remove, leave, roles — and every rejection")
    func routesAndRejections() async throws {
        let s = try await InProcessServer.start { $0.groupMaxMembers = 4 }
        let c = s.client
        let users = try await c.users(6)
        let (a, b, cc, d, e, outsider) = (users[0], users[1], users[2], users[3], users[4], users[5])

        // Create: name rules, member ids, size.
        var r = try await c.request(.POST, "/api/v1/chats", json: ["type": "group", "participant_ids": [b.userID]], token: a.accessToken)
        #expect(r.status == 400 && r.errorCode == "VALIDATION_ERROR")
        r = try await c.request(.POST, "/api/v1/chats", json: ["type": "group", "name": "   ", "participant_ids": [b.userID]], token: a.accessToken)
        #expect(r.status == 400)
        r = try await c.request(.POST, "/api/v1/chats", json: ["name": String(repeating: "n", count: 101), "participant_ids": [b.userID]], token: a.accessToken)
        #expect(r.status == 400 && (r.errorMessage ?? "").contains("name"))
        r = try await c.request(.POST, "/api/v1/chats", json: ["type": "group", "name": "x", "participant_ids": ["nope"]], token: a.accessToken)
        #expect(r.status == 400)
        r = try await c.request(.POST, "/api/v1/chats", json: ["type": "group", "name": "x", "participant_ids": [UUID().uuidString]], token: a.accessToken)
        #expect(r.status == 404)
        r = try await c.request(.POST, "/api/v1/chats", json: ["type": "group", "name": "x", "participant_ids": [b, cc, d, e].map(\.userID)], token: a.accessToken)
        #expect(r.status == 400 && (r.errorMessage ?? "").contains("at most 4"))
        r = try await c.request(.POST, "/api/v1/chats", json: ["type": "group", "name": "x", "description": 7, "participant_ids": [b.userID]], token: a.accessToken)
        #expect(r.status == 400)

        // A group without "type" but with a name (the seed's rule), duplicates and the creator ignored.
        r = try await c.request(.POST, "/api/v1/chats", json: ["name": "Team", "description": "d", "member_ids": [b.userID, b.userID, a.userID, cc.userID]], token: a.accessToken)
        #expect(r.status == 201)
        let chat = try #require(r.data["chat_id"] as? String)
        #expect(r.data["type"] as? String == "group")
        let participants = try #require(r.data["participants"] as? [[String: Any]])
        #expect(participants.count == 3)
        #expect(participants.first { $0["user_id"] as? String == a.userID }?["role"] as? String == "admin")
        #expect(participants.first { $0["user_id"] as? String == b.userID }?["role"] as? String == "member")

        // Get and members: members only.
        #expect(try await c.request(.GET, "/api/v1/chats/\(chat)", token: b.accessToken).data["name"] as? String == "Team")
        #expect(try await c.request(.GET, "/api/v1/chats/\(chat)", token: outsider.accessToken).status == 403)
        r = try await c.request(.GET, "/api/v1/chats/\(chat)/participants", token: b.accessToken)
        #expect(r.status == 200 && (r.data["items"] as? [[String: Any]])?.count == 3)
        #expect(try await c.request(.GET, "/api/v1/chats/\(chat)/participants", token: outsider.accessToken).errorCode == "NOT_CHAT_MEMBER")
        #expect(try await c.request(.GET, "/api/v1/chats/\(UUID().uuidString)/participants", token: a.accessToken).status == 404)

        // Update: admins only, validated, not on direct chats, not empty.
        #expect(try await c.request(.PATCH, "/api/v1/chats/\(chat)", json: ["name": "B's"], token: b.accessToken).errorCode == "NOT_ADMIN")
        #expect(try await c.request(.PATCH, "/api/v1/chats/\(chat)", json: ["name": "O"], token: outsider.accessToken).errorCode == "NOT_CHAT_MEMBER")
        #expect(try await c.request(.PATCH, "/api/v1/chats/\(UUID().uuidString)", json: ["name": "O"], token: a.accessToken).status == 404)
        #expect(try await c.request(.PATCH, "/api/v1/chats/\(chat)", json: [String: Any](), token: a.accessToken).status == 400)
        #expect(try await c.request(.PATCH, "/api/v1/chats/\(chat)", json: ["is_admin_only": "yes"], token: a.accessToken).status == 400)
        #expect(try await c.request(.PATCH, "/api/v1/chats/\(chat)", json: ["avatar_url": "not a url"], token: a.accessToken).status == 400)
        let direct = try await c.directChat(a, b)
        #expect(try await c.request(.PATCH, "/api/v1/chats/\(direct)", json: ["name": "x"], token: a.accessToken).status == 400)
        #expect(try await c.request(.POST, "/api/v1/chats/\(direct)/participants", json: ["user_id": d.userID], token: a.accessToken).status == 400)
        r = try await c.request(.PATCH, "/api/v1/chats/\(chat)", json: ["name": "Renamed", "description": "new", "avatar_url": "https://cdn.example/a.png", "is_admin_only": true], token: a.accessToken)
        #expect(r.status == 204)
        r = try await c.request(.GET, "/api/v1/chats/\(chat)", token: b.accessToken)
        #expect(r.data["name"] as? String == "Renamed" && r.data["description"] as? String == "new")
        #expect(r.data["avatar_url"] as? String == "https://cdn.example/a.png" && r.data["is_admin_only"] as? Bool == true)

        // Add: admins only; {user_id} and {user_ids}; 409 for members; 404 unknown; size cap; all or nothing.
        #expect(try await c.request(.POST, "/api/v1/chats/\(chat)/participants", json: ["user_id": d.userID], token: b.accessToken).errorCode == "NOT_ADMIN")
        #expect(try await c.request(.POST, "/api/v1/chats/\(chat)/participants", json: ["user_id": b.userID], token: a.accessToken).errorCode == "ALREADY_MEMBER")
        #expect(try await c.request(.POST, "/api/v1/chats/\(chat)/participants", json: ["user_ids": [d.userID, b.userID]], token: a.accessToken).status == 409)
        #expect(try await c.request(.POST, "/api/v1/chats/\(chat)/participants", json: ["user_id": UUID().uuidString], token: a.accessToken).status == 404)
        #expect(try await c.request(.POST, "/api/v1/chats/\(chat)/participants", json: ["user_id": "x"], token: a.accessToken).status == 400)
        #expect(try await c.request(.POST, "/api/v1/chats/\(chat)/participants", json: [String: Any](), token: a.accessToken).status == 400)
        r = try await c.request(.POST, "/api/v1/chats/\(chat)/participants", json: ["user_ids": [d.userID, e.userID]], token: a.accessToken)
        #expect(r.status == 400 && (r.errorMessage ?? "").contains("at most 4"))
        #expect(try await c.request(.GET, "/api/v1/chats/\(chat)", token: d.accessToken).status == 403)  // nothing was added
        #expect(try await c.request(.POST, "/api/v1/chats/\(chat)/participants", json: ["user_ids": [d.userID]], token: a.accessToken).status == 204)
        #expect(try await c.request(.GET, "/api/v1/chats/\(chat)", token: d.accessToken).status == 200)

        // Roles: admins only, valid roles, members only, the last admin stays.
        let role = "/api/v1/chats/\(chat)/participants"
        #expect(try await c.request(.PATCH, "\(role)/\(cc.userID)/role", json: ["role": "admin"], token: b.accessToken).errorCode == "NOT_ADMIN")
        #expect(try await c.request(.PATCH, "\(role)/\(cc.userID)/role", json: ["role": "owner"], token: a.accessToken).status == 400)
        #expect(try await c.request(.PATCH, "\(role)/\(outsider.userID)/role", json: ["role": "admin"], token: a.accessToken).status == 404)
        r = try await c.request(.PATCH, "\(role)/\(a.userID)/role", json: ["role": "member"], token: a.accessToken)
        #expect(r.status == 409 && r.errorCode == "CONFLICT")
        #expect(try await c.request(.PATCH, "\(role)/\(cc.userID)/role", json: ["role": "admin"], token: a.accessToken).status == 204)
        #expect(try await c.request(.PATCH, "\(role)/\(a.userID)/role", json: ["role": "member"], token: a.accessToken).status == 204)
        #expect(try await c.request(.PATCH, "\(role)/\(cc.userID)/role", json: ["role": "member"], token: cc.accessToken).status == 409)

        // Remove: admins remove others, anyone leaves, 404 for non-members.
        #expect(try await c.request(.DELETE, "\(role)/\(d.userID)", token: b.accessToken).errorCode == "NOT_ADMIN")
        #expect(try await c.request(.DELETE, "\(role)/\(outsider.userID)", token: cc.accessToken).status == 404)
        #expect(try await c.request(.DELETE, "\(role)/\(d.userID)", token: outsider.accessToken).errorCode == "NOT_CHAT_MEMBER")
        #expect(try await c.request(.DELETE, "\(role)/\(d.userID)", token: cc.accessToken).status == 204)
        #expect(try await c.request(.GET, "/api/v1/chats/\(chat)", token: d.accessToken).status == 403)
        #expect(try await c.request(.DELETE, "\(role)/\(b.userID)", token: b.accessToken).status == 204)  // leave
        // cc (admin) leaves as the last admin: a (longest-standing remaining member) is promoted.
        #expect(try await c.request(.DELETE, "\(role)/\(cc.userID)", token: cc.accessToken).status == 204)
        r = try await c.request(.GET, "/api/v1/chats/\(chat)/participants", token: a.accessToken)
        let left = try #require(r.data["items"] as? [[String: Any]])
        #expect(left.count == 1 && left[0]["user_id"] as? String == a.userID && left[0]["role"] as? String == "admin")
        await s.stop()
    }

    @Test("when the last admin leaves, the longest-standing member becomes admin and everyone is told")
    func lastAdminLeaves() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let users = try await c.users(4)
        let (a, b, cc, d) = (users[0], users[1], users[2], users[3])
        let chat = try await c.group(a, [b])
        // cc joins later than b, d later than cc.
        #expect(try await c.request(.POST, "/api/v1/chats/\(chat)/participants", json: ["user_id": cc.userID], token: a.accessToken).status == 204)
        #expect(try await c.request(.POST, "/api/v1/chats/\(chat)/participants", json: ["user_id": d.userID], token: a.accessToken).status == 204)
        #expect(try await c.request(.DELETE, "/api/v1/chats/\(chat)/participants/\(a.userID)", token: a.accessToken).status == 204)
        let listed = try await c.request(.GET, "/api/v1/chats/\(chat)/participants", token: b.accessToken)
        let members = try #require(listed.data["items"] as? [[String: Any]])
        let admins = members.filter { $0["role"] as? String == "admin" }.compactMap { $0["user_id"] as? String }
        #expect(admins == [b.userID])
        // d, offline all along, finds both events in its mailbox: a left, then b promoted.
        let ws = try await c.ws(d)
        let leftFrame = try #require(await ws.next(event: "group.member.left").frame)
        #expect((leftFrame["data"] as? [String: Any])?["user_id"] as? String == a.userID)
        let promoted = try #require(await ws.next(event: "group.member.role_changed").frame?["data"] as? [String: Any])
        #expect(promoted["user_id"] as? String == b.userID && promoted["role"] as? String == "admin" && promoted["automatic"] as? Bool == true)
        await ws.close()
        await s.stop()
    }
}

@Suite("Groups: fan-out, events, receipts")
struct GroupFanOutTests {
    @Test("offline members get the backlog with the group's events in order; a removed member gets their removal, then nothing")
    func backlogWithEvents() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let users = try await c.users(4)
        let (a, b, cc, d) = (users[0], users[1], users[2], users[3])
        let chat = try await c.group(a, name: "Trip", [b, cc])
        let sender = try await c.ws(a)
        _ = await sender.next(event: "mailbox.drained")
        func send(_ body: String) async throws {
            sender.send("message.send", textMessage(chat, body))
            #expect(await sender.next(event: "message.sent").frame != nil)
        }
        try await send("m1")
        #expect(try await c.request(.POST, "/api/v1/chats/\(chat)/participants", json: ["user_ids": [d.userID]], token: a.accessToken).status == 204)
        #expect(try await c.request(.PATCH, "/api/v1/chats/\(chat)", json: ["name": "Trip 2"], token: a.accessToken).status == 204)
        try await send("m2")
        #expect(try await c.request(.DELETE, "/api/v1/chats/\(chat)/participants/\(cc.userID)", token: a.accessToken).status == 204)
        try await send("m3")

        func timeline(_ user: TestSession) async throws -> [String] {
            let ws = try await c.ws(user)
            var seen: [String] = []
            var lastSeq = 0
            while let frame = await ws.next() {
                let event = frame["event"] as? String ?? "?"
                if event == "mailbox.drained" { break }
                let seq = frame["seq"] as? Int ?? 0
                #expect(seq > lastSeq, "mailbox order")
                lastSeq = seq
                let data = frame["data"] as? [String: Any] ?? [:]
                #expect(data["chat_id"] as? String == chat)
                seen.append(event == "message.new" ? ((data["payload"] as? [String: Any])?["body"] as? String ?? "?") : event)
            }
            ws.send("ack", ["seq": lastSeq])
            await ws.close()
            return seen
        }
        #expect(try await timeline(b) == ["chat.created", "m1", "group.member.added", "chat.updated", "m2", "group.member.removed", "m3"])
        #expect(try await timeline(cc) == ["chat.created", "m1", "group.member.added", "chat.updated", "m2", "group.member.removed"])
        #expect(try await timeline(d) == ["group.member.added", "chat.updated", "m2", "group.member.removed", "m3"])
        // The sender's own device got the events too (it is a member), in the same order.
        let own = try await mailbox(s, a).map(\.entry.event)
        #expect(own.isEmpty || own.allSatisfy { $0 != "message.new" })

        // History: the events are system messages; d sees from its own addition on.
        let history = try await c.request(.GET, "/api/v1/messages?chat_id=\(chat)&limit=50", token: d.accessToken)
        let items = try #require(history.data["items"] as? [[String: Any]])
        #expect(items.map { $0["type"] as? String ?? "" } == ["text", "system", "text", "system", "system"])
        #expect((items.last?["payload"] as? [String: Any])?["event"] as? String == "group.member.added")
        // System messages are not unread.
        let list = try await c.request(.GET, "/api/v1/chats", token: d.accessToken)
        let entry = try #require((list.data["items"] as? [[String: Any]])?.first { $0["chat_id"] as? String == chat })
        #expect(entry["unread_count"] as? Int == 2)
        #expect(try await c.request(.GET, "/api/v1/messages?chat_id=\(chat)", token: cc.accessToken).status == 403)
        await sender.close()
        await s.stop()
    }

    @Test("receipts per member: the sender's aggregate is the minimum, the receipts route lists every member", arguments: CommitMode.allCases)
    func perMemberReceipts(commits: CommitMode) async throws {
        let s = try await InProcessServer.start(commits: commits)
        let c = s.client
        let users = try await c.users(3)
        let (a, b, cc) = (users[0], users[1], users[2])
        let chat = try await c.group(a, [b, cc])
        let wa = try await c.ws(a)
        _ = await wa.next(event: "mailbox.drained")
        wa.send("message.send", textMessage(chat, "hello"))
        let id = try #require((await wa.next(event: "message.sent").frame?["data"] as? [String: Any])?["message_id"] as? String)

        func status() async -> (user: String, status: String, aggregate: String)? {
            guard let data = await wa.next(event: "message.status").frame?["data"] as? [String: Any] else { return nil }
            return (data["user_id"] as? String ?? "", data["status"] as? String ?? "", data["aggregate_status"] as? String ?? "")
        }
        let wb = try await c.ws(b)
        _ = await wb.next(event: "message.new")
        wb.send("message.delivered", ["message_id": id])
        var st = await status()
        #expect(st?.user == b.userID && st?.status == "delivered" && st?.aggregate == "sent")
        wb.send("message.read", ["message_id": id, "chat_id": chat])
        st = await status()
        #expect(st?.status == "read" && st?.aggregate == "sent")  // one reader does not make it read
        let wc = try await c.ws(cc)
        _ = await wc.next(event: "message.new")
        wc.send("message.delivered", ["message_id": id])
        st = await status()
        #expect(st?.user == cc.userID && st?.aggregate == "delivered")
        let receipts = try await c.request(.GET, "/api/v1/messages/\(id)/receipts", token: b.accessToken)
        let rows = receipts.dataArray.reduce(into: [String: String]()) { $0[$1["user_id"] as? String ?? ""] = $1["status"] as? String }
        #expect(rows == [b.userID: "read", cc.userID: "delivered"])
        wc.send("message.read", ["message_id": id, "chat_id": chat])
        st = await status()
        #expect(st?.aggregate == "read")
        let outsider = try await c.login(testPhone())
        #expect(try await c.request(.GET, "/api/v1/messages/\(id)/receipts", token: outsider.accessToken).status == 404)
        for ws in [wa, wb, wc] { await ws.close() }
        await s.stop()
    }

    @Test("members acknowledging in the same write give the sender one message.status listing them all", arguments: CommitMode.allCases)
    func coalescedReceipts(commits: CommitMode) async throws {
        let s = try await InProcessServer.start(commits: commits)
        let c = s.client
        let users = try await c.users(4)
        let sender = users[0]
        let members = Array(users[1...])
        let chat = try await c.group(sender, members)
        let ws = try await c.ws(sender)
        _ = await ws.next(event: "mailbox.drained")
        ws.send("message.send", textMessage(chat, "to all"))
        let raw = try #require((await ws.next(event: "message.sent").frame?.data)?["message_id"] as? String)
        let id = try #require(MessageID(raw))
        await ws.close()
        while s.server.relay.registry.isOnline(user: TernID(sender.userID)!) { try await Task.sleep(for: .milliseconds(10)) }
        let before = try await mailbox(s, sender).count
        // Three members' acknowledgements in one loop pass: one write request.
        var identities: [(DeviceIdentity, UInt64)] = []
        for member in members {
            let entry = try #require(try await mailbox(s, member).first { $0.entry.kind == .message && $0.entry.message == id })
            let number = try await s.server.store.read { tx in try tx.device(user: TernID(member.userID)!, clientID: member.deviceID)!.number }
            identities.append((DeviceIdentity(user: TernID(member.userID)!, deviceNumber: number, deviceID: member.deviceID, session: TernID.random()), entry.seq))
        }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let relay = s.server.relay
        try await loop.submit {
            for (identity, seq) in identities {
                relay.acknowledge(identity: identity, items: [AckItem(seq: seq, message: id)], upTo: 0, on: loop)
            }
        }.get()
        var stored: [MailboxEntry] = []
        for _ in 0..<500 {
            stored = try await mailbox(s, sender).dropFirst(before).map(\.entry).filter { $0.kind == .receipt }
            if !stored.isEmpty { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        try #require(stored.count == 1, "\(stored.count) receipt frames")
        let data = try #require(try JSONSerialization.jsonObject(with: Data(stored[0].data)) as? [String: Any])
        let listed = (data["receipts"] as? [[String: Any]] ?? []).compactMap { $0["user_id"] as? String }
        #expect(Set(listed) == Set(members.map(\.userID)) && listed.count == 3)
        #expect(data["user_id"] as? String == listed.last && data["status"] as? String == "delivered")
        #expect(data["aggregate_status"] as? String == "delivered")
        // The sender reconnects and receives it.
        let again = try await c.ws(sender)
        let frame = try #require(await again.next(event: "message.status").frame)
        #expect((frame.data["receipts"] as? [[String: Any]])?.count == 3)

        // Connected sender: acknowledgements from two event loops, in two write requests of
        // one commit (the writer is held while both are queued), still make one frame.
        again.send("message.send", textMessage(chat, "again"))
        let raw2 = try #require((await again.next(event: "message.sent").frame?.data)?["message_id"] as? String)
        let id2 = try #require(MessageID(raw2))
        var seqs: [UInt64] = []
        for member in members {
            seqs.append(try #require(try await mailbox(s, member).first { $0.entry.message == id2 }?.seq))
        }
        let held = DispatchSemaphore(value: 0)
        let holding = DispatchSemaphore(value: 0)
        s.server.store.submit({ _ in
            holding.signal()
            held.wait()
        }) { _ in }
        holding.wait()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(group.makeIterator())
        for (index, (identity, _)) in identities.enumerated() {
            let loop = loops[index == 0 ? 0 : 1]
            let seq = seqs[index]
            try await loop.submit { relay.acknowledge(identity: identity, items: [AckItem(seq: seq, message: id2)], upTo: 0, on: loop) }.get()
        }
        for loop in loops { try await loop.submit {}.get() }  // their write requests are queued now
        held.signal()
        let live = try #require(await again.next(event: "message.status").frame)
        #expect(live.data["message_id"] as? String == raw2)
        #expect(Set((live.data["receipts"] as? [[String: Any]] ?? []).compactMap { $0["user_id"] as? String }) == Set(members.map(\.userID)))
        #expect(live.data["aggregate_status"] as? String == "delivered")
        #expect(await again.drain(for: .milliseconds(300)).filter { $0.event == "message.status" }.isEmpty)
        try await group.shutdownGracefully()
        await again.close()
        await s.stop()
    }

    @Test("typing in a group reaches the online member devices, never a removed member or the store")
    func groupTyping() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let users = try await c.users(4)
        let (a, b, cc, d) = (users[0], users[1], users[2], users[3])
        let chat = try await c.group(a, [b, cc, d])
        #expect(try await c.request(.DELETE, "/api/v1/chats/\(chat)/participants/\(d.userID)", token: a.accessToken).status == 204)
        let clients = [try await c.ws(a), try await c.ws(b), try await c.ws(d)]
        for ws in clients { _ = await ws.next(event: "mailbox.drained") }
        let before = try await mailbox(s, cc).count
        clients[0].send("typing.start", ["chat_id": chat])
        let typing = try #require(await clients[1].next(event: "typing").frame?["data"] as? [String: Any])
        #expect(typing["user_id"] as? String == a.userID && typing["typing"] as? Bool == true)
        #expect(await clients[2].drain(for: .milliseconds(300)).filter { $0["event"] as? String == "typing" }.isEmpty)
        #expect(try await mailbox(s, cc).count == before)  // cc is offline: nothing stored
        clients[2].send("typing.start", ["chat_id": chat])
        #expect((await clients[2].next(event: "error").frame?["data"] as? [String: Any])?["code"] as? String == "NOT_CHAT_MEMBER")
        for ws in clients { await ws.close() }
        await s.stop()
    }

    @Test("admin-only mode fails closed: a member's send is refused and nothing is stored")
    func adminOnly() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let users = try await c.users(2)
        let (a, b) = (users[0], users[1])
        let chat = try await c.group(a, [b])
        #expect(try await c.request(.PATCH, "/api/v1/chats/\(chat)", json: ["is_admin_only": true], token: a.accessToken).status == 204)
        let wb = try await c.ws(b)
        _ = await wb.next(event: "mailbox.drained")
        wb.send("message.send", textMessage(chat, "may I?", id: "b-1"))
        let error = try #require(await wb.next(event: "error").frame?["data"] as? [String: Any])
        #expect(error["code"] as? String == "NOT_ADMIN")
        let rest = try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "REST?"), token: b.accessToken)
        #expect(rest.status == 403 && rest.errorCode == "NOT_ADMIN")
        let history = try await c.request(.GET, "/api/v1/messages?chat_id=\(chat)", token: a.accessToken)
        #expect((history.data["items"] as? [[String: Any]])?.allSatisfy { $0["type"] as? String == "system" } == true)
        // The admin may send; after switching the mode off, so may b.
        #expect(try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "admin"), token: a.accessToken).status == 201)
        #expect(try await c.request(.PATCH, "/api/v1/chats/\(chat)", json: ["is_admin_only": false], token: a.accessToken).status == 204)
        wb.send("message.send", textMessage(chat, "now?", id: "b-2"))
        #expect(await wb.next(event: "message.sent").frame != nil)
        await wb.close()
        await s.stop()
    }

    @Test("membership as of each commit: sends racing adds, removes and admin-only switches (many rounds)", arguments: CommitMode.allCases)
    func membershipAtCommit(commits: CommitMode) async throws {
        let s = try await InProcessServer.start(commits: commits)
        let c = s.client
        let users = try await c.users(5)
        let (admin, member) = (users[0], users[1])
        let floaters = Array(users[2...])  // added and removed while messages fly; never connected
        let chat = try await c.group(admin, [member])
        let wsAdmin = try await c.ws(admin)
        let wsMember = try await c.ws(member)
        _ = await wsAdmin.next(event: "mailbox.drained")
        _ = await wsMember.next(event: "mailbox.drained")
        var expectedSends = 0
        for round in 0..<6 {
            // Pipelined sends from both while the admin changes the group over REST.
            let changes = Task {
                for (i, user) in floaters.enumerated() {
                    _ = try await c.request(.POST, "/api/v1/chats/\(chat)/participants", json: ["user_id": user.userID], token: admin.accessToken)
                    if (i + round) % 2 == 0 { _ = try await c.request(.PATCH, "/api/v1/chats/\(chat)", json: ["is_admin_only": true], token: admin.accessToken) }
                    _ = try await c.request(.DELETE, "/api/v1/chats/\(chat)/participants/\(floaters[(i + round) % floaters.count].userID)", token: admin.accessToken)
                    _ = try await c.request(.PATCH, "/api/v1/chats/\(chat)", json: ["is_admin_only": false], token: admin.accessToken)
                }
            }
            for i in 0..<40 {
                wsAdmin.send("message.send", textMessage(chat, "a\(round)-\(i)"))
                wsMember.send("message.send", textMessage(chat, "m\(round)-\(i)"))
                if i % 8 == 0 { await Task.yield() }
            }
            expectedSends += 80
            try await changes.value
            for user in floaters { _ = try await c.request(.DELETE, "/api/v1/chats/\(chat)/participants/\(user.userID)", token: admin.accessToken) }
        }
        // Every send is answered (sent or NOT_ADMIN) before we look.
        var answered = 0
        for ws in [wsAdmin, wsMember] {
            var n = 0
            while n < expectedSends / 2, let frame = await ws.next() {
                let event = frame["event"] as? String
                if event == "message.sent" || event == "error" { n += 1 }
            }
            answered += n
        }
        #expect(answered == expectedSends)

        // Replay the history: system messages say who was a member and whether admin-only was on
        // at each point; every message must be in exactly the mailboxes of the members then.
        let history = try await s.server.store.read { tx in
            try tx.messages(chat: TernID(chat)!, from: 1, to: UInt64.max, newestFirst: false, limit: 1_000_000)
        }
        var members: Set<String> = []
        var adminOnly = false
        var expected: [String: Set<UInt64>] = [:]
        var regular = 0
        for (seq, record) in history {
            if record.isSystem {
                let object = try JSONSerialization.jsonObject(with: Data(record.payload))
                let payload = try #require(object as? [String: Any])
                switch payload["event"] as? String {
                case "chat.created":
                    members = Set((payload["participants"] as? [[String: Any]] ?? []).compactMap { $0["user_id"] as? String })
                case "group.member.added": members.formUnion(payload["user_ids"] as? [String] ?? [])
                case "group.member.removed", "group.member.left": members.remove(payload["user_id"] as? String ?? "")
                case "chat.updated": adminOnly = payload["is_admin_only"] as? Bool ?? adminOnly
                default: break
                }
                continue
            }
            regular += 1
            #expect(!(adminOnly && record.sender.description == member.userID), "a member's message was stored in admin-only mode")
            for user in members where user != record.sender.description { expected[user, default: []].insert(seq) }
        }
        #expect(regular > 0)
        for user in floaters {
            let got = try await mailbox(s, user).filter { $0.entry.kind == .message }.map(\.entry.message.seq)
            #expect(got.count == Set(got).count, "no message twice")
            #expect(Set(got) == expected[user.userID, default: []], "mailbox of \(user.userID) matches membership at each commit")
        }
        await wsAdmin.close()
        await wsMember.close()
        await s.stop()
    }

    @Test("a message to a 1,024-member group lands in every member device's mailbox exactly once")
    func thousandMembers() async throws {
        let s = try await InProcessServer.start {
            $0.otpIPLimit = .per(.hours(1), 100_000)
            $0.storeMapSize = 256 << 20
        }
        let c = s.client
        let users = try await c.users(1024)
        let owner = users[0]
        let chat = try await c.group(owner, name: "Everyone", Array(users[1...]))
        // One more is refused: the group is full.
        let extra = try await c.login(testPhone())
        let full = try await c.request(.POST, "/api/v1/chats/\(chat)/participants", json: ["user_id": extra.userID], token: owner.accessToken)
        #expect(full.status == 400)
        let sent = try await c.request(.POST, "/api/v1/messages", json: textMessage(chat, "hi all"), token: owner.accessToken)
        #expect(sent.status == 201)
        let rawID = try #require(sent.data["message_id"] as? String)
        let id = try #require(MessageID(rawID))
        let counts = try await s.server.store.read { tx -> [Int] in
            try users.dropFirst().map { user in
                let device = try tx.device(user: TernID(user.userID)!, clientID: user.deviceID)!.number
                return try tx.mailbox(device: device, after: 0, limit: 10_000).filter { $0.entry.message == id }.count
            }
        }
        #expect(counts.count == 1023)
        #expect(counts.allSatisfy { $0 == 1 })
        #expect(try await mailbox(s, owner).filter { $0.entry.message == id }.isEmpty)  // the sender's only device sent it
        await s.stop()
    }
}
