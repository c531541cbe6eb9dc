/* checkpoint: crash-safe save, restore, retention and index (see checkpoint.h
 * and docs/formats/checkpoint.md). */
#define _GNU_SOURCE /* nftw, vasprintf */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "safetensors.h"

#define MODEL_FILE "model.safetensors"
#define STATE_FILE "state.safetensors"
#define DONE_FILE "DONE"
#define INDEX_FILE "index.json"

/* ---- small helpers -------------------------------------------------------- */

static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

static void note(avsr_ckpt_notes *notes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(avsr_ckpt_notes *notes, const char *fmt, ...)
{
    if (!notes)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    if (!s)
        return;
    char **m = realloc(notes->msg, sizeof *m * (size_t)(notes->n + 1));
    if (!m) {
        free(s);
        return;
    }
    notes->msg = m;
    notes->msg[notes->n++] = s;
}

void avsr_ckpt_notes_free(avsr_ckpt_notes *notes)
{
    if (!notes)
        return;
    for (int i = 0; i < notes->n; i++)
        free(notes->msg[i]);
    free(notes->msg);
    notes->msg = NULL;
    notes->n = 0;
}

static int fsync_path(const char *dir, avsr_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    int rc = 0;
    if (fd < 0 || fsync(fd) != 0)
        rc = avsr_error_set(err, AVSR_ERR_IO, "%s: cannot fsync directory: %s", dir,
                            strerror(errno));
    if (fd >= 0)
        close(fd);
    return rc;
}

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
                int e = errno;
                avsr_error_set(err, AVSR_ERR_IO, "%s: cannot create directory: %s", p,
                               strerror(e));
                free(p);
                return -1;
            }
            *s = c;
            if (!c)
                break;
        }
    }
    struct stat st;
    int rc = 0;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        rc = avsr_error_set(err, AVSR_ERR_IO, "%s: not a directory", path);
    free(p);
    return rc;
}

static int rm_entry(const char *fpath, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return (type == FTW_DP ? rmdir(fpath) : unlink(fpath)) == 0 ? 0 : -1;
}

/* Remove a directory tree (symlinks are removed, never followed). */
static int rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlink(path);
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* "step-<N>" -> 1, "step-<N>.tmp.<x>" -> 2, "step-<N>.del.<x>" -> 3, else 0 */
static int parse_name(const char *name, int64_t *step)
{
    if (strncmp(name, "step-", 5) != 0)
        return 0;
    const char *s = name + 5;
    if (*s < '0' || *s > '9')
        return 0;
    int64_t v = 0;
    while (*s >= '0' && *s <= '9') {
        if (v > (INT64_MAX - 9) / 10)
            return 0;
        v = 10 * v + (*s++ - '0');
    }
    *step = v;
    if (*s == '\0')
        return 1;
    if (strncmp(s, ".tmp.", 5) == 0)
        return 2;
    if (strncmp(s, ".del.", 5) == 0)
        return 3;
    return 0;
}

/* ---- DONE files and entries ----------------------------------------------- */

static void entry_free(avsr_ckpt_entry *e)
{
    free(e->dir);
    for (int i = 0; i < e->n_metrics; i++)
        free(e->metric_names[i]);
    free(e->metric_names);
    free(e->metric_values);
    memset(e, 0, sizeof *e);
}

void avsr_ckpt_list_free(avsr_ckpt_list *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n; i++)
        entry_free(&l->e[i]);
    free(l->e);
    l->e = NULL;
    l->n = 0;
}

int avsr_ckpt_entry_metric(const avsr_ckpt_entry *e, const char *name, double *v)
{
    for (int i = 0; name && i < e->n_metrics; i++)
        if (strcmp(e->metric_names[i], name) == 0) {
            if (v)
                *v = e->metric_values[i];
            return 0;
        }
    return -1;
}

/* metrics object {"name": number} -> entry arrays */
static int metrics_from_json(json_t *m, avsr_ckpt_entry *e, const char *what, avsr_error *err)
{
    if (!m)
        return 0;
    if (!json_is_object(m))
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: \"metrics\" is not an object", what);
    size_t n = json_object_size(m);
    e->metric_names = calloc(n ? n : 1, sizeof *e->metric_names);
    e->metric_values = calloc(n ? n : 1, sizeof *e->metric_values);
    if (!e->metric_names || !e->metric_values)
        return AVSR_NOMEM(err, n * sizeof(double));
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        if (!json_is_number(v))
            return avsr_error_set(err, AVSR_ERR_INVALID, "%s: metric '%s' is not a number", what,
                                  k);
        if (!(e->metric_names[e->n_metrics] = strdup(k)))
            return AVSR_NOMEM(err, strlen(k));
        e->metric_values[e->n_metrics++] = json_number_value(v);
    }
    return 0;
}

static int json_i64(json_t *o, const char *key, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (int64_t)json_integer_value(v);
    return 0;
}

/* Read <dir>/DONE; the step in it must be `step`. *root_out (may be NULL)
 * receives the parsed JSON. */
static int read_done(const char *dir, int64_t step, avsr_ckpt_entry *e, json_t **root_out,
                     avsr_error *err)
{
    memset(e, 0, sizeof *e);
    char *path = pathf("%s/" DONE_FILE, dir);
    if (!path)
        return AVSR_NOMEM(err, strlen(dir));
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    int rc = -1;
    if (!root) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: %s", path, je.text);
        goto out;
    }
    int64_t s, ep;
    if (!json_is_object(root) || json_i64(root, "step", &s) < 0 ||
        json_i64(root, "epoch", &ep) < 0) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: not a DONE record (no integer step/epoch)",
                       path);
        goto out;
    }
    if (s != step) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: records step %" PRId64 ", directory says %" PRId64,
                       path, s, step);
        goto out;
    }
    e->step = s;
    e->epoch = ep;
    if (!(e->dir = strdup(dir))) {
        AVSR_NOMEM(err, strlen(dir));
        goto out;
    }
    if (metrics_from_json(json_object_get(root, "metrics"), e, path, err) < 0)
        goto out;
    rc = 0;
