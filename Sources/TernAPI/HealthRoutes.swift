import Hummingbird
import NIOCore
import TernCore
import TernStore

/// `/health` (alive), `/ready` (the store accepts writes), `/metrics` (Prometheus text).
///
/// `/health` and `/ready` keep the seed's top-level `status` key and add the envelope
/// fields next to it: `{"success": true, "status": "alive", "data": {"status": "alive"}}`.
struct HealthRoutes {
    let deps: APIDependencies
    let probe = ReadinessProbe()

    func register(on router: Router<TernRequestContext>) {
        router.get("health") { _, _ in
            try Envelope.json(["success": true, "status": "alive", "data": ["status": "alive"]])
        }
        router.get("ready") { _, _ in
            var status: [String: String] = [:]
            var problem: TernError?
            if let reason = deps.notReadyReason() {
                status["server"] = reason
                problem = TernError(.shuttingDown, reason, retryAfter: 5)
            } else {
                status["server"] = "ok"
            }
            if let failure = await probe.check(deps.store, clock: deps.clock) {
                status["store"] = failure.message
                problem = problem ?? failure
            } else {
                status["store"] = "ok"
            }
            if let problem {
                return try Envelope.json(
                    ["success": false, "status": status, "error": ["code": problem.code.rawValue, "message": problem.message]],
                    status: .serviceUnavailable)
            }
            return try Envelope.json(["success": true, "status": status, "data": ["status": status]])
        }
        router.get("metrics") { _, _ -> Response in
            guard let render = deps.metricsText else { throw TernError.notFound("metrics are disabled") }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: render())))
        }
    }
}

/// Proves the store is writable with a real group-committed write, at most once per
/// `interval` (readiness probes must not cost a fsync each).
final class ReadinessProbe: Sendable {
    private let state = Mutex()
    nonisolated(unsafe) private var last: (at: Timestamp, failure: TernError?)?
    let interval: Duration = .seconds(2)

    func check(_ store: Store, clock: any TernClock) async -> TernError? {
        let now = clock.now()
        if let cached = state.withLock({ last }), now < cached.at + interval { return cached.failure }
        var failure: TernError?
        do {
            try await store.probeWrite()
            let usage = try store.usage()
            if usage.usedFraction > 0.98 {
                failure = TernError(.storageFull, "store map is \(Int(usage.usedFraction * 100))% full")
            }
        } catch let error as StoreError {
            failure = error.clientError
        } catch {
            failure = TernError(.storeUnavailable, "store check failed")
        }
        state.withLock { last = (now, failure) }
        return failure
    }
}
