/* search: greedy CTC, CTC prefix beam search, ESPnet's CTC prefix scorer and
 * the joint CTC/attention beam search (see search.h, docs/models/search.md).
 *
 * All log-domain sums use numpy's logaddexp formula (lae below) in double,
 * so that results agree with the Python reference of the golden fixture
 * (tests/golden/gen_search.py) to rounding. */
#include "models/search.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* log(exp(x) + exp(y)) as numpy's npy_logaddexp computes it, except that
 * a term more than 40 below the other is dropped without calling exp/log1p
 * (log1p(exp(-40)) = 4.2e-18 is below half an ulp of any |x| >= 0.07, so
 * the result is the same for log-probabilities that are not tiny). */
static inline double lae(double x, double y)
{
    if (x == y)
        return x + 0.69314718055994530942; /* also -inf + -inf = -inf */
    double d = x - y;
    if (d > 0)
        return d > 40.0 ? x : x + log1p(exp(-d));
    return d < -40.0 ? y : y + log1p(exp(d));
}

/* ---- n-best --------------------------------------------------------------- */

void avsr_nbest_free(avsr_nbest *nb)
{
    if (!nb)
        return;
    free(nb->offset);
    free(nb->tokens);
    free(nb->score);
    free(nb->score_dec);
    free(nb->score_ctc);
    memset(nb, 0, sizeof *nb);
}

/* Allocate room for n hypotheses with ntok tokens in all. */
static int nbest_alloc(avsr_nbest *nb, int n, int64_t ntok, avsr_error *err)
{
    memset(nb, 0, sizeof *nb);
    nb->offset = calloc((size_t)n + 1, sizeof *nb->offset);
    nb->tokens = malloc(sizeof *nb->tokens * (size_t)(ntok > 0 ? ntok : 1));
    nb->score = calloc((size_t)(n > 0 ? n : 1), sizeof *nb->score);
    nb->score_dec = calloc((size_t)(n > 0 ? n : 1), sizeof *nb->score_dec);
    nb->score_ctc = calloc((size_t)(n > 0 ? n : 1), sizeof *nb->score_ctc);
    if (!nb->offset || !nb->tokens || !nb->score || !nb->score_dec || !nb->score_ctc) {
        avsr_nbest_free(nb);
        return AVSR_NOMEM(err, sizeof(int64_t) * (size_t)ntok);
    }
    nb->n = n;
    return 0;
}

/* ---- top-k helper ----------------------------------------------------------- */

/* a ranks before b: larger value, ties to the lower id */
static inline bool rank_before(const float *v, int a, int b)
{
    return v[a] > v[b] || (v[a] == v[b] && a < b);
}

/* The k best ids of v[0..V) (excluding `skip`, which may be -1) into ids,
 * in no particular order, via a size-k heap whose root is the worst kept.
 * Returns the number written (min(k, candidates)). */
static int topk_ids(const float *v, int V, int k, int skip, int *ids)
{
    int n = 0;
    for (int c = 0; c < V; c++) {
        if (c == skip)
            continue;
        if (n < k) {
            /* sift up */
            int i = n++;
            ids[i] = c;
            while (i > 0) {
                int p = (i - 1) / 2;
                if (!rank_before(v, ids[p], ids[i]))
                    break;
                int t = ids[p];
                ids[p] = ids[i];
                ids[i] = t;
                i = p;
            }
        } else if (k > 0 && rank_before(v, c, ids[0])) {
            ids[0] = c;
            int i = 0;
            for (;;) {
                int l = 2 * i + 1, r = l + 1, w = i;
                if (l < n && rank_before(v, ids[w], ids[l]))
                    w = l;
                if (r < n && rank_before(v, ids[w], ids[r]))
                    w = r;
                if (w == i)
                    break;
                int t = ids[w];
                ids[w] = ids[i];
                ids[i] = t;
                i = w;
            }
        }
    }
    return n;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* ---- greedy CTC ------------------------------------------------------------- */

int avsr_ctc_greedy(const float *logp, int T, int V, int blank, int64_t *out)
{
    int n = 0, prev = -1;
    for (int t = 0; t < T; t++) {
        const float *row = logp + (size_t)t * V;
        int k = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[k])
                k = v;
        if (k != prev && k != blank)
            out[n++] = k;
        prev = k;
    }
    return n;
}

static int check_batch(const char *fn, const float *logp, int B, int Tmax, int V, const int *lens,
                       int blank, avsr_error *err)
{
    if (!logp || !lens || B < 0 || Tmax < 0 || V < 2)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: bad arguments (logp %p, lens %p, B %d, Tmax %d, V %d; "
                              "expected non-NULL arrays, B >= 0, Tmax >= 0, V >= 2)",
                              fn, (const void *)logp, (const void *)lens, B, Tmax, V);
    if (blank < 0 || blank >= V)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: blank id %d outside [0, %d)", fn, blank,
                              V);
    for (int b = 0; b < B; b++)
        if (lens[b] < 0 || lens[b] > Tmax)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "%s: lens[%d] = %d outside [0, Tmax = %d]", fn, b, lens[b],
                                  Tmax);
    return 0;
}

int avsr_ctc_greedy_batch(const float *logp, int B, int Tmax, int V, const int *lens, int blank,
                          int64_t *out, int *out_len, avsr_error *err)
{
    if (check_batch("avsr_ctc_greedy_batch", logp, B, Tmax, V, lens, blank, err) < 0)
        return -1;
    if (!out || !out_len)
        return avsr_error_set(err, AVSR_ERR_INVALID, "avsr_ctc_greedy_batch: out is NULL");
#pragma omp parallel for schedule(static) if (B > 1)
    for (int b = 0; b < B; b++)
        out_len[b] = avsr_ctc_greedy(logp + (size_t)b * Tmax * V, lens[b], V, blank,
                                     out + (size_t)b * Tmax);
    return 0;
}

