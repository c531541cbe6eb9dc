/* safetensors: validated reader and atomic writer (see safetensors.h). */
#include "safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"

struct meta {
    char *key, *value;
};

struct avsr_st {
    unsigned char *buf;
    size_t len;
    avsr_st_tensor *t;
    int n;
    struct meta *m;
    int nm;
    char *names; /* one block holding every name */
};

void avsr_st_close(avsr_st *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->n; i++)
        free((char *)st->t[i].name);
    for (int i = 0; i < st->nm; i++) {
        free(st->m[i].key);
        free(st->m[i].value);
    }
    free(st->t);
    free(st->m);
    free(st->buf);
    free(st);
}

static int cmp_offset(const void *a, const void *b)
{
    const avsr_st_tensor *x = a, *y = b;
    const char *px = x->data, *py = y->data;
    if (px != py)
        return px < py ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : (x->nbytes > y->nbytes);
}

/* a JSON integer that fits in [0, INT64_MAX] */
static int json_u64(json_t *v, int64_t *out)
{
    if (!json_is_integer(v))
        return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0)
        return -1;
    *out = (int64_t)x;
    return 0;
}

static int parse_tensor(avsr_st *st, const char *what, const char *name, json_t *obj,
                        const unsigned char *data, size_t datalen, avsr_st_tensor *out,
                        avsr_error *err)
{
    if (!json_is_object(obj))
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s': entry is not an object",
                              what, name);
    json_t *jd = json_object_get(obj, "dtype");
    json_t *js = json_object_get(obj, "shape");
    json_t *jo = json_object_get(obj, "data_offsets");
    if (!json_is_string(jd))
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s': missing string \"dtype\"",
                              what, name);
    if (avsr_dtype_parse(json_string_value(jd), &out->dtype) < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s': unknown dtype \"%s\"", what,
                              name, json_string_value(jd));
    if (!json_is_array(js))
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s': missing array \"shape\"",
                              what, name);
    size_t nd = json_array_size(js);
    if (nd > AVSR_MAX_DIMS)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: tensor '%s': %zu dimensions (at most %d supported)", what, name,
                              nd, AVSR_MAX_DIMS);
    out->ndim = (int)nd;
    for (size_t i = 0; i < nd; i++)
        if (json_u64(json_array_get(js, i), &out->shape[i]) < 0)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "%s: tensor '%s': shape[%zu] is not a non-negative integer",
                                  what, name, i);
    out->numel = avsr_shape_numel(out->ndim, out->shape);
    if (out->numel < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s': shape overflows", what,
                              name);
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: tensor '%s': \"data_offsets\" must be [begin, end]", what, name);
    int64_t b, e;
    if (json_u64(json_array_get(jo, 0), &b) < 0 || json_u64(json_array_get(jo, 1), &e) < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: tensor '%s': data_offsets are not non-negative integers", what,
                              name);
    if (b > e)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: tensor '%s': data_offsets begin %lld > end %lld", what, name,
                              (long long)b, (long long)e);
    if ((uint64_t)e > datalen)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: tensor '%s': data_offsets end %lld is past the data region "
                              "(%zu bytes; file truncated?)",
                              what, name, (long long)e, datalen);
    size_t es = avsr_dtype_size(out->dtype);
    if ((uint64_t)out->numel > (uint64_t)INT64_MAX / es)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: tensor '%s': %lld bytes for %lld elements of %s (byte size "
                              "overflows)",
                              what, name, (long long)(e - b), (long long)out->numel,
                              avsr_dtype_name(out->dtype));
    if ((uint64_t)(e - b) != (uint64_t)out->numel * es)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: tensor '%s': %lld bytes for %lld elements of %s (expected %llu)",
                              what, name, (long long)(e - b), (long long)out->numel,
                              avsr_dtype_name(out->dtype),
                              (unsigned long long)((uint64_t)out->numel * es));
    out->data = data + b;
    out->nbytes = (size_t)(e - b);
    (void)st;
    return 0;
}

