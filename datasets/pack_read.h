/* pack_read: reading packed dataset files (docs/formats/pack.md).
 *
 * avsr_pack_open() opens one or more files ("shards") read-only without
 * file locking and validates each completely before anything is handed
 * out: format, version, kind, rates, ROI, the dtype and shape of every
 * dataset, and every /samples row (NUL-terminated non-empty id, offsets and
 * lengths inside their dataset's extent, 640 samples per frame for AV
 * files). A corrupt, truncated or foreign file is an error message naming
 * the file (and the row), never a crash. Shards must agree on kind and ROI;
 * their clips are numbered one after the other, 0 .. count-1.
 *
 * Clip data are read into caller buffers whose sizes come from
 * avsr_pack_clip_info(). The read functions may be called from several
 * threads at once (calls into HDF5 are serialised by a lock). */
#ifndef AVSR_PACK_READ_H
#define AVSR_PACK_READ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "pack_format.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_pack avsr_pack;

/* Metadata of one clip; the strings belong to the pack. */
typedef struct avsr_pack_clip {
    const char *id;
    const char *speaker;  /* "" if none */
    int64_t frames;       /* video frames at 25 fps (0 in noise files) */
    int64_t samples;      /* audio samples at 16 kHz (frames * 640 in AV files) */
    int64_t text_bytes;   /* UTF-8 bytes of the transcript, without a NUL */
    int shard;            /* which of the opened files holds it */
} avsr_pack_clip;

/* Open n >= 1 files. NULL on failure with err set ("<file>: <what>"). */
avsr_pack *avsr_pack_open(const char *const *paths, int n, avsr_error *err);
void avsr_pack_close(avsr_pack *p);

int64_t avsr_pack_count(const avsr_pack *p);
int avsr_pack_kind(const avsr_pack *p);      /* enum avsr_pack_kind */
int avsr_pack_roi_height(const avsr_pack *p); /* 0 for noise files */
int avsr_pack_roi_width(const avsr_pack *p);
int avsr_pack_shards(const avsr_pack *p);

/* Clip i's metadata; -1 (err set) if i is out of range. */
int avsr_pack_clip_info(const avsr_pack *p, int64_t i, avsr_pack_clip *c, avsr_error *err);

/* uint8 [frames, roi_height, roi_width] into dst. AV files only. */
int avsr_pack_read_video(avsr_pack *p, int64_t i, uint8_t *dst, avsr_error *err);
/* int16 [samples] into dst. */
int avsr_pack_read_audio(avsr_pack *p, int64_t i, int16_t *dst, avsr_error *err);
/* samples [first, first + n) of clip i into dst (noise segments). */
int avsr_pack_read_audio_range(avsr_pack *p, int64_t i, int64_t first, int64_t n,
                               int16_t *dst, avsr_error *err);
/* the transcript plus a NUL into dst; cap >= text_bytes + 1. */
int avsr_pack_read_text(avsr_pack *p, int64_t i, char *dst, size_t cap, avsr_error *err);

/* Per-file facts from the root attributes and the storage layout. */
typedef struct avsr_pack_shard_meta {
    const char *path;
    const char *created_by;
    const char *manifest_sha256;
    double video_mean, video_std;
    int compressed;       /* 1 if /audio is stored in gzip chunks */
    int64_t clips;
} avsr_pack_shard_meta;
int avsr_pack_shard_info(const avsr_pack *p, int shard, avsr_pack_shard_meta *m);

#define AVSR_PACK_HIST_BINS 10

/* Totals over all shards. */
typedef struct avsr_pack_summary {
    int64_t clips, speakers, frames, samples, text_bytes;
    double seconds;                    /* samples / 16000 */
    double min_s, mean_s, max_s;       /* clip lengths */
    double bin_s;                      /* histogram bin width in seconds */
    int64_t hist[AVSR_PACK_HIST_BINS]; /* clips with length in [k*bin_s, (k+1)*bin_s) */
} avsr_pack_summary;
int avsr_pack_summarize(const avsr_pack *p, avsr_pack_summary *s, avsr_error *err);

/* The summary as text ("avsr-pack info"). */
int avsr_pack_print_info(const avsr_pack *p, FILE *f, avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
