/* op_loss: the training losses of the AVSR models: L1 (fusion pretraining on
 * mel and encoder features), cross-entropy with label smoothing (attention
 * decoder) and CTC (encoder head).
 *
 * Every loss takes f32 predictions and returns a new tensor: a scalar of
 * shape [1] for AVSR_LOSS_SUM / AVSR_LOSS_MEAN, or one value per element /
 * row / utterance for AVSR_LOSS_NONE. In grad mode the backward adds (+=)
 * into the gradients of the inputs that require grad. The log-softmax of
 * cross-entropy and CTC is fused into the op: pass raw logits.
 *
 * PyTorch equivalents (x, logits f32; see docs/ops/loss.md):
 *   avsr_op_l1_loss        F.l1_loss(x, target, reduction=...) (mask: only
 *                          the counted elements, mean over their count)
 *   avsr_op_cross_entropy  F.cross_entropy(logits, targets, ignore_index=,
 *                          label_smoothing=) (AVSR_LS_TORCH), or ESPnet's
 *                          LabelSmoothingLoss(V, ignore_index, eps,
 *                          normalize_length) (AVSR_LS_ESPNET)
 *   avsr_op_ctc_loss       F.ctc_loss(logits.log_softmax(-1).transpose(0, 1),
 *                          targets, input_lengths, target_lengths, blank=,
 *                          reduction=, zero_infinity=)
 */
#ifndef AVSR_OP_LOSS_H
#define AVSR_OP_LOSS_H

#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"

typedef enum avsr_loss_reduction {
    AVSR_LOSS_NONE = 0, /* one value per element / row / utterance */
    AVSR_LOSS_SUM = 1,  /* plain sum -> [1] */
    AVSR_LOSS_MEAN = 2  /* mean as each op defines it -> [1] */
} avsr_loss_reduction;

/* Label-smoothing flavours of avsr_op_cross_entropy. */
typedef enum avsr_ls_mode {
    /* torch: target distribution (1 - eps) * onehot + eps / V; the loss is
     * the cross-entropy against it (F.cross_entropy(label_smoothing=eps)). */
    AVSR_LS_TORCH = 0,
    /* ESPnet LabelSmoothingLoss: KL divergence from the distribution with
     * 1 - eps on the target and eps / (V - 1) on every other class. */
    AVSR_LS_ESPNET = 1
} avsr_ls_mode;

/* L1 loss |x - target|. x and target: f32 of the same shape. mask: NULL or
 * a tensor broadcastable to x (numpy rules: trailing dimensions equal or 1;
 * dtype F32, U8, BOOL, I32 or I64); an element counts where the mask is
 * nonzero. NONE: same shape as x, uncounted elements 0. SUM: sum over the
 * counted elements. MEAN: that sum divided by the number of counted elements
 * (NaN when none counts, as torch's mean of an empty selection). Gradient
 * to x and to target (if it requires grad); sign(0) = 0 as in torch. */
avsr_tensor *avsr_op_l1_loss(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *target,
                             avsr_tensor *mask, avsr_loss_reduction reduction);

/* Cross-entropy with fused log-softmax.
 *   logits [N, V] f32; targets [N] I64 or I32 (class ids).
 *   Rows whose target equals ignore_index contribute 0 loss and 0 gradient.
 *   Any other target outside [0, V) is an error naming the row and value.
 *   label_smoothing eps in [0, 1); ls_mode picks the flavour (above).
 *   NONE -> [N] per-row losses; SUM -> sum over rows;
 *   MEAN -> sum divided by denom if denom > 0, otherwise by the number of
 *   non-ignored rows (torch's mean; NaN if every row is ignored).
 * torch mode + MEAN + denom 0 = F.cross_entropy(reduction='mean').
 * ESPnet LabelSmoothingLoss(normalize_length=False) on x [B, L, V] =
 *   ESPNET mode + MEAN + denom = B (logits viewed as [B*L, V]);
 *   normalize_length=True = ESPNET mode + MEAN + denom 0.
 * Gradient to logits: scale * (softmax - q) with q the target distribution. */
avsr_tensor *avsr_op_cross_entropy(avsr_ctx *ctx, avsr_tensor *logits, avsr_tensor *targets,
                                   int64_t ignore_index, float label_smoothing,
                                   avsr_ls_mode ls_mode, avsr_loss_reduction reduction,
                                   int64_t denom);

/* CTC loss with fused log-softmax (log-space forward-backward).
 *   logits [B, T, C] f32 (batch-major, raw scores).
 *   input_lengths[B]: frames used per utterance, 0 <= input_lengths[b] <= T;
 *     frames beyond get zero gradient.
 *   targets: the label sequences CONCATENATED (torch's 1-D form): utterance
 *     b's labels start at sum(target_lengths[0..b-1]); every label in
 *     [0, C) and != blank.
 *   target_lengths[B] >= 0 (0 = the all-blank path).
 *   blank in [0, C).
 *   NONE -> [B] negative log-likelihoods; SUM -> their sum; MEAN -> torch's:
 *   each divided by max(target_length, 1), then averaged over B.
 *   An impossible alignment (too few frames for the labels and the blanks
 *   repeated labels need) gives +inf and a NaN gradient for that utterance,
 *   as torch; with zero_infinity it gives 0 and zero gradient.
 * Gradient to logits: scale * (softmax - posterior label occupancy). */
avsr_tensor *avsr_op_ctc_loss(avsr_ctx *ctx, avsr_tensor *logits, const int64_t *input_lengths,
                              const int64_t *targets, const int64_t *target_lengths, int blank,
                              avsr_loss_reduction reduction, bool zero_infinity);

#endif
