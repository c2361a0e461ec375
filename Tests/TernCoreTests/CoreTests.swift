import Testing

@testable import TernCore

@Suite("Core value types")
struct CoreTests {
    @Test("ids print as lowercase UUIDs and parse back")
    func ids() {
        let id = TernID.random()
        #expect(TernID(id.description) == id)
        #expect(TernID(id.description.uppercased()) == id)
        #expect(TernID(bytes: id.bytes) == id)
        #expect(id.description.count == 36)
        #expect(id.description == id.description.lowercased())
        #expect(Array(id.description)[14] == "4")
        #expect(TernID("not-a-uuid") == nil)
        #expect(TernID("123e4567-e89b-12d3-a456-42661417400g") == nil)
        #expect(TernID("123e4567e89b-12d3-a456-4266141740000") == nil)
        #expect(TernID("123e4567-e89b-12d3-a456-426614174000")?.description == "123e4567-e89b-12d3-a456-426614174000")
    }

    @Test("ids in sets and dictionaries: every one found, halves that fold alike do not collide, the seed matters")
    func idHashing() {
        var ids: [TernID] = (0..<20_000).map { _ in TernID.random() }
        // Ids built so that high ^ low·C (the old one-word fold) is the same for all of them.
        let c: UInt64 = 0x9E37_79B9_7F4A_7C15
        ids += (0..<1000).map { i in TernID(high: 42 ^ (UInt64(i) &* c), low: UInt64(i)) }
        let set = Set(ids)
        #expect(set.count == ids.count)
        #expect(ids.allSatisfy { set.contains($0) })
        var index: [TernID: Int] = [:]
        for (i, id) in ids.enumerated() { index[id] = i }
        #expect(ids.enumerated().allSatisfy { index[$0.element] == $0.offset })
        let crafted = ids.suffix(1000)
        for seed in [0, 1, Int.max, -7] {
            #expect(Set(crafted.map { $0._rawHashValue(seed: seed) }).count == crafted.count, "seed \(seed)")
        }
        let id = ids[0]
        #expect(id._rawHashValue(seed: 1) != id._rawHashValue(seed: 2))
        #expect(TernID(high: id.high, low: id.low)._rawHashValue(seed: 5) == id._rawHashValue(seed: 5))
        // Buckets stay even: 20,000 random ids over 256 buckets, none far from 78.
        var buckets = [Int](repeating: 0, count: 256)
        for id in ids.prefix(20_000) { buckets[id._rawHashValue(seed: 12345) & 255] += 1 }
        #expect(buckets.max()! < 140 && buckets.min()! > 30, "\(buckets.min()!)…\(buckets.max()!)")
    }

    @Test("timestamps format and parse RFC 3339")
    func timestamps() {
        #expect(Timestamp(milliseconds: 0).rfc3339 == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp(milliseconds: 1_764_164_520_123).rfc3339 == "2025-11-26T13:42:00.123Z")
        #expect(Timestamp(milliseconds: 951_782_400_000).rfc3339 == "2000-02-29T00:00:00.000Z")
        #expect(Timestamp(milliseconds: -1).rfc3339 == "1969-12-31T23:59:59.999Z")
        // Past year 9999 the fixed 24-byte form does not fit: the unpadded one is written.
        let far = Timestamp(milliseconds: 400_000_000_000_000)
        var scratch = [UInt8](repeating: 0, count: 24)
        #expect(!scratch.withUnsafeMutableBufferPointer { far.writeRFC3339(to: $0.baseAddress!) })
        #expect(far.rfc3339.hasPrefix("14645-") && far.rfc3339.hasSuffix("Z"))
        #expect(Timestamp(milliseconds: 253_402_300_799_999).rfc3339 == "9999-12-31T23:59:59.999Z")
        #expect(Timestamp(rfc3339: "2025-11-26T13:42:00.123Z")?.milliseconds == 1_764_164_520_123)
        #expect(Timestamp(rfc3339: "2025-11-26T14:42:00+01:00")?.milliseconds == 1_764_164_520_000)
        #expect(Timestamp(rfc3339: "2025-11-26T13:42:00.1234567Z")?.milliseconds == 1_764_164_520_123)
        #expect(Timestamp(rfc3339: "2022-01-01T00:00:00+00:00")?.milliseconds == 1_640_995_200_000)
        #expect(Timestamp(rfc3339: "2025-13-26T13:42:00Z") == nil)
        #expect(Timestamp(rfc3339: "yesterday") == nil)
        #expect(Timestamp(rfc3339: "2025-11-26T13:42:00") == nil)
        for _ in 0..<100 {
            let t = Timestamp(milliseconds: Int64.random(in: 0...4_102_444_800_000))
            #expect(Timestamp(rfc3339: t.rfc3339) == t)
        }
    }

