/* test_op_act: activations (relu, silu, gelu, sigmoid, tanh), PReLU, GLU and
 * dropout: finite-difference gradient checks, golden comparisons against
 * PyTorch (tests/golden/gen_norm.py), dropout's keyed masks and bad-input
 * messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "op_act.h"
#include "rng.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"

/* Tolerances against PyTorch: sigmoid and SiLU use a polynomial exp (<= 2
 * ulp) where PyTorch uses its vectorised exp, gelu and tanh use libm erff /
 * tanhf; outputs are O(1) to O(4), so 2e-6 absolute + 1e-5 relative covers
 * a few ulp on each side. PReLU and GLU are one multiply (GLU plus the
 * sigmoid): same. */
#define ACT_ATOL 2e-6
#define ACT_RTOL 1e-5

static avsr_st *G;

static avsr_tensor *gt(const char *cs, const char *what, bool grad)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", cs, what);
    return tu_golden_tensor(G, name, grad);
}

static void cmp(const char *cs, const char *what, const float *got, const char *ref)
{
    avsr_tensor *r = gt(cs, ref, false);
    char msg[160];
    snprintf(msg, sizeof msg, "%s: %s matches PyTorch", cs, what);
    tu_close(msg, got, avsr_f32(r), r->numel, ACT_ATOL, ACT_RTOL);
    avsr_tensor_free(r);
}

typedef avsr_tensor *(*unary_fn)(avsr_ctx *, avsr_tensor *);

static const struct {
    const char *name;
    unary_fn fn;
} UNARY[] = {
    {"relu", avsr_op_relu}, {"silu", avsr_op_silu}, {"gelu", avsr_op_gelu},
    {"sigmoid", avsr_op_sigmoid}, {"tanh", avsr_op_tanh},
};

static void golden_unary(avsr_ctx *ctx, int k)
{
    char cs[64];
    snprintf(cs, sizeof cs, "act_%s", UNARY[k].name);
    avsr_tensor *x = gt(cs, "x", true), *R = gt(cs, "R", false);
    avsr_tensor *y = UNARY[k].fn(ctx, x);
    if (!y || avsr_backward(ctx, y, avsr_f32(R)) < 0) {
        tap_ok(false, "%s: %s", cs, avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
    } else {
        cmp(cs, "y", avsr_f32(y), "y");
        cmp(cs, "d x", x->grad, "g_x");
    }
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x);
    avsr_tensor_free(R);
}

static avsr_tensor *op_unary(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    return ((unary_fn)user)(ctx, in[0]);
}

/* values in [-3, 3] kept at least 0.1 away from 0 (relu / prelu kink) */
static avsr_tensor *rand_away0(int ndim, const int64_t *shape, uint64_t seed)
{
    avsr_tensor *x = tu_rand(ndim, shape, seed, -3, 3, true);
    for (int64_t i = 0; i < x->numel; i++) {
        float v = avsr_f32(x)[i];
        avsr_f32(x)[i] = v >= 0 ? v + 0.1f : v - 0.1f;
    }
    return x;
}

static void gradcheck_unary(avsr_ctx *ctx)
{
    int64_t s1[3] = {3, 5, 7}, s2[1] = {1}, s3[2] = {1, 33};
    const int64_t *shapes[3] = {s1, s2, s3};
    int nd[3] = {3, 1, 2};
    const char *sn[3] = {"[3,5,7]", "[1]", "[1,33]"};
    for (size_t k = 0; k < sizeof UNARY / sizeof UNARY[0]; k++)
        for (int j = 0; j < 3; j++) {
            avsr_tensor *x = rand_away0(nd[j], shapes[j], 60 + j);
            char n[64];
            snprintf(n, sizeof n, "%s %s", UNARY[k].name, sn[j]);
            /* smooth functions, O(1) second derivative: central
             * differences with step 1e-2 err by ~1e-4 */
            tu_gc_opts o = {1e-2, 2e-3, 1e-2, 48};
            tu_gradcheck(n, ctx, op_unary, (void *)UNARY[k].fn, 1, &x, &o);
            avsr_tensor_free(x);
        }
}

/* ---------------------------------------------------------------- prelu */

