/* tokenizer: character and word vocabularies (see tokenizer.h,
 * docs/data/tokenizer.md). */
#include "tokenizer.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SYM_MAX 8 /* "<blank>" + NUL; a UTF-8 character is at most 4 bytes */

struct avsr_vocab {
    int32_t size;
    uint32_t *cp;          /* [size] code point of each id (0 for specials) */
    char (*sym)[SYM_MAX];  /* [size] symbol text */
    int32_t ascii[128];    /* id of each ASCII code point, -1 absent */
    int32_t nna;           /* non-ASCII entries */
    uint32_t *na_cp;       /* [nna] sorted non-ASCII code points */
    int32_t *na_id;        /* [nna] their ids */
    int oov;
    /* word vocabularies (avsr_vocab_build_words): one normalised word per id */
    bool words;
    char **wsym;     /* [size] symbol text (specials included) */
    int32_t *worder; /* [size - 3] word ids sorted by their text (strcmp) */
};

/* ---- UTF-8 --------------------------------------------------------------- */

/* Decode one code point at s[*pos]; -1 on invalid input (overlong forms,
 * surrogates, > U+10FFFF, bad or missing continuation bytes). */
static int utf8_next(const unsigned char *s, size_t len, size_t *pos, uint32_t *cp)
{
    size_t i = *pos;
    unsigned c = s[i];
    int n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        *pos = i + 1;
        return 0;
    } else if ((c & 0xe0) == 0xc0) {
        n = 1;
        v = c & 0x1f;
        min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 2;
        v = c & 0x0f;
        min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 3;
        v = c & 0x07;
        min = 0x10000;
    } else
        return -1;
    for (int k = 1; k <= n; k++) {
        if (i + (size_t)k >= len || (s[i + k] & 0xc0) != 0x80)
            return -1;
        v = (v << 6) | (s[i + k] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return -1;
    *cp = v;
    *pos = i + 1 + (size_t)n;
    return 0;
}

static int utf8_put(char *out, uint32_t cp)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    } else if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    } else if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

static bool is_ws(uint32_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool is_control(uint32_t c) { return c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0); }

/* normalised code point: ASCII uppercase, whitespace -> ' ' */
static uint32_t norm_cp(uint32_t c)
{
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 'A';
    return is_ws(c) ? ' ' : c;
}

static int bad_utf8(avsr_error *err, const char *fn, const char *text, size_t pos)
{
    return avsr_error_set(err, AVSR_ERR_INVALID, "%s: invalid UTF-8 at byte offset %zu (byte 0x%02x)",
                          fn, pos, (unsigned)(unsigned char)text[pos]);
}

char *avsr_vocab_normalize_text(const char *text, size_t len, avsr_error *err)
{
    char *out = malloc(len + 1);
    if (!out) {
        AVSR_NOMEM(err, len + 1);
        return NULL;
    }
    size_t pos = 0, o = 0;
    bool pend = false; /* a space waiting for the next character */
    while (pos < len) {
        uint32_t c;
        size_t at = pos;
        if (utf8_next((const unsigned char *)text, len, &pos, &c)) {
            free(out);
            bad_utf8(err, "avsr_vocab_normalize_text", text, at);
            return NULL;
        }
        c = norm_cp(c);
        if (c == ' ') {
            pend = o > 0;
            continue;
        }
        if (pend)
            out[o++] = ' ';
        pend = false;
        o += (size_t)utf8_put(out + o, c);
    }
    out[o] = '\0';
    return out;
}

/* ---- vocabulary ---------------------------------------------------------- */

void avsr_vocab_free(avsr_vocab *v)
{
    if (!v)
        return;
    free(v->cp);
    free(v->sym);
    free(v->na_cp);
    free(v->na_id);
    if (v->wsym)
        for (int32_t i = 0; i < v->size; i++)
            free(v->wsym[i]);
    free(v->wsym);
    free(v->worder);
    free(v);
}

/* ---- word vocabularies ---------------------------------------------------- */

typedef struct word_at {
    const char *w;
    int32_t id;
} word_at;

static int cmp_word_at(const void *a, const void *b)
{
    return strcmp(((const word_at *)a)->w, ((const word_at *)b)->w);
}

