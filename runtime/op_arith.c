/* op_arith: element-wise arithmetic with broadcasting, scalar ops, axpby
 * and masked fill (see op_shape.h).
 *
 * Broadcasting is planned once per call (struct bcast): the operands'
 * shapes are aligned at the trailing end, dimensions of output size 1 are
 * dropped, and neighbouring dimensions in which each operand either is
 * present or broadcasts in the same way are merged. A bias [C] on [N, C]
 * becomes a 2-D plan, a per-channel [1, C, 1] on [B, C, T] a 3-D one, equal
 * shapes a 1-D one. Kernels then walk the output in segments along the
 * innermost merged dimension, where each operand has stride 1 or 0, so the
 * inner loops are plain vectorisable loops; every thread takes a contiguous
 * range of output elements.
 *
 * Backward into an operand that broadcasts sums over the broadcast
 * dimensions: when the operand is much smaller than the output (biases,
 * per-channel scales) each thread accumulates into a private double buffer
 * that is summed at the end; otherwise each thread owns a range of the
 * operand's elements and sums their gradients itself. Either way no two
 * threads write the same element. */
#include "op_shape.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ctx_int.h"
#include "shape_fn.h"
#include "tape.h"

/* Loops over fewer elements than this run on one thread. */
#define PAR_MIN 32768

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* This thread's share [lo, hi) of n elements inside a parallel region. */
static void thread_range(int64_t n, int64_t *lo, int64_t *hi, int *tid, int *nthreads)
{
#ifdef _OPENMP
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
    int nt = 1, t = 0;
#endif
    *lo = n * t / nt;
    *hi = n * (t + 1) / nt;
    if (tid)
        *tid = t;
    if (nthreads)
        *nthreads = nt;
}

/* ---- broadcast plan ---------------------------------------------------- */

struct bcast {
    int ndim;                     /* output shape (uncollapsed) */
    int64_t shape[AVSR_MAX_DIMS];
    int64_t numel;
    int nd;                       /* merged dimensions (>= 1) */
    int64_t n[AVSR_MAX_DIMS];     /* sizes of the merged output dimensions */
    int64_t sa[AVSR_MAX_DIMS];    /* element strides of a; 0 where a broadcasts */
    int64_t sb[AVSR_MAX_DIMS];    /* element strides of b; 0 where b broadcasts */
};

static int bcast_plan(avsr_ctx *ctx, const char *op, const avsr_tensor *a, const avsr_tensor *b,
                      struct bcast *bc)
{
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    bool pa[AVSR_MAX_DIMS], pb[AVSR_MAX_DIMS];
    int m = 0;
    memset(bc, 0, sizeof *bc);
    bc->ndim = nd;
    for (int d = 0; d < nd; d++) {
        int ia = d - (nd - a->ndim), ib = d - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1;
        int64_t db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char s1[96], s2[96];
            avsr_ctx_fail(ctx, "%s: shapes %s and %s cannot be broadcast (dimension %d: %lld vs %lld)",
                          op, avsr_shape_str(a, s1, sizeof s1), avsr_shape_str(b, s2, sizeof s2), d,
                          (long long)da, (long long)db);
            return -1;
        }
        int64_t o = da == 1 ? db : da;
        bc->shape[d] = o;
        if (o == 1)
            continue;
        bool xa = da == o, xb = db == o;
        if (m > 0 && pa[m - 1] == xa && pb[m - 1] == xb) {
            bc->n[m - 1] *= o;
        } else {
            pa[m] = xa;
            pb[m] = xb;
            bc->n[m] = o;
            m++;
        }
    }
    if (m == 0) {
        pa[0] = pb[0] = true;
        bc->n[0] = 1;
        m = 1;
    }
    bc->nd = m;
    int64_t ca = 1, cb = 1;
    bc->numel = 1;
    for (int d = m - 1; d >= 0; d--) {
        bc->sa[d] = pa[d] ? ca : 0;
        bc->sb[d] = pb[d] ? cb : 0;
        if (pa[d])
            ca *= bc->n[d];
        if (pb[d])
            cb *= bc->n[d];
        bc->numel *= bc->n[d];
    }
    return 0;
}

/* Position in the merged output: index per dimension, and the offsets of a
 * and b at the start of the current row (innermost index 0). */
struct bc_it {
    int64_t idx[AVSR_MAX_DIMS];
    int64_t oa, ob;
};

