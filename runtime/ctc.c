/* ctc: CTC loss with fused log-softmax (see op_loss.h).
 *
 * Per utterance b with L labels, the extended sequence l' has S = 2L + 1
 * states (blank, l1, blank, l2, ..., lL, blank). In log space:
 *   alpha_t(s) = lp_t(l'_s) + lse(alpha_{t-1}(s), alpha_{t-1}(s-1),
 *                                 [skip_s] alpha_{t-1}(s-2))
 * where the skip s-2 -> s is allowed only into a non-blank label that
 * differs from l'_{s-2} (so repeated labels need a blank between them), and
 *   beta_t(s) = lse(beta_{t+1}(s') + lp_{t+1}(l'_{s'})) over the successors
 * s' of s (beta excludes the emission at t, alpha includes it). Then
 *   nll = -lse(alpha_{T-1}(S-1), alpha_{T-1}(S-2))
 *   occupancy_t(c) = sum_{s: l'_s = c} exp(alpha_t(s) + beta_t(s) + nll)
 *   d nll / d logits_t = softmax_t - occupancy_t.
 * The forward keeps alpha and the per-frame log-sum-exp of the logits; the
 * backward runs the beta recursion one frame at a time (two rows) and writes
 * each frame's gradient as soon as its beta row is known. Utterances run in
 * parallel (OpenMP, dynamic schedule: lengths differ); the loops over states
 * and over classes are branch-free so that they vectorise. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctx_int.h"
#include "loss_fn.h"
#include "op_loss.h"
#include "tape.h"

struct ctc_saved {
    avsr_tensor *logits, *out;
    int64_t B, T, C;
    avsr_loss_reduction red;
    bool zero_inf;
    const int64_t *ilen; /* [B] frames used */
    const int64_t *tlen; /* [B] labels */
    const int64_t *eoff; /* [B] offset of utterance b in ext / skip */
    const int64_t *aoff; /* [B] offset of utterance b in alpha */
    const int32_t *ext;  /* [sum S_b] extended label sequences */
    const float *skip;   /* [sum S_b] 0 where s-2 -> s is allowed, else -inf */
    const float *lse;    /* [B, T] log-sum-exp of each frame's logits */
    const float *alpha;  /* per b: ilen[b] rows of S_b + 2 (two -inf pads first) */
    const float *nll;    /* [B] negative log-likelihood (+inf if impossible) */
};

/* log-sum-exp of one frame of C logits */
static float frame_lse(const float *x, int64_t C)
{
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t c = 0; c < C; c++)
        mx = x[c] > mx ? x[c] : mx;
    if (mx == -INFINITY || mx == INFINITY)
        return mx;
    float se = 0.0f;
#pragma omp simd reduction(+ : se)
    for (int64_t c = 0; c < C; c++)
        se += avsr_lfn_exp(x[c] - mx);
    return mx + logf(se);
}

/* States that can be on a complete path at frame t: at most 2t + 1 (each
 * frame advances at most two states) and at least S - 2 (Tb - t) (the end,
 * S - 2 or S - 1 at frame Tb - 1, must still be reachable). Outside this
 * range alpha or beta is -inf, or the state's paths cannot finish, so both
 * recursions skip it and store -inf: about a quarter less work when T is
 * near the target length. An empty range means no alignment. */
static void live_states(int64_t S, int64_t Tb, int64_t t, int64_t *lo, int64_t *hi)
{
    int64_t l = S - 2 * (Tb - t), h = 2 * t + 1;
    *lo = l > 0 ? l : 0;
    *hi = h < S - 1 ? h : S - 1;
}

