/* test_search: greedy CTC, CTC prefix beam search, the CTC prefix scorer and
 * the joint CTC/attention beam search against the Python reference
 * (tests/golden/gen_search.py, fixture tests/golden/ops/search.safetensors),
 * plus batched == one-by-one, beam 1 == greedy attention decoding, edge
 * cases and bad input.
 *
 * Tolerance: token sequences must be equal. Scores are compared to
 * 1e-9 (absolute + relative): both sides compute in double from the same
 * float32 inputs with the same formula (numpy's logaddexp, glibc's
 * log1p/exp) in the same order, so they agree to a few ulp. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/search.h"
#include "safetensors.h"
#include "tap.h"
#include "testutil.h"

#define SCORE_TOL 1e-9

static avsr_st *st;

/* ---- fixture access ---- */

static int64_t *fx_i64(const char *name, int64_t *n)
{
    avsr_st_tensor t;
    if (avsr_st_find(st, name, &t) < 0)
        tap_bail("fixture has no tensor '%s'", name);
    if (t.dtype != AVSR_I64)
        tap_bail("fixture tensor '%s' is not I64", name);
    int64_t *v = malloc(sizeof(int64_t) * (size_t)(t.numel ? t.numel : 1));
    memcpy(v, t.data, sizeof(int64_t) * (size_t)t.numel);
    if (n)
        *n = t.numel;
    return v;
}

static double *fx_f64(const char *name, int64_t *n)
{
    char full[256];
    snprintf(full, sizeof full, "%s_bits", name);
    int64_t k;
    int64_t *v = fx_i64(full, &k);
    double *d = malloc(sizeof(double) * (size_t)(k ? k : 1));
    memcpy(d, v, sizeof(double) * (size_t)k);
    free(v);
    if (n)
        *n = k;
    return d;
}

static float *fx_f32(const char *name, int64_t *n, int64_t *shape, int *ndim)
{
    avsr_st_tensor t;
    if (avsr_st_find(st, name, &t) < 0)
        tap_bail("fixture has no tensor '%s'", name);
    if (t.dtype != AVSR_F32)
        tap_bail("fixture tensor '%s' is not F32", name);
    float *v = malloc(sizeof(float) * (size_t)t.numel);
    memcpy(v, t.data, sizeof(float) * (size_t)t.numel);
    if (n)
        *n = t.numel;
    if (shape)
        memcpy(shape, t.shape, sizeof(int64_t) * (size_t)t.ndim);
    if (ndim)
        *ndim = t.ndim;
    return v;
}

static int meta_int(const char *c, const char *key)
{
    const char *m = tu_golden_meta(st, c);
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(m, pat);
    if (!p)
        tap_bail("metadata of %s has no %s", c, key);
    return atoi(p + strlen(pat));
}

static double meta_dbl(const char *c, const char *key)
{
    const char *m = tu_golden_meta(st, c);
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(m, pat);
    if (!p)
        tap_bail("metadata of %s has no %s", c, key);
    return strtod(p + strlen(pat), NULL);
}

static bool close_d(double a, double b)
{
    return fabs(a - b) <= SCORE_TOL * (1.0 + fabs(b));
}

/* Compare an n-best list with the fixture's "<prefix>.tokens/offsets/scores". */
static bool nbest_matches(const avsr_nbest *nb, const char *prefix, char *why, size_t whylen)
{
    char n1[256], n2[256], n3[256];
    snprintf(n1, sizeof n1, "%s.tokens", prefix);
    snprintf(n2, sizeof n2, "%s.offsets", prefix);
    snprintf(n3, sizeof n3, "%s.scores", prefix);
    int64_t nt, no, ns;
    int64_t *tok = fx_i64(n1, &nt), *off = fx_i64(n2, &no);
    double *sc = fx_f64(n3, &ns);
    bool ok = true;
    if (nb->n != no - 1) {
        snprintf(why, whylen, "%d hypotheses, expected %lld", nb->n, (long long)(no - 1));
        ok = false;
    }
    for (int i = 0; ok && i < nb->n; i++) {
        int len = avsr_nbest_len(nb, i);
        if (len != off[i + 1] - off[i] ||
            memcmp(nb->tokens + nb->offset[i], tok + off[i], sizeof(int64_t) * (size_t)len)) {
            snprintf(why, whylen, "hypothesis %d differs (length %d, expected %lld)", i, len,
                     (long long)(off[i + 1] - off[i]));
            ok = false;
        } else if (!close_d(nb->score[i], sc[i])) {
            snprintf(why, whylen, "score %d: %.17g, expected %.17g", i, nb->score[i], sc[i]);
            ok = false;
        }
    }
    free(tok);
    free(off);
    free(sc);
    return ok;
}

