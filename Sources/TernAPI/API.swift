// TernAPI owns Tern's HTTP surface (Hummingbird 2): the `{success,data,error}` envelope on
// every JSON response (404 and 405 included), request ids, body limits, per-IP and per-user
// rate limits, bearer authentication, and the auth, users and health routes of the seed's
// contract (docs/protocol.md).
//
// What it promises: a client's mistake is a 4xx with a stable code naming the problem, never
// a 500; internal errors are logged with the request id and shown only as INTERNAL_ERROR.
//
// Concurrency contract: handlers never block an event loop — every store access goes
// through `Store.read`/`Store.write`, which hop to the store's own threads.
import HTTPTypes
import Hummingbird
import Logging
import TernAuth
import TernCore
import TernMedia
import TernRelay
import TernStore

/// Everything the routes need, assembled by the server.
public struct APIDependencies: Sendable {
    public var store: Store
    public var auth: AuthService
    public var relay: Relay
    public var clock: any TernClock
    /// Largest JSON body accepted (`http.max_body_size`).
    public var maxBodySize: Int
    public var trustForwardedFor: Bool
    public var ipLimit: RateLimit
    public var userLimit: RateLimit
    /// Echo login codes in `request-otp` responses (tests and development only).
    public var echoOTP: Bool
    /// Renders `/metrics` (Prometheus text); nil when metrics are off.
    public var metricsText: (@Sendable () -> String)?
    /// Readiness beyond the store (e.g. "draining" during shutdown); nil means ready.
    public var notReadyReason: @Sendable () -> String?
    /// Uploads and downloads; nil serves no media routes.
    public var media: MediaService?
    /// Uploads per user (`media.upload_rate`).
    public var uploadLimit = RateLimit.per(.minutes(1), 60)

    public init(
        store: Store, auth: AuthService, relay: Relay, clock: any TernClock, maxBodySize: Int, trustForwardedFor: Bool,
        ipLimit: RateLimit, userLimit: RateLimit, echoOTP: Bool, metricsText: (@Sendable () -> String)?,
        notReadyReason: @escaping @Sendable () -> String? = { nil }, media: MediaService? = nil,
        uploadLimit: RateLimit = .per(.minutes(1), 60)
    ) {
        self.store = store
        self.auth = auth
        self.relay = relay
        self.clock = clock
        self.maxBodySize = maxBodySize
        self.trustForwardedFor = trustForwardedFor
        self.ipLimit = ipLimit
        self.userLimit = userLimit
        self.echoOTP = echoOTP
        self.metricsText = metricsText
        self.notReadyReason = notReadyReason
        self.media = media
        self.uploadLimit = uploadLimit
    }
}

/// Builds the router with every route and middleware of the API.
public func buildRouter(_ deps: APIDependencies) -> Router<TernRequestContext> {
    let router = Router(context: TernRequestContext.self)
    let metrics = APIMetrics()
    router.add(middleware: EdgeMiddleware(trustForwardedFor: deps.trustForwardedFor, metrics: metrics))

    // Operational endpoints: not rate limited, not enveloped where the seed fixed a shape.
    HealthRoutes(deps: deps).register(on: router)

    let ipLimiter = RateLimiter(limit: deps.ipLimit, clock: deps.clock)
    let userLimiter = RateLimiter(limit: deps.userLimit, clock: deps.clock)
    let ipLimit = IPRateLimitMiddleware(limiter: ipLimiter, metrics: metrics)
    let public_ = router.group("api/v1").add(middleware: ipLimit)
    AuthRoutes(deps: deps).register(on: public_.group("auth"))

    let authed = router.group("api/v1")
        .add(middleware: ipLimit)
        .add(middleware: AuthMiddleware(auth: deps.auth, limiter: userLimiter, metrics: metrics))
    UserRoutes(deps: deps, directory: UserDirectory(store: deps.store, clock: deps.clock, registry: deps.relay.registry)).register(on: authed)
    let chats = ChatService(store: deps.store, clock: deps.clock, registry: deps.relay.registry)
    ChatRoutes(deps: deps, chats: chats, groups: GroupService(relay: deps.relay)).register(on: authed)
    MessageRoutes(deps: deps, chats: chats).register(on: authed)
    if let media = deps.media {
        let uploads = RateLimiter(limit: deps.uploadLimit, clock: deps.clock)
        MediaRoutes(deps: deps, media: media, uploadLimiter: uploads).register(authed: authed, public: router)
        TusRoutes(deps: deps, media: media, uploadLimiter: uploads).register(authed: authed, public: router)
        AvatarRoutes(deps: deps, media: media, groups: GroupService(relay: deps.relay), uploadLimiter: uploads).register(on: authed)
    }
    // A plain GET of the WebSocket path (no upgrade headers) explains itself.
    router.get("ws") { _, _ -> Response in
        throw TernError(.badRequest, "this is the WebSocket endpoint: connect with a WebSocket upgrade and an access token")
    }

    addMethodNotAllowedHandlers(to: router)
    return router
}

/// Hummingbird answers a known path with an unknown method as 404; register explicit 405
/// handlers (with `Allow`) for every path so clients learn what the path accepts.
func addMethodNotAllowedHandlers(to router: Router<TernRequestContext>) {
    var byPath: [String: (path: RouterPath, methods: Set<HTTPRequest.Method>)] = [:]
    for route in router.routes {
        byPath[route.path.description, default: (route.path, [])].methods.insert(route.method)
    }
    for (_, entry) in byPath {
        let allow = entry.methods.map(\.rawValue).sorted().joined(separator: ", ")
        for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch] where !entry.methods.contains(method) {
            router.on(entry.path, method: method) { request, _ -> Response in
                throw HTTPError(.methodNotAllowed, headers: [.allow: allow], message: "\(request.method.rawValue) not allowed")
            }
        }
    }
}
