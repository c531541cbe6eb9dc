/* test_op_norm: batch norm (training, masked, evaluation, synchronised
 * across two simulated ranks), layer norm, softmax and log-softmax:
 * finite-difference gradient checks, golden comparisons against PyTorch
 * (tests/golden/gen_norm.py) and bad-input messages. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "op_norm.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"

/* Tolerances against PyTorch (f32 on both sides, different summation
 * orders): batch norm and layer norm outputs are O(1) after normalisation
 * and the statistics are summed in double here and in f32 blocks in
 * PyTorch, so 1e-5 absolute / 1e-4 relative covers the rounding of a
 * mean/variance of up to ~300 values; gradients go through two further
 * reductions (sum dy, sum dy x_hat), hence 2e-5 / 1e-4. Softmax uses a
 * polynomial exp (<= 2 ulp) against PyTorch's vectorised exp: 1e-6 absolute
 * on probabilities <= 1, 2e-6 on log-probabilities of magnitude <= ~10. */
#define NORM_ATOL 1e-5
#define NORM_RTOL 1e-4
#define NORM_GATOL 2e-5
#define SM_ATOL 1e-6
#define SM_RTOL 1e-5

static avsr_st *G;

/* numeric value of "key" in the case's JSON metadata */
static double meta_num(const char *cs, const char *key)
{
    const char *m = tu_golden_meta(G, cs);
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(m, pat);
    if (!p)
        tap_bail("metadata of %s has no %s", cs, key);
    p += strlen(pat);
    if (!strncmp(p, "true", 4))
        return 1;
    if (!strncmp(p, "false", 5))
        return 0;
    return strtod(p, NULL);
}

static avsr_tensor *gt(const char *cs, const char *what, bool grad)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", cs, what);
    return tu_golden_tensor(G, name, grad);
}

static bool has(const char *cs, const char *what)
{
    char name[128];
    avsr_st_tensor t;
    snprintf(name, sizeof name, "%s.%s", cs, what);
    return avsr_st_find(G, name, &t) == 0;
}

static void cmp(const char *cs, const char *what, const float *got, const char *ref, double atol,
                double rtol)
{
    avsr_tensor *r = gt(cs, ref, false);
    char msg[160];
    snprintf(msg, sizeof msg, "%s: %s matches PyTorch", cs, what);
    tu_close(msg, got, avsr_f32(r), r->numel, atol, rtol);
    avsr_tensor_free(r);
}

/* ---------------------------------------------------------------- batch norm */

static void golden_bn(avsr_ctx *ctx, const char *cs)
{
    bool training = meta_num(cs, "training") != 0, affine = meta_num(cs, "affine") != 0;
    float momentum = (float)meta_num(cs, "momentum"), eps = (float)meta_num(cs, "eps");
    avsr_tensor *x = gt(cs, "x", true);
    avsr_tensor *g = affine ? gt(cs, "gamma", true) : NULL, *b = affine ? gt(cs, "beta", true) : NULL;
    avsr_tensor *rm = gt(cs, "running_mean", false), *rv = gt(cs, "running_var", false);
    avsr_tensor *mask = has(cs, "mask") ? gt(cs, "mask", false) : NULL; /* f32 0/1 */
    avsr_ctx_set_training(ctx, training);
    avsr_tensor *y = avsr_op_batch_norm(ctx, x, g, b, rm, rv, mask, momentum, eps);
    avsr_tensor *R = gt(cs, "R", false);
    if (!y || avsr_backward(ctx, y, avsr_f32(R)) < 0) {
        tap_ok(false, "%s: forward/backward: %s", cs, avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
    } else {
        cmp(cs, "y", avsr_f32(y), "y", NORM_ATOL, NORM_RTOL);
        cmp(cs, "running_mean", avsr_f32(rm), "running_mean_new", 1e-6, 1e-5);
        cmp(cs, "running_var", avsr_f32(rv), "running_var_new", 1e-6, 1e-5);
        cmp(cs, "d x", x->grad, "g_x", NORM_GATOL, NORM_RTOL);
        if (affine) {
            cmp(cs, "d gamma", g->grad, "g_gamma", NORM_GATOL, NORM_RTOL);
            cmp(cs, "d beta", b->grad, "g_beta", NORM_GATOL, NORM_RTOL);
        }
    }
    avsr_ctx_set_training(ctx, true);
    avsr_ctx_reset(ctx);
    avsr_tensor *all[] = {x, g, b, rm, rv, mask, R};
    for (int i = 0; i < 7; i++)
        avsr_tensor_free(all[i]);
}

struct bn_args {
    avsr_tensor *rm, *rv, *mask;
    bool training;
};

static avsr_tensor *op_bn(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    struct bn_args *a = user;
    bool old = avsr_ctx_set_training(ctx, a->training);
    avsr_tensor *y = avsr_op_batch_norm(ctx, in[0], in[1], in[2], a->rm, a->rv, a->mask, 0.1f, 1e-5f);
    avsr_ctx_set_training(ctx, old);
    return y;
}

static avsr_tensor *u8_mask(int B, int T, const int *len)
{
    int64_t s[2] = {B, T};
    avsr_tensor *m = avsr_tensor_create(AVSR_U8, 2, s, false);
    uint8_t *d = m->data;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            d[b * T + t] = t < len[b];
    return m;
}

static void gradcheck_bn(avsr_ctx *ctx, const char *name, int ndim, const int64_t *shape,
                         bool training, const int *len)
{
    int64_t C = shape[1];
    avsr_tensor *x = tu_rand(ndim, shape, 11, -1, 2, true);
    avsr_tensor *g = tu_rand(1, &C, 12, 0.5f, 1.5f, true);
    avsr_tensor *b = tu_rand(1, &C, 13, -0.5f, 0.5f, true);
    avsr_tensor *rm = tu_rand(1, &C, 14, -0.2f, 0.2f, false);
    avsr_tensor *rv = tu_rand(1, &C, 15, 0.5f, 1.5f, false);
    struct bn_args a = {rm, rv, len ? u8_mask((int)shape[0], (int)shape[2], len) : NULL, training};
    avsr_tensor *in[3] = {x, g, b};
    /* loss is smooth in x (variance bounded away from 0): central
     * differences with step 1e-2 are accurate to ~1e-3 */
    tu_gc_opts o = {1e-2, 5e-3, 2e-2, 48};
    tu_gradcheck(name, ctx, op_bn, &a, 3, in, &o);
    avsr_tensor *all[] = {x, g, b, rm, rv, a.mask};
    for (int i = 0; i < 6; i++)
        avsr_tensor_free(all[i]);
}

/* Two simulated ranks, one thread each, with an all-reduce through a
 * barrier: the synchronised result must equal the full batch on one rank. */
struct fake_comm {
    pthread_barrier_t bar;
    double *slot[2];
    int calls[2];
};

struct rank_arg {
    struct fake_comm *comm;
    int rank;
    avsr_tensor *x, *mask, *g, *b, *rm, *rv, *R; /* this rank's half */
    avsr_tensor *y;                              /* output copy (heap) */
    int fail;
};

struct hook_user {
    struct fake_comm *comm;
    int rank;
};

static int fake_allreduce(void *user, double *buf, int n, avsr_error *err)
{
    struct hook_user *h = user;
    struct fake_comm *c = h->comm;
    (void)err;
    c->slot[h->rank] = buf;
    c->calls[h->rank]++;
    pthread_barrier_wait(&c->bar);
    double *other = c->slot[1 - h->rank];
    double *tmp = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++)
        tmp[i] = buf[i] + other[i];
    pthread_barrier_wait(&c->bar); /* both have read both buffers */
    memcpy(buf, tmp, sizeof(double) * (size_t)n);
    free(tmp);
    return 0;
}

