/* loss_fn: element-wise math of the loss kernels (CPU and CUDA).
 *
 * Branch-free float exp and log so that the loops over classes (softmax) and
 * over CTC's extended labels (log-space recursions) vectorise: glibc's expf
 * and logf are calls the compiler cannot inline into SIMD code. Accuracy
 * (tests/test_op_loss.c): avsr_lfn_exp, a Cephes polynomial with a two-part
 * ln 2, is within 3 ulp of exp on [-87.3, 10] (defined up to 88, garbage
 * above), exactly 0 below -87.33 (no denormals) and exactly 1 at 0;
 * avsr_lfn_log13 is within 3 ulp of log on [1, 3], the only range the
 * log-sum-exp below needs. */
#ifndef AVSR_LOSS_FN_H
#define AVSR_LOSS_FN_H

#include <math.h>
#include <stdint.h>

#include "mathfn.h"

/* the float whose bits are i (a union, which the vectoriser sees through;
 * memcpy into a local makes it addressable and blocks vectorisation) */
AVSR_HD float avsr_lfn_i2f(int32_t i)
{
#if defined(__CUDA_ARCH__)
    return __int_as_float(i);
#else
    union {
        int32_t i;
        float f;
    } u;
    u.i = i;
    return u.f;
#endif
}

/* the bits of f */
AVSR_HD int32_t avsr_lfn_f2i(float f)
{
#if defined(__CUDA_ARCH__)
    return __float_as_int(f);
#else
    union {
        int32_t i;
        float f;
    } u;
    u.f = f;
    return u.i;
#endif
}

/* Selects below pick between constants or work on integer bits only: gcc
 * turns "c ? 0.5f : 1.0f" used as a factor back into a conditional
 * multiply, which under the default -ftrapping-math blocks vectorisation. */

/* exp(x) for x <= 88 (larger x: garbage); exactly 0 for x < -87.33 and
 * for -inf; NaN for NaN. No clamping to constants: a clamp lets the
 * compiler specialise a branch on the constant, which blocks vectorisation;
 * out-of-range lanes are computed anyway and zeroed through the bits. */
AVSR_HD float avsr_lfn_exp(float x)
{
    float xc = x;
    /* n = round(x / ln 2) by the 1.5 * 2^23 trick (exact for |n| < 2^22) */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    float y = p * avsr_lfn_i2f((int32_t)((uint32_t)((int32_t)n + 127) << 23));
    /* 0 where x is below the range (or -inf) */
    int32_t keep = -(int32_t)(x >= -87.33654f || x != x);
    return avsr_lfn_i2f(avsr_lfn_f2i(y) & keep);
}

/* log(v) for v in [1, 3]: v = 2^e * w with w in [0.707, 1.5], then
 * log w = 2 atanh(z), z = (w - 1) / (w + 1), |z| <= 0.2, odd series to z^9. */
AVSR_HD float avsr_lfn_log13(float v)
{
    int32_t big = v > 1.41421356f ? 1 : 0;
    float w = avsr_lfn_i2f(avsr_lfn_f2i(v) - (big << 23)); /* v / 2^big */
    float z = (w - 1.0f) / (w + 1.0f);
    float z2 = z * z;
    float s = 1.0f / 9.0f;
    s = s * z2 + 1.0f / 7.0f;
    s = s * z2 + 1.0f / 5.0f;
    s = s * z2 + 1.0f / 3.0f;
    s = s * z2 + 1.0f;
    return 2.0f * z * s + (big ? 0.69314718055994531f : 0.0f);
}

/* log(e^a + e^b + e^c); -inf when all three are -inf. */
AVSR_HD float avsr_lfn_lse3(float a, float b, float c)
{
    float m = a > b ? a : b;
    m = m > c ? m : c;
    /* m, or 0 when m = -inf (so that a - ms is -inf, not NaN) */
    float ms = avsr_lfn_i2f(avsr_lfn_f2i(m) & -(int32_t)(m != -INFINITY));
    float s = avsr_lfn_exp(a - ms) + avsr_lfn_exp(b - ms) + avsr_lfn_exp(c - ms);
    /* all -inf: s = 0, log13(0) is finite, the added -inf wins */
    return ms + avsr_lfn_log13(s) + (m == -INFINITY ? -INFINITY : 0.0f);
}

/* log(e^a + e^b); -inf when both are -inf. */
AVSR_HD float avsr_lfn_lse2(float a, float b)
{
    float m = a > b ? a : b;
    float ms = avsr_lfn_i2f(avsr_lfn_f2i(m) & -(int32_t)(m != -INFINITY));
    float s = avsr_lfn_exp(a - ms) + avsr_lfn_exp(b - ms);
    return ms + avsr_lfn_log13(s) + (m == -INFINITY ? -INFINITY : 0.0f);
}

#endif
