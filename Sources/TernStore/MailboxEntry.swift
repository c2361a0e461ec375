import TernCore

/// What a mailbox entry carries.
public enum MailboxKind: UInt8, Sendable {
    /// A chat message (`message.new`); removed only by its own acknowledgement.
    case message = 1
    /// A delivery/read receipt (`message.status`).
    case receipt = 2
    /// Any other durable event (group changes, …).
    case event = 3
}

/// One frame waiting in a device's mailbox. Table `mailbox`, key = device number (u64) ‖
/// seq (u64), so a device's entries are contiguous and in delivery order.
///
/// Layout v2: `kind (u8) | event (str) | data (data: the frame's JSON data object) |
///  chat (16) | message seq (u64) | sender (16) | enqueued at (i64 ms)` — chat, seq and sender
///  name the message the frame is about (for acknowledgements and receipts); the enqueue time
///  is for operators (oldest pending age). v1 entries (no enqueue time) read as enqueued at 0.
///
/// A `message` entry with empty data is a reference: the frame's data is the message as the
/// chat history holds it (`RelayFrames.storedData`), so a message is stored once however many
/// devices wait for it. (Entries written before carry their data inline and still drain.)
public struct MailboxEntry: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 2

    public var kind: MailboxKind
    public var event: String
    public var data: [UInt8]
    public var message: MessageID
    public var sender: TernID
    /// When the entry was committed to the mailbox (0 for entries written by layout v1).
    public var enqueuedAt: Timestamp

    public init(kind: MailboxKind, event: String, data: [UInt8], message: MessageID, sender: TernID, enqueuedAt: Timestamp) {
        self.kind = kind
        self.event = event
        self.data = data
        self.message = message
        self.sender = sender
        self.enqueuedAt = enqueuedAt
    }

    public var encodedCapacity: Int { 1 + 1 + 4 + event.utf8.count + 4 + data.count + 24 + 16 + 8 }

    public func encode(into w: inout ByteWriter) {
        w.u8(kind.rawValue)
        w.string(event)
        w.data(data)
        w.id(message.chat)
        w.u64(message.seq)
        w.id(sender)
        w.timestamp(enqueuedAt)
    }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        guard let kind = MailboxKind(rawValue: try r.u8()) else { throw StoreError.corrupt("mailbox: unknown kind") }
        self.kind = kind
        event = try r.string()
        data = try r.data()
        message = MessageID(chat: try r.id(), seq: try r.u64())
        sender = try r.id()
        enqueuedAt = version >= 2 ? try r.timestamp() : Timestamp(milliseconds: 0)
    }
}

extension ReadTx {
    /// The last sequence number handed out in `device`'s mailbox (0 = none yet).
    public func mailboxHead(device: UInt64) throws -> UInt64 {
        try raw.withValue(tables.mailboxHeads, Keys.u64Inline(device)) { buffer throws(StoreError) -> UInt64 in
            var r = ByteReader(buffer, what: "mailbox_heads")
            return try r.u64()
        } ?? 0
    }

    /// Up to `limit` entries of `device`'s mailbox with seq > `after`, in order.
    public func mailbox(device: UInt64, after: UInt64, limit: Int) throws -> [(seq: UInt64, entry: MailboxEntry)] {
        var out: [(UInt64, MailboxEntry)] = []
        guard after < UInt64.max else { return out }
        try scan(tables.mailbox, from: Keys.u64Pair(device, after + 1), to: Keys.u64Pair(device + 1, 0)) { key, value in
            var r = ByteReader(UnsafeRawBufferPointer(rebasing: key[8...]), what: "mailbox key")
            out.append((try r.u64(), try MailboxEntry.decode(value)))
            return out.count < limit
        }
        return out
    }

    /// Number of entries pending for `device`.
    public func mailboxCount(device: UInt64) throws -> Int {
        var n = 0
        try scan(tables.mailbox, prefix: Keys.u64(device)) { _, _ in
            n += 1
            return true
        }
        return n
    }
}

extension WriteTx {
    /// Appends `entry` to `device`'s mailbox; returns its sequence number.
    public func appendToMailbox(device: UInt64, _ entry: MailboxEntry) throws -> UInt64 {
        try appendToMailbox(device: device, encoded: entry.encoded())
    }

