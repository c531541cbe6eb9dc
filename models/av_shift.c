/* av_shift: Align-AV-HuBERT's audio-video offset head (see av_shift.h). */
#include "av_shift.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "op_align.h"

int avsr_av_shift_init(avsr_av_shift *m, avsr_params *p, const char *prefix, int max_shift,
                       avsr_error *err)
{
    if (max_shift < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "av_shift: max_shift %d must be >= 0",
                              max_shift);
    char name[320];
    snprintf(name, sizeof name, "%s%slogit_scale_a", prefix && *prefix ? prefix : "",
             prefix && *prefix ? "." : "");
    int64_t one = 1;
    memset(m, 0, sizeof *m);
    m->max_shift = max_shift;
    m->logit_scale = avsr_params_add(p, name, 0, &one, err);
    if (!m->logit_scale ||
        avsr_params_set_init(p, m->logit_scale, AVSR_INIT_CONST, AVSR_AV_SHIFT_LOGIT_SCALE_INIT,
                             err) < 0)
        return -1;
    return 0;
}

#define NORM_EPS 1e-12f

avsr_tensor *avsr_av_shift_loss(avsr_ctx *ctx, const avsr_av_shift *m, avsr_tensor *A,
                                avsr_tensor *V, const int *shifts, const int64_t *lengths)
{
    if (!A || !V || avsr_ctx_failed(ctx))
        return NULL;
    for (int64_t b = 0; shifts && A->ndim == 3 && b < A->shape[0]; b++)
        if (shifts[b] < -m->max_shift || shifts[b] > m->max_shift)
            return avsr_ctx_fail(ctx, "av_shift_loss: shifts[%lld] = %d outside -%d..%d",
                                 (long long)b, shifts[b], m->max_shift, m->max_shift);
    avsr_tensor *an = avsr_op_l2_normalize(ctx, A, NORM_EPS); /* [B, T, d] */
    avsr_tensor *vn = avsr_op_l2_normalize(ctx, V, NORM_EPS); /* [B, T, d] */
    return avsr_op_shift_infonce(ctx, an, vn, m->logit_scale, shifts, lengths);
}

static double row_norm(const float *x, int64_t d)
{
    double s = 0.0;
    for (int64_t k = 0; k < d; k++)
        s += (double)x[k] * x[k];
    return fmax(sqrt(s), (double)NORM_EPS);
}

int avsr_av_shift_predict(avsr_ctx *ctx, const avsr_av_shift *m, avsr_tensor *A, avsr_tensor *V,
                          const int64_t *lengths, int *pred, float *scores)
{
    if (!A || !V || avsr_ctx_failed(ctx))
        return -1;
    char b1[96], b2[96];
    if (A->dtype != AVSR_F32 || A->ndim != 3 || V->dtype != AVSR_F32 || !avsr_shape_equal(A, V)) {
        avsr_ctx_fail(ctx, "av_shift_predict: A %s and V %s must be f32 [B, T, d] of one shape",
                      avsr_shape_str(A, b1, sizeof b1), avsr_shape_str(V, b2, sizeof b2));
        return -1;
    }
    int64_t B = A->shape[0], T = A->shape[1], d = A->shape[2];
    int K = m->max_shift, ns = 2 * K + 1;
    float sc = avsr_f32(m->logit_scale)[0];
    /* per-row norms [B, T] */
    double *na = avsr_ctx_alloc(ctx, (size_t)(2 * B * T + 1) * sizeof(double));
    if (!na)
        return -1;
    double *nv = na + B * T;
    const float *Ad = avsr_f32(A), *Vd = avsr_f32(V);
#pragma omp parallel for schedule(static) if (B * T * d > 32768)
    for (int64_t r = 0; r < B * T; r++) {
        na[r] = row_norm(Ad + r * d, d);
        nv[r] = row_norm(Vd + r * d, d);
    }
    for (int64_t b = 0; b < B; b++) {
        int64_t L = lengths ? lengths[b] : T;
        if (L < 1 || L > T) {
            avsr_ctx_fail(ctx, "av_shift_predict: lengths[%lld] = %lld, expected 1..%lld",
                          (long long)b, (long long)L, (long long)T);
            return -1;
        }
        int num = (int)(L < K + 1 ? L : K + 1); /* candidates -num+1 .. num-1 */
        double best = 0.0;
        int arg = 0;
        for (int s = -K; s <= K; s++) {
            double mean = NAN;
            if (s > -num && s < num) {
                int64_t n = L - (s < 0 ? -s : s), a0 = s < 0 ? -s : 0, v0 = s > 0 ? s : 0;
                double acc = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : acc) if (n * d > 32768)
                for (int64_t i = 0; i < n; i++) {
                    int64_t ra = b * T + a0 + i, rv = b * T + v0 + i;
                    const float *a = Ad + ra * d, *v = Vd + rv * d;
                    double dot = 0.0;
                    for (int64_t k = 0; k < d; k++)
                        dot += (double)a[k] * v[k];
                    acc += (double)sc * dot / (na[ra] * nv[rv]);
                }
                mean = acc / (double)n;
                if (mean > best) {
                    best = mean;
                    arg = s;
                }
            }
            if (scores)
                scores[b * ns + (s + K)] = (float)mean;
        }
        if (pred)
            pred[b] = arg;
    }
    return 0;
}

void avsr_av_shift_roll_frames(void *dst, const void *src, int64_t T, size_t frame_bytes,
                               int shift)
{
    if (T <= 0)
        return;
    int64_t s = ((shift % T) + T) % T;
    /* dst[(t + s) mod T] = src[t]: two contiguous copies */
    memcpy((char *)dst + (size_t)s * frame_bytes, src, (size_t)(T - s) * frame_bytes);
    memcpy(dst, (const char *)src + (size_t)(T - s) * frame_bytes, (size_t)s * frame_bytes);
}
