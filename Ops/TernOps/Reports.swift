import Foundation
import TernCore
import TernRelay
import TernLMDB
import TernStore

// The read-only reports behind `tern mailbox|users|devices|chats|stats`. Every one reads in
// pages through `Inspector.scan` or in single short transactions.

// MARK: mailboxes

/// One device's mailbox, summarised.
public struct MailboxRow: Codable, Sendable {
    public var device: UInt64
    public var userID: String
    public var clientDeviceID: String
    public var platform: String
    public var active: Bool
    public var pending: Int
    /// Stored bytes of the pending entries (values, not keys).
    public var bytes: Int
    public var oldestSeq: UInt64?
    public var newestSeq: UInt64?
    public var oldestEnqueuedAt: String?
    public var oldestAgeSeconds: Int64?
}

/// The order of `tern mailbox list`.
public enum MailboxSort: String, CaseIterable, Sendable {
    /// Device number, ascending: pages with `--after` and stops reading after one page.
    case device
    /// Most pending entries first (reads every mailbox).
    case pending
    /// Most bytes first (reads every mailbox).
    case bytes
    /// Oldest pending entry first (reads every mailbox).
    case age
}

public struct MailboxQuery: Sendable {
    public var user: TernID?
    /// Devices with fewer pending entries are left out; 0 lists every device.
    public var minPending = 1
    /// Only devices whose oldest pending entry is older than this.
    public var olderThan: Duration?
    public var sort = MailboxSort.device
    public var limit = 50
    /// Device order only: start after this device number.
    public var after: UInt64?

    public init() {}
}

public struct MailboxPage: Codable, Sendable {
    public var rows: [MailboxRow]
    /// Pass as `--after` for the next page (device order only); nil on the last page.
    public var nextAfter: UInt64?
}

/// A device's mailbox while it is being read.
private struct Tally {
    var device: UInt64
    var pending = 0
    var bytes = 0
    var oldestSeq: UInt64?
    var newestSeq: UInt64?
    var oldest: Timestamp?

    mutating func add(seq: UInt64, value: UnsafeRawBufferPointer) {
        if pending == 0 {
            oldestSeq = seq
            oldest = (try? MailboxEntry.decode(value))?.enqueuedAt
        }
        pending += 1
        bytes += value.count
        newestSeq = seq
    }
}

extension Inspector {
    /// `tern mailbox list`.
    public func mailboxes(_ query: MailboxQuery, now: Timestamp) throws -> MailboxPage {
        var rows: [MailboxRow] = []
        let paged = query.sort == .device
        // Device order reads one row past the page to know whether there is a next one.
        let want = paged ? query.limit + 1 : Int.max

        func order(_ rows: inout [MailboxRow]) {
            switch query.sort {
            case .device:
                break
            case .pending:
                rows.sort { ($0.pending, $1.device) > ($1.pending, $0.device) }
            case .bytes:
                rows.sort { ($0.bytes, $1.device) > ($1.bytes, $0.device) }
            case .age:
                // RFC 3339 times in UTC sort as text; entries without an enqueue time go last.
                rows.sort { ($0.oldestEnqueuedAt ?? "~", $0.device) < ($1.oldestEnqueuedAt ?? "~", $1.device) }
            }
        }

        func keep(_ tally: Tally, _ tx: ReadTx) throws -> Bool {
            guard tally.pending >= query.minPending else { return true }
            if let olderThan = query.olderThan {
                guard let oldest = tally.oldest, oldest.milliseconds > 0, now - oldest > olderThan else { return true }
            }
            let device = try tx.device(number: tally.device)
            if let user = query.user, device?.userID != user { return true }
            rows.append(Self.row(tally, device, now: now))
            // Sorted listings keep only the best `limit` rows: memory stays bounded however
            // many devices there are.
            if !paged && rows.count >= 2 * query.limit + 1024 {
                order(&rows)
                rows.removeLast(rows.count - query.limit)
            }
            return rows.count < want
        }

        if let user = query.user {
            let numbers = try read { tx in try tx.devices(of: user).map(\.number) }
            for number in numbers.sorted() where number > (query.after ?? 0) {
                let more = try read { tx in try keep(try Self.tally(tx, device: number), tx) }
                if !more { break }
            }
        } else if query.minPending <= 0 {
            // Every device, empty mailboxes included: walk the devices table.
            let start = query.after.map { Keys.u64($0 + 1) }
            try scan({ $0.devices }, from: start) { tx, key, _ in
                try keep(try Self.tally(tx, device: key.u64(at: 0)), tx)
            }
        } else {
            // Only devices with pending entries: walk the mailbox table once.
            var current: Tally?
            var more = true
            let start = query.after.map { Keys.u64Pair($0 + 1, 0) }
            try scan({ $0.mailbox }, from: start) { tx, key, value in
                let device = key.u64(at: 0)
                if current?.device != device {
                    if let done = current { more = try keep(done, tx) }
                    if !more { return false }
                    current = Tally(device: device)
                }
                current!.add(seq: key.u64(at: 8), value: value)
                return true
            }
            if more, let done = current {
                _ = try read { tx in try keep(done, tx) }
            }
        }

        if paged {
            if rows.count > query.limit {
                rows.removeLast(rows.count - query.limit)
                return MailboxPage(rows: rows, nextAfter: rows.last?.device)
            }
            return MailboxPage(rows: rows, nextAfter: nil)
        }
        order(&rows)
        return MailboxPage(rows: Array(rows.prefix(query.limit)), nextAfter: nil)
    }