static bool nbest_equal(const avsr_nbest *a, const avsr_nbest *b)
{
    if (a->n != b->n)
        return false;
    for (int i = 0; i < a->n; i++) {
        if (avsr_nbest_len(a, i) != avsr_nbest_len(b, i) ||
            memcmp(a->tokens + a->offset[i], b->tokens + b->offset[i],
                   sizeof(int64_t) * (size_t)avsr_nbest_len(a, i)) ||
            a->score[i] != b->score[i])
            return false;
    }
    return true;
}

/* ---- greedy CTC and prefix beam ---- */

static void test_ctc_case(const char *c)
{
    char name[256];
    int64_t shape[3];
    int nd;
    snprintf(name, sizeof name, "%s.logp", c);
    float *x = fx_f32(name, NULL, shape, &nd);
    snprintf(name, sizeof name, "%s.lens", c);
    int64_t B;
    int64_t *lens64 = fx_i64(name, &B);
    int Tmax = (int)shape[1], V = (int)shape[2];
    int *lens = malloc(sizeof(int) * (size_t)B);
    for (int b = 0; b < B; b++)
        lens[b] = (int)lens64[b];
    avsr_error err = {0};

    /* greedy */
    int64_t *g = malloc(sizeof(int64_t) * (size_t)(B * Tmax));
    int *glen = malloc(sizeof(int) * (size_t)B);
    int rc = avsr_ctc_greedy_batch(x, (int)B, Tmax, V, lens, 0, g, glen, &err);
    bool ok = rc == 0;
    for (int b = 0; ok && b < B; b++) {
        snprintf(name, sizeof name, "%s.u%d.greedy", c, b);
        int64_t n;
        int64_t *want = fx_i64(name, &n);
        ok = n == glen[b] && !memcmp(want, g + (size_t)b * Tmax, sizeof(int64_t) * (size_t)n);
        free(want);
    }
    tap_ok(ok, "%s: greedy CTC of %lld utterances equals the reference", c, (long long)B);

    /* prefix beam, batched */
    avsr_ctc_beam_opts o;
    avsr_ctc_beam_opts_default(&o);
    o.beam = meta_int(c, "beam");
    o.nbest = meta_int(c, "nbest");
    o.token_topk = meta_int(c, "topk");
    avsr_nbest *nb = calloc((size_t)B, sizeof *nb);
    rc = avsr_ctc_prefix_beam_batch(x, (int)B, Tmax, V, lens, &o, nb, &err);
    tap_ok(rc == 0, "%s: prefix beam batch runs%s%s", c, rc ? ": " : "", rc ? err.msg : "");
    char why[256] = "";
    ok = rc == 0;
    for (int b = 0; ok && b < B; b++) {
        snprintf(name, sizeof name, "%s.u%d.pbeam", c, b);
        ok = nbest_matches(&nb[b], name, why, sizeof why);
        if (!ok)
            tap_diag("utterance %d: %s", b, why);
    }
    tap_ok(ok, "%s: prefix beam (beam %d, topk %d) n-best equals the reference", c, o.beam,
           o.token_topk);
    /* one by one == batched; beam 1 top == greedy when no pruning ties matter */
    ok = true;
    for (int b = 0; b < B; b++) {
        avsr_nbest one = {0};
        if (avsr_ctc_prefix_beam(x + (size_t)b * Tmax * V, lens[b], V, &o, &one, &err) < 0 ||
            !nbest_equal(&one, &nb[b]))
            ok = false;
        avsr_nbest_free(&one);
    }
    tap_ok(ok, "%s: prefix beam one utterance at a time equals the batch", c);
    for (int b = 0; b < B; b++)
        avsr_nbest_free(&nb[b]);
    free(nb);
    free(g);
    free(glen);
    free(x);
    free(lens);
    free(lens64);
}

