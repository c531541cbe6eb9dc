/* test_op_loss: L1, cross-entropy (torch and ESPnet label smoothing) and CTC
 * losses: finite-difference gradient checks, golden comparisons against
 * PyTorch (tests/golden/gen_loss.py), bad-input messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "loss_fn.h"
#include "op_basic.h"
#include "op_loss.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"

/* Golden tolerances (|got - want| <= atol + rtol |want|):
 * - L1 and cross-entropy: both sides compute in f32; our exp is within
 *   2 ulp of expf and sums are accumulated in double, torch's in f32, so
 *   losses agree to ~1e-6 relative and gradients to a few ulp of the
 *   softmax (atol 1e-6 on values of order 1e-1).
 * - CTC: the log-space recursions accumulate one rounding per frame and
 *   state in f32 on both sides, in a different order (torch keeps
 *   log_softmax as a separate op), so the loss (order 10-100) agrees to
 *   ~1e-6 relative and the occupancies, exp(alpha + beta + nll) with
 *   arguments of magnitude up to ~100, to ~1e-5 absolute. */
#define L1_ATOL 1e-6
#define L1_RTOL 1e-5
#define CE_LOSS_ATOL 1e-5
#define CE_LOSS_RTOL 1e-5
#define CE_GRAD_ATOL 2e-6
#define CE_GRAD_RTOL 1e-4
#define CTC_LOSS_ATOL 1e-4
#define CTC_LOSS_RTOL 2e-5
#define CTC_GRAD_ATOL 2e-5
#define CTC_GRAD_RTOL 1e-3

static int64_t *golden_i64(avsr_st *st, const char *name, int64_t *n)
{
    avsr_st_tensor t;
    if (avsr_st_find(st, name, &t) < 0)
        tap_bail("golden fixture has no tensor '%s'", name);
    if (t.dtype != AVSR_I64)
        tap_bail("golden tensor '%s' is not I64", name);
    int64_t k = 1;
    for (int i = 0; i < t.ndim; i++)
        k *= t.shape[i];
    int64_t *v = malloc(sizeof(int64_t) * (size_t)(k ? k : 1));
    memcpy(v, t.data, sizeof(int64_t) * (size_t)k);
    if (n)
        *n = k;
    return v;
}

static avsr_tensor *gt(avsr_st *st, const char *c, const char *what, bool grad)
{
    char n[128];
    snprintf(n, sizeof n, "%s.%s", c, what);
    return tu_golden_tensor(st, n, grad);
}

static int64_t *gi(avsr_st *st, const char *c, const char *what, int64_t *k)
{
    char n[128];
    snprintf(n, sizeof n, "%s.%s", c, what);
    return golden_i64(st, n, k);
}

/* backward from out: scalar -> seed 1, otherwise the stored R */
static int run_backward(avsr_ctx *ctx, avsr_tensor *out, avsr_tensor *R)
{
    if (!out)
        return -1;
    return avsr_backward(ctx, out, R ? avsr_f32(R) : NULL);
}

/* ------------------------------------------------------------------ */
/* golden                                                               */
/* ------------------------------------------------------------------ */

static void golden_l1(avsr_ctx *ctx, avsr_st *st, const char *c)
{
    int64_t *p = gi(st, c, "params", NULL);
    avsr_loss_reduction red = (avsr_loss_reduction)p[0];
    bool tg = p[2] != 0;
    avsr_tensor *x = gt(st, c, "x", true), *t = gt(st, c, "t", tg);
    avsr_tensor *m = p[1] ? gt(st, c, "mask", false) : NULL;
    avsr_tensor *R = red == AVSR_LOSS_NONE ? gt(st, c, "R", false) : NULL;
    avsr_tensor *want = gt(st, c, "out", false), *gx = gt(st, c, "gx", false);
    avsr_tensor *out = avsr_op_l1_loss(ctx, x, t, m, red);
    char what[160];
    if (run_backward(ctx, out, R) < 0) {
        tap_ok(false, "golden %s: %s", c, avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
    } else {
        snprintf(what, sizeof what, "golden %s: loss", c);
        tu_close(what, avsr_f32(out), avsr_f32(want), want->numel, L1_ATOL, L1_RTOL);
        snprintf(what, sizeof what, "golden %s: d/dx", c);
        tu_close(what, x->grad, avsr_f32(gx), gx->numel, L1_ATOL, L1_RTOL);
        if (tg) {
            avsr_tensor *gtt = gt(st, c, "gt", false);
            snprintf(what, sizeof what, "golden %s: d/dtarget", c);
            tu_close(what, t->grad, avsr_f32(gtt), gtt->numel, L1_ATOL, L1_RTOL);
            avsr_tensor_free(gtt);
        }
    }
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x);
    avsr_tensor_free(t);
    avsr_tensor_free(m);
    avsr_tensor_free(R);
    avsr_tensor_free(want);
    avsr_tensor_free(gx);
    free(p);
}