    private static func tally(_ tx: ReadTx, device: UInt64) throws -> Tally {
        var tally = Tally(device: device)
        try tx.scan(tx.tables.mailbox, prefix: Keys.u64(device)) { key, value in
            tally.add(seq: key.u64(at: 8), value: value)
            return true
        }
        return tally
    }

    private static func row(_ tally: Tally, _ device: DeviceRecord?, now: Timestamp) -> MailboxRow {
        let known = tally.oldest.flatMap { $0.milliseconds > 0 ? $0 : nil }
        return MailboxRow(
            device: tally.device, userID: device?.userID.description ?? "(no device record)",
            clientDeviceID: device?.clientID ?? "", platform: device?.platform ?? "", active: device?.active ?? false,
            pending: tally.pending, bytes: tally.bytes, oldestSeq: tally.oldestSeq, newestSeq: tally.newestSeq,
            oldestEnqueuedAt: known?.rfc3339, oldestAgeSeconds: known.map { (now - $0).wholeSeconds })
    }
}

/// One pending frame of a device's mailbox.
public struct MailboxFrameRow: Codable, Sendable {
    public var seq: UInt64
    public var kind: String
    public var event: String
    public var chatID: String
    public var messageID: String
    public var senderID: String
    public var enqueuedAt: String?
    public var bytes: Int
    /// The frame's `data` object, only with `--bodies`.
    public var data: String?
}

public struct MailboxFramesPage: Codable, Sendable {
    public var device: UInt64
    public var pending: Int
    public var rows: [MailboxFrameRow]
    public var nextAfter: UInt64?
}

extension Inspector {
    /// `tern mailbox show DEVICE`: pending frames in delivery order.
    public func mailboxFrames(device: UInt64, after: UInt64?, limit: Int, bodies: Bool) throws -> MailboxFramesPage {
        let known = try read { tx in try tx.device(number: device) != nil || tx.mailboxCount(device: device) > 0 }
        guard known else { throw OpsError("no device \(device) (see `tern devices list`)") }
        var rows: [MailboxFrameRow] = []
        var pending = 0
        try scan({ $0.mailbox }, prefix: Keys.u64(device)) { _, _, _ in
            pending += 1
            return true
        }
        var hasMore = false
        let start = Keys.u64Pair(device, (after ?? 0) + 1)
        try scan({ $0.mailbox }, from: start, to: prefixUpperBound(Keys.u64(device))) { tx, key, value in
            if rows.count == limit {
                hasMore = true
                return false
            }
            let seq = key.u64(at: 8)
            do {
                let entry = try MailboxEntry.decode(value)
                rows.append(MailboxFrameRow(
                    seq: seq, kind: Self.kindName(entry.kind), event: entry.event, chatID: entry.message.chat.description,
                    messageID: entry.message.description, senderID: entry.sender.description,
                    enqueuedAt: entry.enqueuedAt.milliseconds > 0 ? entry.enqueuedAt.rfc3339 : nil, bytes: value.count,
                    data: bodies ? String(decoding: try RelayFrames.storedData(entry, in: tx), as: UTF8.self) : nil))
            } catch {
                rows.append(MailboxFrameRow(
                    seq: seq, kind: "corrupt", event: "\(error)", chatID: "", messageID: "", senderID: "", enqueuedAt: nil,
                    bytes: value.count, data: nil))
            }
            return true
        }
        return MailboxFramesPage(device: device, pending: pending, rows: rows, nextAfter: hasMore ? rows.last?.seq : nil)
    }

