import CAV
import Foundation

/// A JPEG picture made from a media file.
public struct Picture: Sendable, Equatable {
    public var jpeg: [UInt8]
    public var width: Int
    public var height: Int
}

/// Thumbnails and inline previews, in-process with libav: decode one picture (an image, or
/// a video's frame at about 1 s), scale it, turn it upright, and encode JPEG in full range.
public enum Thumbnailer {
    /// The thumbnail (longest side `maxSide`) and the inline preview (longest side
    /// `previewSide`, low quality: a few hundred bytes a client can show blurred before the
    /// download) of the picture in `path`, decoded once.
    public static func make(
        path: String, info: MediaInfo, maxSide: Int = 320, previewSide: Int = 16, limits: MediaLimits = MediaLimits()
    ) throws -> (thumbnail: Picture, preview: Picture) {
        try make(AVInput(path: path, limits: limits), info: info, maxSide: maxSide, previewSide: previewSide)
    }

    static func make(_ input: AVInput, info: MediaInfo, maxSide: Int, previewSide: Int) throws -> (thumbnail: Picture, preview: Picture) {
        guard let stream = input.best(AVMEDIA_TYPE_VIDEO) else { throw MediaError("no picture to make a thumbnail from") }
        let frame = try decodePicture(
            input, stream, seekToSecond: info.kind == .video && (info.durationMs ?? 0) > 1500, reduceTo: maxSide)
        defer {
            var f: UnsafeMutablePointer<AVFrame>? = frame
            av_frame_free(&f)
        }
        let rotation = info.kind == .image ? exifRotation(frame) : info.rotation
        // Scale while converting (swscale, area filter); rotating the small picture is cheap.
        let width = Int(frame.pointee.width)
        let height = Int(frame.pointee.height)
        let longest = max(width, height)
        let fit = longest > maxSide
            ? (max(1, (width * maxSide + longest / 2) / longest), max(1, (height * maxSide + longest / 2) / longest))
            : (width, height)
        let upright = try toRGB(frame, width: fit.0, height: fit.1).rotated(clockwise: rotation)
        return (
            try encode(upright, quality: 4),
            try encode(upright.scaled(toFit: previewSide), quality: 24)
        )
    }

    /// The clockwise turn the EXIF orientation of a decoded JPEG asks for (mirrored variants
    /// are shown turned, not mirrored).
    static func exifRotation(_ frame: UnsafeMutablePointer<AVFrame>) -> Int {
        guard let exif = av_dict_get(frame.pointee.metadata, "Orientation", nil, 0), let value = exif.pointee.value else { return 0 }
        let text = String(cString: value).trimmingCharacters(in: .whitespaces)
        return ["3": 180, "4": 180, "5": 90, "6": 90, "7": 270, "8": 270][text] ?? 0
    }

    /// The picture re-encoded at full size, upright, without any metadata (EXIF, GPS, XMP,
    /// comments): JPEG stays JPEG (quality 2 of 31), PNG stays PNG (lossless), WebP stays
    /// WebP (libwebp, quality 90). Returns nil for formats it does not rewrite (GIF carries
    /// no EXIF).
    public static func reencodeWithoutMetadata(path: String, info: MediaInfo, limits: MediaLimits = MediaLimits()) throws -> Picture? {
        guard info.kind == .image, ["image/jpeg", "image/png", "image/webp"].contains(info.mime) else { return nil }
        let input = try AVInput(path: path, limits: limits)
        guard let stream = input.best(AVMEDIA_TYPE_VIDEO) else { throw MediaError("no picture") }
        let frame = try decodePicture(input, stream, seekToSecond: false, reduceTo: Int.max)
        defer {
            var f: UnsafeMutablePointer<AVFrame>? = frame
            av_frame_free(&f)
        }
        let rotation = exifRotation(frame)
        let upright = try toRGB(frame, width: Int(frame.pointee.width), height: Int(frame.pointee.height)).rotated(clockwise: rotation)
        switch info.mime {
        case "image/png": return try encode(upright, quality: 2, output: .png)
        case "image/webp": return try encode(upright, quality: 2, output: .webp)
        default: return try encode(upright, quality: 2, output: .jpeg)
        }
    }

