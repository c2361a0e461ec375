import Foundation

/// Holds a single-writer thread inside one write closure, so that the writes submitted
/// meanwhile queue up and share its next transaction. In the held closure call `hold()`;
/// outside, `await held()` before queueing the others and `release()` after.
public final class WriterHold: Sendable {
    private let gate = DispatchSemaphore(value: 0)
    private let running = DispatchSemaphore(value: 0)

    public init() {}

    /// Inside the write closure: blocks the writer until `release()`.
    public func hold() {
        running.signal()
        gate.wait()
    }

    /// Returns once the writer is held.
    public func held() async {
        await Task.detached { self.running.wait() }.value
    }

    public func release() {
        gate.signal()
    }
}
