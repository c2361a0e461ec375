// TernRelay owns store-and-forward: sending into chat history and per-device mailboxes in
// one group-committed write, live delivery to connected devices straight from memory,
// acknowledgements that empty mailboxes and become receipts, read receipts, typing and
// presence.
//
// What it promises (DESIGN promises 1–5):
// - `message.sent` (and the REST 201) only after the commit that holds the message in the
//   history and in every recipient device's mailbox (and the sender's other devices').
// - Each device receives its mailbox in order, at least once, with its mailbox seq; an entry
//   leaves the mailbox only when that device acknowledges it.
// - Re-sending with the same (sender, client_msg_id) returns the original message.
// - Typing and online presence are never stored; last seen is, and obeys privacy.
//
// Concurrency contract: `Relay` is Sendable. Store writes are submitted with completion
// callbacks that run on the committing thread (the store's writer thread, or with `nosync`
// the event loop that submitted the write) and only hand frames to sessions (each session
// hops to its own event loop). Fan-out never waits for a device.
import Logging
import Metrics
import NIOCore
import TernCore
import TernStore
import TernWire

/// The result of a send.
public struct SendOutcome: Sendable {
    public var id: MessageID
    public var record: MessageRecord
    public var createdAt: Timestamp { record.createdAt }
    /// True when this was a re-send of an earlier client_msg_id.
    public var duplicate: Bool
}

/// The relay: sending, acknowledgements, receipts, typing, presence.
public final class Relay: Sendable {
    public let store: Store
    public let registry: SessionRegistry
    public let settings: RelaySettings
    public let clock: any TernClock
    public let logger: Logger
    let metrics = RelayMetrics()
    let outbox: LoopOutbox
    let ackBatches = AckBatches()
    let drainFlag = DrainFlag()
    let receiptCoalescer: ReceiptCoalescer

    public init(store: Store, registry: SessionRegistry = SessionRegistry(), settings: RelaySettings, clock: any TernClock, logger: Logger) {
        self.store = store
        self.registry = registry
        self.settings = settings
        self.clock = clock
        self.logger = logger
        // Registered first: its batch hook posts into the outbox, whose own hook then hands
        // everything to the loops.
        self.receiptCoalescer = ReceiptCoalescer(store: store, registry: registry)
        self.outbox = LoopOutbox(store: store)
    }

    /// A new session for a connection that passed authentication. Call `start()` on the
    /// connection's event loop.
    public func session(for identity: DeviceIdentity, connection: any RelayConnection) -> DeviceSession {
        DeviceSession(identity: identity, connection: connection, relay: self)
    }

    /// The client-facing form of an error from a store operation.
    public static func clientError(_ error: any Error) -> TernError {
        switch error {
        case let e as TernError: e
        case let e as StoreError: e.clientError
        default: TernError(.internalError, "internal error")
        }
    }

    // MARK: sending

    private struct SendResult: Sendable {
        var outcome: SendOutcome
        var deliveries: [MailboxDelivery]
        var data: [UInt8]
    }

    /// What a sending device is told of one of its sends (`message.sent`): no counted
    /// references, so handing a burst's answers to its session copies nothing.
    public struct Sent: Sendable {
        public var id: MessageID
        public var createdAt: Timestamp
        public var duplicate: Bool
    }

    /// Stores `command` from `sender` and delivers it. `completion` runs on the committing
    /// thread after the commit.
    public func send(
        _ command: SendCommand, from sender: DeviceIdentity, origin: DeviceSession?,
        completion: @escaping @Sendable (Result<SendOutcome, any Error>) -> Void
    ) {
        storeSends([command], from: sender, on: nil) { results in completion(results[0].map(\.outcome)) }
    }

