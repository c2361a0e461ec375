#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A point in time as milliseconds since the Unix epoch (UTC). The unit used in every
/// stored record and in the wire's integer timestamps.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.milliseconds < b.milliseconds }

    public static func + (a: Timestamp, d: Duration) -> Timestamp {
        Timestamp(milliseconds: a.milliseconds + d.wholeMilliseconds)
    }

    public static func - (a: Timestamp, b: Timestamp) -> Duration { .milliseconds(a.milliseconds - b.milliseconds) }

    public var seconds: Int64 { milliseconds / 1000 }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-26T13:42:00.123Z`.
    public var rfc3339: String {
        var fixed = String(unsafeUninitializedCapacity: 24) { buffer in writeRFC3339(to: buffer.baseAddress!) ? 24 : 0 }
        if fixed.isEmpty {
            let (year, month, day, h, m, s, f) = fields
            fixed = "\(year)-\(month)-\(day)T\(h):\(m):\(s).\(f)Z"
        }
        return fixed
    }

    /// Writes the 24 bytes of `rfc3339` at `p` (no `String` made: this runs for every
    /// message frame); false, with nothing written, for a year outside 0...9999.
    public func writeRFC3339(to p: UnsafeMutablePointer<UInt8>) -> Bool {
        let (year, month, day, h, m, s, f) = fields
        guard (0...9999).contains(year) else { return false }
        func put(_ v: Int64, _ width: Int, at offset: Int) { DecimalText.write(UInt64(v), digits: width, to: p + offset) }
        put(year, 4, at: 0)
        p[4] = 45
        put(month, 2, at: 5)
        p[7] = 45
        put(day, 2, at: 8)
        p[10] = 84
        put(h, 2, at: 11)
        p[13] = 58
        put(m, 2, at: 14)
        p[16] = 58
        put(s, 2, at: 17)
        p[19] = 46
        put(f, 3, at: 20)
        p[23] = 90
        return true
    }

    /// The civil date and time in UTC (Howard Hinnant's civil-from-days).
    private var fields: (year: Int64, month: Int64, day: Int64, h: Int64, m: Int64, s: Int64, f: Int64) {
        let ms = milliseconds
        var days = ms >= 0 ? ms / 86_400_000 : (ms - 86_399_999) / 86_400_000
        let msOfDay = ms - days * 86_400_000
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let doe = days - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day, msOfDay / 3_600_000, msOfDay / 60_000 % 60, msOfDay / 1000 % 60, msOfDay % 1000)
    }

    /// Parses RFC 3339 (`Z` or a numeric offset, optional fraction). Nil if malformed.
    public init?(rfc3339 text: String) {
        let c = Array(text.utf8)
        func num(_ from: Int, _ count: Int) -> Int64? {
            guard from + count <= c.count else { return nil }
            var v: Int64 = 0
            for b in c[from..<(from + count)] {
                guard b >= 48 && b <= 57 else { return nil }
                v = v * 10 + Int64(b - 48)
            }
            return v
        }
        guard c.count >= 20, c[4] == 45, c[7] == 45, c[10] == 84 || c[10] == 116, c[13] == 58, c[16] == 58,
            let year = num(0, 4), let month = num(5, 2), let day = num(8, 2),
            let hour = num(11, 2), let minute = num(14, 2), let second = num(17, 2),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var i = 19
        var millis: Int64 = 0
        if i < c.count && c[i] == 46 {
            i += 1
            var digits = 0
            while i < c.count && c[i] >= 48 && c[i] <= 57 {
                if digits < 3 { millis = millis * 10 + Int64(c[i] - 48) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            if digits < 3 { for _ in digits..<3 { millis *= 10 } }
        }
        guard i < c.count else { return nil }
        var offsetMinutes: Int64 = 0
        if c[i] == 90 || c[i] == 122 {
            i += 1
        } else if c[i] == 43 || c[i] == 45 {
            guard let oh = num(i + 1, 2), c.count > i + 3, c[i + 3] == 58, let om = num(i + 4, 2) else { return nil }
            offsetMinutes = (oh * 60 + om) * (c[i] == 45 ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == c.count else { return nil }
        // Days-from-civil.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetMinutes * 60
        self.init(milliseconds: seconds * 1000 + millis)
    }

    public var description: String { rfc3339 }
}

extension Duration {
    /// The duration in whole milliseconds (truncated).
    public var wholeMilliseconds: Int64 {
        let (s, a) = components
        return s * 1000 + a / 1_000_000_000_000_000
    }

    /// The duration in whole seconds (truncated).
    public var wholeSeconds: Int64 { components.seconds }

    /// The duration in whole nanoseconds (truncated), for metrics timers.
    public var wholeNanoseconds: Int64 {
        let (s, a) = components
        return s * 1_000_000_000 + a / 1_000_000_000
    }
}

/// The source of "now" for everything that expires: tokens, codes, rate limits. Injected so
/// tests can move time without sleeping.
public protocol TernClock: Sendable {
    func now() -> Timestamp
}

/// Wall-clock time from the system.
public struct SystemClock: TernClock {
    public init() {}

    public func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(milliseconds: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
    }
}

/// A clock that moves only when told to; for tests of expiry and rate limits.
public final class ManualClock: TernClock, @unchecked Sendable {
    private let lock = Mutex()
    private var current: Timestamp

    public init(_ start: Timestamp = Timestamp(milliseconds: 1_800_000_000_000)) { current = start }

    public func now() -> Timestamp { lock.withLock { current } }

    /// Moves time forward by `duration`.
    public func advance(by duration: Duration) {
        lock.withLock { current = current + duration }
    }
}

/// A small pthread mutex, for state shared across threads outside Swift concurrency
/// (the writer thread, NIO threads).
public final class Mutex: @unchecked Sendable {
    private var raw = pthread_mutex_t()

    public init() { pthread_mutex_init(&raw, nil) }
    deinit { pthread_mutex_destroy(&raw) }

    @inline(__always)
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&raw)
        defer { pthread_mutex_unlock(&raw) }
        return try body()
    }
}

extension Duration {
    /// `n` minutes.
    public static func minutes(_ n: Int64) -> Duration { .seconds(n * 60) }
    /// `n` hours.
    public static func hours(_ n: Int64) -> Duration { .seconds(n * 3600) }
    /// `n` days.
    public static func days(_ n: Int64) -> Duration { .seconds(n * 86_400) }
}