/* ---- CTC prefix beam search -------------------------------------------------- */

void avsr_ctc_beam_opts_default(avsr_ctc_beam_opts *o)
{
    o->beam = 10;
    o->nbest = 1;
    o->blank = 0;
    o->token_topk = 0;
}

typedef struct pbeam {
    int64_t *seq; /* tokens, in the generation's buffer */
    int len;
    double pb, pnb;    /* log p ending in blank / in the last label */
    uint64_t hash;     /* hash of seq */
    uint64_t phash;    /* hash of seq[0 .. len-1) */
} pbeam;

typedef struct pcand {
    int parent;  /* beam index */
    int64_t tok; /* appended token, or -1: the parent's own prefix */
    double pb, pnb, score;
    int order;   /* creation order (breaks score ties) */
} pcand;

static inline uint64_t hash_push(uint64_t h, int64_t c)
{
    h ^= (uint64_t)c + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0x100000001b3ull;
}
#define HASH_EMPTY 0xcbf29ce484222325ull

static int cmp_pcand(const void *a, const void *b)
{
    const pcand *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

/* Partially order cand[0..n) so that its k best (by cmp_pcand, a strict
 * total order) come first, in any order: quickselect with a median-of-three
 * pivot (deterministic). */
static void select_pcand(pcand *c, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        /* median of three into c[hi] as the pivot */
        if (cmp_pcand(&c[mid], &c[lo]) < 0) {
            pcand t = c[mid]; c[mid] = c[lo]; c[lo] = t;
        }
        if (cmp_pcand(&c[hi], &c[lo]) < 0) {
            pcand t = c[hi]; c[hi] = c[lo]; c[lo] = t;
        }
        if (cmp_pcand(&c[mid], &c[hi]) < 0) {
            pcand t = c[mid]; c[mid] = c[hi]; c[hi] = t;
        }
        const pcand piv = c[hi];
        int st = lo;
        for (int i = lo; i < hi; i++)
            if (cmp_pcand(&c[i], &piv) < 0) {
                pcand t = c[i]; c[i] = c[st]; c[st] = t;
                st++;
            }
        c[hi] = c[st];
        c[st] = piv;
        if (st == k - 1 || st == k)
            return;
        if (st < k)
            lo = st + 1;
        else
            hi = st - 1;
    }
}

typedef struct pb_work {
    pbeam *beams, *next;  /* [beam] */
    int64_t *buf[2];      /* [beam, T + 1] sequence storage per generation */
    pcand *cand;          /* [beam * V] */
    int *cand_of_beam;    /* [beam] candidate holding beam b's own prefix, or -1 */
    int *ext_parent;      /* [beam] beam whose prefix is b's without its last label */
    int *kid_head;        /* [beam] first beam extending beam a by one label, or -1 */
    int *kid_next;        /* [beam] next such beam */
    int *tokens;          /* [V] */
} pb_work;

static void pb_work_free(pb_work *w)
{
    free(w->beams);
    free(w->next);
    free(w->buf[0]);
    free(w->buf[1]);
    free(w->cand);
    free(w->cand_of_beam);
    free(w->ext_parent);
    free(w->kid_head);
    free(w->kid_next);
    free(w->tokens);
}

static int new_cand(pcand *cand, int *nc, int parent, int64_t tok)
{
    int i = (*nc)++;
    cand[i].parent = parent;
    cand[i].tok = tok;
    cand[i].pb = -INFINITY;
    cand[i].pnb = -INFINITY;
    cand[i].order = i;
    return i;
}