    /// Stores several sends of one device (the `message.send` frames of one read burst) in
    /// one write request, and delivers them. Each command succeeds or fails on its own;
    /// `completion` gets one result per command, in order, on the committing thread after the
    /// commit. One request instead of one per frame: fewer closures, completions and
    /// hand-offs on the writer thread, the relay's bottleneck.
    /// With `loop` (the caller's event loop) an unsynced store lets that loop commit
    /// (`Store.submit(on:)`).
    public func send(
        burst commands: [SendCommand], from sender: DeviceIdentity, on loop: (any EventLoop)? = nil,
        completion: @escaping @Sendable ([Result<Sent, any Error>]) -> Void
    ) {
        storeSends(commands, from: sender, on: loop) { results in
            completion(results.map { result in
                result.map { Sent(id: $0.outcome.id, createdAt: $0.outcome.createdAt, duplicate: $0.outcome.duplicate) }
            })
        }
    }

    /// `send(burst:)` with each command's whole result (the REST answer needs the record).
    /// `completion` runs before the deliveries are handed on.
    private func storeSends(
        _ commands: [SendCommand], from sender: DeviceIdentity, on loop: (any EventLoop)?,
        completion: @escaping @Sendable ([Result<SendResult, any Error>]) -> Void
    ) {
        let now = clock.now()
        let registry = self.registry
        let metrics = self.metrics
        // Everything that does not need the transaction is prepared here, on the caller's
        // thread (an event loop), so that the writer only splices in the message id.
        // (The commands are read by index below, not copied into these pairs.)
        let prepared = commands.map { command in
            let draft = MessageRecord(
                sender: sender.user, senderDevice: sender.deviceNumber, clientMsgID: command.clientMsgID,
                kind: command.content.kind.rawValue, payload: command.content.payload, replyTo: command.replyTo?.description ?? "",
                createdAt: now, recipients: 0)
            return (draft: draft, template: RelayFrames.MessageTemplate(chat: command.chat, record: draft))
        }
        store.submit(on: loop, { tx -> [Result<SendResult, any Error>] in
            var results: [Result<SendResult, any Error>] = []
            results.reserveCapacity(prepared.count)
            for index in prepared.indices {
                let before = tx.mutationCount
                do {
                    results.append(.success(try Self.sendTransaction(
                        tx, commands[index], draft: prepared[index].draft, template: prepared[index].template, sender: sender)))
                } catch {
                    // A refusal (not a member, blocked, …) happens before any write and fails
                    // that command alone; a failure after writing fails the whole request,
                    // which the writer then replays without it.
                    if tx.mutationCount != before || tx.isBroken { throw error }
                    results.append(.failure(error))
                }
            }
            return results
        }) { result in
            switch result {
            case .failure(let error):
                completion(Array(repeating: .failure(error), count: commands.count))
            case .success(let results):
                completion(results)
                for case .success(let sent) in results where !sent.outcome.duplicate {
                    metrics.messagesAccepted.increment()
                    for delivery in sent.deliveries {
                        registry.session(device: delivery.device)?.deliverStored(
                            seq: delivery.seq, kind: .message, event: ServerEvent.messageNew, data: sent.data, message: sent.outcome.id)
                    }
                    if self.settings.push != nil {
                        self.pushStored(sent.deliveries.map(\.device), message: sent.outcome.id, sender: sender.user)
                    }
                }
            }
        }
    }

    /// `send` for request handlers.
    public func send(_ command: SendCommand, from sender: DeviceIdentity) async throws -> SendOutcome {
        try await withCheckedThrowingContinuation { continuation in
            send(command, from: sender, origin: nil) { continuation.resume(with: $0) }
        }
    }

    /// The sender's access to the chat: from the writer's cache, which keeps it across
    /// requests until membership, blocks or devices change.
    private static func access(_ tx: WriteTx, chat id: TernID, sender: TernID) throws -> ChatAccess {
        try tx.cachedAccess(chat: id, user: sender) {
            let (chat, membership) = try tx.membership(chat: id, user: sender)
            let members = try tx.memberIDs(of: id)
            var blocked = false
            if chat.kind == .direct, let other = members.first(where: { $0 != sender }) { blocked = try tx.eitherBlocked(sender, other) }
            return ChatAccess(chat: chat, membership: membership, members: members, blocked: blocked)
        }
    }

