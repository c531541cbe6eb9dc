/* op_basic: reshape, full sums and constant dot product (see op_basic.h). */
#include "op_basic.h"

#include <string.h>

#include "ctx_int.h"
#include "tape.h"

avsr_tensor *avsr_op_reshape(avsr_ctx *ctx, avsr_tensor *x, int ndim, const int64_t *shape)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    int64_t s[AVSR_MAX_DIMS];
    int infer = -1;
    int64_t known = 1;
    if (ndim < 0 || ndim > AVSR_MAX_DIMS)
        return avsr_ctx_fail(ctx, "reshape: %d dimensions (max %d)", ndim, AVSR_MAX_DIMS);
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1) {
            if (infer >= 0)
                return avsr_ctx_fail(ctx, "reshape: more than one -1 dimension");
            infer = i;
        } else if (s[i] < 0) {
            return avsr_ctx_fail(ctx, "reshape: negative dimension %lld", (long long)s[i]);
        } else {
            known *= s[i];
        }
    }
    if (infer >= 0) {
        if (known == 0 || x->numel % known)
            return avsr_ctx_fail(ctx, "reshape: cannot infer -1 for %lld elements",
                                 (long long)x->numel);
        s[infer] = x->numel / known;
        known *= s[infer];
    }
    if (known != x->numel) {
        char b[96];
        return avsr_ctx_fail(ctx, "reshape: %s has %lld elements, new shape has %lld",
                             avsr_shape_str(x, b, sizeof b), (long long)x->numel,
                             (long long)known);
    }
    avsr_tensor *y = avsr_tensor_wrap(ctx, x->dtype, ndim, s, x->data);
    if (!y)
        return NULL;
    if (avsr_ctx_needs_grad(ctx, 1, &x)) {
        /* the view shares the gradient buffer: no tape entry needed */
        if (!avsr_tensor_grad(ctx, x))
            return NULL;
        y->grad = x->grad;
        y->flags |= AVSR_T_REQUIRES_GRAD;
    }
    return y;
}

struct reduce_saved {
    avsr_tensor *x, *y;
    const float *w; /* NULL: plain sum */
    float scale;
};

static void reduce_backward(avsr_ctx *ctx, void *sv)
{
    struct reduce_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x))
        return;
    float *gx = avsr_tensor_grad(ctx, s->x);
    if (!gx)
        return;
    float gy = s->y->grad[0] * s->scale;
    int64_t n = s->x->numel;
    const float *w = s->w;
    if (w) {
#pragma omp parallel for schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; i++)
            gx[i] += gy * w[i];
    } else {
#pragma omp parallel for schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; i++)
            gx[i] += gy;
    }
}

static avsr_tensor *reduce(avsr_ctx *ctx, avsr_tensor *x, const float *w, float scale,
                           const char *name)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    if (x->dtype != AVSR_F32)
        return avsr_ctx_fail(ctx, "%s: expects f32, got %s", name, avsr_dtype_name(x->dtype));
    int64_t one = 1;
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, 1, &one);
    if (!y)
        return NULL;
    const float *xd = avsr_f32(x);
    int64_t n = x->numel;
    double acc = 0.0;
    if (w) {
#pragma omp parallel for reduction(+ : acc) schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; i++)
            acc += (double)xd[i] * w[i];
    } else {
#pragma omp parallel for reduction(+ : acc) schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; i++)
            acc += (double)xd[i];
    }
    avsr_f32(y)[0] = (float)(acc * scale);
    if (avsr_ctx_needs_grad(ctx, 1, &x)) {
        struct reduce_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct reduce_saved){x, y, w, scale};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, reduce_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

avsr_tensor *avsr_op_sum_all(avsr_ctx *ctx, avsr_tensor *x)
{
    return reduce(ctx, x, NULL, 1.0f, "sum_all");
}

avsr_tensor *avsr_op_mean_all(avsr_ctx *ctx, avsr_tensor *x)
{
    if (!x)
        return NULL;
    return reduce(ctx, x, NULL, x->numel ? 1.0f / (float)x->numel : 0.0f, "mean_all");
}

avsr_tensor *avsr_op_dot_const(avsr_ctx *ctx, avsr_tensor *x, const float *w)
{
    return reduce(ctx, x, w, 1.0f, "dot_const");
}