static void *rank_main(void *p)
{
    struct rank_arg *a = p;
    avsr_error err = {0};
    avsr_ctx_opts o = {1, 0, AVSR_DEV_CPU};
    avsr_ctx *ctx = avsr_ctx_create(&o, &err);
    if (!ctx) {
        a->fail = 1;
        return NULL;
    }
    struct hook_user h = {a->comm, a->rank};
    avsr_ctx_set_bn_sync(ctx, fake_allreduce, &h);
    avsr_tensor *y = avsr_op_batch_norm(ctx, a->x, a->g, a->b, a->rm, a->rv, a->mask, 0.1f, 1e-5f);
    if (!y || avsr_backward(ctx, y, avsr_f32(a->R)) < 0) {
        a->fail = 1;
    } else {
        a->y = avsr_tensor_create(AVSR_F32, y->ndim, y->shape, false);
        memcpy(a->y->data, y->data, sizeof(float) * (size_t)y->numel);
    }
    avsr_ctx_destroy(ctx);
    return NULL;
}

static avsr_tensor *slice_rows(const avsr_tensor *t, int64_t b0, int64_t b1, bool grad)
{
    int64_t s[AVSR_MAX_DIMS];
    memcpy(s, t->shape, sizeof s);
    s[0] = b1 - b0;
    avsr_tensor *o = avsr_tensor_create(t->dtype, t->ndim, s, grad);
    size_t row = avsr_dtype_size(t->dtype) * (size_t)(t->numel / t->shape[0]);
    memcpy(o->data, (char *)t->data + row * (size_t)b0, row * (size_t)(b1 - b0));
    return o;
}

static avsr_tensor *copy_t(const avsr_tensor *t, bool grad)
{
    return slice_rows(t, 0, t->shape[0], grad);
}