    /// `reached` with the items of one message made adjacent (in order), and each message's
    /// range in it, in the order of the messages' first items. Repeated ids are found by
    /// sorting, not hashing: acknowledgements come in runs of ascending ids (one device's
    /// backlog), which the sort takes in near-linear time, and usually no id repeats (1:1
    /// messages), so the items stay where they are.
    static func grouped<T>(_ reached: [T], by key: (T) -> MessageID) -> (items: [T], groups: [(id: MessageID, range: Range<Int>)]) {
        var sorted = reached.indices.map { (id: key(reached[$0]), at: $0) }
        sorted.sort { $0.id < $1.id || ($0.id == $1.id && $0.at < $1.at) }
        var repeats = false
        for i in sorted.indices.dropFirst() where sorted[i].id == sorted[i - 1].id {
            repeats = true
            break
        }
        guard repeats else { return (reached, reached.indices.map { (key(reached[$0]), $0..<($0 + 1)) }) }
        // Each item's message is named by the position of that message's first item.
        var first = [Int](repeating: 0, count: reached.count)
        var runStart = 0
        for i in sorted.indices {
            if sorted[i].id != sorted[runStart].id { runStart = i }
            first[sorted[i].at] = sorted[runStart].at
        }
        var members = [[Int]](repeating: [], count: reached.count)
        for at in reached.indices { members[first[at]].append(at) }
        var items: [T] = []
        items.reserveCapacity(reached.count)
        var groups: [(id: MessageID, range: Range<Int>)] = []
        for at in reached.indices where first[at] == at {
            let start = items.count
            for member in members[at] { items.append(reached[member]) }
            groups.append((key(reached[at]), start..<items.count))
        }
        return (items, groups)
    }

    private static func sendTransaction(
        _ tx: WriteTx, _ command: SendCommand, draft: MessageRecord, template: RelayFrames.MessageTemplate, sender: DeviceIdentity
    ) throws -> SendResult {
        var draft = draft
        var template = template
        let now = draft.createdAt
        let access = try Self.access(tx, chat: command.chat, sender: sender.user)
        let (chat, membership, members) = (access.chat, access.membership, access.members)
        if access.blocked {
            throw TernError(.userBlocked, "you cannot message this user")
        }
        if chat.kind == .group && chat.adminOnly && membership.role != .admin {
            throw TernError(.notAdmin, "only admins can send messages in this group")
        }
        if let media = command.content.mediaID {
            // The sender must be able to see the media (its uploader, or a member of a chat it
            // was sent in: forwarding); from now on this chat's members may download it.
            guard let record = try tx.media(media), try tx.canSee(media: media, record, user: sender.user) else {
                throw TernError.validation("payload.media_id is not an upload you can send")
            }
            guard record.kind == command.content.kind.rawValue || command.content.kind == .document else {
                throw TernError.validation("payload.media_id is a \(record.kind), not a \(command.content.kind.rawValue)")
            }
            try tx.linkMedia(media, chat: command.chat)
            // History and message.new carry what the recipient shows before downloading.
            draft.payload = MediaSummary.embed(media, record, in: draft.payload)
            template = RelayFrames.MessageTemplate(chat: command.chat, record: draft)
        }
        var head = try tx.cachedChatHead(command.chat) ?? ChatHead(lastSeq: 0, lastActivity: chat.createdAt)
        head.lastSeq += 1
        head.lastActivity = now
        let id = MessageID(chat: command.chat, seq: head.lastSeq)
        func duplicate(of existing: MessageID) throws -> SendResult {
            guard let record = try tx.message(existing) else { throw TernError(.internalError, "deduplicated message is missing") }
            return SendResult(outcome: SendOutcome(id: existing, record: record, duplicate: true), deliveries: [], data: [])
        }
        if let reply = command.replyTo {
            // A re-send is answered before its reply is checked again (the message replied to
            // may be gone from the sender's view by now).
            if let existing = try tx.dedupe(sender: sender.user, clientMsgID: command.clientMsgID) { return try duplicate(of: existing) }
            let first = try tx.userChat(user: sender.user, chat: command.chat)?.firstSeq ?? 1
            guard reply.seq >= first, try tx.message(reply) != nil else {
                throw TernError.validation("reply_to_message_id is not a message of this chat")
            }
            try tx.putDedupe(sender: sender.user, clientMsgID: command.clientMsgID, id)
        } else if let existing = try tx.claimDedupe(sender: sender.user, clientMsgID: command.clientMsgID, id) {
            // Looked up and, when new, recorded in one step; a re-send wrote nothing.
            return try duplicate(of: existing)
        }
        // Checks done; from here on only writes.
        // The sender is a member (checked above): everyone else is a recipient.
        let recipients = members.count - (members.contains(sender.user) ? 1 : 0)
        var record = draft
        record.recipients = UInt32(recipients)
        // One recipient (every direct message): its receipt lives in the record.
        if recipients == 1 { record.flags |= MessageRecord.inlineReceiptFlag }
        try tx.putChatHead(command.chat, head)
        try tx.putMessage(id, record)
        let data = template.data(id: id)
        // Every device's mailbox gets a reference to the history (empty data), encoded once:
        // the message is serialized once, for the live deliveries, and stored once, in the
        // history — not once per member device (a 100-member group wrote 45 KB of mailbox
        // pages per message, then deleted them on the acknowledgements).
        let entry = tx.encodedInScratch(MailboxEntry(kind: .message, event: ServerEvent.messageNew, data: [], message: id, sender: sender.user, enqueuedAt: now))
        // Every member's devices, the sender's other devices included.
        let deliveries = try tx.fanOut(entry, to: members, skipping: sender.deviceNumber)
        return SendResult(outcome: SendOutcome(id: id, record: record, duplicate: false), deliveries: deliveries, data: data)
    }

