/* audio_frontend: the audio frontends of the AVSR models.
 *
 * (a) ResNet1D on the raw 16 kHz waveform (Auto-AVSR
 *     backbones/conv1d_extractor.py + modules/resnet1d.py):
 *       wave [B, L] (or [B, L, 1]), truncated to L' = L / 640 * 640 samples
 *       -> trunk.conv1  Conv1d(1 -> w, k80, s4, p38, no bias)
 *       -> trunk.bn1    BatchNorm1d(w)
 *       -> Swish | ReLU | PReLU ("trunk.relu.weight")
 *       -> trunk.layer1..4: 1D BasicBlocks (k3, p1), widths w, 2w, 4w, 8w,
 *          strides 1, 2, 2, 2 (models/resnet.h)
 *       -> AvgPool1d(pool, pool)                 -> [B, L'/640, 8w] at 25 Hz
 *     The total stride is 4 * 8 * pool = 640 with pool 20. Auto-AVSR: w 64.
 *     With lengths (valid samples per clip) every batch norm leaves padded
 *     positions out of its statistics; an extent l becomes l / 4 after the
 *     stem and (l - 1) / 2 + 1 after each stride-2 convolution. Output
 *     lengths are min(l, L') / 640.
 *
 * (b) ESPnet Conv2dSubsampling (transformer/subsampling.py) on log-mel
 *     features (80 bins, 100 Hz; computed elsewhere):
 *       feats [B, idim, Tm] -> transpose -> [B, 1, Tm, idim]
 *       -> conv.0  Conv2d(1 -> c, k3, s2) -> ReLU
 *       -> conv.2  Conv2d(c -> c, k3, s2) -> ReLU    [B, c, T', F']
 *       -> [B, T', c * F'] (channel-major) -> out.0 Linear(c * F' -> d)
 *       T' = ((Tm - 1) / 2 - 1) / 2, F' = ((idim - 1) / 2 - 1) / 2 (25 Hz).
 *     ESPnet uses c = d and puts the positional encoding in out.1; that
 *     belongs to the encoder here and is not applied. Output lengths are
 *     computed with the same formula per clip (0 for fewer than 3 frames;
 *     ESPnet's mask slicing [:-2:2][:-2:2] can give one frame more).
 *
 * (c) AV-HuBERT's audio "frontend" (SubModel without a ResNet): stacked
 *     log filterbanks [B, T, 104] (4 x 26, 25 Hz) -> proj Linear(104 -> D)
 *     -> [B, T, D]. Name "proj.weight", "proj.bias" under the prefix
 *     ("feature_extractor_audio"). */
#ifndef AVSR_MODELS_AUDIO_FRONTEND_H
#define AVSR_MODELS_AUDIO_FRONTEND_H

#include "nn.h"
#include "resnet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- (a) ResNet1D ------------------------------------------------------- */

typedef struct avsr_audio_resnet1d_cfg {
    int width;       /* w: stem channels, first stage width (64) */
    int depth[4];    /* BasicBlocks per stage ({2, 2, 2, 2}) */
    avsr_fe_act act; /* Swish (Auto-AVSR) */
    int pool;        /* AvgPool1d kernel = stride (20 -> 25 Hz) */
} avsr_audio_resnet1d_cfg;

typedef struct avsr_audio_resnet1d {
    avsr_audio_resnet1d_cfg cfg;
    avsr_nn_conv stem;          /* trunk.conv1: [w, 1, 80] */
    avsr_nn_batch_norm stem_bn; /* trunk.bn1 */
    avsr_tensor *stem_prelu;    /* trunk.relu.weight [w], PReLU only */
    avsr_resnet trunk;          /* trunk.layer1..4 */
} avsr_audio_resnet1d;

void avsr_audio_resnet1d_defaults(avsr_audio_resnet1d_cfg *cfg);
int avsr_audio_resnet1d_init(avsr_audio_resnet1d *m, avsr_params *params, const char *prefix,
                             const avsr_audio_resnet1d_cfg *cfg, avsr_error *err);
void avsr_audio_resnet1d_free(avsr_audio_resnet1d *m);
/* Samples per output frame (640) and output size (8w). */
int64_t avsr_audio_resnet1d_hop(const avsr_audio_resnet1d *m);
int64_t avsr_audio_resnet1d_dim(const avsr_audio_resnet1d *m);
/* wave [B, L] or [B, L, 1]; lengths [B] samples (1..L) or NULL; writes
 * out_lengths [B] (frames) when not NULL -> [B, L / hop, 8w]. L must hold
 * at least one frame. */
avsr_tensor *avsr_audio_resnet1d_forward(avsr_ctx *ctx, const avsr_audio_resnet1d *m,
                                         avsr_tensor *wave, const int64_t *lengths,
                                         int64_t *out_lengths);

/* ---- (b) Conv2d subsampling ----------------------------------------------- */

typedef struct avsr_conv2d_subsampling_cfg {
    int idim;     /* mel bins (80) */
    int channels; /* c (ESPnet: = odim) */
    int odim;     /* d */
} avsr_conv2d_subsampling_cfg;

typedef struct avsr_conv2d_subsampling {
    avsr_conv2d_subsampling_cfg cfg;
    avsr_nn_conv conv0, conv2; /* conv.0, conv.2 (with bias) */
    avsr_nn_linear out;        /* out.0: [d, c * F'] */
} avsr_conv2d_subsampling;

int avsr_conv2d_subsampling_init(avsr_conv2d_subsampling *m, avsr_params *params,
                                 const char *prefix, const avsr_conv2d_subsampling_cfg *cfg,
                                 avsr_error *err);
/* Frames after subsampling for n input frames: ((n - 1) / 2 - 1) / 2, 0 if n < 3. */
int64_t avsr_conv2d_subsampling_length(int64_t n);
/* feats [B, idim, Tm] (Tm >= 7); lengths [B] or NULL; out_lengths [B] or
 * NULL -> [B, T', d]. */
avsr_tensor *avsr_conv2d_subsampling_forward(avsr_ctx *ctx, const avsr_conv2d_subsampling *m,
                                             avsr_tensor *feats, const int64_t *lengths,
                                             int64_t *out_lengths);

/* ---- (c) AV-HuBERT filterbank projection ---------------------------------- */

typedef struct avsr_audio_fbank_proj {
    avsr_nn_linear proj; /* proj: [D, in] */
} avsr_audio_fbank_proj;

int avsr_audio_fbank_proj_init(avsr_audio_fbank_proj *m, avsr_params *params, const char *prefix,
                               int64_t in_dim, int64_t out_dim, avsr_error *err);
/* x [B, T, in] -> [B, T, D]; lengths pass through unchanged. */
avsr_tensor *avsr_audio_fbank_proj_forward(avsr_ctx *ctx, const avsr_audio_fbank_proj *m,
                                           avsr_tensor *x);

#ifdef __cplusplus
}
#endif

#endif
