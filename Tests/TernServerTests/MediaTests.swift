import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TernCore
import TernMedia
import TernTestSupport

let mediaFixtures = mediaFixturesDirectory

func mediaFixture(_ name: String) -> [UInt8] {
    [UInt8](FileManager.default.contents(atPath: mediaFixtures + "/" + name) ?? Data())
}

extension TestClient {
    /// Uploads `bytes` as the multipart field `file`.
    func upload(_ bytes: [UInt8], filename: String, contentType: String = "application/octet-stream", token: String) async throws -> TestResponse {
        let boundary = "tern-\(UUID().uuidString)"
        var body = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nignored\r\n".utf8)
        body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(filename)\"\r\nContent-Type: \(contentType)\r\n\r\n".utf8)
        body += bytes
        body += Array("\r\n--\(boundary)--\r\n".utf8)
        return try await request(.POST, "/api/v1/media/upload", bytes: body, token: token, headers: [("Content-Type", "multipart/form-data; boundary=\(boundary)")])
    }

    func get(_ path: String, headers: [(String, String)] = []) async throws -> (status: Int, headers: HTTPHeaders, body: [UInt8]) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await http.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 256 << 20)
        return (Int(response.status.code), response.headers, Array(buffer: body))
    }
}

@Suite("Media over HTTP: uploads, probing, presigned downloads")
struct MediaHTTPTests {
    @Test("every accepted type uploads with its real kind; crafted and unsupported files are refused and the server keeps serving")
    func acceptedAndRefused() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let accepted: [(String, String, String)] = [
            ("photo.jpg", "image", "image/jpeg"), ("image.png", "image", "image/png"), ("image.webp", "image", "image/webp"),
            ("anim.gif", "image", "image/gif"), ("video.mp4", "video", "video/mp4"), ("clip.3gp", "video", "video/3gpp"),
            ("clip.webm", "video", "video/webm"), ("voice.ogg", "audio", "audio/ogg; codecs=opus"), ("voice.m4a", "audio", "audio/mp4"),
            ("voice.aac", "audio", "audio/aac"), ("song.mp3", "audio", "audio/mpeg"), ("sound.wav", "audio", "audio/wav"),
            ("doc.pdf", "document", "application/pdf"), ("notes.txt", "document", "text/plain"),
            ("archive.zip", "document", "application/zip"), ("voice.amr", "audio", "audio/amr"),
            ("photo.heic", "document", "image/heic"), ("legacy.doc", "document", "application/msword"),
        ]
        for (name, kind, mime) in accepted {
            // Declared as a generic binary: the kind comes from the content.
            let r = try await c.upload(mediaFixture(name), filename: name, contentType: name.hasSuffix(".txt") ? "text/plain" : "application/octet-stream", token: a.accessToken)
            #expect(r.status == 201, "\(name): \(r.body)")
            #expect(r.data["file_type"] as? String == kind && r.data["mime_type"] as? String == mime, "\(name): \(r.body)")
            if mime == "image/jpeg" || mime == "image/png" || mime == "image/webp" {
                #expect((r.data["size_bytes"] as? Int ?? 0) > 0, "photos are stored re-encoded")
            } else {
                #expect(r.data["size_bytes"] as? Int == mediaFixture(name).count)
            }
            if kind == "image" || kind == "video" {
                #expect(r.data["thumbnail_url"] is String && r.data["preview"] is String && r.data["width"] is Int, "\(name)")
            }
            if kind == "audio" || kind == "video" { #expect((r.data["duration_ms"] as? Int ?? 0) >= 1900, "\(name)") }
            if kind == "audio" && name != "voice.amr" { #expect((r.data["waveform"] as? [Int])?.count == 64, "\(name): a voice-note waveform") }
        }
        for name in ["truncated.mp4", "playlist.mp4", "concat.mp4", "empty.bin", "random.bin", "bomb.png", "clip.mkv"] {
            let r = try await c.upload(mediaFixture(name), filename: name, contentType: "video/mp4", token: a.accessToken)
            #expect(r.status == 400 && r.errorCode == "MEDIA_INVALID_TYPE", "\(name): \(r.status) \(r.body)")
        }
        // A text file sent as a video is refused; the same bytes as text are a document.
        let text = try await c.upload(mediaFixture("notes.txt"), filename: "clip.mp4", contentType: "video/mp4", token: a.accessToken)
        #expect(text.errorCode == "MEDIA_INVALID_TYPE")
        // Malformed requests.
        var r = try await c.request(.POST, "/api/v1/media/upload", json: ["file": "x"], token: a.accessToken)
        #expect(r.status == 415)
        r = try await c.request(.POST, "/api/v1/media/upload", raw: "--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b--\r\n",
                                token: a.accessToken, headers: [("Content-Type", "multipart/form-data; boundary=b")])
        #expect(r.status == 400 && (r.errorMessage ?? "").contains("file"))
        r = try await c.upload(mediaFixture("photo.jpg"), filename: "photo.jpg", token: "nope")
        #expect(r.status == 401)
        #expect(try await c.request(.GET, "/health").status == 200)
        // Refused uploads leave no file behind.
        let tmp = try FileManager.default.contentsOfDirectory(atPath: s.dir.path + "/media/tmp")
        #expect(tmp.isEmpty, "\(tmp)")
        await s.stop()
    }

    @Test("uploads over the limit are refused: by Content-Length at once, while streaming, and by the real kind")
    func limits() async throws {
        let s = try await InProcessServer.start { config in
            config.mediaImageMax = 256 << 10
            config.mediaVideoMax = 1 << 20
            config.mediaAudioMax = 1 << 20
            config.mediaDocumentMax = 1 << 20
        }
        let c = s.client
        let a = try await c.login(testPhone())
        // Declared too large.
        var r = try await c.request(.POST, "/api/v1/media/upload", bytes: [UInt8](repeating: 0, count: 2 << 20), token: a.accessToken,
                                    headers: [("Content-Type", "multipart/form-data; boundary=b")])
        #expect(r.status == 413 && r.errorCode == "MEDIA_TOO_LARGE")
        // Streamed without a length: cut off once the declared image passes 256 KiB.
        let boundary = "stream-boundary"
        let head = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n".utf8)
        let chunks = AsyncStream<ByteBuffer> { continuation in
            continuation.yield(ByteBuffer(bytes: head))
            for _ in 0..<160 { continuation.yield(ByteBuffer(repeating: 0x41, count: 64 << 10)) }  // 10 MiB
            continuation.finish()
        }
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(c.port)/api/v1/media/upload")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(a.accessToken)")
        request.headers.add(name: "Content-Type", value: "multipart/form-data; boundary=\(boundary)")
        request.body = .stream(chunks, length: .unknown)
        do {
            let response = try await c.http.execute(request, timeout: .seconds(30))
            let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
            #expect(response.status.code == 413 && body.contains("MEDIA_TOO_LARGE"), "\(body)")
        } catch {
            // The server may close before the client finished sending: also a refusal.
            Issue.record("no response to an oversized stream: \(error)")
        }
        // Within the streaming limit of an undeclared kind, over the limit of its real kind.
        r = try await c.upload(mediaFixture("big.jpg"), filename: "upload.bin", token: a.accessToken)
        #expect(r.status == 413 && (r.errorMessage ?? "").contains("image"), "\(r.body)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.dir.path + "/media/tmp").isEmpty)
        await s.stop()
    }

