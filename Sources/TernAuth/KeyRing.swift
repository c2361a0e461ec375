import Foundation
import TernCore
import TernSodium

/// One Ed25519 signing key with its PASERK id.
public struct SigningKey: Sendable {
    public let kid: String
    public let keyPair: Ed25519KeyPair
    public let createdAt: Timestamp
}

/// The signing keys in `<data>/keys/`: the newest signs, all verify.
///
/// Each key is a file `signing-<created ms>.key` (mode 0600, directory 0700) holding JSON
/// `{"kid": "k4.pid.…", "created_at": "<RFC 3339>", "seed": "<base64url 32 bytes>"}`.
/// `tern keys rotate` adds a file; a running server picks it up on its next reload (timer,
/// or at once when a token names a key id it does not know).
public final class KeyRing: @unchecked Sendable {
    public let directory: String
    private let lock = Mutex()
    private var keys: [String: SigningKey] = [:]
    private var newest: SigningKey
    private var lastMissReload = Timestamp(milliseconds: 0)
    private let clock: any TernClock

    /// Loads the keys; with `createIfEmpty` makes the first key when there is none.
    public init(directory: String, clock: any TernClock, createIfEmpty: Bool) throws {
        self.directory = directory
        self.clock = clock
        var loaded = try Self.load(directory)
        if loaded.isEmpty {
            guard createIfEmpty else { throw TernError(.internalError, "no signing keys in \(directory)") }
            let key = try Self.create(in: directory, clock: clock)
            loaded = [key.kid: key]
        }
        keys = loaded
        newest = loaded.values.max { $0.createdAt < $1.createdAt }!
    }

    /// The key that signs new tokens.
    public var active: SigningKey { lock.withLock { newest } }

    /// Every key, oldest first.
    public var all: [SigningKey] { lock.withLock { keys.values.sorted { $0.createdAt < $1.createdAt } } }

    /// The public key for `kid`. An unknown id triggers one directory reload per second at
    /// most, so a key rotated by another process is found without a restart.
    public func publicKey(for kid: String) -> [UInt8]? {
        if let key = lock.withLock({ keys[kid] }) { return key.keyPair.publicKey }
        let now = clock.now()
        let shouldReload = lock.withLock { () -> Bool in
            if now.milliseconds - lastMissReload.milliseconds < 1000 { return false }
            lastMissReload = now
            return true
        }
        if shouldReload { _ = try? reload() }
        return lock.withLock { keys[kid]?.keyPair.publicKey }
    }

    /// Re-reads the directory; returns true if the set of keys changed.
    @discardableResult
    public func reload() throws -> Bool {
        let loaded = try Self.load(directory)
        guard !loaded.isEmpty else { return false }
        return lock.withLock {
            let changed = Set(loaded.keys) != Set(keys.keys)
            keys = loaded
            newest = loaded.values.max { $0.createdAt < $1.createdAt }!
            return changed
        }
    }

    /// Adds a new signing key file to `directory` (creating it) and returns the key.
    @discardableResult
    public static func create(in directory: String, clock: any TernClock) throws -> SigningKey {
        try SecretFiles.ensureDirectory(directory)
        let (pair, seed) = Ed25519KeyPair.generate()
        var now = clock.now()
        // Key files are named by creation time; never reuse a name.
        while FileManager.default.fileExists(atPath: "\(directory)/signing-\(now.milliseconds).key") {
            now.milliseconds += 1
        }
        let key = SigningKey(kid: PasetoV4Public.paserkID(publicKey: pair.publicKey), keyPair: pair, createdAt: now)
        let json: [String: String] = ["kid": key.kid, "created_at": now.rfc3339, "seed": Base64URL.encode(seed)]
        let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
        try SecretFiles.writeAtomically(Array(data), to: "\(directory)/signing-\(now.milliseconds).key")
        return key
    }

    private static func load(_ directory: String) throws -> [String: SigningKey] {
        guard FileManager.default.fileExists(atPath: directory) else { return [:] }
        var out: [String: SigningKey] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory)
        where name.hasPrefix("signing-") && name.hasSuffix(".key") {
            let path = "\(directory)/\(name)"
            guard let data = FileManager.default.contents(atPath: path),
                let json = try? JSONSerialization.jsonObject(with: data) as? [String: String],
                let seedText = json["seed"], let seed = try? Base64URL.decode(seedText),
                let created = json["created_at"].flatMap({ Timestamp(rfc3339: $0) }),
                let pair = try? Ed25519KeyPair(seed: seed)
            else {
                throw TernError(.internalError, "signing key file \(path) is unreadable or malformed")
            }
            let kid = PasetoV4Public.paserkID(publicKey: pair.publicKey)
            if let stated = json["kid"], stated != kid {
                throw TernError(.internalError, "signing key file \(path) states kid \(stated) but its key has \(kid)")
            }
            out[kid] = SigningKey(kid: kid, keyPair: pair, createdAt: created)
        }
        return out
    }
}

/// Small secret files under the data folder (mode 0600, written atomically).
public enum SecretFiles {
    /// Creates `directory` with mode 0700 if missing.
    public static func ensureDirectory(_ directory: String) throws {
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    /// Writes `bytes` to a temporary file (0600), fsyncs, and renames it over `path`.
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let temp = path + ".tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw TernError(.internalError, "cannot create \(temp): errno \(errno)") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n <= 0 {
                close(fd)
                unlink(temp)
                throw TernError(.internalError, "cannot write \(temp): errno \(errno)")
            }
            written += n
        }
        fsync(fd)
        close(fd)
        guard rename(temp, path) == 0 else {
            unlink(temp)
            throw TernError(.internalError, "cannot rename \(temp): errno \(errno)")
        }
    }

    /// A bearer token (32 random bytes, base64url) stored at `path`, created on first use;
    /// the admin API's token when `admin.token` is not configured.
    public static func loadOrCreateToken(_ path: String) throws -> String {
        Base64URL.encode(try loadOrCreate(path, length: 32))
    }

    /// The `length`-byte secret stored (base64url) at `path`, created on first use.
    public static func loadOrCreate(_ path: String, length: Int) throws -> [UInt8] {
        if let data = FileManager.default.contents(atPath: path) {
            let text = String(decoding: data, as: UTF8.self).trimmingWhitespace()
            guard let secret = try? Base64URL.decode(text), secret.count == length else {
                throw TernError(.internalError, "secret file \(path) is malformed")
            }
            return secret
        }
        try ensureDirectory((path as NSString).deletingLastPathComponent)
        let secret = SecureRandom.bytes(length)
        try writeAtomically(Array((Base64URL.encode(secret) + "\n").utf8), to: path)
        return secret
    }
}
