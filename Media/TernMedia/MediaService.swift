import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import TernCore
import TernSodium
import TernStore

/// The `media.*` configuration.
public struct MediaSettings: Sendable {
    public var imageMax = 16 << 20
    public var videoMax = 64 << 20
    public var audioMax = 16 << 20
    public var documentMax = 100 << 20
    /// Longest side of thumbnails.
    public var thumbnailSide = 320
    /// Lifetime of a presigned download URL.
    public var urlTTL: Duration = .hours(1)
    /// Threads of the media worker pool (libav work never runs on an event loop).
    public var workers = 2
    /// Videos larger than this (longest side) or over `videoMaxBitrate`, or not H.264/AAC
    /// MP4, are transcoded.
    public var videoMaxSide = 1280
    public var videoMaxBitrate = 10_000_000
    /// Transcodes waiting or running at most; further videos needing one get 503 MEDIA_BUSY.
    public var transcodeQueue = 8
    public var limits = MediaLimits()

    public init() {}

    public func limit(for kind: MediaKind) -> Int {
        switch kind {
        case .image: imageMax
        case .video: videoMax
        case .audio: audioMax
        case .document: documentMax
        }
    }

    /// The largest of the per-kind limits (what an upload of unknown kind may stream).
    public var largest: Int { max(imageMax, videoMax, audioMax, documentMax) }
}

/// Uploads, metadata and presigned downloads. libav work (probing, thumbnails) runs on the
/// media worker pool, a bounded set of threads separate from the event loops and the store.
public final class MediaService: Sendable {
    public let blobs: BlobStore
    public let resumable: ResumableUploads
    public let settings: MediaSettings
    let store: Store
    let urlKey: [UInt8]
    let pool: NIOThreadPool
    let clock: any TernClock
    let logger: Logger
    let transcodes = TranscodeSlots()
    let metrics = MediaMetrics()

    public init(store: Store, root: String, urlKey: [UInt8], settings: MediaSettings, clock: any TernClock, logger: Logger) throws {
        precondition(urlKey.count == MessageAuthentication.keyLength)
        self.store = store
        self.blobs = try BlobStore(root: root)
        self.resumable = try ResumableUploads(root: root)
        self.settings = settings
        self.urlKey = urlKey
        self.clock = clock
        self.logger = logger
        pool = NIOThreadPool(numberOfThreads: max(1, settings.workers))
        pool.start()
    }

    public func shutdown() async {
        try? await pool.shutdownGracefully()
    }

    /// The streaming limit for an upload the client declared as `mime` / `filename`: the
    /// limit of that kind when the declaration names one, else the largest.
    public func streamingLimit(declaredMime: String?, filename: String?) -> Int {
        let ext = (filename.map { ($0 as NSString).pathExtension.lowercased() }) ?? ""
        let mime = declaredMime?.lowercased() ?? ""
        if mime.hasPrefix("image/") || ["jpg", "jpeg", "png", "webp", "gif"].contains(ext) { return settings.imageMax }
        if mime.hasPrefix("video/") || ["mp4", "mov", "3gp", "webm"].contains(ext) { return settings.videoMax }
        if mime.hasPrefix("audio/") || ["m4a", "aac", "ogg", "opus", "mp3", "amr", "wav"].contains(ext) { return settings.audioMax }
        return settings.largest
    }

