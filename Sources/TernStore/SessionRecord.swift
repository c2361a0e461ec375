import TernCore

/// Why a session ended early.
public enum RevocationReason: UInt8, Sendable {
    case none = 0
    /// The user logged out.
    case logout = 1
    /// A rotated refresh token was presented again (likely stolen): the whole session dies.
    case refreshReuse = 2
    /// The same device logged in again; its older session was replaced.
    case replaced = 3
    /// An operator revoked it.
    case admin = 4

    /// Why the session ended, in words (the `session.revoked` frame's `reason`).
    public var text: String {
        switch self {
        case .none: "session ended"
        case .logout: "logged out"
        case .refreshReuse: "refresh token reused"
        case .replaced: "replaced by a newer login of this device"
        case .admin: "revoked by an operator"
        }
    }
}

/// A login session of one device: the family of one access/refresh token chain.
///
/// Table `sessions`, key = session id (16).
///
/// Layout v1: `id (16) | user_id (16) | device_number (u64) | created_at (i64) |
///  expires_at (i64, end of refresh validity) | revoked_at (i64, 0 = live) |
///  revoke_reason (u8) | generation (u32, the current refresh token's number)`
public struct SessionRecord: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 1

    public var id: TernID
    public var userID: TernID
    public var deviceNumber: UInt64
    public var createdAt: Timestamp
    public var expiresAt: Timestamp
    public var revokedAt: Timestamp?
    public var revokeReason: RevocationReason
    /// Incremented on every refresh; only the refresh token of this generation is valid.
    public var generation: UInt32

    public init(
        id: TernID, userID: TernID, deviceNumber: UInt64, createdAt: Timestamp, expiresAt: Timestamp,
        revokedAt: Timestamp? = nil, revokeReason: RevocationReason = .none, generation: UInt32 = 1
    ) {
        self.id = id
        self.userID = userID
        self.deviceNumber = deviceNumber
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
        self.revokeReason = revokeReason
        self.generation = generation
    }

    /// Usable at `now`: not revoked and not past its refresh expiry.
    public func isLive(at now: Timestamp) -> Bool { revokedAt == nil && now < expiresAt }

    public func encode(into w: inout ByteWriter) {
        w.id(id)
        w.id(userID)
        w.u64(deviceNumber)
        w.timestamp(createdAt)
        w.timestamp(expiresAt)
        w.i64(revokedAt?.milliseconds ?? 0)
        w.u8(revokeReason.rawValue)
        w.u32(generation)
    }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        id = try r.id()
        userID = try r.id()
        deviceNumber = try r.u64()
        createdAt = try r.timestamp()
        expiresAt = try r.timestamp()
        let revoked = try r.i64()
        revokedAt = revoked == 0 ? nil : Timestamp(milliseconds: revoked)
        revokeReason = RevocationReason(rawValue: try r.u8()) ?? .admin
        generation = try r.u32()
    }
}

/// One issued refresh token, stored only as its SHA-256. Kept after rotation (until the
/// session's expiry) so that a replayed old token is recognised as reuse.
///
/// Table `refresh`, key = SHA-256(token) (32).
///
/// Layout v1: `session_id (16) | generation (u32) | expires_at (i64)`
public struct RefreshTokenRecord: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 1

    public var sessionID: TernID
    public var generation: UInt32
    public var expiresAt: Timestamp

    public init(sessionID: TernID, generation: UInt32, expiresAt: Timestamp) {
        self.sessionID = sessionID
        self.generation = generation
        self.expiresAt = expiresAt
    }

    public func encode(into w: inout ByteWriter) {
        w.id(sessionID)
        w.u32(generation)
        w.timestamp(expiresAt)
    }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        sessionID = try r.id()
        generation = try r.u32()
        expiresAt = try r.timestamp()
    }
}

extension ReadTx {
    public func session(_ id: TernID) throws -> SessionRecord? {
        try record(SessionRecord.self, in: tables.sessions, at: Keys.id(id))
    }

    public func refreshToken(hash: [UInt8]) throws -> RefreshTokenRecord? {
        try record(RefreshTokenRecord.self, in: tables.refresh, at: hash)
    }
}

extension WriteTx {
    public func putSession(_ session: SessionRecord) throws {
        try put(session, in: tables.sessions, at: Keys.id(session.id))
    }

    public func putRefreshToken(_ token: RefreshTokenRecord, hash: [UInt8]) throws {
        try put(token, in: tables.refresh, at: hash)
    }

    /// Deletes sessions and refresh records whose refresh validity ended before `now`;
    /// returns how many records went. Bounded by `limit` per call to keep commits short.
    public func purgeExpiredSessions(now: Timestamp, limit: Int) throws -> Int {
        var doomedRefresh: [[UInt8]] = []
        try scan(tables.refresh, from: nil, to: nil) { key, value in
            let record = try RefreshTokenRecord.decode(value)
            if record.expiresAt <= now { doomedRefresh.append(Array(key)) }
            return doomedRefresh.count < limit
        }
        var doomedSessions: [[UInt8]] = []
        try scan(tables.sessions, from: nil, to: nil) { key, value in
            let record = try SessionRecord.decode(value)
            if record.expiresAt <= now { doomedSessions.append(Array(key)) }
            return doomedSessions.count < limit
        }
        for key in doomedRefresh { try delete(tables.refresh, key) }
        for key in doomedSessions { try delete(tables.sessions, key) }
        return doomedRefresh.count + doomedSessions.count
    }
}
