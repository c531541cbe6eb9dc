/* op_loss: L1 loss and cross-entropy with label smoothing (see op_loss.h).
 * CTC lives in ctc.c. */
#include "op_loss.h"

#include <math.h>
#include <string.h>

#include "ctx_int.h"
#include "loss_fn.h"
#include "tape.h"

static bool reduction_ok(avsr_loss_reduction r)
{
    return r == AVSR_LOSS_NONE || r == AVSR_LOSS_SUM || r == AVSR_LOSS_MEAN;
}

/* ------------------------------------------------------------------ */
/* L1 loss                                                              */
/* ------------------------------------------------------------------ */

struct l1_saved {
    avsr_tensor *x, *t, *out;
    const unsigned char *keep; /* [numel] 1 = counted, or NULL (all) */
    avsr_loss_reduction red;
    float scale;               /* 1/count for MEAN, 1 for SUM */
};

static void l1_backward(avsr_ctx *ctx, void *sv)
{
    struct l1_saved *s = sv;
    bool gx_on = avsr_tensor_requires_grad(s->x), gt_on = avsr_tensor_requires_grad(s->t);
    float *gx = gx_on ? avsr_tensor_grad(ctx, s->x) : NULL;  /* [numel] */
    float *gt = gt_on ? avsr_tensor_grad(ctx, s->t) : NULL;  /* [numel] */
    if ((gx_on && !gx) || (gt_on && !gt))
        return;
    const float *x = avsr_f32(s->x), *t = avsr_f32(s->t);
    const float *go = s->out->grad;
    const unsigned char *keep = s->keep;
    bool per_elem = s->red == AVSR_LOSS_NONE;
    float g0 = per_elem ? 0.0f : go[0] * s->scale;
    int64_t n = s->x->numel;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
        if (keep && !keep[i])
            continue;
        float d = x[i] - t[i];
        float sg = d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : 0.0f);
        float g = sg * (per_elem ? go[i] : g0);
        if (gx)
            gx[i] += g;
        if (gt)
            gt[i] -= g;
    }
}

/* Expand a broadcastable mask into one byte per element of x. Returns NULL
 * with the context's error set on a bad mask. */
static unsigned char *expand_mask(avsr_ctx *ctx, const avsr_tensor *x, const avsr_tensor *m,
                                  int64_t *count)
{
    char b1[96], b2[96];
    if (m->ndim > x->ndim)
        return avsr_ctx_fail(ctx, "l1_loss: mask %s has more dimensions than x %s",
                             avsr_shape_str(m, b1, sizeof b1), avsr_shape_str(x, b2, sizeof b2));
    int off = x->ndim - m->ndim;
    for (int d = 0; d < m->ndim; d++)
        if (m->shape[d] != 1 && m->shape[d] != x->shape[off + d])
            return avsr_ctx_fail(ctx, "l1_loss: mask %s is not broadcastable to x %s",
                                 avsr_shape_str(m, b1, sizeof b1),
                                 avsr_shape_str(x, b2, sizeof b2));
    if (m->dtype != AVSR_F32 && m->dtype != AVSR_U8 && m->dtype != AVSR_BOOL &&
        m->dtype != AVSR_I32 && m->dtype != AVSR_I64)
        return avsr_ctx_fail(ctx, "l1_loss: mask dtype %s, expected F32, U8, BOOL, I32 or I64",
                             avsr_dtype_name(m->dtype));
    int64_t n = x->numel;
    unsigned char *keep = avsr_ctx_alloc(ctx, (size_t)(n > 0 ? n : 1)); /* [numel] */
    if (!keep)
        return NULL;
    /* mask strides aligned to x's dimensions (0 where broadcast) */
    int64_t mstride[AVSR_MAX_DIMS] = {0};
    int64_t st = 1;
    for (int d = m->ndim - 1; d >= 0; d--) {
        mstride[off + d] = m->shape[d] == 1 ? 0 : st;
        st *= m->shape[d];
    }
    int nd = x->ndim;
    int64_t cnt = 0;
    int64_t idx[AVSR_MAX_DIMS] = {0};
    int64_t mi = 0;
    for (int64_t i = 0; i < n; i++) {
        bool on;
        switch (m->dtype) {
        case AVSR_F32: on = ((const float *)m->data)[mi] != 0.0f; break;
        case AVSR_I32: on = ((const int32_t *)m->data)[mi] != 0; break;
        case AVSR_I64: on = ((const int64_t *)m->data)[mi] != 0; break;
        default: on = ((const unsigned char *)m->data)[mi] != 0; break;
        }
        keep[i] = on;
        cnt += on;
        /* advance the multi-index of x and the mask offset */
        for (int d = nd - 1; d >= 0; d--) {
            idx[d]++;
            mi += mstride[d];
            if (idx[d] < x->shape[d])
                break;
            mi -= mstride[d] * idx[d];
            idx[d] = 0;
        }
    }
    *count = cnt;
    return keep;
}

