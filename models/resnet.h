/* resnet: the BasicBlock ResNet trunk shared by the Auto-AVSR / AV-HuBERT
 * frontends: 2D over frames of the visual frontend (modules/resnet.py) and
 * 1D over the waveform of the audio frontend (modules/resnet1d.py).
 *
 * Four stages ("layer1".."layer4") of depth[i] BasicBlocks with widths
 * widths[i] and strides 1, 2, 2, 2. A block is
 *     out = act2(bn2(conv2(act1(bn1(conv1(x))))) + residual)
 * with 3x3 (or k3 in 1D) convolutions without bias, padding 1; conv1 has the
 * block's stride. residual = x, or downsample.1(downsample.0(x)) (1x1
 * convolution with the stride, no bias, then batch norm) when the stride is
 * not 1 or the channel count changes (first block of a stage). Names under
 * the prefix: "layer<s>.<i>.conv1.weight", ".bn1.*", ".conv2.weight",
 * ".bn2.*", ".downsample.0.weight", ".downsample.1.*", and with PReLU
 * ".relu1.weight", ".relu2.weight" ([planes], initialised to 0.25).
 *
 * Padding and batch norm: every batch norm takes a mask [B, S] over spatial
 * dimension 0 (the first dimension after the channels) built from per-row
 * valid extents. A row's extent goes through each strided convolution as
 * l -> l > 0 ? (l - 1) / stride + 1 : 0 (the k3/p1 and k1/p0 output size).
 * The visual frontend passes extent H for a real frame and 0 for a padded
 * one, so whole padded frames are left out; the audio frontend passes the
 * number of valid samples. */
#ifndef AVSR_MODELS_RESNET_H
#define AVSR_MODELS_RESNET_H

#include <stdbool.h>
#include <stdint.h>

#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Activation of the frontends: Swish (Auto-AVSR), ReLU, PReLU (AV-HuBERT). */
typedef enum avsr_fe_act {
    AVSR_FE_ACT_SWISH = 0,
    AVSR_FE_ACT_RELU = 1,
    AVSR_FE_ACT_PRELU = 2
} avsr_fe_act;

/* "swish", "relu", "prelu" */
const char *avsr_fe_act_name(avsr_fe_act a);

typedef struct avsr_resnet_block {
    avsr_nn_conv conv1, conv2, down_conv;
    avsr_nn_batch_norm bn1, bn2, down_bn;
    avsr_tensor *prelu1, *prelu2; /* [planes], PReLU only */
    bool has_down;
    int stride;
} avsr_resnet_block;

#define AVSR_RESNET_STAGES 4

typedef struct avsr_resnet {
    int nsp;                          /* 1 (waveform) or 2 (frames) */
    avsr_fe_act act;
    int depth[AVSR_RESNET_STAGES];    /* blocks per stage */
    int64_t widths[AVSR_RESNET_STAGES];
    int64_t in_channels;
    int nblocks;
    avsr_resnet_block *blocks;        /* nblocks, heap (avsr_resnet_free) */
} avsr_resnet;

/* Register the trunk's parameters under prefix ("" = no prefix). */
int avsr_resnet_init(avsr_resnet *r, avsr_params *p, const char *prefix, int nsp,
                     int64_t in_channels, const int64_t *widths, const int *depth, avsr_fe_act act,
                     avsr_error *err);
void avsr_resnet_free(avsr_resnet *r);

/* x [B, Cin, S0(, S1)] -> [B, widths[3], S0', (S1')]. extent: [B] valid
 * extents along S0 (NULL = no mask). */
avsr_tensor *avsr_resnet_forward(avsr_ctx *ctx, const avsr_resnet *r, avsr_tensor *x,
                                 const int64_t *extent);

/* Helpers the frontends share. */
/* act(x) with PReLU weight a (used only for PReLU). */
avsr_tensor *avsr_fe_activation(avsr_ctx *ctx, avsr_fe_act act, avsr_tensor *x, avsr_tensor *a);
/* Register a PReLU weight "<prefix>.<leaf>" [n] = 0.25 (torch's default). */
avsr_tensor *avsr_fe_prelu_init(avsr_params *p, const char *prefix, const char *leaf, int64_t n,
                                avsr_error *err);
/* "<prefix>.<leaf>" or "<leaf>" for an empty prefix, into buf
 * (AVSR_NN_NAME_MAX bytes). */
const char *avsr_fe_join(char *buf, const char *prefix, const char *leaf);
/* U8 [B, S] mask in the arena: m[b, s] = s < extent[b]; NULL when
 * extent is NULL (or on failure, with the context's error set). */
avsr_tensor *avsr_fe_extent_mask(avsr_ctx *ctx, int64_t B, int64_t S, const int64_t *extent);

#ifdef __cplusplus
}
#endif

#endif
