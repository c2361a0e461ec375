import Logging
import TernCore
import TernStore

// Writes an operator asks for through the admin API. They go through the same
// group-committed writer as everything else (the single-writer rule); the ops CLI never
// writes to the store itself.
extension Relay {
    /// Deletes every pending entry of `device`'s mailbox, in commits of at most `chunk`
    /// entries (a deep mailbox never makes one huge transaction), then closes the device's
    /// live connection so that its in-memory window starts again from the empty mailbox.
    /// Returns how many entries were deleted, or nil when no such device exists.
    public func purgeMailbox(device: UInt64, chunk: Int = 10_000) async throws -> Int? {
        guard try await store.read({ tx in try tx.device(number: device) != nil }) else { return nil }
        var total = 0
        while true {
            let deleted = try await store.write { tx in
                try tx.deletePrefix(tx.tables.mailbox, Keys.u64(device), limit: chunk)
            }
            total += deleted
            if deleted < chunk { break }
        }
        if let session = registry.session(device: device) {
            session.eventLoop.execute {
                session.connection.close(code: CloseCode.purged, reason: "mailbox purged by an operator")
            }
        }
        logger.notice("mailbox purged", metadata: ["relay.device": "\(device)", "relay.purged": "\(total)"])
        return total
    }
}

// MARK: shutdown

extension Relay {
    /// True once a drain began: new WebSocket sessions are refused (503 SHUTTING_DOWN).
    public var isDraining: Bool { drainFlag.isSet }

    /// Starts the drain: from now on new sessions are refused, and the live ones are closed
    /// with 1001 ("going away"), spread evenly over `window` so that clients do not all
    /// reconnect to the next server at once. Unacknowledged frames stay in the mailboxes.
    /// Returns when every session closed, or at most two seconds after the window.
    public func drain(over window: Duration) async {
        drainFlag.set()
        let sessions = registry.all
        logger.notice("draining sessions", metadata: ["relay.sessions": "\(sessions.count)", "relay.drain_window": "\(window)"])
        let tick = Duration.milliseconds(10)
        let ticks = max(1, Int(window.wholeMilliseconds / 10))
        let perTick = max(1, (sessions.count + ticks - 1) / ticks)
        var index = 0
        while index < sessions.count {
            for session in sessions[index..<min(index + perTick, sessions.count)] {
                session.eventLoop.execute {
                    session.connection.close(code: CloseCode.goingAway, reason: "server is shutting down")
                }
            }
            index += perTick
            if index < sessions.count { try? await Task.sleep(for: tick) }
        }
        let deadline = ContinuousClock.now + .seconds(2)
        while registry.count > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// A flag set once, read from any thread.
final class DrainFlag: Sendable {
    private let lock = Mutex()
    nonisolated(unsafe) private var value = false

    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
