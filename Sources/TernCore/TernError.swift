/// The stable error codes of the client contract, each with its HTTP status.
///
/// Codes are part of the API (clients switch on them); messages are for humans and never
/// carry internal detail. The seed's codes are kept where they existed.
public enum ErrorCode: String, Sendable, CaseIterable {
    case badRequest = "BAD_REQUEST"
    case validation = "VALIDATION_ERROR"
    case unauthorized = "UNAUTHORIZED"
    case tokenInvalid = "TOKEN_INVALID"
    case tokenExpired = "TOKEN_EXPIRED"
    case tokenReused = "TOKEN_REUSED"
    case sessionRevoked = "SESSION_REVOKED"
    case forbidden = "FORBIDDEN"
    case userBlocked = "USER_BLOCKED"
    case notChatMember = "NOT_CHAT_MEMBER"
    case notAdmin = "NOT_ADMIN"
    case chatNotFound = "CHAT_NOT_FOUND"
    case alreadyMember = "ALREADY_MEMBER"
    case notFound = "NOT_FOUND"
    case methodNotAllowed = "METHOD_NOT_ALLOWED"
    case conflict = "CONFLICT"
    case payloadTooLarge = "PAYLOAD_TOO_LARGE"
    case unsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
    case tooManyRequests = "TOO_MANY_REQUESTS"
    case otpExpired = "OTP_EXPIRED"
    case otpInvalid = "OTP_INVALID"
    case otpMaxAttempts = "OTP_MAX_ATTEMPTS"
    case internalError = "INTERNAL_ERROR"
    case deliveryFailed = "OTP_DELIVERY_FAILED"
    case storeUnavailable = "STORE_UNAVAILABLE"
    case storageFull = "STORAGE_FULL"
    case shuttingDown = "SHUTTING_DOWN"
    case mediaTooLarge = "MEDIA_TOO_LARGE"
    case mediaInvalidType = "MEDIA_INVALID_TYPE"
    case rangeNotSatisfiable = "RANGE_NOT_SATISFIABLE"
    case preconditionFailed = "PRECONDITION_FAILED"
    case mediaBusy = "MEDIA_BUSY"

    /// The HTTP status this code is sent with.
    public var status: Int {
        switch self {
        case .badRequest, .validation, .otpExpired, .otpInvalid, .mediaInvalidType: 400
        case .unauthorized, .tokenInvalid, .tokenExpired, .tokenReused, .sessionRevoked: 401
        case .forbidden, .userBlocked, .notChatMember, .notAdmin: 403
        case .notFound, .chatNotFound: 404
        case .methodNotAllowed: 405
        case .conflict, .alreadyMember: 409
        case .payloadTooLarge, .mediaTooLarge: 413
        case .rangeNotSatisfiable: 416
        case .preconditionFailed: 412
        case .unsupportedMediaType: 415
        case .tooManyRequests, .otpMaxAttempts: 429
        case .internalError: 500
        case .deliveryFailed: 502
        case .storeUnavailable, .shuttingDown, .mediaBusy: 503
        case .storageFull: 507
        }
    }
}

/// An error the client may see: a stable code, a safe message, and for 429/503 the number
/// of seconds after which a retry may succeed.
public struct TernError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    /// Sent as `Retry-After` (seconds) when set.
    public var retryAfter: Int?

    public init(_ code: ErrorCode, _ message: String, retryAfter: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public var status: Int { code.status }
    public var description: String { "\(code.rawValue): \(message)" }

    // Common cases, so call sites read as sentences.
    public static func validation(_ message: String) -> TernError { TernError(.validation, message) }
    public static func badRequest(_ message: String) -> TernError { TernError(.badRequest, message) }
    public static func notFound(_ message: String) -> TernError { TernError(.notFound, message) }
    public static func forbidden(_ message: String) -> TernError { TernError(.forbidden, message) }
    public static func unauthorized(_ message: String = "authentication required") -> TernError {
        TernError(.unauthorized, message)
    }
    public static func tooManyRequests(_ message: String, retryAfter: Int) -> TernError {
        TernError(.tooManyRequests, message, retryAfter: max(1, retryAfter))
    }
}
