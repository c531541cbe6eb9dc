/* test_optim: optimizers, gradient clipping and learning-rate schedules
 * against PyTorch (tests/golden/gen_optim.py), plus bad configurations. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lrsched.h"
#include "optim.h"
#include "optim_fn.h"
#include "params.h"
#include "safetensors.h"
#include "tap.h"
#include "testutil.h"

#define NSTEPS 5
#define SENTINEL 123.25f

static const char *const PNAMES[4] = {"p0", "p1", "p2", "p3"};
static const int PNDIM[4] = {2, 1, 3, 1};
static const int64_t PSHAPE[4][3] = {{7, 13}, {5}, {3, 1, 9}, {37}};
#define FROZEN 1 /* p1 */

static avsr_st *fx;

/* ---- helpers -------------------------------------------------------------- */

static void load_into(const char *name, float *dst, int64_t n)
{
    avsr_st_tensor t;
    if (avsr_st_find(fx, name, &t) < 0)
        tap_bail("fixture has no tensor '%s'", name);
    if (t.numel != n)
        tap_bail("fixture tensor '%s' has %lld elements, expected %lld", name,
                 (long long)t.numel, (long long)n);
    avsr_error err = {0};
    if (avsr_st_read_f32(fx, name, t.ndim, t.shape, dst, &err) < 0)
        tap_bail("fixture tensor '%s': %s", name, err.msg);
}

static json_t *case_meta(const char *c)
{
    json_error_t je;
    json_t *j = json_loads(tu_golden_meta(fx, c), 0, &je);
    if (!j)
        tap_bail("metadata of %s: %s", c, je.text);
    return j;
}

static double jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_number(v))
        tap_bail("metadata: no number '%s'", k);
    return json_number_value(v);
}

/* p0..p3 registered, finalized, p1 frozen. */
static avsr_params *make_store(void)
{
    avsr_error err = {0};
    avsr_params *p = avsr_params_create();
    for (int i = 0; i < 4; i++)
        if (!avsr_params_add(p, PNAMES[i], PNDIM[i], PSHAPE[i], &err))
            tap_bail("params: %s", err.msg);
    if (avsr_params_finalize(p, &err) < 0)
        tap_bail("params: %s", err.msg);
    avsr_params_set_requires_grad(p, "p1", false);
    return p;
}

/* Fill every float of buf that is not inside a trainable parameter (the
 * frozen one and the alignment padding) with SENTINEL. */
static void fill_outside(avsr_params *p, float *buf, bool frozen_too)
{
    int64_t flat = avsr_params_flat_size(p);
    char *inside = calloc((size_t)flat, 1);
    for (int i = 0; i < 4; i++) {
        avsr_tensor *t = avsr_params_at(p, i);
        if (i == FROZEN && frozen_too)
            continue;
        memset(inside + avsr_params_offset(p, i), 1, (size_t)t->numel);
    }
    for (int64_t j = 0; j < flat; j++)
        if (!inside[j])
            buf[j] = SENTINEL;
    free(inside);
}

/* True if every float outside the parameters (padding) equals SENTINEL. */
static bool padding_intact(avsr_params *p, const float *buf)
{
    int64_t flat = avsr_params_flat_size(p);
    for (int i = 0; i < 4; i++) {
        avsr_tensor *t = avsr_params_at(p, i);
        int64_t end = i + 1 < 4 ? avsr_params_offset(p, i + 1) : flat;
        for (int64_t j = avsr_params_offset(p, i) + t->numel; j < end; j++)
            if (buf[j] != SENTINEL)
                return false;
    }
    return true;
}

static bool all_sentinel(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (x[i] != SENTINEL)
            return false;
    return true;
}