static void test_ctc_edges(void)
{
    avsr_error err = {0};
    int64_t out[16];
    int64_t shape[2];
    int nd;
    /* all blank: greedy empty; beam: the empty prefix first */
    float *x = fx_f32("edge_blank.logp", NULL, shape, &nd);
    int T = (int)shape[0], V = (int)shape[1];
    tap_ok(avsr_ctc_greedy(x, T, V, 0, out) == 0, "all-blank frames decode to nothing");
    avsr_ctc_beam_opts o;
    avsr_ctc_beam_opts_default(&o);
    o.beam = 3;
    o.nbest = 3;
    avsr_nbest nb = {0};
    int rc = avsr_ctc_prefix_beam(x, T, V, &o, &nb, &err);
    double want = 0.0;
    for (int t = 0; t < T; t++)
        want += x[t * V];
    tap_ok(rc == 0 && nb.n == 3 && avsr_nbest_len(&nb, 0) == 0 && close_d(nb.score[0], want),
           "all-blank frames: beam's best is the empty prefix with log p = sum log p(blank) "
           "(%.6g vs %.6g)", nb.n ? nb.score[0] : 0.0, want);
    avsr_nbest_free(&nb);
    /* T = 1 and T = 0 */
    int n1 = avsr_ctc_greedy(x, 1, V, 0, out);
    rc = avsr_ctc_prefix_beam(x, 0, V, &o, &nb, &err);
    tap_ok(n1 == 0 && rc == 0 && nb.n == 1 && avsr_nbest_len(&nb, 0) == 0 && nb.score[0] == 0.0,
           "T = 1 greedy and T = 0 beam: empty hypothesis, score 0");
    avsr_nbest_free(&nb);
    free(x);

    /* repeats with blanks between: 1 1 _ 1 2 2 _ _ 2 3 -> 1 1 2 2 3 */
    x = fx_f32("edge_repeat.logp", NULL, shape, &nd);
    T = (int)shape[0];
    V = (int)shape[1];
    int n = avsr_ctc_greedy(x, T, V, 0, out);
    const int64_t exp[] = {1, 1, 2, 2, 3};
    tap_ok(n == 5 && !memcmp(out, exp, sizeof exp), "repeats collapse unless a blank separates "
           "them (greedy: %d tokens)", n);
    o.beam = 4;
    o.nbest = 1;
    rc = avsr_ctc_prefix_beam(x, T, V, &o, &nb, &err);
    tap_ok(rc == 0 && nb.n == 1 && avsr_nbest_len(&nb, 0) == 5 && !memcmp(nb.tokens, exp,
           sizeof exp), "prefix beam finds the same sequence");
    avsr_nbest_free(&nb);
    /* beam 1 with topk 1 on peaky frames = greedy */
    o.beam = 1;
    o.token_topk = 1;
    rc = avsr_ctc_prefix_beam(x, T, V, &o, &nb, &err);
    tap_ok(rc == 0 && nb.n == 1 && avsr_nbest_len(&nb, 0) == 5, "beam 1, topk 1 on peaky "
           "frames equals greedy");
    avsr_nbest_free(&nb);
    free(x);
}

/* ---- CTC prefix scorer ---- */

static void test_prefix_scorer(void)
{
    int64_t shape[2];
    int nd;
    float *x = fx_f32("cps.logp", NULL, shape, &nd);
    int T = (int)shape[0], V = (int)shape[1];
    avsr_ctc_prefix s = {.logp = x, .T = T, .V = V, .blank = meta_int("cps", "blank"),
                         .eos = meta_int("cps", "eos")};
    const int64_t chain[] = {3, 3, 5, 1}; /* meta "chain" */
    double *r = malloc(sizeof(double) * 2 * T);
    double *rall = malloc(sizeof(double) * 2 * T * V);
    double *work = malloc(sizeof(double) * T);
    double psi[16];
    int64_t cs[16];
    for (int c = 0; c < V; c++)
        cs[c] = c;
    avsr_ctc_prefix_init(&s, r);
    int64_t n;
    double *want = fx_f64("cps.init", &n);
    bool ok = n == 2 * T;
    for (int k = 0; ok && k < 2 * T; k++)
        ok = close_d(r[k], want[k]);
    free(want);
    tap_ok(ok, "CTC prefix scorer: initial state (r^n = logzero, r^b = cumsum log p(blank))");
    int L = 0;
    int64_t last = s.eos;
    for (int step = 0; step <= 4; step++) {
        avsr_ctc_prefix_score(&s, L, last, r, V, cs, psi, rall, work);
        char name[64];
        snprintf(name, sizeof name, "cps.s%d.psi", step);
        want = fx_f64(name, &n);
        ok = n == V;
        double worst = 0;
        for (int c = 0; ok && c < V; c++) {
            ok = close_d(psi[c], want[c]);
            worst = fmax(worst, fabs(psi[c] - want[c]));
        }
        free(want);
        tap_ok(ok, "CTC prefix scorer: psi of all %d candidates after a prefix of length %d "
               "(max diff %.3g)", V, L, worst);
        if (step == 4)
            break;
        int64_t c = chain[step];
        snprintf(name, sizeof name, "cps.s%d.state", step);
        want = fx_f64(name, &n);
        ok = n == 2 * T;
        for (int k = 0; ok && k < 2 * T; k++)
            ok = close_d(rall[(size_t)c * 2 * T + k], want[k]);
        free(want);
        /* the single-candidate call gives the same state and psi */
        double ps1, *r1 = malloc(sizeof(double) * 2 * T);
        avsr_ctc_prefix_score(&s, L, last, r, 1, &c, &ps1, r1, work);
        ok = ok && ps1 == psi[c] && !memcmp(r1, rall + (size_t)c * 2 * T, sizeof(double) * 2 * T);
        tap_ok(ok, "CTC prefix scorer: state of the prefix extended by %lld", (long long)c);
        memcpy(r, r1, sizeof(double) * 2 * T);
        free(r1);
        L++;
        last = c;
    }
    /* subset of candidates in arbitrary order (pre-beam), incl. eos and blank */
    int64_t ns;
    int64_t *ids = fx_i64("cps.subset.ids", &ns);
    want = fx_f64("cps.subset.psi", NULL);
    avsr_ctc_prefix_score(&s, L, last, r, (int)ns, ids, psi, NULL, work);
    ok = true;
    for (int k = 0; k < ns; k++)
        ok = ok && close_d(psi[k], want[k]);
    tap_ok(ok, "CTC prefix scorer: a candidate subset scores as the reference (blank -> "
           "logzero, eos -> log p(prefix))");
    free(ids);
    free(want);
    free(r);
    free(rall);
    free(work);
    free(x);
}