    /// Finishes an upload streamed into `writer`: probes it (refused files are never
    /// stored), checks the limit of its real kind, makes the thumbnail and preview, moves it
    /// to its content address and records it. Returns the new media id and record.
    public func finishUpload(
        _ writer: BlobWriter, uploader: TernID, filename: String, declaredMime: String?, onlyMimes: Set<String>? = nil
    ) async throws -> (id: TernID, record: MediaRecord) {
        let settings = self.settings
        let blobs = self.blobs
        let declaredText = declaredMime?.lowercased().hasPrefix("text/plain") == true || filename.lowercased().hasSuffix(".txt")
        struct Processed: Sendable {
            var info: MediaInfo
            var hash: String
            var size: Int
            var thumbnail: (hash: String, width: Int, height: Int)?
            var preview: [UInt8]
            var waveform: [UInt8]
            var transcode: Bool
        }
        let processed: Processed
        do {
            processed = try await pool.runIfActive {
                let processed: (info: MediaInfo, thumbnail: Picture?, preview: Picture?, waveform: [UInt8])
                do {
                    processed = try MediaProbe.process(
                        path: writer.path, declaredText: declaredText, filename: filename, thumbnailSide: settings.thumbnailSide,
                        limits: settings.limits)
                } catch let error as MediaError {
                    throw TernError(.mediaInvalidType, "unsupported file type: \(error.description)")
                }
                let info = processed.info
                if let onlyMimes, !onlyMimes.contains(info.mime) {
                    throw TernError(.mediaInvalidType, "expected one of \(onlyMimes.sorted().joined(separator: ", ")), not \(info.mime)")
                }
                let limit = settings.limit(for: info.kind)
                guard writer.size <= limit else {
                    throw TernError(.mediaTooLarge, "file too large, max \(limit) bytes for \(info.kind.rawValue)")
                }
                let transcode = Transcoder.needed(info, size: writer.size, maxSide: settings.videoMaxSide, maxBitrate: settings.videoMaxBitrate)
                var thumbnail: (String, Int, Int)?
                if let picture = processed.thumbnail {
                    thumbnail = (try blobs.put(picture.jpeg), picture.width, picture.height)
                }
                let preview = processed.preview?.jpeg ?? []
                // Photos are stored re-encoded, upright and without EXIF/GPS: the original
                // with the sender's location is never kept.
                let stored: (hash: String, size: Int, existed: Bool)
                do {
                    if let clean = try Thumbnailer.reencodeWithoutMetadata(path: writer.path, info: info, limits: settings.limits) {
                        writer.abort()
                        let hash = try blobs.put(clean.jpeg)
                        stored = (hash, clean.jpeg.count, false)
                    } else {
                        stored = try blobs.commit(writer)
                    }
                } catch let error as MediaError {
                    throw TernError(.mediaInvalidType, "the picture cannot be decoded: \(error.description)")
                }
                return Processed(
                    info: info, hash: stored.hash, size: stored.size, thumbnail: thumbnail, preview: preview, waveform: processed.waveform,
                    transcode: transcode)
            }
        } catch {
            writer.abort()
            metrics.rejected((error as? TernError)?.code.rawValue ?? "INTERNAL_ERROR")
            throw error
        }
        let info = processed.info
        metrics.accepted(kind: info.kind.rawValue, bytes: processed.size)
        let record = MediaRecord(
            uploader: uploader, kind: info.kind.rawValue, mime: info.mime, filename: filename, size: UInt64(processed.size),
            blob: processed.hash, width: UInt32(info.width ?? 0), height: UInt32(info.height ?? 0), durationMs: info.durationMs ?? -1,
            thumbnail: processed.thumbnail?.hash ?? "", thumbnailWidth: UInt32(processed.thumbnail?.width ?? 0),
            thumbnailHeight: UInt32(processed.thumbnail?.height ?? 0), preview: processed.preview,
            status: processed.transcode ? .processing : .ready, createdAt: clock.now(), waveform: processed.waveform)
        if processed.transcode && !transcodes.take(limit: settings.transcodeQueue) {
            // The stored blob has no record: orphan cleanup removes it after the grace period.
            metrics.rejected(ErrorCode.mediaBusy.rawValue)
            throw TernError(.mediaBusy, "the media worker is busy; try again shortly", retryAfter: 30)
        }
        let id = TernID.random()
        do {
            try await store.write { tx in try tx.putMedia(id, record) }
        } catch {
            if processed.transcode { transcodes.release() }
            throw error
        }
        if processed.transcode { startTranscode(id, record) }
        return (id, record)
    }

    // MARK: transcoding

    /// Transcodes media `id` in the background: the original stays downloadable meanwhile
    /// (status `processing`); then the record names the H.264/AAC MP4 (status `ready`), or
    /// keeps the original with status `failed`. The caller holds a transcode slot.
    func startTranscode(_ id: TernID, _ record: MediaRecord) {
        let blobs = self.blobs
        let settings = self.settings
        let store = self.store
        let logger = self.logger
        let slots = transcodes
        let metrics = self.metrics
        let source = blobs.path(of: record.blob)
        let started = ContinuousClock.now
        let job = pool.runIfActive(eventLoop: MultiThreadedEventLoopGroup.singleton.any()) { () -> (hash: String, size: Int, info: MediaInfo)? in
            let output = blobs.root + "/transcode/" + UUID().uuidString + ".mp4"
            defer { unlink(output) }
            do {
                try Transcoder.run(input: source, output: output, maxSide: settings.videoMaxSide, limits: settings.limits)
                let info = try MediaProbe.probe(path: output)
                let size = ((try? FileManager.default.attributesOfItem(atPath: output))?[.size] as? Int) ?? 0
                let stored = try blobs.commit(try BlobWriter(adopting: output, limit: Int.max))
                return (stored.hash, size, info)
            } catch {
                logger.warning("transcode failed", metadata: ["media.id": "\(id)", "media.error": "\(error)"])
                return nil
            }
        }
        job.whenComplete { result in
            guard case .success(let outcome) = result else {
                // The pool stopped (shutdown): the record stays `processing` and the next
                // start resumes it.
                slots.release()
                return
            }
            Task {
                defer { slots.release() }
                do {
                    try await store.write { tx in
                        guard var current = try tx.media(id) else { return }
                        if let outcome {
                            current.blob = outcome.hash
                            current.size = UInt64(outcome.size)
                            current.mime = "video/mp4"
                            current.width = UInt32(outcome.info.width ?? Int(current.width))
                            current.height = UInt32(outcome.info.height ?? Int(current.height))
                            current.status = .ready
                        } else {
                            current.status = .failed
                        }
                        metrics.transcoded(ok: outcome != nil, seconds: ContinuousClock.now - started)
                        try tx.putMedia(id, current)
                    }
                    logger.info(
                        "transcode finished",
                        metadata: ["media.id": "\(id)", "media.ok": "\(outcome != nil)", "media.seconds": "\(ContinuousClock.now - started)"])
                } catch {
                    logger.error("recording a transcode failed", metadata: ["media.id": "\(id)", "media.error": "\(error)"])
                }
            }
        }
    }

