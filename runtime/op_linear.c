/* op_linear: linear (+ fused activation), batched matmul and embedding
 * (see op_linear.h). Products go through linear_gemm (oneDNN matmul). */
#include "op_linear.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ctx_int.h"
#include "linear_gemm.h"
#include "mathfn.h"
#include "tape.h"

/* Parallelise element-wise loops above this many elements. */
#define LIN_PAR_MIN 16384

const char *avsr_act_name(avsr_act_kind act)
{
    switch (act) {
    case AVSR_ACT_NONE: return "none";
    case AVSR_ACT_RELU: return "relu";
    case AVSR_ACT_SILU: return "silu";
    case AVSR_ACT_GELU: return "gelu";
    }
    return "unknown";
}

static int check_f32(avsr_ctx *ctx, const char *op, const char *arg, const avsr_tensor *t)
{
    if (t->dtype != AVSR_F32) {
        avsr_ctx_fail(ctx, "%s: %s must be F32, got %s", op, arg, avsr_dtype_name(t->dtype));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* linear, linear_act                                                        */

struct linear_saved {
    avsr_tensor *x, *w, *b; /* [M, K] (any leading dims), [N, K], [N] or NULL */
    avsr_tensor *y;         /* [M, N] output (post-activation) */
    const float *z;         /* [M, N] pre-activation (silu, gelu) or NULL */
    avsr_act_kind act;
    int64_t M, N, K;
};

/* db[j] += sum_i dz[i, j]. Rows are summed in fixed chunks of LIN_BG_ROWS
 * (each chunk streams its rows contiguously into a partial sum, chunks in
 * parallel), then the partial sums are added in chunk order: the result
 * does not depend on the thread count, and every read is sequential (a
 * column-blocked loop would stride by a whole row per access). */
#define LIN_BG_ROWS 128
static int bias_grad(avsr_ctx *ctx, float *db, const float *dz, int64_t M, int64_t N)
{
    int64_t nch = (M + LIN_BG_ROWS - 1) / LIN_BG_ROWS;
    if (nch <= 1) {
        for (int64_t j = 0; j < N; j++) {
            float acc = 0.0f;
            for (int64_t i = 0; i < M; i++)
                acc += dz[i * N + j];
            db[j] += acc;
        }
        return 0;
    }
    float *part = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(nch * N)); /* [nch, N] */
    if (!part)
        return -1;
#pragma omp parallel for schedule(static) if (M * N > LIN_PAR_MIN)
    for (int64_t c = 0; c < nch; c++) {
        float *p = part + c * N;
        int64_t i0 = c * LIN_BG_ROWS, i1 = i0 + LIN_BG_ROWS < M ? i0 + LIN_BG_ROWS : M;
        memcpy(p, dz + i0 * N, sizeof(float) * (size_t)N);
        for (int64_t i = i0 + 1; i < i1; i++) {
            const float *row = dz + i * N;
#pragma omp simd
            for (int64_t j = 0; j < N; j++)
                p[j] += row[j];
        }
    }
    /* nch * N is small (1/128 of dz): a parallel region costs more */
    for (int64_t j = 0; j < N; j++) {
        float acc = 0.0f;
        for (int64_t c = 0; c < nch; c++)
            acc += part[c * N + j];
        db[j] += acc;
    }
    return 0;
}

static void linear_backward(avsr_ctx *ctx, void *sv)
{
    struct linear_saved *s = sv;
    int64_t M = s->M, N = s->N, K = s->K, n = M * N;
    const float *dy = s->y->grad; /* [M, N] */
    const float *dz = dy;         /* [M, N] gradient of the pre-activation */
    if (s->act != AVSR_ACT_NONE) {
        float *t = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(n > 0 ? n : 1));
        if (!t)
            return;
        const float *y = avsr_f32(s->y), *z = s->z;
        switch (s->act) {
        case AVSR_ACT_RELU: /* relu'(z) = [z > 0] = [y > 0] */
#pragma omp parallel for schedule(static) if (n > LIN_PAR_MIN)
            for (int64_t i = 0; i < n; i++)
                t[i] = dy[i] * avsr_fn_relu_grad(y[i]);
            break;
        case AVSR_ACT_SILU:
#pragma omp parallel for schedule(static) if (n > LIN_PAR_MIN)
            for (int64_t i = 0; i < n; i++)
                t[i] = dy[i] * avsr_fn_silu_grad(z[i]);
            break;
        case AVSR_ACT_GELU:
#pragma omp parallel for schedule(static) if (n > LIN_PAR_MIN)
            for (int64_t i = 0; i < n; i++)
                t[i] = dy[i] * avsr_fn_gelu_grad(z[i]);
            break;
        default: break;
        }
        dz = t;
    }
    if (avsr_tensor_requires_grad(s->b)) {
        float *db = avsr_tensor_grad(ctx, s->b); /* [N] */
        if (!db)
            return;
        if (bias_grad(ctx, db, dz, M, N) < 0)
            return;
    }
    if (avsr_tensor_requires_grad(s->x)) {
        bool acc;
        float *dx = avsr_tensor_grad_out(ctx, s->x, &acc); /* [M, K] */
        if (!dx)
            return;
        /* dx[M, K] (+)= dz[M, N] . w[N, K] */
        avsr_lin_gemm g = {.nb = 1, .M = M, .N = K, .K = N, .a = dz, .b = avsr_f32(s->w),
                           .alpha = 1.0f, .accumulate = acc, .c = dx};
        if (avsr_lin_gemm_run(ctx, &g) < 0)
            return;
    }
    if (avsr_tensor_requires_grad(s->w)) {
        bool acc;
        float *dw = avsr_tensor_grad_out(ctx, s->w, &acc); /* [N, K] */
        if (!dw)
            return;
        /* dw[N, K] (+)= dz^T[N, M] . x[M, K]; dz^T is a strided view */
        avsr_lin_gemm g = {.nb = 1, .M = N, .N = K, .K = M, .a = dz, .ta = true,
                           .b = avsr_f32(s->x), .alpha = 1.0f, .accumulate = acc, .c = dw};
        avsr_lin_gemm_run(ctx, &g);
    }
}

