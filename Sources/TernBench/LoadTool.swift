// The relay load tool: many real WebSocket clients (SwiftNIO, one event-loop callback per
// frame, no JSON parsing beyond what a frame's dispatch needs) against a running Tern
// started with AUTH_DEV_MODE=true. Prints one JSON line with delivered msgs/s, ack latency
// (send → message.sent), end-to-end latency (send → message.new at the recipient), server
// CPU per delivered message and server RSS (from /proc of --pid), and its own CPU.
//
// Workloads: relay (P sender/receiver pairs, closed loop with a window, or --rate msgs/s per
// sender), offline (enqueue N into an offline mailbox, then drain), fanout (one sender, a
// group of G connected members: deliveries/s and per-delivery latency), idle (K connections).
import AsyncHTTPClient
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TernWSClient

enum LoadTool {
    struct Options {
        var workload = "relay"
        var host = "127.0.0.1"
        var port = 8080
        var pid: Int32?
        var pairs = 10
        var msgs = 3000
        var window = 32
        var size = 200
        var rate = 0.0
        var conns = 1000
        var group = 100
        var settle = 5.0
        var label = ""
        var cumulativeAck = false
        /// Flush every acknowledgement on its own instead of once per read burst.
        var ackEach = false
        var salt = String(UInt32.random(in: 100_000...999_999))

        static func usage(_ problem: String?) -> Never {
            let text = """
                usage: tern-bench relay|offline|fanout|idle [--host H] [--port P] [--pid SERVER_PID]
                         relay:   [--pairs N] [--msgs PER_SENDER] [--window W] [--rate MSGS_PER_S_PER_SENDER] [--size BYTES]
                         offline: [--msgs N] [--window W] [--size BYTES]
                         fanout:  [--group MEMBERS] [--msgs N] [--window W] [--rate MSGS_PER_S] [--size BYTES]
                         idle:    [--conns N] [--settle SECONDS]
                         any:     [--label TEXT] [--cumulative-ack] [--ack-each]
                receivers acknowledge every message; the acks of one read burst leave in one
                send unless --ack-each sends each one on its own (one TCP segment per ack)
                the server must run with AUTH_DEV_MODE=true (the tool logs in with echoed codes)

                """
            FileHandle.standardError.write(Data(((problem.map { "\($0)\n" } ?? "") + text).utf8))
            exit(problem == nil ? 0 : 2)
        }

        init(_ args: [String]) {
            workload = args.first ?? "relay"
            var i = 1
            func value() -> String {
                i += 1
                guard i < args.count else { Options.usage("\(args[i - 1]) needs a value") }
                return args[i]
            }
            func int() -> Int {
                let text = value()
                guard let number = Int(text), number >= 0 else { Options.usage("\(args[i - 1]): not a count: \(text)") }
                return number
            }
            func double() -> Double {
                let text = value()
                guard let number = Double(text), number >= 0 else { Options.usage("\(args[i - 1]): not a number: \(text)") }
                return number
            }
            while i < args.count {
                switch args[i] {
                case "--host": host = value()
                case "--port": port = int()
                case "--pid": pid = Int32(int())
                case "--pairs": pairs = int()
                case "--msgs": msgs = int()
                case "--window": window = int()
                case "--size": size = int()
                case "--rate": rate = double()
                case "--conns": conns = int()
                case "--group": group = int()
                case "--settle": settle = double()
                case "--label": label = value()
                case "--salt": salt = value()
                case "--cumulative-ack": cumulativeAck = true
                case "--ack-each": ackEach = true
                case "--help", "-h": Options.usage(nil)
                default: Options.usage("unknown option \(args[i])")
                }
                i += 1
            }
        }
    }

    static func main(_ args: [String]) async throws {
        let options = Options(args)
        let api = API(host: options.host, port: options.port, salt: options.salt)
        defer { Task { try? await api.http.shutdown() } }
        let result: [String: Any]
        switch options.workload {
        case "offline": result = try await offline(options, api)
        case "idle": result = try await idle(options, api)
        case "fanout": result = try await fanout(options, api)
        default: result = try await relay(options, api)
        }
        var line = result
        line["workload"] = options.workload
        line["label"] = options.label
        line["ack_flush"] = options.ackEach ? "each" : "burst"
        let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
        try await api.http.shutdown()
    }

