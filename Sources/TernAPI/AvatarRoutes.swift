import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TernCore
import TernMedia
import TernRelay
import TernStore

/// Profile and group photos as real blobs (the seed stored placeholders or 1-hour links).
///
/// `PUT /api/v1/users/me/avatar` and `PUT /api/v1/chats/:id/avatar` (admins) take a
/// multipart photo (field `avatar` or `file`, JPEG/PNG/WebP, at most 5 MiB), store it like
/// any upload (re-encoded, no EXIF), and set `avatar_url` to a stable, versioned path:
/// `/api/v1/users/:id/avatar?v=<media id>` / `/api/v1/chats/:id/avatar?v=…`. Those paths
/// serve the picture to whoever may see it (the owner's `profile_photo` privacy setting;
/// group members), with the access token like any API call, and cache forever (a new photo
/// has a new `v`).
struct AvatarRoutes {
    let deps: APIDependencies
    let media: MediaService
    let groups: GroupService
    let uploadLimiter: RateLimiter

    static let maxBytes = 5 << 20

    func register(on api: RouterGroup<TernRequestContext>) {
        api.put("users/me/avatar") { request, context in
            let claims = try context.caller()
            let (id, _) = try await receive(request, context, owner: claims.userID)
            let url = "/api/v1/users/\(claims.userID)/avatar?v=\(id)"
            let now = deps.clock.now()
            try await deps.store.write { tx in
                guard var user = try tx.user(claims.userID) else { throw TernError.notFound("user not found") }
                let old = user.avatarURL
                user.avatarURL = url
                user.updatedAt = now
                try tx.putUser(user)
                // The owner references the photo (orphan cleanup keeps it); the old one is
                // released.
                try tx.linkMedia(id, chat: claims.userID)
                if let old = Self.mediaID(old) { _ = try tx.delete(tx.tables.mediaChats, Keys.pair(old, claims.userID)) }
            }
            return try Envelope.ok(["avatar_url": url])
        }
        api.put("chats/:id/avatar") { request, context in
            let claims = try context.caller()
            guard let raw = context.parameters.get("id"), let chat = TernID(raw) else { throw TernError(.chatNotFound, "chat not found") }
            // Only admins of the group (checked again in the update's transaction).
            let allowed = try await deps.store.read { tx -> Bool in
                guard let record = try tx.chat(chat), record.kind == .group else { throw TernError(.chatNotFound, "group not found") }
                guard let member = try tx.member(chat: chat, user: claims.userID) else { throw TernError(.notChatMember, "not a member of this group") }
                return member.role == .admin
            }
            guard allowed else { throw TernError(.notAdmin, "only admins can change the group photo") }
            let (id, _) = try await receive(request, context, owner: claims.userID)
            let url = "/api/v1/chats/\(chat)/avatar?v=\(id)"
            try await deps.store.write { tx in try tx.linkMedia(id, chat: chat) }
            try await groups.update(chat: chat, actor: claims.userID, changes: GroupChanges(avatarURL: url))
            return try Envelope.ok(["avatar_url": url])
        }
        api.get("users/:id/avatar") { request, context in
            let claims = try context.caller()
            guard let raw = context.parameters.get("id"), let owner = TernID(raw) else { throw TernError.notFound("no photo") }
            let mediaID = try await deps.store.read { tx -> TernID? in
                guard let user = try tx.user(owner), let id = Self.mediaID(user.avatarURL) else { return nil }
                let privacy = try tx.privacy(owner) ?? PrivacyRecord(updatedAt: Timestamp(milliseconds: 0))
                guard try tx.allows(privacy.profilePhoto, owner: owner, viewer: claims.userID),
                    try !tx.isBlocked(blocker: owner, blocked: claims.userID)
                else { return nil }
                return id
            }
            guard let mediaID else { throw TernError.notFound("no photo") }
            return try await serve(mediaID, request, context)
        }
        api.get("chats/:id/avatar") { request, context in
            let claims = try context.caller()
            guard let raw = context.parameters.get("id"), let chat = TernID(raw) else { throw TernError.notFound("no photo") }
            let mediaID = try await deps.store.read { tx -> TernID? in
                guard let record = try tx.chat(chat), try tx.member(chat: chat, user: claims.userID) != nil else { return nil }
                return Self.mediaID(record.avatarURL)
            }
            guard let mediaID else { throw TernError.notFound("no photo") }
            return try await serve(mediaID, request, context)
        }
    }

    /// The media id in a versioned avatar path, if it is one.
    static func mediaID(_ url: String) -> TernID? {
        guard url.hasPrefix("/api/v1/"), let v = url.range(of: "?v=") else { return nil }
        return TernID(url[v.upperBound...])
    }

    /// Receives the photo of a multipart request (field `avatar` or `file`); a file that is
    /// not a photo is refused before anything is stored.
    private func receive(_ request: Request, _ context: TernRequestContext, owner: TernID) async throws -> (TernID, MediaRecord) {
        let file = try await MediaRoutes.receiveFile(
            request, media: media, limiter: uploadLimiter, owner: owner, fields: ["avatar", "file"],
            words: .init(
                notMultipart: "send the photo as multipart/form-data in a field named avatar", tooLarge: "photo too large",
                noFile: "no photo: send it in a multipart field named avatar", cutShort: "no photo: send it in a multipart field named avatar"),
            limit: { _, _ in Self.maxBytes })
        return try await media.finishUpload(
            file.writer, uploader: owner, filename: file.filename, declaredMime: file.declared,
            onlyMimes: ["image/jpeg", "image/png", "image/webp"])
    }

    private func serve(_ id: TernID, _ request: Request, _ context: TernRequestContext) async throws -> Response {
        try await MediaRoutes.serve(try await media.file(id, thumbnail: false), request, context)
    }
}
