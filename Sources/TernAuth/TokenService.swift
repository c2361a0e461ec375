import Foundation
import TernCore
import TernSodium

/// What a verified access token says: who, on which device, in which session, until when.
public struct AccessClaims: Sendable, Equatable {
    public var userID: TernID
    public var sessionID: TernID
    /// The device id the client knows (`device_id`).
    public var deviceID: String
    /// The store's number for the device.
    public var deviceNumber: UInt64
    public var issuedAt: Timestamp
    public var expiresAt: Timestamp

    public init(userID: TernID, sessionID: TernID, deviceID: String, deviceNumber: UInt64, issuedAt: Timestamp, expiresAt: Timestamp) {
        self.userID = userID
        self.sessionID = sessionID
        self.deviceID = deviceID
        self.deviceNumber = deviceNumber
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
    }
}

/// Issues and verifies access tokens (PASETO v4.public, key id in the footer) and makes
/// refresh tokens (random, stored only as SHA-256).
///
/// Access token payload (JSON): `iss` ("tern"), `sub` (user id), `sid` (session id), `dev`
/// (device id), `dvn` (device number), `iat`, `exp` (RFC 3339). Footer: `{"kid":"k4.pid.…"}`.
public final class TokenService: Sendable {
    public let keyRing: KeyRing
    public let accessTTL: Duration
    private let clock: any TernClock
    public static let issuer = "tern"

    public init(keyRing: KeyRing, clock: any TernClock, accessTTL: Duration) {
        self.keyRing = keyRing
        self.clock = clock
        self.accessTTL = accessTTL
    }

    private struct Payload: Codable {
        var iss: String
        var sub: String
        var sid: String
        var dev: String
        var dvn: UInt64
        var iat: String
        var exp: String
    }

    private struct Footer: Codable {
        var kid: String
    }

    /// Claims for a new access token issued now.
    public func claims(userID: TernID, sessionID: TernID, deviceID: String, deviceNumber: UInt64) -> AccessClaims {
        let now = clock.now()
        return AccessClaims(
            userID: userID, sessionID: sessionID, deviceID: deviceID, deviceNumber: deviceNumber,
            issuedAt: now, expiresAt: now + accessTTL)
    }

    /// Signs `claims` with the active key.
    public func sign(_ claims: AccessClaims) -> String {
        let key = keyRing.active
        let payload = Payload(
            iss: Self.issuer, sub: claims.userID.description, sid: claims.sessionID.description,
            dev: claims.deviceID, dvn: claims.deviceNumber, iat: claims.issuedAt.rfc3339, exp: claims.expiresAt.rfc3339)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings and integers cannot fail.
        let message = try! encoder.encode(payload)
        let footer = try! encoder.encode(Footer(kid: key.kid))
        return PasetoV4Public.sign(message: Array(message), footer: Array(footer), keyPair: key.keyPair)
    }

    /// Verifies signature, issuer and expiry. Throws `TOKEN_INVALID` or `TOKEN_EXPIRED`
    /// (both 401); the reason for an invalid token is not disclosed.
    public func verify(_ token: String) throws(TernError) -> AccessClaims {
        let invalid = TernError(.tokenInvalid, "invalid access token")
        guard token.utf8.count <= 4096 else { throw invalid }
        let decoder = JSONDecoder()
        guard let footerBytes = try? PasetoV4Public.unverifiedFooter(token),
            let footer = try? decoder.decode(Footer.self, from: Data(footerBytes)),
            let publicKey = keyRing.publicKey(for: footer.kid),
            let (message, _) = try? PasetoV4Public.verify(token, publicKey: publicKey),
            let payload = try? decoder.decode(Payload.self, from: Data(message)),
            payload.iss == Self.issuer,
            let user = TernID(payload.sub), let session = TernID(payload.sid),
            let issued = Timestamp(rfc3339: payload.iat), let expires = Timestamp(rfc3339: payload.exp)
        else { throw invalid }
        if clock.now() >= expires { throw TernError(.tokenExpired, "access token expired; refresh it") }
        return AccessClaims(
            userID: user, sessionID: session, deviceID: payload.dev, deviceNumber: payload.dvn,
            issuedAt: issued, expiresAt: expires)
    }

    /// A new refresh token: 32 random bytes, base64url (43 characters).
    public static func newRefreshToken() -> String { Base64URL.encode(SecureRandom.bytes(32)) }

    /// The stored form of a refresh token.
    public static func hashRefreshToken(_ token: String) -> [UInt8] { SHA256.hash(Array(token.utf8)) }
}
