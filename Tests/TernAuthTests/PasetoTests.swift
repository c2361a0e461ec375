import Foundation
import Testing
import TernCore
import TernSodium
import TernTestSupport

@testable import TernAuth

struct Vector: Decodable {
    let name: String
    let expectFail: Bool
    let publicKey: String
    let secretKeySeed: String?
    let token: String
    let payload: String?
    let footer: String
    let implicitAssertion: String

    enum CodingKeys: String, CodingKey {
        case name, token, payload, footer
        case expectFail = "expect-fail"
        case publicKey = "public-key"
        case secretKeySeed = "secret-key-seed"
        case implicitAssertion = "implicit-assertion"
    }
}

func hexBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var chars = Array(s.utf8)[...]
    while chars.count >= 2 {
        out.append(UInt8(String(decoding: chars.prefix(2), as: UTF8.self), radix: 16)!)
        chars = chars.dropFirst(2)
    }
    return out
}

func loadVectors() throws -> [Vector] {
    let url = Bundle.module.url(forResource: "paseto-v4", withExtension: "json", subdirectory: "Fixtures")!
    struct File: Decodable { let tests: [Vector] }
    return try JSONDecoder().decode(File.self, from: Data(contentsOf: url)).tests
}

@Suite("PASETO v4.public")
struct PasetoTests {
    @Test("official test vectors: valid tokens verify, signing reproduces them exactly, failures are rejected")
    func vectors() throws {
        let vectors = try loadVectors()
        #expect(vectors.count == 6)
        for v in vectors {
            let publicKey = hexBytes(v.publicKey)
            let implicit = Array(v.implicitAssertion.utf8)
            if v.expectFail {
                #expect(throws: PasetoError.self, "\(v.name) must fail") {
                    try PasetoV4Public.verify(v.token, publicKey: publicKey, implicit: implicit)
                }
                continue
            }
            let (message, footer) = try PasetoV4Public.verify(v.token, publicKey: publicKey, implicit: implicit)
            #expect(String(decoding: message, as: UTF8.self) == v.payload, "\(v.name) payload")
            #expect(String(decoding: footer, as: UTF8.self) == v.footer, "\(v.name) footer")
            let pair = try Ed25519KeyPair(seed: hexBytes(v.secretKeySeed!))
            #expect(pair.publicKey == publicKey)
            let signed = PasetoV4Public.sign(
                message: Array(v.payload!.utf8), footer: Array(v.footer.utf8), implicit: implicit, keyPair: pair)
            #expect(signed == v.token, "\(v.name) signing is deterministic")
            // The implicit assertion is authenticated too.
            #expect(throws: PasetoError.badSignature) {
                try PasetoV4Public.verify(v.token, publicKey: publicKey, implicit: Array("other".utf8))
            }
        }
    }

    @Test("tampered, truncated and foreign tokens are rejected")
    func tampering() throws {
        let pair = Ed25519KeyPair.generate().keyPair
        let token = PasetoV4Public.sign(message: Array("{\"a\":1}".utf8), footer: Array("{\"kid\":\"x\"}".utf8), keyPair: pair)
        _ = try PasetoV4Public.verify(token, publicKey: pair.publicKey)
        let parts = token.split(separator: ".").map(String.init)
        var body = try Base64URL.decode(parts[2])
        body[2] ^= 0x01
        let tamperedBody = "v4.public.\(Base64URL.encode(body)).\(parts[3])"
        #expect(throws: PasetoError.badSignature) { try PasetoV4Public.verify(tamperedBody, publicKey: pair.publicKey) }
        let otherFooter = "v4.public.\(parts[2]).\(Base64URL.encode(Array("{\"kid\":\"y\"}".utf8)))"
        #expect(throws: PasetoError.badSignature) { try PasetoV4Public.verify(otherFooter, publicKey: pair.publicKey) }
        let noFooter = "v4.public.\(parts[2])"
        #expect(throws: PasetoError.badSignature) { try PasetoV4Public.verify(noFooter, publicKey: pair.publicKey) }
        let other = Ed25519KeyPair.generate().keyPair
        #expect(throws: PasetoError.badSignature) { try PasetoV4Public.verify(token, publicKey: other.publicKey) }
        for garbage in ["", "v4.public.", "v4.public.!!!", "v3.public.\(parts[2])", "v4.public.\(parts[2]).\(parts[3]).x",
            "v4.public.AAAA", String(token.dropLast(3))]
        {
            #expect(throws: PasetoError.self, "\(garbage)") { try PasetoV4Public.verify(garbage, publicKey: pair.publicKey) }
        }
    }

    @Test("pre-authentication encoding matches the specification's examples")
    func pae() {
        #expect(PasetoV4Public.pae([]) == [0, 0, 0, 0, 0, 0, 0, 0])
        #expect(PasetoV4Public.pae([[]]) == [1, 0, 0, 0, 0, 0, 0, 0] + [0, 0, 0, 0, 0, 0, 0, 0])
        #expect(
            PasetoV4Public.pae([Array("test".utf8)])
                == [1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0] + Array("test".utf8))
    }
}