static avsr_optim_cfg cfg_from_meta(const char *c)
{
    json_t *j = case_meta(c);
    avsr_optim_cfg cfg;
    avsr_error err = {0};
    avsr_optim_type type;
    if (avsr_optim_type_parse(json_string_value(json_object_get(j, "type")), &type, &err) < 0)
        tap_bail("%s", err.msg);
    cfg = avsr_optim_defaults(type);
    cfg.weight_decay = jnum(j, "weight_decay");
    if (type == AVSR_OPTIM_SGD) {
        cfg.momentum = jnum(j, "momentum");
        cfg.dampening = jnum(j, "dampening");
        cfg.nesterov = json_is_true(json_object_get(j, "nesterov"));
    } else {
        cfg.beta1 = jnum(j, "beta1");
        cfg.beta2 = jnum(j, "beta2");
        cfg.eps = jnum(j, "eps");
    }
    json_decref(j);
    return cfg;
}

/* Steps [from, to) of case c on store p with optimizer o. */
static bool run_steps(const char *c, avsr_optim *o, avsr_params *p, int from, int to)
{
    char name[128];
    float lr[NSTEPS];
    load_into(strcat(strcpy(name, c), ".lr"), lr, NSTEPS);
    for (int k = from; k < to; k++) {
        for (int i = 0; i < 4; i++) {
            avsr_tensor *t = avsr_params_at(p, i);
            snprintf(name, sizeof name, "%s.%s.grad.%d", c, PNAMES[i], k);
            load_into(name, t->grad, t->numel);
        }
        avsr_error err = {0};
        if (avsr_optim_step(o, p, lr[k], &err) < 0) {
            tap_ok(false, "%s: step %d: %s", c, k, err.msg);
            return false;
        }
    }
    return true;
}

/* ---- optimizers vs torch ---------------------------------------------------- */

/* Tolerances: five steps of float32 element-wise math; torch's vectorised
 * kernels fuse some multiply-adds (FMA) where we round twice, so results
 * differ by a few ulps per step. 1e-6 absolute on values of order 1 and 1e-5
 * relative leave ample margin while catching any formula error (a wrong bias
 * correction or decay changes values by >= 1e-3). */
