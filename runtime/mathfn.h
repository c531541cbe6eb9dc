/* mathfn: element-wise math shared by the CPU and CUDA backends.
 *
 * Every function here is static inline and marked AVSR_HD (host + device
 * under nvcc), so the CPU tests exercise exactly the arithmetic the GPU
 * kernels run. Forward and derivative come in pairs. */
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

/* AdamW update of one element (decoupled weight decay, bias-corrected).
 * bc1 = 1 - beta1^t, bc2 = 1 - beta2^t. Updates *p, *m, *v in place. */
AVSR_HD void avsr_fn_adamw(float *p, float *m, float *v, float g, float lr, float beta1,
                           float beta2, float eps, float wd, float bc1, float bc2)
{
    *m = beta1 * *m + (1.0f - beta1) * g;
    *v = beta2 * *v + (1.0f - beta2) * g * g;
    float mhat = *m / bc1;
    float vhat = *v / bc2;
    *p -= lr * (mhat / (sqrtf(vhat) + eps) + wd * *p);
}

/* SGD with momentum (PyTorch convention: buf = mu*buf + g (+ wd*p); p -= lr*buf). */
AVSR_HD void avsr_fn_sgd(float *p, float *buf, float g, float lr, float mu, float wd, int first)
{
    float d = g + wd * *p;
    *buf = first ? d : mu * *buf + d;
    *p -= lr * (mu != 0.0f ? *buf : d);
}

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
