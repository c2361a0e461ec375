/// `seed` with one to three random edits (a byte replaced, removed or inserted from
/// `alphabet`): the inputs of the tests that check a fast parser against the general one.
public func mutated(_ seed: [UInt8], alphabet: [UInt8], using rng: inout some RandomNumberGenerator) -> [UInt8] {
    var bytes = seed
    for _ in 0..<Int.random(in: 1...3, using: &rng) {
        if bytes.isEmpty { break }
        let at = Int.random(in: 0..<bytes.count, using: &rng)
        switch Int.random(in: 0..<3, using: &rng) {
        case 0: bytes[at] = alphabet.randomElement(using: &rng)!
        case 1: bytes.remove(at: at)
        default: bytes.insert(alphabet.randomElement(using: &rng)!, at: at)
        }
    }
    return bytes
}