static void test_bn_sync(avsr_ctx *ctx)
{
    int64_t shape[3] = {5, 3, 7}, C = 3;
    int len[5] = {7, 3, 5, 1, 6};
    avsr_tensor *x = tu_rand(3, shape, 21, -1, 3, true);
    avsr_tensor *R = tu_rand(3, shape, 22, -1, 1, false);
    avsr_tensor *mask = u8_mask(5, 7, len);
    avsr_tensor *g = tu_rand(1, &C, 23, 0.5f, 1.5f, true), *b = tu_rand(1, &C, 24, -1, 1, true);
    avsr_tensor *rm = tu_rand(1, &C, 25, -0.2f, 0.2f, false), *rv = tu_rand(1, &C, 26, 0.5f, 1.5f, false);
    /* single rank, full batch */
    avsr_tensor *rm1 = copy_t(rm, false), *rv1 = copy_t(rv, false);
    avsr_tensor *y = avsr_op_batch_norm(ctx, x, g, b, rm1, rv1, mask, 0.1f, 1e-5f);
    if (!y || avsr_backward(ctx, y, avsr_f32(R)) < 0)
        tap_bail("bn sync reference: %s", avsr_ctx_errmsg(ctx));
    /* two ranks: rows [0, 2) and [2, 5) */
    struct fake_comm comm;
    memset(&comm, 0, sizeof comm);
    pthread_barrier_init(&comm.bar, NULL, 2);
    struct rank_arg ra[2];
    int64_t cut[3] = {0, 2, 5};
    for (int r = 0; r < 2; r++) {
        ra[r] = (struct rank_arg){&comm, r, slice_rows(x, cut[r], cut[r + 1], true),
                                  slice_rows(mask, cut[r], cut[r + 1], false), copy_t(g, true),
                                  copy_t(b, true), copy_t(rm, false), copy_t(rv, false),
                                  slice_rows(R, cut[r], cut[r + 1], false), NULL, 0};
    }
    pthread_t th[2];
    for (int r = 0; r < 2; r++)
        pthread_create(&th[r], NULL, rank_main, &ra[r]);
    for (int r = 0; r < 2; r++)
        pthread_join(th[r], NULL);
    pthread_barrier_destroy(&comm.bar);
    tap_ok(!ra[0].fail && !ra[1].fail, "bn sync: both ranks ran");
    tap_ok(comm.calls[0] == 2 && comm.calls[1] == 2,
           "bn sync: one all-reduce in forward, one in backward (%d, %d)", comm.calls[0], comm.calls[1]);
    if (!ra[0].fail && !ra[1].fail) {
        int64_t row = 3 * 7;
        /* summation order differs (per-rank partial sums): 1e-5 */
        tu_close("bn sync: rank 0 output = full batch rows 0-1", avsr_f32(ra[0].y), avsr_f32(y),
                 2 * row, 1e-5, 1e-5);
        tu_close("bn sync: rank 1 output = full batch rows 2-4", avsr_f32(ra[1].y),
                 avsr_f32(y) + 2 * row, 3 * row, 1e-5, 1e-5);
        tu_close("bn sync: rank 0 d x = full batch", ra[0].x->grad, x->grad, 2 * row, 1e-5, 1e-5);
        tu_close("bn sync: rank 1 d x = full batch", ra[1].x->grad, x->grad + 2 * row, 3 * row, 1e-5, 1e-5);
        for (int r = 0; r < 2; r++) {
            char m[96];
            snprintf(m, sizeof m, "bn sync: rank %d running mean = full batch", r);
            tu_close(m, avsr_f32(ra[r].rm), avsr_f32(rm1), C, 1e-6, 1e-5);
            snprintf(m, sizeof m, "bn sync: rank %d running var = full batch", r);
            tu_close(m, avsr_f32(ra[r].rv), avsr_f32(rv1), C, 1e-6, 1e-5);
        }
        float gg[3], gb[3];
        for (int c = 0; c < 3; c++) {
            gg[c] = ra[0].g->grad[c] + ra[1].g->grad[c];
            gb[c] = ra[0].b->grad[c] + ra[1].b->grad[c];
        }
        tu_close("bn sync: sum over ranks of d gamma = full batch", gg, g->grad, C, 1e-5, 1e-5);
        tu_close("bn sync: sum over ranks of d beta = full batch", gb, b->grad, C, 1e-5, 1e-5);
    }
    avsr_ctx_reset(ctx);
    for (int r = 0; r < 2; r++) {
        avsr_tensor *all[] = {ra[r].x, ra[r].mask, ra[r].g, ra[r].b, ra[r].rm, ra[r].rv, ra[r].R, ra[r].y};
        for (int i = 0; i < 8; i++)
            avsr_tensor_free(all[i]);
    }
    avsr_tensor *all[] = {x, R, mask, g, b, rm, rv, rm1, rv1};
    for (int i = 0; i < 9; i++)
        avsr_tensor_free(all[i]);
}

