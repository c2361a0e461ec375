import HTTPTypes
import Hummingbird
import Logging
import TernAuth
import TernCore
import TernRelay
import TernStore

/// What the admin listener needs.
public struct AdminDependencies: Sendable {
    public var auth: AuthService
    public var relay: Relay
    /// The bearer token every admin request must carry (`admin.token` or the generated file).
    public var token: String
    /// Whether the server is draining (SIGTERM received).
    public var isDraining: @Sendable () -> Bool

    public init(auth: AuthService, relay: Relay, token: String, isDraining: @escaping @Sendable () -> Bool) {
        self.auth = auth
        self.relay = relay
        self.token = token
        self.isDraining = isDraining
    }
}

/// The admin API, served on its own listener (`admin.host`/`admin.port`, loopback by
/// default): the operator actions that write. Every request needs
/// `Authorization: Bearer <admin token>`; user access tokens are not accepted. The writes go
/// through the store's single writer like every other write.
public func buildAdminRouter(_ deps: AdminDependencies) -> Router<TernRequestContext> {
    let router = Router(context: TernRequestContext.self)
    router.add(middleware: EdgeMiddleware(trustForwardedFor: false, metrics: APIMetrics()))
    let admin = router.group("admin/v1").add(middleware: AdminAuthMiddleware(token: deps.token))

    admin.get("status") { _, _ -> Response in
        try Envelope.ok(AdminStatus(sessions: deps.relay.registry.count, draining: deps.isDraining()))
    }
    admin.post("devices/:device/purge") { _, context -> Response in
        let device = try deviceNumber(context)
        guard let purged = try await deps.relay.purgeMailbox(device: device) else {
            throw TernError.notFound("no device \(device)")
        }
        context.logger.notice("admin: mailbox purged", metadata: ["admin.device": "\(device)", "admin.purged": "\(purged)"])
        return try Envelope.ok(PurgeResult(device: device, purged: purged))
    }
    admin.post("devices/:device/revoke") { _, context -> Response in
        let device = try deviceNumber(context)
        guard let ended = try await deps.auth.revokeDevice(number: device) else {
            throw TernError.notFound("no device \(device)")
        }
        context.logger.notice("admin: device revoked", metadata: ["admin.device": "\(device)"])
        return try Envelope.ok(RevokeResult(device: device, userID: nil, sessionsRevoked: ended, disabled: nil))
    }
    admin.post("devices/:device/push") { _, context -> Response in
        let device = try deviceNumber(context)
        guard let sent = try await deps.relay.resendPush(device: device) else { throw TernError.notFound("no device \(device)") }
        context.logger.notice("admin: push resent", metadata: ["admin.device": "\(device)", "admin.tokens": "\(sent.tokens)"])
        return try Envelope.ok(PushResult(device: device, tokens: sent.tokens, pending: sent.pending))
    }
    admin.post("users/:id/revoke") { _, context -> Response in
        let user = try userID(context)
        guard let ended = try await deps.auth.revokeUser(user) else { throw TernError.notFound("no user \(user)") }
        context.logger.notice("admin: user sessions revoked", metadata: ["admin.user_id": "\(user)"])
        return try Envelope.ok(RevokeResult(device: nil, userID: user.description, sessionsRevoked: ended, disabled: nil))
    }
    admin.post("users/:id/disable") { _, context -> Response in
        let user = try userID(context)
        guard let ended = try await deps.auth.revokeUser(user, disable: true) else { throw TernError.notFound("no user \(user)") }
        context.logger.notice("admin: user disabled", metadata: ["admin.user_id": "\(user)"])
        return try Envelope.ok(RevokeResult(device: nil, userID: user.description, sessionsRevoked: ended, disabled: true))
    }
    admin.post("users/:id/enable") { _, context -> Response in
        let user = try userID(context)
        guard try await deps.auth.enableUser(user) != nil else { throw TernError.notFound("no user \(user)") }
        context.logger.notice("admin: user enabled", metadata: ["admin.user_id": "\(user)"])
        return try Envelope.ok(RevokeResult(device: nil, userID: user.description, sessionsRevoked: 0, disabled: false))
    }
    addMethodNotAllowedHandlers(to: router)
    return router
}

private func deviceNumber(_ context: TernRequestContext) throws -> UInt64 {
    guard let text = context.parameters.get("device"), let number = UInt64(text), number > 0 else {
        throw TernError.validation("device must be a device number (see `tern devices list`)")
    }
    return number
}

private func userID(_ context: TernRequestContext) throws -> TernID {
    guard let text = context.parameters.get("id"), let id = TernID(text) else {
        throw TernError.validation("id must be a user id (UUID)")
    }
    return id
}

struct AdminStatus: Encodable {
    var sessions: Int
    var draining: Bool
}

struct PushResult: Encodable {
    var device: UInt64
    var tokens: Int
    var pending: Int
}

struct PurgeResult: Encodable {
    var device: UInt64
    var purged: Int
}

struct RevokeResult: Encodable {
    var device: UInt64?
    var userID: String?
    var sessionsRevoked: Int
    var disabled: Bool?

    enum CodingKeys: String, CodingKey {
        case device, userID = "user_id", sessionsRevoked = "sessions_revoked", disabled
    }
}

/// Checks the admin bearer token in constant time (the comparison does not stop at the
/// first differing byte).
struct AdminAuthMiddleware: RouterMiddleware {
    typealias Context = TernRequestContext
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let presented = AuthMiddleware.bearer(request) else {
            throw TernError.unauthorized("missing Authorization: Bearer <admin token>")
        }
        guard Self.equal(Array(presented.utf8), Array(token.utf8)) else {
            context.logger.warning("admin: request with a wrong token refused", metadata: ["http.client_ip": "\(context.clientIP)"])
            throw TernError.unauthorized("wrong admin token")
        }
        return try await next(request, context)
    }

    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}
