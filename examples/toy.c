/* toy: CTC on a synthetic token stream (see toy.h). */
#include "toy.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "lrsched.h"
#include "ops.h"
#include "optim.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "tape.h"

#define TOY_FEAT 16   /* feature dimension of a frame */
#define TOY_MAXLEN 6  /* tokens per utterance: 3..6 */
#define TOY_MAXT 48   /* frames: 6 tokens x 4 + 7 silences x 2 + margin */
#define TOY_VALID 64  /* held-out utterances */

void avsr_toy_defaults(avsr_toy_opts *o)
{
    memset(o, 0, sizeof *o);
    o->steps = 300;
    o->batch = 16;
    o->hidden = 64;
    o->tokens = 8;
    o->noise = 0.6f;
    o->lr = 3e-3f;
    o->seed = 1;
}

/* One utterance: frames [T, F] written into x (row stride TOY_FEAT), labels. */
typedef struct utt {
    int T, L;
    int64_t labels[TOY_MAXLEN];
} utt;

static void make_utt(const avsr_toy_opts *o, const float *emb /* [K+1, F] */, uint64_t id,
                     float *x /* [TOY_MAXT, F] */, utt *u)
{
    avsr_rng r;
    avsr_rng_init(&r, o->seed, 0, id, AVSR_RNG_NOISE);
    u->L = 3 + (int)avsr_rng_below(&r, TOY_MAXLEN - 2);
    int t = 0;
    int64_t prev = -1;
    for (int i = 0; i < u->L; i++) {
        int64_t tok = 1 + avsr_rng_below(&r, (uint32_t)o->tokens);
        /* silence: 0-2 frames, at least 1 between equal tokens */
        int sil = (int)avsr_rng_below(&r, 3);
        if (tok == prev && sil == 0)
            sil = 1;
        int dur = 2 + (int)avsr_rng_below(&r, 3);
        for (int k = 0; k < sil + dur; k++, t++) {
            int64_t c = k < sil ? 0 : tok;
            for (int f = 0; f < TOY_FEAT; f++)
                x[t * TOY_FEAT + f] = emb[c * TOY_FEAT + f] + o->noise * avsr_rng_normal(&r);
        }
        u->labels[i] = tok;
        prev = tok;
    }
    u->T = t;
}

/* Batch [B, F, Tmax] (channels first for conv1d), zero padded. */
static void make_batch(const avsr_toy_opts *o, const float *emb, uint64_t first_id, int B,
                       float *xb /* [B, F, TOY_MAXT] */, utt *us)
{
    float frames[TOY_MAXT * TOY_FEAT];
    memset(xb, 0, sizeof(float) * (size_t)B * TOY_FEAT * TOY_MAXT);
    for (int b = 0; b < B; b++) {
        make_utt(o, emb, first_id + (uint64_t)b, frames, &us[b]);
        for (int t = 0; t < us[b].T; t++)
            for (int f = 0; f < TOY_FEAT; f++)
                xb[((size_t)b * TOY_FEAT + f) * TOY_MAXT + t] = frames[t * TOY_FEAT + f];
    }
}

typedef struct model {
    avsr_params *p;
    avsr_tensor *w1, *b1, *w2, *b2, *w3, *b3;
} model;

static void init_uniform(avsr_tensor *t, int64_t fan_in, uint64_t seed, uint32_t which)
{
    avsr_rng r;
    avsr_rng_init(&r, seed, 0, which, AVSR_RNG_INIT);
    float bound = 1.0f / sqrtf((float)fan_in); /* torch's default for conv/linear */
    float *d = avsr_f32(t);
    for (int64_t i = 0; i < t->numel; i++)
        d[i] = bound * (2.0f * avsr_rng_uniform(&r) - 1.0f);
}