    // MARK: receipts

    /// A receipt to hand to the sender's devices after the commit.
    private struct ReceiptNotice: Sendable {
        var message: MessageID
        /// Entries written to offline sender devices' mailboxes, with their data.
        var stored: [MailboxDelivery]
        var data: [UInt8]
        /// For the connected sender devices, merged with the rest of the commit.
        var live: LiveReceipts?
    }

    /// A recipient who may have reached a state.
    private struct Reached {
        var id: MessageID
        var user: TernID
        var status: ReceiptStatus
    }

    /// Records each recipient's new state (where it advanced), updates the messages'
    /// counters, and returns the receipts for the senders' devices: live for connected ones,
    /// in the mailbox for the others. Per message, the record is read and its counters
    /// written once, and one `message.status` goes out, however many of its recipients
    /// advanced in this write: the members of a group travel together in its `receipts` (a
    /// group message acknowledged by 100 members is a handful of frames to its sender, not
    /// 100). In the order the messages were first reached.
    private static func receiptNotices(_ tx: WriteTx, _ reached: [Reached], now: Timestamp, registry: SessionRegistry) throws -> [ReceiptNotice] {
        var notices: [ReceiptNotice] = []
        var stamp: String?
        let (ordered, groups) = grouped(reached, by: \.id)
        for (id, range) in groups {
            let items = ordered[range]
            // The record is read once: its sender now, its counters patched below.
            guard let stored = try tx.messageBytes(id) else { continue }
            let sender = try stored.withUnsafeBytes { buffer throws(StoreError) in try MessageRecord.decodeSender(buffer) }
            var advanced: [(user: TernID, status: ReceiptStatus)] = []
            let counted: (sender: TernID, aggregate: ReceiptStatus)?
            if var state = MessageRecord.inlineStatus(stored) {
                // The one recipient's receipt is in the record: advanced there, nothing else
                // written.
                for item in items where item.user != sender && state < item.status {
                    state = item.status
                    advanced.append((item.user, item.status))
                }
                guard !advanced.isEmpty else { continue }
                counted = try tx.advanceInlineReceipt(id, stored: consume stored, to: state, at: now)
            } else {
                counted = try Self.recordReceipts(tx, id, stored: consume stored, sender: sender, items: items, now: now, advanced: &advanced)
            }
            guard !advanced.isEmpty, let counted else { continue }
            let at = stamp ?? now.rfc3339
            stamp = at
            var notice = ReceiptNotice(message: id, stored: [], data: [], live: nil)
            let devices = try tx.cachedActiveDevices(of: sender)
            // Usually every device is connected: then the cached list itself is the live list
            // (no copy). Each device is asked once, so none is both live and stored.
            var live: [UInt64] = []
            var allOnline = true
            for (index, device) in devices.enumerated() {
                if registry.isOnline(device: device) {
                    if !allOnline { live.append(device) }
                    continue
                }
                if allOnline {
                    allOnline = false
                    live.append(contentsOf: devices[..<index])
                }
                if notice.data.isEmpty { notice.data = RelayFrames.statusData(id: id, receipts: advanced, aggregate: counted.aggregate, at: at) }
                let entry = MailboxEntry(kind: .receipt, event: ServerEvent.messageStatus, data: notice.data, message: id, sender: sender, enqueuedAt: now)
                notice.stored.append(MailboxDelivery(device: device, seq: try tx.appendToMailbox(device: device, entry)))
            }
            if allOnline { live = devices }
            if !live.isEmpty {
                notice.live = LiveReceipts(message: id, devices: live, receipts: advanced, aggregate: counted.aggregate, at: at)
            }
            notices.append(notice)
        }
        return notices
    }