int avsr_ctc_prefix_beam(const float *logp, int T, int V, const avsr_ctc_beam_opts *o,
                         avsr_nbest *out, avsr_error *err)
{
    if (!logp || !o || !out || T < 0 || V < 2)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_ctc_prefix_beam: bad arguments (T %d, V %d; expected "
                              "non-NULL logp/opts/out, T >= 0, V >= 2)", T, V);
    if (o->beam < 1 || o->nbest < 1 || o->nbest > o->beam)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_ctc_prefix_beam: beam %d, nbest %d: expected beam >= 1 "
                              "and 1 <= nbest <= beam", o->beam, o->nbest);
    if (o->blank < 0 || o->blank >= V)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_ctc_prefix_beam: blank id %d outside [0, %d)", o->blank, V);
    if (o->token_topk < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_ctc_prefix_beam: token_topk %d is negative", o->token_topk);
    const int W = o->beam, blank = o->blank;
    const int ntok_all = V - 1;
    const int topk = (o->token_topk > 0 && o->token_topk < ntok_all) ? o->token_topk : 0;
    const int ncand_max = W * (1 + (topk ? topk : ntok_all));
    pb_work w = {0};
    w.beams = malloc(sizeof *w.beams * (size_t)W);
    w.next = malloc(sizeof *w.next * (size_t)W);
    w.buf[0] = malloc(sizeof(int64_t) * (size_t)W * ((size_t)T + 1));
    w.buf[1] = malloc(sizeof(int64_t) * (size_t)W * ((size_t)T + 1));
    w.cand = malloc(sizeof *w.cand * (size_t)ncand_max);
    w.cand_of_beam = malloc(sizeof(int) * (size_t)W);
    w.ext_parent = malloc(sizeof(int) * (size_t)W);
    w.kid_head = malloc(sizeof(int) * (size_t)W);
    w.kid_next = malloc(sizeof(int) * (size_t)W);
    w.tokens = malloc(sizeof(int) * (size_t)V);
    if (!w.beams || !w.next || !w.buf[0] || !w.buf[1] || !w.cand || !w.cand_of_beam ||
        !w.ext_parent || !w.kid_head || !w.kid_next || !w.tokens) {
        pb_work_free(&w);
        return AVSR_NOMEM(err, sizeof *w.cand * (size_t)ncand_max);
    }
    int nb = 1, gen = 0;
    w.beams[0] = (pbeam){.seq = w.buf[0], .len = 0, .pb = 0.0, .pnb = -INFINITY,
                         .hash = HASH_EMPTY, .phash = 0};
    int ntok = 0;
    if (!topk)
        for (int c = 0; c < V; c++)
            if (c != blank)
                w.tokens[ntok++] = c;

    for (int t = 0; t < T; t++) {
        const float *lp = logp + (size_t)t * V;
        if (topk) {
            ntok = topk_ids(lp, V, topk, blank, w.tokens);
            qsort(w.tokens, (size_t)ntok, sizeof(int), cmp_int);
        }
        /* which beams extend which: ext_parent[b] = a if seq(a) + last(b) = seq(b) */
        for (int b = 0; b < nb; b++)
            w.kid_head[b] = -1;
        for (int b = nb - 1; b >= 0; b--) {
            w.cand_of_beam[b] = -1;
            w.ext_parent[b] = -1;
            const pbeam *pb = &w.beams[b];
            if (pb->len == 0)
                continue;
            for (int a = 0; a < nb; a++) {
                const pbeam *pa = &w.beams[a];
                if (pa->len == pb->len - 1 && pa->hash == pb->phash &&
                    memcmp(pa->seq, pb->seq, sizeof(int64_t) * (size_t)pa->len) == 0) {
                    w.ext_parent[b] = a;
                    w.kid_next[b] = w.kid_head[a];
                    w.kid_head[a] = b;
                    break;
                }
            }
        }
        int nc = 0;
        const double lb = lp[blank];
        for (int a = 0; a < nb; a++) {
            const pbeam *pa = &w.beams[a];
            if (w.cand_of_beam[a] < 0)
                w.cand_of_beam[a] = new_cand(w.cand, &nc, a, -1);
            pcand *stay = &w.cand[w.cand_of_beam[a]];
            stay->pb = lae(stay->pb, lae(pa->pb + lb, pa->pnb + lb));
            const int64_t last = pa->len ? pa->seq[pa->len - 1] : -1;
            for (int j = 0; j < ntok; j++) {
                const int c = w.tokens[j];
                const double p = lp[c];
                /* is seq(a) + c already a beam? */
                int ce = -1;
                for (int b = w.kid_head[a]; b >= 0; b = w.kid_next[b])
                    if (w.beams[b].seq[w.beams[b].len - 1] == c) {
                        if (w.cand_of_beam[b] < 0)
                            w.cand_of_beam[b] = new_cand(w.cand, &nc, b, -1);
                        ce = w.cand_of_beam[b];
                        break;
                    }
                if (ce < 0)
                    ce = new_cand(w.cand, &nc, a, c);
                if (c == last) {
                    w.cand[ce].pnb = lae(w.cand[ce].pnb, pa->pb + p);
                    pcand *s = &w.cand[w.cand_of_beam[a]];
                    s->pnb = lae(s->pnb, pa->pnb + p);
                } else {
                    w.cand[ce].pnb = lae(w.cand[ce].pnb, lae(pa->pb + p, pa->pnb + p));
                }
            }
        }
        /* keep the best W (impossible prefixes dropped) */
        int nk = 0;
        for (int i = 0; i < nc; i++) {
            w.cand[i].score = lae(w.cand[i].pb, w.cand[i].pnb);
            if (w.cand[i].score > -INFINITY)
                w.cand[nk++] = w.cand[i];
        }
        if (nk > W) {
            select_pcand(w.cand, nk, W);
            nk = W;
        }
        qsort(w.cand, (size_t)nk, sizeof *w.cand, cmp_pcand);
        gen ^= 1;
        for (int i = 0; i < nk; i++) {
            const pcand *c = &w.cand[i];
            const pbeam *par = &w.beams[c->parent];
            pbeam *nbm = &w.next[i];
            nbm->seq = w.buf[gen] + (size_t)i * ((size_t)T + 1);
            memcpy(nbm->seq, par->seq, sizeof(int64_t) * (size_t)par->len);
            nbm->len = par->len;
            nbm->hash = par->hash;
            nbm->phash = par->phash;
            if (c->tok >= 0) {
                nbm->seq[nbm->len++] = c->tok;
                nbm->phash = par->hash;
                nbm->hash = hash_push(par->hash, c->tok);
            }
            nbm->pb = c->pb;
            nbm->pnb = c->pnb;
        }
        pbeam *tmp = w.beams;
        w.beams = w.next;
        w.next = tmp;
        nb = nk;
    }

    int n = nb < o->nbest ? nb : o->nbest;
    int64_t ntot = 0;
    for (int i = 0; i < n; i++)
        ntot += w.beams[i].len;
    if (nbest_alloc(out, n, ntot, err) < 0) {
        pb_work_free(&w);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const pbeam *pb = &w.beams[i];
        memcpy(out->tokens + out->offset[i], pb->seq, sizeof(int64_t) * (size_t)pb->len);
        out->offset[i + 1] = out->offset[i] + pb->len;
        out->score[i] = lae(pb->pb, pb->pnb);
        out->score_ctc[i] = out->score[i];
    }
    pb_work_free(&w);
    return 0;
}

