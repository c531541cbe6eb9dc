/* report: point files, the merged results, tables, hypotheses and plots. */
#define _GNU_SOURCE /* open_memstream */
#include "report.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datasets/loader.h"
#include "fileio.h"

#define JSON_FLAGS (JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12))

/* ---- small helpers ---------------------------------------------------------- */

static int mkdir_p(const char *path, avsr_error *err)
{
    char *p = strdup(path);
    if (!p)
        return AVSR_NOMEM(err, strlen(path));
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                avsr_error_set(err, AVSR_ERR_IO, "%s: cannot create directory: %s", p,
                               strerror(errno));
                free(p);
                return -1;
            }
            *s = c;
            if (!c)
                break;
        }
    }
    free(p);
    return 0;
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", a, b);
    return s;
}

static int write_text(const char *path, const char *text, size_t len, avsr_error *err)
{
    avsr_afile af;
    if (avsr_afile_open(&af, path, err) < 0)
        return -1;
    if (avsr_afile_write(&af, text, len, err) < 0) {
        avsr_afile_abort(&af);
        return -1;
    }
    return avsr_afile_commit(&af, err);
}

static int write_json(const char *path, json_t *j, avsr_error *err)
{
    char *s = json_dumps(j, JSON_FLAGS);
    if (!s)
        return AVSR_NOMEM(err, 0);
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return AVSR_NOMEM(err, n);
    }
    t[n] = '\n';
    int rc = write_text(path, t, n + 1, err);
    free(t);
    return rc;
}

static bool is_clean(double snr)
{
    return isinf(snr) && snr > 0;
}

static json_t *counts_json(const avsr_edit_counts *c)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "sub", (json_int_t)c->sub, "del",
                     (json_int_t)c->del, "ins", (json_int_t)c->ins, "hit", (json_int_t)c->hit,
                     "ref", (json_int_t)avsr_edit_ref_len(c));
}

static json_t *search_json(const avsr_recog_opts *o)
{
    const char *name = avsr_recog_search_name(o->search);
    switch (o->search) {
    case AVSR_SEARCH_CTC_BEAM:
        return json_pack("{s:s, s:i, s:i}", "type", name, "beam", o->ctc.beam, "token_topk",
                         o->ctc.token_topk);
    case AVSR_SEARCH_ATTENTION_BEAM:
        return json_pack("{s:s, s:i, s:f, s:f, s:f, s:f, s:i, s:i, s:f}", "type", name, "beam",
                         o->att.beam, "ctc_weight", o->att.ctc_weight, "length_bonus",
                         o->att.length_bonus, "maxlenratio", o->att.maxlenratio,
                         "pre_beam_ratio", o->att.pre_beam_ratio, "eos_always",
                         o->att.eos_always, "end_m", o->att.end_m, "end_d", o->att.end_d);
    default:
        return json_pack("{s:s}", "type", name ? name : "?");
    }
}

/* ---- one point ------------------------------------------------------------- */

