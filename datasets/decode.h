/* decode: one media file to the packed representation, with FFmpeg.
 *
 * Video: the best video stream, decoded with a drained send/receive loop,
 * converted by libswscale to 8-bit gray at the ROI size (bilinear), and
 * resampled in time to 25 fps by timestamps: output frame k shows the last
 * source frame whose presentation time (relative to the first frame) is at
 * or before the centre of output slot k, (k + 0.5) / 25 s. The number of
 * output frames is round(end * 25), where end is the end time of the last
 * source frame. A 25 fps source is passed through frame for frame.
 * Audio: the best audio stream, decoded the same way and converted by
 * libswresample (flushed at the end) to 16 kHz mono int16; channels are
 * averaged (equal weights), as auto_avsr does.
 *
 * Errors name the file; FFmpeg failures come through AVSR_AV with the call,
 * its source place and av_strerror's text. A stream that decodes to
 * noticeably less than the container declares (more than 0.25 s short) is
 * reported as truncated. FFmpeg's own log output is silenced. */
#ifndef AVSR_DECODE_H
#define AVSR_DECODE_H

#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Evaluate an FFmpeg call (int result) once; a negative result records
 * "<call> failed at <file>:<line>: <av_strerror text>" in err. Yields the
 * result. */
#define AVSR_AV(err, call) avsr_av_check((call), (err), #call, __FILE__, __LINE__)
int avsr_av_check(int ret, avsr_error *err, const char *call, const char *file, int line);

/* Values of want_video / want_audio. */
#define AVSR_DECODE_SKIP 0       /* do not decode the stream */
#define AVSR_DECODE_REQUIRED 1   /* decode it; a file without one is an error */
#define AVSR_DECODE_IF_PRESENT 2 /* decode it when the file has one (else the
                                  * output stays NULL / 0; a file with neither
                                  * asked stream is still an error) */

typedef struct avsr_decode_opts {
    int roi_h, roi_w;  /* size of the gray output frames */
    int want_video;    /* AVSR_DECODE_*: decode the video stream */
    int want_audio;    /* AVSR_DECODE_*: decode an audio stream */
} avsr_decode_opts;

typedef struct avsr_media {
    uint8_t *video;    /* [frames, roi_h, roi_w] gray, malloc'd (NULL if not asked) */
    int64_t frames;
    int16_t *audio;    /* [samples] 16 kHz mono, malloc'd (NULL if not asked) */
    int64_t samples;
    double src_fps;    /* the video stream's average frame rate (0 if unknown) */
    int src_rate;      /* the audio stream's sample rate */
    int src_channels;
} avsr_media;

/* Decode path as asked by o into m (zeroed first). Returns 0 or -1 with err
 * set ("<path>: <what>"). Thread-safe: decoding threads each call this. */
int avsr_decode_file(const char *path, const avsr_decode_opts *o, avsr_media *m,
                     avsr_error *err);
void avsr_media_free(avsr_media *m);

#ifdef __cplusplus
}
#endif

#endif
