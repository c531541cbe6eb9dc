/* params: flat parameter, gradient and moment buffers (see params.h). */
#include "params.h"

#include "rng.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#define PARAM_ALIGN_FLOATS 16 /* 64 bytes */

struct entry {
    char *name;
    avsr_tensor *t; /* heap: pointers handed out stay valid */
    int64_t offset; /* floats into the flat buffers; -1 for buffers */
    bool buffer;
    avsr_init_kind init;
    float init_a;
};

struct avsr_params {
    struct entry *e;
    int n, cap;
    int nparams;
    bool final;
    int64_t flat;       /* floats */
    float *data, *grad, *moment[2];
};

avsr_params *avsr_params_create(void)
{
    return calloc(1, sizeof(avsr_params));
}

void avsr_params_destroy(avsr_params *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++) {
        free(p->e[i].name);
        if (p->e[i].buffer)
            free(p->e[i].t->data);
        free(p->e[i].t);
    }
    free(p->e);
    free(p->data);
    free(p->grad);
    free(p->moment[0]);
    free(p->moment[1]);
    free(p);
}

static avsr_tensor *add_entry(avsr_params *p, const char *name, avsr_dtype dtype, int ndim,
                              const int64_t *shape, bool buffer, avsr_error *err)
{
    if (p->final) {
        avsr_error_set(err, AVSR_ERR_INVALID, "params: cannot add '%s' after finalize", name);
        return NULL;
    }
    int64_t numel = avsr_shape_numel(ndim, shape);
    if (numel < 0) {
        avsr_error_set(err, AVSR_ERR_INVALID, "params: '%s' has an invalid shape", name);
        return NULL;
    }
    for (int i = 0; i < p->n; i++) {
        if (strcmp(p->e[i].name, name) == 0) {
            avsr_error_set(err, AVSR_ERR_INVALID, "params: duplicate name '%s'", name);
            return NULL;
        }
    }
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        struct entry *e = realloc(p->e, sizeof *e * (size_t)cap);
        if (!e) {
            AVSR_NOMEM(err, sizeof *e * (size_t)cap);
            return NULL;
        }
        p->e = e;
        p->cap = cap;
    }
    struct entry *e = &p->e[p->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    e->t = calloc(1, sizeof *e->t);
    if (!e->name || !e->t) {
        free(e->name);
        free(e->t);
        AVSR_NOMEM(err, strlen(name) + sizeof *e->t);
        return NULL;
    }
    e->buffer = buffer;
    e->offset = -1;
    e->t->dtype = dtype;
    e->t->device = AVSR_DEV_CPU;
    e->t->ndim = ndim;
    memcpy(e->t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    e->t->numel = numel;
    e->t->name = e->name;
    e->t->flags = buffer ? 0 : (AVSR_T_PARAM | AVSR_T_REQUIRES_GRAD);
    p->n++;
    if (!buffer)
        p->nparams++;
    return e->t;
}

avsr_tensor *avsr_params_add(avsr_params *p, const char *name, int ndim, const int64_t *shape,
                             avsr_error *err)
{
    return add_entry(p, name, AVSR_F32, ndim, shape, false, err);
}

avsr_tensor *avsr_params_add_buffer(avsr_params *p, const char *name, avsr_dtype dtype, int ndim,
                                    const int64_t *shape, avsr_error *err)
{
    return add_entry(p, name, dtype, ndim, shape, true, err);
}

int avsr_params_finalize(avsr_params *p, avsr_error *err)
{
    if (p->final)
        return 0;
    /* Parameters first (registration order), then buffers: stable sort. */
    struct entry *sorted = malloc(sizeof *sorted * (size_t)(p->n ? p->n : 1));
    if (!sorted)
        return AVSR_NOMEM(err, sizeof *sorted * (size_t)p->n);
    int k = 0;
    for (int i = 0; i < p->n; i++)
        if (!p->e[i].buffer)
            sorted[k++] = p->e[i];
    for (int i = 0; i < p->n; i++)
        if (p->e[i].buffer)
            sorted[k++] = p->e[i];
    memcpy(p->e, sorted, sizeof *sorted * (size_t)p->n);
    free(sorted);

    int64_t off = 0;
    for (int i = 0; i < p->n; i++) {
        struct entry *e = &p->e[i];
        e->t->name = e->name;
        if (e->buffer)
            continue;
        e->offset = off;
        off += (e->t->numel + PARAM_ALIGN_FLOATS - 1) / PARAM_ALIGN_FLOATS * PARAM_ALIGN_FLOATS;
    }
    p->flat = off;
    size_t bytes = (size_t)(off ? off : PARAM_ALIGN_FLOATS) * sizeof(float);
    p->data = aligned_alloc(64, bytes);
    p->grad = aligned_alloc(64, bytes);
    if (!p->data || !p->grad)
        return AVSR_NOMEM(err, 2 * bytes);
    memset(p->data, 0, bytes);
    memset(p->grad, 0, bytes);
    for (int i = 0; i < p->n; i++) {
        struct entry *e = &p->e[i];
        if (e->buffer) {
            size_t b = (size_t)e->t->numel * avsr_dtype_size(e->t->dtype);
            e->t->data = aligned_alloc(64, (b + 63) & ~(size_t)63);
            if (!e->t->data && b)
                return AVSR_NOMEM(err, b);
            if (b)
                memset(e->t->data, 0, b);
        } else {
            e->t->data = p->data + e->offset;
            e->t->grad = p->grad + e->offset;
        }
    }
    p->final = true;
    return 0;
}

int avsr_params_count(const avsr_params *p) { return p->n; }
int avsr_params_count_trainable(const avsr_params *p) { return p->nparams; }
avsr_tensor *avsr_params_at(const avsr_params *p, int i) { return p->e[i].t; }
bool avsr_params_is_buffer(const avsr_params *p, int i) { return p->e[i].buffer; }
int64_t avsr_params_offset(const avsr_params *p, int i) { return p->e[i].offset; }

avsr_tensor *avsr_params_find(const avsr_params *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->e[i].name, name) == 0)
            return p->e[i].t;
    return NULL;
}

