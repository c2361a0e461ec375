import TernCore

/// A device (one app install) of a user; each device will own a mailbox.
///
/// Table `devices`, key = device number (u64, allocated from `meta.last_device_number`);
/// index `user_devices`: user id (16) ‖ client device id → device number (u64) ‖ active (u8).
///
/// Layout v1: `number (u64) | user_id (16) | client_id (str) | name (str) | platform (str) |
///  created_at (i64) | last_login_at (i64) | session_id (16, the device's current login session) |
///  active (u8 bool: logged in; only active devices get mailbox copies)`
public struct DeviceRecord: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 1

    /// The store's compact number for the device (mailbox keys use it).
    public var number: UInt64
    public var userID: TernID
    /// The client-chosen (or server-generated) id the API shows as `device_id`.
    public var clientID: String
    public var name: String
    public var platform: String
    public var createdAt: Timestamp
    public var lastLoginAt: Timestamp
    /// The device's current session; a new login of the same device replaces it.
    public var sessionID: TernID
    /// Logged in. A logged-out device keeps its number but gets no new mailbox copies.
    public var active: Bool

    public init(
        number: UInt64, userID: TernID, clientID: String, name: String, platform: String,
        createdAt: Timestamp, lastLoginAt: Timestamp, sessionID: TernID, active: Bool = true
    ) {
        self.number = number
        self.userID = userID
        self.clientID = clientID
        self.name = name
        self.platform = platform
        self.createdAt = createdAt
        self.lastLoginAt = lastLoginAt
        self.sessionID = sessionID
        self.active = active
    }

    public func encode(into w: inout ByteWriter) {
        w.u64(number)
        w.id(userID)
        w.string(clientID)
        w.string(name)
        w.string(platform)
        w.timestamp(createdAt)
        w.timestamp(lastLoginAt)
        w.id(sessionID)
        w.bool(active)
    }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        number = try r.u64()
        userID = try r.id()
        clientID = try r.string()
        name = try r.string()
        platform = try r.string()
        createdAt = try r.timestamp()
        lastLoginAt = try r.timestamp()
        sessionID = try r.id()
        active = try r.bool()
    }
}

extension ReadTx {
    /// The device with store number `number`.
    public func device(number: UInt64) throws -> DeviceRecord? {
        try record(DeviceRecord.self, in: tables.devices, at: Keys.u64(number))
    }

    /// The device `clientID` of `user`.
    public func device(user: TernID, clientID: String) throws -> DeviceRecord? {
        guard let number = try raw.withValue(tables.userDevices, Keys.userDevice(user, clientID), { buffer throws(StoreError) in
            var r = ByteReader(buffer, what: "user_devices")
            return try r.u64()
        }) else { return nil }
        return try device(number: number)
    }

    /// Numbers of `user`'s logged-in devices (index only; no record reads), ordered by client id.
    public func activeDeviceNumbers(of user: TernID) throws -> [UInt64] {
        var numbers: [UInt64] = []
        try scan(tables.userDevices, prefix: user.bytes) { _, value in
            var r = ByteReader(value, what: "user_devices")
            let number = try r.u64()
            let active = r.remaining == 0 ? true : try r.bool()
            if active { numbers.append(number) }
            return true
        }
        return numbers
    }

    /// Every device of `user`, ordered by client id.
    public func devices(of user: TernID) throws -> [DeviceRecord] {
        var numbers: [UInt64] = []
        try scan(tables.userDevices, prefix: user.bytes) { _, value in
            var r = ByteReader(value, what: "user_devices")
            numbers.append(try r.u64())
            return true
        }
        return try numbers.compactMap { try device(number: $0) }
    }
}

extension WriteTx {
    /// Stores `device` and its per-user index entry.
    public func putDevice(_ device: DeviceRecord) throws {
        try put(device, in: tables.devices, at: Keys.u64(device.number))
        try putBytes(Keys.u64(device.number) + [device.active ? 1 : 0], in: tables.userDevices, at: Keys.userDevice(device.userID, device.clientID))
    }

    /// Marks device `number` logged out if `session` is still its current session.
    public func deactivateDevice(number: UInt64, session: TernID) throws {
        guard var device = try device(number: number), device.sessionID == session, device.active else { return }
        device.active = false
        try putDevice(device)
    }

    /// A fresh device number.
    public func allocateDeviceNumber() throws -> UInt64 {
        try nextSequence(MetaKey.lastDeviceNumber)
    }
}
