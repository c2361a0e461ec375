// TernConfig owns Tern's configuration: every key, its type, default and reason, and the
// layering of defaults < config file < `TERN_*` environment variables < command-line flags.
// Errors are collected, never thrown one at a time: `tern config check` lists every bad key.
// Pure code; reading the file is the only I/O.

/// The type of a configuration value and its accepted range.
public enum ConfigKind: Sendable, Equatable {
    case string
    /// An http(s) URL, or empty for "not set".
    case url
    case bool
    case int(ClosedRange<Int>)
    /// `500ms`, `30s`, `15m`, `2h`, `30d`, within the range (seconds).
    case duration(ClosedRange<Int64>)
    /// Bytes: an integer or `512KiB`, `8MiB`, `8GiB`, within the range.
    case size(ClosedRange<Int>)
    case choice([String])
    /// A rate limit `N/period`, e.g. `20/1h` (N at once, refilled over the period).
    case rate
}

/// One configuration key.
public struct ConfigKey: Sendable {
    /// Dotted name used in the file (`http.port`); the environment variable is
    /// `TERN_` + the name upper-cased with dots as underscores (`TERN_HTTP_PORT`).
    public let name: String
    public let kind: ConfigKind
    public let defaultValue: String
    /// What it does and why the default is what it is.
    public let help: String

    public var environmentName: String {
        "TERN_" + name.uppercased().replacingAll(".", with: "_")
    }
}

extension String {
    func replacingAll(_ a: Character, with b: String) -> String {
        var out = ""
        for c in self { if c == a { out += b } else { out.append(c) } }
        return out
    }
}

