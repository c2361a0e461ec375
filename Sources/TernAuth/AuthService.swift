// TernAuth owns phone login: one-time codes, devices, sessions, access and refresh tokens.
//
// What it promises:
// - A code is 6 digits from libsodium's CSPRNG, stored only as a keyed hash, valid 5 minutes.
//   Wrong attempts are counted per phone across re-requests; after the limit the phone is
//   locked for `otpLockout` and a new code does not unlock it. Send limits per phone are
//   durable, per IP in memory.
// - Access tokens are PASETO v4.public signed with the key ring's newest key; every request
//   also checks the session in the store, so logout and revocation take effect at once.
// - Refresh tokens rotate on every use. Presenting an already-rotated token revokes the
//   whole session (it was probably stolen).
//
// Concurrency contract: `AuthService` is Sendable; every state change is one group-committed
// store write whose closure validates first and writes last. Outcomes that must persist a
// failure (a wrong code counted, a session revoked for reuse) are returned as values from the
// write and thrown after the commit.
import Logging
import NIOCore
import TernCore
import TernSodium
import TernStore

/// Tunables of the login flow (the `auth.*` configuration keys).
public struct AuthSettings: Sendable {
    public var accessTTL: Duration = .minutes(15)
    public var refreshTTL: Duration = .days(30)
    public var otpTTL: Duration = .minutes(5)
    public var otpLength = 6
    public var otpMaxAttempts = 5
    public var otpLockout: Duration = .minutes(15)
    public var otpSendWindow: Duration = .minutes(10)
    public var otpMaxSendsPerWindow = 3
    /// Code requests per client IP.
    public var otpIPLimit = RateLimit.per(.seconds(3600), 20)
    /// Return the code in the `request-otp` response (tests and local development only).
    public var echoOTP = false

    public init() {}
}

/// The result of a successful login.
public struct LoginGrant: Sendable {
    public var user: UserRecord
    public var isNewUser: Bool
    public var device: DeviceRecord
    public var session: SessionRecord
    public var accessToken: String
    public var accessExpiresIn: Duration
    public var refreshToken: String
}

/// A fresh token pair from a refresh.
public struct TokenPair: Sendable {
    public var accessToken: String
    public var accessExpiresIn: Duration
    public var refreshToken: String
}

/// Optional device details sent with `verify-otp`.
public struct DeviceInfo: Sendable {
    public var clientID: String?
    public var name: String?
    public var platform: String?

    public init(clientID: String? = nil, name: String? = nil, platform: String? = nil) {
        self.clientID = clientID
        self.name = name
        self.platform = platform
    }
}

/// Phone login, sessions and token checks.
public final class AuthService: Sendable {
    public let store: Store
    public let tokens: TokenService
    public let settings: AuthSettings
    private let otpKey: [UInt8]
    private let sender: any CodeSender
    private let clock: any TernClock
    private let ipLimiter: RateLimiter
    private let logger: Logger
    /// Called after the commit that ended a session (logout, refresh reuse, an operator), so
    /// that live connections of that session can be closed.
    private let sessionEnded: @Sendable (_ session: TernID, _ user: TernID, _ reason: RevocationReason) -> Void

    /// Login device platforms accepted (the seed's device_tokens CHECK, plus desktop).
    public static let platforms: Set<String> = ["android", "ios", "web", "desktop"]

    public init(
        store: Store, tokens: TokenService, settings: AuthSettings, otpKey: [UInt8],
        sender: any CodeSender, clock: any TernClock, logger: Logger,
        sessionEnded: @escaping @Sendable (_ session: TernID, _ user: TernID, _ reason: RevocationReason) -> Void = { _, _, _ in }
    ) {
        precondition(otpKey.count == MessageAuthentication.keyLength, "OTP key must be 32 bytes")
        self.store = store
        self.tokens = tokens
        self.settings = settings
        self.otpKey = otpKey
        self.sender = sender
        self.clock = clock
        self.ipLimiter = RateLimiter(limit: settings.otpIPLimit, clock: clock)
        self.logger = logger
        self.sessionEnded = sessionEnded
    }

