/* op_shape: concat, split, slice, pad, permute, transpose, sum/mean along a
 * dimension, positional encodings and rel_shift (see op_shape.h).
 *
 * Everything here moves blocks of contiguous floats. Concat, split, slice
 * and pad are all "copy rows of a 3-level block pattern" (struct blk),
 * permute is a row copy when the innermost dimension stays innermost and a
 * tiled (32 x 32) transpose otherwise. Backward runs the same movement the
 * other way round with += (a gather-add into the input's gradient), so no
 * two threads ever write the same element. */
#include "op_shape.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ctx_int.h"
#include "shape_fn.h"
#include "tape.h"

/* Loops over fewer elements than this run on one thread. */
#define PAR_MIN 32768
/* Tile edge of the blocked transpose (32 x 32 floats = 4 KiB per side). */
#define TILE 32

static void thread_range(int64_t n, int64_t *lo, int64_t *hi)
{
#ifdef _OPENMP
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
    int nt = 1, t = 0;
#endif
    *lo = n * t / nt;
    *hi = n * (t + 1) / nt;
}

/* Normalise a Python-style dimension index; -1 (error set) if out of range. */
static int norm_dim(avsr_ctx *ctx, const char *op, const avsr_tensor *x, int dim)
{
    int d = dim < 0 ? dim + x->ndim : dim;
    if (d < 0 || d >= x->ndim) {
        char b[96];
        avsr_ctx_fail(ctx, "%s: dim %d out of range for x %s", op, dim,
                      avsr_shape_str(x, b, sizeof b));
        return -1;
    }
    return d;
}

static int64_t prod(const int64_t *s, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++)
        p *= s[i];
    return p;
}

static avsr_tensor *check_f32(avsr_ctx *ctx, const char *op, avsr_tensor *x)
{
    if (x->dtype != AVSR_F32)
        return avsr_ctx_fail(ctx, "%s: x must be f32, got %s", op, avsr_dtype_name(x->dtype));
    return x;
}

/* ---- block movement ----------------------------------------------------- */

/* dst[i0*d0 + i1*d1 + j] = (or +=) src[i0*s0 + i1*s1 + j]
 * for i0 < n0, i1 < n1, j < len. */
struct blk {
    int64_t n0, n1, len;
    int64_t s0, s1, d0, d1;
};

static void blk_run(struct blk b, float *dst, const float *src, bool acc)
{
    if (b.n1 > 1 && b.s1 == b.len && b.d1 == b.len) { /* rows are adjacent on both sides */
        b.len *= b.n1;
        b.n1 = 1;
    }
    int64_t rows = b.n0 * b.n1, total = rows * b.len;
    if (total <= 0)
        return;
#pragma omp parallel if (total > PAR_MIN)
    {
        int64_t lo, hi;
        thread_range(total, &lo, &hi);
        int64_t r = lo / b.len, j = lo % b.len;
        for (int64_t i = lo; i < hi; r++, j = 0) {
            int64_t seg = b.len - j < hi - i ? b.len - j : hi - i;
            int64_t i0 = r / b.n1, i1 = r % b.n1;
            float *d = dst + i0 * b.d0 + i1 * b.d1 + j;
            const float *s = src + i0 * b.s0 + i1 * b.s1 + j;
            if (acc) {
                for (int64_t k = 0; k < seg; k++)
                    d[k] += s[k];
            } else {
                memcpy(d, s, sizeof(float) * (size_t)seg);
            }
            i += seg;
        }
    }
}

static void fill(float *dst, int64_t n, float v)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        dst[i] = v;
}

/* ---- concat ------------------------------------------------------------ */

struct concat_saved {
    int n;
    avsr_tensor **xs; /* [n] */
    avsr_tensor *y;
    int64_t outer, row; /* y is [outer, row]; input k is [outer, inner_k] */
    int64_t *off;       /* [n] offset of input k within a row of y */
};