avsr_tensor *avsr_op_l1_loss(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *target,
                             avsr_tensor *mask, avsr_loss_reduction reduction)
{
    if (!x || !target || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96], b2[96];
    if (x->dtype != AVSR_F32 || target->dtype != AVSR_F32)
        return avsr_ctx_fail(ctx, "l1_loss: x and target must be f32, got %s and %s",
                             avsr_dtype_name(x->dtype), avsr_dtype_name(target->dtype));
    if (!avsr_shape_equal(x, target))
        return avsr_ctx_fail(ctx, "l1_loss: target %s does not match x %s",
                             avsr_shape_str(target, b1, sizeof b1), avsr_shape_str(x, b2, sizeof b2));
    if (!reduction_ok(reduction))
        return avsr_ctx_fail(ctx, "l1_loss: unknown reduction %d", (int)reduction);
    int64_t n = x->numel, count = n;
    const unsigned char *keep = NULL;
    if (mask) {
        keep = expand_mask(ctx, x, mask, &count);
        if (!keep)
            return NULL;
    }
    const float *xd = avsr_f32(x), *td = avsr_f32(target);
    avsr_tensor *out;
    int64_t one = 1;
    float scale = 1.0f;
    if (reduction == AVSR_LOSS_NONE) {
        out = avsr_tensor_new(ctx, AVSR_F32, x->ndim, x->shape);
        if (!out)
            return NULL;
        float *o = avsr_f32(out); /* shape of x */
#pragma omp parallel for schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; i++)
            o[i] = (keep && !keep[i]) ? 0.0f : fabsf(xd[i] - td[i]);
    } else {
        out = avsr_tensor_new(ctx, AVSR_F32, 1, &one);
        if (!out)
            return NULL;
        double acc = 0.0;
#pragma omp parallel for reduction(+ : acc) schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; i++)
            if (!keep || keep[i])
                acc += fabsf(xd[i] - td[i]);
        if (reduction == AVSR_LOSS_MEAN) {
            scale = count ? 1.0f / (float)count : 0.0f;
            avsr_f32(out)[0] = count ? (float)(acc / (double)count) : NAN;
        } else {
            avsr_f32(out)[0] = (float)acc;
        }
    }
    avsr_tensor *ins[2] = {x, target};
    if (avsr_ctx_needs_grad(ctx, 2, ins)) {
        struct l1_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct l1_saved){x, target, out, keep, reduction, scale};
        out->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, l1_backward, out, s) < 0)
            return NULL;
    }
    return out;
}

/* ------------------------------------------------------------------ */
/* Cross-entropy with label smoothing                                   */
/* ------------------------------------------------------------------ */

struct ce_saved {
    avsr_tensor *logits, *out;
    const int64_t *tgt;  /* [N] class id, -1 = ignored row */
    const float *lse;    /* [N] log-sum-exp of each row */
    float q_on, q_off;   /* target distribution: q_on at the target, q_off elsewhere */
    float scale;         /* 1/denominator (MEAN) or 1 */
    avsr_loss_reduction red;
};

static void ce_backward(avsr_ctx *ctx, void *sv)
{
    struct ce_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->logits))
        return;
    float *g = avsr_tensor_grad(ctx, s->logits); /* [N, V] */
    if (!g)
        return;
    int64_t N = s->logits->shape[0], V = s->logits->shape[1];
    const float *x = avsr_f32(s->logits);
    const float *go = s->out->grad;
    bool per_row = s->red == AVSR_LOSS_NONE;
#pragma omp parallel for schedule(static) if (N * V > 16384)
    for (int64_t i = 0; i < N; i++) {
        int64_t y = s->tgt[i];
        if (y < 0)
            continue;
        float gr = (per_row ? go[i] : go[0]) * s->scale;
        const float *xr = x + i * V; /* [V] */
        float *gi = g + i * V;       /* [V] */
        float l = s->lse[i], off = s->q_off;
#pragma omp simd
        for (int64_t c = 0; c < V; c++)
            gi[c] += gr * (avsr_lfn_exp(xr[c] - l) - off);
        gi[y] -= gr * (s->q_on - off);
    }
}

/* x log x with 0 log 0 = 0 */
static double xlogx(double v) { return v > 0.0 ? v * log(v) : 0.0; }

