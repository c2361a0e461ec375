import CAV
import Foundation

/// Rewrites videos that phones cannot all play into H.264/AAC MP4 with the index first
/// (`faststart`), at a capped size.
public enum Transcoder {
    /// Whether `info` needs transcoding: not H.264, audio other than AAC, larger than
    /// `maxSide`, or over `maxBitrate` bits per second.
    public static func needed(_ info: MediaInfo, size: Int, maxSide: Int, maxBitrate: Int) -> Bool {
        guard info.kind == .video else { return false }
        if info.videoCodec != "h264" || info.mime != "video/mp4" { return true }
        if let audio = info.audioCodec, audio != "aac" { return true }
        if max(info.width ?? 0, info.height ?? 0) > maxSide { return true }
        if let ms = info.durationMs, ms > 0, size * 8 * 1000 / Int(ms) > maxBitrate { return true }
        return false
    }

    /// Transcodes `input` into `output` (H.264 CRF 23 `veryfast`, longest side at most
    /// `maxSide`, AAC 128 kb/s, MP4 with `+faststart`). The display rotation is kept as
    /// stream metadata. Throws `MediaError` on anything it cannot do.
    public static func run(input path: String, output: String, maxSide: Int = 1280, limits: MediaLimits = MediaLimits()) throws {
        var limits = limits
        limits.decodeTime = max(limits.decodeTime, .seconds(600))
        let input = try AVInput(path: path, limits: limits)
        guard let videoIn = input.best(AVMEDIA_TYPE_VIDEO) else { throw MediaError("no video stream") }
        let audioIn = input.best(AVMEDIA_TYPE_AUDIO)

        var outContext: UnsafeMutablePointer<AVFormatContext>?
        guard avformat_alloc_output_context2(&outContext, nil, "mp4", output) >= 0, let out = outContext else {
            throw MediaError("cannot create the MP4 muxer")
        }
        defer {
            if let pb = out.pointee.pb { _ = pb; avio_closep(&out.pointee.pb) }
            avformat_free_context(out)
        }

        let video = try VideoPipe(input: videoIn, output: out, maxSide: maxSide)
        defer { video.close() }
        var audio: AudioPipe?
        if let audioIn { audio = try AudioPipe(input: audioIn, output: out) }
        defer { audio?.close() }

        guard avio_open(&out.pointee.pb, output, AVIO_FLAG_WRITE) >= 0 else { throw MediaError("cannot write \(output)") }
        var options: OpaquePointer?
        av_dict_set(&options, "movflags", "+faststart", 0)
        let header = avformat_write_header(out, &options)
        av_dict_free(&options)
        guard header >= 0 else { throw MediaError("cannot write the MP4 header (\(avErrorText(header)))") }

        var packet: UnsafeMutablePointer<AVPacket>? = av_packet_alloc()
        defer { av_packet_free(&packet) }
        while av_read_frame(input.format, packet) >= 0 {
            defer { av_packet_unref(packet) }
            if input.timedOut { throw MediaError("transcoding took too long") }
            let index = packet!.pointee.stream_index
            if index == videoIn.pointee.index {
                try video.decode(packet, into: out)
            } else if let audio, index == audioIn?.pointee.index {
                try audio.decode(packet, into: out)
            }
        }
        try video.decode(nil, into: out)
        try audio?.decode(nil, into: out)
        guard av_write_trailer(out) >= 0 else { throw MediaError("cannot finish the MP4") }
    }
}

/// Sends an encoder's packets to the muxer.
private func drainEncoder(
    _ encoder: UnsafeMutablePointer<AVCodecContext>, _ stream: UnsafeMutablePointer<AVStream>, _ out: UnsafeMutablePointer<AVFormatContext>
) throws {
    var packet: UnsafeMutablePointer<AVPacket>? = av_packet_alloc()
    defer { av_packet_free(&packet) }
    while avcodec_receive_packet(encoder, packet) >= 0 {
        av_packet_rescale_ts(packet, encoder.pointee.time_base, stream.pointee.time_base)
        packet!.pointee.stream_index = stream.pointee.index
        let rc = av_interleaved_write_frame(out, packet)
        guard rc >= 0 else { throw MediaError("cannot write a packet (\(avErrorText(rc)))") }
    }
}

/// Decoder → swscale → libx264 for the video stream.
private final class VideoPipe {
    var decoder: UnsafeMutablePointer<AVCodecContext>?
    var encoder: UnsafeMutablePointer<AVCodecContext>?
    let stream: UnsafeMutablePointer<AVStream>
    let inputTimeBase: AVRational
    var scaler: OpaquePointer?
    var frame: UnsafeMutablePointer<AVFrame>? = av_frame_alloc()
    var scaled: UnsafeMutablePointer<AVFrame>? = av_frame_alloc()
    let width: Int32
    let height: Int32

