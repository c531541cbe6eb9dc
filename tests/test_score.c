/* test_score: WER/CER counts and rates. Hand-computed cases, the
 * normaliser, bad input, and a cross-check against jiwer 4
 * (tests/golden/gen_wer.py -> tests/golden/ops/search_wer.safetensors):
 * per-utterance and corpus S/D/I/H must be equal, rates within 1e-9 (both
 * are the same division of the same integers in double, so in practice
 * bit-equal); on normalised pairs, and on raw transcripts normalised by us
 * and by jiwer transforms that implement docs/eval/scoring.md's rules. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/score.h"
#include "safetensors.h"
#include "tap.h"
#include "testutil.h"

/* printable copy of a text for a TAP description (control characters as \xNN) */
static const char *esc(const char *s)
{
    static char buf[4][256];
    static int k;
    char *b = buf[k++ & 3];
    size_t o = 0;
    for (; *s && o + 5 < sizeof buf[0]; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(b + o, sizeof buf[0] - o, "\\x%02x", c);
        else
            b[o++] = (char)c;
    }
    b[o] = '\0';
    return b;
}

static bool counts_eq(const avsr_edit_counts *c, int64_t s, int64_t d, int64_t i, int64_t h)
{
    return c->sub == s && c->del == d && c->ins == i && c->hit == h;
}

static void wer_case(const char *ref, const char *hyp, int64_t s, int64_t d, int64_t i,
                     int64_t h)
{
    avsr_edit_counts c;
    avsr_error err = {0};
    int rc = avsr_wer_counts(ref, hyp, &c, &err);
    tap_ok(rc == 0 && counts_eq(&c, s, d, i, h),
           "words \"%s\" / \"%s\": S %lld D %lld I %lld H %lld (expected %lld %lld %lld %lld)",
           esc(ref), esc(hyp), (long long)c.sub, (long long)c.del, (long long)c.ins, (long long)c.hit,
           (long long)s, (long long)d, (long long)i, (long long)h);
}

static void cer_case(const char *ref, const char *hyp, int64_t s, int64_t d, int64_t i,
                     int64_t h)
{
    avsr_edit_counts c;
    avsr_error err = {0};
    int rc = avsr_cer_counts(ref, hyp, &c, &err);
    tap_ok(rc == 0 && counts_eq(&c, s, d, i, h),
           "chars \"%s\" / \"%s\": S %lld D %lld I %lld H %lld (expected %lld %lld %lld %lld)",
           esc(ref), esc(hyp), (long long)c.sub, (long long)c.del, (long long)c.ins, (long long)c.hit,
           (long long)s, (long long)d, (long long)i, (long long)h);
}

static void norm_case(const char *in, const char *want)
{
    avsr_error err = {0};
    char *got = avsr_score_normalize(in, &err);
    tap_ok(got && strcmp(got, want) == 0, "normalise \"%s\" -> \"%s\" (got \"%s\")", esc(in),
           esc(want), got ? esc(got) : err.msg);
    free(got);
}

