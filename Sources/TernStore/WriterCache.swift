import TernCore
import TernLMDB

/// What a sender may do in a chat, as a send reads it: the chat, the sender's membership,
/// the members, and whether a direct chat's two users block each other.
public struct ChatAccess: Sendable {
    public var chat: ChatRecord
    public var membership: MemberRecord
    public var members: [TernID]
    public var blocked: Bool

    public init(chat: ChatRecord, membership: MemberRecord, members: [TernID], blocked: Bool) {
        self.chat = chat
        self.membership = membership
        self.members = members
        self.blocked = blocked
    }
}

/// What the single writer reads again and again across write requests — a sender's access
/// to a chat, users' active devices, mailbox and chat heads — kept between transactions, so
/// that a send is its writes and little else.
///
/// Correct because the writer is the only writer: committed state changes only through it.
/// A write to a table an entry was read from drops every entry of that kind (membership,
/// blocks and device changes are rare next to messages); heads are updated with their own
/// write; and a transaction that is thrown away (replay, failed commit) drops everything,
/// since entries may describe its writes. Read transactions never see this cache.
///
/// Concurrency contract: used only by the thread running a batch (the writer thread, or an
/// event loop committing its own writes); batches never overlap.
public final class WriterCache: @unchecked Sendable {
    /// Entries of one kind before that kind is dropped wholesale (bounded memory).
    static let limit = 65_536

    private var access: [ChatUserKey: ChatAccess] = [:]
    private var devices: [TernID: [UInt64]] = [:]
    var mailboxHeads: [UInt64: UInt64] = [:]
    var chatHeads: [TernID: ChatHead] = [:]
    /// Records are encoded here before a put (LMDB copies the bytes): one buffer for all of
    /// the writer's puts instead of an array per record.
    var scratch = ByteWriter(capacity: 4096)
    /// A message record read to be patched (`messageBytes`), handed back after its put: the
    /// acknowledgements' read-patch-write of history records reuses one buffer.
    var recordBuffer: [UInt8] = {
        var buffer = [UInt8]()
        buffer.reserveCapacity(4096)
        return buffer
    }()
    /// By table slot: whether its writes drop `access` and `devices`.
    private let lookupTables: [Bool]
    private let mailboxHeadsSlot: Int
    private let chatHeadsSlot: Int

    struct ChatUserKey: Hashable {
        var chat: TernID
        var user: TernID

        func _rawHashValue(seed: Int) -> Int {
            Int(truncatingIfNeeded: HashMix.mix(
                UInt64(truncatingIfNeeded: chat._rawHashValue(seed: seed)), UInt64(truncatingIfNeeded: user._rawHashValue(seed: seed)), seed: seed))
        }
    }

    init(tables: Tables) {
        let slots = [tables.chats, tables.chatMembers, tables.blocks, tables.userDevices, tables.devices].map(\.slot)
        var mask = [Bool](repeating: false, count: (slots.max() ?? 0) + 1)
        for slot in slots { mask[slot] = true }
        lookupTables = mask
        mailboxHeadsSlot = tables.mailboxHeads.slot
        chatHeadsSlot = tables.chatHeads.slot
    }

    /// Drops everything (a transaction was thrown away).
    func clear() {
        access.removeAll()
        devices.removeAll()
        mailboxHeads.removeAll()
        chatHeads.removeAll()
    }

    /// A write to `db`: drops what may have been read from it.
    @inline(__always)
    func wrote(_ db: LMDBDatabase) {
        let slot = db.slot
        if slot == mailboxHeadsSlot {
            mailboxHeads.removeAll()
        } else if slot == chatHeadsSlot {
            chatHeads.removeAll()
        } else if slot < lookupTables.count && lookupTables[slot] {
            access.removeAll()
            devices.removeAll()
        }
    }

    func access(chat: TernID, user: TernID) -> ChatAccess? { access[ChatUserKey(chat: chat, user: user)] }

    func remember(_ value: ChatAccess, chat: TernID, user: TernID) {
        if access.count >= Self.limit { access.removeAll() }
        access[ChatUserKey(chat: chat, user: user)] = value
    }

    func devices(of user: TernID) -> [UInt64]? { devices[user] }

    func remember(devices numbers: [UInt64], of user: TernID) {
        if devices.count >= Self.limit { devices.removeAll() }
        devices[user] = numbers
    }

    func setMailboxHead(_ seq: UInt64, device: UInt64) {
        if mailboxHeads.count >= Self.limit { mailboxHeads.removeAll() }
        mailboxHeads[device] = seq
    }

    func setChatHead(_ head: ChatHead, chat: TernID) {
        if chatHeads.count >= Self.limit { chatHeads.removeAll() }
        chatHeads[chat] = head
    }
}

extension WriteTx {
    /// `user`'s active device numbers, from the writer's cache when known.
    public func cachedActiveDevices(of user: TernID) throws -> [UInt64] {
        if let known = cache.devices(of: user) { return known }
        let numbers = try activeDeviceNumbers(of: user)
        cache.remember(devices: numbers, of: user)
        return numbers
    }

    /// `user`'s access to `chat` from the writer's cache, or `read()` (then remembered).
    public func cachedAccess(chat: TernID, user: TernID, _ read: () throws -> ChatAccess) throws -> ChatAccess {
        if let known = cache.access(chat: chat, user: user) { return known }
        let value = try read()
        cache.remember(value, chat: chat, user: user)
        return value
    }

    /// The chat's head, from the writer's cache when known.
    public func cachedChatHead(_ chat: TernID) throws -> ChatHead? {
        if let known = cache.chatHeads[chat] { return known }
        guard let head = try chatHead(chat) else { return nil }
        cache.setChatHead(head, chat: chat)
        return head
    }
}