/* Word vocabulary from `nw` words in id order (copied). Duplicates are
 * reported with both ids. */
static avsr_vocab *vocab_from_words(const char *const *w, int32_t nw, avsr_error *err)
{
    avsr_vocab *v = calloc(1, sizeof *v);
    if (!v)
        return AVSR_NOMEM(err, sizeof *v), NULL;
    int32_t size = nw + 3;
    v->size = size;
    v->words = true;
    v->oov = AVSR_OOV_UNK;
    v->wsym = calloc((size_t)size, sizeof *v->wsym);
    v->worder = malloc(((size_t)nw + 1) * sizeof *v->worder);
    if (!v->wsym || !v->worder)
        goto nomem;
    v->wsym[0] = strdup("<blank>");
    v->wsym[1] = strdup("<unk>");
    v->wsym[size - 1] = strdup("<eos>");
    for (int32_t k = 0; k < nw; k++) {
        v->wsym[k + 2] = strdup(w[k]);
        v->worder[k] = k + 2;
    }
    for (int32_t i = 0; i < size; i++)
        if (!v->wsym[i])
            goto nomem;
    word_at *at = malloc(((size_t)nw + 1) * sizeof *at);
    if (!at)
        goto nomem;
    for (int32_t k = 0; k < nw; k++)
        at[k] = (word_at){v->wsym[k + 2], k + 2};
    qsort(at, (size_t)nw, sizeof *at, cmp_word_at);
    for (int32_t k = 0; k < nw; k++)
        v->worder[k] = at[k].id;
    free(at);
    for (int32_t k = 1; k < nw; k++)
        if (!strcmp(v->wsym[v->worder[k - 1]], v->wsym[v->worder[k]])) {
            int32_t a = v->worder[k - 1], b = v->worder[k];
            avsr_error_set(err, AVSR_ERR_INVALID, "duplicate word \"%s\" at ids %d and %d",
                           v->wsym[a], a < b ? a : b, a < b ? b : a);
            avsr_vocab_free(v);
            return NULL;
        }
    return v;
nomem:
    avsr_vocab_free(v);
    AVSR_NOMEM(err, (size_t)size * sizeof(char *));
    return NULL;
}

