import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TernCore
import TernMedia

extension HTTPField.Name {
    static let tusResumable = HTTPField.Name("Tus-Resumable")!
    static let tusVersion = HTTPField.Name("Tus-Version")!
    static let tusExtension = HTTPField.Name("Tus-Extension")!
    static let tusMaxSize = HTTPField.Name("Tus-Max-Size")!
    static let uploadOffset = HTTPField.Name("Upload-Offset")!
    static let uploadLength = HTTPField.Name("Upload-Length")!
    static let uploadMetadata = HTTPField.Name("Upload-Metadata")!
    static let ternMediaID = HTTPField.Name("Tern-Media-Id")!
}

/// Resumable uploads with the tus 1.0 core protocol and its `creation` and `termination`
/// extensions at `/api/v1/media/tus`, so existing tus clients work. The finished file goes
/// through the same probing and storage as a multipart upload; the final `PATCH` (and any
/// later `HEAD`) names the media in `Tern-Media-Id`.
struct TusRoutes {
    let deps: APIDependencies
    let media: MediaService
    let uploadLimiter: RateLimiter

    static let version = "1.0.0"

    func register(authed api: RouterGroup<TernRequestContext>, public router: Router<TernRequestContext>) {
        // OPTIONS needs no authentication (tus discovery).
        router.on("api/v1/media/tus", method: .options) { _, _ in
            Response(status: .noContent, headers: [
                .tusResumable: Self.version, .tusVersion: Self.version, .tusExtension: "creation,termination",
                .tusMaxSize: String(media.settings.largest),
            ])
        }
        api.post("media/tus") { request, context in try await create(request, context) }
        api.head("media/tus/:upload") { request, context in try await head(request, context) }
        api.patch("media/tus/:upload") { request, context in try await patch(request, context) }
        api.delete("media/tus/:upload") { request, context in try await terminate(request, context) }
    }

    private func checkVersion(_ request: Request) throws {
        guard request.headers[.tusResumable] == Self.version else {
            throw EnvelopeError(
                error: TernError(.preconditionFailed, "Tus-Resumable: \(Self.version) is required"), requestID: "",
                extraHeaders: [.tusVersion: Self.version])
        }
    }

    private func upload(_ context: TernRequestContext) throws -> ResumableUpload {
        let claims = try context.caller()
        guard let id = context.parameters.get("upload"), let upload = media.resumable.find(id, owner: claims.userID) else {
            throw TernError.notFound("no such upload")
        }
        return upload
    }

