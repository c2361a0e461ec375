import TernCore

/// A push-notification token (FCM, APNs, web push) registered by a user's device.
///
/// Table `push_tokens`, key = token (UTF-8); index `user_push`: user id (16) ‖ token → empty.
/// A token belongs to one user at a time: registering it again moves it.
///
/// Layout v1: `user_id (16) | device_number (u64, 0 = unknown) | platform (str) |
///  created_at (i64) | updated_at (i64)`
public struct PushTokenRecord: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 1

    public var userID: TernID
    public var deviceNumber: UInt64
    public var platform: String
    public var createdAt: Timestamp
    public var updatedAt: Timestamp

    public init(userID: TernID, deviceNumber: UInt64, platform: String, createdAt: Timestamp, updatedAt: Timestamp) {
        self.userID = userID
        self.deviceNumber = deviceNumber
        self.platform = platform
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    public func encode(into w: inout ByteWriter) {
        w.id(userID)
        w.u64(deviceNumber)
        w.string(platform)
        w.timestamp(createdAt)
        w.timestamp(updatedAt)
    }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        userID = try r.id()
        deviceNumber = try r.u64()
        platform = try r.string()
        createdAt = try r.timestamp()
        updatedAt = try r.timestamp()
    }
}

extension ReadTx {
    public func pushToken(_ token: String) throws -> PushTokenRecord? {
        try record(PushTokenRecord.self, in: tables.pushTokens, at: Keys.text(token))
    }

    /// `user`'s registered tokens.
    public func pushTokens(of user: TernID) throws -> [(token: String, record: PushTokenRecord)] {
        var tokens: [String] = []
        try scan(tables.userPush, prefix: user.bytes) { key, _ in
            tokens.append(String(decoding: key[16...], as: UTF8.self))
            return true
        }
        return try tokens.compactMap { token in try pushToken(token).map { (token, $0) } }
    }
}

extension WriteTx {
    /// Registers `token` for `record.userID`, moving it from any previous owner.
    public func putPushToken(_ token: String, _ record: PushTokenRecord) throws {
        if let previous = try pushToken(token), previous.userID != record.userID {
            try delete(tables.userPush, Keys.userPush(previous.userID, token))
        }
        try put(record, in: tables.pushTokens, at: Keys.text(token))
        try putBytes([], in: tables.userPush, at: Keys.userPush(record.userID, token))
    }

    /// Removes `token`; returns false if it was absent.
    @discardableResult
    public func deletePushToken(_ token: String) throws -> Bool {
        guard let previous = try pushToken(token) else { return false }
        try delete(tables.userPush, Keys.userPush(previous.userID, token))
        return try delete(tables.pushTokens, Keys.text(token))
    }
}
