/* attention: ESPnet multi-head attention (see attention.h). */
#include "attention.h"

#include "lora.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ops.h"

/* Record a model-level error in the context (first one wins); NULL. */
static avsr_tensor *param(avsr_params *p, const char *prefix, const char *leaf, int ndim,
                          const int64_t *shape, avsr_init_kind init, float a, avsr_error *err)
{
    char name[AVSR_NN_NAME_MAX];
    avsr_nn_name(name, "%s.%s", prefix, leaf);
    avsr_tensor *t = avsr_params_add(p, name, ndim, shape, err);
    if (t && avsr_params_set_init(p, t, init, a, err) < 0)
        return NULL;
    return t;
}

int avsr_mha_init(avsr_mha *m, avsr_params *p, const char *prefix, const avsr_mha_cfg *cfg,
                  avsr_error *err)
{
    memset(m, 0, sizeof *m);
    if (cfg->heads < 1 || cfg->d_model < 1 || cfg->d_model % cfg->heads)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: attention with d_model %lld and %d heads (d_model must be "
                              "a positive multiple of heads)",
                              prefix, (long long)cfg->d_model, cfg->heads);
    int64_t d = cfg->d_model;
    m->d = d;
    m->h = cfg->heads;
    m->dk = d / cfg->heads;
    m->dropout = cfg->dropout;
    m->rel_pos = cfg->rel_pos;
    m->fuse_qkv = cfg->fuse_qkv;
    /* q/k/v weights first, then their biases, so that each group is one
     * contiguous block of the flat buffer (the fused projection). */
    int64_t ws[2] = {d, d}, bs[1] = {d};
    float bound = 1.0f / sqrtf((float)d);
    avsr_nn_linear *lin[3] = {&m->linear_q, &m->linear_k, &m->linear_v};
    const char *names[3] = {"linear_q", "linear_k", "linear_v"};
    char leaf[AVSR_NN_NAME_MAX];
    for (int i = 0; i < 3; i++) {
        lin[i]->in = lin[i]->out = d;
        avsr_nn_name(leaf, "%s.weight", names[i]);
        if (!(lin[i]->weight = param(p, prefix, leaf, 2, ws, AVSR_INIT_UNIFORM, bound, err)))
            return -1;
    }
    for (int i = 0; i < 3; i++) {
        avsr_nn_name(leaf, "%s.bias", names[i]);
        if (!(lin[i]->bias = param(p, prefix, leaf, 1, bs, AVSR_INIT_UNIFORM, bound, err)))
            return -1;
    }
    /* let LoRA tracking see q/k/v like any other linear (models/lora.h) */
    for (int i = 0; i < 3; i++)
        avsr_lora_note_linear(lin[i]);
    char sub[AVSR_NN_NAME_MAX];
    if (avsr_nn_linear_init(&m->linear_out, p, avsr_nn_name(sub, "%s.linear_out", prefix), d, d,
                            true, err) < 0)
        return -1;
    if (m->rel_pos) {
        if (avsr_nn_linear_init(&m->linear_pos, p, avsr_nn_name(sub, "%s.linear_pos", prefix), d,
                                d, false, err) < 0)
            return -1;
        int64_t hs[2] = {m->h, m->dk};
        float xb = sqrtf(6.0f / (float)(m->h + m->dk)); /* xavier_uniform_ on [H, d_k] */
        if (!(m->pos_bias_u = param(p, prefix, "pos_bias_u", 2, hs, AVSR_INIT_UNIFORM, xb, err)) ||
            !(m->pos_bias_v = param(p, prefix, "pos_bias_v", 2, hs, AVSR_INIT_UNIFORM, xb, err)))
            return -1;
    }
    return 0;
}

/* a, b, c back to back in the data and gradient buffers, same grad flag. */
static bool contiguous3(const avsr_tensor *a, const avsr_tensor *b, const avsr_tensor *c)
{
    const float *da = a->data, *db = b->data, *dc = c->data;
    if (!da || !a->grad || db != da + a->numel || dc != db + b->numel)
        return false;
    if (b->grad != a->grad + a->numel || c->grad != b->grad + b->numel)
        return false;
    unsigned f = a->flags & AVSR_T_REQUIRES_GRAD;
    return (b->flags & AVSR_T_REQUIRES_GRAD) == f && (c->flags & AVSR_T_REQUIRES_GRAD) == f;
}