static void golden_prelu(avsr_ctx *ctx, const char *cs)
{
    avsr_tensor *x = gt(cs, "x", true), *a = gt(cs, "a", true), *R = gt(cs, "R", false);
    avsr_tensor *y = avsr_op_prelu(ctx, x, a);
    if (!y || avsr_backward(ctx, y, avsr_f32(R)) < 0) {
        tap_ok(false, "%s: %s", cs, avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
    } else {
        cmp(cs, "y", avsr_f32(y), "y");
        cmp(cs, "d x", x->grad, "g_x");
        cmp(cs, "d a", a->grad, "g_a");
    }
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x);
    avsr_tensor_free(a);
    avsr_tensor_free(R);
}

static avsr_tensor *op_prelu(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    (void)user;
    return avsr_op_prelu(ctx, in[0], in[1]);
}

static void gradcheck_prelu(avsr_ctx *ctx, const char *name, int nd, const int64_t *shape, int64_t na)
{
    avsr_tensor *x = rand_away0(nd, shape, 70);
    avsr_tensor *a = tu_rand(1, &na, 71, 0.05f, 0.5f, true);
    avsr_tensor *in[2] = {x, a};
    /* piecewise linear, kinks avoided: the difference quotient is exact up
     * to f32 rounding of the loss */
    tu_gc_opts o = {1e-2, 2e-3, 1e-2, 48};
    tu_gradcheck(name, ctx, op_prelu, NULL, 2, in, &o);
    avsr_tensor_free(x);
    avsr_tensor_free(a);
}

/* ---------------------------------------------------------------- glu */

static void golden_glu(avsr_ctx *ctx, const char *cs, int dim)
{
    avsr_tensor *x = gt(cs, "x", true), *R = gt(cs, "R", false);
    avsr_tensor *y = avsr_op_glu(ctx, x, dim);
    if (!y || avsr_backward(ctx, y, avsr_f32(R)) < 0) {
        tap_ok(false, "%s: %s", cs, avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
    } else {
        cmp(cs, "y", avsr_f32(y), "y");
        cmp(cs, "d x", x->grad, "g_x");
    }
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x);
    avsr_tensor_free(R);
}

static avsr_tensor *op_glu(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    return avsr_op_glu(ctx, in[0], *(int *)user);
}

static void gradcheck_glu(avsr_ctx *ctx, const char *name, int nd, const int64_t *shape, int dim)
{
    avsr_tensor *x = tu_rand(nd, shape, 80, -3, 3, true);
    tu_gc_opts o = {1e-2, 2e-3, 1e-2, 48};
    tu_gradcheck(name, ctx, op_glu, &dim, 1, &x, &o);
    avsr_tensor_free(x);
}

/* ---------------------------------------------------------------- dropout */

static avsr_tensor *op_dropout(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    (void)user;
    return avsr_op_dropout(ctx, in[0], 0.4f, 3);
}