    private func codeTag(phone: String, code: String) -> [UInt8] {
        MessageAuthentication.tag(Array("\(phone):\(code)".utf8), key: otpKey)
    }

    // MARK: request-otp

    /// Issues a new code for `phone` and hands it to the sender. Returns the code (the
    /// caller echoes it only when `echoOTP` is on).
    public func requestCode(phone: String, clientIP: String) async throws -> String {
        guard Validate.isE164(phone) else {
            throw TernError.validation("phone must be an E.164 number such as +14155550123")
        }
        if let wait = ipLimiter.acquire("ip:\(clientIP)") {
            throw TernError.tooManyRequests("too many code requests from this address", retryAfter: wait)
        }
        let now = clock.now()
        let settings = self.settings
        let code = SecureRandom.digits(settings.otpLength)
        let tag = codeTag(phone: phone, code: code)
        try await store.write { tx in
            var record = try tx.otp(phone: phone)
            if let locked = record?.lockedUntil, locked > now {
                throw TernError(.otpMaxAttempts, "too many wrong codes; try again later", retryAfter: Int((locked - now).wholeSeconds) + 1)
            }
            var windowStart = now
            var sends: UInt16 = 0
            if let r = record, now < r.windowStart + settings.otpSendWindow {
                windowStart = r.windowStart
                sends = r.sendsInWindow
            }
            if Int(sends) >= settings.otpMaxSendsPerWindow {
                let wait = (windowStart + settings.otpSendWindow - now).wholeSeconds + 1
                throw TernError.tooManyRequests("too many codes requested for this number", retryAfter: Int(wait))
            }
            // A lock that has run out is lifted, and with it the attempt count.
            let attempts = record?.lockedUntil == nil ? (record?.failedAttempts ?? 0) : 0
            record = OtpRecord(
                codeTag: tag, issuedAt: now, expiresAt: now + settings.otpTTL, failedAttempts: attempts,
                lockedUntil: nil, windowStart: windowStart, sendsInWindow: sends + 1)
            try tx.putOtp(record!, phone: phone)
        }
        do {
            try await sender.send(code: code, to: phone, expiresIn: settings.otpTTL)
        } catch {
            logger.error("login code delivery failed", metadata: ["auth.error": "\(error)"])
            throw TernError(.deliveryFailed, "the login code could not be sent; try again later")
        }
        return code
    }

    // MARK: verify-otp

    private enum VerifyOutcome: Sendable {
        case granted(UserRecord, Bool, DeviceRecord, SessionRecord, String, replaced: TernID?)
        case rejected(TernError)
    }