/* id of a normalised word w[0 .. len), -1 if absent */
static int32_t word_id(const avsr_vocab *v, const char *w, size_t len)
{
    int32_t lo = 0, hi = v->size - 4;
    while (lo <= hi) {
        int32_t mid = (lo + hi) / 2;
        const char *s = v->wsym[v->worder[mid]];
        int c = strncmp(s, w, len);
        if (c == 0 && s[len] != '\0')
            c = 1;
        if (c == 0)
            return v->worder[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int avsr_vocab_build_words(avsr_vocab **out, const char *const *texts, int64_t n, avsr_error *err)
{
    *out = NULL;
    if (n < 0 || (n > 0 && !texts))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_vocab_build_words: bad text list (n = %lld)", (long long)n);
    char **all = NULL;
    size_t na = 0, cap = 0;
    int rc = -1;
    for (int64_t t = 0; t < n; t++) {
        if (!texts[t])
            continue;
        char *norm = avsr_vocab_normalize_text(texts[t], strlen(texts[t]), err);
        if (!norm) {
            avsr_error_prefix(err, "text %lld: ", (long long)t);
            goto out;
        }
        /* normalised: words separated by single spaces */
        for (char *w = *norm ? norm : NULL, *e; w; w = e ? e + 1 : NULL) {
            if ((e = strchr(w, ' ')))
                *e = '\0';
            if (na == cap) {
                size_t nc = cap ? 2 * cap : 256;
                char **q = realloc(all, nc * sizeof *q);
                if (!q) {
                    free(norm);
                    AVSR_NOMEM(err, nc * sizeof *q);
                    goto out;
                }
                all = q;
                cap = nc;
            }
            if (!(all[na] = strdup(w))) {
                free(norm);
                AVSR_NOMEM(err, strlen(w) + 1);
                goto out;
            }
            na++;
        }
        free(norm);
    }
    if (na == 0) {
        avsr_error_set(err, AVSR_ERR_INVALID, "avsr_vocab_build_words: the texts have no words");
        goto out;
    }
    qsort(all, na, sizeof *all, cmp_str);
    size_t nu = 0;
    for (size_t i = 0; i < na; i++)
        if (nu == 0 || strcmp(all[nu - 1], all[i]))
            all[nu++] = all[i];
        else
            free(all[i]);
    na = nu;
    if (na > (1u << 22)) {
        avsr_error_set(err, AVSR_ERR_INVALID, "avsr_vocab_build_words: %zu distinct words is "
                       "too many", na);
        goto out;
    }
    *out = vocab_from_words((const char *const *)all, (int32_t)na, err);
    rc = *out ? 0 : -1;
out:
    for (size_t i = 0; i < na; i++)
        free(all[i]);
    free(all);
    return rc;
}

bool avsr_vocab_is_words(const avsr_vocab *v) { return v->words; }

static int64_t encode_words(const avsr_vocab *v, const char *text, size_t len, int32_t *ids,
                            int64_t cap, avsr_error *err)
{
    char *norm = avsr_vocab_normalize_text(text, len, err);
    if (!norm) {
        /* the message names avsr_vocab_normalize_text; the caller adds the clip */
        return -1;
    }
    int64_t n = 0;
    const char *p = norm;
    while (*p) {
        const char *e = strchr(p, ' ');
        size_t wl = e ? (size_t)(e - p) : strlen(p);
        int32_t id = word_id(v, p, wl);
        if (id < 0 && v->oov == AVSR_OOV_UNK)
            id = AVSR_VOCAB_UNK;
        if (id >= 0) {
            if (n + 1 > cap) {
                free(norm);
                return avsr_error_set(err, AVSR_ERR_INVALID, "avsr_vocab_encode: output buffer "
                                      "of %lld ids is too small (text of %zu bytes)",
                                      (long long)cap, len);
            }
            ids[n++] = id;
        }
        p += wl;
        if (*p == ' ')
            p++;
    }
    free(norm);
    return n;
}

/* Vocabulary from `nc` distinct character code points in id order. */
static avsr_vocab *vocab_from_cps(const uint32_t *cps, int32_t nc, avsr_error *err)
{
    avsr_vocab *v = calloc(1, sizeof *v);
    int32_t size = nc + 3;
    if (!v)
        return AVSR_NOMEM(err, sizeof *v), NULL;
    v->size = size;
    v->cp = calloc((size_t)size, sizeof *v->cp);
    v->sym = calloc((size_t)size, sizeof *v->sym);
    v->na_cp = malloc(((size_t)nc + 1) * sizeof *v->na_cp);
    v->na_id = malloc(((size_t)nc + 1) * sizeof *v->na_id);
    if (!v->cp || !v->sym || !v->na_cp || !v->na_id) {
        avsr_vocab_free(v);
        AVSR_NOMEM(err, (size_t)size * SYM_MAX);
        return NULL;
    }
    for (int i = 0; i < 128; i++)
        v->ascii[i] = -1;
    strcpy(v->sym[0], "<blank>");
    strcpy(v->sym[1], "<unk>");
    strcpy(v->sym[size - 1], "<eos>");
    for (int32_t k = 0; k < nc; k++) {
        int32_t id = k + 2;
        v->cp[id] = cps[k];
        v->sym[id][utf8_put(v->sym[id], cps[k])] = '\0';
        if (cps[k] < 128)
            v->ascii[cps[k]] = id;
        else {
            v->na_cp[v->nna] = cps[k];
            v->na_id[v->nna++] = id;
        }
    }
    /* sort the non-ASCII table by code point (insertion sort keeps it simple
     * for the built case, which is already sorted) */
    for (int32_t a = 1; a < v->nna; a++)
        for (int32_t b = a; b > 0 && v->na_cp[b - 1] > v->na_cp[b]; b--) {
            uint32_t t = v->na_cp[b];
            v->na_cp[b] = v->na_cp[b - 1];
            v->na_cp[b - 1] = t;
            int32_t u = v->na_id[b];
            v->na_id[b] = v->na_id[b - 1];
            v->na_id[b - 1] = u;
        }
    v->oov = AVSR_OOV_UNK;
    return v;
}

int avsr_vocab_default(avsr_vocab **out, avsr_error *err)
{
    uint32_t cps[38];
    int n = 0;
    cps[n++] = ' ';
    cps[n++] = '\'';
    for (char c = 'A'; c <= 'Z'; c++)
        cps[n++] = (uint32_t)c;
    for (char c = '0'; c <= '9'; c++)
        cps[n++] = (uint32_t)c;
    *out = vocab_from_cps(cps, n, err);
    return *out ? 0 : -1;
}

int avsr_vocab_build(avsr_vocab **out, const char *const *texts, int64_t n, avsr_error *err)
{
    *out = NULL;
    if (n < 0 || (n > 0 && !texts))
        return avsr_error_set(err, AVSR_ERR_INVALID, "avsr_vocab_build: bad text list (n = %lld)",
                              (long long)n);
    const size_t nbits = 0x110000;
    uint8_t *seen = calloc(nbits / 8, 1);
    if (!seen)
        return AVSR_NOMEM(err, nbits / 8);
    for (int64_t t = 0; t < n; t++) {
        const char *s = texts[t];
        if (!s)
            continue;
        size_t len = strlen(s), pos = 0;
        while (pos < len) {
            uint32_t c;
            size_t at = pos;
            if (utf8_next((const unsigned char *)s, len, &pos, &c)) {
                free(seen);
                bad_utf8(err, "avsr_vocab_build", s, at);
                avsr_error_prefix(err, "text %lld: ", (long long)t);
                return -1;
            }
            c = norm_cp(c);
            if (!is_control(c))
                seen[c >> 3] |= (uint8_t)(1u << (c & 7));
        }
    }
    int32_t nc = 0;
    for (uint32_t c = 0; c < nbits; c++)
        nc += (seen[c >> 3] >> (c & 7)) & 1;
    uint32_t *cps = malloc(((size_t)nc + 1) * sizeof *cps);
    if (!cps) {
        free(seen);
        return AVSR_NOMEM(err, (size_t)nc * sizeof *cps);
    }
    nc = 0;
    for (uint32_t c = 0; c < nbits; c++)
        if ((seen[c >> 3] >> (c & 7)) & 1)
            cps[nc++] = c;
    free(seen);
    *out = vocab_from_cps(cps, nc, err);
    free(cps);
    return *out ? 0 : -1;
}

int32_t avsr_vocab_size(const avsr_vocab *v) { return v->size; }
int32_t avsr_vocab_eos(const avsr_vocab *v) { return v->size - 1; }
int avsr_vocab_oov(const avsr_vocab *v) { return v->oov; }
void avsr_vocab_set_oov(avsr_vocab *v, int oov) { v->oov = oov == AVSR_OOV_DROP ? oov : AVSR_OOV_UNK; }

const char *avsr_vocab_symbol(const avsr_vocab *v, int32_t id)
{
    if (id < 0 || id >= v->size)
        return NULL;
    return v->words ? v->wsym[id] : v->sym[id];
}

int32_t avsr_vocab_id(const avsr_vocab *v, uint32_t c)
{
    if (v->words)
        return -1;
    if (c < 128)
        return v->ascii[c];
    int32_t lo = 0, hi = v->nna - 1;
    while (lo <= hi) {
        int32_t mid = (lo + hi) / 2;
        if (v->na_cp[mid] == c)
            return v->na_id[mid];
        if (v->na_cp[mid] < c)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

int64_t avsr_vocab_encode(const avsr_vocab *v, const char *text, size_t len, int32_t *ids,
                          int64_t cap, avsr_error *err)
{
    const char *fn = "avsr_vocab_encode";
    if (v->words)
        return encode_words(v, text, len, ids, cap, err);
    int32_t space = v->ascii[' '];
    int64_t n = 0;
    size_t pos = 0;
    bool pend = false; /* a space waiting for the next kept character */
    while (pos < len) {
        uint32_t c;
        size_t at = pos;
        if (utf8_next((const unsigned char *)text, len, &pos, &c))
            return bad_utf8(err, fn, text, at);
        c = norm_cp(c);
        if (c == ' ' && space >= 0) {
            pend = n > 0;
            continue;
        }
        int32_t id = avsr_vocab_id(v, c);
        if (id < 0) {
            if (v->oov == AVSR_OOV_DROP)
                continue;
            id = AVSR_VOCAB_UNK;
        }
        if (n + (pend ? 2 : 1) > cap)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "%s: output buffer of %lld ids is too small (text of %zu bytes)",
                                  fn, (long long)cap, len);
        if (pend)
            ids[n++] = space;
        pend = false;
        ids[n++] = id;
    }
    return n;
}

char *avsr_vocab_decode(const avsr_vocab *v, const int32_t *ids, int64_t n, avsr_error *err)
{
    size_t cap = (size_t)(n > 0 ? n : 0) * SYM_MAX + 1;
    if (v->words) { /* the words' lengths and a separator each */
        cap = 1;
        for (int64_t i = 0; i < n; i++)
            if (ids[i] >= 0 && ids[i] < v->size)
                cap += strlen(v->wsym[ids[i]]) + 1;
    }
    char *out = malloc(cap);
    if (!out) {
        AVSR_NOMEM(err, cap);
        return NULL;
    }
    size_t o = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id == AVSR_VOCAB_IGNORE || id == AVSR_VOCAB_BLANK || id == v->size - 1)
            continue;
        if (id < 0 || id >= v->size) {
            free(out);
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "avsr_vocab_decode: id %d at position %lld out of range [0, %d)", id,
                           (long long)i, v->size);
            return NULL;
        }
        const char *sym = v->words ? v->wsym[id] : v->sym[id];
        size_t l = strlen(sym);
        if (v->words && o > 0)
            out[o++] = ' ';
        memcpy(out + o, sym, l);
        o += l;
    }
    out[o] = '\0';
    return out;
}

/* ---- JSON ---------------------------------------------------------------- */

char *avsr_vocab_to_json(const avsr_vocab *v, avsr_error *err)
{
    json_t *root = json_object(), *syms = json_array();
    if (!root || !syms)
        goto nomem;
    for (int32_t i = 0; i < v->size; i++)
        if (json_array_append_new(syms, json_string(avsr_vocab_symbol(v, i))))
            goto nomem;
    if (json_object_set_new(root, "type", json_string(v->words ? "word" : "char")) ||
        json_object_set_new(root, "version", json_integer(1)) ||
        json_object_set_new(root, "oov", json_string(v->oov == AVSR_OOV_DROP ? "drop" : "unk")) ||
        json_object_set_new(root, "blank", json_integer(AVSR_VOCAB_BLANK)) ||
        json_object_set_new(root, "unk", json_integer(AVSR_VOCAB_UNK)) ||
        json_object_set_new(root, "eos", json_integer(v->size - 1)) ||
        json_object_set(root, "symbols", syms))
        goto nomem;
    json_decref(syms);
    char *s = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s)
        AVSR_NOMEM(err, 0);
    return s;
nomem:
    json_decref(syms);
    json_decref(root);
    AVSR_NOMEM(err, 0);
    return NULL;
}