static void test_optimizer(const char *c)
{
    avsr_optim_cfg cfg = cfg_from_meta(c);
    avsr_error err = {0};
    avsr_params *p = make_store();
    float *data = avsr_params_data(p), *grad = avsr_params_grad(p);
    char name[128];
    for (int i = 0; i < 4; i++) {
        avsr_tensor *t = avsr_params_at(p, i);
        snprintf(name, sizeof name, "%s.%s.init", c, PNAMES[i]);
        load_into(name, avsr_f32(t), t->numel);
    }
    fill_outside(p, data, false);
    fill_outside(p, grad, false);
    float *m = avsr_params_moment(p, 0, &err), *v = avsr_params_moment(p, 1, &err);
    fill_outside(p, m, true);
    fill_outside(p, v, true);
    avsr_tensor *frozen = avsr_params_at(p, FROZEN);
    float frozen_init[5];
    memcpy(frozen_init, frozen->data, sizeof frozen_init);

    avsr_optim *o = avsr_optim_create(&cfg, &err);
    tap_ok(o != NULL, "%s: create %s", c, err.msg);
    if (!o)
        return;
    if (run_steps(c, o, p, 0, NSTEPS)) {
        tap_ok(avsr_optim_get_step(o) == NSTEPS, "%s: step counter is %d", c, NSTEPS);
        for (int i = 0; i < 4; i++) {
            if (i == FROZEN)
                continue;
            avsr_tensor *t = avsr_params_at(p, i);
            float *want = malloc(sizeof(float) * (size_t)t->numel);
            char what[160];
            snprintf(name, sizeof name, "%s.%s.final", c, PNAMES[i]);
            load_into(name, want, t->numel);
            snprintf(what, sizeof what, "%s: %s after %d steps matches torch", c, PNAMES[i],
                     NSTEPS);
            tu_close(what, avsr_f32(t), want, t->numel, 1e-6, 1e-5);
            int64_t off = avsr_params_offset(p, i);
            snprintf(name, sizeof name, "%s.%s.m", c, PNAMES[i]);
            avsr_st_tensor st;
            if (avsr_st_find(fx, name, &st) == 0) {
                load_into(name, want, t->numel);
                snprintf(what, sizeof what, "%s: %s first moment / momentum matches torch", c,
                         PNAMES[i]);
                tu_close(what, m + off, want, t->numel, 1e-6, 1e-5);
            }
            snprintf(name, sizeof name, "%s.%s.v", c, PNAMES[i]);
            if (avsr_st_find(fx, name, &st) == 0) {
                load_into(name, want, t->numel);
                snprintf(what, sizeof what, "%s: %s second moment matches torch", c, PNAMES[i]);
                tu_close(what, v + off, want, t->numel, 1e-7, 1e-5);
            }
            free(want);
        }
        tap_ok(memcmp(frozen->data, frozen_init, sizeof frozen_init) == 0,
               "%s: frozen parameter is bit-identical", c);
        int64_t off = avsr_params_offset(p, FROZEN);
        tap_ok(all_sentinel(m + off, 5) && all_sentinel(v + off, 5),
               "%s: frozen parameter's moments untouched", c);
        tap_ok(padding_intact(p, data) && padding_intact(p, grad) && padding_intact(p, m) &&
                   padding_intact(p, v),
               "%s: alignment padding of data, grad and moments untouched", c);
    }
    avsr_optim_destroy(o);

    /* resume: 3 steps, a new optimizer told it is at step 3, 2 more steps
     * (the moments live in the store) = 5 uninterrupted steps, bit for bit */
    avsr_params *q = make_store();
    for (int i = 0; i < 4; i++) {
        avsr_tensor *t = avsr_params_at(q, i);
        snprintf(name, sizeof name, "%s.%s.init", c, PNAMES[i]);
        load_into(name, avsr_f32(t), t->numel);
    }
    avsr_optim *o1 = avsr_optim_create(&cfg, &err);
    run_steps(c, o1, q, 0, 3);
    avsr_optim_destroy(o1);
    avsr_optim *o2 = avsr_optim_create(&cfg, &err);
    avsr_optim_set_step(o2, 3);
    run_steps(c, o2, q, 3, NSTEPS);
    bool same = true;
    for (int i = 0; i < 4; i++) {
        if (i == FROZEN)
            continue;
        avsr_tensor *a = avsr_params_at(p, i), *b = avsr_params_at(q, i);
        same &= memcmp(a->data, b->data, sizeof(float) * (size_t)a->numel) == 0;
    }
    tap_ok(same && avsr_optim_get_step(o2) == NSTEPS,
           "%s: 3 steps + resume at step 3 + 2 steps = 5 steps, bit for bit", c);
    avsr_optim_destroy(o2);
    avsr_params_destroy(q);
    avsr_params_destroy(p);
}

/* A parameter large enough for the OpenMP path equals the scalar function
 * applied element by element (the loop adds nothing to the math). */
static void test_large_param(void)
{
    avsr_error err = {0};
    avsr_params *p = avsr_params_create();
    int64_t n = 100003;
    avsr_params_add(p, "big", 1, &n, &err);
    avsr_params_finalize(p, &err);
    float *x = avsr_params_data(p), *g = avsr_params_grad(p);
    tu_fill_uniform(x, n, 11, -1, 1);
    tu_fill_uniform(g, n, 12, -1, 1);
    float *x0 = malloc(sizeof(float) * (size_t)n), *m = calloc((size_t)n, sizeof(float)),
          *v = calloc((size_t)n, sizeof(float));
    memcpy(x0, x, sizeof(float) * (size_t)n);
    avsr_optim_cfg cfg = avsr_optim_defaults(AVSR_OPTIM_ADAMW);
    avsr_optim *o = avsr_optim_create(&cfg, &err);
    avsr_optim_step(o, p, 1e-3f, &err);
    double bc1 = 1 - cfg.beta1, bc2 = 1 - cfg.beta2;
    for (int64_t i = 0; i < n; i++)
        avsr_fn_adam(&x0[i], &m[i], &v[i], g[i], 0.0f, (float)(1.0 - 1e-3f * cfg.weight_decay),
                     (float)cfg.beta1, (float)(1 - cfg.beta1), (float)cfg.beta2,
                     (float)(1 - cfg.beta2), (float)cfg.eps, (float)(1e-3f / bc1),
                     (float)sqrt(bc2));
    tap_ok(memcmp(x0, x, sizeof(float) * (size_t)n) == 0 &&
               memcmp(m, avsr_params_moment(p, 0, &err), sizeof(float) * (size_t)n) == 0,
           "adamw: %lld-element parameter (parallel loop) equals the scalar update", (long long)n);
    free(x0);
    free(m);
    free(v);
    avsr_optim_destroy(o);
    avsr_params_destroy(p);
}

