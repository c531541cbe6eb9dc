/* tensor: the n-dimensional array every op takes and returns.
 *
 * A tensor is a small descriptor (dtype, device, shape, data pointer, grad
 * pointer, flags); it is deliberately transparent, like DLPack's DLTensor or
 * ggml's ggml_tensor, because every op reads its shape. Data are always
 * contiguous and row-major (the last dimension varies fastest): ops that
 * change the order (permute, transpose) copy.
 *
 * Lifetimes: activations and their descriptors live in the context's arena
 * and die at avsr_ctx_reset(); parameters live in a parameter store
 * (params.h); tensors made with avsr_tensor_create() are owned by the caller
 * and freed with avsr_tensor_free(). */
#ifndef AVSR_TENSOR_H
#define AVSR_TENSOR_H

#include <stdbool.h>
#include <stdint.h>

#include "dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AVSR_MAX_DIMS 6

typedef enum avsr_device { AVSR_DEV_CPU = 0, AVSR_DEV_CUDA = 1 } avsr_device;

enum avsr_tensor_flags {
    AVSR_T_REQUIRES_GRAD = 1u << 0, /* backward writes .grad */
    AVSR_T_PARAM = 1u << 1,         /* a view into a parameter store */
    AVSR_T_OWNED = 1u << 2,         /* created by avsr_tensor_create (heap) */
};

typedef struct avsr_tensor {
    avsr_dtype dtype;
    avsr_device device;
    int ndim;
    int64_t shape[AVSR_MAX_DIMS];
    int64_t numel;
    void *data;       /* numel elements, contiguous */
    float *grad;      /* numel f32, same layout; NULL until first written */
    unsigned flags;
    const char *name; /* parameter name, or NULL */
} avsr_tensor;

static inline float *avsr_f32(const avsr_tensor *t) { return (float *)t->data; }
static inline bool avsr_tensor_requires_grad(const avsr_tensor *t)
{
    return t && (t->flags & AVSR_T_REQUIRES_GRAD);
}

/* Number of elements of a shape; -1 if a dimension is negative or the
 * product overflows. */
int64_t avsr_shape_numel(int ndim, const int64_t *shape);
/* True if both tensors have the same ndim and dimensions. */
bool avsr_shape_equal(const avsr_tensor *a, const avsr_tensor *b);
/* "[2, 3, 5]" into buf (for error messages); returns buf. */
const char *avsr_shape_str(const avsr_tensor *t, char *buf, int bufsize);

/* Heap tensors owned by the caller (inputs, fixtures, persistent state).
 * with_grad allocates a zeroed grad buffer and sets REQUIRES_GRAD. */
avsr_tensor *avsr_tensor_create(avsr_dtype dtype, int ndim, const int64_t *shape,
                                bool with_grad);
void avsr_tensor_free(avsr_tensor *t);

#ifdef __cplusplus
}
#endif

#endif
