import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TernCore
import TernMedia
import TernStore

/// `/api/v1/media` (upload, metadata) and the presigned `/media/...` downloads.
struct MediaRoutes {
    let deps: APIDependencies
    let media: MediaService
    let uploadLimiter: RateLimiter

    func register(authed api: RouterGroup<TernRequestContext>, public router: Router<TernRequestContext>) {
        api.post("media/upload") { request, context in try await upload(request, context) }
        api.get("media/:id") { _, context in
            let claims = try context.caller()
            let id = try mediaID(context)
            let record = try await media.record(id, for: claims.userID)
            return try Envelope.ok(MediaOut(id: id, record, media: media, viewer: claims.userID))
        }
        // The thumbnail at a stable path (what messages carry): the access token and the
        // same visibility rule as the metadata.
        api.get("media/:id/thumbnail") { request, context in
            let claims = try context.caller()
            let id = try mediaID(context)
            _ = try await media.record(id, for: claims.userID)
            return try await Self.serve(try await media.file(id, thumbnail: true), request, context)
        }
        let fileIO = FileIO()
        for thumbnail in [false, true] {
            let path: RouterPath = thumbnail ? "media/:id/thumbnail" : "media/:id"
            router.get(path) { request, context in try await download(request, context, thumbnail: thumbnail, head: false, fileIO: fileIO) }
            router.head(path) { request, context in try await download(request, context, thumbnail: thumbnail, head: true, fileIO: fileIO) }
        }
    }

    private func mediaID(_ context: TernRequestContext) throws -> TernID {
        guard let raw = context.parameters.get("id"), let id = TernID(raw) else { throw TernError.notFound("media not found") }
        return id
    }

    // MARK: upload

    /// Multipart upload (field `file`), streamed to a temporary file while hashed: a body over
    /// the limit is refused (413) as soon as it crosses it, never buffered whole.
    private func upload(_ request: Request, _ context: TernRequestContext) async throws -> Response {
        let claims = try context.caller()
        let file = try await Self.receiveFile(
            request, media: media, limiter: uploadLimiter, owner: claims.userID, fields: ["file"], largest: media.settings.largest,
            words: .init(
                notMultipart: "upload with multipart/form-data and a field named file", tooLarge: "file too large",
                noFile: "no file: send the upload in a multipart field named file", cutShort: "the upload ended before the file did"),
            limit: media.streamingLimit)
        let (id, record) = try await media.finishUpload(file.writer, uploader: claims.userID, filename: file.filename, declaredMime: file.declared)
        return try Envelope.ok(MediaOut(id: id, record, media: media, viewer: claims.userID), status: .created)
    }

    /// What a client is told when a multipart upload is not one.
    struct UploadWords {
        var notMultipart: String
        var tooLarge: String
        var noFile: String
        var cutShort: String
    }

    /// A file streamed from a multipart body to a temporary file while hashed (never
    /// buffered whole): the part named one of `fields`, refused (413) as soon as it passes
    /// `limit(declared type, file name)`; with `largest`, a `Content-Length` over it (plus
    /// room for the multipart framing) is refused before reading. Counts against `owner`'s
    /// upload rate. The caller owns the returned writer (finish or abort it).
    static func receiveFile(
        _ request: Request, media: MediaService, limiter: RateLimiter, owner: TernID, fields: Set<String>, largest: Int? = nil,
        words: UploadWords,
        limit: (_ declaredMime: String?, _ filename: String?) -> Int
    ) async throws -> (writer: BlobWriter, filename: String, declared: String?) {
        if let wait = limiter.acquire(owner.description) {
            throw TernError.tooManyRequests("too many uploads; slow down", retryAfter: wait)
        }
        guard let type = request.headers[.contentType], type.lowercased().hasPrefix("multipart/form-data"),
            let boundary = boundary(type)
        else {
            throw TernError(.unsupportedMediaType, words.notMultipart)
        }
        if let largest, let length = request.headers[.contentLength].flatMap(Int.init), length > largest + 64 << 10 {
            throw TernError(.mediaTooLarge, "\(words.tooLarge), max \(largest) bytes")
        }
        var parser = MultipartFileParser(boundary: boundary, fields: fields)
        var writer: BlobWriter?
        var filename = "file"
        var declared: String?
        defer { writer?.abort() }
        do {
            for try await chunk in request.body {
                try chunk.withUnsafeReadableBytes { bytes in
                    try parser.feed(bytes) { event in
                        switch event {
                        case .fileStart(let name, let contentType):
                            filename = cleanFilename(name)
                            declared = contentType
                            writer = try media.blobs.writer(limit: limit(contentType, name))
                        case .fileBytes(let part):
                            try writer?.write(part)
                        }
                    }
                }
                if parser.fileComplete { break }
            }
        } catch let tooLarge as BlobTooLarge {
            throw TernError(.mediaTooLarge, "\(words.tooLarge), max \(tooLarge.limit) bytes")
        }
        guard let written = writer, parser.fileComplete else {
            throw TernError.validation(writer == nil ? words.noFile : words.cutShort)
        }
        writer = nil
        return (written, filename, declared)
    }