static avsr_tensor *i64_tensor(const int64_t *v, int64_t n)
{
    avsr_tensor *t = avsr_tensor_create(AVSR_I64, 1, &n, false);
    memcpy(t->data, v, sizeof(int64_t) * (size_t)n);
    return t;
}

static void golden_ce(avsr_ctx *ctx, avsr_st *st, const char *c, bool as_i32)
{
    int64_t *p = gi(st, c, "params", NULL);
    int64_t n;
    int64_t *tv = gi(st, c, "targets", &n);
    avsr_tensor *ls = gt(st, c, "ls", false);
    avsr_loss_reduction red = (avsr_loss_reduction)p[0];
    avsr_tensor *x = gt(st, c, "logits", true);
    avsr_tensor *tg;
    if (as_i32) {
        tg = avsr_tensor_create(AVSR_I32, 1, &n, false);
        for (int64_t i = 0; i < n; i++)
            ((int32_t *)tg->data)[i] = (int32_t)tv[i];
    } else {
        tg = i64_tensor(tv, n);
    }
    avsr_tensor *R = red == AVSR_LOSS_NONE ? gt(st, c, "R", false) : NULL;
    avsr_tensor *want = gt(st, c, "out", false), *gx = gt(st, c, "gx", false);
    avsr_tensor *out = avsr_op_cross_entropy(ctx, x, tg, p[1], avsr_f32(ls)[0],
                                             (avsr_ls_mode)p[2], red, p[3]);
    char what[160];
    if (run_backward(ctx, out, R) < 0) {
        tap_ok(false, "golden %s: %s", c, avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
    } else {
        snprintf(what, sizeof what, "golden %s%s: loss", c, as_i32 ? " (I32 targets)" : "");
        tu_close(what, avsr_f32(out), avsr_f32(want), want->numel, CE_LOSS_ATOL, CE_LOSS_RTOL);
        snprintf(what, sizeof what, "golden %s%s: d/dlogits", c, as_i32 ? " (I32 targets)" : "");
        tu_close(what, x->grad, avsr_f32(gx), gx->numel, CE_GRAD_ATOL, CE_GRAD_RTOL);
    }
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x);
    avsr_tensor_free(tg);
    avsr_tensor_free(ls);
    avsr_tensor_free(R);
    avsr_tensor_free(want);
    avsr_tensor_free(gx);
    free(p);
    free(tv);
}

static void golden_ctc(avsr_ctx *ctx, avsr_st *st, const char *c)
{
    int64_t *p = gi(st, c, "params", NULL);
    avsr_loss_reduction red = (avsr_loss_reduction)p[0];
    int blank = (int)p[1];
    bool zi = p[2] != 0;
    int64_t *tg = gi(st, c, "targets", NULL);
    int64_t *il = gi(st, c, "input_lengths", NULL);
    int64_t *tl = gi(st, c, "target_lengths", NULL);
    avsr_tensor *x = gt(st, c, "logits", true);
    avsr_tensor *R = red == AVSR_LOSS_NONE ? gt(st, c, "R", false) : NULL;
    avsr_tensor *want = gt(st, c, "out", false), *gx = gt(st, c, "gx", false);
    avsr_tensor *out = avsr_op_ctc_loss(ctx, x, il, tg, tl, blank, red, zi);
    char what[160];
    if (run_backward(ctx, out, R) < 0) {
        tap_ok(false, "golden %s: %s", c, avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
    } else {
        snprintf(what, sizeof what, "golden %s: loss", c);
        tu_close(what, avsr_f32(out), avsr_f32(want), want->numel, CTC_LOSS_ATOL, CTC_LOSS_RTOL);
        snprintf(what, sizeof what, "golden %s: d/dlogits", c);
        tu_close(what, x->grad, avsr_f32(gx), gx->numel, CTC_GRAD_ATOL, CTC_GRAD_RTOL);
    }
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x);
    avsr_tensor_free(R);
    avsr_tensor_free(want);
    avsr_tensor_free(gx);
    free(p);
    free(tg);
    free(il);
    free(tl);
}

