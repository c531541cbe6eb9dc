/* ctx: runtime context (see ctx.h). */
#include "ctx_int.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnnl_util.h"
#include "tape.h"

avsr_ctx *avsr_ctx_create(const avsr_ctx_opts *opts, avsr_error *err)
{
    avsr_ctx_opts def = {0};
    if (!opts)
        opts = &def;
    if (opts->device != AVSR_DEV_CPU) {
        avsr_error_set(err, AVSR_ERR_UNSUPPORTED,
                       "context: only the cpu device runs ops in this build");
        return NULL;
    }
    avsr_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        AVSR_NOMEM(err, sizeof *ctx);
        return NULL;
    }
    ctx->grad_enabled = true;
    ctx->training = true;
    ctx->device = opts->device;
    if (opts->threads > 0)
        omp_set_num_threads(opts->threads);
    ctx->threads = omp_get_max_threads();
    ctx->arena = avsr_arena_create(opts->arena_bytes);
    ctx->tape = avsr_tape_create();
    ctx->dnnl_cache = avsr_dnnl_cache_create();
    if (!ctx->arena || !ctx->tape || !ctx->dnnl_cache) {
        AVSR_NOMEM(err, opts->arena_bytes);
        avsr_ctx_destroy(ctx);
        return NULL;
    }
    if (AVSR_DNNL(err, dnnl_engine_create(&ctx->engine, dnnl_cpu, 0)) < 0 ||
        AVSR_DNNL(err, dnnl_stream_create(&ctx->stream, ctx->engine, dnnl_stream_default_flags)) < 0) {
        avsr_ctx_destroy(ctx);
        return NULL;
    }
    return ctx;
}

void avsr_ctx_destroy(avsr_ctx *ctx)
{
    if (!ctx)
        return;
    avsr_dnnl_cache_destroy(ctx->dnnl_cache);
    if (ctx->stream)
        dnnl_stream_destroy(ctx->stream);
    if (ctx->engine)
        dnnl_engine_destroy(ctx->engine);
    avsr_tape_destroy(ctx->tape);
    avsr_arena_destroy(ctx->arena);
    free(ctx->sample_ids);
    free(ctx);
}

bool avsr_ctx_failed(const avsr_ctx *ctx) { return ctx->err.code != 0; }
const char *avsr_ctx_errmsg(const avsr_ctx *ctx) { return ctx->err.code ? ctx->err.msg : ""; }
avsr_error *avsr_ctx_error(avsr_ctx *ctx) { return &ctx->err; }
void avsr_ctx_clear_error(avsr_ctx *ctx) { avsr_error_clear(&ctx->err); }

int avsr_ctx_take_error(avsr_ctx *ctx, avsr_error *err)
{
    if (!ctx->err.code)
        return 0;
    avsr_error_set(err, ctx->err.code, "%s", ctx->err.msg);
    return -1;
}

void *avsr_ctx_fail(avsr_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    avsr_error_setv(&ctx->err, AVSR_ERR_INVALID, fmt, ap);
    va_end(ap);
    return NULL;
}

bool avsr_ctx_set_grad(avsr_ctx *ctx, bool enabled)
{
    bool old = ctx->grad_enabled;
    ctx->grad_enabled = enabled;
    return old;
}

bool avsr_ctx_grad_enabled(const avsr_ctx *ctx) { return ctx->grad_enabled; }

bool avsr_ctx_set_training(avsr_ctx *ctx, bool training)
{
    bool old = ctx->training;
    ctx->training = training;
    return old;
}

bool avsr_ctx_training(const avsr_ctx *ctx) { return ctx->training; }

int avsr_ctx_set_batch_keys(avsr_ctx *ctx, uint64_t seed, uint64_t epoch, int batch,
                            const uint64_t *sample_ids)
{
    ctx->seed = seed;
    ctx->epoch = epoch;
    if (batch > ctx->sample_ids_cap) {
        uint64_t *p = realloc(ctx->sample_ids, sizeof *p * (size_t)batch);
        if (!p)
            return AVSR_NOMEM(&ctx->err, sizeof *p * (size_t)batch);
        ctx->sample_ids = p;
        ctx->sample_ids_cap = batch;
    }
    ctx->batch_keys = sample_ids ? batch : 0;
    if (sample_ids && batch > 0)
        memcpy(ctx->sample_ids, sample_ids, sizeof *sample_ids * (size_t)batch);
    return 0;
}

uint64_t avsr_ctx_sample_id(const avsr_ctx *ctx, int b)
{
    return b < ctx->batch_keys ? ctx->sample_ids[b] : (uint64_t)b;
}