int avsr_eval_point_write(const char *eval_dir, const avsr_eval_result *r,
                          const avsr_eval_meta *m, char *path_out, size_t path_size,
                          avsr_error *err)
{
    char name[AVSR_EVAL_POINT_NAME_MAX], spec[AVSR_EVAL_POINT_NAME_MAX], file[96];
    avsr_eval_point_name(&r->point, name, sizeof name);
    avsr_eval_point_spec(&r->point, spec, sizeof spec);
    snprintf(file, sizeof file, "%s.json", name);
    char *dir = join(eval_dir, "points");
    char *path = dir ? join(dir, file) : NULL;
    json_t *root = NULL, *test = json_array(), *utts = json_array();
    int rc = -1;
    if (!dir || !path || !test || !utts) {
        AVSR_NOMEM(err, 0);
        goto out;
    }
    if (mkdir_p(dir, err) < 0)
        goto out;
    for (int i = 0; i < m->n_test; i++)
        json_array_append_new(test, json_string(m->test[i]));
    for (int64_t i = 0; i < r->n; i++) {
        const avsr_eval_utt *u = &r->utt[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:f, s:[I, I, I, I], s:[I, I, I, I]}", "id",
                              u->id, "ref", u->ref, "hyp", u->hyp, "text", u->text, "score",
                              u->score, "words",
                              (json_int_t)u->word.sub, (json_int_t)u->word.del,
                              (json_int_t)u->word.ins, (json_int_t)u->word.hit, "chars",
                              (json_int_t)u->chr.sub, (json_int_t)u->chr.del,
                              (json_int_t)u->chr.ins, (json_int_t)u->chr.hit);
        if (!o || json_array_append_new(utts, o) != 0) {
            avsr_error_set(err, AVSR_ERR_INVALID, "utterance %s: cannot encode as JSON (UTF-8?)",
                           u->id);
            goto out;
        }
    }
    char seed[24];
    snprintf(seed, sizeof seed, "%" PRIu64, m->seed);
    root = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:o, s:s, s:o, s:s, s:O, s:I, s:I, s:f, "
                     "s:f, s:f, s:o, s:o, s:O}",
                     "format", AVSR_EVAL_POINT_FORMAT, "version", AVSR_EVAL_FORMAT_VERSION,
                     "point", name, "spec", spec, "modality",
                     avsr_eval_modality_name(r->point.modality), "noise",
                     avsr_noise_type_name(r->point.noise), "snr_db",
                     is_clean(r->point.snr_db) ? json_null() : json_real(r->point.snr_db),
                     "model", m->model, "search", search_json(m->search), "seed", seed, "test",
                     test, "utterances", (json_int_t)r->n, "skipped", (json_int_t)r->skipped,
                     "audio_seconds", r->audio_seconds, "wer", r->score.wer, "cer",
                     r->score.cer, "words", counts_json(&r->score.word), "chars",
                     counts_json(&r->score.chr), "utts", utts);
    if (!root) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: cannot encode the point as JSON", path);
        goto out;
    }
    if (write_json(path, root, err) < 0)
        goto out;
    if (path_out)
        snprintf(path_out, path_size, "%s", path);
    rc = 0;
out:
    json_decref(root);
    json_decref(test);
    json_decref(utts);
    free(dir);
    free(path);
    return rc;
}

/* ---- reading the points ---------------------------------------------------- */

typedef struct rpoint {
    char *file;            /* points/<name>.json (for messages) */
    json_t *root;
    avsr_eval_point p;
    char name[AVSR_EVAL_POINT_NAME_MAX];
    char *ident;           /* model, search, seed and test as one JSON text */
    int64_t n, skipped;
    double audio_seconds;
    avsr_edit_counts w, c;
} rpoint;

static int get_counts(const rpoint *rp, const char *key, avsr_edit_counts *c, avsr_error *err)
{
    json_t *o = json_object_get(rp->root, key);
    json_int_t s, d, i, h, r;
    if (!json_is_object(o) ||
        json_unpack(o, "{s:I, s:I, s:I, s:I, s:I}", "sub", &s, "del", &d, "ins", &i, "hit", &h,
                    "ref", &r) != 0 ||
        s < 0 || d < 0 || i < 0 || h < 0 || r != s + d + h)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: '%s' is not {sub, del, ins, hit, ref} counts", rp->file, key);
    *c = (avsr_edit_counts){s, d, i, h};
    return 0;
}

