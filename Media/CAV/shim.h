// libav (FFmpeg 5.1 on Debian 12) for TernMedia. Macros and variadic functions Swift
// cannot import are wrapped as static inline functions here.
#ifndef TERN_CAV_SHIM_H
#define TERN_CAV_SHIM_H
#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libavutil/avutil.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/channel_layout.h>
#include <libavutil/samplefmt.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/time.h>
#include <libswscale/swscale.h>

static inline int tern_averror_eagain(void) { return AVERROR(EAGAIN); }
static inline int tern_averror_eof(void) { return AVERROR_EOF; }
static inline int64_t tern_av_nopts_value(void) { return AV_NOPTS_VALUE; }
static inline int tern_av_time_base(void) { return AV_TIME_BASE; }

static inline void tern_av_error_string(int code, char *buffer, size_t size) {
    av_strerror(code, buffer, size);
}

static inline void tern_av_quiet(void) { av_log_set_level(AV_LOG_ERROR); }

/// Interrupt callback: stop blocking I/O and demuxing once the monotonic clock passes the
/// deadline (microseconds, av_gettime_relative) stored at `opaque`.
static inline int tern_av_deadline_passed(void *opaque) {
    const int64_t *deadline = (const int64_t *)opaque;
    return deadline != NULL && av_gettime_relative() > *deadline;
}

static inline void tern_av_set_deadline_callback(AVFormatContext *context, int64_t *deadline) {
    context->interrupt_callback.callback = tern_av_deadline_passed;
    context->interrupt_callback.opaque = deadline;
}

/// The rotation in degrees (counter-clockwise, as the display matrix says) of a stream, or 0.
static inline double tern_av_stream_rotation(const AVStream *stream) {
    size_t size = 0;
    const uint8_t *matrix = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, &size);
    if (matrix == NULL || size < 9 * sizeof(int32_t)) return 0;
    double theta = av_display_rotation_get((const int32_t *)matrix);
    return theta != theta ? 0 : theta; // NaN -> 0
}

static inline uint8_t *tern_av_frame_plane(AVFrame *frame, int i) { return frame->data[i]; }
static inline int tern_av_frame_linesize(AVFrame *frame, int i) { return frame->linesize[i]; }
#endif
