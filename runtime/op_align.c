/* op_align: L2 normalisation, shifted symmetric InfoNCE, per-sample roll
 * (see op_align.h). */
#include "op_align.h"

#include <math.h>
#include <string.h>

#include "ctx_int.h"
#include "tape.h"

/* ---- L2 normalisation ---------------------------------------------------- */

struct l2n_saved {
    avsr_tensor *x, *y;
    float *div; /* [rows] max(||x||, eps) */
    int64_t rows, D;
    float eps;
};

static void l2n_backward(avsr_ctx *ctx, void *sv)
{
    struct l2n_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x))
        return;
    float *gx = avsr_tensor_grad(ctx, s->x); /* [rows, D] */
    if (!gx)
        return;
    const float *gy = s->y->grad, *y = avsr_f32(s->y);
    int64_t D = s->D;
#pragma omp parallel for schedule(static) if (s->rows * D > 16384)
    for (int64_t r = 0; r < s->rows; r++) {
        const float *yr = y + r * D, *gr = gy + r * D;
        float *g = gx + r * D;
        const float *xr = avsr_f32(s->x) + r * D;
        float dv = s->div[r];
        double norm = 0.0;
        for (int64_t k = 0; k < D; k++)
            norm += (double)xr[k] * xr[k];
        if (!((float)sqrt(norm) < s->eps)) { /* the forward's branch */
            /* d(x/|x|) = (g - y (y.g)) / |x| */
            double yg = 0.0;
            for (int64_t k = 0; k < D; k++)
                yg += (double)yr[k] * gr[k];
            for (int64_t k = 0; k < D; k++)
                g[k] += (float)((gr[k] - yr[k] * yg) / dv);
        } else {
            /* clamped at eps: y = x / eps */
            for (int64_t k = 0; k < D; k++)
                g[k] += gr[k] / dv;
        }
    }
}

avsr_tensor *avsr_op_l2_normalize(avsr_ctx *ctx, avsr_tensor *x, float eps)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    char b[96];
    if (x->dtype != AVSR_F32 || x->ndim < 1)
        return avsr_ctx_fail(ctx, "l2_normalize: x: got %s %s, expected f32 [..., D]",
                             avsr_dtype_name(x->dtype), avsr_shape_str(x, b, sizeof b));
    if (!(eps >= 0.0f))
        return avsr_ctx_fail(ctx, "l2_normalize: eps %g must be >= 0", (double)eps);
    int64_t D = x->shape[x->ndim - 1], rows = D ? x->numel / D : 0;
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, x->ndim, x->shape);
    float *div = avsr_ctx_alloc(ctx, (size_t)(rows ? rows : 1) * sizeof(float)); /* [rows] */
    if (!y || !div)
        return NULL;
    const float *xd = avsr_f32(x);
    float *yd = avsr_f32(y);
#pragma omp parallel for schedule(static) if (rows * D > 16384)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = xd + r * D;
        double n2 = 0.0;
        for (int64_t k = 0; k < D; k++)
            n2 += (double)xr[k] * xr[k];
        float dv = fmaxf((float)sqrt(n2), eps);
        div[r] = dv;
        for (int64_t k = 0; k < D; k++)
            yd[r * D + k] = xr[k] / dv;
    }
    if (avsr_ctx_needs_grad(ctx, 1, &x)) {
        struct l2n_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct l2n_saved){x, y, div, rows, D, eps};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, l2n_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

/* ---- shifted symmetric InfoNCE ------------------------------------------ */

struct infonce_saved {
    avsr_tensor *A, *V, *scale, *out;
    int64_t B, T, d;
    int64_t *n, *a0, *v0; /* [B] block size and offsets */
    float **dots;         /* [B] -> [n, n] <A_i, V_j> */
    float **lse_r, **lse_c; /* [B] -> [n] row / column log-sum-exp of M */
};

