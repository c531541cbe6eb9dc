/* media_write: FFmpeg video encoding, WAV writing, resampling (see
 * media_write.h). Written for the FFmpeg 5.1 API (libavcodec 59). */
#include "datasets/media_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>

#include "fileio.h"

static const char *averr(int e, char *buf, size_t n)
{
    av_strerror(e, buf, n);
    return buf;
}

const char *avsr_video_format_ext(avsr_video_format fmt)
{
    return fmt == AVSR_VIDEO_MP4 ? "mp4" : "mkv";
}

static const AVCodec *pick_encoder(avsr_video_format fmt)
{
    if (fmt == AVSR_VIDEO_MKV_FFV1)
        return avcodec_find_encoder(AV_CODEC_ID_FFV1);
    const AVCodec *c = avcodec_find_encoder_by_name("libx264");
    if (!c)
        c = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    return c;
}

const char *avsr_video_encoder_name(avsr_video_format fmt)
{
    const AVCodec *c = pick_encoder(fmt);
    return c ? c->name : NULL;
}

/* Send one frame (or NULL to drain) and write every packet that comes out. */
static int encode_write(AVCodecContext *c, AVFormatContext *oc, AVStream *st, AVFrame *fr,
                        AVPacket *pkt, const char *path, avsr_error *err)
{
    char eb[128];
    int ret = avcodec_send_frame(c, fr);
    if (ret < 0)
        return avsr_error_set(err, AVSR_ERR_BACKEND, "%s: encoding a frame failed: %s", path,
                              averr(ret, eb, sizeof eb));
    for (;;) {
        ret = avcodec_receive_packet(c, pkt);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
            return 0;
        if (ret < 0)
            return avsr_error_set(err, AVSR_ERR_BACKEND, "%s: encoder failed: %s", path,
                                  averr(ret, eb, sizeof eb));
        av_packet_rescale_ts(pkt, c->time_base, st->time_base);
        pkt->stream_index = st->index;
        ret = av_interleaved_write_frame(oc, pkt); /* takes the packet's reference */
        if (ret < 0)
            return avsr_error_set(err, AVSR_ERR_IO, "%s: writing a packet failed: %s", path,
                                  averr(ret, eb, sizeof eb));
    }
}

