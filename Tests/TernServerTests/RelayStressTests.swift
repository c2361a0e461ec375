import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Testing
import TernCore
import TernStore
import TernTestSupport
import TernWSClient

/// Client-side bookkeeping of a sender across crashes.
actor SendLedger {
    /// client_msg_id → message_id, for every `message.sent` received.
    private(set) var acked: [String: String] = [:]
    /// Sent but not acknowledged (to be re-sent after a reconnect), in order.
    private(set) var pending: [String] = []
    private var next = 0
    let prefix: String

    init(prefix: String) { self.prefix = prefix }

    func newID() -> String {
        next += 1
        let id = "\(prefix)-\(next)"
        pending.append(id)
        return id
    }

    func ack(_ cmid: String, _ messageID: String) {
        if let existing = acked[cmid] { precondition(existing == messageID, "one client id, two message ids") }
        acked[cmid] = messageID
        pending.removeAll { $0 == cmid }
    }
}

@Suite("Relay under stress", .serialized)
struct RelayStressTests {
    @Test("a client that stops reading is cut off, others keep flowing, and it gets everything after reconnecting", arguments: CommitMode.allCases)
    func slowConsumer(commits: CommitMode) async throws {
        let s = try await InProcessServer.start(commits: commits) { config in
            config.relayWindow = 100_000
            config.relaySlowConsumerGrace = .seconds(1)
            config.relaySlowConsumerBytes = 512 << 10
        }
        let c = s.client
        let a = try await c.login(testPhone())
        let b = try await c.login(testPhone())
        let x = try await c.login(testPhone())
        let y = try await c.login(testPhone())
        let slowChat = try await c.directChat(a, b)
        let fastChat = try await c.directChat(x, y)
        let wa = try await c.ws(a)
        let wb = try await WSTestClient.connect(port: c.port, token: b.accessToken, receiveBufferSize: 16 << 10)
        let wx = try await c.ws(x)
        let wy = try await c.ws(y)
        for ws in [wa, wb, wx, wy] { _ = await drained(ws) }
        // B stops reading from its socket.
        try await wb.connection.channel.setOption(ChannelOptions.autoRead, value: false).get()
        let body = String(repeating: "z", count: 4000)
        // More than the kernel buffers can absorb: B's receive buffer is fixed at 16 KiB, the
        // server's send buffer grows to tcp_wmem's maximum (4 MiB by default).
        let total = 2000
        for i in 0..<total { wa.send("message.send", textMessage(slowChat, "\(i) \(body)", id: "slow-\(i)")) }
        var acked = 0
        while acked < total, let frame = await wa.next(timeout: .seconds(30)) {
            if frame.event == "message.sent" { acked += 1 }
        }
        #expect(acked == total)
        // Meanwhile another pair is unaffected.
        let start = ContinuousClock.now
        wx.send("message.send", textMessage(fastChat, "still fast", id: "fast-1"))
        let got = await wy.next(event: "message.new")
        #expect(got.frame != nil)
        #expect(ContinuousClock.now - start < .seconds(5))
        // B's server side gives up on it.
        let bDevice = try await s.server.store.read { tx in try tx.device(user: TernID(b.userID)!, clientID: b.deviceID)!.number }
        let deadline = ContinuousClock.now + .seconds(30)
        while s.server.relay.registry.isOnline(device: bDevice) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(!s.server.relay.registry.isOnline(device: bDevice), "slow consumer still connected")
        await wb.connection.abort()
        // Reconnecting, B gets every message, in order, exactly as sent.
        let again = try await c.ws(b)
        var bodies: [Int] = []
        while let frame = await again.next() {
            if frame.event == "mailbox.drained" { break }
            guard frame.event == "message.new" else { continue }
            let text = (frame.data["payload"] as? [String: Any])?["body"] as? String ?? ""
            bodies.append(Int(text.split(separator: " ").first ?? "") ?? -1)
            again.send("message.delivered", ["message_id": frame.data["message_id"] as Any])
        }
        #expect(bodies.count == total)
        #expect(bodies == Array(0..<total), "first gap at \(zip(bodies, 0..<total).first { $0 != $1 }.map { "\($0)" } ?? "the end")")
        for ws in [wa, wx, wy, again] { await ws.close() }
        await s.stop()
    }

