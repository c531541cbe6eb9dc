/* op_act: activations and dropout (see op_act.h).
 *
 * Element-wise work is split into chunks of CHUNK elements spread over the
 * OpenMP threads; each chunk runs a kernel compiled for AVX2 and for the
 * baseline (AVSR_SIMD_CLONES) whose loop is an `omp simd` loop over the
 * AVSR_HD functions of mathfn.h / act_fn.h. */
#include "op_act.h"

#include <string.h>

#include "act_fn.h"
#include "ctx_int.h"
#include "rng.h"
#include "tape.h"

#define CHUNK 16384

enum act_kind { ACT_RELU, ACT_SILU, ACT_GELU, ACT_SIGMOID, ACT_TANH };

static const char *const act_name[] = {"relu", "silu", "gelu", "sigmoid", "tanh"};

/* ---------------------------------------------------------------------- */
/* unary activations */

/* y[i] = f(x[i]) for n elements */
static AVSR_SIMD_CLONES void unary_fwd_kernel(int kind, const float *x, float *y, int64_t n)
{
    switch (kind) {
    case ACT_RELU:
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            y[i] = avsr_fn_relu(x[i]);
        break;
    case ACT_SILU:
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            y[i] = avsr_fn_silu_v(x[i]);
        break;
    case ACT_GELU:
        for (int64_t i = 0; i < n; i++)
            y[i] = avsr_fn_gelu(x[i]);
        break;
    case ACT_SIGMOID:
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            y[i] = avsr_fn_sigmoid_v(x[i]);
        break;
    case ACT_TANH:
        for (int64_t i = 0; i < n; i++)
            y[i] = tanhf(x[i]);
        break;
    }
}

/* gx[i] += gy[i] * f'(x[i]) (sigmoid and tanh use the output y) */
static AVSR_SIMD_CLONES void unary_bwd_kernel(int kind, const float *x, const float *y,
                                              const float *gy, float *gx, int64_t n)
{
    switch (kind) {
    case ACT_RELU:
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            gx[i] += gy[i] * avsr_fn_relu_grad(x[i]);
        break;
    case ACT_SILU:
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            gx[i] += gy[i] * avsr_fn_silu_grad_v(x[i]);
        break;
    case ACT_GELU:
        for (int64_t i = 0; i < n; i++)
            gx[i] += gy[i] * avsr_fn_gelu_grad(x[i]);
        break;
    case ACT_SIGMOID:
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            gx[i] += gy[i] * avsr_fn_sigmoid_grad_y(y[i]);
        break;
    case ACT_TANH:
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            gx[i] += gy[i] * avsr_fn_tanh_grad_y(y[i]);
        break;
    }
}

struct unary_saved {
    avsr_tensor *x, *y;
    int kind;
};

static void unary_backward(avsr_ctx *ctx, void *sv)
{
    struct unary_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x))
        return;
    bool acc;
    float *gx = avsr_tensor_grad_out(ctx, s->x, &acc); /* like x */
    if (!gx)
        return;
    const float *x = avsr_f32(s->x), *y = avsr_f32(s->y), *gy = s->y->grad;
    int64_t n = s->x->numel, nch = (n + CHUNK - 1) / CHUNK;
    int kind = s->kind;
#pragma omp parallel for schedule(static) if (nch > 1)
    for (int64_t k = 0; k < nch; k++) {
        int64_t o = k * CHUNK, m = n - o < CHUNK ? n - o : CHUNK;
        if (!acc) /* a new gradient: zero the chunk while it is in cache */
            memset(gx + o, 0, sizeof(float) * (size_t)m);
        unary_bwd_kernel(kind, x + o, y + o, gy + o, gx + o, m);
    }
}

