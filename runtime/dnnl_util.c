/* dnnl_util: oneDNN check macro and primitive cache (see dnnl_util.h). */
#include "dnnl_util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *avsr_dnnl_status_str(dnnl_status_t st)
{
    switch (st) {
    case dnnl_success: return "success";
    case dnnl_out_of_memory: return "out of memory";
    case dnnl_invalid_arguments: return "invalid arguments";
    case dnnl_unimplemented: return "unimplemented (no implementation for these shapes/attributes)";
    case dnnl_iterator_ends: return "iterator ends";
    case dnnl_runtime_error: return "runtime error";
    case dnnl_not_required: return "not required";
    default: return "unknown status";
    }
}

int avsr_dnnl_check(dnnl_status_t st, const char *call, const char *file, int line,
                    avsr_error *err)
{
    if (st == dnnl_success)
        return 0;
    return avsr_error_set(err, st == dnnl_out_of_memory ? AVSR_ERR_NOMEM : AVSR_ERR_BACKEND,
                          "%s:%d: oneDNN call %s failed: %s", file, line, call,
                          avsr_dnnl_status_str(st));
}

struct cache_entry {
    uint64_t hash;
    size_t keylen;
    void *key;
    avsr_dnnl_prim p;
    struct cache_entry *next;
};

#define CACHE_BUCKETS 1024

struct avsr_dnnl_cache {
    struct cache_entry *bucket[CACHE_BUCKETS];
    int size;
};

static uint64_t fnv1a(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

struct avsr_dnnl_cache *avsr_dnnl_cache_create(void)
{
    return calloc(1, sizeof(struct avsr_dnnl_cache));
}

static void prim_release(avsr_dnnl_prim *p)
{
    for (int i = 0; i < p->nargs; i++)
        if (p->mem[i])
            dnnl_memory_destroy(p->mem[i]);
    if (p->prim)
        dnnl_primitive_destroy(p->prim);
    if (p->pd)
        dnnl_primitive_desc_destroy(p->pd);
    free(p->user);
}

void avsr_dnnl_cache_destroy(struct avsr_dnnl_cache *c)
{
    if (!c)
        return;
    for (int b = 0; b < CACHE_BUCKETS; b++) {
        struct cache_entry *e = c->bucket[b];
        while (e) {
            struct cache_entry *n = e->next;
            prim_release(&e->p);
            free(e->key);
            free(e);
            e = n;
        }
    }
    free(c);
}

int avsr_dnnl_cache_size(const avsr_ctx *ctx)
{
    return ctx->dnnl_cache->size;
}

avsr_dnnl_prim *avsr_dnnl_find(avsr_ctx *ctx, const void *key, size_t keylen)
{
    uint64_t h = fnv1a(key, keylen);
    for (struct cache_entry *e = ctx->dnnl_cache->bucket[h % CACHE_BUCKETS]; e; e = e->next)
        if (e->hash == h && e->keylen == keylen && memcmp(e->key, key, keylen) == 0)
            return &e->p;
    return NULL;
}

avsr_dnnl_prim *avsr_dnnl_insert(avsr_ctx *ctx, const void *key, size_t keylen,
                                 dnnl_primitive_desc_t pd, int nargs, const int *args)
{
    avsr_error *err = &ctx->err;
    if (nargs > AVSR_DNNL_MAX_ARGS) {
        dnnl_primitive_desc_destroy(pd);
        avsr_ctx_fail(ctx, "dnnl cache: %d arguments (max %d)", nargs, AVSR_DNNL_MAX_ARGS);
        return NULL;
    }
    struct cache_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->key = malloc(keylen ? keylen : 1))) {
        free(e);
        dnnl_primitive_desc_destroy(pd);
        AVSR_NOMEM(err, keylen + sizeof *e);
        return NULL;
    }
    memcpy(e->key, key, keylen);
    e->keylen = keylen;
    e->hash = fnv1a(key, keylen);
    e->p.pd = pd;
    e->p.nargs = nargs;
    if (AVSR_DNNL(err, dnnl_primitive_create(&e->p.prim, pd)) < 0)
        goto fail;
    for (int i = 0; i < nargs; i++) {
        e->p.arg[i] = args[i];
        const dnnl_memory_desc_t *md =
            dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, args[i]);
        if (!md) {
            avsr_ctx_fail(ctx, "dnnl cache: primitive has no argument %d", args[i]);
            goto fail;
        }
        if (AVSR_DNNL(err, dnnl_memory_create(&e->p.mem[i], md, ctx->engine, DNNL_MEMORY_NONE)) < 0)
            goto fail;
    }
    struct avsr_dnnl_cache *c = ctx->dnnl_cache;
    e->next = c->bucket[e->hash % CACHE_BUCKETS];
    c->bucket[e->hash % CACHE_BUCKETS] = e;
    c->size++;
    return &e->p;
fail:
    prim_release(&e->p);
    free(e->key);
    free(e);
    return NULL;
}

int avsr_dnnl_exec(avsr_ctx *ctx, avsr_dnnl_prim *p, void *const *handles)
{
    dnnl_exec_arg_t args[AVSR_DNNL_MAX_ARGS];
    for (int i = 0; i < p->nargs; i++) {
        if (AVSR_DNNL(&ctx->err, dnnl_memory_set_data_handle_v2(p->mem[i], handles[i], ctx->stream)) < 0)
            return -1;
        args[i].arg = p->arg[i];
        args[i].memory = p->mem[i];
    }
    if (AVSR_DNNL(&ctx->err, dnnl_primitive_execute(p->prim, ctx->stream, p->nargs, args)) < 0)
        return -1;
    if (AVSR_DNNL(&ctx->err, dnnl_stream_wait(ctx->stream)) < 0)
        return -1;
    return 0;
}

int avsr_dnnl_md_plain(avsr_ctx *ctx, dnnl_memory_desc_t *md, int ndim, const int64_t *dims)
{
    dnnl_dims_t d, strides;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        d[i] = dims[i];
        strides[i] = s;
        s *= dims[i] > 0 ? dims[i] : 1;
    }
    return AVSR_DNNL(&ctx->err, dnnl_memory_desc_init_by_strides(md, ndim, d, dnnl_f32, strides));
}

const dnnl_memory_desc_t *avsr_dnnl_arg_md(const avsr_dnnl_prim *p, int arg)
{
    return dnnl_primitive_desc_query_md(p->pd, dnnl_query_exec_arg_md, arg);
}

size_t avsr_dnnl_arg_bytes(const avsr_dnnl_prim *p, int arg)
{
    const dnnl_memory_desc_t *md = avsr_dnnl_arg_md(p, arg);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}