    /// Restarts the transcodes a stopped server left `processing`.
    public func resumeTranscodes() async throws {
        let pending = try await store.read { tx -> [(TernID, MediaRecord)] in
            var out: [(TernID, MediaRecord)] = []
            try tx.scan(tx.tables.media, from: nil, to: nil) { key, value in
                if let id = TernID(bytes: key), let record = try? MediaRecord.decode(value), record.status == .processing {
                    out.append((id, record))
                }
                return true
            }
            return out
        }
        for (id, record) in pending {
            _ = transcodes.take(limit: Int.max)
            startTranscode(id, record)
        }
    }

    /// The record of media `id` if `user` may see it (uploader or member of a chat it was
    /// sent in); otherwise 404, never revealing that it exists.
    public func record(_ id: TernID, for user: TernID) async throws -> MediaRecord {
        let found = try await store.read { tx -> MediaRecord? in
            guard let record = try tx.media(id), try tx.canSee(media: id, record, user: user) else { return nil }
            return record
        }
        guard let found else { throw TernError(.notFound, "media not found") }
        return found
    }

    // MARK: presigned URLs

    /// `/media/<id>[/thumbnail]?exp=<unix s>&uid=<user>&sig=<base64url>`: valid for
    /// `settings.urlTTL`, for `user` only, for GET and HEAD.
    public func signedPath(_ id: TernID, thumbnail: Bool, user: TernID) -> String {
        let path = "/media/\(id)" + (thumbnail ? "/thumbnail" : "")
        let expires = (clock.now() + settings.urlTTL).seconds
        let sig = Base64URL.encode(MessageAuthentication.tag(Self.signed(path, expires, user), key: urlKey))
        return "\(path)?exp=\(expires)&uid=\(user)&sig=\(sig)"
    }

    /// Checks a presigned URL in constant time; returns the user it was issued to.
    public func verify(path: String, exp: String?, uid: String?, sig: String?) throws -> TernID {
        guard let exp, let expires = Int64(exp), let uid, let user = TernID(uid), let sig, let tag = try? Base64URL.decode(sig) else {
            throw TernError(.forbidden, "missing or malformed signature")
        }
        guard MessageAuthentication.verify(tag, Self.signed(path, expires, user), key: urlKey) else {
            throw TernError(.forbidden, "invalid signature")
        }
        guard clock.now().seconds <= expires else { throw TernError(.forbidden, "this link has expired") }
        return user
    }

    static func signed(_ path: String, _ expires: Int64, _ user: TernID) -> [UInt8] {
        Array("GET\n\(path)\n\(expires)\n\(user)".utf8)
    }

    /// The blob file to serve for a verified URL: the original or the thumbnail.
    public func file(_ id: TernID, thumbnail: Bool) async throws -> (path: String, size: Int, hash: String, mime: String) {
        let record = try await store.read { tx in try tx.media(id) }
        guard let record else { throw TernError(.notFound, "media not found") }
        let hash = thumbnail ? record.thumbnail : record.blob
        guard BlobStore.isValid(hash) else { throw TernError(.notFound, "this media has no thumbnail") }
        let path = blobs.path(of: hash)
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? -1
        guard size >= 0 else { throw TernError(.notFound, "media file missing") }
        return (path, size, hash, thumbnail ? "image/jpeg" : record.mime)
    }
}

// MARK: orphan cleanup

/// What one cleanup pass removed.
public struct CleanupReport: Sendable, Equatable {
    public var mediaDeleted = 0
    public var blobsDeleted = 0
    public var uploadsDeleted = 0

    public init() {}
}