    /// Appends an entry encoded once (`MailboxEntry.encoded()`) for many devices: a group
    /// message is serialized once, not once per member device.
    public func appendToMailbox(device: UInt64, encoded: [UInt8]) throws -> UInt64 {
        let seq = try (cache.mailboxHeads[device] ?? mailboxHead(device: device)) + 1
        try putBytes(encoded, in: tables.mailbox, at: Keys.u64PairInline(device, seq))
        try putCached(Keys.u64Inline(seq), in: tables.mailboxHeads, at: Keys.u64Inline(device))
        cache.setMailboxHead(seq, device: device)
        return seq
    }

    /// Removes entry `seq` of `device`; false if it was not there.
    @discardableResult
    public func removeFromMailbox(device: UInt64, seq: UInt64) throws -> Bool {
        try delete(tables.mailbox, Keys.u64PairInline(device, seq))
    }

    /// Removes every entry of `device` with seq <= `upTo`; returns the removed entries'
    /// (seq, kind, message) so that receipts can follow.
    public func removeFromMailbox(device: UInt64, upTo: UInt64) throws -> [(seq: UInt64, entry: MailboxEntry)] {
        var doomed: [(UInt64, MailboxEntry)] = []
        try scan(tables.mailbox, from: Keys.u64Pair(device, 0), to: Keys.u64Pair(device, upTo &+ 1 == 0 ? UInt64.max : upTo + 1)) { key, value in
            var r = ByteReader(UnsafeRawBufferPointer(rebasing: key[8...]), what: "mailbox key")
            doomed.append((try r.u64(), try MailboxEntry.decode(value)))
            return true
        }
        for (seq, _) in doomed { try removeFromMailbox(device: device, seq: seq) }
        return doomed
    }
}

/// How full the mailboxes are: totals and the histogram of per-device depths. Taken by the
/// server for its metrics and by `tern stats`.
public struct MailboxCensus: Sendable {
    /// Upper bounds (inclusive) of the depth buckets, and their labels.
    public static let buckets: [(label: String, upTo: Int)] = [
        ("1", 1), ("2-10", 10), ("11-100", 100), ("101-1000", 1000), ("1001-10000", 10_000), (">10000", .max),
    ]

    public var entries = 0
    public var bytes = 0
    /// Devices with at least one pending entry.
    public var devices = 0
    public var maxDepth = 0
    /// Devices per bucket of `buckets`.
    public var histogram = [Int](repeating: 0, count: MailboxCensus.buckets.count)
    /// Enqueue time of the oldest pending entry (entries of layout v1 have none).
    public var oldest: Timestamp?

    public init() {}

    mutating func add(device depth: Int, oldest first: Timestamp?) {
        devices += 1
        maxDepth = max(maxDepth, depth)
        histogram[Self.buckets.firstIndex { depth <= $0.upTo }!] += 1
        if let first, first.milliseconds > 0, oldest.map({ first < $0 }) ?? true { oldest = first }
    }
}

extension Store {
    /// Counts every mailbox in pages of `pageSize` entries, one short read transaction per
    /// page, so that a large store never pins old pages for long. `shouldStop` is asked
    /// between pages.
    public func mailboxCensus(pageSize: Int = 10_000, shouldStop: @escaping @Sendable () -> Bool = { false }) async throws -> MailboxCensus {
        struct Page: Sendable {
            var census: MailboxCensus
            var current: (device: UInt64, depth: Int, oldest: Timestamp?)?
            var resume: [UInt8]?
        }
        var page = Page(census: MailboxCensus(), current: nil, resume: nil)
        repeat {
            if shouldStop() { throw CancellationError() }
            let start = page
            page = try await read { tx in
                var p = start
                p.resume = nil
                var seen = 0
                try tx.scan(tx.tables.mailbox, from: start.resume, to: nil) { key, value in
                    var r = ByteReader(key, what: "mailbox key")
                    let device = try r.u64()
                    if p.current?.device != device {
                        if let done = p.current { p.census.add(device: done.depth, oldest: done.oldest) }
                        p.current = (device, 0, (try? MailboxEntry.decode(value))?.enqueuedAt)
                    }
                    p.current!.depth += 1
                    p.census.entries += 1
                    p.census.bytes += value.count
                    seen += 1
                    if seen == pageSize {
                        p.resume = Array(key) + [0]
                        return false
                    }
                    return true
                }
                return p
            }
        } while page.resume != nil
        if let done = page.current { page.census.add(device: done.depth, oldest: done.oldest) }
        return page.census
    }
}
