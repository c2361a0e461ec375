import TernCore

/// The one-time login code state of a phone number: the current code (as a keyed hash),
/// wrong attempts, lockout, and the send-rate window. Durable, so a restart neither resets
/// a lockout nor a send limit.
///
/// Table `otps`, key = E.164 phone (UTF-8).
///
/// Layout v1: `code_tag (32, HMAC of the code; all zero = no code) | issued_at (i64) |
///  expires_at (i64) | failed_attempts (u8) | locked_until (i64, 0 = not locked) |
///  window_start (i64) | sends_in_window (u16)`
public struct OtpRecord: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 1

    /// Keyed hash of the current code; empty when no code is outstanding.
    public var codeTag: [UInt8]
    public var issuedAt: Timestamp
    public var expiresAt: Timestamp
    /// Wrong codes entered since the last successful login. Not reset by a new code.
    public var failedAttempts: UInt8
    /// While set and in the future, the phone can neither verify nor request a code.
    public var lockedUntil: Timestamp?
    /// Start of the current send-limit window and the codes sent in it.
    public var windowStart: Timestamp
    public var sendsInWindow: UInt16

    public init(
        codeTag: [UInt8], issuedAt: Timestamp, expiresAt: Timestamp, failedAttempts: UInt8 = 0,
        lockedUntil: Timestamp? = nil, windowStart: Timestamp, sendsInWindow: UInt16
    ) {
        self.codeTag = codeTag
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.failedAttempts = failedAttempts
        self.lockedUntil = lockedUntil
        self.windowStart = windowStart
        self.sendsInWindow = sendsInWindow
    }

    public func encode(into w: inout ByteWriter) {
        w.raw(codeTag.count == 32 ? codeTag : [UInt8](repeating: 0, count: 32))
        w.timestamp(issuedAt)
        w.timestamp(expiresAt)
        w.u8(failedAttempts)
        w.i64(lockedUntil?.milliseconds ?? 0)
        w.timestamp(windowStart)
        w.u16(sendsInWindow)
    }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        let tag = try r.raw(32)
        codeTag = tag.allSatisfy { $0 == 0 } ? [] : tag
        issuedAt = try r.timestamp()
        expiresAt = try r.timestamp()
        failedAttempts = try r.u8()
        let locked = try r.i64()
        lockedUntil = locked == 0 ? nil : Timestamp(milliseconds: locked)
        windowStart = try r.timestamp()
        sendsInWindow = try r.u16()
    }
}

extension ReadTx {
    public func otp(phone: String) throws -> OtpRecord? {
        try record(OtpRecord.self, in: tables.otps, at: Keys.text(phone))
    }
}

extension WriteTx {
    public func putOtp(_ otp: OtpRecord, phone: String) throws {
        try put(otp, in: tables.otps, at: Keys.text(phone))
    }

    public func deleteOtp(phone: String) throws {
        try delete(tables.otps, Keys.text(phone))
    }
}