int64_t avsr_params_flat_size(const avsr_params *p) { return p->flat; }
float *avsr_params_data(avsr_params *p) { return p->data; }
float *avsr_params_grad(avsr_params *p) { return p->grad; }

float *avsr_params_moment(avsr_params *p, int k, avsr_error *err)
{
    if (k < 0 || k > 1) {
        avsr_error_set(err, AVSR_ERR_INVALID, "params: moment %d (0 or 1)", k);
        return NULL;
    }
    if (!p->moment[k]) {
        size_t bytes = (size_t)(p->flat ? p->flat : PARAM_ALIGN_FLOATS) * sizeof(float);
        p->moment[k] = aligned_alloc(64, bytes);
        if (!p->moment[k]) {
            AVSR_NOMEM(err, bytes);
            return NULL;
        }
        memset(p->moment[k], 0, bytes);
    }
    return p->moment[k];
}

int64_t avsr_params_numel(const avsr_params *p)
{
    int64_t n = 0;
    for (int i = 0; i < p->n; i++)
        if (!p->e[i].buffer)
            n += p->e[i].t->numel;
    return n;
}

int64_t avsr_params_numel_trainable(const avsr_params *p)
{
    int64_t n = 0;
    for (int i = 0; i < p->n; i++)
        if (!p->e[i].buffer && (p->e[i].t->flags & AVSR_T_REQUIRES_GRAD))
            n += p->e[i].t->numel;
    return n;
}

int avsr_params_set_requires_grad(avsr_params *p, const char *pattern, bool on)
{
    int matched = 0;
    for (int i = 0; i < p->n; i++) {
        struct entry *e = &p->e[i];
        if (e->buffer || fnmatch(pattern, e->name, 0) != 0)
            continue;
        matched++;
        if (on)
            e->t->flags |= AVSR_T_REQUIRES_GRAD;
        else
            e->t->flags &= ~(unsigned)AVSR_T_REQUIRES_GRAD;
    }
    return matched;
}

void avsr_params_zero_grad(avsr_params *p)
{
    if (p->grad)
        memset(p->grad, 0, sizeof(float) * (size_t)p->flat);
}

int avsr_params_set_init(avsr_params *p, const avsr_tensor *t, avsr_init_kind kind, float a,
                         avsr_error *err)
{
    for (int i = 0; i < p->n; i++) {
        if (p->e[i].t == t) {
            p->e[i].init = kind;
            p->e[i].init_a = a;
            return 0;
        }
    }
    return avsr_error_set(err, AVSR_ERR_INVALID, "params: set_init on a tensor not in this store");
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

int avsr_params_init(avsr_params *p, uint64_t seed, avsr_error *err)
{
    if (!p->final)
        return avsr_error_set(err, AVSR_ERR_INVALID, "params: init before finalize");
    for (int i = 0; i < p->n; i++) {
        struct entry *e = &p->e[i];
        avsr_tensor *t = e->t;
        if (t->dtype != AVSR_F32) {
            memset(t->data, 0, (size_t)t->numel * avsr_dtype_size(t->dtype));
            continue;
        }
        float *d = t->data;
        avsr_rng r;
        avsr_rng_init(&r, seed, 0, name_hash(e->name), AVSR_RNG_INIT);
        for (int64_t k = 0; k < t->numel; k++) {
            switch (e->init) {
            case AVSR_INIT_ZEROS: d[k] = 0.0f; break;
            case AVSR_INIT_ONES: d[k] = 1.0f; break;
            case AVSR_INIT_CONST: d[k] = e->init_a; break;
            case AVSR_INIT_UNIFORM: d[k] = e->init_a * (2.0f * avsr_rng_uniform(&r) - 1.0f); break;
            case AVSR_INIT_NORMAL: d[k] = e->init_a * avsr_rng_normal(&r); break;
            }
        }
    }
    return 0;
}
