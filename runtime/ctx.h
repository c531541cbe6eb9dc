/* ctx: the runtime context an op runs in.
 *
 * A context owns the per-step activation arena, the autograd tape, the
 * backend handles (oneDNN engine and stream on the CPU) and a sticky error:
 * an op that fails records the first error here and returns NULL, every op
 * given a NULL input returns NULL at once, so model code can chain ops and
 * check once (avsr_ctx_failed) at the end of a forward pass.
 *
 * One step of training is: ops in grad mode (each records its backward on
 * the tape) -> avsr_backward(ctx, loss) -> optimizer -> avsr_ctx_reset(ctx),
 * which frees every activation and clears the tape. */
#ifndef AVSR_CTX_H
#define AVSR_CTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_ctx avsr_ctx;

typedef struct avsr_ctx_opts {
    int threads;               /* OpenMP threads for kernels; 0 = leave as is */
    size_t arena_bytes;        /* initial arena size; 0 = grow on demand */
    avsr_device device;        /* AVSR_DEV_CPU today */
} avsr_ctx_opts;

avsr_ctx *avsr_ctx_create(const avsr_ctx_opts *opts, avsr_error *err);
void avsr_ctx_destroy(avsr_ctx *ctx);

/* Sticky error. */
bool avsr_ctx_failed(const avsr_ctx *ctx);
const char *avsr_ctx_errmsg(const avsr_ctx *ctx);
avsr_error *avsr_ctx_error(avsr_ctx *ctx);   /* the record ops write into */
void avsr_ctx_clear_error(avsr_ctx *ctx);
/* Copy the context's error into err (with a prefix) and return -1, or return
 * 0 if there is none: the bridge from op code to status-returning code. */
int avsr_ctx_take_error(avsr_ctx *ctx, avsr_error *err);
/* Record a failure in the context (first one wins) and return NULL: for
 * model code that composes ops and finds a bad argument. */
void *avsr_ctx_fail(avsr_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Grad mode: when off (evaluation), ops record nothing and outputs never
 * require grad. Returns the previous setting. */
bool avsr_ctx_set_grad(avsr_ctx *ctx, bool enabled);
bool avsr_ctx_grad_enabled(const avsr_ctx *ctx);

/* Training mode: dropout active, BatchNorm uses and updates batch statistics. */
bool avsr_ctx_set_training(avsr_ctx *ctx, bool training);
bool avsr_ctx_training(const avsr_ctx *ctx);

/* Random streams for dropout are keyed by (seed, epoch, sample id, purpose),
 * never by rank: the trainer tells the context which samples form the batch
 * (row b of a batch-major tensor is sample sample_ids[b]). The array is
 * copied. Without keys, row b uses sample id b. */
int avsr_ctx_set_batch_keys(avsr_ctx *ctx, uint64_t seed, uint64_t epoch, int batch,
                            const uint64_t *sample_ids);

/* A key for random choices that are shared by every row of a batch
 * (ESPnet applies one dropout mask to the relative positional embedding of
 * the whole batch): avsr_op_dropout_shared draws them from the stream
 * (seed, epoch, AVSR_CTX_SHARED_KEY | id, purpose). The trainer sets id to
 * the plan's batch index, which all ranks' shares of a batch have in
 * common, so the choice does not depend on how the batch is split.
 * Default 0. */
#define AVSR_CTX_SHARED_KEY (1ULL << 63)
void avsr_ctx_set_batch_id(avsr_ctx *ctx, uint64_t id);
uint64_t avsr_ctx_batch_id(const avsr_ctx *ctx);

/* The stream keys of row b of the current batch (what a random choice made
 * for that sample must be keyed by). */
uint64_t avsr_ctx_sample_id(const avsr_ctx *ctx, int b);
uint64_t avsr_ctx_seed(const avsr_ctx *ctx);
uint64_t avsr_ctx_epoch(const avsr_ctx *ctx);

/* BatchNorm synchronisation across ranks: fn sums n doubles in place over
 * all ranks (an all-reduce). NULL = statistics of this rank only. */
typedef int (*avsr_allreduce_fn)(void *user, double *buf, int n, avsr_error *err);
void avsr_ctx_set_bn_sync(avsr_ctx *ctx, avsr_allreduce_fn fn, void *user);

/* Floating-point operations of the matrix products and convolutions run
 * through this context so far (forward and backward; 2 per multiply-add),
 * never reset: the trainer reports achieved GFLOP/s per step from it. */
void avsr_ctx_add_flops(avsr_ctx *ctx, double flops);
double avsr_ctx_flops(const avsr_ctx *ctx);

/* End of step: free all activations, clear the tape. */
void avsr_ctx_reset(avsr_ctx *ctx);

/* Arena memory for the current step (64-byte aligned). */
void *avsr_ctx_alloc(avsr_ctx *ctx, size_t bytes);
size_t avsr_ctx_arena_peak(const avsr_ctx *ctx);
size_t avsr_ctx_arena_used(const avsr_ctx *ctx);

/* Activation tensors in the arena: uninitialised or zeroed data. */
avsr_tensor *avsr_tensor_new(avsr_ctx *ctx, avsr_dtype dtype, int ndim, const int64_t *shape);
avsr_tensor *avsr_tensor_zeros(avsr_ctx *ctx, avsr_dtype dtype, int ndim, const int64_t *shape);
/* A descriptor over caller memory (not copied, not freed). */
avsr_tensor *avsr_tensor_wrap(avsr_ctx *ctx, avsr_dtype dtype, int ndim, const int64_t *shape,
                              void *data);
/* The gradient buffer of t, allocated (zeroed) on first use: in the arena for
 * activations, on the heap for tensors made by avsr_tensor_create. */
float *avsr_tensor_grad(avsr_ctx *ctx, avsr_tensor *t);
/* The buffer a backward kernel puts t's gradient into. When t has no
 * gradient yet (and is an arena tensor), a new UNINITIALISED buffer that the
 * kernel must write (= ) with *accumulate = false, which saves zeroing it;
 * otherwise the existing (or zeroed heap) gradient, *accumulate = true. */
float *avsr_tensor_grad_out(avsr_ctx *ctx, avsr_tensor *t, bool *accumulate);

int avsr_ctx_threads(const avsr_ctx *ctx);

#ifdef __cplusplus
}
#endif

#endif