    /// Streams a stored blob with its ETag (304 on a match), immutable caching, for the
    /// token-authorised paths (thumbnails and photos); the presigned `download` adds ranges.
    static func serve(_ file: (path: String, size: Int, hash: String, mime: String), _ request: Request, _ context: TernRequestContext) async throws -> Response {
        let headers: HTTPFields = [
            .contentType: file.mime, .eTag: "\"\(file.hash)\"", .cacheControl: "private, max-age=31536000, immutable",
            .contentLength: String(file.size),
        ]
        if request.headers[.ifNoneMatch]?.contains(file.hash) == true { return Response(status: .notModified, headers: headers) }
        return Response(status: .ok, headers: headers, body: try await FileIO().loadFile(path: file.path, context: context))
    }

    static func boundary(_ contentType: String) -> String? {
        for part in contentType.split(separator: ";") {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if kv.count == 2, kv[0].lowercased() == "boundary" {
                let value = kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                return value.isEmpty || value.utf8.count > 70 ? nil : value
            }
        }
        return nil
    }

    /// The last path component of a client's file name, without control characters, at
    /// most 255 bytes.
    static func cleanFilename(_ name: String?) -> String {
        let base = (name ?? "").split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        let clean = String(base.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.map(Character.init))
        return clean.isEmpty ? "file" : String(clean.utf8.prefix(255)) ?? "file"
    }

    // MARK: download

    private func download(
        _ request: Request, _ context: TernRequestContext, thumbnail: Bool, head: Bool, fileIO: FileIO
    ) async throws -> Response {
        let id = try mediaID(context)
        let query = request.uri.queryParameters
        let user = try media.verify(
            path: "/media/\(id)" + (thumbnail ? "/thumbnail" : ""), exp: query.get("exp"), uid: query.get("uid"), sig: query.get("sig"))
        // The link is bound to a user: it stops working when they lose access.
        _ = try await media.record(id, for: user)
        let file = try await media.file(id, thumbnail: thumbnail)
        var headers: HTTPFields = [
            .contentType: file.mime, .eTag: "\"\(file.hash)\"", .acceptRanges: "bytes",
            .cacheControl: "private, max-age=31536000, immutable",
        ]
        if request.headers[.ifNoneMatch]?.contains(file.hash) == true {
            return Response(status: .notModified, headers: headers)
        }
        var range: ClosedRange<Int>?
        if let header = request.headers[.range] {
            switch Self.parseRange(header, size: file.size) {
            case .none: break
            case .unsatisfiable:
                headers[.contentRange] = "bytes */\(file.size)"
                return Response(status: .rangeNotSatisfiable, headers: headers)
            case .range(let r):
                range = r
                headers[.contentRange] = "bytes \(r.lowerBound)-\(r.upperBound)/\(file.size)"
            }
        }
        let status: HTTPResponse.Status = range == nil ? .ok : .partialContent
        let count = range?.count ?? file.size
        headers[.contentLength] = String(count)
        if head || count == 0 { return Response(status: status, headers: headers, body: .init()) }
        let body = try await fileIO.loadFile(path: file.path, range: range ?? 0...(file.size - 1), context: context)
        return Response(status: status, headers: headers, body: body)
    }

