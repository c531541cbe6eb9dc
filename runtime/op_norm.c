/* op_norm: batch norm, layer norm, softmax, log-softmax (see op_norm.h).
 *
 * Layer norm and unmasked softmax / log-softmax run either through cached
 * oneDNN primitives (layer_normalization, softmax_v2) or through the OpenMP
 * kernels here, whichever measured faster for the case (see norm_impl).
 * The OpenMP kernels also do batch norm and masked softmax: loops over rows
 * (layer norm, softmax) or over (batch, channel) planes (batch norm); the
 * per-row kernels are compiled for AVX2 and the baseline (AVSR_SIMD_CLONES)
 * with `omp simd` reductions. Softmax also has row kernels written with
 * AVX-512F intrinsics, used where the CPU has AVX-512F. */
#include "op_norm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "act_fn.h"
#include "ctx_int.h"
#include "dnnl_util.h"
#include "tape.h"

/* rows per parallel chunk so that a chunk holds at least ~16K elements */
static int64_t rows_per_chunk(int64_t D)
{
    int64_t r = D > 0 ? 16384 / D : 1;
    return r < 1 ? 1 : r;
}

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Which kernels layer norm and softmax / log-softmax run.
 *
 * IMPL_AUTO (the default), from measurements at 2 threads
 * (docs/ops/norm.md, "Kernel choice"):
 * - layer norm forward: the oneDNN primitive for x with at least
 *   LN_DNNL_MIN elements and D < LN_DNNL_MAX_D, else the OpenMP kernel
 *   (faster for small tensors, where oneDNN's fixed cost per call of a few
 *   microseconds dominates, and at D >= 512);
 * - layer norm backward: the OpenMP kernel (one memory pass over x and dy
 *   with the gamma/beta sums fused in; oneDNN's makes two, and would need
 *   scratch and an extra pass to add into an existing gradient);
 * - softmax / log-softmax, forward and backward, masked or not: the OpenMP
 *   kernel with AVX-512 rows when the CPU has AVX-512F (faster than
 *   oneDNN's primitive at every size measured: an exp with fewer
 *   instructions, no call overhead for small x). Without AVX-512F: the
 *   oneDNN primitive forward for unmasked x with at least SM_DNNL_MIN
 *   elements, else the portable OpenMP kernel; backward by oneDNN when the
 *   forward was and d x is a new gradient, which oneDNN then writes
 *   directly, else the portable OpenMP kernel (it adds into an existing d x).
 * The OpenMP backward kernels write a new gradient directly too (no
 * zeroing) and add into an existing one.
 * IMPL_OWN: the portable OpenMP kernels only (omp simd, AVX2 clones).
 * IMPL_AVX512: as IMPL_OWN, but softmax with the AVX-512 rows where the CPU
 * has them. IMPL_DNNL: oneDNN wherever it can (any size; backward through
 * scratch when d x exists; masked softmax runs the portable kernel). The
 * environment variable AVSR_NORM_IMPL=own|avx512|dnnl|auto selects one; it
 * exists so that bench/bench_norm and the tests can run each kernel, and
 * is read at each call (getenv costs far less than the op). */
enum { IMPL_OWN, IMPL_AVX512, IMPL_DNNL, IMPL_AUTO };
#define LN_DNNL_MIN 131072
#define LN_DNNL_MAX_D 512
#define SM_DNNL_MIN 2048

static int norm_impl(void)
{
    const char *e = getenv("AVSR_NORM_IMPL");
    if (e && !strcmp(e, "own"))
        return IMPL_OWN;
    if (e && !strcmp(e, "avx512"))
        return IMPL_AVX512;
    if (e && !strcmp(e, "dnnl"))
        return IMPL_DNNL;
    return IMPL_AUTO;
}

/* backward of an op whose forward ran oneDNN: oneDNN too? (ln: layer norm) */
static bool use_dnnl_backward(const avsr_tensor *x, bool ln)
{
    int impl = norm_impl();
    if (impl == IMPL_DNNL)
        return true;
    return impl == IMPL_AUTO && !ln && avsr_tensor_requires_grad(x) && !x->grad;
}

/* Gradient buffer of t for a kernel that writes (oneDNN): an existing buffer
 * cannot be written, so *scratch is set to a fresh arena buffer whose
 * contents the caller adds into the returned gradient (add_into); a missing
 * one is created and written directly (*scratch = NULL). Heap tensors get
 * their gradient from avsr_tensor_grad (zeroed heap memory). */
static float *grad_dst(avsr_ctx *ctx, avsr_tensor *t, float **scratch)
{
    *scratch = NULL;
    if (!t->grad) {
        if (t->flags & AVSR_T_OWNED)
            return avsr_tensor_grad(ctx, t);
        t->grad = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(t->numel ? t->numel : 1));
        return t->grad;
    }
    *scratch = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(t->numel ? t->numel : 1));
    return *scratch ? t->grad : NULL;
}

/* g[i] += v[i], i < n */
static void add_into(float *g, const float *v, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t k = 0; k < n; k += 16384) {
        int64_t e = k + 16384 < n ? k + 16384 : n;
#pragma omp simd
        for (int64_t i = k; i < e; i++)
            g[i] += v[i];
    }
}

/* Fill args[] with those of cand[] the primitive takes; returns the count. */
static int prim_args(const_dnnl_primitive_desc_t pd, const int *cand, int n, int *args)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, cand[i]);
        if (md && md->ndims > 0)
            args[k++] = cand[i];
    }
    return k;
}

/* handles in the order of p->arg[], looked up from (arg, pointer) pairs */
static int exec_args(avsr_ctx *ctx, avsr_dnnl_prim *p, const int *arg, void *const *ptr, int n)
{
    void *h[AVSR_DNNL_MAX_ARGS];
    for (int i = 0; i < p->nargs; i++) {
        h[i] = NULL;
        for (int j = 0; j < n; j++)
            if (arg[j] == p->arg[i])
                h[i] = ptr[j];
        if (!h[i]) {
            avsr_ctx_fail(ctx, "op_norm: oneDNN argument %d has no buffer", p->arg[i]);
            return -1;
        }
    }
    return avsr_dnnl_exec(ctx, p, h);
}

static bool is_mask_dtype(avsr_dtype t) { return t == AVSR_U8 || t == AVSR_BOOL || t == AVSR_F32; }

/* mask as bytes (0/1) in the arena: [numel of mask] */
static uint8_t *mask_bytes(avsr_ctx *ctx, const avsr_tensor *m)
{
    uint8_t *v = avsr_ctx_alloc(ctx, (size_t)m->numel + 1);
    if (!v)
        return NULL;
    if (m->dtype == AVSR_F32) {
        const float *f = avsr_f32(m);
        for (int64_t i = 0; i < m->numel; i++)
            v[i] = f[i] != 0.0f;
    } else {
        const uint8_t *u = m->data;
        for (int64_t i = 0; i < m->numel; i++)
            v[i] = u[i] != 0;
    }
    return v;
}

/* ====================================================================== */
/* batch norm */

struct bn_saved {
    avsr_tensor *x, *gamma, *beta, *y;
    const float *mean, *rstd; /* [C]: the statistics that normalised x */
    const uint8_t *valid;     /* [B, T] or NULL */
    int64_t B, C, T, inner;   /* x viewed as [B, C, T, inner] */
    double count;             /* values per channel in the (global) statistics */
    bool batch_stats;         /* statistics depend on x */
};

/* s1 += sum x[i], s2 += sum x[i]^2 over n contiguous values (double sums) */
static AVSR_SIMD_CLONES void bn_sums_x(const float *x, int64_t n, double *s1, double *s2)
{
    double a1 = 0.0, a2 = 0.0;
#pragma omp simd reduction(+ : a1, a2)
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        a1 += v;
        a2 += v * v;
    }
    *s1 += a1;
    *s2 += a2;
}