static int json_int_is(json_t *root, const char *key, json_int_t want, avsr_error *err)
{
    json_t *x = json_object_get(root, key);
    if (!x)
        return 0;
    if (!json_is_integer(x) || json_integer_value(x) != want)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_vocab_from_json: \"%s\" must be %lld", key, (long long)want);
    return 0;
}

int avsr_vocab_from_json(avsr_vocab **out, const char *json, avsr_error *err)
{
    const char *fn = "avsr_vocab_from_json";
    *out = NULL;
    json_error_t je;
    json_t *root = json_loads(json ? json : "", 0, &je);
    if (!root)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: line %d column %d: %s", fn, je.line,
                              je.column, je.text);
    int rc = -1;
    uint32_t *cps = NULL;
    avsr_vocab *v = NULL;
    json_t *type = json_object_get(root, "type"), *ver = json_object_get(root, "version");
    json_t *oov = json_object_get(root, "oov"), *syms = json_object_get(root, "symbols");
    const char *tn = json_is_string(type) ? json_string_value(type) : "";
    if (!json_is_object(root) || (strcmp(tn, "char") && strcmp(tn, "word"))) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: not a character or word vocabulary (\"type\": "
                       "\"char\" or \"word\")", fn);
        goto done;
    }
    bool words = !strcmp(tn, "word");
    if (!json_is_integer(ver) || json_integer_value(ver) != 1) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: unsupported \"version\" (expected 1)", fn);
        goto done;
    }
    int oov_mode = AVSR_OOV_UNK;
    if (oov) {
        const char *o = json_is_string(oov) ? json_string_value(oov) : "";
        if (!strcmp(o, "drop"))
            oov_mode = AVSR_OOV_DROP;
        else if (strcmp(o, "unk")) {
            avsr_error_set(err, AVSR_ERR_INVALID, "%s: \"oov\" must be \"unk\" or \"drop\"", fn);
            goto done;
        }
    }
    if (!json_is_array(syms) || json_array_size(syms) < 4) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: \"symbols\" must be an array of at least 4 strings", fn);
        goto done;
    }
    size_t size = json_array_size(syms);
    if (size > (1u << 22)) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: %zu symbols is too many", fn, size);
        goto done;
    }
    static const char *special[3] = {"<blank>", "<unk>", "<eos>"};
    size_t special_at[3] = {0, 1, size - 1};
    for (int k = 0; k < 3; k++) {
        json_t *s = json_array_get(syms, special_at[k]);
        if (!json_is_string(s) || strcmp(json_string_value(s), special[k])) {
            avsr_error_set(err, AVSR_ERR_INVALID, "%s: symbol %zu must be \"%s\"", fn,
                           special_at[k], special[k]);
            goto done;
        }
    }
    cps = malloc(size * sizeof *cps);
    if (!cps) {
        AVSR_NOMEM(err, size * sizeof *cps);
        goto done;
    }
    if (words) {
        const char **w = malloc(size * sizeof *w);
        if (!w) {
            AVSR_NOMEM(err, size * sizeof *w);
            goto done;
        }
        for (size_t i = 2; i + 1 < size; i++) {
            json_t *s = json_array_get(syms, i);
            const char *t = json_is_string(s) ? json_string_value(s) : NULL;
            avsr_error e2 = {0};
            char *norm = t ? avsr_vocab_normalize_text(t, json_string_length(s), &e2) : NULL;
            bool ok = norm && *norm && !strcmp(norm, t) && !strchr(t, ' ');
            free(norm);
            if (!ok) {
                free(w);
                avsr_error_set(err, AVSR_ERR_INVALID, "%s: symbol %zu must be one normalised word "
                               "(upper case, no spaces)", fn, i);
                goto done;
            }
            w[i - 2] = t;
        }
        v = vocab_from_words(w, (int32_t)(size - 3), err);
        free(w);
        if (!v) {
            avsr_error_prefix(err, "%s: ", fn);
            goto done;
        }
        goto layout;
    }
    for (size_t i = 2; i + 1 < size; i++) {
        json_t *s = json_array_get(syms, i);
        const char *t = json_is_string(s) ? json_string_value(s) : NULL;
        size_t len = t ? json_string_length(s) : 0, pos = 0;
        uint32_t c = 0;
        if (!t || len == 0 || utf8_next((const unsigned char *)t, len, &pos, &c) || pos != len ||
            is_control(c) || c != norm_cp(c)) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "%s: symbol %zu must be one normalised, non-control character", fn, i);
            goto done;
        }
        cps[i - 2] = c;
    }
    v = vocab_from_cps(cps, (int32_t)(size - 3), err);
    if (!v)
        goto done;
    /* duplicates: a later id overwrote an earlier one in the lookup */
    for (int32_t id = 2; id < v->size - 1; id++)
        if (avsr_vocab_id(v, v->cp[id]) != id) {
            int32_t other = avsr_vocab_id(v, v->cp[id]);
            avsr_error_set(err, AVSR_ERR_INVALID, "%s: duplicate symbol \"%s\" at ids %d and %d",
                           fn, v->sym[id], other < id ? other : id, other < id ? id : other);
            avsr_vocab_free(v);
            goto done;
        }
layout:
    if (json_int_is(root, "blank", AVSR_VOCAB_BLANK, err) ||
        json_int_is(root, "unk", AVSR_VOCAB_UNK, err) ||
        json_int_is(root, "eos", v->size - 1, err)) {
        avsr_vocab_free(v);
        goto done;
    }
    v->oov = oov_mode;
    *out = v;
    rc = 0;
done:
    free(cps);
    json_decref(root);
    return rc;
}