    /// The receipts of a message with several recipients (or stored before layout 2): one
    /// record per recipient in `receipts`, then the record's counters. Appends to `advanced`
    /// whoever moved on.
    private static func recordReceipts(
        _ tx: WriteTx, _ id: MessageID, stored: consuming [UInt8], sender: TernID, items: ArraySlice<Reached>, now: Timestamp,
        advanced: inout [(user: TernID, status: ReceiptStatus)]
    ) throws -> (sender: TernID, aggregate: ReceiptStatus)? {
        var delivered: UInt32 = 0
        var read: UInt32 = 0
        for item in items where item.user != sender {
            if item.status == .delivered, try tx.insertReceipt(id, user: item.user, ReceiptRecord(status: .delivered, deliveredAt: now)) {
                // The usual first acknowledgement: no receipt yet, stored in one step.
                delivered += 1
                advanced.append((item.user, item.status))
                continue
            }
            var receipt = try tx.receipt(id, user: item.user) ?? ReceiptRecord(status: .sent)
            guard receipt.status < item.status else { continue }
            if receipt.status < .delivered {
                receipt.deliveredAt = now
                delivered += 1
            }
            if item.status == .read {
                receipt.readAt = now
                read += 1
            }
            receipt.status = item.status
            try tx.putReceipt(id, user: item.user, receipt)
            advanced.append((item.user, item.status))
        }
        guard !advanced.isEmpty else { return nil }
        return try tx.countReceipts(id, stored: consume stored, delivered: delivered, read: read)
    }

    /// Runs on the committing thread after the commit: stored receipts go to their sessions now;
    /// live ones are merged per message with the rest of the commit's (`ReceiptCoalescer`).
    private func dispatch(_ notices: consuming [ReceiptNotice]) {
        var notices = notices
        for index in notices.indices {
            // Moved out, not copied: the coalescer keeps it.
            if let live = notices[index].live.take() { receiptCoalescer.add(live) }
            for delivery in notices[index].stored {
                registry.session(device: delivery.device)?.deliverStored(
                    seq: delivery.seq, kind: .receipt, event: ServerEvent.messageStatus, data: notices[index].data,
                    message: notices[index].message)
            }
        }
    }

    /// Removes acknowledged entries from a device's mailbox; message entries become
    /// "delivered" receipts. Called on the session's event loop: the acknowledgements of
    /// every session on that loop during one loop pass are written in one request (a group
    /// message acknowledged by 100 members is a few write requests, not 100).
    func acknowledge(identity: DeviceIdentity, items: [AckItem], upTo: UInt64, on loop: any EventLoop) {
        if ackBatches.add(AckBatch(identity: identity, items: items, upTo: upTo), for: loop) {
            loop.execute { self.writeAcks(self.ackBatches.take(for: loop), on: loop) }
        }
    }

