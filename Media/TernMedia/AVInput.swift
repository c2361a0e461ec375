// TernMedia owns every call into libav (libavformat/libavcodec/libavutil/libswscale, FFmpeg
// 5.1 from Debian) and the blob store.
//
// What it promises about untrusted input:
// - Only the `file` protocol and an explicit list of demuxers are allowed: a "video" that is
//   an HLS or concat playlist cannot make the demuxer open anything else.
// - Every open, probe and decode runs against a deadline (`MediaLimits.decodeTime`): the
//   interrupt callback stops demuxing and I/O, and decode loops check it between packets.
// - Pixel counts and durations are checked from the stream parameters before anything is
//   decoded (a decompression bomb is refused without allocating its frame).
// - Decoders run single-threaded (`thread_count = 1`): concurrency comes from the worker
//   pool, not from libav spawning threads per file.
//
// Concurrency contract: an `AVInput` is used by one thread at a time and freed when dropped.
import CAV
import Foundation

/// Caps applied to every file libav looks at.
public struct MediaLimits: Sendable {
    /// Largest width × height of an image or video frame.
    public var maxPixels = 50_000_000
    /// Longest audio or video.
    public var maxDuration: Duration = .seconds(3 * 3600)
    /// Longest time one probe or thumbnail may take.
    public var decodeTime: Duration = .seconds(10)

    public init() {}
}

/// Why libav refused a file (mapped to `MEDIA_INVALID_TYPE` / `MEDIA_UNPROCESSABLE`).
public struct MediaError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Demuxers Tern accepts (libav names). Anything else — playlists (hls, concat), image
/// sequences, raw formats — is refused before it is opened.
let allowedDemuxers = [
    "jpeg_pipe", "png_pipe", "webp_pipe", "gif", "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "ogg", "mp3", "aac", "amr",
    "amrnb", "amrwb", "wav",
]

func avErrorText(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: 128)
    tern_av_error_string(code, &buffer, buffer.count)
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// One opened input file.
final class AVInput {
    let format: UnsafeMutablePointer<AVFormatContext>
    /// The deadline (µs, `av_gettime_relative`) the interrupt callback reads.
    let deadline: UnsafeMutablePointer<Int64>

    /// Opens `path` with the protocol and demuxer allow-lists and reads the stream info.
    init(path: String, limits: MediaLimits) throws {
        _ = Self.setUp
        deadline = .allocate(capacity: 1)
        deadline.pointee = av_gettime_relative() + limits.decodeTime.components.seconds * 1_000_000
        guard let context = avformat_alloc_context() else {
            deadline.deallocate()
            throw MediaError("out of memory")
        }
        tern_av_set_deadline_callback(context, deadline)
        // Detect the format from the content only (never from the file name, which would let
        // libav pick e.g. its image-sequence demuxer), and only among the allowed ones.
        let detected: UnsafePointer<AVInputFormat>
        do {
            detected = try Self.detect(path)
        } catch {
            avformat_free_context(context)
            deadline.deallocate()
            throw error
        }
        var options: OpaquePointer?
        av_dict_set(&options, "protocol_whitelist", "file", 0)
        av_dict_set(&options, "format_whitelist", allowedDemuxers.joined(separator: ","), 0)
        av_dict_set(&options, "probesize", "5000000", 0)
        var opened: UnsafeMutablePointer<AVFormatContext>? = context
        let rc = avformat_open_input(&opened, path, detected, &options)
        av_dict_free(&options)
        guard rc >= 0, let opened else {
            // avformat_open_input frees the context on failure.
            deadline.deallocate()
            throw MediaError("not a recognised media file (\(avErrorText(rc)))")
        }
        format = opened
        let info = avformat_find_stream_info(format, nil)
        if info < 0 {
            var context: UnsafeMutablePointer<AVFormatContext>? = format
            avformat_close_input(&context)
            deadline.deallocate()
            throw MediaError("unreadable media (\(avErrorText(info)))")
        }
    }

