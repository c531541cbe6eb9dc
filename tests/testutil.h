/* testutil: what op tests share.
 *
 * - tu_close(): compare arrays with |got - want| <= atol + rtol * |want| per
 *   element (the torch.testing.assert_close rule), reporting the worst one.
 * - tu_gradcheck(): finite-difference check of an op's backward. The scalar
 *   differentiated is L = sum(out * R) for a fixed random R, so every output
 *   element's gradient matters; central differences on a sample of input
 *   elements are compared with the tape's gradient.
 * - Golden fixtures: tests/golden/ops/<file>.safetensors written by
 *   tests/golden/gen_ops.py (PyTorch); tu_golden_* load them as heap tensors.
 */
#ifndef AVSR_TESTUTIL_H
#define AVSR_TESTUTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "safetensors.h"
#include "tensor.h"

/* A context for tests (2 threads unless OMP_NUM_THREADS says otherwise);
 * bails out on failure. */
avsr_ctx *tu_ctx(void);

/* Deterministic uniform values in [lo, hi) from a seed. */
void tu_fill_uniform(float *x, int64_t n, uint64_t seed, float lo, float hi);

/* Heap tensor with uniform values; with_grad allocates .grad. */
avsr_tensor *tu_rand(int ndim, const int64_t *shape, uint64_t seed, float lo, float hi,
                     bool with_grad);

/* Max-error comparison; prints a TAP line named `what`. */
bool tu_close(const char *what, const float *got, const float *want, int64_t n, double atol,
              double rtol);

/* An op under test: build the output from persistent inputs. */
typedef avsr_tensor *(*tu_op_fn)(avsr_ctx *ctx, avsr_tensor **in, void *user);

typedef struct tu_gc_opts {
    double eps;        /* finite-difference step (default 1e-2) */
    double atol, rtol; /* tolerance on each gradient element (default 2e-2, 2e-2) */
    int max_elems;     /* elements checked per input (default 48) */
} tu_gc_opts;

/* Finite-difference gradient check of fn with respect to every input that
 * has REQUIRES_GRAD. Prints one TAP line per input. */
bool tu_gradcheck(const char *name, avsr_ctx *ctx, tu_op_fn fn, void *user, int nin,
                  avsr_tensor **in, const tu_gc_opts *opts);

/* Golden fixtures. */
avsr_st *tu_golden_open(const char *file); /* bails out if missing */
/* Copy a tensor of the fixture into a heap f32 tensor (any stored dtype). */
avsr_tensor *tu_golden_tensor(avsr_st *st, const char *name, bool with_grad);
/* Metadata value as string / integer / double (bails out if missing). */
const char *tu_golden_meta(avsr_st *st, const char *key);

/* Path of a file under $srcdir (for fixtures in VPATH builds). */
const char *tu_srcpath(const char *rel);

#endif
