/* conformer: ESPnet Conformer / pre-LN Transformer encoder (see conformer.h). */
#include "conformer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

void avsr_conformer_cfg_default(avsr_conformer_cfg *c, int64_t idim, int64_t d_model, int heads,
                                int64_t ffn, int layers)
{
    memset(c, 0, sizeof *c);
    c->idim = idim;
    c->d_model = d_model;
    c->heads = heads;
    c->ffn = ffn;
    c->layers = layers;
    c->kernel = 31;
    c->dropout = 0.1f;
    c->pos_dropout = 0.1f;
    c->attn_dropout = 0.1f;
    c->ffn_act = AVSR_ACT_RELU;
    c->eps = 1e-12f;
    c->bn_eps = 1e-5f;
    c->bn_momentum = 0.1f;
    c->macaron = c->use_conv = c->rel_pos = true;
    c->bn_mask = true;
    c->conv_zero_pad = false;
    c->fuse_qkv = true;
    c->purpose_base = 0;
}

void avsr_transformer_cfg_default(avsr_conformer_cfg *c, int64_t idim, int64_t d_model,
                                  int heads, int64_t ffn, int layers)
{
    avsr_conformer_cfg_default(c, idim, d_model, heads, ffn, layers);
    c->macaron = c->use_conv = c->rel_pos = false;
}

int avsr_ffn_init(avsr_ffn *f, avsr_params *p, const char *prefix, int64_t d, int64_t hidden,
                  avsr_error *err)
{
    char n[AVSR_NN_NAME_MAX];
    if (avsr_nn_linear_init(&f->w_1, p, avsr_nn_sub(n, prefix, "w_1"), d, hidden, true, err) < 0 ||
        avsr_nn_linear_init(&f->w_2, p, avsr_nn_sub(n, prefix, "w_2"), hidden, d, true, err) < 0)
        return -1;
    return 0;
}

avsr_tensor *avsr_ffn_forward(avsr_ctx *ctx, const avsr_ffn *f, avsr_tensor *x, avsr_act_kind act,
                              float dropout, uint32_t purpose)
{
    avsr_tensor *h;
    if (f->w_1.lora) {
        /* a LoRA adapter on w_1 (models/lora.h): the fused linear + activation
         * product would not see it */
        h = avsr_nn_linear_forward(ctx, &f->w_1, x);
        h = act == AVSR_ACT_RELU   ? avsr_op_relu(ctx, h)
            : act == AVSR_ACT_SILU ? avsr_op_silu(ctx, h)
            : act == AVSR_ACT_GELU ? avsr_op_gelu(ctx, h)
                                   : h;
    } else {
        h = avsr_op_linear_act(ctx, x, f->w_1.weight, f->w_1.bias, act);
    }
    h = avsr_op_dropout(ctx, h, dropout, purpose);
    return avsr_nn_linear_forward(ctx, &f->w_2, h);
}

static int conv_module_init(avsr_conv_module *c, avsr_params *p, const char *prefix, int64_t C,
                            int kernel, float bn_eps, float bn_momentum, avsr_error *err)
{
    char n[AVSR_NN_NAME_MAX];
    int k1 = 1, pad = (kernel - 1) / 2;
    if (avsr_nn_conv_init(&c->pointwise_conv1, p, avsr_nn_sub(n, prefix, "pointwise_conv1"), 1, C, 2 * C,
                          &k1, NULL, NULL, NULL, 1, true, err) < 0 ||
        avsr_nn_conv_init(&c->depthwise_conv, p, avsr_nn_sub(n, prefix, "depthwise_conv"), 1, C, C,
                          &kernel, NULL, &pad, NULL, (int)C, true, err) < 0 ||
        avsr_nn_batch_norm_init(&c->norm, p, avsr_nn_sub(n, prefix, "norm"), C, bn_eps, bn_momentum,
                                err) < 0 ||
        avsr_nn_conv_init(&c->pointwise_conv2, p, avsr_nn_sub(n, prefix, "pointwise_conv2"), 1, C, C, &k1,
                          NULL, NULL, NULL, 1, true, err) < 0)
        return -1;
    return 0;
}

/* The [Cout, Cin, 1] weight of a pointwise convolution as [Cout, Cin]. */
static avsr_tensor *pointwise(avsr_ctx *ctx, const avsr_nn_conv *c, avsr_tensor *x)
{
    int64_t s[2] = {c->weight->shape[0], c->weight->shape[1]};
    return avsr_op_linear(ctx, x, avsr_op_reshape(ctx, c->weight, 2, s), c->bias);
}

