import Logging
import NIOCore
import NIOWebSocket
import TernCore
import TernRelay
import TernWire

/// The WebSocket end of one device session: frames in → `DeviceSession.receive`, session
/// frames out → text frames; WebSocket pings, idle timeout and slow-consumer cut-off.
///
/// Concurrency contract: a NIO channel handler, used only on its channel's event loop. The
/// `RelayConnection` methods are called by the session on that loop too.
final class WebSocketRelayHandler: ChannelInboundHandler, RelayConnection, @unchecked Sendable {
    /// Nothing reaches `channelRead`: the `ClientFrameReader` in front calls `received`.
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = WebSocketFrame

    private let identity: DeviceIdentity
    private let relay: Relay
    private let settings: GatewaySettings
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var session: DeviceSession?
    private var lastHeard = NIODeadline.now()
    private var lastPing = NIODeadline.distantPast
    private let keepAlive: KeepAlive
    private var keepAliveAdded = false
    private var slowTimer: Scheduled<Void>?
    private var bytesWhileBackedUp = 0
    private var closing = false

    let eventLoop: any EventLoop

    private let raw: RawFrameWriter

    init(
        identity: DeviceIdentity, relay: Relay, settings: GatewaySettings, keepAlive: KeepAlive, raw: RawFrameWriter, eventLoop: any EventLoop,
        logger: Logger
    ) {
        self.identity = identity
        self.raw = raw
        self.keepAlive = keepAlive
        self.relay = relay
        self.settings = settings
        self.eventLoop = eventLoop
        self.logger = logger
    }