    private func writeAcks(_ batches: [AckBatch], on loop: any EventLoop) {
        guard !batches.isEmpty else { return }
        let now = clock.now()
        let registry = self.registry
        let logger = self.logger
        store.submit(on: loop, { tx -> [ReceiptNotice] in
            var reached: [Reached] = []
            for batch in batches {
                let before = tx.mutationCount
                let count = reached.count
                do {
                    try Self.applyAcks(tx, batch, into: &reached)
                } catch {
                    reached.removeSubrange(count...)
                    // Nothing of this device's acks was written: skip them (they are redelivered
                    // on its next connect); anything else fails the request, which the writer
                    // replays without it.
                    if tx.mutationCount != before || tx.isBroken { throw error }
                    logger.warning("acknowledgement not stored", metadata: ["relay.device": "\(batch.identity.deviceNumber)", "relay.error": "\(error)"])
                }
            }
            return try Self.receiptNotices(tx, reached, now: now, registry: registry)
        }) { result in
            switch result {
            case .success(let notices):
                self.metrics.messagesDelivered.increment(by: batches.reduce(0) { $0 + $1.items.count })
                self.dispatch(notices)
            case .failure(let error):
                self.logger.warning("acknowledgements not stored", metadata: ["relay.devices": "\(batches.count)", "relay.error": "\(error)"])
            }
        }
    }

    /// Removes one device's acknowledged entries; its delivered messages join `reached`.
    private static func applyAcks(_ tx: WriteTx, _ batch: AckBatch, into reached: inout [Reached]) throws {
        let identity = batch.identity
        var delivered: [MessageID] = []
        for item in batch.items where try tx.removeFromMailbox(device: identity.deviceNumber, seq: item.seq) {
            if let message = item.message { delivered.append(message) }
        }
        if batch.upTo > 0 {
            for (_, entry) in try tx.removeFromMailbox(device: identity.deviceNumber, upTo: batch.upTo) where entry.kind == .message {
                delivered.append(entry.message)
            }
        }
        for message in delivered { reached.append(Reached(id: message, user: identity.user, status: .delivered)) }
    }

    /// Marks every message of `chat` up to `upTo` read by `user`. With read receipts off on
    /// either side (WhatsApp's rule), the messages count as delivered and no read receipt is
    /// recorded or sent.
    public func markRead(user: TernID, chat: TernID, upTo: UInt64, completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        let now = clock.now()
        let registry = self.registry
        let batchMax = UInt64(settings.readBatchMax)
        store.submit({ tx -> [ReceiptNotice] in
            guard try tx.chat(chat) != nil else { throw TernError(.chatNotFound, "chat not found") }
            guard var state = try tx.userChat(user: user, chat: chat), try tx.member(chat: chat, user: user) != nil else {
                throw TernError(.notChatMember, "you are not a member of this chat")
            }
            let last = try tx.chatHead(chat)?.lastSeq ?? 0
            let target = min(upTo, last)
            guard target > state.lastReadSeq else { return [] }
            let readerReceipts = try tx.privacy(user)?.readReceipts ?? true
            let from = max(state.lastReadSeq + 1, state.firstSeq, target >= batchMax ? target - batchMax + 1 : 1)
            let messages = try tx.messages(chat: chat, from: from, to: target + 1, newestFirst: false, limit: Int(batchMax))
            state.lastReadSeq = target
            state.updatedAt = now
            try tx.putUserChat(user: user, chat: chat, state)
            var reached: [Reached] = []
            var senderReceipts: [TernID: Bool] = [:]
            for (seq, record) in messages where record.sender != user && !record.isSystem {
                let senderAllows = try senderReceipts[record.sender] ?? {
                    let allows = try tx.privacy(record.sender)?.readReceipts ?? true
                    senderReceipts[record.sender] = allows
                    return allows
                }()
                let status: ReceiptStatus = readerReceipts && senderAllows ? .read : .delivered
                reached.append(Reached(id: MessageID(chat: chat, seq: seq), user: user, status: status))
            }
            return try Self.receiptNotices(tx, reached, now: now, registry: registry)
        }) { result in
            switch result {
            case .success(let notices):
                self.metrics.messagesRead.increment(by: notices.count)
                self.dispatch(notices)
                completion(.success(()))
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }

    /// `markRead` for request handlers.
    public func markRead(user: TernID, chat: TernID, upTo: UInt64) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            markRead(user: user, chat: chat, upTo: upTo) { continuation.resume(with: $0) }
        }
    }

