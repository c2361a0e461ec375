import CAV
import Foundation

/// Peak amplitudes of an audio file for drawing a voice note: `buckets` values from 0
/// (silence) to 255 (full scale), each the loudest sample of its slice of the recording.
public enum Waveform {
    /// Decodes the first audio stream of `path` (at most `limits.maxDuration`, within
    /// `limits.decodeTime`) and returns its peaks.
    public static func peaks(path: String, buckets: Int = 64, limits: MediaLimits = MediaLimits()) throws -> [UInt8] {
        try peaks(AVInput(path: path, limits: limits), buckets: buckets)
    }

    /// The peaks of an input already opened (by the probe).
    static func peaks(_ input: AVInput, buckets: Int = 64) throws -> [UInt8] {
        guard let stream = input.best(AVMEDIA_TYPE_AUDIO) else { throw MediaError("no audio stream") }
        let codec = try openDecoder(stream)
        var context: UnsafeMutablePointer<AVCodecContext>? = codec
        defer { avcodec_free_context(&context) }
        var packet: UnsafeMutablePointer<AVPacket>? = av_packet_alloc()
        defer { av_packet_free(&packet) }
        var frame: UnsafeMutablePointer<AVFrame>? = av_frame_alloc()
        defer { av_frame_free(&frame) }
        // One peak per decoded frame (~20 ms), reduced to `buckets` at the end.
        var framePeaks: [Float] = []
        func drain() {
            while avcodec_receive_frame(codec, frame) >= 0 {
                framePeaks.append(peak(frame!))
                av_frame_unref(frame)
            }
        }
        while av_read_frame(input.format, packet) >= 0 {
            defer { av_packet_unref(packet) }
            if input.timedOut { throw MediaError("decoding took too long") }
            guard packet!.pointee.stream_index == stream.pointee.index else { continue }
            if avcodec_send_packet(codec, packet) >= 0 { drain() }
        }
        avcodec_send_packet(codec, nil)
        drain()
        guard !framePeaks.isEmpty else { throw MediaError("no audio could be decoded") }
        let loudest = max(framePeaks.max() ?? 0, 1e-6)
        return (0..<buckets).map { b in
            let from = b * framePeaks.count / buckets
            let to = max(from + 1, (b + 1) * framePeaks.count / buckets)
            let value = framePeaks[min(from, framePeaks.count - 1)..<min(to, framePeaks.count)].max() ?? 0
            return UInt8(min(255, (value / loudest * 255).rounded()))
        }
    }

    /// The largest absolute sample of a decoded frame, in 0...1.
    static func peak(_ frame: UnsafeMutablePointer<AVFrame>) -> Float {
        let samples = Int(frame.pointee.nb_samples)
        let channels = Int(frame.pointee.ch_layout.nb_channels)
        guard samples > 0, channels > 0 else { return 0 }
        let format = AVSampleFormat(frame.pointee.format)
        let planar = av_sample_fmt_is_planar(format) != 0
        let planes = planar ? channels : 1
        let perPlane = planar ? samples : samples * channels
        var best: Float = 0
        for p in 0..<planes {
            guard let raw = tern_av_frame_plane(frame, Int32(p)) else { continue }
            switch format {
            case AV_SAMPLE_FMT_FLT, AV_SAMPLE_FMT_FLTP:
                raw.withMemoryRebound(to: Float.self, capacity: perPlane) { s in
                    for i in 0..<perPlane { best = max(best, abs(s[i])) }
                }
            case AV_SAMPLE_FMT_DBL, AV_SAMPLE_FMT_DBLP:
                raw.withMemoryRebound(to: Double.self, capacity: perPlane) { s in
                    for i in 0..<perPlane { best = max(best, Float(abs(s[i]))) }
                }
            case AV_SAMPLE_FMT_S16, AV_SAMPLE_FMT_S16P:
                raw.withMemoryRebound(to: Int16.self, capacity: perPlane) { s in
                    for i in 0..<perPlane { best = max(best, Float(abs(Int32(s[i]))) / 32768) }
                }
            case AV_SAMPLE_FMT_S32, AV_SAMPLE_FMT_S32P:
                raw.withMemoryRebound(to: Int32.self, capacity: perPlane) { s in
                    for i in 0..<perPlane { best = max(best, Float(abs(Int64(s[i]))) / 2_147_483_648) }
                }
            case AV_SAMPLE_FMT_U8, AV_SAMPLE_FMT_U8P:
                for i in 0..<perPlane { best = max(best, Float(abs(Int(raw[i]) - 128)) / 128) }
            default:
                return 0
            }
        }
        return min(best, 1)
    }
}
