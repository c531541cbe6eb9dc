/* op_basic: the ops every other op and test leans on: views (reshape),
 * full reductions (sum, mean) and a weighted sum against a constant (the
 * scalar that gradient checks differentiate). */
#ifndef AVSR_OP_BASIC_H
#define AVSR_OP_BASIC_H

#include "ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Same data, new shape (numel must match; one dimension may be -1). The
 * result shares data and gradient with x. */
avsr_tensor *avsr_op_reshape(avsr_ctx *ctx, avsr_tensor *x, int ndim, const int64_t *shape);

/* Sum / mean of all elements -> shape [1]. Accumulates in double. */
avsr_tensor *avsr_op_sum_all(avsr_ctx *ctx, avsr_tensor *x);
avsr_tensor *avsr_op_mean_all(avsr_ctx *ctx, avsr_tensor *x);

/* sum_i x[i] * w[i] for a constant w (no gradient to w) -> shape [1]. */
avsr_tensor *avsr_op_dot_const(avsr_ctx *ctx, avsr_tensor *x, const float *w);

#ifdef __cplusplus
}
#endif

#endif
