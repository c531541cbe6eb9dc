/* media_write: writing the synthetic corpus' media with FFmpeg 5.1's
 * libraries, and 16-bit PCM WAV files.
 *
 * - avsr_video_write(): grey frames -> one video stream at a constant frame
 *   rate, either lossless FFV1 (gray8) in Matroska or H.264 (libx264 when
 *   the FFmpeg build has it, else MPEG-4 part 2; yuv420p) in MP4. The
 *   encoder is drained at the end, so every frame is in the file; bit-exact
 *   flags keep output identical across runs.
 * - avsr_wav_write(): RIFF/WAVE, PCM s16le, mono.
 * - avsr_resample_s16(): mono int16 resampling with libswresample (flushed,
 *   so no tail samples are lost).
 * Files are written to "<path>.tmp.<pid>" and renamed into place when
 * complete; on failure the temporary is removed. */
#ifndef AVSR_MEDIA_WRITE_H
#define AVSR_MEDIA_WRITE_H

#include <stdint.h>

#include "error.h"

typedef enum avsr_video_format {
    AVSR_VIDEO_MKV_FFV1 = 0, /* .mkv, FFV1 gray8: lossless */
    AVSR_VIDEO_MP4 = 1       /* .mp4, H.264 (libx264) or MPEG-4 part 2 */
} avsr_video_format;

/* File extension (without dot) for a format: "mkv" or "mp4". */
const char *avsr_video_format_ext(avsr_video_format fmt);

/* Name of the encoder that format would use in this FFmpeg build ("ffv1",
 * "libx264", "mpeg4"), or NULL if none is available. */
const char *avsr_video_encoder_name(avsr_video_format fmt);

/* Write n_frames grey frames [n_frames, h, w] (uint8, row-major) at fps
 * frames per second. w and h must be even for MP4. */
int avsr_video_write(const char *path, avsr_video_format fmt, const uint8_t *frames,
                     int n_frames, int w, int h, int fps, avsr_error *err);

/* Write n samples of mono 16-bit PCM at `rate` Hz. */
int avsr_wav_write(const char *path, const int16_t *pcm, int64_t n, int rate, avsr_error *err);

/* Resample mono int16 audio from in_rate to out_rate. *out is malloc'd
 * (caller frees) and holds *n_out samples. */
int avsr_resample_s16(const int16_t *in, int64_t n_in, int in_rate, int out_rate,
                      int16_t **out, int64_t *n_out, avsr_error *err);

#endif