    // MARK: relay

    static func relay(_ o: Options, _ api: API) async throws -> [String: Any] {
        var pairs: [(sender: API.User, receiver: API.User, chat: String)] = []
        for i in 0..<o.pairs {
            let sender = try await api.login("s\(i)")
            let receiver = try await api.login("r\(i)")
            pairs.append((sender, receiver, try await api.chat(sender, receiver)))
        }
        let total = o.pairs * o.msgs
        let done = Completion(expected: total)
        let receivers = try await connectAll(pairs.map(\.receiver), api: api) { _ in
            Receiver(done: done, cumulative: o.cumulativeAck, each: o.ackEach)
        }
        let senders = try await connectAll(pairs.map(\.sender), api: api) { index in
            Sender(chat: pairs[index].chat, count: o.msgs, window: o.window, size: o.size, rate: o.rate)
        }
        let before = ProcStats(pid: o.pid)
        let cpu0 = selfCPU()
        let start = DispatchTime.now().uptimeNanoseconds
        for (sender, connection) in senders { sender.start(connection) }
        let finished = await done.wait(timeout: 300)
        let end = done.lastAt ?? DispatchTime.now().uptimeNanoseconds
        let after = ProcStats(pid: o.pid)
        let seconds = Double(end - start) / 1e9
        var ackLatencies: [UInt64] = []
        for (sender, _) in senders { ackLatencies += sender.ackLatencies }
        var e2e: [UInt64] = []
        for (receiver, _) in receivers { e2e += receiver.latencies }
        for connection in senders.map(\.1) + receivers.map(\.1) { await connection.close() }
        let delivered = done.count
        return [
            "pairs": o.pairs, "msgs": o.msgs, "window": o.window, "size": o.size, "rate": o.rate,
            "sent": total, "delivered": delivered, "complete": finished,
            "duration_s": seconds, "delivered_rate": Double(delivered) / seconds,
            "ack_latency_ms": percentiles(ackLatencies), "e2e_latency_ms": percentiles(e2e),
            "server_cpu_s": after.cpuSeconds - before.cpuSeconds,
            "server_cpu_us_per_delivery": delivered > 0 ? (after.cpuSeconds - before.cpuSeconds) * 1e6 / Double(delivered) : 0,
            "server_rss_mb": after.rssKB / 1024, "loadgen_cpu_s": selfCPU() - cpu0,
        ]
    }

    // MARK: offline

    static func offline(_ o: Options, _ api: API) async throws -> [String: Any] {
        let sender = try await api.login("os0")
        let receiver = try await api.login("or0")
        let chat = try await api.chat(sender, receiver)
        let total = o.msgs
        let sent = Completion(expected: total)
        let s = Sender(chat: chat, count: total, window: o.window, size: o.size, rate: 0, completion: sent)
        let sc = try await connect(sender, api: api, handler: s)
        let before = ProcStats(pid: o.pid)
        let cpu0 = selfCPU()
        let t0 = DispatchTime.now().uptimeNanoseconds
        s.start(sc)
        _ = await sent.wait(timeout: 600)
        let t1 = sent.lastAt ?? DispatchTime.now().uptimeNanoseconds
        let mid = ProcStats(pid: o.pid)
        let cpuMid = selfCPU()
        // The receiver connects and drains.
        let drained = Completion(expected: total)
        let r = Receiver(done: drained, cumulative: o.cumulativeAck, each: o.ackEach)
        let t2 = DispatchTime.now().uptimeNanoseconds
        let rc = try await connect(receiver, api: api, handler: r)
        let complete = await drained.wait(timeout: 600)
        let t3 = drained.lastAt ?? DispatchTime.now().uptimeNanoseconds
        let after = ProcStats(pid: o.pid)
        await sc.close()
        await rc.close()
        let enqueue = Double(t1 - t0) / 1e9
        let drain = Double(t3 - t2) / 1e9
        return [
            "msgs": total, "window": o.window, "size": o.size, "complete": complete, "drained": drained.count,
            "enqueue_rate": Double(total) / enqueue, "drain_rate": Double(drained.count) / drain,
            "first_msg_ms": Double((drained.firstAt ?? t3) - t2) / 1e6,
            "ack_latency_ms": percentiles(s.ackLatencies),
            "server_cpu_enqueue_s": mid.cpuSeconds - before.cpuSeconds, "server_cpu_drain_s": after.cpuSeconds - mid.cpuSeconds,
            "server_rss_mb": after.rssKB / 1024, "loadgen_cpu_s": selfCPU() - cpu0, "loadgen_cpu_drain_s": selfCPU() - cpuMid,
        ]
    }