static avsr_tensor *unary(avsr_ctx *ctx, avsr_tensor *x, int kind)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    if (x->dtype != AVSR_F32)
        return avsr_ctx_fail(ctx, "%s: x: expects f32, got %s", act_name[kind],
                             avsr_dtype_name(x->dtype));
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, x->ndim, x->shape); /* like x */
    if (!y)
        return NULL;
    const float *xd = avsr_f32(x);
    float *yd = avsr_f32(y);
    int64_t n = x->numel, nch = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (nch > 1)
    for (int64_t k = 0; k < nch; k++) {
        int64_t o = k * CHUNK, m = n - o < CHUNK ? n - o : CHUNK;
        unary_fwd_kernel(kind, xd + o, yd + o, m);
    }
    if (avsr_ctx_needs_grad(ctx, 1, &x)) {
        struct unary_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct unary_saved){x, y, kind};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, unary_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

avsr_tensor *avsr_op_relu(avsr_ctx *ctx, avsr_tensor *x) { return unary(ctx, x, ACT_RELU); }
avsr_tensor *avsr_op_silu(avsr_ctx *ctx, avsr_tensor *x) { return unary(ctx, x, ACT_SILU); }
avsr_tensor *avsr_op_gelu(avsr_ctx *ctx, avsr_tensor *x) { return unary(ctx, x, ACT_GELU); }
avsr_tensor *avsr_op_sigmoid(avsr_ctx *ctx, avsr_tensor *x) { return unary(ctx, x, ACT_SIGMOID); }
avsr_tensor *avsr_op_tanh(avsr_ctx *ctx, avsr_tensor *x) { return unary(ctx, x, ACT_TANH); }

/* ---------------------------------------------------------------------- */
/* PReLU */

struct prelu_saved {
    avsr_tensor *x, *a, *y;
    int64_t B, C, S; /* x viewed as [B, C, S]; C = 1 when a is [1] */
};

static void prelu_backward(avsr_ctx *ctx, void *sv)
{
    struct prelu_saved *s = sv;
    int64_t B = s->B, C = s->C, S = s->S;
    const float *x = avsr_f32(s->x), *a = avsr_f32(s->a), *gy = s->y->grad; /* [B, C, S] */
    bool one = s->a->numel == 1;
    if (avsr_tensor_requires_grad(s->x)) {
        float *gx = avsr_tensor_grad(ctx, s->x); /* [B, C, S] */
        if (!gx)
            return;
#pragma omp parallel for schedule(static) if (B * C * S > 32768)
        for (int64_t bc = 0; bc < B * C; bc++) {
            float ac = a[one ? 0 : bc % C];
            const float *xr = x + bc * S, *gr = gy + bc * S;
            float *gxr = gx + bc * S;
#pragma omp simd
            for (int64_t i = 0; i < S; i++)
                gxr[i] += gr[i] * avsr_fn_prelu_grad_x(xr[i], ac);
        }
    }
    if (avsr_tensor_requires_grad(s->a)) {
        float *ga = avsr_tensor_grad(ctx, s->a); /* [C] or [1] */
        double *part = avsr_ctx_alloc(ctx, sizeof(double) * (size_t)(B * C)); /* [B, C] */
        if (!ga || !part)
            return;
#pragma omp parallel for schedule(static) if (B * C * S > 32768)
        for (int64_t bc = 0; bc < B * C; bc++) {
            const float *xr = x + bc * S, *gr = gy + bc * S;
            double acc = 0.0;
            for (int64_t i = 0; i < S; i++)
                acc += (double)gr[i] * avsr_fn_prelu_grad_a(xr[i]);
            part[bc] = acc;
        }
        for (int64_t c = 0; c < C; c++) {
            double acc = 0.0;
            for (int64_t b = 0; b < B; b++)
                acc += part[b * C + c];
            if (one)
                ga[0] += (float)acc;
            else
                ga[c] += (float)acc;
        }
    }
}

