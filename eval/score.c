/* score: Levenshtein alignment counts, text normalisation, WER/CER (see
 * score.h and docs/eval/scoring.md). */
#include "eval/score.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

void avsr_edit_add(avsr_edit_counts *acc, const avsr_edit_counts *c)
{
    acc->sub += c->sub;
    acc->del += c->del;
    acc->ins += c->ins;
    acc->hit += c->hit;
}

double avsr_edit_rate(const avsr_edit_counts *c)
{
    int64_t nref = avsr_edit_ref_len(c);
    if (nref == 0)
        return (double)c->ins;
    return (double)avsr_edit_errors(c) / (double)nref;
}

#define ALIGN_MAX_CELLS 100000000LL

int avsr_edit_align(const int64_t *ref, int64_t nr, const int64_t *hyp, int64_t nh,
                    avsr_edit_counts *c, avsr_error *err)
{
    memset(c, 0, sizeof *c);
    if (nr < 0 || nh < 0 || (nr > 0 && !ref) || (nh > 0 && !hyp))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_edit_align: bad sequences (ref %p len %lld, hyp %p len %lld)",
                              (const void *)ref, (long long)nr, (const void *)hyp, (long long)nh);
    /* common prefix and suffix are hits (rapidfuzz strips them first) */
    int64_t pre = 0;
    while (pre < nr && pre < nh && ref[pre] == hyp[pre])
        pre++;
    int64_t suf = 0;
    while (suf < nr - pre && suf < nh - pre && ref[nr - 1 - suf] == hyp[nh - 1 - suf])
        suf++;
    const int64_t *s1 = ref + pre, *s2 = hyp + pre;
    const int64_t n1 = nr - pre - suf, n2 = nh - pre - suf;
    if (n1 == 0 || n2 == 0) {
        c->del = n1;
        c->ins = n2;
        c->hit = nr - n1;
        return 0;
    }
    if ((n1 + 1) * (n2 + 1) > ALIGN_MAX_CELLS)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_edit_align: sequences too long to align (%lld x %lld units "
                              "after removing the common prefix/suffix; limit %lld cells)",
                              (long long)n1, (long long)n2, ALIGN_MAX_CELLS);
    const int64_t w = n2 + 1;
    int32_t *D = malloc(sizeof(int32_t) * (size_t)((n1 + 1) * w)); /* [n1 + 1, n2 + 1] */
    if (!D)
        return AVSR_NOMEM(err, sizeof(int32_t) * (size_t)((n1 + 1) * w));
    /* D[i][j]: distance between s1[:i] and s2[:j] */
    for (int64_t j = 0; j <= n2; j++)
        D[j] = (int32_t)j;
    for (int64_t i = 1; i <= n1; i++) {
        int32_t *row = D + i * w, *up = row - w;
        row[0] = (int32_t)i;
        for (int64_t j = 1; j <= n2; j++) {
            int32_t best = up[j - 1] + (s1[i - 1] != s2[j - 1]);
            if (up[j] + 1 < best)
                best = up[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
        }
    }
    /* rapidfuzz's backtrace (Levenshtein editops, Hyyro 2004): with
     * v(i, j) = D[i][j] - D[i-1][j]: v = +1 -> delete s1[i-1]; else step to
     * column j-1 and, if v(i, j-1) = -1, insert s2[j-1], else take the
     * diagonal (substitution or hit). */
#define DV(i, j) (D[(i) * w + (j)] - D[((i) - 1) * w + (j)])
    int64_t i = n1, j = n2;
    while (i > 0 && j > 0) {
        if (DV(i, j) == 1) {
            c->del++;
            i--;
        } else {
            j--;
            if (j > 0 && DV(i, j) == -1) {
                c->ins++;
            } else {
                i--;
                if (s1[i] != s2[j])
                    c->sub++;
            }
        }
    }
#undef DV
    c->del += i;
    c->ins += j;
    c->hit = nr - c->sub - c->del;
    free(D);
    return 0;
}

/* ---- UTF-8 ------------------------------------------------------------------ */

/* Decode one code point at s (n bytes left). Returns its length, or 0 for
 * invalid UTF-8 (overlong forms, surrogates and > U+10FFFF rejected). */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0)
        return 0;
    unsigned char b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    int len;
    uint32_t v, min;
    if ((b & 0xe0) == 0xc0) {
        len = 2;
        v = b & 0x1f;
        min = 0x80;
    } else if ((b & 0xf0) == 0xe0) {
        len = 3;
        v = b & 0x0f;
        min = 0x800;
    } else if ((b & 0xf8) == 0xf0) {
        len = 4;
        v = b & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)len > n)
        return 0;
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[k] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

