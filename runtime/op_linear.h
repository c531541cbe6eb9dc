/* op_linear: the matrix-product ops: fully connected layers (with an
 * optional fused activation), batched matrix products (attention scores and
 * context) and embedding look-up. Products run on oneDNN matmul primitives
 * from the context's primitive cache; backward passes accumulate (+=) into
 * existing gradient buffers through oneDNN's sum post-op, with no
 * temporaries.
 *
 * Shapes (all tensors f32 unless noted, contiguous, row-major):
 *
 *   avsr_op_linear(x [..., in], w [out, in], b [out] or NULL) -> [..., out]
 *       torch.nn.functional.linear(x, w, b). Leading dimensions are
 *       flattened into rows (B*T rows of one product).
 *   avsr_op_linear_act(x, w, b, act) -> [..., out]
 *       act(linear(x, w, b)), act one of avsr_act_kind; gelu is the exact
 *       (erf) form of torch.nn.functional.gelu.
 *   avsr_op_matmul(a, b, trans_a, trans_b, alpha) -> [..., M, N]
 *       alpha * op(a) @ op(b) with op(t) = t.transpose(-1, -2) when its flag
 *       is set: a is [..., M, K] ([..., K, M] with trans_a), b is
 *       [..., K, N] ([..., N, K] with trans_b). Leading (batch) dimensions
 *       of a and b are equal, or b has exactly 2 dimensions and is
 *       broadcast over a's batch. torch.matmul(op(a), op(b)) * alpha.
 *   avsr_op_embedding(weight [V, D], idx [...] (I64 or I32), padding_idx)
 *       -> [..., D]. torch.nn.functional.embedding(idx, weight,
 *       padding_idx); padding_idx = -1 means none. The padding row receives
 *       no gradient. An index outside [0, V) is an error. */
#ifndef AVSR_OP_LINEAR_H
#define AVSR_OP_LINEAR_H

#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"

typedef enum avsr_act_kind {
    AVSR_ACT_NONE = 0,
    AVSR_ACT_RELU = 1,
    AVSR_ACT_SILU = 2,
    AVSR_ACT_GELU = 3, /* exact: 0.5 x (1 + erf(x / sqrt 2)) */
} avsr_act_kind;

avsr_tensor *avsr_op_linear(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w, avsr_tensor *b);
avsr_tensor *avsr_op_linear_act(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w, avsr_tensor *b,
                                avsr_act_kind act);
avsr_tensor *avsr_op_matmul(avsr_ctx *ctx, avsr_tensor *a, avsr_tensor *b, bool trans_a,
                            bool trans_b, float alpha);
avsr_tensor *avsr_op_embedding(avsr_ctx *ctx, avsr_tensor *weight, avsr_tensor *idx,
                               int64_t padding_idx);

/* Name of an activation ("none", "relu", "silu", "gelu"). */
const char *avsr_act_name(avsr_act_kind act);

#endif
