import CAV
import Foundation

/// What an uploaded file is, as Tern stores and shows it.
public enum MediaKind: String, Sendable, Codable, CaseIterable {
    case image, video, audio, document
}

/// The result of probing a file: its kind and MIME type from its content (never from its
/// name alone), and what libav measured.
public struct MediaInfo: Sendable, Equatable {
    public var kind: MediaKind
    public var mime: String
    /// libav's demuxer, or the document format (`pdf`, `zip`, `ole2`, `text`, `heif`).
    public var container: String
    public var videoCodec: String?
    public var audioCodec: String?
    /// Display size (after rotation).
    public var width: Int?
    public var height: Int?
    public var durationMs: Int64?
    /// Clockwise degrees the stored picture must be turned to display upright (0, 90, 180, 270).
    public var rotation: Int

    public init(
        kind: MediaKind, mime: String, container: String, videoCodec: String? = nil, audioCodec: String? = nil,
        width: Int? = nil, height: Int? = nil, durationMs: Int64? = nil, rotation: Int = 0
    ) {
        self.kind = kind
        self.mime = mime
        self.container = container
        self.videoCodec = videoCodec
        self.audioCodec = audioCodec
        self.width = width
        self.height = height
        self.durationMs = durationMs
        self.rotation = rotation
    }

    /// Whether a poster/thumbnail can be made (libav decodes a picture from it).
    public var hasPicture: Bool { (kind == .image || kind == .video) && width != nil }
}

/// Detects what a file is: documents by their signature, everything else with libav
/// against an allow-list. Anything else is refused (`MEDIA_INVALID_TYPE`).
public enum MediaProbe {
    /// Video codecs phones play or Tern accepts for transcoding.
    static let videoCodecs: Set<String> = ["h264", "hevc", "mpeg4", "h263", "vp8", "vp9", "av1"]
    static let audioCodecs: Set<String> = ["aac", "opus", "vorbis", "mp3", "amr_nb", "amr_wb", "pcm_s16le", "pcm_s24le", "pcm_u8", "pcm_f32le", "alac", "flac"]
    static let imageCodecs: [String: String] = ["mjpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"]

    /// Probes `path` and, when it has a picture, makes its thumbnail and preview from the
    /// same opened input (one open and one stream analysis for both).
    public static func process(
        path: String, declaredText: Bool, filename: String?, thumbnailSide: Int, limits: MediaLimits = MediaLimits()
    ) throws -> (info: MediaInfo, thumbnail: Picture?, preview: Picture?, waveform: [UInt8]) {
        let (info, opened) = try identify(path: path, declaredText: declaredText, filename: filename, limits: limits)
        guard let input = opened else { return (info, nil, nil, []) }
        if info.kind == .audio {
            // The container, codec and duration are valid; a waveform that cannot be drawn
            // (e.g. a voice note of silence frames) is left out rather than refusing the file.
            return (info, nil, nil, (try? Waveform.peaks(input)) ?? [])
        }
        guard info.hasPicture else { return (info, nil, nil, []) }
        let made = try Thumbnailer.make(input, info: info, maxSide: thumbnailSide, previewSide: 16)
        var shown = info
        if info.kind == .image, (made.thumbnail.width > made.thumbnail.height) != ((info.width ?? 0) > (info.height ?? 0)) {
            // EXIF turned the picture a quarter: report the size as it is shown.
            shown.width = info.height
            shown.height = info.width
        }
        return (shown, made.thumbnail, made.preview, [])
    }

    /// Probes `path`. `declaredText` says the client sent it as plain text (a `.txt` name or
    /// `text/plain`): only then is a text file accepted, so that a playlist sent as a
    /// "video" is refused instead of stored as a document.
    public static func probe(path: String, declaredText: Bool = false, filename: String? = nil, limits: MediaLimits = MediaLimits()) throws -> MediaInfo {
        try identify(path: path, declaredText: declaredText, filename: filename, limits: limits).info
    }

