import Foundation
import TernCore
import TernStore
import TernWire

/// The media facts a message carries in `payload.media`, so that history and `message.new`
/// show the file (type, size, dimensions, duration, a blurred preview) before it is
/// downloaded. Links are per user and short-lived: clients get them from
/// `GET /api/v1/media/:id`.
enum MediaSummary {
    /// `payload` (a JSON object) with a `media` member added.
    static func embed(_ id: TernID, _ record: MediaRecord, in payload: [UInt8]) -> [UInt8] {
        guard payload.last == UInt8(ascii: "}") else { return payload }
        var w = JSONWriter(capacity: 256 + record.preview.count * 4 / 3)
        w.beginObject()
        w.member("file_type", record.kind)
        w.member("mime_type", record.mime)
        w.member("size_bytes", Int64(record.size))
        w.member("filename", record.filename)
        if record.width > 0 { w.member("width", Int64(record.width)) }
        if record.height > 0 { w.member("height", Int64(record.height)) }
        if record.durationMs >= 0 { w.member("duration_ms", record.durationMs) }
        if !record.thumbnail.isEmpty {
            // A stable path (the access token authorises it), unlike the expiring links of
            // `GET /api/v1/media/:id`: messages are stored and serialised once for everyone.
            w.member("thumbnail_url", "/api/v1/media/\(id)/thumbnail")
            w.member("thumbnail_width", Int64(record.thumbnailWidth))
            w.member("thumbnail_height", Int64(record.thumbnailHeight))
        }
        if !record.preview.isEmpty { w.member("preview", Data(record.preview).base64EncodedString()) }
        if !record.waveform.isEmpty {
            w.key("waveform")
            w.beginArray()
            for peak in record.waveform { w.int(Int64(peak)) }
            w.endArray()
        }
        w.endObject()
        var out = Array(payload.dropLast())
        if out.count > 1 { out.append(UInt8(ascii: ",")) }
        out += Array(#""media":"#.utf8)
        out += w.bytes
        out.append(UInt8(ascii: "}"))
        return out
    }
}