static int utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static inline bool is_ascii_space(uint32_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Unicode punctuation deleted by the normaliser (besides ASCII punctuation). */
static bool is_deleted_unicode_punct(uint32_t c)
{
    switch (c) {
    case 0x00a1: /* inverted exclamation mark */
    case 0x00ab: /* left guillemet */
    case 0x00bb: /* right guillemet */
    case 0x00bf: /* inverted question mark */
    case 0x2010: case 0x2011: case 0x2012: case 0x2013: case 0x2014: case 0x2015: /* dashes */
    case 0x2018: /* left single quotation mark */
    case 0x201a: /* single low-9 quotation mark */
    case 0x201c: case 0x201d: case 0x201e: /* double quotation marks */
    case 0x2026: /* ellipsis */
        return true;
    default:
        return false;
    }
}

char *avsr_score_normalize(const char *text, avsr_error *err)
{
    if (!text) {
        avsr_error_set(err, AVSR_ERR_INVALID, "avsr_score_normalize: text is NULL");
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text);
    char *out = malloc(n + 1); /* never grows: every mapping keeps or shrinks bytes */
    if (!out) {
        AVSR_NOMEM(err, n + 1);
        return NULL;
    }
    size_t o = 0, k = 0;
    bool pending_space = false;
    while (k < n) {
        uint32_t cp;
        int len = utf8_decode(s + k, n - k, &cp);
        if (!len) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "avsr_score_normalize: invalid UTF-8 at byte %zu", k);
            free(out);
            return NULL;
        }
        k += (size_t)len;
        if (is_ascii_space(cp) || cp == 0x00a0) {
            pending_space = o > 0;
            continue;
        }
        if (cp == 0x2019 || cp == 0x02bc)
            cp = '\'';
        if (cp < 0x80 && cp != '\'' &&
            ((cp >= 0x21 && cp <= 0x2f) || (cp >= 0x3a && cp <= 0x40) ||
             (cp >= 0x5b && cp <= 0x60) || (cp >= 0x7b && cp <= 0x7e)))
            continue; /* ASCII punctuation */
        if (cp < 0x20 || cp == 0x7f)
            continue; /* other control characters */
        if (is_deleted_unicode_punct(cp))
            continue;
        if (cp >= 'a' && cp <= 'z')
            cp -= 'a' - 'A';
        if (pending_space) {
            out[o++] = ' ';
            pending_space = false;
        }
        o += (size_t)utf8_encode(cp, out + o);
    }
    out[o] = '\0';
    return out;
}

/* ---- words and characters ---------------------------------------------------- */

/* Split text into words; ids[i] identifies word i (equal words, equal ids)
 * using a table shared by both sides: the word's index of first occurrence
 * in the concatenation ref + hyp, found by hashing. */
typedef struct wtab {
    const char **ptr;
    int64_t *len;
    int64_t n, cap;
    int64_t *slot; /* hash table of word indices, -1 empty */
    int64_t nslot;
} wtab;

static uint64_t fnv(const char *p, int64_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int64_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    return h;
}

static int64_t count_words(const char *t)
{
    int64_t n = 0;
    bool in = false;
    for (; *t; t++) {
        bool sp = is_ascii_space((unsigned char)*t);
        if (!sp && !in)
            n++;
        in = !sp;
    }
    return n;
}

static int64_t wtab_id(wtab *w, const char *p, int64_t len)
{
    uint64_t h = fnv(p, len);
    int64_t k = (int64_t)(h & (uint64_t)(w->nslot - 1));
    for (;;) {
        int64_t id = w->slot[k];
        if (id < 0) {
            w->slot[k] = w->n;
            w->ptr[w->n] = p;
            w->len[w->n] = len;
            return w->n++;
        }
        if (w->len[id] == len && memcmp(w->ptr[id], p, (size_t)len) == 0)
            return id;
        k = (k + 1) & (w->nslot - 1);
    }
}

static int64_t split_words(wtab *w, const char *t, int64_t *ids)
{
    int64_t n = 0;
    const char *p = t;
    while (*p) {
        while (*p && is_ascii_space((unsigned char)*p))
            p++;
        if (!*p)
            break;
        const char *b = p;
        while (*p && !is_ascii_space((unsigned char)*p))
            p++;
        ids[n++] = wtab_id(w, b, p - b);
    }
    return n;
}

static int check_utf8(const char *t, const char *what, avsr_error *err)
{
    const unsigned char *s = (const unsigned char *)t;
    size_t n = strlen(t), k = 0;
    while (k < n) {
        uint32_t cp;
        int len = utf8_decode(s + k, n - k, &cp);
        if (!len)
            return avsr_error_set(err, AVSR_ERR_INVALID, "%s: invalid UTF-8 at byte %zu", what,
                                  k);
        k += (size_t)len;
    }
    return 0;
}