    init(input: UnsafeMutablePointer<AVStream>, output: UnsafeMutablePointer<AVFormatContext>, maxSide: Int) throws {
        inputTimeBase = input.pointee.time_base
        let decoder = try openDecoder(input)
        self.decoder = decoder

        let w = Int(decoder.pointee.width)
        let h = Int(decoder.pointee.height)
        let longest = max(w, h)
        let scale = longest > maxSide ? Double(maxSide) / Double(longest) : 1
        width = Int32(max(2, Int((Double(w) * scale / 2).rounded()) * 2))
        height = Int32(max(2, Int((Double(h) * scale / 2).rounded()) * 2))

        guard let x264 = avcodec_find_encoder_by_name("libx264") else { throw MediaError("no H.264 encoder (libx264)") }
        encoder = avcodec_alloc_context3(x264)
        guard let encoder else { throw MediaError("out of memory") }
        encoder.pointee.width = width
        encoder.pointee.height = height
        encoder.pointee.pix_fmt = AV_PIX_FMT_YUV420P
        encoder.pointee.time_base = input.pointee.time_base
        let rate = input.pointee.avg_frame_rate
        if rate.num > 0 && rate.den > 0 { encoder.pointee.framerate = rate }
        encoder.pointee.thread_count = 1
        if output.pointee.oformat.pointee.flags & AVFMT_GLOBALHEADER != 0 {
            encoder.pointee.flags |= Int32(AV_CODEC_FLAG_GLOBAL_HEADER)
        }
        var options: OpaquePointer?
        av_dict_set(&options, "preset", "veryfast", 0)
        av_dict_set(&options, "crf", "23", 0)
        let opened = avcodec_open2(encoder, x264, &options)
        av_dict_free(&options)
        guard opened >= 0 else { throw MediaError("cannot open the H.264 encoder (\(avErrorText(opened)))") }
        guard let stream = avformat_new_stream(output, nil) else { throw MediaError("cannot add the video stream") }
        self.stream = stream
        stream.pointee.time_base = encoder.pointee.time_base
        avcodec_parameters_from_context(stream.pointee.codecpar, encoder)
        // Keep the display rotation: players turn the picture as the original asked.
        var size = 0
        if let matrix = av_stream_get_side_data(input, AV_PKT_DATA_DISPLAYMATRIX, &size), size > 0,
            let copy = av_stream_new_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, size)
        {
            copy.update(from: matrix, count: size)
        }
    }

    func decode(_ packet: UnsafeMutablePointer<AVPacket>?, into out: UnsafeMutablePointer<AVFormatContext>) throws {
        guard let decoder, let encoder else { return }
        if avcodec_send_packet(decoder, packet) < 0 && packet != nil { return }  // a damaged packet: skip it
        while avcodec_receive_frame(decoder, frame) >= 0 {
            defer { av_frame_unref(frame) }
            try encode(frame!)
            try drainEncoder(encoder, stream, out)
        }
        if packet == nil {
            avcodec_send_frame(encoder, nil)
            try drainEncoder(encoder, stream, out)
        }
    }

    private func encode(_ source: UnsafeMutablePointer<AVFrame>) throws {
        guard let encoder, let scaled else { return }
        scaler = sws_getCachedContext(
            scaler, source.pointee.width, source.pointee.height, AVPixelFormat(source.pointee.format), width, height,
            AV_PIX_FMT_YUV420P, Int32(SWS_BICUBIC), nil, nil, nil)
        guard let scaler else { throw MediaError("unsupported pixel format") }
        av_frame_unref(scaled)
        scaled.pointee.width = width
        scaled.pointee.height = height
        scaled.pointee.format = AV_PIX_FMT_YUV420P.rawValue
        guard av_frame_get_buffer(scaled, 0) >= 0 else { throw MediaError("out of memory") }
        var src: [UnsafePointer<UInt8>?] = (0..<4).map { UnsafePointer(tern_av_frame_plane(source, Int32($0))) }
        var srcStride: [Int32] = (0..<4).map { tern_av_frame_linesize(source, Int32($0)) }
        var dst: [UnsafeMutablePointer<UInt8>?] = (0..<4).map { tern_av_frame_plane(scaled, Int32($0)) }
        var dstStride: [Int32] = (0..<4).map { tern_av_frame_linesize(scaled, Int32($0)) }
        _ = sws_scale(scaler, &src, &srcStride, 0, source.pointee.height, &dst, &dstStride)
        scaled.pointee.pts = source.pointee.best_effort_timestamp
        guard avcodec_send_frame(encoder, scaled) >= 0 else { throw MediaError("H.264 encoding failed") }
    }

    func close() {
        avcodec_free_context(&decoder)
        avcodec_free_context(&encoder)
        sws_freeContext(scaler)
        av_frame_free(&frame)
        av_frame_free(&scaled)
    }
}

/// Decoder → frames of 1024 samples → AAC for the audio stream. Handles the planar float
/// audio phone codecs decode to (AAC, Opus, Vorbis; mono float too); anything else fails
/// the transcode rather than producing noise.
private final class AudioPipe {
    var decoder: UnsafeMutablePointer<AVCodecContext>?
    var encoder: UnsafeMutablePointer<AVCodecContext>?
    let stream: UnsafeMutablePointer<AVStream>
    var fifo: OpaquePointer?
    var frame: UnsafeMutablePointer<AVFrame>? = av_frame_alloc()
    var chunk: UnsafeMutablePointer<AVFrame>? = av_frame_alloc()
    var nextPTS: Int64 = 0

