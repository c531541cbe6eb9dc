/* op_act: activations and dropout.
 *
 * Element-wise ops take any f32 tensor and return one of the same shape
 * (PyTorch equivalents in brackets). Backward accumulates dL/dx (+=).
 *
 *   relu(x)      max(x, 0)                     [F.relu]; gradient 0 at x = 0
 *   silu(x)      x * sigmoid(x), Swish         [F.silu]
 *   gelu(x)      0.5 x (1 + erf(x / sqrt 2))   [F.gelu, approximate='none']
 *   sigmoid(x)   1 / (1 + exp(-x))             [torch.sigmoid]
 *   tanh(x)                                    [torch.tanh]
 *   prelu(x, a)  x > 0 ? x : a[c] x, x [B, C, *] (or any shape when a is
 *                [1]), a [C] or [1]: slope per channel (dim 1); gradient to
 *                x and a                        [F.prelu]
 *   glu(x, dim)  split x in halves a, b along dim (size must be even;
 *                negative dim counts from the end): a * sigmoid(b), the
 *                result has half the size along dim   [F.glu]
 *
 * Dropout: avsr_op_dropout(ctx, x [B, ...], p, purpose). When the context
 * is not in training mode or p == 0 it returns x itself (no copy, no tape
 * entry). Otherwise element i of row b is kept when the i-th uniform of the
 * Philox stream (seed, epoch, sample id of row b, AVSR_RNG_LAYER_BASE +
 * purpose) is >= p, and kept values are scaled by 1 / (1 - p) (p == 1 gives
 * zeros). The mask therefore depends on the sample and the layer (purpose),
 * never on the rank or the row's position in the batch. The mask is kept as
 * bytes for backward. [F.dropout, with a different random stream]
 * avsr_op_dropout_shared: the same, but every row b uses the key of the
 * whole batch (avsr_ctx_set_batch_id) instead of its sample's: for tensors
 * shared by the batch such as a positional embedding [1, ...]. */
#ifndef AVSR_OP_ACT_H
#define AVSR_OP_ACT_H

#include <stdint.h>

#include "ctx.h"

avsr_tensor *avsr_op_relu(avsr_ctx *ctx, avsr_tensor *x);
avsr_tensor *avsr_op_silu(avsr_ctx *ctx, avsr_tensor *x);
avsr_tensor *avsr_op_gelu(avsr_ctx *ctx, avsr_tensor *x);
avsr_tensor *avsr_op_sigmoid(avsr_ctx *ctx, avsr_tensor *x);
avsr_tensor *avsr_op_tanh(avsr_ctx *ctx, avsr_tensor *x);
avsr_tensor *avsr_op_prelu(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *a);
avsr_tensor *avsr_op_glu(avsr_ctx *ctx, avsr_tensor *x, int dim);

avsr_tensor *avsr_op_dropout(avsr_ctx *ctx, avsr_tensor *x, float p, uint32_t purpose);
avsr_tensor *avsr_op_dropout_shared(avsr_ctx *ctx, avsr_tensor *x, float p, uint32_t purpose);

#endif