extension MediaService {
    /// Deletes what nothing references any more, once it is older than `grace`:
    /// media records never sent in any chat (messages in history and mailboxes reference
    /// their media through the chat), then blob files no remaining record names (a blob
    /// is shared by every upload of the same bytes), then abandoned resumable uploads.
    /// Referenced media are never deleted, whatever their age.
    public func collectGarbage(grace: Duration, pageSize: Int = 1000) async throws -> CleanupReport {
        let now = clock.now()
        let cutoff = Timestamp(milliseconds: now.milliseconds - grace.wholeMilliseconds)
        var report = CleanupReport()
        var live = Set<String>()
        var orphans: [TernID] = []
        var resume: [UInt8]? = nil
        repeat {
            let start = resume
            let page = try await store.read { tx -> (live: [String], orphans: [TernID], next: [UInt8]?) in
                var live: [String] = []
                var orphans: [TernID] = []
                var seen = 0
                var next: [UInt8]?
                try tx.scan(tx.tables.media, from: start, to: nil) { key, value in
                    seen += 1
                    if seen > pageSize {
                        next = Array(key)
                        return false
                    }
                    guard let id = TernID(bytes: key), let record = try? MediaRecord.decode(value) else { return true }
                    if try !tx.isMediaLinked(id) && record.createdAt < cutoff {
                        orphans.append(id)
                    } else {
                        live.append(record.blob)
                        if !record.thumbnail.isEmpty { live.append(record.thumbnail) }
                    }
                    return true
                }
                return (live, orphans, next)
            }
            live.formUnion(page.live)
            orphans += page.orphans
            resume = page.next
        } while resume != nil

        // Delete the orphaned records, checking again inside the write: a message sent
        // since the scan keeps its media.
        for chunk in stride(from: 0, to: orphans.count, by: 500).map({ Array(orphans[$0..<min($0 + 500, orphans.count)]) }) {
            let kept = try await store.write { tx -> (deleted: Int, kept: [String]) in
                var deleted = 0
                var kept: [String] = []
                for id in chunk {
                    guard let record = try tx.media(id) else { continue }
                    if try tx.isMediaLinked(id) {
                        kept.append(record.blob)
                        if !record.thumbnail.isEmpty { kept.append(record.thumbnail) }
                    } else if try tx.delete(tx.tables.media, Keys.id(id)) {
                        deleted += 1
                    }
                }
                return (deleted, kept)
            }
            report.mediaDeleted += kept.deleted
            live.formUnion(kept.kept)
        }

        // Blob files nobody names, older than the grace period (a blob written by an upload
        // in progress is younger and has its record only after it lands).
        let keep = live
        let blobs = self.blobs
        report.blobsDeleted = try await pool.runIfActive {
            var deleted = 0
            let root = blobs.root + "/blobs"
            let fm = FileManager.default
            for first in (try? fm.contentsOfDirectory(atPath: root)) ?? [] {
                for second in (try? fm.contentsOfDirectory(atPath: root + "/" + first)) ?? [] {
                    let dir = root + "/" + first + "/" + second
                    for name in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] where BlobStore.isValid(name) && !keep.contains(name) {
                        let path = dir + "/" + name
                        guard let modified = (try? fm.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
                            Int64(modified.timeIntervalSince1970 * 1000) < cutoff.milliseconds
                        else { continue }
                        if unlink(path) == 0 { deleted += 1 }
                    }
                }
            }
            return deleted
        }
        for id in resumable.stale(before: cutoff) {
            resumable.remove(id)
            report.uploadsDeleted += 1
        }
        if report != CleanupReport() {
            logger.notice(
                "media cleanup", metadata: [
                    "media.deleted": "\(report.mediaDeleted)", "media.blobs_deleted": "\(report.blobsDeleted)",
                    "media.uploads_deleted": "\(report.uploadsDeleted)",
                ])
        }
        return report
    }
}

/// Counts transcodes waiting or running.
final class TranscodeSlots: Sendable {
    private let lock = Mutex()
    nonisolated(unsafe) private var used = 0

    func take(limit: Int) -> Bool {
        lock.withLock {
            guard used < limit else { return false }
            used += 1
            return true
        }
    }

    func release() { lock.withLock { used -= 1 } }

    var inUse: Int { lock.withLock { used } }
}

/// `tern_media_*` metrics.
final class MediaMetrics: Sendable {
    let bytes = Counter(label: "tern_media_upload_bytes_total")
    let transcodeSeconds = Metrics.Timer(label: "tern_media_transcode_duration_seconds")

    func accepted(kind: String, bytes count: Int) {
        Counter(label: "tern_media_uploads_total", dimensions: [("kind", kind)]).increment()
        bytes.increment(by: count)
    }

    func rejected(_ code: String) {
        Counter(label: "tern_media_rejected_total", dimensions: [("code", code)]).increment()
    }

    func transcoded(ok: Bool, seconds: Duration) {
        Counter(label: "tern_media_transcodes_total", dimensions: [("outcome", ok ? "ready" : "failed")]).increment()
        transcodeSeconds.recordNanoseconds(seconds.wholeNanoseconds)
    }
}