out:
    if (rc < 0)
        entry_free(e);
    if (rc == 0 && root_out)
        *root_out = root;
    else
        json_decref(root);
    free(path);
    return rc;
}

static int cmp_entry(const void *a, const void *b)
{
    const avsr_ckpt_entry *x = a, *y = b;
    return x->step < y->step ? -1 : x->step > y->step;
}

static int list_push(avsr_ckpt_list *l, avsr_ckpt_entry *e, avsr_error *err)
{
    avsr_ckpt_entry *n = realloc(l->e, sizeof *n * (size_t)(l->n + 1));
    if (!n) {
        entry_free(e);
        return AVSR_NOMEM(err, sizeof *n * (size_t)(l->n + 1));
    }
    l->e = n;
    l->e[l->n++] = *e;
    return 0;
}

int avsr_ckpt_list_dir(const char *ckpt_dir, avsr_ckpt_list *out, avsr_ckpt_notes *notes,
                       avsr_error *err)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(ckpt_dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return avsr_error_set(err, AVSR_ERR_IO, "%s: cannot open directory: %s", ckpt_dir,
                              strerror(errno));
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        int64_t step;
        int kind = parse_name(de->d_name, &step);
        if (kind == 0)
            continue;
        if (kind != 1) {
            note(notes, "%s/%s: temporary directory of an interrupted writer; ignored", ckpt_dir,
                 de->d_name);
            continue;
        }
        char *dir = pathf("%s/%s", ckpt_dir, de->d_name);
        char *done = dir ? pathf("%s/" DONE_FILE, dir) : NULL;
        if (!done) {
            free(dir);
            rc = AVSR_NOMEM(err, strlen(ckpt_dir));
            break;
        }
        if (!exists(done)) {
            note(notes, "%s: no DONE (incomplete checkpoint); ignored", dir);
        } else {
            avsr_ckpt_entry e;
            avsr_error e2 = {0};
            if (read_done(dir, step, &e, NULL, &e2) < 0)
                note(notes, "%s; checkpoint ignored", e2.msg);
            else
                rc = list_push(out, &e, err);
        }
        free(done);
        free(dir);
    }
    closedir(d);
    if (rc < 0) {
        avsr_ckpt_list_free(out);
        return -1;
    }
    qsort(out->e, (size_t)out->n, sizeof *out->e, cmp_entry);
    return 0;
}

int avsr_ckpt_index_read(const char *ckpt_dir, avsr_ckpt_list *out, avsr_ckpt_notes *notes,
                         avsr_error *err)
{
    memset(out, 0, sizeof *out);
    char *path = pathf("%s/" INDEX_FILE, ckpt_dir);
    if (!path)
        return AVSR_NOMEM(err, strlen(ckpt_dir));
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    int rc = -1;
    if (!root) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: %s", path, je.text);
        goto out;
    }
    json_t *arr = json_object_get(root, "checkpoints");
    if (!json_is_array(arr)) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: no \"checkpoints\" array", path);
        goto out;
    }
    size_t i;
    json_t *c;
    json_array_foreach(arr, i, c) {
        int64_t step, epoch;
        json_t *jd = json_object_get(c, "dir");
        if (!json_is_object(c) || json_i64(c, "step", &step) < 0 ||
            json_i64(c, "epoch", &epoch) < 0 || !json_is_string(jd) ||
            strchr(json_string_value(jd), '/')) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "%s: checkpoints[%zu]: expected {\"step\", \"epoch\", \"dir\", "
                           "\"metrics\"} with a plain directory name",
                           path, i);
            goto out;
        }
        avsr_ckpt_entry e = {0};
        e.step = step;
        e.epoch = epoch;
        e.dir = pathf("%s/%s", ckpt_dir, json_string_value(jd));
        if (!e.dir) {
            AVSR_NOMEM(err, strlen(ckpt_dir));
            goto out;
        }
        if (metrics_from_json(json_object_get(c, "metrics"), &e, path, err) < 0) {
            entry_free(&e);
            goto out;
        }
        char *done = pathf("%s/" DONE_FILE, e.dir);
        bool ok = done && exists(done);
        free(done);
        if (!ok) {
            note(notes, "%s: listed in %s but has no DONE; skipped", e.dir, path);
            entry_free(&e);
            continue;
        }
        if (list_push(out, &e, err) < 0)
            goto out;
    }
    qsort(out->e, (size_t)out->n, sizeof *out->e, cmp_entry);
    rc = 0;
out:
    if (rc < 0)
        avsr_ckpt_list_free(out);
    json_decref(root);
    free(path);
    return rc;
}

/* ---- cleaning, retention, index, symlinks --------------------------------- */