avsr_tensor *avsr_op_prelu(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *a)
{
    if (!x || !a || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96], b2[96];
    if (x->dtype != AVSR_F32 || a->dtype != AVSR_F32)
        return avsr_ctx_fail(ctx, "prelu: expects f32 x and a, got %s and %s",
                             avsr_dtype_name(x->dtype), avsr_dtype_name(a->dtype));
    bool one = a->ndim == 1 && a->shape[0] == 1;
    if (!one && (a->ndim != 1 || x->ndim < 2 || a->shape[0] != x->shape[1]))
        return avsr_ctx_fail(ctx, "prelu: a: got %s for x %s, expected [1] or [C] with C = x.shape[1]",
                             avsr_shape_str(a, b1, sizeof b1), avsr_shape_str(x, b2, sizeof b2));
    int64_t B = 1, C = 1, S = x->numel;
    if (!one) {
        B = x->shape[0];
        C = x->shape[1];
        S = (B * C != 0) ? x->numel / (B * C) : 0;
    }
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, x->ndim, x->shape); /* like x */
    if (!y)
        return NULL;
    const float *xd = avsr_f32(x), *ad = avsr_f32(a);
    float *yd = avsr_f32(y);
#pragma omp parallel for schedule(static) if (x->numel > 32768)
    for (int64_t bc = 0; bc < B * C; bc++) {
        float ac = ad[one ? 0 : bc % C];
        const float *xr = xd + bc * S;
        float *yr = yd + bc * S;
#pragma omp simd
        for (int64_t i = 0; i < S; i++)
            yr[i] = avsr_fn_prelu(xr[i], ac);
    }
    avsr_tensor *in[2] = {x, a};
    if (avsr_ctx_needs_grad(ctx, 2, in)) {
        struct prelu_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct prelu_saved){x, a, y, B, C, S};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, prelu_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

/* ---------------------------------------------------------------------- */
/* GLU */

/* out[i] = a[i] * sigmoid(b[i]) */
static AVSR_SIMD_CLONES void glu_fwd_kernel(const float *a, const float *b, float *y, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++)
        y[i] = avsr_fn_glu(a[i], b[i]);
}

/* ga = gy * s, gb = gy * a * s (1 - s), s = sigmoid(b): a fresh gradient */
static AVSR_SIMD_CLONES void glu_bwd_kernel_set(const float *a, const float *b, const float *gy,
                                                float *ga, float *gb, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float s = avsr_fn_sigmoid_v(b[i]);
        ga[i] = gy[i] * s;
        gb[i] = gy[i] * a[i] * avsr_fn_sigmoid_grad_y(s);
    }
}

/* ga += gy * s, gb += gy * a * s (1 - s), s = sigmoid(b); either may be NULL */
static AVSR_SIMD_CLONES void glu_bwd_kernel(const float *a, const float *b, const float *gy,
                                            float *ga, float *gb, int64_t n)
{
    if (ga && gb) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float s = avsr_fn_sigmoid_v(b[i]);
            ga[i] += gy[i] * s;
            gb[i] += gy[i] * a[i] * avsr_fn_sigmoid_grad_y(s);
        }
    } else if (ga) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            ga[i] += gy[i] * avsr_fn_sigmoid_v(b[i]);
    }
}

struct glu_saved {
    avsr_tensor *x, *y;
    int64_t outer, half; /* x viewed as [outer, 2, half]; half = H * inner */
};

static void glu_backward(avsr_ctx *ctx, void *sv)
{
    struct glu_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x))
        return;
    /* a gradient that does not exist yet is written, not zeroed and added */
    bool accumulate;
    float *gx = avsr_tensor_grad_out(ctx, s->x, &accumulate); /* [outer, 2, half] */
    if (!gx)
        return;
    bool fresh = !accumulate;
    const float *x = avsr_f32(s->x), *gy = s->y->grad; /* gy [outer, half] */
    int64_t outer = s->outer, half = s->half, per = (half + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (outer * half > 32768)
    for (int64_t k = 0; k < outer * per; k++) {
        int64_t o = k / per, j = (k % per) * CHUNK, m = half - j < CHUNK ? half - j : CHUNK;
        const float *xa = x + o * 2 * half + j;
        float *ga = gx + o * 2 * half + j;
        if (fresh)
            glu_bwd_kernel_set(xa, xa + half, gy + o * half + j, ga, ga + half, m);
        else
            glu_bwd_kernel(xa, xa + half, gy + o * half + j, ga, ga + half, m);
    }
}

