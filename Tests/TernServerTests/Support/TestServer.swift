import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Testing
import TernConfig
import TernCore
import TernServer
import TernTestSupport

/// A response as the tests see it: status, headers, and the body parsed as JSON if it is.
struct TestResponse: Sendable {
    let status: Int
    let headers: HTTPHeaders
    let body: String

    var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
    }

    var data: [String: Any] { json?["data"] as? [String: Any] ?? [:] }
    var dataArray: [[String: Any]] { json?["data"] as? [[String: Any]] ?? [] }
    var errorCode: String? { (json?["error"] as? [String: Any])?["code"] as? String }
    var errorMessage: String? { (json?["error"] as? [String: Any])?["message"] as? String }
    var success: Bool? { json?["success"] as? Bool }
}

/// A logged-in test user.
struct TestSession: Sendable {
    let userID: String
    let accessToken: String
    let refreshToken: String
    let deviceID: String
    let phone: String
}

/// A real HTTP client against 127.0.0.1:`port`.
final class TestClient: Sendable {
    let port: Int
    let http = HTTPClient(eventLoopGroupProvider: .singleton)

    init(port: Int) { self.port = port }

    func shutdown() async { try? await http.shutdown() }

    func request(
        _ method: HTTPMethod, _ path: String, json: Any? = nil, raw: String? = nil, bytes: [UInt8]? = nil, token: String? = nil,
        headers: [(String, String)] = []
    ) async throws -> TestResponse {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: json)))
        } else if let raw {
            request.body = .bytes(ByteBuffer(string: raw))
        } else if let bytes {
            request.body = .bytes(ByteBuffer(bytes: bytes))
        }
        let response = try await http.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        return TestResponse(status: Int(response.status.code), headers: response.headers, body: String(buffer: body))
    }

    /// Logs in with the echoed code (the server must echo codes).
    func login(_ phone: String, deviceID: String? = nil, platform: String? = nil) async throws -> TestSession {
        let sent = try await request(.POST, "/api/v1/auth/request-otp", json: ["phone": phone])
        try #require(sent.status == 200, "request-otp: \(sent.body)")
        let code = try #require(sent.data["otp"] as? String)
        var body: [String: Any] = ["phone": phone, "code": code]
        if let deviceID { body["device_id"] = deviceID }
        if let platform { body["platform"] = platform }
        let verified = try await request(.POST, "/api/v1/auth/verify-otp", json: body)
        try #require(verified.status == 200, "verify-otp: \(verified.body)")
        let user = try #require(verified.data["user"] as? [String: Any])
        return TestSession(
            userID: try #require(user["id"] as? String), accessToken: try #require(verified.data["access_token"] as? String),
            refreshToken: try #require(verified.data["refresh_token"] as? String),
            deviceID: try #require(verified.data["device_id"] as? String), phone: phone)
    }
}

/// Who commits the relay's writes: the store's writer thread (`sync`, the default), or the
/// event loop that received them (`nosync` with `store.loop_commits`). Relay tests that
/// depend on commit order run in both.
enum CommitMode: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case writerThread
    case loop

    var testDescription: String { rawValue }

    func apply(_ config: inout TernConfiguration) {
        switch self {
        case .writerThread:
            config.storeDurability = "sync"
            config.loopCommits = true  // ignored with sync
        case .loop:
            config.storeDurability = "nosync"
            config.loopCommits = true
        }
    }

    /// The same, as `serve` arguments.
    var arguments: [String] {
        switch self {
        case .writerThread: ["--set", "store.durability=sync"]
        case .loop: ["--set", "store.durability=nosync", "--set", "store.loop_commits=true"]
        }
    }
}

/// A Tern server running in this process on 127.0.0.1 with a free port.
final class InProcessServer: Sendable {
    let dir: TemporaryDirectory
    let server: TernServer
    let client: TestClient
    /// The admin listener's port (nil when the test turned it off).
    let adminPort: Int?
    private let task: Task<Void, any Error>

    /// Starts a server with `configure` applied to a test configuration (echoed codes,
    /// relaxed limits unless the test sets its own).
    static func start(
        dir: TemporaryDirectory = TemporaryDirectory("tern-server"), clock: any TernClock = SystemClock(),
        commits: CommitMode = .writerThread, _ configure: (inout TernConfiguration) -> Void = { _ in }
    ) async throws -> InProcessServer {
        var config = try ConfigLoader.load(file: nil, environment: ["AUTH_DEV_MODE": "true"], overrides: []).get()
        config.httpPort = 0
        config.adminPort = 0
        config.dataDirectory = dir.path
        config.storeMapSize = 64 << 20
        commits.apply(&config)
        configure(&config)
        var logger = Logger(label: "tern-test")
        logger.logLevel = .warning
        let server = try TernServer(configuration: config, logger: logger, clock: clock)
        let (portStream, portContinuation) = AsyncStream.makeStream(of: ListeningPorts.self)
        let task = Task {
            try await server.run(handleSignals: false) { ports in portContinuation.yield(ports) }
        }
        var ports = ListeningPorts(http: 0, admin: nil)
        for await p in portStream {
            ports = p
            break
        }
        return InProcessServer(dir: dir, server: server, client: TestClient(port: ports.http), adminPort: ports.admin, task: task)
    }

    private init(dir: TemporaryDirectory, server: TernServer, client: TestClient, adminPort: Int?, task: Task<Void, any Error>) {
        self.dir = dir
        self.server = server
        self.client = client
        self.adminPort = adminPort
        self.task = task
    }

    /// Stops the server (graceful), keeping the data folder unless `removeData`.
    func stop(removeData: Bool = true) async {
        await client.shutdown()
        await server.shutdown()
        _ = try? await task.value
        if removeData { dir.remove() }
    }
}

/// Unique E.164 test numbers.
/// A phone number no other call in this test process returned (random draws collided now
/// and then in tests that log in a thousand users: two logins became one user).
func testPhone() -> String {
    let n = phoneSequence.withLock { () -> Int in
        phoneCounter += 1
        return phoneCounter
    }
    return "+1555\((phoneBase + n) % 9_000_000 + 1_000_000)"
}

private let phoneSequence = Mutex()
private let phoneBase = Int.random(in: 0..<9_000_000)
nonisolated(unsafe) private var phoneCounter = 0
