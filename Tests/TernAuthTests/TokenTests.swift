import Foundation
import Testing
import TernCore
import TernSodium
import TernTestSupport

@testable import TernAuth

@Suite("Access tokens and signing keys")
struct TokenTests {
    @Test("a token verifies until it expires")
    func expiry() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let clock = ManualClock()
        let tokens = TokenService(keyRing: try KeyRing(directory: dir.path, clock: clock, createIfEmpty: true), clock: clock, accessTTL: .minutes(15))
        let claims = tokens.claims(userID: TernID.random(), sessionID: TernID.random(), deviceID: "d", deviceNumber: 1)
        let token = tokens.sign(claims)
        #expect(try tokens.verify(token) == claims)
        clock.advance(by: .minutes(14))
        #expect(try tokens.verify(token) == claims)
        clock.advance(by: .minutes(1))
        #expect(throws: TernError(.tokenExpired, "access token expired; refresh it")) { try tokens.verify(token) }
    }

    @Test("tokens from another key, with an unknown key id, or tampered are rejected")
    func rejection() throws {
        let dirA = TemporaryDirectory()
        let dirB = TemporaryDirectory()
        defer { dirA.remove(); dirB.remove() }
        let clock = ManualClock()
        let a = TokenService(keyRing: try KeyRing(directory: dirA.path, clock: clock, createIfEmpty: true), clock: clock, accessTTL: .minutes(15))
        let b = TokenService(keyRing: try KeyRing(directory: dirB.path, clock: clock, createIfEmpty: true), clock: clock, accessTTL: .minutes(15))
        let claims = a.claims(userID: TernID.random(), sessionID: TernID.random(), deviceID: "d", deviceNumber: 1)
        let invalid = TernError(.tokenInvalid, "invalid access token")
        // Unknown key id: signed by B's key, B's kid.
        #expect(throws: invalid) { try a.verify(b.sign(claims)) }
        // Wrong key under a known key id: B's signature, A's kid in the footer.
        let forged = PasetoV4Public.sign(
            message: Array(#"{"dev":"d","dvn":1,"exp":"2099-01-01T00:00:00.000Z","iat":"2026-01-01T00:00:00.000Z","iss":"tern","sid":"\#(TernID.random())","sub":"\#(TernID.random())"}"#.utf8),
            footer: Array(#"{"kid":"\#(a.keyRing.active.kid)"}"#.utf8), keyPair: b.keyRing.active.keyPair)
        #expect(throws: invalid) { try a.verify(forged) }
        // Right key, wrong issuer.
        let wrongIssuer = PasetoV4Public.sign(
            message: Array(#"{"dev":"d","dvn":1,"exp":"2099-01-01T00:00:00.000Z","iat":"2026-01-01T00:00:00.000Z","iss":"other","sid":"\#(TernID.random())","sub":"\#(TernID.random())"}"#.utf8),
            footer: Array(#"{"kid":"\#(a.keyRing.active.kid)"}"#.utf8), keyPair: a.keyRing.active.keyPair)
        #expect(throws: invalid) { try a.verify(wrongIssuer) }
        // Tampered payload byte.
        let token = a.sign(claims)
        var chars = Array(token)
        let i = "v4.public.".count + 5
        chars[i] = chars[i] == "A" ? "B" : "A"
        #expect(throws: invalid) { try a.verify(String(chars)) }
        #expect(throws: invalid) { try a.verify("") }
        #expect(throws: invalid) { try a.verify(String(repeating: "x", count: 10_000)) }
    }

    @Test("rotation: a new key signs, older keys still verify, another process's new key is found")
    func rotation() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let clock = ManualClock()
        let ring = try KeyRing(directory: dir.path, clock: clock, createIfEmpty: true)
        let tokens = TokenService(keyRing: ring, clock: clock, accessTTL: .minutes(15))
        let claims = tokens.claims(userID: TernID.random(), sessionID: TernID.random(), deviceID: "d", deviceNumber: 1)
        let old = tokens.sign(claims)
        let firstKid = ring.active.kid
        // `tern keys rotate` in another process: a new file appears.
        clock.advance(by: .seconds(1))
        let added = try KeyRing.create(in: dir.path, clock: clock)
        // A token signed with the new key (e.g. by another instance) verifies at once:
        // the unknown kid triggers a reload.
        let otherInstance = TokenService(keyRing: try KeyRing(directory: dir.path, clock: clock, createIfEmpty: false), clock: clock, accessTTL: .minutes(15))
        #expect(otherInstance.keyRing.active.kid == added.kid)
        #expect(try tokens.verify(otherInstance.sign(claims)) == claims)
        #expect(ring.active.kid == added.kid, "the reload also switched signing to the newest key")
        #expect(try tokens.verify(old) == claims, "tokens signed with the old key keep working")
        #expect(ring.all.map(\.kid) == [firstKid, added.kid])
        let newToken = tokens.sign(claims)
        #expect(try PasetoV4Public.unverifiedFooter(newToken) == Array(#"{"kid":"\#(added.kid)"}"#.utf8))
    }

    @Test("key files are private and a damaged one is reported, not ignored")
    func keyFiles() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let clock = ManualClock()
        _ = try KeyRing(directory: dir.file("keys"), clock: clock, createIfEmpty: true)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.file("keys"))
        #expect(files.count == 1)
        let attributes = try FileManager.default.attributesOfItem(atPath: dir.file("keys/\(files[0])"))
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let dirAttributes = try FileManager.default.attributesOfItem(atPath: dir.file("keys"))
        #expect((dirAttributes[.posixPermissions] as? Int) == 0o700)
        try "not json".write(toFile: dir.file("keys/signing-1.key"), atomically: true, encoding: .utf8)
        #expect(throws: TernError.self) { try KeyRing(directory: dir.file("keys"), clock: clock, createIfEmpty: true) }
        #expect(throws: TernError.self) { try KeyRing(directory: dir.file("empty"), clock: clock, createIfEmpty: false) }
    }

    @Test("the OTP secret is created once and then reused")
    func secretFile() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let first = try SecretFiles.loadOrCreate(dir.file("k/otp.key"), length: 32)
        let second = try SecretFiles.loadOrCreate(dir.file("k/otp.key"), length: 32)
        #expect(first == second && first.count == 32)
        try "short".write(toFile: dir.file("k/otp.key"), atomically: true, encoding: .utf8)
        #expect(throws: TernError.self) { try SecretFiles.loadOrCreate(dir.file("k/otp.key"), length: 32) }
    }
}
