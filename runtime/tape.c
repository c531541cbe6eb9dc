/* tape: recording and replaying backward functions (see tape.h). */
#include "tape.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ctx_int.h"

struct entry {
    avsr_backward_fn fn;
    avsr_tensor *out;
    void *saved;
};

struct avsr_tape {
    struct entry *e;
    int n, cap;
};

struct avsr_tape *avsr_tape_create(void)
{
    return calloc(1, sizeof(struct avsr_tape));
}

void avsr_tape_reset(struct avsr_tape *t)
{
    t->n = 0;
}

void avsr_tape_destroy(struct avsr_tape *t)
{
    if (t) {
        free(t->e);
        free(t);
    }
}

int avsr_tape_record(avsr_ctx *ctx, avsr_backward_fn fn, avsr_tensor *out, void *saved)
{
    struct avsr_tape *t = ctx->tape;
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 256;
        struct entry *e = realloc(t->e, sizeof *e * (size_t)cap);
        if (!e) {
            AVSR_NOMEM(&ctx->err, sizeof *e * (size_t)cap);
            return -1;
        }
        t->e = e;
        t->cap = cap;
    }
    t->e[t->n++] = (struct entry){fn, out, saved};
    return 0;
}

void *avsr_tape_saved(avsr_ctx *ctx, size_t bytes)
{
    void *p = avsr_arena_calloc(ctx->arena, bytes);
    if (!p)
        AVSR_NOMEM(&ctx->err, bytes);
    return p;
}

int avsr_tape_size(const avsr_ctx *ctx)
{
    return ctx->tape->n;
}

int avsr_backward(avsr_ctx *ctx, avsr_tensor *loss, const float *seed)
{
    if (avsr_ctx_failed(ctx))
        return -1;
    if (!loss) {
        avsr_ctx_fail(ctx, "backward: loss is NULL");
        return -1;
    }
    if (!avsr_tensor_requires_grad(loss)) {
        avsr_ctx_fail(ctx, "backward: the loss does not depend on anything that requires grad");
        return -1;
    }
    if (!seed && loss->numel != 1) {
        avsr_ctx_fail(ctx, "backward: loss has %lld elements; a seed gradient is needed",
                      (long long)loss->numel);
        return -1;
    }
    int64_t n = loss->numel;
    bool fresh = !loss->grad && !(loss->flags & AVSR_T_OWNED);
    if (seed && fresh) {
        /* The loss has no gradient yet: it IS the seed. Backward functions
         * only read their output's gradient (they write their inputs'), so
         * the caller's buffer is used in place, never written. */
        loss->grad = (float *)seed;
    } else {
        bool accumulate;
        float *g = avsr_tensor_grad_out(ctx, loss, &accumulate);
        if (!g)
            return -1;
        if (seed) {
#pragma omp parallel for schedule(static) if (n > 32768)
            for (int64_t i = 0; i < n; i++)
                g[i] += seed[i];
        } else if (!accumulate) {
            g[0] = 1.0f;
        } else {
            g[0] += 1.0f;
        }
    }
    struct avsr_tape *t = ctx->tape;
    for (int i = t->n - 1; i >= 0; i--) {
        struct entry *e = &t->e[i];
        if (!e->out->grad)
            continue; /* nothing flowed into this op's output */
        e->fn(ctx, e->saved);
        if (avsr_ctx_failed(ctx))
            return -1;
    }
    return 0;
}
