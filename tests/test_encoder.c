/* test_encoder: attention, Conformer / Transformer encoder and attention
 * decoder (models/attention, conformer, decoder) against a PyTorch replica
 * of the ESPnet modules (tests/golden/gen_encoder.py), whose state dict is
 * loaded into our parameter stores BY NAME; finite-difference checks of the
 * attention blocks; fused vs unfused q/k/v; cached incremental decoding;
 * error messages.
 *
 * Tolerance of the golden comparisons: the replica runs in float64 on the
 * same float32 parameters, we run in float32; every comparison allows
 * 1e-4 relative error: |got - want| <= 1e-4 * (max|want| + |want|). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/attention.h"
#include "models/conformer.h"
#include "models/decoder.h"
#include "ops.h"
#include "params.h"
#include "safetensors.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"

#define REL 1e-4

static avsr_ctx *ctx;
static avsr_st *F1, *F2;

static bool close_rel(const char *what, const float *got, const float *want, int64_t n,
                      double rel)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs(want[i]));
    return tu_close(what, got, want, n, rel * (m > 0 ? m : 1.0), rel);
}

/* Compare a tensor with fixture tensor `name` (shape and values). */
static bool check(const char *what, const avsr_tensor *got, avsr_st *st, const char *name)
{
    if (!got) {
        tap_ok(false, "%s: no output: %s", what, avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
        return false;
    }
    avsr_tensor *want = tu_golden_tensor(st, name, false);
    bool ok;
    if (want->numel != got->numel) {
        char a[96], b[96];
        ok = tap_ok(false, "%s: shape %s vs golden %s", what, avsr_shape_str(got, a, sizeof a),
                    avsr_shape_str(want, b, sizeof b));
    } else {
        ok = close_rel(what, avsr_f32(got), avsr_f32(want), want->numel, REL);
    }
    avsr_tensor_free(want);
    return ok;
}

/* Load every parameter and buffer of p from st by name. Returns the number
 * of entries missing from the fixture (0 = all found). */
static int load_store(avsr_params *p, avsr_st *st)
{
    int missing = 0;
    for (int i = 0; i < avsr_params_count(p); i++) {
        avsr_tensor *t = avsr_params_at(p, i);
        avsr_st_tensor s;
        if (avsr_st_find(st, t->name, &s) < 0) {
            tap_diag("fixture lacks %s", t->name);
            missing++;
            continue;
        }
        if (t->dtype == AVSR_I64) {
            if (s.dtype == AVSR_I64 && s.numel == t->numel)
                memcpy(t->data, s.data, sizeof(int64_t) * (size_t)t->numel);
            else
                missing++;
            continue;
        }
        avsr_error err = {0};
        if (avsr_st_read_f32(st, t->name, t->ndim, t->shape, avsr_f32(t), &err) < 0) {
            tap_diag("%s", err.msg);
            missing++;
        }
    }
    return missing;
}

/* Fixture tensors under prefix (not ".after") that p does not have. */
static int unknown_names(avsr_params *p, avsr_st *st, const char *prefix)
{
    int n = 0;
    size_t lp = strlen(prefix);
    for (int i = 0; i < avsr_st_count(st); i++) {
        avsr_st_tensor s;
        avsr_st_get(st, i, &s);
        if (strncmp(s.name, prefix, lp) || strstr(s.name, ".after") || strstr(s.name, ".out") ||
            strstr(s.name, ".logits") || strstr(s.name, ".steps"))
            continue;
        if (!avsr_params_find(p, s.name)) {
            tap_diag("our model has no %s", s.name);
            n++;
        }
    }
    return n;
}

static avsr_conformer_cfg enc_cfg(void)
{
    avsr_conformer_cfg c;
    avsr_conformer_cfg_default(&c, 12, 24, 4, 28, 2);
    c.kernel = 5;
    c.dropout = c.pos_dropout = c.attn_dropout = 0.0f;
    return c;
}

static avsr_decoder_cfg dec_cfg(int layers)
{
    avsr_decoder_cfg c;
    avsr_decoder_cfg_default(&c, 13, 24, 4, 28, layers);
    c.dropout = c.pos_dropout = c.self_attn_dropout = c.src_attn_dropout = 0.0f;
    return c;
}

typedef struct model {
    avsr_params *p;
    avsr_conformer_encoder enc;
    avsr_decoder dec;
} model;

static void build_enc(model *m, const char *prefix, const avsr_conformer_cfg *cfg)
{
    avsr_error err = {0};
    m->p = avsr_params_create();
    if (avsr_conformer_encoder_init(&m->enc, m->p, prefix, cfg, &err) < 0 ||
        avsr_params_finalize(m->p, &err) < 0)
        tap_bail("encoder init: %s", err.msg);
}

static void build_dec(model *m, const char *prefix, const avsr_decoder_cfg *cfg)
{
    avsr_error err = {0};
    m->p = avsr_params_create();
    if (avsr_decoder_init(&m->dec, m->p, prefix, cfg, &err) < 0 ||
        avsr_params_finalize(m->p, &err) < 0)
        tap_bail("decoder init: %s", err.msg);
}

static int64_t lengths[3];
static int64_t B, T;

/* ---- golden: encoder ----------------------------------------------------- */

static void test_encoder_golden(model *E, model *TF)
{
    avsr_tensor *x = tu_golden_tensor(F1, "x", false);
    avsr_tensor *in0 = tu_golden_tensor(F1, "layer0.in", false);

    tap_ok(unknown_names(E->p, F1, "enc.") == 0 && load_store(E->p, F1) == 0,
           "encoder: every ESPnet state-dict name maps to one of our parameters and back (%d)",
           avsr_params_count(E->p));
    tap_ok(unknown_names(TF->p, F1, "tfm.") == 0 && load_store(TF->p, F1) == 0,
           "transformer encoder: state-dict names match (%d)", avsr_params_count(TF->p));

    avsr_ctx_set_training(ctx, false);
    avsr_ctx_set_grad(ctx, false);
    /* one Conformer layer (eval: BatchNorm running statistics) */
    avsr_tensor *pos = avsr_op_reshape(ctx, avsr_op_rel_positions(ctx, T, 24), 3,
                                       (int64_t[]){1, 2 * T - 1, 24});
    check("rel_positions equal RelPositionalEncoding's pos_emb", pos, F1, "layer0.pos");
    avsr_tensor *mask = avsr_pad_mask(ctx, B, T, lengths);
    avsr_tensor *y = avsr_conformer_layer_forward(ctx, &E->enc, 0, in0, pos, mask);
    check("one Conformer layer (eval, padding mask) equals ESPnet EncoderLayer", y, F1,
          "layer0.out_eval");
    avsr_ctx_reset(ctx);
    y = avsr_conformer_encoder_forward(ctx, &E->enc, x, lengths);
    check("2-layer Conformer encoder (eval, lengths 13/10/5) equals ESPnet", y, F1,
          "enc.out_eval");
    avsr_ctx_reset(ctx);
    y = avsr_conformer_encoder_forward(ctx, &TF->enc, x, lengths);
    check("pre-LN Transformer encoder (abs. positions, eval) equals ESPnet", y, F1,
          "tfm.out_eval");
    avsr_ctx_reset(ctx);

    /* training mode: ESPnet-exact BatchNorm (padding in the statistics),
     * then masked statistics with zeroed padding before the depthwise conv */
    avsr_ctx_set_training(ctx, true);
    E->enc.cfg.bn_mask = false;
    y = avsr_conformer_encoder_forward(ctx, &E->enc, x, lengths);
    check("encoder (train, ESPnet BatchNorm over all frames) equals ESPnet", y, F1,
          "enc.out_train_espnet");
    avsr_ctx_reset(ctx);
    load_store(E->p, F1);
    E->enc.cfg.bn_mask = true;
    E->enc.cfg.conv_zero_pad = true;
    y = avsr_conformer_encoder_forward(ctx, &E->enc, x, lengths);
    check("encoder (train, masked BN statistics, zeroed padding) equals the replica", y, F1,
          "enc.out_train_zeropad");
    avsr_ctx_reset(ctx);
    E->enc.cfg.conv_zero_pad = false;
    load_store(E->p, F1);
    avsr_ctx_set_training(ctx, false);
    avsr_tensor_free(x);
    avsr_tensor_free(in0);
}

/* ---- golden: joint encoder + decoder gradients ---------------------------- */

/* Every parameter gradient against grad.<name>. The tolerance of each
 * element is 1e-4 * (max|want| of its tensor + |want|), with a floor of
 * 1e-5 * the largest gradient of the whole model: a few gradients are zero
 * in exact arithmetic (biases in front of a BatchNorm in training mode,
 * linear_k.bias under the softmax's shift invariance) and hold only
 * rounding noise on both sides. */
static bool check_grads(avsr_params *p, avsr_st *st, int *count)
{
    bool all = true;
    int n = 0;
    double gmax = 0;
    for (int i = 0; i < avsr_params_count_trainable(p); i++) {
        avsr_tensor *t = avsr_params_at(p, i);
        for (int64_t k = 0; k < t->numel; k++)
            gmax = fmax(gmax, fabs(t->grad[k]));
    }
    for (int i = 0; i < avsr_params_count_trainable(p); i++) {
        avsr_tensor *t = avsr_params_at(p, i);
        char name[AVSR_NN_NAME_MAX + 8];
        snprintf(name, sizeof name, "grad.%s", t->name);
        avsr_tensor *want = tu_golden_tensor(st, name, false);
        double m = 0;
        const float *w = avsr_f32(want);
        for (int64_t k = 0; k < want->numel; k++)
            m = fmax(m, fabs(w[k]));
        int64_t bad = 0, worst = 0;
        double wx = 0;
        for (int64_t k = 0; k < want->numel; k++) {
            double e = fabs(t->grad[k] - w[k]), tol = REL * (m + fabs(w[k])) + 1e-5 * gmax;
            if (!(e <= tol))
                bad++;
            if (e / tol > wx) {
                wx = e / tol;
                worst = k;
            }
        }
        if (bad) {
            tap_diag("%s: %lld of %lld elements differ; worst %lld: %g vs %g", name,
                     (long long)bad, (long long)want->numel, (long long)worst,
                     t->grad[worst], w[worst]);
            all = false;
        }
        n++;
        avsr_tensor_free(want);
    }
    *count = n;
    return all;
}

static void test_joint(model *E, model *D)
{
    tap_ok(unknown_names(D->p, F2, "dec.") == 0 && load_store(D->p, F2) == 0,
           "decoder: every ESPnet state-dict name maps to one of our parameters and back (%d)",
           avsr_params_count(D->p));
    load_store(E->p, F1);
    avsr_params_zero_grad(E->p);
    avsr_params_zero_grad(D->p);
    avsr_tensor *x = tu_golden_tensor(F1, "x", false);
    avsr_tensor *R1 = tu_golden_tensor(F1, "R1", false);
    avsr_tensor *R2 = tu_golden_tensor(F2, "R2", false);
    avsr_st_tensor ys;
    avsr_st_find(F2, "ys", &ys);
    avsr_tensor *yst = avsr_tensor_wrap(ctx, AVSR_I64, 2, ys.shape, (void *)ys.data);

    avsr_ctx_set_training(ctx, true);
    avsr_ctx_set_grad(ctx, true);
    avsr_tensor *ys_in, *ys_out;
    int64_t ylen[3];
    avsr_decoder_make_inputs(ctx, yst, 12, 12, -1, 0, &ys_in, &ys_out, ylen);
    avsr_st_tensor a, b;
    avsr_st_find(F2, "ys_in", &a);
    avsr_st_find(F2, "ys_out", &b);
    tap_ok(ys_in && ys_in->numel == a.numel && !memcmp(ys_in->data, a.data, a.nbytes) &&
               !memcmp(ys_out->data, b.data, b.nbytes) && ylen[0] == 7 && ylen[2] == 3,
           "make_inputs equals ESPnet add_sos_eos (sos/eos/ignore padding)");

    avsr_tensor *eo = avsr_conformer_encoder_forward(ctx, &E->enc, x, lengths);
    avsr_tensor *lg = avsr_decoder_forward(ctx, &D->dec, ys_in, eo, lengths);
    avsr_tensor *loss =
        avsr_op_add(ctx, avsr_op_dot_const(ctx, eo, avsr_f32(R1)),
                    avsr_op_dot_const(ctx, lg, avsr_f32(R2)));
    if (!loss || avsr_backward(ctx, loss, NULL) < 0)
        tap_bail("joint forward/backward: %s", avsr_ctx_errmsg(ctx));
    check("encoder (train, masked BN) output equals the replica", eo, F1, "enc.out_train");
    check("decoder teacher-forcing logits equal ESPnet Decoder.forward", lg, F2, "dec.logits");
    check("joint loss", loss, F1, "loss");
    int n = 0;
    bool ok = check_grads(E->p, F1, &n);
    tap_ok(ok, "all %d encoder parameter gradients equal torch autograd", n);
    ok = check_grads(D->p, F2, &n);
    tap_ok(ok, "all %d decoder parameter gradients equal torch autograd", n);
    /* running statistics after one masked training forward */
    ok = true;
    for (int i = 0; i < avsr_params_count(E->p); i++) {
        avsr_tensor *t = avsr_params_at(E->p, i);
        if (!strstr(t->name, "running_"))
            continue;
        char name[AVSR_NN_NAME_MAX + 8];
        snprintf(name, sizeof name, "%s.after", t->name);
        avsr_tensor *want = tu_golden_tensor(F1, name, false);
        ok &= close_rel(name, avsr_f32(t), avsr_f32(want), t->numel, REL);
        avsr_tensor_free(want);
    }
    (void)ok;
    avsr_ctx_reset(ctx);
    avsr_ctx_set_training(ctx, false);
    avsr_ctx_set_grad(ctx, false);
    avsr_tensor_free(x);
    avsr_tensor_free(R1);
    avsr_tensor_free(R2);
}

/* ---- golden: decoder layer and incremental decoding ----------------------- */

static avsr_tensor *prefix_rows(avsr_ctx *c, const avsr_tensor *ys, int64_t l, const int64_t *rows,
                                int64_t n)
{
    avsr_tensor *t = avsr_tensor_new(c, AVSR_I64, 2, (int64_t[]){n, l});
    for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < l; j++)
            ((int64_t *)t->data)[r * l + j] =
                ((const int64_t *)ys->data)[(rows ? rows[r] : r) * ys->shape[1] + j];
    return t;
}