/* s1 += sum dy[i], s2 += sum dy[i] * (x[i] - mc) * rc over n contiguous values */
static AVSR_SIMD_CLONES void bn_sums_dy(const float *dy, const float *x, int64_t n, float mc,
                                        float rc, double *s1, double *s2)
{
    double a1 = 0.0, a2 = 0.0;
#pragma omp simd reduction(+ : a1, a2)
    for (int64_t i = 0; i < n; i++) {
        double g = dy[i];
        a1 += g;
        a2 += g * (double)((x[i] - mc) * rc);
    }
    *s1 += a1;
    *s2 += a2;
}

/* End of the run of frames starting at t that are all valid (valid[t]) or
 * all padded (!valid[t]); valid NULL: every frame, one run. */
static int64_t bn_run_end(const uint8_t *valid, int64_t t, int64_t T)
{
    if (!valid)
        return T;
    if (valid[t]) { /* mask bytes are 0 or 1: the next 0 ends the run (memchr is vectorised) */
        const uint8_t *z = memchr(valid + t, 0, (size_t)(T - t));
        return z ? (int64_t)(z - valid) : T;
    }
    int64_t e = t + 1;
    while (e < T && !valid[e])
        e++;
    return e;
}

/* Per-(b, c) sums of a and a*b over the plane, valid frames only if
 * valid_only (a = x, b = x for statistics; a = dy, b = x_hat for backward).
 * The plane is summed in runs of consecutive valid frames, each contiguous
 * in memory (the whole plane without a mask), so that the sums vectorise
 * also when inner is 1 (1-D batch norm over [B, C, T]). */
static void bn_plane_sums(const struct bn_saved *s, const float *x, const float *dy, bool valid_only,
                          double *p1, double *p2)
{
    int64_t B = s->B, C = s->C, T = s->T, inner = s->inner, S = T * inner;
    const uint8_t *valid = valid_only ? s->valid : NULL;
    const float *mean = s->mean, *rstd = s->rstd;
#pragma omp parallel for schedule(static) if (B * C * S > 32768)
    for (int64_t bc = 0; bc < B * C; bc++) {
        int64_t b = bc / C, c = bc % C;
        const float *xp = x + bc * S;
        const float *gp = dy ? dy + bc * S : NULL;
        const uint8_t *vb = valid ? valid + b * T : NULL;
        double a1 = 0.0, a2 = 0.0;
        for (int64_t t = 0, e; t < T; t = e) {
            e = bn_run_end(vb, t, T);
            if (vb && !vb[t])
                continue;
            int64_t o = t * inner, n = (e - t) * inner;
            if (!gp)
                bn_sums_x(xp + o, n, &a1, &a2);
            else
                bn_sums_dy(gp + o, xp + o, n, mean[c], rstd[c], &a1, &a2);
        }
        p1[bc] = a1;
        p2[bc] = a2;
    }
}

/* d x over n contiguous values of a valid run (m2 != 0 or m1 != 0: batch
 * statistics) or of padded frames / running statistics (m1 = m2 = 0):
 * gx = a * (dy - m1 - (x - mc) * rc * m2), written or added (acc) */
static AVSR_SIMD_CLONES void bn_dx_run(float *gx, const float *dy, const float *x, int64_t n,
                                       float a, float m1, float m2, float mc, float rc, bool acc)
{
    if (acc) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            gx[i] += a * (dy[i] - m1 - (x[i] - mc) * rc * m2);
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            gx[i] = a * (dy[i] - m1 - (x[i] - mc) * rc * m2);
    }
}

static int bn_sync(avsr_ctx *ctx, double *buf, int n)
{
    if (!ctx->bn_sync)
        return 0;
    if (ctx->bn_sync(ctx->bn_sync_user, buf, n, &ctx->err) < 0) {
        if (!avsr_ctx_failed(ctx))
            avsr_ctx_fail(ctx, "batch_norm: cross-rank synchronisation failed");
        return -1;
    }
    return 0;
}

static void bn_backward(avsr_ctx *ctx, void *sv)
{
    struct bn_saved *s = sv;
    int64_t B = s->B, C = s->C, S = s->T * s->inner;
    const float *x = avsr_f32(s->x), *gy = s->y->grad; /* [B, C, S] */
    bool need_x = avsr_tensor_requires_grad(s->x);
    bool need_g = avsr_tensor_requires_grad(s->gamma);
    bool need_b = avsr_tensor_requires_grad(s->beta);
    bool sums = need_g || need_b || (need_x && s->batch_stats);
    double *sdy = NULL, *sdyx = NULL; /* [C] local sums of dy and dy * x_hat */
    if (sums) {
        double *p1 = avsr_ctx_alloc(ctx, sizeof(double) * (size_t)(2 * B * C)); /* [2, B, C] */
        sdy = avsr_ctx_alloc(ctx, sizeof(double) * (size_t)(2 * C));           /* [2, C] */
        if (!p1 || !sdy)
            return;
        sdyx = sdy + C;
        bn_plane_sums(s, x, gy, false, p1, p1 + B * C);
        for (int64_t c = 0; c < C; c++) {
            double a = 0.0, b2 = 0.0;
            for (int64_t b = 0; b < B; b++) {
                a += p1[b * C + c];
                b2 += p1[B * C + b * C + c];
            }
            sdy[c] = a;
            sdyx[c] = b2;
        }
        /* parameter gradients: this rank's sums (the trainer reduces them) */
        if (need_g) {
            float *gg = avsr_tensor_grad(ctx, s->gamma); /* [C] */
            if (!gg)
                return;
            for (int64_t c = 0; c < C; c++)
                gg[c] += (float)sdyx[c];
        }
        if (need_b) {
            float *gb = avsr_tensor_grad(ctx, s->beta); /* [C] */
            if (!gb)
                return;
            for (int64_t c = 0; c < C; c++)
                gb[c] += (float)sdy[c];
        }
    }
    if (!need_x)
        return;
    bool acc;
    float *gx = avsr_tensor_grad_out(ctx, s->x, &acc); /* [B, C, S] */
    if (!gx)
        return;
    const float *gamma = s->gamma ? avsr_f32(s->gamma) : NULL;
    float *k1 = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(3 * C)); /* [3, C] */
    if (!k1)
        return;
    float *k2 = k1 + C, *k3 = k2 + C;
    if (s->batch_stats) {
        /* all ranks' sums of dy and dy * x_hat (SyncBatchNorm backward) */
        if (bn_sync(ctx, sdy, (int)(2 * C)) < 0)
            return;
    }
    for (int64_t c = 0; c < C; c++) {
        float g = gamma ? gamma[c] : 1.0f;
        k1[c] = g * s->rstd[c];                                          /* d y / d x direct */
        k2[c] = s->batch_stats ? (float)(sdy[c] / s->count) : 0.0f;      /* mean of dy */
        k3[c] = s->batch_stats ? (float)(sdyx[c] / s->count) : 0.0f;     /* mean of dy x_hat */
    }
    int64_t T = s->T, inner = s->inner;
    const uint8_t *valid = s->valid;
    const float *mean = s->mean, *rstd = s->rstd;
#pragma omp parallel for schedule(static) if (B * C * S > 32768)
    for (int64_t bc = 0; bc < B * C; bc++) {
        int64_t b = bc / C, c = bc % C;
        const uint8_t *vb = valid ? valid + b * T : NULL;
        float a = k1[c], m1 = k2[c], m2 = k3[c], mc = mean[c], rc = rstd[c];
        for (int64_t t = 0, e; t < T; t = e) {
            e = bn_run_end(vb, t, T);
            int64_t o = bc * S + t * inner, n = (e - t) * inner;
            if (vb && !vb[t]) /* padded frames: their output depends on x only directly */
                bn_dx_run(gx + o, gy + o, x + o, n, a, 0.0f, 0.0f, mc, rc, acc);
            else
                bn_dx_run(gx + o, gy + o, x + o, n, a, m1, m2, mc, rc, acc);
        }
    }
}