    /// What `encode` writes.
    enum Output {
        case jpeg, png, webp
    }

    /// Decodes the first picture of `stream`; for videos longer than 1.5 s, the first one
    /// after seeking to 1 s, which lands on the last keyframe at or before 1 s (a poster
    /// "at about 1 s or the first keyframe" without decoding a whole group of pictures).
    static func decodePicture(
        _ input: AVInput, _ stream: UnsafeMutablePointer<AVStream>, seekToSecond: Bool, reduceTo side: Int
    ) throws -> UnsafeMutablePointer<AVFrame> {
        let codec = try openDecoder(stream) { codec, decoder in
            // JPEG can decode at 1/2, 1/4 or 1/8 size: a 12-megapixel photo for a 320 px
            // thumbnail needs an eighth of the work.
            var lowres: Int32 = 0
            let longest = Int(max(codec.pointee.width, codec.pointee.height))
            while side < Int.max / 4 && lowres < Int32(decoder.pointee.max_lowres) && longest >> Int(lowres + 1) >= side { lowres += 1 }
            codec.pointee.lowres = lowres
        }
        var context: UnsafeMutablePointer<AVCodecContext>? = codec
        defer { avcodec_free_context(&context) }

        let timeBase = stream.pointee.time_base
        var target: Int64?
        if seekToSecond, timeBase.num > 0 {
            let t = Int64(timeBase.den) / Int64(timeBase.num)
            if av_seek_frame(input.format, stream.pointee.index, t, AVSEEK_FLAG_BACKWARD) >= 0 {
                avcodec_flush_buffers(codec)
                target = t
            }
        }
        var packet: UnsafeMutablePointer<AVPacket>? = av_packet_alloc()
        defer { av_packet_free(&packet) }
        var frame: UnsafeMutablePointer<AVFrame>? = av_frame_alloc()
        var first: UnsafeMutablePointer<AVFrame>?
        defer { if first != nil { av_frame_free(&first) } }
        func done(_ f: UnsafeMutablePointer<AVFrame>) -> Bool { true }
        _ = target
        func receive() -> UnsafeMutablePointer<AVFrame>? {
            while avcodec_receive_frame(codec, frame) >= 0 {
                if done(frame!) { return frame }
                if first == nil { first = av_frame_clone(frame) }
                av_frame_unref(frame)
            }
            return nil
        }
        var reading = true
        while reading {
            if input.timedOut {
                av_frame_free(&frame)
                throw MediaError("decoding took too long")
            }
            let rc = av_read_frame(input.format, packet)
            if rc < 0 {
                reading = false
                avcodec_send_packet(codec, nil)
            } else {
                defer { av_packet_unref(packet) }
                guard packet!.pointee.stream_index == stream.pointee.index else { continue }
                if avcodec_send_packet(codec, packet) < 0 { continue }
            }
            if let got = receive() { return got }
        }
        if let fallback = first {
            first = nil
            av_frame_free(&frame)
            return fallback
        }
        av_frame_free(&frame)
        throw MediaError("no picture could be decoded (truncated or damaged file)")
    }