int avsr_ctc_prefix_beam_batch(const float *logp, int B, int Tmax, int V, const int *lens,
                               const avsr_ctc_beam_opts *o, avsr_nbest *out, avsr_error *err)
{
    if (check_batch("avsr_ctc_prefix_beam_batch", logp, B, Tmax, V, lens, o ? o->blank : 0,
                    err) < 0)
        return -1;
    if (!o || !out)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_ctc_prefix_beam_batch: opts or out is NULL");
    for (int b = 0; b < B; b++)
        memset(&out[b], 0, sizeof out[b]);
    int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) if (B > 1)
    for (int b = 0; b < B; b++) {
        avsr_error e = {0};
        if (avsr_ctc_prefix_beam(logp + (size_t)b * Tmax * V, lens[b], V, o, &out[b], &e) < 0) {
#pragma omp critical(avsr_search_err)
            {
                if (!failed)
                    avsr_error_set(err, e.code, "utterance %d: %s", b, e.msg);
                failed = 1;
            }
        }
    }
    if (failed) {
        for (int b = 0; b < B; b++)
            avsr_nbest_free(&out[b]);
        return -1;
    }
    return 0;
}

/* ---- CTC prefix scorer -------------------------------------------------------- */

void avsr_ctc_prefix_init(const avsr_ctc_prefix *s, double *r)
{
    const int T = s->T, V = s->V;
    double acc = 0.0;
    for (int t = 0; t < T; t++) {
        double xb = s->logp[(size_t)t * V + s->blank];
        acc = t ? acc + xb : xb;
        r[2 * t] = AVSR_SEARCH_LOGZERO;
        r[2 * t + 1] = acc;
    }
}

void avsr_ctc_prefix_score(const avsr_ctc_prefix *s, int L, int64_t last, const double *r_prev,
                           int n, const int64_t *cs, double *psi, double *r_out, double *work)
{
    const int T = s->T, V = s->V;
    const float *x = s->logp;
    double *rsum = work; /* [T] log(r^n + r^b) of g */
    for (int t = 0; t < T; t++)
        rsum[t] = lae(r_prev[2 * t], r_prev[2 * t + 1]);
    const int start = L > 1 ? L : 1;
    if (s->logp_t) {
        /* time-contiguous columns: one candidate at a time */
        const float *xb = s->logp_t + (size_t)s->blank * T;
        for (int i = 0; i < n; i++) {
            const int64_t c = cs[i];
            const float *xc = s->logp_t + (size_t)c * T;
            const bool rep = L > 0 && c == last;
            const double *phi = rep ? r_prev + 1 : rsum;
            const int ps = rep ? 2 : 1;
            double lpsi = AVSR_SEARCH_LOGZERO;
            double *r = r_out ? r_out + (size_t)i * T * 2 : NULL; /* [T, 2] */
            if (r)
                for (int t = 0; t < 2 * T; t++)
                    r[t] = AVSR_SEARCH_LOGZERO;
            if (start - 1 < T) {
                if (L == 0) {
                    lpsi = xc[0];
                    if (r)
                        r[0] = xc[0];
                }
                if (r) {
                    double rn = r[2 * (start - 1)], rb = r[2 * (start - 1) + 1];
                    for (int t = start; t < T; t++) {
                        const double ph = phi[(size_t)(t - 1) * ps];
                        const double nrn = lae(rn, ph) + (double)xc[t];
                        const double nrb = lae(rn, rb) + (double)xb[t];
                        lpsi = lae(lpsi, ph + (double)xc[t]);
                        r[2 * t] = rn = nrn;
                        r[2 * t + 1] = rb = nrb;
                    }
                } else {
                    for (int t = start; t < T; t++)
                        lpsi = lae(lpsi, phi[(size_t)(t - 1) * ps] + (double)xc[t]);
                }
            }
            if (c == s->eos)
                lpsi = rsum[T - 1];
            if (c == s->blank)
                lpsi = AVSR_SEARCH_LOGZERO;
            psi[i] = lpsi;
        }
        return;
    }
    if (!r_out) {
        /* scores only: frames outer, candidates inner, so that each frame's
         * row of logp is read once; each candidate's sum runs over t in the
         * same order as below */
        for (int i = 0; i < n; i++)
            psi[i] = (L == 0 && start - 1 < T) ? (double)x[cs[i]] : AVSR_SEARCH_LOGZERO;
        for (int t = start; t < T; t++) {
            const float *row = x + (size_t)t * V;
            const double ps = rsum[t - 1], pb = r_prev[2 * (t - 1) + 1];
            for (int i = 0; i < n; i++) {
                const int64_t c = cs[i];
                const double ph = (L > 0 && c == last) ? pb : ps;
                psi[i] = lae(psi[i], ph + (double)row[c]);
            }
        }
        for (int i = 0; i < n; i++) {
            if (cs[i] == s->eos)
                psi[i] = rsum[T - 1];
            if (cs[i] == s->blank)
                psi[i] = AVSR_SEARCH_LOGZERO;
        }
        return;
    }
    /* with states: one candidate at a time */
    for (int i = 0; i < n; i++) {
        const int64_t c = cs[i];
        /* phi_t: paths that may emit c at t + 1: r^n + r^b, or only r^b when c
         * repeats g's last label */
        const bool rep = L > 0 && c == last;
        const double *phi = rep ? r_prev + 1 : rsum;
        const int ps = rep ? 2 : 1;
        double lpsi = AVSR_SEARCH_LOGZERO;
        double *r = r_out + (size_t)i * T * 2; /* [T, 2] */
        for (int t = 0; t < 2 * T; t++)
            r[t] = AVSR_SEARCH_LOGZERO;
        if (start - 1 < T) { /* else g + c is longer than the frames */
            if (L == 0)
                lpsi = r[0] = x[c];
            double rn = r[2 * (start - 1)], rb = r[2 * (start - 1) + 1];
            for (int t = start; t < T; t++) {
                const double xc = x[(size_t)t * V + c], xb = x[(size_t)t * V + s->blank];
                const double ph = phi[(size_t)(t - 1) * ps];
                const double nrn = lae(rn, ph) + xc;
                const double nrb = lae(rn, rb) + xb;
                lpsi = lae(lpsi, ph + xc);
                r[2 * t] = rn = nrn;
                r[2 * t + 1] = rb = nrb;
            }
        }
        if (c == s->eos)
            lpsi = rsum[T - 1];
        if (c == s->blank)
            lpsi = AVSR_SEARCH_LOGZERO;
        psi[i] = lpsi;
    }
}