avsr_tensor *avsr_op_batch_norm(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *gamma,
                                avsr_tensor *beta, avsr_tensor *running_mean,
                                avsr_tensor *running_var, avsr_tensor *mask, float momentum,
                                float eps)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96], b2[96];
    if (x->dtype != AVSR_F32)
        return avsr_ctx_fail(ctx, "batch_norm: x: expects f32, got %s", avsr_dtype_name(x->dtype));
    if (x->ndim < 2)
        return avsr_ctx_fail(ctx, "batch_norm: x: got %s, expected [B, C, *]",
                             avsr_shape_str(x, b1, sizeof b1));
    int64_t B = x->shape[0], C = x->shape[1], T = x->ndim > 2 ? x->shape[2] : 1, inner = 1;
    for (int i = 3; i < x->ndim; i++)
        inner *= x->shape[i];
    avsr_tensor *const pars[4] = {gamma, beta, running_mean, running_var};
    static const char *const pname[4] = {"gamma", "beta", "running_mean", "running_var"};
    for (int k = 0; k < 4; k++) {
        avsr_tensor *p = pars[k];
        if (p && (p->dtype != AVSR_F32 || p->ndim != 1 || p->shape[0] != C))
            return avsr_ctx_fail(ctx, "batch_norm: %s: got %s %s, expected f32 [%lld] for x %s",
                                 pname[k], avsr_dtype_name(p->dtype),
                                 avsr_shape_str(p, b1, sizeof b1), (long long)C,
                                 avsr_shape_str(x, b2, sizeof b2));
    }
    if (!running_mean != !running_var)
        return avsr_ctx_fail(ctx, "batch_norm: running_mean and running_var: give both or neither");
    if (mask) {
        if (!is_mask_dtype(mask->dtype))
            return avsr_ctx_fail(ctx, "batch_norm: mask: expects u8, bool or f32, got %s",
                                 avsr_dtype_name(mask->dtype));
        if (x->ndim < 3 || mask->ndim != 2 || mask->shape[0] != B || mask->shape[1] != T)
            return avsr_ctx_fail(ctx, "batch_norm: mask: got %s for x %s, expected [B, T] with T = x.shape[2]",
                                 avsr_shape_str(mask, b1, sizeof b1), avsr_shape_str(x, b2, sizeof b2));
    }
    if (!(eps >= 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f))
        return avsr_ctx_fail(ctx, "batch_norm: momentum %g / eps %g, expected 0 <= momentum <= 1, eps >= 0",
                             (double)momentum, (double)eps);

    struct bn_saved sv = {x, gamma, beta, NULL, NULL, NULL, NULL, B, C, T, inner, 0.0, false};
    sv.batch_stats = avsr_ctx_training(ctx) || !running_mean;
    float *mean = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(2 * C)); /* [2, C] mean, rstd */
    if (!mean)
        return NULL;
    float *rstd = mean + C;
    sv.mean = mean;
    sv.rstd = rstd;
    if (mask && !(sv.valid = mask_bytes(ctx, mask)))
        return NULL;
    if (sv.batch_stats) {
        double *p = avsr_ctx_alloc(ctx, sizeof(double) * (size_t)(2 * B * C)); /* [2, B, C] */
        double *buf = avsr_ctx_alloc(ctx, sizeof(double) * (size_t)(2 * C + 1)); /* sum, sumsq, n */
        if (!p || !buf)
            return NULL;
        bn_plane_sums(&sv, avsr_f32(x), NULL, true, p, p + B * C);
        for (int64_t c = 0; c < C; c++) {
            double a = 0.0, q = 0.0;
            for (int64_t b = 0; b < B; b++) {
                a += p[b * C + c];
                q += p[B * C + b * C + c];
            }
            buf[c] = a;
            buf[C + c] = q;
        }
        int64_t frames = B * T;
        if (sv.valid) {
            frames = 0;
            for (int64_t i = 0; i < B * T; i++)
                frames += sv.valid[i];
        }
        buf[2 * C] = (double)frames * (double)inner;
        if (bn_sync(ctx, buf, (int)(2 * C + 1)) < 0)
            return NULL;
        double n = buf[2 * C];
        if (n <= 1.0)
            return avsr_ctx_fail(ctx, "batch_norm: x %s: expected more than 1 value per channel for batch statistics, got %g",
                                 avsr_shape_str(x, b1, sizeof b1), n);
        sv.count = n;
        float *rm = running_mean ? avsr_f32(running_mean) : NULL;
        float *rv = running_var ? avsr_f32(running_var) : NULL;
        bool update = rm && avsr_ctx_training(ctx);
        for (int64_t c = 0; c < C; c++) {
            double mu = buf[c] / n;
            double var = buf[C + c] / n - mu * mu;
            if (var < 0.0)
                var = 0.0;
            mean[c] = (float)mu;
            rstd[c] = (float)(1.0 / sqrt(var + (double)eps));
            if (update) {
                rm[c] = (1.0f - momentum) * rm[c] + momentum * (float)mu;
                rv[c] = (1.0f - momentum) * rv[c] + momentum * (float)(var * n / (n - 1.0));
            }
        }
    } else {
        const float *rm = avsr_f32(running_mean), *rv = avsr_f32(running_var);
        for (int64_t c = 0; c < C; c++) {
            mean[c] = rm[c];
            rstd[c] = (float)(1.0 / sqrt((double)rv[c] + (double)eps));
        }
    }
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, x->ndim, x->shape); /* [B, C, S] */
    if (!y)
        return NULL;
    int64_t S = T * inner;
    const float *xd = avsr_f32(x), *gd = gamma ? avsr_f32(gamma) : NULL,
                *bd = beta ? avsr_f32(beta) : NULL;
    float *yd = avsr_f32(y);
#pragma omp parallel for schedule(static) if (B * C * S > 32768)
    for (int64_t bc = 0; bc < B * C; bc++) {
        int64_t c = bc % C;
        float sc = rstd[c] * (gd ? gd[c] : 1.0f);
        float sh = (bd ? bd[c] : 0.0f) - mean[c] * sc;
        const float *xr = xd + bc * S;
        float *yr = yd + bc * S;
#pragma omp simd
        for (int64_t i = 0; i < S; i++)
            yr[i] = xr[i] * sc + sh;
    }
    avsr_tensor *in[3] = {x, gamma, beta};
    if (avsr_ctx_needs_grad(ctx, 3, in)) {
        struct bn_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        sv.y = y;
        *s = sv;
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, bn_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

/* ====================================================================== */
/* layer norm */

/* rows [r0, r1) of x [N, D] -> y, mean, rstd */
static AVSR_SIMD_CLONES void ln_fwd_rows(const float *x, float *y, float *mean, float *rstd,
                                         const float *g, const float *b, int64_t r0, int64_t r1,
                                         int64_t D, float eps)
{
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * D;
        float *yr = y + r * D;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < D; i++)
            s += xr[i];
        float mu = s / (float)D, q = 0.0f;
#pragma omp simd reduction(+ : q)
        for (int64_t i = 0; i < D; i++)
            q += (xr[i] - mu) * (xr[i] - mu);
        float rs = 1.0f / sqrtf(q / (float)D + eps);
        mean[r] = mu;
        rstd[r] = rs;
        if (g && b) {
#pragma omp simd
            for (int64_t i = 0; i < D; i++)
                yr[i] = (xr[i] - mu) * rs * g[i] + b[i];
        } else {
            for (int64_t i = 0; i < D; i++)
                yr[i] = (xr[i] - mu) * rs * (g ? g[i] : 1.0f) + (b ? b[i] : 0.0f);
        }
    }
}

/* rows [r0, r1): gx += ... (gx = ... if assign), pg += dy * x_hat,
 * pb += dy (gx, pg, pb may be NULL; pg and pb are both set or both NULL).
 * One pass gathers the row sums (and the parameter sums), a second writes
 * gx. */
