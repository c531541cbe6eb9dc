/* lora: low-rank adapters on linear layers (see lora.h). */
#include "lora.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/attention.h"
#include "ops.h"
#include "safetensors.h"

struct avsr_lora {
    avsr_nn_linear **tracked; /* layers seen while tracking */
    int ntracked, captracked;
    avsr_lora_adapter **ad;   /* heap adapters, attach order */
    avsr_nn_linear **base;    /* base layer of ad[i] */
    int nad, capad;
    avsr_mha **mha;           /* attention blocks (fuse_qkv switched off when adapted) */
    int nmha, capmha;
};

/* The set tracking avsr_nn_linear_init() calls on this thread. */
static _Thread_local avsr_lora *tracking;

avsr_lora *avsr_lora_create(void) { return calloc(1, sizeof(avsr_lora)); }

void avsr_lora_destroy(avsr_lora *l)
{
    if (!l)
        return;
    if (tracking == l)
        tracking = NULL;
    for (int i = 0; i < l->nad; i++) {
        if (l->base[i]->lora == l->ad[i])
            l->base[i]->lora = NULL;
        free(l->ad[i]);
    }
    free(l->ad);
    free(l->base);
    free(l->tracked);
    free(l->mha);
    free(l);
}

void avsr_lora_track_begin(avsr_lora *l) { tracking = l; }

void avsr_lora_track_end(avsr_lora *l)
{
    if (tracking == l)
        tracking = NULL;
}

int avsr_lora_track(avsr_lora *l, avsr_nn_linear *m)
{
    for (int i = 0; i < l->ntracked; i++)
        if (l->tracked[i] == m)
            return 0;
    if (l->ntracked == l->captracked) {
        int cap = l->captracked ? 2 * l->captracked : 32;
        avsr_nn_linear **t = realloc(l->tracked, (size_t)cap * sizeof *t);
        if (!t)
            return -1;
        l->tracked = t;
        l->captracked = cap;
    }
    l->tracked[l->ntracked++] = m;
    return 0;
}

int avsr_lora_track_mha(avsr_lora *l, struct avsr_mha *m)
{
    for (int i = 0; i < l->nmha; i++)
        if (l->mha[i] == m) /* recorded before (its linears are in the set) */
            return 0;
    if (l->nmha == l->capmha) {
        int cap = l->capmha ? 2 * l->capmha : 16;
        avsr_mha **t = realloc(l->mha, (size_t)cap * sizeof *t);
        if (!t)
            return -1;
        l->mha = t;
        l->capmha = cap;
    }
    l->mha[l->nmha++] = m;
    if (avsr_lora_track(l, &m->linear_q) < 0 || avsr_lora_track(l, &m->linear_k) < 0 ||
        avsr_lora_track(l, &m->linear_v) < 0 || avsr_lora_track(l, &m->linear_out) < 0)
        return -1;
    return m->rel_pos ? avsr_lora_track(l, &m->linear_pos) : 0;
}

void avsr_lora_note_linear(avsr_nn_linear *m)
{
    if (tracking)
        (void)avsr_lora_track(tracking, m); /* out of memory: attach reports no match */
}

bool avsr_lora_is_adapter_name(const char *name)
{
    size_t n = strlen(name);
    static const char *suf[2] = {".lora_A.weight", ".lora_B.weight"};
    for (int k = 0; k < 2; k++) {
        size_t s = strlen(suf[k]);
        if (n >= s && strcmp(name + n - s, suf[k]) == 0)
            return true;
    }
    return false;
}

/* prefix of a linear layer = its weight's name without ".weight" */
static int layer_prefix(const avsr_nn_linear *m, char *buf, size_t cap)
{
    const char *w = m->weight ? m->weight->name : NULL;
    if (!w)
        return -1;
    size_t n = strlen(w), s = strlen(".weight");
    if (n <= s || strcmp(w + n - s, ".weight") != 0 || n - s >= cap)
        return -1;
    memcpy(buf, w, n - s);
    buf[n - s] = '\0';
    return 0;
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h & 0x3fffffffu; /* purposes stay clear of the top bits */
}