static avsr_tensor *linear_impl(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w, avsr_tensor *b,
                                avsr_act_kind act, const char *op)
{
    if (!x || !w || avsr_ctx_failed(ctx))
        return NULL;
    char bx[96], bw[96], bb[96];
    if (check_f32(ctx, op, "x", x) < 0 || check_f32(ctx, op, "weight", w) < 0 ||
        (b && check_f32(ctx, op, "bias", b) < 0))
        return NULL;
    if (act < AVSR_ACT_NONE || act > AVSR_ACT_GELU)
        return avsr_ctx_fail(ctx, "%s: unknown activation %d", op, (int)act);
    if (w->ndim != 2)
        return avsr_ctx_fail(ctx, "%s: weight must be [out, in], got %s", op,
                             avsr_shape_str(w, bw, sizeof bw));
    if (x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1])
        return avsr_ctx_fail(ctx, "%s: x %s does not match weight %s: last dimension of x must be %lld",
                             op, avsr_shape_str(x, bx, sizeof bx), avsr_shape_str(w, bw, sizeof bw),
                             (long long)w->shape[1]);
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return avsr_ctx_fail(ctx, "%s: bias %s does not match weight %s: expected [%lld]", op,
                             avsr_shape_str(b, bb, sizeof bb), avsr_shape_str(w, bw, sizeof bw),
                             (long long)w->shape[0]);
    int64_t N = w->shape[0], K = w->shape[1], M = 1;
    for (int i = 0; i < x->ndim - 1; i++)
        M *= x->shape[i];
    int64_t shape[AVSR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    shape[x->ndim - 1] = N;
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, x->ndim, shape); /* [..., N] */
    if (!y)
        return NULL;
    avsr_tensor *in[3] = {x, w, b};
    bool grad = avsr_ctx_needs_grad(ctx, 3, in);
    /* silu and gelu need the pre-activation for backward: the matmul writes
     * it, an element-wise pass makes y. Otherwise the activation is fused. */
    bool keep_z = grad && (act == AVSR_ACT_SILU || act == AVSR_ACT_GELU);
    float *z = NULL; /* [M, N] */
    if (keep_z && !(z = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(M * N > 0 ? M * N : 1))))
        return NULL;
    avsr_lin_gemm g = {.nb = 1, .M = M, .N = N, .K = K, .a = avsr_f32(x), .b = avsr_f32(w),
                       .tb = true, .bias = b ? avsr_f32(b) : NULL, .alpha = 1.0f,
                       .act = keep_z ? AVSR_ACT_NONE : act, .c = keep_z ? z : avsr_f32(y)};
    if (avsr_lin_gemm_run(ctx, &g) < 0)
        return NULL;
    if (keep_z) {
        float *yd = avsr_f32(y);
        int64_t n = M * N;
        if (act == AVSR_ACT_SILU) {
#pragma omp parallel for schedule(static) if (n > LIN_PAR_MIN)
            for (int64_t i = 0; i < n; i++)
                yd[i] = avsr_fn_silu(z[i]);
        } else {
#pragma omp parallel for schedule(static) if (n > LIN_PAR_MIN)
            for (int64_t i = 0; i < n; i++)
                yd[i] = avsr_fn_gelu(z[i]);
        }
    }
    if (grad) {
        struct linear_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct linear_saved){x, w, b, y, z, act, M, N, K};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, linear_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

