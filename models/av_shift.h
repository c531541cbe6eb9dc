/* av_shift: the audio-video offset head of Align-AV-HuBERT (lilycalre/
 * Align-AV-HuBERT, hubert_plusalignment.py, hubert_criterion_plus-
 * alignment.py): it scores how far the video is shifted against the audio,
 * in frames, within -max_shift..max_shift (25 frames = 1 s at 25 fps).
 *
 * Inputs are the outputs of one shared encoder run twice: audio-only
 * (video features x 0) and video-only (audio features x 0), A and V
 * [B, T, d]. Both are L2-normalised per frame here (x / max(|x|, 1e-12)),
 * and S = logit_scale * A V^T per sample, with logit_scale a trainable
 * scalar initialised to ln(1 / 0.07) and used as is (not exponentiated,
 * unlike CLIP).
 *
 * Shift convention (the dataset's torch.roll(video, s)): for a true shift
 * s > 0 the video lags, audio frame t pairs with video frame t + s; the
 * aligned block of S is S[0:L-s, s:L] (S[-s:L, 0:L+s] for s < 0).
 *
 * Loss: symmetric InfoNCE on that block, (CE(rows) + CE(columns)) / 2
 * with labels arange, summed over the batch (avsr_op_shift_infonce).
 *
 * Prediction: for every candidate s with |s| <= min(L - 1, max_shift), the
 * mean of the diagonal of the shifted block; the prediction is the first
 * candidate (from -max_shift upwards) whose mean exceeds every earlier
 * one and 0, else 0 -- Align-AV-HuBERT's loop, which starts from
 * similarity_max = 0 and compares with '>'. The model then rolls the video
 * by -prediction (avsr_op_roll) before fusion.
 *
 * Parameter: "<prefix>.logit_scale_a" (0-dim), the name Align-AV-HuBERT
 * uses. */
#ifndef AVSR_AV_SHIFT_H
#define AVSR_AV_SHIFT_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_av_shift {
    avsr_tensor *logit_scale; /* 0-dim, init ln(1 / 0.07) */
    int max_shift;            /* 25 in Align-AV-HuBERT */
} avsr_av_shift;

/* ln(1 / 0.07) */
#define AVSR_AV_SHIFT_LOGIT_SCALE_INIT 2.6592600369327779f

int avsr_av_shift_init(avsr_av_shift *m, avsr_params *p, const char *prefix, int max_shift,
                       avsr_error *err);

/* Alignment loss: A, V [B, T, d] encoder outputs (normalised here),
 * shifts[B] the true shift of each sample (|s| < its length), lengths[B]
 * valid frames (NULL = T) -> [1], the sum over samples. */
avsr_tensor *avsr_av_shift_loss(avsr_ctx *ctx, const avsr_av_shift *m, avsr_tensor *A,
                                avsr_tensor *V, const int *shifts, const int64_t *lengths);

/* Predicted shift per sample into pred[B]; scores (may be NULL) receives
 * [B, 2 * max_shift + 1] mean diagonals for s = -max_shift..max_shift
 * (NAN where |s| >= the sample's length). No gradient. Returns 0, or -1
 * with the context's error set. */
int avsr_av_shift_predict(avsr_ctx *ctx, const avsr_av_shift *m, avsr_tensor *A, avsr_tensor *V,
                          const int64_t *lengths, int *pred, float *scores);

/* Data side: dst = torch.roll(src, shift, dims=0) for T frames of
 * frame_bytes bytes each (any element type); dst and src must not overlap.
 * The training data roll the video of each sample copy by the shift to be
 * learnt (a positive shift makes the video lag). */
void avsr_av_shift_roll_frames(void *dst, const void *src, int64_t T, size_t frame_bytes,
                               int shift);

#ifdef __cplusplus
}
#endif

#endif