int avsr_lora_attach(avsr_lora *l, avsr_params *p, const char *const *patterns, int npatterns,
                     int rank, float alpha, float dropout, avsr_error *err)
{
    if (!l || !p || (npatterns > 0 && !patterns) || npatterns < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "lora_attach: NULL set, store or patterns");
    if (rank < 1)
        return avsr_error_set(err, AVSR_ERR_INVALID, "lora_attach: rank %d (must be >= 1)", rank);
    if (!(alpha > 0.0f) || !isfinite(alpha))
        return avsr_error_set(err, AVSR_ERR_INVALID, "lora_attach: alpha %g (must be > 0)",
                              (double)alpha);
    if (!(dropout >= 0.0f && dropout < 1.0f))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "lora_attach: dropout %g (must be in [0, 1))", (double)dropout);
    int wrapped = 0;
    char pre[AVSR_NN_NAME_MAX], name[AVSR_NN_NAME_MAX + 32];
    for (int i = 0; i < l->ntracked; i++) {
        avsr_nn_linear *m = l->tracked[i];
        if (m->lora || layer_prefix(m, pre, sizeof pre) < 0)
            continue;
        bool hit = false;
        for (int k = 0; k < npatterns && !hit; k++)
            hit = fnmatch(patterns[k], pre, 0) == 0;
        if (!hit)
            continue;
        if (avsr_params_find(p, m->weight->name) != m->weight)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "lora_attach: %s is not a parameter of this store", pre);
        if (rank > m->in || rank > m->out)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "lora_attach: %s: rank %d exceeds min(in %lld, out %lld)", pre,
                                  rank, (long long)m->in, (long long)m->out);
        avsr_lora_adapter *a = calloc(1, sizeof *a);
        if (!a)
            return avsr_error_set(err, AVSR_ERR_NOMEM, "lora_attach: out of memory");
        int64_t sa[2] = {rank, m->in}, sb[2] = {m->out, rank};
        snprintf(name, sizeof name, "%s.lora_A.weight", pre);
        a->A = avsr_params_add(p, name, 2, sa, err);
        if (a->A && avsr_params_set_init(p, a->A, AVSR_INIT_UNIFORM,
                                         1.0f / sqrtf((float)m->in), err) < 0)
            a->A = NULL;
        snprintf(name, sizeof name, "%s.lora_B.weight", pre);
        if (a->A)
            a->B = avsr_params_add(p, name, 2, sb, err); /* zeros: the default rule */
        if (!a->A || !a->B) {
            free(a);
            return -1;
        }
        a->rank = rank;
        a->scale = alpha / (float)rank;
        a->dropout = dropout;
        a->purpose = fnv1a(pre);
        if (l->nad == l->capad) {
            int cap = l->capad ? 2 * l->capad : 16;
            avsr_lora_adapter **na = realloc(l->ad, (size_t)cap * sizeof *na);
            if (na)
                l->ad = na;
            avsr_nn_linear **nb = na ? realloc(l->base, (size_t)cap * sizeof *nb) : NULL;
            if (nb)
                l->base = nb;
            if (!na || !nb) {
                free(a);
                return avsr_error_set(err, AVSR_ERR_NOMEM, "lora_attach: out of memory");
            }
            l->capad = cap;
        }
        l->ad[l->nad] = a;
        l->base[l->nad++] = m;
        m->lora = a;
        wrapped++;
    }
    /* the fused q/k/v product does not see adapters */
    for (int i = 0; i < l->nmha; i++)
        if (l->mha[i]->linear_q.lora || l->mha[i]->linear_k.lora || l->mha[i]->linear_v.lora)
            l->mha[i]->fuse_qkv = false;
    return wrapped;
}

int avsr_lora_count(const avsr_lora *l) { return l ? l->nad : 0; }

const avsr_lora_adapter *avsr_lora_at(const avsr_lora *l, int i)
{
    return l && i >= 0 && i < l->nad ? l->ad[i] : NULL;
}

const avsr_nn_linear *avsr_lora_base(const avsr_lora *l, int i)
{
    return l && i >= 0 && i < l->nad ? l->base[i] : NULL;
}

int avsr_lora_freeze_base(const avsr_lora *l, avsr_params *p)
{
    (void)l;
    avsr_params_set_requires_grad(p, "*", false);
    return avsr_params_set_requires_grad(p, "*.lora_A.weight", true) +
           avsr_params_set_requires_grad(p, "*.lora_B.weight", true);
}

