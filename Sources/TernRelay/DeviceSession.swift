// A file past 300 lines: the device session is one state machine (drain → live → drain
// again when the window fills) whose parts share its state; splitting it would spread the
// invariants over files.
import Logging
import NIOCore
import TernCore
import TernStore
import TernWire

/// One connected device: drains its mailbox in order with a bounded window of unacknowledged
/// message frames, then switches to live delivery; turns acknowledgements into store writes;
/// answers typing, presence and ping frames.
///
/// Concurrency contract: all state is confined to `connection.eventLoop`. Other threads call
/// only the `deliver…` methods, which hop onto the loop.
public final class DeviceSession: @unchecked Sendable {
    public let identity: DeviceIdentity
    let connection: any RelayConnection
    let relay: Relay
    var eventLoop: any EventLoop { connection.eventLoop }

    private enum Phase {
        /// Reading the mailbox; live frames wait in `liveBuffer`.
        case draining
        /// Caught up: stored frames arrive live, in commit order.
        case live
        case closed
    }

    private struct Buffered {
        var seq: UInt64
        var kind: MailboxKind
        var event: String
        var data: [UInt8]
        var message: MessageID
    }

    private var phase = Phase.draining
    /// Highest mailbox sequence number sent on this connection.
    private var lastSent: UInt64 = 0
    /// Message frames sent and not yet acknowledged: message → mailbox seq.
    private var inflight: [MessageID: UInt64] = [:]
    /// The same frames in the order sent (seq ascending), for cumulative acks; entries whose
    /// message was acknowledged singly are skipped lazily.
    private var inflightOrder = CircularBuffer<(seq: UInt64, message: MessageID)>()
    /// Entries of `inflightOrder` acknowledged singly while not at its front (still in it):
    /// while there are none, an in-order acknowledgement needs no lookup to drop the front.
    private var ackedBehind = 0
    /// Stored non-message frames (receipts, events) sent and not yet acknowledged, ascending,
    /// with the message they are about (a group event's own system message).
    private var pendingOther: [(seq: UInt64, kind: MailboxKind, message: MessageID)] = []
    private var liveBuffer: [Buffered] = []
    /// Mailbox entries read and not sent yet (the window or the socket was full): each page
    /// is read once however slowly the window opens, and the next one is read while half of
    /// this one is still to send, so the socket does not wait for the read.
    private var unsent = CircularBuffer<(seq: UInt64, entry: MailboxEntry)>()
    /// Whether the mailbox may hold entries after `unsent` (the last read filled its page).
    private var morePages = true
    private var rescan = false
    private var reading = false
    private var drainedAnnounced = false
    private var drainedCount = 0
    /// Acknowledgements gathered during one read burst, written in one store write.
    private var ackItems: [AckItem] = []
    /// The validated sends of this read burst, going to the store as they are, and the
    /// frame references that are not the send's own `client_msg_id` (an explicit `ref`; a
    /// list that stays empty, unallocated, for the usual frame).
    private var burstCommands: [SendCommand] = []
    private var burstOtherRefs: [(index: Int, ref: String?)] = []
    private var ackUpTo: UInt64 = 0
    private var flushScheduled = false
    private var typingTimers: [TernID: Scheduled<Void>] = [:]
    /// The flat scanner's member lists, reused from frame to frame.
    private var frameStorage = FlatFrame.Storage()
    private var typingAudience: [TernID: [TernID]] = [:]

    init(identity: DeviceIdentity, connection: any RelayConnection, relay: Relay) {
        self.identity = identity
        self.connection = connection
        self.relay = relay
    }

    // MARK: lifecycle

    /// Registers the session (closing an older connection of the same device) and starts
    /// draining the mailbox.
    public func start() {
        eventLoop.preconditionInEventLoop()
        relay.metrics.sessionsOpened.increment()
        let (replaced, cameOnline) = relay.registry.register(self)
        relay.metrics.sessions.record(relay.registry.count)
        if let replaced {
            replaced.eventLoop.execute { replaced.replacedByNewer() }
        }
        if cameOnline { relay.presenceChanged(user: identity.user, online: true, lastSeen: nil) }
        pump()
    }

    private func replacedByNewer() {
        guard phase != .closed else { return }
        send(OutboundFrame.make(ServerEvent.sessionReplaced) { w in
            w.member("reason", "another connection of this device took over")
        })
        flushNow()
        connection.close(code: CloseCode.replaced, reason: "replaced by a newer connection")
    }

