/* decoder: ESPnet Transformer attention decoder (see decoder.h). */
#include "decoder.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

void avsr_decoder_cfg_default(avsr_decoder_cfg *c, int64_t vocab, int64_t d_model, int heads,
                              int64_t ffn, int layers)
{
    memset(c, 0, sizeof *c);
    c->vocab = vocab;
    c->d_model = d_model;
    c->heads = heads;
    c->ffn = ffn;
    c->layers = layers;
    c->dropout = 0.1f;
    c->pos_dropout = 0.1f;
    c->self_attn_dropout = 0.1f;
    c->src_attn_dropout = 0.1f;
    c->ffn_act = AVSR_ACT_RELU;
    c->eps = 1e-12f;
    c->fuse_qkv = true;
    c->purpose_base = 4096;
}

int avsr_decoder_init(avsr_decoder *dec, avsr_params *p, const char *prefix,
                      const avsr_decoder_cfg *cfg, avsr_error *err)
{
    memset(dec, 0, sizeof *dec);
    if (cfg->vocab < 1 || cfg->d_model < 2 || cfg->d_model % 2 || cfg->layers < 0 ||
        cfg->ffn < 1)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: decoder config: vocab %lld, d_model %lld (even), ffn %lld, "
                              "%d layers",
                              prefix, (long long)cfg->vocab, (long long)cfg->d_model,
                              (long long)cfg->ffn, cfg->layers);
    dec->cfg = *cfg;
    int64_t d = cfg->d_model;
    char n[AVSR_NN_NAME_MAX];
    if (avsr_nn_embedding_init(&dec->embed, p, avsr_nn_sub(n, prefix, "embed.0"), cfg->vocab, d, -1,
                               err) < 0)
        return -1;
    if (cfg->layers > 0) {
        dec->layers = calloc((size_t)cfg->layers, sizeof *dec->layers);
        if (!dec->layers)
            return AVSR_NOMEM(err, sizeof *dec->layers * (size_t)cfg->layers);
    }
    for (int i = 0; i < cfg->layers; i++) {
        avsr_decoder_layer *l = &dec->layers[i];
        avsr_mha_cfg sa = {.d_model = d,
                           .heads = cfg->heads,
                           .dropout = cfg->self_attn_dropout,
                           .fuse_qkv = cfg->fuse_qkv};
        avsr_mha_cfg ca = {.d_model = d,
                           .heads = cfg->heads,
                           .dropout = cfg->src_attn_dropout,
                           .fuse_qkv = cfg->fuse_qkv};
        if (avsr_mha_init(&l->self_attn, p, avsr_nn_sub(n, prefix, "decoders.%d.self_attn", i), &sa,
                          err) < 0 ||
            avsr_mha_init(&l->src_attn, p, avsr_nn_sub(n, prefix, "decoders.%d.src_attn", i), &ca, err) <
                0 ||
            avsr_ffn_init(&l->feed_forward, p, avsr_nn_sub(n, prefix, "decoders.%d.feed_forward", i), d,
                          cfg->ffn, err) < 0 ||
            avsr_nn_layer_norm_init(&l->norm1, p, avsr_nn_sub(n, prefix, "decoders.%d.norm1", i), d,
                                    cfg->eps, err) < 0 ||
            avsr_nn_layer_norm_init(&l->norm2, p, avsr_nn_sub(n, prefix, "decoders.%d.norm2", i), d,
                                    cfg->eps, err) < 0 ||
            avsr_nn_layer_norm_init(&l->norm3, p, avsr_nn_sub(n, prefix, "decoders.%d.norm3", i), d,
                                    cfg->eps, err) < 0)
            return -1;
    }
    if (avsr_nn_layer_norm_init(&dec->after_norm, p, avsr_nn_sub(n, prefix, "after_norm"), d, cfg->eps,
                                err) < 0 ||
        avsr_nn_linear_init(&dec->output_layer, p, avsr_nn_sub(n, prefix, "output_layer"), d, cfg->vocab,
                            true, err) < 0)
        return -1;
    return 0;
}

void avsr_decoder_free(avsr_decoder *dec)
{
    if (!dec)
        return;
    free(dec->layers);
    dec->layers = NULL;
}

