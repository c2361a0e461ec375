import NIOConcurrencyHelpers
import NIOCore

/// WebSocket keep-alive for every connection of a server with one timer per event loop
/// instead of one per connection (a repeated task per idle connection costs memory, and
/// idle connections are what a chat server mostly holds).
///
/// Every `tick` each loop's sweeper asks its connections to check themselves: ping when
/// quiet for the ping interval, close when quiet for the idle timeout. A connection is
/// therefore pinged at most one tick late and closed at most one tick after its timeout.
final class KeepAlive: Sendable {
    private let tick: TimeAmount
    private let sweepers = NIOLockedValueBox<[ObjectIdentifier: LoopSweeper]>([:])

    /// `tick` is how often connections are checked (a fraction of the ping interval).
    init(tick: TimeAmount) {
        self.tick = tick
    }

    /// Adds `handler` on its event loop (call on that loop).
    func add(_ handler: WebSocketRelayHandler) {
        sweeper(for: handler.eventLoop).add(handler)
    }

    /// Removes `handler` (call on its event loop).
    func remove(_ handler: WebSocketRelayHandler) {
        sweeper(for: handler.eventLoop).remove(handler)
    }

    private func sweeper(for loop: any EventLoop) -> LoopSweeper {
        sweepers.withLockedValue { all in
            if let existing = all[ObjectIdentifier(loop)] { return existing }
            let sweeper = LoopSweeper(loop: loop, tick: tick)
            all[ObjectIdentifier(loop)] = sweeper
            return sweeper
        }
    }

    /// The connections of one event loop. State confined to that loop.
    private final class LoopSweeper: @unchecked Sendable {
        let loop: any EventLoop
        let tick: TimeAmount
        private var handlers: [ObjectIdentifier: WebSocketRelayHandler] = [:]
        private var timer: RepeatedTask?

        init(loop: any EventLoop, tick: TimeAmount) {
            self.loop = loop
            self.tick = tick
        }

        func add(_ handler: WebSocketRelayHandler) {
            loop.preconditionInEventLoop()
            handlers[ObjectIdentifier(handler)] = handler
            if timer == nil {
                timer = loop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { [weak self] _ in self?.sweep() }
            }
        }

        func remove(_ handler: WebSocketRelayHandler) {
            loop.preconditionInEventLoop()
            handlers[ObjectIdentifier(handler)] = nil
            if handlers.isEmpty {
                timer?.cancel()
                timer = nil
            }
        }

        private func sweep() {
            let now = NIODeadline.now()
            for handler in Array(handlers.values) { handler.checkAlive(now: now) }
        }
    }
}