avsr_st *avsr_st_parse(const void *buf, size_t len, const char *what, avsr_error *err)
{
    avsr_st *st = calloc(1, sizeof *st);
    json_t *root = NULL;
    if (!st) {
        AVSR_NOMEM(err, sizeof *st);
        return NULL;
    }
    st->buf = malloc(len ? len : 1);
    if (!st->buf) {
        AVSR_NOMEM(err, len);
        goto fail;
    }
    memcpy(st->buf, buf, len);
    st->len = len;
    if (len < 8) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: %zu bytes: too short for a safetensors header",
                       what, len);
        goto fail;
    }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | st->buf[i];
    if (hl > AVSR_ST_MAX_HEADER) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: header length %llu exceeds the %u-byte limit (not a safetensors "
                       "file?)",
                       what, (unsigned long long)hl, AVSR_ST_MAX_HEADER);
        goto fail;
    }
    if (hl > len - 8) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: header length %llu is past the end of the file (%zu bytes; "
                       "truncated?)",
                       what, (unsigned long long)hl, len);
        goto fail;
    }
    json_error_t je;
    root = json_loadb((const char *)st->buf + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: header JSON: %s (at byte %d of the header)",
                       what, je.text, je.position);
        goto fail;
    }
    if (!json_is_object(root)) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: header JSON is not an object", what);
        goto fail;
    }
    const unsigned char *data = st->buf + 8 + hl;
    size_t datalen = len - 8 - (size_t)hl;
    size_t nobj = json_object_size(root);
    st->t = calloc(nobj ? nobj : 1, sizeof *st->t);
    if (!st->t) {
        AVSR_NOMEM(err, nobj * sizeof *st->t);
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                avsr_error_set(err, AVSR_ERR_INVALID, "%s: __metadata__ is not an object", what);
                goto fail;
            }
            size_t nm = json_object_size(val);
            st->m = calloc(nm ? nm : 1, sizeof *st->m);
            if (!st->m) {
                AVSR_NOMEM(err, nm * sizeof *st->m);
                goto fail;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) {
                    avsr_error_set(err, AVSR_ERR_INVALID,
                                   "%s: __metadata__ value of '%s' is not a string", what, mk);
                    goto fail;
                }
                st->m[st->nm].key = strdup(mk);
                st->m[st->nm].value = strdup(json_string_value(mv));
                st->nm++;
                if (!st->m[st->nm - 1].key || !st->m[st->nm - 1].value) {
                    AVSR_NOMEM(err, strlen(mk));
                    goto fail;
                }
            }
            continue;
        }
        avsr_st_tensor *t = &st->t[st->n];
        if (parse_tensor(st, what, key, val, data, datalen, t, err) < 0)
            goto fail;
        t->name = strdup(key);
        if (!t->name) {
            AVSR_NOMEM(err, strlen(key));
            goto fail;
        }
        st->n++;
    }
    qsort(st->t, (size_t)st->n, sizeof *st->t, cmp_offset);
    /* the data region must be covered exactly: no overlaps, no holes */
    size_t pos = 0;
    for (int i = 0; i < st->n; i++) {
        size_t b = (size_t)((const unsigned char *)st->t[i].data - data);
        if (b < pos) {
            avsr_error_set(err, AVSR_ERR_INVALID, "%s: tensor '%s' overlaps tensor '%s'", what,
                           st->t[i].name, st->t[i - 1].name);
            goto fail;
        }
        if (b > pos) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "%s: bytes %zu..%zu of the data region belong to no tensor", what, pos,
                           b);
            goto fail;
        }
        pos = b + st->t[i].nbytes;
    }
    if (pos != datalen) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: data region has %zu bytes, tensors cover %zu (trailing bytes)", what,
                       datalen, pos);
        goto fail;
    }
    json_decref(root);
    return st;
fail:
    json_decref(root);
    avsr_st_close(st);
    return NULL;
}

