/* average: streaming checkpoint averaging (see average.h). */
#define _GNU_SOURCE /* vasprintf */
#include "average.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtype.h"
#include "fileio.h"
#include "safetensors.h"
#include "tensor.h"

/* ---- a header-only safetensors reader ------------------------------------- */

typedef struct sten {
    char *name;
    avsr_dtype dtype;
    int ndim;
    int64_t shape[AVSR_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end; /* in the data region */
} sten;

typedef struct sfile {
    const char *path;
    int fd;
    uint64_t data_start; /* 8 + header length */
    int n;
    sten *t;             /* data-offset order */
    int *by_name;        /* indices sorted by name */
    json_t *meta;        /* __metadata__ or NULL (borrowed from root) */
    json_t *root;
} sfile;

static void sfile_close(sfile *f)
{
    if (f->fd >= 0)
        close(f->fd);
    for (int i = 0; i < f->n; i++)
        free(f->t[i].name);
    free(f->t);
    free(f->by_name);
    json_decref(f->root);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

static int read_full(int fd, void *buf, size_t n, uint64_t off)
{
    unsigned char *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO; /* short file */
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int cmp_off(const void *a, const void *b)
{
    const sten *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static const sten *g_sort_t; /* qsort context (single-threaded use) */
static int cmp_name_idx(const void *a, const void *b)
{
    return strcmp(g_sort_t[*(const int *)a].name, g_sort_t[*(const int *)b].name);
}

static const sten *sfile_find(const sfile *f, const char *name)
{
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const sten *t = &f->t[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int json_nonneg(json_t *v, int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (int64_t)json_integer_value(v);
    return 0;
}

/* Open and validate the header of a safetensors file (the checks of
 * avsr_st_parse, against the file size instead of a buffer). */
static int sfile_open(sfile *f, const char *path, avsr_error *err)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    f->fd = open(path, O_RDONLY);
    char *hdr = NULL;
    if (f->fd < 0)
        return avsr_error_set(err, AVSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        avsr_error_set(err, AVSR_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    uint64_t size = (uint64_t)st.st_size;
    unsigned char l8[8];
    if (size < 8 || read_full(f->fd, l8, 8, 0) < 0) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: %llu bytes: too short for a safetensors header",
                       path, (unsigned long long)size);
        goto fail;
    }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | l8[i];
    if (hl > AVSR_ST_MAX_HEADER) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: header length %llu exceeds the %u-byte limit (not a safetensors "
                       "file?)",
                       path, (unsigned long long)hl, AVSR_ST_MAX_HEADER);
        goto fail;
    }
    if (hl > size - 8) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: header length %llu is past the end of the file (%llu bytes; "
                       "truncated?)",
                       path, (unsigned long long)hl, (unsigned long long)size);
        goto fail;
    }
    hdr = malloc(hl ? hl : 1);
    if (!hdr) {
        AVSR_NOMEM(err, hl);
        goto fail;
    }
    if (read_full(f->fd, hdr, hl, 8) < 0) {
        avsr_error_set(err, AVSR_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        goto fail;
    }
    f->data_start = 8 + hl;
    uint64_t datalen = size - 8 - hl;
    json_error_t je;
    f->root = json_loadb(hdr, hl, JSON_REJECT_DUPLICATES, &je);
    if (!f->root) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: header JSON: %s (at byte %d of the header)",
                       path, je.text, je.position);
        goto fail;
    }
    if (!json_is_object(f->root)) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: header JSON is not an object", path);
        goto fail;
    }
    size_t nobj = json_object_size(f->root);
    f->t = calloc(nobj ? nobj : 1, sizeof *f->t);
    f->by_name = calloc(nobj ? nobj : 1, sizeof *f->by_name);
    if (!f->t || !f->by_name) {
        AVSR_NOMEM(err, nobj * sizeof *f->t);
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(f->root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                avsr_error_set(err, AVSR_ERR_INVALID, "%s: __metadata__ is not an object", path);
                goto fail;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) if (!json_is_string(mv))
            {
                avsr_error_set(err, AVSR_ERR_INVALID,
                               "%s: __metadata__ value of '%s' is not a string", path, mk);
                goto fail;
            }
            f->meta = val;
            continue;
        }
        sten *t = &f->t[f->n];
        json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape");
        json_t *jo = json_object_get(val, "data_offsets");
        int64_t b, e;
        if (!json_is_object(val) || !json_is_string(jd) ||
            avsr_dtype_parse(json_string_value(jd), &t->dtype) < 0 || !json_is_array(js) ||
            json_array_size(js) > AVSR_MAX_DIMS || !json_is_array(jo) ||
            json_array_size(jo) != 2 || json_nonneg(json_array_get(jo, 0), &b) < 0 ||
            json_nonneg(json_array_get(jo, 1), &e) < 0 || b > e) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "%s: tensor '%s': bad entry (dtype, shape or data_offsets)", path, key);
            goto fail;
        }
        t->ndim = (int)json_array_size(js);
        for (int d = 0; d < t->ndim; d++)
            if (json_nonneg(json_array_get(js, (size_t)d), &t->shape[d]) < 0) {
                avsr_error_set(err, AVSR_ERR_INVALID,
                               "%s: tensor '%s': shape[%d] is not a non-negative integer", path,
                               key, d);
                goto fail;
            }
        t->numel = avsr_shape_numel(t->ndim, t->shape);
        size_t es = avsr_dtype_size(t->dtype);
        if (t->numel < 0 || (uint64_t)t->numel > (uint64_t)INT64_MAX / es) {
            avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s': shape overflows", path, key);
            goto fail;
        }
        if ((uint64_t)e > datalen) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "%s: tensor '%s': data_offsets end %lld is past the data region "
                           "(%llu bytes; file truncated?)",
                           path, key, (long long)e, (unsigned long long)datalen);
            goto fail;
        }
        if ((uint64_t)(e - b) != (uint64_t)t->numel * es) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "%s: tensor '%s': %lld bytes for %lld elements of %s", path, key,
                           (long long)(e - b), (long long)t->numel, avsr_dtype_name(t->dtype));
            goto fail;
        }
        t->begin = (uint64_t)b;
        t->end = (uint64_t)e;
        if (!(t->name = strdup(key))) {
            AVSR_NOMEM(err, strlen(key));
            goto fail;
        }
        f->n++;
    }
    qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_off);
    uint64_t pos = 0;
    for (int i = 0; i < f->n; i++) {
        if (f->t[i].begin != pos) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           f->t[i].begin < pos ? "%s: tensor '%s' overlaps another tensor"
                                               : "%s: a hole in the data region before tensor '%s'",
                           path, f->t[i].name);
            goto fail;
        }
        pos = f->t[i].end;
    }
    if (pos != datalen) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: data region has %llu bytes, tensors cover %llu (trailing bytes)", path,
                       (unsigned long long)datalen, (unsigned long long)pos);
        goto fail;
    }
    for (int i = 0; i < f->n; i++)
        f->by_name[i] = i;
    g_sort_t = f->t;
    qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_name_idx);
    free(hdr);
    return 0;
