/* dnnl_util: the oneDNN side of the CPU backend, for runtime op code.
 *
 * - AVSR_DNNL(err, call): the one check macro for oneDNN calls; on failure it
 *   records "file:line: call failed: status" and evaluates to -1.
 * - A primitive cache keyed by the bytes of an op's descriptor (kind, shapes,
 *   attributes): creating a primitive descriptor costs tens of microseconds,
 *   a cache hit a hash lookup. Each cached entry keeps one memory object per
 *   argument whose data handle is swapped at execution, so a cached
 *   execution allocates nothing. */
#ifndef AVSR_DNNL_UTIL_H
#define AVSR_DNNL_UTIL_H

#include <oneapi/dnnl/dnnl.h>
#include <stddef.h>

#include "ctx_int.h"

int avsr_dnnl_check(dnnl_status_t st, const char *call, const char *file, int line,
                    avsr_error *err);
#define AVSR_DNNL(err, call) avsr_dnnl_check((call), #call, __FILE__, __LINE__, (err))

const char *avsr_dnnl_status_str(dnnl_status_t st);

#define AVSR_DNNL_MAX_ARGS 12

typedef struct avsr_dnnl_prim {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    int nargs;
    int arg[AVSR_DNNL_MAX_ARGS];            /* DNNL_ARG_SRC, ... */
    dnnl_memory_t mem[AVSR_DNNL_MAX_ARGS];  /* memory with the primitive's md */
    void *user;                             /* op-specific extra state (freed with free()) */
} avsr_dnnl_prim;

/* Look up a primitive by key; NULL if absent. */
avsr_dnnl_prim *avsr_dnnl_find(avsr_ctx *ctx, const void *key, size_t keylen);

/* Insert: takes ownership of pd, creates the primitive and one memory object
 * for each listed argument (using the descriptor the pd reports for it).
 * Returns the entry, or NULL with the context's error set. */
avsr_dnnl_prim *avsr_dnnl_insert(avsr_ctx *ctx, const void *key, size_t keylen,
                                 dnnl_primitive_desc_t pd, int nargs, const int *args);

/* Execute with the given data pointers (in the order of the args passed at
 * insert time) and wait for completion. Returns 0 or -1. */
int avsr_dnnl_exec(avsr_ctx *ctx, avsr_dnnl_prim *p, void *const *handles);

/* Plain row-major memory descriptor for an f32 tensor of ndim dims. */
int avsr_dnnl_md_plain(avsr_ctx *ctx, dnnl_memory_desc_t *md, int ndim, const int64_t *dims);

/* Size in bytes of what a pd wants for an argument (for reorders into blocked
 * layouts); 0 if the argument is unknown. */
size_t avsr_dnnl_arg_bytes(const avsr_dnnl_prim *p, int arg);
const dnnl_memory_desc_t *avsr_dnnl_arg_md(const avsr_dnnl_prim *p, int arg);

/* Create the cache (called by the context) and free it. */
struct avsr_dnnl_cache *avsr_dnnl_cache_create(void);
void avsr_dnnl_cache_destroy(struct avsr_dnnl_cache *c);
/* Entries in the cache (tests, statistics). */
int avsr_dnnl_cache_size(const avsr_ctx *ctx);

/* A key builder: ops append integers describing themselves. */
typedef struct avsr_dnnl_key {
    int64_t v[64];
    int n;
} avsr_dnnl_key;
static inline void avsr_dnnl_key_init(avsr_dnnl_key *k, int64_t op) { k->n = 0; k->v[k->n++] = op; }
static inline void avsr_dnnl_key_add(avsr_dnnl_key *k, int64_t x) { if (k->n < 64) k->v[k->n++] = x; }
static inline size_t avsr_dnnl_key_bytes(const avsr_dnnl_key *k) { return sizeof(int64_t) * (size_t)k->n; }

#endif
