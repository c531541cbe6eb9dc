/* testutil: shared test helpers (see testutil.h). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_basic.h"
#include "tap.h"
#include "tape.h"

avsr_ctx *tu_ctx(void)
{
    avsr_error err = {0};
    avsr_ctx_opts o = {0};
    if (!getenv("OMP_NUM_THREADS"))
        o.threads = 2;
    avsr_ctx *ctx = avsr_ctx_create(&o, &err);
    if (!ctx)
        tap_bail("context: %s", err.msg);
    return ctx;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void tu_fill_uniform(float *x, int64_t n, uint64_t seed, float lo, float hi)
{
    uint64_t s = seed * 7919u + 1;
    for (int64_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)((splitmix(&s) >> 40) * (1.0 / 16777216.0));
}

avsr_tensor *tu_rand(int ndim, const int64_t *shape, uint64_t seed, float lo, float hi,
                     bool with_grad)
{
    avsr_tensor *t = avsr_tensor_create(AVSR_F32, ndim, shape, with_grad);
    if (!t)
        tap_bail("out of memory");
    tu_fill_uniform(avsr_f32(t), t->numel, seed, lo, hi);
    return t;
}

bool tu_close(const char *what, const float *got, const float *want, int64_t n, double atol,
              double rtol)
{
    int64_t worst = -1, bad = 0;
    double worst_excess = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        double tol = atol + rtol * fabs(w);
        double d = fabs(g - w);
        bool ok = (isnan(g) && isnan(w)) || (isinf(w) && g == w) || d <= tol;
        if (!ok)
            bad++;
        double excess = (isnan(d) ? INFINITY : d - tol);
        if (!ok && excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
    }
    bool ok = bad == 0;
    tap_ok(ok, "%s (%lld elements, atol %.1e rtol %.1e)", what, (long long)n, atol, rtol);
    if (!ok)
        tap_diag("  %lld mismatches; worst at %lld: got %.8g want %.8g", (long long)bad,
                 (long long)worst, got[worst], want[worst]);
    return ok;
}

static double eval_loss(avsr_ctx *ctx, tu_op_fn fn, void *user, avsr_tensor **in, const float *r)
{
    bool g = avsr_ctx_set_grad(ctx, false);
    avsr_tensor *out = fn(ctx, in, user);
    double L = NAN;
    if (out) {
        const float *o = avsr_f32(out);
        L = 0.0;
        for (int64_t i = 0; i < out->numel; i++)
            L += (double)o[i] * r[i];
    }
    avsr_ctx_set_grad(ctx, g);
    avsr_ctx_reset(ctx);
    return L;
}

bool tu_gradcheck(const char *name, avsr_ctx *ctx, tu_op_fn fn, void *user, int nin,
                  avsr_tensor **in, const tu_gc_opts *opts)
{
    tu_gc_opts o = {1e-2, 2e-2, 2e-2, 48};
    if (opts) {
        if (opts->eps > 0) o.eps = opts->eps;
        if (opts->atol > 0) o.atol = opts->atol;
        if (opts->rtol > 0) o.rtol = opts->rtol;
        if (opts->max_elems > 0) o.max_elems = opts->max_elems;
    }
    /* analytic gradients */
    for (int k = 0; k < nin; k++)
        if (avsr_tensor_requires_grad(in[k]))
            memset(in[k]->grad, 0, sizeof(float) * (size_t)in[k]->numel);
    avsr_ctx_reset(ctx);
    avsr_tensor *out = fn(ctx, in, user);
    if (!out) {
        tap_ok(false, "%s: forward failed: %s", name, avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
        return false;
    }
    float *r = malloc(sizeof(float) * (size_t)out->numel);
    tu_fill_uniform(r, out->numel, 4242, -1.0f, 1.0f);
    avsr_tensor *L = avsr_op_dot_const(ctx, out, r);
    if (!L || avsr_backward(ctx, L, NULL) < 0) {
        tap_ok(false, "%s: backward failed: %s", name, avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
        avsr_ctx_reset(ctx);
        free(r);
        return false;
    }
    avsr_ctx_reset(ctx);
    bool all = true;
    for (int k = 0; k < nin; k++) {
        avsr_tensor *x = in[k];
        if (!avsr_tensor_requires_grad(x))
            continue;
        int64_t n = x->numel;
        int m = n < o.max_elems ? (int)n : o.max_elems;
        float *num = malloc(sizeof(float) * (size_t)m);
        float *ana = malloc(sizeof(float) * (size_t)m);
        float *xd = avsr_f32(x);
        for (int j = 0; j < m; j++) {
            int64_t i = m == n ? j : (int64_t)(((uint64_t)j * 2654435761u + 17) % (uint64_t)n);
            float save = xd[i];
            xd[i] = save + (float)o.eps;
            double lp = eval_loss(ctx, fn, user, in, r);
            xd[i] = save - (float)o.eps;
            double lm = eval_loss(ctx, fn, user, in, r);
            xd[i] = save;
            num[j] = (float)((lp - lm) / (2 * o.eps));
            ana[j] = x->grad[i];
        }
        char what[256];
        snprintf(what, sizeof what, "%s: d/d input %d matches finite differences", name, k);
        all &= tu_close(what, ana, num, m, o.atol, o.rtol);
        free(num);
        free(ana);
    }
    free(r);
    return all;
}

const char *tu_srcpath(const char *rel)
{
    static char buf[4][4096];
    static int k;
    const char *src = getenv("srcdir");
    char *b = buf[k++ & 3];
    snprintf(b, sizeof buf[0], "%s/%s", src && *src ? src : ".", rel);
    return b;
}

avsr_st *tu_golden_open(const char *file)
{
    char rel[512];
    snprintf(rel, sizeof rel, "tests/golden/ops/%s.safetensors", file);
    avsr_error err = {0};
    avsr_st *st = avsr_st_open(tu_srcpath(rel), &err);
    if (!st)
        tap_bail("golden fixture: %s", err.msg);
    return st;
}

avsr_tensor *tu_golden_tensor(avsr_st *st, const char *name, bool with_grad)
{
    avsr_st_tensor t;
    if (avsr_st_find(st, name, &t) < 0)
        tap_bail("golden fixture has no tensor '%s'", name);
    avsr_tensor *x = avsr_tensor_create(AVSR_F32, t.ndim, t.shape, with_grad);
    avsr_error err = {0};
    if (!x || avsr_st_read_f32(st, name, t.ndim, t.shape, avsr_f32(x), &err) < 0)
        tap_bail("golden tensor '%s': %s", name, err.msg);
    return x;
}

const char *tu_golden_meta(avsr_st *st, const char *key)
{
    const char *v = avsr_st_meta(st, key);
    if (!v)
        tap_bail("golden fixture has no metadata '%s'", key);
    return v;
}
