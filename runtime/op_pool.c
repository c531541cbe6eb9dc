/* op_pool: max, average and adaptive average pooling (see op_conv.h).
 *
 * Own OpenMP kernels over (batch, channel) planes on our plain NC(D)HW
 * layout. oneDNN 2.6's pooling for this layout (simple_nchw) measured 2-4x
 * slower than PyTorch's native kernel on the MaxPool3d after the stem, and
 * its fast (jit) pooling wants a blocked layout, whose reorders in and out
 * would cost as much as the pooling pass itself. Max pooling keeps the
 * position of each maximum (int32 within its plane) for backward. */
#include "op_conv.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "ctx_int.h"
#include "tape.h"

enum { PMAX = 1, PAVG_INC = 2, PAVG_EXC = 3 };

struct pgeom {
    int nsp, alg; /* PMAX, PAVG_INC, PAVG_EXC */
    int64_t B, C;
    int64_t S[3], K[3], O[3], stride[3], pad[3];
};

static const char *alg_name(int alg)
{
    return alg == PMAX ? "max_pool" : "avg_pool";
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
    g->alg = alg == PMAX ? alg
             : p->exclude_pad       ? PAVG_EXC
                                    : PAVG_INC;
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

/* Window of output index o along a dimension: [lo, hi) clipped to the
 * input, and the PyTorch divisor span (clipped to the padded input). */
static inline void win(int64_t o, int64_t S, int64_t K, int64_t st, int64_t pad, int64_t *lo,
                       int64_t *hi, int64_t *span)
{
    int64_t a = o * st - pad, b = a + K;
    if (b > S + pad)
        b = S + pad;
    *span = b - a;
    *lo = a < 0 ? 0 : a;
    *hi = b > S ? S : b;
}

struct pool_saved {
    struct pgeom g;
    avsr_tensor *x, *y;
    int32_t *idx; /* max pooling: [B, C, *O] position of each maximum in its plane */
};

static void pool_backward(avsr_ctx *ctx, void *sv)
{
    struct pool_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x))
        return;
    const struct pgeom *g = &s->g;
    const float *gy = s->y->grad;             /* [B, C, *O] */
    int64_t planes = g->B * g->C;
    int64_t isz = g->S[0] * g->S[1] * g->S[2], osz = g->O[0] * g->O[1] * g->O[2];
    if (g->alg == PMAX) {
        /* a fresh gradient is zeroed plane by plane in the parallel loop */
        bool fresh = s->x->grad == NULL;
        size_t bytes = sizeof(float) * (size_t)s->x->numel;
        if (fresh && !(s->x->grad = avsr_ctx_alloc(ctx, bytes))) {
            AVSR_NOMEM(&ctx->err, bytes);
            return;
        }
        float *gx = s->x->grad; /* [B, C, *S] */
        const int32_t *idx = s->idx;
#pragma omp parallel for schedule(static) if (planes * osz > 16384)
        for (int64_t pl = 0; pl < planes; pl++) {
            float *xg = gx + pl * isz;
            const float *yg = gy + pl * osz;
            const int32_t *ip = idx + pl * osz;
            if (fresh)
                memset(xg, 0, sizeof(float) * (size_t)isz);
            for (int64_t o = 0; o < osz; o++)
                xg[ip[o]] += yg[o];
        }
        return;
    }
    float *gx = avsr_tensor_grad(ctx, s->x); /* [B, C, *S] */
    if (!gx)
        return;
    bool excl = g->alg == PAVG_EXC;
    const int64_t *S = g->S, *O = g->O;
