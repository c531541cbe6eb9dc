/* fusion: audio-visual feature fusion.
 *
 * Inputs are two feature streams, video v [B, Tv, Dv] and audio a
 * [B, Ta, Da] (frontend or encoder outputs, both at 25 Hz), with optional
 * per-clip lengths. Steps:
 *
 * 1. Missing modality: a NULL stream is replaced by zeros of shape
 *    [B, T_other, D] with the other stream's lengths (AV-HuBERT feeds a
 *    missing modality as zeros at inference).
 * 2. Length reconciliation (len_mode):
 *      TRIM: T = min(Tv, Ta); the longer stream is cut to T; output length
 *            of clip b = min(lv[b], la[b], T).
 *      PAD:  T = max(Tv, Ta); the shorter stream is zero padded at the end;
 *            output length = max(lv[b], la[b]).
 * 3. Modality dropout, training mode only, both streams present, p_m > 0:
 *    per sample (op_modality.h: stream AVSR_RNG_MODALITY keyed by the
 *    sample id) with probability p_m one stream is replaced by zeros: audio
 *    with probability p_a, else video. The dropped stream's rows are
 *    multiplied by 0, so they pass no gradient.
 * 4. Fusion (kind):
 *      CONCAT_MLP (Auto-AVSR's MLPHead, fusion_norm "batchnorm"):
 *        x = cat(v, a) [B, T, Dv+Da] -> fc1 Linear(Dv+Da -> h)
 *          -> bn1 BatchNorm1d(h) over (B, T) | norm1 LayerNorm(h) | nothing
 *          -> ReLU -> fc2 Linear(h -> d)                  -> [B, T, d]
 *        Names "fc1.*", "bn1.*" (or "norm1.*"), "fc2.*" under the prefix
 *        ("fusion" in Auto-AVSR). With lengths, padded frames are left out
 *        of the batch statistics (Auto-AVSR does not mask; with no padding
 *        the two agree).
 *      ADD: a + v (Dv = Da)                               -> [B, T, D]
 *      GATED: g = sigmoid(gate([a; v])), gate Linear(2D -> D) with bias,
 *        out = g * a + (1 - g) * v  (Dv = Da = D), computed as
 *        v + g * (a - v). Names "gate.weight", "gate.bias". g -> 1 selects
 *        audio, g -> 0 video, per frame and channel.
 */
#ifndef AVSR_MODELS_FUSION_H
#define AVSR_MODELS_FUSION_H

#include <stdint.h>

#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum avsr_fusion_kind {
    AVSR_FUSION_CONCAT_MLP = 0,
    AVSR_FUSION_ADD = 1,
    AVSR_FUSION_GATED = 2
} avsr_fusion_kind;

typedef enum avsr_fusion_norm {
    AVSR_FUSION_NORM_BATCH = 0, /* Auto-AVSR fusion_norm "batchnorm" */
    AVSR_FUSION_NORM_LAYER = 1, /* "layernorm" */
    AVSR_FUSION_NORM_NONE = 2
} avsr_fusion_norm;

typedef enum avsr_fusion_len { AVSR_FUSION_LEN_TRIM = 0, AVSR_FUSION_LEN_PAD = 1 } avsr_fusion_len;

typedef struct avsr_fusion_cfg {
    avsr_fusion_kind kind;
    int64_t dim_v, dim_a;    /* input feature sizes (equal for ADD, GATED) */
    int64_t hidden;          /* CONCAT_MLP: h (Auto-AVSR 8192) */
    int64_t out_dim;         /* CONCAT_MLP: d (768); ignored otherwise */
    avsr_fusion_norm norm;   /* CONCAT_MLP only */
    avsr_fusion_len len_mode;
    float p_modality;        /* modality dropout probability p_m (0 = off) */
    float p_audio;           /* given a drop, probability that it is audio */
} avsr_fusion_cfg;

typedef struct avsr_fusion {
    avsr_fusion_cfg cfg;
    avsr_nn_linear fc1, fc2;   /* CONCAT_MLP */
    avsr_nn_batch_norm bn1;    /* CONCAT_MLP, NORM_BATCH */
    avsr_nn_layer_norm norm1;  /* CONCAT_MLP, NORM_LAYER (eps 1e-5) */
    avsr_nn_linear gate;       /* GATED */
} avsr_fusion;

int avsr_fusion_init(avsr_fusion *m, avsr_params *params, const char *prefix,
                     const avsr_fusion_cfg *cfg, avsr_error *err);
/* Output feature size. */
int64_t avsr_fusion_dim(const avsr_fusion *m);
/* video [B, Tv, Dv] or NULL, audio [B, Ta, Da] or NULL (not both);
 * len_v, len_a [B] (host) or NULL (all frames valid); out_len [B] or NULL
 * receives the output lengths -> [B, T, out]. */
avsr_tensor *avsr_fusion_forward(avsr_ctx *ctx, const avsr_fusion *m, avsr_tensor *video,
                                 avsr_tensor *audio, const int64_t *len_v, const int64_t *len_a,
                                 int64_t *out_len);

#ifdef __cplusplus
}
#endif

#endif
