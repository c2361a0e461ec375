import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import TernGateway

@Suite("Gateway framing: text frames written past NIO's encoder")
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
        _ = try channel.finish()
    }

    @Test("unmasking eight bytes at a time equals NIO's byte-wise unmask", arguments: [0, 1, 7, 8, 9, 63, 64, 1000])
    func unmask(_ length: Int) throws {
        let key = try #require(WebSocketMaskingKey([0x12, 0xA7, 0x3C, 0xF0]))
        var masked = ByteBuffer(bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) })
        masked.webSocketMask(key)
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: key, data: masked)
        #expect(WebSocketRelayHandler.unmaskedBytes(frame) == Array(frame.unmaskedData.readableBytesView))
    }
}
