import Foundation
import Logging
import Testing
import TernCore
import TernStore
import TernTestSupport
import TernWSClient

/// Runs a `tern` operator command against `data`; returns status and stdout parsed as JSON
/// (when `--json` is among the arguments).
func ops(_ arguments: [String], data: String) throws -> (status: Int32, json: Any?, out: String, err: String) {
    let r = try runTern(arguments + ["--data", data])
    let json = arguments.contains("--json") ? try? JSONSerialization.jsonObject(with: Data(r.out.utf8)) : nil
    return (r.status, json, r.out, "\(r.err)")
}

/// Sends text messages over REST until stopped; remembers the ids the server acknowledged.
actor SendLoop {
    private(set) var acknowledged: [String] = []
    private var stopped = false

    func stop() { stopped = true }
    var isStopped: Bool { stopped }
    func record(_ id: String) { acknowledged.append(id) }

    /// Runs in the background until `stop()`.
    nonisolated func start(_ client: TestClient, _ sender: TestSession, chat: String) -> Task<Void, Never> {
        Task {
            var n = 0
            while await !self.isStopped {
                n += 1
                guard let r = try? await client.request(.POST, "/api/v1/messages", json: textMessage(chat, "load \(n)"), token: sender.accessToken)
                else { continue }
                if r.status == 201 || r.status == 200, let id = r.data["message_id"] as? String { await self.record(id) }
            }
        }
    }
}

/// The device number of `user`'s device, from `tern devices list`.
func deviceNumber(_ user: TestSession, data: String) throws -> Int {
    let r = try ops(["devices", "list", "--user", user.userID, "--json"], data: data)
    let rows = try #require((r.json as? [String: Any])?["rows"] as? [[String: Any]], "\(r.err)")
    return try #require(rows.first { $0["client_device_id"] as? String == user.deviceID }?["device"] as? Int)
}