/* ---- attention beam search ------------------------------------------------------ */

void avsr_att_beam_opts_default(avsr_att_beam_opts *o, int V)
{
    o->beam = 40;
    o->nbest = 1;
    o->ctc_weight = 0.1;
    o->pre_beam_ratio = 1.5;
    o->length_bonus = 0.0;
    o->maxlenratio = 0.0;
    o->sos = V - 1;
    o->eos = V - 1;
    o->blank = 0;
    o->eos_always = 1;
    o->end_m = 3;
    o->end_d = -10.0;
}

typedef struct ahyp {
    int64_t *yseq; /* [len], yseq[0] = sos */
    int len;
    double score, dec, ctc; /* ctc: log psi of the prefix (CTC scorer's s_prev) */
    double *r;              /* [T, 2] CTC state or NULL */
} ahyp;

typedef struct acand {
    double w;
    int64_t flat; /* hyp * V + token: breaks ties as torch.topk's order would not */
    int hyp;
    int tok;
    double dec, psi;
} acand;

typedef struct autt {
    int T, maxlen;
    bool done;
    const float *x; /* [T, V] CTC log-probs or NULL */
    float *xt;      /* [V, T] the same, transposed (owned) */
    ahyp *run;
    int nrun;
    ahyp *ended; /* all ended hypotheses (r = NULL) */
    int nended, cap_ended;
    double best_all;
    double *best_len; /* [maxlen + 3] best ended score by yseq length */
    /* scratch */
    acand *cand;
    int cap_cand;
} autt;

static void ahyp_free(ahyp *h)
{
    free(h->yseq);
    free(h->r);
    h->yseq = NULL;
    h->r = NULL;
}

static void autt_free(autt *u)
{
    for (int i = 0; i < u->nrun; i++)
        ahyp_free(&u->run[i]);
    for (int i = 0; i < u->nended; i++)
        ahyp_free(&u->ended[i]);
    free(u->run);
    free(u->ended);
    free(u->best_len);
    free(u->cand);
    free(u->xt);
    memset(u, 0, sizeof *u);
}

static int cmp_acand(const void *a, const void *b)
{
    const acand *x = a, *y = b;
    if (x->w != y->w)
        return x->w > y->w ? -1 : 1;
    return (x->flat > y->flat) - (x->flat < y->flat);
}

/* As select_pcand, for attention candidates. */
static void select_acand(acand *c, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cmp_acand(&c[mid], &c[lo]) < 0) {
            acand t = c[mid]; c[mid] = c[lo]; c[lo] = t;
        }
        if (cmp_acand(&c[hi], &c[lo]) < 0) {
            acand t = c[hi]; c[hi] = c[lo]; c[lo] = t;
        }
        if (cmp_acand(&c[mid], &c[hi]) < 0) {
            acand t = c[mid]; c[mid] = c[hi]; c[hi] = t;
        }
        const acand piv = c[hi];
        int st = lo;
        for (int i = lo; i < hi; i++)
            if (cmp_acand(&c[i], &piv) < 0) {
                acand t = c[i]; c[i] = c[st]; c[st] = t;
                st++;
            }
        c[hi] = c[st];
        c[st] = piv;
        if (st == k - 1 || st == k)
            return;
        if (st < k)
            lo = st + 1;
        else
            hi = st - 1;
    }
}

typedef struct asort {
    double score;
    int idx;
} asort;

