import TernCore

/// A user account. Table `users`, key = user id (16 bytes); index `phones`: phone → id.
///
/// Layout v1 (after the version byte):
/// `id (16) | phone (str) | display_name (str) | avatar_url (str) | status_text (str) |
///  created_at (i64 ms) | updated_at (i64 ms) | flags (u8: bit 0 = disabled)`
/// where `str` = u32 length + UTF-8.
public struct UserRecord: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 1

    public var id: TernID
    public var phone: String
    public var displayName: String
    public var avatarURL: String
    public var statusText: String
    public var createdAt: Timestamp
    public var updatedAt: Timestamp
    /// A disabled user cannot log in or use tokens (set by operators).
    public var disabled: Bool

    public init(
        id: TernID, phone: String, displayName: String = "", avatarURL: String = "",
        statusText: String = Limits.defaultStatusText, createdAt: Timestamp, updatedAt: Timestamp, disabled: Bool = false
    ) {
        self.id = id
        self.phone = phone
        self.displayName = displayName
        self.avatarURL = avatarURL
        self.statusText = statusText
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.disabled = disabled
    }

    public func encode(into w: inout ByteWriter) {
        w.id(id)
        w.string(phone)
        w.string(displayName)
        w.string(avatarURL)
        w.string(statusText)
        w.timestamp(createdAt)
        w.timestamp(updatedAt)
        w.u8(disabled ? 1 : 0)
    }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        id = try r.id()
        phone = try r.string()
        displayName = try r.string()
        avatarURL = try r.string()
        statusText = try r.string()
        createdAt = try r.timestamp()
        updatedAt = try r.timestamp()
        disabled = try r.u8() & 1 != 0
    }
}

extension ReadTx {
    /// The user with `id`, or nil.
    public func user(_ id: TernID) throws -> UserRecord? {
        try record(UserRecord.self, in: tables.users, at: Keys.id(id))
    }

    /// The id of the user registered with `phone` (E.164), or nil.
    public func userID(phone: String) throws -> TernID? {
        try raw.withValue(tables.phones, Keys.text(phone)) { TernID(bytes: $0) } ?? nil
    }

    /// Number of users.
    public func userCount() throws -> Int { try count(tables.users) }
}

extension WriteTx {
    /// Stores `user` and its phone index entry.
    public func putUser(_ user: UserRecord) throws {
        try put(user, in: tables.users, at: Keys.id(user.id))
        try putBytes(user.id.bytes, in: tables.phones, at: Keys.text(user.phone))
    }
}