static void bc_seek(const struct bcast *bc, struct bc_it *it, int64_t flat)
{
    it->oa = it->ob = 0;
    for (int d = bc->nd - 1; d >= 0; d--) {
        it->idx[d] = flat % bc->n[d];
        flat /= bc->n[d];
        if (d < bc->nd - 1) {
            it->oa += it->idx[d] * bc->sa[d];
            it->ob += it->idx[d] * bc->sb[d];
        }
    }
}

static void bc_next_row(const struct bcast *bc, struct bc_it *it)
{
    it->idx[bc->nd - 1] = 0;
    for (int d = bc->nd - 2; d >= 0; d--) {
        it->oa += bc->sa[d];
        it->ob += bc->sb[d];
        if (++it->idx[d] < bc->n[d])
            return;
        it->oa -= bc->sa[d] * bc->n[d];
        it->ob -= bc->sb[d] * bc->n[d];
        it->idx[d] = 0;
    }
}

/* Run the statements in ... for every segment of output range [lo, hi):
 * `i` is the flat output index of the segment's first element, `len` its
 * length, `offa`/`offb` the offsets of a and b, `sal`/`sbl` their strides
 * (0 or 1) along the segment. */
#define BC_SEGMENTS(bc, lo, hi, ...)                                               \
    do {                                                                           \
        struct bc_it it_;                                                          \
        bc_seek((bc), &it_, (lo));                                                 \
        const int64_t L_ = (bc)->n[(bc)->nd - 1];                                  \
        const int64_t sal = (bc)->sa[(bc)->nd - 1], sbl = (bc)->sb[(bc)->nd - 1];  \
        (void)sal;                                                                 \
        (void)sbl;                                                                 \
        for (int64_t i = (lo); i < (hi);) {                                        \
            int64_t k0_ = it_.idx[(bc)->nd - 1];                                   \
            int64_t len = L_ - k0_ < (hi) - i ? L_ - k0_ : (hi) - i;               \
            int64_t offa = it_.oa + k0_ * sal, offb = it_.ob + k0_ * sbl;          \
            (void)offa;                                                            \
            (void)offb;                                                            \
            __VA_ARGS__;                                                           \
            i += len;                                                              \
            if (k0_ + len == L_)                                                   \
                bc_next_row((bc), &it_);                                           \
        }                                                                          \
    } while (0)

/* ---- add, sub, mul, div ---------------------------------------------- */

/* One output segment o[0..n) = op(a, b), a and b with stride 1 or 0. */
#define SEG_LOOP(EXPR)                                   \
    do {                                                 \
        if (sa && sb) {                                  \
            for (int64_t k = 0; k < n; k++) {            \
                float av = a[k], bv = b[k];              \
                o[k] = (EXPR);                           \
            }                                            \
        } else if (sa) {                                 \
            const float bv = b[0];                       \
            for (int64_t k = 0; k < n; k++) {            \
                float av = a[k];                         \
                o[k] = (EXPR);                           \
            }                                            \
        } else if (sb) {                                 \
            const float av = a[0];                       \
            for (int64_t k = 0; k < n; k++) {            \
                float bv = b[k];                         \
                o[k] = (EXPR);                           \
            }                                            \
        } else {                                         \
            const float av = a[0], bv = b[0];            \
            const float v = (EXPR);                      \
            for (int64_t k = 0; k < n; k++)              \
                o[k] = v;                                \
        }                                                \
    } while (0)

static void binary_seg(int op, float *o, const float *a, int64_t sa, const float *b, int64_t sb,
                       int64_t n)
{
    switch (op) {
    case AVSR_BIN_ADD: SEG_LOOP(avsr_fn_binary(AVSR_BIN_ADD, av, bv)); break;
    case AVSR_BIN_SUB: SEG_LOOP(avsr_fn_binary(AVSR_BIN_SUB, av, bv)); break;
    case AVSR_BIN_MUL: SEG_LOOP(avsr_fn_binary(AVSR_BIN_MUL, av, bv)); break;
    default: SEG_LOOP(avsr_fn_binary(AVSR_BIN_DIV, av, bv)); break;
    }
}

/* g * d op / d(a or b) for one element. */
static inline float binary_grad(int op, int which, float g, float a, float b)
{
    return which ? avsr_fn_binary_db(op, g, a, b) : avsr_fn_binary_da(op, g, a, b);
}

/* Gradient of the operand `which` (0 = a, 1 = b) that does not broadcast:
 * gx[k] += h(g[k], a, b) over one segment. */