avsr_st *avsr_st_open(const char *path, avsr_error *err)
{
    void *buf;
    size_t len;
    if (avsr_file_read_all(path, &buf, &len, err) < 0)
        return NULL;
    avsr_st *st = avsr_st_parse(buf, len, path, err);
    free(buf);
    return st;
}

int avsr_st_count(const avsr_st *st) { return st->n; }

void avsr_st_get(const avsr_st *st, int i, avsr_st_tensor *out) { *out = st->t[i]; }

int avsr_st_find(const avsr_st *st, const char *name, avsr_st_tensor *out)
{
    for (int i = 0; i < st->n; i++) {
        if (strcmp(st->t[i].name, name) == 0) {
            if (out)
                *out = st->t[i];
            return 0;
        }
    }
    return -1;
}

const char *avsr_st_meta(const avsr_st *st, const char *key)
{
    for (int i = 0; i < st->nm; i++)
        if (strcmp(st->m[i].key, key) == 0)
            return st->m[i].value;
    return NULL;
}

int avsr_st_meta_count(const avsr_st *st) { return st->nm; }

void avsr_st_meta_at(const avsr_st *st, int i, const char **key, const char **value)
{
    *key = st->m[i].key;
    *value = st->m[i].value;
}

int avsr_st_read_f32(const avsr_st *st, const char *name, int ndim, const int64_t *shape,
                     float *dst, avsr_error *err)
{
    avsr_st_tensor t;
    if (avsr_st_find(st, name, &t) < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "tensor '%s' not found", name);
    bool same = t.ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t.shape[i] == shape[i];
    if (!same) {
        char a[128] = "[", b[128] = "[";
        for (int i = 0; i < t.ndim; i++)
            snprintf(a + strlen(a), sizeof a - strlen(a), i ? ", %lld" : "%lld",
                     (long long)t.shape[i]);
        for (int i = 0; i < ndim; i++)
            snprintf(b + strlen(b), sizeof b - strlen(b), i ? ", %lld" : "%lld",
                     (long long)shape[i]);
        return avsr_error_set(err, AVSR_ERR_INVALID, "tensor '%s' has shape %s], expected %s]",
                              name, a, b);
    }
    const unsigned char *p = t.data;
    for (int64_t i = 0; i < t.numel; i++) {
        float v;
        switch (t.dtype) {
        case AVSR_F32: memcpy(&v, p + 4 * i, 4); break;
        case AVSR_F64: { double d; memcpy(&d, p + 8 * i, 8); v = (float)d; break; }
        case AVSR_F16: { unsigned short h; memcpy(&h, p + 2 * i, 2); v = avsr_f16_to_f32(h); break; }
        case AVSR_BF16: { unsigned short h; memcpy(&h, p + 2 * i, 2); v = avsr_bf16_to_f32(h); break; }
        case AVSR_I64: { int64_t x; memcpy(&x, p + 8 * i, 8); v = (float)x; break; }
        case AVSR_I32: { int32_t x; memcpy(&x, p + 4 * i, 4); v = (float)x; break; }
        case AVSR_I16: { int16_t x; memcpy(&x, p + 2 * i, 2); v = (float)x; break; }
        case AVSR_I8: v = (float)(int8_t)p[i]; break;
        case AVSR_U8: case AVSR_BOOL: v = (float)p[i]; break;
        default: return avsr_error_set(err, AVSR_ERR_INVALID, "tensor '%s': dtype %s", name,
                                       avsr_dtype_name(t.dtype));
        }
        dst[i] = v;
    }
    return 0;
}

/* ---- writer ------------------------------------------------------------- */

struct wtensor {
    char *name;
    avsr_dtype dtype;
    int ndim;
    int64_t shape[AVSR_MAX_DIMS];
    const void *data;
    size_t nbytes;
};

struct avsr_st_writer {
    struct wtensor *t;
    int n, cap;
    json_t *meta;
};

