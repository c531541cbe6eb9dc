/* op_norm: normalisation ops: batch norm, layer norm, softmax and
 * log-softmax. All take and return f32 tensors; backward accumulates (+=)
 * into the gradients of x and of the affine parameters that require grad.
 *
 * Batch norm (frontends' conv stacks, Conformer convolution module):
 *   avsr_op_batch_norm(ctx, x [B, C, *], gamma [C] | NULL, beta [C] | NULL,
 *                      running_mean [C], running_var [C], mask [B, T] | NULL,
 *                      momentum, eps)
 *   In training mode (avsr_ctx_training) x is normalised with the batch
 *   mean and biased variance over B and the trailing dims; the running
 *   statistics (f32 buffers, updated in place, no gradient) become
 *   (1 - momentum) * running + momentum * stat, with the unbiased variance.
 *   In evaluation mode the running statistics normalise and nothing changes.
 *   [F.batch_norm(x, running_mean, running_var, gamma, beta, training,
 *   momentum, eps)]. running_mean and running_var may both be NULL: then
 *   batch statistics are used in both modes (track_running_stats=False).
 *   mask (U8, BOOL or F32, [B, T] with T = x.shape[2], nonzero = valid
 *   frame) leaves padded frames out of the statistics; padded outputs are
 *   still computed with them. With a BN sync hook on the context
 *   (avsr_ctx_set_bn_sync) the per-channel sums, sums of squares and the
 *   count are all-reduced in forward, and the per-channel sums of dy and
 *   dy * x_hat in backward (SyncBatchNorm), so the result is that of the
 *   whole global batch.
 *
 * Layer norm over the last dimension (Conformer eps 1e-12, Whisper 1e-5):
 *   avsr_op_layer_norm(ctx, x [..., D], gamma [D] | NULL, beta [D] | NULL, eps)
 *   [F.layer_norm(x, (D,), gamma, beta, eps)]
 *
 * Softmax / log-softmax over the last dimension with an optional mask:
 *   avsr_op_softmax(ctx, x, mask | NULL), avsr_op_log_softmax(ctx, x, mask)
 *   mask: U8, BOOL or F32 with x's ndim, each dim equal to x's or 1
 *   (broadcast), nonzero = keep. Masked positions give exactly 0 (softmax)
 *   or -inf (log-softmax) and receive no gradient; a fully masked row gives
 *   all zeros (softmax) or all -inf (log-softmax). This is ESPnet's
 *   masked_fill(min) -> softmax -> masked_fill(0). [F.softmax(x, -1),
 *   F.log_softmax(x, -1)] */
#ifndef AVSR_OP_NORM_H
#define AVSR_OP_NORM_H

#include "ctx.h"

avsr_tensor *avsr_op_batch_norm(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *gamma,
                                avsr_tensor *beta, avsr_tensor *running_mean,
                                avsr_tensor *running_var, avsr_tensor *mask, float momentum,
                                float eps);

avsr_tensor *avsr_op_layer_norm(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *gamma,
                                avsr_tensor *beta, float eps);

avsr_tensor *avsr_op_softmax(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *mask);
avsr_tensor *avsr_op_log_softmax(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *mask);

#endif