/* ---- clipping --------------------------------------------------------------- */

static void test_clip_case(const char *c)
{
    json_t *j = case_meta(c);
    float max_norm = (float)jnum(j, "max_norm");
    json_decref(j);
    avsr_params *p = make_store();
    char name[128];
    for (int i = 0; i < 4; i++) {
        avsr_tensor *t = avsr_params_at(p, i);
        snprintf(name, sizeof name, "%s.%s.grad", c, PNAMES[i]);
        load_into(name, t->grad, t->numel);
    }
    avsr_tensor *frozen = avsr_params_at(p, FROZEN);
    float fg[5];
    memcpy(fg, frozen->grad, sizeof fg);
    float want_norm;
    load_into(strcat(strcpy(name, c), ".norm"), &want_norm, 1);
    double norm = -1;
    int rc = avsr_optim_clip_grad_norm(p, max_norm, &norm);
    float got_norm = (float)norm;
    char what[160];
    tap_ok(rc == 0, "%s: finite norm", c);
    /* the norm: ours in double, torch's in float32 (norms of norms) */
    snprintf(what, sizeof what, "%s: norm %.6g matches torch", c, norm);
    tu_close(what, &got_norm, &want_norm, 1, 0, 1e-6);
    for (int i = 0; i < 4; i++) {
        if (i == FROZEN)
            continue;
        avsr_tensor *t = avsr_params_at(p, i);
        float *want = malloc(sizeof(float) * (size_t)t->numel);
        snprintf(name, sizeof name, "%s.%s.clipped", c, PNAMES[i]);
        load_into(name, want, t->numel);
        snprintf(what, sizeof what, "%s: %s gradient after clipping matches torch", c,
                 PNAMES[i]);
        /* one float multiply by a coefficient that agrees to ~1e-7 */
        tu_close(what, t->grad, want, t->numel, 1e-7, 1e-6);
        free(want);
    }
    tap_ok(memcmp(frozen->grad, fg, sizeof fg) == 0,
           "%s: frozen parameter's gradient neither counted nor scaled", c);
    avsr_params_destroy(p);
}