avsr_tensor *avsr_op_cross_entropy(avsr_ctx *ctx, avsr_tensor *logits, avsr_tensor *targets,
                                   int64_t ignore_index, float label_smoothing,
                                   avsr_ls_mode ls_mode, avsr_loss_reduction reduction,
                                   int64_t denom)
{
    if (!logits || !targets || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96], b2[96];
    if (logits->dtype != AVSR_F32 || logits->ndim != 2)
        return avsr_ctx_fail(ctx, "cross_entropy: logits must be f32 [N, V], got %s %s",
                             avsr_dtype_name(logits->dtype), avsr_shape_str(logits, b1, sizeof b1));
    int64_t N = logits->shape[0], V = logits->shape[1];
    if (targets->dtype != AVSR_I64 && targets->dtype != AVSR_I32)
        return avsr_ctx_fail(ctx, "cross_entropy: targets must be I64 or I32, got %s",
                             avsr_dtype_name(targets->dtype));
    if (targets->ndim != 1 || targets->shape[0] != N)
        return avsr_ctx_fail(ctx, "cross_entropy: targets %s do not match logits %s (expected [%lld])",
                             avsr_shape_str(targets, b1, sizeof b1),
                             avsr_shape_str(logits, b2, sizeof b2), (long long)N);
    if (V < 1)
        return avsr_ctx_fail(ctx, "cross_entropy: logits %s have no classes",
                             avsr_shape_str(logits, b1, sizeof b1));
    if (!(label_smoothing >= 0.0f && label_smoothing < 1.0f))
        return avsr_ctx_fail(ctx, "cross_entropy: label_smoothing %g outside [0, 1)",
                             (double)label_smoothing);
    if (ls_mode != AVSR_LS_TORCH && ls_mode != AVSR_LS_ESPNET)
        return avsr_ctx_fail(ctx, "cross_entropy: unknown label smoothing mode %d", (int)ls_mode);
    if (ls_mode == AVSR_LS_ESPNET && V < 2)
        return avsr_ctx_fail(ctx, "cross_entropy: ESPnet label smoothing needs V >= 2, got %lld",
                             (long long)V);
    if (!reduction_ok(reduction))
        return avsr_ctx_fail(ctx, "cross_entropy: unknown reduction %d", (int)reduction);
    if (denom < 0)
        return avsr_ctx_fail(ctx, "cross_entropy: denom %lld is negative", (long long)denom);

    /* targets -> [N] int64 with -1 for ignored rows; check the range */
    int64_t *tgt = avsr_ctx_alloc(ctx, sizeof(int64_t) * (size_t)(N ? N : 1)); /* [N] */
    float *lse = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(N ? N : 1));     /* [N] */
    if (!tgt || !lse)
        return NULL;
    int64_t kept = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t y = targets->dtype == AVSR_I64 ? ((const int64_t *)targets->data)[i]
                                               : ((const int32_t *)targets->data)[i];
        if (y == ignore_index) {
            tgt[i] = -1;
            continue;
        }
        if (y < 0 || y >= V)
            return avsr_ctx_fail(ctx,
                                 "cross_entropy: target of row %lld is %lld, outside [0, %lld) "
                                 "and not ignore_index %lld",
                                 (long long)i, (long long)y, (long long)V, (long long)ignore_index);
        tgt[i] = y;
        kept++;
    }
    /* target distribution q and the constant sum q log q (ESPnet's KL) */
    double eps = label_smoothing;
    double q_on, q_off;
    if (ls_mode == AVSR_LS_TORCH) {
        q_on = 1.0 - eps + eps / (double)V;
        q_off = eps / (double)V;
    } else {
        q_on = 1.0 - eps;
        q_off = eps / (double)(V - 1);
    }
    double qlogq = ls_mode == AVSR_LS_ESPNET ? xlogx(q_on) + (double)(V - 1) * xlogx(q_off) : 0.0;

    float *row = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(N ? N : 1)); /* [N] */
    if (!row)
        return NULL;
    const float *x = avsr_f32(logits);
    double total = 0.0;
#pragma omp parallel for reduction(+ : total) schedule(static) if (N * V > 16384)
    for (int64_t i = 0; i < N; i++) {
        const float *xr = x + i * V; /* [V] */
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int64_t c = 0; c < V; c++)
            mx = xr[c] > mx ? xr[c] : mx;
        float se = 0.0f, sx = 0.0f;
#pragma omp simd reduction(+ : se, sx)
        for (int64_t c = 0; c < V; c++) {
            se += avsr_lfn_exp(xr[c] - mx);
            sx += xr[c];
        }
        float l = mx + logf(se);
        lse[i] = l;
        int64_t y = tgt[i];
        if (y < 0) {
            row[i] = 0.0f;
            continue;
        }
        /* -sum_c q_c log p_c = -(q_on - q_off) lp_y - q_off sum_c lp_c */
        double lpy = (double)xr[y] - l;
        double slp = (double)sx - (double)V * l;
        double ce = -(q_on - q_off) * lpy - q_off * slp;
        row[i] = (float)(ce + qlogq);
        total += ce + qlogq;
    }

    int64_t one = 1;
    avsr_tensor *out;
    float scale = 1.0f;
    if (reduction == AVSR_LOSS_NONE) {
        out = avsr_tensor_new(ctx, AVSR_F32, 1, &N);
        if (!out)
            return NULL;
        memcpy(out->data, row, sizeof(float) * (size_t)N);
    } else {
        out = avsr_tensor_new(ctx, AVSR_F32, 1, &one);
        if (!out)
            return NULL;
        if (reduction == AVSR_LOSS_MEAN) {
            int64_t d = denom > 0 ? denom : kept;
            scale = d ? 1.0f / (float)d : 0.0f;
            avsr_f32(out)[0] = d ? (float)(total / (double)d) : NAN;
        } else {
            avsr_f32(out)[0] = (float)total;
        }
    }
    if (avsr_ctx_needs_grad(ctx, 1, &logits)) {
        struct ce_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct ce_saved){logits, out, tgt, lse, (float)q_on, (float)q_off, scale, reduction};
        out->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, ce_backward, out, s) < 0)
            return NULL;
    }
    return out;
}