    /// The connection closed: flush pending acknowledgements, leave the registry, and record
    /// last seen if this was the user's last device.
    public func closed() {
        eventLoop.preconditionInEventLoop()
        guard phase != .closed else { return }
        flushAcks()
        phase = .closed
        for timer in typingTimers.values { timer.cancel() }
        for (chat, audience) in typingAudience { relay.sendTyping(chat: chat, user: identity.user, typing: false, to: audience) }
        typingTimers = [:]
        typingAudience = [:]
        liveBuffer = []
        unsent.removeAll()
        let lastDevice = relay.registry.unregister(self)
        relay.metrics.sessions.record(relay.registry.count)
        if lastDevice { relay.userWentOffline(identity.user) }
    }

    // MARK: output

    func send(_ frame: [UInt8]) {
        guard phase != .closed else { return }
        connection.send(frame)
        relay.metrics.framesOut.count(frame: frame)
        scheduleFlush()
    }

    private func scheduleFlush() {
        if !flushScheduled {
            flushScheduled = true
            eventLoop.execute { self.flushNow() }
        }
    }

    private func flushNow() {
        flushScheduled = false
        connection.flush()
    }

    private func sendStored(seq: UInt64, kind: MailboxKind, event: String, data: [UInt8], message: MessageID) {
        guard phase != .closed else { return }
        connection.sendStored(event: event, seq: seq, data: data)
        if kind == .message { relay.metrics.messageNewOut.increment() } else { relay.metrics.framesOut.count(event: event) }
        scheduleFlush()
        lastSent = seq
        if kind == .message {
            inflight[message] = seq
            inflightOrder.append((seq, message))
        } else {
            pendingOther.append((seq, kind, message))
        }
    }

    // MARK: delivery (called from any thread)

    /// A frame that was just stored in this device's mailbox as entry `seq`.
    func deliverStored(seq: UInt64, kind: MailboxKind, event: String, data: [UInt8], message: MessageID) {
        relay.outbox.post(eventLoop) {
            self.acceptStored(Buffered(seq: seq, kind: kind, event: event, data: data, message: message))
        }
    }

    /// A frame that is not stored (typing, presence, live receipts).
    func deliverTransient(_ frame: [UInt8]) {
        relay.outbox.post(eventLoop) { self.send(frame) }
    }

    /// Several such frames, in order, in one hand-over.
    func deliverTransient(_ frames: [[UInt8]]) {
        relay.outbox.post(eventLoop) {
            for frame in frames { self.send(frame) }
        }
    }

    private func acceptStored(_ item: Buffered) {
        switch phase {
        case .closed:
            return
        case .draining:
            if liveBuffer.count < relay.settings.liveBuffer {
                liveBuffer.append(item)
            } else {
                rescan = true
            }
        case .live:
            if item.seq <= lastSent { return }
            if item.seq == lastSent + 1 && inflight.count < relay.settings.window && !connection.isBackedUp {
                sendStored(seq: item.seq, kind: item.kind, event: item.event, data: item.data, message: item.message)
            } else {
                // A gap, a full window or a full socket: the mailbox is the source of truth; read
                // from it when there is room.
                drainAgain()
            }
        }
    }

    /// The socket drained below its low-water mark: continue with the mailbox.
    public func connectionWritable() {
        eventLoop.preconditionInEventLoop()
        if phase == .draining { pump() }
    }

    // MARK: draining

    /// Sends what the window and the socket have room for, reading the mailbox ahead.
    private func pump() {
        guard phase == .draining else { return }
        sendUnsent()
    }

    /// Reads the page after `after` on a read thread and appends it to `unsent`.
    private func readPage(after: UInt64) {
        reading = true
        let device = identity.deviceNumber
        let page = relay.settings.drainPage
        relay.store.read(on: eventLoop) { tx in
            var entries = try tx.mailbox(device: device, after: after, limit: page)
            try tx.withHistoryReader { history in
                for index in entries.indices where entries[index].entry.kind == .message && entries[index].entry.data.isEmpty {
                    entries[index].entry.data = try RelayFrames.storedData(entries[index].entry, in: tx, history: &history)
                }
            }
            return entries
        }
            .whenComplete { result in
                self.reading = false
                switch result {
                case .failure(let error):
                    self.relay.logger.error("mailbox read failed", metadata: ["relay.device": "\(device)", "relay.error": "\(error)"])
                    self.connection.close(code: 1011, reason: "mailbox unavailable")
                case .success(let entries):
                    guard self.phase == .draining else { return }
                    self.unsent.append(contentsOf: entries)
                    self.morePages = entries.count == page
                    self.sendUnsent()
                }
            }
    }