static int read_point(const char *dir, const char *fname, rpoint *rp, avsr_error *err)
{
    memset(rp, 0, sizeof *rp);
    if (!(rp->file = join(dir, fname)))
        return AVSR_NOMEM(err, 0);
    json_error_t je;
    rp->root = json_load_file(rp->file, 0, &je);
    if (!rp->root)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s:%d:%d: %s", rp->file, je.line,
                              je.column, je.text);
    const char *fmt = NULL, *spec = NULL;
    int version = 0;
    json_t *model = NULL, *search = NULL, *seed = NULL, *test = NULL;
    json_int_t n = 0, skipped = 0;
    double secs = 0;
    if (json_unpack(rp->root, "{s:s, s:i, s:s, s:o, s:o, s:o, s:o, s:I, s:I, s:F}", "format",
                    &fmt, "version", &version, "spec", &spec, "model", &model, "search", &search,
                    "seed", &seed, "test", &test, "utterances", &n, "skipped", &skipped,
                    "audio_seconds", &secs) != 0 ||
        strcmp(fmt, AVSR_EVAL_POINT_FORMAT) != 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: not an evaluation point file (format \"%s\" version %d with "
                              "spec, model, search, seed, test, utterances, ...)",
                              rp->file, AVSR_EVAL_POINT_FORMAT, AVSR_EVAL_FORMAT_VERSION);
    if (version != AVSR_EVAL_FORMAT_VERSION)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: version %d, this build reads %d",
                              rp->file, version, AVSR_EVAL_FORMAT_VERSION);
    if (avsr_eval_point_parse(spec, &rp->p, err) < 0) {
        avsr_error_prefix(err, "%s: ", rp->file);
        return -1;
    }
    avsr_eval_point_name(&rp->p, rp->name, sizeof rp->name);
    char want[AVSR_EVAL_POINT_NAME_MAX + 8];
    snprintf(want, sizeof want, "%s.json", rp->name);
    if (strcmp(fname, want) != 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: holds point %s, expected in %s",
                              rp->file, spec, want);
    json_t *id = json_pack("{s:O, s:O, s:O, s:O}", "model", model, "search", search, "seed", seed,
                           "test", test);
    rp->ident =
        id ? json_dumps(id, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(id);
    if (!rp->ident)
        return AVSR_NOMEM(err, 0);
    rp->n = n;
    rp->skipped = skipped;
    rp->audio_seconds = secs;
    if (get_counts(rp, "words", &rp->w, err) < 0 || get_counts(rp, "chars", &rp->c, err) < 0)
        return -1;
    json_t *utts = json_object_get(rp->root, "utts");
    if (!json_is_array(utts) || (json_int_t)json_array_size(utts) != n)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: 'utts' does not list %lld utterances",
                              rp->file, (long long)n);
    return 0;
}

static void rpoint_free(rpoint *rp)
{
    free(rp->file);
    free(rp->ident);
    json_decref(rp->root);
}

/* modality, noise, then SNR (clean first, then descending) */
static int cmp_point(const avsr_eval_point *a, const avsr_eval_point *b)
{
    if (a->modality != b->modality)
        return a->modality < b->modality ? -1 : 1;
    bool ca = is_clean(a->snr_db), cb = is_clean(b->snr_db);
    if (ca != cb)
        return ca ? -1 : 1;
    if (a->noise != b->noise)
        return a->noise < b->noise ? -1 : 1;
    if (a->snr_db != b->snr_db)
        return a->snr_db > b->snr_db ? -1 : 1;
    return 0;
}

static int cmp_rpoint(const void *x, const void *y)
{
    return cmp_point(&((const rpoint *)x)->p, &((const rpoint *)y)->p);
}

static bool same_point(const avsr_eval_point *a, const avsr_eval_point *b)
{
    return a->modality == b->modality && a->noise == b->noise &&
           (a->snr_db == b->snr_db || (is_clean(a->snr_db) && is_clean(b->snr_db)));
}

/* ---- the table ---------------------------------------------------------------- */

typedef struct col {
    avsr_recipe_modality modality;
    int noise; /* NONE for video and for modalities without noisy points */
} col;

typedef struct table {
    rpoint *pts;
    int np;
    col *cols;
    int nc;
    double *snr; /* rows: INFINITY (clean) first, then descending */
    int nr;
    int n_noise; /* distinct noise types in the columns */
} table;

static const rpoint *find(const table *t, avsr_recipe_modality m, int noise, double snr)
{
    avsr_eval_point q = {m, noise, snr};
    for (int i = 0; i < t->np; i++)
        if (same_point(&t->pts[i].p, &q))
            return &t->pts[i];
    return NULL;
}

static const rpoint *cell(const table *t, int c, int r)
{
    const col *k = &t->cols[c];
    if (k->modality == AVSR_MODALITY_VIDEO)
        return find(t, AVSR_MODALITY_VIDEO, AVSR_NOISE_NONE, INFINITY);
    if (is_clean(t->snr[r]))
        return find(t, k->modality, AVSR_NOISE_NONE, INFINITY);
    if (k->noise == AVSR_NOISE_NONE)
        return NULL;
    return find(t, k->modality, k->noise, t->snr[r]);
}

static int cmp_snr_desc(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a > b ? -1 : a < b ? 1 : 0;
}