    static func kindName(_ kind: MailboxKind) -> String {
        switch kind {
        case .message: "message"
        case .receipt: "receipt"
        case .event: "event"
        }
    }
}

// MARK: users and devices

public struct UserRow: Codable, Sendable {
    public var id: String
    public var phone: String
    public var displayName: String
    public var createdAt: String
    public var disabled: Bool
    public var devices: Int
}

public struct UsersPage: Codable, Sendable {
    public var rows: [UserRow]
    public var nextAfter: String?
}

public struct DeviceRow: Codable, Sendable {
    public var device: UInt64
    public var userID: String
    public var clientDeviceID: String
    public var name: String
    public var platform: String
    public var active: Bool
    public var createdAt: String
    public var lastLoginAt: String
    public var pending: Int
}

public struct DevicesPage: Codable, Sendable {
    public var rows: [DeviceRow]
    public var nextAfter: UInt64?
}

public struct UserDetail: Codable, Sendable {
    public var user: UserRow
    public var statusText: String
    public var updatedAt: String
    public var chats: Int
    public var liveSessions: Int
    public var devices: [DeviceRow]
}

extension Inspector {
    /// `tern users list`: in id order, paged.
    public func users(after: TernID?, limit: Int) throws -> UsersPage {
        var rows: [UserRow] = []
        var hasMore = false
        try scan({ $0.users }, from: after.map { $0.bytes + [0] }) { tx, _, value in
            if rows.count == limit {
                hasMore = true
                return false
            }
            let user = try UserRecord.decode(value)
            rows.append(try Self.userRow(tx, user))
            return true
        }
        return UsersPage(rows: rows, nextAfter: hasMore ? rows.last?.id : nil)
    }

    /// `tern users show ID|PHONE`.
    public func user(_ reference: String, now: Timestamp) throws -> UserDetail {
        try read { tx in
            var id = TernID(reference)
            if id == nil { id = try tx.userID(phone: reference) }
            guard let id, let user = try tx.user(id) else { throw OpsError("no user \(reference) (a user id or an E.164 phone)") }
            let devices = try tx.devices(of: id)
            let live = try devices.filter { device in try tx.session(device.sessionID)?.isLive(at: now) ?? false }.count
            return UserDetail(
                user: try Self.userRow(tx, user), statusText: user.statusText, updatedAt: user.updatedAt.rfc3339,
                chats: try tx.userChats(of: id).count, liveSessions: live,
                devices: try devices.map { try Self.deviceRow(tx, $0) })
        }
    }

    /// `tern devices list`: every device in number order (paged), or one user's.
    public func devices(user: TernID?, after: UInt64?, limit: Int) throws -> DevicesPage {
        if let user {
            let rows = try read { tx in
                guard try tx.user(user) != nil else { throw OpsError("no user \(user)") }
                return try tx.devices(of: user).map { try Self.deviceRow(tx, $0) }
            }
            return DevicesPage(rows: rows, nextAfter: nil)
        }
        var rows: [DeviceRow] = []
        var hasMore = false
        try scan({ $0.devices }, from: after.map { Keys.u64($0 + 1) }) { tx, _, value in
            if rows.count == limit {
                hasMore = true
                return false
            }
            rows.append(try Self.deviceRow(tx, try DeviceRecord.decode(value)))
            return true
        }
        return DevicesPage(rows: rows, nextAfter: hasMore ? rows.last?.device : nil)
    }

    private static func userRow(_ tx: ReadTx, _ user: UserRecord) throws -> UserRow {
        var devices = 0
        try tx.scan(tx.tables.userDevices, prefix: user.id.bytes) { _, _ in
            devices += 1
            return true
        }
        return UserRow(
            id: user.id.description, phone: user.phone, displayName: user.displayName, createdAt: user.createdAt.rfc3339,
            disabled: user.disabled, devices: devices)
    }

    private static func deviceRow(_ tx: ReadTx, _ device: DeviceRecord) throws -> DeviceRow {
        DeviceRow(
            device: device.number, userID: device.userID.description, clientDeviceID: device.clientID, name: device.name,
            platform: device.platform, active: device.active, createdAt: device.createdAt.rfc3339,
            lastLoginAt: device.lastLoginAt.rfc3339, pending: try tx.mailboxCount(device: device.number))
    }
}

// MARK: chats

public struct ChatMemberRow: Codable, Sendable {
    public var userID: String
    public var phone: String
    public var displayName: String
    public var role: String
    public var joinedAt: String
    public var firstSeq: UInt64?
}

