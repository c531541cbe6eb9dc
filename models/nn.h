/* nn: parameterised building blocks that models are assembled from.
 *
 * Each block is a small struct of parameter tensors plus its settings. An
 * init function registers the block's parameters in a parameter store under
 * "<prefix>.<name>" (the names PyTorch state dicts use: "weight", "bias",
 * "running_mean", "running_var", "num_batches_tracked") and records
 * torch's default initialisation; values exist after avsr_params_finalize()
 * and avsr_params_init(). A forward function composes runtime ops, so the
 * tape gives the backward pass for free.
 *
 * Prefixes are built with avsr_nn_name(buf, "%s.layers.%d", prefix, i). */
#ifndef AVSR_NN_H
#define AVSR_NN_H

#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "op_conv.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AVSR_NN_NAME_MAX 256

/* snprintf into a name buffer of AVSR_NN_NAME_MAX bytes; returns buf. */
const char *avsr_nn_name(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "prefix.<leaf>" with the leaf formatted from fmt, or just "<leaf>" when
 * prefix is NULL or empty; into buf (AVSR_NN_NAME_MAX bytes); returns buf. */
const char *avsr_nn_sub(char *buf, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

struct avsr_lora_adapter; /* models/lora.h */

/* y = x W^T + b; W [out, in], b [out] (torch.nn.Linear). When lora is set
 * (avsr_lora_attach, models/lora.h) the forward adds the low-rank update
 * scale * (x A^T) B^T; model code calls avsr_nn_linear_forward either way. */
typedef struct avsr_nn_linear {
    avsr_tensor *weight, *bias; /* bias NULL when bias = false */
    int64_t in, out;
    const struct avsr_lora_adapter *lora; /* NULL: plain linear */
} avsr_nn_linear;
int avsr_nn_linear_init(avsr_nn_linear *m, avsr_params *p, const char *prefix, int64_t in,
                        int64_t out, bool bias, avsr_error *err);
avsr_tensor *avsr_nn_linear_forward(avsr_ctx *ctx, const avsr_nn_linear *m, avsr_tensor *x);

/* torch.nn.LayerNorm over the last dimension */
typedef struct avsr_nn_layer_norm {
    avsr_tensor *weight, *bias;
    float eps;
} avsr_nn_layer_norm;
int avsr_nn_layer_norm_init(avsr_nn_layer_norm *m, avsr_params *p, const char *prefix, int64_t dim,
                            float eps, avsr_error *err);
avsr_tensor *avsr_nn_layer_norm_forward(avsr_ctx *ctx, const avsr_nn_layer_norm *m,
                                        avsr_tensor *x);

/* torch.nn.BatchNorm{1,2,3}d with affine weights and running statistics
 * (buffers); num_batches_tracked (i64) counts training forwards. The mask
 * ([B, T] over dim 2, nonzero = valid) excludes padding from statistics. */
typedef struct avsr_nn_batch_norm {
    avsr_tensor *weight, *bias, *running_mean, *running_var, *num_batches_tracked;
    float eps, momentum;
} avsr_nn_batch_norm;
int avsr_nn_batch_norm_init(avsr_nn_batch_norm *m, avsr_params *p, const char *prefix,
                            int64_t channels, float eps, float momentum, avsr_error *err);
avsr_tensor *avsr_nn_batch_norm_forward(avsr_ctx *ctx, const avsr_nn_batch_norm *m,
                                        avsr_tensor *x, avsr_tensor *mask);

/* torch.nn.Conv{1,2,3}d: weight [Cout, Cin/groups, *K] */
typedef struct avsr_nn_conv {
    avsr_tensor *weight, *bias;
    avsr_conv_params cp;
} avsr_nn_conv;
/* nsp spatial dims; kernel/stride/pad/dil arrays of nsp entries (NULL
 * stride/dil = 1, NULL pad = 0). */
int avsr_nn_conv_init(avsr_nn_conv *m, avsr_params *p, const char *prefix, int nsp, int64_t cin,
                      int64_t cout, const int *kernel, const int *stride, const int *pad,
                      const int *dil, int groups, bool bias, avsr_error *err);
avsr_tensor *avsr_nn_conv_forward(avsr_ctx *ctx, const avsr_nn_conv *m, avsr_tensor *x);

/* torch.nn.Embedding: weight [V, D] ~ N(0, 1) */
typedef struct avsr_nn_embedding {
    avsr_tensor *weight;
    int64_t padding_idx; /* -1 = none */
} avsr_nn_embedding;
int avsr_nn_embedding_init(avsr_nn_embedding *m, avsr_params *p, const char *prefix, int64_t num,
                           int64_t dim, int64_t padding_idx, avsr_error *err);
avsr_tensor *avsr_nn_embedding_forward(avsr_ctx *ctx, const avsr_nn_embedding *m,
                                       avsr_tensor *idx);

#ifdef __cplusplus
}
#endif

#endif