static void test_golden(avsr_ctx *ctx)
{
    avsr_st *st = tu_golden_open("loss");
    static const char *l1[] = {"l1_mean", "l1_sum", "l1_mask_mean", "l1_mask_sum",
                               "l1_mask_none", "l1_b1"};
    static const char *ce[] = {"ce_mean", "ce_ls_mean", "ce_ls_sum", "ce_ls_none", "ce_n1",
                               "ce_espnet_batch", "ce_espnet_len", "ce_espnet_b1"};
    static const char *ctc[] = {"ctc_mixed_mean", "ctc_mixed_sum", "ctc_mixed_none",
                                "ctc_imp_zi_mean", "ctc_imp_zi_sum", "ctc_imp_inf_none",
                                "ctc_imp_inf_sum", "ctc_t1", "ctc_blank_last",
                                "ctc_b1_blank_mid", "ctc_rand"};
    for (size_t i = 0; i < sizeof l1 / sizeof *l1; i++)
        golden_l1(ctx, st, l1[i]);
    for (size_t i = 0; i < sizeof ce / sizeof *ce; i++)
        golden_ce(ctx, st, ce[i], false);
    golden_ce(ctx, st, "ce_ls_mean", true);
    for (size_t i = 0; i < sizeof ctc / sizeof *ctc; i++)
        golden_ctc(ctx, st, ctc[i]);

    /* impossible alignments give +inf (zero_infinity off) / 0 (on) */
    {
        int64_t *tg = gi(st, "ctc_imp_inf_none", "targets", NULL);
        int64_t *il = gi(st, "ctc_imp_inf_none", "input_lengths", NULL);
        int64_t *tl = gi(st, "ctc_imp_inf_none", "target_lengths", NULL);
        avsr_tensor *x = gt(st, "ctc_imp_inf_none", "logits", false);
        avsr_tensor *a = avsr_op_ctc_loss(ctx, x, il, tg, tl, 0, AVSR_LOSS_NONE, false);
        avsr_tensor *b = avsr_op_ctc_loss(ctx, x, il, tg, tl, 0, AVSR_LOSS_NONE, true);
        const float *av = a ? avsr_f32(a) : NULL, *bv = b ? avsr_f32(b) : NULL;
        tap_ok(av && bv && isinf(av[0]) && av[0] > 0 && isinf(av[1]) && isfinite(av[2]) &&
                   isfinite(av[3]) && bv[0] == 0.0f && bv[1] == 0.0f && bv[2] == av[2],
               "ctc: too many labels and unfittable repeats give +inf, 0 with zero_infinity");
        avsr_ctx_reset(ctx);
        avsr_tensor_free(x);
        free(tg);
        free(il);
        free(tl);
    }
    avsr_st_close(st);
}

/* ------------------------------------------------------------------ */
/* gradient checks                                                      */
/* ------------------------------------------------------------------ */

struct l1_args {
    avsr_tensor *mask;
    avsr_loss_reduction red;
};

static avsr_tensor *op_l1(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    struct l1_args *a = user;
    return avsr_op_l1_loss(ctx, in[0], in[1], a->mask, a->red);
}

static void gradcheck_l1(avsr_ctx *ctx)
{
    int64_t shape[3] = {2, 5, 3};
    avsr_tensor *x = tu_rand(3, shape, 11, -1, 1, true);
    avsr_tensor *t = tu_rand(3, shape, 12, 0.1f, 0.6f, true);
    /* keep |x - t| >= 0.1, away from the kink at 0 */
    for (int64_t i = 0; i < x->numel; i++)
        avsr_f32(t)[i] = avsr_f32(x)[i] + ((i & 1) ? avsr_f32(t)[i] : -avsr_f32(t)[i]);
    int64_t ms[2] = {5, 1};
    avsr_tensor *m = avsr_tensor_create(AVSR_U8, 2, ms, false);
    unsigned char mv[5] = {1, 0, 1, 1, 0};
    memcpy(m->data, mv, 5);
    avsr_tensor *in[2] = {x, t};
    tu_gc_opts o = {.eps = 1e-2, .atol = 1e-3, .rtol = 1e-2, .max_elems = 30};
    struct l1_args a1 = {NULL, AVSR_LOSS_MEAN}, a2 = {m, AVSR_LOSS_SUM}, a3 = {m, AVSR_LOSS_NONE};
    tu_gradcheck("l1_loss mean", ctx, op_l1, &a1, 2, in, &o);
    tu_gradcheck("l1_loss sum, u8 mask [5, 1]", ctx, op_l1, &a2, 2, in, &o);
    tu_gradcheck("l1_loss none, u8 mask", ctx, op_l1, &a3, 2, in, &o);
    avsr_tensor_free(x);
    avsr_tensor_free(t);
    avsr_tensor_free(m);
}