    /// The frame as tightly packed RGB24, full range.
    static func toRGB(_ frame: UnsafeMutablePointer<AVFrame>, width: Int, height: Int) throws -> RGBImage {
        let sourceWidth = frame.pointee.width
        let sourceHeight = frame.pointee.height
        guard sourceWidth > 0, sourceHeight > 0 else { throw MediaError("empty picture") }
        var image = RGBImage(width: width, height: height)
        try image.pixels.withUnsafeMutableBufferPointer { out in
            guard let sws = sws_getContext(
                sourceWidth, sourceHeight, AVPixelFormat(frame.pointee.format), Int32(width), Int32(height),
                AV_PIX_FMT_RGB24, Int32(SWS_AREA), nil, nil, nil)
            else { throw MediaError("unsupported pixel format") }
            defer { sws_freeContext(sws) }
            let fullRange: Int32 = frame.pointee.color_range == AVCOL_RANGE_JPEG ? 1 : 0
            let coefficients = sws_getCoefficients(SWS_CS_DEFAULT)
            sws_setColorspaceDetails(sws, coefficients, fullRange, coefficients, 1, 0, 1 << 16, 1 << 16)
            var planes: [UnsafePointer<UInt8>?] = (0..<4).map { UnsafePointer(tern_av_frame_plane(frame, Int32($0))) }
            var strides: [Int32] = (0..<4).map { tern_av_frame_linesize(frame, Int32($0)) }
            var dst: [UnsafeMutablePointer<UInt8>?] = [out.baseAddress, nil, nil, nil]
            var dstStride: [Int32] = [Int32(width * 3), 0, 0, 0]
            let rows = sws_scale(sws, &planes, &strides, 0, sourceHeight, &dst, &dstStride)
            guard rows == Int32(height) else { throw MediaError("cannot convert the picture") }
        }
        return image
    }

    /// Encodes RGB pixels as a full-range JPEG (`quality`: libav's qscale, 2 = best, 31 =
    /// worst), or as PNG.
    static func encode(_ image: RGBImage, quality: Int, output: Output = .jpeg) throws -> Picture {
        let found: UnsafePointer<AVCodec>?
        switch output {
        case .jpeg: found = avcodec_find_encoder(AV_CODEC_ID_MJPEG)
        case .png: found = avcodec_find_encoder(AV_CODEC_ID_PNG)
        case .webp: found = avcodec_find_encoder_by_name("libwebp")
        }
        guard let encoder = found else { throw MediaError("no encoder for \(output)") }
        let format = output == .png ? AV_PIX_FMT_RGB24 : output == .webp ? AV_PIX_FMT_YUV420P : AV_PIX_FMT_YUVJ420P
        var context: UnsafeMutablePointer<AVCodecContext>? = avcodec_alloc_context3(encoder)
        guard let codec = context else { throw MediaError("out of memory") }
        defer { avcodec_free_context(&context) }
        codec.pointee.width = Int32(image.width)
        codec.pointee.height = Int32(image.height)
        codec.pointee.pix_fmt = format
        codec.pointee.color_range = AVCOL_RANGE_JPEG
        codec.pointee.time_base = AVRational(num: 1, den: 25)
        codec.pointee.flags |= Int32(AV_CODEC_FLAG_QSCALE)
        // FF_QP2LAMBDA: qscale for JPEG; libwebp reads the same field as quality 0-100.
        codec.pointee.global_quality = Int32((output == .webp ? 90 : quality) * 118)
        codec.pointee.thread_count = 1
        let opened = avcodec_open2(codec, encoder, nil)
        guard opened >= 0 else { throw MediaError("cannot open the JPEG encoder (\(avErrorText(opened)))") }

        var frame: UnsafeMutablePointer<AVFrame>? = av_frame_alloc()
        defer { av_frame_free(&frame) }
        guard let yuv = frame else { throw MediaError("out of memory") }
        yuv.pointee.width = Int32(image.width)
        yuv.pointee.height = Int32(image.height)
        yuv.pointee.format = format.rawValue
        yuv.pointee.color_range = AVCOL_RANGE_JPEG
        guard av_frame_get_buffer(yuv, 0) >= 0 else { throw MediaError("out of memory") }
        try image.pixels.withUnsafeBufferPointer { rgb in
            guard let sws = sws_getContext(
                Int32(image.width), Int32(image.height), AV_PIX_FMT_RGB24, Int32(image.width), Int32(image.height),
                format, Int32(SWS_BICUBIC), nil, nil, nil)
            else { throw MediaError("cannot convert the picture") }
            defer { sws_freeContext(sws) }
            var src: [UnsafePointer<UInt8>?] = [rgb.baseAddress, nil, nil, nil]
            var srcStride: [Int32] = [Int32(image.width * 3), 0, 0, 0]
            var dst: [UnsafeMutablePointer<UInt8>?] = (0..<4).map { tern_av_frame_plane(yuv, Int32($0)) }
            var dstStride: [Int32] = (0..<4).map { tern_av_frame_linesize(yuv, Int32($0)) }
            _ = sws_scale(sws, &src, &srcStride, 0, Int32(image.height), &dst, &dstStride)
        }
        yuv.pointee.quality = codec.pointee.global_quality
        yuv.pointee.pts = 0
        guard avcodec_send_frame(codec, yuv) >= 0 else { throw MediaError("JPEG encoding failed") }
        avcodec_send_frame(codec, nil)
        var packet: UnsafeMutablePointer<AVPacket>? = av_packet_alloc()
        defer { av_packet_free(&packet) }
        var bytes: [UInt8] = []
        while avcodec_receive_packet(codec, packet) >= 0 {
            bytes += UnsafeBufferPointer(start: packet!.pointee.data, count: Int(packet!.pointee.size))
            av_packet_unref(packet)
        }
        guard !bytes.isEmpty else { throw MediaError("JPEG encoding produced nothing") }
        return Picture(jpeg: bytes, width: image.width, height: image.height)
    }
}