static AVSR_SIMD_CLONES void ln_bwd_rows(const float *x, const float *gy, const float *mean,
                                         const float *rstd, const float *g, float *gx, float *pg,
                                         float *pb, int64_t r0, int64_t r1, int64_t D, bool assign)
{
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * D, *gr = gy + r * D;
        float mu = mean[r], rs = rstd[r];
        float s1 = 0.0f, s2 = 0.0f; /* sum dxh, sum dxh (x - mu), dxh = dy * gamma */
        if (g && pg) {
#pragma omp simd reduction(+ : s1, s2)
            for (int64_t i = 0; i < D; i++) {
                float xc = xr[i] - mu, d = gr[i] * g[i];
                pg[i] += gr[i] * xc * rs;
                pb[i] += gr[i];
                s1 += d;
                s2 += d * xc;
            }
        } else if (g) {
#pragma omp simd reduction(+ : s1, s2)
            for (int64_t i = 0; i < D; i++) {
                float d = gr[i] * g[i];
                s1 += d;
                s2 += d * (xr[i] - mu);
            }
        } else {
#pragma omp simd reduction(+ : s1, s2)
            for (int64_t i = 0; i < D; i++) {
                s1 += gr[i];
                s2 += gr[i] * (xr[i] - mu);
            }
            if (pg) {
#pragma omp simd
                for (int64_t i = 0; i < D; i++) {
                    pg[i] += gr[i] * (xr[i] - mu) * rs;
                    pb[i] += gr[i];
                }
            }
        }
        if (!gx)
            continue;
        s1 /= (float)D;
        s2 *= rs * rs / (float)D;
        float *gxr = gx + r * D;
        if (assign && g) {
#pragma omp simd
            for (int64_t i = 0; i < D; i++)
                gxr[i] = rs * (gr[i] * g[i] - s1 - (xr[i] - mu) * s2);
        } else if (assign) {
#pragma omp simd
            for (int64_t i = 0; i < D; i++)
                gxr[i] = rs * (gr[i] - s1 - (xr[i] - mu) * s2);
        } else if (g) {
#pragma omp simd
            for (int64_t i = 0; i < D; i++)
                gxr[i] += rs * (gr[i] * g[i] - s1 - (xr[i] - mu) * s2);
        } else {
#pragma omp simd
            for (int64_t i = 0; i < D; i++)
                gxr[i] += rs * (gr[i] - s1 - (xr[i] - mu) * s2);
        }
    }
}

struct ln_saved {
    avsr_tensor *x, *gamma, *beta, *y;
    const float *mean, *stat2; /* [N]: the mean, and rstd (own) or the variance (dnnl) */
    int64_t N, D;
    float eps;
    bool dnnl; /* forward ran the oneDNN primitive */
};

#define LN_KEY 0x4c4e4f52 /* "LNOR" */

/* Cached oneDNN layer normalisation over the rows of [N, D]: forward
 * (prop forward_training / forward_inference) or backward (prop backward,
 * which also gives d scale and d shift, or backward_data). */
static avsr_dnnl_prim *ln_prim(avsr_ctx *ctx, dnnl_prop_kind_t prop, int64_t N, int64_t D,
                               unsigned flags, float eps)
{
    uint32_t eb;
    memcpy(&eb, &eps, sizeof eb);
    avsr_dnnl_key key;
    avsr_dnnl_key_init(&key, LN_KEY);
    avsr_dnnl_key_add(&key, (int64_t)prop);
    avsr_dnnl_key_add(&key, N);
    avsr_dnnl_key_add(&key, D);
    avsr_dnnl_key_add(&key, (int64_t)flags);
    avsr_dnnl_key_add(&key, (int64_t)eb);
    avsr_dnnl_prim *p = avsr_dnnl_find(ctx, key.v, avsr_dnnl_key_bytes(&key));
    if (p)
        return p;
    avsr_error *err = &ctx->err;
    int64_t dims[2] = {N, D};
    dnnl_memory_desc_t dmd, smd; /* [N, D], [N] */
    if (avsr_dnnl_md_plain(ctx, &dmd, 2, dims) < 0 || avsr_dnnl_md_plain(ctx, &smd, 1, dims) < 0)
        return NULL;
    bool bwd = prop == dnnl_backward || prop == dnnl_backward_data;
    dnnl_layer_normalization_desc_t fd, bd;
    dnnl_primitive_desc_t fpd = NULL, pd = NULL;
    if (AVSR_DNNL(err, dnnl_layer_normalization_forward_desc_init(
                           &fd, bwd ? dnnl_forward_training : prop, &dmd, &smd, eps, flags)) < 0 ||
        AVSR_DNNL(err, dnnl_primitive_desc_create(&fpd, &fd, NULL, ctx->engine, NULL)) < 0)
        return NULL;
    if (bwd) {
        int rc = AVSR_DNNL(err, dnnl_layer_normalization_backward_desc_init(&bd, prop, &dmd, &dmd,
                                                                             &smd, eps, flags));
        if (rc == 0)
            rc = AVSR_DNNL(err, dnnl_primitive_desc_create(&pd, &bd, NULL, ctx->engine, fpd));
        dnnl_primitive_desc_destroy(fpd);
        if (rc < 0)
            return NULL;
    } else {
        pd = fpd;
    }
    /* the pd reports scale and shift descriptors even without the flags */
    int cand[10] = {DNNL_ARG_SRC, DNNL_ARG_DST, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE,
                    DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC}, nc = 6;
    if (flags & dnnl_use_scale) {
        cand[nc++] = DNNL_ARG_SCALE;
        cand[nc++] = DNNL_ARG_DIFF_SCALE;
    }
    if (flags & dnnl_use_shift) {
        cand[nc++] = DNNL_ARG_SHIFT;
        cand[nc++] = DNNL_ARG_DIFF_SHIFT;
    }
    int args[AVSR_DNNL_MAX_ARGS];
    int n = prim_args(pd, cand, nc, args);
    return avsr_dnnl_insert(ctx, key.v, avsr_dnnl_key_bytes(&key), pd, n, args);
}

static unsigned ln_flags(const avsr_tensor *gamma, const avsr_tensor *beta)
{
    return (gamma ? (unsigned)dnnl_use_scale : 0u) | (beta ? (unsigned)dnnl_use_shift : 0u);
}

/* backward through the oneDNN primitive, which writes d x, d gamma and
 * d beta: d x goes straight into a new gradient or through scratch, d gamma
 * and d beta ([D], small) always through scratch */
static void ln_backward_dnnl(avsr_ctx *ctx, struct ln_saved *s)
{
    int64_t N = s->N, D = s->D;
    bool need_x = avsr_tensor_requires_grad(s->x);
    bool need_g = s->gamma && avsr_tensor_requires_grad(s->gamma);
    bool need_b = s->beta && avsr_tensor_requires_grad(s->beta);
    dnnl_prop_kind_t prop = need_g || need_b ? dnnl_backward : dnnl_backward_data;
    avsr_dnnl_prim *p = ln_prim(ctx, prop, N, D, ln_flags(s->gamma, s->beta), s->eps);
    if (!p)
        return;
    float *gx = NULL, *sx = NULL; /* [N, D] */
    if (need_x) {
        if (!(gx = grad_dst(ctx, s->x, &sx)))
            return;
    } else if (!(sx = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(N * D)))) {
        return; /* d x is computed anyway; it goes to scratch */
    }
    float *dsc = NULL, *dsh = NULL; /* [D] each */
    if (prop == dnnl_backward) {
        if (!(dsc = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(2 * D))))
            return;
        dsh = dsc + D;
    }
    static const int arg[] = {DNNL_ARG_SRC,      DNNL_ARG_DIFF_DST,   DNNL_ARG_MEAN,
                              DNNL_ARG_VARIANCE, DNNL_ARG_SCALE,      DNNL_ARG_SHIFT,
                              DNNL_ARG_DIFF_SRC, DNNL_ARG_DIFF_SCALE, DNNL_ARG_DIFF_SHIFT};
    void *const ptr[] = {s->x->data,
                         s->y->grad,
                         (void *)s->mean,
                         (void *)s->stat2,
                         s->gamma ? s->gamma->data : NULL,
                         s->beta ? s->beta->data : NULL,
                         sx ? sx : gx,
                         dsc,
                         dsh};
    if (exec_args(ctx, p, arg, ptr, (int)(sizeof arg / sizeof arg[0])) < 0)
        return;
    if (gx && sx)
        add_into(gx, sx, N * D);
    float *gg = NULL, *gb = NULL;
    if (need_g && !(gg = avsr_tensor_grad(ctx, s->gamma))) /* [D] */
        return;
    if (need_b && !(gb = avsr_tensor_grad(ctx, s->beta))) /* [D] */
        return;
    for (int64_t i = 0; i < D; i++) {
        if (gg)
            gg[i] += dsc[i];
        if (gb)
            gb[i] += dsh[i];
    }
}