avsr_tensor *avsr_op_linear(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w, avsr_tensor *b)
{
    return linear_impl(ctx, x, w, b, AVSR_ACT_NONE, "linear");
}

avsr_tensor *avsr_op_linear_act(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w, avsr_tensor *b,
                                avsr_act_kind act)
{
    return linear_impl(ctx, x, w, b, act, "linear_act");
}

/* ------------------------------------------------------------------------ */
/* matmul                                                                    */

struct matmul_saved {
    avsr_tensor *a, *b, *c; /* [nb, M, K] (or [nb, K, M]), [nb|1, K, N] (or N, K), [nb, M, N] */
    bool ta, tb, bcast;      /* bcast: b is one [K, N] matrix for every batch */
    float alpha;
    int64_t nb, M, N, K;
};

static void matmul_backward(avsr_ctx *ctx, void *sv)
{
    struct matmul_saved *s = sv;
    int64_t nb = s->nb, M = s->M, N = s->N, K = s->K;
    const float *dc = s->c->grad; /* [nb, M, N] */
    const float *A = avsr_f32(s->a), *B = avsr_f32(s->b);
    bool acc;
    if (avsr_tensor_requires_grad(s->a)) {
        float *da = avsr_tensor_grad_out(ctx, s->a, &acc);
        if (!da)
            return;
        avsr_lin_gemm g = {.alpha = s->alpha, .accumulate = acc, .c = da};
        if (!s->ta) {
            /* da[M, K] = alpha dc[M, N] . op(b)^T[N, K] */
            bool fold = s->bcast; /* batch folds into rows when b is shared */
            g.nb = fold ? 1 : nb;
            g.M = fold ? nb * M : M;
            g.N = K;
            g.K = N;
            g.a = dc;
            g.b = B;
            g.tb = !s->tb;
            g.b_bcast = s->bcast && !fold;
        } else {
            /* da[K, M] = alpha op(b)[K, N] . dc^T[N, M] */
            g.nb = nb;
            g.M = K;
            g.N = M;
            g.K = N;
            g.a = B;
            g.ta = s->tb;
            g.a_bcast = s->bcast;
            g.b = dc;
            g.tb = true;
        }
        if (avsr_lin_gemm_run(ctx, &g) < 0)
            return;
    }
    if (avsr_tensor_requires_grad(s->b)) {
        float *db = avsr_tensor_grad_out(ctx, s->b, &acc);
        if (!db)
            return;
        avsr_lin_gemm g = {.alpha = s->alpha, .accumulate = acc, .c = db};
        /* !tb: db[K, N] = alpha op(a)^T[K, M] . dc[M, N]
         *  tb: db[N, K] = alpha dc^T[N, M] . op(a)[M, K] */
        if (!s->bcast || !s->ta) {
            /* one product: per batch, or with b shared and a not transposed
             * the batch folds into the contraction (rows of a and dc) */
            int64_t rows = s->bcast ? nb * M : M;
            g.nb = s->bcast ? 1 : nb;
            if (!s->tb) {
                g.M = K; g.N = N; g.K = rows;
                g.a = A; g.ta = !s->ta;
                g.b = dc;
            } else {
                g.M = N; g.N = K; g.K = rows;
                g.a = dc; g.ta = true;
                g.b = A; g.tb = s->ta;
            }
            avsr_lin_gemm_run(ctx, &g);
        } else {
            /* b shared, a transposed: sum the batches' products in order */
            for (int64_t i = 0; i < nb; i++) {
                const float *Ai = A + i * M * K, *dci = dc + i * M * N;
                avsr_lin_gemm gi = g;
                gi.nb = 1;
                gi.accumulate = acc || i > 0;
                if (!s->tb) {
                    gi.M = K; gi.N = N; gi.K = M;
                    gi.a = Ai; gi.ta = false; /* a stored [K, M] */
                    gi.b = dci;
                } else {
                    gi.M = N; gi.N = K; gi.K = M;
                    gi.a = dci; gi.ta = true;
                    gi.b = Ai; gi.tb = true;
                }
                if (avsr_lin_gemm_run(ctx, &gi) < 0)
                    return;
            }
        }
    }
}

