// TernServer assembles a running Tern: it opens the store and the key ring from the data
// folder, builds the auth service and the HTTP API, and runs them as services with an
// ordered start and a designed shutdown (HTTP stops first, the store closes last, after the
// writer committed everything queued).
//
// Concurrency contract: `TernServer` is Sendable; `run()` may be called once. Shutdown is
// triggered by SIGTERM/SIGINT (when `handleSignals`) or by `shutdown()`.
import AsyncHTTPClient
import Hummingbird
import Logging
import Metrics
import NIOCore
import NIOPosix
import ServiceLifecycle
import TernAPI
import TernAuth
import TernConfig
import TernCore
import TernGateway
import TernLMDB
import TernMedia
import TernRelay
import TernStore
import UnixSignals

/// A configured, not yet running server.
public final class TernServer: Sendable {
    public let configuration: TernConfiguration
    public let store: Store
    public let auth: AuthService
    public let keyRing: KeyRing
    public let relay: Relay
    public let media: MediaService
    private let logger: Logger
    private let clock: any TernClock
    private let httpClient: HTTPClient?
    private let pushClient: HTTPClient?
    private let responder: RouterResponder<TernRequestContext>
    private let adminResponder: RouterResponder<TernRequestContext>?
    private let group = GroupBox()

    /// Opens the store and keys and builds the API. `metricsText` renders `/metrics`.
    public init(
        configuration: TernConfiguration, logger: Logger, clock: any TernClock = SystemClock(),
        metricsText: (@Sendable () -> String)? = nil
    ) throws {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        let store = try Store(
            configuration: StoreConfiguration(
                path: configuration.storePath,
                mapSize: configuration.storeMapSize,
                maxReaders: UInt32(configuration.storeMaxReaders),
                durability: LMDBDurability(rawValue: configuration.storeDurability) ?? .sync,
                maxBatch: configuration.storeMaxBatch,
                readThreads: configuration.storeReadThreads,
                staleReaderCheckInterval: configuration.staleReaderCheck,
                nosyncFlushInterval: configuration.nosyncFlushInterval,
                loopCommits: configuration.loopCommits),
            logger: logger)
        self.store = store
        var relaySettings = RelaySettings()
        relaySettings.window = configuration.relayWindow
        relaySettings.drainPage = configuration.relayDrainPage
        relaySettings.pingInterval = configuration.relayPingInterval
        relaySettings.idleTimeout = configuration.relayIdleTimeout
        relaySettings.maxMessageBytes = configuration.relayMaxMessageBytes
        relaySettings.slowConsumerGrace = configuration.relaySlowConsumerGrace
        relaySettings.slowConsumerBytes = configuration.relaySlowConsumerBytes
        relaySettings.typingTTL = configuration.relayTypingTTL
        relaySettings.groupMaxMembers = configuration.groupMaxMembers
        let pushClient = configuration.pushWebhookURL.isEmpty ? nil : HTTPClient(eventLoopGroupProvider: .singleton)
        if let pushClient {
            relaySettings.push = WebhookPushSender(url: configuration.pushWebhookURL, bearer: configuration.pushWebhookToken, client: pushClient)
        }
        self.pushClient = pushClient
        let relay = Relay(store: store, settings: relaySettings, clock: clock, logger: logger)
        self.relay = relay
        do {
            keyRing = try KeyRing(directory: configuration.keysPath, clock: clock, createIfEmpty: true)
            let otpKey = try SecretFiles.loadOrCreate(configuration.keysPath + "/otp-hmac.key", length: 32)
            var settings = AuthSettings()
            settings.accessTTL = configuration.accessTTL
            settings.refreshTTL = configuration.refreshTTL
            settings.otpTTL = configuration.otpTTL
            settings.otpMaxAttempts = configuration.otpMaxAttempts
            settings.otpLockout = configuration.otpLockout
            settings.otpSendWindow = configuration.otpSendWindow
            settings.otpMaxSendsPerWindow =
                configuration.devMode ? configuration.otpMaxSends * configuration.devFactor : configuration.otpMaxSends
            settings.otpIPLimit = configuration.effective(configuration.otpIPLimit)
            settings.echoOTP = configuration.echoesOTP
            let sender: any CodeSender
            if configuration.otpSender == "webhook" {
                let client = HTTPClient(eventLoopGroupProvider: .singleton)
                httpClient = client
                sender = WebhookCodeSender(url: configuration.webhookURL, bearer: configuration.webhookToken, client: client)
            } else {
                httpClient = nil
                sender = LogCodeSender(logger: logger)
            }
            auth = AuthService(
                store: store, tokens: TokenService(keyRing: keyRing, clock: clock, accessTTL: configuration.accessTTL),
                settings: settings, otpKey: otpKey, sender: sender, clock: clock, logger: logger,
                sessionEnded: { session, user, reason in relay.disconnect(session: session, user: user, reason: reason.text) })
        } catch {
            // The store opened; close it before giving up.
            let store = self.store
            Task { await store.close() }
            throw error
        }
        do {
            var mediaSettings = MediaSettings()
            mediaSettings.imageMax = configuration.mediaImageMax
            mediaSettings.videoMax = configuration.mediaVideoMax
            mediaSettings.audioMax = configuration.mediaAudioMax
            mediaSettings.documentMax = configuration.mediaDocumentMax
            mediaSettings.thumbnailSide = configuration.mediaThumbnailSize
            mediaSettings.urlTTL = configuration.mediaURLTTL
            mediaSettings.workers = configuration.mediaWorkers
            mediaSettings.videoMaxSide = configuration.mediaVideoMaxSide
            mediaSettings.videoMaxBitrate = configuration.mediaVideoMaxBitrate
            mediaSettings.transcodeQueue = configuration.mediaTranscodeQueue
            media = try MediaService(
                store: store, root: configuration.mediaPath,
                urlKey: try SecretFiles.loadOrCreate(configuration.keysPath + "/media-url.key", length: 32),
                settings: mediaSettings, clock: clock, logger: logger)
        } catch {
            let store = self.store
            Task { await store.close() }
            throw error
        }
        if configuration.adminEnabled {
            let token: String
            do {
                token = configuration.adminToken.isEmpty
                    ? try SecretFiles.loadOrCreateToken(configuration.adminTokenPath) : configuration.adminToken
            } catch {
                let store = self.store
                Task { await store.close() }
                throw error
            }
            let auth = self.auth
            adminResponder = buildAdminRouter(
                AdminDependencies(auth: auth, relay: relay, token: token, isDraining: { relay.isDraining })
            ).buildResponder()
        } else {
            adminResponder = nil
        }
        responder = buildRouter(
            APIDependencies(
                store: store, auth: auth, relay: relay, clock: clock, maxBodySize: configuration.maxBodySize,
                trustForwardedFor: configuration.trustForwardedFor,
                ipLimit: configuration.effective(configuration.ipRateLimit),
                userLimit: configuration.effective(configuration.userRateLimit),
                echoOTP: configuration.echoesOTP, metricsText: metricsText,
                notReadyReason: { relay.isDraining ? "draining" : nil }, media: media, uploadLimit: configuration.mediaUploadRate)
        ).buildResponder()
    }

