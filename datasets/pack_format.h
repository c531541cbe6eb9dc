/* pack_format: constants of the packed dataset format (HDF5) and the
 * per-clip row of its /samples table. docs/formats/pack.md is the byte-level
 * specification; this header and that page must agree.
 *
 * One file holds one split (or one shard of it). Root attributes name the
 * format and its rates; /video (uint8 [frames, H, W], absent for noise
 * corpora), /audio (int16 [samples], 16 kHz mono) and /text (UTF-8 bytes)
 * hold every clip concatenated; /samples has one avsr_pack_row per clip with
 * offsets and lengths into the three. */
#ifndef AVSR_PACK_FORMAT_H
#define AVSR_PACK_FORMAT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AVSR_PACK_FORMAT "avsr-pack" /* root attribute "format" */
#define AVSR_PACK_VERSION 1          /* root attribute "version" */
#define AVSR_PACK_SAMPLE_RATE 16000  /* Hz, root attribute "sample_rate" */
#define AVSR_PACK_FPS 25             /* video frames per second, "fps" */
#define AVSR_PACK_SAMPLES_PER_FRAME 640 /* AVSR_PACK_SAMPLE_RATE / AVSR_PACK_FPS */
#define AVSR_PACK_VIDEO_MEAN 0.421   /* "video_mean": pixel/255 normalisation */
#define AVSR_PACK_VIDEO_STD 0.165    /* "video_std" */
#define AVSR_PACK_DEFAULT_ROI 96     /* default ROI height and width */
#define AVSR_PACK_MAX_ROI 1024       /* readers reject larger ROIs */
#define AVSR_PACK_ID_LEN 64          /* bytes of the id field (<= 63 + NUL) */
#define AVSR_PACK_SPEAKER_LEN 32     /* bytes of the speaker field (<= 31 + NUL) */
#define AVSR_PACK_CHUNK_FRAMES 32    /* --compress: frames per chunk */

/* root attribute "kind" */
enum avsr_pack_kind {
    AVSR_PACK_KIND_AV = 0,    /* "av": video, audio and text per clip */
    AVSR_PACK_KIND_NOISE = 1  /* "noise": audio only (no /video) */
};

/* One row of /samples (the HDF5 compound type has these member names; the
 * in-file member order and offsets are those of this struct). Offsets are
 * element indices: frames into /video, samples into /audio, bytes into
 * /text. id and speaker are NUL-padded; the last byte is always NUL. */
typedef struct avsr_pack_row {
    char id[AVSR_PACK_ID_LEN];
    char speaker[AVSR_PACK_SPEAKER_LEN];
    int64_t video_offset;
    int64_t video_frames;
    int64_t audio_offset;
    int64_t audio_samples;
    int64_t text_offset;
    int64_t text_bytes;
} avsr_pack_row;

/* "av" / "noise"; NULL for an unknown kind */
const char *avsr_pack_kind_name(int kind);

#ifdef __cplusplus
}
#endif

#endif