static void hand_cases(void)
{
    wer_case("", "", 0, 0, 0, 0);
    wer_case("", "A B", 0, 0, 2, 0);                  /* all insertions */
    wer_case("A B C", "", 0, 3, 0, 0);                /* all deletions */
    wer_case("A B C", "A B C", 0, 0, 0, 3);
    wer_case("A B C", "A X C", 1, 0, 0, 2);           /* substitution, not D + I */
    wer_case("A B C D", "A C D E", 0, 1, 1, 3);       /* a shift: D + I */
    wer_case("  A   B  ", "A\tB\n", 0, 0, 0, 2);      /* whitespace runs */
    wer_case("THE CAT SAT", "THE CAT SAT ON THE MAT", 0, 0, 3, 3);
    /* "A B" / "B C": distance 2 either as S S or as D H I; jiwer (rapidfuzz's
     * backtrace) reports S S, so do we */
    wer_case("A B", "B C", 2, 0, 0, 0);
    wer_case("CAFÉ NAÏVE", "CAFE NAÏVE", 1, 0, 0, 1); /* bytes compared */
    cer_case("", "", 0, 0, 0, 0);
    cer_case("ABC", "", 0, 3, 0, 0);
    cer_case("", "AB", 0, 0, 2, 0);
    cer_case("A B", "AB", 0, 1, 0, 2);                /* the space counts */
    cer_case("  AB  ", "AB", 0, 0, 0, 2);             /* ends stripped */
    cer_case("CAFÉ", "CAFE", 1, 0, 0, 3);             /* code points, not bytes */
    cer_case("中文测试", "中文测验", 1, 0, 0, 3);
    cer_case("😀A", "A", 0, 1, 0, 1);

    avsr_edit_counts c = {.sub = 1, .del = 2, .ins = 3, .hit = 4};
    tap_ok(fabs(avsr_edit_rate(&c) - 6.0 / 7.0) < 1e-15, "rate = (S + D + I) / (S + D + H)");
    avsr_edit_counts e = {.ins = 2};
    tap_ok(avsr_edit_rate(&e) == 2.0, "no reference units: rate = I (jiwer)");

    /* sequences of ids, tie-breaking does not change the distance */
    const int64_t r[] = {1, 2, 3, 4, 5}, h[] = {2, 3, 9, 5, 6};
    avsr_error err = {0};
    int rc = avsr_edit_align(r, 5, h, 5, &c, &err);
    tap_ok(rc == 0 && avsr_edit_errors(&c) == 3 && avsr_edit_ref_len(&c) == 5,
           "id alignment: 3 edits, 5 reference units (S %lld D %lld I %lld)", (long long)c.sub,
           (long long)c.del, (long long)c.ins);

    norm_case("  Hello,   World!  ", "HELLO WORLD");
    norm_case("don't  STOP—now…", "DON'T STOPNOW");
    norm_case("It’s “quoted” text.", "IT'S QUOTED TEXT");
    norm_case("a - b\t\n c", "A B C");
    norm_case("café naïve", "CAFé NAïVE"); /* only ASCII letters are upper-cased */
    norm_case("  ...  ", "");
    norm_case("x\xc2\xa0y", "X Y"); /* no-break space */

    /* bad input */
    char *n = avsr_score_normalize("ab\xff", &err);
    tap_ok(!n && strstr(err.msg, "invalid UTF-8 at byte 2"), "invalid UTF-8 is an error: %s",
           err.msg);
    avsr_error_clear(&err);
    rc = avsr_cer_counts("ok", "\xc3(", &c, &err);
    tap_ok(rc < 0 && strstr(err.msg, "hypothesis: invalid UTF-8 at byte 0"),
           "invalid UTF-8 in a hypothesis: %s", err.msg);
    avsr_error_clear(&err);
    const char *refs[] = {"A B", "C"}, *hyps[] = {"A", "\xed\xa0\x80"}; /* a surrogate */
    avsr_score_result res;
    rc = avsr_score_corpus(2, refs, hyps, false, NULL, NULL, &res, &err);
    tap_ok(rc < 0 && strstr(err.msg, "scoring utterance 1: hypothesis: invalid UTF-8"),
           "corpus errors name the utterance: %s", err.msg);
    avsr_error_clear(&err);

    /* corpus with normalisation */
    const char *r2[] = {"Hello, world!", "the cat sat", ""};
    const char *h2[] = {"hello world", "The bat sat on", "um"};
    avsr_edit_counts wu[3], cu[3];
    rc = avsr_score_corpus(3, r2, h2, true, wu, cu, &res, &err);
    tap_ok(rc == 0 && counts_eq(&res.word, 1, 0, 2, 4) && fabs(res.wer - 3.0 / 5.0) < 1e-15 &&
           counts_eq(&wu[2], 0, 0, 1, 0),
           "corpus (normalised): word S %lld D %lld I %lld H %lld, WER %.4f",
           (long long)res.word.sub, (long long)res.word.del, (long long)res.word.ins,
           (long long)res.word.hit, res.wer);
    /* CER: "HELLO WORLD" exact (11 H); "THE CAT SAT" vs "THE BAT SAT ON": 1 S 3 I 10 H;
     * "" vs "UM": 2 I */
    tap_ok(rc == 0 && counts_eq(&res.chr, 1, 0, 5, 21) && fabs(res.cer - 6.0 / 22.0) < 1e-15,
           "corpus (normalised): char S %lld D %lld I %lld H %lld, CER %.4f",
           (long long)res.chr.sub, (long long)res.chr.del, (long long)res.chr.ins,
           (long long)res.chr.hit, res.cer);
}

static int64_t *fx_i64(avsr_st *st, const char *name, int64_t *n)
{
    avsr_st_tensor t;
    if (avsr_st_find(st, name, &t) < 0 || t.dtype != AVSR_I64)
        tap_bail("fixture has no I64 tensor '%s'", name);
    int64_t *v = malloc(sizeof(int64_t) * (size_t)(t.numel ? t.numel : 1));
    memcpy(v, t.data, sizeof(int64_t) * (size_t)t.numel);
    if (n)
        *n = t.numel;
    return v;
}