static void ln_backward(avsr_ctx *ctx, void *sv)
{
    struct ln_saved *s = sv;
    if (s->dnnl && use_dnnl_backward(s->x, true)) {
        ln_backward_dnnl(ctx, s);
        return;
    }
    int64_t N = s->N, D = s->D;
    const float *rstd = s->stat2; /* [N] */
    if (s->dnnl) {
        /* oneDNN's forward saved the variance */
        float *r = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)N);
        if (!r)
            return;
        float eps = s->eps;
        for (int64_t i = 0; i < N; i++)
            r[i] = 1.0f / sqrtf(s->stat2[i] + eps);
        rstd = r;
    }
    float *gx = NULL, *gg = NULL, *gb = NULL;
    bool accumulate = true;
    if (avsr_tensor_requires_grad(s->x) && !(gx = avsr_tensor_grad_out(ctx, s->x, &accumulate))) /* [N, D] */
        return;
    bool assign = !accumulate;
    if (avsr_tensor_requires_grad(s->gamma) && !(gg = avsr_tensor_grad(ctx, s->gamma))) /* [D] */
        return;
    if (avsr_tensor_requires_grad(s->beta) && !(gb = avsr_tensor_grad(ctx, s->beta))) /* [D] */
        return;
    int nt = max_threads();
    float *part = NULL; /* [nt, 2, D] per-thread sums for gamma and beta */
    if (gg || gb) {
        part = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(2 * nt * D));
        if (!part)
            return;
        memset(part, 0, sizeof(float) * (size_t)(2 * nt * D));
    }
    const float *x = avsr_f32(s->x), *gy = s->y->grad, *g = s->gamma ? avsr_f32(s->gamma) : NULL;
    const float *mean = s->mean;
    int use = N * D > 32768 ? nt : 1;
#pragma omp parallel num_threads(use)
    {
        int tid = thread_id(), n = use;
#ifdef _OPENMP
        n = omp_get_num_threads();
#endif
        int64_t r0 = N * tid / n, r1 = N * (tid + 1) / n;
        float *pg = part ? part + (size_t)tid * 2 * D : NULL, *pb = part ? pg + D : NULL;
        ln_bwd_rows(x, gy, mean, rstd, g, gx, pg, pb, r0, r1, D, assign);
    }
    if (part) {
        for (int t = 0; t < nt; t++) {
            const float *pg = part + (size_t)t * 2 * D, *pb = pg + D;
            for (int64_t i = 0; i < D; i++) {
                if (gg)
                    gg[i] += pg[i];
                if (gb)
                    gb[i] += pb[i];
            }
        }
    }
}

avsr_tensor *avsr_op_layer_norm(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *gamma,
                                avsr_tensor *beta, float eps)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96], b2[96];
    if (x->dtype != AVSR_F32)
        return avsr_ctx_fail(ctx, "layer_norm: x: expects f32, got %s", avsr_dtype_name(x->dtype));
    if (x->ndim < 1 || x->shape[x->ndim - 1] < 1)
        return avsr_ctx_fail(ctx, "layer_norm: x: got %s, expected [..., D] with D >= 1",
                             avsr_shape_str(x, b1, sizeof b1));
    int64_t D = x->shape[x->ndim - 1], N = x->numel / D;
    avsr_tensor *const pars[2] = {gamma, beta};
    static const char *const pname[2] = {"gamma", "beta"};
    for (int k = 0; k < 2; k++) {
        avsr_tensor *p = pars[k];
        if (p && (p->dtype != AVSR_F32 || p->ndim != 1 || p->shape[0] != D))
            return avsr_ctx_fail(ctx, "layer_norm: %s: got %s %s, expected f32 [%lld] for x %s",
                                 pname[k], avsr_dtype_name(p->dtype),
                                 avsr_shape_str(p, b1, sizeof b1), (long long)D,
                                 avsr_shape_str(x, b2, sizeof b2));
    }
    if (!(eps >= 0.0f))
        return avsr_ctx_fail(ctx, "layer_norm: eps %g, expected >= 0", (double)eps);
    avsr_tensor *in[3] = {x, gamma, beta};
    bool grad = avsr_ctx_needs_grad(ctx, 3, in);
    int impl = norm_impl();
    bool dnnl = N > 0 && (impl == IMPL_DNNL || (impl == IMPL_AUTO && x->numel >= LN_DNNL_MIN &&
                                                 D < LN_DNNL_MAX_D));
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, x->ndim, x->shape); /* [N, D] */
    float *mean = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(2 * N + 1)); /* [2, N] */
    if (!y || !mean)
        return NULL;
    float *stat2 = mean + N; /* [N] rstd (own kernel) or variance (oneDNN) */
    const float *xd = avsr_f32(x), *g = gamma ? avsr_f32(gamma) : NULL,
                *b = beta ? avsr_f32(beta) : NULL;
    float *yd = avsr_f32(y);
    if (dnnl) {
        avsr_dnnl_prim *p = ln_prim(ctx, grad ? dnnl_forward_training : dnnl_forward_inference, N,
                                    D, ln_flags(gamma, beta), eps);
        static const int arg[] = {DNNL_ARG_SRC,      DNNL_ARG_DST,   DNNL_ARG_MEAN,
                                  DNNL_ARG_VARIANCE, DNNL_ARG_SCALE, DNNL_ARG_SHIFT};
        void *const ptr[] = {(void *)xd, yd, mean, stat2, (void *)g, (void *)b};
        if (!p || exec_args(ctx, p, arg, ptr, 6) < 0)
            return NULL;
    } else {
        int64_t rpc = rows_per_chunk(D), nch = (N + rpc - 1) / rpc;
#pragma omp parallel for schedule(static) if (nch > 1)
        for (int64_t k = 0; k < nch; k++) {
            int64_t r0 = k * rpc, r1 = r0 + rpc < N ? r0 + rpc : N;
            ln_fwd_rows(xd, yd, mean, stat2, g, b, r0, r1, D, eps);
        }
    }
    if (grad) {
        struct ln_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct ln_saved){x, gamma, beta, y, mean, stat2, N, D, eps, dnnl};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, ln_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

/* ====================================================================== */
/* softmax and log-softmax */

/* One row of length D; m (mask row, stride ms: 0 = broadcast, 1 = per
 * element) or NULL. */
static AVSR_SIMD_CLONES void softmax_rows(const float *x, float *y, int64_t r0, int64_t r1,
                                          int64_t D, const uint8_t *mask, const int64_t *moff,
                                          int64_t ms, int logsm)
{
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * D;
        float *yr = y + r * D;
        const uint8_t *m = mask ? mask + moff[r - r0] : NULL;
        if (m && ms == 0 && !m[0]) {
            /* broadcast mask: the whole row is masked */
            for (int64_t i = 0; i < D; i++)
                yr[i] = logsm ? -INFINITY : 0.0f;
            continue;
        }
        if (m && ms == 0)
            m = NULL; /* broadcast keep: plain row */
        float mx = -INFINITY;
        if (m) {
            for (int64_t i = 0; i < D; i++)
                mx = m[i] && xr[i] > mx ? xr[i] : mx;
            if (mx == -INFINITY) {
                bool any = false;
                for (int64_t i = 0; i < D; i++)
                    any |= m[i] != 0;
                if (!any) {
                    for (int64_t i = 0; i < D; i++)
                        yr[i] = logsm ? -INFINITY : 0.0f;
                    continue;
                }
            }
        } else {
#pragma omp simd reduction(max : mx)
            for (int64_t i = 0; i < D; i++)
                mx = mx > xr[i] ? mx : xr[i];
        }
        float sum = 0.0f;
        if (m) {
#pragma omp simd reduction(+ : sum)
            for (int64_t i = 0; i < D; i++) {
                float e = avsr_fn_select(m[i], avsr_fn_exp(xr[i] - mx), 0.0f);
                yr[i] = e;
                sum += e;
            }
        } else {
#pragma omp simd reduction(+ : sum)
            for (int64_t i = 0; i < D; i++) {
                float e = avsr_fn_exp(xr[i] - mx);
                yr[i] = e;
                sum += e;
            }
        }
        if (logsm) {
            float lse = mx + logf(sum);
            if (m) {
#pragma omp simd
                for (int64_t i = 0; i < D; i++)
                    yr[i] = avsr_fn_select(m[i], xr[i] - lse, -INFINITY);
            } else {
#pragma omp simd
                for (int64_t i = 0; i < D; i++)
                    yr[i] = xr[i] - lse;
            }
        } else {
            float inv = 1.0f / sum;
#pragma omp simd
            for (int64_t i = 0; i < D; i++)
                yr[i] *= inv;
        }
    }
}