struct ce_args {
    avsr_tensor *tg;
    int64_t ignore;
    float ls;
    avsr_ls_mode mode;
    avsr_loss_reduction red;
    int64_t denom;
};

static avsr_tensor *op_ce(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    struct ce_args *a = user;
    return avsr_op_cross_entropy(ctx, in[0], a->tg, a->ignore, a->ls, a->mode, a->red, a->denom);
}

static void gradcheck_ce(avsr_ctx *ctx)
{
    int64_t shape[2] = {5, 7};
    avsr_tensor *x = tu_rand(2, shape, 21, -2, 2, true);
    int64_t tv[5] = {3, -1, 0, 6, 2};
    avsr_tensor *tg = i64_tensor(tv, 5);
    avsr_tensor *in[1] = {x};
    tu_gc_opts o = {.eps = 1e-2, .atol = 5e-4, .rtol = 1e-2, .max_elems = 35};
    struct ce_args a1 = {tg, -1, 0.0f, AVSR_LS_TORCH, AVSR_LOSS_MEAN, 0};
    struct ce_args a2 = {tg, -1, 0.2f, AVSR_LS_TORCH, AVSR_LOSS_NONE, 0};
    struct ce_args a3 = {tg, -1, 0.1f, AVSR_LS_ESPNET, AVSR_LOSS_MEAN, 2};
    struct ce_args a4 = {tg, -1, 0.3f, AVSR_LS_ESPNET, AVSR_LOSS_SUM, 0};
    tu_gradcheck("cross_entropy mean, ignored row", ctx, op_ce, &a1, 1, in, &o);
    tu_gradcheck("cross_entropy torch smoothing 0.2, none", ctx, op_ce, &a2, 1, in, &o);
    tu_gradcheck("cross_entropy ESPnet smoothing 0.1, denom 2", ctx, op_ce, &a3, 1, in, &o);
    tu_gradcheck("cross_entropy ESPnet smoothing 0.3, sum", ctx, op_ce, &a4, 1, in, &o);
    /* batch 1, V 1 */
    int64_t s1[2] = {1, 1};
    avsr_tensor *x1 = tu_rand(2, s1, 22, -2, 2, true);
    int64_t z = 0;
    avsr_tensor *tg1 = i64_tensor(&z, 1);
    avsr_tensor *in1[1] = {x1};
    struct ce_args a5 = {tg1, -100, 0.1f, AVSR_LS_TORCH, AVSR_LOSS_MEAN, 0};
    tu_gradcheck("cross_entropy N=1 V=1", ctx, op_ce, &a5, 1, in1, &o);
    avsr_tensor_free(x);
    avsr_tensor_free(tg);
    avsr_tensor_free(x1);
    avsr_tensor_free(tg1);
}

struct ctc_args {
    const int64_t *il, *tg, *tl;
    int blank;
    avsr_loss_reduction red;
};

static avsr_tensor *op_ctc(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    struct ctc_args *a = user;
    return avsr_op_ctc_loss(ctx, in[0], a->il, a->tg, a->tl, a->blank, a->red, false);
}