    // MARK: typing

    /// The users who should see `user` typing in `chat` (other members, minus blocks); fails
    /// with 403/404 for non-members.
    func typingAudience(chat: TernID, user: TernID, on eventLoop: any EventLoop) -> EventLoopFuture<[TernID]> {
        store.read(on: eventLoop) { tx in
            let record = try tx.membership(chat: chat, user: user).chat
            let others = try tx.memberIDs(of: chat).filter { $0 != user }
            if record.kind == .direct, let other = others.first, try tx.eitherBlocked(user, other) { return [] }
            return others
        }
    }

    /// Sends a typing indicator to the online devices of `audience`. Never stored.
    func sendTyping(chat: TernID, user: TernID, typing: Bool, to audience: [TernID]) {
        let frame = RelayFrames.typing(chat: chat, user: user, typing: typing)
        for member in audience {
            for session in registry.sessions(user: member) { session.deliverTransient(frame) }
        }
    }

    // MARK: presence

    struct PresenceView: Sendable {
        var user: TernID
        var visible: Bool
        var lastSeen: Timestamp?
    }

    /// What `viewer` may see of each target's presence (last-seen privacy and blocks).
    func presenceViews(of targets: [TernID], viewer: TernID, on eventLoop: any EventLoop) -> EventLoopFuture<[PresenceView]> {
        store.read(on: eventLoop) { tx in
            try targets.compactMap { target -> PresenceView? in
                guard try tx.user(target) != nil else { return nil }
                let visible = try Self.canSeePresence(tx, of: target, viewer: viewer)
                return PresenceView(user: target, visible: visible, lastSeen: visible ? try tx.presence(target)?.lastSeen : nil)
            }
        }
    }

    /// Last-seen privacy (everyone / contacts / nobody) and blocks decide, for online status
    /// and last seen alike.
    public static func canSeePresence(_ tx: ReadTx, of target: TernID, viewer: TernID) throws -> Bool {
        if target == viewer { return true }
        if try tx.eitherBlocked(target, viewer) { return false }
        let setting = try tx.privacy(target)?.lastSeen ?? .everyone
        return try tx.allows(setting, owner: target, viewer: viewer)
    }

    /// Tells presence subscribers that `user` came online or went offline.
    func presenceChanged(user: TernID, online: Bool, lastSeen: Timestamp?) {
        let subscribers = registry.subscribers(of: user)
        guard !subscribers.isEmpty else { return }
        let frame = RelayFrames.presence(user: user, online: online, lastSeen: lastSeen)
        for (session, visible) in subscribers where visible { session.deliverTransient(frame) }
    }

    /// The user's last device disconnected: store last seen, then tell subscribers.
    func userWentOffline(_ user: TernID) {
        let now = clock.now()
        store.submit({ tx in
            // A device may have reconnected meanwhile; last seen is still the time of this
            // disconnect, which is what "last seen" means.
            try tx.putPresence(user, PresenceRecord(lastSeen: now))
        }) { _ in
            if !self.registry.isOnline(user: user) {
                self.presenceChanged(user: user, online: false, lastSeen: now)
            }
        }
    }

    /// Closes every live session of the login session `session` (logout, revocation).
    public func disconnect(session: TernID, user: TernID, reason: String) {
        for device in registry.sessions(user: user) where device.identity.session == session {
            device.eventLoop.execute {
                device.send(OutboundFrame.make("session.revoked") { w in w.member("reason", reason) })
                device.connection.flush()
                device.connection.close(code: CloseCode.unauthorized, reason: "session ended")
            }
        }
    }
}

extension Relay {
    /// Counts a connection closed for not reading.
    public func recordSlowConsumer() { metrics.slowConsumers.increment() }
}

/// One session's acknowledgements of one read burst.
struct AckBatch: Sendable {
    var identity: DeviceIdentity
    var items: [AckItem]
    var upTo: UInt64
}

/// Acknowledgements waiting for their loop's next pass, per event loop.
final class AckBatches: @unchecked Sendable {
    private let lock = Mutex()
    private var pending: [ObjectIdentifier: [AckBatch]] = [:]