    /// `POST` (creation): `Upload-Length` and `Upload-Metadata` (`filename`, `filetype`,
    /// base64) → 201 with `Location`.
    private func create(_ request: Request, _ context: TernRequestContext) async throws -> Response {
        try checkVersion(request)
        let claims = try context.caller()
        if let wait = uploadLimiter.acquire(claims.userID.description) {
            throw TernError.tooManyRequests("too many uploads; slow down", retryAfter: wait)
        }
        guard let raw = request.headers[.uploadLength], let length = Int(raw), length >= 0 else {
            throw TernError.badRequest("Upload-Length is required (deferred length is not supported)")
        }
        var metadata: [String: String] = [:]
        for pair in (request.headers[.uploadMetadata] ?? "").split(separator: ",") {
            let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: " ", maxSplits: 1)
            guard let key = parts.first else { continue }
            let value = parts.count == 2 ? Data(base64Encoded: String(parts[1])).map { String(decoding: $0, as: UTF8.self) } : ""
            metadata[String(key)] = value ?? ""
        }
        let filename = MediaRoutes.cleanFilename(metadata["filename"] ?? metadata["name"])
        let filetype = metadata["filetype"] ?? metadata["type"]
        let limit = media.streamingLimit(declaredMime: filetype, filename: filename)
        guard length <= limit else { throw TernError(.mediaTooLarge, "file too large, max \(limit) bytes") }
        guard length > 0 else { throw TernError(.mediaInvalidType, "unsupported file type: the file is empty") }
        let upload = try media.resumable.create(owner: claims.userID, length: length, filename: filename, filetype: filetype, now: deps.clock.now())
        return Response(status: .created, headers: [
            .location: "/api/v1/media/tus/\(upload.id)", .tusResumable: Self.version, .uploadOffset: "0",
        ])
    }

    /// `HEAD`: the offset to resume from.
    private func head(_ request: Request, _ context: TernRequestContext) async throws -> Response {
        try checkVersion(request)
        let upload = try upload(context)
        var headers: HTTPFields = [
            .tusResumable: Self.version, .uploadOffset: String(media.resumable.offset(upload.id)),
            .uploadLength: String(upload.length), .cacheControl: "no-store",
        ]
        if let id = upload.mediaID { headers[.ternMediaID] = id }
        return Response(status: .ok, headers: headers)
    }

    /// `PATCH`: appends at `Upload-Offset` (which must be the current offset, else 409);
    /// the bytes are fsynced before the new offset is answered. The last one stores the file.
    private func patch(_ request: Request, _ context: TernRequestContext) async throws -> Response {
        try checkVersion(request)
        let claims = try context.caller()
        let upload = try upload(context)
        guard request.headers[.contentType] == "application/offset+octet-stream" else {
            throw TernError(.unsupportedMediaType, "PATCH needs Content-Type: application/offset+octet-stream")
        }
        guard let raw = request.headers[.uploadOffset], let offset = Int(raw) else { throw TernError.badRequest("Upload-Offset is required") }
        let result = try await media.resumable.withLock(upload.id) { () -> Response in
            let path = media.resumable.partPath(upload.id)
            let current = media.resumable.offset(upload.id)
            guard upload.mediaID == nil, offset == current else {
                throw EnvelopeError(
                    error: TernError(.conflict, "Upload-Offset \(offset) does not match the upload's offset \(current)"), requestID: "",
                    extraHeaders: [.uploadOffset: String(current), .tusResumable: Self.version])
            }
            let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
            guard fd >= 0 else { throw TernError(.internalError, "upload file missing") }
            var written = current
            do {
                defer { close(fd) }
                for try await chunk in request.body {
                    guard written + chunk.readableBytes <= upload.length else {
                        throw TernError(.mediaTooLarge, "more bytes than Upload-Length \(upload.length)")
                    }
                    try chunk.withUnsafeReadableBytes { bytes in
                        var done = 0
                        while done < bytes.count {
                            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
                            if n < 0 && errno == EINTR { continue }
                            guard n > 0 else { throw TernError(.storageFull, "cannot write the upload") }
                            done += n
                        }
                    }
                    written += chunk.readableBytes
                }
                fsync(fd)
            } catch {
                // Keep what arrived: the client resumes from the offset HEAD reports.
                fsync(fd)
                throw error
            }
            var headers: HTTPFields = [.tusResumable: Self.version, .uploadOffset: String(written)]
            if written == upload.length {
                let id: TernID
                do {
                    let writer = try BlobWriter(adopting: path, limit: upload.length)
                    id = try await media.finishUpload(writer, uploader: claims.userID, filename: upload.filename, declaredMime: upload.filetype).id
                } catch {
                    // Refused (type, size): the upload is over either way.
                    media.resumable.remove(upload.id)
                    throw error
                }
                var done = upload
                done.mediaID = id.description
                try media.resumable.save(done)
                headers[.ternMediaID] = id.description
            }
            return Response(status: .noContent, headers: headers)
        }
        guard let result else { throw TernError(.conflict, "another request is writing this upload") }
        return result
    }

    /// `DELETE` (termination): drops the upload and what it received.
    private func terminate(_ request: Request, _ context: TernRequestContext) async throws -> Response {
        try checkVersion(request)
        let upload = try upload(context)
        media.resumable.remove(upload.id)
        return Response(status: .noContent, headers: [.tusResumable: Self.version])
    }
}