avsr_st_writer *avsr_st_writer_create(void)
{
    avsr_st_writer *w = calloc(1, sizeof *w);
    if (w && !(w->meta = json_object())) {
        free(w);
        return NULL;
    }
    return w;
}

void avsr_st_writer_destroy(avsr_st_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++)
        free(w->t[i].name);
    free(w->t);
    json_decref(w->meta);
    free(w);
}

int avsr_st_writer_add(avsr_st_writer *w, const char *name, avsr_dtype dtype, int ndim,
                       const int64_t *shape, const void *data, avsr_error *err)
{
    if (strcmp(name, "__metadata__") == 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "safetensors: reserved tensor name '%s'",
                              name);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return avsr_error_set(err, AVSR_ERR_INVALID, "safetensors: duplicate tensor '%s'",
                                  name);
    if ((unsigned)dtype >= AVSR_DTYPE_COUNT)
        return avsr_error_set(err, AVSR_ERR_INVALID, "safetensors: tensor '%s': unknown dtype %d",
                              name, (int)dtype);
    int64_t numel = avsr_shape_numel(ndim, shape);
    if (numel < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "safetensors: tensor '%s': bad shape", name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        struct wtensor *t = realloc(w->t, sizeof *t * (size_t)cap);
        if (!t)
            return AVSR_NOMEM(err, sizeof *t * (size_t)cap);
        w->t = t;
        w->cap = cap;
    }
    struct wtensor *t = &w->t[w->n];
    t->name = strdup(name);
    if (!t->name)
        return AVSR_NOMEM(err, strlen(name));
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    t->data = data;
    t->nbytes = (size_t)numel * avsr_dtype_size(dtype);
    w->n++;
    return 0;
}

int avsr_st_writer_meta(avsr_st_writer *w, const char *key, const char *value, avsr_error *err)
{
    if (json_object_set_new(w->meta, key, json_string(value)) != 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "safetensors: metadata '%s' is not valid UTF-8", key);
    return 0;
}

int avsr_st_writer_write(avsr_st_writer *w, const char *path, avsr_error *err)
{
    json_t *root = json_object();
    char *hdr = NULL;
    avsr_afile af = {0};
    int rc = -1;
    if (!root)
        return AVSR_NOMEM(err, 64);
    if (json_object_size(w->meta))
        json_object_set(root, "__metadata__", w->meta);
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        struct wtensor *t = &w->t[i];
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++)
            json_array_append_new(shape, json_integer(t->shape[d]));
        json_t *e = json_pack("{s:s, s:o, s:[I, I]}", "dtype", avsr_dtype_name(t->dtype), "shape",
                              shape, "data_offsets", (json_int_t)off,
                              (json_int_t)(off + t->nbytes));
        if (!e || json_object_set_new(root, t->name, e) != 0) {
            avsr_error_set(err, AVSR_ERR_INVALID, "safetensors: cannot encode tensor '%s'",
                           t->name);
            goto out;
        }
        off += t->nbytes;
    }
    hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!hdr) {
        AVSR_NOMEM(err, 0);
        goto out;
    }
    size_t hl = strlen(hdr);
    size_t padded = (hl + 7) & ~(size_t)7; /* keep the data 8-byte aligned */
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    if (avsr_afile_open(&af, path, err) < 0)
        goto out;
    static const char spaces[8] = "        ";
    if (avsr_afile_write(&af, len8, 8, err) < 0 || avsr_afile_write(&af, hdr, hl, err) < 0 ||
        avsr_afile_write(&af, spaces, padded - hl, err) < 0)
        goto abort;
    for (int i = 0; i < w->n; i++)
        if (avsr_afile_write(&af, w->t[i].data, w->t[i].nbytes, err) < 0)
            goto abort;
    rc = avsr_afile_commit(&af, err);
    goto out;
abort:
    avsr_afile_abort(&af);
out:
    free(hdr);
    json_decref(root);
    return rc;
}