static int64_t get_id(const avsr_tensor *t, int64_t i)
{
    return t->dtype == AVSR_I64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
}

int avsr_decoder_make_inputs(avsr_ctx *ctx, avsr_tensor *ys, int64_t sos, int64_t eos,
                             int64_t ignore, int64_t pad_to, avsr_tensor **ys_in,
                             avsr_tensor **ys_out, int64_t *out_lengths)
{
    *ys_in = *ys_out = NULL;
    if (!ys || avsr_ctx_failed(ctx))
        return -1;
    if (ys->ndim != 2 || (ys->dtype != AVSR_I64 && ys->dtype != AVSR_I32)) {
        char b[96];
        avsr_ctx_fail(ctx, "decoder make_inputs: ys: got %s %s, expected [B, L] I64 or I32",
              avsr_shape_str(ys, b, sizeof b), avsr_dtype_name(ys->dtype));
        return -1;
    }
    int64_t B = ys->shape[0], L = ys->shape[1], lmax = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t n = 0;
        for (int64_t t = 0; t < L; t++)
            n += get_id(ys, b * L + t) != ignore;
        lmax = n > lmax ? n : lmax;
    }
    if (pad_to > lmax)
        lmax = pad_to;
    int64_t s[2] = {B, lmax + 1};
    avsr_tensor *in = avsr_tensor_new(ctx, AVSR_I64, 2, s);
    avsr_tensor *out = avsr_tensor_new(ctx, AVSR_I64, 2, s);
    if (!in || !out)
        return -1;
    int64_t *pi = in->data, *po = out->data;
    for (int64_t b = 0; b < B; b++) {
        int64_t *ri = pi + b * (lmax + 1), *ro = po + b * (lmax + 1), n = 0;
        ri[0] = sos;
        for (int64_t t = 0; t < L; t++) {
            int64_t y = get_id(ys, b * L + t);
            if (y == ignore)
                continue;
            ri[n + 1] = y;
            ro[n] = y;
            n++;
        }
        ro[n] = eos;
        for (int64_t t = n + 1; t <= lmax; t++) {
            ri[t] = eos;
            ro[t] = ignore;
        }
        if (out_lengths)
            out_lengths[b] = n + 1;
    }
    *ys_in = in;
    *ys_out = out;
    return 0;
}

/* embed.0(ys) * sqrt(d) + sinusoid, dropout: [N, l] -> [N, l, d] */
static avsr_tensor *embed(avsr_ctx *ctx, const avsr_decoder *dec, avsr_tensor *ys)
{
    const avsr_decoder_cfg *c = &dec->cfg;
    if (ys->ndim != 2 || (ys->dtype != AVSR_I64 && ys->dtype != AVSR_I32)) {
        char b[96];
        return avsr_ctx_fail(ctx, "decoder: ys: got %s %s, expected [B, L] I64 or I32",
                     avsr_shape_str(ys, b, sizeof b), avsr_dtype_name(ys->dtype));
    }
    if (ys->shape[1] < 1)
        return avsr_ctx_fail(ctx, "decoder: ys: empty sequence");
    avsr_tensor *x = avsr_nn_embedding_forward(ctx, &dec->embed, ys);
    x = avsr_op_add(ctx, avsr_op_scale(ctx, x, sqrtf((float)c->d_model)),
                    avsr_op_sinusoid_positions(ctx, ys->shape[1], c->d_model));
    return avsr_op_dropout(ctx, x, c->pos_dropout, c->purpose_base + 0);
}