avsr_tensor *avsr_lora_linear_forward(avsr_ctx *ctx, const avsr_nn_linear *m, avsr_tensor *x)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    const avsr_lora_adapter *a = m->lora;
    avsr_tensor *y = avsr_op_linear(ctx, x, m->weight, m->bias); /* [..., out] */
    if (!a || a->merged)
        return y;
    avsr_tensor *xd = avsr_op_dropout(ctx, x, a->dropout, a->purpose); /* [..., in] */
    avsr_tensor *h = avsr_op_linear(ctx, xd, a->A, NULL);             /* [..., r] */
    avsr_tensor *d = avsr_op_linear(ctx, h, a->B, NULL);              /* [..., out] */
    return avsr_op_axpby(ctx, y, d, 1.0f, a->scale);
}

void avsr_lora_merged_weight(const avsr_lora *l, int i, float *dst)
{
    const avsr_lora_adapter *a = l->ad[i];
    const avsr_nn_linear *m = l->base[i];
    const float *W = avsr_f32(m->weight), *A = avsr_f32(a->A), *B = avsr_f32(a->B);
    int64_t out = m->out, in = m->in, r = a->rank;
    float s = a->scale;
#pragma omp parallel for schedule(static) if (out * in > 65536)
    for (int64_t o = 0; o < out; o++) {
        float *d = dst + o * in;                /* row o of [out, in] */
        const float *w = W + o * in, *b = B + o * r;
        for (int64_t j = 0; j < in; j++)
            d[j] = w[j];
        for (int64_t k = 0; k < r; k++) {
            float c = s * b[k];
            const float *ak = A + k * in;       /* row k of A [r, in] */
            for (int64_t j = 0; j < in; j++)
                d[j] += c * ak[j];
        }
    }
}

int avsr_lora_merge(avsr_lora *l)
{
    int n = 0;
    for (int i = 0; l && i < l->nad; i++) {
        if (l->ad[i]->merged)
            continue;
        /* in place: each row of dst reads only the same row of W */
        avsr_lora_merged_weight(l, i, avsr_f32(l->base[i]->weight));
        l->ad[i]->merged = true;
        n++;
    }
    return n;
}

int avsr_lora_export(const avsr_lora *l, const avsr_params *p, const char *path,
                     const char *const *meta, int nmeta, avsr_error *err)
{
    avsr_st_writer *w = avsr_st_writer_create();
    if (!w)
        return avsr_error_set(err, AVSR_ERR_NOMEM, "lora_export: out of memory");
    int nad = avsr_lora_count(l), rc = 0;
    float **merged = calloc((size_t)(nad ? nad : 1), sizeof *merged);
    if (!merged)
        rc = avsr_error_set(err, AVSR_ERR_NOMEM, "lora_export: out of memory");
    for (int i = 0; i < nad && rc == 0; i++) {
        if (l->ad[i]->merged)
            continue; /* already folded in */
        const avsr_tensor *W = l->base[i]->weight;
        if (!(merged[i] = malloc((size_t)W->numel * sizeof(float))))
            rc = avsr_error_set(err, AVSR_ERR_NOMEM, "lora_export: out of memory");
        else
            avsr_lora_merged_weight(l, i, merged[i]);
    }
    int n = avsr_params_count(p);
    for (int k = 0; k < n && rc == 0; k++) {
        avsr_tensor *t = avsr_params_at(p, k);
        if (avsr_lora_is_adapter_name(t->name))
            continue;
        const void *data = t->data;
        for (int i = 0; i < nad; i++)
            if (merged[i] && l->base[i]->weight == t)
                data = merged[i];
        rc = avsr_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, data, err);
    }
    for (int i = 0; i < nmeta && rc == 0; i++)
        rc = avsr_st_writer_meta(w, meta[2 * i], meta[2 * i + 1], err);
    if (rc == 0)
        rc = avsr_st_writer_write(w, path, err);
    for (int i = 0; i < nad && merged; i++)
        free(merged[i]);
    free(merged);
    avsr_st_writer_destroy(w);
    return rc < 0 ? -1 : 0;
}