    /// Sends read entries while the window and the socket have room, reads the next page
    /// when half of the read ones are sent, and goes live at the end of the mailbox.
    private func sendUnsent() {
        guard phase == .draining else { return }
        while let first = unsent.first {
            if first.seq > lastSent {
                // A full window or socket: acknowledgements or writability call pump() again.
                if (first.entry.kind == .message && inflight.count >= relay.settings.window) || connection.isBackedUp { break }
                sendStored(seq: first.seq, kind: first.entry.kind, event: first.entry.event, data: first.entry.data, message: first.entry.message)
                if !drainedAnnounced { drainedCount += 1 }
            }
            unsent.removeFirst()
        }
        if reading { return }
        if morePages {
            // Not while the socket is full: a client that stopped reading holds no more than
            // what is already read (`connectionWritable` resumes).
            if unsent.count <= relay.settings.drainPage / 2 && !connection.isBackedUp {
                readPage(after: unsent.last?.seq ?? lastSent)
            }
            return
        }
        guard unsent.isEmpty else { return }
        // Caught up with the mailbox as of the read: go live, then replay what arrived live
        // meanwhile (in order; anything not contiguous sends us back to the mailbox).
        phase = .live
        let buffered = liveBuffer.sorted { $0.seq < $1.seq }
        liveBuffer = []
        if !drainedAnnounced {
            drainedAnnounced = true
            send(RelayFrames.drained(count: drainedCount, lastSeq: lastSent))
        }
        if rescan {
            rescan = false
            drainAgain()
            return
        }
        for item in buffered where phase == .live { acceptStored(item) }
    }

    /// Back from live to the mailbox (a gap, a full window or socket, a full live buffer).
    private func drainAgain() {
        phase = .draining
        morePages = true
        pump()
    }

    // MARK: input

    /// One text frame from the client.
    public func receive(_ bytes: [UInt8]) {
        eventLoop.preconditionInEventLoop()
        guard phase != .closed else { return }
        if let flat = FlatFrame.scan(bytes, storage: &frameStorage) {
            let handled = receiveFlat(flat)
            flat.release(into: &frameStorage)
            if handled { return }
        }
        let frame: InboundFrame
        do {
            frame = try InboundFrame.parse(bytes)
        } catch {
            relay.metrics.framesIn.count(event: "")
            relay.metrics.frameError(error.code)
            send(OutboundFrame.error(code: error.code, message: error.message, ref: nil))
            return
        }
        relay.metrics.framesIn.count(event: frame.event)
        do {
            try dispatch(frame)
        } catch let error as TernError {
            relay.metrics.frameError(error.code.rawValue)
            send(RelayFrames.error(error, ref: frame.reference))
        } catch {
            send(RelayFrames.error(TernError(.internalError, "internal error"), ref: frame.reference))
        }
    }

    /// `message.delivered`, `ack` and `message.send` in their plain form, without the general
    /// parser. False when the frame is anything else (or an acknowledgement with an error to
    /// report): the general path then handles it exactly as before.
    private func receiveFlat(_ frame: FlatFrame) -> Bool {
        if frame.isEvent("message.send") {
            relay.metrics.sendFramesIn.increment()
            let fields = frame.fields
            let reference = fields["client_msg_id"]?.stringValue
            do {
                queueSend(try SendCommand.parse(fields), ref: reference)
            } catch {
                relay.metrics.frameError(error.code.rawValue)
                send(RelayFrames.error(error, ref: reference))
            }
            return true
        }
        return receiveAcknowledgement(frame)
    }

    /// A validated send, stored with the other sends of this read burst in one write
    /// (`flushAcks`).
    private func queueSend(_ command: SendCommand, ref: String?) {
        if ref != command.clientMsgID { burstOtherRefs.append((burstCommands.count, ref)) }
        burstCommands.append(command)
        if burstCommands.count >= 256 { flushAcks() }  // keep one write request bounded
    }