static void test_dropout(avsr_ctx *ctx)
{
    int64_t shape[3] = {3, 50, 100}; /* rows of 5000: crosses a 4096 chunk */
    avsr_tensor *x = tu_rand(3, shape, 90, 0.5f, 1.5f, true);
    int64_t row = 5000;

    /* identity outside training and for p = 0 */
    avsr_ctx_set_training(ctx, false);
    avsr_tensor *y = avsr_op_dropout(ctx, x, 0.5f, 0);
    tap_ok(y == x && avsr_tape_size(ctx) == 0, "dropout: evaluation mode returns x itself");
    avsr_ctx_set_training(ctx, true);
    y = avsr_op_dropout(ctx, x, 0.0f, 0);
    tap_ok(y == x && avsr_tape_size(ctx) == 0, "dropout: p = 0 returns x itself");

    /* kept fraction and scaling */
    uint64_t ids1[3] = {5, 9, 2};
    avsr_ctx_set_batch_keys(ctx, 77, 3, 3, ids1);
    float p = 0.3f;
    y = avsr_op_dropout(ctx, x, p, 7);
    int64_t kept = 0;
    bool scaled = y != NULL;
    for (int64_t i = 0; y && i < x->numel; i++) {
        float v = avsr_f32(y)[i];
        if (v != 0.0f) {
            kept++;
            scaled &= v == avsr_f32(x)[i] * (1.0f / (1.0f - p));
        }
    }
    double frac = (double)kept / (double)x->numel;
    /* 15000 Bernoulli(0.7) draws: standard deviation 0.0037; allow 4 sigma */
    tap_ok(fabs(frac - 0.7) < 0.015, "dropout: kept fraction %.4f ~ 1 - p = 0.7", frac);
    tap_ok(scaled, "dropout: kept values scaled by 1/(1-p), dropped ones are 0");

    /* row b follows the stream of its sample id: compare with the stream */
    bool seq = y != NULL;
    for (int b = 0; seq && b < 3; b++) {
        avsr_rng r;
        avsr_rng_init(&r, 77, 3, ids1[b], AVSR_RNG_LAYER_BASE + 7);
        for (int64_t j = 0; j < row; j++) {
            bool keep = avsr_rng_uniform(&r) >= p;
            if (keep != (avsr_f32(y)[b * row + j] != 0.0f)) {
                seq = false;
                break;
            }
        }
    }
    tap_ok(seq, "dropout: row b's mask is the Philox stream (seed, epoch, sample id, LAYER_BASE + purpose)");

    /* same sample at another batch position: same mask */
    float *first = malloc(sizeof(float) * (size_t)x->numel);
    memcpy(first, y->data, sizeof(float) * (size_t)x->numel);
    avsr_ctx_reset(ctx);
    uint64_t ids2[3] = {2, 11, 5};
    avsr_ctx_set_batch_keys(ctx, 77, 3, 3, ids2);
    avsr_tensor *y2 = avsr_op_dropout(ctx, x, p, 7);
    /* sample 5: row 0 before, row 2 now; sample 2: row 2 before, row 0 now.
     * x differs between rows, so compare the keep pattern */
    bool same = y2 != NULL;
    for (int64_t j = 0; same && j < row; j++) {
        same &= (first[0 * row + j] != 0.0f) == (avsr_f32(y2)[2 * row + j] != 0.0f);
        same &= (first[2 * row + j] != 0.0f) == (avsr_f32(y2)[0 * row + j] != 0.0f);
    }
    tap_ok(same, "dropout: a sample gets the same mask at another batch position");
    int64_t differ = 0;
    for (int64_t j = 0; y2 && j < row; j++)
        differ += (first[1 * row + j] != 0.0f) != (avsr_f32(y2)[1 * row + j] != 0.0f);
    tap_ok(differ > row / 10, "dropout: another sample gets another mask (%lld of %lld differ)",
           (long long)differ, (long long)row);
    /* another purpose (layer) and another epoch: other masks */
    avsr_tensor *y3 = avsr_op_dropout(ctx, x, p, 8);
    int64_t d3 = 0;
    for (int64_t j = 0; y3 && j < row; j++)
        d3 += (avsr_f32(y3)[j] != 0.0f) != (avsr_f32(y2)[j] != 0.0f);
    tap_ok(d3 > row / 10, "dropout: another purpose gives another mask");
    avsr_ctx_set_batch_keys(ctx, 77, 4, 3, ids2);
    avsr_tensor *y4 = avsr_op_dropout(ctx, x, p, 7);
    int64_t d4 = 0;
    for (int64_t j = 0; y4 && j < row; j++)
        d4 += (avsr_f32(y4)[j] != 0.0f) != (avsr_f32(y2)[j] != 0.0f);
    tap_ok(d4 > row / 10, "dropout: another epoch gives another mask");
    free(first);
    avsr_ctx_reset(ctx);

    /* backward uses the forward's mask: d x = keep * gy / (1 - p) */
    avsr_ctx_set_batch_keys(ctx, 77, 3, 3, ids1);
    memset(x->grad, 0, sizeof(float) * (size_t)x->numel);
    y = avsr_op_dropout(ctx, x, p, 7);
    avsr_tensor *R = tu_rand(3, shape, 91, -1, 1, false);
    bool gok = y && avsr_backward(ctx, y, avsr_f32(R)) == 0;
    for (int64_t i = 0; gok && i < x->numel; i++) {
        float want = avsr_f32(y)[i] != 0.0f ? avsr_f32(R)[i] * (1.0f / (1.0f - p)) : 0.0f;
        gok = x->grad[i] == want;
    }
    tap_ok(gok, "dropout: backward applies the same mask and scale");
    avsr_ctx_reset(ctx);

    /* finite differences with fixed keys (the mask is a function of the keys) */
    int64_t sg[2] = {2, 9};
    avsr_tensor *xg = tu_rand(2, sg, 92, -1, 1, true);
    tu_gradcheck("dropout p 0.4 [2,9]", ctx, op_dropout, NULL, 1, &xg, NULL);
    int64_t s1[1] = {1};
    avsr_tensor *x1 = tu_rand(1, s1, 93, -1, 1, true);
    tu_gradcheck("dropout p 0.4 [1]", ctx, op_dropout, NULL, 1, &x1, NULL);

    /* p = 1: everything dropped */
    y = avsr_op_dropout(ctx, x, 1.0f, 7);
    bool zero = y != NULL;
    for (int64_t i = 0; zero && i < x->numel; i++)
        zero = avsr_f32(y)[i] == 0.0f;
    tap_ok(zero, "dropout: p = 1 gives zeros");
    /* bad p */
    y = avsr_op_dropout(ctx, x, 1.5f, 7);
    tap_ok(!y && strstr(avsr_ctx_errmsg(ctx), "dropout: p = 1.5, expected 0 <= p <= 1"),
           "bad input: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
    avsr_ctx_set_batch_keys(ctx, 0, 0, 0, NULL);
    avsr_tensor_free(x);
    avsr_tensor_free(R);
    avsr_tensor_free(xg);
    avsr_tensor_free(x1);
}

static void test_bad(avsr_ctx *ctx)
{
    int64_t s[3] = {2, 3, 5}, sa[1] = {4}, si[1] = {3};
    avsr_tensor *x = tu_rand(3, s, 1, -1, 1, false), *a = tu_rand(1, sa, 1, 0, 1, false);
    avsr_tensor *xi = avsr_tensor_create(AVSR_I32, 1, si, false);
    avsr_tensor *r = avsr_op_prelu(ctx, x, a);
    tap_ok(!r && strstr(avsr_ctx_errmsg(ctx), "prelu: a: got [4] for x [2, 3, 5], expected [1] or [C] with C = x.shape[1]"),
           "bad input: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    r = avsr_op_glu(ctx, x, 1);
    tap_ok(!r && strstr(avsr_ctx_errmsg(ctx), "glu: x: size 3 of dim 1 is odd in [2, 3, 5], expected even"),
           "bad input: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    r = avsr_op_glu(ctx, x, 3);
    tap_ok(!r && strstr(avsr_ctx_errmsg(ctx), "glu: dim 3 out of range for x [2, 3, 5]"),
           "bad input: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    r = avsr_op_relu(ctx, xi);
    tap_ok(!r && strstr(avsr_ctx_errmsg(ctx), "relu: x: expects f32, got I32"), "bad input: %s",
           avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    r = avsr_op_gelu(ctx, NULL);
    tap_ok(!r && !avsr_ctx_failed(ctx), "gelu: NULL input returns NULL without a message");
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x);
    avsr_tensor_free(a);
    avsr_tensor_free(xi);
}

int main(void)
{
    avsr_ctx *ctx = tu_ctx();
    G = tu_golden_open("norm");
    for (size_t k = 0; k < sizeof UNARY / sizeof UNARY[0]; k++)
        golden_unary(ctx, (int)k);
    gradcheck_unary(ctx);

    golden_prelu(ctx, "prelu");
    golden_prelu(ctx, "prelu_one");
    golden_prelu(ctx, "prelu_4d");
    int64_t p1[3] = {2, 5, 9}, p2[2] = {4, 7}, p3[3] = {1, 3, 1};
    gradcheck_prelu(ctx, "prelu a [C] [2,5,9]", 3, p1, 5);
    gradcheck_prelu(ctx, "prelu a [1] [4,7]", 2, p2, 1);
    gradcheck_prelu(ctx, "prelu batch 1 length 1 [1,3,1]", 3, p3, 3);

    golden_glu(ctx, "glu_c", 1);
    golden_glu(ctx, "glu_last", -1);
    golden_glu(ctx, "glu_len1", 1);
    int64_t g1[3] = {3, 10, 7}, g2[3] = {1, 2, 1}, g3[2] = {5, 6}, g4[2] = {4, 3};
    gradcheck_glu(ctx, "glu dim 1 [3,10,7]", 3, g1, 1);
    gradcheck_glu(ctx, "glu batch 1 length 1 [1,2,1]", 3, g2, 1);
    gradcheck_glu(ctx, "glu dim -1 [5,6]", 2, g3, -1);
    gradcheck_glu(ctx, "glu dim 0 [4,3]", 2, g4, 0);

    test_dropout(ctx);
    test_bad(ctx);
    avsr_st_close(G);
    avsr_ctx_destroy(ctx);
    return tap_done();
}
