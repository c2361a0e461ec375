import TernCore

/// Who may see a piece of profile information.
public enum Visibility: String, Sendable, CaseIterable {
    case everyone
    case contacts
    case nobody

    var code: UInt8 {
        switch self {
        case .everyone: 0
        case .contacts: 1
        case .nobody: 2
        }
    }

    init(code: UInt8) throws(StoreError) {
        switch code {
        case 0: self = .everyone
        case 1: self = .contacts
        case 2: self = .nobody
        default: throw StoreError.corrupt("privacy: unknown visibility \(code)")
        }
    }
}

/// A user's privacy settings. Absent record = the defaults (everyone, read receipts on).
///
/// Table `privacy`, key = user id (16).
///
/// Layout v1: `last_seen (u8) | profile_photo (u8) | about (u8) | read_receipts (u8 bool) |
///  updated_at (i64)` with visibility 0 = everyone, 1 = contacts, 2 = nobody.
public struct PrivacyRecord: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 1

    public var lastSeen: Visibility
    public var profilePhoto: Visibility
    public var about: Visibility
    public var readReceipts: Bool
    public var updatedAt: Timestamp

    public init(
        lastSeen: Visibility = .everyone, profilePhoto: Visibility = .everyone, about: Visibility = .everyone,
        readReceipts: Bool = true, updatedAt: Timestamp
    ) {
        self.lastSeen = lastSeen
        self.profilePhoto = profilePhoto
        self.about = about
        self.readReceipts = readReceipts
        self.updatedAt = updatedAt
    }

    public func encode(into w: inout ByteWriter) {
        w.u8(lastSeen.code)
        w.u8(profilePhoto.code)
        w.u8(about.code)
        w.bool(readReceipts)
        w.timestamp(updatedAt)
    }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        lastSeen = try Visibility(code: try r.u8())
        profilePhoto = try Visibility(code: try r.u8())
        about = try Visibility(code: try r.u8())
        readReceipts = try r.bool()
        updatedAt = try r.timestamp()
    }
}

/// When a user was last seen (last disconnect or last login/refresh).
///
/// Table `presence`, key = user id (16). Layout v1: `last_seen (i64)`
public struct PresenceRecord: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 1

    public var lastSeen: Timestamp

    public init(lastSeen: Timestamp) { self.lastSeen = lastSeen }

    public func encode(into w: inout ByteWriter) { w.timestamp(lastSeen) }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        lastSeen = try r.timestamp()
    }
}

extension ReadTx {
    /// `user`'s privacy settings, or nil when they never changed them (defaults apply).
    public func privacy(_ user: TernID) throws -> PrivacyRecord? {
        try record(PrivacyRecord.self, in: tables.privacy, at: Keys.id(user))
    }

    public func presence(_ user: TernID) throws -> PresenceRecord? {
        try record(PresenceRecord.self, in: tables.presence, at: Keys.id(user))
    }
}

extension WriteTx {
    public func putPrivacy(_ user: TernID, _ record: PrivacyRecord) throws {
        try put(record, in: tables.privacy, at: Keys.id(user))
    }

    public func putPresence(_ user: TernID, _ record: PresenceRecord) throws {
        try put(record, in: tables.presence, at: Keys.id(user))
    }
}

extension ReadTx {
    /// Whether `viewer` passes `owner`'s visibility setting `setting`: everyone; contacts =
    /// `viewer` is in `owner`'s contact list; nobody. The owner always sees their own data.
    public func allows(_ setting: Visibility, owner: TernID, viewer: TernID) throws -> Bool {
        if owner == viewer { return true }
        switch setting {
        case .everyone: return true
        case .contacts: return try hasContact(owner: owner, contact: viewer)
        case .nobody: return false
        }
    }

    /// Whether either user has blocked the other.
    public func eitherBlocked(_ a: TernID, _ b: TernID) throws -> Bool {
        try isBlocked(blocker: a, blocked: b) || isBlocked(blocker: b, blocked: a)
    }
}
