/* op_align: the ops of audio-video alignment (Align-AV-HuBERT's AV-shift
 * head, models/av_shift.h): row-wise L2 normalisation, the symmetric
 * InfoNCE loss on the shifted similarity sub-matrix, and a per-sample
 * circular shift along time.
 *
 *   avsr_op_l2_normalize(x [..., D], eps) -> [..., D]
 *       y = x / max(||x||_2, eps) per row (torch.nn.functional.normalize(x,
 *       dim=-1, eps=eps)). eps = 0 gives x / x.norm(dim=-1, keepdim=True)
 *       (a zero row then gives NaN, as in PyTorch). Saved for backward: y
 *       and the per-row divisor.
 *
 *   avsr_op_shift_infonce(A [B, T, d], V [B, T, d], scale (1 element),
 *                         shifts[B], lengths[B] | NULL) -> [1]
 *       For sample b with length L (lengths[b], or T), shift s = shifts[b]
 *       (|s| < L), n = L - |s|, a0 = max(-s, 0), v0 = max(s, 0):
 *           M[i][j] = scale * <A[b, a0 + i], V[b, v0 + j]>,  i, j < n
 *       (the block of S = scale * A V^T aligned with the shift: audio
 *       frame t pairs with video frame t + s), and
 *           loss_b = (CE(M, arange(n)) + CE(M^T, arange(n))) / 2
 *       with mean-reduced cross entropy. The output is sum_b loss_b
 *       (Align-AV-HuBERT's criterion sums the per-utterance losses).
 *       PyTorch: logits = scale * A[b] @ V[b].T, cropped as above, then
 *       (F.cross_entropy(M, arange) + F.cross_entropy(M.t(), arange)) / 2.
 *       Gradients flow to A, V and scale. Saved for backward: the n x n dot
 *       products and the row / column log-sum-exps of every sample.
 *
 *   avsr_op_roll(x [B, ...], dim, shifts[B]) -> same shape
 *       Sample b is rolled circularly by shifts[b] along dim (1 <= dim <
 *       ndim, negative dims count from the end): y[(i + s) mod n] = x[i],
 *       torch.roll(x[b], s, dim - 1) per sample. Backward rolls the
 *       gradient back.
 *
 * Threading: OpenMP over rows (normalise), over sample rows of M (InfoNCE)
 * and over outer slices (roll). */
#ifndef AVSR_OP_ALIGN_H
#define AVSR_OP_ALIGN_H

#include <stdint.h>

#include "ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

avsr_tensor *avsr_op_l2_normalize(avsr_ctx *ctx, avsr_tensor *x, float eps);
avsr_tensor *avsr_op_shift_infonce(avsr_ctx *ctx, avsr_tensor *A, avsr_tensor *V,
                                   avsr_tensor *scale, const int *shifts,
                                   const int64_t *lengths);
avsr_tensor *avsr_op_roll(avsr_ctx *ctx, avsr_tensor *x, int dim, const int64_t *shifts);

#ifdef __cplusplus
}
#endif

#endif