/* Layer i on x_full [N, L, d], computing positions l0 .. L-1 -> [N, L-l0, d]. */
static avsr_tensor *layer_forward(avsr_ctx *ctx, const avsr_decoder *dec, int i,
                                  avsr_tensor *x_full, int64_t l0, avsr_tensor *memory,
                                  avsr_tensor *mem_mask)
{
    if (!x_full)
        return NULL;
    const avsr_decoder_cfg *c = &dec->cfg;
    const avsr_decoder_layer *l = &dec->layers[i];
    uint32_t pb = c->purpose_base + 16u * (uint32_t)(i + 1);
    int64_t L = x_full->shape[1];
    avsr_tensor *h = avsr_nn_layer_norm_forward(ctx, &l->norm1, x_full); /* [N, L, d] */
    avsr_tensor *hq = h, *res = x_full;
    if (l0 > 0) {
        hq = avsr_op_slice(ctx, h, 1, l0, L, 1);
        res = avsr_op_slice(ctx, x_full, 1, l0, L, 1);
    }
    avsr_tensor *tmask = avsr_causal_mask(ctx, L - l0, L);
    avsr_tensor *a = avsr_mha_forward(ctx, &l->self_attn, hq, h, h, tmask, pb + 0);
    avsr_tensor *x = avsr_op_add(ctx, res, avsr_op_dropout(ctx, a, c->dropout, pb + 1));
    h = avsr_nn_layer_norm_forward(ctx, &l->norm2, x);
    a = avsr_mha_forward(ctx, &l->src_attn, h, memory, memory, mem_mask, pb + 2);
    x = avsr_op_add(ctx, x, avsr_op_dropout(ctx, a, c->dropout, pb + 3));
    h = avsr_nn_layer_norm_forward(ctx, &l->norm3, x);
    h = avsr_ffn_forward(ctx, &l->feed_forward, h, c->ffn_act, c->dropout, pb + 4);
    return avsr_op_add(ctx, x, avsr_op_dropout(ctx, h, c->dropout, pb + 5));
}

static bool check_memory(avsr_ctx *ctx, const avsr_decoder *dec, avsr_tensor *memory, int64_t N)
{
    if (memory->ndim == 3 && memory->shape[0] == N && memory->shape[2] == dec->cfg.d_model &&
        memory->dtype == AVSR_F32)
        return true;
    char b[96];
    avsr_ctx_fail(ctx, "decoder: memory: got %s, expected [%lld, S, %lld] f32",
          avsr_shape_str(memory, b, sizeof b), (long long)N, (long long)dec->cfg.d_model);
    return false;
}

avsr_tensor *avsr_decoder_forward(avsr_ctx *ctx, const avsr_decoder *dec, avsr_tensor *ys_in,
                                  avsr_tensor *memory, const int64_t *mem_lengths)
{
    if (!ys_in || !memory || avsr_ctx_failed(ctx))
        return NULL;
    avsr_tensor *x = embed(ctx, dec, ys_in);
    if (!x || !check_memory(ctx, dec, memory, ys_in->shape[0]))
        return NULL;
    avsr_tensor *mm = NULL;
    if (mem_lengths &&
        !(mm = avsr_pad_mask(ctx, memory->shape[0], memory->shape[1], mem_lengths)))
        return NULL;
    for (int i = 0; i < dec->cfg.layers; i++)
        x = layer_forward(ctx, dec, i, x, 0, memory, mm);
    x = avsr_nn_layer_norm_forward(ctx, &dec->after_norm, x);
    return avsr_nn_linear_forward(ctx, &dec->output_layer, x);
}

avsr_decoder_cache *avsr_decoder_cache_create(const avsr_decoder *dec, avsr_error *err)
{
    avsr_decoder_cache *c = calloc(1, sizeof *c);
    int nl = dec->cfg.layers;
    if (!c || !(c->out = calloc((size_t)(nl ? nl : 1), sizeof *c->out))) {
        free(c);
        AVSR_NOMEM(err, sizeof *c);
        return NULL;
    }
    c->layers = nl;
    c->d = dec->cfg.d_model;
    return c;
}

void avsr_decoder_cache_free(avsr_decoder_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->layers; i++)
        free(c->out[i]);
    free(c->out);
    free(c);
}

void avsr_decoder_cache_clear(avsr_decoder_cache *c)
{
    c->len = 0;
    c->n = 0;
}

static int cache_reserve(avsr_decoder_cache *c, int64_t floats, avsr_error *err)
{
    if (floats <= c->cap)
        return 0;
    int64_t cap = c->cap ? c->cap : 1024;
    while (cap < floats)
        cap *= 2;
    for (int i = 0; i < c->layers; i++) {
        float *p = realloc(c->out[i], sizeof(float) * (size_t)cap);
        if (!p)
            return AVSR_NOMEM(err, sizeof(float) * (size_t)cap);
        c->out[i] = p;
    }
    c->cap = cap;
    return 0;
}

