import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing
import TernWire

@testable import TernGateway

@Suite("Gateway framing: text frames written past NIO's encoder, client frames read past its decoder")
struct GatewayFramingTests {
    @Test("the header matches NIO's encoder for every length class", arguments: [0, 1, 125, 126, 127, 65_535, 65_536, 300_000])
    func headerMatchesNIO(_ length: Int) throws {
        let payload = [UInt8]((0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        var ours = ByteBuffer()
        WebSocketRelayHandler.writeTextHeader(length: length, into: &ours)
        ours.writeBytes(payload)

        let channel = EmbeddedChannel(handler: WebSocketFrameEncoder())
        try channel.writeOutbound(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: payload)))
        var theirs = ByteBuffer()
        while var part = try channel.readOutbound(as: ByteBuffer.self) { theirs.writeBuffer(&part) }
        #expect(ours == theirs)
        // The pointer writer used for stored frames writes the same header.
        var direct = [UInt8](repeating: 0, count: 10)
        let count = direct.withUnsafeMutableBytes { WebSocketRelayHandler.writeTextHeader(length: length, to: $0.baseAddress!) }
        #expect(Array(direct[..<count]) == Array(ours.readableBytesView.prefix(count)))
        _ = try channel.finish()
    }

    @Test("a stored frame's envelope written in one pass equals the general envelope writer")
    func storedEnvelope() {
        var rng = SystemRandomNumberGenerator()
        let seqs: [UInt64] = [0, 9, 10, 99, 100, 12_345, UInt64.max] + (0..<200).map { _ in UInt64.random(in: 0...UInt64.max, using: &rng) >> UInt64.random(in: 0...63, using: &rng) }
        for (i, seq) in seqs.enumerated() {
            let event = ["message.new", "message.status", "group.member_added"][i % 3]
            let data = Array(#"{"message_id":"x","n":\#(i)}"#.utf8)
            let length = StoredEnvelope.length(eventCount: event.utf8.count, seq: seq, dataCount: data.count)
            var out = [UInt8](repeating: 0, count: length)
            let written = out.withUnsafeMutableBytes { out in
                Array(event.utf8).withUnsafeBytes { name in
                    data.withUnsafeBytes { StoredEnvelope.write(event: name, seq: seq, data: $0, to: out.baseAddress!) }
                }
            }
            #expect(written == length)
            #expect(out == OutboundFrame.wrap(event, seq: seq, data: data))
        }
    }

    @Test("unmasking eight bytes at a time equals NIO's byte-wise unmask", arguments: [0, 1, 7, 8, 9, 63, 64, 1000])
    func unmask(_ length: Int) throws {
        let key = try #require(WebSocketMaskingKey([0x12, 0xA7, 0x3C, 0xF0]))
        var masked = ByteBuffer(bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) })
        masked.webSocketMask(key)
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: key, data: masked)
        var wire = ByteBuffer(bytes: [0, 0, 0])  // an offset: the payload need not start at 0
        wire.writeBuffer(&masked)
        let ours = ClientFrameParser.unmasked(wire, at: 3, count: length, key: 0x12A7_3CF0)
        #expect(ours == Array(frame.unmaskedData.readableBytesView))
    }

    /// Client frames as NIO's encoder writes them (masked), for the reader to parse back.
    static func encode(_ frames: [WebSocketFrame]) throws -> ByteBuffer {
        let channel = EmbeddedChannel(handler: WebSocketFrameEncoder())
        var out = ByteBuffer()
        for frame in frames {
            try channel.writeOutbound(frame)
            while var part = try channel.readOutbound(as: ByteBuffer.self) { out.writeBuffer(&part) }
        }
        _ = try channel.finish()
        return out
    }

    /// Feeds `wire` to a `ClientFrameReader` in pieces cut at `cuts`; returns its events.
    static func read(_ wire: ByteBuffer, cuts: [Int], hardLimit: Int = 1 << 20) throws -> [ClientFrameEvent] {
        final class Events { var list: [ClientFrameEvent] = [] }
        let events = Events()
        let channel = EmbeddedChannel(handler: ClientFrameReader(hardLimit: hardLimit) { events.list.append($0) })
        var rest = wire
        var at = 0
        for cut in cuts.sorted() where cut > at && cut < wire.readableBytes {
            try channel.writeInbound(rest.readSlice(length: cut - at)!)
            at = cut
        }
        try channel.writeInbound(rest)
        _ = try channel.finish()
        return events.list
    }

    @Test("messages in every length class, fragmented, with control frames between fragments, cut anywhere, come out whole")
    func readerMatchesEncoder() throws {
        var rng = SystemRandomNumberGenerator()
        for round in 0..<60 {
            var frames: [WebSocketFrame] = []
            var expected: [ClientFrameEvent] = []
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                let length = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000, Int.random(in: 0...3000, using: &rng)].randomElement(using: &rng)!
                let text = (0..<length).map { _ in UInt8.random(in: 0x20...0x7E, using: &rng) }
                let pieces = round % 3 == 0 ? 1 : Int.random(in: 1...4, using: &rng)
                var cuts = (0..<(pieces - 1)).map { _ in Int.random(in: 0...length, using: &rng) }.sorted()
                cuts.append(length)
                var from = 0
                for (index, to) in cuts.enumerated() {
                    let key = WebSocketMaskingKey.random(using: &rng)
                    frames.append(WebSocketFrame(
                        fin: index == cuts.count - 1, opcode: index == 0 ? .text : .continuation, maskKey: key,
                        data: ByteBuffer(bytes: text[from..<to])))
                    from = to
                    if index < cuts.count - 1 && Bool.random(using: &rng) {
                        // A ping between fragments is answered at once, before the message completes.
                        let payload = (0..<Int.random(in: 0...125, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                        frames.append(WebSocketFrame(fin: true, opcode: .ping, maskKey: .random(using: &rng), data: ByteBuffer(bytes: payload)))
                        expected.append(.ping(ByteBuffer(bytes: payload)))
                    }
                }
                expected.append(.text(text))
                if Bool.random(using: &rng) {
                    frames.append(WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(using: &rng), data: ByteBuffer(bytes: [1, 2, 3])))
                    expected.append(.binary)
                }
            }
            frames.append(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(using: &rng), data: ByteBuffer(bytes: [0x03, 0xE8])))
            expected.append(.close)
            let wire = try Self.encode(frames)
            let cuts = (0..<Int.random(in: 0...12, using: &rng)).map { _ in Int.random(in: 1..<max(2, wire.readableBytes), using: &rng) }
            #expect(try Self.read(wire, cuts: cuts) == expected, "round \(round)")
            // Byte by byte for the small ones: every partial header and payload is waited for.
            if wire.readableBytes < 400 { #expect(try Self.read(wire, cuts: Array(1..<wire.readableBytes)) == expected) }
        }
    }

    @Test("broken and oversized streams fail with 1002 or 1009 and nothing after is read")
    func readerRefuses() throws {
        let key = WebSocketMaskingKey([1, 2, 3, 4])
        func frame(_ opcode: WebSocketOpcode, fin: Bool = true, _ bytes: [UInt8], masked: Bool = true) -> WebSocketFrame {
            WebSocketFrame(fin: fin, opcode: opcode, maskKey: masked ? key : nil, data: ByteBuffer(bytes: bytes))
        }
        let hello = frame(.text, Array("hi".utf8))
        let cases: [(frames: [WebSocketFrame], limit: Int, code: UInt16)] = [
            ([frame(.text, Array("x".utf8), masked: false), hello], 1 << 20, 1002),  // unmasked
            ([frame(.continuation, [1]), hello], 1 << 20, 1002),  // continuation without a message
            ([frame(.text, fin: false, [1]), frame(.text, [2]), hello], 1 << 20, 1002),  // new message inside a fragmented one
            ([frame(.ping, fin: false, [1]), hello], 1 << 20, 1002),  // fragmented control frame
            ([frame(.ping, [UInt8](repeating: 1, count: 126)), hello], 1 << 20, 1002),  // long control frame
            ([frame(.text, [UInt8](repeating: 0x41, count: 2000)), hello], 1000, 1009),  // one frame over the limit
            ([frame(.text, fin: false, [UInt8](repeating: 0x41, count: 600)), frame(.continuation, [UInt8](repeating: 0x41, count: 600)), hello], 1000, 1009),
        ]
        for (index, c) in cases.enumerated() {
            let events = try Self.read(try Self.encode(c.frames), cuts: [], hardLimit: c.limit)
            #expect(events.count == 1, "case \(index): \(events)")
            if case .failure(let code, _) = events.first { #expect(code == c.code, "case \(index)") } else { Issue.record("case \(index): \(events)") }
        }
        // Reserved bits (no extension is negotiated) and unknown opcodes, written by hand.
        for first: UInt8 in [0x80 | 0x40 | 0x01, 0x80 | 0x03, 0x80 | 0x0B] {
            var wire = ByteBuffer(bytes: [first, 0x80 | 1, 1, 2, 3, 4, 0x41])
            var after = try Self.encode([hello])
            wire.writeBuffer(&after)
            let events = try Self.read(wire, cuts: [])
            #expect(events.count == 1)
            if case .failure(let code, _) = events.first { #expect(code == 1002) } else { Issue.record("\(events)") }
        }
        // A length over the limit fails as soon as the header is in, without the payload.
        let huge = ByteBuffer(bytes: [0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0x20, 0, 0, 1, 2, 3, 4])
        #expect(try Self.read(huge, cuts: []).count == 1)
    }
}