public struct ChatDetail: Codable, Sendable {
    public var id: String
    public var kind: String
    public var name: String
    public var description: String
    public var adminOnly: Bool
    public var createdAt: String
    public var createdBy: String
    public var memberCount: Int
    public var lastSeq: UInt64
    public var lastActivity: String?
    public var members: [ChatMemberRow]
}

extension Inspector {
    /// `tern chats show CHAT`: the chat, its head and its members with roles.
    public func chat(_ id: TernID) throws -> ChatDetail {
        let head = try read { tx -> (ChatRecord, ChatHead?)? in
            guard let chat = try tx.chat(id) else { return nil }
            return (chat, try tx.chatHead(id))
        }
        guard let (chat, chatHead) = head else { throw OpsError("no chat \(id)") }
        var members: [ChatMemberRow] = []
        try scan({ $0.chatMembers }, prefix: id.bytes) { tx, key, value in
            guard let user = key.id(at: 16) else { return true }
            let member = try MemberRecord.decode(value)
            let record = try tx.user(user)
            members.append(ChatMemberRow(
                userID: user.description, phone: record?.phone ?? "", displayName: record?.displayName ?? "",
                role: member.role.name, joinedAt: member.joinedAt.rfc3339,
                firstSeq: try tx.userChat(user: user, chat: id)?.firstSeq))
            return true
        }
        return ChatDetail(
            id: id.description, kind: chat.kind.name, name: chat.name, description: chat.description, adminOnly: chat.adminOnly,
            createdAt: chat.createdAt.rfc3339, createdBy: chat.createdBy.description, memberCount: members.count,
            lastSeq: chatHead?.lastSeq ?? 0, lastActivity: chatHead?.lastActivity.rfc3339, members: members)
    }
}

// MARK: stats

public struct DepthBucket: Codable, Sendable {
    /// Depths counted, e.g. "2-10".
    public var depth: String
    public var devices: Int
}

public struct StoreStats: Codable, Sendable {
    public var users: Int
    public var devices: Int
    public var sessions: Int
    public var chats: Int
    public var chatMembers: Int
    public var messages: Int
    public var receipts: Int
    public var mailboxEntries: Int
    public var mailboxBytes: Int
    public var mailboxDevices: Int
    public var maxDepth: Int
    public var oldestPendingAgeSeconds: Int64?
    public var depthHistogram: [DepthBucket]
    public var mapSizeBytes: Int
    public var mapUsedBytes: Int
    public var mapUsedPercent: Double
    public var pageSize: Int
    public var usedPages: Int
    public var freePages: Int
    public var readersInUse: Int
    public var maxReaders: Int
    public var lastTransactionID: Int
}

extension Inspector {
    /// `tern stats`: table sizes (from LMDB's counters), the mailbox census (one paged pass
    /// over the mailbox table), and map and reader usage.
    public func stats(now: Timestamp) async throws -> StoreStats {
        let counts = try read { tx in
            (
                users: try tx.count(tx.tables.users), devices: try tx.count(tx.tables.devices),
                sessions: try tx.count(tx.tables.sessions), chats: try tx.count(tx.tables.chats),
                members: try tx.count(tx.tables.chatMembers), messages: try tx.count(tx.tables.messages),
                receipts: try tx.count(tx.tables.receipts)
            )
        }
        let census: MailboxCensus
        do {
            census = try await store.mailboxCensus(pageSize: pageSize) { Interrupt.requested.load(ordering: .relaxed) }
        } catch is CancellationError {
            throw OpsError.interrupted
        }
        let usage = try store.usage()
        let free = try store.environment.withReadTransaction { try $0.freePageCount() }
        return StoreStats(
            users: counts.users, devices: counts.devices, sessions: counts.sessions, chats: counts.chats,
            chatMembers: counts.members, messages: counts.messages, receipts: counts.receipts, mailboxEntries: census.entries,
            mailboxBytes: census.bytes, mailboxDevices: census.devices, maxDepth: census.maxDepth,
            oldestPendingAgeSeconds: census.oldest.map { (now - $0).wholeSeconds },
            depthHistogram: zip(MailboxCensus.buckets, census.histogram).map { DepthBucket(depth: $0.0.label, devices: $0.1) },
            mapSizeBytes: usage.mapSize, mapUsedBytes: usage.usedBytes,
            mapUsedPercent: (usage.usedFraction * 1000).rounded() / 10, pageSize: usage.pageSize, usedPages: usage.usedPages,
            freePages: free, readersInUse: usage.readersInUse, maxReaders: usage.maxReaders,
            lastTransactionID: usage.lastTransactionID)
    }
}