avsr_tensor *avsr_op_matmul(avsr_ctx *ctx, avsr_tensor *a, avsr_tensor *b, bool trans_a,
                            bool trans_b, float alpha)
{
    if (!a || !b || avsr_ctx_failed(ctx))
        return NULL;
    char ba[96], bbuf[96];
    if (check_f32(ctx, "matmul", "a", a) < 0 || check_f32(ctx, "matmul", "b", b) < 0)
        return NULL;
    if (a->ndim < 2 || b->ndim < 2)
        return avsr_ctx_fail(ctx, "matmul: a %s and b %s must have at least 2 dimensions",
                             avsr_shape_str(a, ba, sizeof ba), avsr_shape_str(b, bbuf, sizeof bbuf));
    int na = a->ndim, nbd = b->ndim;
    int64_t M = trans_a ? a->shape[na - 1] : a->shape[na - 2];
    int64_t Ka = trans_a ? a->shape[na - 2] : a->shape[na - 1];
    int64_t Kb = trans_b ? b->shape[nbd - 1] : b->shape[nbd - 2];
    int64_t N = trans_b ? b->shape[nbd - 2] : b->shape[nbd - 1];
    if (Ka != Kb)
        return avsr_ctx_fail(ctx, "matmul: inner dimensions differ: a %s%s gives K = %lld, "
                                  "b %s%s gives K = %lld",
                             avsr_shape_str(a, ba, sizeof ba), trans_a ? " (transposed)" : "",
                             (long long)Ka, avsr_shape_str(b, bbuf, sizeof bbuf),
                             trans_b ? " (transposed)" : "", (long long)Kb);
    bool bcast = nbd == 2 && na > 2;
    if (!bcast) {
        bool same = na == nbd;
        for (int i = 0; same && i < na - 2; i++)
            same = a->shape[i] == b->shape[i];
        if (!same)
            return avsr_ctx_fail(ctx, "matmul: batch dimensions differ: a %s, b %s (b may also "
                                      "have exactly 2 dimensions)",
                                 avsr_shape_str(a, ba, sizeof ba), avsr_shape_str(b, bbuf, sizeof bbuf));
    }
    int64_t nb = 1;
    int64_t shape[AVSR_MAX_DIMS];
    for (int i = 0; i < na - 2; i++) {
        nb *= a->shape[i];
        shape[i] = a->shape[i];
    }
    shape[na - 2] = M;
    shape[na - 1] = N;
    avsr_tensor *c = avsr_tensor_new(ctx, AVSR_F32, na, shape); /* [..., M, N] */
    if (!c)
        return NULL;
    /* with b shared and a not transposed, all batches are one product */
    bool fold = bcast && !trans_a;
    avsr_lin_gemm g = {.nb = fold ? 1 : nb, .M = fold ? nb * M : M, .N = N, .K = Ka,
                       .a = avsr_f32(a), .ta = trans_a, .b = avsr_f32(b), .tb = trans_b,
                       .b_bcast = bcast && !fold, .alpha = alpha, .c = avsr_f32(c)};
    if (avsr_lin_gemm_run(ctx, &g) < 0)
        return NULL;
    avsr_tensor *in[2] = {a, b};
    if (avsr_ctx_needs_grad(ctx, 2, in)) {
        struct matmul_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct matmul_saved){a, b, c, trans_a, trans_b, bcast, alpha, nb, M, N, Ka};
        c->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, matmul_backward, c, s) < 0)
            return NULL;
    }
    return c;
}

