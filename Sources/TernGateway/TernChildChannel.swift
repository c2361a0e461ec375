// TernGateway owns the connection layer: one listening port serving HTTP through
// Hummingbird and WebSocket through plain NIO channel handlers.
//
// Why not hummingbird-websocket: it answers a refused upgrade with a bare 400 (the contract
// wants 401 with the error envelope), and it runs every connection through async sequences,
// a task switch per frame. Here an upgraded connection is a NIO handler that hands frames to
// the relay on its event loop; nothing per frame allocates a task.
//
// Concurrency contract: `setup` runs on the connection's event loop; the per-connection
// boxes below are loop-bound. `handle` is Hummingbird's per-connection task.
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import Metrics
import Synchronization
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket
import TernAuth
import TernCore
import TernRelay
import TernWire

/// Why an upgrade was refused, answered with the error envelope.
public struct UpgradeRefusal: Sendable {
    public var error: TernError
}

/// Settings of the WebSocket endpoint (`relay.*` / `ws.*` configuration keys).
public struct GatewaySettings: Sendable {
    /// The upgrade path.
    public var path = "/ws"
    /// Frames larger than this close the connection (1009) before they are buffered;
    /// between `relay.maxMessageBytes` and this they get an error frame instead.
    public var hardFrameLimit = 1 << 20
    /// Socket write buffer water marks: above `high` the client counts as not reading.
    public var writeBufferLow = 256 << 10
    public var writeBufferHigh = 1 << 20
    /// HTTP idle keep-alive timeout.
    public var httpIdleTimeout: Duration? = .seconds(120)

    public init() {}
}

