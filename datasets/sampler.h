/* sampler: length-bucketed batching by frames and the per-epoch plan that
 * says which batch every rank reads at every step.
 *
 * The plan is a pure function of (config, epoch, clip lengths, target
 * lengths, world size): every rank can compute it and check its hash
 * against the coordinator's. Steps (1)-(6):
 *   1. filter: drop clips that are empty, longer than max_len, longer than
 *      max_frames (they fit in no batch) or, with the CTC filter, have more
 *      target tokens than frames; each reason is counted.
 *   2. bucket: kept lengths are split into nbuckets equal-width buckets over
 *      [min, max] of the kept lengths (linspace, integer arithmetic).
 *   3. shuffle each bucket (Philox stream (seed, epoch, bucket, SHUFFLE)).
 *   4. pack each bucket greedily in that order while the PADDED size
 *      B * Tmax stays <= max_frames (fairseq batch_by_size's rule), but
 *      never close a batch below min_clips clips; a bucket's last batch
 *      with fewer than min_clips clips joins the batch before it (also
 *      across a bucket boundary; the first batch joins the second).
 *   5. order: batches sorted by padded size (largest first) are cut into
 *      groups of world_size consecutive batches (similar sizes: one step);
 *      the group order is shuffled (stream (seed, epoch, 2^64-1, SHUFFLE)).
 *   6. deal: inside a step the batches go to ranks longest-processing-time
 *      first (largest batch to the rank with the fewest frames so far).
 *      A last incomplete group is dropped (drop_last) or filled by
 *      repeating the first batches of the epoch (flagged `repeat`).
 * Batch formation (1-4) does not depend on world_size, so the union of all
 * ranks' batches is the same set for any world size.
 * See docs/data/sampler.md. */
#ifndef AVSR_SAMPLER_H
#define AVSR_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_sampler_config {
    int64_t max_frames; /* padded batch budget B * Tmax (default 1600) */
    int nbuckets;       /* length buckets (default 50) */
    uint64_t seed;      /* default 42 */
    bool drop_last;     /* drop the last incomplete step (default false: repeat) */
    int64_t max_len;    /* drop clips longer than this; 0 = no limit (default 0) */
    bool ctc_filter;    /* drop clips with tokens > frames (default true) */
    int min_clips;      /* every batch gets at least this many clips, even over
                         * the max_frames budget (default 1); the trainer sets
                         * it to run.ranks so that a batch split over the
                         * ranks leaves none empty */
} avsr_sampler_config;

/* Fill *cfg with the defaults above. */
void avsr_sampler_config_default(avsr_sampler_config *cfg);

/* Why clips were left out of an epoch. */
typedef struct avsr_plan_counts {
    int64_t total;       /* clips in the dataset index */
    int64_t kept;        /* clips packed into batches */
    int64_t empty;       /* length <= 0 */
    int64_t too_long;    /* length > max_len */
    int64_t over_budget; /* length > max_frames (fits in no batch) */
    int64_t ctc;         /* tokens > frames (ctc_filter) */
    int64_t tail_clips;  /* clips in batches dropped by drop_last */
    int64_t tail_batches;
    int64_t repeated_batches; /* batches repeated to fill the last step */
} avsr_plan_counts;

typedef struct avsr_plan avsr_plan;

/* One rank's batch at one step. `clips` points into the plan (valid until
 * avsr_plan_free) and holds dataset indices in batch order. */
typedef struct avsr_batch_ref {
    const int64_t *clips;
    int64_t n;      /* clips in the batch */
    int64_t tmax;   /* longest clip (frames) */
    int64_t frames; /* sum of clip lengths */
    int64_t padded; /* n * tmax */
    int64_t batch;  /* batch index within the epoch (0 .. nbatches-1) */
    bool repeat;    /* a repeated batch filling the last step */
} avsr_batch_ref;

/* Build the plan of `epoch` for `world_size` ranks. frames[n] are clip
 * lengths (frames), tokens[n] target lengths (NULL: no CTC filter).
 * Returns 0, or -1 with err set (bad config, no clip left). */
int avsr_plan_build(avsr_plan **out, const avsr_sampler_config *cfg, uint64_t epoch,
                    int world_size, int64_t n, const int64_t *frames, const int64_t *tokens,
                    avsr_error *err);
void avsr_plan_free(avsr_plan *p);

/* Steps every rank runs this epoch (equal for all ranks). */
int64_t avsr_plan_steps(const avsr_plan *p);
/* Distinct batches (before dropping or repeating for the last step). */
int64_t avsr_plan_nbatches(const avsr_plan *p);
int avsr_plan_world_size(const avsr_plan *p);
uint64_t avsr_plan_epoch(const avsr_plan *p);
const avsr_plan_counts *avsr_plan_get_counts(const avsr_plan *p);

/* Rank `rank`'s batch at step `step` (resume: rebuild the plan of the
 * epoch and continue at step = cursor). Returns 0 or -1 (out of range). */
int avsr_plan_batch(const avsr_plan *p, int rank, int64_t step, avsr_batch_ref *out,
                    avsr_error *err);
/* Batch `b` (0 .. nbatches-1) regardless of rank. */
int avsr_plan_batch_at(const avsr_plan *p, int64_t b, avsr_batch_ref *out, avsr_error *err);

/* FNV-1a (64-bit) over the plan: world size, epoch, steps, and for every
 * (step, rank) the batch's clip count, then each clip's index and length,
 * as little-endian int64 words. Equal plans over equal lengths give equal
 * hashes on every rank. */
uint64_t avsr_plan_hash(const avsr_plan *p);

#ifdef __cplusplus
}
#endif

#endif
