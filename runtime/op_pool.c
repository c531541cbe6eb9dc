/* op_pool: max / average pooling on oneDNN, adaptive average pooling on an
 * OpenMP kernel (see op_conv.h).
 *
 * Pooling runs on our plain NC(D)HW layout: a pooling pass is one read of
 * the input and one write of the output, so a reorder into a blocked layout
 * and back would cost as much as the pooling itself. */
#include "op_conv.h"

#include <string.h>

#include "ctx_int.h"
#include "dnnl_util.h"
#include "tape.h"

struct pgeom {
    int nsp, alg; /* alg: dnnl_alg_kind_t */
    int64_t B, C;
    int64_t S[3], K[3], O[3], stride[3], pad[3];
};

static const char *alg_name(int alg)
{
    return alg == dnnl_pooling_max ? "max_pool" : "avg_pool";
}

static int pgeom_make(avsr_ctx *ctx, struct pgeom *g, const avsr_tensor *x,
                      const avsr_pool_params *p, int alg)
{
    const char *op = alg_name(alg);
    char bx[96];
    memset(g, 0, sizeof *g);
    if (!p || p->nsp < 1 || p->nsp > 3) {
        avsr_ctx_fail(ctx, "%s: params: nsp must be 1, 2 or 3, got %d", op, p ? p->nsp : -1);
        return -1;
    }
    int n = p->nsp;
    g->nsp = n;
    g->alg = alg == dnnl_pooling_max ? alg
             : p->exclude_pad       ? (int)dnnl_pooling_avg_exclude_padding
                                    : (int)dnnl_pooling_avg_include_padding;
    if (x->dtype != AVSR_F32) {
        avsr_ctx_fail(ctx, "%s: expects f32, got %s", op, avsr_dtype_name(x->dtype));
        return -1;
    }
    if (x->ndim != n + 2 || x->numel == 0) {
        avsr_ctx_fail(ctx, "%s: input x: got %s, expected %d non-empty dims [B, C, *S] for %dd",
                      op, avsr_shape_str(x, bx, sizeof bx), n + 2, n);
        return -1;
    }
    g->B = x->shape[0];
    g->C = x->shape[1];
    for (int i = 0; i < 3; i++) {
        g->S[i] = g->K[i] = g->O[i] = g->stride[i] = 1;
        g->pad[i] = 0;
    }
    for (int i = 0; i < n; i++) {
        g->S[i] = x->shape[2 + i];
        g->K[i] = p->kernel[i];
        g->stride[i] = p->stride[i] ? p->stride[i] : p->kernel[i];
        g->pad[i] = p->pad[i];
        if (g->K[i] < 1 || g->stride[i] < 1 || g->pad[i] < 0) {
            avsr_ctx_fail(ctx, "%s: params: dimension %d: kernel %lld and stride %lld must be "
                          "positive, padding %lld non-negative", op, i, (long long)g->K[i],
                          (long long)g->stride[i], (long long)g->pad[i]);
            return -1;
        }
        if (2 * g->pad[i] > g->K[i]) {
            avsr_ctx_fail(ctx, "%s: padding %lld should be at most half of kernel %lld in "
                          "dimension %d", op, (long long)g->pad[i], (long long)g->K[i], i);
            return -1;
        }
        if (g->S[i] + 2 * g->pad[i] < g->K[i]) {
            avsr_ctx_fail(ctx, "%s: kernel %lld larger than padded input %lld + 2*%lld in "
                          "dimension %d (x %s)", op, (long long)g->K[i], (long long)g->S[i],
                          (long long)g->pad[i], i, avsr_shape_str(x, bx, sizeof bx));
            return -1;
        }
        g->O[i] = (g->S[i] + 2 * g->pad[i] - g->K[i]) / g->stride[i] + 1;
    }
    return 0;
}

enum { P_FWD_INF = 1, P_FWD_TRAIN = 2, P_BWD = 3 };

