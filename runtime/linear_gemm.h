/* linear_gemm: the one matrix-product kernel behind the op_linear family.
 *
 * c[nb, M, N] = alpha * op(a)[nb, M, K] @ op(b)[nb, K, N] (+ bias[N]) then
 * act, or with accumulate set c += alpha * op(a) @ op(b) (oneDNN's sum
 * post-op: the existing values are read once, no temporary). op(t) is t
 * itself, or with the trans flag the transpose of a stored [K, M] (a) or
 * [N, K] (b) matrix: transposes are strided memory descriptors, never copies.
 * An operand with its bcast flag set is one matrix used for every batch.
 * All operands are contiguous f32. Runs on a cached oneDNN matmul primitive
 * (keyed by shapes, flags, alpha, bias and activation). Internal to the
 * runtime (not installed). */
#ifndef AVSR_LINEAR_GEMM_H
#define AVSR_LINEAR_GEMM_H

#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "op_linear.h"

typedef struct avsr_lin_gemm {
    int64_t nb, M, N, K;
    const float *a;
    bool ta, a_bcast;
    const float *b;
    bool tb, b_bcast;
    const float *bias;   /* [N] or NULL (not with accumulate) */
    float alpha;
    bool accumulate;
    avsr_act_kind act;   /* fused eltwise post-op (not with accumulate) */
    float *c;            /* [nb, M, N] */
} avsr_lin_gemm;

/* Returns 0, or -1 with the context's error set. */
int avsr_lin_gemm_run(avsr_ctx *ctx, const avsr_lin_gemm *g);

#endif