/* ------------------------------------------------------------------------ */
/* embedding                                                                 */

struct embedding_saved {
    avsr_tensor *weight; /* [V, D] */
    avsr_tensor *idx;    /* [n] flattened, I64 or I32 */
    avsr_tensor *out;    /* [n, D] */
    int64_t padding_idx;
};

static inline int64_t index_at(const avsr_tensor *idx, int64_t i)
{
    return idx->dtype == AVSR_I64 ? ((const int64_t *)idx->data)[i]
                                  : (int64_t)((const int32_t *)idx->data)[i];
}

static void embedding_backward(avsr_ctx *ctx, void *sv)
{
    struct embedding_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->weight))
        return;
    float *dw = avsr_tensor_grad(ctx, s->weight); /* [V, D] */
    if (!dw)
        return;
    const float *dy = s->out->grad; /* [n, D] */
    int64_t n = s->idx->numel, D = s->weight->shape[1], pad = s->padding_idx;
    const avsr_tensor *idx = s->idx;
    /* Each thread owns a range of columns and adds the rows in index
     * order: no atomics, the same sums for any thread count. */
#pragma omp parallel if (n * D > LIN_PAR_MIN)
    {
        int nt = 1, t = 0;
#ifdef _OPENMP
        nt = omp_get_num_threads();
        t = omp_get_thread_num();
#endif
        int64_t j0 = D * t / nt, j1 = D * (t + 1) / nt;
        for (int64_t i = 0; i < n; i++) {
            int64_t r = index_at(idx, i);
            if (r == pad)
                continue;
            float *dst = dw + r * D;
            const float *src = dy + i * D;
            for (int64_t j = j0; j < j1; j++)
                dst[j] += src[j];
        }
    }
}

avsr_tensor *avsr_op_embedding(avsr_ctx *ctx, avsr_tensor *weight, avsr_tensor *idx,
                               int64_t padding_idx)
{
    if (!weight || !idx || avsr_ctx_failed(ctx))
        return NULL;
    char bw[96];
    if (check_f32(ctx, "embedding", "weight", weight) < 0)
        return NULL;
    if (idx->dtype != AVSR_I64 && idx->dtype != AVSR_I32)
        return avsr_ctx_fail(ctx, "embedding: idx must be I64 or I32, got %s",
                             avsr_dtype_name(idx->dtype));
    if (weight->ndim != 2)
        return avsr_ctx_fail(ctx, "embedding: weight must be [V, D], got %s",
                             avsr_shape_str(weight, bw, sizeof bw));
    if (idx->ndim >= AVSR_MAX_DIMS)
        return avsr_ctx_fail(ctx, "embedding: idx has %d dimensions (max %d)", idx->ndim,
                             AVSR_MAX_DIMS - 1);
    int64_t V = weight->shape[0], D = weight->shape[1], n = idx->numel;
    if (padding_idx != -1 && (padding_idx < 0 || padding_idx >= V))
        return avsr_ctx_fail(ctx, "embedding: padding_idx %lld is out of range [0, %lld) (-1 = none)",
                             (long long)padding_idx, (long long)V);
    for (int64_t i = 0; i < n; i++) {
        int64_t r = index_at(idx, i);
        if (r < 0 || r >= V)
            return avsr_ctx_fail(ctx, "embedding: index %lld at position %lld is out of range "
                                      "[0, %lld)",
                                 (long long)r, (long long)i, (long long)V);
    }
    int64_t shape[AVSR_MAX_DIMS];
    memcpy(shape, idx->shape, sizeof(int64_t) * (size_t)idx->ndim);
    shape[idx->ndim] = D;
    avsr_tensor *out = avsr_tensor_new(ctx, AVSR_F32, idx->ndim + 1, shape); /* [..., D] */
    if (!out)
        return NULL;
    const float *w = avsr_f32(weight);
    float *o = avsr_f32(out);
#pragma omp parallel for schedule(static) if (n * D > LIN_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        memcpy(o + i * D, w + index_at(idx, i) * D, sizeof(float) * (size_t)D);
    if (avsr_ctx_needs_grad(ctx, 1, &weight)) {
        struct embedding_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct embedding_saved){weight, idx, out, padding_idx};
        out->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, embedding_backward, out, s) < 0)
            return NULL;
    }
    return out;
}