/* x [B, T, C] -> [B, T, C]. The pointwise convolutions run as linears on
 * the [B, T, C] layout (same values as Conv1d with kernel 1). pad_inv
 * [B, T, 1] (1 = padded) or NULL; bn_mask [B, T] (1 = valid) or NULL. */
static avsr_tensor *conv_module_forward(avsr_ctx *ctx, const avsr_conv_module *c, avsr_tensor *x,
                                        avsr_tensor *pad_inv, avsr_tensor *bn_mask)
{
    avsr_tensor *y = pointwise(ctx, &c->pointwise_conv1, x); /* [B, T, 2C] */
    y = avsr_op_glu(ctx, y, -1);                             /* [B, T, C] */
    if (pad_inv)
        y = avsr_op_masked_fill(ctx, y, pad_inv, 0.0f);
    y = avsr_op_transpose(ctx, y, 1, 2); /* [B, C, T] */
    y = avsr_nn_conv_forward(ctx, &c->depthwise_conv, y);
    y = avsr_nn_batch_norm_forward(ctx, &c->norm, y, bn_mask);
    y = avsr_op_silu(ctx, y);
    y = avsr_op_transpose(ctx, y, 1, 2); /* [B, T, C] */
    return pointwise(ctx, &c->pointwise_conv2, y);
}

static int layer_init(avsr_conformer_layer *l, avsr_params *p, const char *prefix,
                      const avsr_conformer_cfg *cfg, avsr_error *err)
{
    char n[AVSR_NN_NAME_MAX];
    int64_t d = cfg->d_model;
    avsr_mha_cfg mc = {.d_model = d,
                       .heads = cfg->heads,
                       .dropout = cfg->attn_dropout,
                       .rel_pos = cfg->rel_pos,
                       .fuse_qkv = cfg->fuse_qkv};
    if (avsr_mha_init(&l->self_attn, p, avsr_nn_sub(n, prefix, "self_attn"), &mc, err) < 0 ||
        avsr_ffn_init(&l->feed_forward, p, avsr_nn_sub(n, prefix, "feed_forward"), d, cfg->ffn, err) < 0)
        return -1;
    if (cfg->macaron &&
        avsr_ffn_init(&l->feed_forward_macaron, p, avsr_nn_sub(n, prefix, "feed_forward_macaron"), d,
                      cfg->ffn, err) < 0)
        return -1;
    if (cfg->use_conv && conv_module_init(&l->conv_module, p, avsr_nn_sub(n, prefix, "conv_module"), d,
                                          cfg->kernel, cfg->bn_eps, cfg->bn_momentum, err) < 0)
        return -1;
    if (avsr_nn_layer_norm_init(&l->norm_ff, p, avsr_nn_sub(n, prefix, "norm_ff"), d, cfg->eps, err) < 0 ||
        avsr_nn_layer_norm_init(&l->norm_mha, p, avsr_nn_sub(n, prefix, "norm_mha"), d, cfg->eps, err) < 0)
        return -1;
    if (cfg->macaron && avsr_nn_layer_norm_init(&l->norm_ff_macaron, p,
                                                avsr_nn_sub(n, prefix, "norm_ff_macaron"), d, cfg->eps,
                                                err) < 0)
        return -1;
    if (cfg->use_conv &&
        (avsr_nn_layer_norm_init(&l->norm_conv, p, avsr_nn_sub(n, prefix, "norm_conv"), d, cfg->eps,
                                 err) < 0 ||
         avsr_nn_layer_norm_init(&l->norm_final, p, avsr_nn_sub(n, prefix, "norm_final"), d, cfg->eps,
                                 err) < 0))
        return -1;
    return 0;
}