fail:
    free(hdr);
    sfile_close(f);
    return -1;
}

static const char *meta_get(const sfile *f, const char *k)
{
    json_t *v = f->meta ? json_object_get(f->meta, k) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- compatibility -------------------------------------------------------- */

static void shape_text(const sten *t, char *buf, size_t n)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, i ? ", %" PRId64 : "%" PRId64, t->shape[i]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

static int check_same(const sfile *a, const sfile *b, avsr_error *err)
{
    for (int i = 0; i < a->n; i++) {
        const sten *x = &a->t[i], *y = sfile_find(b, x->name);
        if (!y)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "tensor '%s' is in %s but not in %s", x->name, a->path,
                                  b->path);
        if (x->dtype != y->dtype)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "tensor '%s' is %s in %s but %s in %s", x->name,
                                  avsr_dtype_name(x->dtype), a->path, avsr_dtype_name(y->dtype),
                                  b->path);
        bool same = x->ndim == y->ndim;
        for (int d = 0; same && d < x->ndim; d++)
            same = x->shape[d] == y->shape[d];
        if (!same) {
            char sa[160], sb[160];
            shape_text(x, sa, sizeof sa);
            shape_text(y, sb, sizeof sb);
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "tensor '%s' has shape %s in %s but %s in %s", x->name, sa,
                                  a->path, sb, b->path);
        }
    }
    for (int i = 0; i < b->n; i++)
        if (!sfile_find(a, b->t[i].name))
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "tensor '%s' is in %s but not in %s", b->t[i].name, b->path,
                                  a->path);
    return 0;
}