int avsr_ckpt_clean(const char *stage_dir, avsr_ckpt_notes *notes, avsr_error *err)
{
    char *ckdir = pathf("%s/ckpt", stage_dir);
    if (!ckdir)
        return AVSR_NOMEM(err, strlen(stage_dir));
    DIR *d = opendir(ckdir);
    if (!d) {
        int e = errno;
        free(ckdir);
        if (e == ENOENT)
            return 0;
        return avsr_error_set(err, AVSR_ERR_IO, "%s/ckpt: cannot open directory: %s", stage_dir,
                              strerror(e));
    }
    char own[64];
    snprintf(own, sizeof own, ".tmp.%ld", (long)getpid());
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t step;
        int kind = parse_name(de->d_name, &step);
        if (kind == 0) {
            /* an index.json temp file of a killed writer */
            if (strncmp(de->d_name, INDEX_FILE ".tmp.", sizeof INDEX_FILE + 4) == 0) {
                char *f = pathf("%s/%s", ckdir, de->d_name);
                if (f && unlink(f) == 0)
                    note(notes, "%s: left by an interrupted writer; removed", f);
                free(f);
            }
            continue;
        }
        char *dir = pathf("%s/%s", ckdir, de->d_name);
        if (!dir) {
            rc = AVSR_NOMEM(err, strlen(ckdir));
            break;
        }
        bool remove = kind != 1;
        if (kind == 2) {
            size_t l = strlen(de->d_name), lo = strlen(own);
            if (l > lo && strcmp(de->d_name + l - lo, own) == 0)
                remove = false; /* ours: in progress */
        }
        if (kind == 1) {
            char *done = pathf("%s/" DONE_FILE, dir);
            remove = done && !exists(done);
            free(done);
        }
        if (remove) {
            if (rm_tree(dir) == 0)
                note(notes, "%s: %s; removed", dir,
                     kind == 1 ? "incomplete checkpoint (no DONE)"
                               : "left by an interrupted writer");
            else
                note(notes, "%s: cannot remove: %s", dir, strerror(errno));
        }
        free(dir);
    }
    closedir(d);
    free(ckdir);
    /* symlink temp names of a killed writer: <stage_dir>/.last.tmp.<pid> */
    d = opendir(stage_dir);
    while (rc == 0 && d && (de = readdir(d))) {
        if (strncmp(de->d_name, ".last.tmp.", 10) != 0 && strncmp(de->d_name, ".best.tmp.", 10) != 0)
            continue;
        char *f = pathf("%s/%s", stage_dir, de->d_name);
        if (f && unlink(f) == 0)
            note(notes, "%s: left by an interrupted writer; removed", f);
        free(f);
    }
    if (d)
        closedir(d);
    return rc;
}

/* Delete a complete checkpoint: DONE first (so a crash leaves an ignored
 * directory), then rename aside and remove. */
static int delete_ckpt(const char *ckdir, const avsr_ckpt_entry *e, avsr_ckpt_notes *notes,
                       avsr_error *err)
{
    char *done = pathf("%s/" DONE_FILE, e->dir);
    char *aside = pathf("%s/step-%" PRId64 ".del.%ld", ckdir, e->step, (long)getpid());
    int rc = 0;
    if (!done || !aside) {
        rc = AVSR_NOMEM(err, strlen(e->dir));
        goto out;
    }
    if (unlink(done) != 0 && errno != ENOENT) {
        rc = avsr_error_set(err, AVSR_ERR_IO, "%s: cannot remove: %s", done, strerror(errno));
        goto out;
    }
    if (fsync_path(e->dir, err) < 0) {
        rc = -1;
        goto out;
    }
    if (rename(e->dir, aside) != 0 || rm_tree(aside) != 0)
        note(notes, "%s: cannot remove completely: %s", e->dir, strerror(errno));
    note(notes, "%s: removed by retention", e->dir);
out:
    free(done);
    free(aside);
    return rc;
}

/* index of the best entry by metric (ties: newer), or -1 */
static int best_of(const avsr_ckpt_list *l, const bool *skip, const char *metric, bool higher)
{
    int best = -1;
    double bv = 0;
    for (int i = 0; metric && i < l->n; i++) {
        double v;
        if ((skip && skip[i]) || avsr_ckpt_entry_metric(&l->e[i], metric, &v) < 0)
            continue;
        if (best < 0 || (higher ? v >= bv : v <= bv)) {
            best = i;
            bv = v;
        }
    }
    return best;
}

static int apply_retention(const char *ckdir, avsr_ckpt_list *l, const avsr_ckpt_retention *ret,
                           avsr_ckpt_notes *notes, avsr_error *err)
{
    if (!ret || ret->keep_last <= 0 || l->n == 0)
        return 0;
    bool *keep = calloc((size_t)l->n, sizeof *keep);
    bool *taken = calloc((size_t)l->n, sizeof *taken);
    if (!keep || !taken) {
        free(keep);
        free(taken);
        return AVSR_NOMEM(err, (size_t)l->n);
    }
    for (int i = l->n - 1, k = 0; i >= 0 && k < ret->keep_last; i--, k++)
        keep[i] = true;
    keep[l->n - 1] = true;
    for (int k = 0; k < ret->keep_best; k++) {
        int b = best_of(l, taken, ret->metric, ret->higher_better);
        if (b < 0)
            break;
        taken[b] = keep[b] = true;
    }
    int rc = 0;
    for (int i = 0; i < l->n && rc == 0; i++)
        if (!keep[i]) {
            rc = delete_ckpt(ckdir, &l->e[i], notes, err);
            if (rc == 0)
                entry_free(&l->e[i]); /* dir = NULL marks it gone */
        }
    int j = 0;
    for (int i = 0; i < l->n; i++)
        if (l->e[i].dir)
            l->e[j++] = l->e[i];
    l->n = j;
    free(keep);
    free(taken);
    return rc;
}

static json_t *metrics_json(const avsr_ckpt_entry *e)
{
    json_t *m = json_object();
    for (int i = 0; m && i < e->n_metrics; i++)
        json_object_set_new(m, e->metric_names[i], json_real(e->metric_values[i]));
    return m;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int write_json_atomic(const char *path, json_t *root, avsr_error *err)
{
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!s)
        return AVSR_NOMEM(err, 0);
    avsr_afile af;
    int rc = avsr_afile_open(&af, path, err);
    if (rc == 0) {
        if (avsr_afile_write(&af, s, strlen(s), err) < 0 || avsr_afile_write(&af, "\n", 1, err) < 0) {
            avsr_afile_abort(&af);
            rc = -1;
        } else {
            rc = avsr_afile_commit(&af, err);
        }
    }
    free(s);
    return rc;
}