static void concat_backward(avsr_ctx *ctx, void *sv)
{
    struct concat_saved *s = sv;
    const float *g = s->y->grad; /* [outer, row] */
    for (int k = 0; k < s->n; k++) {
        avsr_tensor *x = s->xs[k];
        if (!avsr_tensor_requires_grad(x))
            continue;
        float *gx = avsr_tensor_grad(ctx, x); /* [outer, inner_k] */
        if (!gx)
            return;
        int64_t inner = s->outer ? x->numel / s->outer : 0;
        struct blk b = {s->outer, 1, inner, s->row, 0, inner, 0};
        blk_run(b, gx, g + s->off[k], true);
    }
}

avsr_tensor *avsr_op_concat(avsr_ctx *ctx, int n, avsr_tensor **xs, int dim)
{
    if (avsr_ctx_failed(ctx))
        return NULL;
    if (n < 1 || !xs)
        return avsr_ctx_fail(ctx, "concat: needs at least one input, got %d", n);
    for (int k = 0; k < n; k++)
        if (!xs[k])
            return NULL;
    avsr_tensor *x0 = xs[0];
    int d = norm_dim(ctx, "concat", x0, dim);
    if (d < 0)
        return NULL;
    int64_t shape[AVSR_MAX_DIMS];
    memcpy(shape, x0->shape, sizeof shape);
    shape[d] = 0;
    for (int k = 0; k < n; k++) {
        avsr_tensor *x = xs[k];
        if (x->dtype != AVSR_F32)
            return avsr_ctx_fail(ctx, "concat: input %d must be f32, got %s", k,
                                 avsr_dtype_name(x->dtype));
        bool ok = x->ndim == x0->ndim;
        for (int i = 0; ok && i < x0->ndim; i++)
            ok = i == d || x->shape[i] == x0->shape[i];
        if (!ok) {
            char s1[96], s2[96];
            return avsr_ctx_fail(ctx,
                                 "concat: input %d has shape %s, input 0 has %s (only dim %d may differ)",
                                 k, avsr_shape_str(x, s1, sizeof s1),
                                 avsr_shape_str(x0, s2, sizeof s2), d);
        }
        shape[d] += x->shape[d];
    }
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, x0->ndim, shape); /* [..., sum of dims, ...] */
    int64_t *off = avsr_ctx_alloc(ctx, sizeof(int64_t) * (size_t)n); /* [n] */
    if (!y || !off)
        return NULL;
    int64_t outer = prod(shape, 0, d), post = prod(shape, d + 1, x0->ndim);
    int64_t row = shape[d] * post, o = 0;
    for (int k = 0; k < n; k++) {
        int64_t inner = xs[k]->shape[d] * post;
        off[k] = o;
        struct blk b = {outer, 1, inner, inner, 0, row, 0};
        blk_run(b, avsr_f32(y) + o, avsr_f32(xs[k]), false);
        o += inner;
    }
    if (avsr_ctx_needs_grad(ctx, n, xs)) {
        struct concat_saved *s = avsr_tape_saved(ctx, sizeof *s);
        avsr_tensor **keep = avsr_ctx_alloc(ctx, sizeof *keep * (size_t)n);
        if (!s || !keep)
            return NULL;
        memcpy(keep, xs, sizeof *keep * (size_t)n);
        *s = (struct concat_saved){n, keep, y, outer, row, off};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, concat_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

/* ---- slice and split ------------------------------------------------------ */

/* Saved state of slice, split and pad: the forward movement y <- x as a
 * block pattern (s* strides in x, d* strides in y) and the start offsets
 * in x and y. Backward runs it the other way round with +=. */
struct slice_saved {
    avsr_tensor *x, *y;
    struct blk b;
    int64_t x_off, y_off;
};

static void slice_backward(avsr_ctx *ctx, void *sv)
{
    struct slice_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x))
        return;
    float *gx = avsr_tensor_grad(ctx, s->x); /* [x] */
    if (!gx)
        return;
    /* the same block pattern with source and destination swapped */
    struct blk r = {s->b.n0, s->b.n1, s->b.len, s->b.d0, s->b.d1, s->b.s0, s->b.s1};
    blk_run(r, gx + s->x_off, s->y->grad + s->y_off, true);
}