    // MARK: fanout

    static func fanout(_ o: Options, _ api: API) async throws -> [String: Any] {
        let sender = try await api.login("gs")
        var members: [API.User] = []
        for i in 0..<o.group { members.append(try await api.login("gm\(i)")) }
        let group = try await api.call("POST", "/api/v1/chats", ["type": "group", "name": "bench", "member_ids": members.map(\.id)], token: sender.token)
        guard let chat = group["chat_id"] as? String else { throw LoadError.http("/chats", 201, "no chat_id") }
        let total = o.group * o.msgs
        let done = Completion(expected: total)
        let receivers = try await connectAll(members, api: api) { _ in Receiver(done: done, cumulative: o.cumulativeAck, each: o.ackEach) }
        let s = Sender(chat: chat, count: o.msgs, window: o.window, size: o.size, rate: o.rate)
        let sc = try await connect(sender, api: api, handler: s)
        try await Task.sleep(for: .milliseconds(500))  // members' backlogs (the group's creation) drained
        let before = ProcStats(pid: o.pid)
        let cpu0 = selfCPU()
        let start = DispatchTime.now().uptimeNanoseconds
        s.start(sc)
        let finished = await done.wait(timeout: 600)
        let end = done.lastAt ?? DispatchTime.now().uptimeNanoseconds
        let after = ProcStats(pid: o.pid)
        let seconds = Double(end - start) / 1e9
        var e2e: [UInt64] = []
        for (receiver, _) in receivers { e2e += receiver.latencies }
        for connection in [sc] + receivers.map(\.1) { await connection.close() }
        let delivered = done.count
        return [
            "group": o.group, "msgs": o.msgs, "window": o.window, "size": o.size, "rate": o.rate,
            "sent": o.msgs, "delivered": delivered, "complete": finished,
            "duration_s": seconds, "delivered_rate": Double(delivered) / seconds,
            "ack_latency_ms": percentiles(s.ackLatencies), "e2e_latency_ms": percentiles(e2e),
            "server_cpu_s": after.cpuSeconds - before.cpuSeconds,
            "server_cpu_us_per_delivery": delivered > 0 ? (after.cpuSeconds - before.cpuSeconds) * 1e6 / Double(delivered) : 0,
            "server_rss_mb": after.rssKB / 1024, "loadgen_cpu_s": selfCPU() - cpu0,
        ]
    }

    // MARK: idle

    static func idle(_ o: Options, _ api: API) async throws -> [String: Any] {
        var users: [API.User] = []
        for i in 0..<o.conns { users.append(try await api.login("i\(i)")) }
        try await Task.sleep(for: .seconds(1))
        let before = ProcStats(pid: o.pid)
        let t0 = DispatchTime.now().uptimeNanoseconds
        let connections = try await connectAll(users, api: api, concurrency: 64) { _ in Receiver(done: Completion(expected: 0), cumulative: false, each: false) }
        let t1 = DispatchTime.now().uptimeNanoseconds
        try await Task.sleep(for: .seconds(o.settle))
        let after = ProcStats(pid: o.pid)
        for (_, connection) in connections { await connection.close() }
        let kb = (after.rssKB - before.rssKB) / Double(max(1, connections.count))
        return [
            "connected": connections.count, "connect_rate": Double(connections.count) / (Double(t1 - t0) / 1e9),
            "rss_before_mb": before.rssKB / 1024, "rss_after_mb": after.rssKB / 1024,
            "kb_per_conn": kb, "mb_per_10k": kb * 10_000 / 1024,
            "anon_kb_per_conn": (after.anonKB - before.anonKB) / Double(max(1, connections.count)),
            "file_kb_per_conn": (after.fileKB - before.fileKB) / Double(max(1, connections.count)),
        ]
    }