static int cmp_asort(const void *a, const void *b)
{
    const asort *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* ESPnet end_detect (e2e_asr_common.py): true when, for each of the M
 * lengths i, i-1, .., i-M+1 (yseq lengths with <sos> and <eos>), some
 * hypothesis of that length ended and the best of them is more than |D|
 * below the best ended hypothesis. */
static bool end_detect(const autt *u, int i, const avsr_att_beam_opts *o)
{
    if (u->nended == 0)
        return false;
    int count = 0;
    for (int m = 0; m < o->end_m; m++) {
        int L = i - m;
        if (L < 0 || L > u->maxlen + 2)
            continue;
        if (u->best_len[L] > -INFINITY && u->best_len[L] - u->best_all < o->end_d)
            count++;
    }
    return count == o->end_m;
}

/* One search step for one utterance: expand its running hypotheses with the
 * decoder rows dec [nrun, V] (NULL without decoder), keep the best beam,
 * move ended ones. */
static int att_step(autt *u, int i, int V, const float *dec, const avsr_att_beam_opts *o,
                    int *ids, double *psi, double *work, avsr_error *err)
{
    const double lam = o->ctc_weight, dw = 1.0 - lam;
    const bool use_dec = dw != 0.0, use_ctc = lam != 0.0;
    const int K = (int)(o->pre_beam_ratio * o->beam);
    const bool pre = use_dec && use_ctc && K < V;
    avsr_ctc_prefix cps = {.logp = u->x, .logp_t = u->xt, .T = u->T, .V = V,
                           .blank = o->blank, .eos = o->eos};
    const int per = pre ? K + 1 : V;
    if (u->cap_cand < u->nrun * per) {
        free(u->cand);
        u->cap_cand = u->nrun * per;
        u->cand = malloc(sizeof *u->cand * (size_t)u->cap_cand);
        if (!u->cand)
            return AVSR_NOMEM(err, sizeof *u->cand * (size_t)u->cap_cand);
    }
    int nc = 0;
    for (int h = 0; h < u->nrun; h++) {
        const ahyp *hy = &u->run[h];
        const float *d = use_dec ? dec + (size_t)h * V : NULL;
        int n;
        if (pre) {
            n = topk_ids(d, V, K, -1, ids);
            if (o->eos_always) {
                bool has = false;
                for (int j = 0; j < n; j++)
                    has |= ids[j] == o->eos;
                if (!has)
                    ids[n++] = o->eos;
            }
        } else {
            n = V;
            for (int c = 0; c < V; c++)
                ids[c] = c;
        }
        if (use_ctc) {
            /* candidates as int64 for the scorer: reuse work past T */
            int64_t *cs = (int64_t *)(work + u->T);
            for (int j = 0; j < n; j++)
                cs[j] = ids[j];
            avsr_ctc_prefix_score(&cps, hy->len - 1, hy->yseq[hy->len - 1], hy->r, n, cs, psi,
                                  NULL, work);
        }
        for (int j = 0; j < n; j++) {
            const int c = ids[j];
            double w = 0.0;
            if (use_dec)
                w += dw * (double)d[c];
            if (o->length_bonus != 0.0)
                w += o->length_bonus;
            if (use_ctc)
                w += lam * (psi[j] - hy->ctc);
            w += hy->score;
            acand *ca = &u->cand[nc++];
            ca->w = w;
            ca->flat = (int64_t)h * V + c;
            ca->hyp = h;
            ca->tok = c;
            ca->dec = use_dec ? (double)d[c] : 0.0;
            ca->psi = use_ctc ? psi[j] : 0.0;
        }
    }
    const int nsel = nc < o->beam ? nc : o->beam;
    if (nc > nsel)
        select_acand(u->cand, nc, nsel);
    qsort(u->cand, (size_t)nsel, sizeof *u->cand, cmp_acand);
    const bool last_step = i == u->maxlen - 1;
    ahyp *nrun = calloc((size_t)(nsel > 0 ? nsel : 1), sizeof *nrun);
    if (!nrun)
        return AVSR_NOMEM(err, sizeof *nrun * (size_t)nsel);
    int nr = 0, rc = 0;
    for (int k = 0; k < nsel && rc == 0; k++) {
        const acand *ca = &u->cand[k];
        const ahyp *par = &u->run[ca->hyp];
        ahyp nh = {0};
        nh.len = par->len + 1 + (last_step ? 1 : 0);
        nh.yseq = malloc(sizeof(int64_t) * (size_t)nh.len);
        if (!nh.yseq) {
            rc = AVSR_NOMEM(err, sizeof(int64_t) * (size_t)nh.len);
            break;
        }
        memcpy(nh.yseq, par->yseq, sizeof(int64_t) * (size_t)par->len);
        nh.yseq[par->len] = ca->tok;
        if (last_step)
            nh.yseq[par->len + 1] = o->eos; /* forced, not scored (ESPnet) */
        nh.score = ca->w;
        nh.dec = par->dec + ca->dec;
        nh.ctc = ca->psi;
        const bool ended = nh.yseq[nh.len - 1] == o->eos;
        if (use_ctc && !ended) {
            nh.r = malloc(sizeof(double) * 2 * (size_t)u->T);
            if (!nh.r) {
                free(nh.yseq);
                rc = AVSR_NOMEM(err, sizeof(double) * 2 * (size_t)u->T);
                break;
            }
            int64_t c64 = ca->tok;
            double ps;
            avsr_ctc_prefix_score(&cps, par->len - 1, par->yseq[par->len - 1], par->r, 1, &c64,
                                  &ps, nh.r, work);
        }
        if (ended) {
            if (u->nended == u->cap_ended) {
                int cap = u->cap_ended ? 2 * u->cap_ended : 16;
                ahyp *e = realloc(u->ended, sizeof *e * (size_t)cap);
                if (!e) {
                    ahyp_free(&nh);
                    rc = AVSR_NOMEM(err, sizeof *e * (size_t)cap);
                    break;
                }
                u->ended = e;
                u->cap_ended = cap;
            }
            u->ended[u->nended++] = nh;
            if (nh.score > u->best_all)
                u->best_all = nh.score;
            if (nh.len <= u->maxlen + 2 && nh.score > u->best_len[nh.len])
                u->best_len[nh.len] = nh.score;
        } else {
            nrun[nr++] = nh;
        }
    }
    for (int h = 0; h < u->nrun; h++)
        ahyp_free(&u->run[h]);
    free(u->run);
    u->run = nrun;
    u->nrun = nr;
    if (rc < 0)
        return rc;
    if (o->maxlenratio == 0.0 && end_detect(u, i, o))
        u->done = true;
    if (u->nrun == 0 || i + 1 >= u->maxlen)
        u->done = true;
    return 0;
}

static int check_att(int B, int Tmax, int V, const float *ctc_logp, const int *enc_len,
                     avsr_dec_step_fn dec, const avsr_att_beam_opts *o, avsr_nbest *out,
                     avsr_error *err)
{
    const char *fn = "avsr_att_beam_search";
    if (!o || !out || !enc_len || B < 0 || Tmax < 1 || V < 2)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: bad arguments (B %d, Tmax %d, V %d; expected non-NULL "
                              "opts/out/enc_len, B >= 0, Tmax >= 1, V >= 2)", fn, B, Tmax, V);
    if (!(o->ctc_weight >= 0.0 && o->ctc_weight <= 1.0))
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: ctc_weight %g outside [0, 1]", fn,
                              o->ctc_weight);
    if (o->beam < 1 || o->beam > V)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: beam %d outside [1, V = %d]", fn,
                              o->beam, V);
    if (o->nbest < 1 || o->nbest > o->beam)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: nbest %d outside [1, beam = %d]", fn,
                              o->nbest, o->beam);
    if (!(o->pre_beam_ratio >= 1.0))
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: pre_beam_ratio %g: expected >= 1",
                              fn, o->pre_beam_ratio);
    if (o->sos < 0 || o->sos >= V || o->eos < 0 || o->eos >= V || o->blank < 0 ||
        o->blank >= V)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: sos %d / eos %d / blank %d outside [0, V = %d)", fn, o->sos,
                              o->eos, o->blank, V);
    if (o->end_m < 1)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: end_m %d: expected >= 1", fn,
                              o->end_m);
    if (o->ctc_weight > 0.0 && !ctc_logp)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: ctc_weight %g needs CTC log-probs (ctc_logp is NULL)", fn,
                              o->ctc_weight);
    if (o->ctc_weight < 1.0 && !dec)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: ctc_weight %g needs a decoder (dec is NULL)", fn,
                              o->ctc_weight);
    for (int b = 0; b < B; b++)
        if (enc_len[b] < 1 || enc_len[b] > Tmax)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "%s: enc_len[%d] = %d outside [1, Tmax = %d]", fn, b,
                                  enc_len[b], Tmax);
    return 0;
}

