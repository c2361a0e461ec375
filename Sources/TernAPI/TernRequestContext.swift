import Hummingbird
import NIOCore
import TernAuth
import TernCore

/// Per-request state: the peer address, the request id, and (behind `AuthMiddleware`) the
/// verified token claims.
public struct TernRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// The client's `X-Request-ID` when well-formed, else one made up; echoed back.
    public var requestID = ""
    /// The client IP used for rate limits and logs.
    public var clientIP = "unknown"
    /// Set by `AuthMiddleware` on authenticated routes.
    public var claims: AccessClaims?

    /// Bodies are collected by `BodyDecoding` with the configured limit; this is only the
    /// ceiling for Hummingbird's own decoders.
    public var maxUploadSize: Int { 64 << 20 }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The verified caller; a 401 if the route was not behind `AuthMiddleware`.
    public func caller() throws -> AccessClaims {
        guard let claims else { throw TernError.unauthorized() }
        return claims
    }
}
