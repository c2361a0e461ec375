import Foundation
import TernCore

/// One resumable (tus) upload in progress, kept on disk so that it survives a restart:
/// `<media>/uploads/<id>.part` (the bytes so far) and `<id>.json` (this).
public struct ResumableUpload: Codable, Sendable {
    public var id: String
    public var owner: String
    public var length: Int
    public var filename: String
    public var filetype: String?
    public var createdAt: Int64
    /// Set once the upload completed and was stored.
    public var mediaID: String?
}

/// The resumable uploads on disk, and a lock per upload so that two requests never append
/// to the same file at once.
public final class ResumableUploads: Sendable {
    public let directory: String
    private let lock = Mutex()
    nonisolated(unsafe) private var busy: Set<String> = []

    public init(root: String) throws {
        directory = root + "/uploads"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    /// Upload ids are random UUIDs: nothing else names a file.
    public static func isValid(_ id: String) -> Bool { TernID(id) != nil }

    public func partPath(_ id: String) -> String { directory + "/" + id + ".part" }
    private func metaPath(_ id: String) -> String { directory + "/" + id + ".json" }

    public func create(owner: TernID, length: Int, filename: String, filetype: String?, now: Timestamp) throws -> ResumableUpload {
        let upload = ResumableUpload(
            id: TernID.random().description, owner: owner.description, length: length, filename: filename, filetype: filetype,
            createdAt: now.milliseconds)
        let fd = open(partPath(upload.id), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw MediaError("cannot create the upload: errno \(errno)") }
        close(fd)
        try save(upload)
        return upload
    }

    public func save(_ upload: ResumableUpload) throws {
        let data = try JSONEncoder().encode(upload)
        try data.write(to: URL(fileURLWithPath: metaPath(upload.id)), options: .atomic)
    }

    /// The upload `id` of `owner`, or nil (unknown, or someone else's).
    public func find(_ id: String, owner: TernID) -> ResumableUpload? {
        guard Self.isValid(id), let data = FileManager.default.contents(atPath: metaPath(id)),
            let upload = try? JSONDecoder().decode(ResumableUpload.self, from: data), upload.owner == owner.description
        else { return nil }
        return upload
    }

    /// Bytes received so far.
    public func offset(_ id: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: partPath(id)))?[.size] as? Int) ?? 0
    }

    public func remove(_ id: String) {
        guard Self.isValid(id) else { return }
        unlink(partPath(id))
        unlink(metaPath(id))
    }

    /// Runs `body` holding upload `id`'s lock; false when another request holds it.
    public func withLock<T>(_ id: String, _ body: () async throws -> T) async throws -> T? {
        let taken = lock.withLock { busy.insert(id).inserted }
        guard taken else { return nil }
        defer { lock.withLock { _ = busy.remove(id) } }
        return try await body()
    }

    /// Uploads started before `cutoff` and never finished.
    public func stale(before cutoff: Timestamp) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> String? in
            guard name.hasSuffix(".json") else { return nil }
            let id = String(name.dropLast(5))
            guard let data = FileManager.default.contents(atPath: metaPath(id)),
                let upload = try? JSONDecoder().decode(ResumableUpload.self, from: data)
            else { return id }
            return upload.createdAt < cutoff.milliseconds ? id : nil
        }
    }
}
