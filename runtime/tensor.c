/* tensor: shape helpers and heap tensors (see tensor.h). */
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t avsr_shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    if (ndim < 0 || ndim > AVSR_MAX_DIMS)
        return -1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return -1;
        if (shape[i] != 0 && n > INT64_MAX / shape[i])
            return -1;
        n *= shape[i];
    }
    return n;
}

bool avsr_shape_equal(const avsr_tensor *a, const avsr_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

const char *avsr_shape_str(const avsr_tensor *t, char *buf, int bufsize)
{
    int off = snprintf(buf, (size_t)bufsize, "[");
    for (int i = 0; i < t->ndim && off < bufsize; i++)
        off += snprintf(buf + off, (size_t)(bufsize - off), i ? ", %lld" : "%lld",
                        (long long)t->shape[i]);
    if (off < bufsize)
        snprintf(buf + off, (size_t)(bufsize - off), "]");
    return buf;
}

avsr_tensor *avsr_tensor_create(avsr_dtype dtype, int ndim, const int64_t *shape,
                                bool with_grad)
{
    int64_t n = avsr_shape_numel(ndim, shape);
    if (n < 0)
        return NULL;
    avsr_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->dtype = dtype;
    t->device = AVSR_DEV_CPU;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    t->numel = n;
    t->flags = AVSR_T_OWNED;
    size_t bytes = (size_t)n * avsr_dtype_size(dtype);
    t->data = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!t->data && bytes) {
        free(t);
        return NULL;
    }
    if (bytes)
        memset(t->data, 0, bytes);
    if (with_grad) {
        size_t gb = (size_t)n * sizeof(float);
        t->grad = aligned_alloc(64, (gb + 63) & ~(size_t)63);
        if (!t->grad && gb) {
            free(t->data);
            free(t);
            return NULL;
        }
        if (gb)
            memset(t->grad, 0, gb);
        t->flags |= AVSR_T_REQUIRES_GRAD;
    }
    return t;
}

void avsr_tensor_free(avsr_tensor *t)
{
    if (!t || !(t->flags & AVSR_T_OWNED))
        return;
    free(t->data);
    free(t->grad);
    free(t);
}