    enum RangeRequest: Equatable {
        case none
        case unsatisfiable
        case range(ClosedRange<Int>)
    }

    /// One `bytes=` range (`a-b`, `a-`, `-n`). Several ranges are answered with the whole
    /// file (allowed by RFC 9110); a syntactically wrong header is ignored.
    static func parseRange(_ header: String, size: Int) -> RangeRequest {
        let value = header.trimmingCharacters(in: .whitespaces)
        guard value.lowercased().hasPrefix("bytes=") else { return .none }
        let spec = value.dropFirst(6)
        guard !spec.contains(",") else { return .none }
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2 else { return .none }
        if parts[0].isEmpty {
            guard let n = Int(parts[1]) else { return .none }
            guard n > 0, size > 0 else { return .unsatisfiable }
            return .range(max(0, size - n)...(size - 1))
        }
        guard let start = Int(parts[0]), start >= 0 else { return .none }
        let end: Int
        if parts[1].isEmpty {
            end = size - 1
        } else {
            guard let e = Int(parts[1]), e >= start else { return .none }
            end = min(e, size - 1)
        }
        guard start < size else { return .unsatisfiable }
        return .range(start...end)
    }
}

/// The media object of the API.
struct MediaOut: Encodable {
    var mediaID: String
    var fileType: String
    var mimeType: String
    var sizeBytes: UInt64
    var filename: String
    var status: String
    var width: UInt32?
    var height: UInt32?
    var durationMs: Int64?
    var url: String
    var thumbnailURL: String?
    var thumbnailWidth: UInt32?
    var thumbnailHeight: UInt32?
    /// The inline preview: a tiny JPEG, base64.
    var preview: String?
    /// Audio: 64 peak amplitudes, 0–255.
    var waveform: [UInt8]?
    var sha256: String
    var createdAt: String

    init(id: TernID, _ r: MediaRecord, media: MediaService, viewer: TernID) {
        mediaID = id.description
        fileType = r.kind
        mimeType = r.mime
        sizeBytes = r.size
        filename = r.filename
        status = r.status.name
        width = r.width > 0 ? r.width : nil
        height = r.height > 0 ? r.height : nil
        durationMs = r.durationMs >= 0 ? r.durationMs : nil
        url = media.signedPath(id, thumbnail: false, user: viewer)
        let hasThumbnail = !r.thumbnail.isEmpty
        thumbnailURL = hasThumbnail ? media.signedPath(id, thumbnail: true, user: viewer) : nil
        thumbnailWidth = hasThumbnail ? r.thumbnailWidth : nil
        thumbnailHeight = hasThumbnail ? r.thumbnailHeight : nil
        preview = r.preview.isEmpty ? nil : Data(r.preview).base64EncodedString()
        waveform = r.waveform.isEmpty ? nil : r.waveform
        sha256 = r.blob
        createdAt = r.createdAt.rfc3339
    }

    enum CodingKeys: String, CodingKey {
        case mediaID = "media_id", fileType = "file_type", mimeType = "mime_type", sizeBytes = "size_bytes", filename, status
        case width, height, durationMs = "duration_ms", url, thumbnailURL = "thumbnail_url", thumbnailWidth = "thumbnail_width"
        case thumbnailHeight = "thumbnail_height", preview, waveform, sha256, createdAt = "created_at"
    }
}

/// A streaming multipart/form-data parser that finds the part named `file` and hands its
/// bytes on as they arrive (other parts are skipped). Holds at most one delimiter's worth
/// of bytes between chunks.
struct MultipartFileParser {
    enum Event {
        case fileStart(filename: String?, contentType: String?)
        case fileBytes(UnsafeRawBufferPointer)
    }

    private enum State {
        case preamble
        case headers
        case body(isFile: Bool)
        case done
    }