    /// What `path` is, and the libav input it was read with (nil for documents and text).
    static func identify(path: String, declaredText: Bool, filename: String?, limits: MediaLimits) throws -> (info: MediaInfo, input: AVInput?) {
        let head = try readHead(path, count: 8192)
        guard !head.isEmpty else { throw MediaError("the file is empty") }
        if let document = document(head, filename: filename) { return (document, nil) }
        if head.starts(with: Array("#EXTM3U".utf8)) || head.starts(with: Array("ffconcat".utf8)) {
            throw MediaError("playlists are not media")
        }
        do {
            let input = try AVInput(path: path, limits: limits)
            return (try probeAV(input, limits: limits), input)
        } catch let error as MediaError {
            if declaredText, isText(path) { return (MediaInfo(kind: .document, mime: "text/plain", container: "text"), nil) }
            throw error
        }
    }

    static func probeAV(_ input: AVInput, limits: MediaLimits) throws -> MediaInfo {
        let demuxer = input.demuxer
        let video = input.best(AVMEDIA_TYPE_VIDEO)
        let audio = input.best(AVMEDIA_TYPE_AUDIO)
        var info = MediaInfo(kind: .document, mime: "", container: demuxer)
        if let video {
            let par = video.pointee.codecpar.pointee
            let codec = codecName(video)
            guard par.width > 0, par.height > 0 else { throw MediaError("video stream without a size") }
            guard Int(par.width) * Int(par.height) <= limits.maxPixels else {
                throw MediaError("picture of \(par.width)×\(par.height) is over \(limits.maxPixels) pixels")
            }
            let rotation = normalisedRotation(tern_av_stream_rotation(video))
            info.videoCodec = codec
            info.rotation = rotation
            info.width = Int(rotation % 180 == 0 ? par.width : par.height)
            info.height = Int(rotation % 180 == 0 ? par.height : par.width)
        }
        if let audio { info.audioCodec = codecName(audio) }
        info.durationMs = input.durationMilliseconds
        if let ms = info.durationMs, ms > limits.maxDuration.components.seconds * 1000 {
            throw MediaError("longer than \(limits.maxDuration.components.seconds / 60) minutes")
        }

        switch demuxer {
        case "jpeg_pipe", "png_pipe", "webp_pipe", "gif":
            guard let codec = info.videoCodec, let mime = imageCodecs[codec] else { throw MediaError("unsupported image encoding") }
            info.kind = .image
            info.mime = mime
            info.durationMs = nil
        case "mov,mp4,m4a,3gp,3g2,mj2":
            let brand = input.tag("major_brand")?.trimmingCharacters(in: .whitespaces) ?? ""
            if let codec = info.videoCodec, video.map({ $0.pointee.disposition & AV_DISPOSITION_ATTACHED_PIC == 0 }) ?? false {
                guard videoCodecs.contains(codec) else { throw MediaError("unsupported video codec \(codec)") }
                info.kind = .video
                info.mime = brand.hasPrefix("3g2") ? "video/3gpp2" : brand.hasPrefix("3gp") ? "video/3gpp" : brand == "qt" ? "video/quicktime" : "video/mp4"
            } else if let codec = info.audioCodec {
                guard audioCodecs.contains(codec) else { throw MediaError("unsupported audio codec \(codec)") }
                // M4A (and 3GP voice notes without video) are audio, not video.
                info.kind = .audio
                info.mime = brand.hasPrefix("3gp") ? "audio/3gpp" : "audio/mp4"
                info.videoCodec = nil
                info.width = nil
                info.height = nil
            } else {
                throw MediaError("no audio or video stream")
            }
        case "matroska,webm":
            if let codec = info.videoCodec {
                guard ["vp8", "vp9", "av1"].contains(codec), info.audioCodec.map({ ["opus", "vorbis"].contains($0) }) ?? true else {
                    throw MediaError("only WebM (VP8/VP9/AV1 with Opus/Vorbis) is accepted, not Matroska with \(codec)")
                }
                info.kind = .video
                info.mime = "video/webm"
            } else if let codec = info.audioCodec, ["opus", "vorbis"].contains(codec) {
                info.kind = .audio
                info.mime = "audio/webm"
            } else {
                throw MediaError("unsupported Matroska content")
            }
        case "ogg":
            guard info.videoCodec == nil, let codec = info.audioCodec, ["opus", "vorbis", "flac"].contains(codec) else {
                throw MediaError("only Ogg audio (Opus, Vorbis, FLAC) is accepted")
            }
            info.kind = .audio
            info.mime = codec == "opus" ? "audio/ogg; codecs=opus" : "audio/ogg"
        case "mp3", "aac", "amr", "amrnb", "amrwb", "wav":
            guard info.audioCodec != nil else { throw MediaError("no audio stream") }
            info.kind = .audio
            info.mime = ["mp3": "audio/mpeg", "aac": "audio/aac", "wav": "audio/wav"][demuxer] ?? "audio/amr"
            info.videoCodec = nil
            info.width = nil
            info.height = nil
        default:
            throw MediaError("unsupported container \(demuxer)")
        }
        if info.kind == .audio || info.kind == .video {
            guard info.durationMs != nil else { throw MediaError("no duration: truncated or not a media file") }
        }
        return info
    }