static void test_bn_misc(avsr_ctx *ctx)
{
    /* U8 mask and F32 mask give the same result; eval mode leaves the
     * running statistics alone; NULL running stats use batch statistics */
    int64_t shape[3] = {3, 2, 5}, C = 2;
    int len[3] = {5, 2, 4};
    avsr_tensor *x = tu_rand(3, shape, 31, -1, 1, false);
    avsr_tensor *mu = u8_mask(3, 5, len);
    int64_t ms[2] = {3, 5};
    avsr_tensor *mf = avsr_tensor_create(AVSR_F32, 2, ms, false);
    for (int i = 0; i < 15; i++)
        avsr_f32(mf)[i] = ((uint8_t *)mu->data)[i] ? 2.5f : 0.0f;
    avsr_tensor *rm = tu_rand(1, &C, 32, 0, 1, false), *rv = tu_rand(1, &C, 33, 1, 2, false);
    avsr_tensor *y1 = avsr_op_batch_norm(ctx, x, NULL, NULL, NULL, NULL, mu, 0.1f, 1e-5f);
    avsr_tensor *y2 = avsr_op_batch_norm(ctx, x, NULL, NULL, NULL, NULL, mf, 0.1f, 1e-5f);
    tap_ok(y1 && y2 && memcmp(y1->data, y2->data, sizeof(float) * 30) == 0,
           "batch_norm: u8 and f32 masks agree");
    float rm0[2], rv0[2];
    memcpy(rm0, rm->data, sizeof rm0);
    memcpy(rv0, rv->data, sizeof rv0);
    avsr_ctx_set_training(ctx, false);
    avsr_tensor *y3 = avsr_op_batch_norm(ctx, x, NULL, NULL, rm, rv, NULL, 0.1f, 1e-5f);
    tap_ok(y3 && memcmp(rm0, rm->data, sizeof rm0) == 0 && memcmp(rv0, rv->data, sizeof rv0) == 0,
           "batch_norm: evaluation mode does not touch the running statistics");
    bool ok = y3 != NULL;
    for (int i = 0; ok && i < 30; i++) {
        int c = (i / 5) % 2;
        float want = (avsr_f32(x)[i] - rm0[c]) / sqrtf(rv0[c] + 1e-5f);
        ok = fabsf(avsr_f32(y3)[i] - want) < 1e-5f;
    }
    tap_ok(ok, "batch_norm: evaluation mode normalises with the running statistics");
    avsr_ctx_set_training(ctx, true);
    avsr_ctx_reset(ctx);

    /* bad input */
    int64_t s1[1] = {4}, s3[1] = {3}, sm[2] = {3, 4};
    avsr_tensor *x1 = tu_rand(1, s1, 1, 0, 1, false), *g3 = tu_rand(1, s3, 1, 0, 1, false);
    avsr_tensor *mbad = avsr_tensor_create(AVSR_U8, 2, sm, false);
    struct {
        avsr_tensor *x, *g, *rm, *rv, *m;
        const char *msg;
    } bad[] = {
        {x1, NULL, NULL, NULL, NULL, "batch_norm: x: got [4], expected [B, C, *]"},
        {x, g3, NULL, NULL, NULL, "batch_norm: gamma: got F32 [3], expected f32 [2] for x [3, 2, 5]"},
        {x, NULL, rm, NULL, NULL, "batch_norm: running_mean and running_var: give both or neither"},
        {x, NULL, NULL, NULL, mbad, "batch_norm: mask: got [3, 4] for x [3, 2, 5], expected [B, T] with T = x.shape[2]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        avsr_tensor *r = avsr_op_batch_norm(ctx, bad[i].x, bad[i].g, NULL, bad[i].rm, bad[i].rv,
                                            bad[i].m, 0.1f, 1e-5f);
        tap_ok(!r && strstr(avsr_ctx_errmsg(ctx), bad[i].msg), "bad input: %s", avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
        avsr_ctx_reset(ctx);
    }
    int64_t s11[3] = {1, 2, 1};
    avsr_tensor *x11 = tu_rand(3, s11, 1, 0, 1, false);
    avsr_tensor *r = avsr_op_batch_norm(ctx, x11, NULL, NULL, NULL, NULL, NULL, 0.1f, 1e-5f);
    tap_ok(!r && strstr(avsr_ctx_errmsg(ctx), "expected more than 1 value per channel"),
           "bad input: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
    avsr_tensor *all[] = {x, mu, mf, rm, rv, x1, g3, mbad, x11};
    for (int i = 0; i < 9; i++)
        avsr_tensor_free(all[i]);
}

/* ---------------------------------------------------------------- layer norm */

static void golden_ln(avsr_ctx *ctx, const char *cs)
{
    bool affine = meta_num(cs, "affine") != 0;
    float eps = (float)meta_num(cs, "eps");
    avsr_tensor *x = gt(cs, "x", true);
    avsr_tensor *g = affine ? gt(cs, "gamma", true) : NULL, *b = affine ? gt(cs, "beta", true) : NULL;
    avsr_tensor *R = gt(cs, "R", false);
    avsr_tensor *y = avsr_op_layer_norm(ctx, x, g, b, eps);
    if (!y || avsr_backward(ctx, y, avsr_f32(R)) < 0) {
        tap_ok(false, "%s: forward/backward: %s", cs, avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
    } else {
        cmp(cs, "y", avsr_f32(y), "y", NORM_ATOL, NORM_RTOL);
        /* D = 1: the exact d x is 0 (we return exactly 0); PyTorch's is f32
         * rounding of x - mean amplified by rstd = 1/sqrt(eps) ~ 316, up
         * to ~3e-5 here, so that case gets atol 1e-4 */
        cmp(cs, "d x", x->grad, "g_x", x->shape[x->ndim - 1] == 1 ? 1e-4 : NORM_GATOL, NORM_RTOL);
        if (affine) {
            cmp(cs, "d gamma", g->grad, "g_gamma", NORM_GATOL, NORM_RTOL);
            cmp(cs, "d beta", b->grad, "g_beta", NORM_GATOL, NORM_RTOL);
        }
    }
    avsr_ctx_reset(ctx);
    avsr_tensor *all[] = {x, g, b, R};
    for (int i = 0; i < 4; i++)
        avsr_tensor_free(all[i]);
}

static avsr_tensor *op_ln(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    return avsr_op_layer_norm(ctx, in[0], in[1], in[2], *(float *)user);
}

static void gradcheck_ln(avsr_ctx *ctx, const char *name, int ndim, const int64_t *shape, float eps,
                         bool affine)
{
    int64_t D = shape[ndim - 1];
    avsr_tensor *x = tu_rand(ndim, shape, 41, -1, 2, true);
    avsr_tensor *g = affine ? tu_rand(1, &D, 42, 0.5f, 1.5f, true) : NULL;
    avsr_tensor *b = affine ? tu_rand(1, &D, 43, -0.5f, 0.5f, true) : NULL;
    avsr_tensor *in[3] = {x, g, b};
    tu_gc_opts o = {1e-2, 5e-3, 2e-2, 48};
    tu_gradcheck(name, ctx, op_ln, &eps, affine ? 3 : 1, in, &o);
    avsr_tensor_free(x);
    avsr_tensor_free(g);
    avsr_tensor_free(b);
}

static void test_ln_bad(avsr_ctx *ctx)
{
    int64_t s[2] = {3, 4}, sg[1] = {5};
    avsr_tensor *x = tu_rand(2, s, 1, 0, 1, false), *g = tu_rand(1, sg, 1, 0, 1, false);
    avsr_tensor *r = avsr_op_layer_norm(ctx, x, g, NULL, 1e-5f);
    tap_ok(!r && strstr(avsr_ctx_errmsg(ctx), "layer_norm: gamma: got F32 [5], expected f32 [4] for x [3, 4]"),
           "bad input: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    r = avsr_op_layer_norm(ctx, x, NULL, g, 1e-5f);
    tap_ok(!r && strstr(avsr_ctx_errmsg(ctx), "layer_norm: beta: got F32 [5]"), "bad input: %s",
           avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x);
    avsr_tensor_free(g);
}

/* ---------------------------------------------------------------- softmax */

static void golden_sm(avsr_ctx *ctx, const char *cs)
{
    bool log = meta_num(cs, "log") != 0;
    avsr_tensor *x = gt(cs, "x", true), *R = gt(cs, "R", false);
    avsr_tensor *mask = NULL;
    if (has(cs, "mask")) {
        /* stored as u8: pass it as U8 (the f32 path is tested by gradcheck) */
        avsr_tensor *mf = gt(cs, "mask", false);
        mask = avsr_tensor_create(AVSR_U8, mf->ndim, mf->shape, false);
        for (int64_t i = 0; i < mf->numel; i++)
            ((uint8_t *)mask->data)[i] = avsr_f32(mf)[i] != 0.0f;
        avsr_tensor_free(mf);
    }
    avsr_tensor *y = log ? avsr_op_log_softmax(ctx, x, mask) : avsr_op_softmax(ctx, x, mask);
    if (!y || avsr_backward(ctx, y, avsr_f32(R)) < 0) {
        tap_ok(false, "%s: forward/backward: %s", cs, avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
    } else {
        cmp(cs, "y", avsr_f32(y), "y", log ? 2 * SM_ATOL : SM_ATOL, SM_RTOL);
        cmp(cs, "d x", x->grad, "g_x", 2 * SM_ATOL, SM_RTOL);
        if (mask) {
            /* masked positions: exactly 0 / -inf and no gradient */
            avsr_tensor *ref = gt(cs, "y", false);
            bool exact = true;
            for (int64_t i = 0; i < y->numel; i++) {
                float w = avsr_f32(ref)[i];
                if ((w == 0.0f && !log) || isinf(w))
                    exact &= avsr_f32(y)[i] == w && x->grad[i] == 0.0f;
            }
            tap_ok(exact, "%s: masked positions are exactly %s with zero gradient", cs,
                   log ? "-inf" : "0");
            avsr_tensor_free(ref);
        }
    }
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x);
    avsr_tensor_free(R);
    avsr_tensor_free(mask);
}

struct sm_args {
    avsr_tensor *mask;
    int log;
};

/* A test-only op: -inf -> 0, gradient passed through where finite. It
 * lets the gradient check's loss sum(out * R) stay finite for masked
 * log-softmax (PyTorch reference: masked_fill(~mask, 0)). */
struct fin_saved {
    avsr_tensor *x, *y;
};

static void finite_backward(avsr_ctx *ctx, void *sv)
{
    struct fin_saved *s = sv;
    float *gx = avsr_tensor_grad(ctx, s->x);
    if (!gx)
        return;
    for (int64_t i = 0; i < s->x->numel; i++)
        gx[i] += isinf(avsr_f32(s->x)[i]) ? 0.0f : s->y->grad[i];
}

static avsr_tensor *finite_only(avsr_ctx *ctx, avsr_tensor *x)
{
    if (!x)
        return NULL;
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, x->ndim, x->shape);
    for (int64_t i = 0; i < x->numel; i++)
        avsr_f32(y)[i] = isinf(avsr_f32(x)[i]) ? 0.0f : avsr_f32(x)[i];
    if (avsr_ctx_grad_enabled(ctx) && avsr_tensor_requires_grad(x)) {
        struct fin_saved *s = avsr_tape_saved(ctx, sizeof *s);
        s->x = x;
        s->y = y;
        y->flags |= AVSR_T_REQUIRES_GRAD;
        avsr_tape_record(ctx, finite_backward, y, s);
    }
    return y;
}

static avsr_tensor *op_sm(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    struct sm_args *a = user;
    if (a->log)
        return finite_only(ctx, avsr_op_log_softmax(ctx, in[0], a->mask));
    return avsr_op_softmax(ctx, in[0], a->mask);
}

static void gradcheck_sm(avsr_ctx *ctx, const char *name, int ndim, const int64_t *shape,
                         const int64_t *mshape, int log)
{
    avsr_tensor *x = tu_rand(ndim, shape, 51, -3, 3, true);
    avsr_tensor *m = NULL;
    if (mshape) {
        m = tu_rand(ndim, mshape, 52, 0, 1, false); /* f32 mask: keep where >= 0.3 */
        for (int64_t i = 0; i < m->numel; i++)
            avsr_f32(m)[i] = avsr_f32(m)[i] >= 0.3f ? 1.0f : 0.0f;
        avsr_f32(m)[0] = 1.0f;
    }
    struct sm_args a = {m, log};
    tu_gc_opts o = {1e-2, 2e-3, 2e-2, 48};
    tu_gradcheck(name, ctx, op_sm, &a, 1, &x, &o);
    avsr_tensor_free(x);
    avsr_tensor_free(m);
}

static void test_sm_bad(avsr_ctx *ctx)
{
    int64_t s[3] = {2, 3, 4}, sm[3] = {2, 2, 4}, s2[2] = {3, 4};
    avsr_tensor *x = tu_rand(3, s, 1, 0, 1, false);
    avsr_tensor *m = avsr_tensor_create(AVSR_U8, 3, sm, false);
    avsr_tensor *m2 = avsr_tensor_create(AVSR_U8, 2, s2, false);
    avsr_tensor *mi = avsr_tensor_create(AVSR_I64, 3, s, false);
    avsr_tensor *r = avsr_op_softmax(ctx, x, m);
    tap_ok(!r && strstr(avsr_ctx_errmsg(ctx), "softmax: mask: got [2, 2, 4] for x [2, 3, 4], expected the same ndim with each dim equal or 1"),
           "bad input: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    r = avsr_op_log_softmax(ctx, x, m2);
    tap_ok(!r && strstr(avsr_ctx_errmsg(ctx), "log_softmax: mask: got [3, 4] for x [2, 3, 4]"),
           "bad input: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    r = avsr_op_softmax(ctx, x, mi);
    tap_ok(!r && strstr(avsr_ctx_errmsg(ctx), "softmax: mask: expects u8, bool or f32, got I64"),
           "bad input: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    /* sticky: a NULL input returns NULL without a new message */
    r = avsr_op_softmax(ctx, NULL, NULL);
    tap_ok(!r && !avsr_ctx_failed(ctx), "softmax: NULL input returns NULL");
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x);
    avsr_tensor_free(m);
    avsr_tensor_free(m2);
    avsr_tensor_free(mi);
}

/* Every softmax kernel (AVSR_NORM_IMPL: portable OpenMP, AVX-512 rows,
 * oneDNN, the default selection) against a double-precision reference, on
 * shapes large enough for several parallel chunks, full 16-float vectors
 * and tails, with and without masks, and both gradient paths: a new d x
 * (arena x, written directly) and an existing one (heap x, added to). The
 * reference is the op's definition: over the kept set K of a row,
 * y = exp(x - m) / s (softmax) or x - m - log s (log-softmax), 0 / -inf off
 * K; d x = y (R - sum_K R y) or R - exp(y) sum_K R on K, 0 off K. Without a
 * mask K is the whole row, so a -inf input gets d x = R (as in PyTorch). */
struct sm_case {
    const char *name;
    int nd;
    int64_t s[3];
    int mask;      /* 0 none, 1 key padding [B, 1, D] by lengths, 2 [B, T, 1], 3 full random */
    int neg_inf;   /* unmasked: put -inf into a few positions */
};

/* 1 if element i of x [.., D] (row r) is kept; mk: mask bytes by the case */
static int sm_kept(const struct sm_case *c, const uint8_t *mk, int64_t r, int64_t i)
{
    int64_t T = c->nd == 3 ? c->s[1] : 1, D = c->s[c->nd - 1];
    switch (c->mask) {
    case 1: return mk[(r / T) * D + i];
    case 2: return mk[r];
    case 3: return mk[r * D + i];
    default: return 1;
    }
}

static void sm_reference(const struct sm_case *c, const uint8_t *mk, const float *x,
                         const float *R, int lg, float *y, float *gx)
{
    int64_t D = c->s[c->nd - 1], N = 1;
    for (int k = 0; k < c->nd - 1; k++)
        N *= c->s[k];
    for (int64_t r = 0; r < N; r++) {
        const float *xr = x + r * D, *Rr = R + r * D;
        double m = -INFINITY, sum = 0, sr = 0;
        for (int64_t i = 0; i < D; i++)
            if (sm_kept(c, mk, r, i) && xr[i] > m)
                m = xr[i];
        for (int64_t i = 0; i < D; i++)
            if (sm_kept(c, mk, r, i))
                sum += exp((double)xr[i] - m);
        for (int64_t i = 0; i < D; i++) {
            int k = sm_kept(c, mk, r, i);
            double p = k ? exp((double)xr[i] - m) / sum : 0;
            y[r * D + i] = k ? (float)(lg ? (double)xr[i] - m - log(sum) : p)
                             : (lg ? -INFINITY : 0.0f);
            sr += k ? (lg ? Rr[i] : Rr[i] * p) : 0;
        }
        for (int64_t i = 0; i < D; i++) {
            int k = sm_kept(c, mk, r, i);
            double p = k ? exp((double)xr[i] - m) / sum : 0;
            gx[r * D + i] = k ? (float)(lg ? Rr[i] - p * sr : p * (Rr[i] - sr)) : 0.0f;
        }
    }
}
static void test_sm_kernels(avsr_ctx *ctx)
{
    static const struct sm_case cases[] = {
        {"[4,50,250] with -inf inputs", 3, {4, 50, 250}, 0, 1},
        {"[4,50,250] key padding", 3, {4, 50, 250}, 1, 0},
        {"[3,20,37] row mask", 3, {3, 20, 37}, 2, 0},
        {"[2,3,40] element mask", 3, {2, 3, 40}, 3, 0},
        {"[6,64]", 2, {6, 64}, 0, 0},
        {"[5,3]", 2, {5, 3}, 0, 0},
    };
    static const char *const impls[] = {"own", "avx512", "dnnl", "auto"};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const struct sm_case *c = &cases[ci];
        int64_t n = 1, D = c->s[c->nd - 1];
        for (int k = 0; k < c->nd; k++)
            n *= c->s[k];
        int64_t B = c->s[0], T = c->nd == 3 ? c->s[1] : 1;
        /* the mask: bytes for the reference, an F32 / U8 tensor for the op */
        avsr_tensor *mt = NULL;
        uint8_t *mk = calloc((size_t)n, 1);
        if (c->mask == 1) {
            static const int64_t len[4] = {250, 137, 0, 17}; /* 0: every row masked */
            int64_t ms[3] = {B, 1, D};
            mt = avsr_tensor_create(AVSR_U8, 3, ms, false);
            for (int64_t b = 0; b < B; b++)
                for (int64_t i = 0; i < D; i++)
                    mk[b * D + i] = ((uint8_t *)mt->data)[b * D + i] = i < len[b];
        } else if (c->mask == 2 || c->mask == 3) {
            int64_t ms[3] = {B, T, c->mask == 2 ? 1 : D};
            mt = tu_rand(3, ms, 61, 0, 1, false);
            for (int64_t i = 0; i < mt->numel; i++) {
                mk[i] = avsr_f32(mt)[i] >= 0.3f;
                avsr_f32(mt)[i] = mk[i];
            }
        }
        avsr_tensor *src = tu_rand(c->nd, c->s, 62 + ci, -4, 4, false);
        if (c->neg_inf)
            for (int64_t i = 5; i < n; i += n / 3)
                avsr_f32(src)[i] = -INFINITY;
        float *R = malloc(sizeof(float) * (size_t)n), *G0 = malloc(sizeof(float) * (size_t)n);
        float *yr = malloc(sizeof(float) * (size_t)n), *gr = malloc(sizeof(float) * (size_t)n);
        float *ga = malloc(sizeof(float) * (size_t)n);
        tu_fill_uniform(R, n, 63, -1, 1);
        tu_fill_uniform(G0, n, 64, -1, 1);
        for (int lg = 0; lg < 2; lg++) {
            sm_reference(c, mk, avsr_f32(src), R, lg, yr, gr);
            for (int64_t i = 0; i < n; i++)
                ga[i] = G0[i] + gr[i];
            for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
                setenv("AVSR_NORM_IMPL", impls[k], 1);
                char w[160];
                /* new gradient: x in the arena */
                avsr_tensor *x = avsr_tensor_new(ctx, AVSR_F32, c->nd, c->s);
                memcpy(x->data, src->data, sizeof(float) * (size_t)n);
                x->flags |= AVSR_T_REQUIRES_GRAD;
                avsr_tensor *y = lg ? avsr_op_log_softmax(ctx, x, mt) : avsr_op_softmax(ctx, x, mt);
                if (!y || avsr_backward(ctx, y, R) < 0) {
                    tap_ok(false, "softmax kernels %s: %s", c->name, avsr_ctx_errmsg(ctx));
                    avsr_ctx_clear_error(ctx);
                    avsr_ctx_reset(ctx);
                    continue;
                }
                snprintf(w, sizeof w, "%s %s, kernels %s: y", lg ? "log_softmax" : "softmax",
                         c->name, impls[k]);
                /* oneDNN's log-softmax takes log(sum) from its own approximation:
                 * up to 3.4e-6 off at [5,3] (values ~0.04), hence 5e-6 */
                bool dn = !strcmp(impls[k], "dnnl");
                tu_close(w, avsr_f32(y), yr, n, lg ? (dn ? 5e-6 : 2 * SM_ATOL) : SM_ATOL, SM_RTOL);
                snprintf(w, sizeof w, "%s %s, kernels %s: new d x", lg ? "log_softmax" : "softmax",
                         c->name, impls[k]);
                tu_close(w, x->grad, gr, n, 2 * SM_ATOL, SM_RTOL);
                if (mt) {
                    bool exact = true;
                    for (int64_t r = 0; r < n / D; r++)
                        for (int64_t i = 0; i < D; i++)
                            if (!sm_kept(c, mk, r, i))
                                exact &= avsr_f32(y)[r * D + i] == (lg ? -INFINITY : 0.0f) &&
                                         x->grad[r * D + i] == 0.0f;
                    tap_ok(exact, "%s %s, kernels %s: masked positions exactly %s, d x 0",
                           lg ? "log_softmax" : "softmax", c->name, impls[k], lg ? "-inf" : "0");
                }
                avsr_ctx_reset(ctx);
                /* existing gradient: heap x, d x added to G0 */
                avsr_tensor *xh = avsr_tensor_create(AVSR_F32, c->nd, c->s, true);
                memcpy(xh->data, src->data, sizeof(float) * (size_t)n);
                memcpy(avsr_tensor_grad(ctx, xh), G0, sizeof(float) * (size_t)n);
                y = lg ? avsr_op_log_softmax(ctx, xh, mt) : avsr_op_softmax(ctx, xh, mt);
                if (!y || avsr_backward(ctx, y, R) < 0) {
                    tap_ok(false, "softmax kernels %s: %s", c->name, avsr_ctx_errmsg(ctx));
                    avsr_ctx_clear_error(ctx);
                } else {
                    snprintf(w, sizeof w, "%s %s, kernels %s: d x +=",
                             lg ? "log_softmax" : "softmax", c->name, impls[k]);
                    tu_close(w, xh->grad, ga, n, 2 * SM_ATOL, SM_RTOL);
                }
                avsr_ctx_reset(ctx);
                avsr_tensor_free(xh);
            }
        }
        unsetenv("AVSR_NORM_IMPL");
        free(R);
        free(G0);
        free(yr);
        free(gr);
        free(ga);
        free(mk);
        avsr_tensor_free(src);
        avsr_tensor_free(mt);
    }
}

int main(void)
{
    avsr_ctx *ctx = tu_ctx();
    G = tu_golden_open("norm");

    static const char *const bn_cases[] = {"bn_train", "bn_train_4d", "bn_train_2d", "bn_train_b1",
                                           "bn_mask", "bn_mask_4d", "bn_eval"};
    for (size_t i = 0; i < sizeof bn_cases / sizeof bn_cases[0]; i++)
        golden_bn(ctx, bn_cases[i]);
    int len5[5] = {5, 2, 4, 1, 3}, len1[1] = {3};
    int64_t s357[3] = {3, 5, 7}, s535[3] = {5, 3, 5}, s135[3] = {1, 3, 5}, s431[3] = {4, 3, 1};
    int64_t s2332[4] = {2, 3, 3, 2}, s64[2] = {6, 4};
    gradcheck_bn(ctx, "batch_norm train [3,5,7]", 3, s357, true, NULL);
    gradcheck_bn(ctx, "batch_norm train masked [5,3,5]", 3, s535, true, len5);
    gradcheck_bn(ctx, "batch_norm train masked batch 1 [1,3,5]", 3, s135, true, len1);
    gradcheck_bn(ctx, "batch_norm train length 1 [4,3,1]", 3, s431, true, NULL);
    gradcheck_bn(ctx, "batch_norm train 4-d [2,3,3,2]", 4, s2332, true, NULL);
    gradcheck_bn(ctx, "batch_norm train 2-d [6,4]", 2, s64, true, NULL);
    gradcheck_bn(ctx, "batch_norm eval [3,5,7]", 3, s357, false, NULL);
    gradcheck_bn(ctx, "batch_norm eval batch 1 [1,3,5]", 3, s135, false, NULL);
    test_bn_sync(ctx);
    test_bn_misc(ctx);

    static const char *const ln_cases[] = {"ln", "ln_conformer", "ln_noaffine", "ln_d1"};
    for (size_t i = 0; i < sizeof ln_cases / sizeof ln_cases[0]; i++)
        golden_ln(ctx, ln_cases[i]);
    int64_t l1[3] = {3, 2, 13}, l2[3] = {1, 1, 9}, l3[2] = {5, 1}, l4[2] = {2, 300};
    gradcheck_ln(ctx, "layer_norm [3,2,13]", 3, l1, 1e-5f, true);
    gradcheck_ln(ctx, "layer_norm eps 1e-12 batch 1 [1,1,9]", 3, l2, 1e-12f, true);
    gradcheck_ln(ctx, "layer_norm D 1 [5,1]", 2, l3, 1e-5f, true);
    gradcheck_ln(ctx, "layer_norm no affine [3,2,13]", 3, l1, 1e-5f, false);
    gradcheck_ln(ctx, "layer_norm [2,300]", 2, l4, 1e-5f, true);
    test_ln_bad(ctx);

    static const char *const sm_cases[] = {"sm", "sm_len1", "sm_keypad", "sm_mask",
                                           "lsm", "lsm_keypad", "lsm_mask"};
    for (size_t i = 0; i < sizeof sm_cases / sizeof sm_cases[0]; i++)
        golden_sm(ctx, sm_cases[i]);
    int64_t q1[3] = {2, 3, 11}, q2[2] = {1, 1}, qm[3] = {2, 1, 11}, q3[2] = {3, 40};
    for (int log = 0; log < 2; log++) {
        char n[96];
        snprintf(n, sizeof n, "%s [2,3,11]", log ? "log_softmax" : "softmax");
        gradcheck_sm(ctx, n, 3, q1, NULL, log);
        snprintf(n, sizeof n, "%s length 1 [1,1]", log ? "log_softmax" : "softmax");
        gradcheck_sm(ctx, n, 2, q2, NULL, log);
        snprintf(n, sizeof n, "%s f32 mask [2,1,11] on [2,3,11]", log ? "log_softmax" : "softmax");
        gradcheck_sm(ctx, n, 3, q1, qm, log);
        snprintf(n, sizeof n, "%s elementwise mask [2,3,11]", log ? "log_softmax" : "softmax");
        gradcheck_sm(ctx, n, 3, q1, q1, log);
        snprintf(n, sizeof n, "%s [3,40]", log ? "log_softmax" : "softmax");
        gradcheck_sm(ctx, n, 2, q3, NULL, log);
    }
    test_sm_bad(ctx);
    test_sm_kernels(ctx);

    avsr_st_close(G);
    avsr_ctx_destroy(ctx);
    return tap_done();
}