static void test_decoding(model *D)
{
    avsr_ctx_set_training(ctx, false);
    avsr_ctx_set_grad(ctx, false);
    avsr_decoder_cfg c1 = dec_cfg(1);
    model D1;
    build_dec(&D1, "dec", &c1);
    load_store(D1.p, F2);
    avsr_st_tensor s;
    avsr_st_find(F2, "ys_in", &s);
    avsr_tensor *ys_in = avsr_tensor_create(AVSR_I64, 2, s.shape, false);
    memcpy(ys_in->data, s.data, s.nbytes);
    avsr_tensor *mem = tu_golden_tensor(F2, "memory", false);
    avsr_tensor *steps = tu_golden_tensor(F2, "dec.steps", false); /* [L, B, V] */
    int64_t L = ys_in->shape[1], V = 13;

    avsr_tensor *lg = avsr_decoder_forward(ctx, &D1.dec, ys_in, mem, lengths);
    check("one decoder layer (self-, source attention, FFN) equals ESPnet DecoderLayer", lg, F2,
          "dec1.logits");
    avsr_ctx_reset(ctx);

    /* full forward log-softmax, kept on the heap */
    lg = avsr_op_log_softmax(ctx, avsr_decoder_forward(ctx, &D->dec, ys_in, mem, lengths), NULL);
    if (!lg)
        tap_bail("decoder forward: %s", avsr_ctx_errmsg(ctx));
    float *full = malloc(sizeof(float) * (size_t)lg->numel); /* [B, L, V] */
    memcpy(full, lg->data, sizeof(float) * (size_t)lg->numel);
    avsr_ctx_reset(ctx);

    avsr_error err = {0};
    avsr_decoder_cache *cache = avsr_decoder_cache_create(&D->dec, &err);
    bool ok_golden = true, ok_full = true;
    float *want = malloc(sizeof(float) * (size_t)(B * V));
    for (int64_t l = 1; l <= L; l++) {
        avsr_tensor *yp = prefix_rows(ctx, ys_in, l, NULL, B);
        avsr_tensor *lp = avsr_decoder_step(ctx, &D->dec, cache, yp, mem, lengths);
        if (!lp)
            tap_bail("decoder step: %s", avsr_ctx_errmsg(ctx));
        char what[96];
        snprintf(what, sizeof what, "step %lld equals ESPnet forward_one_step", (long long)l);
        ok_golden &= close_rel(what, avsr_f32(lp), avsr_f32(steps) + (l - 1) * B * V, B * V, REL);
        for (int64_t b = 0; b < B; b++)
            memcpy(want + b * V, full + (b * L + l - 1) * V, sizeof(float) * (size_t)V);
        snprintf(what, sizeof what, "step %lld equals the full forward's position %lld",
                 (long long)l, (long long)(l - 1));
        ok_full &= close_rel(what, avsr_f32(lp), want, B * V, 1e-5);
        avsr_ctx_reset(ctx);
    }
    tap_ok(ok_golden && ok_full && cache->len == L,
           "incremental decoding: all %lld steps match golden and full forward", (long long)L);

    /* a multi-position first step (empty cache), then single steps */
    avsr_decoder_cache_clear(cache);
    avsr_tensor *yp = prefix_rows(ctx, ys_in, L - 2, NULL, B);
    avsr_tensor *lp = avsr_decoder_step(ctx, &D->dec, cache, yp, mem, lengths);
    close_rel("a chunk of 5 positions at once equals step-by-step", avsr_f32(lp),
              avsr_f32(steps) + (L - 3) * B * V, B * V, REL);
    avsr_ctx_reset(ctx);

    /* beam re-ordering: keep rows {2, 0, 0}, continue with their prefixes */
    int64_t rows[3] = {2, 0, 0};
    tap_ok(avsr_decoder_cache_select(cache, rows, 3, &err) == 0, "cache_select");
    int64_t len2[3] = {lengths[2], lengths[0], lengths[0]};
    avsr_tensor *mem2 = avsr_tensor_new(ctx, AVSR_F32, 3, mem->shape);
    int64_t row = mem->shape[1] * mem->shape[2];
    for (int r = 0; r < 3; r++)
        memcpy(avsr_f32(mem2) + r * row, avsr_f32(mem) + rows[r] * row, sizeof(float) * row);
    yp = prefix_rows(ctx, ys_in, L - 1, rows, 3);
    lp = avsr_decoder_step(ctx, &D->dec, cache, yp, mem2, len2);
    for (int r = 0; r < 3; r++)
        memcpy(want + r * V, avsr_f32(steps) + ((L - 2) * B + rows[r]) * V, sizeof(float) * V);
    if (lp)
        close_rel("after cache_select {2, 0, 0} the next step follows the selected rows",
                  avsr_f32(lp), want, 3 * V, REL);
    else
        tap_ok(false, "step after select: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_reset(ctx);

    /* errors */
    yp = prefix_rows(ctx, ys_in, L - 1, NULL, 2);
    bool failed = !avsr_decoder_step(ctx, &D->dec, cache, yp, mem, lengths);
    tap_ok(failed && strstr(avsr_ctx_errmsg(ctx), "decoder step: cache holds 3 prefixes, ys_prefix has 2"),
           "step with another number of prefixes than the cache fails: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    yp = prefix_rows(ctx, ys_in, L - 2, NULL, 3);
    failed = !avsr_decoder_step(ctx, &D->dec, cache, yp, mem, lengths);
    tap_ok(failed && strstr(avsr_ctx_errmsg(ctx), "decoder step: cache already holds 6 positions"),
           "step with a prefix no longer than the cache fails: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);

    avsr_decoder_cache_free(cache);
    free(full);
    free(want);
    avsr_tensor_free(ys_in);
    avsr_tensor_free(mem);
    avsr_tensor_free(steps);
    avsr_decoder_free(&D1.dec);
    avsr_params_destroy(D1.p);
}

/* ---- finite differences on tiny attention blocks ------------------------- */

typedef struct gc_user {
    avsr_mha *m;
    avsr_conformer_encoder *enc;
    int kind; /* 0 self, 1 cross, 2 rel, 3 conformer layer */
    const int64_t *len;
} gc_user;

static avsr_tensor *gc_fn(avsr_ctx *c, avsr_tensor **in, void *user)
{
    gc_user *u = user;
    avsr_tensor *x = in[0];
    int64_t Bx = x->shape[0], Tx = x->shape[1];
    switch (u->kind) {
    case 0:
        return avsr_mha_forward(c, u->m, x, x, x, avsr_pad_mask(c, Bx, Tx, u->len), 7);
    case 1:
        return avsr_mha_forward(c, u->m, in[1], x, x, avsr_pad_mask(c, Bx, Tx, u->len), 7);
    case 2: {
        avsr_tensor *pos = avsr_op_reshape(c, avsr_op_rel_positions(c, Tx, u->m->d), 3,
                                           (int64_t[]){1, 2 * Tx - 1, u->m->d});
        return avsr_mha_rel_forward(c, u->m, x, pos, avsr_pad_mask(c, Bx, Tx, u->len), 7);
    }
    default: {
        avsr_tensor *pos = avsr_op_reshape(c, avsr_op_rel_positions(c, Tx, 8), 3,
                                           (int64_t[]){1, 2 * Tx - 1, 8});
        return avsr_conformer_layer_forward(c, u->enc, 0, x, pos,
                                            avsr_pad_mask(c, Bx, Tx, u->len));
    }
    }
}

static void gradcheck_mha(const char *name, bool rel, int kind)
{
    avsr_error err = {0};
    avsr_params *p = avsr_params_create();
    avsr_mha m;
    avsr_mha_cfg mc = {.d_model = 8, .heads = 2, .rel_pos = rel, .fuse_qkv = true};
    if (avsr_mha_init(&m, p, "att", &mc, &err) < 0 || avsr_params_finalize(p, &err) < 0 ||
        avsr_params_init(p, 5, &err) < 0)
        tap_bail("mha init: %s", err.msg);
    int64_t len[2] = {5, 3};
    avsr_tensor *x = tu_rand(3, (int64_t[]){2, 5, 8}, 11, -1, 1, true);
    avsr_tensor *q = tu_rand(3, (int64_t[]){2, 3, 8}, 12, -1, 1, true);
    avsr_tensor *in[16] = {x, kind == 1 ? q : NULL};
    int n = kind == 1 ? 2 : 1;
    for (int i = 0; i < avsr_params_count(p) && n < 16; i++)
        in[n++] = avsr_params_at(p, i);
    gc_user u = {.m = &m, .kind = kind, .len = len};
    tu_gc_opts o = {.eps = 1e-2, .atol = 1e-2, .rtol = 2e-2, .max_elems = 24};
    avsr_ctx_set_grad(ctx, true);
    tap_diag("%s: q/k/v weights contiguous (fused product when q = k = v): %s", name, avsr_mha_fused(&m) ? "yes" : "no");
    tu_gradcheck(name, ctx, gc_fn, &u, n, in, &o);
    avsr_ctx_set_grad(ctx, false);
    avsr_tensor_free(x);
    avsr_tensor_free(q);
    avsr_params_destroy(p);
}

static void gradcheck_layer(void)
{
    avsr_error err = {0};
    avsr_params *p = avsr_params_create();
    avsr_conformer_encoder enc;
    avsr_conformer_cfg c;
    avsr_conformer_cfg_default(&c, 0, 8, 2, 12, 1);
    c.kernel = 3;
    c.dropout = c.pos_dropout = c.attn_dropout = 0.0f;
    c.ffn_act = AVSR_ACT_SILU; /* smooth: no ReLU kinks under finite differences */
    if (avsr_conformer_encoder_init(&enc, p, "", &c, &err) < 0 ||
        avsr_params_finalize(p, &err) < 0 || avsr_params_init(p, 9, &err) < 0)
        tap_bail("layer init: %s", err.msg);
    int64_t len[2] = {5, 4};
    avsr_tensor *x = tu_rand(3, (int64_t[]){2, 5, 8}, 21, -1, 1, true);
    avsr_tensor *in[4] = {x, avsr_params_find(p, "encoders.0.conv_module.depthwise_conv.weight"),
                          avsr_params_find(p, "encoders.0.self_attn.pos_bias_v"),
                          avsr_params_find(p, "encoders.0.feed_forward_macaron.w_1.weight")};
    gc_user u = {.enc = &enc, .kind = 3, .len = len};
    tu_gc_opts o = {.eps = 1e-2, .atol = 1e-2, .rtol = 3e-2, .max_elems = 24};
    avsr_ctx_set_grad(ctx, true);
    avsr_ctx_set_training(ctx, false); /* BN running statistics: a fixed affine map */
    tu_gradcheck("Conformer layer (d 8, T 5, eval BN, SiLU FFN)", ctx, gc_fn, &u, 4, in, &o);
    avsr_ctx_set_grad(ctx, false);
    avsr_tensor_free(x);
    avsr_conformer_encoder_free(&enc);
    avsr_params_destroy(p);
}

/* ---- fused vs unfused q/k/v ------------------------------------------------ */

static void test_fused(int64_t d, bool rel)
{
    avsr_error err = {0};
    avsr_params *p = avsr_params_create();
    avsr_mha m;
    avsr_mha_cfg mc = {.d_model = d, .heads = 4, .rel_pos = rel, .fuse_qkv = true};
    if (avsr_mha_init(&m, p, "a", &mc, &err) < 0 || avsr_params_finalize(p, &err) < 0 ||
        avsr_params_init(p, 3, &err) < 0)
        tap_bail("mha init: %s", err.msg);
    int64_t Bf = 2, Tf = 9, len[2] = {9, 6};
    avsr_tensor *x = tu_rand(3, (int64_t[]){Bf, Tf, d}, 5, -1, 1, true);
    float *out[2], *g[2], *gx[2];
    int64_t flat = avsr_params_flat_size(p);
    avsr_ctx_set_grad(ctx, true);
    for (int f = 0; f < 2; f++) {
        m.fuse_qkv = f == 0;
        avsr_params_zero_grad(p);
        memset(x->grad, 0, sizeof(float) * (size_t)x->numel);
        avsr_tensor *mask = avsr_pad_mask(ctx, Bf, Tf, len);
        avsr_tensor *y;
        if (rel) {
            avsr_tensor *pos = avsr_op_reshape(ctx, avsr_op_rel_positions(ctx, Tf, d), 3,
                                               (int64_t[]){1, 2 * Tf - 1, d});
            y = avsr_mha_rel_forward(ctx, &m, x, pos, mask, 0);
        } else {
            y = avsr_mha_forward(ctx, &m, x, x, x, mask, 0);
        }
        float *r = malloc(sizeof(float) * (size_t)y->numel);
        tu_fill_uniform(r, y->numel, 77, -1, 1);
        avsr_backward(ctx, avsr_op_dot_const(ctx, y, r), NULL);
        free(r);
        out[f] = malloc(sizeof(float) * (size_t)y->numel);
        memcpy(out[f], y->data, sizeof(float) * (size_t)y->numel);
        g[f] = malloc(sizeof(float) * (size_t)flat);
        memcpy(g[f], avsr_params_grad(p), sizeof(float) * (size_t)flat);
        gx[f] = malloc(sizeof(float) * (size_t)x->numel);
        memcpy(gx[f], x->grad, sizeof(float) * (size_t)x->numel);
        avsr_ctx_reset(ctx);
    }
    m.fuse_qkv = true;
    char what[128];
    snprintf(what, sizeof what, "%s d=%lld: fused (%s bias view) and three products agree",
             rel ? "rel-pos" : "plain", (long long)d, d % 16 ? "concatenated" : "contiguous");
    bool ok = avsr_mha_fused(&m) && close_rel(what, out[0], out[1], Bf * Tf * d, 1e-5);
    snprintf(what, sizeof what, "  ... parameter gradients agree");
    ok &= close_rel(what, g[0], g[1], flat, 1e-5);
    snprintf(what, sizeof what, "  ... input gradients agree");
    ok &= close_rel(what, gx[0], gx[1], x->numel, 1e-5);
    (void)ok;
    avsr_ctx_set_grad(ctx, false);
    for (int f = 0; f < 2; f++) {
        free(out[f]);
        free(g[f]);
        free(gx[f]);
    }
    avsr_tensor_free(x);
    avsr_params_destroy(p);
}

/* ---- errors ---------------------------------------------------------------- */

/* The call has run (failed = it returned NULL); check the message. */
static void expect_fail(bool failed, const char *msg, const char *what)
{
    const char *e = avsr_ctx_errmsg(ctx);
    tap_ok(failed && strstr(e, msg), "%s: %s", what, e);
    avsr_ctx_clear_error(ctx);
}

static void test_errors(model *E)
{
    avsr_error err = {0};
    avsr_params *p = avsr_params_create();
    avsr_mha m;
    avsr_mha_cfg bad = {.d_model = 10, .heads = 4};
    tap_ok(avsr_mha_init(&m, p, "att", &bad, &err) < 0 &&
               strstr(err.msg, "att: attention with d_model 10 and 4 heads"),
           "init: d_model not a multiple of heads: %s", err.msg);
    avsr_params_destroy(p);

    avsr_tensor *x = avsr_tensor_zeros(ctx, AVSR_F32, 3, (int64_t[]){2, 5, 24});
    avsr_tensor *mbad = avsr_tensor_zeros(ctx, AVSR_U8, 3, (int64_t[]){2, 1, 4});
    expect_fail(!avsr_mha_forward(ctx, &E->dec.layers[0].self_attn, x, x, x, mbad, 0),
                "attention: mask: got [2, 1, 4], expected [2 or 1, 5 or 1, 5]", "bad mask shape");
    expect_fail(!avsr_mha_forward(ctx, &E->enc.layers[0].self_attn, x, x, x, NULL, 0),
                "attention: relative-position module called without pos_emb",
                "rel-pos module through the plain entry");
    avsr_tensor *pos = avsr_tensor_zeros(ctx, AVSR_F32, 3, (int64_t[]){1, 8, 24});
    expect_fail(!avsr_mha_rel_forward(ctx, &E->enc.layers[0].self_attn, x, pos, NULL, 0),
                "attention: pos_emb: got [1, 8, 24], expected [1, 9, 24]",
                "pos_emb of the wrong length");
    int64_t badlen[2] = {5, 6};
    expect_fail(!avsr_pad_mask(ctx, 2, 5, badlen), "pad mask: lengths[1] = 6 outside [0, 5]",
                "length beyond T");
    avsr_tensor *xi = avsr_tensor_zeros(ctx, AVSR_F32, 3, (int64_t[]){2, 5, 11});
    expect_fail(!avsr_conformer_encoder_forward(ctx, &E->enc, xi, NULL),
                "conformer encoder: x: got [2, 5, 11], expected [B, T, 12] f32",
                "encoder input width");
    avsr_tensor *q = avsr_tensor_zeros(ctx, AVSR_F32, 3, (int64_t[]){2, 3, 24});
    avsr_tensor *k = avsr_tensor_zeros(ctx, AVSR_F32, 3, (int64_t[]){2, 4, 24});
    expect_fail(!avsr_mha_forward(ctx, &E->dec.layers[0].src_attn, q, k, x, NULL, 0),
                "attention: batch/length mismatch: query [2, 3], key [2, 4], value [2, 5]",
                "key and value of different lengths");
    avsr_ctx_reset(ctx);
}

int main(void)
{
    ctx = tu_ctx();
    F1 = tu_golden_open("encoder");
    F2 = tu_golden_open("encoder_dec");
    avsr_st_tensor s;
    avsr_st_find(F1, "lengths", &s);
    memcpy(lengths, s.data, sizeof lengths);
    avsr_st_find(F1, "x", &s);
    B = s.shape[0];
    T = s.shape[1];

    avsr_conformer_cfg ec = enc_cfg(), tc;
    avsr_transformer_cfg_default(&tc, 12, 24, 4, 28, 1);
    tc.dropout = tc.pos_dropout = tc.attn_dropout = 0.0f;
    avsr_decoder_cfg dc = dec_cfg(2);
    model E, TF, D;
    build_enc(&E, "enc", &ec);
    build_enc(&TF, "tfm", &tc);
    build_dec(&D, "dec", &dc);

    test_encoder_golden(&E, &TF);
    test_joint(&E, &D);
    test_decoding(&D);

    gradcheck_mha("self-attention (d 8, 2 heads, key padding)", false, 0);
    gradcheck_mha("cross-attention (3 queries over 5 keys)", false, 1);
    gradcheck_mha("rel-pos self-attention (ESPnet latest)", true, 2);
    gradcheck_layer();
    test_fused(32, false);
    test_fused(24, false);
    test_fused(32, true);

    E.dec = D.dec; /* for the error tests: a plain attention module */
    test_errors(&E);

    avsr_conformer_encoder_free(&E.enc);
    avsr_conformer_encoder_free(&TF.enc);
    avsr_decoder_free(&D.dec);
    avsr_params_destroy(E.p);
    avsr_params_destroy(TF.p);
    avsr_params_destroy(D.p);
    avsr_st_close(F1);
    avsr_st_close(F2);
    avsr_ctx_destroy(ctx);
    return tap_done();
}