static int model_build(model *m, const avsr_toy_opts *o, avsr_error *err)
{
    int H = o->hidden, C = o->tokens + 1;
    m->p = avsr_params_create();
    if (!m->p)
        return AVSR_NOMEM(err, 0);
    int64_t s1[3] = {H, TOY_FEAT, 5}, s2[3] = {H, H, 3}, s3[2] = {C, H}, sh[1] = {H},
            sc[1] = {C};
    if (!(m->w1 = avsr_params_add(m->p, "conv1.weight", 3, s1, err)) ||
        !(m->b1 = avsr_params_add(m->p, "conv1.bias", 1, sh, err)) ||
        !(m->w2 = avsr_params_add(m->p, "conv2.weight", 3, s2, err)) ||
        !(m->b2 = avsr_params_add(m->p, "conv2.bias", 1, sh, err)) ||
        !(m->w3 = avsr_params_add(m->p, "ctc.weight", 2, s3, err)) ||
        !(m->b3 = avsr_params_add(m->p, "ctc.bias", 1, sc, err)) ||
        avsr_params_finalize(m->p, err) < 0)
        return -1;
    init_uniform(m->w1, TOY_FEAT * 5, o->seed, 1);
    init_uniform(m->b1, TOY_FEAT * 5, o->seed, 2);
    init_uniform(m->w2, (int64_t)H * 3, o->seed, 3);
    init_uniform(m->b2, (int64_t)H * 3, o->seed, 4);
    init_uniform(m->w3, H, o->seed, 5);
    init_uniform(m->b3, H, o->seed, 6);
    return 0;
}

/* logits [B, T, C] from x [B, F, T] */
static avsr_tensor *model_forward(avsr_ctx *ctx, model *m, avsr_tensor *x)
{
    avsr_tensor *h = avsr_op_relu(ctx, avsr_op_conv1d(ctx, x, m->w1, m->b1, 1, 2, 1, 1));
    h = avsr_op_relu(ctx, avsr_op_conv1d(ctx, h, m->w2, m->b2, 1, 1, 1, 1));
    h = avsr_op_transpose(ctx, h, 1, 2); /* [B, T, H] */
    return avsr_op_linear(ctx, h, m->w3, m->b3);
}

