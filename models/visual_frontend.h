/* visual_frontend: the Conv3dResNet lip-video frontend of Auto-AVSR
 * (backbones/conv3d_extractor.py + modules/resnet.py) and AV-HuBERT's
 * ResEncoder (the same network with PReLU).
 *
 *   video [B, T, H, W] (or [B, T, 1, H, W], Auto-AVSR's layout), grayscale,
 *   already normalised ((x/255 - 0.421) / 0.165)
 *   -> frontend3D.0  Conv3d(1 -> C, k(5,7,7), s(1,2,2), p(2,3,3), no bias)
 *   -> frontend3D.1  BatchNorm3d(C)            (padded frames masked out)
 *   -> frontend3D.2  Swish | ReLU | PReLU(C)   (PReLU: "frontend3D.2.weight")
 *   -> MaxPool3d(k(1,3,3), s(1,2,2), p(0,1,1))
 *   -> fold time into batch: [B, C, T, H', W'] -> [B*T, C, H', W']
 *   -> trunk: 2D ResNet, BasicBlock, depth [2,2,2,2], widths C, 2C, 4C, 8C
 *      (see models/resnet.h; names "trunk.layer1.0.conv1.weight", ...)
 *   -> global average pool -> [B, T, 8C]      (25 Hz, no temporal stride)
 *
 * Spatial sizes: 88 -> 44 (stem) -> 22 (max pool) -> 22, 11, 6, 3 -> 1.
 * Parameter and buffer names are those of Auto-AVSR's state dict under the
 * given prefix ("encoder.frontend" in Auto-AVSR's AV model,
 * "feature_extractor_video.resnet" in AV-HuBERT).
 *
 * Padding: with lengths (frames per clip, <= T) the 3D batch norm gets the
 * [B, T] mask; in the trunk each of the B*T rows is a frame, and every
 * batch norm gets a per-row mask [B*T, H'] that is all ones for a real frame
 * and all zeros for a padded one, so padded frames never enter batch
 * statistics. Padded frames are still computed (their outputs are whatever
 * the network gives for the padding input, normalised with the valid
 * statistics); callers mask them downstream. Output lengths equal the
 * input lengths. */
#ifndef AVSR_MODELS_VISUAL_FRONTEND_H
#define AVSR_MODELS_VISUAL_FRONTEND_H

#include "nn.h"
#include "resnet.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_visual_frontend_cfg {
    int width;        /* C: stem channels and first trunk width (64) */
    int depth[4];     /* BasicBlocks per trunk stage ({2, 2, 2, 2}) */
    avsr_fe_act act;  /* AVSR_FE_ACT_SWISH (Auto-AVSR) or _PRELU (AV-HuBERT) */
    int roi;          /* expected H = W (88); 0 = accept any size >= 1 */
} avsr_visual_frontend_cfg;

typedef struct avsr_visual_frontend {
    avsr_visual_frontend_cfg cfg;
    avsr_nn_conv stem;          /* frontend3D.0: [C, 1, 5, 7, 7] */
    avsr_nn_batch_norm stem_bn; /* frontend3D.1 */
    avsr_tensor *stem_prelu;    /* frontend3D.2.weight [C], PReLU only */
    avsr_resnet trunk;          /* trunk.layer1..4 */
} avsr_visual_frontend;

/* Auto-AVSR's settings: width 64, depth 2/2/2/2, Swish, ROI 88. */
void avsr_visual_frontend_defaults(avsr_visual_frontend_cfg *cfg);

int avsr_visual_frontend_init(avsr_visual_frontend *m, avsr_params *params, const char *prefix,
                              const avsr_visual_frontend_cfg *cfg, avsr_error *err);
void avsr_visual_frontend_free(avsr_visual_frontend *m);

/* Output feature size 8C. */
int64_t avsr_visual_frontend_dim(const avsr_visual_frontend *m);

/* video [B, T, H, W] or [B, T, 1, H, W]; lengths [B] (host, frames,
 * 1..T) or NULL (all T valid) -> [B, T, 8C]. */
avsr_tensor *avsr_visual_frontend_forward(avsr_ctx *ctx, const avsr_visual_frontend *m,
                                          avsr_tensor *video, const int64_t *lengths);

#ifdef __cplusplus
}
#endif

#endif