static int build_table(table *t, avsr_error *err)
{
    t->cols = calloc((size_t)t->np * 2 + 1, sizeof *t->cols);
    t->snr = calloc((size_t)t->np + 1, sizeof *t->snr);
    if (!t->cols || !t->snr)
        return AVSR_NOMEM(err, sizeof *t->cols * (size_t)t->np);
    int seen_noise[AVSR_NOISE_TYPES] = {0};
    for (int i = 0; i < t->np; i++) {
        const avsr_eval_point *p = &t->pts[i].p;
        bool has = false;
        int cn = p->modality == AVSR_MODALITY_VIDEO ? AVSR_NOISE_NONE : p->noise;
        for (int c = 0; c < t->nc; c++)
            has |= t->cols[c].modality == p->modality &&
                   (t->cols[c].noise == cn ||
                    (cn == AVSR_NOISE_NONE && p->modality != AVSR_MODALITY_VIDEO));
        if (!has)
            t->cols[t->nc++] = (col){p->modality, cn};
        if (cn != AVSR_NOISE_NONE)
            seen_noise[cn] = 1;
        bool hr = false;
        for (int r = 0; r < t->nr; r++)
            hr |= t->snr[r] == p->snr_db;
        if (!hr)
            t->snr[t->nr++] = p->snr_db;
    }
    /* a modality with noisy columns needs no separate clean-only column */
    int k = 0;
    for (int c = 0; c < t->nc; c++) {
        bool drop = false;
        if (t->cols[c].noise == AVSR_NOISE_NONE && t->cols[c].modality != AVSR_MODALITY_VIDEO)
            for (int d = 0; d < t->nc; d++)
                drop |= t->cols[d].modality == t->cols[c].modality &&
                        t->cols[d].noise != AVSR_NOISE_NONE;
        if (!drop)
            t->cols[k++] = t->cols[c];
    }
    t->nc = k;
    /* columns: by modality, then by noise type */
    for (int i = 1; i < t->nc; i++)
        for (int j = i; j > 0; j--) {
            col *a = &t->cols[j - 1], *b = &t->cols[j];
            if (a->modality > b->modality || (a->modality == b->modality && a->noise > b->noise)) {
                col tmp = *a;
                *a = *b;
                *b = tmp;
            }
        }
    qsort(t->snr, (size_t)t->nr, sizeof *t->snr, cmp_snr_desc);
    for (int i = 0; i < AVSR_NOISE_TYPES; i++)
        t->n_noise += seen_noise[i];
    return 0;
}

static void col_title(const table *t, int c, char *buf, size_t n)
{
    const col *k = &t->cols[c];
    if (k->modality == AVSR_MODALITY_VIDEO || k->noise == AVSR_NOISE_NONE)
        snprintf(buf, n, "%s", avsr_eval_modality_name(k->modality));
    else
        snprintf(buf, n, "%s, %s", avsr_eval_modality_name(k->modality),
                 avsr_noise_type_name(k->noise));
}

static void md_table(FILE *f, const table *t, bool cer)
{
    fprintf(f, "| SNR (dB) |");
    for (int c = 0; c < t->nc; c++) {
        char h[64];
        col_title(t, c, h, sizeof h);
        fprintf(f, " %s |", h);
    }
    fprintf(f, "\n|---|");
    for (int c = 0; c < t->nc; c++)
        fprintf(f, "---:|");
    fprintf(f, "\n");
    for (int r = 0; r < t->nr; r++) {
        char s[32];
        avsr_eval_snr_text(t->snr[r], s, sizeof s);
        fprintf(f, "| %s |", s);
        for (int c = 0; c < t->nc; c++) {
            const rpoint *p = cell(t, c, r);
            if (p)
                fprintf(f, " %.2f |", 100.0 * avsr_edit_rate(cer ? &p->c : &p->w));
            else
                fprintf(f, " - |");
        }
        fprintf(f, "\n");
    }
}

/* ---- outputs ------------------------------------------------------------------ */