static avsr_dnnl_prim *pool_prim(avsr_ctx *ctx, const struct pgeom *g, int kind)
{
    avsr_dnnl_key key;
    avsr_dnnl_key_init(&key, 0x9001 * 16 + kind);
    avsr_dnnl_key_add(&key, g->nsp);
    avsr_dnnl_key_add(&key, g->alg);
    avsr_dnnl_key_add(&key, g->B);
    avsr_dnnl_key_add(&key, g->C);
    for (int i = 0; i < g->nsp; i++) {
        avsr_dnnl_key_add(&key, g->S[i]);
        avsr_dnnl_key_add(&key, g->K[i]);
        avsr_dnnl_key_add(&key, g->stride[i]);
        avsr_dnnl_key_add(&key, g->pad[i]);
    }
    avsr_dnnl_prim *p = avsr_dnnl_find(ctx, key.v, avsr_dnnl_key_bytes(&key));
    if (p)
        return p;
    avsr_dnnl_prim *fwd = NULL;
    if (kind == P_BWD && !(fwd = pool_prim(ctx, g, P_FWD_TRAIN)))
        return NULL;
    int64_t sd[5] = {g->B, g->C, g->S[0], g->S[1], g->S[2]};
    int64_t od[5] = {g->B, g->C, g->O[0], g->O[1], g->O[2]};
    dnnl_memory_desc_t src, dst;
    if (avsr_dnnl_md_plain(ctx, &src, g->nsp + 2, sd) < 0 ||
        avsr_dnnl_md_plain(ctx, &dst, g->nsp + 2, od) < 0)
        return NULL;
    dnnl_dims_t st, k, pl, pr;
    for (int i = 0; i < g->nsp; i++) {
        st[i] = g->stride[i];
        k[i] = g->K[i];
        pl[i] = pr[i] = g->pad[i]; /* integer division in oneDNN's check = floor */
    }
    dnnl_pooling_desc_t d;
    dnnl_status_t stt;
    int args[3], nargs = 0;
    bool ws = g->alg == dnnl_pooling_max && kind != P_FWD_INF;
    if (kind == P_BWD) {
        stt = dnnl_pooling_backward_desc_init(&d, g->alg, &src, &dst, st, k, pl, pr);
        args[nargs++] = DNNL_ARG_DIFF_DST;
        args[nargs++] = DNNL_ARG_DIFF_SRC;
        if (ws)
            args[nargs++] = DNNL_ARG_WORKSPACE;
    } else {
        stt = dnnl_pooling_forward_desc_init(
            &d, kind == P_FWD_TRAIN ? dnnl_forward_training : dnnl_forward_inference, g->alg,
            &src, &dst, st, k, pl, pr);
        args[nargs++] = DNNL_ARG_SRC;
        args[nargs++] = DNNL_ARG_DST;
        if (ws)
            args[nargs++] = DNNL_ARG_WORKSPACE;
    }
    if (AVSR_DNNL(&ctx->err, stt) < 0)
        return NULL;
    dnnl_primitive_desc_t pd;
    if (AVSR_DNNL(&ctx->err, dnnl_primitive_desc_create(&pd, &d, NULL, ctx->engine,
                                                        fwd ? fwd->pd : NULL)) < 0)
        return NULL;
    return avsr_dnnl_insert(ctx, key.v, avsr_dnnl_key_bytes(&key), pd, nargs, args);
}

struct pool_saved {
    struct pgeom g;
    avsr_tensor *x, *y;
    void *ws; /* max pooling: oneDNN workspace (positions of the maxima) */
};