static int write_index(const char *ckdir, const avsr_ckpt_list *l, const avsr_ckpt_retention *ret,
                       int best, avsr_error *err)
{
    json_t *root = json_object();
    json_t *arr = json_array();
    if (!root || !arr) {
        json_decref(root);
        json_decref(arr);
        return AVSR_NOMEM(err, 0);
    }
    json_object_set_new(root, "format", json_string("avsr-ckpt-index"));
    json_object_set_new(root, "version", json_integer(AVSR_CKPT_VERSION));
    json_object_set_new(root, "metric", ret && ret->metric ? json_string(ret->metric) : json_null());
    json_object_set_new(root, "higher_better", json_boolean(ret && ret->higher_better));
    json_object_set_new(root, "last",
                        l->n ? json_string(base_name(l->e[l->n - 1].dir)) : json_null());
    json_object_set_new(root, "best", best >= 0 ? json_string(base_name(l->e[best].dir)) : json_null());
    for (int i = 0; i < l->n; i++) {
        json_t *c = json_pack("{s:I, s:I, s:s, s:o}", "step", (json_int_t)l->e[i].step, "epoch",
                              (json_int_t)l->e[i].epoch, "dir", base_name(l->e[i].dir), "metrics",
                              metrics_json(&l->e[i]));
        if (!c) {
            json_decref(root);
            json_decref(arr);
            return AVSR_NOMEM(err, 0);
        }
        json_array_append_new(arr, c);
    }
    json_object_set_new(root, "checkpoints", arr);
    char *path = pathf("%s/" INDEX_FILE, ckdir);
    int rc = path ? write_json_atomic(path, root, err) : AVSR_NOMEM(err, 0);
    free(path);
    json_decref(root);
    return rc;
}

/* Point <stage_dir>/<name> at target (NULL: remove the link) atomically. */
static int set_link(const char *stage_dir, const char *name, const char *target, avsr_error *err)
{
    char *link = pathf("%s/%s", stage_dir, name);
    char *tmp = pathf("%s/.%s.tmp.%ld", stage_dir, name, (long)getpid());
    int rc = 0;
    if (!link || !tmp) {
        rc = AVSR_NOMEM(err, strlen(stage_dir));
        goto out;
    }
    if (!target) {
        struct stat st;
        if (lstat(link, &st) == 0 && S_ISLNK(st.st_mode))
            unlink(link);
        goto out;
    }
    unlink(tmp);
    if (symlink(target, tmp) != 0) {
        rc = avsr_error_set(err, AVSR_ERR_IO, "%s: cannot create symlink: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, link) != 0) {
        rc = avsr_error_set(err, AVSR_ERR_IO, "%s: cannot replace with a symlink: %s", link,
                            strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = fsync_path(stage_dir, err);
out:
    free(link);
    free(tmp);
    return rc;
}

/* After a save: retention, index.json, symlinks. */
static int refresh(const char *stage_dir, const char *ckdir, const avsr_ckpt_retention *ret,
                   avsr_ckpt_notes *notes, avsr_error *err)
{
    avsr_ckpt_list l;
    if (avsr_ckpt_list_dir(ckdir, &l, notes, err) < 0)
        return -1;
    int rc = apply_retention(ckdir, &l, ret, notes, err);
    int best = ret ? best_of(&l, NULL, ret->metric, ret->higher_better) : -1;
    if (rc == 0)
        rc = write_index(ckdir, &l, ret, best, err);
    char *t = NULL;
    if (rc == 0 && l.n) {
        t = pathf("ckpt/%s", base_name(l.e[l.n - 1].dir));
        rc = t ? set_link(stage_dir, "last", t, err) : AVSR_NOMEM(err, 0);
        free(t);
    }
    if (rc == 0) {
        t = best >= 0 ? pathf("ckpt/%s", base_name(l.e[best].dir)) : NULL;
        rc = set_link(stage_dir, "best", t, err);
        free(t);
    }
    avsr_ckpt_list_free(&l);
    return rc;
}

/* ---- save ----------------------------------------------------------------- */

static int optim_moments(const avsr_optim *opt)
{
    if (!opt)
        return 0;
    const avsr_optim_cfg *c = avsr_optim_config(opt);
    if (c->type == AVSR_OPTIM_SGD)
        return c->momentum != 0.0 ? 1 : 0;
    return 2;
}

static const char *const MOMENT_PREFIX[2] = {"optim.m.", "optim.v."};

static bool all_zero(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (x[i] != 0.0f || signbit(x[i]))
            return false;
    return true;
}

static int check_info(const avsr_ckpt_save_info *in, avsr_error *err)
{
    if (in->step < 0 || in->epoch < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "checkpoint: step %" PRId64 " / epoch %" PRId64 ": must be >= 0",
                              in->step, in->epoch);
    if (in->world_size < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "checkpoint: world size %d", in->world_size);
    for (int i = 0; i < in->n_metrics; i++) {
        const avsr_ckpt_metric *m = &in->metrics[i];
        if (!m->name || !*m->name || !isfinite(m->value))
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "checkpoint: metric '%s' = %g: needs a name and a finite value",
                                  m->name ? m->name : "(null)", m->value);
    }
    for (int i = 0; i < in->n_meta; i++) {
        const char *k = in->meta[i].key;
        if (!k || !in->meta[i].value || strcmp(k, "format") == 0 || strncmp(k, "avsr.", 5) == 0)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "checkpoint: metadata key '%s' is reserved or empty",
                                  k ? k : "(null)");
    }
    for (int i = 0; i < in->n_items; i++) {
        const avsr_ckpt_item *it = &in->items[i];
        if (!it->name || !*it->name || strncmp(it->name, "optim.", 6) == 0)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "checkpoint: state item '%s': empty or reserved name (optim.*)",
                                  it->name ? it->name : "(null)");
        if ((unsigned)it->dtype >= AVSR_DTYPE_COUNT || it->count < 0 ||
            (it->count > 0 && !it->data))
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "checkpoint: state item '%s': bad dtype, count or data",
                                  it->name);
    }
    return 0;
}

static int meta_i64(avsr_st_writer *w, const char *k, int64_t v, avsr_error *err)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRId64, v);
    return avsr_st_writer_meta(w, k, b, err);
}

static int meta_opt(avsr_st_writer *w, const char *k, const char *v, avsr_error *err)
{
    return v ? avsr_st_writer_meta(w, k, v, err) : 0;
}