static void grad_seg_direct(int op, int which, float *gx, const float *g, const float *a,
                            int64_t sa, const float *b, int64_t sb, int64_t n)
{
    if (op == AVSR_BIN_ADD || (op == AVSR_BIN_SUB && which == 0)) {
        for (int64_t k = 0; k < n; k++)
            gx[k] += g[k];
    } else if (op == AVSR_BIN_SUB) {
        for (int64_t k = 0; k < n; k++)
            gx[k] -= g[k];
    } else {
        for (int64_t k = 0; k < n; k++)
            gx[k] += binary_grad(op, which, g[k], a[k * sa], b[k * sb]);
    }
}

/* Same into a double accumulator with stride sx (1, or 0: the segment
 * sums into acc[0]). */
static void grad_seg_acc(int op, int which, double *acc, int64_t sx, const float *g,
                         const float *a, int64_t sa, const float *b, int64_t sb, int64_t n)
{
    if (op == AVSR_BIN_ADD || op == AVSR_BIN_SUB) {
        const double sign = op == AVSR_BIN_SUB && which ? -1.0 : 1.0;
        if (sx) {
            for (int64_t k = 0; k < n; k++)
                acc[k] += sign * g[k];
        } else {
            double s = 0.0;
            for (int64_t k = 0; k < n; k++)
                s += g[k];
            acc[0] += sign * s;
        }
    } else if (sx) {
        for (int64_t k = 0; k < n; k++)
            acc[k] += binary_grad(op, which, g[k], a[k * sa], b[k * sb]);
    } else {
        double s = 0.0;
        for (int64_t k = 0; k < n; k++)
            s += binary_grad(op, which, g[k], a[k * sa], b[k * sb]);
        acc[0] += s;
    }
}

struct binary_saved {
    avsr_tensor *a, *b, *y;
    int op;
    struct bcast bc;
};

/* Gradient of a broadcast operand by per-thread double buffers [threads, xn]. */
static void grad_reduce_private(avsr_ctx *ctx, const struct binary_saved *s, int which, float *gx,
                                int64_t xn)
{
    const struct bcast *bc = &s->bc;
    const float *g = s->y->grad, *a = avsr_f32(s->a), *b = avsr_f32(s->b);
    int par = bc->numel > PAR_MIN;
    int nt_max = par ? max_threads() : 1;
    double *acc = avsr_ctx_alloc(ctx, sizeof(double) * (size_t)xn * (size_t)nt_max); /* [nt, xn] */
    if (!acc)
        return;
    int used = 1;
#pragma omp parallel if (par) num_threads(nt_max)
    {
        int64_t lo, hi;
        int t, nt;
        thread_range(bc->numel, &lo, &hi, &t, &nt);
#pragma omp master
        used = nt;
        double *my = acc + (size_t)t * (size_t)xn;
        memset(my, 0, sizeof(double) * (size_t)xn);
        BC_SEGMENTS(bc, lo, hi,
                    grad_seg_acc(s->op, which, my + (which ? offb : offa), which ? sbl : sal, g + i,
                                 a + offa, sal, b + offb, sbl, len));
    }
#pragma omp parallel for schedule(static) if (xn > PAR_MIN)
    for (int64_t j = 0; j < xn; j++) {
        double v = 0.0;
        for (int t = 0; t < used; t++)
            v += acc[(size_t)t * (size_t)xn + (size_t)j];
        gx[j] += (float)v;
    }
}

/* Gradient of a broadcast operand that is not much smaller than the output:
 * each thread sums the gradients of a range of the operand's elements. */