    @Test("E.164 and phone normalisation")
    func phones() {
        #expect(Validate.isE164("+14155550123"))
        #expect(Validate.isE164("+447911123456"))
        #expect(!Validate.isE164("14155550123"))
        #expect(!Validate.isE164("+04155550123"))
        #expect(!Validate.isE164("+1415555012345678"))
        #expect(!Validate.isE164("+1 415 555"))
        #expect(!Validate.isE164("+"))
        #expect(Validate.normalizedPhone("+1 (415) 555-0123") == "+14155550123")
        #expect(Validate.normalizedPhone("0415 555") == nil)
    }

    @Test("text, url and token validation name the field")
    func validation() {
        #expect(throws: TernError.validation("display_name must be at most 3 characters")) {
            try Validate.text("abcd", field: "display_name", max: 3)
        }
        #expect(throws: TernError.self) { try Validate.text("a\u{0}b", field: "f", max: 10) }
        #expect(throws: TernError.self) { try Validate.text("a\nb", field: "f", max: 10) }
        #expect(throws: Never.self) { try Validate.text("a\nb", field: "f", max: 10, multiline: true) }
        #expect(throws: Never.self) { try Validate.text("Zoë 👋", field: "f", max: 5) }
        #expect(throws: TernError.self) { try Validate.url("javascript:alert(1)", field: "u", max: 100) }
        #expect(throws: Never.self) { try Validate.url("https://cdn.example/a.jpg", field: "u", max: 100) }
        #expect(throws: TernError.self) { try Validate.token("a b", field: "device_id", max: 10) }
        #expect(throws: TernError.self) { try Validate.token("", field: "device_id", max: 10) }
        #expect(throws: Never.self) { try Validate.token("pixel-8:a_b.c", field: "device_id", max: 20) }
    }

    @Test("text validation eight bytes at a time decides as a plain scalar walk does")
    func textValidationFuzz() {
        // The rule written the slow, obvious way.
        func reference(_ value: String, max: Int, allowEmpty: Bool, multiline: Bool) -> String? {
            if !allowEmpty && value.unicodeScalars.allSatisfy({ $0.properties.isWhitespace }) { return "empty" }
            if value.count > max { return "long" }
            for scalar in value.unicodeScalars where scalar.properties.generalCategory == .control {
                if multiline && (scalar == "\n" || scalar == "\t") { continue }
                return "control"
            }
            return nil
        }
        func outcome(_ value: String, max: Int, allowEmpty: Bool, multiline: Bool) -> String? {
            do {
                try Validate.text(value, field: "f", max: max, allowEmpty: allowEmpty, multiline: multiline)
                return nil
            } catch {
                let message = error.message
                return message.contains("empty") ? "empty" : message.contains("at most") ? "long" : "control"
            }
        }
        let alphabet: [String] = ["a", "Z", " ", "~", "\n", "\t", "\r", "\u{0}", "\u{1F}", "\u{7F}", "é", "👋", "\u{85}"]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<5000 {
            let length = Int.random(in: 0...40, using: &rng)
            var value = ""
            for _ in 0..<length {
                // Mostly plain ASCII, so that whole eight-byte words pass the fast check.
                value += Int.random(in: 0..<10, using: &rng) < 8 ? "a" : alphabet.randomElement(using: &rng)!
            }
            let max = Int.random(in: 0...45, using: &rng)
            let allowEmpty = Bool.random(using: &rng)
            let multiline = Bool.random(using: &rng)
            #expect(
                outcome(value, max: max, allowEmpty: allowEmpty, multiline: multiline)
                    == reference(value, max: max, allowEmpty: allowEmpty, multiline: multiline),
                "\(value.debugDescription) max \(max) allowEmpty \(allowEmpty) multiline \(multiline)")
        }
    }

    @Test("token buckets allow the burst, then refill at the rate, per key")
    func rateLimiter() {
        let clock = ManualClock()
        let limiter = RateLimiter(limit: .per(.seconds(60), 3), clock: clock)
        #expect(limiter.acquire("a") == nil)
        #expect(limiter.acquire("a") == nil)
        #expect(limiter.acquire("a") == nil)
        #expect(limiter.acquire("a") == 20)
        #expect(limiter.acquire("b") == nil, "keys are independent")
        clock.advance(by: .seconds(20))
        #expect(limiter.acquire("a") == nil)
        #expect(limiter.acquire("a") != nil)
    }

    @Test("the limiter forgets idle keys when it holds too many")
    func rateLimiterEviction() {
        let clock = ManualClock()
        let limiter = RateLimiter(limit: .per(.seconds(1), 10), clock: clock, maxKeys: 100)
        for i in 0..<100 { _ = limiter.acquire("k\(i)") }
        clock.advance(by: .seconds(5))
        _ = limiter.acquire("new")
        #expect(limiter.keyCount <= 100)
        _ = limiter.acquire("another")
        #expect(limiter.keyCount < 10)
    }
}
