/* conformer: the ESPnet / Auto-AVSR encoder (Conformer blocks with
 * relative-position self-attention) and the pre-LN Transformer encoder
 * that is the same layer without the macaron FFN and the convolution
 * module, with absolute sinusoidal positions (AV-HuBERT-like backends).
 * Composed from runtime ops; the tape gives the backward pass.
 *
 * Encoder (x [B, T, idim], lengths [B]):
 *   x = embed.0(x)                      Linear(idim -> d), skipped if idim = 0
 *   Conformer (rel_pos):   x = x * sqrt(d); pos_emb = rel_positions(T) [1, 2T-1, d];
 *                          x = dropout(x); pos_emb = dropout(pos_emb)
 *   Transformer (abs pos): x = dropout(x * sqrt(d) + sinusoid(T))
 *   x = encoders.i(x) for each layer;   x = after_norm(x)
 *
 * Layer (pre-LN, ESPnet EncoderLayer with normalize_before, no concat_after):
 *   if macaron: x += 0.5 * dropout(feed_forward_macaron(norm_ff_macaron(x)))
 *   x += dropout(self_attn(norm_mha(x)))          (rel-pos or plain MHA)
 *   if conv:    x += dropout(conv_module(norm_conv(x)))
 *   x += s * dropout(feed_forward(norm_ff(x)))     s = 0.5 with macaron, else 1
 *   if conv:    x = norm_final(x)
 *   feed_forward: w_2(dropout(act(w_1(x))))        act = ReLU (Auto-AVSR) or SiLU
 *   conv_module:  pointwise_conv1 (C -> 2C, k1) -> GLU over channels ->
 *                 depthwise_conv (k, groups C, pad (k-1)/2) -> norm
 *                 (BatchNorm1d) -> SiLU -> pointwise_conv2 (C -> C, k1)
 *
 * Padding: the key-padding mask from lengths masks self-attention keys.
 * ESPnet itself does nothing else with padding; two switches add what a
 * batch-composition independent model needs:
 *   bn_mask:       BatchNorm statistics over valid frames only (training);
 *   conv_zero_pad: padded frames are zeroed before the depthwise
 *                  convolution, so they do not leak into valid frames.
 * With both off the encoder is exactly ESPnet's.
 *
 * Parameter names (under prefix; ESPnet/Auto-AVSR v1.0 state dict):
 *   embed.0.{weight,bias}
 *   encoders.{i}.self_attn.{linear_q,linear_k,linear_v,linear_out}.{weight,bias}
 *   encoders.{i}.self_attn.linear_pos.weight, .pos_bias_u, .pos_bias_v (rel_pos)
 *   encoders.{i}.feed_forward{,_macaron}.{w_1,w_2}.{weight,bias}
 *   encoders.{i}.conv_module.{pointwise_conv1,depthwise_conv,pointwise_conv2}.{weight,bias}
 *   encoders.{i}.conv_module.norm.{weight,bias,running_mean,running_var,num_batches_tracked}
 *   encoders.{i}.{norm_ff,norm_mha,norm_ff_macaron,norm_conv,norm_final}.{weight,bias}
 *   after_norm.{weight,bias}
 *
 * Dropout purposes: purpose_base + site for the input stage (0: x, 1:
 * pos_emb) and purpose_base + 16 * (i + 1) + site for layer i (sites:
 * 0/1 macaron FFN inner/output, 2 attention weights, 3 attention output,
 * 4 convolution output, 5/6 FFN inner/output). */
#ifndef AVSR_CONFORMER_H
#define AVSR_CONFORMER_H

#include <stdbool.h>
#include <stdint.h>