static char *metrics_text(const avsr_ckpt_save_info *in)
{
    json_t *m = json_object();
    for (int i = 0; m && i < in->n_metrics; i++)
        json_object_set_new(m, in->metrics[i].name, json_real(in->metrics[i].value));
    char *s = m ? json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(m);
    return s;
}

static int write_model(const char *path, avsr_params *p, const avsr_ckpt_save_info *in,
                       avsr_error *err)
{
    avsr_st_writer *w = avsr_st_writer_create();
    char *mt = metrics_text(in);
    if (!w || !mt) {
        avsr_st_writer_destroy(w);
        free(mt);
        return AVSR_NOMEM(err, 0);
    }
    int rc = 0;
    int n = avsr_params_count(p);
    for (int i = 0; rc == 0 && i < n; i++) {
        const avsr_tensor *t = avsr_params_at(p, i);
        rc = avsr_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, err);
    }
    if (rc == 0)
        rc = avsr_st_writer_meta(w, "format", "pt", err) ||
             meta_i64(w, "avsr.ckpt_version", AVSR_CKPT_VERSION, err) ||
             avsr_st_writer_meta(w, "avsr.kind", "model", err) ||
             meta_opt(w, "avsr.stage", in->stage, err) ||
             meta_i64(w, "avsr.step", in->step, err) || meta_i64(w, "avsr.epoch", in->epoch, err) ||
             avsr_st_writer_meta(w, "avsr.metrics", mt, err) ||
             meta_opt(w, "avsr.model", in->model_config, err) ||
             meta_opt(w, "avsr.tokenizer", in->vocab, err) ||
             meta_opt(w, "avsr.recipe_hash", in->recipe_hash, err)
                 ? -1
                 : 0;
    for (int i = 0; rc == 0 && i < in->n_meta; i++)
        rc = avsr_st_writer_meta(w, in->meta[i].key, in->meta[i].value, err);
    if (rc == 0)
        rc = avsr_st_writer_write(w, path, err);
    avsr_st_writer_destroy(w);
    free(mt);
    return rc;
}

static int write_state(const char *path, avsr_params *p, const avsr_optim *opt,
                       const avsr_ckpt_save_info *in, avsr_error *err)
{
    avsr_st_writer *w = avsr_st_writer_create();
    if (!w)
        return AVSR_NOMEM(err, 0);
    int rc = 0;
    int nm = optim_moments(opt);
    char **names = NULL;
    int nnames = 0;
    int np = avsr_params_count(p);
    if (nm) {
        names = calloc((size_t)(2 * np + 1), sizeof *names);
        if (!names)
            rc = AVSR_NOMEM(err, 0);
    }
    for (int k = 0; rc == 0 && k < nm; k++) {
        float *mom = avsr_params_moment(p, k, err);
        if (!mom) {
            rc = -1;
            break;
        }
        for (int i = 0; rc == 0 && i < np; i++) {
            if (avsr_params_is_buffer(p, i))
                continue;
            const avsr_tensor *t = avsr_params_at(p, i);
            const float *slice = mom + avsr_params_offset(p, i);
            if (!avsr_tensor_requires_grad(t) && all_zero(slice, t->numel))
                continue;
            char *nmn = pathf("%s%s", MOMENT_PREFIX[k], t->name);
            if (!nmn) {
                rc = AVSR_NOMEM(err, 0);
                break;
            }
            names[nnames++] = nmn;
            rc = avsr_st_writer_add(w, nmn, AVSR_F32, t->ndim, t->shape, slice, err);
        }
    }
    for (int i = 0; rc == 0 && i < in->n_items; i++) {
        const avsr_ckpt_item *it = &in->items[i];
        static const char empty[1];
        rc = avsr_st_writer_add(w, it->name, it->dtype, 1, &it->count,
                                it->data ? it->data : empty, err);
    }
    if (rc == 0)
        rc = meta_i64(w, "avsr.ckpt_version", AVSR_CKPT_VERSION, err) ||
             avsr_st_writer_meta(w, "avsr.kind", "state", err) ||
             meta_opt(w, "avsr.stage", in->stage, err) ||
             meta_i64(w, "avsr.step", in->step, err) || meta_i64(w, "avsr.epoch", in->epoch, err) ||
             meta_i64(w, "avsr.world_size", in->world_size ? in->world_size : 1, err) ||
             meta_opt(w, "avsr.recipe_hash", in->recipe_hash, err)
                 ? -1
                 : 0;
    if (rc == 0 && opt)
        rc = avsr_st_writer_meta(w, "avsr.optim.type",
                                 avsr_optim_type_name(avsr_optim_config(opt)->type), err) ||
                     meta_i64(w, "avsr.optim.step", avsr_optim_get_step(opt), err) ||
                     meta_i64(w, "avsr.optim.moments", nm, err)
                 ? -1
                 : 0;
    if (rc == 0)
        rc = avsr_st_writer_write(w, path, err);
    avsr_st_writer_destroy(w);
    for (int i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    return rc;
}

static int file_size(const char *path, int64_t *sz)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    *sz = (int64_t)st.st_size;
    return 0;
}

static int write_done(const char *dir, const avsr_ckpt_save_info *in, avsr_error *err)
{
    char *mp = pathf("%s/" MODEL_FILE, dir), *sp = pathf("%s/" STATE_FILE, dir);
    char *dp = pathf("%s/" DONE_FILE, dir);
    json_t *root = NULL;
    int rc = -1;
    int64_t ms, ss;
    if (!mp || !sp || !dp) {
        AVSR_NOMEM(err, 0);
        goto out;
    }
    if (file_size(mp, &ms) < 0 || file_size(sp, &ss) < 0) {
        avsr_error_set(err, AVSR_ERR_IO, "%s: cannot stat the checkpoint files: %s", dir,
                       strerror(errno));
        goto out;
    }
    json_t *m = json_object();
    for (int i = 0; m && i < in->n_metrics; i++)
        json_object_set_new(m, in->metrics[i].name, json_real(in->metrics[i].value));
    root = json_pack("{s:s, s:i, s:I, s:I, s:o, s:{s:I, s:I}}", "format", "avsr-ckpt", "version",
                     AVSR_CKPT_VERSION, "step", (json_int_t)in->step, "epoch",
                     (json_int_t)in->epoch, "metrics", m, "files", MODEL_FILE, (json_int_t)ms,
                     STATE_FILE, (json_int_t)ss);
    if (!root) {
        AVSR_NOMEM(err, 0);
        goto out;
    }
    if (in->stage)
        json_object_set_new(root, "stage", json_string(in->stage));
    rc = write_json_atomic(dp, root, err);
out:
    json_decref(root);
    free(mp);
    free(sp);
    free(dp);
    return rc;
}