static void test_clip_nonfinite(void)
{
    avsr_params *p = make_store();
    float *g = avsr_params_grad(p);
    tu_fill_uniform(g, avsr_params_flat_size(p), 5, -1, 1);
    int64_t flat = avsr_params_flat_size(p);
    float *copy = malloc(sizeof(float) * (size_t)flat);
    memcpy(copy, g, sizeof(float) * (size_t)flat);
    avsr_tensor *t2 = avsr_params_at(p, 2), *t1 = avsr_params_at(p, FROZEN);

    double norm = 0;
    t2->grad[4] = NAN;
    copy[avsr_params_offset(p, 2) + 4] = NAN;
    int rc = avsr_optim_clip_grad_norm(p, 1e-3f, &norm);
    tap_ok(rc == 1 && isnan(norm), "clip: NaN gradient reported (rc %d, norm %g)", rc, norm);
    tap_ok(memcmp(g, copy, sizeof(float) * (size_t)flat) == 0,
           "clip: gradients untouched when the norm is NaN");
    t2->grad[4] = INFINITY;
    copy[avsr_params_offset(p, 2) + 4] = INFINITY;
    rc = avsr_optim_clip_grad_norm(p, 1e-3f, &norm);
    tap_ok(rc == 1 && isinf(norm), "clip: inf gradient reported (rc %d, norm %g)", rc, norm);
    tap_ok(memcmp(g, copy, sizeof(float) * (size_t)flat) == 0,
           "clip: gradients untouched when the norm is inf");
    /* a NaN in a frozen parameter's gradient does not count */
    t2->grad[4] = 0.5f;
    t1->grad[0] = NAN;
    rc = avsr_optim_clip_grad_norm(p, 0.0f, &norm);
    tap_ok(rc == 0 && isfinite(norm), "clip: NaN in a frozen gradient ignored (norm %g)", norm);
    /* max_norm 0 disables clipping: the norm is measured, nothing scaled */
    memcpy(copy, g, sizeof(float) * (size_t)flat);
    rc = avsr_optim_clip_grad_norm(p, 0.0f, NULL);
    tap_ok(rc == 0 && memcmp(g, copy, sizeof(float) * (size_t)flat) == 0,
           "clip: max_norm 0 measures only");
    /* after clipping to max_norm the norm is max_norm */
    double after;
    avsr_optim_clip_grad_norm(p, 0.25f, &norm);
    avsr_optim_clip_grad_norm(p, 0.0f, &after);
    tap_ok(norm > 0.25 && fabs(after - 0.25) < 1e-6, "clip: norm %g clipped to %.7f", norm,
           after);
    free(copy);
    avsr_params_destroy(p);
}

/* ---- schedules -------------------------------------------------------------- */