bool avsr_mha_fused(const avsr_mha *m)
{
    /* an adapter on q, k or v needs the separate products */
    return m->fuse_qkv && !m->linear_q.lora && !m->linear_k.lora && !m->linear_v.lora &&
           contiguous3(m->linear_q.weight, m->linear_k.weight, m->linear_v.weight);
}

/* A [rows, cols] view over three contiguous parameters (data and grad
 * shared with them; no copy). */
static avsr_tensor *view3(avsr_ctx *ctx, const avsr_tensor *a, int ndim, const int64_t *shape)
{
    avsr_tensor *v = avsr_tensor_wrap(ctx, AVSR_F32, ndim, shape, a->data);
    if (!v)
        return NULL;
    v->grad = a->grad;
    v->flags |= (a->flags & AVSR_T_REQUIRES_GRAD) | AVSR_T_PARAM;
    return v;
}

/* Chunk k of n equal chunks of t's flat data, as a tensor of the given
 * shape that shares data AND gradient with t (like avsr_op_reshape, no
 * copy, no tape entry: consumers accumulate straight into t's gradient,
 * which t's own backward reads later). */
static avsr_tensor *chunk_view(avsr_ctx *ctx, avsr_tensor *t, int k, int n, int ndim,
                               const int64_t *shape)
{
    if (!t)
        return NULL;
    int64_t len = t->numel / n;
    avsr_tensor *v = avsr_tensor_wrap(ctx, AVSR_F32, ndim, shape, avsr_f32(t) + k * len);
    if (!v || v->numel != len)
        return avsr_ctx_fail(ctx, "attention: internal chunk view of %lld elements", (long long)len);
    if (avsr_tensor_requires_grad(t)) {
        float *g = avsr_tensor_grad(ctx, t);
        if (!g)
            return NULL;
        v->grad = g + k * len;
        v->flags |= AVSR_T_REQUIRES_GRAD;
    }
    return v;
}

/* [B, T, d] -> [B, H, T, d_k] */
static avsr_tensor *split_heads(avsr_ctx *ctx, const avsr_mha *m, avsr_tensor *t)
{
    if (!t)
        return NULL;
    int64_t s[4] = {t->shape[0], t->shape[1], m->h, m->dk};
    return avsr_op_transpose(ctx, avsr_op_reshape(ctx, t, 4, s), 1, 2);
}

/* [B, H, T, d_k] -> [B, T, d] */
static avsr_tensor *merge_heads(avsr_ctx *ctx, const avsr_mha *m, avsr_tensor *t)
{
    if (!t)
        return NULL;
    int64_t s[3] = {t->shape[0], t->shape[2], m->d};
    return avsr_op_reshape(ctx, avsr_op_transpose(ctx, t, 1, 2), 3, s);
}

/* q, k, v in [B, H, T, d_k]. */
static int project_qkv(avsr_ctx *ctx, const avsr_mha *m, avsr_tensor *query, avsr_tensor *key,
                       avsr_tensor *value, avsr_tensor **q, avsr_tensor **k, avsr_tensor **v)
{
    *q = *k = *v = NULL;
    if (query == key && key == value && avsr_mha_fused(m)) {
        int64_t d = m->d, B = query->shape[0], T = query->shape[1];
        int64_t ws[2] = {3 * d, d}, bs[1] = {3 * d};
        avsr_tensor *w = view3(ctx, m->linear_q.weight, 2, ws); /* [3d, d] */
        avsr_tensor *b;                                          /* [3d] */
        if (contiguous3(m->linear_q.bias, m->linear_k.bias, m->linear_v.bias)) {
            b = view3(ctx, m->linear_q.bias, 1, bs);
        } else {
            avsr_tensor *bb[3] = {m->linear_q.bias, m->linear_k.bias, m->linear_v.bias};
            b = avsr_op_concat(ctx, 3, bb, 0);
        }
        avsr_tensor *y = avsr_op_linear(ctx, query, w, b); /* [B, T, 3d] */
        int64_t s5[5] = {B, T, 3, m->h, m->dk};
        static const int perm[5] = {2, 0, 3, 1, 4};
        /* [3, B, H, T, d_k] */
        avsr_tensor *y3 = avsr_op_permute(ctx, avsr_op_reshape(ctx, y, 5, s5), perm);
        if (!y3)
            return -1;
        int64_t s4[4] = {B, m->h, T, m->dk};
        *q = chunk_view(ctx, y3, 0, 3, 4, s4);
        *k = chunk_view(ctx, y3, 1, 3, 4, s4);
        *v = chunk_view(ctx, y3, 2, 3, 4, s4);
    } else {
        *q = split_heads(ctx, m, avsr_nn_linear_forward(ctx, &m->linear_q, query));
        *k = split_heads(ctx, m, avsr_nn_linear_forward(ctx, &m->linear_k, key));
        *v = split_heads(ctx, m, avsr_nn_linear_forward(ctx, &m->linear_v, value));
    }
    return (*q && *k && *v) ? 0 : -1;
}

