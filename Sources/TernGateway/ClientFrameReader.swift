import NIOCore

/// What one client frame (or a completed fragmented message) means to the relay handler.
enum ClientFrameEvent: Equatable {
    /// A whole text message, unmasked (fragments joined).
    case text([UInt8])
    /// A whole binary message (its bytes are not kept: the relay refuses binary).
    case binary
    /// A ping with its unmasked payload (answered with a pong carrying it).
    case ping(ByteBuffer)
    case pong
    case close
    /// The stream is broken or too large: close with `code`; nothing after it is read.
    case failure(code: UInt16, reason: String)
}

/// Parses client-to-server WebSocket frames (RFC 6455) straight from the socket's bytes:
/// masking, the three length forms, fragmentation with control frames in between, and the
/// protocol's rules (masked, no reserved bits, short final control frames, known opcodes).
/// A message or frame over `hardLimit` bytes, or more than `maxFragments` fragments, fails
/// with 1009; any other violation with 1002.
///
/// Replaces NIO's frame decoder and aggregator on relay connections: they built a
/// `WebSocketFrame` and an `NIOAny` box per frame and passed each through two more pipeline
/// stages before the payload was copied out (about 5 % of the relay's CPU).
struct ClientFrameParser {
    let hardLimit: Int
    let maxFragments: Int
    /// The text fragments received so far of a message still open (nil: none open).
    private var fragments: [UInt8]?
    private var fragmentedBinary = false
    private var fragmentCount = 0
    private(set) var failed = false
    /// The array of a delivered text message, handed back (`recycle`) for the next one: a
    /// message's bytes are read synchronously by the session, so one array serves them all.
    private var spare: [UInt8] = []

    init(hardLimit: Int, maxFragments: Int = 1024) {
        self.hardLimit = hardLimit
        self.maxFragments = maxFragments
    }

    /// The next event from `buffer`, consuming its frame; nil when `buffer` does not hold a
    /// whole frame yet (nothing is consumed) or a failure was already reported.
    mutating func next(_ buffer: inout ByteBuffer) -> ClientFrameEvent? {
        while !failed {
            guard let frame = parseFrame(&buffer) else { return nil }
            if let event = frame { return event }
            // A fragment that does not complete its message: read on.
        }
        return nil
    }

    /// One frame: nil when incomplete; .some(nil) for a fragment absorbed into an open message.
    private mutating func parseFrame(_ buffer: inout ByteBuffer) -> ClientFrameEvent?? {
        let start = buffer.readerIndex
        guard let b0 = buffer.getInteger(at: start, as: UInt8.self), let b1 = buffer.getInteger(at: start + 1, as: UInt8.self) else {
            return nil
        }
        let fin = b0 & 0x80 != 0
        let opcode = b0 & 0x0F
        var header = 2
        var length = UInt64(b1 & 0x7F)
        if length == 126 {
            guard let extended = buffer.getInteger(at: start + 2, as: UInt16.self) else { return nil }
            length = UInt64(extended)
            header = 4
        } else if length == 127 {
            guard let extended = buffer.getInteger(at: start + 2, as: UInt64.self) else { return nil }
            length = extended
            header = 10
        }
        // The rules that need only the header are checked before waiting for the payload.
        if b0 & 0x70 != 0 { return fail(1002, "reserved bits are set") }
        if b1 & 0x80 == 0 { return fail(1002, "client frames must be masked") }
        let control = opcode & 0x08 != 0
        if control {
            guard opcode <= 0x0A else { return fail(1002, "unknown opcode \(opcode)") }
            guard fin, length <= 125 else { return fail(1002, "control frames must be final and at most 125 bytes") }
        } else {
            guard opcode <= 0x02 else { return fail(1002, "unknown opcode \(opcode)") }
            let open = fragments != nil || fragmentedBinary
            if opcode == 0 && !open { return fail(1002, "continuation frame without a message") }
            if opcode != 0 && open { return fail(1002, "new message inside a fragmented one") }
            let already = fragments?.count ?? 0
            if length > UInt64(hardLimit - min(already, hardLimit)) { return fail(1009, "message too large") }
        }
        let total = header + 4 + Int(length)
        guard buffer.readableBytes >= total else { return nil }
        let key = buffer.getInteger(at: start + header, as: UInt32.self)!
        let payloadAt = start + header + 4
        let count = Int(length)
        buffer.moveReaderIndex(forwardBy: total)

        switch opcode {
        case 0x01 where fin:
            var text = spare
            spare = []
            Self.unmask(buffer, at: payloadAt, count: count, key: key, into: &text)
            return .some(.text(text))
        case 0x02 where fin:
            return .some(.binary)
        case 0x01, 0x02:
            fragmentCount = 1
            if opcode == 0x01 {
                fragments = Self.unmasked(buffer, at: payloadAt, count: count, key: key)
            } else {
                fragmentedBinary = true
            }
            return .some(nil)
        case 0x00:
            fragmentCount += 1
            if fragmentCount > maxFragments { return fail(1009, "message in too many fragments") }
            if fragments != nil {
                fragments!.append(contentsOf: Self.unmasked(buffer, at: payloadAt, count: count, key: key))
            }
            guard fin else { return .some(nil) }
            fragmentCount = 0
            if let text = fragments {
                fragments = nil
                return .some(.text(text))
            }
            fragmentedBinary = false
            return .some(.binary)
        case 0x08:
            return .some(.close)
        case 0x09:
            return .some(.ping(ByteBuffer(bytes: Self.unmasked(buffer, at: payloadAt, count: count, key: key))))
        case 0x0A:
            return .some(.pong)
        default:
            return fail(1002, "unknown opcode \(opcode)")
        }
    }

