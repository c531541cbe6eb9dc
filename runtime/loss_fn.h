/* loss_fn: element-wise math of the loss kernels (CPU and CUDA).
 *
 * Branch-free float exp and log so that the loops over classes (softmax) and
 * over CTC's extended labels (log-space recursions) vectorise: glibc's expf
 * and logf are calls the compiler cannot inline into SIMD code. Accuracy:
 * avsr_lfn_exp is within 2 ulp of expf on [-87, 88] (Cephes polynomial with
 * a two-part ln 2), returns exactly 0 below -87.33 and exactly 1 at 0;
 * avsr_lfn_log13 is within 2 ulp of logf on [1, 3] (the only range the
 * log-sum-exp below needs). */
#ifndef AVSR_LOSS_FN_H
#define AVSR_LOSS_FN_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mathfn.h"

AVSR_HD float avsr_lfn_i2f(int32_t i)
{
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

/* exp(x); 0 for x < -87.33 (and for -inf), saturates near 88 (no inf). */
AVSR_HD float avsr_lfn_exp(float x)
{
    float xc = x < -87.0f ? -87.0f : x;
    xc = xc > 88.0f ? 88.0f : xc;
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
    float scale = avsr_lfn_i2f(((int32_t)n + 127) << 23);
    float y = p * scale;
    return x < -87.33654f ? 0.0f : y;
}

/* log(v) for v in [1, 3]: v = 2^e * w with w in [0.707, 1.5], then
 * log w = 2 atanh(z), z = (w - 1) / (w + 1), |z| <= 0.2, odd series to z^9. */
AVSR_HD float avsr_lfn_log13(float v)
{
    int big = v > 1.41421356f;
    float w = big ? v * 0.5f : v;
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
    float ms = m == -INFINITY ? 0.0f : m;
    float s = avsr_lfn_exp(a - ms) + avsr_lfn_exp(b - ms) + avsr_lfn_exp(c - ms);
    float r = ms + avsr_lfn_log13(s);
    return m == -INFINITY ? -INFINITY : r;
}

/* log(e^a + e^b); -inf when both are -inf. */
AVSR_HD float avsr_lfn_lse2(float a, float b)
{
    float m = a > b ? a : b;
    float ms = m == -INFINITY ? 0.0f : m;
    float s = avsr_lfn_exp(a - ms) + avsr_lfn_exp(b - ms);
    float r = ms + avsr_lfn_log13(s);
    return m == -INFINITY ? -INFINITY : r;
}

#endif