/* The metadata that lets the average decode on its own must be the same in
 * every input: models of different configurations or vocabularies cannot be
 * averaged. A key absent from every input is fine (it is not copied). */
static int check_same_meta(const sfile *a, const sfile *b, avsr_error *err)
{
    static const char *const keys[] = {"avsr.model", "avsr.tokenizer"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const char *va = meta_get(a, keys[k]), *vb = meta_get(b, keys[k]);
        if (!va && !vb)
            continue;
        if (!va || !vb)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "metadata '%s' is in %s but not in %s", keys[k],
                                  va ? a->path : b->path, va ? b->path : a->path);
        if (strcmp(va, vb) != 0)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "metadata '%s' differs between %s and %s (checkpoints of "
                                  "different %s cannot be averaged)",
                                  keys[k], a->path, b->path,
                                  k == 0 ? "model configurations" : "vocabularies");
    }
    return 0;
}

/* ---- averaging ------------------------------------------------------------ */

static bool is_float(avsr_dtype d)
{
    return d == AVSR_F32 || d == AVSR_F64 || d == AVSR_F16 || d == AVSR_BF16;
}

static double load_f(avsr_dtype d, const unsigned char *p, int64_t i)
{
    switch (d) {
    case AVSR_F32: { float v; memcpy(&v, p + 4 * i, 4); return v; }
    case AVSR_F64: { double v; memcpy(&v, p + 8 * i, 8); return v; }
    case AVSR_F16: { unsigned short h; memcpy(&h, p + 2 * i, 2); return avsr_f16_to_f32(h); }
    default: { unsigned short h; memcpy(&h, p + 2 * i, 2); return avsr_bf16_to_f32(h); }
    }
}

static void store_f(avsr_dtype d, unsigned char *p, int64_t i, double v)
{
    switch (d) {
    case AVSR_F32: { float x = (float)v; memcpy(p + 4 * i, &x, 4); break; }
    case AVSR_F64: memcpy(p + 8 * i, &v, 8); break;
    case AVSR_F16: { unsigned short h = avsr_f32_to_f16((float)v); memcpy(p + 2 * i, &h, 2); break; }
    default: { unsigned short h = avsr_f32_to_bf16((float)v); memcpy(p + 2 * i, &h, 2); break; }
    }
}

static __int128 load_i(avsr_dtype d, const unsigned char *p, int64_t i)
{
    switch (d) {
    case AVSR_I64: { int64_t v; memcpy(&v, p + 8 * i, 8); return v; }
    case AVSR_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); return v; }
    case AVSR_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); return v; }
    case AVSR_I8: return (int8_t)p[i];
    default: return p[i]; /* U8 */
    }
}

static void store_i(avsr_dtype d, unsigned char *p, int64_t i, __int128 v)
{
    switch (d) {
    case AVSR_I64: { int64_t x = (int64_t)v; memcpy(p + 8 * i, &x, 8); break; }
    case AVSR_I32: { int32_t x = (int32_t)v; memcpy(p + 4 * i, &x, 4); break; }
    case AVSR_I16: { int16_t x = (int16_t)v; memcpy(p + 2 * i, &x, 2); break; }
    case AVSR_I8: p[i] = (unsigned char)(int8_t)v; break;
    default: p[i] = (unsigned char)v; break;
    }
}