static int att_init(autt *u, int T, int V, const float *x, const avsr_att_beam_opts *o,
                    avsr_error *err)
{
    memset(u, 0, sizeof *u);
    u->T = T;
    if (o->maxlenratio == 0.0)
        u->maxlen = T;
    else if (o->maxlenratio < 0.0)
        u->maxlen = (int)(-o->maxlenratio);
    else {
        u->maxlen = (int)(o->maxlenratio * T);
        if (u->maxlen < 1)
            u->maxlen = 1;
    }
    u->done = u->maxlen < 1;
    u->x = o->ctc_weight != 0.0 ? x : NULL;
    u->best_all = -INFINITY;
    u->best_len = malloc(sizeof(double) * ((size_t)u->maxlen + 3));
    u->run = calloc(1, sizeof *u->run);
    if (!u->best_len || !u->run)
        return AVSR_NOMEM(err, sizeof(double) * ((size_t)u->maxlen + 3));
    for (int l = 0; l < u->maxlen + 3; l++)
        u->best_len[l] = -INFINITY;
    ahyp *h = &u->run[0];
    h->len = 1;
    h->yseq = malloc(sizeof(int64_t));
    if (!h->yseq)
        return AVSR_NOMEM(err, sizeof(int64_t));
    h->yseq[0] = o->sos;
    u->nrun = 1;
    if (u->x) {
        h->r = malloc(sizeof(double) * 2 * (size_t)T);
        if (!h->r)
            return AVSR_NOMEM(err, sizeof(double) * 2 * (size_t)T);
        avsr_ctc_prefix cps = {.logp = x, .T = T, .V = V, .blank = o->blank, .eos = o->eos};
        avsr_ctc_prefix_init(&cps, h->r);
        u->xt = malloc(sizeof(float) * (size_t)T * V);
        if (!u->xt)
            return AVSR_NOMEM(err, sizeof(float) * (size_t)T * V);
        for (int t0 = 0; t0 < T; t0 += 32) /* [T, V] -> [V, T] in tiles */
            for (int v0 = 0; v0 < V; v0 += 32)
                for (int t = t0; t < T && t < t0 + 32; t++)
                    for (int v = v0; v < V && v < v0 + 32; v++)
                        u->xt[(size_t)v * T + t] = x[(size_t)t * V + v];
    }
    return 0;
}