    // MARK: plumbing

    static func connect(_ user: API.User, api: API, handler: some FrameHandling) async throws -> WSConnection {
        try await WSConnection.connect(host: api.host, port: api.port, path: "/ws?access_token=\(user.token)") { frame in
            handler.handle(frame)
        }
    }

    static func connectAll<H: FrameHandling>(
        _ users: [API.User], api: API, concurrency: Int = 16, make: (Int) -> H
    ) async throws -> [(H, WSConnection)] {
        var out: [(H, WSConnection)] = []
        let handlers = users.indices.map(make)
        try await withThrowingTaskGroup(of: (Int, WSConnection).self) { group in
            var next = 0
            func add() {
                guard next < users.count else { return }
                let index = next
                next += 1
                let handler = handlers[index]
                let user = users[index]
                group.addTask { (index, try await connect(user, api: api, handler: handler)) }
            }
            for _ in 0..<min(concurrency, users.count) { add() }
            var connections = [WSConnection?](repeating: nil, count: users.count)
            while let (index, connection) = try await group.next() {
                connections[index] = connection
                add()
            }
            out = zip(handlers, connections).map { ($0, $1!) }
        }
        return out
    }

    static func percentiles(_ values: [UInt64]) -> [String: Double] {
        guard !values.isEmpty else { return [:] }
        let sorted = values.sorted()
        func p(_ q: Double) -> Double { Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]) / 1e6 }
        return ["p50": p(0.5), "p90": p(0.9), "p99": p(0.99), "max": Double(sorted.last!) / 1e6]
    }

    static func selfCPU() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}

/// CPU and RSS of the server process from /proc.
struct ProcStats {
    var cpuSeconds = 0.0
    var rssKB = 0.0
    /// Anonymous (heap, stacks) and file-backed (LMDB's read-only map) parts of the RSS.
    var anonKB = 0.0
    var fileKB = 0.0

    init(pid: Int32?) {
        guard let pid else { return }
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        {
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // After the command: state is field 3; utime and stime are fields 14 and 15.
            if fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) {
                cpuSeconds = (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
            }
        }
        if let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) {
            for line in status.split(separator: "\n") {
                let kb = Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
                if line.hasPrefix("VmRSS:") { rssKB = kb }
                if line.hasPrefix("RssAnon:") { anonKB = kb }
                if line.hasPrefix("RssFile:") { fileKB = kb }
            }
        }
    }
}

/// Counts arrivals; `wait` returns when `expected` arrived (or the timeout passed).
final class Completion: @unchecked Sendable {
    let expected: Int
    private let lock = NIOLock()
    private(set) var count = 0
    private(set) var firstAt: UInt64?
    private(set) var lastAt: UInt64?

    init(expected: Int) { self.expected = expected }

    func add(_ n: Int = 1) {
        let now = DispatchTime.now().uptimeNanoseconds
        lock.withLock {
            count += n
            if firstAt == nil { firstAt = now }
            lastAt = now
        }
    }

    func wait(timeout: Double) async -> Bool {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeout * 1e9)
        while DispatchTime.now().uptimeNanoseconds < deadline {
            if lock.withLock({ count >= expected }) { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return false
    }
}

protocol FrameHandling: AnyObject, Sendable {
    func handle(_ frame: WSFrame)
}

/// Byte-level helpers: the tool reads only what it needs from server frames.
enum FrameScan {
    /// Whether `data` starts with `{"event":"<event>"`.
    static func isEvent(_ data: [UInt8], _ prefix: [UInt8]) -> Bool {
        data.count >= prefix.count && data[0..<prefix.count].elementsEqual(prefix)
    }

    /// The string value following `"key":"` (no escapes expected).
    static func string(_ data: [UInt8], key: [UInt8]) -> ArraySlice<UInt8>? {
        guard let start = find(data, key) else { return nil }
        var end = start
        while end < data.count && data[end] != UInt8(ascii: "\"") { end += 1 }
        return data[start..<end]
    }