    private let delimiter: [UInt8]
    /// Names of the form field that holds the file.
    private let fields: Set<String>
    private var state = State.preamble
    private var pending: [UInt8] = []
    private(set) var fileComplete = false
    private var headerBytes = 0

    init(boundary: String, fields: Set<String> = ["file"]) {
        delimiter = Array("\r\n--\(boundary)".utf8)
        self.fields = fields
    }

    mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: (Event) throws -> Void) throws {
        pending.append(contentsOf: bytes)
        var progress = true
        while progress {
            progress = false
            switch state {
            case .preamble:
                // The first delimiter may come without the leading CRLF.
                let first = Array(delimiter.dropFirst(2))
                if let at = find(first, in: pending, from: 0) {
                    pending.removeFirst(at + first.count)
                    state = .headers
                    progress = true
                } else if pending.count > 4096 {
                    throw TernError.validation("malformed multipart body (no boundary)")
                }
            case .headers:
                if pending.count >= 2 && pending[0] == UInt8(ascii: "-") && pending[1] == UInt8(ascii: "-") {
                    state = .done  // closing delimiter
                    break
                }
                guard let end = find(Array("\r\n\r\n".utf8), in: pending, from: 0) else {
                    if pending.count > 16 << 10 { throw TernError.validation("multipart part headers too long") }
                    break
                }
                let text = String(decoding: pending[0..<end], as: UTF8.self)
                pending.removeFirst(end + 4)
                let (name, filename, contentType) = Self.parseHeaders(text)
                let isFile = name.map(fields.contains) == true && !fileComplete
                if isFile { try emit(.fileStart(filename: filename, contentType: contentType)) }
                state = .body(isFile: isFile)
                progress = true
            case .body(let isFile):
                if let at = find(delimiter, in: pending, from: 0) {
                    if isFile {
                        try pending.withUnsafeBytes { try emit(.fileBytes(UnsafeRawBufferPointer(rebasing: $0[0..<at]))) }
                        fileComplete = true
                    }
                    pending.removeFirst(at + delimiter.count)
                    state = .headers
                    // Skip the CRLF after a part delimiter (or see "--" of the closing one).
                    if pending.count >= 2 && pending[0] == 13 && pending[1] == 10 { pending.removeFirst(2) }
                    progress = true
                } else if pending.count > delimiter.count {
                    let keep = delimiter.count - 1
                    let cut = pending.count - keep
                    if isFile {
                        try pending.withUnsafeBytes { try emit(.fileBytes(UnsafeRawBufferPointer(rebasing: $0[0..<cut]))) }
                    }
                    pending.removeFirst(cut)
                }
            case .done:
                pending.removeAll()
            }
        }
    }

    /// The first occurrence of `needle` (memchr for its first byte, then a compare).
    private func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard haystack.count - start >= needle.count, let first = needle.first else { return nil }
        return haystack.withUnsafeBytes { hay -> Int? in
            needle.withUnsafeBytes { pin -> Int? in
                let base = hay.baseAddress!
                var i = start
                let last = hay.count - needle.count
                while i <= last {
                    guard let hit = memchr(base + i, Int32(first), last - i + 1) else { return nil }
                    let at = base.distance(to: UnsafeRawPointer(hit))
                    if memcmp(base + at, pin.baseAddress!, needle.count) == 0 { return at }
                    i = at + 1
                }
                return nil
            }
        }
    }

    /// `name`, `filename` and `Content-Type` from a part's headers.
    static func parseHeaders(_ text: String) -> (String?, String?, String?) {
        var name: String?
        var filename: String?
        var contentType: String?
        for line in text.split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if key == "content-type" { contentType = value }
            guard key == "content-disposition" else { continue }
            for param in value.split(separator: ";") {
                let kv = param.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard kv.count == 2 else { continue }
                let v = kv[1].hasPrefix("\"") && kv[1].hasSuffix("\"") && kv[1].count >= 2 ? String(kv[1].dropFirst().dropLast()) : kv[1]
                if kv[0].lowercased() == "name" { name = v }
                if kv[0].lowercased() == "filename" { filename = v }
            }
        }
        return (name, filename, contentType)
    }
}