/* x[..., start : start + len*step : step, ...] along normalised dim d. */
static avsr_tensor *slice_dim(avsr_ctx *ctx, avsr_tensor *x, int d, int64_t start, int64_t len,
                              int64_t step)
{
    int64_t shape[AVSR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[d] = len;
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, x->ndim, shape); /* [..., len, ...] */
    if (!y)
        return NULL;
    int64_t outer = prod(x->shape, 0, d), post = prod(x->shape, d + 1, x->ndim);
    struct blk b = {outer, len, post, x->shape[d] * post, step * post, len * post, post};
    int64_t src_off = start * post;
    blk_run(b, avsr_f32(y), avsr_f32(x) + src_off, false);
    if (avsr_ctx_needs_grad(ctx, 1, &x)) {
        struct slice_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct slice_saved){x, y, b, src_off, 0};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, slice_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

static int64_t clamp_index(int64_t i, int64_t size)
{
    if (i < 0) {
        i += size;
        if (i < 0)
            i = 0;
    } else if (i > size) {
        i = size;
    }
    return i;
}

avsr_tensor *avsr_op_slice(avsr_ctx *ctx, avsr_tensor *x, int dim, int64_t start, int64_t end,
                           int64_t step)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    if (!check_f32(ctx, "slice", x))
        return NULL;
    int d = norm_dim(ctx, "slice", x, dim);
    if (d < 0)
        return NULL;
    if (step < 1)
        return avsr_ctx_fail(ctx, "slice: step must be >= 1, got %lld", (long long)step);
    int64_t size = x->shape[d];
    int64_t s = clamp_index(start, size), e = clamp_index(end, size);
    int64_t len = e > s ? (e - s + step - 1) / step : 0;
    return slice_dim(ctx, x, d, s, len, step);
}

int avsr_op_split(avsr_ctx *ctx, avsr_tensor *x, int dim, int n, const int64_t *sizes,
                  avsr_tensor **outs)
{
    for (int k = 0; outs && k < n; k++)
        outs[k] = NULL;
    if (!x || avsr_ctx_failed(ctx))
        return -1;
    if (!check_f32(ctx, "split", x))
        return -1;
    if (n < 1 || !sizes || !outs) {
        avsr_ctx_fail(ctx, "split: needs n >= 1 sizes and outputs, got n = %d", n);
        return -1;
    }
    int d = norm_dim(ctx, "split", x, dim);
    if (d < 0)
        return -1;
    int64_t total = 0;
    for (int k = 0; k < n; k++) {
        if (sizes[k] < 0) {
            avsr_ctx_fail(ctx, "split: sizes[%d] is negative (%lld)", k, (long long)sizes[k]);
            return -1;
        }
        total += sizes[k];
    }
    if (total != x->shape[d]) {
        char b[96];
        avsr_ctx_fail(ctx, "split: sizes sum to %lld, but x %s has %lld along dim %d",
                      (long long)total, avsr_shape_str(x, b, sizeof b), (long long)x->shape[d],
                      dim);
        return -1;
    }
    int64_t o = 0;
    for (int k = 0; k < n; k++) {
        outs[k] = slice_dim(ctx, x, d, o, sizes[k], 1);
        if (!outs[k]) {
            for (int j = 0; j < n; j++)
                outs[j] = NULL;
            return -1;
        }
        o += sizes[k];
    }
    return 0;
}

/* ---- pad ---------------------------------------------------------------- */

