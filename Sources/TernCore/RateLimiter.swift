/// A token bucket's parameters: `burst` requests at once, refilled at `perSecond`.
public struct RateLimit: Sendable, Equatable {
    public var burst: Double
    public var perSecond: Double

    public init(burst: Double, perSecond: Double) {
        self.burst = burst
        self.perSecond = perSecond
    }

    /// `count` requests per `period`, all of which may come at once.
    public static func per(_ period: Duration, _ count: Int) -> RateLimit {
        let seconds = Double(period.components.seconds) + Double(period.components.attoseconds) / 1e18
        return RateLimit(burst: Double(count), perSecond: Double(count) / max(seconds, 0.001))
    }

    /// The same limit scaled by `factor` (test mode relaxes limits this way).
    public func scaled(_ factor: Double) -> RateLimit {
        RateLimit(burst: burst * factor, perSecond: perSecond * factor)
    }
}

/// Keyed token buckets (per IP, per user, per phone), in memory, driven by an injected clock.
///
/// Memory is bounded: when more than `maxKeys` buckets exist, buckets that have refilled
/// completely (and so carry no state) are dropped, then the oldest ones.
public final class RateLimiter: @unchecked Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: Timestamp
    }

    public let limit: RateLimit
    private let clock: any TernClock
    private let maxKeys: Int
    private let state = Mutex()
    private var buckets: [String: Bucket] = [:]

    public init(limit: RateLimit, clock: any TernClock, maxKeys: Int = 100_000) {
        self.limit = limit
        self.clock = clock
        self.maxKeys = maxKeys
    }

    /// Takes one token for `key`. Returns nil if allowed, otherwise the whole seconds until a
    /// token is available (for `Retry-After`).
    public func acquire(_ key: String, cost: Double = 1) -> Int? {
        let now = clock.now()
        return state.withLock {
            var bucket = buckets[key] ?? Bucket(tokens: limit.burst, updated: now)
            let elapsed = Double(max(0, now.milliseconds - bucket.updated.milliseconds)) / 1000
            bucket.tokens = min(limit.burst, bucket.tokens + elapsed * limit.perSecond)
            bucket.updated = now
            if bucket.tokens >= cost {
                bucket.tokens -= cost
                buckets[key] = bucket
                if buckets.count > maxKeys { evict(now) }
                return nil
            }
            buckets[key] = bucket
            let wait = (cost - bucket.tokens) / max(limit.perSecond, 1e-9)
            return max(1, Int(wait.rounded(.up)))
        }
    }

    /// Buckets currently held (for tests and metrics).
    public var keyCount: Int { state.withLock { buckets.count } }

    private func evict(_ now: Timestamp) {
        buckets = buckets.filter { _, bucket in
            let elapsed = Double(max(0, now.milliseconds - bucket.updated.milliseconds)) / 1000
            return bucket.tokens + elapsed * limit.perSecond < limit.burst
        }
        if buckets.count > maxKeys {
            let keep = buckets.sorted { $0.value.updated > $1.value.updated }.prefix(maxKeys / 2)
            buckets = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
    }
}
