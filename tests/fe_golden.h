/* fe_golden: helpers shared by test_frontend.c and test_fusion.c: load a
 * module's parameters from a golden fixture BY NAME, compare every
 * parameter gradient and buffer against the fixture.
 *
 * Fixture layout (tests/golden/gen_frontend.py): "<case>.p.<name>" is the
 * PyTorch state dict, "<case>.g.<name>" the gradients, "<case>.after.<name>"
 * the running statistics after a training step. */
#ifndef AVSR_TESTS_FE_GOLDEN_H
#define AVSR_TESTS_FE_GOLDEN_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"
#include "safetensors.h"
#include "tap.h"
#include "testutil.h"

/* Tolerance of the golden comparisons: |got - want| <= FE_RTOL * (|want| +
 * max |want| of the tensor). float32 on both sides; the only differences
 * are summation order (oneDNN vs ATen convolutions, batch-norm sums in
 * double vs float) amplified by a few batch norms, which stays around
 * 1e-6..1e-5 relative; 1e-4 is the brief's bound. FE_ATOL is a floor
 * for gradients that are zero in exact arithmetic (a bias followed by
 * training-mode batch norm: both sides give rounding noise of ~1e-8). */
#define FE_RTOL 1e-4
#define FE_ATOL 1e-6

/* Max excess of |got - want| over the tolerance (<= 0: within). */
static inline double fe_excess(const float *got, const float *want, int64_t n, double *rel)
{
    double mx = 0.0, worst = -INFINITY, wrel = 0.0;
    for (int64_t i = 0; i < n; i++)
        mx = fmax(mx, fabs(want[i]));
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        double tol = FE_RTOL * (fabs(want[i]) + mx) + FE_ATOL;
        double e = isnan(d) ? INFINITY : d - tol;
        if (e > worst)
            worst = e;
        /* reported error relative to max |want| (at least FE_ATOL / FE_RTOL,
         * so gradients that are zero in exact arithmetic report sensibly) */
        double r = d / fmax(mx, FE_ATOL / FE_RTOL);
        if (r > wrel)
            wrel = r;
    }
    if (rel)
        *rel = wrel;
    return n ? worst : 0.0;
}

/* Compare got with fixture tensor `key`; one TAP line. */
static inline bool fe_check(avsr_st *st, const char *key, const float *got, int64_t n,
                            const char *what)
{
    avsr_tensor *w = tu_golden_tensor(st, key, false);
    double rel = 0;
    bool ok = w->numel == n && fe_excess(got, avsr_f32(w), n, &rel) <= 0.0;
    tap_ok(ok, "%s (%lld values, max |err| / max |ref| = %.2e)", what, (long long)n, rel);
    avsr_tensor_free(w);
    return ok;
}

/* Load every registered tensor from "<c>.p.<name>"; checks that the fixture
 * has exactly the same set of names. */
static inline bool fe_load(avsr_st *st, const char *c, avsr_params *p)
{
    char key[512], pre[128];
    int n = avsr_params_count(p), bad = 0;
    const char *first_bad = NULL;
    for (int i = 0; i < n; i++) {
        avsr_tensor *t = avsr_params_at(p, i);
        snprintf(key, sizeof key, "%s.p.%s", c, t->name);
        avsr_error err = {0};
        avsr_st_tensor s;
        if (t->dtype == AVSR_F32) {
            if (avsr_st_read_f32(st, key, t->ndim, t->shape, avsr_f32(t), &err) < 0) {
                bad++;
                if (!first_bad)
                    first_bad = t->name;
                tap_diag("  %s: %s", t->name, err.msg);
            }
        } else if (avsr_st_find(st, key, &s) < 0 || s.dtype != t->dtype ||
                   s.nbytes != avsr_dtype_size(t->dtype) * (size_t)t->numel) {
            bad++;
            if (!first_bad)
                first_bad = t->name;
        } else {
            memcpy(t->data, s.data, s.nbytes);
        }
    }
    snprintf(pre, sizeof pre, "%s.p.", c);
    int nfix = 0;
    for (int i = 0; i < avsr_st_count(st); i++) {
        avsr_st_tensor s;
        avsr_st_get(st, i, &s);
        nfix += strncmp(s.name, pre, strlen(pre)) == 0;
    }
    return tap_ok(bad == 0 && nfix == n,
                  "%s: all %d parameters and buffers load by PyTorch name (fixture has %d)%s%s", c,
                  n, nfix, first_bad ? "; first failure " : "", first_bad ? first_bad : "");
}

/* Compare the gradient of every trainable parameter with "<c>.g.<name>";
 * one TAP line, diagnostics for each tensor out of tolerance. */
static inline bool fe_check_grads(avsr_st *st, const char *c, avsr_params *p)
{
    char key[512];
    int n = avsr_params_count_trainable(p), bad = 0;
    double worst = 0;
    for (int i = 0; i < avsr_params_count(p); i++) {
        if (avsr_params_is_buffer(p, i))
            continue;
        avsr_tensor *t = avsr_params_at(p, i);
        snprintf(key, sizeof key, "%s.g.%s", c, t->name);
        avsr_tensor *w = tu_golden_tensor(st, key, false);
        double rel = 0;
        bool ok = w->numel == t->numel && fe_excess(t->grad, avsr_f32(w), t->numel, &rel) <= 0.0;
        if (rel > worst)
            worst = rel;
        if (!ok) {
            bad++;
            tap_diag("  grad %s: max |err| / max |ref| = %.3e", t->name, rel);
        }
        avsr_tensor_free(w);
    }
    return tap_ok(bad == 0, "%s: gradients of all %d parameters match torch autograd (worst %.2e)",
                  c, n, worst);
}

/* Compare every f32 buffer named "running_*" with "<c>.after.<name>" and the
 * i64 counters with 1 (one training step). */
static inline bool fe_check_after(avsr_st *st, const char *c, avsr_params *p)
{
    char key[512];
    int bad = 0, nb = 0;
    for (int i = 0; i < avsr_params_count(p); i++) {
        if (!avsr_params_is_buffer(p, i))
            continue;
        avsr_tensor *t = avsr_params_at(p, i);
        nb++;
        if (t->dtype != AVSR_F32) {
            if (((int64_t *)t->data)[0] != 1) {
                bad++;
                tap_diag("  %s = %lld, expected 1", t->name, (long long)((int64_t *)t->data)[0]);
            }
            continue;
        }
        snprintf(key, sizeof key, "%s.after.%s", c, t->name);
        avsr_tensor *w = tu_golden_tensor(st, key, false);
        if (fe_excess(avsr_f32(t), avsr_f32(w), t->numel, NULL) > 0.0) {
            bad++;
            tap_diag("  buffer %s differs after the step", t->name);
        }
        avsr_tensor_free(w);
    }
    return tap_ok(bad == 0, "%s: all %d buffers (running statistics, counters) after the training step match",
                  c, nb);
}

/* JSON int array "[a, b]" of metadata field `field` in case c, into out
 * (at most n values); returns the count. Minimal parser for our own files. */
static inline int fe_meta_ints(avsr_st *st, const char *c, const char *field, int64_t *out, int n)
{
    const char *js = tu_golden_meta(st, c);
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\": [", field);
    const char *s = strstr(js, pat);
    if (!s)
        tap_bail("metadata of %s has no %s", c, field);
    s += strlen(pat);
    int k = 0;
    while (*s && *s != ']' && k < n) {
        char *end;
        out[k++] = strtoll(s, &end, 10);
        s = end;
        while (*s == ',' || *s == ' ')
            s++;
    }
    return k;
}

#endif