int avsr_conformer_encoder_init(avsr_conformer_encoder *enc, avsr_params *p, const char *prefix,
                                const avsr_conformer_cfg *cfg, avsr_error *err)
{
    memset(enc, 0, sizeof *enc);
    if (cfg->layers < 0 || cfg->d_model < 2 || cfg->d_model % 2 || cfg->ffn < 1 ||
        cfg->idim < 0 || (cfg->use_conv && (cfg->kernel < 1 || cfg->kernel % 2 == 0)))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: encoder config: d_model %lld (even), ffn %lld, %d layers, "
                              "idim %lld, kernel %d (odd)",
                              prefix, (long long)cfg->d_model, (long long)cfg->ffn, cfg->layers,
                              (long long)cfg->idim, cfg->kernel);
    enc->cfg = *cfg;
    char n[AVSR_NN_NAME_MAX];
    if (cfg->idim > 0 && avsr_nn_linear_init(&enc->embed, p, avsr_nn_sub(n, prefix, "embed.0"), cfg->idim,
                                             cfg->d_model, true, err) < 0)
        return -1;
    if (cfg->layers > 0) {
        enc->layers = calloc((size_t)cfg->layers, sizeof *enc->layers);
        if (!enc->layers)
            return AVSR_NOMEM(err, sizeof *enc->layers * (size_t)cfg->layers);
    }
    for (int i = 0; i < cfg->layers; i++)
        if (layer_init(&enc->layers[i], p, avsr_nn_sub(n, prefix, "encoders.%d", i), cfg, err) < 0)
            return -1;
    return avsr_nn_layer_norm_init(&enc->after_norm, p, avsr_nn_sub(n, prefix, "after_norm"),
                                   cfg->d_model, cfg->eps, err);
}

void avsr_conformer_encoder_free(avsr_conformer_encoder *enc)
{
    if (!enc)
        return;
    free(enc->layers);
    enc->layers = NULL;
}

/* Per-forward padding helpers derived from the key-padding mask. */
typedef struct pad_info {
    avsr_tensor *mask;    /* [B, 1, T] U8, 1 = valid (attention) */
    avsr_tensor *bn_mask; /* [B, T] view of mask, or NULL */
    avsr_tensor *pad_inv; /* [B, T, 1] U8, 1 = padded, or NULL */
} pad_info;

static avsr_tensor *layer_forward(avsr_ctx *ctx, const avsr_conformer_encoder *enc, int i,
                                  avsr_tensor *x, avsr_tensor *pos_emb, const pad_info *pi)
{
    const avsr_conformer_cfg *c = &enc->cfg;
    const avsr_conformer_layer *l = &enc->layers[i];
    uint32_t pb = c->purpose_base + 16u * (uint32_t)(i + 1);
    float ff_scale = c->macaron ? 0.5f : 1.0f;
    avsr_tensor *h;
    if (c->macaron) {
        h = avsr_nn_layer_norm_forward(ctx, &l->norm_ff_macaron, x);
        h = avsr_ffn_forward(ctx, &l->feed_forward_macaron, h, c->ffn_act, c->dropout, pb + 0);
        x = avsr_op_axpby(ctx, x, avsr_op_dropout(ctx, h, c->dropout, pb + 1), 1.0f, ff_scale);
    }
    h = avsr_nn_layer_norm_forward(ctx, &l->norm_mha, x);
    if (c->rel_pos)
        h = avsr_mha_rel_forward(ctx, &l->self_attn, h, pos_emb, pi->mask, pb + 2);
    else
        h = avsr_mha_forward(ctx, &l->self_attn, h, h, h, pi->mask, pb + 2);
    x = avsr_op_add(ctx, x, avsr_op_dropout(ctx, h, c->dropout, pb + 3));
    if (c->use_conv) {
        h = avsr_nn_layer_norm_forward(ctx, &l->norm_conv, x);
        h = conv_module_forward(ctx, &l->conv_module, h, pi->pad_inv, pi->bn_mask);
        x = avsr_op_add(ctx, x, avsr_op_dropout(ctx, h, c->dropout, pb + 4));
    }
    h = avsr_nn_layer_norm_forward(ctx, &l->norm_ff, x);
    h = avsr_ffn_forward(ctx, &l->feed_forward, h, c->ffn_act, c->dropout, pb + 5);
    x = avsr_op_axpby(ctx, x, avsr_op_dropout(ctx, h, c->dropout, pb + 6), 1.0f, ff_scale);
    if (c->use_conv)
        x = avsr_nn_layer_norm_forward(ctx, &l->norm_final, x);
    return x;
}