static void pool_backward(avsr_ctx *ctx, void *sv)
{
    struct pool_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x))
        return;
    avsr_dnnl_prim *p = pool_prim(ctx, &s->g, P_BWD);
    if (!p)
        return;
    avsr_tensor *x = s->x;
    size_t bytes = (size_t)x->numel * sizeof(float);
    bool fresh = x->grad == NULL;
    float *dx = avsr_ctx_alloc(ctx, bytes); /* [B, C, *S] */
    if (!dx) {
        AVSR_NOMEM(&ctx->err, bytes);
        return;
    }
    void *h[3] = {s->y->grad, dx, s->ws};
    if (avsr_dnnl_exec(ctx, p, h) < 0)
        return;
    if (fresh) {
        x->grad = dx;
        return;
    }
    float *gx = x->grad;
    int64_t n = x->numel;
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++)
        gx[i] += dx[i];
}

static avsr_tensor *pool(avsr_ctx *ctx, avsr_tensor *x, const avsr_pool_params *p, int alg)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    struct pgeom g;
    if (pgeom_make(ctx, &g, x, p, alg) < 0)
        return NULL;
    int64_t shape[5] = {g.B, g.C, g.O[0], g.O[1], g.O[2]};
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, g.nsp + 2, shape); /* [B, C, *O] */
    if (!y)
        return NULL;
    bool grad = avsr_ctx_needs_grad(ctx, 1, &x);
    avsr_dnnl_prim *pr = pool_prim(ctx, &g, grad ? P_FWD_TRAIN : P_FWD_INF);
    if (!pr)
        return NULL;
    void *ws = NULL;
    size_t wsb = avsr_dnnl_arg_bytes(pr, DNNL_ARG_WORKSPACE);
    if (g.alg == dnnl_pooling_max && grad && wsb && !(ws = avsr_ctx_alloc(ctx, wsb))) {
        AVSR_NOMEM(&ctx->err, wsb);
        return NULL;
    }
    void *h[3] = {x->data, y->data, ws};
    if (avsr_dnnl_exec(ctx, pr, h) < 0)
        return NULL;
    if (grad) {
        struct pool_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct pool_saved){g, x, y, ws};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, pool_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

avsr_tensor *avsr_op_max_pool(avsr_ctx *ctx, avsr_tensor *x, const avsr_pool_params *p)
{
    return pool(ctx, x, p, dnnl_pooling_max);
}

avsr_tensor *avsr_op_avg_pool(avsr_ctx *ctx, avsr_tensor *x, const avsr_pool_params *p)
{
    return pool(ctx, x, p, dnnl_pooling_avg_include_padding);
}

/* ---- adaptive average pooling (own kernel) ---- */

struct adapt_saved {
    int nsp;
    int64_t planes, S[3], O[3];
    avsr_tensor *x, *y;
};

static inline int64_t ad_start(int64_t i, int64_t S, int64_t O) { return (i * S) / O; }
static inline int64_t ad_end(int64_t i, int64_t S, int64_t O) { return ((i + 1) * S + O - 1) / O; }

static void adapt_backward(avsr_ctx *ctx, void *sv)
{
    struct adapt_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x))
        return;
    float *gx = avsr_tensor_grad(ctx, s->x); /* [planes, *S] */
    if (!gx)
        return;
    const float *gy = s->y->grad;            /* [planes, *O] */
    const int64_t *S = s->S, *O = s->O;
    int64_t isz = S[0] * S[1] * S[2], osz = O[0] * O[1] * O[2];
#pragma omp parallel for schedule(static) if (s->planes * isz > 16384)
    for (int64_t pl = 0; pl < s->planes; pl++) {
        float *xg = gx + pl * isz;
        const float *yg = gy + pl * osz;
        for (int64_t a = 0; a < O[0]; a++) {
            int64_t a0 = ad_start(a, S[0], O[0]), a1 = ad_end(a, S[0], O[0]);
            for (int64_t b = 0; b < O[1]; b++) {
                int64_t b0 = ad_start(b, S[1], O[1]), b1 = ad_end(b, S[1], O[1]);
                for (int64_t c = 0; c < O[2]; c++) {
                    int64_t c0 = ad_start(c, S[2], O[2]), c1 = ad_end(c, S[2], O[2]);
                    float v = yg[(a * O[1] + b) * O[2] + c] /
                              (float)((a1 - a0) * (b1 - b0) * (c1 - c0));
                    for (int64_t i = a0; i < a1; i++)
                        for (int64_t j = b0; j < b1; j++)
                            for (int64_t k = c0; k < c1; k++)
                                xg[(i * S[1] + j) * S[2] + k] += v;
                }
            }
        }
    }
}