    /// Adds `batch`; true when it is the first for `loop` (the caller schedules the write).
    func add(_ batch: AckBatch, for loop: any EventLoop) -> Bool {
        lock.withLock {
            let key = ObjectIdentifier(loop)
            let first = pending[key]?.isEmpty ?? true
            pending[key, default: []].append(batch)
            return first
        }
    }

    func take(for loop: any EventLoop) -> [AckBatch] {
        lock.withLock {
            let key = ObjectIdentifier(loop)
            let batches = pending[key] ?? []
            pending[key] = []
            return batches
        }
    }
}

/// The relay's swift-metrics instruments (names in docs/operations.md).
final class RelayMetrics: Sendable {
    let sessionsOpened = Counter(label: "tern_relay_sessions_opened_total")
    let framesIn: EventCounters
    /// The two most frequent incoming frames, counted without a lookup.
    let deliveredFramesIn: Counter
    let ackFramesIn: Counter
    let sendFramesIn: Counter
    /// Stored frames are nearly all `message.new`: counted without a lookup.
    let messageNewOut: Counter
    let framesOut = EventCounters(label: "tern_relay_frames_out_total", events: [
        ServerEvent.messageNew, ServerEvent.messageSent, ServerEvent.messageStatus, ServerEvent.drained, ServerEvent.typing,
        ServerEvent.presence, ServerEvent.pong, ServerEvent.error, ServerEvent.sessionReplaced, "session.revoked",
        "chat.created", "chat.updated", "group.member.added", "group.member.removed", "group.member.left",
        "group.member.role_changed",
    ])

    init() {
        framesIn = EventCounters(label: "tern_relay_frames_in_total", events: [
            "message.send", "message.delivered", "ack", "message.read", "typing.start", "typing.stop", "presence.subscribe", "ping",
        ])
        deliveredFramesIn = framesIn.counter(for: "message.delivered")
        ackFramesIn = framesIn.counter(for: "ack")
        sendFramesIn = framesIn.counter(for: "message.send")
        messageNewOut = framesOut.counter(for: ServerEvent.messageNew)
    }

    /// A client frame answered with an `error` frame, by error code (rare: made on demand).
    func frameError(_ code: String) {
        Counter(label: "tern_relay_frame_errors_total", dimensions: [("code", code)]).increment()
    }
    let messagesAccepted = Counter(label: "tern_relay_messages_accepted_total")
    let messagesDelivered = Counter(label: "tern_relay_messages_delivered_total")
    let messagesRead = Counter(label: "tern_relay_messages_read_total")
    let slowConsumers = Counter(label: "tern_relay_slow_consumer_disconnects_total")
    let sessions = Gauge(label: "tern_relay_sessions")
}

/// One counter per known event, made once: a labelled counter looked up per frame would
/// cost the metrics registry's lock and a hash. Unknown events count as `other`.
final class EventCounters: Sendable {
    private let known: [(name: [UInt8], counter: Counter)]
    private let byName: [String: Counter]
    private let other: Counter

    init(label: String, events: [String]) {
        known = events.map { (Array($0.utf8), Counter(label: label, dimensions: [("event", $0)])) }
        byName = Dictionary(uniqueKeysWithValues: zip(events, known.map(\.counter)))
        other = Counter(label: label, dimensions: [("event", "other")])
    }

    /// The counter of a known event (made at init), else `other`.
    func counter(for event: String) -> Counter { byName[event] ?? other }

    func count(event: String) {
        (byName[event] ?? other).increment()
    }

    /// Counts an encoded frame by the event name at its start (`{"event":"NAME"`).
    func count(frame: [UInt8]) {
        let start = 10
        frame.withUnsafeBufferPointer { bytes in
            guard bytes.count > start, let end = bytes[start...].firstIndex(of: UInt8(ascii: "\"")) else {
                return other.increment()
            }
            let length = end - start
            for (name, counter) in known where name.count == length {
                var k = 0
                while k < length && name[k] == bytes[start + k] { k += 1 }
                if k == length { return counter.increment() }
            }
            other.increment()
        }
    }
}
