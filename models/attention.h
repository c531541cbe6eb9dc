/* attention: multi-head attention of ESPnet / Auto-AVSR, composed from
 * runtime ops (the tape gives the backward pass).
 *
 * Two flavours share one struct:
 *
 *   MultiHeadedAttention (rel_pos = false): scaled dot-product attention,
 *       q = linear_q(query), k = linear_k(key), v = linear_v(value), split
 *       into H heads of d_k = d / H; scores = q k^T / sqrt(d_k); masked
 *       keys get the float minimum before the softmax and 0 after it
 *       (ESPnet's forward_attention); dropout on the attention weights;
 *       context = attn @ v; output = linear_out(context). Self-attention
 *       (query, key and value the same tensor), causal decoder
 *       self-attention and cross-attention (query from the decoder,
 *       key = value = encoder memory) are calls with different arguments.
 *
 *   RelPositionMultiHeadedAttention (rel_pos = true, ESPnet "latest"
 *       rel_pos_type, Conformer): p = linear_pos(pos_emb) (no bias),
 *       scores = ((q + u) k^T + rel_shift((q + v_b) p^T)) / sqrt(d_k)
 *       with u = pos_bias_u, v_b = pos_bias_v ([H, d_k] each), then as
 *       above. Query, key and value have the same length T; pos_emb is
 *       [1, 2T-1, d] (avsr_op_rel_positions).
 *
 * Parameter names under the prefix (ESPnet state dict):
 *   linear_q.{weight,bias} linear_k.{weight,bias} linear_v.{weight,bias}
 *   linear_out.{weight,bias}; with rel_pos also linear_pos.weight,
 *   pos_bias_u, pos_bias_v.
 *
 * Fused projection: the q/k/v weights (and biases) are registered one after
 * the other, so in the flat parameter buffer they usually sit back to back.
 * When query == key == value, fuse_qkv is set, and the three weights are
 * contiguous in both the data and the gradient buffer with the same
 * requires-grad flag, the projection runs as ONE product with a [3d, d]
 * view of the weights (no copy of weights; the biases are used the same way
 * when contiguous, otherwise concatenated, 3d floats). Otherwise three
 * products run. Both give the same values.
 *
 * Masks: U8 (or BOOL/F32) tensors, nonzero = attend. [B, 1, Tk] (key
 * padding, broadcast over queries), [B, Tq, Tk] or [1, Tq, Tk] (causal).
 * NULL = attend everywhere. */
#ifndef AVSR_ATTENTION_H
#define AVSR_ATTENTION_H

#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "nn.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_mha_cfg {
    int64_t d_model; /* n_feat */
    int heads;       /* n_head; d_model % heads == 0 */
    float dropout;   /* on the attention weights (training only) */
    bool rel_pos;    /* RelPositionMultiHeadedAttention */
    bool fuse_qkv;   /* one product for q/k/v when possible (see above) */
} avsr_mha_cfg;

typedef struct avsr_mha {
    avsr_nn_linear linear_q, linear_k, linear_v, linear_out;
    avsr_nn_linear linear_pos;            /* rel_pos only, no bias */
    avsr_tensor *pos_bias_u, *pos_bias_v; /* [H, d_k], rel_pos only */
    int64_t d, dk;
    int h;
    float dropout;
    bool rel_pos, fuse_qkv;
} avsr_mha;

/* Register the parameters under prefix (torch defaults: U(+-1/sqrt(d)) for
 * the linears, xavier-uniform U(+-sqrt(6/(H + d_k))) for pos_bias_u/v). */
int avsr_mha_init(avsr_mha *m, avsr_params *p, const char *prefix, const avsr_mha_cfg *cfg,
                  avsr_error *err);

/* query [B, Tq, d], key/value [B, Tk, d] -> [B, Tq, d]. purpose: the
 * dropout stream of the attention weights. (rel_pos must be false.) */
avsr_tensor *avsr_mha_forward(avsr_ctx *ctx, const avsr_mha *m, avsr_tensor *query,
                              avsr_tensor *key, avsr_tensor *value, avsr_tensor *mask,
                              uint32_t purpose);

/* Relative-position self-attention: x [B, T, d] (query = key = value),
 * pos_emb [1, 2T-1, d] -> [B, T, d]. (rel_pos must be true.) */
avsr_tensor *avsr_mha_rel_forward(avsr_ctx *ctx, const avsr_mha *m, avsr_tensor *x,
                                  avsr_tensor *pos_emb, avsr_tensor *mask, uint32_t purpose);

/* True if a self-attention call would run the fused q/k/v product. */
bool avsr_mha_fused(const avsr_mha *m);

/* Masks (U8 arena tensors, 1 = attend):
 *   key padding [B, 1, T] from lengths (NULL lengths = all T);
 *   causal [1, Tq, Tk] for queries at positions Tk-Tq .. Tk-1:
 *   mask[i][j] = j <= Tk - Tq + i (Tq = Tk: ESPnet's subsequent_mask). */
avsr_tensor *avsr_pad_mask(avsr_ctx *ctx, int64_t B, int64_t T, const int64_t *lengths);
avsr_tensor *avsr_causal_mask(avsr_ctx *ctx, int64_t Tq, int64_t Tk);

#ifdef __cplusplus
}
#endif

#endif