int avsr_wer_counts(const char *ref, const char *hyp, avsr_edit_counts *c, avsr_error *err)
{
    memset(c, 0, sizeof *c);
    if (!ref || !hyp)
        return avsr_error_set(err, AVSR_ERR_INVALID, "avsr_wer_counts: NULL text");
    if (check_utf8(ref, "reference", err) < 0 || check_utf8(hyp, "hypothesis", err) < 0)
        return -1;
    int64_t nr = count_words(ref), nh = count_words(hyp), nt = nr + nh;
    wtab w = {0};
    w.nslot = 16;
    while (w.nslot < 2 * nt)
        w.nslot *= 2;
    w.ptr = malloc(sizeof *w.ptr * (size_t)(nt + 1));
    w.len = malloc(sizeof *w.len * (size_t)(nt + 1));
    w.slot = malloc(sizeof *w.slot * (size_t)w.nslot);
    int64_t *ids = malloc(sizeof *ids * (size_t)(nt + 1));
    int rc = 0;
    if (!w.ptr || !w.len || !w.slot || !ids) {
        rc = AVSR_NOMEM(err, sizeof *w.slot * (size_t)w.nslot);
    } else {
        for (int64_t k = 0; k < w.nslot; k++)
            w.slot[k] = -1;
        split_words(&w, ref, ids);
        split_words(&w, hyp, ids + nr);
        rc = avsr_edit_align(ids, nr, ids + nr, nh, c, err);
    }
    free(w.ptr);
    free(w.len);
    free(w.slot);
    free(ids);
    return rc;
}

/* Code points of t without leading/trailing ASCII whitespace. */
static int64_t to_codepoints(const char *t, int64_t *cp)
{
    const unsigned char *s = (const unsigned char *)t;
    size_t n = strlen(t), b = 0;
    while (b < n && is_ascii_space(s[b]))
        b++;
    while (n > b && is_ascii_space(s[n - 1]))
        n--;
    int64_t m = 0;
    while (b < n) {
        uint32_t c;
        int len = utf8_decode(s + b, n - b, &c); /* validated by the caller */
        cp[m++] = c;
        b += (size_t)len;
    }
    return m;
}

int avsr_cer_counts(const char *ref, const char *hyp, avsr_edit_counts *c, avsr_error *err)
{
    memset(c, 0, sizeof *c);
    if (!ref || !hyp)
        return avsr_error_set(err, AVSR_ERR_INVALID, "avsr_cer_counts: NULL text");
    if (check_utf8(ref, "reference", err) < 0 || check_utf8(hyp, "hypothesis", err) < 0)
        return -1;
    size_t lr = strlen(ref), lh = strlen(hyp);
    int64_t *cp = malloc(sizeof *cp * (lr + lh + 1));
    if (!cp)
        return AVSR_NOMEM(err, sizeof *cp * (lr + lh + 1));
    int64_t nr = to_codepoints(ref, cp);
    int64_t nh = to_codepoints(hyp, cp + nr);
    int rc = avsr_edit_align(cp, nr, cp + nr, nh, c, err);
    free(cp);
    return rc;
}

/* ---- corpus ------------------------------------------------------------------- */

int avsr_score_corpus(int64_t n, const char *const *refs, const char *const *hyps,
                      bool normalize, avsr_edit_counts *word_utt, avsr_edit_counts *char_utt,
                      avsr_score_result *res, avsr_error *err)
{
    if (n < 0 || (n > 0 && (!refs || !hyps)) || !res)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_score_corpus: bad arguments (n %lld, refs %p, hyps %p, "
                              "res %p)", (long long)n, (const void *)refs, (const void *)hyps,
                              (void *)res);
    avsr_edit_counts *wu = word_utt, *cu = char_utt;
    avsr_edit_counts *own = NULL;
    if (!wu || !cu) {
        own = calloc((size_t)(2 * n + 1), sizeof *own);
        if (!own)
            return AVSR_NOMEM(err, sizeof *own * (size_t)(2 * n + 1));
        if (!wu)
            wu = own;
        if (!cu)
            cu = own + n;
    }
    int failed = 0;
#pragma omp parallel for schedule(dynamic, 16) if (n > 32)
    for (int64_t u = 0; u < n; u++) {
        avsr_error e = {0};
        int rc = 0;
        char *r = NULL, *h = NULL;
        const char *rr = refs[u], *hh = hyps[u];
        if (!rr || !hh) {
            rc = avsr_error_set(&e, AVSR_ERR_INVALID, "NULL text");
        } else if (normalize) {
            r = avsr_score_normalize(rr, &e);
            h = r ? avsr_score_normalize(hh, &e) : NULL;
            rc = (r && h) ? 0 : -1;
            rr = r;
            hh = h;
        }
        if (rc == 0)
            rc = avsr_wer_counts(rr, hh, &wu[u], &e);
        if (rc == 0)
            rc = avsr_cer_counts(rr, hh, &cu[u], &e);
        free(r);
        free(h);
        if (rc < 0) {
#pragma omp critical(avsr_score_err)
            {
                if (!failed)
                    avsr_error_set(err, e.code ? e.code : AVSR_ERR_INVALID,
                                   "scoring utterance %lld: %s", (long long)u, e.msg);
                failed = 1;
            }
        }
    }
    if (failed) {
        free(own);
        return -1;
    }
    memset(res, 0, sizeof *res);
    res->n = n;
    for (int64_t u = 0; u < n; u++) {
        avsr_edit_add(&res->word, &wu[u]);
        avsr_edit_add(&res->chr, &cu[u]);
    }
    res->wer = avsr_edit_rate(&res->word);
    res->cer = avsr_edit_rate(&res->chr);
    free(own);
    return 0;
}