int avsr_ckpt_save(const char *stage_dir, avsr_params *p, const avsr_optim *opt,
                   const avsr_ckpt_save_info *info, const avsr_ckpt_retention *ret,
                   avsr_ckpt_notes *notes, avsr_error *err)
{
    if (check_info(info, err) < 0)
        return -1;
    if (!avsr_params_data(p) && avsr_params_count(p) > 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "checkpoint: parameter store not finalized");
    char *ckdir = pathf("%s/ckpt", stage_dir);
    char *final = pathf("%s/ckpt/step-%" PRId64, stage_dir, info->step);
    char *tmp = pathf("%s/ckpt/step-%" PRId64 ".tmp.%ld", stage_dir, info->step, (long)getpid());
    char *mp = tmp ? pathf("%s/" MODEL_FILE, tmp) : NULL;
    char *sp = tmp ? pathf("%s/" STATE_FILE, tmp) : NULL;
    char *fdone = final ? pathf("%s/" DONE_FILE, final) : NULL;
    int rc = -1;
    bool tmp_made = false, renamed = false;
    if (!ckdir || !final || !tmp || !mp || !sp || !fdone) {
        AVSR_NOMEM(err, strlen(stage_dir));
        goto out;
    }
    /* fsync the stage directory too: on the first save it gains ckpt/ */
    if (mkdir_p(ckdir, err) < 0 || fsync_path(stage_dir, err) < 0 ||
        avsr_ckpt_clean(stage_dir, notes, err) < 0)
        goto out;
    if (exists(fdone)) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: a complete checkpoint of step %" PRId64
                       " already exists", final, info->step);
        goto out;
    }
    if (rm_tree(tmp) != 0 || mkdir(tmp, 0777) != 0) {
        avsr_error_set(err, AVSR_ERR_IO, "%s: cannot create directory: %s", tmp, strerror(errno));
        goto out;
    }
    tmp_made = true;
    if (write_model(mp, p, info, err) < 0 || write_state(sp, p, opt, info, err) < 0 ||
        fsync_path(tmp, err) < 0)
        goto out;
    if (rm_tree(final) != 0 || rename(tmp, final) != 0) {
        avsr_error_set(err, AVSR_ERR_IO, "rename %s -> %s failed: %s", tmp, final,
                       strerror(errno));
        goto out;
    }
    renamed = true;
    if (fsync_path(ckdir, err) < 0 || write_done(final, info, err) < 0)
        goto out;
    rc = refresh(stage_dir, ckdir, ret, notes, err);
    if (rc < 0)
        avsr_error_prefix(err, "checkpoint step-%" PRId64 " is complete, but: ", info->step);
    renamed = false; /* complete: keep it whatever refresh says */
    tmp_made = false;
out:
    if (rc < 0 && renamed && !exists(fdone))
        rm_tree(final);
    if (rc < 0 && tmp_made && !renamed)
        rm_tree(tmp);
    free(ckdir);
    free(final);
    free(tmp);
    free(mp);
    free(sp);
    free(fdone);
    return rc;
}

/* ---- restore -------------------------------------------------------------- */

void avsr_ckpt_loaded_free(avsr_ckpt_loaded *l)
{
    if (!l)
        return;
    free(l->dir);
    free(l->recipe_hash);
    free(l->stage);
    free(l->model_config);
    free(l->vocab);
    for (int i = 0; i < l->n_metrics; i++)
        free(l->metric_names[i]);
    free(l->metric_names);
    free(l->metric_values);
    memset(l, 0, sizeof *l);
}

static char *dup_meta(const avsr_st *st, const char *k)
{
    const char *v = avsr_st_meta(st, k);
    return v ? strdup(v) : NULL;
}

static int meta_int(const avsr_st *st, const char *k, int64_t *out)
{
    const char *v = avsr_st_meta(st, k);
    if (!v || !*v)
        return -1;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end)
        return -1;
    *out = x;
    return 0;
}

static void shape_text(int ndim, const int64_t *shape, char *buf, size_t n)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, i ? ", %" PRId64 : "%" PRId64, shape[i]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

static int check_tensor(const char *file, const avsr_st_tensor *f, const char *name,
                        avsr_dtype dtype, int ndim, const int64_t *shape, avsr_error *err)
{
    bool same = f->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = f->shape[d] == shape[d];
    if (f->dtype != dtype)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s' is %s, the model has %s",
                              file, name, avsr_dtype_name(f->dtype), avsr_dtype_name(dtype));
    if (!same) {
        char a[160], b[160];
        shape_text(f->ndim, f->shape, a, sizeof a);
        shape_text(ndim, shape, b, sizeof b);
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s' has shape %s, expected %s",
                              file, name, a, b);
    }
    return 0;
}

/* Return codes of load_ckpt: 0 ok, -1 mismatch with the model (an error),
 * -2 the checkpoint itself is unreadable (skip it when searching). */
