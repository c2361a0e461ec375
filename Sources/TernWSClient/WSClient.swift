// TernWSClient: a small WebSocket client on SwiftNIO, for Tern's tests and load tool.
//
// It speaks RFC 6455 through NIOWebSocket (masked client frames), reports a refused upgrade
// with its HTTP status and body, and hands every received frame to a callback on the
// connection's event loop — no task per frame, so one process can drive thousands of
// connections. `WSConnection.frames` adapts that to an AsyncStream for tests.
//
// Concurrency contract: `WSConnection` is Sendable; `send` may be called from any thread
// (it hops to the event loop); `onFrame` runs on the event loop.
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// A received frame.
public struct WSFrame: Sendable {
    public var opcode: WebSocketOpcode
    public var data: [UInt8]
    /// The connection it arrived on (to answer from the frame callback without a lookup).
    public var channel: (any Channel)?

    public init(opcode: WebSocketOpcode, data: [UInt8], channel: (any Channel)? = nil) {
        self.opcode = opcode
        self.data = data
        self.channel = channel
    }

    /// Sends a text frame back on the same connection. Called from the frame callback (on
    /// the event loop), the frame is written at once and flushed with the other replies of
    /// the same read burst — one send per burst, as a client that acknowledges a burst of
    /// messages would; with `flush`, or from elsewhere, it is written and flushed on its own.
    public func reply(_ text: [UInt8], flush: Bool = false) {
        guard let channel else { return }
        WSConnection.write(channel, opcode: .text, bytes: text, fin: true, flush: flush || !channel.eventLoop.inEventLoop)
    }

    public var text: String { String(decoding: data, as: UTF8.self) }

    /// The JSON object of a text frame, if it is one.
    public var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(data))) as? [String: Any]
    }

    /// For close frames: the status code.
    public var closeCode: UInt16? {
        guard opcode == .connectionClose, data.count >= 2 else { return nil }
        return UInt16(data[0]) << 8 | UInt16(data[1])
    }
}

/// The server did not switch protocols.
public struct WSUpgradeRefused: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var body: String
    public var description: String { "upgrade refused with HTTP \(status): \(body)" }
}

/// One WebSocket connection.
public final class WSConnection: @unchecked Sendable {
    public let channel: any Channel
    private let closeState = NIOLockedValueBox<(code: UInt16?, closed: Bool)>((nil, false))

    init(channel: any Channel) {
        self.channel = channel
    }

    /// Connects to `ws://host:port/path` with extra request headers. `onFrame` gets every
    /// frame (including close frames); pings are answered automatically unless
    /// `answersPings` is false (tests playing a dead client).
    public static func connect(
        host: String = "127.0.0.1", port: Int, path: String, headers: [(String, String)] = [],
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, maxFrameSize: Int = 1 << 24,
        receiveBufferSize: Int? = nil, answersPings: Bool = true,
        onFrame: @escaping @Sendable (WSFrame) -> Void
    ) async throws -> WSConnection {
        let upgraded = group.next().makePromise(of: Void.self)
        var bootstrap = ClientBootstrap(group: group)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
        if let receiveBufferSize {
            // A fixed receive buffer (no autotuning): lets tests play a client that stops reading.
            bootstrap = bootstrap.channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: .init(receiveBufferSize))
        }
        bootstrap = bootstrap
            .channelInitializer { channel in
                let catcher = RefusalCatcher(promise: upgraded)
                let upgrader = NIOWebSocketClientUpgrader(
                    requestKey: Self.randomKey(), maxFrameSize: maxFrameSize, automaticErrorHandling: false
                ) { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        catcher.upgraded = true
                        _ = channel.pipeline.syncOperations.removeHandler(catcher)
                        try channel.pipeline.syncOperations.addHandler(FrameHandler(answersPings: answersPings, onFrame: onFrame))
                        upgraded.succeed(())
                    }
                }
                let config: NIOHTTPClientUpgradeConfiguration = (upgraders: [upgrader], completionHandler: { _ in })
                // The upgrade configuration is a tuple of non-Sendable upgraders; adding the
                // handlers synchronously (we are on the channel's loop) keeps it on this loop.
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(
                        leftOverBytesStrategy: .forwardBytes, withClientUpgrade: config)
                    try channel.pipeline.syncOperations.addHandler(catcher)
                }
            }
        let channel = try await bootstrap.connect(host: host, port: port).get()
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "Host", value: "\(host):\(port)")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        do {
            try await upgraded.futureResult.get()
        } catch {
            try? await channel.close()
            throw error
        }
        return WSConnection(channel: channel)
    }

    private static func randomKey() -> String {
        Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
    }

    /// Sends a text frame (masked, as clients must).
    public func send(text bytes: [UInt8]) {
        send(opcode: .text, bytes: bytes)
    }

    public func send(text: String) { send(text: Array(text.utf8)) }

    /// Sends a JSON object as a text frame.
    public func send(json: [String: Any]) {
        send(text: Array(try! JSONSerialization.data(withJSONObject: json)))
    }

    /// Sends several text frames with one flush, so that they usually reach the server in
    /// one TCP segment (tests of per-read-burst handling).
    public func send(texts: [[UInt8]]) {
        let channel = self.channel
        channel.eventLoop.execute {
            for bytes in texts {
                let buffer = channel.allocator.buffer(bytes: bytes)
                channel.write(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: buffer), promise: nil)
            }
            channel.flush()
        }
    }

    /// Sends any frame (tests use it for binary, oversized and invalid frames).
    public func send(opcode: WebSocketOpcode, bytes: [UInt8], fin: Bool = true) {
        Self.write(channel, opcode: opcode, bytes: bytes, fin: fin)
    }

    /// Writes one frame on the channel's loop; without `flush` it leaves with the next flush
    /// (the handler flushes at the end of each read burst).
    static func write(_ channel: any Channel, opcode: WebSocketOpcode, bytes: [UInt8], fin: Bool, flush: Bool = true) {
        @Sendable func write() {
            let frame = WebSocketFrame(fin: fin, opcode: opcode, maskKey: MaskKeys.next(), data: channel.allocator.buffer(bytes: bytes))
            if flush {
                channel.writeAndFlush(frame, promise: nil)
            } else {
                channel.write(frame, promise: nil)
            }
        }
        if channel.eventLoop.inEventLoop {
            write()
        } else {
            channel.eventLoop.execute { write() }
        }
    }

    /// Sends a close frame and closes.
    public func close(code: UInt16 = 1000) async {
        var data = channel.allocator.buffer(capacity: 2)
        data.writeInteger(code)
        try? await channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: data)).get()
        try? await channel.close()
    }

    /// Drops the TCP connection without a close frame (a vanished phone).
    public func abort() async {
        try? await channel.close()
    }
}

