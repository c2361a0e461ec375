import Crypto
import Foundation

/// Content-addressed files under `<data>/media`: `blobs/ab/cd/<sha-256 hex>`. A blob is
/// written to `tmp/` while it is hashed, fsynced, then renamed into place; the same bytes
/// uploaded twice are stored once. Blob names are validated (64 lowercase hex digits), so no
/// path can be built from anything else.
public final class BlobStore: Sendable {
    public let root: String

    public init(root: String) throws {
        self.root = root
        for dir in [root, root + "/blobs", root + "/tmp", root + "/transcode"] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        // Leftovers of uploads interrupted by a crash.
        for dir in [root + "/tmp", root + "/transcode"] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
                try? FileManager.default.removeItem(atPath: dir + "/" + name)
            }
        }
    }

    /// Whether `hash` is a well-formed blob name.
    public static func isValid(_ hash: String) -> Bool {
        hash.utf8.count == 64 && hash.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// The file of blob `hash` (which must be valid).
    public func path(of hash: String) -> String {
        precondition(Self.isValid(hash), "invalid blob name")
        let h = Array(hash)
        return "\(root)/blobs/\(String(h[0..<2]))/\(String(h[2..<4]))/\(hash)"
    }

    public func exists(_ hash: String) -> Bool {
        Self.isValid(hash) && FileManager.default.fileExists(atPath: path(of: hash))
    }

    /// A writer for a new upload of at most `limit` bytes.
    public func writer(limit: Int) throws -> BlobWriter {
        try BlobWriter(directory: root + "/tmp", limit: limit)
    }

    /// Makes the written file durable and moves it to its content address. Returns the
    /// hash, size, and whether the blob existed already (then the new copy is dropped).
    public func commit(_ writer: BlobWriter) throws -> (hash: String, size: Int, existed: Bool) {
        let (hash, size, temp) = try writer.finish()
        let target = path(of: hash)
        if FileManager.default.fileExists(atPath: target) {
            unlink(temp)
            return (hash, size, true)
        }
        let dir = (target as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard rename(temp, target) == 0 else {
            unlink(temp)
            throw MediaError("cannot store the blob: errno \(errno)")
        }
        Self.syncDirectory(dir)
        return (hash, size, false)
    }

    /// Stores `bytes` (a thumbnail) as a blob; returns its hash.
    public func put(_ bytes: [UInt8]) throws -> String {
        let writer = try writer(limit: bytes.count)
        try bytes.withUnsafeBytes { try writer.write($0) }
        return try commit(writer).hash
    }

    public func remove(_ hash: String) {
        guard Self.isValid(hash) else { return }
        unlink(path(of: hash))
    }

    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}

/// The upload over its limit (→ 413 `MEDIA_TOO_LARGE`).
public struct BlobTooLarge: Error, Sendable {
    public var limit: Int
}

/// Writes one upload to a temporary file while hashing it. Not thread-safe: one request
/// writes it, then hands it to `BlobStore.commit` or `abort`.
public final class BlobWriter: @unchecked Sendable {
    public let path: String
    public let limit: Int
    public private(set) var size = 0
    private var fd: Int32
    private var hasher = Crypto.SHA256()

    init(directory: String, limit: Int) throws {
        path = directory + "/" + UUID().uuidString
        self.limit = limit
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw MediaError("cannot create an upload file: errno \(errno)") }
    }

    /// Takes over a complete file written elsewhere under the media root (a finished
    /// resumable upload): hashes what it holds so that `BlobStore.commit` can move it.
    public init(adopting path: String, limit: Int) throws {
        self.path = path
        self.limit = limit
        guard let handle = FileHandle(forReadingAtPath: path) else { throw MediaError("cannot read \(path)") }
        defer { try? handle.close() }
        var total = 0
        var digest = Crypto.SHA256()
        while true {
            let chunk = handle.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            chunk.withUnsafeBytes { digest.update(bufferPointer: $0) }
            total += chunk.count
        }
        guard total <= limit else { throw BlobTooLarge(limit: limit) }
        let opened = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard opened >= 0 else { throw MediaError("cannot open \(path): errno \(errno)") }
        fd = opened
        hasher = digest
        size = total
    }

    deinit {
        if fd >= 0 {
            close(fd)
            unlink(path)
        }
    }

    /// Appends bytes; throws `BlobTooLarge` (and keeps nothing) past the limit.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard fd >= 0 else { throw MediaError("upload already finished") }
        guard size + bytes.count <= limit else {
            abort()
            throw BlobTooLarge(limit: limit)
        }
        hasher.update(bufferPointer: bytes)
        var offset = 0
        while offset < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                let code = errno
                abort()
                throw MediaError("cannot write the upload: errno \(code)")
            }
            offset += n
        }
        size += bytes.count
    }

    /// Drops the partial upload.
    public func abort() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
        unlink(path)
    }

    /// fsyncs and closes the file; returns its hash (hex), size and path.
    func finish() throws -> (String, Int, String) {
        guard fd >= 0 else { throw MediaError("upload already finished") }
        guard fsync(fd) == 0 else {
            let code = errno
            abort()
            throw MediaError("cannot sync the upload: errno \(code)")
        }
        close(fd)
        fd = -1
        let digest = Array(hasher.finalize())
        return (digest.map { String(format: "%02x", $0) }.joined(), size, path)
    }
}