    @Test("uploads per user are rate limited")
    func uploadRate() async throws {
        let s = try await InProcessServer.start { $0.mediaUploadRate = .per(.minutes(1), 2) }
        let c = s.client
        let a = try await c.login(testPhone())
        let b = try await c.login(testPhone())
        for _ in 0..<2 { #expect(try await c.upload(mediaFixture("doc.pdf"), filename: "d.pdf", token: a.accessToken).status == 201) }
        let third = try await c.upload(mediaFixture("doc.pdf"), filename: "d.pdf", token: a.accessToken)
        #expect(third.status == 429 && third.headers["Retry-After"].first != nil)
        #expect(try await c.upload(mediaFixture("doc.pdf"), filename: "d.pdf", token: b.accessToken).status == 201, "per user")
        await s.stop()
    }

    @Test("the same bytes uploaded twice are stored once")
    func deduplicated() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let b = try await c.login(testPhone())
        let first = try await c.upload(mediaFixture("video.mp4"), filename: "a.mp4", token: a.accessToken)
        let second = try await c.upload(mediaFixture("video.mp4"), filename: "b.mp4", token: b.accessToken)
        #expect(first.data["media_id"] as? String != second.data["media_id"] as? String)
        let hash = try #require(first.data["sha256"] as? String)
        #expect(second.data["sha256"] as? String == hash)
        let blobs = FileManager.default.enumerator(atPath: s.dir.path + "/media/blobs")?.allObjects as? [String] ?? []
        let files = blobs.filter { $0.split(separator: "/").count == 3 }
        #expect(files.count == 2, "the video and its poster thumbnail, once each: \(files)")
        let stored = try #require(FileManager.default.contents(atPath: s.dir.path + "/media/blobs/\(hash.prefix(2))/\(hash.dropFirst(2).prefix(2))/\(hash)"))
        #expect([UInt8](stored) == mediaFixture("video.mp4"))
        await s.stop()
    }

