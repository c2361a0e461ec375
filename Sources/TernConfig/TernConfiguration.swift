import TernCore

/// The validated, typed configuration of a Tern server.
public struct TernConfiguration: Sendable {
    /// Network event loops when `http.event_loops` is 0: one per core but one (the store's
    /// single writer thread is the other busy thread), at least one. On 2 cores one loop
    /// used 15 % less CPU per relayed message than two (docs/benchmarks.md).
    public static func defaultEventLoops(cores: Int) -> Int { max(1, cores - 1) }

    /// The event loops this configuration runs.
    public func eventLoopCount(cores: Int) -> Int { eventLoops > 0 ? eventLoops : Self.defaultEventLoops(cores: cores) }

    public var httpHost = "127.0.0.1"
    public var httpPort = 8080
    /// Network event loops; 0 = `defaultEventLoops`.
    public var eventLoops = 0
    public var maxBodySize = 1 << 20
    public var trustForwardedFor = false
    public var dataDirectory = "./data"
    public var storeMapSize = 8 << 30
    public var storeMaxReaders = 126
    public var storeDurability = "sync"
    public var storeMaxBatch = 1024
    public var storeReadThreads = 4
    public var staleReaderCheck: Duration = .seconds(60)
    public var nosyncFlushInterval: Duration = .seconds(1)
    public var loopCommits = true
    public var accessTTL: Duration = .minutes(15)
    public var refreshTTL: Duration = .days(30)
    public var otpTTL: Duration = .minutes(5)
    public var otpMaxAttempts = 5
    public var otpLockout: Duration = .minutes(15)
    public var otpSendWindow: Duration = .minutes(10)
    public var otpMaxSends = 3
    public var otpIPLimit = RateLimit.per(.hours(1), 20)
    public var otpSender = "log"
    public var webhookURL = ""
    public var webhookToken = ""
    public var otpEcho = false
    public var devMode = false
    public var keyReloadInterval: Duration = .seconds(30)
    public var ipRateLimit = RateLimit.per(.minutes(1), 600)
    public var userRateLimit = RateLimit.per(.minutes(1), 300)
    public var devFactor = 100
    public var relayWindow = 512
    public var relayDrainPage = 256
    public var relayPingInterval: Duration = .seconds(25)
    public var relayIdleTimeout: Duration = .seconds(75)
    public var relayMaxMessageBytes = 64 << 10
    public var relaySlowConsumerGrace: Duration = .seconds(10)
    public var relaySlowConsumerBytes = 8 << 20
    public var relayTypingTTL: Duration = .seconds(5)
    public var groupMaxMembers = 1024
    public var logLevel = "info"
    public var logFormat = "text"
    public var adminHost = "127.0.0.1"
    public var adminPort = 8081
    public var adminToken = ""
    public var drainWindow: Duration = .seconds(5)
    public var mailboxCensusInterval: Duration = .seconds(30)
    public var pushWebhookURL = ""
    public var pushWebhookToken = ""
    public var mediaImageMax = 16 << 20
    public var mediaVideoMax = 64 << 20
    public var mediaAudioMax = 16 << 20
    public var mediaDocumentMax = 100 << 20
    public var mediaThumbnailSize = 320
    public var mediaURLTTL: Duration = .hours(1)
    public var mediaWorkers = 2
    public var mediaUploadRate = RateLimit.per(.minutes(1), 60)
    public var mediaCleanupInterval: Duration = .hours(6)
    public var mediaVideoMaxSide = 1280
    public var mediaVideoMaxBitrate = 10_000_000
    public var mediaTranscodeQueue = 8
    public var mediaOrphanGrace: Duration = .hours(24)
    /// Raw values with their sources, for `tern config check`.
    public var sources: [(key: String, value: String, source: String)] = []

    public init() {}

    /// The LMDB directory.
    public var storePath: String { dataDirectory + "/store" }
    /// Signing keys and secrets.
    public var keysPath: String { dataDirectory + "/keys" }
    /// Blobs (uploads, thumbnails) and upload temporaries.
    public var mediaPath: String { dataDirectory + "/media" }
    /// The admin token file used when `admin.token` is empty.
    public var adminTokenPath: String { keysPath + "/admin.token" }
    /// Whether the admin listener runs.
    public var adminEnabled: Bool { adminPort >= 0 }
    /// Dev mode turns the echo on.
    public var echoesOTP: Bool { otpEcho || devMode }

    /// A limit as configured, relaxed by `ratelimit.dev_factor` in dev mode.
    public func effective(_ limit: RateLimit) -> RateLimit {
        devMode ? limit.scaled(Double(devFactor)) : limit
    }

