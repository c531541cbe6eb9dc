/* decode: FFmpeg 5.1 decoding of one media file to 25 fps gray ROI frames
 * and 16 kHz mono int16 audio (see decode.h). */
#include "decode.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/log.h>
#include <libavutil/pixdesc.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>

#include "pack_format.h"

/* a stream that decodes to this much less than declared is truncated */
#define TRUNCATION_SLACK_S 0.25

int avsr_av_check(int ret, avsr_error *err, const char *call, const char *file, int line)
{
    if (ret >= 0)
        return ret;
    char buf[AV_ERROR_MAX_STRING_SIZE];
    if (av_strerror(ret, buf, sizeof buf) < 0)
        snprintf(buf, sizeof buf, "error %d", ret);
    avsr_error_set(err, AVSR_ERR_BACKEND, "%s failed at %s:%d: %s", call, file, line, buf);
    return ret;
}

static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;
static void quiet_init(void) { av_log_set_level(AV_LOG_QUIET); }

/* ---- video: scale to gray ROI, resample to 25 fps by timestamps -------- */

typedef struct vstate {
    AVCodecContext *dec;
    AVRational tb;
    double fps_guess;
    struct SwsContext *sws;
    int oh, ow;
    uint8_t *prev;          /* [oh, ow] the last source frame, scaled */
    int have_prev;
    double t0, prev_t, end_t; /* seconds; prev_t and end_t relative to t0 */
    uint8_t *out;           /* [cap, oh, ow] */
    int64_t n, cap;
} vstate;

static int vemit(vstate *v, avsr_error *err)
{
    size_t fsz = (size_t)v->oh * v->ow;
    if (v->n == v->cap) {
        int64_t nc = v->cap ? 2 * v->cap : 64;
        uint8_t *p = realloc(v->out, (size_t)nc * fsz);
        if (!p)
            return AVSR_NOMEM(err, (size_t)nc * fsz);
        v->out = p;
        v->cap = nc;
    }
    memcpy(v->out + (size_t)v->n * fsz, v->prev, fsz);
    v->n++;
    return 0;
}

static int vframe(vstate *v, const AVFrame *f, avsr_error *err)
{
    int64_t ts = f->best_effort_timestamp;
    double t;
    if (ts == AV_NOPTS_VALUE)
        t = v->have_prev ? v->t0 + v->end_t : 0.0;
    else
        t = ts * av_q2d(v->tb);
    if (!v->have_prev)
        v->t0 = t;
    double rel = t - v->t0;
    if (v->have_prev) {
        /* slots whose centre lies before this frame show the previous one */
        while ((v->n + 0.5) / AVSR_PACK_FPS < rel)
            if (vemit(v, err) < 0)
                return -1;
    }
    v->sws = sws_getCachedContext(v->sws, f->width, f->height, f->format, v->ow, v->oh,
                                  AV_PIX_FMT_GRAY8, SWS_BILINEAR, NULL, NULL, NULL);
    if (!v->sws)
        return avsr_error_set(err, AVSR_ERR_BACKEND,
                              "sws_getCachedContext failed for %dx%d pixel format %s",
                              f->width, f->height,
                              av_get_pix_fmt_name(f->format) ? av_get_pix_fmt_name(f->format)
                                                             : "?");
    if (f->color_range == AVCOL_RANGE_JPEG) {
        /* a full-range YUV source: keep its levels (swscale would otherwise
         * treat YUV as limited range and stretch 16..235 to 0..255) */
        const int *cs = sws_getCoefficients(SWS_CS_DEFAULT);
        sws_setColorspaceDetails(v->sws, cs, 1, cs, 1, 0, 1 << 16, 1 << 16);
    }
    uint8_t *dst[4] = {v->prev, NULL, NULL, NULL};
    int dst_stride[4] = {v->ow, 0, 0, 0};
    if (AVSR_AV(err, sws_scale(v->sws, (const uint8_t *const *)f->data, f->linesize, 0,
                               f->height, dst, dst_stride)) < 0)
        return -1;
    double dur = f->pkt_duration > 0 ? f->pkt_duration * av_q2d(v->tb) : 0.0;
    if (dur <= 0 && v->have_prev && rel > v->prev_t)
        dur = rel - v->prev_t;
    if (dur <= 0)
        dur = 1.0 / v->fps_guess;
    v->prev_t = rel;
    if (rel + dur > v->end_t || !v->have_prev)
        v->end_t = rel + dur;
    v->have_prev = 1;
    return 0;
}