    @Test("presigned downloads: exact Range bytes, 416, HEAD, ETag/304, immutable caching, and a thumbnail that decodes")
    func downloads() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let original = mediaFixture("video.mp4")
        let up = try await c.upload(original, filename: "video.mp4", token: a.accessToken)
        let url = try #require(up.data["url"] as? String)
        var r = try await c.get(url)
        #expect(r.status == 200 && r.body == original)
        #expect(r.headers["Cache-Control"].first?.contains("immutable") == true)
        let etag = try #require(r.headers["ETag"].first)
        #expect(etag.contains(up.data["sha256"] as? String ?? "?"))
        for (header, range) in [("bytes=0-99", 0...99), ("bytes=1000-1999", 1000...1999), ("bytes=-500", (original.count - 500)...(original.count - 1)),
                                ("bytes=\(original.count - 10)-", (original.count - 10)...(original.count - 1)),
                                ("bytes=100-999999999", 100...(original.count - 1))] {
            r = try await c.get(url, headers: [("Range", header)])
            #expect(r.status == 206, "\(header)")
            #expect(r.body == Array(original[range]), "\(header)")
            #expect(r.headers["Content-Range"].first == "bytes \(range.lowerBound)-\(range.upperBound)/\(original.count)")
        }
        r = try await c.get(url, headers: [("Range", "bytes=\(original.count)-")])
        #expect(r.status == 416 && r.headers["Content-Range"].first == "bytes */\(original.count)")
        r = try await c.get(url, headers: [("If-None-Match", etag)])
        #expect(r.status == 304 && r.body.isEmpty)
        var head = HTTPClientRequest(url: "http://127.0.0.1:\(c.port)\(url)")
        head.method = .HEAD
        let headResponse = try await c.http.execute(head, timeout: .seconds(10))
        #expect(headResponse.status.code == 200 && headResponse.headers["Content-Length"].first == "\(original.count)")