    /// Types and checks every raw value; collects every problem.
    static func build(_ raw: RawConfig) -> Result<TernConfiguration, ConfigErrors> {
        var problems = raw.problems
        var config = TernConfiguration()
        func value(_ key: String) -> (value: String, source: String) { raw.values[key]! }
        func fail(_ key: String, _ message: String) {
            problems.append(ConfigProblem(key: key, source: value(key).source, message: message))
        }

        func typed<T>(_ key: String, _ parse: (String, ConfigKind) -> T?) -> T? {
            let spec = ConfigKeys.named(key)!
            guard let v = parse(value(key).value, spec.kind) else {
                fail(key, "invalid value \"\(value(key).value)\": expected \(describe(spec.kind))")
                return nil
            }
            return v
        }
        func string(_ key: String) -> String { value(key).value }
        func int(_ key: String) -> Int? {
            typed(key) { text, kind in
                guard let n = Int(text.trimmingWhitespace()), case .int(let range) = kind, range.contains(n) else { return nil }
                return n
            }
        }
        func bool(_ key: String) -> Bool? { typed(key) { text, _ in ConfigValue.bool(text) } }
        func duration(_ key: String) -> Duration? {
            typed(key) { text, kind in
                guard let d = ConfigValue.duration(text), case .duration(let range) = kind,
                    d >= .seconds(range.lowerBound), d <= .seconds(range.upperBound)
                else { return nil }
                return d
            }
        }
        func size(_ key: String) -> Int? {
            typed(key) { text, kind in
                guard let n = ConfigValue.size(text), case .size(let range) = kind, range.contains(n) else { return nil }
                return n
            }
        }
        func choice(_ key: String) -> String? {
            typed(key) { text, kind in
                guard case .choice(let options) = kind, options.contains(text.trimmingWhitespace()) else { return nil }
                return text.trimmingWhitespace()
            }
        }
        func rate(_ key: String) -> RateLimit? { typed(key) { text, _ in ConfigValue.rate(text) } }
        func url(_ key: String) -> String? {
            typed(key) { text, _ in
                let t = text.trimmingWhitespace()
                return t.isEmpty || t.hasPrefix("http://") || t.hasPrefix("https://") ? t : nil
            }
        }

        config.httpHost = string("http.host")
        if config.httpHost.isEmpty { fail("http.host", "must not be empty") }
        config.httpPort = int("http.port") ?? config.httpPort
        config.eventLoops = int("http.event_loops") ?? config.eventLoops
        config.maxBodySize = size("http.max_body_size") ?? config.maxBodySize
        config.trustForwardedFor = bool("http.trust_forwarded_for") ?? config.trustForwardedFor
        config.dataDirectory = string("data.dir")
        if config.dataDirectory.isEmpty { fail("data.dir", "must not be empty") }
        config.storeMapSize = size("store.map_size") ?? config.storeMapSize
        config.storeMaxReaders = int("store.max_readers") ?? config.storeMaxReaders
        config.storeDurability = choice("store.durability") ?? config.storeDurability
        config.storeMaxBatch = int("store.max_batch") ?? config.storeMaxBatch
        config.storeReadThreads = int("store.read_threads") ?? config.storeReadThreads
        config.staleReaderCheck = duration("store.stale_reader_check") ?? config.staleReaderCheck
        config.nosyncFlushInterval = duration("store.nosync_flush_interval") ?? config.nosyncFlushInterval
        config.loopCommits = bool("store.loop_commits") ?? config.loopCommits
        config.accessTTL = duration("auth.access_ttl") ?? config.accessTTL
        config.refreshTTL = duration("auth.refresh_ttl") ?? config.refreshTTL
        config.otpTTL = duration("auth.otp_ttl") ?? config.otpTTL
        config.otpMaxAttempts = int("auth.otp_max_attempts") ?? config.otpMaxAttempts
        config.otpLockout = duration("auth.otp_lockout") ?? config.otpLockout
        config.otpSendWindow = duration("auth.otp_send_window") ?? config.otpSendWindow
        config.otpMaxSends = int("auth.otp_max_sends") ?? config.otpMaxSends
        config.otpIPLimit = rate("auth.otp_ip_limit") ?? config.otpIPLimit
        config.otpSender = choice("auth.otp_sender") ?? config.otpSender
        config.webhookURL = url("auth.webhook_url") ?? config.webhookURL
        config.webhookToken = string("auth.webhook_token")
        config.otpEcho = bool("auth.otp_echo") ?? config.otpEcho
        config.devMode = bool("auth.dev_mode") ?? config.devMode
        config.keyReloadInterval = duration("auth.key_reload_interval") ?? config.keyReloadInterval
        config.ipRateLimit = rate("ratelimit.ip") ?? config.ipRateLimit
        config.userRateLimit = rate("ratelimit.user") ?? config.userRateLimit
        config.devFactor = int("ratelimit.dev_factor") ?? config.devFactor
        config.relayWindow = int("relay.window") ?? config.relayWindow
        config.relayDrainPage = int("relay.drain_page") ?? config.relayDrainPage
        config.relayPingInterval = duration("relay.ping_interval") ?? config.relayPingInterval
        config.relayIdleTimeout = duration("relay.idle_timeout") ?? config.relayIdleTimeout
        config.relayMaxMessageBytes = size("relay.max_message_size") ?? config.relayMaxMessageBytes
        config.relaySlowConsumerGrace = duration("relay.slow_consumer_grace") ?? config.relaySlowConsumerGrace
        config.relaySlowConsumerBytes = size("relay.slow_consumer_bytes") ?? config.relaySlowConsumerBytes
        config.relayTypingTTL = duration("relay.typing_ttl") ?? config.relayTypingTTL
        config.groupMaxMembers = int("groups.max_members") ?? config.groupMaxMembers
        config.logLevel = choice("log.level") ?? config.logLevel
        config.logFormat = choice("log.format") ?? config.logFormat
        config.adminHost = string("admin.host")
        if config.adminHost.isEmpty { fail("admin.host", "must not be empty") }
        config.adminPort = int("admin.port") ?? config.adminPort
        config.adminToken = string("admin.token").trimmingWhitespace()
        if !config.adminToken.isEmpty && config.adminToken.count < 32 {
            fail("admin.token", "must be at least 32 characters (or empty for a generated token)")
        }
        config.drainWindow = duration("shutdown.drain_window") ?? config.drainWindow
        config.mailboxCensusInterval = duration("metrics.mailbox_census_interval") ?? config.mailboxCensusInterval
        config.pushWebhookURL = url("push.webhook_url") ?? config.pushWebhookURL
        config.pushWebhookToken = string("push.webhook_token")
        config.mediaImageMax = size("media.image_max_size") ?? config.mediaImageMax
        config.mediaVideoMax = size("media.video_max_size") ?? config.mediaVideoMax
        config.mediaAudioMax = size("media.audio_max_size") ?? config.mediaAudioMax
        config.mediaDocumentMax = size("media.document_max_size") ?? config.mediaDocumentMax
        config.mediaThumbnailSize = int("media.thumbnail_size") ?? config.mediaThumbnailSize
        config.mediaURLTTL = duration("media.url_ttl") ?? config.mediaURLTTL
        config.mediaWorkers = int("media.workers") ?? config.mediaWorkers
        config.mediaUploadRate = rate("media.upload_rate") ?? config.mediaUploadRate
        config.mediaCleanupInterval = duration("media.cleanup_interval") ?? config.mediaCleanupInterval
        config.mediaVideoMaxSide = int("media.video_max_side") ?? config.mediaVideoMaxSide
        config.mediaVideoMaxBitrate = int("media.video_max_bitrate") ?? config.mediaVideoMaxBitrate
        config.mediaTranscodeQueue = int("media.transcode_queue") ?? config.mediaTranscodeQueue
        config.mediaOrphanGrace = duration("media.orphan_grace") ?? config.mediaOrphanGrace

        // Rules that span keys.
        if config.otpSender == "webhook" && config.webhookURL.isEmpty {
            fail("auth.webhook_url", "required when auth.otp_sender = webhook")
        }
        if config.storeMaxReaders < config.storeReadThreads + 8 {
            fail("store.max_readers", "must be at least store.read_threads + 8 (\(config.storeReadThreads + 8))")
        }
        if config.relayIdleTimeout <= config.relayPingInterval {
            fail("relay.idle_timeout", "must be longer than relay.ping_interval")
        }
        if config.accessTTL >= config.refreshTTL {
            fail("auth.access_ttl", "must be shorter than auth.refresh_ttl")
        }

        config.sources = ConfigKeys.all.map { key in
            let v = raw.values[key.name]!
            let secret = key.name == "auth.webhook_token" || key.name == "admin.token" || key.name == "push.webhook_token"
            let shown = secret && !v.value.isEmpty ? "(set)" : v.value
            return (key.name, shown, v.source)
        }
        if problems.isEmpty { return .success(config) }
        return .failure(ConfigErrors(problems: problems))
    }
}

/// Human description of a kind, for error messages.
func describe(_ kind: ConfigKind) -> String {
    switch kind {
    case .string: "a string"
    case .url: "an http(s) URL or empty"
    case .bool: "true or false"
    case .int(let r): "an integer in \(r.lowerBound)...\(r.upperBound)"
    case .duration(let r): "a duration such as 30s, 15m, 2h, 7d (between \(r.lowerBound)s and \(r.upperBound)s)"
    case .size(let r): "a size such as 512KiB, 8MiB, 8GiB (between \(r.lowerBound) and \(r.upperBound) bytes)"
    case .choice(let options): "one of " + options.joined(separator: ", ")
    case .rate: "a rate such as 20/1h or 600/1m"
    }
}