static int load_ckpt(const char *dir, int64_t step, avsr_params *p, avsr_optim *opt,
                     avsr_ckpt_item *items, int n_items, avsr_ckpt_loaded *out, avsr_error *err)
{
    avsr_ckpt_entry e;
    json_t *done = NULL;
    avsr_st *ms = NULL, *ss = NULL;
    char *mp = pathf("%s/" MODEL_FILE, dir), *sp = pathf("%s/" STATE_FILE, dir);
    char *mname = NULL;
    int rc = -2;
    memset(out, 0, sizeof *out);
    if (!mp || !sp) {
        rc = AVSR_NOMEM(err, 0);
        goto out;
    }
    if (read_done(dir, step, &e, &done, err) < 0)
        goto out;
    json_t *files = json_object_get(done, "files");
    int64_t want, have;
    const char *fn[2] = {MODEL_FILE, STATE_FILE};
    const char *fp[2] = {mp, sp};
    for (int k = 0; k < 2; k++) {
        if (json_i64(files, fn[k], &want) == 0 && file_size(fp[k], &have) == 0 && want != have) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "%s: %" PRId64 " bytes, DONE recorded %" PRId64 " (truncated or "
                           "replaced)",
                           fp[k], have, want);
            goto out_e;
        }
    }
    if (!(ms = avsr_st_open(mp, err)) || !(ss = avsr_st_open(sp, err)))
        goto out_e;
    int64_t s1, s2;
    if (meta_int(ms, "avsr.step", &s1) < 0 || meta_int(ss, "avsr.step", &s2) < 0 || s1 != step ||
        s2 != step) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: model/state files do not record step %" PRId64 " in avsr.step", dir,
                       step);
        goto out_e;
    }
    rc = -1;
    /* phase 1: check everything */
    int np = avsr_params_count(p);
    avsr_st_tensor ft;
    for (int i = 0; i < np; i++) {
        const avsr_tensor *t = avsr_params_at(p, i);
        if (avsr_st_find(ms, t->name, &ft) < 0) {
            avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s' is missing", mp, t->name);
            goto out_e;
        }
        if (check_tensor(mp, &ft, t->name, t->dtype, t->ndim, t->shape, err) < 0)
            goto out_e;
    }
    for (int i = 0; i < avsr_st_count(ms); i++) {
        avsr_st_get(ms, i, &ft);
        if (!avsr_params_find(p, ft.name)) {
            avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s' is not in the model", mp,
                           ft.name);
            goto out_e;
        }
    }
    int nm = optim_moments(opt);
    int64_t ostep = -1;
    if (opt) {
        const char *ty = avsr_st_meta(ss, "avsr.optim.type");
        const char *want_ty = avsr_optim_type_name(avsr_optim_config(opt)->type);
        int64_t snm;
        if (!ty || strcmp(ty, want_ty) != 0 || meta_int(ss, "avsr.optim.step", &ostep) < 0 ||
            meta_int(ss, "avsr.optim.moments", &snm) < 0 || snm != nm) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "%s: optimizer state is for '%s' (%s moments), this run uses '%s' "
                           "(%d moments)",
                           sp, ty ? ty : "none",
                           avsr_st_meta(ss, "avsr.optim.moments")
                               ? avsr_st_meta(ss, "avsr.optim.moments")
                               : "0",
                           want_ty, nm);
            goto out_e;
        }
        for (int k = 0; k < nm; k++)
            for (int i = 0; i < np; i++) {
                const avsr_tensor *t = avsr_params_at(p, i);
                if (avsr_params_is_buffer(p, i) || !avsr_tensor_requires_grad(t))
                    continue;
                free(mname);
                if (!(mname = pathf("%s%s", MOMENT_PREFIX[k], t->name))) {
                    AVSR_NOMEM(err, 0);
                    goto out_e;
                }
                if (avsr_st_find(ss, mname, NULL) < 0) {
                    avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s' is missing", sp,
                                   mname);
                    goto out_e;
                }
            }
        for (int i = 0; i < avsr_st_count(ss); i++) {
            avsr_st_get(ss, i, &ft);
            if (strncmp(ft.name, "optim.", 6) != 0)
                continue;
            int k = strncmp(ft.name, MOMENT_PREFIX[0], 8) == 0   ? 0
                    : strncmp(ft.name, MOMENT_PREFIX[1], 8) == 0 ? 1
                                                                 : 2;
            const avsr_tensor *t = k < nm ? avsr_params_find(p, ft.name + 8) : NULL;
            if (!t || !(t->flags & AVSR_T_PARAM) || t->dtype != AVSR_F32) {
                avsr_error_set(err, AVSR_ERR_INVALID,
                               "%s: tensor '%s' matches no trainable parameter of the model", sp,
                               ft.name);
                goto out_e;
            }
            if (check_tensor(sp, &ft, ft.name, AVSR_F32, t->ndim, t->shape, err) < 0)
                goto out_e;
        }
    }
    for (int i = 0; i < n_items; i++) {
        avsr_ckpt_item *it = &items[i];
        if (avsr_st_find(ss, it->name, &ft) < 0) {
            avsr_error_set(err, AVSR_ERR_INVALID, "%s: state item '%s' is missing", sp, it->name);
            goto out_e;
        }
        if (check_tensor(sp, &ft, it->name, it->dtype, 1, &it->count, err) < 0)
            goto out_e;
    }
    float *mom[2] = {NULL, NULL};
    for (int k = 0; k < nm; k++)
        if (!(mom[k] = avsr_params_moment(p, k, err)))
            goto out_e;
    /* phase 2: copy */
    for (int i = 0; i < np; i++) {
        avsr_tensor *t = avsr_params_at(p, i);
        avsr_st_find(ms, t->name, &ft);
        memcpy(t->data, ft.data, ft.nbytes);
        if (avsr_params_is_buffer(p, i))
            continue;
        for (int k = 0; k < nm; k++) {
            float *slice = mom[k] + avsr_params_offset(p, i);
            free(mname);
            if (!(mname = pathf("%s%s", MOMENT_PREFIX[k], t->name))) {
                AVSR_NOMEM(err, 0); /* cannot happen in practice; state is partial */
                goto out_e;
            }
            if (avsr_st_find(ss, mname, &ft) == 0)
                memcpy(slice, ft.data, ft.nbytes);
            else
                memset(slice, 0, sizeof(float) * (size_t)t->numel);
        }
    }
    for (int i = 0; i < n_items; i++) {
        avsr_st_find(ss, items[i].name, &ft);
        if (ft.nbytes)
            memcpy(items[i].data, ft.data, ft.nbytes);
    }
    if (opt)
        avsr_optim_set_step(opt, ostep);
    /* report */
    int64_t ws = 1;
    meta_int(ss, "avsr.world_size", &ws);
    out->dir = strdup(dir);
    out->step = e.step;
    out->epoch = e.epoch;
    out->optim_step = ostep;
    out->world_size = (int)ws;
    out->recipe_hash = dup_meta(ss, "avsr.recipe_hash");
    out->stage = dup_meta(ms, "avsr.stage");
    out->model_config = dup_meta(ms, "avsr.model");
    out->vocab = dup_meta(ms, "avsr.tokenizer");
    out->n_metrics = e.n_metrics;
    out->metric_names = e.metric_names;
    out->metric_values = e.metric_values;
    e.metric_names = NULL;
    e.metric_values = NULL;
    e.n_metrics = 0;
    rc = 0;