int avsr_video_write(const char *path, avsr_video_format fmt, const uint8_t *frames,
                     int n_frames, int w, int h, int fps, avsr_error *err)
{
    char eb[128];
    if (n_frames <= 0 || w <= 0 || h <= 0 || fps <= 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: bad video geometry: %d frames of %dx%d at %d fps", path,
                              n_frames, w, h, fps);
    if (fmt == AVSR_VIDEO_MP4 && ((w | h) & 1))
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: MP4 needs even sizes, got %dx%d", path,
                              w, h);
    const AVCodec *codec = pick_encoder(fmt);
    if (!codec)
        return avsr_error_set(err, AVSR_ERR_UNSUPPORTED,
                              "%s: this FFmpeg build has no %s encoder", path,
                              fmt == AVSR_VIDEO_MP4 ? "H.264 or MPEG-4" : "FFV1");
    size_t tl = strlen(path) + 32;
    char *tmp = malloc(tl);
    if (!tmp)
        return AVSR_NOMEM(err, tl);
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());

    int rc = -1, ret, opened = 0;
    AVFormatContext *oc = NULL;
    AVCodecContext *c = NULL;
    AVFrame *fr = NULL;
    AVPacket *pkt = NULL;
    AVDictionary *opts = NULL;
    const char *muxer = fmt == AVSR_VIDEO_MP4 ? "mp4" : "matroska";

    ret = avformat_alloc_output_context2(&oc, NULL, muxer, tmp);
    if (ret < 0 || !oc) {
        avsr_error_set(err, AVSR_ERR_BACKEND, "%s: no %s muxer: %s", path, muxer,
                       averr(ret, eb, sizeof eb));
        goto done;
    }
    oc->flags |= AVFMT_FLAG_BITEXACT;
    AVStream *st = avformat_new_stream(oc, NULL);
    c = avcodec_alloc_context3(codec);
    fr = av_frame_alloc();
    pkt = av_packet_alloc();
    if (!st || !c || !fr || !pkt) {
        AVSR_NOMEM(err, sizeof *c);
        goto done;
    }
    c->width = w;
    c->height = h;
    c->time_base = (AVRational){1, fps};
    c->framerate = (AVRational){fps, 1};
    c->sample_aspect_ratio = (AVRational){1, 1};
    c->thread_count = 1;
    c->flags |= AV_CODEC_FLAG_BITEXACT;
    if (fmt == AVSR_VIDEO_MKV_FFV1) {
        c->pix_fmt = AV_PIX_FMT_GRAY8;
        c->gop_size = 1;
    } else {
        c->pix_fmt = AV_PIX_FMT_YUV420P;
        /* our gray levels are full range (0..255): say so in the stream, or
         * decoders expand them as if they were limited (16..235) */
        c->color_range = AVCOL_RANGE_JPEG;
        c->gop_size = 2 * fps;
        c->max_b_frames = 0;
        if (codec->id == AV_CODEC_ID_H264) {
            av_opt_set(c->priv_data, "preset", "veryfast", 0);
            av_opt_set(c->priv_data, "crf", "16", 0);
        } else {
            c->flags |= AV_CODEC_FLAG_QSCALE;
            c->global_quality = FF_QP2LAMBDA * 2;
        }
    }
    if (oc->oformat->flags & AVFMT_GLOBALHEADER)
        c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    ret = avcodec_open2(c, codec, NULL);
    if (ret < 0) {
        avsr_error_set(err, AVSR_ERR_BACKEND, "%s: cannot open encoder %s: %s", path,
                       codec->name, averr(ret, eb, sizeof eb));
        goto done;
    }
    ret = avcodec_parameters_from_context(st->codecpar, c);
    if (ret < 0) {
        avsr_error_set(err, AVSR_ERR_BACKEND, "%s: codec parameters: %s", path,
                       averr(ret, eb, sizeof eb));
        goto done;
    }
    st->time_base = c->time_base;
    st->avg_frame_rate = c->framerate;
    ret = avio_open(&oc->pb, tmp, AVIO_FLAG_WRITE);
    if (ret < 0) {
        avsr_error_set(err, AVSR_ERR_IO, "%s: cannot create: %s", tmp, averr(ret, eb, sizeof eb));
        goto done;
    }
    opened = 1;
    ret = avformat_write_header(oc, &opts);
    if (ret < 0) {
        avsr_error_set(err, AVSR_ERR_IO, "%s: writing the header failed: %s", path,
                       averr(ret, eb, sizeof eb));
        goto done;
    }
    fr->format = c->pix_fmt;
    fr->color_range = c->color_range;
    fr->width = w;
    fr->height = h;
    ret = av_frame_get_buffer(fr, 0);
    if (ret < 0) {
        AVSR_NOMEM(err, (size_t)w * (size_t)h * 2);
        goto done;
    }
    for (int k = 0; k < n_frames; k++) {
        ret = av_frame_make_writable(fr);
        if (ret < 0) {
            AVSR_NOMEM(err, (size_t)w * (size_t)h * 2);
            goto done;
        }
        const uint8_t *src = frames + (size_t)k * (size_t)w * (size_t)h; /* [h, w] */
        for (int y = 0; y < h; y++)
            memcpy(fr->data[0] + (size_t)y * (size_t)fr->linesize[0], src + (size_t)y * (size_t)w,
                   (size_t)w);
        if (fmt == AVSR_VIDEO_MP4) /* neutral chroma */
            for (int p = 1; p <= 2; p++)
                for (int y = 0; y < h / 2; y++)
                    memset(fr->data[p] + (size_t)y * (size_t)fr->linesize[p], 128, (size_t)w / 2);
        fr->pts = k;
        if (encode_write(c, oc, st, fr, pkt, path, err) != 0)
            goto done;
    }
    if (encode_write(c, oc, st, NULL, pkt, path, err) != 0)
        goto done;
    ret = av_write_trailer(oc);
    if (ret < 0) {
        avsr_error_set(err, AVSR_ERR_IO, "%s: writing the trailer failed: %s", path,
                       averr(ret, eb, sizeof eb));
        goto done;
    }
    ret = avio_closep(&oc->pb);
    opened = 0;
    if (ret < 0) {
        avsr_error_set(err, AVSR_ERR_IO, "%s: close failed: %s", tmp, averr(ret, eb, sizeof eb));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        avsr_error_set(err, AVSR_ERR_IO, "rename %s -> %s failed: %s", tmp, path, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (opened)
        avio_closep(&oc->pb);
    if (rc != 0)
        unlink(tmp);
    av_dict_free(&opts);
    av_packet_free(&pkt);
    av_frame_free(&fr);
    avcodec_free_context(&c);
    avformat_free_context(oc);
    free(tmp);
    return rc;
}

static void put_le(uint8_t *p, uint32_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int avsr_wav_write(const char *path, const int16_t *pcm, int64_t n, int rate, avsr_error *err)
{
    if (n < 0 || rate <= 0 || n > (int64_t)(0x7fffffff / 2 - 64))
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: bad WAV size: %lld samples at %d Hz",
                              path, (long long)n, rate);
    uint8_t hdr[44];
    uint32_t data = (uint32_t)(n * 2);
    memcpy(hdr, "RIFF", 4);
    put_le(hdr + 4, 36 + data, 4);
    memcpy(hdr + 8, "WAVEfmt ", 8);
    put_le(hdr + 16, 16, 4);                 /* fmt chunk size */
    put_le(hdr + 20, 1, 2);                  /* PCM */
    put_le(hdr + 22, 1, 2);                  /* mono */
    put_le(hdr + 24, (uint32_t)rate, 4);
    put_le(hdr + 28, (uint32_t)rate * 2, 4); /* byte rate */
    put_le(hdr + 32, 2, 2);                  /* block align */
    put_le(hdr + 34, 16, 2);                 /* bits per sample */
    memcpy(hdr + 36, "data", 4);
    put_le(hdr + 40, data, 4);
    /* samples as little-endian bytes whatever the host order */
    uint8_t *body = malloc(data ? data : 1);
    if (!body)
        return AVSR_NOMEM(err, data);
    for (int64_t i = 0; i < n; i++)
        put_le(body + 2 * i, (uint16_t)pcm[i], 2);
    avsr_afile af;
    int rc = avsr_afile_open(&af, path, err);
    if (rc == 0) {
        if (avsr_afile_write(&af, hdr, sizeof hdr, err) != 0 ||
            avsr_afile_write(&af, body, data, err) != 0) {
            avsr_afile_abort(&af);
            rc = -1;
        } else {
            rc = avsr_afile_commit(&af, err);
        }
    }
    free(body);
    return rc;
}

int avsr_resample_s16(const int16_t *in, int64_t n_in, int in_rate, int out_rate,
                      int16_t **out, int64_t *n_out, avsr_error *err)
{
    char eb[128];
    *out = NULL;
    *n_out = 0;
    if (n_in < 0 || n_in > INT32_MAX || in_rate <= 0 || out_rate <= 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "resample: bad request: %lld samples, %d -> %d Hz",
                              (long long)n_in, in_rate, out_rate);
    SwrContext *swr = NULL;
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    int ret = swr_alloc_set_opts2(&swr, &mono, AV_SAMPLE_FMT_S16, out_rate, &mono,
                                  AV_SAMPLE_FMT_S16, in_rate, 0, NULL);
    if (ret < 0 || (ret = swr_init(swr)) < 0) {
        swr_free(&swr);
        return avsr_error_set(err, AVSR_ERR_BACKEND, "resample: swresample setup failed: %s",
                              averr(ret, eb, sizeof eb));
    }
    /* room for the converted input plus the filter's tail */
    int64_t cap = av_rescale_rnd(n_in, out_rate, in_rate, AV_ROUND_UP) + 256;
    int16_t *buf = malloc(sizeof(int16_t) * (size_t)cap);
    if (!buf) {
        swr_free(&swr);
        return AVSR_NOMEM(err, sizeof(int16_t) * (size_t)cap);
    }
    int64_t got = 0;
    const uint8_t *src[1] = {(const uint8_t *)in};
    uint8_t *dst[1] = {(uint8_t *)buf};
    ret = n_in ? swr_convert(swr, dst, (int)cap, src, (int)n_in) : 0;
    if (ret > 0)
        got += ret;
    while (ret >= 0 && got < cap) { /* flush the filter's delay */
        dst[0] = (uint8_t *)(buf + got);
        ret = swr_convert(swr, dst, (int)(cap - got), NULL, 0);
        if (ret <= 0)
            break;
        got += ret;
    }
    swr_free(&swr);
    if (ret < 0) {
        free(buf);
        return avsr_error_set(err, AVSR_ERR_BACKEND, "resample: swr_convert failed: %s",
                              averr(ret, eb, sizeof eb));
    }
    *out = buf;
    *n_out = got;
    return 0;
}
