/* params: the parameter store.
 *
 * Trainable parameters, their gradients and the optimizer's moments each
 * live in one flat f32 buffer; every parameter is a named view into it
 * ("encoder.layers.3.self_attn.linear_q.weight"), 64-byte aligned. Zeroing,
 * all-reduce, clipping, checkpointing and averaging are single passes over
 * the flat buffers. Buffers (BatchNorm running statistics, counters) are
 * named state that is saved and averaged but never trained.
 *
 * Use: add every parameter and buffer, then avsr_params_finalize() carves the
 * flat buffers (data zeroed); initialise values afterwards. Freezing is by
 * name pattern (fnmatch syntax; '*' also matches dots). */
#ifndef AVSR_PARAMS_H
#define AVSR_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_params avsr_params;

avsr_params *avsr_params_create(void);
void avsr_params_destroy(avsr_params *p);

/* Register a trainable f32 parameter. The returned tensor's data and grad
 * pointers are valid after finalize. Names must be unique. */
avsr_tensor *avsr_params_add(avsr_params *p, const char *name, int ndim, const int64_t *shape,
                             avsr_error *err);
/* Register a buffer (saved, averaged, not trained). */
avsr_tensor *avsr_params_add_buffer(avsr_params *p, const char *name, avsr_dtype dtype, int ndim,
                                    const int64_t *shape, avsr_error *err);
int avsr_params_finalize(avsr_params *p, avsr_error *err);

/* All entries (parameters first, in registration order, then buffers). */
int avsr_params_count(const avsr_params *p);
int avsr_params_count_trainable(const avsr_params *p); /* parameters only */
avsr_tensor *avsr_params_at(const avsr_params *p, int i);
bool avsr_params_is_buffer(const avsr_params *p, int i);
avsr_tensor *avsr_params_find(const avsr_params *p, const char *name);
/* Offset (in floats) of parameter i in the flat buffers; -1 for a buffer. */
int64_t avsr_params_offset(const avsr_params *p, int i);

/* The flat buffers: length avsr_params_flat_size() floats (parameters and
 * alignment padding, which stays zero). */
int64_t avsr_params_flat_size(const avsr_params *p);
float *avsr_params_data(avsr_params *p);
float *avsr_params_grad(avsr_params *p);
/* Optimizer moment k (0 or 1), allocated zeroed on first request. */
float *avsr_params_moment(avsr_params *p, int k, avsr_error *err);

/* Elements in parameters (not padding): all, and those requiring grad. */
int64_t avsr_params_numel(const avsr_params *p);
int64_t avsr_params_numel_trainable(const avsr_params *p);

/* Set requires_grad on every parameter whose name matches pattern; returns
 * the number matched. */
int avsr_params_set_requires_grad(avsr_params *p, const char *pattern, bool on);

/* Initialisation rules, recorded when a parameter or buffer is registered
 * and applied by avsr_params_init() after finalize. Each tensor draws from
 * the Philox stream keyed by (seed, hash of its name), so a tensor's initial
 * values do not depend on which other tensors the model has. */
typedef enum avsr_init_kind {
    AVSR_INIT_ZEROS = 0,  /* the default */
    AVSR_INIT_ONES,
    AVSR_INIT_CONST,      /* every element = a */
    AVSR_INIT_UNIFORM,    /* U(-a, a): torch's Linear/Conv default has a = 1/sqrt(fan_in) */
    AVSR_INIT_NORMAL      /* N(0, a^2): torch's Embedding default has a = 1 */
} avsr_init_kind;
/* t must have been returned by avsr_params_add/add_buffer of p. */
int avsr_params_set_init(avsr_params *p, const avsr_tensor *t, avsr_init_kind kind, float a,
                         avsr_error *err);
/* Apply every rule (f32 tensors; integer buffers are zeroed). */
int avsr_params_init(avsr_params *p, uint64_t seed, avsr_error *err);
void avsr_params_zero_grad(avsr_params *p);

#ifdef __cplusplus
}
#endif

#endif