avsr_tensor *avsr_op_pad(avsr_ctx *ctx, avsr_tensor *x, int dim, int64_t before, int64_t after,
                         float value)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    if (!check_f32(ctx, "pad", x))
        return NULL;
    int d = norm_dim(ctx, "pad", x, dim);
    if (d < 0)
        return NULL;
    if (before < 0 || after < 0)
        return avsr_ctx_fail(ctx, "pad: before and after must be >= 0, got %lld and %lld",
                             (long long)before, (long long)after);
    int64_t shape[AVSR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[d] += before + after;
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, x->ndim, shape); /* [..., before+T+after, ...] */
    if (!y)
        return NULL;
    int64_t outer = prod(x->shape, 0, d), post = prod(x->shape, d + 1, x->ndim);
    int64_t in_row = x->shape[d] * post, out_row = shape[d] * post;
    fill(avsr_f32(y), y->numel, value);
    struct blk b = {outer, 1, in_row, in_row, 0, out_row, 0};
    int64_t dst_off = before * post;
    blk_run(b, avsr_f32(y) + dst_off, avsr_f32(x), false);
    if (avsr_ctx_needs_grad(ctx, 1, &x)) {
        /* backward: the interior of dy, as for a slice */
        struct slice_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct slice_saved){x, y, b, 0, dst_off};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, slice_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

/* ---- permute, transpose ---------------------------------------------------- */

/* dst = (or +=) src permuted: dst.shape[i] = ishape[perm[i]]. */
static void permute_run(int nd, const int64_t *ishape, const int *perm, const float *src,
                        float *dst, bool acc)
{
    int64_t is[AVSR_MAX_DIMS], c = 1;
    for (int i = nd - 1; i >= 0; i--) {
        is[i] = c;
        c *= ishape[i];
    }
    int64_t total = c;
    if (total <= 0)
        return;
    /* output dims with their source strides; drop size 1, merge runs that
     * are contiguous in the source too */
    int64_t n[AVSR_MAX_DIMS], st[AVSR_MAX_DIMS];
    int m = 0;
    for (int i = 0; i < nd; i++) {
        int64_t sz = ishape[perm[i]], s = is[perm[i]];
        if (sz == 1)
            continue;
        if (m > 0 && st[m - 1] == s * sz) {
            n[m - 1] *= sz;
            st[m - 1] = s;
        } else {
            n[m] = sz;
            st[m] = s;
            m++;
        }
    }
    if (m <= 1) { /* the order of the data does not change */
        struct blk b = {1, 1, total, 0, 0, 0, 0};
        blk_run(b, dst, src, acc);
        return;
    }
    int64_t os[AVSR_MAX_DIMS];
    c = 1;
    for (int i = m - 1; i >= 0; i--) {
        os[i] = c;
        c *= n[i];
    }
    if (st[m - 1] == 1) {
        /* innermost dim stays innermost: copy rows of n[m-1] */
        int64_t len = n[m - 1], rows = total / len;
#pragma omp parallel for schedule(static) if (total > PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            int64_t rem = r, so = 0;
            for (int i = m - 2; i >= 0; i--) {
                so += (rem % n[i]) * st[i];
                rem /= n[i];
            }
            float *d = dst + r * len;
            const float *s = src + so;
            if (acc) {
                for (int64_t k = 0; k < len; k++)
                    d[k] += s[k];
            } else {
                memcpy(d, s, sizeof(float) * (size_t)len);
            }
        }
        return;
    }
    /* tiled transpose between output dim j (source stride 1) and the last
     * output dim; the other dims are a batch */
    int j = 0;
    while (j < m - 1 && st[j] != 1)
        j++;
    int64_t R = n[j], C = n[m - 1], sc = st[m - 1], orow = os[j];
    int64_t tr = (R + TILE - 1) / TILE, tc = (C + TILE - 1) / TILE;
    int64_t batch = total / (R * C);
    int64_t jobs = batch * tr * tc;
#pragma omp parallel for schedule(static) if (total > PAR_MIN)
    for (int64_t q = 0; q < jobs; q++) {
        int64_t bi = q / (tr * tc), t = q % (tr * tc);
        int64_t r0 = (t / tc) * TILE, c0 = (t % tc) * TILE;
        int64_t r1 = r0 + TILE < R ? r0 + TILE : R, c1 = c0 + TILE < C ? c0 + TILE : C;
        int64_t rem = bi, so = 0, doff = 0;
        for (int i = m - 2; i >= 0; i--) {
            if (i == j)
                continue;
            int64_t ci = rem % n[i];
            rem /= n[i];
            so += ci * st[i];
            doff += ci * os[i];
        }
        for (int64_t r = r0; r < r1; r++) {
            float *d = dst + doff + r * orow;
            const float *s = src + so + r;
            if (acc) {
                for (int64_t k = c0; k < c1; k++)
                    d[k] += s[k * sc];
            } else {
                for (int64_t k = c0; k < c1; k++)
                    d[k] = s[k * sc];
            }
        }
    }
}