static int write_md(const char *dir, const table *t, FILE *print, avsr_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return AVSR_NOMEM(err, 0);
    const rpoint *p0 = &t->pts[0];
    json_t *search = json_object_get(p0->root, "search");
    json_t *model = json_object_get(p0->root, "model");
    char *sj = json_dumps(search, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    fprintf(f, "# Evaluation results\n\n");
    fprintf(f, "- model: `%s`\n", json_is_string(model) ? json_string_value(model) : "?");
    fprintf(f, "- search: `%s`\n", sj ? sj : "?");
    fprintf(f, "- utterances per point: %lld (%.1f s of audio)\n", (long long)p0->n,
            p0->audio_seconds);
    fprintf(f, "- points: %d\n\n", t->np);
    free(sj);
    fprintf(f, "## WER (%%)\n\n");
    md_table(f, t, false);
    fprintf(f, "\n## CER (%%)\n\n");
    md_table(f, t, true);
    bool video = false;
    for (int c = 0; c < t->nc; c++)
        video |= t->cols[c].modality == AVSR_MODALITY_VIDEO;
    fprintf(f, "\nThe clean row is the point without noise (MODALITY:none:clean).%s\n",
            video ? " The video column repeats the video-only point on every row: the noise "
                    "is added to the audio, which a video-only point does not use."
                  : "");
    fclose(f);
    char *path = join(dir, "results.md");
    int rc = path ? write_text(path, buf, len, err) : AVSR_NOMEM(err, 0);
    free(path);
    free(buf);
    if (rc == 0 && print) {
        fprintf(print, "WER (%%)\n");
        md_table(print, t, false);
        fflush(print);
    }
    return rc;
}

static int write_csv(const char *dir, const table *t, avsr_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return AVSR_NOMEM(err, 0);
    fprintf(f, "point,modality,noise,snr_db,utterances,wer,cer,word_sub,word_del,word_ins,"
               "word_hit,word_ref,char_sub,char_del,char_ins,char_hit,char_ref\n");
    for (int i = 0; i < t->np; i++) {
        const rpoint *p = &t->pts[i];
        char s[32];
        avsr_eval_snr_text(p->p.snr_db, s, sizeof s);
        fprintf(f, "%s,%s,%s,%s,%lld,%.6f,%.6f", p->name, avsr_eval_modality_name(p->p.modality),
                avsr_noise_type_name(p->p.noise), s, (long long)p->n, avsr_edit_rate(&p->w),
                avsr_edit_rate(&p->c));
        const avsr_edit_counts *cs[2] = {&p->w, &p->c};
        for (int k = 0; k < 2; k++)
            fprintf(f, ",%lld,%lld,%lld,%lld,%lld", (long long)cs[k]->sub, (long long)cs[k]->del,
                    (long long)cs[k]->ins, (long long)cs[k]->hit,
                    (long long)avsr_edit_ref_len(cs[k]));
        fprintf(f, "\n");
    }
    fclose(f);
    char *path = join(dir, "results.csv");
    int rc = path ? write_text(path, buf, len, err) : AVSR_NOMEM(err, 0);
    free(path);
    free(buf);
    return rc;
}

static json_t *rate_or_null(const rpoint *p, bool cer)
{
    return p ? json_real(avsr_edit_rate(cer ? &p->c : &p->w)) : json_null();
}

static int write_results_json(const char *dir, const table *t, avsr_error *err)
{
    const rpoint *p0 = &t->pts[0];
    json_t *pts = json_array(), *snr = json_array(), *cols = json_array();
    for (int i = 0; i < t->np; i++) {
        const rpoint *p = &t->pts[i];
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:o, s:I, s:I, s:f, s:f, s:f, s:o, s:o}", "point", p->name,
            "modality", avsr_eval_modality_name(p->p.modality), "noise",
            avsr_noise_type_name(p->p.noise), "snr_db",
            is_clean(p->p.snr_db) ? json_null() : json_real(p->p.snr_db), "utterances",
            (json_int_t)p->n, "skipped", (json_int_t)p->skipped, "audio_seconds",
            p->audio_seconds, "wer", avsr_edit_rate(&p->w), "cer", avsr_edit_rate(&p->c),
            "words", counts_json(&p->w), "chars", counts_json(&p->c));
        json_array_append_new(pts, o);
    }
    for (int r = 0; r < t->nr; r++)
        json_array_append_new(snr, is_clean(t->snr[r]) ? json_string("clean")
                                                       : json_real(t->snr[r]));
    for (int c = 0; c < t->nc; c++) {
        json_t *w = json_array(), *ce = json_array();
        for (int r = 0; r < t->nr; r++) {
            const rpoint *p = cell(t, c, r);
            json_array_append_new(w, rate_or_null(p, false));
            json_array_append_new(ce, rate_or_null(p, true));
        }
        const col *k = &t->cols[c];
        json_array_append_new(
            cols, json_pack("{s:s, s:s, s:o, s:o}", "modality",
                            avsr_eval_modality_name(k->modality), "noise",
                            avsr_noise_type_name(k->noise), "wer", w, "cer", ce));
    }
    json_t *root = json_object();
    json_object_set_new(root, "format", json_string(AVSR_EVAL_RESULTS_FORMAT));
    json_object_set_new(root, "version", json_integer(AVSR_EVAL_FORMAT_VERSION));
    static const char *const same[] = {"model", "search", "seed", "test"};
    for (size_t k = 0; k < sizeof same / sizeof *same; k++)
        json_object_set(root, same[k], json_object_get(p0->root, same[k]));
    json_object_set_new(root, "points", pts);
    json_object_set_new(root, "table", json_pack("{s:o, s:o}", "snr", snr, "columns", cols));
    char *path = join(dir, "results.json");
    int rc = path ? write_json(path, root, err) : AVSR_NOMEM(err, 0);
    free(path);
    json_decref(root);
    return rc;
}