#include "attention.h"
#include "ctx.h"
#include "nn.h"
#include "op_linear.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_conformer_cfg {
    int64_t idim;         /* input features; 0 = no embed.0 linear (input is [B, T, d]) */
    int64_t d_model;      /* attention_dim */
    int heads;            /* attention_heads */
    int64_t ffn;          /* linear_units */
    int layers;           /* num_blocks */
    int kernel;           /* cnn_module_kernel (odd) */
    float dropout;        /* dropout_rate (FFN inner, every residual branch) */
    float pos_dropout;    /* positional_dropout_rate */
    float attn_dropout;   /* attention_dropout_rate */
    avsr_act_kind ffn_act;/* AVSR_ACT_RELU (Auto-AVSR) or AVSR_ACT_SILU */
    float eps;            /* LayerNorm eps (ESPnet: 1e-12) */
    float bn_eps, bn_momentum; /* 1e-5, 0.1 (torch defaults) */
    bool macaron, use_conv, rel_pos; /* Conformer: all true; Transformer: all false */
    bool bn_mask, conv_zero_pad;     /* padding handling (see above) */
    bool fuse_qkv;        /* fused q/k/v product in self-attention */
    uint32_t purpose_base;/* dropout streams (see above) */
} avsr_conformer_cfg;

/* Auto-AVSR Conformer: rel-pos, macaron, conv k31, ReLU FFN, eps 1e-12,
 * dropout 0.1 everywhere, bn_mask on, conv_zero_pad off, fused q/k/v. */
void avsr_conformer_cfg_default(avsr_conformer_cfg *c, int64_t idim, int64_t d_model, int heads,
                                int64_t ffn, int layers);
/* Pre-LN Transformer encoder: the same without macaron, conv and rel-pos
 * (absolute sinusoidal positions). */
void avsr_transformer_cfg_default(avsr_conformer_cfg *c, int64_t idim, int64_t d_model,
                                  int heads, int64_t ffn, int layers);

typedef struct avsr_ffn {
    avsr_nn_linear w_1, w_2;
} avsr_ffn;

typedef struct avsr_conv_module {
    avsr_nn_conv pointwise_conv1, depthwise_conv, pointwise_conv2;
    avsr_nn_batch_norm norm;
} avsr_conv_module;

typedef struct avsr_conformer_layer {
    avsr_mha self_attn;
    avsr_ffn feed_forward, feed_forward_macaron;
    avsr_conv_module conv_module;
    avsr_nn_layer_norm norm_ff, norm_mha, norm_ff_macaron, norm_conv, norm_final;
} avsr_conformer_layer;

typedef struct avsr_conformer_encoder {
    avsr_conformer_cfg cfg;
    avsr_nn_linear embed;          /* embed.0 (idim > 0) */
    avsr_conformer_layer *layers;  /* cfg.layers */
    avsr_nn_layer_norm after_norm;
} avsr_conformer_encoder;

/* Register all parameters under prefix ("" for none). Free with
 * avsr_conformer_encoder_free (the parameters belong to the store). */
int avsr_conformer_encoder_init(avsr_conformer_encoder *enc, avsr_params *p, const char *prefix,
                                const avsr_conformer_cfg *cfg, avsr_error *err);
void avsr_conformer_encoder_free(avsr_conformer_encoder *enc);

/* x [B, T, idim] (or [B, T, d] when idim = 0); lengths: B valid lengths
 * (NULL = all T) -> [B, T, d]. Outputs at padded frames are computed but
 * meaningless. */
avsr_tensor *avsr_conformer_encoder_forward(avsr_ctx *ctx, const avsr_conformer_encoder *enc,
                                            avsr_tensor *x, const int64_t *lengths);

/* One layer: x [B, T, d], pos_emb [1, 2T-1, d] (rel_pos) or NULL, mask
 * [B, 1, T] U8 key-padding mask or NULL; layer = index for the dropout
 * purposes. */
avsr_tensor *avsr_conformer_layer_forward(avsr_ctx *ctx, const avsr_conformer_encoder *enc,
                                          int layer, avsr_tensor *x, avsr_tensor *pos_emb,
                                          avsr_tensor *mask);

/* Building blocks shared with the decoder. */
int avsr_ffn_init(avsr_ffn *f, avsr_params *p, const char *prefix, int64_t d, int64_t hidden,
                  avsr_error *err);
/* w_2(dropout(act(w_1(x)))), dropout purpose `purpose` */
avsr_tensor *avsr_ffn_forward(avsr_ctx *ctx, const avsr_ffn *f, avsr_tensor *x, avsr_act_kind act,
                              float dropout, uint32_t purpose);

#ifdef __cplusplus
}
#endif

#endif
