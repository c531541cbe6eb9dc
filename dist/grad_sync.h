/* grad_sync: data-parallel gradient all-reduce over a parameter store, and
 * the start-of-run broadcast of parameters and buffers.
 *
 * Bucket rule. The flat gradient buffer of an avsr_params store is split
 * into buckets of at most bucket_bytes (default 25 MiB, PyTorch DDP's
 * bucket_cap_mb=25), built once, in one fixed order that depends only on the
 * store's layout and on which parameters require grad, so every rank issues
 * the same all-reduces in the same order:
 *   1. Parameters in store order (registration order, which is also flat
 *      buffer order); runs of consecutive parameters that require grad are
 *      merged into one range (the alignment padding between them is zero in
 *      every rank's gradient, so reducing it is harmless); frozen
 *      parameters end a run and are never communicated.
 *   2. The ranges are cut into buckets of at most bucket_bytes / 4 floats,
 *      filled in order: a bucket may hold the end of one range and the
 *      start of the next. A bucket that is one contiguous range is reduced
 *      in place; one made of several pieces is packed into a staging buffer,
 *      reduced and unpacked (so many small trainable parameters between
 *      frozen ones still cost one all-reduce per bucket, not one each).
 * avsr_grad_sync_create checks (collectively) that every rank built the same
 * plan, by comparing a hash of it with rank 0's.
 *
 * Scaling. The all-reduce is a plain sum. The trainer normalises each
 * rank's loss by the GLOBAL number of frames/tokens in the step (all ranks'
 * counts summed, e.g. with avsr_comm_allreduce_sum_f64) before backward, so
 * the sum of the ranks' gradients is the gradient of the global mean and no
 * division by the world size is needed; `scale` (applied after the sum,
 * only to the synced elements) is there for gradient accumulation or other
 * factors, 1 otherwise.
 *
 * CPU only today: the buffers are the store's host buffers and the
 * communicator must be a CPU one (MPI). The NCCL path (docs/dist/comm.md)
 * will run the same plan on the device copy of the gradient. */
#ifndef AVSR_DIST_GRAD_SYNC_H
#define AVSR_DIST_GRAD_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "error.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AVSR_GRAD_SYNC_DEFAULT_BUCKET_BYTES ((size_t)25 << 20) /* 25 MiB */

typedef struct avsr_grad_sync avsr_grad_sync;

typedef struct avsr_grad_sync_opts {
    size_t bucket_bytes; /* 0 = AVSR_GRAD_SYNC_DEFAULT_BUCKET_BYTES; at least 4 */
} avsr_grad_sync_opts;

typedef struct avsr_grad_sync_stats {
    double comm_seconds;  /* inside the all-reduces */
    double total_seconds; /* the whole call (packing, scaling included) */
    int64_t floats;       /* floats reduced (per rank) */
    int buckets;          /* all-reduce calls */
} avsr_grad_sync_stats;

/* Build the bucket plan of a finalized store (collective: checks that all
 * ranks agree on it). The store must outlive the object; change of
 * requires_grad afterwards needs a new plan. opts may be NULL. */
avsr_grad_sync *avsr_grad_sync_create(avsr_params *p, avsr_comm *c,
                                      const avsr_grad_sync_opts *opts, avsr_error *err);
void avsr_grad_sync_destroy(avsr_grad_sync *gs);

/* All-reduce (sum) the gradients of every parameter that requires grad,
 * bucket by bucket in plan order, then multiply them by scale (skipped when
 * scale == 1). stats may be NULL. Collective. */
int avsr_grad_sync_run(avsr_grad_sync *gs, float scale, avsr_grad_sync_stats *stats,
                       avsr_error *err);

/* The plan: number of buckets, and bucket i's pieces (offsets and lengths
 * in floats into the flat buffer). */
int avsr_grad_sync_nbuckets(const avsr_grad_sync *gs);
int avsr_grad_sync_bucket_pieces(const avsr_grad_sync *gs, int i);
void avsr_grad_sync_piece(const avsr_grad_sync *gs, int bucket, int piece, int64_t *offset,
                          int64_t *count);
int64_t avsr_grad_sync_floats(const avsr_grad_sync *gs); /* floats per run */
uint64_t avsr_grad_sync_plan_hash(const avsr_grad_sync *gs);

/* Copy rank root's parameters (the whole flat data buffer, trainable and
 * frozen) and every buffer (BatchNorm statistics, counters) to all ranks,
 * so that every rank starts identical. Checks first that all ranks have the
 * same layout (names, shapes, dtypes): a mismatch is an error naming the
 * two layout hashes. Collective. */
int avsr_dist_bcast_params(avsr_comm *c, avsr_params *p, int root, avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