/* ---- attention beam search ---- */

typedef struct table_dec {
    const float *table; /* [B, L + 1, V, V] */
    int L, V;
    int utt0;       /* global index of local utterance 0 */
    int sos;
    int calls, bad; /* contract checks */
    int fail_at;    /* fail at this call (-1: never) */
} table_dec;

static int table_step(void *user, int n, const int *utt, const int64_t *const *pre,
                      const int *len, float *out, avsr_error *err)
{
    table_dec *d = user;
    if (d->fail_at == d->calls)
        return avsr_error_set(err, AVSR_ERR_BACKEND, "table decoder: planned failure");
    for (int h = 0; h < n; h++) {
        if (pre[h][0] != d->sos || len[h] != d->calls + 1 || (h > 0 && utt[h] < utt[h - 1]))
            d->bad++;
        int l = len[h] - 1 < d->L ? len[h] - 1 : d->L;
        const float *row = d->table + ((((size_t)(d->utt0 + utt[h]) * (d->L + 1) + l) * d->V +
                                        pre[h][len[h] - 1]) * d->V);
        memcpy(out + (size_t)h * d->V, row, sizeof(float) * d->V);
    }
    d->calls++;
    return 0;
}

/* greedy attention decoding with the table decoder (beam 1, no CTC) */
static int greedy_att(const table_dec *d, int u, int maxlen, int eos, int64_t *out)
{
    int64_t y[256];
    int n = 1;
    y[0] = d->sos;
    for (int i = 0; i < maxlen; i++) {
        int l = n - 1 < d->L ? n - 1 : d->L;
        const float *row = d->table + ((((size_t)u * (d->L + 1) + l) * d->V + y[n - 1]) * d->V);
        int k = 0;
        for (int v = 1; v < d->V; v++)
            if (row[v] > row[k])
                k = v;
        if (k == eos)
            break;
        y[n++] = k;
    }
    memcpy(out, y + 1, sizeof(int64_t) * (size_t)(n - 1));
    return n - 1;
}

static void att_opts(const char *c, int V, avsr_att_beam_opts *o)
{
    avsr_att_beam_opts_default(o, V);
    o->beam = meta_int(c, "beam");
    o->nbest = o->beam;
    o->ctc_weight = meta_dbl(c, "ctc_weight");
    o->length_bonus = meta_dbl(c, "length_bonus");
    o->maxlenratio = meta_dbl(c, "maxlenratio");
    o->eos_always = meta_int(c, "eos_always");
}

