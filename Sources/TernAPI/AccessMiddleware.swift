import HTTPTypes
import Hummingbird
import TernAuth
import TernCore

/// Per-IP token buckets for every API route (health, readiness and metrics are exempt).
struct IPRateLimitMiddleware: RouterMiddleware {
    typealias Context = TernRequestContext
    let limiter: RateLimiter
    let metrics: APIMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let wait = limiter.acquire(context.clientIP) {
            metrics.rateLimited("ip")
            throw TernError.tooManyRequests("too many requests from this address; slow down", retryAfter: wait)
        }
        return try await next(request, context)
    }
}

/// Requires a valid access token (`Authorization: Bearer …`) whose session is live, then
/// applies the per-user rate limit.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = TernRequestContext
    let auth: AuthService
    let limiter: RateLimiter
    let metrics: APIMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token = Self.bearer(request) else {
            throw TernError.unauthorized("missing Authorization: Bearer <access token>")
        }
        var context = context
        let claims = try await auth.authenticate(token)
        context.claims = claims
        context.logger[metadataKey: "auth.user_id"] = .string(claims.userID.description)
        if let wait = limiter.acquire(claims.userID.description) {
            metrics.rateLimited("user")
            throw TernError.tooManyRequests("too many requests; slow down", retryAfter: wait)
        }
        return try await next(request, context)
    }

    /// The bearer token of the request, if any.
    static func bearer(_ request: Request) -> String? {
        guard let header = request.headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = String(parts[1]).trimmingWhitespace()
        return token.isEmpty ? nil : token
    }
}