        let thumbURL = try #require(up.data["thumbnail_url"] as? String)
        r = try await c.get(thumbURL)
        #expect(r.status == 200 && r.headers["Content-Type"].first == "image/jpeg")
        let path = s.dir.path + "/thumb.jpg"
        try Data(r.body).write(to: URL(fileURLWithPath: path))
        let info = try MediaProbe.probe(path: path)
        #expect(info.kind == .image && info.width == 320 && info.height == 240)
        await s.stop()
    }

    @Test("tus: a real client (tuspy) uploads, is interrupted, resumes byte-exact; offsets, termination and version are checked")
    func resumable() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let file = mediaFixtures + "/video.mp4"
        let script = """
            import sys
            from tusclient import client
            url, token, path = sys.argv[1:4]
            tus = client.TusClient(url, headers={"Authorization": "Bearer " + token})
            first = tus.uploader(path, chunk_size=16384, metadata={"filename": "clip.mp4", "filetype": "video/mp4"})
            first.upload(stop_at=3 * 16384)
            print(first.url)
            print(first.offset)
            # A new uploader (as after an app restart) asks the server where to resume.
            again = tus.uploader(path, chunk_size=16384, url=first.url)
            print(again.offset)
            again.upload()
            print(again.offset)
            """
        let out = try python(script, input: "", arguments: ["http://127.0.0.1:\(c.port)/api/v1/media/tus", a.accessToken, file])
            .split(separator: "\n").map(String.init)
        try #require(out.count == 4, "\(out)")
        let location = out[0]
        #expect(out[1] == "\(3 * 16384)" && out[2] == "\(3 * 16384)", "interrupted at 3 chunks and resumed there: \(out)")
        #expect(out[3] == "\(mediaFixture("video.mp4").count)")
        let path = try #require(URL(string: location)?.path)
        let tusHeaders = [("Tus-Resumable", "1.0.0")]
        var r = try await c.request(.HEAD, path, token: a.accessToken, headers: tusHeaders)
        let mediaID = try #require(r.headers["Tern-Media-Id"].first, "the finished upload names its media")
        r = try await c.request(.GET, "/api/v1/media/\(mediaID)", token: a.accessToken)
        #expect(r.data["file_type"] as? String == "video" && r.data["filename"] as? String == "clip.mp4")
        let downloaded = try await c.get(try #require(r.data["url"] as? String))
        #expect(downloaded.body == mediaFixture("video.mp4"), "byte-exact after the resume")

        // The protocol's checks.
        r = try await c.request(.POST, "/api/v1/media/tus", token: a.accessToken, headers: [("Upload-Length", "100")])
        #expect(r.status == 412 && r.headers["Tus-Version"].first == "1.0.0")
        r = try await c.request(.POST, "/api/v1/media/tus", token: a.accessToken, headers: tusHeaders + [("Upload-Length", "\(200 << 20)")])
        #expect(r.status == 413)
        r = try await c.request(.POST, "/api/v1/media/tus", token: a.accessToken, headers: tusHeaders + [("Upload-Length", "10")])
        #expect(r.status == 201)
        let upload = try #require(r.headers["Location"].first)
        r = try await c.request(.PATCH, upload, bytes: [1, 2, 3], token: a.accessToken,
                                headers: tusHeaders + [("Upload-Offset", "5"), ("Content-Type", "application/offset+octet-stream")])
        #expect(r.status == 409 && r.headers["Upload-Offset"].first == "0")
        r = try await c.request(.PATCH, upload, bytes: [1, 2, 3], token: a.accessToken,
                                headers: tusHeaders + [("Upload-Offset", "0"), ("Content-Type", "application/offset+octet-stream")])
        #expect(r.status == 204 && r.headers["Upload-Offset"].first == "3")
        let other = try await c.login(testPhone())
        r = try await c.request(.HEAD, upload, token: other.accessToken, headers: tusHeaders)
        #expect(r.status == 404, "someone else's upload does not exist for them")
        r = try await c.request(.DELETE, upload, token: a.accessToken, headers: tusHeaders)
        #expect(r.status == 204)
        r = try await c.request(.HEAD, upload, token: a.accessToken, headers: tusHeaders)
        #expect(r.status == 404)
        r = try await c.request(.OPTIONS, "/api/v1/media/tus")
        #expect(r.status == 204 && (r.headers["Tus-Extension"].first ?? "").contains("termination"))
        await s.stop()
    }

    @Test("orphan cleanup deletes only unreferenced media older than the grace period; shared and sent blobs stay")
    func orphanCleanup() async throws {
        let clock = ManualClock(SystemClock().now())
        let s = try await InProcessServer.start(clock: clock)
        let c = s.client
        let users = try await c.users(2)
        let (a, b) = (users[0], users[1])
        func blobExists(_ hash: String) -> Bool {
            FileManager.default.fileExists(atPath: s.dir.path + "/media/blobs/\(hash.prefix(2))/\(hash.dropFirst(2).prefix(2))/\(hash)")
        }
        let unsent = try await c.upload(mediaFixture("photo.jpg"), filename: "x.jpg", token: a.accessToken)
        let sent = try await c.upload(mediaFixture("video.mp4"), filename: "y.mp4", token: a.accessToken)
        let twin = try await c.upload(mediaFixture("video.mp4"), filename: "w.mp4", token: b.accessToken)
        let chat = try await c.directChat(a, b)
        let sentID = try #require(sent.data["media_id"] as? String)
        let r = try await c.request(.POST, "/api/v1/messages", json: ["chat_id": chat, "type": "video", "payload": ["media_id": sentID], "client_msg_id": "v1"], token: a.accessToken)
        #expect(r.status == 201)

        // Young: nothing goes.
        var report = try await s.server.media.collectGarbage(grace: .hours(24))
        #expect(report == CleanupReport())

        clock.advance(by: .hours(25))
        report = try await s.server.media.collectGarbage(grace: .hours(24))
        #expect(report.mediaDeleted == 2, "the unsent photo and the unsent twin: \(report)")
        #expect(report.blobsDeleted == 2, "the photo and its thumbnail; the video is still sent: \(report)")
        let unsentHash = try #require(unsent.data["sha256"] as? String)
        let sentHash = try #require(sent.data["sha256"] as? String)
        #expect(!blobExists(unsentHash))
        #expect(blobExists(sentHash) && twin.data["sha256"] as? String == sentHash, "the twin's bytes are the sent video's")
        // (A day later the access tokens expired: log in again.)
        let a2 = try await c.login(a.phone, deviceID: a.deviceID)
        let b2 = try await c.login(b.phone, deviceID: b.deviceID)
        #expect(try await c.request(.GET, "/api/v1/media/\(unsent.data["media_id"] as? String ?? "")", token: a2.accessToken).status == 404)
        let info = try await c.request(.GET, "/api/v1/media/\(sentID)", token: b2.accessToken)
        #expect(info.status == 200)
        #expect(try await c.get(try #require(info.data["url"] as? String)).body == mediaFixture("video.mp4"))
        // Old and referenced: still kept on the next pass.
        clock.advance(by: .hours(24 * 30))
        report = try await s.server.media.collectGarbage(grace: .hours(24))
        #expect(report == CleanupReport() && blobExists(sentHash))
        await s.stop()
    }

    @Test("avatars are real blobs: set, served to who may see them, replaced, and group photos for members only")
    func avatars() async throws {
        let clock = ManualClock(SystemClock().now())
        let s = try await InProcessServer.start(clock: clock)
        let c = s.client
        let users = try await c.users(3)
        let (a, b, outsider) = (users[0], users[1], users[2])
        func putAvatar(_ path: String, _ bytes: [UInt8], token: String, field: String = "avatar") async throws -> TestResponse {
            let boundary = "avatar-\(UUID().uuidString)"
            var body = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(field)\"; filename=\"me.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n".utf8)
            body += bytes + Array("\r\n--\(boundary)--\r\n".utf8)
            return try await c.request(.PUT, path, bytes: body, token: token, headers: [("Content-Type", "multipart/form-data; boundary=\(boundary)")])
        }
        var r = try await putAvatar("/api/v1/users/me/avatar", mediaFixture("gps.jpg"), token: a.accessToken)
        #expect(r.status == 200, "\(r.body)")
        let url = try #require(r.data["avatar_url"] as? String)
        #expect(url.hasPrefix("/api/v1/users/\(a.userID)/avatar?v="))
        r = try await c.request(.GET, "/api/v1/users/me", token: a.accessToken)
        #expect(r.data["avatar_url"] as? String == url)
        var photo = try await c.request(.GET, url, token: b.accessToken)
        #expect(photo.status == 200 && photo.headers["Content-Type"].first == "image/jpeg" && !photo.body.contains("Exif"))
        #expect(try await c.request(.GET, url).status == 401, "the access token is needed")
        // Privacy: nobody sees the photo but its owner.
        r = try await c.request(.PUT, "/api/v1/users/privacy", json: ["profile_photo": "nobody"], token: a.accessToken)
        #expect(r.status == 204 || r.status == 200)
        #expect(try await c.request(.GET, url, token: b.accessToken).status == 404)
        #expect(try await c.request(.GET, url, token: a.accessToken).status == 200)
        // Only photos, at most 5 MiB.
        r = try await putAvatar("/api/v1/users/me/avatar", mediaFixture("voice.ogg"), token: a.accessToken)
        #expect(r.status == 400 && r.errorCode == "MEDIA_INVALID_TYPE")
        r = try await putAvatar("/api/v1/users/me/avatar", [UInt8](repeating: 0xFF, count: 6 << 20), token: a.accessToken)
        #expect(r.status == 413)
        // A new photo replaces the old one, which orphan cleanup may then remove.
        r = try await putAvatar("/api/v1/users/me/avatar", mediaFixture("image.png"), token: a.accessToken, field: "file")
        let second = try #require(r.data["avatar_url"] as? String)
        #expect(second != url)
        clock.advance(by: .hours(25))
        let report = try await s.server.media.collectGarbage(grace: .hours(24))
        #expect(report.mediaDeleted == 1, "the replaced photo only: \(report)")

        // Group photo: admins set it, members see it, outsiders do not.
        let (a2, b2, o2) = (try await c.login(a.phone, deviceID: a.deviceID), try await c.login(b.phone, deviceID: b.deviceID),
                            try await c.login(outsider.phone, deviceID: outsider.deviceID))
        let group = try await c.group(a2, [b2])
        r = try await putAvatar("/api/v1/chats/\(group)/avatar", mediaFixture("photo.jpg"), token: b2.accessToken)
        #expect(r.status == 403 && r.errorCode == "NOT_ADMIN")
        r = try await putAvatar("/api/v1/chats/\(group)/avatar", mediaFixture("photo.jpg"), token: a2.accessToken)
        #expect(r.status == 200, "\(r.body)")
        let groupURL = try #require(r.data["avatar_url"] as? String)
        r = try await c.request(.GET, "/api/v1/chats/\(group)", token: b2.accessToken)
        #expect(r.data["avatar_url"] as? String == groupURL)
        photo = try await c.request(.GET, groupURL, token: b2.accessToken)
        #expect(photo.status == 200)
        #expect(try await c.request(.GET, groupURL, token: o2.accessToken).status == 404)
        await s.stop()
    }

    @Test("a WebM video is transcoded in the background: processing, then ready as H.264/AAC MP4")
    func transcoding() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let up = try await c.upload(mediaFixture("clip.webm"), filename: "clip.webm", token: a.accessToken)
        #expect(up.status == 201 && up.data["status"] as? String == "processing", "\(up.body)")
        let id = try #require(up.data["media_id"] as? String)
        var info = up
        let deadline = Date().addingTimeInterval(60)
        while info.data["status"] as? String == "processing" && Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
            info = try await c.request(.GET, "/api/v1/media/\(id)", token: a.accessToken)
        }
        #expect(info.data["status"] as? String == "ready" && info.data["mime_type"] as? String == "video/mp4", "\(info.body)")
        let file = try await c.get(try #require(info.data["url"] as? String))
        let path = s.dir.path + "/transcoded.mp4"
        try Data(file.body).write(to: URL(fileURLWithPath: path))
        let probed = try MediaProbe.probe(path: path)
        #expect(probed.videoCodec == "h264" && probed.audioCodec == "aac" && probed.width == 320)
        // An H.264/AAC MP4 within the caps is ready at once.
        let plain = try await c.upload(mediaFixture("video.mp4"), filename: "video.mp4", token: a.accessToken)
        #expect(plain.data["status"] as? String == "ready")
        await s.stop()
    }

    @Test("photos are stored upright and without EXIF/GPS; their size is the size as shown")
    func exifStripped() async throws {
        let s = try await InProcessServer.start()
        let c = s.client
        let a = try await c.login(testPhone())
        let original = mediaFixture("gps.jpg")
        #expect(String(decoding: original, as: UTF8.self).contains("Exif"), "the fixture carries EXIF")
        let up = try await c.upload(original, filename: "IMG_0001.jpg", contentType: "image/jpeg", token: a.accessToken)
        #expect(up.status == 201, "\(up.body)")
        #expect(up.data["width"] as? Int == 480 && up.data["height"] as? Int == 640, "orientation 6 shows portrait: \(up.body)")
        #expect(up.data["thumbnail_width"] as? Int == 240 && up.data["thumbnail_height"] as? Int == 320)
        let stored = try await c.get(try #require(up.data["url"] as? String))
        #expect(stored.status == 200)
        let text = String(decoding: stored.body, as: UTF8.self)
        #expect(!text.contains("Exif") && !stored.body.isEmpty, "no EXIF segment left")
        // The GPS rationals (52/1, 31/1, 4/1) are gone with it.
        let gpsBytes: [UInt8] = [52, 0, 0, 0, 1, 0, 0, 0, 31, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0]
        #expect(!stored.body.indices.dropLast(gpsBytes.count).contains { Array(stored.body[$0..<$0 + gpsBytes.count]) == gpsBytes })
        let path = s.dir.path + "/stored.jpg"
        try Data(stored.body).write(to: URL(fileURLWithPath: path))
        let info = try MediaProbe.probe(path: path)
        #expect(info.width == 480 && info.height == 640, "stored upright: \(info)")
        await s.stop()
    }

    @Test("tampered, expired and other-user links get 403; only the uploader and members of chats it was sent in obtain links")
    func access() async throws {
        let clock = ManualClock(SystemClock().now())
        let s = try await InProcessServer.start(clock: clock)
        let c = s.client
        let users = try await c.users(3)
        let (a, b, outsider) = (users[0], users[1], users[2])
        let up = try await c.upload(mediaFixture("photo.jpg"), filename: "photo.jpg", token: a.accessToken)
        let id = try #require(up.data["media_id"] as? String)
        let url = try #require(up.data["url"] as? String)
        #expect(try await c.get(url).status == 200)

        // Tampered: another id, another user, a later expiry, a changed signature.
        var components = URLComponents(string: "http://x" + url)!
        func with(_ name: String, _ value: String) -> String {
            var copy = components
            copy.queryItems = copy.queryItems!.map { $0.name == name ? URLQueryItem(name: name, value: value) : $0 }
            return copy.percentEncodedPath + "?" + copy.percentEncodedQuery!
        }
        let exp = Int(components.queryItems!.first { $0.name == "exp" }!.value!)!
        for tampered in [with("uid", b.userID), with("exp", "\(exp + 3600)"), with("sig", "AAAA" + String(components.queryItems!.first { $0.name == "sig" }!.value!.dropFirst(4)))] {
            let r = try await c.get(tampered)
            #expect(r.status == 403, "\(tampered)")
        }
        components.path = "/media/\(UUID().uuidString.lowercased())"
        #expect(try await c.get(components.percentEncodedPath + "?" + components.percentEncodedQuery!).status == 403)
        #expect(try await c.get("/media/\(id)").status == 403, "no signature")

        // Not sent anywhere yet: only the uploader sees it.
        var r = try await c.request(.GET, "/api/v1/media/\(id)", token: b.accessToken)
        #expect(r.status == 404)
        // A message needs media the sender may send.
        let chat = try await c.directChat(a, b)
        r = try await c.request(.POST, "/api/v1/messages", json: ["chat_id": chat, "type": "image", "payload": ["media_id": id], "client_msg_id": "m1"], token: b.accessToken)
        #expect(r.status == 400, "b cannot send a's private upload")
        r = try await c.request(.POST, "/api/v1/messages", json: ["chat_id": chat, "type": "video", "payload": ["media_id": id], "client_msg_id": "m2"], token: a.accessToken)
        #expect(r.status == 400, "an image is not a video")
        let ws = try await c.ws(b)
        _ = await ws.next(event: "mailbox.drained")
        r = try await c.request(.POST, "/api/v1/messages", json: ["chat_id": chat, "type": "image", "payload": ["media_id": id], "client_msg_id": "m3"], token: a.accessToken)
        #expect(r.status == 201, "\(r.body)")
        // The message carries what to show before the download: live and in history.
        let live = await ws.next(event: "message.new")
        let shown = (live.frame?.data["payload"] as? [String: Any])?["media"] as? [String: Any]
        #expect(shown?["mime_type"] as? String == "image/jpeg" && shown?["width"] as? Int == 640 && shown?["preview"] is String, "\(live.frame ?? [:])")
        let thumbPath = try #require(shown?["thumbnail_url"] as? String)
        let thumb = try await c.request(.GET, thumbPath, token: b.accessToken)
        #expect(thumb.status == 200 && thumb.headers["Content-Type"].first == "image/jpeg")
        #expect(try await c.request(.GET, thumbPath, token: outsider.accessToken).status == 404)
        let history = try await c.request(.GET, "/api/v1/messages?chat_id=\(chat)", token: b.accessToken)
        let stored = ((history.data["items"] as? [[String: Any]])?.first?["payload"] as? [String: Any])?["media"] as? [String: Any]
        #expect(stored?["size_bytes"] as? Int == up.data["size_bytes"] as? Int)
        await ws.close()
        // Now b (a member of that chat) obtains its own link; the outsider still cannot.
        r = try await c.request(.GET, "/api/v1/media/\(id)", token: b.accessToken)
        #expect(r.status == 200)
        let bURL = try #require(r.data["url"] as? String)
        let viaB = try await c.get(bURL)
        let viaA = try await c.get(url)
        #expect(viaB.status == 200 && viaB.body == viaA.body)
        r = try await c.request(.GET, "/api/v1/media/\(id)", token: outsider.accessToken)
        #expect(r.status == 404)

        // Expired: an hour and a bit later the same links are refused.
        clock.advance(by: .seconds(3601))
        let expired = try await c.get(bURL)
        #expect(expired.status == 403 && String(decoding: expired.body, as: UTF8.self).contains("expired"))
        await s.stop()
    }
}
