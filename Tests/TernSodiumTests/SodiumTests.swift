import Foundation
import Testing

@testable import TernSodium

@Suite("libsodium wrapper")
struct SodiumTests {
    func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    @Test("SHA-256 and BLAKE2b match published test vectors")
    func digests() {
        #expect(hex(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // BLAKE2b-512 of the empty string (RFC 7693 appendix / reference implementation).
        #expect(
            hex(BLAKE2b.hash([], outputLength: 64))
                == "786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce")
        #expect(BLAKE2b.hash([1, 2, 3], outputLength: 33).count == 33)
        #expect(BLAKE2b.hash([1], key: [UInt8](repeating: 1, count: 32)) != BLAKE2b.hash([1], key: [UInt8](repeating: 2, count: 32)))
    }

    @Test("Ed25519 signatures verify only for the right key and message")
    func ed25519() throws {
        let (pair, seed) = Ed25519KeyPair.generate()
        #expect(try Ed25519KeyPair(seed: seed).publicKey == pair.publicKey)
        let message = Array("hello".utf8)
        let sig = pair.sign(message)
        #expect(Ed25519KeyPair.verify(signature: sig, message: message, publicKey: pair.publicKey))
        #expect(!Ed25519KeyPair.verify(signature: sig, message: Array("hellO".utf8), publicKey: pair.publicKey))
        var bad = sig
        bad[0] ^= 1
        #expect(!Ed25519KeyPair.verify(signature: bad, message: message, publicKey: pair.publicKey))
        #expect(!Ed25519KeyPair.verify(signature: sig, message: message, publicKey: Ed25519KeyPair.generate().keyPair.publicKey))
        #expect(!Ed25519KeyPair.verify(signature: Array(sig.prefix(10)), message: message, publicKey: pair.publicKey))
        #expect(throws: SodiumError.self) { try Ed25519KeyPair(seed: [1, 2, 3]) }
    }

    @Test("base64url round-trips and rejects padding and foreign characters")
    func base64url() throws {
        for n in 0..<40 {
            let bytes = SecureRandom.bytes(n)
            #expect(try Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
        #expect(throws: SodiumError.self) { try Base64URL.decode("-_8=") }
        #expect(throws: SodiumError.self) { try Base64URL.decode("+/8") }
        #expect(throws: SodiumError.self) { try Base64URL.decode("ab cd") }
        #expect(throws: SodiumError.self) { try Base64URL.decode("-_9") }  // non-zero trailing bits
    }

    @Test("HMAC tags, constant-time comparison and random digits")
    func misc() {
        let key = SecureRandom.bytes(32)
        let tag = MessageAuthentication.tag([1, 2, 3], key: key)
        #expect(MessageAuthentication.verify(tag, [1, 2, 3], key: key))
        #expect(!MessageAuthentication.verify(tag, [1, 2, 4], key: key))
        #expect(constantTimeEquals([1, 2], [1, 2]))
        #expect(!constantTimeEquals([1, 2], [1, 3]))
        #expect(!constantTimeEquals([1, 2], [1, 2, 3]))
        var seen = Set<Character>()
        for _ in 0..<200 {
            let code = SecureRandom.digits(6)
            #expect(code.count == 6 && code.allSatisfy(\.isNumber))
            seen.formUnion(code)
        }
        #expect(seen.count == 10, "all ten digits appear in 1,200 random digits")
        #expect(SecureRandom.bytes(32) != SecureRandom.bytes(32))
    }
}
