/* features_fn: element-wise math of the feature ops (op_features.h), shared
 * by the CPU and a future CUDA backend. Forward and derivative in pairs. */
#ifndef AVSR_FEATURES_FN_H
#define AVSR_FEATURES_FN_H

#include <math.h>

#include "mathfn.h"

/* Whisper: log10(max(mel, 1e-10)) */
AVSR_HD float avsr_fn_log10_floor(float mel) { return log10f(mel > 1e-10f ? mel : 1e-10f); }
/* its derivative given mel (torch's clamp passes the gradient at x >= min) */
AVSR_HD float avsr_fn_log10_floor_grad(float mel)
{
    return mel >= 1e-10f ? 0.43429448190325182f / mel : 0.0f;
}

/* Whisper: (max(l, lmax - range) + 4) / 4 */
AVSR_HD float avsr_fn_whisper_scale(float l, float floor_)
{
    return ((l > floor_ ? l : floor_) + 4.0f) * 0.25f;
}

/* Kaldi: log(max(e, FLT_EPSILON)) */
AVSR_HD float avsr_fn_log_eps(float e)
{
    const float eps = 1.1920928955078125e-07f;
    return logf(e > eps ? e : eps);
}

/* Hann window value n of length N: periodic (torch.hann_window default,
 * denominator N) or symmetric (denominator N - 1). */
AVSR_HD double avsr_fn_hann(int n, int N, int periodic)
{
    int d = periodic ? N : N - 1;
    if (d <= 0)
        return 1.0;
    return 0.5 - 0.5 * cos(2.0 * 3.14159265358979323846 * n / d);
}

/* Index of a signal of length L read at i with reflect padding (numpy/torch
 * 'reflect': -1 -> 1, L -> L - 2), repeated for i far outside. */
AVSR_HD long long avsr_fn_reflect(long long i, long long L)
{
    if (L <= 1)
        return 0;
    long long period = 2 * (L - 1);
    i %= period;
    if (i < 0)
        i += period;
    return i < L ? i : period - i;
}

#endif
