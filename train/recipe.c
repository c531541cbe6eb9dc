/* recipe: the recipe YAML read, checked and resolved (see recipe.h; the
 * schema and every default are in docs/recipes.md).
 *
 * The document is read with yamltree in record mode, so every key a reader
 * looks up (the model builder's included) leaves its path and value, given
 * or default. Those entries, arranged as a tree in the order of the
 * sections, are the resolved recipe: flattened into key/value pairs (and
 * hashed), written as YAML, and, for the `model` subtree, as JSON. */
#include "recipe.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "datasets/loader.h"
#include "datasets/pack_read.h"
#include "datasets/spm.h"
#include "dist/coord.h"
#include "models/builder.h"

struct avsr_recipe_priv {
    char *yaml_text;       /* avsr_recipe_resolved_yaml */
};

/* ---- loading state ---------------------------------------------------------- */

typedef struct ld {
    avsr_yaml *y;
    avsr_error *err;
    avsr_recipe *r;
    avsr_ynode *root;
    unsigned noise_avail;          /* bit per declared data.noise source */
    unsigned base_types;           /* augment.noise.types (the stages' default) */
    int noise_decl[AVSR_NOISE_TYPES]; /* declaration order */
    int n_noise_decl;
    avsr_model_cfg mcfg;
    char **params;                 /* parameter names (no buffers) */
    int n_params;
    avsr_ynode **stage_nodes;
} ld;

static const char *const metric_names[] = {"valid_wer", "valid_cer", "valid_loss", "valid_acc",
                                           NULL};