/* floor(s / n) for n > 0 (Python's //) */
static __int128 floor_div(__int128 s, int n)
{
    __int128 q = s / n;
    if (s % n != 0 && s < 0)
        q -= 1;
    return q;
}

static json_t *sources_json(const sfile *in, const char *const *paths, const int64_t *steps,
                            int n)
{
    json_t *arr = json_array();
    for (int i = 0; arr && i < n; i++) {
        int64_t s = steps ? steps[i] : -1;
        if (s < 0) {
            const char *m = meta_get(&in[i], "avsr.step");
            char *end;
            if (m && *m) {
                long long v = strtoll(m, &end, 10);
                if (!*end && v >= 0)
                    s = v;
            }
        }
        json_t *o = json_pack("{s:s, s:o}", "path", paths[i], "step",
                              s >= 0 ? json_integer(s) : json_null());
        if (!o || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static char *build_header(const sfile *in, const char *const *paths, const int64_t *steps, int n,
                          avsr_error *err)
{
    json_t *root = json_object(), *meta = json_object();
    json_t *src = sources_json(in, paths, steps, n);
    char *s = NULL;
    if (!root || !meta || !src) {
        AVSR_NOMEM(err, 0);
        goto out;
    }
    const char *fmt = meta_get(&in[0], "format");
    json_object_set_new(meta, "format", json_string(fmt ? fmt : "pt"));
    static const char *const copy[] = {"avsr.model", "avsr.tokenizer", "avsr.stage",
                                       "avsr.recipe_hash", "preprocess"};
    for (size_t k = 0; k < sizeof copy / sizeof *copy; k++) {
        const char *v = meta_get(&in[0], copy[k]);
        if (v)
            json_object_set_new(meta, copy[k], json_string(v));
    }
    char *st = json_dumps(src, JSON_COMPACT);
    char cnt[16];
    snprintf(cnt, sizeof cnt, "%d", n);
    if (!st) {
        AVSR_NOMEM(err, 0);
        goto out;
    }
    json_object_set_new(meta, "avsr.avg.sources", json_string(st));
    free(st);
    json_object_set_new(meta, "avsr.avg.count", json_string(cnt));
    json_object_set_new(meta, "avsr.avg.rule",
                        json_string("mean of floats (double accumulation); integer sum "
                                    "floor-divided by count; bool from the first input"));
    json_object_set(root, "__metadata__", meta);
    uint64_t off = 0;
    for (int i = 0; i < in[0].n; i++) {
        const sten *t = &in[0].t[i];
        json_t *shape = json_array();
        for (int d = 0; shape && d < t->ndim; d++)
            json_array_append_new(shape, json_integer(t->shape[d]));
        uint64_t nb = t->end - t->begin;
        json_t *e = json_pack("{s:s, s:o, s:[I, I]}", "dtype", avsr_dtype_name(t->dtype), "shape",
                              shape, "data_offsets", (json_int_t)off, (json_int_t)(off + nb));
        if (!e || json_object_set_new(root, t->name, e) != 0) {
            avsr_error_set(err, AVSR_ERR_INVALID, "cannot encode tensor '%s'", t->name);
            goto out;
        }
        off += nb;
    }
    s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s)
        AVSR_NOMEM(err, 0);
out:
    json_decref(root);
    json_decref(meta);
    json_decref(src);
    return s;
}

int avsr_avg_files(const char *const *paths, const int64_t *steps, int n, const char *out_path,
                   avsr_error *err)
{
    if (n < 1)
        return avsr_error_set(err, AVSR_ERR_INVALID, "avsr-avg: no input files");
    sfile *in = calloc((size_t)n, sizeof *in);
    double *accf = malloc(sizeof *accf * AVSR_AVG_CHUNK);
    __int128 *acci = malloc(sizeof *acci * AVSR_AVG_CHUNK);
    unsigned char *buf = malloc(8 * AVSR_AVG_CHUNK);
    char *hdr = NULL;
    avsr_afile af = {0};
    bool af_open = false;
    int rc = -1;
    if (!in || !accf || !acci || !buf) {
        AVSR_NOMEM(err, 8 * AVSR_AVG_CHUNK);
        goto out;
    }
    for (int i = 0; i < n; i++)
        in[i].fd = -1;
    for (int i = 0; i < n; i++) {
        if (sfile_open(&in[i], paths[i], err) < 0)
            goto out;
        if (i > 0 && (check_same(&in[0], &in[i], err) < 0 ||
                      check_same_meta(&in[0], &in[i], err) < 0))
            goto out;
    }
    hdr = build_header(in, paths, steps, n, err);
    if (!hdr)
        goto out;
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    if (avsr_afile_open(&af, out_path, err) < 0)
        goto out;
    af_open = true;
    if (avsr_afile_write(&af, len8, 8, err) < 0 || avsr_afile_write(&af, hdr, hl, err) < 0 ||
        avsr_afile_write(&af, spaces, padded - hl, err) < 0)
        goto out;
    for (int ti = 0; ti < in[0].n; ti++) {
        const sten *t0 = &in[0].t[ti];
        avsr_dtype d = t0->dtype;
        size_t es = avsr_dtype_size(d);
        bool fl = is_float(d);
        for (int64_t c0 = 0; c0 < t0->numel; c0 += AVSR_AVG_CHUNK) {
            int64_t cnt = t0->numel - c0 < AVSR_AVG_CHUNK ? t0->numel - c0 : AVSR_AVG_CHUNK;
            int nread = d == AVSR_BOOL ? 1 : n;
            for (int j = 0; j < nread; j++) {
                const sten *t = j ? sfile_find(&in[j], t0->name) : t0;
                if (read_full(in[j].fd, buf, (size_t)cnt * es,
                              in[j].data_start + t->begin + (uint64_t)c0 * es) < 0) {
                    avsr_error_set(err, AVSR_ERR_IO, "%s: reading tensor '%s': %s", paths[j],
                                   t0->name, strerror(errno));
                    goto out;
                }
                if (d == AVSR_BOOL)
                    break;
                for (int64_t k = 0; k < cnt; k++) {
                    if (fl) {
                        double v = load_f(d, buf, k);
                        accf[k] = j ? accf[k] + v : v;
                    } else {
                        __int128 v = load_i(d, buf, k);
                        acci[k] = j ? acci[k] + v : v;
                    }
                }
            }
            if (d != AVSR_BOOL)
                for (int64_t k = 0; k < cnt; k++) {
                    if (fl)
                        store_f(d, buf, k, accf[k] / n);
                    else
                        store_i(d, buf, k, floor_div(acci[k], n));
                }
            if (avsr_afile_write(&af, buf, (size_t)cnt * es, err) < 0)
                goto out;
        }
    }
    af_open = false;
    rc = avsr_afile_commit(&af, err);
out:
    if (af_open)
        avsr_afile_abort(&af);
    for (int i = 0; in && i < n; i++)
        if (in[i].fd >= 0 || in[i].t)
            sfile_close(&in[i]);
    free(in);
    free(accf);
    free(acci);
    free(buf);
    free(hdr);
    if (rc < 0)
        avsr_error_prefix(err, "avsr-avg: ");
    return rc;
}

/* ---- selection ------------------------------------------------------------ */

void avsr_avg_selection_free(char **paths, int64_t *steps, int n)
{
    for (int i = 0; paths && i < n; i++)
        free(paths[i]);
    free(paths);
    free(steps);
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int avsr_avg_select(const char *dir, avsr_avg_mode mode, int n, const char *metric,
                    bool higher_better, char ***paths, int64_t **steps, avsr_ckpt_notes *notes,
                    avsr_error *err)
{
    *paths = NULL;
    *steps = NULL;
    if (n < 1)
        return avsr_error_set(err, AVSR_ERR_INVALID, "avsr-avg: N = %d: must be >= 1", n);
    if (mode == AVSR_AVG_BEST && (!metric || !*metric))
        return avsr_error_set(err, AVSR_ERR_INVALID, "avsr-avg: --best needs a metric name");
    size_t dl = strlen(dir) + 32;
    char *ckdir = malloc(dl), *index = malloc(dl);
    if (!ckdir || !index) {
        free(ckdir);
        free(index);
        return AVSR_NOMEM(err, dl);
    }
    snprintf(ckdir, dl, "%s/ckpt", dir);
    if (!is_dir(ckdir))
        snprintf(ckdir, dl, "%s", dir);
    snprintf(index, dl, "%s/index.json", ckdir);
    avsr_ckpt_list l = {0};
    int rc;
    if (access(index, F_OK) == 0)
        rc = avsr_ckpt_index_read(ckdir, &l, notes, err);
    else if (!is_dir(ckdir))
        rc = avsr_error_set(err, AVSR_ERR_IO, "%s: not a directory", dir);
    else
        rc = avsr_ckpt_list_dir(ckdir, &l, notes, err);
    free(index);
    int *pick = rc == 0 ? calloc((size_t)(l.n + 1), sizeof *pick) : NULL;
    int np = 0;
    if (rc == 0 && !pick)
        rc = AVSR_NOMEM(err, (size_t)l.n);
    if (rc == 0 && mode == AVSR_AVG_LAST) {
        if (l.n < n)
            rc = avsr_error_set(err, AVSR_ERR_INVALID,
                                "avsr-avg: %s has %d complete checkpoint(s), --last %d asked",
                                ckdir, l.n, n);
        for (int i = l.n - n; rc == 0 && i < l.n; i++)
            pick[np++] = i;
    } else if (rc == 0) {
        int have = 0;
        for (int i = 0; i < l.n; i++)
            have += avsr_ckpt_entry_metric(&l.e[i], metric, NULL) == 0;
        if (have < n)
            rc = avsr_error_set(err, AVSR_ERR_INVALID,
                                "avsr-avg: %s has %d checkpoint(s) with metric '%s', --best %d "
                                "asked",
                                ckdir, have, metric, n);
        bool *taken = rc == 0 ? calloc((size_t)l.n + 1, 1) : NULL;
        if (rc == 0 && !taken)
            rc = AVSR_NOMEM(err, (size_t)l.n);
        for (int k = 0; rc == 0 && k < n; k++) {
            int best = -1;
            double bv = 0;
            for (int i = 0; i < l.n; i++) {
                double v;
                if (taken[i] || avsr_ckpt_entry_metric(&l.e[i], metric, &v) < 0)
                    continue;
                if (best < 0 || (higher_better ? v >= bv : v <= bv))
                    best = i, bv = v;
            }
            taken[best] = true;
        }
        for (int i = 0; rc == 0 && i < l.n; i++)
            if (taken[i])
                pick[np++] = i; /* ascending step order */
        free(taken);
    }
    if (rc == 0) {
        *paths = calloc((size_t)np, sizeof **paths);
        *steps = calloc((size_t)np, sizeof **steps);
        if (!*paths || !*steps)
            rc = AVSR_NOMEM(err, (size_t)np);
        for (int i = 0; rc == 0 && i < np; i++) {
            const avsr_ckpt_entry *e = &l.e[pick[i]];
            size_t pl = strlen(e->dir) + 32;
            if (!((*paths)[i] = malloc(pl))) {
                rc = AVSR_NOMEM(err, pl);
                break;
            }
            snprintf((*paths)[i], pl, "%s/model.safetensors", e->dir);
            (*steps)[i] = e->step;
        }
        if (rc < 0) {
            avsr_avg_selection_free(*paths, *steps, np);
            *paths = NULL;
            *steps = NULL;
        }
    }
    free(pick);
    free(ckdir);
    avsr_ckpt_list_free(&l);
    return rc;
}