struct permute_saved {
    avsr_tensor *x, *y;
    int inv[AVSR_MAX_DIMS];
};

static void permute_backward(avsr_ctx *ctx, void *sv)
{
    struct permute_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x))
        return;
    float *gx = avsr_tensor_grad(ctx, s->x); /* [x] */
    if (!gx)
        return;
    permute_run(s->y->ndim, s->y->shape, s->inv, s->y->grad, gx, true);
}

avsr_tensor *avsr_op_permute(avsr_ctx *ctx, avsr_tensor *x, const int *perm)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    if (!check_f32(ctx, "permute", x))
        return NULL;
    int nd = x->ndim;
    bool seen[AVSR_MAX_DIMS] = {false}, ok = perm != NULL;
    for (int i = 0; ok && i < nd; i++) {
        ok = perm[i] >= 0 && perm[i] < nd && !seen[perm[i]];
        if (ok)
            seen[perm[i]] = true;
    }
    if (!ok) {
        char ps[64] = "(null)", b[96];
        if (perm) {
            int o = snprintf(ps, sizeof ps, "[");
            for (int i = 0; i < nd && o < (int)sizeof ps; i++)
                o += snprintf(ps + o, sizeof ps - (size_t)o, i ? ", %d" : "%d", perm[i]);
            if (o < (int)sizeof ps)
                snprintf(ps + o, sizeof ps - (size_t)o, "]");
        }
        return avsr_ctx_fail(ctx, "permute: perm %s is not a permutation of 0..%d for x %s", ps,
                             nd - 1, avsr_shape_str(x, b, sizeof b));
    }
    int64_t shape[AVSR_MAX_DIMS];
    for (int i = 0; i < nd; i++)
        shape[i] = x->shape[perm[i]];
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, nd, shape); /* [x.shape[perm[i]]] */
    if (!y)
        return NULL;
    permute_run(nd, x->shape, perm, avsr_f32(x), avsr_f32(y), false);
    if (avsr_ctx_needs_grad(ctx, 1, &x)) {
        struct permute_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        s->x = x;
        s->y = y;
        for (int i = 0; i < nd; i++)
            s->inv[perm[i]] = i;
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, permute_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

avsr_tensor *avsr_op_transpose(avsr_ctx *ctx, avsr_tensor *x, int d0, int d1)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    int a = norm_dim(ctx, "transpose", x, d0);
    if (a < 0)
        return NULL;
    int b = norm_dim(ctx, "transpose", x, d1);
    if (b < 0)
        return NULL;
    int perm[AVSR_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++)
        perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return avsr_op_permute(ctx, x, perm);
}

/* ---- sum, mean along one dim ---------------------------------------------- */

struct reduce_dim_saved {
    avsr_tensor *x, *y;
    int64_t outer, n, inner; /* x is [outer, n, inner], y [outer, inner] */
    float scale;
};

static void reduce_dim_backward(avsr_ctx *ctx, void *sv)
{
    struct reduce_dim_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x))
        return;
    float *gx = avsr_tensor_grad(ctx, s->x); /* [outer, n, inner] */
    if (!gx)
        return;
    const float *g = s->y->grad; /* [outer, inner] */
    int64_t rows = s->outer * s->n, inner = s->inner, n = s->n;
    float sc = s->scale;
#pragma omp parallel for schedule(static) if (rows * inner > PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *gr = g + (r / n) * inner;
        float *d = gx + r * inner;
        for (int64_t i = 0; i < inner; i++)
            d[i] += sc * gr[i];
    }
}

#define RBLOCK 256

