import NIOCore
import TernStore

/// Hands work produced by write completions (on the thread running the batch) to event
/// loops, once per commit and loop instead of once per frame.
///
/// A commit of 100 messages used to cost a few hundred `EventLoop.execute` calls (each a
/// lock and often an eventfd wake-up) on the single writer thread, the relay's bottleneck.
/// Completions now `post` into per-loop lists owned by the committing thread, and the batch
/// hook hands each list over with one `execute`. Order per loop is kept. When a loop
/// committed its own writes, its list still runs as a task after the batch, never inside it.
final class LoopOutbox: @unchecked Sendable {
    private let store: Store
    // Writer-thread confined.
    private var pending: [(loop: any EventLoop, work: [@Sendable () -> Void])] = []

    init(store: Store) {
        self.store = store
        store.addBatchHook { [weak self] in self?.flush() }
    }

    /// Runs `work` on `loop`: after the current batch when called by the committing thread,
    /// otherwise at once through `execute`.
    func post(_ loop: any EventLoop, _ work: @escaping @Sendable () -> Void) {
        guard store.isWriterThread else {
            loop.execute(work)
            return
        }
        // Few loops (one per core): a linear search beats hashing.
        for index in pending.indices where pending[index].loop === loop {
            pending[index].work.append(work)
            return
        }
        pending.append((loop, [work]))
    }

    private func flush() {
        guard !pending.isEmpty else { return }
        let lists = pending
        pending.removeAll(keepingCapacity: true)
        for (loop, work) in lists {
            loop.execute {
                for item in work { item() }
            }
        }
    }
}