uint64_t avsr_ctx_seed(const avsr_ctx *ctx) { return ctx->seed; }
void avsr_ctx_set_batch_id(avsr_ctx *ctx, uint64_t id) { ctx->batch_id = id; }
void avsr_ctx_add_flops(avsr_ctx *ctx, double flops) { ctx->flops += flops; }
double avsr_ctx_flops(const avsr_ctx *ctx) { return ctx->flops; }
uint64_t avsr_ctx_batch_id(const avsr_ctx *ctx) { return ctx->batch_id; }
uint64_t avsr_ctx_epoch(const avsr_ctx *ctx) { return ctx->epoch; }

void avsr_ctx_set_bn_sync(avsr_ctx *ctx, avsr_allreduce_fn fn, void *user)
{
    ctx->bn_sync = fn;
    ctx->bn_sync_user = user;
}

void avsr_ctx_reset(avsr_ctx *ctx)
{
    avsr_tape_reset(ctx->tape);
    avsr_arena_reset(ctx->arena);
}

void *avsr_ctx_alloc(avsr_ctx *ctx, size_t bytes)
{
    void *p = avsr_arena_alloc(ctx->arena, bytes);
    if (!p)
        AVSR_NOMEM(&ctx->err, bytes);
    return p;
}

size_t avsr_ctx_arena_peak(const avsr_ctx *ctx) { return avsr_arena_peak(ctx->arena); }
size_t avsr_ctx_arena_used(const avsr_ctx *ctx) { return avsr_arena_used(ctx->arena); }
int avsr_ctx_threads(const avsr_ctx *ctx) { return ctx->threads; }

bool avsr_ctx_needs_grad(const avsr_ctx *ctx, int n, avsr_tensor *const *ts)
{
    if (!ctx->grad_enabled)
        return false;
    for (int i = 0; i < n; i++)
        if (ts[i] && (ts[i]->flags & AVSR_T_REQUIRES_GRAD))
            return true;
    return false;
}

static avsr_tensor *tensor_desc(avsr_ctx *ctx, avsr_dtype dtype, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > AVSR_MAX_DIMS)
        return avsr_ctx_fail(ctx, "tensor: %d dimensions (max %d)", ndim, AVSR_MAX_DIMS);
    int64_t n = avsr_shape_numel(ndim, shape);
    if (n < 0)
        return avsr_ctx_fail(ctx, "tensor: invalid shape");
    avsr_tensor *t = avsr_arena_alloc(ctx->arena, sizeof *t);
    if (!t) {
        AVSR_NOMEM(&ctx->err, sizeof *t);
        return NULL;
    }
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->device = ctx->device;
    t->ndim = ndim;
    if (ndim)
        memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    t->numel = n;
    return t;
}

avsr_tensor *avsr_tensor_new(avsr_ctx *ctx, avsr_dtype dtype, int ndim, const int64_t *shape)
{
    if (avsr_ctx_failed(ctx))
        return NULL;
    avsr_tensor *t = tensor_desc(ctx, dtype, ndim, shape);
    if (!t)
        return NULL;
    size_t bytes = (size_t)t->numel * avsr_dtype_size(dtype);
    t->data = avsr_arena_alloc(ctx->arena, bytes);
    if (!t->data) {
        AVSR_NOMEM(&ctx->err, bytes);
        return NULL;
    }
    return t;
}

avsr_tensor *avsr_tensor_zeros(avsr_ctx *ctx, avsr_dtype dtype, int ndim, const int64_t *shape)
{
    avsr_tensor *t = avsr_tensor_new(ctx, dtype, ndim, shape);
    if (t)
        memset(t->data, 0, (size_t)t->numel * avsr_dtype_size(dtype));
    return t;
}

avsr_tensor *avsr_tensor_wrap(avsr_ctx *ctx, avsr_dtype dtype, int ndim, const int64_t *shape,
                              void *data)
{
    if (avsr_ctx_failed(ctx))
        return NULL;
    avsr_tensor *t = tensor_desc(ctx, dtype, ndim, shape);
    if (t)
        t->data = data;
    return t;
}

float *avsr_tensor_grad(avsr_ctx *ctx, avsr_tensor *t)
{
    if (!t->grad) {
        size_t bytes = (size_t)t->numel * sizeof(float);
        /* a heap tensor outlives the step: its gradient goes on the heap too
         * (freed by avsr_tensor_free), never into the arena */
        t->grad = (t->flags & AVSR_T_OWNED) ? calloc(t->numel ? (size_t)t->numel : 1, sizeof(float))
                                            : avsr_arena_calloc(ctx->arena, bytes);
        if (!t->grad)
            AVSR_NOMEM(&ctx->err, bytes);
    }
    return t->grad;
}

float *avsr_tensor_grad_out(avsr_ctx *ctx, avsr_tensor *t, bool *accumulate)
{
    *accumulate = t->grad || (t->flags & AVSR_T_OWNED);
    if (*accumulate)
        return avsr_tensor_grad(ctx, t);
    t->grad = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(t->numel ? t->numel : 1));
    return t->grad;
}
