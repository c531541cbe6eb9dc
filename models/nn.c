/* nn: parameterised building blocks (see nn.h). */
#include "nn.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lora.h"
#include "ops.h"

const char *avsr_nn_name(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, AVSR_NN_NAME_MAX, fmt, ap);
    va_end(ap);
    return buf;
}

const char *avsr_nn_sub(char *buf, const char *prefix, const char *fmt, ...)
{
    char leaf[AVSR_NN_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(leaf, sizeof leaf, fmt, ap);
    va_end(ap);
    if (prefix && *prefix)
        return avsr_nn_name(buf, "%s.%s", prefix, leaf);
    return avsr_nn_name(buf, "%s", leaf);
}

static avsr_tensor *add_param(avsr_params *p, const char *prefix, const char *leaf, int ndim,
                              const int64_t *shape, avsr_init_kind init, float a, avsr_error *err)
{
    char name[AVSR_NN_NAME_MAX];
    avsr_nn_name(name, "%s.%s", prefix, leaf);
    avsr_tensor *t = avsr_params_add(p, name, ndim, shape, err);
    if (t && avsr_params_set_init(p, t, init, a, err) < 0)
        return NULL;
    return t;
}

static avsr_tensor *add_buffer(avsr_params *p, const char *prefix, const char *leaf,
                               avsr_dtype dt, int ndim, const int64_t *shape, avsr_init_kind init,
                               avsr_error *err)
{
    char name[AVSR_NN_NAME_MAX];
    avsr_nn_name(name, "%s.%s", prefix, leaf);
    avsr_tensor *t = avsr_params_add_buffer(p, name, dt, ndim, shape, err);
    if (t && avsr_params_set_init(p, t, init, 0, err) < 0)
        return NULL;
    return t;
}

int avsr_nn_linear_init(avsr_nn_linear *m, avsr_params *p, const char *prefix, int64_t in,
                        int64_t out, bool bias, avsr_error *err)
{
    int64_t ws[2] = {out, in}, bs[1] = {out};
    float bound = 1.0f / sqrtf((float)in); /* kaiming_uniform(a=sqrt(5)) == U(+-1/sqrt(fan_in)) */
    memset(m, 0, sizeof *m);
    m->in = in;
    m->out = out;
    if (!(m->weight = add_param(p, prefix, "weight", 2, ws, AVSR_INIT_UNIFORM, bound, err)))
        return -1;
    if (bias && !(m->bias = add_param(p, prefix, "bias", 1, bs, AVSR_INIT_UNIFORM, bound, err)))
        return -1;
    avsr_lora_note_linear(m); /* recorded if a LoRA set is tracking this thread */
    return 0;
}

avsr_tensor *avsr_nn_linear_forward(avsr_ctx *ctx, const avsr_nn_linear *m, avsr_tensor *x)
{
    if (m->lora)
        return avsr_lora_linear_forward(ctx, m, x);
    return avsr_op_linear(ctx, x, m->weight, m->bias);
}

int avsr_nn_layer_norm_init(avsr_nn_layer_norm *m, avsr_params *p, const char *prefix, int64_t dim,
                            float eps, avsr_error *err)
{
    int64_t s[1] = {dim};
    m->eps = eps;
    if (!(m->weight = add_param(p, prefix, "weight", 1, s, AVSR_INIT_ONES, 0, err)) ||
        !(m->bias = add_param(p, prefix, "bias", 1, s, AVSR_INIT_ZEROS, 0, err)))
        return -1;
    return 0;
}

avsr_tensor *avsr_nn_layer_norm_forward(avsr_ctx *ctx, const avsr_nn_layer_norm *m,
                                        avsr_tensor *x)
{
    return avsr_op_layer_norm(ctx, x, m->weight, m->bias, m->eps);
}

int avsr_nn_batch_norm_init(avsr_nn_batch_norm *m, avsr_params *p, const char *prefix,
                            int64_t channels, float eps, float momentum, avsr_error *err)
{
    int64_t s[1] = {channels}, one[1] = {1};
    m->eps = eps;
    m->momentum = momentum;
    if (!(m->weight = add_param(p, prefix, "weight", 1, s, AVSR_INIT_ONES, 0, err)) ||
        !(m->bias = add_param(p, prefix, "bias", 1, s, AVSR_INIT_ZEROS, 0, err)) ||
        !(m->running_mean =
              add_buffer(p, prefix, "running_mean", AVSR_F32, 1, s, AVSR_INIT_ZEROS, err)) ||
        !(m->running_var =
              add_buffer(p, prefix, "running_var", AVSR_F32, 1, s, AVSR_INIT_ONES, err)) ||
        !(m->num_batches_tracked =
              add_buffer(p, prefix, "num_batches_tracked", AVSR_I64, 0, one, AVSR_INIT_ZEROS, err)))
        return -1;
    return 0;
}

avsr_tensor *avsr_nn_batch_norm_forward(avsr_ctx *ctx, const avsr_nn_batch_norm *m,
                                        avsr_tensor *x, avsr_tensor *mask)
{
    avsr_tensor *y = avsr_op_batch_norm(ctx, x, m->weight, m->bias, m->running_mean,
                                        m->running_var, mask, m->momentum, m->eps);
    if (y && avsr_ctx_training(ctx))
        ((int64_t *)m->num_batches_tracked->data)[0]++;
    return y;
}

int avsr_nn_conv_init(avsr_nn_conv *m, avsr_params *p, const char *prefix, int nsp, int64_t cin,
                      int64_t cout, const int *kernel, const int *stride, const int *pad,
                      const int *dil, int groups, bool bias, avsr_error *err)
{
    if (nsp < 1 || nsp > 3 || groups < 1 || cin % groups || cout % groups)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: conv with %d spatial dims, %lld -> %lld channels, %d groups",
                              prefix, nsp, (long long)cin, (long long)cout, groups);
    memset(m, 0, sizeof *m);
    int64_t ws[5] = {cout, cin / groups};
    int64_t fan_in = cin / groups;
    m->cp.nsp = nsp;
    m->cp.groups = groups;
    for (int i = 0; i < nsp; i++) {
        ws[2 + i] = kernel[i];
        fan_in *= kernel[i];
        m->cp.stride[i] = stride ? stride[i] : 1;
        m->cp.pad[i] = pad ? pad[i] : 0;
        m->cp.dil[i] = dil ? dil[i] : 1;
    }
    float bound = 1.0f / sqrtf((float)fan_in);
    int64_t bs[1] = {cout};
    if (!(m->weight = add_param(p, prefix, "weight", 2 + nsp, ws, AVSR_INIT_UNIFORM, bound, err)))
        return -1;
    if (bias && !(m->bias = add_param(p, prefix, "bias", 1, bs, AVSR_INIT_UNIFORM, bound, err)))
        return -1;
    return 0;
}

avsr_tensor *avsr_nn_conv_forward(avsr_ctx *ctx, const avsr_nn_conv *m, avsr_tensor *x)
{
    return avsr_op_conv(ctx, x, m->weight, m->bias, &m->cp);
}

int avsr_nn_embedding_init(avsr_nn_embedding *m, avsr_params *p, const char *prefix, int64_t num,
                           int64_t dim, int64_t padding_idx, avsr_error *err)
{
    int64_t s[2] = {num, dim};
    m->padding_idx = padding_idx;
    m->weight = add_param(p, prefix, "weight", 2, s, AVSR_INIT_NORMAL, 1.0f, err);
    return m->weight ? 0 : -1;
}

avsr_tensor *avsr_nn_embedding_forward(avsr_ctx *ctx, const avsr_nn_embedding *m,
                                       avsr_tensor *idx)
{
    return avsr_op_embedding(ctx, m->weight, idx, m->padding_idx);
}