avsr_tensor *avsr_op_glu(avsr_ctx *ctx, avsr_tensor *x, int dim)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96];
    if (x->dtype != AVSR_F32)
        return avsr_ctx_fail(ctx, "glu: x: expects f32, got %s", avsr_dtype_name(x->dtype));
    int d = dim < 0 ? dim + x->ndim : dim;
    if (d < 0 || d >= x->ndim)
        return avsr_ctx_fail(ctx, "glu: dim %d out of range for x %s", dim,
                             avsr_shape_str(x, b1, sizeof b1));
    if (x->shape[d] % 2)
        return avsr_ctx_fail(ctx, "glu: x: size %lld of dim %d is odd in %s, expected even",
                             (long long)x->shape[d], dim, avsr_shape_str(x, b1, sizeof b1));
    int64_t shape[AVSR_MAX_DIMS], outer = 1, inner = 1;
    for (int i = 0; i < x->ndim; i++) {
        shape[i] = x->shape[i];
        if (i < d)
            outer *= x->shape[i];
        if (i > d)
            inner *= x->shape[i];
    }
    shape[d] /= 2;
    int64_t half = shape[d] * inner;
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, x->ndim, shape); /* [outer, half] */
    if (!y)
        return NULL;
    const float *xd = avsr_f32(x);
    float *yd = avsr_f32(y);
    int64_t per = (half + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (outer * half > 32768)
    for (int64_t k = 0; k < outer * per; k++) {
        int64_t o = k / per, j = (k % per) * CHUNK, m = half - j < CHUNK ? half - j : CHUNK;
        const float *xa = xd + o * 2 * half + j;
        glu_fwd_kernel(xa, xa + half, yd + o * half + j, m);
    }
    if (avsr_ctx_needs_grad(ctx, 1, &x)) {
        struct glu_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct glu_saved){x, y, outer, half};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, glu_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

/* ---------------------------------------------------------------------- */
/* dropout */

#define DROP_CHUNK 4096 /* multiple of 4: chunks start on a Philox block */

struct dropout_saved {
    avsr_tensor *x, *y;
    const uint8_t *keep; /* like x: 1 = kept */
    float scale;
};

static void dropout_backward(avsr_ctx *ctx, void *sv)
{
    struct dropout_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x))
        return;
    bool acc;
    float *gx = avsr_tensor_grad_out(ctx, s->x, &acc); /* like x */
    if (!gx)
        return;
    const float *gy = s->y->grad;
    const uint8_t *keep = s->keep;
    float scale = s->scale;
    int64_t n = s->x->numel;
    if (acc) {
#pragma omp parallel for simd schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; i++)
            gx[i] += keep[i] ? gy[i] * scale : 0.0f;
    } else {
#pragma omp parallel for simd schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; i++)
            gx[i] = keep[i] ? gy[i] * scale : 0.0f;
    }
}

/* Elements [j0, j1) of one row (j0 a multiple of 4): word j of the row's
 * stream r is word j % 4 of Philox block j / 4, the numbers avsr_rng_u32
 * would give after avsr_rng_seek(r, j0 / 4). The blocks are computed
 * DROP_LANES at a time, the rounds of avsr_philox4x32 written out over
 * lanes so that they vectorise. */
