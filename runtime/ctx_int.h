/* ctx_int: the context's insides, for runtime op and backend code only.
 * Nothing outside runtime/ includes this header. */
#ifndef AVSR_CTX_INT_H
#define AVSR_CTX_INT_H

#include <oneapi/dnnl/dnnl.h>

#include "arena.h"
#include "ctx.h"

struct avsr_tape;
struct avsr_dnnl_cache;

struct avsr_ctx {
    avsr_error err;
    bool grad_enabled;
    bool training;
    int threads;
    avsr_device device;
    avsr_arena *arena;
    struct avsr_tape *tape;
    /* oneDNN CPU engine and stream, and the primitive cache. */
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    struct avsr_dnnl_cache *dnnl_cache;
    /* random-stream keys of the current batch */
    uint64_t seed, epoch;
    int batch_keys;             /* entries in sample_ids */
    uint64_t *sample_ids;
    int sample_ids_cap;
    uint64_t batch_id;     /* key of choices shared by a whole batch */
    double flops;          /* floating-point operations counted so far */
    /* BatchNorm cross-rank sum */
    avsr_allreduce_fn bn_sync;
    void *bn_sync_user;
};


/* True if grad mode is on and any of the n tensors requires grad. */
bool avsr_ctx_needs_grad(const avsr_ctx *ctx, int n, avsr_tensor *const *ts);


#endif