/* The n-best of an utterance: ended hypotheses by score (stable). */
static int att_collect(autt *u, const avsr_att_beam_opts *o, avsr_nbest *out, avsr_error *err)
{
    asort *s = malloc(sizeof *s * (size_t)(u->nended > 0 ? u->nended : 1));
    if (!s)
        return AVSR_NOMEM(err, sizeof *s * (size_t)u->nended);
    for (int k = 0; k < u->nended; k++) {
        s[k].score = u->ended[k].score;
        s[k].idx = k;
    }
    qsort(s, (size_t)u->nended, sizeof *s, cmp_asort);
    int n = u->nended < o->nbest ? u->nended : o->nbest;
    int64_t ntot = 0;
    for (int k = 0; k < n; k++)
        ntot += u->ended[s[k].idx].len - 2;
    if (nbest_alloc(out, n, ntot, err) < 0) {
        free(s);
        return -1;
    }
    for (int k = 0; k < n; k++) {
        const ahyp *h = &u->ended[s[k].idx];
        int len = h->len - 2; /* without sos and eos */
        if (len > 0 && h->yseq[len] == o->eos)
            len--; /* eos chosen at the last step, then the forced one */
        memcpy(out->tokens + out->offset[k], h->yseq + 1, sizeof(int64_t) * (size_t)len);
        out->offset[k + 1] = out->offset[k] + len;
        out->score[k] = h->score;
        out->score_dec[k] = h->dec;
        out->score_ctc[k] = h->ctc;
    }
    free(s);
    return 0;
}

int avsr_att_beam_search(int B, int Tmax, int V, const float *ctc_logp, const int *enc_len,
                         avsr_dec_step_fn dec, void *user, const avsr_att_beam_opts *o,
                         avsr_nbest *out, avsr_error *err)
{
    if (check_att(B, Tmax, V, ctc_logp, enc_len, dec, o, out, err) < 0)
        return -1;
    for (int b = 0; b < B; b++)
        memset(&out[b], 0, sizeof out[b]);
    const bool use_dec = o->ctc_weight < 1.0;
    autt *utt = calloc((size_t)(B > 0 ? B : 1), sizeof *utt);
    int *active = malloc(sizeof(int) * (size_t)(B > 0 ? B : 1));
    int *dec_row = malloc(sizeof(int) * (size_t)(B > 0 ? B : 1));
    if (!utt || !active || !dec_row) {
        free(utt);
        free(active);
        free(dec_row);
        return AVSR_NOMEM(err, sizeof *utt * (size_t)B);
    }
    int rc = 0;
    for (int b = 0; b < B && rc == 0; b++)
        rc = att_init(&utt[b], enc_len[b], V,
                      ctc_logp ? ctc_logp + (size_t)b * Tmax * V : NULL, o, err);

    /* decoder call buffers */
    int cap = 0;
    int *h_utt = NULL, *h_len = NULL;
    const int64_t **h_pre = NULL;
    float *dlp = NULL;
    int failed = 0;
    for (int i = 0; rc == 0; i++) {
        int na = 0, nh = 0;
        for (int b = 0; b < B; b++)
            if (!utt[b].done) {
                active[na++] = b;
                dec_row[b] = nh;
                nh += utt[b].nrun;
            }
        if (na == 0)
            break;
        if (use_dec) {
            if (nh > cap) {
                cap = nh;
                free(h_utt);
                free(h_len);
                free(h_pre);
                free(dlp);
                h_utt = malloc(sizeof(int) * (size_t)cap);
                h_len = malloc(sizeof(int) * (size_t)cap);
                h_pre = malloc(sizeof(*h_pre) * (size_t)cap);
                dlp = malloc(sizeof(float) * (size_t)cap * V);
                if (!h_utt || !h_len || !h_pre || !dlp) {
                    rc = AVSR_NOMEM(err, sizeof(float) * (size_t)cap * V);
                    break;
                }
            }
            for (int a = 0; a < na; a++) {
                const autt *u = &utt[active[a]];
                for (int h = 0; h < u->nrun; h++) {
                    int k = dec_row[active[a]] + h;
                    h_utt[k] = active[a];
                    h_len[k] = u->run[h].len;
                    h_pre[k] = u->run[h].yseq;
                }
            }
            if (dec(user, nh, h_utt, h_pre, h_len, dlp, err) < 0) {
                avsr_error_set(err, AVSR_ERR_INVALID,
                               "avsr_att_beam_search: decoder step failed at step %d", i);
                rc = -1;
                break;
            }
        }
#pragma omp parallel if (na > 1)
        {
            /* per-thread scratch: ids [V + 1], psi [V + 1], work [T + V + 1] */
            int *ids = malloc(sizeof(int) * ((size_t)V + 1));
            double *psi = malloc(sizeof(double) * ((size_t)V + 1));
            double *work = malloc(sizeof(double) * ((size_t)Tmax + V + 1));
            bool ok = ids && psi && work;
#pragma omp for schedule(dynamic, 1)
            for (int a = 0; a < na; a++) {
                avsr_error e = {0};
                int b = active[a];
                int r = ok ? att_step(&utt[b], i, V, use_dec ? dlp + (size_t)dec_row[b] * V : NULL,
                                      o, ids, psi, work, &e)
                           : AVSR_NOMEM(&e, sizeof(double) * ((size_t)Tmax + V + 1));
                if (r < 0) {
#pragma omp critical(avsr_search_err)
                    {
                        if (!failed)
                            avsr_error_set(err, e.code, "avsr_att_beam_search: utterance %d: %s",
                                           b, e.msg);
                        failed = 1;
                    }
                }
            }
            free(ids);
            free(psi);
            free(work);
        }
        if (failed)
            rc = -1;
    }
    for (int b = 0; b < B && rc == 0; b++)
        rc = att_collect(&utt[b], o, &out[b], err);
    if (rc < 0)
        for (int b = 0; b < B; b++)
            avsr_nbest_free(&out[b]);
    for (int b = 0; b < B; b++)
        autt_free(&utt[b]);
    free(utt);
    free(active);
    free(dec_row);
    free(h_utt);
    free(h_len);
    free(h_pre);
    free(dlp);
    return rc;
}