#define DROP_LANES 16
static AVSR_SIMD_CLONES void dropout_chunk(const avsr_rng *r, int64_t j0, int64_t j1,
                                           const float *x, float *y, uint8_t *keep, float p,
                                           float scale)
{
    uint32_t u[DROP_CHUNK + 4 * DROP_LANES];
    int64_t nb = (j1 - j0 + 3) / 4;
    uint64_t blk0 = (uint64_t)j0 / 4;
    for (int64_t q0 = 0; q0 < nb; q0 += DROP_LANES) {
        uint32_t c0[DROP_LANES], c1[DROP_LANES], c2[DROP_LANES], c3[DROP_LANES];
        for (int l = 0; l < DROP_LANES; l++) {
            uint64_t blk = blk0 + (uint64_t)(q0 + l);
            c0[l] = (uint32_t)blk;
            c1[l] = (uint32_t)(blk >> 32);
            c2[l] = r->ctr[2];
            c3[l] = r->ctr[3];
        }
        uint32_t k0 = r->key[0], k1 = r->key[1];
        for (int round = 0; round < 10; round++) {
#pragma omp simd
            for (int l = 0; l < DROP_LANES; l++) {
                uint64_t p0 = (uint64_t)0xD2511F53u * c0[l];
                uint64_t p1 = (uint64_t)0xCD9E8D57u * c2[l];
                uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0;
                uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1;
                c1[l] = (uint32_t)p1;
                c3[l] = (uint32_t)p0;
                c0[l] = n0;
                c2[l] = n2;
            }
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        for (int l = 0; l < DROP_LANES; l++) {
            uint32_t *o = u + 4 * (q0 + l);
            o[0] = c0[l];
            o[1] = c1[l];
            o[2] = c2[l];
            o[3] = c3[l];
        }
    }
    int64_t n = j1 - j0;
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        int kp = avsr_fn_dropout_keep(u[j], p);
        keep[j] = (uint8_t)kp;
        y[j] = kp ? x[j] * scale : 0.0f;
    }
}

static avsr_tensor *dropout(avsr_ctx *ctx, avsr_tensor *x, float p, uint32_t purpose,
                            bool shared)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    if (x->dtype != AVSR_F32)
        return avsr_ctx_fail(ctx, "dropout: x: expects f32, got %s", avsr_dtype_name(x->dtype));
    if (!(p >= 0.0f && p <= 1.0f))
        return avsr_ctx_fail(ctx, "dropout: p = %g, expected 0 <= p <= 1", (double)p);
    if (!avsr_ctx_training(ctx) || p == 0.0f)
        return x;
    if (x->ndim < 1)
        return avsr_ctx_fail(ctx, "dropout: x: needs a batch dimension");
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, x->ndim, x->shape); /* like x */
    uint8_t *keep = avsr_ctx_alloc(ctx, (size_t)x->numel + 1);       /* like x */
    if (!y || !keep)
        return NULL;
    int64_t B = x->shape[0], row = B ? x->numel / B : 0, per = (row + DROP_CHUNK - 1) / DROP_CHUNK;
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const float *xd = avsr_f32(x);
    float *yd = avsr_f32(y);
    uint64_t seed = ctx->seed, epoch = ctx->epoch;
    uint32_t purp = (uint32_t)AVSR_RNG_LAYER_BASE + purpose;
#pragma omp parallel for schedule(static) if (x->numel > 16384)
    for (int64_t k = 0; k < B * per; k++) {
        int64_t b = k / per, j0 = (k % per) * DROP_CHUNK;
        int64_t j1 = j0 + DROP_CHUNK < row ? j0 + DROP_CHUNK : row;
        avsr_rng r;
        uint64_t key = shared ? AVSR_CTX_SHARED_KEY | ctx->batch_id
                              : avsr_ctx_sample_id(ctx, (int)b);
        avsr_rng_init(&r, seed, epoch, key, purp);
        int64_t i = b * row + j0;
        dropout_chunk(&r, j0, j1, xd + i, yd + i, keep + i, p, scale);
    }
    if (avsr_ctx_needs_grad(ctx, 1, &x)) {
        struct dropout_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct dropout_saved){x, y, keep, scale};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, dropout_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

avsr_tensor *avsr_op_dropout(avsr_ctx *ctx, avsr_tensor *x, float p, uint32_t purpose)
{
    return dropout(ctx, x, p, purpose, false);
}

avsr_tensor *avsr_op_dropout_shared(avsr_ctx *ctx, avsr_tensor *x, float p, uint32_t purpose)
{
    return dropout(ctx, x, p, purpose, true);
}