    @Test("kill -9 repeatedly while clients send: every acknowledged message reaches every recipient device, in order, once", arguments: CommitMode.allCases)
    func crashWhileSending(commits: CommitMode) async throws {
        let dir = TemporaryDirectory("tern-relay-crash")
        defer { dir.remove() }
        let data = dir.file("data")
        var server = try await ChildServer.start(dataDirectory: data, extraArguments: commits.arguments)
        var client = TestClient(port: server.port)
        // Two senders; each recipient has two devices, offline throughout.
        var senders: [TestSession] = []
        var recipients: [[TestSession]] = []
        var chats: [String] = []
        for i in 0..<2 {
            let sender = try await client.login(testPhone(), deviceID: "s\(i)")
            let phone = testPhone()
            let devices = [try await client.login(phone, deviceID: "r\(i)a"), try await client.login(phone, deviceID: "r\(i)b")]
            senders.append(sender)
            recipients.append(devices)
            chats.append(try await client.directChat(sender, devices[0]))
        }
        let ledgers = (0..<2).map { SendLedger(prefix: "s\($0)") }

        for round in 0..<3 {
            // Senders connect (with tokens still valid: same keys), re-send what was in flight,
            // then keep a window of 16 sends open until the server dies.
            let port = client.port
            let sendersNow = senders
            let chatsNow = chats
            let tasks = (0..<2).map { i in
                Task { () -> Int in
                    let ledger = ledgers[i]
                    let chats = chatsNow
                    guard let ws = try? await WSTestClient.connect(port: port, token: sendersNow[i].accessToken) else { return 0 }
                    for cmid in await ledger.pending { ws.send("message.send", textMessage(chats[i], cmid, id: cmid)) }
                    var inFlight = await ledger.pending.count
                    var acks = 0
                    while true {
                        while inFlight < 16 {
                            let cmid = await ledger.newID()
                            ws.send("message.send", textMessage(chats[i], cmid, id: cmid))
                            inFlight += 1
                        }
                        guard let frame = await ws.next(timeout: .seconds(5)), frame.event != "__closed__" else { break }
                        if frame.event == "message.sent", let cmid = frame.data["client_msg_id"] as? String,
                            let id = frame.data["message_id"] as? String
                        {
                            await ledger.ack(cmid, id)
                            inFlight -= 1
                            acks += 1
                        }
                    }
                    return acks
                }
            }
            // Kill after a number of acknowledgements (not a duration).
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                var total = 0
                for ledger in ledgers { total += await ledger.acked.count }
                if total >= (round + 1) * 150 { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            server.kill9()
            for task in tasks { _ = await task.value }
            await client.shutdown()
            server = try await ChildServer.start(dataDirectory: data, extraArguments: commits.arguments)
            client = TestClient(port: server.port)
        }

        // Every recipient device drains its mailbox: everything acknowledged is there, in
        // each chat's order, and each client_msg_id maps to one message.
        for i in 0..<2 {
            let acked = await ledgers[i].acked
            #expect(acked.count >= 150)
            for device in recipients[i] {
                let ws = try await WSTestClient.connect(port: client.port, token: device.accessToken)
                var ids: [String] = []
                var cmids: [String: String] = [:]
                while let frame = await ws.next(timeout: .seconds(20)) {
                    if frame.event == "mailbox.drained" { break }
                    guard frame.event == "message.new" else { continue }
                    let id = frame.data["message_id"] as? String ?? ""
                    let cmid = frame.data["client_msg_id"] as? String ?? ""
                    if let earlier = cmids[cmid] { #expect(earlier == id, "client id \(cmid) stored twice") }
                    cmids[cmid] = id
                    ids.append(id)
                    if let seq = frame.seq { ws.send("ack", ["seq": seq]) }
                }
                #expect(Set(ids).count == ids.count, "a message was delivered twice in one drain")
                for (cmid, id) in acked {
                    #expect(cmids[cmid] == id, "acknowledged \(cmid) missing from \(device.deviceID)")
                }
                // Mailbox order is chat order.
                let seqs = ids.compactMap { MessageID($0)?.seq }
                #expect(seqs == seqs.sorted())
                await ws.close()
            }
        }
        // Who committed: the event loops only in loop mode.
        let loopCommits = metricValue(try await client.request(.GET, "/metrics").body, "tern_store_loop_commits_total") ?? 0
        #expect(commits == .loop ? loopCommits > 0 : loopCommits == 0, "\(loopCommits) loop commits")
        await client.shutdown()
        #expect(server.terminate() == 0)
    }
}
