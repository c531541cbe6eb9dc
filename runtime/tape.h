/* tape: reverse-mode automatic differentiation.
 *
 * Each op that runs in grad mode with an input that requires grad records
 * one entry: its backward function and a saved-state block (allocated in the
 * arena, so it costs nothing to free). avsr_backward() seeds d(loss) = 1 and
 * replays the entries in reverse. A backward function reads its output's
 * gradient and ADDS (+=) into the gradients of those inputs that require
 * grad; an entry whose output never received a gradient is skipped, so
 * frozen branches cost no backward work. */
#ifndef AVSR_TAPE_H
#define AVSR_TAPE_H

#include "ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*avsr_backward_fn)(avsr_ctx *ctx, void *saved);

/* Record an entry; `out` is the tensor whose gradient drives it (the entry
 * is skipped when out->grad is still NULL at backward time). Returns 0, or
 * -1 with the context's error set. */
int avsr_tape_record(avsr_ctx *ctx, avsr_backward_fn fn, avsr_tensor *out, void *saved);

/* Saved state for an op: arena memory of `bytes`, zeroed. */
void *avsr_tape_saved(avsr_ctx *ctx, size_t bytes);

/* Backpropagate from a scalar loss (numel 1). With seed != NULL the loss may
 * have any shape and seed is dL/dloss (numel floats); when the loss has no
 * gradient yet, seed becomes its gradient buffer without a copy (it is read,
 * never written, and must stay valid until the step's reset). Returns 0 or -1. */
int avsr_backward(avsr_ctx *ctx, avsr_tensor *loss, const float *seed);

/* Entries recorded since the last reset (for tests and debugging). */
int avsr_tape_size(const avsr_ctx *ctx);

/* internal: created/reset/destroyed by the context */
struct avsr_tape *avsr_tape_create(void);
void avsr_tape_reset(struct avsr_tape *t);
void avsr_tape_destroy(struct avsr_tape *t);

#ifdef __cplusplus
}
#endif

#endif