/* alpha recursion of one utterance; returns nll */
static float ctc_alpha(const float *x, int64_t C, int64_t Tb, int64_t S, const int32_t *ext,
                       const float *skip, const float *lse, float *A, float *lp)
{
    /* x [T, C] logits of the utterance; lse [T]; A [Tb, S + 2]; lp [S] */
    int64_t R = S + 2;
    if (Tb == 0)
        return S == 1 ? 0.0f : INFINITY;
    for (int64_t t = 0; t < Tb; t++)
        A[t * R] = A[t * R + 1] = -INFINITY;
    float *a0 = A + 2;
    for (int64_t s = 0; s < S; s++)
        a0[s] = -INFINITY;
    a0[0] = x[ext[0]] - lse[0];
    if (S > 1)
        a0[1] = x[ext[1]] - lse[0];
    for (int64_t t = 1; t < Tb; t++) {
        const float *xt = x + t * C;
        float lt = lse[t];
        const float *prev = A + (t - 1) * R + 2;
        float *cur = A + t * R + 2;
        int64_t lo, hi;
        live_states(S, Tb, t, &lo, &hi);
        for (int64_t s = 0; s < lo; s++)
            cur[s] = -INFINITY;
        for (int64_t s = hi + 1; s < S; s++)
            cur[s] = -INFINITY;
        for (int64_t s = lo; s <= hi; s++)
            lp[s] = xt[ext[s]] - lt;
#pragma omp simd
        for (int64_t s = lo; s <= hi; s++)
            cur[s] = lp[s] + avsr_lfn_lse3(prev[s], prev[s - 1], prev[s - 2] + skip[s]);
    }
    const float *last = A + (Tb - 1) * R + 2;
    float ll = S > 1 ? avsr_lfn_lse2(last[S - 1], last[S - 2]) : last[0];
    return -ll;
}

/* beta recursion and gradient of one utterance: g [T, C] += gs * (softmax - occupancy) */
static void ctc_grad(const float *x, float *g, int64_t C, int64_t Tb, int64_t S,
                     const int32_t *ext, const float *skip, const float *lse, const float *A,
                     float nll, float gs, float *ws)
{
    /* ws: 5 rows of S + 2: beta next, beta cur, e (beta + emission), skip2,
     * state occupancy */
    int64_t R = S + 2;
    float *nb = ws, *cb = ws + R, *en = ws + 2 * R, *sk2 = ws + 3 * R, *occ = ws + 4 * R;
    for (int64_t s = 0; s < R; s++) {
        cb[s] = -INFINITY;
        en[s] = -INFINITY;
        sk2[s] = s + 2 < S ? skip[s + 2] : -INFINITY;
    }
    cb[S - 1] = 0.0f;
    if (S > 1)
        cb[S - 2] = 0.0f;
    for (int64_t t = Tb - 1; t >= 0; t--) {
        const float *xt = x + t * C;
        if (t < Tb - 1) {
            float *tmp = nb;
            nb = cb;
            cb = tmp;
            const float *xn = x + (t + 1) * C;
            float ln = lse[t + 1];
            int64_t lo, hi, lo1, hi1;
            live_states(S, Tb, t, &lo, &hi);
            live_states(S, Tb, t + 1, &lo1, &hi1);
            for (int64_t s = 0; s < S; s++)
                en[s] = -INFINITY;
            for (int64_t s = lo1; s <= hi1; s++)
                en[s] = nb[s] + (xn[ext[s]] - ln);
            for (int64_t s = 0; s < lo; s++)
                cb[s] = -INFINITY;
            for (int64_t s = hi + 1; s < S; s++)
                cb[s] = -INFINITY;
#pragma omp simd
            for (int64_t s = lo; s <= hi; s++)
                cb[s] = avsr_lfn_lse3(en[s], en[s + 1], en[s + 2] + sk2[s]);
        }
        float *gt = g + t * C;
        float lt = lse[t];
#pragma omp simd
        for (int64_t c = 0; c < C; c++)
            gt[c] += gs * avsr_lfn_exp(xt[c] - lt);
        const float *at = A + t * R + 2;
#pragma omp simd
        for (int64_t s = 0; s < S; s++)
            occ[s] = gs * avsr_lfn_exp(at[s] + cb[s] + nll);
        for (int64_t s = 0; s < S; s++)
            gt[ext[s]] -= occ[s];
    }
}

static void ctc_backward(avsr_ctx *ctx, void *sv)
{
    struct ctc_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->logits))
        return;
    float *g = avsr_tensor_grad(ctx, s->logits); /* [B, T, C] */
    if (!g)
        return;
    int64_t B = s->B, T = s->T, C = s->C;
    /* per-utterance workspace: 5 rows of S_b + 2 */
    int64_t *woff = avsr_ctx_alloc(ctx, sizeof(int64_t) * (size_t)B); /* [B] */
    if (!woff)
        return;
    int64_t wtot = 0;
    for (int64_t b = 0; b < B; b++) {
        woff[b] = wtot;
        wtot += 5 * (2 * s->tlen[b] + 3);
    }
    float *ws = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)wtot); /* [sum 5 (S_b + 2)] */
    if (!ws)
        return;
    const float *go = s->out->grad;
    const float *x = avsr_f32(s->logits);