    // MARK: ChannelInboundHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let session = relay.session(for: identity, connection: self)
        self.session = session
        keepAlive.add(self)
        keepAliveAdded = true
        session.start()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        shutdown()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        shutdown()
        context.fireChannelInactive()
    }

    private func shutdown() {
        if keepAliveAdded {
            keepAliveAdded = false
            keepAlive.remove(self)
        }
        slowTimer?.cancel()
        slowTimer = nil
        session?.closed()
        session = nil
    }

    /// One event from the connection's `ClientFrameReader` (which stands where NIO's frame
    /// decoder would).
    func received(_ event: ClientFrameEvent) {
        guard let context else { return }
        lastHeard = .now()
        switch event {
        case .text(let bytes):
            if bytes.count > relay.settings.maxMessageBytes {
                send(OutboundFrame.error(
                    code: "PAYLOAD_TOO_LARGE",
                    message: "frame is \(bytes.count) bytes; the limit is \(relay.settings.maxMessageBytes)", ref: nil))
                return
            }
            session?.receive(bytes)
        case .binary:
            send(OutboundFrame.error(code: "UNSUPPORTED_FRAME", message: "binary frames are not supported; send JSON text frames", ref: nil))
        case .ping(let payload):
            writePending()
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: payload)), promise: nil)
        case .pong:
            break
        case .close:
            close(code: CloseCode.normalClosure, reason: "")
        case .failure(let code, let reason):
            logger.debug("websocket frame refused", metadata: ["gateway.error": "\(reason)"])
            close(code: code, reason: reason)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        session?.flushAcks()
        writePending()
        context.flush()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            slowTimer?.cancel()
            slowTimer = nil
            bytesWhileBackedUp = 0
            session?.connectionWritable()
        } else if slowTimer == nil {
            let grace = TimeAmount.milliseconds(relay.settings.slowConsumerGrace.wholeMilliseconds)
            slowTimer = context.eventLoop.scheduleTask(in: grace) { [weak self] in
                self?.cutSlowConsumer("did not read for \(grace.nanoseconds / 1_000_000_000) s")
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // Server shutdown: unacknowledged frames stay in the mailbox for the next connection.
            close(code: CloseCode.goingAway, reason: "server is shutting down")
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("websocket connection error", metadata: ["gateway.error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: keep-alive and slow consumers

    /// Called by the keep-alive sweep: closes a connection quiet for the idle timeout, and
    /// pings one quiet for the ping interval (once per interval).
    func checkAlive(now: NIODeadline) {
        guard let context, !closing else { return }
        let quiet = now - lastHeard
        let interval = TimeAmount.milliseconds(relay.settings.pingInterval.wholeMilliseconds)
        if quiet > .milliseconds(relay.settings.idleTimeout.wholeMilliseconds) {
            close(code: CloseCode.idle, reason: "idle timeout")
        } else if quiet >= interval && now - lastPing >= interval {
            lastPing = now
            let ping = WebSocketFrame(fin: true, opcode: .ping, data: context.channel.allocator.buffer(capacity: 0))
            writePending()
            context.writeAndFlush(wrapOutboundOut(ping), promise: nil)
        }
    }

    private func cutSlowConsumer(_ why: String) {
        guard !closing else { return }
        relay.recordSlowConsumer()
        logger.notice("closing slow consumer", metadata: ["relay.device": "\(identity.deviceNumber)", "relay.reason": "\(why)"])
        // Its close frame would queue behind everything it is not reading: drop the socket.
        close(code: CloseCode.slowConsumer, reason: "slow consumer: \(why)", within: .zero)
    }

    // MARK: RelayConnection

    func send(_ frame: [UInt8]) {
        guard let context, !closing, admit(frame.count) else { return }
        guard raw.context != nil else {
            // Not in a pipeline with the raw writer (cannot happen after the upgrade).
            let buffer = context.channel.allocator.buffer(bytes: frame)
            context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: buffer)), promise: nil)
            return
        }
        appendFrame(length: frame.count) { $0.writeBytes(frame) }
    }

    /// Text frames written since the last flush, in order, going to the socket as one buffer
    /// at the next flush: one pipeline write and one iovec per connection and loop pass
    /// instead of one per frame (a sender gets `message.sent` and `message.status` frames
    /// together). Anything written past the raw writer (pings, pongs, close) first writes
    /// these out, so the order of frames on the wire stays the order they were sent.
    private var pending: ByteBuffer?
    /// Pending bytes written out without waiting for the flush (writability, and with it
    /// the slow-consumer accounting, only sees written bytes).
    private static let pendingLimit = 64 << 10

    private func appendFrame(length: Int, _ payload: (inout ByteBuffer) -> Void) {
        guard let context else { return }
        if pending == nil { pending = Self.newPending(context, length) }
        Self.writeTextHeader(length: length, into: &pending!)
        payload(&pending!)
        if pending!.readableBytes >= Self.pendingLimit { writePending() }
    }

    /// Hands the pending frames to the socket (not flushed).
    private func writePending() {
        guard let buffer = pending else { return }
        pending = nil
        guard let rawContext = raw.context else { return }
        rawContext.write(NIOAny(buffer), promise: nil)
    }

    /// A stored frame written straight into the outgoing buffer: WebSocket header, the
    /// envelope `{"event":E,"type":E,"seq":N,"data":` around the shared data, `}` — in one
    /// reservation of the buffer, one copy of the data per delivery. Event names are server
    /// constants (no escaping); anything else takes the general path.
    func sendStored(event: String, seq: UInt64, data: [UInt8]) {
        var name = event
        let sent = name.withUTF8 { name -> Bool in
            guard let context, !closing, raw.context != nil, StoredEnvelope.isPlain(UnsafeRawBufferPointer(name)) else { return false }
            let length = StoredEnvelope.length(eventCount: name.count, seq: seq, dataCount: data.count)
            guard admit(length) else { return true }
            var buffer = pending ?? Self.newPending(context, length)
            pending = nil
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length + Self.headerRoom) { out in
                let header = Self.writeTextHeader(length: length, to: out.baseAddress!)
                return data.withUnsafeBytes { data in
                    header + StoredEnvelope.write(event: UnsafeRawBufferPointer(name), seq: seq, data: data, to: out.baseAddress! + header)
                }
            }
            pending = buffer
            if buffer.readableBytes >= Self.pendingLimit { writePending() }
            return true
        }
        if !sent { send(OutboundFrame.wrap(event, seq: seq, data: data)) }
    }

    /// Counts `bytes` queued while the socket is backed up; false (and the connection cut)
    /// once a slow consumer has more than `relay.slowConsumerBytes` waiting.
    private func admit(_ bytes: Int) -> Bool {
        guard let context, !context.channel.isWritable else { return true }
        bytesWhileBackedUp += bytes
        if bytesWhileBackedUp > relay.settings.slowConsumerBytes {
            cutSlowConsumer("more than \(relay.settings.slowConsumerBytes) bytes queued")
            return false
        }
        return true
    }

    /// `writeTextHeader` at `p`; returns its length (2, 4 or 10 bytes).
    static func writeTextHeader(length: Int, to p: UnsafeMutableRawPointer) -> Int {
        p.storeBytes(of: UInt8(0x81), as: UInt8.self)  // FIN, opcode 1 (text)
        if length < 126 {
            p.storeBytes(of: UInt8(length), toByteOffset: 1, as: UInt8.self)
            return 2
        }
        if length <= 0xFFFF {
            p.storeBytes(of: UInt8(126), toByteOffset: 1, as: UInt8.self)
            p.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 2, as: UInt16.self)
            return 4
        }
        p.storeBytes(of: UInt8(127), toByteOffset: 1, as: UInt8.self)
        p.storeBytes(of: UInt64(length).bigEndian, toByteOffset: 2, as: UInt64.self)
        return 10
    }

    /// The header of an unmasked, final text frame (RFC 6455 §5.2) with a `length`-byte payload.
    static func writeTextHeader(length: Int, into buffer: inout ByteBuffer) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.headerRoom) { writeTextHeader(length: length, to: $0.baseAddress!) }
    }

    func flush() {
        writePending()
        context?.flush()
    }

    func close(code: UInt16, reason: String) {
        close(code: code, reason: reason, within: .seconds(2))
    }

    /// Sends a close frame and closes the socket once it is written, or after `within`
    /// at the latest (a peer that does not read never lets it be written).
    private func close(code: UInt16, reason: String, within: TimeAmount) {
        guard let context, !closing else { return }
        closing = true
        var data = context.channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        data.writeInteger(code)
        data.writeString(String(reason.prefix(120)))
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
        let channel = context.channel
        writePending()
        context.writeAndFlush(wrapOutboundOut(frame)).whenComplete { _ in
            channel.close(promise: nil)
        }
        channel.eventLoop.scheduleTask(in: within) { channel.close(promise: nil) }
    }

    private static let headerRoom = 10

    /// A buffer for the frames of one loop pass, starting with room for a few (a sender
    /// gets `message.sent` and `message.status` together, a drain hundreds of frames): not
    /// regrown from the size of the first frame by every frame after it.
    private static func newPending(_ context: ChannelHandlerContext, _ length: Int) -> ByteBuffer {
        context.channel.allocator.buffer(capacity: max(length + headerRoom, 2048))
    }

    var isBackedUp: Bool { !(context?.channel.isWritable ?? true) }
}

extension CloseCode {
    static let normalClosure: UInt16 = 1000
}

/// Sits at the front of a WebSocket connection's pipeline, in front of NIO's frame encoder:
/// the relay handler writes its text frames — header and payload in one buffer — through
/// this handler's context, straight to the socket. NIO's encoder, which every frame passed
/// through, wrote each header into a second buffer (its in-place path needs a uniquely
/// owned buffer, which a frame passed down the pipeline never is): two iovecs and two
/// pipeline writes per frame. Control frames (ping, pong, close) still take the encoder;
/// everything runs on the channel's event loop, so the two paths keep the order of writes.
final class RawFrameWriter: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    private(set) var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }
}
