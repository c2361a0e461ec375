import TernCore

/// Processing state of an upload.
public enum MediaStatus: UInt8, Sendable {
    case processing = 0
    case ready = 1
    case failed = 2

    public var name: String {
        switch self {
        case .processing: "processing"
        case .ready: "ready"
        case .failed: "failed"
        }
    }
}

/// One uploaded file: who uploaded it, what it is, and which content-addressed blobs hold
/// it and its thumbnail.
///
/// Table `media`, key = media id (16); index `media_chats`: media id (16) ‖ chat id (16) →
/// empty, one entry per chat the media was sent in (who may download it).
///
/// Layout v1: `uploader (16) | kind (str) | mime (str) | filename (str) | size (u64) |
///  blob sha-256 (str, hex) | width (u32) | height (u32) | duration ms (i64, -1 = none) |
///  thumbnail sha-256 (str, hex, empty = none) | thumbnail width (u32) | thumbnail height (u32) |
///  preview (data: inline JPEG) | status (u8) | created_at (i64) | waveform (data: peaks 0-255)`
public struct MediaRecord: StoreRecord, Equatable {
    public static let layoutVersion: UInt8 = 1

    public var uploader: TernID
    public var kind: String
    public var mime: String
    public var filename: String
    public var size: UInt64
    public var blob: String
    public var width: UInt32
    public var height: UInt32
    public var durationMs: Int64
    public var thumbnail: String
    public var thumbnailWidth: UInt32
    public var thumbnailHeight: UInt32
    public var preview: [UInt8]
    public var status: MediaStatus
    public var createdAt: Timestamp
    /// Audio: peak amplitudes (0–255) for drawing a voice note; empty otherwise.
    public var waveform: [UInt8]

    public init(
        uploader: TernID, kind: String, mime: String, filename: String, size: UInt64, blob: String, width: UInt32 = 0,
        height: UInt32 = 0, durationMs: Int64 = -1, thumbnail: String = "", thumbnailWidth: UInt32 = 0, thumbnailHeight: UInt32 = 0,
        preview: [UInt8] = [], status: MediaStatus, createdAt: Timestamp, waveform: [UInt8] = []
    ) {
        self.uploader = uploader
        self.kind = kind
        self.mime = mime
        self.filename = filename
        self.size = size
        self.blob = blob
        self.width = width
        self.height = height
        self.durationMs = durationMs
        self.thumbnail = thumbnail
        self.thumbnailWidth = thumbnailWidth
        self.thumbnailHeight = thumbnailHeight
        self.preview = preview
        self.status = status
        self.createdAt = createdAt
        self.waveform = waveform
    }

    public func encode(into w: inout ByteWriter) {
        w.id(uploader)
        w.string(kind)
        w.string(mime)
        w.string(filename)
        w.u64(size)
        w.string(blob)
        w.u32(width)
        w.u32(height)
        w.i64(durationMs)
        w.string(thumbnail)
        w.u32(thumbnailWidth)
        w.u32(thumbnailHeight)
        w.data(preview)
        w.u8(status.rawValue)
        w.timestamp(createdAt)
        w.data(waveform)
    }

    public init(from r: inout ByteReader, version: UInt8) throws(StoreError) {
        uploader = try r.id()
        kind = try r.string()
        mime = try r.string()
        filename = try r.string()
        size = try r.u64()
        blob = try r.string()
        width = try r.u32()
        height = try r.u32()
        durationMs = try r.i64()
        thumbnail = try r.string()
        thumbnailWidth = try r.u32()
        thumbnailHeight = try r.u32()
        preview = try r.data()
        guard let status = MediaStatus(rawValue: try r.u8()) else { throw StoreError.corrupt("media: unknown status") }
        self.status = status
        createdAt = try r.timestamp()
        waveform = try r.data()
    }
}

extension ReadTx {
    public func media(_ id: TernID) throws -> MediaRecord? {
        try record(MediaRecord.self, in: tables.media, at: Keys.id(id))
    }

    /// Whether media `id` is referenced: sent in a chat, or someone's photo.
    public func isMediaLinked(_ id: TernID) throws -> Bool {
        var linked = false
        try scan(tables.mediaChats, prefix: id.bytes) { _, _ in
            linked = true
            return false
        }
        return linked
    }

    /// Whether `user` may see media `id`: the uploader, or a member of a chat it was sent in.
    public func canSee(media id: TernID, _ record: MediaRecord, user: TernID) throws -> Bool {
        if record.uploader == user { return true }
        var visible = false
        try scan(tables.mediaChats, prefix: id.bytes) { key, _ in
            guard let chat = TernID(bytes: UnsafeRawBufferPointer(rebasing: key[16..<32])) else { return true }
            if try member(chat: chat, user: user) != nil {
                visible = true
                return false
            }
            return true
        }
        return visible
    }
}

extension WriteTx {
    public func putMedia(_ id: TernID, _ media: MediaRecord) throws {
        try put(media, in: tables.media, at: Keys.id(id))
    }

    /// Records that media `id` was sent in `chat` (its members may download it).
    public func linkMedia(_ id: TernID, chat: TernID) throws {
        _ = try putBytes([], in: tables.mediaChats, at: Keys.pair(id, chat))
    }
}