#pragma omp parallel for schedule(dynamic, 1) if (B > 1)
    for (int64_t b = 0; b < B; b++) {
        int64_t Tb = s->ilen[b], L = s->tlen[b], S = 2 * L + 1;
        float gs = s->red == AVSR_LOSS_NONE ? go[b] : go[0];
        if (s->red == AVSR_LOSS_MEAN)
            gs /= (float)(L > 1 ? L : 1) * (float)B;
        float nll = s->nll[b];
        float *gb = g + b * T * C; /* [T, C] */
        if (Tb == 0)
            continue;
        if (nll == INFINITY) {
            if (s->zero_inf)
                continue;
            /* torch gives NaN for an impossible alignment */
            for (int64_t i = 0; i < Tb * C; i++)
                gb[i] += NAN;
            continue;
        }
        ctc_grad(x + b * T * C, gb, C, Tb, S, s->ext + s->eoff[b], s->skip + s->eoff[b],
                 s->lse + b * T, s->alpha + s->aoff[b], nll, gs, ws + woff[b]);
    }
}

avsr_tensor *avsr_op_ctc_loss(avsr_ctx *ctx, avsr_tensor *logits, const int64_t *input_lengths,
                              const int64_t *targets, const int64_t *target_lengths, int blank,
                              avsr_loss_reduction reduction, bool zero_infinity)
{
    if (!logits || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96];
    if (logits->dtype != AVSR_F32 || logits->ndim != 3)
        return avsr_ctx_fail(ctx, "ctc_loss: logits must be f32 [B, T, C], got %s %s",
                             avsr_dtype_name(logits->dtype), avsr_shape_str(logits, b1, sizeof b1));
    int64_t B = logits->shape[0], T = logits->shape[1], C = logits->shape[2];
    if (!input_lengths || !target_lengths)
        return avsr_ctx_fail(ctx, "ctc_loss: input_lengths and target_lengths are required");
    if (C < 1)
        return avsr_ctx_fail(ctx, "ctc_loss: logits %s have no classes",
                             avsr_shape_str(logits, b1, sizeof b1));
    if (blank < 0 || blank >= C)
        return avsr_ctx_fail(ctx, "ctc_loss: blank %d outside [0, %lld)", blank, (long long)C);
    if (reduction != AVSR_LOSS_NONE && reduction != AVSR_LOSS_SUM && reduction != AVSR_LOSS_MEAN)
        return avsr_ctx_fail(ctx, "ctc_loss: unknown reduction %d", (int)reduction);
    size_t nb = (size_t)(B ? B : 1);
    int64_t *ilen = avsr_ctx_alloc(ctx, sizeof(int64_t) * nb); /* [B] */
    int64_t *tlen = avsr_ctx_alloc(ctx, sizeof(int64_t) * nb); /* [B] */
    int64_t *eoff = avsr_ctx_alloc(ctx, sizeof(int64_t) * nb); /* [B] */
    int64_t *aoff = avsr_ctx_alloc(ctx, sizeof(int64_t) * nb); /* [B] */
    int64_t *loff = avsr_ctx_alloc(ctx, sizeof(int64_t) * nb); /* [B] */
    float *nll = avsr_ctx_alloc(ctx, sizeof(float) * nb);      /* [B] */
    if (!ilen || !tlen || !eoff || !aoff || !loff || !nll)
        return NULL;
    int64_t etot = 0, atot = 0, lpos = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t Tb = input_lengths[b], L = target_lengths[b];
        if (Tb < 0 || Tb > T)
            return avsr_ctx_fail(ctx,
                                 "ctc_loss: input_lengths[%lld] = %lld outside [0, %lld] "
                                 "(T of logits %s)",
                                 (long long)b, (long long)Tb, (long long)T,
                                 avsr_shape_str(logits, b1, sizeof b1));
        if (L < 0)
            return avsr_ctx_fail(ctx, "ctc_loss: target_lengths[%lld] = %lld is negative",
                                 (long long)b, (long long)L);
        if (L > 0 && !targets)
            return avsr_ctx_fail(ctx, "ctc_loss: targets is NULL but target_lengths[%lld] = %lld",
                                 (long long)b, (long long)L);
        for (int64_t j = 0; j < L; j++) {
            int64_t y = targets[lpos + j];
            if (y == blank)
                return avsr_ctx_fail(ctx,
                                     "ctc_loss: target %lld of utterance %lld is the blank "
                                     "label %d",
                                     (long long)j, (long long)b, blank);
            if (y < 0 || y >= C)
                return avsr_ctx_fail(ctx,
                                     "ctc_loss: target %lld of utterance %lld is %lld, outside "
                                     "[0, %lld)",
                                     (long long)j, (long long)b, (long long)y, (long long)C);
        }
        ilen[b] = Tb;
        tlen[b] = L;
        loff[b] = lpos;
        eoff[b] = etot;
        aoff[b] = atot;
        lpos += L;
        etot += 2 * L + 1;
        atot += Tb * (2 * L + 3);
    }
    int32_t *ext = avsr_ctx_alloc(ctx, sizeof(int32_t) * (size_t)(etot ? etot : 1)); /* [sum S] */
    float *skip = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(etot ? etot : 1));    /* [sum S] */
    float *alpha = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(atot ? atot : 1));   /* per b [Tb, S+2] */
    float *lse = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(B * T > 0 ? B * T : 1));   /* [B, T] */
    float *lpw = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(etot ? etot : 1));     /* [sum S] */
    if (!ext || !skip || !alpha || !lse || !lpw)
        return NULL;
    for (int64_t b = 0; b < B; b++) {
        int64_t L = tlen[b], S = 2 * L + 1;
        int32_t *e = ext + eoff[b];
        float *sk = skip + eoff[b];
        for (int64_t s = 0; s < S; s++) {
            e[s] = (s & 1) ? (int32_t)targets[loff[b] + s / 2] : blank;
            sk[s] = (s >= 2 && (s & 1) && e[s] != e[s - 2]) ? 0.0f : -INFINITY;
        }
    }

    const float *x = avsr_f32(logits);