avsr_tensor *avsr_op_adaptive_avg_pool(avsr_ctx *ctx, avsr_tensor *x, int nsp, const int64_t *out)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    char bx[96];
    if (nsp < 1 || nsp > 3)
        return avsr_ctx_fail(ctx, "adaptive_avg_pool: nsp must be 1, 2 or 3, got %d", nsp);
    if (x->dtype != AVSR_F32)
        return avsr_ctx_fail(ctx, "adaptive_avg_pool: expects f32, got %s",
                             avsr_dtype_name(x->dtype));
    if (x->ndim != nsp + 2 || x->numel == 0)
        return avsr_ctx_fail(ctx, "adaptive_avg_pool: input x: got %s, expected %d non-empty "
                             "dims [B, C, *S] for %dd", avsr_shape_str(x, bx, sizeof bx),
                             nsp + 2, nsp);
    struct adapt_saved a = {.nsp = nsp, .planes = x->shape[0] * x->shape[1]};
    int64_t shape[5] = {x->shape[0], x->shape[1], 1, 1, 1};
    for (int i = 0; i < 3; i++) {
        a.S[i] = i < nsp ? x->shape[2 + i] : 1;
        a.O[i] = i < nsp ? out[i] : 1;
        if (a.O[i] < 1)
            return avsr_ctx_fail(ctx, "adaptive_avg_pool: output size %lld in dimension %d "
                                 "must be positive", (long long)a.O[i], i);
        shape[2 + i] = a.O[i];
    }
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, nsp + 2, shape); /* [B, C, *O] */
    if (!y)
        return NULL;
    const float *xd = avsr_f32(x);
    float *yd = avsr_f32(y);
    const int64_t *S = a.S, *O = a.O;
    int64_t isz = S[0] * S[1] * S[2], osz = O[0] * O[1] * O[2];
#pragma omp parallel for schedule(static) if (a.planes * isz > 16384)
    for (int64_t pl = 0; pl < a.planes; pl++) {
        const float *xp = xd + pl * isz;
        float *yp = yd + pl * osz;
        for (int64_t p = 0; p < O[0]; p++) {
            int64_t p0 = ad_start(p, S[0], O[0]), p1 = ad_end(p, S[0], O[0]);
            for (int64_t q = 0; q < O[1]; q++) {
                int64_t q0 = ad_start(q, S[1], O[1]), q1 = ad_end(q, S[1], O[1]);
                for (int64_t r = 0; r < O[2]; r++) {
                    int64_t r0 = ad_start(r, S[2], O[2]), r1 = ad_end(r, S[2], O[2]);
                    float acc = 0.0f;
                    for (int64_t i = p0; i < p1; i++)
                        for (int64_t j = q0; j < q1; j++)
                            for (int64_t k = r0; k < r1; k++)
                                acc += xp[(i * S[1] + j) * S[2] + k];
                    yp[(p * O[1] + q) * O[2] + r] =
                        acc / (float)((p1 - p0) * (q1 - q0) * (r1 - r0));
                }
            }
        }
    }
    if (avsr_ctx_needs_grad(ctx, 1, &x)) {
        struct adapt_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = a;
        s->x = x;
        s->y = y;
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, adapt_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

avsr_tensor *avsr_op_global_avg_pool(avsr_ctx *ctx, avsr_tensor *x, int nsp)
{
    int64_t one[3] = {1, 1, 1};
    return avsr_op_adaptive_avg_pool(ctx, x, nsp, one);
}