/// Collects a non-101 response and fails the upgrade with it.
private final class RefusalCatcher: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    private let promise: EventLoopPromise<Void>
    private var status = 0
    private var body: [UInt8] = []
    private var failed = false
    /// Set once the upgrade succeeded; the promise belongs to the upgrader then.
    var upgraded = false

    init(promise: EventLoopPromise<Void>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): status = Int(head.status.code)
        case .body(let buffer): body += buffer.readableBytesView
        case .end:
            fail()
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail()
        context.fireChannelInactive()
    }

    private func fail() {
        guard !failed, !upgraded else { return }
        failed = true
        promise.fail(WSUpgradeRefused(status: status, body: String(decoding: body, as: UTF8.self)))
    }
}

/// Delivers frames to the callback and answers pings.
private final class FrameHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame
    private let onFrame: @Sendable (WSFrame) -> Void
    private let answersPings: Bool

    init(answersPings: Bool, onFrame: @escaping @Sendable (WSFrame) -> Void) {
        self.answersPings = answersPings
        self.onFrame = onFrame
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Replies written from the frame callback during this read burst.
        context.flush()
        context.fireChannelReadComplete()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let payload = frame.unmaskedData
        if frame.opcode == .ping && answersPings {
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: payload)), promise: nil)
        }
        onFrame(WSFrame(opcode: frame.opcode, data: Array(payload.readableBytesView), channel: context.channel))
    }

    func channelInactive(context: ChannelHandlerContext) {
        onFrame(WSFrame(opcode: .connectionClose, data: []))
        context.fireChannelInactive()
    }
}

/// Masking keys for replies from a fast per-thread generator seeded by the system RNG: the
/// system generator costs a `getrandom` call per frame, a visible share of a load run.
/// (Masks only keep intermediaries from reading client frames as something else; they
/// protect nothing secret.)
enum MaskKeys {
    private final class State {
        var x: UInt64 = UInt64.random(in: 1...UInt64.max)
    }

    // Each thread sees only its own State.
    nonisolated(unsafe) private static let state = ThreadSpecificVariable<State>()

    static func next() -> WebSocketMaskingKey {
        let s: State
        if let existing = state.currentValue {
            s = existing
        } else {
            s = State()
            state.currentValue = s
        }
        // xorshift64*
        s.x ^= s.x >> 12
        s.x ^= s.x << 25
        s.x ^= s.x >> 27
        let v = s.x &* 2_685_821_657_736_338_717
        return WebSocketMaskingKey([UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 24)])!
    }
}