/* an error at node `at` (the document start when NULL) */
static int fail(ld *L, const avsr_ynode *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(ld *L, const avsr_ynode *at, const char *fmt, ...)
{
    char msg[AVSR_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return avsr_yaml_error(L->y, at, L->err, "%s", msg);
}

static int nomem(ld *L) { return AVSR_NOMEM(L->err, 0); }

static int set_str(ld *L, char **dst, const char *s)
{
    free(*dst);
    *dst = s ? strdup(s) : NULL;
    return s && !*dst ? nomem(L) : 0;
}

/* record what.key = value by hand; out of memory is reported at the end by
 * avsr_yaml_records */
static void rec(ld *L, const char *what, const char *key, avsr_yval_type type, const char *value,
                const avsr_ynode *at)
{
    avsr_yaml_record_value(L->y, what, key, type, value, at);
}

/* "what.key" into buf */
static const char *path2(char *buf, size_t n, const char *what, const char *key)
{
    snprintf(buf, n, "%s%s%s", what, what[0] ? "." : "", key);
    return buf;
}

static int gint(ld *L, avsr_ynode *map, const char *what, const char *key, int64_t def,
                int64_t lo, int64_t hi, int64_t *out)
{
    return avsr_yaml_get_int(L->y, map, what, key, false, def, lo, hi, out, L->err);
}

static int gint32(ld *L, avsr_ynode *map, const char *what, const char *key, int def, int lo,
                  int hi, int *out)
{
    int64_t v;
    if (gint(L, map, what, key, def, lo, hi, &v) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

static int gdbl(ld *L, avsr_ynode *map, const char *what, const char *key, double def, double lo,
                double hi, double *out)
{
    return avsr_yaml_get_double(L->y, map, what, key, false, def, lo, hi, out, L->err);
}

static int gbool(ld *L, avsr_ynode *map, const char *what, const char *key, bool def, bool *out)
{
    return avsr_yaml_get_bool(L->y, map, what, key, false, def, out, L->err);
}

static int gstr(ld *L, avsr_ynode *map, const char *what, const char *key, const char *def,
                const char *const *choices, const char **out)
{
    return avsr_yaml_get_str(L->y, map, what, key, def == NULL, def, choices, out, L->err);
}

static int gmap(ld *L, avsr_ynode *map, const char *what, const char *key, avsr_ynode **out)
{
    return avsr_yaml_get_map(L->y, map, what, key, false, out, L->err);
}

static int unused(ld *L, avsr_ynode *map, const char *what)
{
    return avsr_yaml_check_unused(L->y, map, what, L->err);
}

/* a path given in the recipe must exist (a directory only where dir_ok) */
static int check_path(ld *L, const avsr_ynode *at, const char *what, const char *path,
                      bool dir_ok)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return fail(L, at, "%s: no such file '%s'", what, path);
        return fail(L, at, "%s: cannot access '%s': %s", what, path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode) && !dir_ok)
        return fail(L, at, "%s: '%s' is a directory, expected a file", what, path);
    return 0;
}

static void free_strs(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* A list of strings at what.key: a sequence of scalars (or a single scalar
 * when allow_scalar). Absent: def_json is recorded and *out is empty (the
 * caller fills in the default), or an error when required. files: each
 * item must name an existing file. */
static int read_strs(ld *L, avsr_ynode *map, const char *what, const char *key, bool required,
                     bool allow_scalar, const char *def_json, bool files, char ***out, int *n,
                     avsr_ynode **node)
{
    char path[256];
    path2(path, sizeof path, what, key);
    *out = NULL;
    *n = 0;
    avsr_ynode *v = avsr_ynode_get(map, key);
    if (node)
        *node = v;
    if (avsr_ynode_is_null(v)) {
        if (required)
            return fail(L, map, "%s%smissing required key '%s'", what, what[0] ? ": " : "", key);
        rec(L, what, key, AVSR_YV_LIST, def_json, NULL);
        return 0;
    }
    avsr_ynode *seq = NULL;
    int cnt = 1;
    if (avsr_ynode_kind_of(v) == AVSR_Y_SCALAR && allow_scalar) {
        char *q = avsr_yaml_quote(avsr_ynode_str(v));
        char *json = q ? malloc(strlen(q) + 3) : NULL;
        if (!json) {
            free(q);
            return nomem(L);
        }
        sprintf(json, "[%s]", q);
        rec(L, what, key, AVSR_YV_LIST, json, v);
        free(q);
        free(json);
    } else {
        if (avsr_yaml_get_seq(L->y, map, what, key, true, &seq, L->err) < 0)
            return -1;
        cnt = avsr_ynode_len(seq);
        if (required && cnt == 0)
            return fail(L, seq, "%s: needs at least one entry", path);
    }
    *out = calloc((size_t)(cnt ? cnt : 1), sizeof **out);
    if (!*out)
        return nomem(L);
    for (int i = 0; i < cnt; i++) {
        avsr_ynode *it = seq ? avsr_ynode_item(seq, i) : v;
        char ip[300];
        if (seq)
            snprintf(ip, sizeof ip, "%s[%d]", path, i);
        else
            snprintf(ip, sizeof ip, "%s", path);
        if (avsr_ynode_kind_of(it) != AVSR_Y_SCALAR || avsr_ynode_is_null(it))
            return fail(L, it, "%s: expected a string, got %s", ip,
                        avsr_ynode_kind_of(it) == AVSR_Y_SEQ   ? "a list"
                        : avsr_ynode_kind_of(it) == AVSR_Y_MAP ? "a mapping"
                                                               : "null");
        if (files && check_path(L, it, ip, avsr_ynode_str(it), false) < 0)
            return -1;
        if (set_str(L, &(*out)[i], avsr_ynode_str(it)) < 0)
            return -1;
        *n = i + 1;
    }
    return 0;
}

/* JSON list of strings */
static char *json_strs(const char *const *v, int n)
{
    size_t len = 3;
    char **q = calloc((size_t)(n ? n : 1), sizeof *q);
    if (!q)
        return NULL;
    for (int i = 0; i < n; i++) {
        if (!(q[i] = avsr_yaml_quote(v[i]))) {
            free_strs(q, i);
            return NULL;
        }
        len += strlen(q[i]) + 2;
    }
    char *s = malloc(len), *o = s;
    if (s) {
        *o++ = '[';
        for (int i = 0; i < n; i++)
            o += sprintf(o, "%s%s", i ? ", " : "", q[i]);
        strcpy(o, "]");
    }
    free_strs(q, n);
    return s;
}

/* JSON list of SNRs, "clean" for +inf */
static void json_snrs(const double *v, int n, char *buf, size_t size)
{
    size_t o = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < n && o < size; i++) {
        char num[40];
        if (isinf(v[i]) && v[i] > 0)
            snprintf(num, sizeof num, "\"clean\"");
        else
            avsr_yaml_fmt_double(v[i], num, sizeof num);
        o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? ", " : "", num);
    }
    if (o < size)
        snprintf(buf + o, size - o, "]");
}

/* a list of SNRs (dB numbers or `clean`) at node seq */
static int read_snrs(ld *L, const avsr_ynode *seq, const char *path, double *out, int *n)
{
    int cnt = avsr_ynode_len(seq);
    if (cnt < 1 || cnt > AVSR_RECIPE_MAX_SNR)
        return fail(L, seq, "%s: expected 1 to %d SNRs, got %d", path, AVSR_RECIPE_MAX_SNR, cnt);
    for (int i = 0; i < cnt; i++) {
        const avsr_ynode *it = avsr_ynode_item(seq, i);
        char ip[300];
        snprintf(ip, sizeof ip, "%s[%d]", path, i);
        const char *s = avsr_ynode_str(it);
        if (s && !strcmp(s, "clean")) {
            out[i] = INFINITY;
        } else if (!s || avsr_ynode_quoted(it)) {
            return fail(L, it, "%s: expected an SNR in dB or clean, got %s%s%s", ip,
                        s ? "'" : "a ", s ? s : "list or mapping", s ? "'" : "");
        } else {
            char *end;
            errno = 0;
            double v = strtod(s, &end);
            if (!*s || *end || errno == ERANGE || !isfinite(v))
                return fail(L, it, "%s: expected an SNR in dB or clean, got '%s'", ip, s);
            if (v < -100 || v > 100)
                return fail(L, it, "%s: %g dB is out of range [-100, 100]", ip, v);
            out[i] = v;
        }
    }
    *n = cnt;
    return 0;
}

static bool valid_name(const char *s)
{
    if (!*s || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return false;
    return true;
}

/* ---- data ------------------------------------------------------------------ */

static int read_batching(ld *L, avsr_ynode *parent, const char *what,
                         const avsr_sampler_config *def, avsr_sampler_config *out)
{
    char w[128];
    avsr_ynode *m;
    path2(w, sizeof w, what, "batching");
    if (gmap(L, parent, what, "batching", &m) < 0)
        return -1;
    int64_t mf, ml;
    int nb;
    *out = *def;
    if (gint(L, m, w, "max_frames", def->max_frames, 1, (int64_t)1 << 40, &mf) < 0 ||
        gint32(L, m, w, "buckets", def->nbuckets, 1, 1000000, &nb) < 0 ||
        gbool(L, m, w, "drop_last", def->drop_last, &out->drop_last) < 0 ||
        gint(L, m, w, "max_len", def->max_len, 0, (int64_t)1 << 40, &ml) < 0 ||
        gbool(L, m, w, "ctc_filter", def->ctc_filter, &out->ctc_filter) < 0)
        return -1;
    out->max_frames = mf;
    out->nbuckets = nb;
    out->max_len = ml;
    return unused(L, m, w);
}

static int read_noise_sources(ld *L, avsr_ynode *data)
{
    avsr_recipe *r = L->r;
    avsr_ynode *nm;
    if (gmap(L, data, "data", "noise", &nm) < 0)
        return -1;
    for (int i = 0; nm && i < avsr_ynode_len(nm); i++) {
        const char *k = avsr_ynode_key(nm, i);
        int t = avsr_noise_type_parse(k);
        if (t <= AVSR_NOISE_NONE)
            return avsr_yaml_error_at(L->y, avsr_ynode_key_line(nm, i), avsr_ynode_key_col(nm, i),
                                      L->err, "data.noise: unknown noise source '%s' (expected "
                                      "one of: file, babble, white, pink)", k);
        char w[64];
        snprintf(w, sizeof w, "data.noise.%s", k);
        avsr_ynode *spec;
        if (avsr_yaml_get_map(L->y, nm, "data.noise", k, true, &spec, L->err) < 0)
            return -1;
        if (t == AVSR_NOISE_FILE || t == AVSR_NOISE_BABBLE) {
            bool file = t == AVSR_NOISE_FILE;
            if (read_strs(L, spec, w, "from", true, true, NULL, true,
                          file ? &r->noise_files : &r->babble_files,
                          file ? &r->n_noise_files : &r->n_babble_files, NULL) < 0)
                return -1;
        } else {
            const char *const only[] = {k, NULL};
            const char *g;
            if (gstr(L, spec, w, "generate", NULL, only, &g) < 0)
                return -1;
            if (t == AVSR_NOISE_WHITE)
                r->white_noise = true;
            else
                r->pink_noise = true;
        }
        if (unused(L, spec, w) < 0)
            return -1;
        L->noise_avail |= 1u << t;
        L->noise_decl[L->n_noise_decl++] = t;
    }
    return 0;
}

/* The word vocabulary of the training shards' transcripts: every rank
 * reads the same files, so every rank builds the same vocabulary. */
static int words_from_shards(char **paths, int n, avsr_vocab **out, avsr_error *err)
{
    avsr_pack *p = avsr_pack_open((const char *const *)paths, n, err);
    if (!p)
        return -1;
    int64_t nc = avsr_pack_count(p);
    int rc = -1;
    char **texts = calloc((size_t)(nc > 0 ? nc : 1), sizeof *texts);
    if (!texts) {
        AVSR_NOMEM(err, (size_t)nc * sizeof *texts);
        goto out;
    }
    for (int64_t i = 0; i < nc; i++) {
        avsr_pack_clip c;
        if (avsr_pack_clip_info(p, i, &c, err) < 0)
            goto out;
        if (!(texts[i] = malloc((size_t)c.text_bytes + 1))) {
            AVSR_NOMEM(err, (size_t)c.text_bytes + 1);
            goto out;
        }
        if (avsr_pack_read_text(p, i, texts[i], (size_t)c.text_bytes + 1, err) < 0) {
            avsr_error_prefix(err, "clip %lld (%s): ", (long long)i, c.id);
            goto out;
        }
    }
    rc = avsr_vocab_build_words(out, (const char *const *)texts, nc, err);
out:
    if (texts)
        for (int64_t i = 0; i < nc; i++)
            free(texts[i]);
    free(texts);
    avsr_pack_close(p);
    return rc;
}

static int read_tokenizer(ld *L, avsr_ynode *data)
{
    avsr_recipe *r = L->r;
    static const char *const types[] = {"char", "word", "sentencepiece", NULL};
    const char *w = "data.tokenizer", *type;
    avsr_ynode *tk;
    if (gmap(L, data, "data", "tokenizer", &tk) < 0 ||
        gstr(L, tk, w, "type", "char", types, &type) < 0)
        return -1;
    if (!strcmp(type, "char")) {
        r->tokenizer = AVSR_TOKENIZER_CHAR;
        if (avsr_vocab_default(&r->vocab, L->err) < 0)
            return -1;
        r->vocab_size = avsr_vocab_size(r->vocab);
        return unused(L, tk, w);
    }
    if (!strcmp(type, "word")) {
        r->tokenizer = AVSR_TOKENIZER_WORD;
        if (unused(L, tk, w) < 0)
            return -1;
        avsr_error e = {0};
        if (words_from_shards(r->train, r->n_train, &r->vocab, &e) < 0)
            return fail(L, avsr_ynode_get(tk, "type"), "%s.type: word: %s", w, e.msg);
        r->vocab_size = avsr_vocab_size(r->vocab);
        return 0;
    }
    r->tokenizer = AVSR_TOKENIZER_SENTENCEPIECE;
    if (!avsr_spm_available())
        return fail(L, avsr_ynode_get(tk, "type"), "%s.type: sentencepiece: this build has no "
                    "SentencePiece support (install libsentencepiece-dev and run configure "
                    "--with-sentencepiece)", w);
    const char *model;
    if (gstr(L, tk, w, "model", NULL, NULL, &model) < 0 ||
        check_path(L, avsr_ynode_get(tk, "model"), "data.tokenizer.model", model, false) < 0)
        return -1;
    avsr_error e = {0};
    avsr_spm *spm = avsr_spm_load(model, &e);
    if (!spm)
        return fail(L, avsr_ynode_get(tk, "model"), "data.tokenizer.model: %s", e.msg);
    r->vocab_size = avsr_spm_vocab_size(spm) + 2;
    avsr_spm_free(spm);
    if (set_str(L, &r->spm_model, model) < 0)
        return -1;
    return unused(L, tk, w);
}

static int read_data(ld *L)
{
    avsr_recipe *r = L->r;
    avsr_ynode *d, *v, *a;
    if (avsr_yaml_get_map(L->y, L->root, "", "data", true, &d, L->err) < 0)
        return -1;
    if (read_strs(L, d, "data", "train", true, false, NULL, true, &r->train, &r->n_train, NULL) <
            0 ||
        read_strs(L, d, "data", "valid", false, false, "[]", true, &r->valid, &r->n_valid,
                  NULL) < 0 ||
        read_strs(L, d, "data", "test", false, false, "[]", true, &r->test, &r->n_test, NULL) <
            0 ||
        read_noise_sources(L, d) < 0 || read_tokenizer(L, d) < 0)
        return -1;
    avsr_sampler_config sdef;
    avsr_sampler_config_default(&sdef);
    if (read_batching(L, d, "data", &sdef, &r->sampler) < 0)
        return -1;

    /* video / audio: the normalisation and crop shared by training and
     * evaluation */
    avsr_augment_config_default(&r->eval_augment, false);
    avsr_augment_config *e = &r->eval_augment;
    int crop;
    double mean, std;
    const char *norm;
    static const char *const norms[] = {"utterance", "none", NULL};
    if (gmap(L, d, "data", "video", &v) < 0 ||
        gint32(L, v, "data.video", "roi", 96, 8, 4096, &r->video_roi) < 0 ||
        gint32(L, v, "data.video", "crop", e->crop_h, 1, 4096, &crop) < 0 ||
        gdbl(L, v, "data.video", "mean", e->video_mean, -1e3, 1e3, &mean) < 0 ||
        gdbl(L, v, "data.video", "std", e->video_std, 1e-6, 1e3, &std) < 0)
        return -1;
    if (crop > r->video_roi)
        return fail(L, avsr_ynode_get(v, "crop"), "data.video.crop: %d is larger than "
                    "data.video.roi %d", crop, r->video_roi);
    if (unused(L, v, "data.video") < 0 || gmap(L, d, "data", "audio", &a) < 0 ||
        gstr(L, a, "data.audio", "normalize", "utterance", norms, &norm) < 0 ||
        unused(L, a, "data.audio") < 0)
        return -1;
    e->crop_h = e->crop_w = crop;
    e->video_mean = (float)mean;
    e->video_std = (float)std;
    e->audio_norm = !strcmp(norm, "utterance");
    return unused(L, d, "data");
}

/* ---- augment ---------------------------------------------------------------- */

static int read_time_mask(ld *L, avsr_ynode *parent, const char *what, double rate,
                          const char *unit, int64_t *window, int64_t *stride)
{
    char w[128];
    avsr_ynode *m;
    double len_s, stride_s;
    path2(w, sizeof w, what, "time_mask");
    if (gmap(L, parent, what, "time_mask", &m) < 0 ||
        gdbl(L, m, w, "max_len_s", (double)*window / rate, 0, 60, &len_s) < 0 ||
        gdbl(L, m, w, "stride_s", (double)*stride / rate, 0, 3600, &stride_s) < 0)
        return -1;
    int64_t st = llround(stride_s * rate);
    if (st < 1)
        return fail(L, avsr_ynode_get(m, "stride_s"), "%s.stride_s: %g s is shorter than one "
                    "%s", w, stride_s, unit);
    *window = llround(len_s * rate);
    *stride = st;
    return unused(L, m, w);
}

static int noise_names_json(ld *L, unsigned types, char **out)
{
    const char *names[AVSR_NOISE_TYPES];
    int n = 0;
    for (int i = 0; i < L->n_noise_decl; i++)
        if (types & (1u << L->noise_decl[i]))
            names[n++] = avsr_noise_type_name(L->noise_decl[i]);
    *out = json_strs(names, n);
    return *out ? 0 : nomem(L);
}

/* names of data.noise sources at what.key (a list) -> bits or an int list */
static int read_noise_names(ld *L, avsr_ynode *map, const char *what, const char *key,
                            unsigned def, unsigned *bits, int *list, int *n_list)
{
    char path[256];
    path2(path, sizeof path, what, key);
    avsr_ynode *seq;
    if (avsr_yaml_get_seq(L->y, map, what, key, false, &seq, L->err) < 0)
        return -1;
    *bits = 0;
    if (n_list)
        *n_list = 0;
    if (!seq) {
        char *json;
        if (noise_names_json(L, def, &json) < 0)
            return -1;
        rec(L, what, key, AVSR_YV_LIST, json, NULL);
        free(json);
        *bits = def;
        for (int i = 0; list && i < L->n_noise_decl; i++)
            if (def & (1u << L->noise_decl[i]))
                list[(*n_list)++] = L->noise_decl[i];
        return 0;
    }
    for (int i = 0; i < avsr_ynode_len(seq); i++) {
        avsr_ynode *it = avsr_ynode_item(seq, i);
        const char *s = avsr_ynode_str(it);
        int t = s ? avsr_noise_type_parse(s) : -1;
        if (t <= AVSR_NOISE_NONE || !(L->noise_avail & (1u << t))) {
            char decl[128] = "";
            for (int j = 0; j < L->n_noise_decl; j++)
                snprintf(decl + strlen(decl), sizeof decl - strlen(decl), "%s%s", j ? ", " : "",
                         avsr_noise_type_name(L->noise_decl[j]));
            return fail(L, it, "%s[%d]: '%s' is not a source in data.noise (declared: %s)", path,
                        i, s ? s : "(not a string)", decl[0] ? decl : "none");
        }
        if (*bits & (1u << t))
            return fail(L, it, "%s[%d]: '%s' is listed twice", path, i, s);
        *bits |= 1u << t;
        if (list)
            list[(*n_list)++] = t;
    }
    return 0;
}

static int read_augment(ld *L, avsr_ynode *parent, const char *what,
                        const avsr_augment_config *def, unsigned def_types,
                        avsr_augment_config *out, unsigned *types)
{
    char w[128], wn[160], wv[160], wa[160], wm[160];
    avsr_ynode *m, *nm, *vm, *am, *mm;
    path2(w, sizeof w, what, "augment");
    snprintf(wn, sizeof wn, "%s.noise", w);
    snprintf(wv, sizeof wv, "%s.video", w);
    snprintf(wa, sizeof wa, "%s.audio", w);
    snprintf(wm, sizeof wm, "%s.modality_dropout", w);
    *out = *def;
    if (gmap(L, parent, what, "augment", &m) < 0 || gmap(L, m, w, "noise", &nm) < 0 ||
        gdbl(L, nm, wn, "prob", def->noise.prob, 0, 1, &out->noise.prob) < 0 ||
        read_noise_names(L, nm, wn, "types", def_types, types, NULL, NULL) < 0)
        return -1;

    /* snr_db: a list of SNRs or {min, max} */
    avsr_ynode *sn = avsr_ynode_get(nm, "snr_db");
    char sp[200];
    snprintf(sp, sizeof sp, "%s.snr_db", wn);
    avsr_noise_config *nc = &out->noise;
    if (avsr_ynode_is_null(sn)) {
        if (def->noise.n_snr > 0) {
            char json[AVSR_RECIPE_MAX_SNR * 24 + 8];
            json_snrs(def->noise.snr_list, def->noise.n_snr, json, sizeof json);
            rec(L, wn, "snr_db", AVSR_YV_LIST, json, NULL);
        } else {
            double lo, hi;
            gdbl(L, NULL, sp, "min", def->noise.snr_lo, 0, 0, &lo);
            gdbl(L, NULL, sp, "max", def->noise.snr_hi, 0, 0, &hi);
        }
    } else if (avsr_ynode_kind_of(sn) == AVSR_Y_SEQ) {
        char *json = avsr_ynode_list_json(sn);
        if (read_snrs(L, sn, sp, nc->snr_list, &nc->n_snr) < 0) {
            free(json);
            return -1;
        }
        if (!json)
            return nomem(L);
        rec(L, wn, "snr_db", AVSR_YV_LIST, json, sn);
        free(json);
        nc->snr_lo = nc->snr_hi = 0;
    } else if (avsr_ynode_kind_of(sn) == AVSR_Y_MAP) {
        if (avsr_yaml_get_double(L->y, sn, sp, "min", true, 0, -100, 100, &nc->snr_lo, L->err) <
                0 ||
            avsr_yaml_get_double(L->y, sn, sp, "max", true, 0, -100, 100, &nc->snr_hi, L->err) <
                0 ||
            unused(L, sn, sp) < 0)
            return -1;
        if (nc->snr_lo > nc->snr_hi)
            return fail(L, sn, "%s: min %g is above max %g", sp, nc->snr_lo, nc->snr_hi);
        nc->n_snr = 0;
    } else {
        return fail(L, sn, "%s: expected a list of SNRs (dB or clean) or {min, max}, got '%s'",
                    sp, avsr_ynode_str(sn));
    }
    if (unused(L, nm, wn) < 0)
        return -1;

    if (gmap(L, m, w, "video", &vm) < 0 ||
        gbool(L, vm, wv, "random_crop", def->random_crop, &out->random_crop) < 0 ||
        gdbl(L, vm, wv, "hflip", def->flip_prob, 0, 1, &out->flip_prob) < 0 ||
        read_time_mask(L, vm, wv, 25.0, "video frame", &out->vmask_window, &out->vmask_stride) < 0 ||
        unused(L, vm, wv) < 0)
        return -1;
    if (gmap(L, m, w, "audio", &am) < 0 ||
        read_time_mask(L, am, wa, 16000.0, "audio sample", &out->amask_window, &out->amask_stride) < 0 ||
        unused(L, am, wa) < 0)
        return -1;
    if (gmap(L, m, w, "modality_dropout", &mm) < 0 ||
        gdbl(L, mm, wm, "prob", def->modality_prob, 0, 1, &out->modality_prob) < 0 ||
        gdbl(L, mm, wm, "audio_share", def->modality_audio_prob, 0, 1,
             &out->modality_audio_prob) < 0 ||
        unused(L, mm, wm) < 0)
        return -1;
    return unused(L, m, w);
}

/* ---- stages ------------------------------------------------------------------ */

static const char *pick_name(avsr_recipe_pick p)
{
    return p == AVSR_PICK_BEST ? "best" : p == AVSR_PICK_LAST ? "last" : "average";
}

/* "none" | "previous.PICK" | "stage.NAME.PICK" | a path, for stage i */
static int parse_src(ld *L, int i, const char *text, const avsr_ynode *at, const char *what,
                     bool dir_ok, avsr_recipe_src *out)
{
    avsr_recipe *r = L->r;
    memset(out, 0, sizeof *out);
    if (!strcmp(text, "none"))
        return 0;
    const char *pick = NULL;
    int stage = -1;
    if (!strncmp(text, "previous.", 9)) {
        if (i == 0)
            return fail(L, at, "%s: '%s': the first stage has no previous stage", what, text);
        stage = i - 1;
        pick = text + 9;
    } else if (!strncmp(text, "stage.", 6)) {
        const char *name = text + 6, *dot = strrchr(name, '.');
        if (!dot || dot == name)
            return fail(L, at, "%s: '%s': expected stage.NAME.best, .last or .average", what,
                        text);
        for (int j = 0; j < r->n_stages; j++)
            if (strlen(r->stages[j].name) == (size_t)(dot - name) &&
                !strncmp(r->stages[j].name, name, (size_t)(dot - name)))
                stage = j;
        if (stage < 0)
            return fail(L, at, "%s: '%s': no stage named '%.*s'", what, text, (int)(dot - name),
                        name);
        if (stage >= i)
            return fail(L, at, "%s: '%s': stage '%s' does not come before this one", what, text,
                        r->stages[stage].name);
        pick = dot + 1;
    } else {
        out->kind = AVSR_SRC_PATH;
        if (check_path(L, at, what, text, dir_ok) < 0)
            return -1;
        return set_str(L, &out->path, text);
    }
    out->kind = AVSR_SRC_STAGE;
    out->stage = stage;
    if (!strcmp(pick, "best"))
        out->pick = AVSR_PICK_BEST;
    else if (!strcmp(pick, "last"))
        out->pick = AVSR_PICK_LAST;
    else if (!strcmp(pick, "average"))
        out->pick = AVSR_PICK_AVERAGE;
    else
        return fail(L, at, "%s: '%s': expected best, last or average after the stage, got '%s'",
                    what, text, pick);
    if (out->pick == AVSR_PICK_BEST && !r->valid_metric)
        return fail(L, at, "%s: '%s' needs a validation metric (eval.valid_metric is none)",
                    what, text);
    return 0;
}

static void src_text(const avsr_recipe *r, const avsr_recipe_src *s, char *buf, size_t n)
{
    if (s->kind == AVSR_SRC_NONE)
        snprintf(buf, n, "none");
    else if (s->kind == AVSR_SRC_PATH)
        snprintf(buf, n, "%s", s->path);
    else
        snprintf(buf, n, "stage.%s.%s", r->stages[s->stage].name, pick_name(s->pick));
}

static int src_copy(ld *L, avsr_recipe_src *dst, const avsr_recipe_src *src)
{
    *dst = *src;
    dst->path = NULL;
    return src->path ? set_str(L, &dst->path, src->path) : 0;
}

/* parameter patterns: each must match a parameter; at least one parameter
 * trained and not frozen */
static int check_patterns(ld *L, int i, const char *w, avsr_ynode *tnode, avsr_ynode *fnode)
{
    avsr_recipe_stage *st = &L->r->stages[i];
    for (int k = 0; k < 2; k++) {
        char **pat = k ? st->freeze : st->train;
        int n = k ? st->n_freeze : st->n_train;
        avsr_ynode *node = k ? fnode : tnode;
        for (int j = 0; j < n; j++) {
            int hits = 0;
            for (int p = 0; p < L->n_params && !hits; p++)
                hits += fnmatch(pat[j], L->params[p], 0) == 0;
            if (!hits) {
                bool seq = node && avsr_ynode_kind_of(node) == AVSR_Y_SEQ;
                char ip[96];
                if (seq)
                    snprintf(ip, sizeof ip, "%s.%s[%d]", w, k ? "freeze" : "train", j);
                else
                    snprintf(ip, sizeof ip, "%s.%s", w, k ? "freeze" : "train");
                return fail(L, seq ? avsr_ynode_item(node, j) : node ? node : L->stage_nodes[i],
                            "%s: '%s' matches no parameter of the model", ip, pat[j]);
            }
        }
    }
    int64_t trained = 0;
    for (int p = 0; p < L->n_params; p++) {
        bool t = false, f = false;
        for (int j = 0; j < st->n_train && !t; j++)
            t = fnmatch(st->train[j], L->params[p], 0) == 0;
        for (int j = 0; j < st->n_freeze && t && !f; j++)
            f = fnmatch(st->freeze[j], L->params[p], 0) == 0;
        trained += t && !f;
    }
    if (!trained)
        return fail(L, fnode ? fnode : tnode ? tnode : L->stage_nodes[i],
                    "%s: training a frozen-only stage: every parameter that train matches is "
                    "frozen", w);
    return 0;
}

static int read_optimizer(ld *L, avsr_ynode *sn, const char *w, avsr_optim_cfg *o)
{
    static const char *const types[] = {"adamw", "adam", "sgd", NULL};
    char wo[96];
    const char *tname;
    avsr_ynode *om;
    avsr_optim_type type;
    snprintf(wo, sizeof wo, "%s.optimizer", w);
    if (gmap(L, sn, w, "optimizer", &om) < 0 || gstr(L, om, wo, "type", "adamw", types, &tname) < 0)
        return -1;
    if (avsr_optim_type_parse(tname, &type, L->err) < 0)
        return -1;
    *o = avsr_optim_defaults(type);
    if (gdbl(L, om, wo, "lr", o->lr, 0, 100, &o->lr) < 0 ||
        gdbl(L, om, wo, "weight_decay", o->weight_decay, 0, 100, &o->weight_decay) < 0)
        return -1;
    static const char *const adam_keys[] = {"betas", "eps", NULL};
    static const char *const sgd_keys[] = {"momentum", "dampening", "nesterov", NULL};
    const char *const *other = type == AVSR_OPTIM_SGD ? adam_keys : sgd_keys;
    for (int k = 0; other[k]; k++) {
        avsr_ynode *v = avsr_ynode_get(om, other[k]);
        if (v)
            return fail(L, v, "%s.%s: only for %s", wo, other[k],
                        type == AVSR_OPTIM_SGD ? "adam and adamw" : "sgd");
    }
    if (type == AVSR_OPTIM_SGD) {
        if (gdbl(L, om, wo, "momentum", o->momentum, 0, 1e3, &o->momentum) < 0 ||
            gdbl(L, om, wo, "dampening", o->dampening, 0, 1, &o->dampening) < 0 ||
            gbool(L, om, wo, "nesterov", o->nesterov, &o->nesterov) < 0)
            return -1;
    } else {
        avsr_ynode *b;
        if (avsr_yaml_get_seq(L->y, om, wo, "betas", false, &b, L->err) < 0)
            return -1;
        if (b) {
            char bp[128];
            snprintf(bp, sizeof bp, "%s.betas", wo);
            if (avsr_ynode_len(b) != 2)
                return fail(L, b, "%s: expected [beta1, beta2], got %d numbers", bp,
                            avsr_ynode_len(b));
            if (avsr_ynode_to_double(L->y, avsr_ynode_item(b, 0), bp, 0, 1, &o->beta1, L->err) <
                    0 ||
                avsr_ynode_to_double(L->y, avsr_ynode_item(b, 1), bp, 0, 1, &o->beta2, L->err) < 0)
                return -1;
        } else {
            char json[96], b1[40], b2[40];
            avsr_yaml_fmt_double(o->beta1, b1, sizeof b1);
            avsr_yaml_fmt_double(o->beta2, b2, sizeof b2);
            snprintf(json, sizeof json, "[%s, %s]", b1, b2);
            rec(L, wo, "betas", AVSR_YV_LIST, json, NULL);
        }
        if (gdbl(L, om, wo, "eps", o->eps, 0, 1, &o->eps) < 0)
            return -1;
    }
    avsr_error e = {0};
    if (avsr_optim_check(o, &e) < 0)
        return fail(L, om ? om : sn, "%s: %s", wo, e.msg);
    return unused(L, om, wo);
}

static int read_schedule(ld *L, avsr_ynode *sn, const char *w, avsr_recipe_stage *st)
{
    static const char *const types[] = {"constant", "warmup_cosine", "tri_stage",
                                        "exp_per_epoch", NULL};
    char ws[96];
    const char *tname;
    avsr_ynode *sm;
    avsr_lrsched_type type;
    snprintf(ws, sizeof ws, "%s.schedule", w);
    if (gmap(L, sn, w, "schedule", &sm) < 0 ||
        gstr(L, sm, ws, "type", "constant", types, &tname) < 0)
        return -1;
    if (avsr_lrsched_type_parse(tname, &type, L->err) < 0)
        return -1;
    avsr_lrsched *s = &st->sched;
    *s = avsr_lrsched_defaults(type, st->optim.lr);
    if (gint(L, sm, ws, "warmup_steps", 0, 0, (int64_t)1 << 40, &s->warmup_steps) < 0 ||
        gdbl(L, sm, ws, "warmup_epochs", 0, 0, 1e6, &st->warmup_epochs) < 0)
        return -1;
    if (s->warmup_steps > 0 && st->warmup_epochs > 0)
        return fail(L, avsr_ynode_get(sm, "warmup_epochs"),
                    "%s.warmup_epochs: give warmup_steps or warmup_epochs, not both", ws);
    if (type == AVSR_LRSCHED_TRI_STAGE) {
        if (gint(L, sm, ws, "hold_steps", 0, 0, (int64_t)1 << 40, &s->hold_steps) < 0 ||
            gint(L, sm, ws, "decay_steps", 0, 0, (int64_t)1 << 40, &s->decay_steps) < 0 ||
            gdbl(L, sm, ws, "init_lr_scale", s->init_lr_scale, 0, 1, &s->init_lr_scale) < 0 ||
            gdbl(L, sm, ws, "final_lr_scale", s->final_lr_scale, 0, 1, &s->final_lr_scale) < 0)
            return -1;
    } else if (type == AVSR_LRSCHED_EXP_EPOCH) {
        if (gdbl(L, sm, ws, "factor", s->factor, 0, 1e3, &s->factor) < 0)
            return -1;
    }
    s->total_steps = st->steps;
    /* check what is known now: with epochs the trainer sets total_steps and
     * the warmup from epochs */
    avsr_lrsched c = *s;
    if (c.total_steps == 0 && c.type == AVSR_LRSCHED_COSINE)
        c.total_steps = c.warmup_steps + 1;
    avsr_error e = {0};
    if (avsr_lrsched_check(&c, &e) < 0)
        return fail(L, sm ? sm : L->stage_nodes[st - L->r->stages], "%s: %s", ws, e.msg);
    return unused(L, sm, ws);
}

static int read_losses(ld *L, int i, avsr_ynode *sn, const char *w)
{
    avsr_recipe_stage *st = &L->r->stages[i];
    char wl[96];
    avsr_ynode *lm;
    snprintf(wl, sizeof wl, "%s.losses", w);
    if (gmap(L, sn, w, "losses", &lm) < 0)
        return -1;
    avsr_recipe_losses *l = &st->losses;
    if (gdbl(L, lm, wl, "hybrid", lm ? 0 : 1, 0, 1e6, &l->hybrid) < 0 ||
        gdbl(L, lm, wl, "ctc", 0, 0, 1e6, &l->ctc) < 0 ||
        gdbl(L, lm, wl, "dec_ce", 0, 0, 1e6, &l->dec_ce) < 0 ||
        gdbl(L, lm, wl, "mel_l1", 0, 0, 1e6, &l->mel_l1) < 0 ||
        gdbl(L, lm, wl, "enc_l1", 0, 0, 1e6, &l->enc_l1) < 0 || unused(L, lm, wl) < 0)
        return -1;
    if (l->hybrid + l->ctc + l->dec_ce + l->mel_l1 + l->enc_l1 == 0)
        return fail(L, lm, "%s: every loss weight is 0", wl);
    const char *names[] = {"mel_l1", "enc_l1"};
    double vals[] = {l->mel_l1, l->enc_l1};
    for (int k = 0; k < 2; k++)
        if (vals[k] > 0 && st->teacher.kind == AVSR_SRC_NONE)
            return fail(L, avsr_ynode_get(lm, names[k]), "%s.%s: needs a teacher (teacher: "
                        "stage.NAME.best or a checkpoint path)", wl, names[k]);
    if (l->dec_ce > 0 && !L->mcfg.use_decoder)
        return fail(L, avsr_ynode_get(lm, "dec_ce"), "%s.dec_ce: the model has no attention "
                    "decoder (model.ctc_weight is 1)", wl);
    return 0;
}

static int read_stage(ld *L, int i)
{
    avsr_recipe *r = L->r;
    avsr_recipe_stage *st = &r->stages[i];
    avsr_ynode *sn = L->stage_nodes[i];
    char w[48], p[128];
    snprintf(w, sizeof w, "stages[%d]", i);
    const char *text;

    /* init */
    char def[600];
    if (i == 0)
        snprintf(def, sizeof def, "none");
    else
        snprintf(def, sizeof def, "previous.%s", r->valid_metric ? "best" : "last");
    if (gstr(L, sn, w, "init", def, NULL, &text) < 0 ||
        parse_src(L, i, text, avsr_ynode_get(sn, "init") ? avsr_ynode_get(sn, "init") : sn,
                  path2(p, sizeof p, w, "init"), true, &st->init) < 0)
        return -1;

    /* parameters */
    avsr_ynode *tnode, *fnode;
    if (read_strs(L, sn, w, "train", false, false, "[\"*\"]", false, &st->train, &st->n_train,
                  &tnode) < 0 ||
        read_strs(L, sn, w, "freeze", false, false, "[]", false, &st->freeze, &st->n_freeze,
                  &fnode) < 0)
        return -1;
    if (!tnode || avsr_ynode_is_null(tnode)) {
        st->train = calloc(1, sizeof *st->train);
        if (!st->train || set_str(L, &st->train[0], "*") < 0)
            return nomem(L);
        st->n_train = 1;
        tnode = NULL;
    }
    if (tnode && st->n_train == 0)
        return fail(L, tnode, "%s.train: empty; give parameter name patterns (\"*\": all)", w);
    if (avsr_ynode_is_null(fnode))
        fnode = NULL;
    if (check_patterns(L, i, w, tnode, fnode) < 0)
        return -1;

    /* inputs */
    static const char *const ain[] = {"noisy", "clean", "none", NULL};
    static const char *const vin[] = {"lips", "none", NULL};
    char wi[64];
    avsr_ynode *im;
    const char *a, *v;
    bool has_audio = L->mcfg.audio != AVSR_AUDIO_NONE, has_video = L->mcfg.use_video || L->mcfg.use_fusion_module;
    snprintf(wi, sizeof wi, "%s.inputs", w);
    if (gmap(L, sn, w, "inputs", &im) < 0 ||
        gstr(L, im, wi, "audio", has_audio ? "noisy" : "none", ain, &a) < 0 ||
        gstr(L, im, wi, "video", has_video ? "lips" : "none", vin, &v) < 0 ||
        unused(L, im, wi) < 0)
        return -1;
    st->audio_in = !strcmp(a, "noisy") ? AVSR_IN_AUDIO_NOISY
                   : !strcmp(a, "clean") ? AVSR_IN_AUDIO_CLEAN
                                         : AVSR_IN_AUDIO_NONE;
    st->video_in = !strcmp(v, "lips") ? AVSR_IN_VIDEO_LIPS : AVSR_IN_VIDEO_NONE;
    if (st->audio_in != AVSR_IN_AUDIO_NONE && !has_audio)
        return fail(L, avsr_ynode_get(im, "audio"), "%s.audio: '%s', but the model has no "
                    "audio frontend (model.audio)", wi, a);
    if (st->video_in != AVSR_IN_VIDEO_NONE && !has_video)
        return fail(L, avsr_ynode_get(im, "video"), "%s.video: '%s', but the model has no "
                    "visual frontend (model.video)", wi, v);
    if (st->audio_in == AVSR_IN_AUDIO_NONE && st->video_in == AVSR_IN_VIDEO_NONE)
        return fail(L, im ? im : sn, "%s: audio and video are both none", wi);

    /* teacher: inherited */
    avsr_recipe_src inherited = {0};
    if (i > 0)
        inherited = st[-1].teacher;
    src_text(r, &inherited, def, sizeof def);
    avsr_ynode *tn = avsr_ynode_get(sn, "teacher");
    if (gstr(L, sn, w, "teacher", def, NULL, &text) < 0)
        return -1;
    if (tn && !avsr_ynode_is_null(tn)) {
        if (parse_src(L, i, text, tn, path2(p, sizeof p, w, "teacher"), true, &st->teacher) < 0)
            return -1;
    } else if (src_copy(L, &st->teacher, &inherited) < 0) {
        return -1;
    }

    static const char *const targets[] = {"transcript", "teacher", NULL};
    if (gstr(L, sn, w, "dec_target", "transcript", targets, &text) < 0)
        return -1;
    st->dec_target = !strcmp(text, "teacher") ? AVSR_DEC_TARGET_TEACHER
                                               : AVSR_DEC_TARGET_TRANSCRIPT;
    if (st->dec_target == AVSR_DEC_TARGET_TEACHER) {
        avsr_ynode *dn = avsr_ynode_get(sn, "dec_target");
        if (st->teacher.kind == AVSR_SRC_NONE)
            return fail(L, dn, "%s.dec_target: 'teacher' needs a teacher", w);
        if (!L->mcfg.use_decoder)
            return fail(L, dn, "%s.dec_target: the model has no attention decoder", w);
    }
    if (read_losses(L, i, sn, w) < 0)
        return -1;

    /* length */
    avsr_ynode *stn = avsr_ynode_get(sn, "steps");
    if (gint(L, sn, w, "epochs", 0, 0, 1000000, &st->epochs) < 0 ||
        gint(L, sn, w, "steps", 0, 0, (int64_t)1 << 50, &st->steps) < 0)
        return -1;
    if (st->epochs > 0 && st->steps > 0)
        return fail(L, stn, "%s.steps: give epochs or steps, not both", w);

    if (read_optimizer(L, sn, w, &st->optim) < 0 || read_schedule(L, sn, w, st) < 0 ||
        gdbl(L, sn, w, "clip_grad_norm", 5.0, 0, 1e9, &st->clip_grad_norm) < 0 ||
        gint32(L, sn, w, "accum", 1, 1, 65536, &st->accum) < 0 ||
        read_batching(L, sn, w, &r->sampler, &st->sampler) < 0 ||
        read_augment(L, sn, w, &r->augment, L->base_types, &st->augment, &st->noise_types) < 0)
        return -1;

    /* validation */
    if (gint(L, sn, w, "valid_every_steps", 0, 0, (int64_t)1 << 50, &st->valid_every_steps) < 0)
        return -1;
    if (st->valid_every_steps > 0 && r->n_valid == 0)
        return fail(L, avsr_ynode_get(sn, "valid_every_steps"), "%s.valid_every_steps: needs "
                    "validation data (data.valid is empty)", w);
    avsr_ynode *es;
    char we[64];
    snprintf(we, sizeof we, "%s.early_stop", w);
    if (gmap(L, sn, w, "early_stop", &es) < 0)
        return -1;
    if (es) {
        if (!r->valid_metric)
            return fail(L, es, "%s: needs a validation metric (eval.valid_metric is none)", we);
        int pat;
        if (gstr(L, es, we, "metric", r->valid_metric, metric_names, &text) < 0 ||
            gint32(L, es, we, "patience", 3, 1, 1000000, &pat) < 0 ||
            set_str(L, &st->early_stop_metric, text) < 0 || unused(L, es, we) < 0)
            return -1;
        st->early_stop_patience = pat;
    }
    if (unused(L, sn, w) < 0)
        return -1;
    /* after the unknown-key check: a misspelt `epochs` is reported as such */
    if (st->epochs == 0 && st->steps == 0)
        return fail(L, sn, "%s: give its length as epochs or steps", w);
    return 0;
}

static int read_stages(ld *L)
{
    avsr_recipe *r = L->r;
    avsr_ynode *seq;
    if (avsr_yaml_get_seq(L->y, L->root, "", "stages", true, &seq, L->err) < 0)
        return -1;
    int n = avsr_ynode_len(seq);
    if (n == 0)
        return fail(L, seq, "stages: needs at least one stage");
    r->stages = calloc((size_t)n, sizeof *r->stages);
    L->stage_nodes = calloc((size_t)n, sizeof *L->stage_nodes);
    if (!r->stages || !L->stage_nodes)
        return nomem(L);
    r->n_stages = n;
    /* names first: init and teacher may name any stage */
    for (int i = 0; i < n; i++) {
        avsr_ynode *sn = avsr_ynode_item(seq, i);
        char w[48];
        snprintf(w, sizeof w, "stages[%d]", i);
        if (avsr_ynode_kind_of(sn) != AVSR_Y_MAP)
            return fail(L, sn, "%s: expected a mapping, got %s", w,
                        avsr_ynode_kind_of(sn) == AVSR_Y_SEQ ? "a list" : "a scalar");
        L->stage_nodes[i] = sn;
        const char *name;
        if (gstr(L, sn, w, "name", NULL, NULL, &name) < 0)
            return -1;
        avsr_ynode *nn = avsr_ynode_get(sn, "name");
        if (!valid_name(name))
            return fail(L, nn, "%s.name: '%s' is not a valid stage name (letters, digits, '_', "
                        "'.', '-')", w, name);
        for (int j = 0; j < i; j++)
            if (!strcmp(r->stages[j].name, name))
                return fail(L, nn, "%s.name: duplicate stage name '%s' (first at line %d)", w,
                            name, avsr_ynode_line(avsr_ynode_get(L->stage_nodes[j], "name")));
        if (set_str(L, &r->stages[i].name, name) < 0)
            return -1;
    }
    for (int i = 0; i < n; i++)
        if (read_stage(L, i) < 0)
            return -1;
    return 0;
}

/* ---- run, average, eval --------------------------------------------------------- */

static int read_run(ld *L)
{
    avsr_recipe *r = L->r;
    avsr_ynode *run, *ck;
    const char *s;
    static const char *const devices[] = {"cpu", "cuda", NULL};
    char def[300];
    snprintf(def, sizeof def, "exp/%s", r->name);
    int64_t seed;
    if (gmap(L, L->root, "", "run", &run) < 0 || gstr(L, run, "run", "exp_dir", def, NULL, &s) < 0 ||
        set_str(L, &r->exp_dir, s) < 0 ||
        gint(L, run, "run", "seed", 1234, 0, INT64_MAX, &seed) < 0 ||
        gstr(L, run, "run", "device", "cpu", devices, &s) < 0 ||
        gint32(L, run, "run", "ranks", 1, 1, 65536, &r->ranks) < 0)
        return -1;
    if (!r->exp_dir[0])
        return fail(L, avsr_ynode_get(run, "exp_dir"), "run.exp_dir: empty");
    r->seed = (uint64_t)seed;
    r->cuda = !strcmp(s, "cuda");
    /* threads: auto or a positive integer */
    avsr_ynode *t = avsr_ynode_get(run, "threads");
    if (avsr_ynode_is_null(t) ||
        (avsr_ynode_str(t) && !strcmp(avsr_ynode_str(t), "auto"))) {
        rec(L, "run", "threads", AVSR_YV_STR, "auto", avsr_ynode_is_null(t) ? NULL : t);
        if (set_str(L, &r->threads, "auto") < 0)
            return -1;
    } else {
        const char *ts = avsr_ynode_str(t);
        char *end = NULL;
        errno = 0;
        long long v = ts && !avsr_ynode_quoted(t) ? strtoll(ts, &end, 10) : 0;
        if (!end || *end || errno || v < 1 || v > 4096)
            return fail(L, t, "run.threads: expected auto or an integer in [1, 4096], got %s%s%s",
                        ts ? "'" : "a ", ts ? ts : "list or mapping", ts ? "'" : "");
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", v);
        rec(L, "run", "threads", AVSR_YV_INT, buf, t);
        if (set_str(L, &r->threads, buf) < 0)
            return -1;
    }
    int64_t every;
    if (gmap(L, run, "run", "checkpoint", &ck) < 0 ||
        gint(L, ck, "run.checkpoint", "every_steps", 0, 0, (int64_t)1 << 50, &every) < 0 ||
        gint32(L, ck, "run.checkpoint", "keep_last", 5, 0, 1000000, &r->keep_last) < 0 ||
        gint32(L, ck, "run.checkpoint", "keep_best", r->valid_metric ? 5 : 0, 0, 1000000,
               &r->keep_best) < 0 ||
        unused(L, ck, "run.checkpoint") < 0)
        return -1;
    r->ckpt_every_steps = every;
    if (r->keep_best > 0 && !r->valid_metric)
        return fail(L, avsr_ynode_get(ck, "keep_best"), "run.checkpoint.keep_best: %d best "
                    "checkpoints need a validation metric (eval.valid_metric is none)",
                    r->keep_best);
    if (gint32(L, run, "run", "max_nonfinite", 10, 1, 1000000, &r->max_nonfinite) < 0 ||
        gint32(L, run, "run", "log_every_steps", 10, 1, 1000000, &r->log_every_steps) < 0 ||
        gint32(L, run, "run", "watchdog_s", 600, 1, 86400 * 7, &r->watchdog_s) < 0)
        return -1;
    return unused(L, run, "run");
}

static int read_average(ld *L)
{
    avsr_recipe *r = L->r;
    avsr_ynode *am;
    if (gmap(L, L->root, "", "average", &am) < 0 ||
        gint32(L, am, "average", "last", am ? 0 : 5, 0, 1000000, &r->average_last) < 0 ||
        gint32(L, am, "average", "best", 0, 0, 1000000, &r->average_best) < 0)
        return -1;
    if (r->average_last > 0 && r->average_best > 0)
        return fail(L, am, "average: give last or best, not both");
    if (r->average_last == 0 && r->average_best == 0)
        return fail(L, am, "average: give last: N or best: N (N > 0)");
    if (r->average_best > 0 && !r->valid_metric)
        return fail(L, avsr_ynode_get(am, "best"), "average.best: needs a validation metric "
                    "(eval.valid_metric is none)");
    return unused(L, am, "average");
}

static int read_valid_metric(ld *L, avsr_ynode **eval)
{
    avsr_recipe *r = L->r;
    static const char *const choices[] = {"valid_wer", "valid_cer", "valid_loss", "valid_acc",
                                          "none", NULL};
    const char *m;
    if (gmap(L, L->root, "", "eval", eval) < 0 ||
        gstr(L, *eval, "eval", "valid_metric", r->n_valid ? "valid_wer" : "none", choices, &m) < 0)
        return -1;
    if (!strcmp(m, "none"))
        return 0;
    if (r->n_valid == 0)
        return fail(L, avsr_ynode_get(*eval, "valid_metric"), "eval.valid_metric: '%s' needs "
                    "validation data (data.valid is empty)", m);
    r->valid_higher_better = !strcmp(m, "valid_acc");
    return set_str(L, &r->valid_metric, m);
}

static int read_search(ld *L, avsr_ynode *eval)
{
    avsr_recipe *r = L->r;
    static const char *const types[] = {"attention_beam", "ctc_beam", "ctc_greedy", NULL};
    const char *w = "eval.search", *t;
    avsr_ynode *sm;
    int V = r->vocab_size;
    avsr_att_beam_opts_default(&r->att_beam, V);
    avsr_ctc_beam_opts_default(&r->ctc_beam);
    if (gmap(L, eval, "eval", "search", &sm) < 0 ||
        gstr(L, sm, w, "type", L->mcfg.use_decoder ? "attention_beam" : "ctc_beam", types, &t) <
            0)
        return -1;
    if (!strcmp(t, "attention_beam")) {
        r->search = AVSR_SEARCH_ATTENTION_BEAM;
        if (!L->mcfg.use_decoder)
            return fail(L, avsr_ynode_get(sm, "type"), "%s.type: attention_beam needs the "
                        "model's attention decoder (model.ctc_weight is 1)", w);
        avsr_att_beam_opts *o = &r->att_beam;
        if (gint32(L, sm, w, "beam", o->beam < V ? o->beam : V, 1, V, &o->beam) < 0 ||
            gint32(L, sm, w, "nbest", 1, 1, V, &o->nbest) < 0 ||
            gdbl(L, sm, w, "ctc_weight", o->ctc_weight, 0, 1, &o->ctc_weight) < 0 ||
            gdbl(L, sm, w, "length_bonus", o->length_bonus, -1e3, 1e3, &o->length_bonus) < 0 ||
            gdbl(L, sm, w, "pre_beam_ratio", o->pre_beam_ratio, 0, 1e3, &o->pre_beam_ratio) <
                0 ||
            gdbl(L, sm, w, "maxlenratio", o->maxlenratio, -1e6, 1e6, &o->maxlenratio) < 0)
            return -1;
        bool eos;
        if (gbool(L, sm, w, "eos_always", o->eos_always != 0, &eos) < 0)
            return -1;
        o->eos_always = eos;
        if (o->nbest > o->beam)
            return fail(L, avsr_ynode_get(sm, "nbest"), "%s.nbest: %d is more than beam %d", w,
                        o->nbest, o->beam);
    } else if (!strcmp(t, "ctc_beam")) {
        r->search = AVSR_SEARCH_CTC_BEAM;
        avsr_ctc_beam_opts *o = &r->ctc_beam;
        if (gint32(L, sm, w, "beam", o->beam, 1, 100000, &o->beam) < 0 ||
            gint32(L, sm, w, "nbest", 1, 1, 100000, &o->nbest) < 0 ||
            gint32(L, sm, w, "token_topk", 0, 0, V, &o->token_topk) < 0)
            return -1;
        if (o->nbest > o->beam)
            return fail(L, avsr_ynode_get(sm, "nbest"), "%s.nbest: %d is more than beam %d", w,
                        o->nbest, o->beam);
    } else {
        r->search = AVSR_SEARCH_CTC_GREEDY;
    }
    return unused(L, sm, w);
}

static int read_sweep(ld *L, avsr_ynode *eval)
{
    avsr_recipe *r = L->r;
    const char *w = "eval.sweep";
    avsr_ynode *sw, *sn, *mn;
    unsigned bits;
    if (gmap(L, eval, "eval", "sweep", &sw) < 0)
        return -1;
    r->sweep_noise = calloc(AVSR_NOISE_TYPES, sizeof *r->sweep_noise);
    if (!r->sweep_noise)
        return nomem(L);
    if (read_noise_names(L, sw, w, "noise", L->noise_avail, &bits, r->sweep_noise,
                         &r->n_sweep_noise) < 0)
        return -1;

    if (avsr_yaml_get_seq(L->y, sw, w, "snr_db", false, &sn, L->err) < 0)
        return -1;
    if (sn) {
        if (read_snrs(L, sn, "eval.sweep.snr_db", r->sweep_snr, &r->n_sweep_snr) < 0)
            return -1;
    } else {
        static const double def[] = {INFINITY, 10, 5, 0, -5, -10};
        memcpy(r->sweep_snr, def, sizeof def);
        r->n_sweep_snr = 6;
        char json[200];
        json_snrs(def, 6, json, sizeof json);
        rec(L, w, "snr_db", AVSR_YV_LIST, json, NULL);
    }

    bool has_a = L->mcfg.audio != AVSR_AUDIO_NONE, has_v = L->mcfg.use_video || L->mcfg.use_fusion_module;
    static const char *const mods[] = {"audio", "video", "audiovisual"};
    if (avsr_yaml_get_seq(L->y, sw, w, "modalities", false, &mn, L->err) < 0)
        return -1;
    if (mn) {
        int cnt = avsr_ynode_len(mn);
        if (cnt < 1 || cnt > 3)
            return fail(L, mn, "%s.modalities: expected 1 to 3 of audio, video, audiovisual, got "
                        "%d entries", w, cnt);
        for (int i = 0; i < cnt; i++) {
            avsr_ynode *it = avsr_ynode_item(mn, i);
            const char *s = avsr_ynode_str(it);
            int m = -1;
            for (int k = 0; k < 3 && s; k++)
                if (!strcmp(s, mods[k]))
                    m = k;
            if (m < 0)
                return fail(L, it, "%s.modalities[%d]: '%s' is not one of: audio, video, "
                            "audiovisual", w, i, s ? s : "(not a string)");
            for (int j = 0; j < i; j++)
                if ((int)r->sweep_modality[j] == m)
                    return fail(L, it, "%s.modalities[%d]: '%s' is listed twice", w, i, s);
            if ((m != AVSR_MODALITY_VIDEO && !has_a) || (m != AVSR_MODALITY_AUDIO && !has_v))
                return fail(L, it, "%s.modalities[%d]: '%s' needs %s, which the model does not "
                            "have", w, i, s, !has_a ? "audio" : "video");
            r->sweep_modality[i] = (avsr_recipe_modality)m;
        }
        r->n_sweep_modality = cnt;
    } else {
        const char *names[3];
        int n = 0;
        if (has_a && has_v) {
            for (int k = 0; k < 3; k++) {
                r->sweep_modality[n] = (avsr_recipe_modality)k;
                names[n++] = mods[k];
            }
        } else {
            r->sweep_modality[n] = has_a ? AVSR_MODALITY_AUDIO : AVSR_MODALITY_VIDEO;
            names[n++] = has_a ? "audio" : "video";
        }
        r->n_sweep_modality = n;
        char *json = json_strs(names, n);
        if (!json)
            return nomem(L);
        rec(L, w, "modalities", AVSR_YV_LIST, json, NULL);
        free(json);
    }
    return unused(L, sw, w);
}

/* ---- model -------------------------------------------------------------------- */

static int read_model(ld *L)
{
    avsr_recipe *r = L->r;
    avsr_ynode *mn;
    if (avsr_yaml_get_map(L->y, L->root, "", "model", true, &mn, L->err) < 0)
        return -1;
    avsr_params *p = avsr_params_create();
    avsr_model *m = NULL;
    if (!p)
        return nomem(L);
    int rc = avsr_model_build(L->y, mn, r->vocab_size, &m, p, L->err);
    if (rc == 0) {
        L->mcfg = m->cfg;
        int n = avsr_params_count(p);
        L->params = calloc((size_t)(n ? n : 1), sizeof *L->params);
        if (!L->params)
            rc = nomem(L);
        for (int i = 0; rc == 0 && i < n; i++) {
            if (avsr_params_is_buffer(p, i))
                continue;
            if (!(L->params[L->n_params] = strdup(avsr_params_at(p, i)->name)))
                rc = nomem(L);
            else
                L->n_params++;
        }
    }
    avsr_model_free(m);
    avsr_params_destroy(p);
    r->model = mn;
    if (rc == 0 && L->mcfg.use_video && L->mcfg.video.roi != r->eval_augment.crop_h) {
        avsr_ynode *dv = avsr_ynode_get(avsr_ynode_get(L->root, "data"), "video");
        avsr_ynode *crop = avsr_ynode_get(dv, "crop");
        rc = fail(L, crop ? crop : dv ? dv : mn, "data.video.crop: %d differs from "
                  "model.video.roi %d (the frame size the model expects)",
                  r->eval_augment.crop_h, L->mcfg.video.roi);
    }
    return rc;
}

/* ---- the resolved form ---------------------------------------------------------- */

/* the records as a tree: inner nodes by path component, leaves hold a record */
typedef struct tnode {
    char *name;
    const avsr_yaml_rec *rec;
    struct tnode **kid;
    int n, cap;
} tnode;

static void tree_free(tnode *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n; i++)
        tree_free(t->kid[i]);
    free(t->kid);
    free(t->name);
    free(t);
}

static tnode *tree_child(tnode *t, const char *name, size_t len)
{
    for (int i = 0; i < t->n; i++)
        if (strlen(t->kid[i]->name) == len && !strncmp(t->kid[i]->name, name, len))
            return t->kid[i];
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 8;
        tnode **k = realloc(t->kid, (size_t)cap * sizeof *k);
        if (!k)
            return NULL;
        t->kid = k;
        t->cap = cap;
    }
    tnode *c = calloc(1, sizeof *c);
    if (!c || !(c->name = strndup(name, len))) {
        free(c);
        return NULL;
    }
    t->kid[t->n++] = c;
    return c;
}