/// Every key Tern understands. docs/operations.md documents each (a test checks it).
public enum ConfigKeys {
    public static let all: [ConfigKey] = [
        ConfigKey(name: "http.host", kind: .string, defaultValue: "127.0.0.1",
                  help: "Address the HTTP/WebSocket listener binds. Loopback by default; use 0.0.0.0 to serve other machines."),
        ConfigKey(name: "http.port", kind: .int(0...65535), defaultValue: "8080",
                  help: "TCP port of the listener (0 = any free port, printed at start)."),
        ConfigKey(name: "http.event_loops", kind: .int(0...256), defaultValue: "0",
                  help: "Network threads (HTTP, WebSocket sessions). 0 = one per core but one, at least 1: the store's writer thread gets a core of its own."),
        ConfigKey(name: "http.max_body_size", kind: .size(1024...(64 << 20)), defaultValue: "1MiB",
                  help: "Largest request body accepted on JSON routes; larger bodies get 413 PAYLOAD_TOO_LARGE."),
        ConfigKey(name: "http.trust_forwarded_for", kind: .bool, defaultValue: "false",
                  help: "Take the client IP from X-Forwarded-For (only behind a trusted reverse proxy)."),
        ConfigKey(name: "data.dir", kind: .string, defaultValue: "./data",
                  help: "Data folder: the LMDB store in <dir>/store, signing keys and secrets in <dir>/keys."),
        ConfigKey(name: "store.map_size", kind: .size((1 << 20)...(1 << 44)), defaultValue: "8GiB",
                  help: "Maximum size of the LMDB data file. Reserved address space, not disk; writes past it fail with 507 STORAGE_FULL."),
        ConfigKey(name: "store.max_readers", kind: .int(16...4096), defaultValue: "126",
                  help: "LMDB reader slots shared by the server and ops tools."),
        ConfigKey(name: "store.durability", kind: .choice(["sync", "nosync"]), defaultValue: "sync",
                  help: "sync: every acknowledged write is fdatasync'ed first. nosync: commits are flushed by a timer; a power loss can lose the last store.nosync_flush_interval of acknowledged writes."),
        ConfigKey(name: "store.max_batch", kind: .int(1...65536), defaultValue: "1024",
                  help: "Most write requests that share one group commit."),
        ConfigKey(name: "store.read_threads", kind: .int(1...256), defaultValue: "4",
                  help: "Threads that run read transactions (kept off the network event loops)."),
        ConfigKey(name: "store.stale_reader_check", kind: .duration(1...86400), defaultValue: "60s",
                  help: "How often reader slots of killed processes are cleared (they stop page reuse)."),
        ConfigKey(name: "store.nosync_flush_interval", kind: .duration(0...3600), defaultValue: "1s",
                  help: "With store.durability = nosync: how often commits are flushed to disk."),
        ConfigKey(name: "store.loop_commits", kind: .bool, defaultValue: "true",
                  help: "With store.durability = nosync: a network thread commits the messages and acknowledgements of its own pass instead of handing them to the writer thread and back. Ignored with sync."),
        ConfigKey(name: "auth.access_ttl", kind: .duration(60...86400), defaultValue: "15m",
                  help: "Lifetime of an access token (reported as expires_in)."),
        ConfigKey(name: "auth.refresh_ttl", kind: .duration(3600...(400 * 86400)), defaultValue: "30d",
                  help: "A session ends after this long without a refresh."),
        ConfigKey(name: "auth.otp_ttl", kind: .duration(30...3600), defaultValue: "5m",
                  help: "Lifetime of a login code."),
        ConfigKey(name: "auth.otp_max_attempts", kind: .int(1...20), defaultValue: "5",
                  help: "Wrong codes before the phone is locked (a new code does not reset the count)."),
        ConfigKey(name: "auth.otp_lockout", kind: .duration(60...86400), defaultValue: "15m",
                  help: "How long a phone stays locked after too many wrong codes."),
        ConfigKey(name: "auth.otp_send_window", kind: .duration(60...86400), defaultValue: "10m",
                  help: "Window of the per-phone send limit."),
        ConfigKey(name: "auth.otp_max_sends", kind: .int(1...100), defaultValue: "3",
                  help: "Codes sent to one phone per auth.otp_send_window."),
        ConfigKey(name: "auth.otp_ip_limit", kind: .rate, defaultValue: "20/1h",
                  help: "Code requests per client IP."),
        ConfigKey(name: "auth.otp_sender", kind: .choice(["log", "webhook"]), defaultValue: "log",
                  help: "log: print codes in the server log (development). webhook: POST them to auth.webhook_url (an SMS gateway)."),
        ConfigKey(name: "auth.webhook_url", kind: .url, defaultValue: "",
                  help: "Where the webhook sender POSTs {phone, code, message, expires_in_seconds}."),
        ConfigKey(name: "auth.webhook_token", kind: .string, defaultValue: "",
                  help: "Sent as Authorization: Bearer to the webhook, if set."),
        ConfigKey(name: "auth.otp_echo", kind: .bool, defaultValue: "false",
                  help: "Return the code in the request-otp response (data.otp). Tests and local development only."),
        ConfigKey(name: "auth.dev_mode", kind: .bool, defaultValue: "false",
                  help: "Test mode: implies auth.otp_echo and multiplies every rate limit by ratelimit.dev_factor. Also set by AUTH_DEV_MODE=true (the seed's switch)."),
        ConfigKey(name: "auth.key_reload_interval", kind: .duration(1...86400), defaultValue: "30s",
                  help: "How often the server re-reads <data>/keys, picking up keys added by `tern keys rotate`."),
        ConfigKey(name: "ratelimit.ip", kind: .rate, defaultValue: "600/1m",
                  help: "Requests per client IP across the HTTP API."),
        ConfigKey(name: "ratelimit.user", kind: .rate, defaultValue: "300/1m",
                  help: "Requests per authenticated user across the HTTP API."),
        ConfigKey(name: "ratelimit.dev_factor", kind: .int(1...100_000), defaultValue: "100",
                  help: "In dev mode every rate limit (and the per-phone send limit) is multiplied by this."),
        ConfigKey(name: "relay.window", kind: .int(1...100_000), defaultValue: "512",
                  help: "Message frames sent to one device and not yet acknowledged, at most; the rest wait in its mailbox."),
        ConfigKey(name: "relay.drain_page", kind: .int(1...10_000), defaultValue: "256",
                  help: "Mailbox entries read per step while a device catches up; the next page is read while half of the current one is still to send."),
        ConfigKey(name: "relay.ping_interval", kind: .duration(1...3600), defaultValue: "25s",
                  help: "WebSocket pings go to connections quiet for this long."),
        ConfigKey(name: "relay.idle_timeout", kind: .duration(5...86400), defaultValue: "75s",
                  help: "Connections with no frame at all (not even a pong) for this long are closed."),
        ConfigKey(name: "relay.max_message_size", kind: .size(1024...(16 << 20)), defaultValue: "64KiB",
                  help: "Largest WebSocket text frame accepted; larger ones (up to 1 MiB) get an error frame, beyond that the connection closes with 1009."),
        ConfigKey(name: "relay.slow_consumer_grace", kind: .duration(1...3600), defaultValue: "10s",
                  help: "A client that does not read (socket buffer above 1 MiB) this long is disconnected; its frames stay in its mailbox."),
        ConfigKey(name: "relay.slow_consumer_bytes", kind: .size((64 << 10)...(1 << 30)), defaultValue: "8MiB",
                  help: "Bytes queued to a client that does not read before it is disconnected at once."),
        ConfigKey(name: "relay.typing_ttl", kind: .duration(1...60), defaultValue: "5s",
                  help: "A typing indicator without refresh ends after this long."),
        ConfigKey(name: "groups.max_members", kind: .int(2...100_000), defaultValue: "1024",
                  help: "Members of one group at most, the creator included; enforced on create and on add."),
        ConfigKey(name: "log.level", kind: .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"]),
                  defaultValue: "info", help: "Lowest log level printed."),
        ConfigKey(name: "log.format", kind: .choice(["text", "json"]), defaultValue: "text",
                  help: "Log lines as human text or as one JSON object per line (for log shippers)."),
        ConfigKey(name: "admin.host", kind: .string, defaultValue: "127.0.0.1",
                  help: "Address of the admin listener (purge, revoke, disable). Loopback by default: keep it private."),
        ConfigKey(name: "admin.port", kind: .int(-1...65535), defaultValue: "8081",
                  help: "Port of the admin listener (0 = any free port; -1 = no admin listener)."),
        ConfigKey(name: "admin.token", kind: .string, defaultValue: "",
                  help: "Bearer token of the admin API (at least 32 characters). Empty: a random token is kept in <data>/keys/admin.token."),
        ConfigKey(name: "push.webhook_url", kind: .url, defaultValue: "",
                  help: "Pushes for offline devices are POSTed here as JSON (a gateway to FCM/APNs); empty = no push."),
        ConfigKey(name: "push.webhook_token", kind: .string, defaultValue: "",
                  help: "Bearer token sent to push.webhook_url."),
        ConfigKey(name: "media.image_max_size", kind: .size(1024...(1 << 30)), defaultValue: "16MiB",
                  help: "Largest image upload; larger ones are refused with 413 MEDIA_TOO_LARGE while streaming."),
        ConfigKey(name: "media.video_max_size", kind: .size(1024...(4 << 30)), defaultValue: "64MiB",
                  help: "Largest video upload."),
        ConfigKey(name: "media.audio_max_size", kind: .size(1024...(1 << 30)), defaultValue: "16MiB",
                  help: "Largest audio upload."),
        ConfigKey(name: "media.document_max_size", kind: .size(1024...(4 << 30)), defaultValue: "100MiB",
                  help: "Largest document upload (also the limit while the kind of an upload is not known yet)."),
        ConfigKey(name: "media.thumbnail_size", kind: .int(32...2048), defaultValue: "320",
                  help: "Longest side in pixels of image and video thumbnails."),
        ConfigKey(name: "media.url_ttl", kind: .duration(10...(7 * 86_400)), defaultValue: "1h",
                  help: "Lifetime of presigned download URLs."),
        ConfigKey(name: "media.workers", kind: .int(1...64), defaultValue: "2",
                  help: "Threads of the media worker pool (probing, thumbnails); libav work never runs on an event loop."),
        ConfigKey(name: "media.upload_rate", kind: .rate, defaultValue: "60/1m",
                  help: "Uploads per user: N at once, refilled over the period (429 beyond)."),
        ConfigKey(name: "media.video_max_side", kind: .int(240...4096), defaultValue: "1280",
                  help: "Videos larger than this (longest side, pixels) are transcoded down to it."),
        ConfigKey(name: "media.video_max_bitrate", kind: .int(100_000...1_000_000_000), defaultValue: "10000000",
                  help: "Videos over this many bits per second are transcoded (as are non-H.264/AAC or non-MP4 ones)."),
        ConfigKey(name: "media.transcode_queue", kind: .int(1...1024), defaultValue: "8",
                  help: "Transcodes waiting or running at most; another video needing one gets 503 MEDIA_BUSY."),
        ConfigKey(name: "media.cleanup_interval", kind: .duration(0...(7 * 86_400)), defaultValue: "6h",
                  help: "How often unreferenced media are deleted (0s = never)."),
        ConfigKey(name: "media.orphan_grace", kind: .duration(60...(365 * 86_400)), defaultValue: "24h",
                  help: "An upload never sent in any chat is deleted once it is older than this; sent media are never deleted."),
        ConfigKey(name: "metrics.mailbox_census_interval", kind: .duration(0...3600), defaultValue: "30s",
                  help: "How often the tern_mailbox_* gauges are recomputed by a paged pass over every mailbox (0s = never)."),
        ConfigKey(name: "shutdown.drain_window", kind: .duration(0...600), defaultValue: "5s",
                  help: "On SIGTERM, live WebSocket sessions are closed (1001) spread over this window so clients do not reconnect at once."),
    ]

    /// The key named `name`, if any.
    public static func named(_ name: String) -> ConfigKey? { all.first { $0.name == name } }
}