static void test_att_case(const char *c)
{
    char name[256];
    int64_t shape[4];
    int nd;
    snprintf(name, sizeof name, "%s.logp", c);
    float *x = fx_f32(name, NULL, shape, &nd);
    int B = (int)shape[0], Tmax = (int)shape[1], V = (int)shape[2];
    snprintf(name, sizeof name, "%s.dec_table", c);
    float *tab = fx_f32(name, NULL, NULL, NULL);
    snprintf(name, sizeof name, "%s.lens", c);
    int64_t *lens64 = fx_i64(name, NULL);
    int lens[16];
    for (int b = 0; b < B; b++)
        lens[b] = (int)lens64[b];
    avsr_att_beam_opts o;
    att_opts(c, V, &o);
    table_dec d = {.table = tab, .L = meta_int(c, "L"), .V = V, .utt0 = 0, .sos = o.sos,
                   .fail_at = -1};
    avsr_error err = {0};
    avsr_nbest nb[16];
    int rc = avsr_att_beam_search(B, Tmax, V, o.ctc_weight > 0 ? x : NULL, lens,
                                  o.ctc_weight < 1 ? table_step : NULL, &d, &o, nb, &err);
    tap_ok(rc == 0, "%s: attention beam search runs (beam %d, ctc %.2f, bonus %.2f, "
           "maxlenratio %.1f, eos_always %d)%s%s", c, o.beam, o.ctc_weight, o.length_bonus,
           o.maxlenratio, o.eos_always, rc ? ": " : "", rc ? err.msg : "");
    if (rc)
        return;
    tap_ok(d.bad == 0, "%s: decoder callback saw <sos>-first prefixes of length step + 1, "
           "utterances in order (%d calls)", c, d.calls);
    char why[256] = "";
    bool ok = true;
    for (int b = 0; ok && b < B; b++) {
        snprintf(name, sizeof name, "%s.u%d.att", c, b);
        ok = nbest_matches(&nb[b], name, why, sizeof why);
        if (!ok)
            tap_diag("utterance %d: %s", b, why);
    }
    tap_ok(ok, "%s: n-best of %d utterances equals the ESPnet-semantics reference", c, B);
    /* one utterance at a time */
    ok = true;
    for (int b = 0; b < B; b++) {
        table_dec d1 = d;
        d1.utt0 = b;
        d1.calls = 0;
        avsr_nbest one;
        if (avsr_att_beam_search(1, Tmax, V, o.ctc_weight > 0 ? x + (size_t)b * Tmax * V : NULL,
                                 &lens[b], o.ctc_weight < 1 ? table_step : NULL, &d1, &o, &one,
                                 &err) < 0 ||
            !nbest_equal(&one, &nb[b]))
            ok = false;
        avsr_nbest_free(&one);
    }
    tap_ok(ok, "%s: one utterance at a time equals the batch", c);
    /* score parts: score = (1 - l) dec + l ctc + bonus * tokens, for hypotheses
     * that ended by choosing eos (score parts are reported for all) */
    if (o.ctc_weight > 0 && o.ctc_weight < 1 && o.length_bonus == 0.0 && o.maxlenratio == 0.0) {
        ok = true;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < nb[b].n; i++) {
                double s = (1 - o.ctc_weight) * nb[b].score_dec[i] +
                           o.ctc_weight * nb[b].score_ctc[i];
                if (avsr_nbest_len(&nb[b], i) + 1 < lens[b] && fabs(s - nb[b].score[i]) > 1e-9)
                    ok = false;
            }
        tap_ok(ok, "%s: total = (1 - lambda) * decoder + lambda * CTC prefix score", c);
    }
    for (int b = 0; b < B; b++)
        avsr_nbest_free(&nb[b]);

    /* beam 1 without CTC = greedy attention decoding */
    if (o.ctc_weight < 1) {
        avsr_att_beam_opts o1 = o;
        o1.beam = 1;
        o1.nbest = 1;
        o1.ctc_weight = 0;
        o1.length_bonus = 0;
        d.calls = 0;
        rc = avsr_att_beam_search(B, Tmax, V, NULL, lens, table_step, &d, &o1, nb, &err);
        ok = rc == 0;
        for (int b = 0; ok && b < B; b++) {
            int64_t g[256];
            int maxlen = o1.maxlenratio == 0 ? lens[b]
                         : o1.maxlenratio < 0 ? (int)-o1.maxlenratio
                                              : (int)fmax(1, (int)(o1.maxlenratio * lens[b]));
            int n = greedy_att(&d, b, maxlen, o1.eos, g);
            ok = nb[b].n == 1 && avsr_nbest_len(&nb[b], 0) == n &&
                 !memcmp(nb[b].tokens, g, sizeof(int64_t) * (size_t)n);
        }
        tap_ok(ok, "%s: beam 1 without CTC equals greedy attention decoding", c);
        if (rc == 0)
            for (int b = 0; b < B; b++)
                avsr_nbest_free(&nb[b]);
    }
    free(x);
    free(tab);
    free(lens64);
}