static int write_hyps(const char *dir, const table *t, avsr_error *err)
{
    char *hd = join(dir, "hyps");
    if (!hd)
        return AVSR_NOMEM(err, 0);
    int rc = mkdir_p(hd, err);
    for (int i = 0; rc == 0 && i < t->np; i++) {
        const rpoint *p = &t->pts[i];
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f) {
            rc = AVSR_NOMEM(err, 0);
            break;
        }
        fprintf(f, "id\tword_errors\tref_words\tref\thyp\n");
        json_t *utts = json_object_get(p->root, "utts");
        for (size_t k = 0; k < json_array_size(utts); k++) {
            json_t *u = json_array_get(utts, k);
            const char *id, *ref, *hyp;
            json_int_t w[4];
            if (json_unpack(u, "{s:s, s:s, s:s, s:[I, I, I, I]}", "id", &id, "ref", &ref, "hyp",
                            &hyp, "words", &w[0], &w[1], &w[2], &w[3]) != 0) {
                rc = avsr_error_set(err, AVSR_ERR_INVALID,
                                    "%s: utterance %zu is not {id, ref, hyp, words}", p->file, k);
                break;
            }
            fprintf(f, "%s\t%lld\t%lld\t%s\t%s\n", id, (long long)(w[0] + w[1] + w[2]),
                    (long long)(w[0] + w[1] + w[3]), ref, hyp);
        }
        fclose(f);
        char file[96];
        snprintf(file, sizeof file, "%s.tsv", p->name);
        char *path = join(hd, file);
        if (rc == 0)
            rc = path ? write_text(path, buf, len, err) : AVSR_NOMEM(err, 0);
        free(path);
        free(buf);
    }
    free(hd);
    return rc;
}

/* ---- plot ---------------------------------------------------------------------- */