static avsr_tensor *reduce_dim(avsr_ctx *ctx, avsr_tensor *x, int dim, bool keepdim, bool mean,
                               const char *op)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    if (!check_f32(ctx, op, x))
        return NULL;
    int d = norm_dim(ctx, op, x, dim);
    if (d < 0)
        return NULL;
    int64_t shape[AVSR_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (i != d)
            shape[nd++] = x->shape[i];
        else if (keepdim)
            shape[nd++] = 1;
    }
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, nd, shape); /* [outer, (1,) inner] */
    if (!y)
        return NULL;
    int64_t outer = prod(x->shape, 0, d), n = x->shape[d], inner = prod(x->shape, d + 1, x->ndim);
    double scale = mean ? 1.0 / (double)n : 1.0; /* n = 0: inf * 0 = nan, as torch.mean */
    const float *xd = avsr_f32(x);
    float *yd = avsr_f32(y);
    if (inner == 1) {
#pragma omp parallel for schedule(static) if (x->numel > PAR_MIN)
        for (int64_t o = 0; o < outer; o++) {
            const float *r = xd + o * n;
            double acc = 0.0;
            for (int64_t k = 0; k < n; k++)
                acc += r[k];
            yd[o] = (float)(mean ? (n ? acc / (double)n : NAN) : acc);
        }
    } else {
        int64_t nb = (inner + RBLOCK - 1) / RBLOCK;
#pragma omp parallel for schedule(static) if (x->numel > PAR_MIN)
        for (int64_t q = 0; q < outer * nb; q++) {
            int64_t o = q / nb, i0 = (q % nb) * RBLOCK;
            int64_t w = inner - i0 < RBLOCK ? inner - i0 : RBLOCK;
            double acc[RBLOCK];
            for (int64_t i = 0; i < w; i++)
                acc[i] = 0.0;
            for (int64_t k = 0; k < n; k++) {
                const float *r = xd + (o * n + k) * inner + i0;
                for (int64_t i = 0; i < w; i++)
                    acc[i] += r[i];
            }
            for (int64_t i = 0; i < w; i++)
                yd[o * inner + i0 + i] = (float)(mean ? (n ? acc[i] / (double)n : NAN) : acc[i]);
        }
    }
    if (avsr_ctx_needs_grad(ctx, 1, &x)) {
        struct reduce_dim_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct reduce_dim_saved){x, y, outer, n, inner, (float)scale};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, reduce_dim_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

avsr_tensor *avsr_op_sum(avsr_ctx *ctx, avsr_tensor *x, int dim, bool keepdim)
{
    return reduce_dim(ctx, x, dim, keepdim, false, "sum");
}

avsr_tensor *avsr_op_mean(avsr_ctx *ctx, avsr_tensor *x, int dim, bool keepdim)
{
    return reduce_dim(ctx, x, dim, keepdim, true, "mean");
}

/* ---- positional encodings --------------------------------------------------- */

static avsr_tensor *positions_new(avsr_ctx *ctx, const char *op, int64_t rows, int64_t T,
                                  int64_t D, int64_t min_d)
{
    if (avsr_ctx_failed(ctx))
        return NULL;
    if (T < 1 || D < min_d || D % 2 || D > (1 << 24))
        return avsr_ctx_fail(ctx, "%s: needs T >= 1 and an even D >= %lld, got T = %lld, D = %lld",
                             op, (long long)min_d, (long long)T, (long long)D);
    int64_t shape[2] = {rows, D};
    return avsr_tensor_new(ctx, AVSR_F32, 2, shape);
}

/* Row of the interleaved ESPnet table for (possibly negative) position p. */
static void espnet_row(float *row, int64_t p, int64_t D)
{
    float fp = (float)p;
    for (int64_t i = 0; i < D / 2; i++) {
        float a = fp * avsr_fn_pe_freq((int)i, (int)D);
        row[2 * i] = sinf(a);
        row[2 * i + 1] = cosf(a);
    }
}

avsr_tensor *avsr_op_sinusoid_positions(avsr_ctx *ctx, int64_t T, int64_t D)
{
    avsr_tensor *y = positions_new(ctx, "sinusoid_positions", T, T, D, 2); /* [T, D] */
    if (!y)
        return NULL;
    float *yd = avsr_f32(y);
#pragma omp parallel for schedule(static) if (T * D > PAR_MIN)
    for (int64_t t = 0; t < T; t++)
        espnet_row(yd + t * D, t, D);
    return y;
}

