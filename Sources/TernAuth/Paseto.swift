import TernSodium

/// Why a PASETO token was rejected. Deliberately coarse: clients only ever learn
/// "invalid token".
public enum PasetoError: Error, Sendable, Equatable {
    /// Not a `v4.public.` token, or malformed parts / Base64.
    case malformed
    /// The signature does not verify under the given key.
    case badSignature
}

/// PASETO version 4, purpose `public`: Ed25519 signatures over the pre-authentication
/// encoding of header, message, footer and implicit assertion (PASETO spec, v4.public).
///
/// Token = `v4.public.` ‖ base64url(message ‖ signature) [‖ `.` ‖ base64url(footer)].
public enum PasetoV4Public {
    public static let header = "v4.public."
    /// Footers above this size are refused before parsing (the spec advises a limit).
    public static let maxFooterBytes = 1024

    /// Signs `message` with an optional footer and implicit assertion.
    public static func sign(message: [UInt8], footer: [UInt8] = [], implicit: [UInt8] = [], keyPair: Ed25519KeyPair) -> String {
        let signed = pae([Array(header.utf8), message, footer, implicit])
        let signature = keyPair.sign(signed)
        var token = header + Base64URL.encode(message + signature)
        if !footer.isEmpty { token += "." + Base64URL.encode(footer) }
        return token
    }

    /// The footer of `token`, *unverified* — only for picking the key (key id) before
    /// calling `verify`, which authenticates the footer too.
    public static func unverifiedFooter(_ token: String) throws(PasetoError) -> [UInt8] {
        let parts = try split(token)
        return parts.footer
    }

    /// Verifies `token` under `publicKey`; returns the message and footer.
    public static func verify(
        _ token: String, publicKey: [UInt8], implicit: [UInt8] = []
    ) throws(PasetoError) -> (message: [UInt8], footer: [UInt8]) {
        let parts = try split(token)
        guard parts.body.count > Ed25519KeyPair.signatureLength else { throw .malformed }
        let message = Array(parts.body.dropLast(Ed25519KeyPair.signatureLength))
        let signature = Array(parts.body.suffix(Ed25519KeyPair.signatureLength))
        let signed = pae([Array(header.utf8), message, parts.footer, implicit])
        guard Ed25519KeyPair.verify(signature: signature, message: signed, publicKey: publicKey) else {
            throw .badSignature
        }
        return (message, parts.footer)
    }

    private static func split(_ token: String) throws(PasetoError) -> (body: [UInt8], footer: [UInt8]) {
        guard token.hasPrefix(header) else { throw .malformed }
        let rest = token.dropFirst(header.count)
        let pieces = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard pieces.count == 1 || pieces.count == 2, !pieces[0].isEmpty else { throw .malformed }
        do {
            let body = try Base64URL.decode(pieces[0])
            var footer: [UInt8] = []
            if pieces.count == 2 {
                guard !pieces[1].isEmpty, pieces[1].utf8.count <= maxFooterBytes * 4 / 3 + 4 else { throw PasetoError.malformed }
                footer = try Base64URL.decode(pieces[1])
            }
            return (body, footer)
        } catch {
            throw .malformed
        }
    }

    /// Pre-authentication encoding: LE64(n) ‖ for each piece LE64(len) ‖ piece, with the
    /// top bit of every LE64 cleared.
    static func pae(_ pieces: [[UInt8]]) -> [UInt8] {
        func le64(_ n: Int) -> [UInt8] {
            let v = UInt64(n) & 0x7FFF_FFFF_FFFF_FFFF
            return (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) }
        }
        var out = le64(pieces.count)
        for piece in pieces {
            out += le64(piece.count)
            out += piece
        }
        return out
    }

    /// The PASERK id (`k4.pid.…`) of an Ed25519 public key: base64url of BLAKE2b-264 over
    /// `k4.pid.` ‖ the key's PASERK (`k4.public.` ‖ base64url(key)).
    public static func paserkID(publicKey: [UInt8]) -> String {
        let paserk = "k4.public." + Base64URL.encode(publicKey)
        let digest = BLAKE2b.hash(Array(("k4.pid." + paserk).utf8), outputLength: 33)
        return "k4.pid." + Base64URL.encode(digest)
    }
}