    init(input: UnsafeMutablePointer<AVStream>, output: UnsafeMutablePointer<AVFormatContext>) throws {
        let decoder = try openDecoder(input)
        self.decoder = decoder
        guard let aac = avcodec_find_encoder(AV_CODEC_ID_AAC) else { throw MediaError("no AAC encoder") }
        encoder = avcodec_alloc_context3(aac)
        guard let encoder else { throw MediaError("out of memory") }
        encoder.pointee.sample_fmt = AV_SAMPLE_FMT_FLTP
        encoder.pointee.sample_rate = decoder.pointee.sample_rate
        av_channel_layout_copy(&encoder.pointee.ch_layout, &decoder.pointee.ch_layout)
        encoder.pointee.bit_rate = 128_000
        encoder.pointee.time_base = AVRational(num: 1, den: decoder.pointee.sample_rate)
        if output.pointee.oformat.pointee.flags & AVFMT_GLOBALHEADER != 0 {
            encoder.pointee.flags |= Int32(AV_CODEC_FLAG_GLOBAL_HEADER)
        }
        let opened = avcodec_open2(encoder, aac, nil)
        guard opened >= 0 else { throw MediaError("cannot open the AAC encoder (\(avErrorText(opened)))") }
        guard let stream = avformat_new_stream(output, nil) else { throw MediaError("cannot add the audio stream") }
        self.stream = stream
        stream.pointee.time_base = encoder.pointee.time_base
        avcodec_parameters_from_context(stream.pointee.codecpar, encoder)
        fifo = av_audio_fifo_alloc(AV_SAMPLE_FMT_FLTP, encoder.pointee.ch_layout.nb_channels, 4096)
        guard fifo != nil else { throw MediaError("out of memory") }
    }

    func decode(_ packet: UnsafeMutablePointer<AVPacket>?, into out: UnsafeMutablePointer<AVFormatContext>) throws {
        guard let decoder, let encoder, let fifo else { return }
        if avcodec_send_packet(decoder, packet) < 0 && packet != nil { return }
        while avcodec_receive_frame(decoder, frame) >= 0 {
            defer { av_frame_unref(frame) }
            let format = AVSampleFormat(frame!.pointee.format)
            let mono = frame!.pointee.ch_layout.nb_channels == 1
            guard format == AV_SAMPLE_FMT_FLTP || (format == AV_SAMPLE_FMT_FLT && mono) else {
                throw MediaError("audio sample format \(String(cString: av_get_sample_fmt_name(format))) is not supported for transcoding")
            }
            let planes = frame!.pointee.extended_data!
            var pointers = (0..<Int(frame!.pointee.ch_layout.nb_channels)).map { UnsafeMutableRawPointer(planes[$0]) }
            guard av_audio_fifo_write(fifo, &pointers, frame!.pointee.nb_samples) >= 0 else { throw MediaError("audio buffer") }
            try flush(final: false, out)
        }
        if packet == nil {
            try flush(final: true, out)
            avcodec_send_frame(encoder, nil)
            try drainEncoder(encoder, stream, out)
        }
    }

    private func flush(final: Bool, _ out: UnsafeMutablePointer<AVFormatContext>) throws {
        guard let encoder, let fifo, let chunk else { return }
        let size = encoder.pointee.frame_size > 0 ? encoder.pointee.frame_size : 1024
        while av_audio_fifo_size(fifo) >= size || (final && av_audio_fifo_size(fifo) > 0) {
            let n = min(size, av_audio_fifo_size(fifo))
            av_frame_unref(chunk)
            chunk.pointee.nb_samples = n
            chunk.pointee.format = AV_SAMPLE_FMT_FLTP.rawValue
            chunk.pointee.sample_rate = encoder.pointee.sample_rate
            av_channel_layout_copy(&chunk.pointee.ch_layout, &encoder.pointee.ch_layout)
            guard av_frame_get_buffer(chunk, 0) >= 0 else { throw MediaError("out of memory") }
            let planes = chunk.pointee.extended_data!
            var pointers = (0..<Int(encoder.pointee.ch_layout.nb_channels)).map { UnsafeMutableRawPointer(planes[$0]) }
            _ = av_audio_fifo_read(fifo, &pointers, n)
            chunk.pointee.pts = nextPTS
            nextPTS += Int64(n)
            guard avcodec_send_frame(encoder, chunk) >= 0 else { throw MediaError("AAC encoding failed") }
            try drainEncoder(encoder, stream, out)
        }
    }

    func close() {
        avcodec_free_context(&decoder)
        avcodec_free_context(&encoder)
        if let fifo { av_audio_fifo_free(fifo) }
        av_frame_free(&frame)
        av_frame_free(&chunk)
    }
}