static void grad_reduce_owned(const struct binary_saved *s, int which, float *gx, int64_t xn)
{
    const struct bcast *bc = &s->bc;
    const float *g = s->y->grad, *a = avsr_f32(s->a), *b = avsr_f32(s->b);
    const int64_t *sx = which ? bc->sb : bc->sa;
    int P[AVSR_MAX_DIMS], Q[AVSR_MAX_DIMS], np = 0, nq = 0;
    int64_t so[AVSR_MAX_DIMS], qn = 1, c = 1;
    for (int d = bc->nd - 1; d >= 0; d--) {
        so[d] = c;
        c *= bc->n[d];
    }
    for (int d = 0; d < bc->nd; d++) {
        if (sx[d]) {
            P[np++] = d;
        } else {
            Q[nq++] = d;
            qn *= bc->n[d];
        }
    }
#pragma omp parallel for schedule(static) if (bc->numel > PAR_MIN)
    for (int64_t j = 0; j < xn; j++) {
        int64_t rem = j, oo = 0, oa = 0, ob = 0;
        for (int k = np - 1; k >= 0; k--) {
            int d = P[k];
            int64_t ci = rem % bc->n[d];
            rem /= bc->n[d];
            oo += ci * so[d];
            oa += ci * bc->sa[d];
            ob += ci * bc->sb[d];
        }
        int64_t qi[AVSR_MAX_DIMS] = {0};
        double sum = 0.0;
        for (int64_t r = 0; r < qn; r++) {
            sum += binary_grad(s->op, which, g[oo], a[oa], b[ob]);
            for (int k = nq - 1; k >= 0; k--) { /* odometer over the broadcast dims */
                int d = Q[k];
                oo += so[d];
                oa += bc->sa[d];
                ob += bc->sb[d];
                if (++qi[k] < bc->n[d])
                    break;
                oo -= so[d] * bc->n[d];
                oa -= bc->sa[d] * bc->n[d];
                ob -= bc->sb[d] * bc->n[d];
                qi[k] = 0;
            }
        }
        gx[j] += (float)sum;
    }
}

static void binary_backward(avsr_ctx *ctx, void *sv)
{
    struct binary_saved *s = sv;
    const struct bcast *bc = &s->bc;
    if (bc->numel == 0)
        return;
    const float *g = s->y->grad; /* [out] */
    const float *a = avsr_f32(s->a), *b = avsr_f32(s->b);
    for (int which = 0; which < 2; which++) {
        avsr_tensor *x = which ? s->b : s->a;
        if (!avsr_tensor_requires_grad(x))
            continue;
        int64_t xn = x->numel;
        if (xn == bc->numel) {
            /* x does not broadcast: its offsets are the output's. A new
             * gradient is zeroed by each thread over its own range (not by
             * one thread in a separate pass). */
            bool acc;
            float *gx = avsr_tensor_grad_out(ctx, x, &acc); /* [x] */
            if (!gx)
                return;
#pragma omp parallel if (bc->numel > PAR_MIN)
            {
                int64_t lo, hi;
                thread_range(bc->numel, &lo, &hi, NULL, NULL);
                if (!acc && hi > lo)
                    memset(gx + lo, 0, sizeof(float) * (size_t)(hi - lo));
                BC_SEGMENTS(bc, lo, hi,
                            grad_seg_direct(s->op, which, gx + i, g + i, a + offa, sal, b + offb,
                                            sbl, len));
            }
        } else {
            float *gx = avsr_tensor_grad(ctx, x); /* [x] */
            if (!gx)
                return;
            int nt = bc->numel > PAR_MIN ? max_threads() : 1;
            if (nt == 1 || xn * nt * 4 <= bc->numel)
                grad_reduce_private(ctx, s, which, gx, xn);
            else
                grad_reduce_owned(s, which, gx, xn);
        }
    }
}