static int64_t jint(json_t *o, const char *k, int64_t dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

static void test_schedule(const char *c)
{
    json_t *j = case_meta(c);
    avsr_error err = {0};
    avsr_lrsched_type type;
    if (avsr_lrsched_type_parse(json_string_value(json_object_get(j, "type")), &type, &err) < 0)
        tap_bail("%s: %s", c, err.msg);
    avsr_lrsched s = avsr_lrsched_defaults(type, jnum(j, "lr"));
    s.warmup_steps = jint(j, "warmup_steps", 0);
    s.total_steps = jint(j, "total_steps", 0);
    s.hold_steps = jint(j, "hold_steps", 0);
    s.decay_steps = jint(j, "decay_steps", 0);
    if (json_object_get(j, "init_lr_scale"))
        s.init_lr_scale = jnum(j, "init_lr_scale");
    if (json_object_get(j, "final_lr_scale"))
        s.final_lr_scale = jnum(j, "final_lr_scale");
    if (json_object_get(j, "factor"))
        s.factor = jnum(j, "factor");
    json_decref(j);
    tap_ok(avsr_lrsched_check(&s, &err) == 0, "%s: configuration valid %s", c, err.msg);

    char name[128];
    avsr_st_tensor tl, te;
    snprintf(name, sizeof name, "%s.lr", c);
    if (avsr_st_find(fx, name, &tl) < 0 || tl.dtype != AVSR_I64)
        tap_bail("fixture: %s", name);
    snprintf(name, sizeof name, "%s.epoch", c);
    if (avsr_st_find(fx, name, &te) < 0 || te.dtype != AVSR_I64 || te.numel != tl.numel)
        tap_bail("fixture: %s", name);
    int64_t bad = -1;
    double worst = 0;
    for (int64_t k = 0; k < tl.numel; k++) {
        double want;
        int64_t epoch;
        memcpy(&want, (const char *)tl.data + 8 * k, 8);
        memcpy(&epoch, (const char *)te.data + 8 * k, 8);
        double got = avsr_lrsched_lr(&s, k, epoch);
        /* same formula in double: a few ulps (exp/cos/pow, and torch's
         * ExponentialLR multiplies step by step) */
        double d = fabs(got - want);
        if (d > 1e-12 * fabs(want) + 1e-18) {
            if (bad < 0)
                bad = k;
        }
        if (d > worst)
            worst = d;
    }
    tap_ok(bad < 0, "%s: %lld steps match the Python reference (worst |diff| %.2e)", c,
           (long long)tl.numel, worst);
    if (bad >= 0) {
        double want;
        memcpy(&want, (const char *)tl.data + 8 * bad, 8);
        tap_diag("  first mismatch at step %lld: got %.17g want %.17g", (long long)bad,
                 avsr_lrsched_lr(&s, bad, 0), want);
    }
}

static void test_schedule_props(void)
{
    avsr_lrsched s = avsr_lrsched_defaults(AVSR_LRSCHED_COSINE, 1e-3);
    s.warmup_steps = 10;
    s.total_steps = 110;
    tap_ok(avsr_lrsched_lr(&s, 0, 0) == 0.0 && avsr_lrsched_lr(&s, 10, 0) == 1e-3 &&
               fabs(avsr_lrsched_lr(&s, 60, 0) - 5e-4) < 1e-15 &&
               avsr_lrsched_lr(&s, 110, 0) == 0.0 && avsr_lrsched_lr(&s, 100000, 0) == 0.0,
           "cosine: 0 at start, peak after warmup, half in the middle, 0 at and after the end");
    tap_ok(avsr_lrsched_lr(&s, -5, -1) == 0.0, "negative step and epoch count as 0");
    avsr_lrsched t = avsr_lrsched_defaults(AVSR_LRSCHED_TRI_STAGE, 1.0);
    t.warmup_steps = 4;
    t.hold_steps = 2;
    t.decay_steps = 0;
    t.final_lr_scale = 0.05;
    tap_ok(avsr_lrsched_check(&t, NULL) == 0 && avsr_lrsched_lr(&t, 5, 0) == 1.0 &&
               avsr_lrsched_lr(&t, 6, 0) == 0.05 && avsr_lrsched_lr(&t, 1000, 0) == 0.05,
           "tri_stage: decay_steps 0 drops to the final lr after the hold");
    for (int i = 0; i < AVSR_LRSCHED_TYPE_COUNT; i++) {
        avsr_lrsched_type back;
        const char *n = avsr_lrsched_type_name((avsr_lrsched_type)i);
        tap_ok(n && avsr_lrsched_type_parse(n, &back, NULL) == 0 && (int)back == i,
               "schedule name '%s' round trip", n ? n : "?");
    }
}

/* ---- bad configurations ----------------------------------------------------- */

static void expect_optim_fail(const avsr_optim_cfg *cfg, const char *substr, const char *what)
{
    avsr_error err = {0};
    avsr_optim *o = avsr_optim_create(cfg, &err);
    tap_ok(!o && strstr(err.msg, substr), "bad optimizer config (%s): \"%s\"", what, err.msg);
    avsr_optim_destroy(o);
}

static void test_bad_optim(void)
{
    avsr_optim_cfg c = avsr_optim_defaults(AVSR_OPTIM_ADAMW);
    c.lr = -1e-3;
    expect_optim_fail(&c, "optim adamw: lr = -0.001: must be finite and >= 0", "negative lr");
    c = avsr_optim_defaults(AVSR_OPTIM_ADAM);
    c.lr = NAN;
    expect_optim_fail(&c, "optim adam: lr = nan", "NaN lr");
    c = avsr_optim_defaults(AVSR_OPTIM_ADAMW);
    c.beta1 = 1.0;
    expect_optim_fail(&c, "optim adamw: beta1 = 1: must be in [0, 1)", "beta1 = 1");
    c = avsr_optim_defaults(AVSR_OPTIM_ADAM);
    c.beta2 = 1.5;
    expect_optim_fail(&c, "optim adam: beta2 = 1.5: must be in [0, 1)", "beta2 > 1");
    c = avsr_optim_defaults(AVSR_OPTIM_ADAMW);
    c.beta1 = -0.1;
    expect_optim_fail(&c, "beta1 = -0.1", "negative beta1");
    c = avsr_optim_defaults(AVSR_OPTIM_ADAMW);
    c.eps = -1e-8;
    expect_optim_fail(&c, "optim adamw: eps = -1e-08", "negative eps");
    c = avsr_optim_defaults(AVSR_OPTIM_ADAMW);
    c.weight_decay = -0.01;
    expect_optim_fail(&c, "optim adamw: weight_decay = -0.01", "negative weight decay");
    c = avsr_optim_defaults(AVSR_OPTIM_ADAMW);
    c.type = (avsr_optim_type)7;
    expect_optim_fail(&c, "optim: unknown optimizer type 7 (expected adamw, adam or sgd)",
                      "unknown type");
    c = avsr_optim_defaults(AVSR_OPTIM_SGD);
    c.nesterov = true;
    expect_optim_fail(&c, "optim sgd: nesterov needs momentum > 0 and dampening 0",
                      "nesterov without momentum");
    c.momentum = 0.9;
    c.dampening = 0.1;
    expect_optim_fail(&c, "nesterov needs momentum > 0 and dampening 0 (got momentum 0.9, "
                          "dampening 0.1)",
                      "nesterov with dampening");
    c = avsr_optim_defaults(AVSR_OPTIM_SGD);
    c.momentum = -0.5;
    expect_optim_fail(&c, "optim sgd: momentum = -0.5", "negative momentum");
    c = avsr_optim_defaults(AVSR_OPTIM_SGD);
    c.dampening = 2;
    expect_optim_fail(&c, "optim sgd: dampening = 2: must be in [0, 1]", "dampening > 1");
    expect_optim_fail(NULL, "optim: no configuration", "NULL config");

    avsr_error err = {0};
    avsr_optim_type t;
    tap_ok(avsr_optim_type_parse("adamx", &t, &err) < 0 &&
               strstr(err.msg, "optim: unknown optimizer type 'adamx' (expected adamw, adam or "
                               "sgd)"),
           "unknown optimizer name: \"%s\"", err.msg);
    for (int i = 0; i < AVSR_OPTIM_TYPE_COUNT; i++) {
        const char *n = avsr_optim_type_name((avsr_optim_type)i);
        tap_ok(n && avsr_optim_type_parse(n, &t, NULL) == 0 && (int)t == i,
               "optimizer name '%s' round trip", n ? n : "?");
    }
    tap_ok(avsr_optim_type_name((avsr_optim_type)9) == NULL, "no name for an unknown type");

    /* bad lr at step time: an error, and nothing changes */
    avsr_params *p = make_store();
    float *x = avsr_params_data(p);
    tu_fill_uniform(avsr_params_grad(p), avsr_params_flat_size(p), 3, -1, 1);
    c = avsr_optim_defaults(AVSR_OPTIM_ADAMW);
    avsr_optim *o = avsr_optim_create(&c, &err);
    float x0 = x[0];
    avsr_error_clear(&err);
    tap_ok(avsr_optim_step(o, p, -1e-3f, &err) < 0 &&
               strstr(err.msg, "optim adamw step: lr = -0.001: must be finite and >= 0") &&
               avsr_optim_get_step(o) == 0 && x[0] == x0,
           "step with a negative lr fails and changes nothing: \"%s\"", err.msg);
    avsr_error_clear(&err);
    tap_ok(avsr_optim_step(o, p, INFINITY, &err) < 0 && strstr(err.msg, "lr = inf"),
           "step with an infinite lr fails: \"%s\"", err.msg);
    avsr_params *un = avsr_params_create();
    avsr_error_clear(&err);
    tap_ok(avsr_optim_step(o, un, 1e-3f, &err) < 0 &&
               strstr(err.msg, "parameter store is not finalized"),
           "step on an unfinalized store fails: \"%s\"", err.msg);
    avsr_params_destroy(un);
    avsr_optim_set_step(o, 41);
    tap_ok(avsr_optim_get_step(o) == 41 && avsr_optim_config(o)->type == AVSR_OPTIM_ADAMW,
           "step counter set/get and config");
    avsr_optim_destroy(o);
    avsr_params_destroy(p);
}

static void expect_sched_fail(const avsr_lrsched *s, const char *substr, const char *what)
{
    avsr_error err = {0};
    tap_ok(avsr_lrsched_check(s, &err) < 0 && strstr(err.msg, substr),
           "bad schedule (%s): \"%s\"", what, err.msg);
}

static void test_bad_sched(void)
{
    avsr_lrsched s = avsr_lrsched_defaults(AVSR_LRSCHED_COSINE, 1e-3);
    s.warmup_steps = 100;
    s.total_steps = 50;
    expect_sched_fail(&s,
                      "lr schedule warmup_cosine: total_steps = 50 must be greater than "
                      "warmup_steps = 100",
                      "total < warmup");
    s.total_steps = 100;
    expect_sched_fail(&s, "total_steps = 100 must be greater than warmup_steps = 100",
                      "total = warmup");
    s = avsr_lrsched_defaults(AVSR_LRSCHED_CONSTANT, -1.0);
    expect_sched_fail(&s, "lr schedule constant: lr = -1: must be finite and >= 0",
                      "negative lr");
    s = avsr_lrsched_defaults(AVSR_LRSCHED_CONSTANT, 1e-3);
    s.warmup_steps = -3;
    expect_sched_fail(&s, "lr schedule constant: warmup_steps = -3: must be >= 0",
                      "negative warmup");
    s = avsr_lrsched_defaults(AVSR_LRSCHED_TRI_STAGE, 1e-3);
    s.final_lr_scale = 0;
    expect_sched_fail(&s, "lr schedule tri_stage: final_lr_scale = 0: must be in (0, 1]",
                      "final scale 0");
    s = avsr_lrsched_defaults(AVSR_LRSCHED_TRI_STAGE, 1e-3);
    s.init_lr_scale = 2;
    expect_sched_fail(&s, "lr schedule tri_stage: init_lr_scale = 2: must be in [0, 1]",
                      "init scale 2");
    s = avsr_lrsched_defaults(AVSR_LRSCHED_TRI_STAGE, 1e-3);
    s.hold_steps = -1;
    expect_sched_fail(&s, "hold_steps = -1, decay_steps = 0: must be >= 0", "negative hold");
    s = avsr_lrsched_defaults(AVSR_LRSCHED_EXP_EPOCH, 1e-3);
    s.factor = 0;
    expect_sched_fail(&s, "lr schedule exp_per_epoch: factor = 0: must be finite and > 0",
                      "factor 0");
    s.type = (avsr_lrsched_type)42;
    expect_sched_fail(&s, "lr schedule: unknown type 42", "unknown type");
    avsr_error err = {0};
    avsr_lrsched_type t;
    tap_ok(avsr_lrsched_type_parse("cosine", &t, &err) < 0 &&
               strstr(err.msg, "lr schedule: unknown type 'cosine' (expected constant, "
                               "warmup_cosine, tri_stage or exp_per_epoch)"),
           "unknown schedule name: \"%s\"", err.msg);
}

int main(void)
{
    fx = tu_golden_open("optim");
    const char *opts[] = {"adamw", "adam", "sgd_nesterov", "sgd_damp", "sgd_plain"};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
        test_optimizer(opts[i]);
    test_large_param();
    test_clip_case("clip_hit");
    test_clip_case("clip_miss");
    test_clip_nonfinite();
    const char *sched[] = {"sched_const", "sched_const_warm", "sched_cosine",
                           "sched_cosine_nowarm", "sched_tri", "sched_tri_nohold",
                           "sched_tri_nowarm", "sched_exp", "sched_exp_warm"};
    for (size_t i = 0; i < sizeof sched / sizeof *sched; i++)
        test_schedule(sched[i]);
    test_schedule_props();
    test_bad_optim();
    test_bad_sched();
    avsr_st_close(fx);
    return tap_done();
}