/// Hummingbird child channel serving HTTP/1.1 and the `/ws` upgrade on the same port.
public struct TernChildChannel: ServerChildChannel, HTTPChannelHandler {
    public enum Outcome: Sendable {
        case websocket(any Channel)
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, UpgradeRefusal)
    }

    public struct Value: ServerChildChannelValue {
        let outcome: EventLoopFuture<Outcome>
        public let channel: any Channel
    }

    public let responder: HTTPChannelHandler.Responder
    let relay: Relay
    let auth: AuthService
    let settings: GatewaySettings
    let keepAlive: KeepAlive
    let connections = ConnectionGauge.shared

    /// `responder` answers plain HTTP (the Hummingbird router).
    public init(responder: @escaping HTTPChannelHandler.Responder, relay: Relay, auth: AuthService, settings: GatewaySettings) {
        self.relay = relay
        self.auth = auth
        self.settings = settings
        // Checked five times per ping interval: pings go out at most 20% late.
        let tick = max(relay.settings.pingInterval / 5, .milliseconds(10))
        self.keepAlive = KeepAlive(tick: .milliseconds(tick.wholeMilliseconds))
        // An upgrade on a connection that already served a request cannot be handled by NIO's
        // upgrader: send the client to a fresh connection (as Hummingbird does).
        self.responder = { request, writer, channel in
            if request.headers[.upgrade]?.lowercased() == "websocket" {
                var location = request.uri.path
                if let query = request.uri.query { location += "?" + query }
                try await writer.writeResponse(
                    HTTPResponse(status: .temporaryRedirect, headerFields: [.connection: "close", .location: location, .contentLength: "0"]))
                throw CancellationError()
            }
            try await responder(request, writer, channel)
        }
    }

    /// A server builder for `Application(server:)`.
    public static func builder(relay: Relay, auth: AuthService, settings: GatewaySettings) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            TernChildChannel(responder: responder, relay: relay, auth: auth, settings: settings)
        }
    }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        connections.opened()
        let connections = self.connections
        channel.closeFuture.whenComplete { _ in connections.closed() }
        return channel.eventLoop.makeCompletedFuture {
            let refusal = NIOLoopBoundBox<UpgradeRefusal?>(nil, eventLoop: channel.eventLoop)
            let identity = NIOLoopBoundBox<DeviceIdentity?>(nil, eventLoop: channel.eventLoop)
            let upgrader = NIOTypedWebSocketServerUpgrader<Outcome>(
                maxFrameSize: settings.hardFrameLimit,
                enableAutomaticErrorHandling: true,
                shouldUpgrade: { channel, head in
                    self.shouldUpgrade(channel: channel, head: head, refusal: refusal, identity: identity)
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        guard let who = identity.value else { throw ChannelError.inappropriateOperationForState }
                        try channel.syncOptions?.setOption(
                            ChannelOptions.writeBufferWaterMark,
                            value: .init(low: settings.writeBufferLow, high: settings.writeBufferHigh))
                        // Chat frames are small; start reads small and let busy connections
                        // grow (the channel keeps its last read buffer for reuse).
                        try channel.syncOptions?.setOption(
                            ChannelOptions.recvAllocator,
                            value: AdaptiveRecvByteBufferAllocator(minimum: 256, initial: 1024, maximum: 64 << 10))
                        // Text frames skip NIO's frame encoder (see RawFrameWriter).
                        let raw = RawFrameWriter()
                        try channel.pipeline.syncOperations.addHandler(raw, position: .first)
                        let handler = WebSocketRelayHandler(
                            identity: who, relay: relay, settings: settings, keepAlive: keepAlive, raw: raw, eventLoop: channel.eventLoop,
                            logger: logger)
                        // Client frames are parsed by our reader, not NIO's decoder (see
                        // ClientFrameParser); the upgrader added the decoder, so it goes.
                        let decoder = try channel.pipeline.syncOperations.context(handlerType: ByteToMessageHandler<WebSocketFrameDecoder>.self)
                        try channel.pipeline.syncOperations.addHandler(
                            ClientFrameReader(hardLimit: settings.hardFrameLimit, deliver: handler.received), position: .after(decoder.handler))
                        channel.pipeline.syncOperations.removeHandler(context: decoder, promise: nil)
                        try channel.pipeline.syncOperations.addHandler(handler)
                        return Outcome.websocket(channel)
                    }
                }
            )
            let upgrade = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPConnectionStateHandler(idleTimeout: settings.httpIdleTimeout, logger: logger))
                        let http = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                        if let refused = refusal.value { return Outcome.refused(http, refused) }
                        return Outcome.http(http)
                    }
                }
            )
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<Outcome>(upgradeConfiguration: upgrade)
            configuration.enablePipelining = false
            configuration.enableErrorHandling = false
            configuration.enableResponseHeaderValidation = false
            let outcome = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            return Value(outcome: outcome, channel: channel)
        }
    }

    /// Accepts the upgrade only on `settings.path` with a valid access token (header or
    /// `access_token` query parameter); otherwise records why and refuses.
    private func shouldUpgrade(
        channel: any Channel, head: HTTPRequestHead, refusal: NIOLoopBoundBox<UpgradeRefusal?>,
        identity: NIOLoopBoundBox<DeviceIdentity?>
    ) -> EventLoopFuture<HTTPHeaders?> {
        let (path, query) = Self.split(head.uri)
        guard path == settings.path else {
            refusal.value = UpgradeRefusal(error: TernError.notFound("no WebSocket endpoint at \(path)"))
            return channel.eventLoop.makeSucceededFuture(nil)
        }
        if relay.isDraining {
            refusal.value = UpgradeRefusal(error: TernError(.shuttingDown, "the server is shutting down; reconnect shortly", retryAfter: 5))
            return channel.eventLoop.makeSucceededFuture(nil)
        }
        var token: String?
        if let header = head.headers.first(name: "Authorization") {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { token = String(parts[1]).trimmingWhitespace() }
        }
        if token == nil { token = Self.queryValue(query, "access_token") }
        guard let token, !token.isEmpty else {
            refusal.value = UpgradeRefusal(error: TernError.unauthorized("missing access token (Authorization: Bearer or ?access_token=)"))
            return channel.eventLoop.makeSucceededFuture(nil)
        }
        return auth.authenticate(token, on: channel.eventLoop).map { claims -> HTTPHeaders? in
            identity.value = DeviceIdentity(
                user: claims.userID, deviceNumber: claims.deviceNumber, deviceID: claims.deviceID, session: claims.sessionID)
            return HTTPHeaders()
        }.flatMapErrorThrowing { error -> HTTPHeaders? in
            refusal.value = UpgradeRefusal(error: Relay.clientError(error))
            return nil
        }
    }

    public func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.outcome.get() {
            case .websocket:
                // Nothing to wait for: the connection lives in its NIO pipeline. Holding a
                // task per connection until it closes would cost a few KB per idle client.
                // On shutdown Hummingbird's quiescing helper sends ChannelShouldQuiesceEvent
                // down every connection (WebSocketRelayHandler answers with 1001 and closes)
                // and waits for all of them to close.
                return
            case .http(let http):
                await handleHTTP(asyncChannel: http, logger: logger)
            case .refused(let http, let refusal):
                await Self.refuse(http, refusal)
            }
        } catch {
            logger.debug("connection ended before HTTP/WebSocket negotiation", metadata: ["gateway.error": "\(error)"])
        }
    }

    /// Answers a refused upgrade with the envelope and closes the connection.
    private static func refuse(_ http: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, _ refusal: UpgradeRefusal) async {
        var w = JSONWriter()
        w.beginObject()
        w.member("success", false)
        w.key("error")
        w.beginObject()
        w.member("code", refusal.error.code.rawValue)
        w.member("message", refusal.error.message)
        w.endObject()
        w.endObject()
        let body = ByteBuffer(bytes: w.bytes)
        var headers: HTTPFields = [
            .contentType: "application/json; charset=utf-8", .connection: "close", .contentLength: String(body.readableBytes),
        ]
        if refusal.error.status == 401 { headers[.wwwAuthenticate] = "Bearer" }
        try? await http.executeThenClose { _, outbound in
            try await outbound.write(contentsOf: [
                .head(HTTPResponse(status: .init(code: refusal.error.status), headerFields: headers)),
                .body(body),
                .end(nil),
            ])
        }
    }

    static func split(_ uri: String) -> (path: String, query: Substring?) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, nil) }
        return (String(uri[..<mark]), uri[uri.index(after: mark)...])
    }

    /// The percent-decoded value of `name` in a query string.
    static func queryValue(_ query: Substring?, _ name: String) -> String? {
        guard let query else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == name else { continue }
            return String(parts[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
        }
        return nil
    }
}

/// Open TCP connections of the listener (HTTP and WebSocket), as the
/// `tern_gateway_connections` gauge.
final class ConnectionGauge: Sendable {
    static let shared = ConnectionGauge()
    private let count = Atomic<Int>(0)
    private let gauge = Gauge(label: "tern_gateway_connections")
    private let accepted = Counter(label: "tern_gateway_connections_accepted_total")

    func opened() {
        accepted.increment()
        gauge.record(count.add(1, ordering: .relaxed).newValue)
    }

    func closed() {
        gauge.record(count.subtract(1, ordering: .relaxed).newValue)
    }
}
