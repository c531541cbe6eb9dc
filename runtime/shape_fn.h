/* shape_fn: element-wise math of the arithmetic and positional-encoding ops
 * (op_shape.h), shared by the CPU and CUDA backends.
 *
 * Every function is AVSR_HD (static inline on the host, __host__ __device__
 * under nvcc), so the CPU tests exercise the arithmetic a GPU kernel runs.
 * The gradient formulas are the ones PyTorch's autograd uses (in particular
 * d(a/b)/db = -g * ((a / b) / b)), so results agree to the last bit where
 * the summation order agrees. */
#ifndef AVSR_SHAPE_FN_H
#define AVSR_SHAPE_FN_H

#include <math.h>

#include "mathfn.h"

/* Binary arithmetic ops. */
enum avsr_binop { AVSR_BIN_ADD = 0, AVSR_BIN_SUB, AVSR_BIN_MUL, AVSR_BIN_DIV };

AVSR_HD float avsr_fn_binary(int op, float a, float b)
{
    switch (op) {
    case AVSR_BIN_ADD: return a + b;
    case AVSR_BIN_SUB: return a - b;
    case AVSR_BIN_MUL: return a * b;
    default: return a / b;
    }
}

/* g * d op(a, b) / da */
AVSR_HD float avsr_fn_binary_da(int op, float g, float a, float b)
{
    (void)a;
    switch (op) {
    case AVSR_BIN_ADD:
    case AVSR_BIN_SUB: return g;
    case AVSR_BIN_MUL: return g * b;
    default: return g / b;
    }
}

/* g * d op(a, b) / db */
AVSR_HD float avsr_fn_binary_db(int op, float g, float a, float b)
{
    switch (op) {
    case AVSR_BIN_ADD: return g;
    case AVSR_BIN_SUB: return -g;
    case AVSR_BIN_MUL: return g * a;
    default: return -g * ((a / b) / b);
    }
}

/* alpha * a + beta * b (PyTorch's `alpha * a + beta * b`; a compiler that
 * contracts this into a fused multiply-add differs in the last bit). */
AVSR_HD float avsr_fn_axpby(float a, float b, float alpha, float beta)
{
    return alpha * a + beta * b;
}

/* Frequency of sin/cos pair i of an ESPnet/Transformer encoding of width d:
 * exp(2i * -(ln(10000) / d)), computed in f32 as PyTorch does. */
AVSR_HD float avsr_fn_pe_freq(int i, int d)
{
    float k = -(float)(9.210340371976184 / (double)d); /* -(math.log(10000.0) / d) */
    return expf((float)(2 * i) * k);
}

/* Whisper sinusoids: inv_timescale_i = exp(-(ln(10000) / (d/2 - 1)) * i). */
AVSR_HD float avsr_fn_whisper_freq(int i, int d)
{
    float k = (float)(-9.210340371976184 / (double)(d / 2 - 1));
    return expf(k * (float)i);
}

#endif
