/* mathfn: element-wise math shared by the CPU and CUDA backends.
 *
 * Every function here is static inline and marked AVSR_HD (host + device
 * under nvcc), so the CPU tests exercise exactly the arithmetic the GPU
 * kernels run. Forward and derivative come in pairs. Optimizer updates are in
 * optim_fn.h. */
#ifndef AVSR_MATHFN_H
#define AVSR_MATHFN_H

#include <math.h>

#if defined(__CUDACC__)
#define AVSR_HD __host__ __device__ __forceinline__
#else
#define AVSR_HD static inline
#endif

AVSR_HD float avsr_fn_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

AVSR_HD float avsr_fn_relu(float x) { return x > 0.0f ? x : 0.0f; }
/* d relu / dx given the input x */
AVSR_HD float avsr_fn_relu_grad(float x) { return x > 0.0f ? 1.0f : 0.0f; }

/* SiLU / Swish: x * sigmoid(x) */
AVSR_HD float avsr_fn_silu(float x) { return x * avsr_fn_sigmoid(x); }
AVSR_HD float avsr_fn_silu_grad(float x)
{
    float s = avsr_fn_sigmoid(x);
    return s * (1.0f + x * (1.0f - s));
}

/* GELU, exact (erf) form, as torch.nn.GELU() default */
AVSR_HD float avsr_fn_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
AVSR_HD float avsr_fn_gelu_grad(float x)
{
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
    return cdf + x * pdf;
}

/* PReLU with slope a */
AVSR_HD float avsr_fn_prelu(float x, float a) { return x > 0.0f ? x : a * x; }

/* log(exp(a) + exp(b)) without overflow; -inf aware. */
AVSR_HD float avsr_fn_logaddexp(float a, float b)
{
    if (a == -INFINITY)
        return b;
    if (b == -INFINITY)
        return a;
    float m = a > b ? a : b;
    return m + log1pf(expf(-fabsf(a - b)));
}

#endif