static int make_pad_info(avsr_ctx *ctx, const avsr_conformer_cfg *c, int64_t B, int64_t T,
                         const int64_t *lengths, pad_info *pi)
{
    memset(pi, 0, sizeof *pi);
    if (!(pi->mask = avsr_pad_mask(ctx, B, T, lengths)))
        return -1;
    if (c->use_conv && c->bn_mask) {
        int64_t s[2] = {B, T};
        if (!(pi->bn_mask = avsr_tensor_wrap(ctx, AVSR_U8, 2, s, pi->mask->data)))
            return -1;
    }
    if (c->use_conv && c->conv_zero_pad && lengths) {
        int64_t s[3] = {B, T, 1};
        if (!(pi->pad_inv = avsr_tensor_new(ctx, AVSR_U8, 3, s)))
            return -1;
        const uint8_t *m = pi->mask->data;
        uint8_t *d = pi->pad_inv->data;
        for (int64_t k = 0; k < B * T; k++)
            d[k] = !m[k];
    }
    return 0;
}

avsr_tensor *avsr_conformer_layer_forward(avsr_ctx *ctx, const avsr_conformer_encoder *enc,
                                          int layer, avsr_tensor *x, avsr_tensor *pos_emb,
                                          avsr_tensor *mask)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    if (layer < 0 || layer >= enc->cfg.layers)
        return avsr_ctx_fail(ctx, "conformer layer: index %d outside [0, %d)", layer, enc->cfg.layers);
    if (x->ndim != 3 || x->shape[2] != enc->cfg.d_model)
        return avsr_ctx_fail(ctx, "conformer layer: x: expected [B, T, %lld]",
                     (long long)enc->cfg.d_model);
    pad_info pi;
    int64_t B = x->shape[0], T = x->shape[1];
    if (mask) {
        memset(&pi, 0, sizeof pi);
        if (mask->ndim != 3 || mask->shape[0] != B || mask->shape[1] != 1 || mask->shape[2] != T ||
            mask->dtype != AVSR_U8)
            return avsr_ctx_fail(ctx, "conformer layer: mask: expected U8 [%lld, 1, %lld]",
                         (long long)B, (long long)T);
        int64_t *len = avsr_ctx_alloc(ctx, sizeof *len * (size_t)B);
        if (!len)
            return NULL;
        const uint8_t *m = mask->data;
        for (int64_t b = 0; b < B; b++) {
            len[b] = 0;
            for (int64_t t = 0; t < T; t++)
                len[b] += m[b * T + t] != 0;
        }
        if (make_pad_info(ctx, &enc->cfg, B, T, len, &pi) < 0)
            return NULL;
    } else if (make_pad_info(ctx, &enc->cfg, B, T, NULL, &pi) < 0) {
        return NULL;
    }
    return layer_forward(ctx, enc, layer, x, pos_emb, &pi);
}

avsr_tensor *avsr_conformer_encoder_forward(avsr_ctx *ctx, const avsr_conformer_encoder *enc,
                                            avsr_tensor *x, const int64_t *lengths)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    const avsr_conformer_cfg *c = &enc->cfg;
    int64_t in = c->idim > 0 ? c->idim : c->d_model;
    if (x->ndim != 3 || x->shape[2] != in || x->dtype != AVSR_F32) {
        char b[96];
        return avsr_ctx_fail(ctx, "conformer encoder: x: got %s, expected [B, T, %lld] f32",
                     avsr_shape_str(x, b, sizeof b), (long long)in);
    }
    int64_t B = x->shape[0], T = x->shape[1], d = c->d_model;
    pad_info pi;
    if (make_pad_info(ctx, c, B, T, lengths, &pi) < 0)
        return NULL;
    if (c->idim > 0)
        x = avsr_nn_linear_forward(ctx, &enc->embed, x);
    avsr_tensor *pos = NULL;
    if (c->rel_pos) {
        x = avsr_op_scale(ctx, x, sqrtf((float)d));
        int64_t ps[3] = {1, 2 * T - 1, d};
        pos = avsr_op_reshape(ctx, avsr_op_rel_positions(ctx, T, d), 3, ps);
        x = avsr_op_dropout(ctx, x, c->pos_dropout, c->purpose_base + 0);
        /* one mask for the batch (ESPnet), keyed by the batch, not by a sample */
        pos = avsr_op_dropout_shared(ctx, pos, c->pos_dropout, c->purpose_base + 1);
    } else {
        x = avsr_op_add(ctx, avsr_op_scale(ctx, x, sqrtf((float)d)),
                        avsr_op_sinusoid_positions(ctx, T, d)); /* [T, d] broadcast */
        x = avsr_op_dropout(ctx, x, c->pos_dropout, c->purpose_base + 0);
    }
    for (int i = 0; i < c->layers; i++)
        x = layer_forward(ctx, enc, i, x, pos, &pi);
    return avsr_nn_layer_norm_forward(ctx, &enc->after_norm, x);
}