@Suite("Operator tools against a live server", .serialized)
struct OpsTests {
    @Test("mailbox, users, devices, chats, stats and check read a live store while traffic runs")
    func inspectLiveStore() async throws {
        let dir = TemporaryDirectory("tern-ops")
        defer { dir.remove() }
        let data = dir.file("data")
        let server = try await ChildServer.start(dataDirectory: data)
        let client = TestClient(port: server.port)
        let users = try await client.users(5)
        let (a, b, c, d, e) = (users[0], users[1], users[2], users[3], users[4])

        // Traffic between d and e all along.
        let load = SendLoop()
        let loadTask = load.start(client, d, chat: try await client.directChat(d, e))

        // b and c stay offline: what a sends waits in their mailboxes.
        let direct = try await client.directChat(a, b)
        var sent: [String] = []
        for i in 1...5 {
            let r = try await client.request(.POST, "/api/v1/messages", json: textMessage(direct, "m\(i)"), token: a.accessToken)
            sent.append(try #require(r.data["message_id"] as? String, "\(r.body)"))
        }
        let group = try await client.group(a, name: "Ops", [b, c])
        var groupSent: [String] = []
        for i in 1...2 {
            let r = try await client.request(.POST, "/api/v1/messages", json: textMessage(group, "g\(i)"), token: a.accessToken)
            groupSent.append(try #require(r.data["message_id"] as? String, "\(r.body)"))
        }
        let bDevice = try deviceNumber(b, data: data)
        let cDevice = try deviceNumber(c, data: data)

        // mailbox list: b has 5 direct messages, the group's creation event and 2 group messages.
        var r = try ops(["mailbox", "list", "--json", "--user", b.userID], data: data)
        #expect(r.status == 0, "\(r.err)")
        var rows = (r.json as? [String: Any])?["rows"] as? [[String: Any]] ?? []
        #expect(rows.count == 1)
        #expect(rows.first?["device"] as? Int == bDevice)
        #expect(rows.first?["pending"] as? Int == 8)
        #expect((rows.first?["bytes"] as? Int ?? 0) > 8 * 100)
        #expect(rows.first?["oldest_age_seconds"] as? Int != nil)

        r = try ops(["mailbox", "list", "--json", "--sort", "pending", "--limit", "1000"], data: data)
        rows = (r.json as? [String: Any])?["rows"] as? [[String: Any]] ?? []
        let byDevice = Dictionary(rows.map { ($0["device"] as? Int ?? 0, $0["pending"] as? Int ?? 0) }) { x, _ in x }
        #expect(byDevice[bDevice] == 8 && byDevice[cDevice] == 3)
        let pendings = rows.map { $0["pending"] as? Int ?? 0 }
        #expect(pendings == pendings.sorted(by: >), "sorted by pending")
        r = try ops(["mailbox", "list", "--json", "--min-pending", "4", "--limit", "1000"], data: data)
        rows = (r.json as? [String: Any])?["rows"] as? [[String: Any]] ?? []
        #expect(rows.contains { $0["device"] as? Int == bDevice } && !rows.contains { $0["device"] as? Int == cDevice })
        r = try ops(["mailbox", "list", "--json", "--older-than", "1d"], data: data)
        #expect(((r.json as? [String: Any])?["rows"] as? [[String: Any]])?.isEmpty == true)
        // Device-order paging: one row per page, each page after the last.
        r = try ops(["mailbox", "list", "--json", "--limit", "1"], data: data)
        let first = try #require(r.json as? [String: Any])
        let next = try #require(first["next_after"] as? Int)
        r = try ops(["mailbox", "list", "--json", "--limit", "1", "--after", "\(next)"], data: data)
        let secondRows = (r.json as? [String: Any])?["rows"] as? [[String: Any]] ?? []
        #expect((secondRows.first?["device"] as? Int ?? 0) > next)
        r = try ops(["mailbox", "list"], data: data)
        #expect(r.status == 0 && r.out.contains("PENDING") && r.out.contains("\(bDevice)"))

        // mailbox show: delivery order, the messages in the order they were sent.
        r = try ops(["mailbox", "show", "\(bDevice)", "--json"], data: data)
        let page = try #require(r.json as? [String: Any], "\(r.err)")
        let frames = page["rows"] as? [[String: Any]] ?? []
        #expect(page["pending"] as? Int == 8)
        let seqs = frames.map { $0["seq"] as? Int ?? 0 }
        #expect(seqs == seqs.sorted() && Set(seqs).count == seqs.count)
        #expect(frames.map { $0["kind"] as? String ?? "" } == Array(repeating: "message", count: 5) + ["event", "message", "message"])
        let shownMessages = frames.filter { $0["kind"] as? String == "message" }.map { $0["message_id"] as? String ?? "" }
        #expect(shownMessages == sent + groupSent)
        #expect(frames.allSatisfy { $0["data"] == nil }, "bodies only with --bodies")
        r = try ops(["mailbox", "show", "\(bDevice)", "--json", "--bodies", "--limit", "3"], data: data)
        let firstPage = try #require(r.json as? [String: Any])
        let firstFrames = firstPage["rows"] as? [[String: Any]] ?? []
        #expect(firstFrames.count == 3 && (firstFrames.first?["data"] as? String ?? "").contains("m1"))
        let after = try #require(firstPage["next_after"] as? Int)
        r = try ops(["mailbox", "show", "\(bDevice)", "--json", "--after", "\(after)"], data: data)
        #expect(((r.json as? [String: Any])?["rows"] as? [[String: Any]])?.count == 5)
        r = try ops(["mailbox", "show", "999999"], data: data)
        #expect(r.status != 0 && r.err.contains("no device"))

        // users, devices, chats.
        r = try ops(["users", "list", "--json", "--limit", "1000"], data: data)
        let listed = Set(((r.json as? [String: Any])?["rows"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String })
        #expect(Set(users.map(\.userID)).isSubset(of: listed))
        r = try ops(["users", "show", b.phone, "--json"], data: data)
        let shown = try #require(r.json as? [String: Any], "\(r.err)")
        #expect((shown["user"] as? [String: Any])?["id"] as? String == b.userID)
        #expect((shown["devices"] as? [[String: Any]])?.first?["pending"] as? Int == 8)
        #expect(shown["chats"] as? Int == 2)
        r = try ops(["chats", "show", group, "--json"], data: data)
        let chat = try #require(r.json as? [String: Any], "\(r.err)")
        let members = chat["members"] as? [[String: Any]] ?? []
        #expect(Set(members.compactMap { $0["user_id"] as? String }) == [a.userID, b.userID, c.userID])
        #expect(members.first { $0["user_id"] as? String == a.userID }?["role"] as? String == "admin")
        #expect(chat["last_seq"] as? Int == 3, "created event + 2 messages")

        // stats and check, while d keeps sending.
        r = try ops(["stats", "--json"], data: data)
        let stats = try #require(r.json as? [String: Any], "\(r.err)")
        #expect(stats["users"] as? Int == 5)
        #expect((stats["messages"] as? Int ?? 0) >= 5 + 3)
        #expect((stats["mailbox_entries"] as? Int ?? 0) >= 11)
        #expect((stats["mailbox_devices"] as? Int ?? 0) >= 2)
        let histogram = stats["depth_histogram"] as? [[String: Any]] ?? []
        #expect(histogram.reduce(0) { $0 + ($1["devices"] as? Int ?? 0) } == stats["mailbox_devices"] as? Int)
        #expect((stats["readers_in_use"] as? Int ?? 0) >= 1)
        r = try ops(["check"], data: data)
        #expect(r.status == 0, "tern check: \(r.out) \(r.err)")
        #expect(r.out.contains("no problems found"))

        await load.stop()
        await loadTask.value
        #expect(await load.acknowledged.count > 0, "traffic ran during the commands")
        await client.shutdown()
        #expect(server.terminate() == 0)
    }

    @Test("a backup taken under load verifies, restores, passes check, and holds every message acknowledged before it began")
    func backupUnderLoad() async throws {
        let dir = TemporaryDirectory("tern-backup")
        defer { dir.remove() }
        let data = dir.file("data")
        let server = try await ChildServer.start(dataDirectory: data)
        let client = TestClient(port: server.port)
        let users = try await client.users(2)
        let (sender, recipient) = (users[0], users[1])
        let chat = try await client.directChat(sender, recipient)

        let load = SendLoop()
        let loadTask = load.start(client, sender, chat: chat)
        let deadline = Date().addingTimeInterval(60)
        while await load.acknowledged.count < 200 && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let before = await load.acknowledged
        #expect(before.count >= 200)
        let backup = dir.file("backup")
        let made = try ops(["backup", backup, "--json"], data: data)
        #expect(made.status == 0, "\(made.err)")
        let manifest = try #require(made.json as? [String: Any])
        #expect(((manifest["counts"] as? [String: Any])?["messages"] as? Int ?? 0) >= before.count)
        // The load went on during the backup.
        let more = await load.acknowledged.count
        try await Task.sleep(for: .milliseconds(200))
        await load.stop()
        await loadTask.value
        #expect(await load.acknowledged.count > more || more > before.count, "sends continued while the backup ran")

        // A running server's store is never replaced.
        var r = try ops(["restore", backup], data: data)
        #expect(r.status != 0 && r.err.contains("--force"))
        r = try ops(["restore", backup, "--force"], data: data)
        #expect(r.status != 0 && r.err.contains("open in process"))

        r = try ops(["restore", backup, "--verify-only"], data: data)
        #expect(r.status == 0 && r.out.contains("counts match"), "\(r.out) \(r.err)")
        let restored = dir.file("restored")
        r = try ops(["restore", backup], data: restored)
        #expect(r.status == 0, "\(r.out) \(r.err)")
        r = try ops(["check"], data: restored)
        #expect(r.status == 0, "check of the restored store: \(r.out)")

        // Every message acknowledged before the backup began is in the restored history.
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let store = try Store(configuration: StoreConfiguration(path: restored + "/store", readThreads: 1, readOnly: true), logger: logger)
        let missing = try await store.read { tx in
            try before.filter { id in try tx.message(MessageID(id)!) == nil }
        }
        await store.close()
        #expect(missing.isEmpty, "\(missing.count) acknowledged messages missing from the backup")

        // The restored folder serves: the keys came along, so the recipient's token works
        // and its backlog holds those messages.
        #expect(server.terminate() == 0)
        let second = try await ChildServer.start(dataDirectory: restored)
        let ws = try await WSTestClient.connect(port: second.port, token: recipient.accessToken)
        var received = Set<String>()
        while let frame = await ws.next(timeout: .seconds(10)), frame.event != "mailbox.drained" {
            if frame.event == "message.new", let id = frame.data["message_id"] as? String {
                received.insert(id)
                if let seq = frame.seq { ws.send("ack", ["seq": seq]) }
            }
        }
        #expect(Set(before).isSubset(of: received), "backlog after restore")
        await ws.close()
        await client.shutdown()
        #expect(second.terminate() == 0)
    }

    @Test("Ops/backup-rotate keeps the newest KEEP verified backups")
    func backupRotation() async throws {
        let dir = TemporaryDirectory("tern-rotate")
        defer { dir.remove() }
        let data = dir.file("data")
        let server = try await ChildServer.start(dataDirectory: data)
        let client = TestClient(port: server.port)
        _ = try await client.users(2)
        let root = dir.file("backups")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Ops/backup-rotate").path
        for _ in 0..<3 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: script)
            process.arguments = [data, root, "2"]
            process.environment = ProcessInfo.processInfo.environment.merging(["TERN": ternExecutable().path]) { $1 }
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
        }
        let kept = try FileManager.default.contentsOfDirectory(atPath: root).filter { $0.hasPrefix("tern-") }
        #expect(kept.count == 2, "\(kept)")
        for backup in kept {
            let r = try ops(["restore", root + "/" + backup, "--verify-only"], data: data)
            #expect(r.status == 0, "\(r.out) \(r.err)")
        }
        await client.shutdown()
        #expect(server.terminate() == 0)
    }

    @Test("admin API: purge, revoke, disable/enable work through the CLI and are refused without the admin token")
    func adminActions() async throws {
        let dir = TemporaryDirectory("tern-admin")
        defer { dir.remove() }
        let data = dir.file("data")
        let server = try await ChildServer.start(dataDirectory: data)
        let client = TestClient(port: server.port)
        let adminPort = try #require(server.adminPort)
        let admin = TestClient(port: adminPort)
        let users = try await client.users(2)
        let (a, b) = (users[0], users[1])
        let chat = try await client.directChat(a, b)
        for i in 1...3 {
            _ = try await client.request(.POST, "/api/v1/messages", json: textMessage(chat, "p\(i)"), token: a.accessToken)
        }
        let device = try deviceNumber(b, data: data)
        func pending() throws -> Int {
            let r = try ops(["devices", "list", "--user", b.userID, "--json"], data: data)
            return ((r.json as? [String: Any])?["rows"] as? [[String: Any]])?.first?["pending"] as? Int ?? -1
        }
        #expect(try pending() == 3)

        // Refused without the credential, with a wrong one, and with a user's access token.
        var r = try await admin.request(.POST, "/admin/v1/devices/\(device)/purge")
        #expect(r.status == 401 && r.errorCode == "UNAUTHORIZED")
        r = try await admin.request(.POST, "/admin/v1/devices/\(device)/purge", token: String(repeating: "x", count: 43))
        #expect(r.status == 401)
        r = try await admin.request(.POST, "/admin/v1/devices/\(device)/purge", token: a.accessToken)
        #expect(r.status == 401)
        r = try await client.request(.POST, "/admin/v1/devices/\(device)/purge", token: a.accessToken)
        #expect(r.status == 404, "the admin API is not on the public listener")
        let url = ["--admin-url", "http://127.0.0.1:\(adminPort)"]
        var cli = try ops(["mailbox", "purge", "\(device)", "--admin-token", String(repeating: "y", count: 43)] + url, data: data)
        #expect(cli.status != 0 && cli.err.contains("UNAUTHORIZED"))
        #expect(try pending() == 3, "nothing purged by refused requests")

        // Purge (the CLI reads the token the server generated in the data folder).
        cli = try ops(["mailbox", "purge", "\(device)", "--json"] + url, data: data)
        #expect(cli.status == 0, "\(cli.err)")
        #expect((cli.json as? [String: Any])?["purged"] as? Int == 3)
        #expect(try pending() == 0)
        cli = try ops(["mailbox", "purge", "999999"] + url, data: data)
        #expect(cli.status != 0 && cli.err.contains("NOT_FOUND"))

        // Revoke a connected device: its connection ends and its token stops working.
        let ws = try await client.ws(b)
        _ = await ws.next(event: "mailbox.drained")
        cli = try ops(["devices", "revoke", "\(device)"] + url, data: data)
        #expect(cli.status == 0 && cli.out.contains("1 sessions revoked"), "\(cli.out) \(cli.err)")
        let revoked = await ws.next(event: "session.revoked")
        #expect(revoked.frame?.data["reason"] as? String == "revoked by an operator")
        #expect(await ws.next(event: "__closed__").frame?["code"] as? Int == 4401)
        r = try await client.request(.GET, "/api/v1/users/me", token: b.accessToken)
        #expect(r.status == 401)

        // Disable by phone: tokens and logins refused; enable lets the user back in.
        cli = try ops(["users", "disable", a.phone] + url, data: data)
        #expect(cli.status == 0, "\(cli.err)")
        r = try await client.request(.GET, "/api/v1/users/me", token: a.accessToken)
        #expect(r.status == 401 || r.status == 403)
        let code = try await client.request(.POST, "/api/v1/auth/request-otp", json: ["phone": a.phone]).data["otp"] as? String
        r = try await client.request(.POST, "/api/v1/auth/verify-otp", json: ["phone": a.phone, "code": code ?? "", "device_id": a.deviceID])
        #expect(r.status == 403, "login of a disabled user: \(r.body)")
        cli = try ops(["users", "enable", a.userID] + url, data: data)
        #expect(cli.status == 0)
        let again = try await client.login(a.phone, deviceID: a.deviceID)
        r = try await client.request(.GET, "/api/v1/users/me", token: again.accessToken)
        #expect(r.status == 200)

        await ws.close()
        await client.shutdown()
        await admin.shutdown()
        #expect(server.terminate() == 0)
    }

    @Test("a reader process killed with -9 does not make the data file grow under churn")
    func killedReaderDoesNotGrowFile() async throws {
        let dir = TemporaryDirectory("tern-stale")
        defer { dir.remove() }
        let data = dir.file("data")
        let server = try await ChildServer.start(
            dataDirectory: data, extraArguments: ["--set", "store.stale_reader_check=1s", "--set", "store.durability=nosync"])
        let client = TestClient(port: server.port)
        let user = try await client.login(testPhone())
        func usedBytes() throws -> Int {
            let r = try ops(["stats", "--json"], data: data)
            return try #require((r.json as? [String: Any])?["map_used_bytes"] as? Int, "\(r.err)")
        }
        func churn(_ n: Int) async throws {
            for i in 0..<n {
                let r = try await client.request(.PATCH, "/api/v1/users/me", json: ["display_name": "churn \(i) " + String(repeating: "z", count: 64)], token: user.accessToken)
                try #require(r.status == 200)
            }
        }
        try await churn(200)

        // Another process holds a read transaction (an ops tool in the middle of a page).
        let reader = Process()
        reader.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        reader.arguments = ["python3", "-c", """
            import lmdb, sys, time
            env = lmdb.open(sys.argv[1], readonly=True, max_dbs=64, lock=True)
            txn = env.begin()
            print("holding", flush=True)
            time.sleep(3600)
            """, data + "/store"]
        let out = Pipe()
        reader.standardOutput = out
        try reader.run()
        let line = String(decoding: out.fileHandleForReading.availableDataOrLine(), as: UTF8.self)
        try #require(line.contains("holding"), "python3 with lmdb is needed (Ops/test installs it)")

        // While it is alive, its snapshot pins every page freed after it: the file grows.
        let start = try usedBytes()
        try await churn(1500)
        let pinned = try usedBytes() - start
        #expect(pinned > 1 << 20, "a live reader pins freed pages (grew \(pinned) bytes)")

        // kill -9: the slot stays behind until the server's stale-reader check clears it.
        kill(reader.processIdentifier, SIGKILL)
        reader.waitUntilExit()
        let deadline = Date().addingTimeInterval(30)
        var cleared = 0.0
        while cleared < 1 && Date() < deadline {
            let metrics = try await client.request(.GET, "/metrics")
            cleared = metricValue(metrics.body, "tern_store_stale_readers_cleared_total") ?? 0
            if cleared < 1 { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(cleared >= 1, "the server cleared the dead reader's slot")
        let afterKill = try usedBytes()
        try await churn(1500)
        let grown = try usedBytes() - afterKill
        #expect(grown < pinned / 4, "after the kill the same churn reuses pages: grew \(grown) bytes (pinned: \(pinned))")
        await client.shutdown()
        #expect(server.terminate() == 0)
    }

    @Test("SIGTERM: readiness 503, upgrades refused, sessions closed with 1001 over the window, exit 0, nothing acknowledged lost")
    func sigtermDrains() async throws {
        let dir = TemporaryDirectory("tern-drain")
        defer { dir.remove() }
        let data = dir.file("data")
        var server = try await ChildServer.start(dataDirectory: data, extraArguments: ["--set", "shutdown.drain_window=4s"])
        let client = TestClient(port: server.port)
        let users = try await client.users(2)
        let (a, b) = (users[0], users[1])
        let chat = try await client.directChat(a, b)
        // 100 connected devices (a's extra logins): their closes spread over the window.
        var sockets: [WSTestClient] = []
        for i in 0..<100 {
            let session = try await client.login(a.phone, deviceID: "drain-\(i)")
            let ws = try await client.ws(session)
            _ = await ws.next(event: "mailbox.drained")
            sockets.append(ws)
        }
        let wsA = try await client.ws(a)
        _ = await wsA.next(event: "mailbox.drained")
        let wsB = try await client.ws(b)
        _ = await wsB.next(event: "mailbox.drained")
        var acknowledged: [String] = []
        for i in 0..<20 {
            wsA.send("message.send", textMessage(chat, "before shutdown \(i)", id: "drain-\(i)"))
            let sent = await wsA.next(event: "message.sent")
            acknowledged.append(try #require(sent.frame?.data["message_id"] as? String))
        }
        var ready = try await client.request(.GET, "/ready")
        #expect(ready.status == 200)

        kill(server.process.processIdentifier, SIGTERM)
        // The first close means draining began; the other sessions are still open then.
        let firstClose = await sockets[0].next(event: "__closed__", timeout: .seconds(20))
        #expect(firstClose.frame?["code"] as? Int == 1001)
        ready = try await client.request(.GET, "/ready")
        #expect(ready.status == 503 && ready.errorCode == "SHUTTING_DOWN", "\(ready.body)")
        do {
            _ = try await WSTestClient.connect(port: server.port, token: b.accessToken)
            Issue.record("upgrade accepted while draining")
        } catch let refused as WSUpgradeRefused {
            #expect(refused.status == 503 && refused.body.contains("SHUTTING_DOWN"))
        }
        var codes: [Int] = []
        for ws in sockets.dropFirst() + [wsA, wsB] {
            codes.append(await ws.next(event: "__closed__", timeout: .seconds(20)).frame?["code"] as? Int ?? 0)
        }
        #expect(codes.allSatisfy { $0 == 1001 }, "close codes: \(Set(codes))")
        server.process.waitUntilExit()
        #expect(server.process.terminationStatus == 0, "clean drain exits 0")
        #expect(server.log.contains("tern stopped"))
        await client.shutdown()

        // Nothing b was told about is lost: after a restart its device gets every message.
        server = try await ChildServer.start(dataDirectory: data)
        let again = TestClient(port: server.port)
        let ws = try await again.ws(b)
        var received: [String] = []
        while let frame = await ws.next(timeout: .seconds(10)), frame.event != "mailbox.drained" {
            if frame.event == "message.new", let id = frame.data["message_id"] as? String { received.append(id) }
        }
        #expect(received == acknowledged)
        await ws.close()
        await again.shutdown()
        #expect(server.terminate() == 0)
    }

    @Test("/metrics parses with prometheus_client and carries the documented families")
    func metricsParse() async throws {
        let dir = TemporaryDirectory("tern-metrics")
        defer { dir.remove() }
        let data = dir.file("data")
        let server = try await ChildServer.start(
            dataDirectory: data, extraArguments: ["--set", "metrics.mailbox_census_interval=1s", "--set", "log.format=json"])
        let client = TestClient(port: server.port)
        let users = try await client.users(3)
        let (a, b) = (users[0], users[1])
        let chat = try await client.directChat(a, b)
        let ws = try await client.ws(a)
        _ = await ws.next(event: "mailbox.drained")
        ws.send("message.send", textMessage(chat, "hello"))
        _ = await ws.next(event: "message.sent")
        ws.send("no.such.event", [:])
        _ = await ws.next(event: "error")
        _ = try await client.request(.GET, "/api/v1/no-such-route")
        // Wait for the census to see b's pending message.
        var text = ""
        let deadline = Date().addingTimeInterval(30)
        while (metricValue(text, "tern_mailbox_entries") ?? 0) < 1 && Date() < deadline {
            text = try await client.request(.GET, "/metrics").body
            try await Task.sleep(for: .milliseconds(100))
        }
        let parsed = try python("""
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            out = {}
            for family in text_string_to_metric_families(sys.stdin.read()):
                out[family.name] = {"type": family.type, "samples": [[s.name, s.labels, s.value] for s in family.samples]}
            print(json.dumps(out))
            """, input: text)
        let families = try #require(try JSONSerialization.jsonObject(with: Data(parsed.utf8)) as? [String: [String: Any]])
        let expected: [String: String] = [
            "tern_gateway_connections": "gauge", "tern_relay_sessions": "gauge", "tern_relay_frames_in": "counter",
            "tern_relay_frames_out": "counter", "tern_relay_frame_errors": "counter", "tern_relay_messages_accepted": "counter",
            "tern_relay_messages_delivered": "counter", "tern_relay_slow_consumer_disconnects": "counter",
            "tern_mailbox_entries": "gauge", "tern_mailbox_devices": "gauge", "tern_mailbox_oldest_pending_seconds": "gauge",
            "tern_store_commit_batch_size": "histogram", "tern_store_commit_duration_seconds": "histogram",
            "tern_store_map_used_bytes": "gauge", "tern_store_readers_in_use": "gauge", "tern_http_requests": "counter",
            "tern_http_errors": "counter",
        ]
        for (name, type) in expected {
            #expect(families[name]?["type"] as? String == type, "\(name): \(families[name]?["type"] ?? "missing")")
        }
        func sample(_ family: String, _ labels: [String: String]) -> Double? {
            let samples = families[family]?["samples"] as? [[Any]] ?? []
            return samples.first { ($0[1] as? [String: String] ?? [:]) == labels && !($0[0] as? String ?? "").hasSuffix("_created") }?[2] as? Double
        }
        #expect((sample("tern_relay_frames_in", ["event": "message.send"]) ?? 0) >= 1)
        #expect((sample("tern_relay_frames_out", ["event": "message.sent"]) ?? 0) >= 1)
        #expect((sample("tern_relay_frame_errors", ["code": "UNKNOWN_EVENT"]) ?? 0) >= 1)
        #expect((sample("tern_mailbox_devices", ["depth": "1"]) ?? 0) >= 1)
        await ws.close()
        await client.shutdown()
        #expect(server.terminate() == 0)

        // log.format = json: every line is one JSON object with the fixed fields.
        let lines = server.log.split(separator: "\n").filter { !$0.isEmpty }
        #expect(lines.count >= 3)
        for line in lines {
            let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
            #expect(object?["level"] is String && object?["message"] is String && object?["time"] is String, "not a JSON log line: \(line)")
        }
        #expect(lines.contains { $0.contains("\"message\":\"tern stopped\"") })
    }
}

/// The value of an unlabelled sample in Prometheus text, if present.
func metricValue(_ text: String, _ name: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
        return Double(line.split(separator: " ").last ?? "")
    }
    return nil
}

/// Runs a Python snippet with `input` on stdin; returns stdout.
func python(_ script: String, input: String, arguments: [String] = []) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script] + arguments
    let stdin = Pipe()
    let out = Pipe()
    let err = Pipe()
    process.standardInput = stdin
    process.standardOutput = out
    process.standardError = err
    try process.run()
    stdin.fileHandleForWriting.write(Data(input.utf8))
    try stdin.fileHandleForWriting.close()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        Issue.record("python3 failed (Ops/test installs prometheus-client, lmdb, tuspy): \(String(decoding: stderr, as: UTF8.self))")
        throw CancellationError()
    }
    return String(decoding: stdout, as: UTF8.self)
}

extension FileHandle {
    /// Bytes up to the first newline (blocking).
    func availableDataOrLine() -> Data {
        var line = Data()
        while true {
            let byte = readData(ofLength: 1)
            if byte.isEmpty || byte == Data([0x0A]) { return line }
            line.append(byte)
        }
    }
}