static void infonce_backward(avsr_ctx *ctx, void *sv)
{
    struct infonce_saved *s = sv;
    bool ga = avsr_tensor_requires_grad(s->A), gv = avsr_tensor_requires_grad(s->V),
         gs = avsr_tensor_requires_grad(s->scale);
    float *gA = ga ? avsr_tensor_grad(ctx, s->A) : NULL; /* [B, T, d] */
    float *gV = gv ? avsr_tensor_grad(ctx, s->V) : NULL; /* [B, T, d] */
    float *gS = gs ? avsr_tensor_grad(ctx, s->scale) : NULL;
    if ((ga && !gA) || (gv && !gV) || (gs && !gS))
        return;
    float g = s->out->grad[0], sc = avsr_f32(s->scale)[0];
    int64_t T = s->T, d = s->d;
    double dscale = 0.0;
    for (int64_t b = 0; b < s->B; b++) {
        int64_t n = s->n[b];
        const float *D = s->dots[b], *lr = s->lse_r[b], *lc = s->lse_c[b];
        float *dM = avsr_ctx_alloc(ctx, (size_t)(n * n) * sizeof(float)); /* [n, n] */
        if (!dM)
            return;
        double c = (double)g / (2.0 * (double)n), ds = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : ds) if (n * n > 16384)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                double m = (double)sc * D[i * n + j];
                double v = exp(m - lr[i]) + exp(m - lc[j]) - (i == j ? 2.0 : 0.0);
                dM[i * n + j] = (float)(c * v);
                ds += c * v * D[i * n + j];
            }
        dscale += ds;
        const float *Ab = avsr_f32(s->A) + (b * T + s->a0[b]) * d; /* [n, d] */
        const float *Vb = avsr_f32(s->V) + (b * T + s->v0[b]) * d; /* [n, d] */
        if (gA) {
            float *ga_b = gA + (b * T + s->a0[b]) * d;
#pragma omp parallel for schedule(static) if (n * n * d > 32768)
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < n; j++) {
                    float w = sc * dM[i * n + j];
                    for (int64_t k = 0; k < d; k++)
                        ga_b[i * d + k] += w * Vb[j * d + k];
                }
        }
        if (gV) {
            float *gv_b = gV + (b * T + s->v0[b]) * d;
#pragma omp parallel for schedule(static) if (n * n * d > 32768)
            for (int64_t j = 0; j < n; j++)
                for (int64_t i = 0; i < n; i++) {
                    float w = sc * dM[i * n + j];
                    for (int64_t k = 0; k < d; k++)
                        gv_b[j * d + k] += w * Ab[i * d + k];
                }
        }
    }
    if (gS)
        gS[0] += (float)dscale;
}