#pragma omp parallel for schedule(static) if (planes * osz > 16384)
    for (int64_t pl = 0; pl < planes; pl++) {
        float *xg = gx + pl * isz;
        const float *yg = gy + pl * osz;
        for (int64_t a = 0; a < O[0]; a++) {
            int64_t a0, a1, sa;
            win(a, S[0], g->K[0], g->stride[0], g->pad[0], &a0, &a1, &sa);
            for (int64_t b = 0; b < O[1]; b++) {
                int64_t b0, b1, sb;
                win(b, S[1], g->K[1], g->stride[1], g->pad[1], &b0, &b1, &sb);
                for (int64_t c = 0; c < O[2]; c++) {
                    int64_t c0, c1, sc;
                    win(c, S[2], g->K[2], g->stride[2], g->pad[2], &c0, &c1, &sc);
                    int64_t cnt = excl ? (a1 - a0) * (b1 - b0) * (c1 - c0) : sa * sb * sc;
                    float v = yg[(a * O[1] + b) * O[2] + c] / (float)cnt;
                    for (int64_t i = a0; i < a1; i++)
                        for (int64_t j = b0; j < b1; j++)
                            for (int64_t k = c0; k < c1; k++)
                                xg[(i * S[1] + j) * S[2] + k] += v;
                }
            }
        }
    }
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
    bool max = g.alg == PMAX;
    bool excl = g.alg == PAVG_EXC;
    int64_t planes = g.B * g.C;
    int64_t isz = g.S[0] * g.S[1] * g.S[2], osz = g.O[0] * g.O[1] * g.O[2];
    if (isz > INT32_MAX)
        return avsr_ctx_fail(ctx, "%s: a plane of %lld elements is too large", alg_name(alg),
                             (long long)isz);
    int32_t *idx = NULL; /* [B, C, *O] */
    if (max && grad && !(idx = avsr_ctx_alloc(ctx, sizeof(int32_t) * (size_t)y->numel))) {
        AVSR_NOMEM(&ctx->err, sizeof(int32_t) * (size_t)y->numel);
        return NULL;
    }
    /* window tables per dimension: lo, hi (clipped) and the divisor span */
    int64_t nt = g.O[0] + g.O[1] + g.O[2];
    int64_t *tab = avsr_ctx_alloc(ctx, sizeof(int64_t) * 3 * (size_t)nt);
    if (!tab) {
        AVSR_NOMEM(&ctx->err, sizeof(int64_t) * 3 * (size_t)nt);
        return NULL;
    }
    int64_t *lo[3], *hi[3], *sp[3];
    for (int d = 0, off = 0; d < 3; off += (int)g.O[d], d++) {
        lo[d] = tab + off;
        hi[d] = tab + nt + off;
        sp[d] = tab + 2 * nt + off;
        for (int64_t o = 0; o < g.O[d]; o++)
            win(o, g.S[d], g.K[d], g.stride[d], g.pad[d], &lo[d][o], &hi[d][o], &sp[d][o]);
    }
    /* Each thread keeps one output row's running max (or sum) in a buffer
     * and sweeps the input rows of the window once per kernel offset kk:
     * the loop over output columns has independent iterations (no chain
     * through one running maximum), which is what makes it fast. */
    int nth = omp_get_max_threads();
    /* whole cache lines per thread: rows of neighbouring threads sharing a
     * line made every store in the loop below a cross-core miss (false
     * sharing; the stem's max pool has rows of 11 outputs at 44x44) */
    size_t rowb = ((sizeof(float) + sizeof(int32_t)) * (size_t)g.O[2] + 63) / 64 * 64;
    char *rows = avsr_ctx_alloc(ctx, rowb * (size_t)nth);
    if (!rows) {
        AVSR_NOMEM(&ctx->err, rowb * (size_t)nth);
        return NULL;
    }
    const float *xd = avsr_f32(x);
    float *yd = avsr_f32(y);
    const int64_t S1 = g.S[1], S2 = g.S[2], O0 = g.O[0], O1 = g.O[1], O2 = g.O[2];
    const int64_t K2 = g.K[2], st2 = g.stride[2], p2 = g.pad[2];
#pragma omp parallel for schedule(static) num_threads(nth) if (planes * osz > 16384)
    for (int64_t pl = 0; pl < planes; pl++) {
        float *m = (float *)(rows + rowb * (size_t)omp_get_thread_num()); /* [O2] */
        int32_t *bi = (int32_t *)(m + O2);                                  /* [O2] */
        const float *xp = xd + pl * isz;
        float *yp = yd + pl * osz;
        int32_t *ip = idx ? idx + pl * osz : NULL;
        for (int64_t a = 0; a < O0; a++) {
            for (int64_t b = 0; b < O1; b++) {
                for (int64_t c = 0; c < O2; c++) {
                    m[c] = max ? -INFINITY : 0.0f;
                    bi[c] = (int32_t)((lo[0][a] * S1 + lo[1][b]) * S2 + lo[2][c]);
                }
                for (int64_t i = lo[0][a]; i < hi[0][a]; i++)
                    for (int64_t j = lo[1][b]; j < hi[1][b]; j++) {
                        int64_t r = (i * S1 + j) * S2;
                        const float *row = xp + r;
                        for (int64_t kk = 0; kk < K2; kk++) {
                            /* columns c whose tap kk lands inside the row */
                            int64_t off = kk - p2;
                            int64_t cb = off >= 0 ? 0 : (-off + st2 - 1) / st2;
                            int64_t ce = S2 - 1 - off < 0 ? 0 : (S2 - 1 - off) / st2 + 1;
                            if (ce > O2)
                                ce = O2;
                            if (max) {
                                int32_t q0 = (int32_t)(r + off);
                                int32_t s2 = (int32_t)st2;
                                /* branch-free (random data defeats branch
                                 * prediction); PyTorch's rule: strictly
                                 * greater, or NaN */
#pragma omp simd
                                for (int64_t c = cb; c < ce; c++) {
                                    float v = row[c * st2 + off];
                                    int take = (v > m[c]) | (v != v);
                                    m[c] = take ? v : m[c];
                                    bi[c] = take ? q0 + (int32_t)c * s2 : bi[c];
                                }
                            } else {
#pragma omp simd
                                for (int64_t c = cb; c < ce; c++)
                                    m[c] += row[c * st2 + off];
                            }
                        }
                    }
                float *yrow = yp + (a * O1 + b) * O2;
                if (max) {
                    memcpy(yrow, m, sizeof(float) * (size_t)O2);
                    if (ip)
                        memcpy(ip + (a * O1 + b) * O2, bi, sizeof(int32_t) * (size_t)O2);
                } else {
                    int64_t ab = excl ? (hi[0][a] - lo[0][a]) * (hi[1][b] - lo[1][b])
                                      : sp[0][a] * sp[1][b];
                    for (int64_t c = 0; c < O2; c++)
                        yrow[c] = m[c] / (float)(ab * (excl ? hi[2][c] - lo[2][c] : sp[2][c]));
                }
            }
        }
    }
    if (grad) {
        struct pool_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct pool_saved){g, x, y, idx};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, pool_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

avsr_tensor *avsr_op_max_pool(avsr_ctx *ctx, avsr_tensor *x, const avsr_pool_params *p)
{
    return pool(ctx, x, p, PMAX);
}

avsr_tensor *avsr_op_avg_pool(avsr_ctx *ctx, avsr_tensor *x, const avsr_pool_params *p)
{
    return pool(ctx, x, p, PAVG_INC);
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