    private func receiveAcknowledgement(_ frame: FlatFrame) -> Bool {
        if frame.isEvent("message.delivered") {
            guard case .string(let raw)? = frame.member("message_id"), let id = MessageID(utf8: frame.slice(raw)) else { return false }
            relay.metrics.deliveredFramesIn.increment()
            acknowledge(message: id)
            return true
        }
        if frame.isEvent("ack") {
            guard case .integer(let seq)? = frame.member("seq") else { return false }
            relay.metrics.ackFramesIn.increment()
            acknowledge(upTo: seq)
            return true
        }
        return false
    }

    private func dispatch(_ frame: InboundFrame) throws {
        switch frame.event {
        case "message.send":
            queueSend(try SendCommand.parse(frame.data), ref: frame.reference)
        case "message.delivered":
            guard let raw = frame.data["message_id"]?.stringValue else { throw TernError.validation("message_id is required") }
            guard let id = MessageID(raw) else { throw TernError.validation("message_id is not a message id") }
            acknowledge(message: id)
        case "ack":
            guard let seq = frame.data["seq"]?.intValue, seq >= 0 else { throw TernError.validation("seq must be a non-negative integer") }
            acknowledge(upTo: UInt64(seq))
        case "message.read":
            guard let raw = frame.data["message_id"]?.stringValue else { throw TernError.validation("message_id is required") }
            guard let id = MessageID(raw) else { throw TernError.validation("message_id is not a message id") }
            if let chat = frame.data["chat_id"]?.stringValue, chat != id.chat.description {
                throw TernError.validation("message_id does not belong to chat_id")
            }
            let ref = frame.reference
            relay.markRead(user: identity.user, chat: id.chat, upTo: id.seq) { result in
                if case .failure(let error) = result {
                    self.eventLoop.execute { self.send(RelayFrames.error(Relay.clientError(error), ref: ref)) }
                }
            }
        case "typing.start", "typing.stop":
            guard let raw = frame.data["chat_id"]?.stringValue else { throw TernError.validation("chat_id is required") }
            guard let chat = TernID(raw) else { throw TernError.validation("chat_id must be a UUID") }
            typing(chat: chat, on: frame.event == "typing.start", ref: frame.reference)
        case "presence.subscribe":
            var ids: [TernID] = []
            if let list = frame.data["user_ids"]?.arrayValue {
                for item in list {
                    guard let s = item.stringValue, let id = TernID(s) else { throw TernError.validation("user_ids must be UUIDs") }
                    ids.append(id)
                }
            } else if let single = frame.data["user_id"]?.stringValue {
                guard let id = TernID(single) else { throw TernError.validation("user_id must be a UUID") }
                ids = [id]
            } else {
                throw TernError.validation("user_ids is required")
            }
            guard ids.count <= relay.settings.presenceSubscribeMax else {
                throw TernError.validation("user_ids may list at most \(relay.settings.presenceSubscribeMax) users")
            }
            subscribePresence(ids)
        case "ping":
            send(RelayFrames.pong(at: relay.clock.now()))
        default:
            relay.metrics.frameError("UNKNOWN_EVENT")
            send(OutboundFrame.error(code: "UNKNOWN_EVENT", message: "unknown event \"\(frame.event.prefix(64))\"", ref: frame.reference))
        }
    }

    // MARK: acknowledgements

    private func acknowledge(message id: MessageID) {
        guard let seq = inflight.removeValue(forKey: id) else {
            // `message.delivered` naming a group event (its system message id): the app acks
            // every frame that carries a message_id this way.
            if let index = pendingOther.firstIndex(where: { $0.kind == .event && $0.message == id }) {
                ackItems.append(AckItem(seq: pendingOther.remove(at: index).seq, message: nil))
                afterAck()
            }
            return
        }
        // Drop entries acknowledged singly from the front; rebuild if out-of-order acks
        // left too many behind an old unacknowledged frame.
        if inflightOrder.first?.seq == seq {
            inflightOrder.removeFirst()
            while ackedBehind > 0, let first = inflightOrder.first, inflight[first.message] != first.seq {
                inflightOrder.removeFirst()
                ackedBehind -= 1
            }
        } else {
            ackedBehind += 1
        }
        if inflightOrder.count > 4 * max(relay.settings.window, 64) {
            inflightOrder = CircularBuffer(inflightOrder.filter { inflight[$0.message] == $0.seq })
            ackedBehind = 0
        }
        ackItems.append(AckItem(seq: seq, message: id))
        // Stored receipts/events sent before this message were necessarily received first on
        // this ordered connection: they are acknowledged with it.
        while let first = pendingOther.first, first.seq < seq {
            ackItems.append(AckItem(seq: first.seq, message: nil))
            pendingOther.removeFirst()
        }
        afterAck()
    }