    static func normalisedRotation(_ counterClockwise: Double) -> Int {
        // The display matrix gives a counter-clockwise angle; we store clockwise degrees.
        let cw = Int((-counterClockwise).rounded())
        return ((cw % 360) + 360) % 360 / 90 * 90
    }

    /// Documents recognised by their first bytes: PDF, ZIP (and Office Open XML inside),
    /// OLE2 (legacy Office), HEIF/HEIC (libav 5.1 cannot decode it: kept as a document).
    static func document(_ head: [UInt8], filename: String?) -> MediaInfo? {
        let ext = filename.map { ($0 as NSString).pathExtension.lowercased() } ?? ""
        if head.starts(with: Array("%PDF-".utf8)) {
            return MediaInfo(kind: .document, mime: "application/pdf", container: "pdf")
        }
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            let text = String(decoding: head, as: UTF8.self)
            var mime = "application/zip"
            if text.contains("[Content_Types].xml") || ["docx", "xlsx", "pptx"].contains(ext) {
                if text.contains("word/") || ext == "docx" {
                    mime = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
                } else if text.contains("xl/") || ext == "xlsx" {
                    mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                } else if text.contains("ppt/") || ext == "pptx" {
                    mime = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
                }
            }
            return MediaInfo(kind: .document, mime: mime, container: "zip")
        }
        if head.starts(with: [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
            let mime = ext == "xls" ? "application/vnd.ms-excel" : ext == "ppt" ? "application/vnd.ms-powerpoint" : "application/msword"
            return MediaInfo(kind: .document, mime: mime, container: "ole2")
        }
        if head.count >= 12, Array(head[4..<8]) == Array("ftyp".utf8) {
            let brand = String(decoding: head[8..<12], as: UTF8.self)
            if ["heic", "heix", "heim", "heis", "mif1", "msf1"].contains(brand) {
                return MediaInfo(kind: .document, mime: "image/heic", container: "heif")
            }
        }
        return nil
    }

    /// UTF-8 text without NUL bytes (checked over the whole file, in chunks).
    static func isText(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        var carry: [UInt8] = []
        while true {
            let chunk = handle.readData(ofLength: 1 << 16)
            if chunk.isEmpty { return carry.isEmpty }
            var bytes = carry + [UInt8](chunk)
            if bytes.contains(0) { return false }
            // Keep an incomplete UTF-8 sequence at the end for the next chunk.
            var cut = bytes.count
            var back = 0
            while back < 3 && cut > 0 && bytes[cut - 1] & 0xC0 == 0x80 {
                cut -= 1
                back += 1
            }
            if cut > 0 && bytes[cut - 1] >= 0xC0 { cut -= 1 }
            carry = Array(bytes[cut...])
            bytes.removeLast(bytes.count - cut)
            if String(validating: bytes, as: UTF8.self) == nil { return false }
        }
    }

    static func readHead(_ path: String, count: Int) throws -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw MediaError("cannot read the upload") }
        defer { try? handle.close() }
        return [UInt8](handle.readData(ofLength: count))
    }
}