avsr_tensor *avsr_op_shift_infonce(avsr_ctx *ctx, avsr_tensor *A, avsr_tensor *V,
                                   avsr_tensor *scale, const int *shifts,
                                   const int64_t *lengths)
{
    if (!A || !V || !scale || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96], b2[96];
    if (A->dtype != AVSR_F32 || A->ndim != 3)
        return avsr_ctx_fail(ctx, "shift_infonce: A: got %s %s, expected f32 [B, T, d]",
                             avsr_dtype_name(A->dtype), avsr_shape_str(A, b1, sizeof b1));
    if (V->dtype != AVSR_F32 || !avsr_shape_equal(A, V))
        return avsr_ctx_fail(ctx, "shift_infonce: V: got %s %s, expected f32 %s like A",
                             avsr_dtype_name(V->dtype), avsr_shape_str(V, b1, sizeof b1),
                             avsr_shape_str(A, b2, sizeof b2));
    if (scale->dtype != AVSR_F32 || scale->numel != 1)
        return avsr_ctx_fail(ctx, "shift_infonce: scale: got %s %s, expected one f32 value",
                             avsr_dtype_name(scale->dtype), avsr_shape_str(scale, b1, sizeof b1));
    if (!shifts)
        return avsr_ctx_fail(ctx, "shift_infonce: shifts: NULL");
    int64_t B = A->shape[0], T = A->shape[1], d = A->shape[2];
    struct infonce_saved tmp = {0};
    struct infonce_saved *s = &tmp;
    bool grad = avsr_ctx_needs_grad(ctx, 3, (avsr_tensor *[]){A, V, scale});
    if (grad && !(s = avsr_tape_saved(ctx, sizeof *s)))
        return NULL;
    memset(s, 0, sizeof *s);
    s->A = A;
    s->V = V;
    s->scale = scale;
    s->B = B;
    s->T = T;
    s->d = d;
    s->n = avsr_ctx_alloc(ctx, (size_t)(3 * B + 1) * sizeof(int64_t));
    s->dots = avsr_ctx_alloc(ctx, (size_t)(3 * B + 1) * sizeof(float *));
    if (!s->n || !s->dots)
        return NULL;
    s->a0 = s->n + B;
    s->v0 = s->n + 2 * B;
    s->lse_r = s->dots + B;
    s->lse_c = s->dots + 2 * B;
    for (int64_t b = 0; b < B; b++) {
        int64_t L = lengths ? lengths[b] : T;
        int64_t sh = shifts[b], as = sh < 0 ? -sh : sh;
        if (L < 1 || L > T)
            return avsr_ctx_fail(ctx, "shift_infonce: lengths[%lld] = %lld, expected 1..%lld",
                                 (long long)b, (long long)L, (long long)T);
        if (as >= L)
            return avsr_ctx_fail(ctx,
                                 "shift_infonce: shifts[%lld] = %lld leaves no aligned frame "
                                 "(length %lld)",
                                 (long long)b, (long long)sh, (long long)L);
        s->n[b] = L - as;
        s->a0[b] = sh < 0 ? as : 0;
        s->v0[b] = sh > 0 ? sh : 0;
        s->dots[b] = avsr_ctx_alloc(ctx, (size_t)(s->n[b] * s->n[b]) * sizeof(float));
        s->lse_r[b] = avsr_ctx_alloc(ctx, (size_t)s->n[b] * sizeof(float));
        s->lse_c[b] = avsr_ctx_alloc(ctx, (size_t)s->n[b] * sizeof(float));
        if (!s->dots[b] || !s->lse_r[b] || !s->lse_c[b])
            return NULL;
    }
    int64_t one = 1;
    avsr_tensor *out = avsr_tensor_new(ctx, AVSR_F32, 1, &one);
    if (!out)
        return NULL;
    float sc = avsr_f32(scale)[0];
    double total = 0.0;
    for (int64_t b = 0; b < B; b++) {
        int64_t n = s->n[b];
        const float *Ab = avsr_f32(A) + (b * T + s->a0[b]) * d; /* [n, d] */
        const float *Vb = avsr_f32(V) + (b * T + s->v0[b]) * d; /* [n, d] */
        float *D = s->dots[b], *lr = s->lse_r[b], *lc = s->lse_c[b];
#pragma omp parallel for schedule(static) if (n * n * d > 32768)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                double acc = 0.0;
                for (int64_t k = 0; k < d; k++)
                    acc += (double)Ab[i * d + k] * Vb[j * d + k];
                D[i * n + j] = (float)acc;
            }
        double sum_r = 0.0, sum_c = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : sum_r, sum_c) if (n * n > 16384)
        for (int64_t i = 0; i < n; i++) {
            /* row i (audio i against every video) and column i */
            double mr = -INFINITY, mc = -INFINITY;
            for (int64_t j = 0; j < n; j++) {
                mr = fmax(mr, (double)sc * D[i * n + j]);
                mc = fmax(mc, (double)sc * D[j * n + i]);
            }
            double er = 0.0, ec = 0.0;
            for (int64_t j = 0; j < n; j++) {
                er += exp((double)sc * D[i * n + j] - mr);
                ec += exp((double)sc * D[j * n + i] - mc);
            }
            lr[i] = (float)(mr + log(er));
            lc[i] = (float)(mc + log(ec));
            double diag = (double)sc * D[i * n + i];
            sum_r += lr[i] - diag;
            sum_c += lc[i] - diag;
        }
        total += 0.5 * (sum_r + sum_c) / (double)n;
    }
    avsr_f32(out)[0] = (float)total;
    if (grad) {
        s->out = out;
        out->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, infonce_backward, out, s) < 0)
            return NULL;
    }
    return out;
}