static int tree_add(tnode *root, const avsr_yaml_rec *rc)
{
    tnode *t = root;
    const char *p = rc->path;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (t->rec)
            return 0; /* a leaf cannot have children: keep the first */
        if (!(t = tree_child(t, p, len)))
            return -1;
        if (!dot)
            break;
        p = dot + 1;
    }
    if (!t->rec && t->n == 0)
        t->rec = rc;
    return 0;
}

static int section_rank(const char *name)
{
    static const char *const order[] = {"name",   "run",    "data",    "model",
                                        "augment", "stages", "average", "eval"};
    for (int i = 0; i < 8; i++)
        if (!strcmp(order[i], name))
            return i;
    return 8;
}

static void tree_sort_sections(tnode *root)
{
    /* insertion sort: stable */
    for (int i = 1; i < root->n; i++) {
        tnode *k = root->kid[i];
        int j = i - 1;
        while (j >= 0 && section_rank(root->kid[j]->name) > section_rank(k->name)) {
            root->kid[j + 1] = root->kid[j];
            j--;
        }
        root->kid[j + 1] = k;
    }
}

static void tree_leaves(const tnode *t, const avsr_yaml_rec **out, int *n)
{
    if (t->rec) {
        out[(*n)++] = t->rec;
        return;
    }
    for (int i = 0; i < t->n; i++)
        tree_leaves(t->kid[i], out, n);
}

typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + (size_t)k + 1)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* a string that must be quoted to read back as the same string */
static bool needs_quotes(const char *s)
{
    static const char *const words[] = {"y", "n", "yes", "no", "on", "off", "true", "false",
                                        "null", "~", NULL};
    if (!*s)
        return true;
    for (int i = 0; words[i]; i++)
        if (!strcasecmp(s, words[i]))
            return true;
    char *end;
    strtod(s, &end);
    if (!*end || strstr(s, "inf") || strstr(s, "nan") || strstr(s, "INF") || strstr(s, "NAN"))
        return true;
    if (*s == '-' || *s == '.' || *s == '+')
        return true;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '.' || *c == '/' || *c == '-' || *c == '+' || *c == '@'))
            return true;
    return false;
}

/* a value in YAML, or in JSON (every string quoted) */
static void put_scalar(sbuf *b, const avsr_yaml_rec *rc, bool json)
{
    if (rc->type == AVSR_YV_STR && (json || needs_quotes(rc->value))) {
        char *q = avsr_yaml_quote(rc->value);
        if (!q) {
            b->oom = true;
            return;
        }
        sb_add(b, "%s", q);
        free(q);
    } else {
        sb_add(b, "%s", rc->value);
    }
}

static bool is_index(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static void put_json(sbuf *b, const tnode *t)
{
    if (t->rec) {
        put_scalar(b, t->rec, true);
        return;
    }
    sb_add(b, "{");
    for (int i = 0; i < t->n; i++) {
        char *q = avsr_yaml_quote(t->kid[i]->name);
        if (!q) {
            b->oom = true;
            return;
        }
        sb_add(b, "%s%s: ", i ? ", " : "", q);
        free(q);
        put_json(b, t->kid[i]);
    }
    sb_add(b, "}");
}

static void put_yaml(sbuf *b, const tnode *t, int indent)
{
    for (int i = 0; i < t->n; i++) {
        const tnode *c = t->kid[i];
        if (c->rec) {
            sb_add(b, "%*s%s: ", indent, "", c->name);
            put_scalar(b, c->rec, false);
            sb_add(b, "%s\n", c->rec->is_default ? "  # default" : "");
        } else if (c->n > 0 && is_index(c->kid[0]->name)) {
            sb_add(b, "%*s%s:\n", indent, "", c->name);
            for (int j = 0; j < c->n; j++) {
                size_t at = b->n;
                put_yaml(b, c->kid[j], indent + 4);
                if (!b->oom && b->n > at + (size_t)indent + 3)
                    b->s[at + indent + 2] = '-';
            }
        } else {
            sb_add(b, "%*s%s:\n", indent, "", c->name);
            put_yaml(b, c, indent + 2);
        }
    }
}

static int resolve(ld *L)
{
    avsr_recipe *r = L->r;
    int n;
    const avsr_yaml_rec *recs = avsr_yaml_records(L->y, &n, L->err);
    if (!recs)
        return -1;
    tnode *root = calloc(1, sizeof *root);
    if (!root)
        return nomem(L);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = tree_add(root, &recs[i]);
    const avsr_yaml_rec **leaves = calloc((size_t)(n ? n : 1), sizeof *leaves);
    r->resolved = calloc((size_t)(n ? n : 1), sizeof *r->resolved);
    r->priv = calloc(1, sizeof *r->priv);
    if (rc < 0 || !leaves || !r->resolved || !r->priv) {
        free(leaves);
        tree_free(root);
        return nomem(L);
    }
    tree_sort_sections(root);
    int nl = 0;
    tree_leaves(root, leaves, &nl);
    uint64_t h = AVSR_FNV1A64_INIT;
    for (int i = 0; i < nl; i++) {
        r->resolved[i].key = leaves[i]->path;
        r->resolved[i].value = leaves[i]->value;
        h = avsr_fnv1a64_update(h, leaves[i]->path, strlen(leaves[i]->path) + 1);
        h = avsr_fnv1a64_update(h, leaves[i]->value, strlen(leaves[i]->value) + 1);
    }
    r->n_resolved = nl;
    snprintf(r->hash, sizeof r->hash, "%016llx", (unsigned long long)h);

    sbuf yb = {0}, jb = {0};
    sb_add(&yb, "# %s resolved: every key with its value (\"# default\": not in the recipe)\n"
                "# hash: %s\n", r->path, r->hash);
    put_yaml(&yb, root, 0);
    for (int i = 0; i < root->n; i++)
        if (!strcmp(root->kid[i]->name, "model"))
            put_json(&jb, root->kid[i]);
    free(leaves);
    tree_free(root);
    if (yb.oom || jb.oom || !jb.s) {
        free(yb.s);
        free(jb.s);
        return nomem(L);
    }
    r->priv->yaml_text = yb.s;
    r->model_json = jb.s;
    return 0;
}

/* ---- entry points --------------------------------------------------------------- */

static void stage_free(avsr_recipe_stage *s)
{
    free(s->name);
    free(s->init.path);
    free(s->teacher.path);
    free_strs(s->train, s->n_train);
    free_strs(s->freeze, s->n_freeze);
    free(s->early_stop_metric);
}

void avsr_recipe_free(avsr_recipe *r)
{
    if (!r)
        return;
    free(r->path);
    free(r->name);
    free(r->exp_dir);
    free(r->threads);
    free_strs(r->train, r->n_train);
    free_strs(r->valid, r->n_valid);
    free_strs(r->test, r->n_test);
    free_strs(r->noise_files, r->n_noise_files);
    free_strs(r->babble_files, r->n_babble_files);
    avsr_vocab_free(r->vocab);
    free(r->spm_model);
    free(r->model_json);
    for (int i = 0; i < r->n_stages; i++)
        stage_free(&r->stages[i]);
    free(r->stages);
    free(r->valid_metric);
    free(r->sweep_noise);
    free(r->resolved);
    if (r->priv)
        free(r->priv->yaml_text);
    free(r->priv);
    avsr_yaml_free((avsr_yaml *)r->yaml);
    free(r);
}

static int load(ld *L)
{
    avsr_recipe *r = L->r;
    L->root = avsr_yaml_root(L->y);
    if (avsr_ynode_kind_of(L->root) != AVSR_Y_MAP)
        return fail(L, L->root, "recipe: expected a mapping of sections at the top level");
    static const char *const sections[] = {"name",    "run",    "data",    "model",
                                           "augment", "stages", "average", "eval", NULL};
    for (int i = 0; sections[i]; i++)
        avsr_ynode_get(L->root, sections[i]);
    if (unused(L, L->root, "recipe") < 0)
        return -1;

    /* name: default the file name without its extension */
    char def[256];
    const char *base = strrchr(r->path, '/');
    snprintf(def, sizeof def, "%s", base ? base + 1 : r->path);
    char *ext = strrchr(def, '.');
    if (ext && (!strcmp(ext, ".yaml") || !strcmp(ext, ".yml")))
        *ext = 0;
    const char *name;
    if (gstr(L, L->root, "", "name", def, NULL, &name) < 0)
        return -1;
    if (!valid_name(name))
        return fail(L, avsr_ynode_get(L->root, "name") ? avsr_ynode_get(L->root, "name")
                                                       : L->root,
                    "name: '%s' is not a valid recipe name (letters, digits, '_', '.', '-')",
                    name);
    if (set_str(L, &r->name, name) < 0)
        return -1;

    avsr_ynode *eval;
    if (read_data(L) < 0 || read_valid_metric(L, &eval) < 0 || read_run(L) < 0)
        return -1;
    r->sampler.seed = r->seed; /* before the stages copy it */
    if (read_model(L) < 0)
        return -1;

    avsr_augment_config aug;
    avsr_augment_config_default(&aug, true);
    aug.crop_h = aug.crop_w = r->eval_augment.crop_h;
    aug.video_mean = r->eval_augment.video_mean;
    aug.video_std = r->eval_augment.video_std;
    aug.audio_norm = r->eval_augment.audio_norm;
    if (read_augment(L, L->root, "", &aug, L->noise_avail, &r->augment, &L->base_types) < 0)
        return -1;
    if (read_stages(L) < 0 || read_average(L) < 0 || read_search(L, eval) < 0 ||
        read_sweep(L, eval) < 0 || unused(L, eval, "eval") < 0)
        return -1;
    return resolve(L);
}

static avsr_recipe *load_yaml(const char *path, avsr_yaml *y, avsr_error *err)
{
    if (!y)
        return NULL;
    avsr_recipe *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        avsr_yaml_free(y);
        AVSR_NOMEM(err, sizeof *r);
        return NULL;
    }
    r->yaml = y;
    ld L = {.y = y, .err = err, .r = r};
    avsr_yaml_record_start(y);
    int rc = load(&L);
    avsr_yaml_record_stop(y);
    free_strs(L.params, L.n_params);
    free(L.stage_nodes);
    if (rc < 0) {
        avsr_recipe_free(r);
        return NULL;
    }
    return r;
}

avsr_recipe *avsr_recipe_load(const char *path, avsr_error *err)
{
    return load_yaml(path, avsr_yaml_load_file(path, err), err);
}

avsr_recipe *avsr_recipe_load_string(const char *name, const char *text, avsr_error *err)
{
    return load_yaml(name, avsr_yaml_load_string(name, text, strlen(text), err), err);
}

int avsr_recipe_stage_index(const avsr_recipe *r, const char *name)
{
    for (int i = 0; i < r->n_stages; i++)
        if (!strcmp(r->stages[i].name, name))
            return i;
    return -1;
}

int avsr_recipe_stage_dir(const avsr_recipe *r, int stage, char *buf, size_t size)
{
    if (stage < 0 || stage >= r->n_stages)
        return -1;
    int k = snprintf(buf, size, "%s/%s", r->exp_dir, r->stages[stage].name);
    return k < 0 || (size_t)k >= size ? -1 : 0;
}

char *avsr_recipe_resolved_yaml(const avsr_recipe *r)
{
    return r->priv && r->priv->yaml_text ? strdup(r->priv->yaml_text) : NULL;
}