#pragma omp parallel for schedule(dynamic, 1) if (B > 1)
    for (int64_t b = 0; b < B; b++) {
        int64_t Tb = ilen[b], S = 2 * tlen[b] + 1;
        const float *xb = x + b * T * C; /* [T, C] */
        float *lb = lse + b * T;         /* [T] */
        for (int64_t t = 0; t < Tb; t++)
            lb[t] = frame_lse(xb + t * C, C);
        nll[b] = ctc_alpha(xb, C, Tb, S, ext + eoff[b], skip + eoff[b], lb, alpha + aoff[b],
                           lpw + eoff[b]);
    }

    int64_t one = 1;
    avsr_tensor *out = avsr_tensor_new(ctx, AVSR_F32, 1, reduction == AVSR_LOSS_NONE ? &B : &one);
    if (!out)
        return NULL;
    float *o = avsr_f32(out);
    double acc = 0.0;
    for (int64_t b = 0; b < B; b++) {
        float l = nll[b];
        if (l == INFINITY && zero_infinity)
            l = 0.0f;
        if (reduction == AVSR_LOSS_NONE)
            o[b] = l;
        else if (reduction == AVSR_LOSS_MEAN)
            acc += (double)l / (double)(tlen[b] > 1 ? tlen[b] : 1);
        else
            acc += l;
    }
    if (reduction == AVSR_LOSS_MEAN)
        o[0] = B ? (float)(acc / (double)B) : NAN;
    else if (reduction == AVSR_LOSS_SUM)
        o[0] = (float)acc;

    if (avsr_ctx_needs_grad(ctx, 1, &logits)) {
        struct ctc_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct ctc_saved){logits, out, B, T, C, reduction, zero_infinity, ilen, tlen,
                                eoff, aoff, ext, skip, lse, alpha, nll};
        out->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, ctc_backward, out, s) < 0)
            return NULL;
    }
    return out;
}
