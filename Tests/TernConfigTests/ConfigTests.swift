import Foundation
import Testing
import TernCore
import TernTestSupport

@testable import TernConfig

@Suite("Configuration")
struct ConfigTests {
    func load(file: String? = nil, env: [String: String] = [:], flags: [(String, String)] = []) -> Result<TernConfiguration, ConfigErrors> {
        ConfigLoader.load(file: file, environment: env, overrides: flags)
    }

    @Test("defaults run out of the box: 127.0.0.1:8080, data in ./data, synced commits, codes in the log")
    func defaults() throws {
        let config = try load().get()
        #expect(config.httpHost == "127.0.0.1")
        #expect(config.httpPort == 8080)
        #expect(config.dataDirectory == "./data")
        #expect(config.storePath == "./data/store")
        #expect(config.storeDurability == "sync")
        #expect(config.otpSender == "log")
        #expect(!config.echoesOTP)
        #expect(config.accessTTL == .minutes(15))
        #expect(config.storeMapSize == 8 << 30)
    }

    @Test("file < environment < flags, with sections, dotted keys, quotes and comments")
    func layering() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = dir.file("tern.toml")
        try """
            # Tern configuration
            auth.access_ttl = 10m
            [http]
            port = 9000          # comment after a value
            host = "0.0.0.0"
            [store]
            map_size = "64MiB"
            durability = nosync
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let fromFile = try load(file: file).get()
        #expect(fromFile.httpPort == 9000)
        #expect(fromFile.httpHost == "0.0.0.0")
        #expect(fromFile.storeMapSize == 64 << 20)
        #expect(fromFile.storeDurability == "nosync")
        #expect(fromFile.accessTTL == .minutes(10))
        let layered = try load(file: file, env: ["TERN_HTTP_PORT": "9100", "TERN_STORE_MAP_SIZE": "1GiB"], flags: [("http.port", "9200")]).get()
        #expect(layered.httpPort == 9200)
        #expect(layered.storeMapSize == 1 << 30)
        #expect(layered.sources.first { $0.key == "http.port" }?.source == "command line")
        #expect(layered.sources.first { $0.key == "store.map_size" }?.source == "environment TERN_STORE_MAP_SIZE")
        #expect(layered.sources.first { $0.key == "http.host" }?.source == "\(file):5")
    }

    @Test("every invalid key is reported at once, each naming its source")
    func allErrors() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = dir.file("bad.toml")
        try """
            [http]
            prot = 1
            port = 99999
            [store]
            durability = sometimes
            map_size = lots
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let result = load(
            file: file,
            env: ["TERN_AUTH_OTP_TTL": "forever", "TERN_NOPE": "1", "TERN_AUTH_OTP_SENDER": "webhook"],
            flags: [("ratelimit.ip", "fast"), ("log.lvl", "debug")])
        guard case .failure(let errors) = result else {
            Issue.record("expected errors")
            return
        }
        let keys = Set(errors.problems.map(\.key))
        #expect(keys == ["http.prot", "http.port", "store.durability", "store.map_size", "auth.otp_ttl", "TERN_NOPE", "auth.webhook_url", "ratelimit.ip", "log.lvl"])
        #expect(errors.problems.first { $0.key == "http.prot" }?.message.contains("did you mean http.port") == true)
        #expect(errors.problems.first { $0.key == "store.durability" }?.message.contains("one of sync, nosync") == true)
        #expect(errors.problems.first { $0.key == "auth.otp_ttl" }?.source == "environment TERN_AUTH_OTP_TTL")
        #expect(errors.description.split(separator: "\n").count == errors.problems.count + 1)
    }

    @Test("the seed's AUTH_DEV_MODE switch turns on the code echo and relaxes limits")
    func devMode() throws {
        let config = try load(env: ["AUTH_DEV_MODE": "true"]).get()
        #expect(config.devMode && config.echoesOTP)
        #expect(config.effective(config.ipRateLimit).burst == config.ipRateLimit.burst * 100)
        let off = try load(env: ["AUTH_DEV_MODE": "false"]).get()
        #expect(!off.echoesOTP)
        if case .success = load(env: ["AUTH_DEV_MODE": "maybe"]) { Issue.record("AUTH_DEV_MODE=maybe must be rejected") }
    }

    @Test("value parsers: durations, sizes, rates, booleans")
    func parsers() {
        #expect(ConfigValue.duration("500ms") == .milliseconds(500))
        #expect(ConfigValue.duration("15m") == .minutes(15))
        #expect(ConfigValue.duration("30d") == .days(30))
        #expect(ConfigValue.duration("m") == nil)
        #expect(ConfigValue.duration("-1s") == nil)
        #expect(ConfigValue.size("8GiB") == 8 << 30)
        #expect(ConfigValue.size("1048576") == 1 << 20)
        #expect(ConfigValue.size("1.5GiB") == nil)
        #expect(ConfigValue.rate("20/1h") == RateLimit.per(.hours(1), 20))
        #expect(ConfigValue.rate("600/m") == RateLimit.per(.minutes(1), 600))
        #expect(ConfigValue.rate("0/1h") == nil)
        #expect(ConfigValue.bool("yes") == true)
        #expect(ConfigValue.bool("nah") == nil)
    }

    @Test("docs/operations.md documents every key and its environment variable")
    func documented() throws {
        let docs = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/operations.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        for key in ConfigKeys.all {
            #expect(text.contains("`\(key.name)`"), "docs/operations.md lacks \(key.name)")
            #expect(text.contains(key.environmentName), "docs/operations.md lacks \(key.environmentName)")
        }
    }
}