    /// Runs until shutdown. `onListening` gets the bound ports (useful with port 0) once
    /// the HTTP listener and, when enabled, the admin listener are up.
    public func run(handleSignals: Bool, onListening: @escaping @Sendable (ListeningPorts) async -> Void = { _ in }) async throws {
        let logger = self.logger
        let configuration = self.configuration
        let ports = PortsBox(expectAdmin: adminResponder != nil)
        var gateway = GatewaySettings()
        gateway.hardFrameLimit = max(configuration.relayMaxMessageBytes, 1 << 20)
        // Our own group rather than NIO's singleton: its size is a setting (the singleton's
        // can be set once per process), and it stops with the server.
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopCount(cores: System.coreCount))
        defer { loops.shutdownGracefully { _ in } }
        let app = Application(
            responder: responder,
            server: TernChildChannel.builder(relay: relay, auth: auth, settings: gateway),
            configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: "tern"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.httpPort
                logger.notice(
                    "tern is listening",
                    metadata: ["http.address": "\(configuration.httpHost):\(port)", "store.path": "\(configuration.storePath)"])
                if let all = ports.set(http: port) { await onListening(all) }
            },
            eventLoopGroupProvider: .shared(loops),
            logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: StoreService(store: store), serviceName: "store"),
            .init(service: HousekeepingService(auth: auth, keyRing: keyRing, interval: configuration.keyReloadInterval, logger: logger), serviceName: "housekeeping"),
        ]
        if configuration.mediaCleanupInterval > .zero {
            services.append(.init(
                service: MediaCleanupService(
                    media: media, interval: configuration.mediaCleanupInterval, grace: configuration.mediaOrphanGrace, logger: logger),
                serviceName: "media-cleanup"))
        }
        if configuration.mailboxCensusInterval > .zero {
            services.append(.init(
                service: MailboxCensusService(store: store, interval: configuration.mailboxCensusInterval, logger: logger),
                serviceName: "mailbox-census"))
        }
        if let adminResponder {
            let admin = Application(
                responder: adminResponder,
                configuration: .init(address: .hostname(configuration.adminHost, port: configuration.adminPort), serverName: "tern-admin"),
                onServerRunning: { channel in
                    let port = channel.localAddress?.port ?? configuration.adminPort
                    logger.notice("admin API is listening", metadata: ["admin.address": "\(configuration.adminHost):\(port)"])
                    if let all = ports.set(admin: port) { await onListening(all) }
                },
                eventLoopGroupProvider: .shared(loops),
                logger: logger)
            services.append(.init(service: admin, serviceName: "admin"))
        }
        // Services stop in reverse order: signals, then HTTP (remaining connections get
        // 1001), then admin, housekeeping, and the store last (after the writer flushed).
        services.append(.init(service: app, serviceName: "http"))
        if handleSignals { services.append(.init(service: SignalService(server: self), serviceName: "signals")) }
        let serviceGroup = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [], logger: logger))
        group.set(serviceGroup)
        defer { group.set(nil) }
        let media = self.media
        Task {
            do { try await media.resumeTranscodes() } catch { logger.warning("resuming transcodes failed", metadata: ["media.error": "\(error)"]) }
        }
        do {
            try await serviceGroup.run()
        } catch {
            await media.shutdown()
            await store.close()
            try? await httpClient?.shutdown()
            throw error
        }
        await media.shutdown()
        await store.close()
        try? await httpClient?.shutdown()
        try? await pushClient?.shutdown()
        logger.notice("tern stopped")
    }

    /// A graceful shutdown (what SIGTERM does): readiness turns 503 and new WebSocket
    /// upgrades are refused at once; live sessions are closed with 1001 spread over
    /// `shutdown.drain_window`; then the listeners stop, queued writes commit and the store
    /// closes. A second call while draining skips the rest of the window.
    public func shutdown() async {
        if group.beginShutdown() {
            await relay.drain(over: configuration.drainWindow)
        }
        await group.get()?.triggerGracefulShutdown()
    }
}

