import AsyncHTTPClient
import Foundation
import NIOHTTP1
import Testing
import TernTestSupport
import TernStore
import Logging

@Suite("The tern executable", .serialized)
struct ExecutableTests {
    @Test("tern config check lists every problem at once and exits 1; a valid setup exits 0")
    func configCheck() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try "[http]\nport = 70000\n[store]\ndurabilty = sync\n".write(toFile: dir.file("bad.toml"), atomically: true, encoding: .utf8)
        let bad = try runTern(
            ["config", "check", "--config", dir.file("bad.toml"), "--set", "auth.otp_ttl=soon"],
            environment: ["TERN_LOG_LEVEL": "loud"])
        #expect(bad.status == 1)
        for needle in ["http.port", "store.durabilty", "did you mean store.durability", "auth.otp_ttl", "log.level", "TERN_LOG_LEVEL"] {
            #expect(bad.err.contains(needle), "missing \(needle) in: \(bad.err)")
        }
        let good = try runTern(["config", "check", "--port", "9999"])
        #expect(good.status == 0)
        #expect(good.out.contains("http.port = 9999    # command line"))
        #expect(good.out.contains("data.dir = ./data    # default"))
    }

    @Test("serve: metrics in Prometheus text; keys rotate while running switches signing, old tokens keep working")
    func serveMetricsAndRotation() async throws {
        let dir = TemporaryDirectory("tern-exec")
        defer { dir.remove() }
        let data = dir.file("data")
        let server = try await ChildServer.start(dataDirectory: data, extraArguments: ["--set", "auth.key_reload_interval=1s"])
        let client = TestClient(port: server.port)
        let session = try await client.login(testPhone())
        _ = try await client.request(.PATCH, "/api/v1/users/me", json: ["display_name": "M"], token: session.accessToken)

        let metrics = try await client.request(.GET, "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.headers.first(name: "Content-Type")?.hasPrefix("text/plain") == true)
        for name in ["tern_http_requests_total", "tern_store_commits_total", "tern_store_commit_duration_seconds_bucket",
            "tern_store_commit_batch_size_bucket", "tern_store_map_used_bytes", "tern_store_writes_total"]
        {
            #expect(metrics.body.contains(name), "metrics lack \(name)")
        }
        #expect(!metrics.body.contains(session.userID), "no user ids in metric labels")

        let footer = { (token: String) -> String in
            String(decoding: try! Base64URLTest.decode(String(token.split(separator: ".")[3])), as: UTF8.self)
        }
        let before = footer(session.accessToken)
        let list = try runTern(["keys", "list", "--data", data])
        #expect(list.status == 0)
        #expect(list.out.contains("(signing)"))
        let rotated = try runTern(["keys", "rotate", "--data", data])
        #expect(rotated.status == 0, "\(rotated.err)")
        let newKid = try #require(rotated.out.split(separator: " ").first { $0.hasPrefix("k4.pid.") }).description
        // Within a few reload intervals the server signs with the new key.
        var switched = false
        for _ in 0..<300 {
            let fresh = try await client.login(testPhone())
            if footer(fresh.accessToken).contains(newKid) {
                switched = true
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(switched, "server never picked up \(newKid); was \(before)")
        #expect(try await client.request(.GET, "/api/v1/users/me", token: session.accessToken).status == 200, "old token still valid")
        await client.shutdown()
        #expect(server.terminate() == 0)
        #expect(server.log.contains("tern stopped"))
        #expect(!server.log.contains(session.accessToken), "tokens are never logged")
    }

    @Test("a data folder from a newer Tern is refused at start with a clear message")
    func newerSchema() async throws {
        let dir = TemporaryDirectory("tern-schema")
        defer { dir.remove() }
        let data = dir.file("data")
        let server = try await ChildServer.start(dataDirectory: data)
        #expect(server.terminate() == 0)
        try await bumpSchemaVersion(storePath: data + "/store")
        let refused = try runTern(["serve", "--port", "0", "--data", data])
        #expect(refused.status != 0)
        #expect(refused.err.contains("schema version 2"), "\(refused.err)")
        #expect(refused.err.contains("upgrade tern"))
    }
}

/// Minimal strict base64url for reading token footers in tests.
enum Base64URLTest {
    static func decode(_ text: String) throws -> [UInt8] {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        guard let data = Data(base64Encoded: s) else { throw CocoaError(.coderInvalidValue) }
        return Array(data)
    }
}

/// Writes schema version 2 into a store, as a newer Tern would.
func bumpSchemaVersion(storePath: String) async throws {
    let store = try Store(configuration: StoreConfiguration(path: storePath, mapSize: 64 << 20), logger: Logger(label: "bump"))
    try await store.write { tx in
        var w = ByteWriter()
        w.u32(2)
        try tx.putBytes(w.bytes, in: tx.tables.meta, at: MetaKey.schemaVersion)
    }
    await store.close()
}
