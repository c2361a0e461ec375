import TernCore

/// Tunables of the relay (the `relay.*` configuration keys).
public struct RelaySettings: Sendable {
    /// Message frames sent to a device and not yet acknowledged, at most. Bounds memory per
    /// session and the redelivery after a reconnect.
    public var window = 512
    /// Where pushes for offline devices go; nil = no push.
    public var push: (any PushSender)?
    /// Mailbox entries read per drain step.
    public var drainPage = 256
    /// Live frames buffered while a drain is running; past this the drain re-reads the
    /// mailbox instead.
    public var liveBuffer = 4096
    /// A connection that stays backed up (the client is not reading) this long is closed.
    public var slowConsumerGrace: Duration = .seconds(10)
    /// Bytes queued to a backed-up connection before it is closed at once.
    public var slowConsumerBytes = 8 << 20
    /// A typing indicator without refresh ends after this long.
    public var typingTTL: Duration = .seconds(5)
    /// Server pings are sent to connections quiet for this long.
    public var pingInterval: Duration = .seconds(25)
    /// Connections with no frame at all (not even a pong) for this long are closed.
    public var idleTimeout: Duration = .seconds(75)
    /// Largest text frame accepted, in bytes; bigger frames get an error frame.
    public var maxMessageBytes = 64 << 10
    /// Users per `presence.subscribe`.
    public var presenceSubscribeMax = 256
    /// Messages marked read per read request (older ones are skipped for receipts).
    public var readBatchMax = 5000
    /// Members of one group, at most (creator included), on create and on add.
    public var groupMaxMembers = 1024

    public init() {}
}

/// The live device sessions of this server, by device and by user, and who subscribed to
/// whose presence. Thread-safe: the writer thread, every event loop and request handlers use
/// it; each call holds the lock briefly and never calls out while holding it.
public final class SessionRegistry: @unchecked Sendable {
    private let lock = Mutex()
    private var byDevice: [UInt64: DeviceSession] = [:]
    private var byUser: [TernID: [UInt64]] = [:]
    /// target user → subscriber sessions, each with whether it may see the target's presence.
    private var subscribers: [TernID: [ObjectIdentifier: (session: DeviceSession, visible: Bool)]] = [:]
    /// subscriber session → the users it subscribed to (for cleanup).
    private var targets: [ObjectIdentifier: Set<TernID>] = [:]

    public init() {}

    /// Adds `session`; returns the session it replaces (same device), which the caller
    /// closes, and whether the user just came online.
    func register(_ session: DeviceSession) -> (replaced: DeviceSession?, cameOnline: Bool) {
        let device = session.identity.deviceNumber
        let user = session.identity.user
        return lock.withLock {
            let previous = byDevice[device]
            byDevice[device] = session
            var list = byUser[user] ?? []
            let wasOnline = !list.isEmpty
            if !list.contains(device) { list.append(device) }
            byUser[user] = list
            return (previous, !wasOnline)
        }
    }

    /// Removes `session` if it is still the registered one for its device; returns whether
    /// its user has no device online any more.
    func unregister(_ session: DeviceSession) -> Bool {
        let device = session.identity.deviceNumber
        let user = session.identity.user
        return lock.withLock {
            let key = ObjectIdentifier(session)
            for target in targets.removeValue(forKey: key) ?? [] {
                subscribers[target]?[key] = nil
                if subscribers[target]?.isEmpty == true { subscribers[target] = nil }
            }
            guard byDevice[device] === session else { return false }
            byDevice[device] = nil
            var list = byUser[user] ?? []
            list.removeAll { $0 == device }
            byUser[user] = list.isEmpty ? nil : list
            return list.isEmpty
        }
    }

    /// The live session of `device`.
    public func session(device: UInt64) -> DeviceSession? {
        lock.withLock { byDevice[device] }
    }

    /// Whether `device` has a live session.
    public func isOnline(device: UInt64) -> Bool {
        lock.withLock { byDevice[device] != nil }
    }

    /// Whether any device of `user` is connected.
    public func isOnline(user: TernID) -> Bool {
        lock.withLock { byUser[user] != nil }
    }

    /// The live sessions of `user`'s devices.
    public func sessions(user: TernID) -> [DeviceSession] {
        lock.withLock { (byUser[user] ?? []).compactMap { byDevice[$0] } }
    }

    /// Live sessions in total.
    public var count: Int { lock.withLock { byDevice.count } }

    /// Every live session (for sweeps).
    var all: [DeviceSession] { lock.withLock { Array(byDevice.values) } }

    func subscribe(_ session: DeviceSession, to target: TernID, visible: Bool) {
        lock.withLock {
            subscribers[target, default: [:]][ObjectIdentifier(session)] = (session, visible)
            targets[ObjectIdentifier(session), default: []].insert(target)
        }
    }

    /// Sessions subscribed to `target`'s presence, with their visibility.
    func subscribers(of target: TernID) -> [(session: DeviceSession, visible: Bool)] {
        lock.withLock { subscribers[target].map { Array($0.values) } ?? [] }
    }
}
