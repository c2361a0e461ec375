import TernCore

/// One entry of a user's contact list (a registered user found by contact sync).
///
/// Table `contacts`, key = owner id (16) ‖ contact user id (16).
///
/// Layout v1: `nickname (str) | created_at (i64)`
public struct ContactRecord: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 1

    public var nickname: String
    public var createdAt: Timestamp

    public init(nickname: String = "", createdAt: Timestamp) {
        self.nickname = nickname
        self.createdAt = createdAt
    }

    public func encode(into w: inout ByteWriter) {
        w.string(nickname)
        w.timestamp(createdAt)
    }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        nickname = try r.string()
        createdAt = try r.timestamp()
    }
}

/// A block: the blocker no longer receives anything from the blocked user.
///
/// Table `blocks`, key = blocker id (16) ‖ blocked id (16).
///
/// Layout v1: `created_at (i64)`
public struct BlockRecord: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 1

    public var createdAt: Timestamp

    public init(createdAt: Timestamp) { self.createdAt = createdAt }

    public func encode(into w: inout ByteWriter) { w.timestamp(createdAt) }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        createdAt = try r.timestamp()
    }
}

extension ReadTx {
    /// The contact entry `contact` in `owner`'s list.
    public func contact(owner: TernID, contact: TernID) throws -> ContactRecord? {
        try record(ContactRecord.self, in: tables.contacts, at: Keys.pair(owner, contact))
    }

    /// Whether `contact` is in `owner`'s contact list.
    public func hasContact(owner: TernID, contact: TernID) throws -> Bool {
        try contains(tables.contacts, Keys.pair(owner, contact))
    }

    /// `owner`'s contacts, ordered by contact id.
    public func contacts(of owner: TernID) throws -> [(contact: TernID, record: ContactRecord)] {
        var out: [(TernID, ContactRecord)] = []
        try scan(tables.contacts, prefix: owner.bytes) { key, value in
            out.append((TernID(bytes: key[16..<32])!, try ContactRecord.decode(value)))
            return true
        }
        return out
    }

    /// Whether `blocker` has blocked `blocked`.
    public func isBlocked(blocker: TernID, blocked: TernID) throws -> Bool {
        try contains(tables.blocks, Keys.pair(blocker, blocked))
    }

    /// Everyone `blocker` has blocked.
    public func blockedUsers(of blocker: TernID) throws -> [TernID] {
        var out: [TernID] = []
        try scan(tables.blocks, prefix: blocker.bytes) { key, _ in
            out.append(TernID(bytes: key[16..<32])!)
            return true
        }
        return out
    }
}

extension WriteTx {
    public func putContact(owner: TernID, contact: TernID, _ record: ContactRecord) throws {
        try put(record, in: tables.contacts, at: Keys.pair(owner, contact))
    }

    @discardableResult
    public func deleteContact(owner: TernID, contact: TernID) throws -> Bool {
        try delete(tables.contacts, Keys.pair(owner, contact))
    }

    public func putBlock(blocker: TernID, blocked: TernID, _ record: BlockRecord) throws {
        try put(record, in: tables.blocks, at: Keys.pair(blocker, blocked))
    }

    @discardableResult
    public func deleteBlock(blocker: TernID, blocked: TernID) throws -> Bool {
        try delete(tables.blocks, Keys.pair(blocker, blocked))
    }
}