static int vfinish(vstate *v, avsr_error *err)
{
    if (!v->have_prev)
        return 0;
    int64_t total = llround(v->end_t * AVSR_PACK_FPS);
    if (total < 1)
        total = 1;
    while (v->n < total)
        if (vemit(v, err) < 0)
            return -1;
    return 0;
}

/* ---- audio: 16 kHz mono int16 through libswresample ------------------- */

typedef struct astate {
    AVCodecContext *dec;
    SwrContext *swr;
    int in_rate, in_fmt, in_ch;
    int16_t *out;
    int64_t n, cap;
} astate;

static int areserve(astate *a, int64_t more, avsr_error *err)
{
    if (a->n + more <= a->cap)
        return 0;
    int64_t nc = a->cap ? a->cap : 16000;
    while (nc < a->n + more)
        nc *= 2;
    int16_t *p = realloc(a->out, (size_t)nc * sizeof *p);
    if (!p)
        return AVSR_NOMEM(err, (size_t)nc * sizeof *p);
    a->out = p;
    a->cap = nc;
    return 0;
}

static int ainit(astate *a, const AVFrame *f, avsr_error *err)
{
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO, in;
    memset(&in, 0, sizeof in); /* av_channel_layout_copy uninits its destination */
    int nch = f->ch_layout.nb_channels;
    if (nch < 1 || nch > 64)
        return avsr_error_set(err, AVSR_ERR_INVALID, "audio has %d channels", nch);
    if (AVSR_AV(err, av_channel_layout_copy(&in, &f->ch_layout)) < 0)
        return -1;
    int r = AVSR_AV(err, swr_alloc_set_opts2(&a->swr, &mono, AV_SAMPLE_FMT_S16,
                                             AVSR_PACK_SAMPLE_RATE, &in, f->format,
                                             f->sample_rate, 0, NULL));
    av_channel_layout_uninit(&in);
    if (r < 0)
        return -1;
    double m[64];
    for (int c = 0; c < nch; c++)
        m[c] = 1.0 / nch; /* [1 out, nch in]: the channel mean */
    if (AVSR_AV(err, swr_set_matrix(a->swr, m, nch)) < 0)
        return -1;
    if (AVSR_AV(err, swr_init(a->swr)) < 0)
        return -1;
    a->in_rate = f->sample_rate;
    a->in_fmt = f->format;
    a->in_ch = nch;
    return 0;
}

static int aconvert(astate *a, const AVFrame *f, avsr_error *err)
{
    if (f) {
        if (!a->swr) {
            if (ainit(a, f, err) < 0)
                return -1;
        } else if (f->sample_rate != a->in_rate || f->format != a->in_fmt ||
                   f->ch_layout.nb_channels != a->in_ch) {
            return avsr_error_set(err, AVSR_ERR_UNSUPPORTED,
                                  "audio format changes in mid-stream (%d Hz %d ch -> %d Hz %d ch)",
                                  a->in_rate, a->in_ch, f->sample_rate,
                                  f->ch_layout.nb_channels);
        }
    }
    if (!a->swr)
        return 0;
    for (;;) {
        int want = swr_get_out_samples(a->swr, f ? f->nb_samples : 0);
        if (want < 256)
            want = 256;
        if (areserve(a, want, err) < 0)
            return -1;
        uint8_t *dst = (uint8_t *)(a->out + a->n);
        int got = AVSR_AV(err, swr_convert(a->swr, &dst, want,
                                           f ? (const uint8_t **)f->extended_data : NULL,
                                           f ? f->nb_samples : 0));
        if (got < 0)
            return -1;
        a->n += got;
        if (f || got == 0)
            return 0; /* a frame is consumed in one call; flush until empty */
    }
}

/* ---- the send/receive loop ------------------------------------------- */

typedef struct dstate {
    vstate v;
    astate a;
    AVFrame *frame;
} dstate;