out_e:
    entry_free(&e);
out:
    json_decref(done);
    avsr_st_close(ms);
    avsr_st_close(ss);
    free(mp);
    free(sp);
    free(mname);
    return rc;
}

int avsr_ckpt_load_dir(const char *ckpt_path, avsr_params *p, avsr_optim *opt,
                       avsr_ckpt_item *items, int n_items, avsr_ckpt_loaded *out,
                       avsr_error *err)
{
    int64_t step;
    if (parse_name(base_name(ckpt_path), &step) != 1)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: not a checkpoint directory (expected .../step-<N>)", ckpt_path);
    return load_ckpt(ckpt_path, step, p, opt, items, n_items, out, err) == 0 ? 0 : -1;
}

int avsr_ckpt_restore(const char *stage_dir, avsr_params *p, avsr_optim *opt,
                      avsr_ckpt_item *items, int n_items, avsr_ckpt_loaded *out,
                      avsr_ckpt_notes *notes, avsr_error *err)
{
    memset(out, 0, sizeof *out);
    char *ckdir = pathf("%s/ckpt", stage_dir);
    if (!ckdir)
        return AVSR_NOMEM(err, strlen(stage_dir));
    avsr_ckpt_list l;
    int rc = avsr_ckpt_list_dir(ckdir, &l, notes, err);
    free(ckdir);
    if (rc < 0)
        return -1;
    rc = 0;
    for (int i = l.n - 1; i >= 0; i--) {
        avsr_error e2 = {0};
        int r = load_ckpt(l.e[i].dir, l.e[i].step, p, opt, items, n_items, out, &e2);
        if (r == 0) {
            rc = 1;
            break;
        }
        if (r == -1) {
            avsr_error_set(err, e2.code, "%s", e2.msg);
            rc = -1;
            break;
        }
        note(notes, "%s; checkpoint skipped", e2.msg);
    }
    avsr_ckpt_list_free(&l);
    return rc;
}

/* ---- recipe diff ---------------------------------------------------------- */

static int cmp_kv(const void *a, const void *b)
{
    const avsr_kv *x = *(const avsr_kv *const *)a, *y = *(const avsr_kv *const *)b;
    return strcmp(x->key, y->key);
}

static void sb_add(char **s, size_t *len, bool *oom, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sb_add(char **s, size_t *len, bool *oom, const char *fmt, ...)
{
    if (*oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *piece = NULL;
    int n = vasprintf(&piece, fmt, ap);
    va_end(ap);
    char *ns = n >= 0 ? realloc(*s, *len + (size_t)n + 3) : NULL;
    if (!ns) {
        free(piece);
        *oom = true;
        return;
    }
    *s = ns;
    if (*len) {
        memcpy(*s + *len, "; ", 2);
        *len += 2;
    }
    memcpy(*s + *len, piece, (size_t)n + 1);
    *len += (size_t)n;
    free(piece);
}

int avsr_ckpt_recipe_diff(const avsr_kv *saved, int n_saved, const avsr_kv *now, int n_now,
                          char **names)
{
    const avsr_kv **a = malloc(sizeof *a * (size_t)(n_saved + 1));
    const avsr_kv **b = malloc(sizeof *b * (size_t)(n_now + 1));
    char *s = NULL;
    size_t len = 0;
    bool oom = !a || !b;
    int diff = 0;
    if (!oom) {
        for (int i = 0; i < n_saved; i++)
            a[i] = &saved[i];
        for (int i = 0; i < n_now; i++)
            b[i] = &now[i];
        qsort(a, (size_t)n_saved, sizeof *a, cmp_kv);
        qsort(b, (size_t)n_now, sizeof *b, cmp_kv);
        s = calloc(1, 1);
        oom = !s;
    }
    int i = 0, j = 0;
    while (!oom && (i < n_saved || j < n_now)) {
        int c = i == n_saved ? 1 : j == n_now ? -1 : strcmp(a[i]->key, b[j]->key);
        if (c < 0) {
            sb_add(&s, &len, &oom, "%s: only in the checkpoint", a[i]->key);
            diff++, i++;
        } else if (c > 0) {
            sb_add(&s, &len, &oom, "%s: only in the current recipe", b[j]->key);
            diff++, j++;
        } else {
            const char *x = a[i]->value ? a[i]->value : "", *y = b[j]->value ? b[j]->value : "";
            if (strcmp(x, y) != 0) {
                sb_add(&s, &len, &oom, "%s: '%s' -> '%s'", a[i]->key, x, y);
                diff++;
            }
            i++, j++;
        }
    }
    free(a);
    free(b);
    if (oom) {
        free(s);
        s = NULL;
    }
    if (names)
        *names = s;
    else
        free(s);
    return diff;
}