/* softmax: gx += y (gy - sum(gy y)); log-softmax: gx += gy - exp(y) sum(gy).
 * masked (the forward had a mask): for log-softmax, y = -inf marks a masked
 * position, which gets no gradient and is left out of sum(gy); without a
 * mask the formula holds as written (a -inf input gets gy, as in PyTorch).
 * Softmax needs no such test: a masked y is 0. = instead of += if assign. */
static AVSR_SIMD_CLONES void softmax_bwd_rows(const float *y, const float *gy, float *gx,
                                              int64_t r0, int64_t r1, int64_t D, int logsm,
                                              bool masked, bool assign)
{
    for (int64_t r = r0; r < r1; r++) {
        const float *yr = y + r * D, *gr = gy + r * D;
        float *gxr = gx + r * D;
        float s = 0.0f;
        if (logsm) {
            int mk = masked;
#pragma omp simd reduction(+ : s)
            for (int64_t i = 0; i < D; i++)
                s += avsr_fn_select(mk & (yr[i] == -INFINITY), 0.0f, gr[i]);
            if (assign) {
#pragma omp simd
                for (int64_t i = 0; i < D; i++)
                    gxr[i] = avsr_fn_select(mk & (yr[i] == -INFINITY), 0.0f,
                                            gr[i] - avsr_fn_exp(yr[i]) * s);
            } else {
#pragma omp simd
                for (int64_t i = 0; i < D; i++)
                    gxr[i] += avsr_fn_select(mk & (yr[i] == -INFINITY), 0.0f,
                                             gr[i] - avsr_fn_exp(yr[i]) * s);
            }
        } else {
#pragma omp simd reduction(+ : s)
            for (int64_t i = 0; i < D; i++)
                s += gr[i] * yr[i];
            if (assign) {
#pragma omp simd
                for (int64_t i = 0; i < D; i++)
                    gxr[i] = yr[i] * (gr[i] - s);
            } else {
#pragma omp simd
                for (int64_t i = 0; i < D; i++)
                    gxr[i] += yr[i] * (gr[i] - s);
            }
        }
    }
}

/* ---- AVX-512 row kernels ----
 * The same computations as softmax_rows / softmax_bwd_rows, written with
 * AVX-512F intrinsics: 16 floats a vector, the row's tail (D mod 16) and
 * the mask through mask registers instead of a scalar epilogue, and an exp
 * with FMA. Built with a target attribute (the library itself is baseline
 * x86-64) and run only when the CPU reports AVX-512F. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__)
#define SM_HAVE_AVX512 1
#include <immintrin.h>

#define SM_T512 __attribute__((target("avx512f")))

static bool cpu_avx512(void) { return __builtin_cpu_supports("avx512f"); }

/* exp(x) for x <= 0 (callers pass x - max(x) and log-softmax outputs): the
 * Cephes reduction and polynomial of avsr_fn_exp, evaluated in Horner form
 * with FMA, n = round(x / ln 2) through the 1.5 * 2^23 rounding constant
 * whose low mantissa bits then give 2^n directly. 0 below -87.34 (also for
 * -inf), NaN stays NaN. Within 1 ulp of exp over [-87.3, 0] (checked
 * against double exp in steps of 1e-4). */
static inline SM_T512 __m512 sm_exp16(__m512 x)
{
    const __m512 lo = _mm512_set1_ps(-87.3365447504f);
    const __m512 magic = _mm512_set1_ps(12582912.0f + 127.0f); /* 1.5 * 2^23 + exponent bias */
    __mmask16 keep = _mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ);  /* x >= lo or NaN */
    __m512 xc = _mm512_max_ps(lo, x);                          /* NaN passes through */
    __m512 t = _mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504088896341f), magic);
    __m512 n = _mm512_sub_ps(t, magic); /* round(x / ln 2), exact */
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 q = _mm512_set1_ps(1.9875691500e-4f);
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.3981999507e-3f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(8.3334519073e-3f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(4.1665795894e-2f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.6666665459e-1f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(5.0000001201e-1f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f)); /* 1 + r + r^2 P(r) */
    /* the low bits of t hold n + 127: shifted into the exponent field, 2^n */
    __m512 p2n = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 23));
    return _mm512_maskz_mul_ps(keep, q, p2n);
}

