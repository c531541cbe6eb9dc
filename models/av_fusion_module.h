/* av_fusion_module: the ASR2AVSR audio-visual fusion module (Simic et al.,
 * arXiv 2312.13873; SimicCh/AVSR-AV_Fusion_Module_for_Pre-Trained_ASR,
 * models/AV_Fusion_model.py, attention.py, feature_extraction.py). It maps
 * a noisy log-mel spectrogram and the lip video to an enhanced log-mel of
 * the same shape, which a pretrained ASR model (Whisper) then consumes.
 *
 *   mel [B, F, Tm] (F = n_mels = 80, Whisper's layout), video [B, T, H, W]
 *   (raw gray values 0..255, multiplied by video_scale = 1/255 here, no
 *   mean/std, as in the paper; the AVSR model (avsr_model.h) passes the
 *   loader's normalised video with video_scale 1), Tm = 4 T
 *   (100 fps mel against 25 fps video; the caller trims or pads the mel)
 *   -> enhanced mel [B, F, Tm].
 *
 * Audio branch (spec_frontend_CNN): the mel as a 1-channel image
 * [B, 1, Tm, F] through spec_layers residual blocks, channels
 * 1 -> C, (spec_layers - 2) x C -> C, C -> 1 (C = spec_channels = 128):
 *     relu(bn1(conv1(x))) -> bn2(conv2(.)) -> + residual -> relu
 * (3x3 convs with bias, padding 1; the residual is a 1x1 conv with bias
 * and no batch norm where the channel count changes), then
 * out_proj = Linear(F -> F) over the frequency axis -> [B, Tm, F].
 *
 * Video branch (LIPNET_CNN) on [B, 1, T, H, W]:
 *     inpConv: Conv3d(1 -> S, (1,7,7), s(1,2,2), p(0,3,3)) + BN + ReLU
 *              + MaxPool3d((1,3,3), s(1,2,2), p(0,1,1))
 *     stage k = 0..3: lip_blocks[k][0] 2D residual blocks (Conv3d (1,3,3),
 *         p(0,1,1), first one with spatial stride 1/2/2/2 and a
 *         Conv3d 1x1 + BN downsample where stride or channels change),
 *         then lip_blocks[k][1] 3D bottlenecks (1x1x1 -> inner, (5,3,3)
 *         p(2,1,1) inner -> inner, 1x1x1 -> C_k, BN after each, identity
 *         residual); channels C_k = lip_channels[k] (64/128/256/256).
 *     upsample1 after stage 1, upsample2 after stage 2:
 *         ConvTranspose3d(C, C, (6,1,1), s(2,1,1), p(2,0,0)): T -> 2T each
 *     out_CNN: Conv3d(C_3 -> F, 1) + AvgPool3d((1,3,3), stride 1)
 * -> [B, 4T, F]. Every conv has a bias; batch norms have eps 1e-5. The
 * average pool must leave 1 x 1: the spatial size before it must be 3 x 3,
 * i.e. H and W in 65..96 (88 in the paper).
 *
 * Fusion block (Fusion_crossmodality_defAttentionSequSize): both feature
 * sequences are zero-padded at the end to a multiple of `window` (160),
 * then value = value_proj(audio), query = query_proj(video) (Linear F ->
 * d_model) and `layers` (12) layers, each
 *     x = LN1(MHA(q = query, k = value, v = value) + value)
 *     value = LN2(feed_forward(x) + x)
 * and out_proj (Linear d_model -> F); the output is cropped to Tm.
 *
 * Windowing (every layer): for a padded length L > window the sequences
 * are cut into n = 2 L / window - 1 windows of `window` frames with hop
 * window / 2, each attended separately; the outputs are stitched from the
 * window centres: the first window gives frames [0, 3w/4), every middle
 * window [w/4, 3w/4), the last [w/4, w). L == window: one window, no
 * stitching.
 *
 * Attention quirks, reproduced (attention.py MultiHeadAttention):
 *   - per-head d_k = d_model (not d_model / heads): the q/k/v projections
 *     are Linear(d_model -> heads * d_model), output Linear(heads * d_model
 *     -> d_model), scores scaled by 1 / sqrt(d_model);
 *   - heads are split with view(N, heads, S, d_k) of the [N, S, heads*d_k]
 *     projection and merged with reshape(N, S, heads*d_k) of [N, heads, S,
 *     d_k], both without a transpose, so "head" h mixes frames and feature
 *     groups (a raw reinterpretation of memory; we do the same);
 *   - no mask, no dropout (the module's dropout is never applied).
 * Padded frames (zeros before the projections) take part in attention and
 * batch-norm statistics as in the original.
 *
 * Parameter names (the PyTorch state dict of AV_Fusion, under prefix):
 *   spec_frontend.CNN_layer.{i}.conv1.0 / conv1.1 (BN) / conv2.0 / conv2.1
 *       / downsample (first and last block), spec_frontend.out_proj
 *   video_frontend.inpConv.0 / inpConv.1, video_frontend.layer{k}1.{j}
 *       .conv1.0 / .conv1.1 / .conv2.0 / .conv2.1 / .downsample.0 /
 *       .downsample.1, video_frontend.layer{k}2.{j}.conv{1,2,3}.{0,1},
 *       video_frontend.upsample1, video_frontend.upsample2,
 *       video_frontend.out_CNN.0
 *   fusion_block.value_proj, fusion_block.query_proj,
 *       fusion_block.attn_layers.{l}.MHA.{query,key,value}.linear,
 *       .MHA.output, .layernorm1, .feed_forward, .layernorm2,
 *       fusion_block.out_proj
 * with .weight / .bias (and BN buffers). */