    private func acknowledge(upTo seq: UInt64) {
        let upTo = min(seq, lastSent)
        guard upTo > ackUpTo else { return }
        ackUpTo = upTo
        while let first = inflightOrder.first, first.seq <= upTo {
            inflightOrder.removeFirst()
            if inflight[first.message] == first.seq {
                inflight.removeValue(forKey: first.message)
            } else if ackedBehind > 0 {
                ackedBehind -= 1
            }
        }
        while ackedBehind > 0, let first = inflightOrder.first, inflight[first.message] != first.seq {
            inflightOrder.removeFirst()
            ackedBehind -= 1
        }
        pendingOther.removeAll { $0.seq <= upTo }
        afterAck()
    }

    private func afterAck() {
        if phase == .draining { pump() }
    }

    /// Writes what one read burst gathered: its sends in one store write, its
    /// acknowledgements in another. Called at the end of each read burst and at close.
    public func flushAcks() {
        if !burstCommands.isEmpty {
            let commands = burstCommands
            let otherRefs = burstOtherRefs
            burstCommands = []
            burstOtherRefs = []
            relay.send(burst: commands, from: identity, on: eventLoop) { results in
                self.relay.outbox.post(self.eventLoop) {
                    for index in results.indices {
                        switch results[index] {
                        case .success(let sent):
                            self.send(RelayFrames.sent(
                                id: sent.id, clientMsgID: commands[index].clientMsgID, createdAt: sent.createdAt, duplicate: sent.duplicate))
                        case .failure(let error):
                            let ref = otherRefs.first { $0.index == index }.map(\.ref) ?? commands[index].clientMsgID
                            self.send(RelayFrames.error(Relay.clientError(error), ref: ref))
                        }
                    }
                }
            }
        }
        guard !ackItems.isEmpty || ackUpTo > 0 else { return }
        let items = ackItems
        let upTo = ackUpTo
        ackItems = []
        ackUpTo = 0
        relay.acknowledge(identity: identity, items: items, upTo: upTo, on: eventLoop)
    }

    // MARK: typing

    private func typing(chat: TernID, on: Bool, ref: String?) {
        let user = identity.user
        if !on {
            typingTimers.removeValue(forKey: chat)?.cancel()
            if let audience = typingAudience.removeValue(forKey: chat) {
                relay.sendTyping(chat: chat, user: user, typing: false, to: audience)
            }
            return
        }
        relay.typingAudience(chat: chat, user: user, on: eventLoop).whenComplete { result in
            guard self.phase != .closed else { return }
            switch result {
            case .failure(let error):
                self.send(RelayFrames.error(Relay.clientError(error), ref: ref))
            case .success(let audience):
                self.typingAudience[chat] = audience
                self.relay.sendTyping(chat: chat, user: user, typing: true, to: audience)
                self.typingTimers.removeValue(forKey: chat)?.cancel()
                self.typingTimers[chat] = self.eventLoop.scheduleTask(in: .milliseconds(self.relay.settings.typingTTL.wholeMilliseconds)) {
                    self.typingTimers[chat] = nil
                    if let audience = self.typingAudience.removeValue(forKey: chat) {
                        self.relay.sendTyping(chat: chat, user: user, typing: false, to: audience)
                    }
                }
            }
        }
    }

    // MARK: presence

    private func subscribePresence(_ targets: [TernID]) {
        relay.presenceViews(of: targets, viewer: identity.user, on: eventLoop).whenComplete { result in
            guard self.phase != .closed else { return }
            switch result {
            case .failure(let error):
                self.send(RelayFrames.error(Relay.clientError(error), ref: nil))
            case .success(let views):
                for view in views {
                    self.relay.registry.subscribe(self, to: view.user, visible: view.visible)
                    let online = view.visible && self.relay.registry.isOnline(user: view.user)
                    self.send(RelayFrames.presence(user: view.user, online: online, lastSeen: view.visible ? view.lastSeen : nil))
                }
            }
        }
    }
}

/// One acknowledged mailbox entry: its seq, and the message if it was a message frame.
struct AckItem: Sendable {
    var seq: UInt64
    var message: MessageID?
}
