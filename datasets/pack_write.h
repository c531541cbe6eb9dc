/* pack_write: writing a packed dataset file (docs/formats/pack.md).
 *
 * Clips are added in order; their video, audio and text go to unlinked
 * spool files beside the output (nothing is visible under the output name
 * meanwhile). avsr_pack_writer_commit() then creates the HDF5 file under a
 * temporary name (<path>.tmp.<pid>), writes the datasets (contiguous, or
 * gzip-1 chunks of 32 frames with `compress`), the /samples table and the
 * root attributes, closes and fsyncs it, renames it over <path> and fsyncs
 * the directory: readers see either no file or the complete one.
 * A writer is used by one thread at a time. */
#ifndef AVSR_PACK_WRITE_H
#define AVSR_PACK_WRITE_H

#include <stdint.h>

#include "pack_format.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_pack_write_opts {
    int kind;                 /* enum avsr_pack_kind */
    int roi_h, roi_w;         /* frame size (AV files) */
    int compress;             /* 0: contiguous; 1: gzip level 1, 32-frame chunks */
    const char *manifest_sha256; /* hex digest of the source manifest ("" if none) */
    const char *created_by;   /* e.g. "avsr-pack 0.1.0" */
} avsr_pack_write_opts;

typedef struct avsr_pack_writer avsr_pack_writer;

/* Start a file that will appear at path on commit. NULL on failure. */
avsr_pack_writer *avsr_pack_writer_create(const char *path, const avsr_pack_write_opts *o,
                                          avsr_error *err);

/* Append one clip. AV files: video [frames, roi_h, roi_w], frames >= 1, and
 * samples == frames * 640. Noise files: video NULL, frames 0, samples >= 1.
 * id: 1..63 bytes, speaker: 0..31 bytes, text: text_bytes UTF-8 bytes (not
 * checked here). */
int avsr_pack_writer_add(avsr_pack_writer *w, const char *id, const char *speaker,
                         const uint8_t *video, int64_t frames, const int16_t *audio,
                         int64_t samples, const char *text, int64_t text_bytes,
                         avsr_error *err);

/* Clips added so far. */
int64_t avsr_pack_writer_count(const avsr_pack_writer *w);

/* The temporary name the HDF5 file has during commit (for a signal handler
 * that must remove it). */
const char *avsr_pack_writer_tmp_path(const avsr_pack_writer *w);

/* Write, sync and rename into place; frees w in every case. 0 or -1. */
int avsr_pack_writer_commit(avsr_pack_writer *w, avsr_error *err);

/* Drop everything (no file appears); frees w. NULL is allowed. */
void avsr_pack_writer_abort(avsr_pack_writer *w);

#ifdef __cplusplus
}
#endif

#endif