    /// Checks `code` for `phone`; on success creates the user (first login), registers the
    /// device, opens a session and returns the tokens.
    public func verifyCode(phone: String, code: String, device: DeviceInfo) async throws -> LoginGrant {
        guard Validate.isE164(phone) else {
            throw TernError.validation("phone must be an E.164 number such as +14155550123")
        }
        guard code.utf8.count == settings.otpLength, code.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
            throw TernError(.otpInvalid, "the code must be \(settings.otpLength) digits")
        }
        if let id = device.clientID { try Validate.token(id, field: "device_id", max: Limits.deviceIDMax) }
        if let name = device.name { try Validate.text(name, field: "device_name", max: Limits.deviceNameMax) }
        if let platform = device.platform, !Self.platforms.contains(platform) {
            throw TernError.validation("platform must be one of android, ios, web, desktop")
        }
        let now = clock.now()
        let settings = self.settings
        let tag = codeTag(phone: phone, code: code)
        let outcome = try await store.write { tx -> VerifyOutcome in
            guard var otp = try tx.otp(phone: phone) else {
                return .rejected(TernError(.otpExpired, "no login code was requested for this number, or it expired"))
            }
            if let locked = otp.lockedUntil, locked > now {
                return .rejected(TernError(.otpMaxAttempts, "too many wrong codes; try again later", retryAfter: Int((locked - now).wholeSeconds) + 1))
            }
            if otp.codeTag.isEmpty || now >= otp.expiresAt {
                return .rejected(TernError(.otpExpired, "the login code expired; request a new one"))
            }
            if !constantTimeEquals(otp.codeTag, tag) {
                otp.failedAttempts += 1
                if Int(otp.failedAttempts) >= settings.otpMaxAttempts {
                    otp.lockedUntil = now + settings.otpLockout
                    otp.codeTag = []
                }
                try tx.putOtp(otp, phone: phone)
                return .rejected(TernError(.otpInvalid, "wrong code"))
            }
            // Correct: the code is spent and the attempt count starts over.
            otp.codeTag = []
            otp.failedAttempts = 0
            otp.lockedUntil = nil
            try tx.putOtp(otp, phone: phone)

            var isNew = false
            let user: UserRecord
            if let id = try tx.userID(phone: phone), let existing = try tx.user(id) {
                user = existing
            } else {
                isNew = true
                user = UserRecord(id: TernID.random(), phone: phone, createdAt: now, updatedAt: now)
                try tx.putUser(user)
            }
            if user.disabled { return .rejected(TernError(.forbidden, "this account is disabled")) }

            let sessionID = TernID.random()
            let clientID = device.clientID ?? TernID.random().description
            var record: DeviceRecord
            var replaced: TernID?
            if var existing = try tx.device(user: user.id, clientID: clientID) {
                if var old = try tx.session(existing.sessionID), old.revokedAt == nil {
                    old.revokedAt = now
                    old.revokeReason = .replaced
                    try tx.putSession(old)
                    replaced = old.id
                }
                existing.lastLoginAt = now
                existing.sessionID = sessionID
                existing.active = true
                if let name = device.name { existing.name = name }
                if let platform = device.platform { existing.platform = platform }
                record = existing
            } else {
                record = DeviceRecord(
                    number: try tx.allocateDeviceNumber(), userID: user.id, clientID: clientID,
                    name: device.name ?? "", platform: device.platform ?? "", createdAt: now, lastLoginAt: now,
                    sessionID: sessionID)
            }
            try tx.putDevice(record)
            let session = SessionRecord(
                id: sessionID, userID: user.id, deviceNumber: record.number, createdAt: now,
                expiresAt: now + settings.refreshTTL)
            try tx.putSession(session)
            let refresh = TokenService.newRefreshToken()
            try tx.putRefreshToken(
                RefreshTokenRecord(sessionID: sessionID, generation: session.generation, expiresAt: session.expiresAt),
                hash: TokenService.hashRefreshToken(refresh))
            try tx.putPresence(user.id, PresenceRecord(lastSeen: now))
            return .granted(user, isNew, record, session, refresh, replaced: replaced)
        }
        switch outcome {
        case .rejected(let error):
            throw error
        case .granted(let user, let isNew, let device, let session, let refresh, let replaced):
            if let replaced { sessionEnded(replaced, user.id, .replaced) }
            let claims = tokens.claims(userID: user.id, sessionID: session.id, deviceID: device.clientID, deviceNumber: device.number)
            return LoginGrant(
                user: user, isNewUser: isNew, device: device, session: session,
                accessToken: tokens.sign(claims), accessExpiresIn: tokens.accessTTL, refreshToken: refresh)
        }
    }

    // MARK: refresh

    private enum RefreshOutcome: Sendable {
        case rotated(SessionRecord, DeviceRecord, String)
        case rejected(TernError)
        case revoked(SessionRecord, TernError)
    }

    /// Exchanges a refresh token for a new pair. A rotated token presented again revokes
    /// the whole session.
    public func refresh(token: String) async throws -> TokenPair {
        guard !token.isEmpty, token.utf8.count <= 256 else { throw TernError(.tokenInvalid, "invalid refresh token") }
        let hash = TokenService.hashRefreshToken(token)
        let now = clock.now()
        let settings = self.settings
        let outcome = try await store.write { tx -> RefreshOutcome in
            let invalid = RefreshOutcome.rejected(TernError(.tokenInvalid, "invalid refresh token"))
            guard let record = try tx.refreshToken(hash: hash), var session = try tx.session(record.sessionID) else {
                return invalid
            }
            guard session.isLive(at: now), now < record.expiresAt else { return invalid }
            if record.generation != session.generation {
                session.revokedAt = now
                session.revokeReason = .refreshReuse
                try tx.putSession(session)
                try tx.deactivateDevice(number: session.deviceNumber, session: session.id)
                return .revoked(session, TernError(.tokenReused, "this refresh token was already used; the session has been revoked, log in again"))
            }
            guard let device = try tx.device(number: session.deviceNumber), device.sessionID == session.id,
                let user = try tx.user(session.userID), !user.disabled
            else { return invalid }
            session.generation += 1
            session.expiresAt = now + settings.refreshTTL
            try tx.putSession(session)
            let fresh = TokenService.newRefreshToken()
            try tx.putRefreshToken(
                RefreshTokenRecord(sessionID: session.id, generation: session.generation, expiresAt: session.expiresAt),
                hash: TokenService.hashRefreshToken(fresh))
            // The old token stays, marked by its older generation, until the session ends:
            // that is how a replay is recognised.
            try tx.putRefreshToken(
                RefreshTokenRecord(sessionID: session.id, generation: record.generation, expiresAt: session.expiresAt), hash: hash)
            try tx.putPresence(user.id, PresenceRecord(lastSeen: now))
            return .rotated(session, device, fresh)
        }
        switch outcome {
        case .rejected(let error):
            throw error
        case .revoked(let session, let error):
            sessionEnded(session.id, session.userID, .refreshReuse)
            throw error
        case .rotated(let session, let device, let refresh):
            let claims = tokens.claims(userID: session.userID, sessionID: session.id, deviceID: device.clientID, deviceNumber: device.number)
            return TokenPair(accessToken: tokens.sign(claims), accessExpiresIn: tokens.accessTTL, refreshToken: refresh)
        }
    }

    // MARK: logout

    /// Revokes the session named by `refreshToken` (any generation) or, without one, by the
    /// access token's claims; removes that device's push tokens. Unknown tokens are not an
    /// error (logout is idempotent). Returns whether a live session was revoked.
    @discardableResult
    public func logout(refreshToken: String?, claims: AccessClaims?) async throws -> Bool {
        let hash = refreshToken.map(TokenService.hashRefreshToken)
        let now = clock.now()
        let ended = try await store.write { tx -> SessionRecord? in
            var sessionID = claims?.sessionID
            if let hash, let record = try tx.refreshToken(hash: hash) { sessionID = record.sessionID }
            guard let sessionID else { return nil }
            return try Self.end(tx, session: sessionID, reason: .logout, now: now)
        }
        guard let ended else { return false }
        sessionEnded(ended.id, ended.userID, .logout)
        return true
    }

    /// Ends a live session in `tx`: marks it revoked, deactivates its device and drops that
    /// device's push tokens. Returns the session, or nil when it was not live.
    private static func end(_ tx: WriteTx, session id: TernID, reason: RevocationReason, now: Timestamp) throws -> SessionRecord? {
        guard var session = try tx.session(id), session.revokedAt == nil else { return nil }
        session.revokedAt = now
        session.revokeReason = reason
        try tx.putSession(session)
        try tx.deactivateDevice(number: session.deviceNumber, session: session.id)
        for (token, record) in try tx.pushTokens(of: session.userID) where record.deviceNumber == session.deviceNumber {
            try tx.deletePushToken(token)
        }
        try tx.putPresence(session.userID, PresenceRecord(lastSeen: now))
        return session
    }

    // MARK: operator actions (admin API)

    /// Ends the live session of device `number` (an operator's revoke). Nil: no such device;
    /// otherwise the number of sessions ended (0 when it had none live).
    public func revokeDevice(number: UInt64) async throws -> Int? {
        let now = clock.now()
        let ended = try await store.write { tx -> [SessionRecord]? in
            guard let device = try tx.device(number: number) else { return nil }
            return try Self.end(tx, session: device.sessionID, reason: .admin, now: now).map { [$0] } ?? []
        }
        for session in ended ?? [] { sessionEnded(session.id, session.userID, .admin) }
        return ended?.count
    }

    /// Ends every live session of `user`; with `disable` also marks the account disabled
    /// (login and every token refused until enabled again). Nil: no such user.
    public func revokeUser(_ user: TernID, disable: Bool = false) async throws -> Int? {
        let now = clock.now()
        let ended = try await store.write { tx -> [SessionRecord]? in
            guard var record = try tx.user(user) else { return nil }
            if disable && !record.disabled {
                record.disabled = true
                record.updatedAt = now
                try tx.putUser(record)
            }
            var ended: [SessionRecord] = []
            for device in try tx.devices(of: user) {
                if let session = try Self.end(tx, session: device.sessionID, reason: .admin, now: now) { ended.append(session) }
            }
            return ended
        }
        for session in ended ?? [] { sessionEnded(session.id, session.userID, .admin) }
        return ended?.count
    }

    /// Lets a disabled user log in again (their old sessions stay ended). Nil: no such user;
    /// otherwise whether the account was disabled before.
    public func enableUser(_ user: TernID) async throws -> Bool? {
        let now = clock.now()
        return try await store.write { tx -> Bool? in
            guard var record = try tx.user(user) else { return nil }
            guard record.disabled else { return false }
            record.disabled = false
            record.updatedAt = now
            try tx.putUser(record)
            return true
        }
    }

    // MARK: checking requests

    /// Verifies an access token and that its session is still live and its user enabled.
    public func authenticate(_ token: String) async throws -> AccessClaims {
        let claims = try tokens.verify(token)
        let now = clock.now()
        let problem: TernError? = try await store.read { tx in
            guard let session = try tx.session(claims.sessionID), session.userID == claims.userID else {
                return TernError(.tokenInvalid, "invalid access token")
            }
            if session.revokedAt != nil || now >= session.expiresAt {
                return TernError(.sessionRevoked, "this session has ended; log in again")
            }
            if let user = try tx.user(claims.userID), user.disabled {
                return TernError(.forbidden, "this account is disabled")
            }
            return nil
        }
        if let problem { throw problem }
        return claims
    }

    /// `authenticate` for network event loops (the WebSocket upgrade): the session check
    /// runs on the store's read threads and the future completes on `eventLoop`.
    public func authenticate(_ token: String, on eventLoop: any EventLoop) -> EventLoopFuture<AccessClaims> {
        let claims: AccessClaims
        do {
            claims = try tokens.verify(token)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let now = clock.now()
        return store.read(on: eventLoop) { tx in
            guard let session = try tx.session(claims.sessionID), session.userID == claims.userID else {
                throw TernError(.tokenInvalid, "invalid access token")
            }
            if session.revokedAt != nil || now >= session.expiresAt {
                throw TernError(.sessionRevoked, "this session has ended; log in again")
            }
            if let user = try tx.user(claims.userID), user.disabled {
                throw TernError(.forbidden, "this account is disabled")
            }
            return claims
        }
    }

    /// Deletes refresh records and sessions past their expiry (bounded per call).
    public func purgeExpired(limit: Int = 1000) async throws -> Int {
        let now = clock.now()
        return try await store.write { tx in try tx.purgeExpiredSessions(now: now, limit: limit) }
    }
}