static char **fx_texts(avsr_st *st, const char *which, int64_t *n)
{
    char name[64];
    snprintf(name, sizeof name, "%s.bytes", which);
    avsr_st_tensor t;
    if (avsr_st_find(st, name, &t) < 0 || t.dtype != AVSR_U8)
        tap_bail("fixture has no U8 tensor '%s'", name);
    snprintf(name, sizeof name, "%s.offsets", which);
    int64_t no;
    int64_t *off = fx_i64(st, name, &no);
    char **s = malloc(sizeof(char *) * (size_t)no);
    for (int64_t i = 0; i + 1 < no; i++) {
        int64_t len = off[i + 1] - off[i];
        s[i] = malloc((size_t)len + 1);
        memcpy(s[i], (const char *)t.data + off[i], (size_t)len);
        s[i][len] = '\0';
    }
    *n = no - 1;
    free(off);
    return s;
}

static void jiwer_cross_check(void)
{
    avsr_st *st = tu_golden_open("search_wer");
    int64_t n, nh;
    char **refs = fx_texts(st, "ref", &n), **hyps = fx_texts(st, "hyp", &nh);
    if (n != nh)
        tap_bail("fixture: %lld references, %lld hypotheses", (long long)n, (long long)nh);
    int64_t *wc = fx_i64(st, "word.counts", NULL), *cc = fx_i64(st, "char.counts", NULL);
    int64_t *cw = fx_i64(st, "corpus.word", NULL), *ccr = fx_i64(st, "corpus.char", NULL);
    int64_t *rb = fx_i64(st, "corpus.rates_bits", NULL);
    double rates[2];
    memcpy(rates, rb, sizeof rates);
    avsr_edit_counts *wu = malloc(sizeof *wu * (size_t)n), *cu = malloc(sizeof *cu * (size_t)n);
    avsr_score_result res;
    avsr_error err = {0};
    int rc = avsr_score_corpus(n, (const char *const *)refs, (const char *const *)hyps, false,
                               wu, cu, &res, &err);
    tap_ok(rc == 0, "jiwer fixture: %lld pairs scored%s%s", (long long)n, rc ? ": " : "",
           rc ? err.msg : "");
    int bad_w = 0, bad_c = 0;
    for (int64_t u = 0; rc == 0 && u < n; u++) {
        const int64_t *w = wc + 4 * u, *c = cc + 4 * u;
        if (!counts_eq(&wu[u], w[0], w[1], w[2], w[3])) {
            if (bad_w++ < 5)
                tap_diag("pair %lld words: ours S%lld D%lld I%lld H%lld, jiwer S%lld D%lld "
                         "I%lld H%lld", (long long)u, (long long)wu[u].sub,
                         (long long)wu[u].del, (long long)wu[u].ins, (long long)wu[u].hit,
                         (long long)w[0], (long long)w[1], (long long)w[2], (long long)w[3]);
        }
        if (!counts_eq(&cu[u], c[0], c[1], c[2], c[3])) {
            if (bad_c++ < 5)
                tap_diag("pair %lld chars: ours S%lld D%lld I%lld H%lld, jiwer S%lld D%lld "
                         "I%lld H%lld", (long long)u, (long long)cu[u].sub,
                         (long long)cu[u].del, (long long)cu[u].ins, (long long)cu[u].hit,
                         (long long)c[0], (long long)c[1], (long long)c[2], (long long)c[3]);
        }
    }
    tap_ok(rc == 0 && bad_w == 0, "jiwer fixture: per-pair word S/D/I/H equal (%d differ)",
           bad_w);
    tap_ok(rc == 0 && bad_c == 0, "jiwer fixture: per-pair char S/D/I/H equal (%d differ)",
           bad_c);
    tap_ok(rc == 0 && counts_eq(&res.word, cw[0], cw[1], cw[2], cw[3]) &&
               counts_eq(&res.chr, ccr[0], ccr[1], ccr[2], ccr[3]),
           "jiwer fixture: corpus counts equal (words S %lld D %lld I %lld H %lld)",
           (long long)res.word.sub, (long long)res.word.del, (long long)res.word.ins,
           (long long)res.word.hit);
    tap_ok(rc == 0 && fabs(res.wer - rates[0]) <= 1e-9 && fabs(res.cer - rates[1]) <= 1e-9,
           "jiwer fixture: WER %.12f (jiwer %.12f), CER %.12f (jiwer %.12f)", res.wer, rates[0],
           res.cer, rates[1]);
    /* the normaliser leaves normalised text alone */
    int changed = 0;
    for (int64_t u = 0; u < n; u++) {
        char *a = avsr_score_normalize(refs[u], &err), *b = avsr_score_normalize(hyps[u], &err);
        changed += !a || !b || strcmp(a, refs[u]) || strcmp(b, hyps[u]);
        free(a);
        free(b);
    }
    tap_ok(changed == 0, "jiwer fixture texts are already normalised (%d changed)", changed);
    for (int64_t u = 0; u < n; u++) {
        free(refs[u]);
        free(hyps[u]);
    }
    free(refs);
    free(hyps);
    free(wc);
    free(cc);
    free(cw);
    free(ccr);
    free(rb);
    free(wu);
    free(cu);
    avsr_st_close(st);
}