static void gradcheck_ctc(avsr_ctx *ctx)
{
    /* Small C and T so every logit is checked. The check is meaningful only
     * if the gradient is large against the tolerance: logits of scale 2
     * give gradients of order 0.1-1, the tolerance is 2e-3 + 1e-2 |g|, and
     * a central difference with eps 5e-3 on an f32 loss of order 10 has
     * rounding error ~1e-6 * 10 / 1e-2 = 1e-3 at worst. Reduction none
     * weights each utterance by a different random R, so a mix-up between
     * utterances would show. */
    int64_t shape[3] = {3, 5, 4};
    avsr_tensor *x = tu_rand(3, shape, 31, -2, 2, true);
    int64_t il[3] = {5, 4, 1}, tl[3] = {3, 2, 0}, tg[5] = {1, 1, 3, 2, 3};
    avsr_tensor *in[1] = {x};
    tu_gc_opts o = {.eps = 5e-3, .atol = 2e-3, .rtol = 1e-2, .max_elems = 60};
    struct ctc_args a1 = {il, tg, tl, 0, AVSR_LOSS_SUM};
    struct ctc_args a2 = {il, tg, tl, 0, AVSR_LOSS_NONE};
    struct ctc_args a3 = {il, tg, tl, 0, AVSR_LOSS_MEAN};
    tu_gradcheck("ctc_loss sum, repeats, lengths 5/4/1", ctx, op_ctc, &a1, 1, in, &o);
    tu_gradcheck("ctc_loss none", ctx, op_ctc, &a2, 1, in, &o);
    tu_gradcheck("ctc_loss mean", ctx, op_ctc, &a3, 1, in, &o);
    /* the gradient is not trivially small, each used frame sums to 0 (softmax
     * and occupancy are both distributions), unused frames get exactly 0 */
    memset(x->grad, 0, sizeof(float) * (size_t)x->numel);
    avsr_tensor *L = op_ctc(ctx, in, &a1);
    avsr_backward(ctx, L, NULL);
    float gmax = 0.0f, worst_sum = 0.0f;
    bool unused_zero = true;
    for (int b = 0; b < 3; b++)
        for (int t = 0; t < 5; t++) {
            float s = 0.0f;
            for (int c = 0; c < 4; c++) {
                float v = x->grad[(b * 5 + t) * 4 + c];
                s += v;
                gmax = fmaxf(gmax, fabsf(v));
                if (t >= il[b] && v != 0.0f)
                    unused_zero = false;
            }
            worst_sum = fmaxf(worst_sum, fabsf(s));
        }
    tap_ok(gmax > 0.2f, "ctc_loss: largest gradient %.3f is far above the check's tolerance",
           (double)gmax);
    tap_ok(worst_sum < 1e-5f, "ctc_loss: each frame's gradient sums to 0 (worst %.2g)",
           (double)worst_sum);
    tap_ok(unused_zero, "ctc_loss: frames beyond input_lengths get zero gradient");
    avsr_ctx_reset(ctx);

    /* T = 1, blank last */
    int64_t s2[3] = {2, 1, 5};
    avsr_tensor *x2 = tu_rand(3, s2, 32, -2, 2, true);
    int64_t il2[2] = {1, 1}, tl2[2] = {1, 0}, tg2[1] = {2};
    avsr_tensor *in2[1] = {x2};
    struct ctc_args a4 = {il2, tg2, tl2, 4, AVSR_LOSS_NONE};
    tu_gradcheck("ctc_loss T=1, blank last", ctx, op_ctc, &a4, 1, in2, &o);

    /* gradients accumulate: a second backward adds the same amount again */
    memset(x->grad, 0, sizeof(float) * (size_t)x->numel);
    L = op_ctc(ctx, in, &a2);
    float r3[3] = {1.0f, -0.5f, 2.0f};
    avsr_backward(ctx, L, r3);
    avsr_ctx_reset(ctx);
    float *once = malloc(sizeof(float) * (size_t)x->numel);
    for (int64_t i = 0; i < x->numel; i++)
        once[i] = 2.0f * x->grad[i];
    L = op_ctc(ctx, in, &a2);
    avsr_backward(ctx, L, r3);
    avsr_ctx_reset(ctx);
    tu_close("ctc_loss: gradients accumulate (+=)", x->grad, once, x->numel, 1e-6, 1e-6);
    free(once);
    avsr_tensor_free(x);
    avsr_tensor_free(x2);
}

/* ------------------------------------------------------------------ */
/* edge cases and bad input                                             */
/* ------------------------------------------------------------------ */

