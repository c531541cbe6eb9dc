/* act_fn: element-wise math of the activation, softmax and normalisation
 * ops, shared by the CPU and CUDA backends (AVSR_HD, see mathfn.h).
 *
 * avsr_fn_exp is a branch-free exp for float (Cephes-style: range reduction
 * by ln 2 in two parts, degree-6 polynomial, exponent built from bits) so
 * that loops calling it vectorise; its error is within 2 ulp of expf over
 * [-87.3, 88.7] and it returns 0 below that range (also for -inf). The
 * functions built on it (sigmoid, SiLU) keep the same accuracy. Backward
 * helpers take the forward output where that is cheaper (sigmoid, tanh). */
#ifndef AVSR_ACT_FN_H
#define AVSR_ACT_FN_H

#include <math.h>
#include <stdint.h>

#include "mathfn.h"

/* c ? a : b done with bit masks: GCC if-converts a float compare into a
 * branch under its default -ftrapping-math (and always in AVX2 clones),
 * which keeps a loop scalar; integer masks keep it vectorisable. */
AVSR_HD float avsr_fn_select(int c, float a, float b)
{
    union {
        float f;
        uint32_t u;
    } A, B, R;
    A.f = a;
    B.f = b;
    uint32_t m = 0u - (uint32_t)(c != 0);
    R.u = (A.u & m) | (B.u & ~m);
    return R.f;
}

AVSR_HD float avsr_fn_exp(float x)
{
    const float hi = 88.3762626647949f, lo = -87.3365447504f;
    float xc = avsr_fn_select(x > hi, hi, x);
    xc = avsr_fn_select(xc < lo, lo, xc);
    /* n = round(x / ln 2) */
    float fx = xc * 1.44269504088896341f + 0.5f;
    float fl = (float)(int32_t)fx;
    fl = avsr_fn_select(fl > fx, fl - 1.0f, fl); /* floor */
    float r = xc - fl * 0.693359375f;
    r = r + fl * 2.12194440e-4f;
    float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    union {
        int32_t i;
        float f;
    } u;
    u.i = ((int32_t)fl + 127) << 23;
    return avsr_fn_select(x < lo, 0.0f, p * u.f);
}

/* sigmoid through avsr_fn_exp; saturates cleanly at both ends */
AVSR_HD float avsr_fn_sigmoid_v(float x) { return 1.0f / (1.0f + avsr_fn_exp(-x)); }
/* d sigmoid / dx given the output s */
AVSR_HD float avsr_fn_sigmoid_grad_y(float s) { return s * (1.0f - s); }

AVSR_HD float avsr_fn_silu_v(float x) { return x * avsr_fn_sigmoid_v(x); }
AVSR_HD float avsr_fn_silu_grad_v(float x)
{
    float s = avsr_fn_sigmoid_v(x);
    return s * (1.0f + x * (1.0f - s));
}

/* d tanh / dx given the output t */
AVSR_HD float avsr_fn_tanh_grad_y(float t) { return 1.0f - t * t; }

/* d prelu / dx and d prelu / da */
AVSR_HD float avsr_fn_prelu_grad_x(float x, float a) { return x > 0.0f ? 1.0f : a; }
AVSR_HD float avsr_fn_prelu_grad_a(float x) { return x > 0.0f ? 0.0f : x; }

/* GLU half: out = a * sigmoid(b); gradients given s = sigmoid(b) */
AVSR_HD float avsr_fn_glu(float a, float b) { return a * avsr_fn_sigmoid_v(b); }

/* Dropout keep test: a 32-bit random word against the drop probability p,
 * with the same 24-bit resolution as avsr_rng_uniform. */
AVSR_HD int avsr_fn_dropout_keep(uint32_t u, float p)
{
    return (float)(u >> 8) * (1.0f / 16777216.0f) >= p;
}

/* CPU kernels that call the functions above are compiled twice, for AVX2 +
 * FMA and for the baseline, and the loader picks one (GCC target_clones):
 * the library itself is built for the baseline x86-64. */
#if !defined(__CUDACC__) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__)
#define AVSR_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define AVSR_SIMD_CLONES
#endif

#endif