/* Raw transcripts (case, punctuation, curly quotes, dashes, odd whitespace):
 * our normalisation + scoring against jiwer with the documented
 * normalisation as jiwer transforms (gen_wer.py, "raw.*"). */
static void jiwer_raw_cross_check(void)
{
    avsr_st *st = tu_golden_open("search_wer");
    int64_t n, nh;
    char **refs = fx_texts(st, "raw.ref", &n), **hyps = fx_texts(st, "raw.hyp", &nh);
    if (n != nh)
        tap_bail("fixture: %lld raw references, %lld hypotheses", (long long)n, (long long)nh);
    int64_t *wc = fx_i64(st, "raw.word.counts", NULL), *cc = fx_i64(st, "raw.char.counts", NULL);
    int64_t *cw = fx_i64(st, "raw.corpus.word", NULL), *ccr = fx_i64(st, "raw.corpus.char", NULL);
    int64_t *rb = fx_i64(st, "raw.corpus.rates_bits", NULL);
    double rates[2];
    memcpy(rates, rb, sizeof rates);
    avsr_edit_counts *wu = malloc(sizeof *wu * (size_t)n), *cu = malloc(sizeof *cu * (size_t)n);
    avsr_score_result res;
    avsr_error err = {0};
    int rc = avsr_score_corpus(n, (const char *const *)refs, (const char *const *)hyps, true,
                               wu, cu, &res, &err);
    int bad = 0;
    for (int64_t u = 0; rc == 0 && u < n; u++) {
        const int64_t *w = wc + 4 * u, *c = cc + 4 * u;
        if (!counts_eq(&wu[u], w[0], w[1], w[2], w[3]) ||
            !counts_eq(&cu[u], c[0], c[1], c[2], c[3])) {
            if (bad++ < 5)
                tap_diag("raw pair %lld ('%s' / '%s'): ours words S%lld D%lld I%lld H%lld, jiwer "
                         "S%lld D%lld I%lld H%lld", (long long)u, esc(refs[u]), esc(hyps[u]),
                         (long long)wu[u].sub, (long long)wu[u].del, (long long)wu[u].ins,
                         (long long)wu[u].hit, (long long)w[0], (long long)w[1],
                         (long long)w[2], (long long)w[3]);
        }
    }
    tap_ok(rc == 0 && bad == 0,
           "jiwer raw transcripts: %lld pairs normalised and scored, per-pair word and char "
           "S/D/I/H equal (%d differ)%s%s", (long long)n, bad, rc ? ": " : "", rc ? err.msg : "");
    tap_ok(rc == 0 && counts_eq(&res.word, cw[0], cw[1], cw[2], cw[3]) &&
               counts_eq(&res.chr, ccr[0], ccr[1], ccr[2], ccr[3]) &&
               fabs(res.wer - rates[0]) <= 1e-9 && fabs(res.cer - rates[1]) <= 1e-9,
           "jiwer raw transcripts: corpus counts equal, WER %.12f (jiwer %.12f), CER %.12f "
           "(jiwer %.12f)", res.wer, rates[0], res.cer, rates[1]);
    for (int64_t u = 0; u < n; u++) {
        free(refs[u]);
        free(hyps[u]);
    }
    free(refs);
    free(hyps);
    free(wc);
    free(cc);
    free(cw);
    free(ccr);
    free(rb);
    free(wu);
    free(cu);
    avsr_st_close(st);
}

int main(void)
{
    hand_cases();
    jiwer_cross_check();
    jiwer_raw_cross_check();
    return tap_done();
}