/* ---- per-sample roll ------------------------------------------------------ */

struct roll_saved {
    avsr_tensor *x, *y;
    int64_t *shift; /* [B], reduced to 0..n-1 */
    int64_t outer, n, inner; /* per sample: [outer, n, inner] */
};

/* dst[(i + s) mod n] = src[i] along the middle axis of [B, outer, n, inner];
 * add = accumulate into dst */
static void roll_copy(float *dst, const float *src, const int64_t *shift, int64_t B,
                      int64_t outer, int64_t n, int64_t inner, int dir, bool add)
{
    int64_t slices = B * outer;
#pragma omp parallel for schedule(static) if (slices * n * inner > 32768)
    for (int64_t q = 0; q < slices; q++) {
        int64_t b = q / outer, sh = dir > 0 ? shift[b] : (n - shift[b]) % n;
        const float *sq = src + q * n * inner; /* [n, inner] */
        float *dq = dst + q * n * inner;
        for (int64_t i = 0; i < n; i++) {
            int64_t j = (i + sh) % n;
            if (add)
                for (int64_t k = 0; k < inner; k++)
                    dq[j * inner + k] += sq[i * inner + k];
            else
                memcpy(dq + j * inner, sq + i * inner, (size_t)inner * sizeof(float));
        }
    }
}

static void roll_backward(avsr_ctx *ctx, void *sv)
{
    struct roll_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x))
        return;
    float *gx = avsr_tensor_grad(ctx, s->x);
    if (!gx)
        return;
    roll_copy(gx, s->y->grad, s->shift, s->x->shape[0], s->outer, s->n, s->inner, -1, true);
}

avsr_tensor *avsr_op_roll(avsr_ctx *ctx, avsr_tensor *x, int dim, const int64_t *shifts)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    char b[96];
    if (x->dtype != AVSR_F32 || x->ndim < 2)
        return avsr_ctx_fail(ctx, "roll: x: got %s %s, expected f32 [B, ...] with 2+ dims",
                             avsr_dtype_name(x->dtype), avsr_shape_str(x, b, sizeof b));
    int dd = dim < 0 ? dim + x->ndim : dim;
    if (dd < 1 || dd >= x->ndim)
        return avsr_ctx_fail(ctx, "roll: dim %d of %s: must be a non-batch dimension", dim,
                             avsr_shape_str(x, b, sizeof b));
    if (!shifts)
        return avsr_ctx_fail(ctx, "roll: shifts: NULL");
    int64_t B = x->shape[0], n = x->shape[dd], outer = 1, inner = 1;
    for (int i = 1; i < dd; i++)
        outer *= x->shape[i];
    for (int i = dd + 1; i < x->ndim; i++)
        inner *= x->shape[i];
    int64_t *sh = avsr_ctx_alloc(ctx, (size_t)(B ? B : 1) * sizeof(int64_t)); /* [B] */
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, x->ndim, x->shape);
    if (!sh || !y)
        return NULL;
    for (int64_t i = 0; i < B; i++)
        sh[i] = n ? ((shifts[i] % n) + n) % n : 0;
    if (n)
        roll_copy(avsr_f32(y), avsr_f32(x), sh, B, outer, n, inner, 1, false);
    if (avsr_ctx_needs_grad(ctx, 1, &x)) {
        struct roll_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct roll_saved){x, y, sh, outer, n, inner};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, roll_backward, y, s) < 0)
            return NULL;
    }
    return y;
}