static void test_att_errors(void)
{
    int64_t shape[4];
    int nd;
    float *x = fx_f32("att_a.logp", NULL, shape, &nd);
    float *tab = fx_f32("att_a.dec_table", NULL, NULL, NULL);
    int B = (int)shape[0], Tmax = (int)shape[1], V = (int)shape[2];
    int lens[3] = {12, 9, 16};
    avsr_att_beam_opts o;
    att_opts("att_a", V, &o);
    table_dec d = {.table = tab, .L = meta_int("att_a", "L"), .V = V, .sos = o.sos,
                   .fail_at = 2};
    avsr_nbest nb[3];
    avsr_error err = {0};
    int rc = avsr_att_beam_search(B, Tmax, V, x, lens, table_step, &d, &o, nb, &err);
    tap_ok(rc < 0 && strstr(err.msg, "planned failure"),
           "a failing decoder callback stops the search with its message (%s)", err.msg);
    avsr_error_clear(&err);
    d.fail_at = -1;
    struct {
        const char *what, *msg;
        avsr_att_beam_opts o;
        int len0;
        int nullctc, nulldec;
    } bad[] = {
        {"beam > V", "beam 8 outside [1, V = 7]", o, 12, 0, 0},
        {"nbest > beam", "nbest 4 outside [1, beam = 3]", o, 12, 0, 0},
        {"ctc_weight 1.5", "ctc_weight 1.5 outside [0, 1]", o, 12, 0, 0},
        {"enc_len 0", "enc_len[0] = 0 outside [1, Tmax = 16]", o, 0, 0, 0},
        {"no CTC log-probs", "needs CTC log-probs", o, 12, 1, 0},
        {"no decoder", "needs a decoder", o, 12, 0, 1},
        {"pre_beam_ratio 0.5", "pre_beam_ratio 0.5: expected >= 1", o, 12, 0, 0},
        {"eos outside V", "eos 9", o, 12, 0, 0},
    };
    bad[0].o.beam = 8;
    bad[1].o.nbest = 4;
    bad[2].o.ctc_weight = 1.5;
    bad[6].o.pre_beam_ratio = 0.5;
    bad[7].o.eos = 9;
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        lens[0] = bad[k].len0;
        rc = avsr_att_beam_search(B, Tmax, V, bad[k].nullctc ? NULL : x, lens,
                                  bad[k].nulldec ? NULL : table_step, &d, &bad[k].o, nb, &err);
        tap_ok(rc < 0 && strstr(err.msg, bad[k].msg), "bad input (%s): %s", bad[k].what,
               err.msg);
        avsr_error_clear(&err);
    }
    /* CTC-side bad input */
    avsr_ctc_beam_opts co;
    avsr_ctc_beam_opts_default(&co);
    co.nbest = 11;
    avsr_nbest one;
    rc = avsr_ctc_prefix_beam(x, 3, V, &co, &one, &err);
    tap_ok(rc < 0 && strstr(err.msg, "1 <= nbest <= beam"), "bad input (nbest > beam): %s",
           err.msg);
    avsr_error_clear(&err);
    int blens[2] = {3, 20};
    int64_t g[64];
    int gl[2];
    rc = avsr_ctc_greedy_batch(x, 2, Tmax, V, blens, 0, g, gl, &err);
    tap_ok(rc < 0 && strstr(err.msg, "lens[1] = 20 outside [0, Tmax = 16]"),
           "bad input (length > Tmax): %s", err.msg);
    avsr_error_clear(&err);
    free(x);
    free(tab);
}

int main(void)
{
    st = tu_golden_open("search");
    const char *ctc[] = {"ctc_a", "ctc_b", "ctc_c", "ctc_d"};
    for (size_t k = 0; k < sizeof ctc / sizeof ctc[0]; k++)
        test_ctc_case(ctc[k]);
    test_ctc_edges();
    test_prefix_scorer();
    const char *att[] = {"att_a", "att_b", "att_c", "att_d", "att_e",
                         "att_f", "att_g", "att_h", "att_i"};
    for (size_t k = 0; k < sizeof att / sizeof att[0]; k++)
        test_att_case(att[k]);
    test_att_errors();
    avsr_st_close(st);
    return tap_done();
}