/// Packed 8-bit RGB pixels.
struct RGBImage {
    var width: Int
    var height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int, pixels: [UInt8]? = nil) {
        self.width = width
        self.height = height
        self.pixels = pixels ?? [UInt8](repeating: 0, count: width * height * 3)
    }

    /// Turned clockwise by 0, 90, 180 or 270 degrees.
    func rotated(clockwise degrees: Int) -> RGBImage {
        guard degrees % 360 != 0 else { return self }
        let turns = (degrees / 90) % 4
        let (w, h) = turns % 2 == 1 ? (height, width) : (width, height)
        var out = RGBImage(width: w, height: h)
        for y in 0..<height {
            for x in 0..<width {
                let (nx, ny): (Int, Int)
                switch turns {
                case 1: (nx, ny) = (height - 1 - y, x)
                case 2: (nx, ny) = (width - 1 - x, height - 1 - y)
                default: (nx, ny) = (y, width - 1 - x)
                }
                let s = (y * width + x) * 3
                let d = (ny * w + nx) * 3
                out.pixels[d] = pixels[s]
                out.pixels[d + 1] = pixels[s + 1]
                out.pixels[d + 2] = pixels[s + 2]
            }
        }
        return out
    }

    /// Scaled down (never up) so that the longest side is at most `side`, with an area
    /// average (box filter) over the source pixels.
    func scaled(toFit side: Int) -> RGBImage {
        let longest = max(width, height)
        guard longest > side else { return self }
        let w = max(1, (width * side + longest / 2) / longest)
        let h = max(1, (height * side + longest / 2) / longest)
        var out = RGBImage(width: w, height: h)
        for oy in 0..<h {
            let y0 = oy * height / h
            let y1 = max(y0 + 1, (oy + 1) * height / h)
            for ox in 0..<w {
                let x0 = ox * width / w
                let x1 = max(x0 + 1, (ox + 1) * width / w)
                var r = 0, g = 0, b = 0
                for y in y0..<y1 {
                    var s = (y * width + x0) * 3
                    for _ in x0..<x1 {
                        r += Int(pixels[s])
                        g += Int(pixels[s + 1])
                        b += Int(pixels[s + 2])
                        s += 3
                    }
                }
                let n = (y1 - y0) * (x1 - x0)
                let d = (oy * w + ox) * 3
                out.pixels[d] = UInt8(r / n)
                out.pixels[d + 1] = UInt8(g / n)
                out.pixels[d + 2] = UInt8(b / n)
            }
        }
        return out
    }
}