static int edit_distance(const int64_t *a, int na, const int64_t *b, int nb)
{
    int d[TOY_MAXT + 1][TOY_MAXLEN + 1];
    for (int i = 0; i <= na; i++)
        d[i][0] = i;
    for (int j = 0; j <= nb; j++)
        d[0][j] = j;
    for (int i = 1; i <= na; i++)
        for (int j = 1; j <= nb; j++) {
            int s = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = s < del ? (s < ins ? s : ins) : (del < ins ? del : ins);
        }
    return d[na][nb];
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int avsr_toy_run(const avsr_toy_opts *o, avsr_toy_result *res, avsr_error *err)
{
    int rc = -1, B = o->batch, C = o->tokens + 1;
    model m = {0};
    avsr_optim *opt = NULL;
    avsr_ctx *ctx = NULL;
    float *xb = NULL, emb[61 * TOY_FEAT]; /* [K+1, F], K <= 60 */
    utt *us = NULL;
    memset(res, 0, sizeof *res);
    if (o->tokens < 2 || o->tokens > 60 || B < 1 || o->steps < 20 || o->hidden < 1)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "toy: need 2..60 tokens, batch >= 1, steps >= 20, hidden >= 1");
    /* token feature vectors (row 0 = silence = zeros) */
    avsr_rng r;
    avsr_rng_init(&r, o->seed, 0, 0, AVSR_RNG_INIT + 100);
    memset(emb, 0, sizeof emb);
    for (int i = TOY_FEAT; i < (o->tokens + 1) * TOY_FEAT; i++)
        emb[i] = avsr_rng_normal(&r);

    if (!(ctx = avsr_ctx_create(NULL, err)) || model_build(&m, o, err) < 0)
        goto out;
    avsr_optim_cfg oc = avsr_optim_defaults(AVSR_OPTIM_ADAMW);
    oc.weight_decay = 0.01;
    if (!(opt = avsr_optim_create(&oc, err)))
        goto out;
    avsr_lrsched sched = avsr_lrsched_defaults(AVSR_LRSCHED_COSINE, o->lr);
    sched.warmup_steps = o->steps / 10;
    sched.total_steps = o->steps;
    if (avsr_lrsched_check(&sched, err) < 0)
        goto out;
    res->params = avsr_params_numel_trainable(m.p);
    xb = malloc(sizeof(float) * (size_t)(B > TOY_VALID ? B : TOY_VALID) * TOY_FEAT * TOY_MAXT);
    us = malloc(sizeof(utt) * (size_t)(B > TOY_VALID ? B : TOY_VALID));
    if (!xb || !us) {
        AVSR_NOMEM(err, 0);
        goto out;
    }
    double t0 = now(), acc_first = 0, acc_last = 0;
    for (int step = 0; step < o->steps; step++) {
        /* training utterances have ids from 1e6 on; held-out ones below 64 */
        make_batch(o, emb, 1000000 + (uint64_t)step * B, B, xb, us);
        int64_t xs[3] = {B, TOY_FEAT, TOY_MAXT};
        int64_t in_len[B], tgt_len[B], tgt[B * TOY_MAXLEN];
        int ntgt = 0;
        for (int b = 0; b < B; b++) {
            in_len[b] = us[b].T;
            tgt_len[b] = us[b].L;
            for (int i = 0; i < us[b].L; i++)
                tgt[ntgt++] = us[b].labels[i];
        }
        avsr_tensor *x = avsr_tensor_wrap(ctx, AVSR_F32, 3, xs, xb);
        avsr_tensor *logits = model_forward(ctx, &m, x);
        avsr_tensor *loss = avsr_op_ctc_loss(ctx, logits, in_len, tgt, tgt_len, 0,
                                             AVSR_LOSS_SUM, false);
        avsr_tensor *mean = avsr_op_scale(ctx, loss, 1.0f / (float)B);
        avsr_params_zero_grad(m.p);
        if (avsr_backward(ctx, mean, NULL) < 0 || avsr_ctx_take_error(ctx, err) < 0)
            goto out;
        double l = avsr_f32(mean)[0];
        double gnorm;
        avsr_optim_clip_grad_norm(m.p, 5.0f, &gnorm);
        float lr = (float)avsr_lrsched_lr(&sched, step, 0);
        if (avsr_optim_step(opt, m.p, lr, err) < 0)
            goto out;
        if (step < 10)
            acc_first += l / 10;
        if (step >= o->steps - 10)
            acc_last += l / 10;
        if (o->log && (step % 25 == 0 || step == o->steps - 1))
            fprintf(o->log, "step %4d  loss %8.4f  lr %.2e  grad-norm %.3f\n", step, l, lr, gnorm);
        avsr_ctx_reset(ctx);
    }
    res->seconds = now() - t0;
    res->first_loss = acc_first;
    res->final_loss = acc_last;
    res->arena_peak = avsr_ctx_arena_peak(ctx);

    /* held-out greedy decoding */
    avsr_ctx_set_grad(ctx, false);
    avsr_ctx_set_training(ctx, false);
    make_batch(o, emb, 0, TOY_VALID, xb, us);
    int64_t xs[3] = {TOY_VALID, TOY_FEAT, TOY_MAXT};
    avsr_tensor *logits = model_forward(ctx, &m, avsr_tensor_wrap(ctx, AVSR_F32, 3, xs, xb));
    if (avsr_ctx_take_error(ctx, err) < 0)
        goto out;
    long errs = 0, words = 0;
    for (int b = 0; b < TOY_VALID; b++) {
        int64_t hyp[TOY_MAXT];
        int nh = 0;
        int64_t prev = 0;
        for (int t = 0; t < us[b].T; t++) {
            const float *row = avsr_f32(logits) + ((size_t)b * TOY_MAXT + t) * C;
            int64_t best = 0;
            for (int c = 1; c < C; c++)
                if (row[c] > row[best])
                    best = c;
            if (best != 0 && best != prev && nh < TOY_MAXT)
                hyp[nh++] = best;
            prev = best;
        }
        int nhc = nh < TOY_MAXT ? nh : TOY_MAXT;
        errs += edit_distance(hyp, nhc > TOY_MAXT ? TOY_MAXT : nhc, us[b].labels, us[b].L);
        words += us[b].L;
    }
    res->token_error = (double)errs / (double)words;
    avsr_ctx_reset(ctx);

    if (o->save) {
        avsr_st_writer *w = avsr_st_writer_create();
        int ok = w != NULL;
        for (int i = 0; ok && i < avsr_params_count(m.p); i++) {
            avsr_tensor *t = avsr_params_at(m.p, i);
            ok = avsr_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, err) == 0;
        }
        ok = ok && avsr_st_writer_meta(w, "model", "avsr toy ctc convnet", err) == 0 &&
             avsr_st_writer_write(w, o->save, err) == 0;
        avsr_st_writer_destroy(w);
        if (!ok)
            goto out;
    }
    rc = 0;
out:
    free(xb);
    free(us);
    avsr_optim_destroy(opt);
    avsr_params_destroy(m.p);
    avsr_ctx_destroy(ctx);
    return rc;
}