    private mutating func fail(_ code: UInt16, _ reason: String) -> ClientFrameEvent?? {
        failed = true
        fragments = nil
        return .some(.failure(code: code, reason: reason))
    }

    /// Takes back the array of a delivered text message (if nothing else holds it, the next
    /// message reuses its memory).
    mutating func recycle(_ bytes: consuming [UInt8]) {
        spare = bytes
    }

    /// `count` bytes at `index` of `buffer`, unmasked with `key` (big-endian as on the wire),
    /// eight bytes at a time.
    static func unmasked(_ buffer: ByteBuffer, at index: Int, count: Int, key: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        unmask(buffer, at: index, count: count, key: key, into: &out)
        return out
    }

    /// `unmasked` into `out`, replacing its contents (its memory is reused when unshared).
    static func unmask(_ buffer: ByteBuffer, at index: Int, count: Int, key: UInt32, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        // `index` is in the buffer's own index space, which `withVeryUnsafeBytes` spans.
        buffer.withVeryUnsafeBytes { all in out.append(contentsOf: UnsafeRawBufferPointer(rebasing: all[index..<(index + count)])) }
        out.withUnsafeMutableBufferPointer { out in
            guard count > 0, let base = out.baseAddress else { return }
            // The key repeated to eight bytes, in memory order (wire order).
            let k = key.bigEndian
            var word: UInt64 = 0
            withUnsafeMutableBytes(of: &word) { w in
                withUnsafeBytes(of: k) { kb in
                    for i in 0..<8 { w[i] = kb[i & 3] }
                }
            }
            let raw = UnsafeMutableRawPointer(base)
            var i = 0
            while i + 8 <= count {
                raw.storeBytes(of: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ word, toByteOffset: i, as: UInt64.self)
                i += 8
            }
            withUnsafeBytes(of: k) { kb in
                while i < count {
                    base[i] ^= kb[i & 3]
                    i += 1
                }
            }
        }
    }
}

/// Sits where NIO's WebSocket frame decoder was on an upgraded relay connection: keeps the
/// bytes of a partial frame between reads and hands every event to `deliver` (the relay
/// handler's `received`).
///
/// Concurrency contract: a NIO channel handler, used only on its channel's event loop.
final class ClientFrameReader: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    private var parser: ClientFrameParser
    /// Bytes of an incomplete frame from earlier reads.
    private var pending: ByteBuffer?
    private let deliver: (ClientFrameEvent) -> Void

    init(hardLimit: Int, deliver: @escaping (ClientFrameEvent) -> Void) {
        parser = ClientFrameParser(hardLimit: hardLimit)
        self.deliver = deliver
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var input = unwrapInboundIn(data)
        if var earlier = pending {
            pending = nil
            earlier.writeBuffer(&input)
            input = earlier
        }
        while let event = parser.next(&input) {
            deliver(event)
            if case .text(let bytes) = consume event { parser.recycle(bytes) }
        }
        if input.readableBytes > 0 && !parser.failed {
            // A partial frame: keep its bytes (only those) for the next read.
            input.discardReadBytes()
            pending = input
        }
    }
}