static int run_gnuplot(const char *dir, const char *prog, avsr_eval_report_info *info,
                       avsr_error *err)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return avsr_error_set(err, AVSR_ERR_IO, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return avsr_error_set(err, AVSR_ERR_IO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        int dn = open("/dev/null", O_WRONLY);
        if (dn >= 0)
            dup2(dn, 1);
        if (chdir(dir) != 0)
            _exit(126);
        execlp(prog, prog, "wer_vs_snr.gp", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    char msg[400];
    size_t got = 0;
    ssize_t k;
    while ((k = read(pfd[0], msg + got, sizeof msg - 1 - got)) > 0 && got < sizeof msg - 1)
        got += (size_t)k;
    char drain[256];
    while (read(pfd[0], drain, sizeof drain) > 0) {
    }
    msg[got] = '\0';
    close(pfd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        snprintf(info->warning, sizeof info->warning,
                 "%s not found: wer_vs_snr.png and .svg not written (install gnuplot-nox)", prog);
        return 0;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        for (char *c = msg; *c; c++)
            if (*c == '\n')
                *c = ' ';
        char how[48];
        if (WIFEXITED(status))
            snprintf(how, sizeof how, "exit status %d", WEXITSTATUS(status));
        else
            snprintf(how, sizeof how, "signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s/wer_vs_snr.gp: %s failed (%s)%s%s", dir,
                              prog, how, msg[0] ? ": " : "", msg);
    }
    info->plotted = 1;
    return 0;
}

static int write_plot(const char *dir, const table *t, const char *prog,
                      avsr_eval_report_info *info, avsr_error *err)
{
    /* x positions: finite SNRs as they are, clean one step right of the largest */
    double lo = INFINITY, hi = -INFINITY;
    for (int r = 0; r < t->nr; r++)
        if (!is_clean(t->snr[r])) {
            lo = fmin(lo, t->snr[r]);
            hi = fmax(hi, t->snr[r]);
        }
    if (!isfinite(lo))
        lo = hi = 0;
    double step = hi > lo ? fmax(5.0, (hi - lo) / 4.0) : 5.0;
    double xclean = hi + step;
    char *dat = NULL, *gp = NULL;
    size_t dl = 0, gl = 0;
    FILE *d = open_memstream(&dat, &dl);
    FILE *g = d ? open_memstream(&gp, &gl) : NULL;
    if (!d || !g) {
        if (d)
            fclose(d);
        free(dat);
        return AVSR_NOMEM(err, 0);
    }
    fprintf(g, "# WER against SNR (avsr-eval report); data in wer_vs_snr.dat\n");
    fprintf(g, "set xlabel 'SNR (dB)'\nset ylabel 'WER (%%)'\nset grid\nset key outside right\n");
    fprintf(g, "set yrange [0:*]\nset xrange [%g:%g]\nset xtics (", lo - step / 2,
            xclean + step / 2);
    bool first = true;
    for (int r = t->nr - 1; r >= 0; r--) {
        if (is_clean(t->snr[r]))
            fprintf(g, "%s\"clean\" %g", first ? "" : ", ", xclean);
        else
            fprintf(g, "%s\"%g\" %g", first ? "" : ", ", t->snr[r], t->snr[r]);
        first = false;
    }
    fprintf(g, ")\n");
    int series = 0;
    char *plot = NULL;
    size_t pl = 0;
    FILE *pf = open_memstream(&plot, &pl);
    for (int c = 0; pf && c < t->nc; c++) {
        char title[64];
        if (t->cols[c].modality == AVSR_MODALITY_VIDEO || t->n_noise <= 1)
            snprintf(title, sizeof title, "%s", avsr_eval_modality_name(t->cols[c].modality));
        else
            col_title(t, c, title, sizeof title);
        int n = 0;
        for (int r = t->nr - 1; r >= 0; r--) {
            const rpoint *p = cell(t, c, r);
            if (!p)
                continue;
            if (n == 0)
                fprintf(d, "# %s\n", title);
            fprintf(d, "%g %.6f\n", is_clean(t->snr[r]) ? xclean : t->snr[r],
                    100.0 * avsr_edit_rate(&p->w));
            n++;
        }
        if (n == 0)
            continue;
        fprintf(d, "\n\n");
        fprintf(pf, "%s'wer_vs_snr.dat' index %d using 1:2 with linespoints lw 2 title '%s'",
                series ? ", \\\n     " : "plot ", series, title);
        series++;
    }
    if (pf)
        fclose(pf);
    fclose(d);
    int rc = 0;
    if (!plot) {
        rc = AVSR_NOMEM(err, 0);
    } else {
        fprintf(g, "set terminal png size 900,560\nset output 'wer_vs_snr.png.tmp'\n%s\n", plot);
        fprintf(g, "set terminal svg size 900,560\nset output 'wer_vs_snr.svg.tmp'\nreplot\n");
        fprintf(g, "set output\n");
    }
    fclose(g);
    char *pd = join(dir, "wer_vs_snr.dat"), *pg = join(dir, "wer_vs_snr.gp");
    char *png = join(dir, "wer_vs_snr.png"), *svg = join(dir, "wer_vs_snr.svg");
    char *png_t = join(dir, "wer_vs_snr.png.tmp"), *svg_t = join(dir, "wer_vs_snr.svg.tmp");
    if (rc == 0 && (!pd || !pg || !png || !svg || !png_t || !svg_t))
        rc = AVSR_NOMEM(err, 0);
    if (rc == 0 && series == 0)
        snprintf(info->warning, sizeof info->warning, "no point to plot");
    if (rc == 0 && series > 0 &&
        (write_text(pd, dat, dl, err) < 0 || write_text(pg, gp, gl, err) < 0))
        rc = -1;
    if (rc == 0 && series > 0)
        rc = run_gnuplot(dir, prog, info, err);
    if (rc == 0 && info->plotted) {
        if (rename(png_t, png) != 0 || rename(svg_t, svg) != 0) {
            rc = avsr_error_set(err, AVSR_ERR_IO, "%s: cannot rename the plots: %s", dir,
                                strerror(errno));
            info->plotted = 0;
        } else {
            avsr_fsync_dir_of(png, NULL);
        }
    }
    if (rc == 0 && !info->plotted && png && svg) { /* no stale plot beside new results */
        unlink(png);
        unlink(svg);
    }
    if (png_t)
        unlink(png_t);
    if (svg_t)
        unlink(svg_t);
    free(pd);
    free(pg);
    free(png);
    free(svg);
    free(png_t);
    free(svg_t);
    free(plot);
    free(dat);
    free(gp);
    return rc;
}

/* ---- the report ------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int avsr_eval_report(const avsr_eval_report_opts *o, avsr_eval_report_info *info,
                     avsr_error *err)
{
    memset(info, 0, sizeof *info);
    char *pdir = join(o->eval_dir, "points");
    if (!pdir)
        return AVSR_NOMEM(err, 0);
    DIR *dh = opendir(pdir);
    if (!dh) {
        avsr_error_set(err, AVSR_ERR_IO,
                       "%s: cannot read: %s (evaluate the points first: avsr-eval RECIPE.yaml)",
                       pdir, strerror(errno));
        free(pdir);
        return -1;
    }
    char **names = NULL;
    int nn = 0, cap = 0, rc = -1;
    table t;
    memset(&t, 0, sizeof t);
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0 || de->d_name[0] == '.')
            continue;
        if (nn == cap) {
            cap = cap ? 2 * cap : 16;
            char **q = realloc(names, sizeof *q * (size_t)cap);
            if (!q) {
                AVSR_NOMEM(err, 0);
                goto out;
            }
            names = q;
        }
        if (!(names[nn] = strdup(de->d_name))) {
            AVSR_NOMEM(err, 0);
            goto out;
        }
        nn++;
    }
    if (nn == 0) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: no point files (evaluate the points first: avsr-eval RECIPE.yaml)",
                       pdir);
        goto out;
    }
    qsort(names, (size_t)nn, sizeof *names, cmp_str);
    t.pts = calloc((size_t)nn, sizeof *t.pts);
    if (!t.pts) {
        AVSR_NOMEM(err, 0);
        goto out;
    }
    for (int i = 0; i < nn; i++) {
        int r = read_point(pdir, names[i], &t.pts[t.np], err);
        t.np++;
        if (r < 0)
            goto out;
        if (t.np > 1 && strcmp(t.pts[t.np - 1].ident, t.pts[0].ident) != 0) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "%s and %s were evaluated differently (model, search, seed or test "
                           "set: %s vs %s); evaluate them again with the same settings or "
                           "remove one",
                           t.pts[0].file, t.pts[t.np - 1].file, t.pts[0].ident,
                           t.pts[t.np - 1].ident);
            goto out;
        }
    }
    /* order: the recipe's sweep first, then the rest */
    qsort(t.pts, (size_t)t.np, sizeof *t.pts, cmp_rpoint);
    if (o->order && o->n_order > 0) {
        int k = 0;
        for (int j = 0; j < o->n_order; j++)
            for (int i = k; i < t.np; i++)
                if (same_point(&t.pts[i].p, &o->order[j])) {
                    rpoint tmp = t.pts[i];
                    memmove(&t.pts[k + 1], &t.pts[k], sizeof *t.pts * (size_t)(i - k));
                    t.pts[k++] = tmp;
                    break;
                }
    }
    if (build_table(&t, err) < 0 || write_results_json(o->eval_dir, &t, err) < 0 ||
        write_csv(o->eval_dir, &t, err) < 0 || write_hyps(o->eval_dir, &t, err) < 0 ||
        write_plot(o->eval_dir, &t, o->gnuplot ? o->gnuplot : "gnuplot", info, err) < 0 ||
        write_md(o->eval_dir, &t, o->table, err) < 0)
        goto out;
    info->n_points = t.np;
    rc = 0;
out:
    closedir(dh);
    for (int i = 0; i < t.np; i++)
        rpoint_free(&t.pts[i]);
    free(t.pts);
    free(t.cols);
    free(t.snr);
    for (int i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    free(pdir);
    return rc;
}
