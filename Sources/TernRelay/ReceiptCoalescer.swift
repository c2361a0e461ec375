import TernCore
import TernStore
import TernWire

/// Receipts for connected sender devices, from one write request.
struct LiveReceipts: Sendable {
    var message: MessageID
    var devices: [UInt64]
    var receipts: [(user: TernID, status: ReceiptStatus)]
    var aggregate: ReceiptStatus
    /// RFC 3339 time of the write.
    var at: String
}

/// Merges the live receipts of one commit per message: a group message acknowledged by many
/// members in one commit (across all the write requests of that batch) reaches each
/// connected sender device as one `message.status` listing them, built once.
///
/// Concurrency contract: `add` and the batch hook run only on the thread running a batch;
/// the hook is registered before the `LoopOutbox`'s, so the frames it hands to sessions
/// leave with the same batch.
final class ReceiptCoalescer: @unchecked Sendable {
    private let registry: SessionRegistry
    // Writer-thread confined.
    /// This commit's receipts, one per message, in the order of their first arrival.
    private var pending: [LiveReceipts] = []
    /// Where each message's receipts are in `pending`.
    private var index: [MessageID: Int] = [:]
    /// Per merged message: where each user's receipt is in its list.
    private var positions: [MessageID: [TernID: Int]] = [:]

    init(store: Store, registry: SessionRegistry) {
        self.registry = registry
        store.addBatchHook { [weak self] in self?.flush() }
    }

    func add(_ live: consuming LiveReceipts) {
        // One lookup for the usual message seen once per commit; put back if it was there.
        guard let at = index.updateValue(pending.count, forKey: live.message) else {
            pending.append(live)
            return
        }
        index[live.message] = at
        // Taken out while merging, so that its arrays are not copied on write.
        var merged = pending[at]
        pending[at].receipts = []
        pending[at].devices = []
        var users = positions[live.message] ?? Dictionary(
            merged.receipts.enumerated().map { ($0.element.user, $0.offset) }, uniquingKeysWith: { _, last in last })
        for receipt in live.receipts {
            if let at = users[receipt.user] {
                // One user's later state replaces an earlier one of the same commit.
                merged.receipts[at] = receipt
            } else {
                users[receipt.user] = merged.receipts.count
                merged.receipts.append(receipt)
            }
        }
        positions[live.message] = users
        for device in live.devices where !merged.devices.contains(device) { merged.devices.append(device) }
        // Counters only grow within a commit: the later request's aggregate is the current one.
        merged.aggregate = live.aggregate
        merged.at = live.at
        pending[at] = merged
    }

    private func flush() {
        guard !pending.isEmpty else { return }
        // Frames gathered per device, so that each connected sender device is looked up and
        // handed its receipts once per commit (a drained backlog acknowledges hundreds of its
        // messages in one commit).
        var outgoing: [(device: UInt64, frames: [[UInt8]])] = []
        var slot: [UInt64: Int] = [:]
        // By index and field: neither a receipt nor a device's frame list is copied (a copy
        // of the list held while appending would make each append copy it).
        for i in pending.indices {
            let frame = RelayFrames.statusFrame(
                id: pending[i].message, receipts: pending[i].receipts, aggregate: pending[i].aggregate, at: pending[i].at)
            for device in pending[i].devices {
                if let last = outgoing.indices.last, outgoing[last].device == device {
                    outgoing[last].frames.append(frame)
                } else if let at = slot[device] {
                    outgoing[at].frames.append(frame)
                } else {
                    slot[device] = outgoing.count
                    outgoing.append((device, [frame]))
                }
            }
        }
        for (device, frames) in outgoing { registry.session(device: device)?.deliverTransient(frames) }
        pending.removeAll(keepingCapacity: true)
        index.removeAll(keepingCapacity: true)
        positions.removeAll(keepingCapacity: true)
    }
}
