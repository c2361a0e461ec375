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
import NIOCore
import ServiceLifecycle
import TernAPI
import TernAuth
import TernConfig
import TernCore
import TernGateway
import TernLMDB
import TernRelay
import TernStore

/// A configured, not yet running server.
public final class TernServer: Sendable {
    public let configuration: TernConfiguration
    public let store: Store
    public let auth: AuthService
    public let keyRing: KeyRing
    public let relay: Relay
    private let logger: Logger
    private let clock: any TernClock
    private let httpClient: HTTPClient?
    private let responder: RouterResponder<TernRequestContext>
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
                nosyncFlushInterval: configuration.nosyncFlushInterval),
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
                sessionEnded: { session, user in relay.disconnect(session: session, user: user) })
        } catch {
            // The store opened; close it before giving up.
            let store = self.store
            Task { await store.close() }
            throw error
        }
        let draining = group
        responder = buildRouter(
            APIDependencies(
                store: store, auth: auth, relay: relay, clock: clock, maxBodySize: configuration.maxBodySize,
                trustForwardedFor: configuration.trustForwardedFor,
                ipLimit: configuration.effective(configuration.ipRateLimit),
                userLimit: configuration.effective(configuration.userRateLimit),
                echoOTP: configuration.echoesOTP, metricsText: metricsText,
                notReadyReason: { draining.isDraining ? "draining" : nil })
        ).buildResponder()
    }

    /// Runs until shutdown. `onListening` gets the bound port (useful with port 0).
    public func run(handleSignals: Bool, onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let logger = self.logger
        let configuration = self.configuration
        var gateway = GatewaySettings()
        gateway.hardFrameLimit = max(configuration.relayMaxMessageBytes, 1 << 20)
        let app = Application(
            responder: responder,
            server: TernChildChannel.builder(relay: relay, auth: auth, settings: gateway),
            configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: "tern"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.httpPort
                logger.notice(
                    "tern is listening",
                    metadata: ["http.address": "\(configuration.httpHost):\(port)", "store.path": "\(configuration.storePath)"])
                await onListening(port)
            },
            logger: logger)
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: StoreService(store: store), serviceName: "store"),
                    .init(service: HousekeepingService(auth: auth, keyRing: keyRing, interval: configuration.keyReloadInterval, logger: logger), serviceName: "housekeeping"),
                    .init(service: app, serviceName: "http"),
                ],
                gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [],
                logger: logger))
        group.set(serviceGroup)
        defer { group.set(nil) }
        do {
            try await serviceGroup.run()
        } catch {
            await store.close()
            try? await httpClient?.shutdown()
            throw error
        }
        await store.close()
        try? await httpClient?.shutdown()
        logger.notice("tern stopped")
    }

    /// Starts a graceful shutdown (as SIGTERM would).
    public func shutdown() async {
        group.markDraining()
        await group.get()?.triggerGracefulShutdown()
    }
}

/// The service group, reachable from `shutdown()`, and the draining flag for `/ready`.
final class GroupBox: @unchecked Sendable {
    private let lock = Mutex()
    private var group: ServiceGroup?
    private var draining = false

    func set(_ group: ServiceGroup?) { lock.withLock { self.group = group } }
    func get() -> ServiceGroup? { lock.withLock { group } }
    func markDraining() { lock.withLock { draining = true } }
    var isDraining: Bool { lock.withLock { draining } }
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