static avsr_tensor *binary(avsr_ctx *ctx, int op, avsr_tensor *a, avsr_tensor *b,
                           const char *name)
{
    if (!a || !b || avsr_ctx_failed(ctx))
        return NULL;
    if (a->dtype != AVSR_F32 || b->dtype != AVSR_F32)
        return avsr_ctx_fail(ctx, "%s: %s must be f32, got %s", name,
                             a->dtype != AVSR_F32 ? "a" : "b",
                             avsr_dtype_name(a->dtype != AVSR_F32 ? a->dtype : b->dtype));
    struct bcast bc;
    if (bcast_plan(ctx, name, a, b, &bc) < 0)
        return NULL;
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, bc.ndim, bc.shape); /* [broadcast shape] */
    if (!y)
        return NULL;
    float *yd = avsr_f32(y);
    const float *ad = avsr_f32(a), *bd = avsr_f32(b);
    if (bc.numel > 0) {
#pragma omp parallel if (bc.numel > PAR_MIN)
        {
            int64_t lo, hi;
            thread_range(bc.numel, &lo, &hi, NULL, NULL);
            BC_SEGMENTS(&bc, lo, hi, binary_seg(op, yd + i, ad + offa, sal, bd + offb, sbl, len));
        }
    }
    avsr_tensor *in[2] = {a, b};
    if (avsr_ctx_needs_grad(ctx, 2, in)) {
        struct binary_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        s->a = a;
        s->b = b;
        s->y = y;
        s->op = op;
        s->bc = bc;
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, binary_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

avsr_tensor *avsr_op_add(avsr_ctx *ctx, avsr_tensor *a, avsr_tensor *b)
{
    return binary(ctx, AVSR_BIN_ADD, a, b, "add");
}

avsr_tensor *avsr_op_sub(avsr_ctx *ctx, avsr_tensor *a, avsr_tensor *b)
{
    return binary(ctx, AVSR_BIN_SUB, a, b, "sub");
}

avsr_tensor *avsr_op_mul(avsr_ctx *ctx, avsr_tensor *a, avsr_tensor *b)
{
    return binary(ctx, AVSR_BIN_MUL, a, b, "mul");
}

avsr_tensor *avsr_op_div(avsr_ctx *ctx, avsr_tensor *a, avsr_tensor *b)
{
    return binary(ctx, AVSR_BIN_DIV, a, b, "div");
}

/* ---- scale, add_scalar, axpby ----------------------------------------- */

struct lin_saved {
    avsr_tensor *a, *b, *y; /* b NULL for the one-input ops */
    float alpha, beta;      /* dy/da, dy/db */
};

static void lin_backward(avsr_ctx *ctx, void *sv)
{
    struct lin_saved *s = sv;
    const float *g = s->y->grad; /* [y] */
    int64_t n = s->y->numel;
    for (int which = 0; which < 2; which++) {
        avsr_tensor *x = which ? s->b : s->a;
        if (!avsr_tensor_requires_grad(x))
            continue;
        float *gx = avsr_tensor_grad(ctx, x); /* [y] */
        if (!gx)
            return;
        const float w = which ? s->beta : s->alpha;
        if (w == 1.0f) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
            for (int64_t i = 0; i < n; i++)
                gx[i] += g[i];
        } else {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
            for (int64_t i = 0; i < n; i++)
                gx[i] += w * g[i];
        }
    }
}

static avsr_tensor *lin_record(avsr_ctx *ctx, avsr_tensor *a, avsr_tensor *b, avsr_tensor *y,
                               float alpha, float beta)
{
    avsr_tensor *in[2] = {a, b};
    if (avsr_ctx_needs_grad(ctx, 2, in)) {
        struct lin_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct lin_saved){a, b, y, alpha, beta};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, lin_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

/* y = x * mul + add */
static avsr_tensor *affine_scalar(avsr_ctx *ctx, avsr_tensor *x, float mul, float add,
                                  const char *name)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    if (x->dtype != AVSR_F32)
        return avsr_ctx_fail(ctx, "%s: x must be f32, got %s", name, avsr_dtype_name(x->dtype));
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, x->ndim, x->shape); /* [x] */
    if (!y)
        return NULL;
    const float *xd = avsr_f32(x);
    float *yd = avsr_f32(y);
    int64_t n = x->numel;
    if (add == 0.0f) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            yd[i] = xd[i] * mul;
    } else {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            yd[i] = xd[i] + add;
    }
    return lin_record(ctx, x, NULL, y, mul, 0.0f);
}

avsr_tensor *avsr_op_scale(avsr_ctx *ctx, avsr_tensor *x, float s)
{
    return affine_scalar(ctx, x, s, 0.0f, "scale");
}

avsr_tensor *avsr_op_add_scalar(avsr_ctx *ctx, avsr_tensor *x, float s)
{
    if (s == 0.0f)
        return affine_scalar(ctx, x, 1.0f, 0.0f, "add_scalar");
    return affine_scalar(ctx, x, 1.0f, s, "add_scalar");
}

avsr_tensor *avsr_op_axpby(avsr_ctx *ctx, avsr_tensor *a, avsr_tensor *b, float alpha, float beta)
{
    if (!a || !b || avsr_ctx_failed(ctx))
        return NULL;
    if (a->dtype != AVSR_F32 || b->dtype != AVSR_F32)
        return avsr_ctx_fail(ctx, "axpby: %s must be f32, got %s", a->dtype != AVSR_F32 ? "a" : "b",
                             avsr_dtype_name(a->dtype != AVSR_F32 ? a->dtype : b->dtype));
    if (!avsr_shape_equal(a, b)) {
        char s1[96], s2[96];
        return avsr_ctx_fail(ctx, "axpby: a %s and b %s must have the same shape",
                             avsr_shape_str(a, s1, sizeof s1), avsr_shape_str(b, s2, sizeof s2));
    }
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, a->ndim, a->shape); /* [a] */
    if (!y)
        return NULL;
    const float *ad = avsr_f32(a), *bd = avsr_f32(b);
    float *yd = avsr_f32(y);
    int64_t n = a->numel;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        yd[i] = avsr_fn_axpby(ad[i], bd[i], alpha, beta);
    return lin_record(ctx, a, b, y, alpha, beta);
}