static int receive_all(dstate *d, AVCodecContext *dec, int is_video, avsr_error *err)
{
    for (;;) {
        int r = avcodec_receive_frame(dec, d->frame);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF)
            return 0;
        if (AVSR_AV(err, r) < 0)
            return -1;
        int rc = is_video ? vframe(&d->v, d->frame, err) : aconvert(&d->a, d->frame, err);
        av_frame_unref(d->frame);
        if (rc < 0)
            return -1;
    }
}

static int feed(dstate *d, AVCodecContext *dec, int is_video, const AVPacket *pkt,
                avsr_error *err)
{
    for (;;) {
        int r = avcodec_send_packet(dec, pkt);
        if (r == AVERROR(EAGAIN)) { /* output must be read first */
            if (receive_all(d, dec, is_video, err) < 0)
                return -1;
            continue;
        }
        if (r == AVERROR_EOF && !pkt)
            return receive_all(d, dec, is_video, err);
        if (AVSR_AV(err, r) < 0)
            return -1;
        return receive_all(d, dec, is_video, err);
    }
}

static int open_decoder(AVFormatContext *fmt, int idx, AVCodecContext **out, avsr_error *err)
{
    AVStream *st = fmt->streams[idx];
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (!codec)
        return avsr_error_set(err, AVSR_ERR_UNSUPPORTED, "no decoder for %s stream codec '%s'",
                              av_get_media_type_string(st->codecpar->codec_type),
                              avcodec_get_name(st->codecpar->codec_id));
    AVCodecContext *c = avcodec_alloc_context3(codec);
    if (!c)
        return AVSR_NOMEM(err, sizeof(AVCodecContext));
    *out = c;
    if (AVSR_AV(err, avcodec_parameters_to_context(c, st->codecpar)) < 0)
        return -1;
    c->pkt_timebase = st->time_base;
    c->thread_count = 1; /* the packer runs one decode per thread */
    if (AVSR_AV(err, avcodec_open2(c, codec, NULL)) < 0)
        return -1;
    return 0;
}

static double declared_seconds(const AVFormatContext *fmt, const AVStream *st)
{
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
        return st->duration * av_q2d(st->time_base);
    if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0)
        return fmt->duration / (double)AV_TIME_BASE;
    return -1;
}