avsr_tensor *avsr_op_rel_positions(avsr_ctx *ctx, int64_t T, int64_t D)
{
    avsr_tensor *y = positions_new(ctx, "rel_positions", 2 * T - 1, T, D, 2); /* [2T-1, D] */
    if (!y)
        return NULL;
    float *yd = avsr_f32(y);
    /* row r: relative position T-1-r; ESPnet builds the negative half as
     * sin(-1 * p * w), cos(-1 * p * w), i.e. the table at -p */
#pragma omp parallel for schedule(static) if (T * D > PAR_MIN)
    for (int64_t r = 0; r < 2 * T - 1; r++)
        espnet_row(yd + r * D, T - 1 - r, D);
    return y;
}

avsr_tensor *avsr_op_whisper_positions(avsr_ctx *ctx, int64_t T, int64_t D)
{
    avsr_tensor *y = positions_new(ctx, "whisper_positions", T, T, D, 4); /* [T, D] */
    if (!y)
        return NULL;
    float *yd = avsr_f32(y);
    int64_t h = D / 2;
#pragma omp parallel for schedule(static) if (T * D > PAR_MIN)
    for (int64_t t = 0; t < T; t++) {
        float ft = (float)t;
        for (int64_t i = 0; i < h; i++) {
            float a = ft * avsr_fn_whisper_freq((int)i, (int)D);
            yd[t * D + i] = sinf(a);
            yd[t * D + h + i] = cosf(a);
        }
    }
    return y;
}

/* ---- rel_shift ---------------------------------------------------------- */

struct rel_shift_saved {
    avsr_tensor *x, *y;
};

static void rel_shift_backward(avsr_ctx *ctx, void *sv)
{
    struct rel_shift_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x))
        return;
    float *gx = avsr_tensor_grad(ctx, s->x); /* [B, H, T, 2T-1] */
    if (!gx)
        return;
    const float *g = s->y->grad; /* [B, H, T, T] */
    int64_t T = s->y->shape[2], P = 2 * T - 1, rows = s->y->numel / (T ? T : 1);
#pragma omp parallel for schedule(static) if (s->y->numel > PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t i = r % T;
        float *d = gx + r * P + (T - 1 - i);
        const float *gr = g + r * T;
        for (int64_t j = 0; j < T; j++)
            d[j] += gr[j];
    }
}

avsr_tensor *avsr_op_rel_shift(avsr_ctx *ctx, avsr_tensor *x)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    if (!check_f32(ctx, "rel_shift", x))
        return NULL;
    if (x->ndim != 4 || x->shape[2] < 1 || x->shape[3] != 2 * x->shape[2] - 1) {
        char b[96];
        return avsr_ctx_fail(ctx, "rel_shift: x must be [B, H, T, 2T-1], got %s",
                             avsr_shape_str(x, b, sizeof b));
    }
    int64_t T = x->shape[2], P = 2 * T - 1;
    int64_t shape[4] = {x->shape[0], x->shape[1], T, T};
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, 4, shape); /* [B, H, T, T] */
    if (!y)
        return NULL;
    const float *xd = avsr_f32(x);
    float *yd = avsr_f32(y);
    int64_t rows = x->shape[0] * x->shape[1] * T;
    /* padded row i of the [T, 2T] table, read as [2T, T] from row 1 on and
     * back as [T, 2T-1]: element (i, j < T) lands on x[i, T-1-i+j] */
#pragma omp parallel for schedule(static) if (y->numel > PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t i = r % T;
        memcpy(yd + r * T, xd + r * P + (T - 1 - i), sizeof(float) * (size_t)T);
    }
    if (avsr_ctx_needs_grad(ctx, 1, &x)) {
        struct rel_shift_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct rel_shift_saved){x, y};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, rel_shift_backward, y, s) < 0)
            return NULL;
    }
    return y;
}
