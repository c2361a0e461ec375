import NIOCore
import TernWire
import TernCore

/// Who is on the other end of a connection: a user's logged-in device.
public struct DeviceIdentity: Sendable, Hashable {
    public var user: TernID
    public var deviceNumber: UInt64
    /// The client's `device_id`.
    public var deviceID: String
    public var session: TernID

    public init(user: TernID, deviceNumber: UInt64, deviceID: String, session: TernID) {
        self.user = user
        self.deviceNumber = deviceNumber
        self.deviceID = deviceID
        self.session = session
    }
}

/// The transport under a device session (a WebSocket connection), as the relay sees it.
///
/// Every method is called on `eventLoop` only.
public protocol RelayConnection: AnyObject, Sendable {
    var eventLoop: any EventLoop { get }
    /// Queues one text frame for writing (not flushed).
    func send(_ frame: [UInt8])
    /// Queues a stored frame, `{"event":E,"type":E,"seq":N,"data":DATA}`: every delivery
    /// goes through here, so a transport may write the envelope around `data` straight into
    /// its buffer instead of building the frame first.
    func sendStored(event: String, seq: UInt64, data: [UInt8])
    /// Flushes queued frames to the socket.
    func flush()
    /// Closes the connection with a WebSocket close code and reason.
    func close(code: UInt16, reason: String)
    /// True while the peer is not reading fast enough (the socket's write buffer is above
    /// its high-water mark).
    var isBackedUp: Bool { get }
}

extension RelayConnection {
    public func sendStored(event: String, seq: UInt64, data: [UInt8]) {
        send(OutboundFrame.wrap(event, seq: seq, data: data))
    }
}

/// WebSocket close codes Tern uses (4000–4999 are the application's range).
public enum CloseCode {
    public static let goingAway: UInt16 = 1001
    public static let policyViolation: UInt16 = 1008
    public static let tooBig: UInt16 = 1009
    /// Another connection of the same device took over.
    public static let replaced: UInt16 = 4000
    /// The session's token was revoked (logout, reuse) while connected.
    public static let unauthorized: UInt16 = 4401
    /// The client did not read fast enough; its frames stay in its mailbox.
    public static let slowConsumer: UInt16 = 4008
    /// No frame (not even a pong) within the idle timeout.
    public static let idle: UInt16 = 4002
    /// An operator purged the device's mailbox; reconnecting starts from an empty mailbox.
    public static let purged: UInt16 = 4009
}