    /// The integer following `key`.
    static func integer(_ data: [UInt8], key: [UInt8]) -> UInt64? {
        guard var i = find(data, key) else { return nil }
        var v: UInt64 = 0
        while i < data.count, data[i] >= 48, data[i] <= 57 {
            v = v * 10 + UInt64(data[i] - 48)
            i += 1
        }
        return v
    }

    /// The index just past the first occurrence of `needle` (`memchr` for its first byte,
    /// then `memcmp`: an order faster than comparing slices byte by byte).
    static func find(_ data: [UInt8], _ needle: [UInt8]) -> Int? {
        guard data.count >= needle.count, let first = needle.first else { return nil }
        return data.withUnsafeBytes { hay -> Int? in
            needle.withUnsafeBytes { pin -> Int? in
                guard let base = hay.baseAddress, let pinBase = pin.baseAddress else { return nil }
                var offset = 0
                let last = hay.count - pin.count
                while offset <= last {
                    guard let hit = memchr(base + offset, Int32(first), last - offset + 1) else { return nil }
                    let at = base.distance(to: UnsafeRawPointer(hit))
                    if memcmp(base + at, pinBase, pin.count) == 0 { return at + pin.count }
                    offset = at + 1
                }
                return nil
            }
        }
    }

    static let messageNew = Array(#"{"event":"message.new""#.utf8)
    static let messageSent = Array(#"{"event":"message.sent""#.utf8)
    static let messageIDKey = Array(#""message_id":""#.utf8)
    static let seqKey = Array(#""seq":"#.utf8)
    static let stampKey = Array(#""body":"t="#.utf8)
    static let clientIDKey = Array(#""client_msg_id":""#.utf8)
}

/// A receiving device: records end-to-end latency and acknowledges every message.
final class Receiver: FrameHandling, @unchecked Sendable {
    private static let ackPrefix = Array(#"{"event":"ack","data":{"seq":"#.utf8)
    private static let ackSuffix = Array("}}".utf8)
    private static let deliveredPrefix = Array(#"{"event":"message.delivered","data":{"message_id":""#.utf8)
    private static let deliveredSuffix = Array(#""}}"#.utf8)

    private let done: Completion
    private let cumulative: Bool
    private let lock = NIOLock()
    private var _latencies: [UInt64] = []

    private let each: Bool

    init(done: Completion, cumulative: Bool, each: Bool) {
        self.each = each
        self.done = done
        self.cumulative = cumulative
    }

    var latencies: [UInt64] { lock.withLock { _latencies } }

    func handle(_ frame: WSFrame) {
        guard frame.opcode == .text, FrameScan.isEvent(frame.data, FrameScan.messageNew) else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        if let stamp = FrameScan.integer(frame.data, key: FrameScan.stampKey), stamp <= now {
            lock.withLock { _latencies.append(now - stamp) }
        }
        if let id = FrameScan.string(frame.data, key: FrameScan.messageIDKey) {
            var ack: [UInt8] = []
            ack.reserveCapacity(112)
            if cumulative, let seq = FrameScan.integer(frame.data, key: FrameScan.seqKey) {
                ack += Self.ackPrefix
                ack += String(seq).utf8
                ack += Self.ackSuffix
            } else {
                ack += Self.deliveredPrefix
                ack += id
                ack += Self.deliveredSuffix
            }
            frame.reply(ack, flush: each)
        }
        done.add()
    }
}

/// A sending device: keeps `window` sends in flight (or sends at `rate`/s), records the
/// latency to `message.sent`.
final class Sender: FrameHandling, @unchecked Sendable {
    private let chat: String
    private let count: Int
    private let window: Int
    private let padding: String
    private let rate: Double
    private let completion: Completion?
    private let lock = NIOLock()
    private var sent = 0
    private var inFlight = 0
    private var _ackLatencies: [UInt64] = []
    private var connection: WSConnection?

    init(chat: String, count: Int, window: Int, size: Int, rate: Double, completion: Completion? = nil) {
        self.chat = chat
        self.count = count
        self.window = window
        self.padding = String(repeating: "x", count: max(0, size - 24))
        self.rate = rate
        self.completion = completion
    }

    var ackLatencies: [UInt64] { lock.withLock { _ackLatencies } }

    func start(_ connection: WSConnection) {
        self.connection = connection
        connection.channel.eventLoop.execute {
            if self.rate > 0 {
                let interval = TimeAmount.nanoseconds(Int64(1e9 / self.rate))
                connection.channel.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: interval) { task in
                    if self.sent >= self.count {
                        task.cancel()
                        return
                    }
                    if self.inFlight < self.window { self.sendOne() }
                }
            } else {
                while self.inFlight < self.window && self.sent < self.count { self.sendOne() }
            }
        }
    }

    /// On the connection's event loop.
    private func sendOne() {
        guard let connection else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        sent += 1
        inFlight += 1
        let text = #"{"event":"message.send","data":{"chat_id":""# + chat + #"","type":"text","client_msg_id":"c"# + String(now)
            + #"","payload":{"body":"t="# + String(now) + "|" + padding + #""}}}"#
        connection.send(text: Array(text.utf8))
    }

    func handle(_ frame: WSFrame) {
        guard frame.opcode == .text, FrameScan.isEvent(frame.data, FrameScan.messageSent) else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        if let cmid = FrameScan.string(frame.data, key: FrameScan.clientIDKey), cmid.first == UInt8(ascii: "c"),
            let stamp = UInt64(String(decoding: cmid.dropFirst(), as: UTF8.self)), stamp <= now
        {
            lock.withLock { _ackLatencies.append(now - stamp) }
        }
        inFlight -= 1
        completion?.add()
        if rate == 0 && sent < count { sendOne() }
    }
}

/// REST setup: users (login with the echoed code) and direct chats.
final class API: Sendable {
    struct User: Sendable {
        var id: String
        var token: String
    }

    let host: String
    let port: Int
    let salt: String
    let http = HTTPClient(eventLoopGroupProvider: .singleton)

    init(host: String, port: Int, salt: String) {
        self.host = host
        self.port = port
        self.salt = salt
    }

    func call(_ method: String, _ path: String, _ body: [String: Any], token: String? = nil) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: "http://\(host):\(port)\(path)")
        request.method = .RAW(value: method)
        request.headers.add(name: "Content-Type", value: "application/json")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        let response = try await http.execute(request, timeout: .seconds(30))
        let data = try await response.body.collect(upTo: 1 << 20)
        let json = (try? JSONSerialization.jsonObject(with: Data(data.readableBytesView))) as? [String: Any] ?? [:]
        guard (200..<300).contains(response.status.code) else {
            throw LoadError.http(path, Int(response.status.code), String(decoding: data.readableBytesView, as: UTF8.self))
        }
        return json["data"] as? [String: Any] ?? [:]
    }

    /// Logs in the user named `name` (a phone number derived from the name and the run's salt).
    func login(_ name: String) async throws -> User {
        let hash = name.utf8.reduce(UInt32(2_166_136_261)) { ($0 ^ UInt32($1)) &* 16_777_619 }
        let phone = "+1\(salt.prefix(3))\(String(format: "%07d", hash % 10_000_000))"
        let sent = try await call("POST", "/api/v1/auth/request-otp", ["phone": phone])
        guard let code = sent["otp"] as? String else { throw LoadError.noEcho }
        let login = try await call("POST", "/api/v1/auth/verify-otp", ["phone": phone, "code": code, "device_id": "bench-\(name)", "platform": "web"])
        guard let token = login["access_token"] as? String, let user = login["user"] as? [String: Any], let id = user["id"] as? String else {
            throw LoadError.http("/verify-otp", 200, "no token")
        }
        return User(id: id, token: token)
    }

    func chat(_ a: User, _ b: User) async throws -> String {
        let chat = try await call("POST", "/api/v1/chats", ["other_user_id": b.id], token: a.token)
        guard let id = chat["chat_id"] as? String else { throw LoadError.http("/chats", 200, "no chat_id") }
        return id
    }
}

enum LoadError: Error, CustomStringConvertible {
    case http(String, Int, String)
    case noEcho

    var description: String {
        switch self {
        case .http(let path, let status, let body): "\(path): HTTP \(status) \(body.prefix(200))"
        case .noEcho: "request-otp did not echo the code: start the server with AUTH_DEV_MODE=true"
        }
    }
}