/* lanes of the chunk of a row starting at element i: all 16, or the tail */
static inline SM_T512 __mmask16 sm_lanes(int64_t i, int64_t D)
{
    int64_t n = D - i;
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

/* kept lanes of the mask bytes m[i .. i + 16) (only the lanes in `lanes`
 * are read) */
static inline SM_T512 __mmask16 sm_keep(const uint8_t *m, __mmask16 lanes)
{
    __m128i b;
    if (lanes == 0xffff) {
        b = _mm_loadu_si128((const __m128i *)m);
    } else {
        uint8_t t[16] = {0};
        memcpy(t, m, (size_t)__builtin_popcount(lanes));
        b = _mm_loadu_si128((const __m128i *)t);
    }
    __m512i w = _mm512_cvtepu8_epi32(b);
    return _mm512_mask_test_epi32_mask(lanes, w, w);
}

/* one row: yr = softmax / log-softmax of xr [D]; m: the row's mask bytes
 * (element-wise) or NULL */
static SM_T512 void softmax_row512(const float *xr, float *yr, int64_t D, const uint8_t *m,
                                   int logsm)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    /* pass 1: max over the kept lanes; four accumulators break the chain */
    __m512 m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    int64_t i = 0;
    bool any = m == NULL;
    if (!m) {
        for (; i + 64 <= D; i += 64) {
            m0 = _mm512_max_ps(m0, _mm512_loadu_ps(xr + i));
            m1 = _mm512_max_ps(m1, _mm512_loadu_ps(xr + i + 16));
            m2 = _mm512_max_ps(m2, _mm512_loadu_ps(xr + i + 32));
            m3 = _mm512_max_ps(m3, _mm512_loadu_ps(xr + i + 48));
        }
        for (; i < D; i += 16) {
            __mmask16 l = sm_lanes(i, D);
            m0 = _mm512_mask_max_ps(m0, l, m0, _mm512_maskz_loadu_ps(l, xr + i));
        }
    } else {
        for (; i < D; i += 16) {
            __mmask16 k = sm_keep(m + i, sm_lanes(i, D));
            any |= k != 0;
            m0 = _mm512_mask_max_ps(m0, k, m0, _mm512_maskz_loadu_ps(k, xr + i));
        }
    }
    float mx = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
    if (!any) {
        /* every position masked */
        __m512 f = logsm ? ninf : _mm512_setzero_ps();
        for (i = 0; i < D; i += 16)
            _mm512_mask_storeu_ps(yr + i, sm_lanes(i, D), f);
        return;
    }
    const __m512 vm = _mm512_set1_ps(mx);
    /* pass 2: exp(x - max) over kept lanes (0 elsewhere) and their sum;
     * softmax stores it */
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    i = 0;
    if (!m) {
        /* whole vectors: plain loads and stores, two sums; the next row's
         * x is fetched meanwhile (pass 1 would otherwise wait on memory:
         * 10-15% of the forward out of cache) */
        for (; i + 32 <= D; i += 32) {
            _mm_prefetch((const char *)(xr + D + i), _MM_HINT_T0);
            _mm_prefetch((const char *)(xr + D + i + 16), _MM_HINT_T0);
            __m512 e0 = sm_exp16(_mm512_sub_ps(_mm512_loadu_ps(xr + i), vm));
            __m512 e1 = sm_exp16(_mm512_sub_ps(_mm512_loadu_ps(xr + i + 16), vm));
            if (!logsm) {
                _mm512_storeu_ps(yr + i, e0);
                _mm512_storeu_ps(yr + i + 16, e1);
            }
            s0 = _mm512_add_ps(s0, e0);
            s1 = _mm512_add_ps(s1, e1);
        }
    }
    for (; i < D; i += 16) {
        /* a tail or a masked row: lanes not kept load max itself, exp(0),
         * then zeroed */
        _mm_prefetch((const char *)(xr + D + i), _MM_HINT_T0);
        __mmask16 l = sm_lanes(i, D), k = m ? sm_keep(m + i, l) : l;
        __m512 e = _mm512_maskz_mov_ps(k, sm_exp16(_mm512_sub_ps(_mm512_mask_loadu_ps(vm, k, xr + i), vm)));
        if (!logsm)
            _mm512_mask_storeu_ps(yr + i, l, e);
        s0 = _mm512_add_ps(s0, e);
    }
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    if (logsm) {
        /* pass 3: y = x - (max + log sum) on kept lanes, -inf elsewhere */
        const __m512 lse = _mm512_set1_ps(mx + logf(sum));
        i = 0;
        if (!m)
            for (; i + 16 <= D; i += 16)
                _mm512_storeu_ps(yr + i, _mm512_sub_ps(_mm512_loadu_ps(xr + i), lse));
        for (; i < D; i += 16) {
            __mmask16 l = sm_lanes(i, D), k = m ? sm_keep(m + i, l) : l;
            __m512 v = _mm512_sub_ps(_mm512_maskz_loadu_ps(l, xr + i), lse);
            _mm512_mask_storeu_ps(yr + i, l, _mm512_mask_blend_ps(k, ninf, v));
        }
    } else {
        /* pass 3: scale by 1 / sum (masked lanes hold 0) */
        const __m512 inv = _mm512_set1_ps(1.0f / sum);
        for (i = 0; i + 16 <= D; i += 16)
            _mm512_storeu_ps(yr + i, _mm512_mul_ps(_mm512_loadu_ps(yr + i), inv));
        if (i < D) {
            __mmask16 l = sm_lanes(i, D);
            _mm512_mask_storeu_ps(yr + i, l, _mm512_mul_ps(_mm512_maskz_loadu_ps(l, yr + i), inv));
        }
    }
}

/* softmax_rows with the AVX-512 row kernel (same arguments) */
static SM_T512 void softmax_rows512(const float *x, float *y, int64_t r0, int64_t r1, int64_t D,
                                    const uint8_t *mask, const int64_t *moff, int64_t ms,
                                    int logsm)
{
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *m = mask ? mask + moff[r - r0] : NULL;
        if (m && ms == 0) {
            /* broadcast mask: the whole row is kept or masked */
            if (!m[0]) {
                __m512 f = logsm ? _mm512_set1_ps(-INFINITY) : _mm512_setzero_ps();
                for (int64_t i = 0; i < D; i += 16)
                    _mm512_mask_storeu_ps(y + r * D + i, sm_lanes(i, D), f);
                continue;
            }
            m = NULL;
        }
        softmax_row512(x + r * D, y + r * D, D, m, logsm);
    }
}

/* softmax_bwd_rows with AVX-512 (same arguments and formulas) */
static SM_T512 void softmax_bwd_rows512(const float *y, const float *gy, float *gx, int64_t r0,
                                        int64_t r1, int64_t D, int logsm, bool masked,
                                        bool assign)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY), zero = _mm512_setzero_ps();
    for (int64_t r = r0; r < r1; r++) {
        const float *yr = y + r * D, *gr = gy + r * D;
        float *gxr = gx + r * D;
        __m512 s0 = zero, s1 = zero;
        int64_t i;
        if (logsm) {
            for (i = 0; i < D; i += 16) {
                __mmask16 l = sm_lanes(i, D);
                if (masked)
                    l = _mm512_mask_cmp_ps_mask(l, _mm512_maskz_loadu_ps(l, yr + i), ninf, _CMP_NEQ_UQ);
                s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(l, gr + i));
            }
        } else {
            for (i = 0; i + 32 <= D; i += 32) {
                s0 = _mm512_fmadd_ps(_mm512_loadu_ps(gr + i), _mm512_loadu_ps(yr + i), s0);
                s1 = _mm512_fmadd_ps(_mm512_loadu_ps(gr + i + 16), _mm512_loadu_ps(yr + i + 16), s1);
            }
            for (; i < D; i += 16) {
                __mmask16 l = sm_lanes(i, D);
                s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(l, gr + i), _mm512_maskz_loadu_ps(l, yr + i), s0);
            }
        }
        const __m512 vs = _mm512_set1_ps(_mm512_reduce_add_ps(_mm512_add_ps(s0, s1)));
        for (i = 0; i < D; i += 16) {
            /* the next row's y and dy, as in the forward */
            _mm_prefetch((const char *)(yr + D + i), _MM_HINT_T0);
            _mm_prefetch((const char *)(gr + D + i), _MM_HINT_T0);
            __mmask16 l = sm_lanes(i, D);
            __m512 yv = _mm512_maskz_loadu_ps(l, yr + i), gv = _mm512_maskz_loadu_ps(l, gr + i), v;
            if (logsm) {
                /* y <= 0 mathematically; min() keeps sm_exp16 in its range */
                v = _mm512_fnmadd_ps(sm_exp16(_mm512_min_ps(yv, zero)), vs, gv);
                if (masked)
                    v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(yv, ninf, _CMP_NEQ_UQ), v);
            } else {
                v = _mm512_mul_ps(yv, _mm512_sub_ps(gv, vs));
            }
            if (!assign)
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(l, gxr + i));
            _mm512_mask_storeu_ps(gxr + i, l, v);
        }
    }
}
#else
static bool cpu_avx512(void) { return false; }
#endif

/* Softmax kernels (see norm_impl for the selection) */
enum sm_kernel { SMK_GENERIC, SMK_AVX512, SMK_DNNL };

struct softmax_saved {
    avsr_tensor *x, *y;
    int64_t N, D;
    int logsm;
    bool masked;
    enum sm_kernel kern; /* the forward's kernel */
};

#define SM_KEY 0x534d4158 /* "SMAX" */

/* Cached oneDNN softmax (logsm: log-softmax) over the rows of [N, D]:
 * forward (src -> dst) or backward (dst, diff_dst -> diff_src). */