#ifndef AVSR_AV_FUSION_MODULE_H
#define AVSR_AV_FUSION_MODULE_H

#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "nn.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_avfm_cfg {
    int n_mels;           /* F: mel bins = video embedding = fusion input (80) */
    int spec_channels;    /* audio branch width (128) */
    int spec_layers;      /* audio residual blocks, >= 2 (7) */
    int lip_stem;         /* stem channels (64) */
    int lip_channels[4];  /* stage widths (64, 128, 256, 256) */
    int lip_blocks[4][2]; /* per stage: 2D blocks >= 1, 3D bottlenecks >= 0 */
    int lip_inner;        /* bottleneck width (64) */
    int d_model;          /* fusion width = per-head d_k (80) */
    int heads;            /* (12) */
    int layers;           /* fusion layers (12) */
    int window;           /* attention window, multiple of 4 (160) */
    float video_scale;    /* the video is multiplied by this first: 1/255 for
                           * raw gray values (the paper); 1 for video the
                           * loader already scaled (the AVSR model) */
    bool mel_skip;        /* not in the paper (false): output = input mel +
                           * the fusion block's output, whose projection
                           * starts at zero, so the module starts as the
                           * identity and learns a correction */
    bool query_residual;  /* not in the paper (false): each fusion layer adds
                           * the video queries to its residual too, so the
                           * output depends on the lips when the audio is
                           * silent (with the value residual alone, constant
                           * audio values make it nearly constant) */
} avsr_avfm_cfg;

/* The paper's configuration (the yaml files under configs/ of the original
 * repository). */
void avsr_avfm_cfg_default(avsr_avfm_cfg *cfg);

typedef struct avsr_avfm_spec_block {
    avsr_nn_conv conv1, conv2, down; /* down: 1x1 with bias, first/last block */
    avsr_nn_batch_norm bn1, bn2;
    bool has_down;
} avsr_avfm_spec_block;

typedef struct avsr_avfm_res2d {
    avsr_nn_conv conv1, conv2, down;
    avsr_nn_batch_norm bn1, bn2, down_bn;
    bool has_down;
} avsr_avfm_res2d;

typedef struct avsr_avfm_res3d {
    avsr_nn_conv conv1, conv2, conv3;
    avsr_nn_batch_norm bn1, bn2, bn3;
} avsr_avfm_res3d;

typedef struct avsr_avfm_layer {
    avsr_nn_linear q, k, v, out; /* d -> H*d, H*d -> d */
    avsr_nn_layer_norm ln1, ln2;
    avsr_nn_linear ff;
} avsr_avfm_layer;

typedef struct avsr_avfm {
    avsr_avfm_cfg cfg;
    avsr_avfm_spec_block *spec; /* [spec_layers] */
    avsr_nn_linear spec_out;
    avsr_nn_conv stem;
    avsr_nn_batch_norm stem_bn;
    avsr_avfm_res2d *r2d[4];
    avsr_avfm_res3d *r3d[4];
    avsr_nn_conv up1, up2; /* transposed: weight [C, C, 6, 1, 1] */
    avsr_nn_conv out_cnn;
    avsr_nn_linear value_proj, query_proj, out_proj;
    avsr_avfm_layer *layers; /* [layers] */
} avsr_avfm;

/* Register the parameters under prefix ("" for none) with PyTorch's
 * default initialisation. Free with avsr_avfm_free (the parameters
 * belong to the store). */
int avsr_avfm_init(avsr_avfm *m, avsr_params *p, const char *prefix, const avsr_avfm_cfg *cfg,
                   avsr_error *err);
void avsr_avfm_free(avsr_avfm *m);

/* The whole module: mel [B, F, Tm], video [B, T, H, W] (x video_scale) with
 * Tm = 4 T -> [B, F, Tm]. */
avsr_tensor *avsr_avfm_forward(avsr_ctx *ctx, const avsr_avfm *m, avsr_tensor *mel,
                               avsr_tensor *video);

/* The parts. Audio branch: mel [B, F, Tm] -> [B, Tm, F]. Video branch:
 * video [B, T, H, W] (x video_scale) -> [B, 4T, F]. Fusion block with the padding
 * and cropping of AV_Fusion.forward: audio, video [B, L, F] -> [B, L, F]. */
avsr_tensor *avsr_avfm_audio_forward(avsr_ctx *ctx, const avsr_avfm *m, avsr_tensor *mel);
avsr_tensor *avsr_avfm_video_forward(avsr_ctx *ctx, const avsr_avfm *m, avsr_tensor *video);
avsr_tensor *avsr_avfm_fuse(avsr_ctx *ctx, const avsr_avfm *m, avsr_tensor *audio,
                            avsr_tensor *video);

#ifdef __cplusplus
}
#endif

#endif