static void expect_fail(avsr_ctx *ctx, avsr_tensor *r, const char *msg, const char *what)
{
    bool ok = r == NULL && avsr_ctx_failed(ctx) && strstr(avsr_ctx_errmsg(ctx), msg);
    tap_ok(ok, "%s: %s", what, avsr_ctx_errmsg(ctx));
    if (!ok)
        tap_diag("  expected a message containing '%s'", msg);
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
}

static void test_edges(avsr_ctx *ctx)
{
    /* cross-entropy with every row ignored: mean is NaN (torch), gradient 0 */
    int64_t shape[2] = {3, 4};
    avsr_tensor *x = tu_rand(2, shape, 41, -1, 1, true);
    int64_t tv[3] = {-100, -100, -100};
    avsr_tensor *tg = i64_tensor(tv, 3);
    avsr_tensor *L = avsr_op_cross_entropy(ctx, x, tg, -100, 0.1f, AVSR_LS_TORCH,
                                           AVSR_LOSS_MEAN, 0);
    bool ok = L && isnan(avsr_f32(L)[0]) && avsr_backward(ctx, L, NULL) == 0;
    for (int i = 0; ok && i < 12; i++)
        ok = x->grad[i] == 0.0f;
    tap_ok(ok, "cross_entropy: all rows ignored gives NaN mean and zero gradient");
    avsr_ctx_reset(ctx);

    /* L1 mask counting: mean over the counted elements only */
    int64_t s1[2] = {2, 2};
    avsr_tensor *a = avsr_tensor_create(AVSR_F32, 2, s1, false);
    avsr_tensor *b = avsr_tensor_create(AVSR_F32, 2, s1, false);
    float av[4] = {1, 2, 3, 4}, bv[4] = {0, 0, 0, 10};
    memcpy(a->data, av, sizeof av);
    memcpy(b->data, bv, sizeof bv);
    int64_t s2[1] = {2};
    avsr_tensor *m = avsr_tensor_create(AVSR_F32, 1, s2, false);
    float mv[2] = {1, 0};
    memcpy(m->data, mv, sizeof mv);
    L = avsr_op_l1_loss(ctx, a, b, m, AVSR_LOSS_MEAN);
    tap_ok(L && avsr_f32(L)[0] == 2.0f, "l1_loss: mask [2] over [2, 2] averages 2 counted elements");
    avsr_ctx_reset(ctx);

    /* bad input */
    int64_t s3[2] = {2, 3};
    avsr_tensor *c = avsr_tensor_create(AVSR_F32, 2, s3, false);
    expect_fail(ctx, avsr_op_l1_loss(ctx, a, c, NULL, AVSR_LOSS_MEAN),
                "l1_loss: target [2, 3] does not match x [2, 2]", "l1_loss shape mismatch");
    int64_t s4[1] = {3};
    avsr_tensor *m3 = avsr_tensor_create(AVSR_F32, 1, s4, false);
    expect_fail(ctx, avsr_op_l1_loss(ctx, a, b, m3, AVSR_LOSS_MEAN),
                "l1_loss: mask [3] is not broadcastable to x [2, 2]", "l1_loss bad mask");
    int64_t tv2[3] = {1, 9, -100};
    avsr_tensor *tg2 = i64_tensor(tv2, 3);
    expect_fail(ctx, avsr_op_cross_entropy(ctx, x, tg2, -100, 0.0f, AVSR_LS_TORCH, AVSR_LOSS_MEAN, 0),
                "cross_entropy: target of row 1 is 9, outside [0, 4)", "cross_entropy target range");
    expect_fail(ctx, avsr_op_cross_entropy(ctx, x, tg2, 9, 1.5f, AVSR_LS_TORCH, AVSR_LOSS_MEAN, 0),
                "cross_entropy: label_smoothing 1.5 outside [0, 1)", "cross_entropy smoothing");
    avsr_tensor *tg3 = i64_tensor(tv2, 2);
    expect_fail(ctx, avsr_op_cross_entropy(ctx, x, tg3, -100, 0.0f, AVSR_LS_TORCH, AVSR_LOSS_MEAN, 0),
                "cross_entropy: targets [2] do not match logits [3, 4]", "cross_entropy targets shape");

    int64_t s5[3] = {2, 4, 5};
    avsr_tensor *y = tu_rand(3, s5, 42, -1, 1, false);
    int64_t il[2] = {4, 5}, il_ok[2] = {4, 3}, tl[2] = {2, 1}, tl_bad[2] = {2, -1};
    int64_t lab[3] = {1, 2, 3}, lab_blank[3] = {1, 0, 3}, lab_range[3] = {1, 2, 7};
    expect_fail(ctx, avsr_op_ctc_loss(ctx, y, il, lab, tl, 0, AVSR_LOSS_MEAN, false),
                "ctc_loss: input_lengths[1] = 5 outside [0, 4] (T of logits [2, 4, 5])",
                "ctc_loss input length beyond T");
    expect_fail(ctx, avsr_op_ctc_loss(ctx, y, il_ok, lab, tl_bad, 0, AVSR_LOSS_MEAN, false),
                "ctc_loss: target_lengths[1] = -1 is negative", "ctc_loss negative target length");
    expect_fail(ctx, avsr_op_ctc_loss(ctx, y, il_ok, lab_blank, tl, 0, AVSR_LOSS_MEAN, false),
                "ctc_loss: target 1 of utterance 0 is the blank label 0", "ctc_loss blank in targets");
    expect_fail(ctx, avsr_op_ctc_loss(ctx, y, il_ok, lab_range, tl, 0, AVSR_LOSS_MEAN, false),
                "ctc_loss: target 0 of utterance 1 is 7, outside [0, 5)", "ctc_loss label range");
    expect_fail(ctx, avsr_op_ctc_loss(ctx, y, il_ok, lab, tl, 5, AVSR_LOSS_MEAN, false),
                "ctc_loss: blank 5 outside [0, 5)", "ctc_loss blank range");
    expect_fail(ctx, avsr_op_ctc_loss(ctx, x, il_ok, lab, tl, 0, AVSR_LOSS_MEAN, false),
                "ctc_loss: logits must be f32 [B, T, C], got F32 [3, 4]", "ctc_loss logits rank");
    avsr_tensor_free(x);
    avsr_tensor_free(tg);
    avsr_tensor_free(a);
    avsr_tensor_free(b);
    avsr_tensor_free(c);
    avsr_tensor_free(m);
    avsr_tensor_free(m3);
    avsr_tensor_free(tg2);
    avsr_tensor_free(tg3);
    avsr_tensor_free(y);
}