    /// The demuxer libav's content probe picks for the start of `path`, if allowed. Like
    /// libav's own probing it starts with 2 KiB and doubles up to 256 KiB until a demuxer is
    /// sure (score above 25), so that a plain JPEG is not scanned as MP3 for 256 KiB.
    static func detect(_ path: String) throws -> UnsafePointer<AVInputFormat> {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw MediaError("cannot read the file") }
        let head = [UInt8](handle.readData(ofLength: 256 << 10))
        try? handle.close()
        guard !head.isEmpty else { throw MediaError("the file is empty") }
        // libav reads up to 32 bytes past the end of a probe buffer: pad with zeros.
        var buffer = head + [UInt8](repeating: 0, count: 64)
        var score: Int32 = 0
        var found: UnsafePointer<AVInputFormat>?
        var size = min(2048, head.count)
        while true {
            let length = size
            found = buffer.withUnsafeMutableBufferPointer { bytes -> UnsafePointer<AVInputFormat>? in
                "".withCString { empty in
                    var probe = AVProbeData()
                    probe.filename = empty
                    probe.buf = bytes.baseAddress
                    probe.buf_size = Int32(length)
                    return av_probe_input_format3(&probe, 1, &score)
                }
            }
            if (found != nil && score > 25) || size >= head.count { break }
            size = min(size * 4, head.count)
        }
        guard let format = found, score > 0 else { throw MediaError("not a recognised media file") }
        let name = String(cString: format.pointee.name)
        guard allowedDemuxers.contains(name) else { throw MediaError("\(name) files are not accepted") }
        return format
    }

    deinit {
        var context: UnsafeMutablePointer<AVFormatContext>? = format
        avformat_close_input(&context)
        deadline.deallocate()
    }

    /// Quiet libav's logging once per process.
    static let setUp: Void = { tern_av_quiet() }()

    var timedOut: Bool { av_gettime_relative() > deadline.pointee }

    var demuxer: String { String(cString: format.pointee.iformat.pointee.name) }

    var streams: [UnsafeMutablePointer<AVStream>] {
        (0..<Int(format.pointee.nb_streams)).compactMap { format.pointee.streams[$0] }
    }

    func best(_ type: AVMediaType) -> UnsafeMutablePointer<AVStream>? {
        let index = av_find_best_stream(format, type, -1, -1, nil, 0)
        guard index >= 0 else { return nil }
        return format.pointee.streams[Int(index)]
    }

    /// Duration in milliseconds, from the container or the longest stream.
    var durationMilliseconds: Int64? {
        let d = format.pointee.duration
        if d != tern_av_nopts_value() && d > 0 { return d / 1000 }
        var best: Int64?
        for stream in streams where stream.pointee.duration != tern_av_nopts_value() && stream.pointee.duration > 0 {
            let tb = stream.pointee.time_base
            let ms = stream.pointee.duration * 1000 * Int64(tb.num) / Int64(max(tb.den, 1))
            best = max(best ?? 0, ms)
        }
        return best
    }

    /// A metadata tag of the container (e.g. `major_brand`).
    func tag(_ key: String) -> String? {
        guard let entry = av_dict_get(format.pointee.metadata, key, nil, 0), let value = entry.pointee.value else { return nil }
        return String(cString: value)
    }
}

/// An opened, single-threaded decoder for `stream` (concurrency comes from the worker pool,
/// not from libav's own threads). `configure` runs just before opening (e.g. `lowres`). Free
/// it with `avcodec_free_context`; on failure nothing is left allocated.
func openDecoder(
    _ stream: UnsafeMutablePointer<AVStream>,
    configure: (UnsafeMutablePointer<AVCodecContext>, UnsafePointer<AVCodec>) -> Void = { _, _ in }
) throws -> UnsafeMutablePointer<AVCodecContext> {
    let name = codecName(stream)
    guard let decoder = avcodec_find_decoder(stream.pointee.codecpar.pointee.codec_id) else { throw MediaError("no decoder for \(name)") }
    var context: UnsafeMutablePointer<AVCodecContext>? = avcodec_alloc_context3(decoder)
    guard let codec = context else { throw MediaError("out of memory") }
    guard avcodec_parameters_to_context(codec, stream.pointee.codecpar) >= 0 else {
        avcodec_free_context(&context)
        throw MediaError("bad \(name) parameters")
    }
    codec.pointee.thread_count = 1
    codec.pointee.pkt_timebase = stream.pointee.time_base
    configure(codec, decoder)
    let opened = avcodec_open2(codec, decoder, nil)
    guard opened >= 0 else {
        avcodec_free_context(&context)
        throw MediaError("cannot open the \(name) decoder (\(avErrorText(opened)))")
    }
    return codec
}

func codecName(_ stream: UnsafeMutablePointer<AVStream>) -> String {
    guard let name = avcodec_get_name(stream.pointee.codecpar.pointee.codec_id) else { return "unknown" }
    return String(cString: name)
}