int avsr_decoder_cache_select(avsr_decoder_cache *c, const int64_t *rows, int64_t n,
                              avsr_error *err)
{
    int64_t row = c->len * c->d;
    for (int64_t r = 0; r < n; r++)
        if (rows[r] < 0 || rows[r] >= c->n)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "decoder cache select: row %lld outside [0, %lld)",
                                  (long long)rows[r], (long long)c->n);
    if (row == 0) {
        c->n = n;
        return 0;
    }
    float *tmp = malloc(sizeof(float) * (size_t)(n * row));
    if (!tmp)
        return AVSR_NOMEM(err, sizeof(float) * (size_t)(n * row));
    if (cache_reserve(c, n * row, err) < 0) {
        free(tmp);
        return -1;
    }
    for (int i = 0; i < c->layers; i++) {
        for (int64_t r = 0; r < n; r++)
            memcpy(tmp + r * row, c->out[i] + rows[r] * row, sizeof(float) * (size_t)row);
        memcpy(c->out[i], tmp, sizeof(float) * (size_t)(n * row));
    }
    free(tmp);
    c->n = n;
    return 0;
}

avsr_tensor *avsr_decoder_step(avsr_ctx *ctx, const avsr_decoder *dec, avsr_decoder_cache *cache,
                               avsr_tensor *ys_prefix, avsr_tensor *memory,
                               const int64_t *mem_lengths)
{
    if (!ys_prefix || !memory || avsr_ctx_failed(ctx))
        return NULL;
    avsr_tensor *x = embed(ctx, dec, ys_prefix); /* [N, l, d] */
    if (!x)
        return NULL;
    int64_t N = ys_prefix->shape[0], l = ys_prefix->shape[1], d = dec->cfg.d_model;
    int64_t l0 = cache->len;
    if (cache->layers != dec->cfg.layers || cache->d != d)
        return avsr_ctx_fail(ctx, "decoder step: cache made for another decoder");
    if (l0 > 0 && cache->n != N)
        return avsr_ctx_fail(ctx, "decoder step: cache holds %lld prefixes, ys_prefix has %lld",
                     (long long)cache->n, (long long)N);
    if (l0 >= l)
        return avsr_ctx_fail(ctx, "decoder step: cache already holds %lld positions, ys_prefix has %lld",
                     (long long)l0, (long long)l);
    if (!check_memory(ctx, dec, memory, N))
        return NULL;
    avsr_tensor *mm = NULL;
    if (mem_lengths &&
        !(mm = avsr_pad_mask(ctx, memory->shape[0], memory->shape[1], mem_lengths)))
        return NULL;
    if (cache_reserve(cache, N * l * d, avsr_ctx_error(ctx)) < 0)
        return NULL;
    avsr_tensor *out = x;
    for (int i = 0; i < dec->cfg.layers; i++) {
        out = layer_forward(ctx, dec, i, x, l0, memory, mm); /* [N, l-l0, d] */
        if (!out)
            return NULL;
        avsr_tensor *full = out;
        if (l0 > 0) {
            int64_t cs[3] = {N, l0, d};
            avsr_tensor *parts[2] = {avsr_tensor_wrap(ctx, AVSR_F32, 3, cs, cache->out[i]), out};
            if (!parts[0] || !(full = avsr_op_concat(ctx, 2, parts, 1))) /* [N, l, d] */
                return NULL;
        }
        memcpy(cache->out[i], full->data, sizeof(float) * (size_t)(N * l * d));
        x = full;
    }
    cache->n = N;
    cache->len = l;
    int64_t ls[2] = {N, d};
    avsr_tensor *last = avsr_op_slice(ctx, out, 1, out->shape[1] - 1, out->shape[1], 1);
    last = avsr_op_reshape(ctx, last, 2, ls);
    last = avsr_nn_layer_norm_forward(ctx, &dec->after_norm, last);
    last = avsr_nn_linear_forward(ctx, &dec->output_layer, last); /* [N, V] */
    return avsr_op_log_softmax(ctx, last, NULL);
}