/* The mask as [B|1, 1, Tq|1, Tk] (a view). */
static avsr_tensor *mask4(avsr_ctx *ctx, avsr_tensor *mask, int64_t B, int64_t Tq, int64_t Tk)
{
    if (!mask)
        return NULL;
    if (mask->ndim != 3 || (mask->shape[0] != 1 && mask->shape[0] != B) ||
        (mask->shape[1] != 1 && mask->shape[1] != Tq) || mask->shape[2] != Tk) {
        char b[96];
        return avsr_ctx_fail(ctx,
                     "attention: mask: got %s, expected [%lld or 1, %lld or 1, %lld] "
                     "(batch, queries, keys)",
                     avsr_shape_str(mask, b, sizeof b), (long long)B, (long long)Tq,
                     (long long)Tk);
    }
    int64_t s[4] = {mask->shape[0], 1, mask->shape[1], Tk};
    return avsr_tensor_wrap(ctx, mask->dtype, 4, s, mask->data);
}

/* softmax(scores | mask) -> dropout -> @ v -> merge -> linear_out */
static avsr_tensor *attend(avsr_ctx *ctx, const avsr_mha *m, avsr_tensor *scores,
                           avsr_tensor *v, avsr_tensor *mask, uint32_t purpose)
{
    if (!scores)
        return NULL;
    avsr_tensor *mk = NULL;
    if (mask && !(mk = mask4(ctx, mask, scores->shape[0], scores->shape[2], scores->shape[3])))
        return NULL;
    avsr_tensor *attn = avsr_op_softmax(ctx, scores, mk); /* [B, H, Tq, Tk] */
    attn = avsr_op_dropout(ctx, attn, m->dropout, purpose);
    avsr_tensor *c = avsr_op_matmul(ctx, attn, v, false, false, 1.0f); /* [B, H, Tq, d_k] */
    return avsr_nn_linear_forward(ctx, &m->linear_out, merge_heads(ctx, m, c));
}

static bool check_in(avsr_ctx *ctx, const avsr_mha *m, const char *what, avsr_tensor *t)
{
    if (t->ndim == 3 && t->shape[2] == m->d && t->dtype == AVSR_F32)
        return true;
    char b[96];
    avsr_ctx_fail(ctx, "attention: %s: got %s, expected [B, T, %lld] f32", what,
          avsr_shape_str(t, b, sizeof b), (long long)m->d);
    return false;
}

avsr_tensor *avsr_mha_forward(avsr_ctx *ctx, const avsr_mha *m, avsr_tensor *query,
                              avsr_tensor *key, avsr_tensor *value, avsr_tensor *mask,
                              uint32_t purpose)
{
    if (!query || !key || !value || avsr_ctx_failed(ctx))
        return NULL;
    if (m->rel_pos)
        return avsr_ctx_fail(ctx, "attention: relative-position module called without pos_emb "
                          "(use avsr_mha_rel_forward)");
    if (!check_in(ctx, m, "query", query) || !check_in(ctx, m, "key", key) ||
        !check_in(ctx, m, "value", value))
        return NULL;
    if (key->shape[0] != query->shape[0] || value->shape[0] != query->shape[0] ||
        value->shape[1] != key->shape[1])
        return avsr_ctx_fail(ctx, "attention: batch/length mismatch: query [%lld, %lld], key [%lld, "
                          "%lld], value [%lld, %lld]",
                     (long long)query->shape[0], (long long)query->shape[1],
                     (long long)key->shape[0], (long long)key->shape[1],
                     (long long)value->shape[0], (long long)value->shape[1]);
    avsr_tensor *q, *k, *v;
    if (project_qkv(ctx, m, query, key, value, &q, &k, &v) < 0)
        return NULL;
    /* [B, H, Tq, Tk] */
    avsr_tensor *scores = avsr_op_matmul(ctx, q, k, false, true, 1.0f / sqrtf((float)m->dk));
    return attend(ctx, m, scores, v, mask, purpose);
}

