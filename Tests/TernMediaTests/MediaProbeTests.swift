import Foundation
import Testing
import TernMedia
import TernTestSupport

func fixture(_ name: String) -> String { mediaFixturesDirectory + "/" + name }

func declared(_ name: String) -> Bool { name.hasSuffix(".txt") }

@Suite("Media probing with libav")
struct MediaProbeTests {
    @Test("what phones produce is accepted with the right kind and MIME type", arguments: [
        ("photo.jpg", MediaKind.image, "image/jpeg"), ("image.png", .image, "image/png"), ("image.webp", .image, "image/webp"),
        ("anim.gif", .image, "image/gif"), ("video.mp4", .video, "video/mp4"), ("clip.3gp", .video, "video/3gpp"),
        ("clip.webm", .video, "video/webm"), ("voice.ogg", .audio, "audio/ogg; codecs=opus"), ("voice.m4a", .audio, "audio/mp4"),
        ("voice.aac", .audio, "audio/aac"), ("song.mp3", .audio, "audio/mpeg"), ("sound.wav", .audio, "audio/wav"),
        ("doc.pdf", .document, "application/pdf"), ("notes.txt", .document, "text/plain"), ("archive.zip", .document, "application/zip"),
        ("report.docx", .document, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("voice.amr", .audio, "audio/amr"), ("photo.heic", .document, "image/heic"), ("legacy.doc", .document, "application/msword"),
    ])
    func accepted(_ name: String, _ kind: MediaKind, _ mime: String) throws {
        let info = try MediaProbe.probe(path: fixture(name), declaredText: declared(name), filename: name)
        #expect(info.kind == kind)
        #expect(info.mime == mime)
        if kind == .video || kind == .audio { #expect((info.durationMs ?? 0) >= 1900 && (info.durationMs ?? 0) <= 2200, "\(info)") }
        if kind == .image || (kind == .video) { #expect(info.width != nil) }
        if kind == .image || kind == .video { #expect(info.width != nil && info.height != nil) }
    }

    @Test("dimensions, duration and rotation are measured")
    func measured() throws {
        let photo = try MediaProbe.probe(path: fixture("photo.jpg"))
        #expect(photo.width == 640 && photo.height == 480 && photo.rotation == 0)
        let video = try MediaProbe.probe(path: fixture("video.mp4"))
        #expect(video.width == 320 && video.height == 240 && video.videoCodec == "h264" && video.audioCodec == "aac")
        let rotated = try MediaProbe.probe(path: fixture("rotated.mp4"))
        // The fixture's display matrix says 90° counter-clockwise (ffprobe: rotation=90), which
        // ffmpeg's own autorotation shows as a 270° clockwise turn: portrait 240×320.
        #expect(rotated.rotation == 270 && rotated.width == 240 && rotated.height == 320, "\(rotated)")
        let voice = try MediaProbe.probe(path: fixture("voice.m4a"))
        #expect(voice.kind == .audio && voice.width == nil, "M4A is audio, not video")
    }

    @Test("hostile and broken files are refused with a reason, never a crash or a hang", arguments: [
        "truncated.mp4", "playlist.mp4", "concat.mp4", "empty.bin", "random.bin", "bomb.png", "clip.mkv",
    ])
    func refused(_ name: String) throws {
        // The path is resolved before the clock starts: the first use of a fixture generates
        // them all (ffmpeg), which on a loaded CI box took seconds and failed this check.
        let path = fixture(name)
        var limits = MediaLimits()
        limits.decodeTime = .seconds(2)
        let started = ContinuousClock.now
        #expect(throws: MediaError.self) { try MediaProbe.probe(path: path, filename: name, limits: limits) }
        // A hang would be unbounded; the deadline plus generous scheduling slack is not.
        #expect(ContinuousClock.now - started < limits.decodeTime + .seconds(15))
    }

    @Test("a text file is a document only when it is declared as text")
    func textNeedsDeclaration() throws {
        #expect(throws: MediaError.self) { try MediaProbe.probe(path: fixture("notes.txt"), declaredText: false) }
        #expect(try MediaProbe.probe(path: fixture("notes.txt"), declaredText: true).mime == "text/plain")
    }
}

@Suite("Waveforms of voice notes")
struct WaveformTests {
    @Test("peaks follow the loudness: a silent first half and a loud second half")
    func halfSilent() throws {
        let peaks = try Waveform.peaks(path: fixture("halfsilent.ogg"))
        #expect(peaks.count == 64)
        #expect(peaks.prefix(28).allSatisfy { $0 < 20 }, "\(peaks)")
        #expect(peaks.suffix(28).allSatisfy { $0 > 200 }, "\(peaks)")
    }

    @Test("every audio format phones send gives 64 peaks", arguments: ["voice.ogg", "voice.m4a", "voice.aac", "song.mp3", "sound.wav"])
    func formats(_ name: String) throws {
        let peaks = try Waveform.peaks(path: fixture(name))
        #expect(peaks.count == 64 && peaks.max() == 255)
    }
}

@Suite("Thumbnails and previews with libav")
struct ThumbnailTests {
    /// Writes `bytes` to a temporary file and probes it back.
    func probeBack(_ bytes: [UInt8]) throws -> MediaInfo {
        let path = NSTemporaryDirectory() + "thumb-\(UUID().uuidString).jpg"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try MediaProbe.probe(path: path)
    }

    @Test("images and video posters become JPEGs with the longest side at most 320 px, upright", arguments: [
        ("photo.jpg", 320, 240), ("big.jpg", 320, 240), ("image.png", 320, 200), ("image.webp", 320, 200), ("anim.gif", 160, 120),
        ("video.mp4", 320, 240), ("rotated.mp4", 240, 320), ("clip.webm", 320, 240), ("hd.mp4", 320, 180),
        ("gps.jpg", 240, 320),
    ])
    func thumbnails(_ name: String, _ width: Int, _ height: Int) throws {
        let info = try MediaProbe.probe(path: fixture(name))
        let (thumbnail, preview) = try Thumbnailer.make(path: fixture(name), info: info)
        #expect(thumbnail.width == width && thumbnail.height == height)
        let decoded = try probeBack(thumbnail.jpeg)
        #expect(decoded.mime == "image/jpeg" && decoded.width == width && decoded.height == height)
        #expect(max(preview.width, preview.height) == 16)
        #expect(preview.jpeg.count < 1024, "inline preview is \(preview.jpeg.count) bytes")
        #expect(try probeBack(preview.jpeg).mime == "image/jpeg")
    }

    @Test("re-encoding keeps the picture, turns it upright and drops EXIF (orientation and GPS)")
    func reencoded() throws {
        let info = try MediaProbe.probe(path: fixture("gps.jpg"))
        let clean = try #require(try Thumbnailer.reencodeWithoutMetadata(path: fixture("gps.jpg"), info: info))
        #expect(clean.width == 480 && clean.height == 640)
        #expect(!String(decoding: clean.jpeg, as: UTF8.self).contains("Exif"))
        let png = try MediaProbe.probe(path: fixture("image.png"))
        let cleanPNG = try #require(try Thumbnailer.reencodeWithoutMetadata(path: fixture("image.png"), info: png))
        #expect(cleanPNG.jpeg.starts(with: [0x89, 0x50, 0x4E, 0x47]) && cleanPNG.width == 320)
        let webp = try MediaProbe.probe(path: fixture("image.webp"))
        let cleanWebP = try #require(try Thumbnailer.reencodeWithoutMetadata(path: fixture("image.webp"), info: webp))
        #expect(Array(cleanWebP.jpeg[8..<12]) == Array("WEBP".utf8) && cleanWebP.width == 320)
        let gif = try MediaProbe.probe(path: fixture("anim.gif"))
        let untouched = try Thumbnailer.reencodeWithoutMetadata(path: fixture("anim.gif"), info: gif)
        #expect(untouched == nil)
    }

    @Test("the longest side is configurable and small pictures are not enlarged")
    func sizes() throws {
        let info = try MediaProbe.probe(path: fixture("photo.jpg"))
        #expect(try Thumbnailer.make(path: fixture("photo.jpg"), info: info, maxSide: 100).thumbnail.width == 100)
        #expect(try Thumbnailer.make(path: fixture("photo.jpg"), info: info, maxSide: 2000).thumbnail.width == 640)
    }
}

@Suite("Video transcoding with libav")
struct TranscoderTests {
    @Test("videos phones cannot all play become H.264/AAC MP4 with the index first, at a capped size", arguments: [
        ("clip.webm", 320, 240, true), ("clip.3gp", 176, 144, false), ("hd.mp4", 1280, 720, false),
    ])
    func transcodes(_ name: String, _ width: Int, _ height: Int, _ hasAudio: Bool) throws {
        let info = try MediaProbe.probe(path: fixture(name))
        let size = (try FileManager.default.attributesOfItem(atPath: fixture(name))[.size] as? Int) ?? 0
        #expect(Transcoder.needed(info, size: size, maxSide: 1280, maxBitrate: 10_000_000))
        let out = NSTemporaryDirectory() + "transcoded-\(UUID().uuidString).mp4"
        defer { try? FileManager.default.removeItem(atPath: out) }
        try Transcoder.run(input: fixture(name), output: out, maxSide: 1280)
        let result = try MediaProbe.probe(path: out)
        #expect(result.mime == "video/mp4" && result.videoCodec == "h264", "\(result)")
        #expect(result.width == width && result.height == height, "\(result)")
        #expect(hasAudio ? result.audioCodec == "aac" : result.audioCodec == nil)
        #expect(abs((result.durationMs ?? 0) - (info.durationMs ?? 0)) < 300, "\(result.durationMs ?? 0) vs \(info.durationMs ?? 0)")
        // faststart: the index (moov) comes before the media data (mdat).
        let bytes = [UInt8](FileManager.default.contents(atPath: out) ?? Data())
        func offset(_ atom: String) -> Int? {
            let tag = Array(atom.utf8)
            return bytes.indices.dropLast(4).first { Array(bytes[$0..<$0 + 4]) == tag }
        }
        let moov = try #require(offset("moov"))
        let mdat = try #require(offset("mdat"))
        #expect(moov < mdat)
        // And a thumbnail can be made from it: it decodes.
        let (thumbnail, _) = try Thumbnailer.make(path: out, info: result)
        #expect(thumbnail.width == min(320, width))
    }

    @Test("H.264/AAC MP4 within the caps is left alone")
    func notNeeded() throws {
        let info = try MediaProbe.probe(path: fixture("video.mp4"))
        #expect(!Transcoder.needed(info, size: 145_710, maxSide: 1280, maxBitrate: 10_000_000))
    }
}