/* ---- masked_fill -------------------------------------------------------- */

struct mfill_saved {
    avsr_tensor *x, *y;
    const unsigned char *m; /* [mask] 1 = filled */
    struct bcast bc;        /* a = x, b = mask */
};

static void mfill_seg_bwd(float *gx, const float *g, const unsigned char *m, int64_t sm, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        if (!m[k * sm])
            gx[k] += g[k];
}

static void masked_fill_backward(avsr_ctx *ctx, void *sv)
{
    struct mfill_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x) || s->bc.numel == 0)
        return;
    float *gx = avsr_tensor_grad(ctx, s->x); /* [x] */
    if (!gx)
        return;
    const float *g = s->y->grad; /* [x] */
    const struct bcast *bc = &s->bc;
#pragma omp parallel if (bc->numel > PAR_MIN)
    {
        int64_t lo, hi;
        thread_range(bc->numel, &lo, &hi, NULL, NULL);
        BC_SEGMENTS(bc, lo, hi, mfill_seg_bwd(gx + i, g + i, s->m + offb, sbl, len));
    }
}

static void mfill_seg(float *o, const float *x, const unsigned char *m, int64_t sm, float v,
                      int64_t n)
{
    if (sm) {
        for (int64_t k = 0; k < n; k++)
            o[k] = m[k] ? v : x[k];
    } else if (m[0]) {
        for (int64_t k = 0; k < n; k++)
            o[k] = v;
    } else {
        memcpy(o, x, sizeof(float) * (size_t)n);
    }
}

avsr_tensor *avsr_op_masked_fill(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *mask, float value)
{
    if (!x || !mask || avsr_ctx_failed(ctx))
        return NULL;
    if (x->dtype != AVSR_F32)
        return avsr_ctx_fail(ctx, "masked_fill: x must be f32, got %s", avsr_dtype_name(x->dtype));
    avsr_dtype md = mask->dtype;
    if (md != AVSR_F32 && md != AVSR_U8 && md != AVSR_BOOL && md != AVSR_I32 && md != AVSR_I64)
        return avsr_ctx_fail(ctx, "masked_fill: mask must be f32, u8, bool, i32 or i64, got %s",
                             avsr_dtype_name(md));
    struct bcast bc;
    if (bcast_plan(ctx, "masked_fill", x, mask, &bc) < 0)
        return NULL;
    bool same = bc.ndim == x->ndim;
    for (int d = 0; same && d < x->ndim; d++)
        same = bc.shape[d] == x->shape[d];
    if (!same) {
        char s1[96], s2[96];
        return avsr_ctx_fail(ctx, "masked_fill: mask %s does not broadcast to x %s",
                             avsr_shape_str(mask, s1, sizeof s1), avsr_shape_str(x, s2, sizeof s2));
    }
    int64_t mn = mask->numel;
    unsigned char *m = avsr_ctx_alloc(ctx, (size_t)mn); /* [mask] 0/1 */
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, x->ndim, x->shape); /* [x] */
    if (!m || !y)
        return NULL;
#pragma omp parallel for schedule(static) if (mn > PAR_MIN)
    for (int64_t j = 0; j < mn; j++) {
        switch (md) {
        case AVSR_F32: m[j] = ((const float *)mask->data)[j] != 0.0f; break;
        case AVSR_I32: m[j] = ((const int32_t *)mask->data)[j] != 0; break;
        case AVSR_I64: m[j] = ((const int64_t *)mask->data)[j] != 0; break;
        default: m[j] = ((const unsigned char *)mask->data)[j] != 0; break;
        }
    }
    const float *xd = avsr_f32(x);
    float *yd = avsr_f32(y);
    if (bc.numel > 0) {
#pragma omp parallel if (bc.numel > PAR_MIN)
        {
            int64_t lo, hi;
            thread_range(bc.numel, &lo, &hi, NULL, NULL);
            BC_SEGMENTS(&bc, lo, hi, mfill_seg(yd + i, xd + i, m + offb, sbl, value, len));
        }
    }
    if (avsr_ctx_needs_grad(ctx, 1, &x)) {
        struct mfill_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        s->x = x;
        s->y = y;
        s->m = m;
        s->bc = bc;
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, masked_fill_backward, y, s) < 0)
            return NULL;
    }
    return y;
}