static avsr_dnnl_prim *sm_prim(avsr_ctx *ctx, bool bwd, int logsm, int64_t N, int64_t D)
{
    avsr_dnnl_key key;
    avsr_dnnl_key_init(&key, SM_KEY);
    avsr_dnnl_key_add(&key, bwd);
    avsr_dnnl_key_add(&key, logsm);
    avsr_dnnl_key_add(&key, N);
    avsr_dnnl_key_add(&key, D);
    avsr_dnnl_prim *p = avsr_dnnl_find(ctx, key.v, avsr_dnnl_key_bytes(&key));
    if (p)
        return p;
    avsr_error *err = &ctx->err;
    int64_t dims[2] = {N, D};
    dnnl_memory_desc_t md; /* [N, D] */
    if (avsr_dnnl_md_plain(ctx, &md, 2, dims) < 0)
        return NULL;
    dnnl_alg_kind_t alg = logsm ? dnnl_softmax_log : dnnl_softmax_accurate;
    dnnl_softmax_v2_desc_t fd, bd;
    dnnl_primitive_desc_t fpd = NULL, pd = NULL;
    if (AVSR_DNNL(err, dnnl_softmax_v2_forward_desc_init(&fd, dnnl_forward_training, alg, &md,
                                                         &md, 1)) < 0 ||
        AVSR_DNNL(err, dnnl_primitive_desc_create(&fpd, &fd, NULL, ctx->engine, NULL)) < 0)
        return NULL;
    if (bwd) {
        int rc = AVSR_DNNL(err, dnnl_softmax_v2_backward_desc_init(&bd, alg, &md, &md, &md, 1));
        if (rc == 0)
            rc = AVSR_DNNL(err, dnnl_primitive_desc_create(&pd, &bd, NULL, ctx->engine, fpd));
        dnnl_primitive_desc_destroy(fpd);
        if (rc < 0)
            return NULL;
        static const int args[3] = {DNNL_ARG_DST, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC};
        return avsr_dnnl_insert(ctx, key.v, avsr_dnnl_key_bytes(&key), pd, 3, args);
    }
    static const int args[2] = {DNNL_ARG_SRC, DNNL_ARG_DST};
    return avsr_dnnl_insert(ctx, key.v, avsr_dnnl_key_bytes(&key), fpd, 2, args);
}

static void softmax_backward(avsr_ctx *ctx, void *sv)
{
    struct softmax_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x))
        return;
    if (s->kern == SMK_DNNL && use_dnnl_backward(s->x, false)) {
        avsr_dnnl_prim *p = sm_prim(ctx, true, s->logsm, s->N, s->D);
        float *sx = NULL, *gx = p ? grad_dst(ctx, s->x, &sx) : NULL; /* [N, D] */
        if (!gx)
            return;
        void *h[3] = {s->y->data, s->y->grad, sx ? sx : gx};
        if (avsr_dnnl_exec(ctx, p, h) < 0)
            return;
        if (sx)
            add_into(gx, sx, s->N * s->D);
        return;
    }
    bool accumulate;
    float *gx = avsr_tensor_grad_out(ctx, s->x, &accumulate); /* [N, D] */
    if (!gx)
        return;
    bool assign = !accumulate, masked = s->masked;
    const float *y = avsr_f32(s->y), *gy = s->y->grad;
    int64_t N = s->N, D = s->D, rpc = rows_per_chunk(D), nch = (N + rpc - 1) / rpc;
    int logsm = s->logsm;
#ifdef SM_HAVE_AVX512
    if (s->kern == SMK_AVX512) {
#pragma omp parallel for schedule(static) if (nch > 1)
        for (int64_t k = 0; k < nch; k++) {
            int64_t r0 = k * rpc, r1 = r0 + rpc < N ? r0 + rpc : N;
            softmax_bwd_rows512(y, gy, gx, r0, r1, D, logsm, masked, assign);
        }
        return;
    }
#endif
#pragma omp parallel for schedule(static) if (nch > 1)
    for (int64_t k = 0; k < nch; k++) {
        int64_t r0 = k * rpc, r1 = r0 + rpc < N ? r0 + rpc : N;
        softmax_bwd_rows(y, gy, gx, r0, r1, D, logsm, masked, assign);
    }
}

/* the forward kernel for x with numel elements, masked or not */
static enum sm_kernel sm_select(bool masked, int64_t numel)
{
    int impl = norm_impl();
    if (impl == IMPL_OWN)
        return SMK_GENERIC;
    if ((impl == IMPL_AVX512 || impl == IMPL_AUTO) && cpu_avx512())
        return SMK_AVX512;
    if (masked || impl == IMPL_AVX512)
        return SMK_GENERIC;
    return impl == IMPL_DNNL || numel >= SM_DNNL_MIN ? SMK_DNNL : SMK_GENERIC;
}

static avsr_tensor *softmax_common(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *mask, int logsm)
{
    const char *name = logsm ? "log_softmax" : "softmax";
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96], b2[96];
    if (x->dtype != AVSR_F32)
        return avsr_ctx_fail(ctx, "%s: x: expects f32, got %s", name, avsr_dtype_name(x->dtype));
    if (x->ndim < 1)
        return avsr_ctx_fail(ctx, "%s: x: needs at least one dimension", name);
    int nd = x->ndim;
    int64_t D = x->shape[nd - 1], N = D ? x->numel / D : 0;
    const uint8_t *mb = NULL;
    int64_t mstr[AVSR_MAX_DIMS] = {0}, ms = 0; /* mask strides per x dim, 0 = broadcast */
    if (mask) {
        if (!is_mask_dtype(mask->dtype))
            return avsr_ctx_fail(ctx, "%s: mask: expects u8, bool or f32, got %s", name,
                                 avsr_dtype_name(mask->dtype));
        bool ok = mask->ndim == nd;
        for (int i = 0; ok && i < nd; i++)
            ok = mask->shape[i] == x->shape[i] || mask->shape[i] == 1;
        if (!ok)
            return avsr_ctx_fail(ctx, "%s: mask: got %s for x %s, expected the same ndim with each dim equal or 1",
                                 name, avsr_shape_str(mask, b1, sizeof b1),
                                 avsr_shape_str(x, b2, sizeof b2));
        if (!(mb = mask_bytes(ctx, mask)))
            return NULL;
        int64_t st = 1;
        for (int i = nd - 1; i >= 0; i--) {
            mstr[i] = mask->shape[i] == 1 ? 0 : st;
            st *= mask->shape[i];
        }
        ms = mstr[nd - 1];
    }
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, nd, x->shape); /* [N, D] */
    if (!y)
        return NULL;
    const float *xd = avsr_f32(x);
    float *yd = avsr_f32(y);
    int64_t rpc = rows_per_chunk(D), nch = N ? (N + rpc - 1) / rpc : 0;
    int64_t *moff = NULL; /* [N] mask offset of each row */
    if (mb) {
        if (!(moff = avsr_ctx_alloc(ctx, sizeof(int64_t) * (size_t)(N + 1))))
            return NULL;
        for (int64_t r = 0; r < N; r++) {
            int64_t rem = r, off = 0;
            for (int i = nd - 2; i >= 0; i--) {
                off += (rem % x->shape[i]) * mstr[i];
                rem /= x->shape[i];
            }
            moff[r] = off;
        }
    }
    enum sm_kernel kern = N > 0 ? sm_select(mb != NULL, x->numel) : SMK_GENERIC;
    if (kern == SMK_DNNL) {
        avsr_dnnl_prim *p = sm_prim(ctx, false, logsm, N, D);
        void *h[2] = {(void *)xd, yd};
        if (!p || avsr_dnnl_exec(ctx, p, h) < 0)
            return NULL;
#ifdef SM_HAVE_AVX512
    } else if (kern == SMK_AVX512) {
#pragma omp parallel for schedule(static) if (nch > 1)
        for (int64_t k = 0; k < nch; k++) {
            int64_t r0 = k * rpc, r1 = r0 + rpc < N ? r0 + rpc : N;
            softmax_rows512(xd, yd, r0, r1, D, mb, moff ? moff + r0 : NULL, ms, logsm);
        }
#endif
    } else {
#pragma omp parallel for schedule(static) if (nch > 1)
        for (int64_t k = 0; k < nch; k++) {
            int64_t r0 = k * rpc, r1 = r0 + rpc < N ? r0 + rpc : N;
            softmax_rows(xd, yd, r0, r1, D, mb, moff ? moff + r0 : NULL, ms, logsm);
        }
    }
    if (avsr_ctx_needs_grad(ctx, 1, &x)) {
        struct softmax_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct softmax_saved){x, y, N, D, logsm, mb != NULL, kern};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, softmax_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

avsr_tensor *avsr_op_softmax(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *mask)
{
    return softmax_common(ctx, x, mask, 0);
}

avsr_tensor *avsr_op_log_softmax(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *mask)
{
    return softmax_common(ctx, x, mask, 1);
}