@Suite("PASETO interop with pyseto")
struct PysetoInteropTests {
    /// Runs a Python snippet; fails the test with a clear message if pyseto is missing.
    func python(_ script: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script] + arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            Issue.record("python3 failed (is pyseto installed? Ops/test installs it): \(stderr)")
            throw CancellationError()
        }
        return stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("pyseto verifies Tern's access tokens and computes the same key id")
    func pysetoVerifiesOurs() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let clock = SystemClock()
        let ring = try KeyRing(directory: dir.path, clock: clock, createIfEmpty: true)
        let tokens = TokenService(keyRing: ring, clock: clock, accessTTL: .minutes(15))
        let claims = tokens.claims(userID: TernID.random(), sessionID: TernID.random(), deviceID: "dev-1", deviceNumber: 7)
        let token = tokens.sign(claims)
        let script = """
            import sys, json, pyseto
            from pyseto import Key
            pub = bytes.fromhex(sys.argv[1])
            key = Key.from_asymmetric_key_params(4, x=pub)
            decoded = pyseto.decode(key, sys.argv[2])
            print(json.dumps({"payload": json.loads(decoded.payload), "footer": json.loads(decoded.footer), "pid": key.to_paserk_id()}))
            """
        let hex = ring.active.keyPair.publicKey.map { String(format: "%02x", $0) }.joined()
        let output = try python(script, [hex, token])
        let json = try JSONSerialization.jsonObject(with: Data(output.utf8)) as! [String: Any]
        let payload = json["payload"] as! [String: Any]
        let footer = json["footer"] as! [String: Any]
        #expect(payload["sub"] as? String == claims.userID.description)
        #expect(payload["sid"] as? String == claims.sessionID.description)
        #expect(payload["dev"] as? String == "dev-1")
        #expect(payload["exp"] as? String == claims.expiresAt.rfc3339)
        #expect(footer["kid"] as? String == ring.active.kid)
        #expect(json["pid"] as? String == ring.active.kid, "our PASERK id equals pyseto's")
    }

    @Test("Tern verifies a token signed by pyseto")
    func weVerifyPysetos() throws {
        let (pair, seed) = Ed25519KeyPair.generate()
        let script = """
            import sys, pyseto
            from pyseto import Key
            key = Key.from_asymmetric_key_params(4, d=bytes.fromhex(sys.argv[2]))
            token = pyseto.encode(key, b'{"hello":"tern"}', footer=b'{"kid":"k"}', implicit_assertion=b'ia')
            print(token.decode())
            """
        let hex = { (b: [UInt8]) in b.map { String(format: "%02x", $0) }.joined() }
        let token = try python(script, [hex(pair.publicKey), hex(seed)])
        let (message, footer) = try PasetoV4Public.verify(token, publicKey: pair.publicKey, implicit: Array("ia".utf8))
        #expect(String(decoding: message, as: UTF8.self) == "{\"hello\":\"tern\"}")
        #expect(String(decoding: footer, as: UTF8.self) == "{\"kid\":\"k\"}")
    }
}