/// The bound ports of a running server.
public struct ListeningPorts: Sendable {
    public var http: Int
    /// Nil when the admin listener is off (`admin.port = -1`).
    public var admin: Int?

    public init(http: Int, admin: Int?) {
        self.http = http
        self.admin = admin
    }
}

/// Collects the ports as the listeners come up; hands them out once all are known.
final class PortsBox: Sendable {
    private let lock = Mutex()
    nonisolated(unsafe) private var http: Int?
    nonisolated(unsafe) private var admin: Int?
    private let expectAdmin: Bool

    init(expectAdmin: Bool) { self.expectAdmin = expectAdmin }

    func set(http port: Int) -> ListeningPorts? { lock.withLock { http = port; return complete() } }
    func set(admin port: Int) -> ListeningPorts? { lock.withLock { admin = port; return complete() } }

    private func complete() -> ListeningPorts? {
        guard let http, !expectAdmin || admin != nil else { return nil }
        return ListeningPorts(http: http, admin: admin)
    }
}

/// SIGTERM/SIGINT: the first starts the graceful shutdown (drain), a second one skips the
/// rest of the drain window.
struct SignalService: Service {
    let server: TernServer

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                let server = self.server
                Task { await server.shutdown() }
            }
        }
    }
}

/// The service group, reachable from `shutdown()`, and whether a shutdown began.
final class GroupBox: @unchecked Sendable {
    private let lock = Mutex()
    private var group: ServiceGroup?
    private var shuttingDown = false