int avsr_decode_file(const char *path, const avsr_decode_opts *o, avsr_media *m,
                     avsr_error *err)
{
    memset(m, 0, sizeof *m);
    pthread_once(&quiet_once, quiet_init);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return avsr_error_set(err, AVSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return avsr_error_set(err, AVSR_ERR_IO, "%s: not a regular file", path);
    if (o->want_video && (o->roi_h < 1 || o->roi_w < 1 || o->roi_h > AVSR_PACK_MAX_ROI ||
                          o->roi_w > AVSR_PACK_MAX_ROI))
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: ROI %dx%d out of range", path,
                              o->roi_h, o->roi_w);

    AVFormatContext *fmt = NULL;
    AVPacket *pkt = NULL;
    dstate d;
    memset(&d, 0, sizeof d);
    int rc = -1, vidx = -1, aidx = -1, r;

    if (AVSR_AV(err, avformat_open_input(&fmt, path, NULL, NULL)) < 0)
        goto done;
    if (AVSR_AV(err, avformat_find_stream_info(fmt, NULL)) < 0)
        goto done;
    if (o->want_video) {
        vidx = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
        if (vidx >= 0 && (fmt->streams[vidx]->disposition & AV_DISPOSITION_ATTACHED_PIC))
            vidx = -1;
        if (vidx < 0 && o->want_video != AVSR_DECODE_IF_PRESENT) {
            avsr_error_set(err, AVSR_ERR_INVALID, "no video stream");
            goto done;
        }
    }
    if (o->want_audio) {
        aidx = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
        if (aidx < 0 && o->want_audio != AVSR_DECODE_IF_PRESENT) {
            avsr_error_set(err, AVSR_ERR_INVALID, "no audio stream");
            goto done;
        }
    }
    if (vidx < 0 && aidx < 0 && (o->want_video || o->want_audio)) {
        avsr_error_set(err, AVSR_ERR_INVALID, "no %s stream",
                       o->want_video && o->want_audio ? "video or audio"
                       : o->want_video                ? "video"
                                                      : "audio");
        goto done;
    }
    for (unsigned i = 0; i < fmt->nb_streams; i++)
        if ((int)i != vidx && (int)i != aidx)
            fmt->streams[i]->discard = AVDISCARD_ALL;
    if (vidx >= 0) {
        if (open_decoder(fmt, vidx, &d.v.dec, err) < 0)
            goto done;
        AVStream *st = fmt->streams[vidx];
        d.v.tb = st->time_base;
        d.v.oh = o->roi_h;
        d.v.ow = o->roi_w;
        m->src_fps = st->avg_frame_rate.den ? av_q2d(st->avg_frame_rate) : 0.0;
        d.v.fps_guess = m->src_fps > 0 ? m->src_fps : AVSR_PACK_FPS;
        d.v.prev = malloc((size_t)o->roi_h * o->roi_w + 64);
        if (!d.v.prev) {
            AVSR_NOMEM(err, (size_t)o->roi_h * o->roi_w);
            goto done;
        }
    }
    if (aidx >= 0 && open_decoder(fmt, aidx, &d.a.dec, err) < 0)
        goto done;
    d.frame = av_frame_alloc();
    pkt = av_packet_alloc();
    if (!d.frame || !pkt) {
        AVSR_NOMEM(err, sizeof(AVFrame));
        goto done;
    }
    while ((r = av_read_frame(fmt, pkt)) >= 0) {
        int frc = 0;
        if (pkt->stream_index == vidx)
            frc = feed(&d, d.v.dec, 1, pkt, err);
        else if (pkt->stream_index == aidx)
            frc = feed(&d, d.a.dec, 0, pkt, err);
        av_packet_unref(pkt);
        if (frc < 0)
            goto done;
    }
    if (r != AVERROR_EOF && AVSR_AV(err, r) < 0)
        goto done;
    /* drain the decoders, then flush the resampler */
    if (d.v.dec && feed(&d, d.v.dec, 1, NULL, err) < 0)
        goto done;
    if (d.a.dec && (feed(&d, d.a.dec, 0, NULL, err) < 0 || aconvert(&d.a, NULL, err) < 0))
        goto done;
    if (d.v.dec) {
        if (vfinish(&d.v, err) < 0)
            goto done;
        if (d.v.n == 0) {
            avsr_error_set(err, AVSR_ERR_INVALID, "video stream has no decodable frames");
            goto done;
        }
        double decl = declared_seconds(fmt, fmt->streams[vidx]);
        double got = d.v.end_t;
        if (decl > 0 && got < decl - TRUNCATION_SLACK_S) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "truncated or damaged: video decodes to %.2f s of the %.2f s declared",
                           got, decl);
            goto done;
        }
    }
    if (d.a.dec) {
        if (d.a.n == 0) {
            avsr_error_set(err, AVSR_ERR_INVALID, "zero-length audio");
            goto done;
        }
        double decl = declared_seconds(fmt, fmt->streams[aidx]);
        double got = (double)d.a.n / AVSR_PACK_SAMPLE_RATE;
        if (decl > 0 && got < decl - TRUNCATION_SLACK_S) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "truncated or damaged: audio decodes to %.2f s of the %.2f s declared",
                           got, decl);
            goto done;
        }
        m->src_rate = d.a.in_rate;
        m->src_channels = d.a.in_ch;
    }
    m->video = d.v.out;
    m->frames = d.v.n;
    d.v.out = NULL;
    m->audio = d.a.out;
    m->samples = d.a.n;
    d.a.out = NULL;
    rc = 0;
done:
    if (rc < 0)
        avsr_error_prefix(err, "%s: ", path);
    av_packet_free(&pkt);
    av_frame_free(&d.frame);
    avcodec_free_context(&d.v.dec);
    avcodec_free_context(&d.a.dec);
    sws_freeContext(d.v.sws);
    swr_free(&d.a.swr);
    free(d.v.prev);
    free(d.v.out);
    free(d.a.out);
    avformat_close_input(&fmt);
    return rc;
}

void avsr_media_free(avsr_media *m)
{
    if (!m)
        return;
    free(m->video);
    free(m->audio);
    memset(m, 0, sizeof *m);
}