/* the branch-free exp / log of loss_fn.h against double-precision libm */
static void test_fn(void)
{
    double worst_e = 0.0, worst_l = 0.0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.3f + 97.3f * (float)i / 200000.0f;
        double want = exp((double)x);
        worst_e = fmax(worst_e, fabs(avsr_lfn_exp(x) - want) / want);
        float v = 1.0f + 2.0f * (float)i / 200000.0f;
        double lw = log((double)v);
        worst_l = fmax(worst_l, fabs(avsr_lfn_log13(v) - lw) / fmax(lw, 1e-30));
    }
    tap_ok(worst_e < 3.6e-7, "loss_fn: exp on [-87.3, 10] within 3 ulp (worst rel %.2g)", worst_e);
    tap_ok(worst_l < 3.6e-7 || worst_l == 0.0,
           "loss_fn: log on [1, 3] within 3 ulp (worst rel %.2g)", worst_l);
    tap_ok(avsr_lfn_exp(0.0f) == 1.0f && avsr_lfn_exp(-INFINITY) == 0.0f &&
               avsr_lfn_exp(-100.0f) == 0.0f && isnan(avsr_lfn_exp(NAN)),
           "loss_fn: exp(0) = 1, exp(-inf) = exp(-100) = 0, exp(NaN) = NaN");
    float l3 = avsr_lfn_lse3(-INFINITY, -INFINITY, -INFINITY);
    float l3b = avsr_lfn_lse3(-INFINITY, -3.0f, -INFINITY);
    float l3c = avsr_lfn_lse3(-1000.0f, -1000.0f, -1000.0f);
    tap_ok(l3 == -INFINITY && l3b == -3.0f && fabsf(l3c - (-1000.0f + logf(3.0f))) < 1e-4f,
           "loss_fn: lse3 of -inf, of one finite value, of three equal large negatives");
}

int main(void)
{
    avsr_ctx *ctx = tu_ctx();
    test_fn();
    test_golden(ctx);
    gradcheck_l1(ctx);
    gradcheck_ce(ctx);
    gradcheck_ctc(ctx);
    test_edges(ctx);
    avsr_ctx_destroy(ctx);
    return tap_done();
}