    func set(_ group: ServiceGroup?) { lock.withLock { self.group = group } }
    func get() -> ServiceGroup? { lock.withLock { group } }
    /// True for the first caller only.
    func beginShutdown() -> Bool {
        lock.withLock {
            defer { shuttingDown = true }
            return !shuttingDown
        }
    }
}

/// Keeps the store's upkeep running; on shutdown closes it (after the HTTP service stopped,
/// because services stop in reverse order).
struct StoreService: Service {
    let store: Store

    func run() async throws {
        store.maintain()
        await cancelWhenGracefulShutdown {
            await store.runMaintenance()
        }
        await store.close()
    }
}

/// Periodic chores: re-reading the key directory (keys added by `tern keys rotate`) and
/// deleting expired sessions.
struct HousekeepingService: Service {
    let auth: AuthService
    let keyRing: KeyRing
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var sincePurge = Duration.zero
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                do {
                    if try keyRing.reload() {
                        logger.notice("signing keys reloaded", metadata: ["auth.active_kid": "\(keyRing.active.kid)"])
                    }
                } catch {
                    logger.error("reading signing keys failed", metadata: ["auth.error": "\(error)"])
                }
                sincePurge += interval
                if sincePurge >= .hours(1) {
                    sincePurge = .zero
                    _ = try? await auth.purgeExpired()
                }
            }
        }
    }
}

/// Recomputes the `tern_mailbox_*` gauges every `interval` with a paged pass over the
/// mailbox table (short read transactions on the store's read threads).
struct MailboxCensusService: Service {
    let store: Store
    let interval: Duration
    let logger: Logger

    func run() async throws {
        let entries = Gauge(label: "tern_mailbox_entries")
        let bytes = Gauge(label: "tern_mailbox_bytes")
        let devices = Gauge(label: "tern_mailbox_devices_pending")
        let maxDepth = Gauge(label: "tern_mailbox_max_depth")
        let oldest = Gauge(label: "tern_mailbox_oldest_pending_seconds")
        let byDepth = MailboxCensus.buckets.map { Gauge(label: "tern_mailbox_devices", dimensions: [("depth", $0.label)]) }
        let duration = Metrics.Timer(label: "tern_mailbox_census_duration_seconds")
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let started = ContinuousClock.now
                do {
                    let census = try await store.mailboxCensus { Task.isCancelled }
                    entries.record(census.entries)
                    bytes.record(census.bytes)
                    devices.record(census.devices)
                    maxDepth.record(census.maxDepth)
                    let now = SystemClock().now()
                    oldest.record(census.oldest.map { Double((now - $0).wholeMilliseconds) / 1000 } ?? 0)
                    for (gauge, count) in zip(byDepth, census.histogram) { gauge.record(count) }
                    duration.recordNanoseconds((ContinuousClock.now - started).wholeNanoseconds)
                } catch is CancellationError {
                    return
                } catch {
                    logger.warning("mailbox census failed", metadata: ["store.error": "\(error)"])
                }
                do { try await Task.sleep(for: interval) } catch { return }
            }
        }
    }
}

/// Deletes unreferenced media every `interval` (see `MediaService.collectGarbage`).
struct MediaCleanupService: Service {
    let media: MediaService
    let interval: Duration
    let grace: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                do {
                    _ = try await media.collectGarbage(grace: grace)
                } catch {
                    logger.warning("media cleanup failed", metadata: ["media.error": "\(error)"])
                }
            }
        }
    }
}
