/* decoder: the ESPnet / Auto-AVSR Transformer attention decoder, composed
 * from runtime ops (the tape gives the backward pass), with a teacher-forced
 * training forward and cached incremental decoding for beam search.
 *
 * Forward (ys_in [B, L] token ids, memory [B, S, d], memory lengths):
 *   x = dropout(embed.0(ys_in) * sqrt(d) + sinusoid(L))   (PositionalEncoding)
 *   per layer i (pre-LN DecoderLayer, normalize_before, no concat_after):
 *     x += dropout(self_attn(norm1(x)) with the causal mask)
 *     x += dropout(src_attn(norm2(x), memory, memory, memory padding mask))
 *     x += dropout(feed_forward(norm3(x)))        w_2(dropout(act(w_1 x)))
 *   logits = output_layer(after_norm(x))          [B, L, V]
 * The self-attention mask is ESPnet's target_mask(ys_in, ignore) = causal
 * AND (ys_in != ignore); ys_in from add_sos_eos is padded with eos, never
 * with ignore, so it is the causal mask alone.
 *
 * Parameter names (under prefix; ESPnet state dict):
 *   embed.0.weight [V, d]
 *   decoders.{i}.{self_attn,src_attn}.{linear_q,linear_k,linear_v,linear_out}.{weight,bias}
 *   decoders.{i}.feed_forward.{w_1,w_2}.{weight,bias}
 *   decoders.{i}.{norm1,norm2,norm3}.{weight,bias}
 *   after_norm.{weight,bias}   output_layer.{weight,bias}
 *
 * Dropout purposes: purpose_base + 0 (embedding), purpose_base + 16 * (i+1)
 * + site for layer i (sites: 0 self-attention weights, 1 self-attention
 * output, 2 source-attention weights, 3 source-attention output, 4/5 FFN
 * inner/output). Default purpose_base: 4096 (clear of the encoder's). */
#ifndef AVSR_DECODER_H
#define AVSR_DECODER_H

#include <stdbool.h>
#include <stdint.h>

#include "attention.h"
#include "conformer.h"
#include "ctx.h"
#include "nn.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_decoder_cfg {
    int64_t vocab;        /* odim */
    int64_t d_model;      /* attention_dim */
    int heads;            /* attention_heads */
    int64_t ffn;          /* linear_units */
    int layers;           /* num_blocks */
    float dropout;        /* dropout_rate */
    float pos_dropout;    /* positional_dropout_rate */
    float self_attn_dropout, src_attn_dropout;
    avsr_act_kind ffn_act;/* AVSR_ACT_RELU (ESPnet) */
    float eps;            /* LayerNorm eps (ESPnet: 1e-12) */
    bool fuse_qkv;        /* fused q/k/v product in the full-sequence self-attention */
    uint32_t purpose_base;
} avsr_decoder_cfg;

/* Auto-AVSR: dropout 0.1 (attention dropouts 0.1), ReLU, eps 1e-12. */
void avsr_decoder_cfg_default(avsr_decoder_cfg *c, int64_t vocab, int64_t d_model, int heads,
                              int64_t ffn, int layers);

typedef struct avsr_decoder_layer {
    avsr_mha self_attn, src_attn;
    avsr_ffn feed_forward;
    avsr_nn_layer_norm norm1, norm2, norm3;
} avsr_decoder_layer;

typedef struct avsr_decoder {
    avsr_decoder_cfg cfg;
    avsr_nn_embedding embed;     /* embed.0 */
    avsr_decoder_layer *layers;  /* cfg.layers */
    avsr_nn_layer_norm after_norm;
    avsr_nn_linear output_layer;
} avsr_decoder;

int avsr_decoder_init(avsr_decoder *dec, avsr_params *p, const char *prefix,
                      const avsr_decoder_cfg *cfg, avsr_error *err);
void avsr_decoder_free(avsr_decoder *dec);

/* ESPnet add_sos_eos: ys [B, L] (I64, padded with ignore) -> ys_in =
 * [sos, y...] padded with eos, ys_out = [y..., eos] padded with ignore,
 * both [B, Lmax + 1] I64 (arena), Lmax = the longest label sequence. Also
 * writes the B lengths (label count + 1) into out_lengths if not NULL.
 * pad_to > Lmax widens both to [B, pad_to + 1] (more eos / ignore): the
 * trainer pads a rank's share of a batch to the whole batch's longest
 * sequence, so that the decoder's shapes, and with them the positions of
 * its attention-dropout streams, do not depend on how the batch was split.
 * 0 = no extra padding (ESPnet). */
int avsr_decoder_make_inputs(avsr_ctx *ctx, avsr_tensor *ys, int64_t sos, int64_t eos,
                             int64_t ignore, int64_t pad_to, avsr_tensor **ys_in,
                             avsr_tensor **ys_out, int64_t *out_lengths);

/* Teacher forcing: ys_in [B, L] I64/I32, memory [B, S, d], mem_lengths
 * (B entries, NULL = all S) -> logits [B, L, V]. */
avsr_tensor *avsr_decoder_forward(avsr_ctx *ctx, const avsr_decoder *dec, avsr_tensor *ys_in,
                                  avsr_tensor *memory, const int64_t *mem_lengths);

/* Cache of incremental decoding (ESPnet forward_one_step): for each layer
 * the outputs of the positions decoded so far, [n, len, d], in heap memory
 * (it survives avsr_ctx_reset). */
typedef struct avsr_decoder_cache {
    int layers;
    int64_t n, len, d;
    float **out; /* layers x [n, len, d] */
    int64_t cap; /* floats allocated per layer */
} avsr_decoder_cache;

avsr_decoder_cache *avsr_decoder_cache_create(const avsr_decoder *dec, avsr_error *err);
void avsr_decoder_cache_free(avsr_decoder_cache *c);
void avsr_decoder_cache_clear(avsr_decoder_cache *c); /* len = 0 */
/* Keep rows rows[0..n-1] (beam search re-ordering; repeats allowed). */
int avsr_decoder_cache_select(avsr_decoder_cache *c, const int64_t *rows, int64_t n,
                              avsr_error *err);

/* Next-token log-probabilities for N prefixes ys_prefix [N, l] (I64/I32):
 * positions cache->len .. l-1 are computed (each attending to all earlier
 * ones), the cache is extended to l, and log_softmax(output_layer(
 * after_norm(last position))) [N, V] is returned. With an empty cache and
 * l > 1 this is the full forward. memory [N, S, d], mem_lengths as above.
 * Equals avsr_decoder_forward's log-softmax at position l-1. */
avsr_tensor *avsr_decoder_step(avsr_ctx *ctx, const avsr_decoder *dec, avsr_decoder_cache *cache,
                               avsr_tensor *ys_prefix, avsr_tensor *memory,
                               const int64_t *mem_lengths);

#ifdef __cplusplus
}
#endif

#endif