avsr_tensor *avsr_mha_rel_forward(avsr_ctx *ctx, const avsr_mha *m, avsr_tensor *x,
                                  avsr_tensor *pos_emb, avsr_tensor *mask, uint32_t purpose)
{
    if (!x || !pos_emb || avsr_ctx_failed(ctx))
        return NULL;
    if (!m->rel_pos)
        return avsr_ctx_fail(ctx, "attention: avsr_mha_rel_forward on a module without rel_pos");
    if (!check_in(ctx, m, "x", x))
        return NULL;
    int64_t B = x->shape[0], T = x->shape[1];
    if (pos_emb->ndim != 3 || pos_emb->shape[0] != 1 || pos_emb->shape[1] != 2 * T - 1 ||
        pos_emb->shape[2] != m->d) {
        char b[96];
        return avsr_ctx_fail(ctx, "attention: pos_emb: got %s, expected [1, %lld, %lld]",
                     avsr_shape_str(pos_emb, b, sizeof b), (long long)(2 * T - 1),
                     (long long)m->d);
    }
    avsr_tensor *q, *k, *v;
    if (project_qkv(ctx, m, x, x, x, &q, &k, &v) < 0)
        return NULL;
    float scale = 1.0f / sqrtf((float)m->dk);
    int64_t hs[3] = {m->h, 1, m->dk};
    avsr_tensor *qu = avsr_op_add(ctx, q, avsr_op_reshape(ctx, m->pos_bias_u, 3, hs));
    avsr_tensor *qv = avsr_op_add(ctx, q, avsr_op_reshape(ctx, m->pos_bias_v, 3, hs));
    /* p: [1, 2T-1, d] -> [1, H, 2T-1, d_k], repeated over the batch */
    avsr_tensor *p = split_heads(ctx, m, avsr_nn_linear_forward(ctx, &m->linear_pos, pos_emb));
    if (p && B > 1) {
        avsr_tensor **rep = avsr_ctx_alloc(ctx, sizeof *rep * (size_t)B);
        if (!rep)
            return NULL;
        for (int64_t b = 0; b < B; b++)
            rep[b] = p;
        p = avsr_op_concat(ctx, (int)B, rep, 0); /* [B, H, 2T-1, d_k] */
    }
    avsr_tensor *ac = avsr_op_matmul(ctx, qu, k, false, true, scale); /* [B, H, T, T] */
    avsr_tensor *bd = avsr_op_matmul(ctx, qv, p, false, true, scale); /* [B, H, T, 2T-1] */
    avsr_tensor *scores = avsr_op_add(ctx, ac, avsr_op_rel_shift(ctx, bd));
    return attend(ctx, m, scores, v, mask, purpose);
}

avsr_tensor *avsr_pad_mask(avsr_ctx *ctx, int64_t B, int64_t T, const int64_t *lengths)
{
    if (avsr_ctx_failed(ctx))
        return NULL;
    int64_t s[3] = {B, 1, T};
    avsr_tensor *m = avsr_tensor_new(ctx, AVSR_U8, 3, s);
    if (!m)
        return NULL;
    uint8_t *d = m->data;
    for (int64_t b = 0; b < B; b++) {
        int64_t len = lengths ? lengths[b] : T;
        if (len < 0 || len > T)
            return avsr_ctx_fail(ctx, "pad mask: lengths[%lld] = %lld outside [0, %lld]", (long long)b,
                         (long long)len, (long long)T);
        for (int64_t t = 0; t < T; t++)
            d[b * T + t] = t < len;
    }
    return m;
}

avsr_tensor *avsr_causal_mask(avsr_ctx *ctx, int64_t Tq, int64_t Tk)
{
    if (avsr_ctx_failed(ctx))
        return NULL;
    if (Tq < 0 || Tq > Tk)
        return avsr_ctx_fail(ctx, "causal mask: %lld queries over %lld keys", (long long)Tq,
                     (long long)Tk);
    int64_t s[3] = {1, Tq, Tk};
    avsr_tensor *m = avsr_tensor_new(ctx, AVSR_U8, 3, s);
    if (!m)
        return NULL;
    uint8_t *d = m->data;
    for (int64_t i = 0; i < Tq; i++)
        for (int64_t j = 0; j < Tk; j++)
            d[i * Tk + j] = j <= Tk - Tq + i;
    return m;
}
