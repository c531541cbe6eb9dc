/* test_lora: LoRA adapters (models/lora.h): attaching by pattern through
 * the tracking of avsr_nn_linear_init, PEFT's initialisation, golden
 * forward and gradients against a PyTorch replica with a frozen base (the
 * base gets no gradient), merge equals the unmerged output, export without
 * adapter tensors, dropout on the adapter input, finite-difference checks,
 * an attention block with adapters, bad arguments, and one adapter per
 * linear however it was tracked (automatic q/k/v, avsr_lora_track_mha, a
 * second set). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fe_golden.h"
#include "models/attention.h"
#include "models/builder.h"
#include "models/lora.h"
#include "ops.h"
#include "safetensors.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"

/* Golden tolerance: float32 products of at most 13 terms on both sides
 * (oneDNN vs ATen, different summation order): errors ~1e-7 relative. */
#define ATOL 1e-5
#define RTOL 1e-5

static void copy_in(avsr_tensor *dst, avsr_st *st, const char *key)
{
    avsr_tensor *t = tu_golden_tensor(st, key, false);
    if (t->numel != dst->numel)
        tap_bail("%s: %lld values, parameter has %lld", key, (long long)t->numel,
                 (long long)dst->numel);
    memcpy(dst->data, t->data, (size_t)t->numel * sizeof(float));
    avsr_tensor_free(t);
}

static bool all_zero(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (x[i] != 0.0f)
            return false;
    return true;
}

static void golden(avsr_ctx *ctx, avsr_st *st, const char *c)
{
    char key[128];
    avsr_error err = {0};
    avsr_tensor *W0 = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.W", c), key), false);
    avsr_tensor *A0 = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.A", c), key), false);
    int64_t out = W0->shape[0], in = W0->shape[1], r = A0->shape[0];
    double alpha = atof(strstr(tu_golden_meta(st, c), "\"alpha\": ") + 9);
    avsr_tensor_free(W0);
    avsr_tensor_free(A0);

    avsr_params *p = avsr_params_create();
    avsr_nn_linear q, k;
    avsr_lora *l = avsr_lora_create();
    avsr_lora_track_begin(l);
    if (avsr_nn_linear_init(&q, p, "enc.layers.0.self_attn.linear_q", in, out, true, &err) < 0 ||
        avsr_nn_linear_init(&k, p, "enc.layers.0.self_attn.linear_k", in, out, true, &err) < 0)
        tap_bail("%s", err.msg);
    avsr_lora_track_end(l);
    const char *targets[] = {"*.self_attn.linear_q", "*.feed_forward.*"};
    int n = avsr_lora_attach(l, p, targets, 2, (int)r, (float)alpha, 0.0f, &err);
    tap_ok(n == 1 && q.lora && !k.lora && avsr_lora_count(l) == 1,
           "%s: attach wraps the one matching layer (%d) %s", c, n, err.msg);
    avsr_tensor *A = avsr_params_find(p, "enc.layers.0.self_attn.linear_q.lora_A.weight");
    avsr_tensor *B = avsr_params_find(p, "enc.layers.0.self_attn.linear_q.lora_B.weight");
    tap_ok(A && B && A->shape[0] == r && A->shape[1] == in && B->shape[0] == out &&
               B->shape[1] == r && q.lora->A == A && q.lora->B == B &&
               fabsf(q.lora->scale - (float)(alpha / r)) < 1e-7f,
           "%s: lora_A [%lld, %lld], lora_B [%lld, %lld] registered by name, scale alpha/r", c,
           (long long)r, (long long)in, (long long)out, (long long)r);
    if (avsr_params_finalize(p, &err) < 0 || avsr_params_init(p, 5, &err) < 0)
        tap_bail("%s", err.msg);
    float bound = 1.0f / sqrtf((float)in), amax = 0.0f;
    for (int64_t i = 0; i < A->numel; i++)
        amax = fmaxf(amax, fabsf(avsr_f32(A)[i]));
    tap_ok(all_zero(avsr_f32(B), B->numel) && amax <= bound && amax > 0.3f * bound,
           "%s: init as PEFT: B = 0, A ~ U(+-1/sqrt(in)) (max |A| %.3f, bound %.3f)", c,
           (double)amax, (double)bound);

    /* at init the wrapped layer computes the base layer */
    avsr_tensor *x = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.x", c), key), true);
    avsr_tensor *y0 = avsr_nn_linear_forward(ctx, &q, x);
    avsr_tensor *yb = avsr_op_linear(ctx, x, q.weight, q.bias);
    tap_ok(y0 && yb && memcmp(y0->data, yb->data, (size_t)y0->numel * 4) == 0,
           "%s: B = 0: output equals the base layer's", c);
    avsr_ctx_reset(ctx);

    copy_in(q.weight, st, (snprintf(key, sizeof key, "%s.W", c), key));
    copy_in(q.bias, st, (snprintf(key, sizeof key, "%s.b", c), key));
    copy_in(A, st, (snprintf(key, sizeof key, "%s.A", c), key));
    copy_in(B, st, (snprintf(key, sizeof key, "%s.B", c), key));
    int tr = avsr_lora_freeze_base(l, p);
    tap_ok(tr == 2 && !avsr_tensor_requires_grad(q.weight) && !avsr_tensor_requires_grad(k.bias) &&
               avsr_tensor_requires_grad(A) && avsr_tensor_requires_grad(B),
           "%s: freeze_base leaves only lora_A / lora_B trainable (%d)", c, tr);
    avsr_params_zero_grad(p);
    memset(x->grad, 0, (size_t)x->numel * sizeof(float));
    avsr_tensor *y = avsr_nn_linear_forward(ctx, &q, x);
    snprintf(key, sizeof key, "%s.y", c);
    avsr_tensor *want = tu_golden_tensor(st, key, false);
    tu_close("forward matches the PyTorch LoRA replica", avsr_f32(y), avsr_f32(want), y->numel,
             ATOL, RTOL);
    avsr_tensor *R = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.R", c), key), false);
    avsr_backward(ctx, avsr_op_dot_const(ctx, y, avsr_f32(R)), NULL);
    avsr_tensor *g;
    g = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.g_A", c), key), false);
    tu_close("grad lora_A", A->grad, avsr_f32(g), g->numel, ATOL, RTOL);
    avsr_tensor_free(g);
    g = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.g_B", c), key), false);
    tu_close("grad lora_B", B->grad, avsr_f32(g), g->numel, ATOL, RTOL);
    avsr_tensor_free(g);
    g = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.g_x", c), key), false);
    tu_close("grad x (through base and adapter)", x->grad, avsr_f32(g), g->numel, ATOL, RTOL);
    avsr_tensor_free(g);
    tap_ok(all_zero(q.weight->grad, q.weight->numel) && all_zero(q.bias->grad, q.bias->numel),
           "%s: the frozen base weight and bias get no gradient", c);
    avsr_ctx_reset(ctx);

    /* merged weight, export, in-place merge */
    float *mw = malloc((size_t)q.weight->numel * sizeof(float));
    avsr_lora_merged_weight(l, 0, mw);
    g = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.merged", c), key), false);
    tu_close("merged weight W + scale B A matches PyTorch", mw, avsr_f32(g), g->numel, ATOL, RTOL);
    avsr_tensor_free(g);
    char path[64];
    snprintf(path, sizeof path, "lora_export_%d_%s.safetensors", (int)getpid(), c);
    const char *meta_kv[2] = {"note", "merged"};
    int rc = avsr_lora_export(l, p, path, meta_kv, 1, &err);
    avsr_st *ex = rc == 0 ? avsr_st_open(path, &err) : NULL;
    bool no_lora = ex != NULL, same = ex != NULL;
    for (int i = 0; ex && i < avsr_st_count(ex); i++) {
        avsr_st_tensor s;
        avsr_st_get(ex, i, &s);
        no_lora = no_lora && !strstr(s.name, "lora_");
    }
    avsr_st_tensor sw, sb2;
    same = same && avsr_st_find(ex, "enc.layers.0.self_attn.linear_q.weight", &sw) == 0 &&
           memcmp(sw.data, mw, (size_t)q.weight->numel * 4) == 0 &&
           avsr_st_find(ex, "enc.layers.0.self_attn.linear_k.bias", &sb2) == 0 &&
           memcmp(sb2.data, k.bias->data, (size_t)k.bias->numel * 4) == 0;
    tap_ok(ex && avsr_st_count(ex) == 4 && no_lora && same &&
               avsr_st_meta(ex, "note") && strcmp(avsr_st_meta(ex, "note"), "merged") == 0,
           "%s: export has the 4 base tensors, merged weight, no lora tensor %s", c, err.msg);
    if (ex)
        avsr_st_close(ex);
    unlink(path);
    tap_ok(memcmp(q.weight->data, mw, 4) != 0 || all_zero(avsr_f32(B), B->numel),
           "%s: export leaves the live weight unmerged", c);

    avsr_ctx_set_grad(ctx, false);
    avsr_tensor *yu = avsr_nn_linear_forward(ctx, &q, x);
    int nm = avsr_lora_merge(l);
    avsr_tensor *ym = avsr_nn_linear_forward(ctx, &q, x);
    tap_ok(nm == 1 && q.lora->merged && memcmp(q.weight->data, mw, (size_t)q.weight->numel * 4) == 0,
           "%s: merge folds the adapter into W in place", c);
    tu_close("merged output equals the unmerged output", avsr_f32(ym), avsr_f32(yu), ym->numel,
             ATOL, RTOL);
    g = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.y_merged", c), key), false);
    tu_close("merged output matches PyTorch's merged linear", avsr_f32(ym), avsr_f32(g), g->numel,
             ATOL, RTOL);
    avsr_tensor_free(g);
    tap_ok(avsr_lora_merge(l) == 0, "%s: a second merge does nothing", c);
    avsr_ctx_set_grad(ctx, true);
    avsr_ctx_reset(ctx);
    free(mw);
    avsr_tensor_free(want);
    avsr_tensor_free(R);
    avsr_tensor_free(x);
    avsr_lora_destroy(l);
    tap_ok(q.lora == NULL, "%s: destroying the set detaches the adapters", c);
    avsr_params_destroy(p);
}

/* gradcheck: x, A, B as inputs of a wrapped layer */
struct gc_user {
    avsr_tensor *W, *b;
    float scale;
};

static avsr_tensor *gc_fn(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    struct gc_user *u = user;
    avsr_lora_adapter ad = {.A = in[1], .B = in[2], .scale = u->scale, .rank = (int)in[1]->shape[0]};
    avsr_nn_linear m = {.weight = u->W, .bias = u->b, .in = u->W->shape[1],
                        .out = u->W->shape[0], .lora = &ad};
    return avsr_nn_linear_forward(ctx, &m, in[0]);
}

static void gradchecks(avsr_ctx *ctx)
{
    int64_t sx[3] = {2, 3, 5}, sw[2] = {4, 5}, sa[2] = {2, 5}, sbb[2] = {4, 2}, s1[1] = {4};
    struct gc_user u = {tu_rand(2, sw, 1, -1, 1, false), tu_rand(1, s1, 2, -1, 1, false), 1.5f};
    avsr_tensor *in[3] = {tu_rand(3, sx, 3, -1, 1, true), tu_rand(2, sa, 4, -1, 1, true),
                          tu_rand(2, sbb, 5, -1, 1, true)};
    tu_gc_opts o = {.eps = 1e-2, .atol = 1e-3, .rtol = 1e-3}; /* linear in each input: exact up to rounding */
    tu_gradcheck("lora linear [2,3,5] r=2", ctx, gc_fn, &u, 3, in, &o);
    for (int i = 0; i < 3; i++)
        avsr_tensor_free(in[i]);
    int64_t sx1[2] = {1, 5}, sa1[2] = {1, 5}, sb1[2] = {4, 1};
    avsr_tensor *in1[3] = {tu_rand(2, sx1, 6, -1, 1, true), tu_rand(2, sa1, 7, -1, 1, true),
                           tu_rand(2, sb1, 8, -1, 1, true)};
    tu_gradcheck("lora linear [1,5] r=1 (one row)", ctx, gc_fn, &u, 3, in1, &o);
    for (int i = 0; i < 3; i++)
        avsr_tensor_free(in1[i]);
    avsr_tensor_free(u.W);
    avsr_tensor_free(u.b);
}

static void dropout_and_mha(avsr_ctx *ctx)
{
    avsr_error err = {0};
    avsr_params *p = avsr_params_create();
    avsr_mha att;
    avsr_mha_cfg cfg = {.d_model = 8, .heads = 2, .fuse_qkv = true};
    avsr_lora *l = avsr_lora_create();
    avsr_lora_track_begin(l);
    if (avsr_mha_init(&att, p, "encoder.layers.0.self_attn", &cfg, &err) < 0)
        tap_bail("%s", err.msg);
    avsr_lora_track_end(l);
    tap_ok(avsr_lora_track_mha(l, &att) == 0, "mha: q/k/v tracked with avsr_lora_track_mha");
    const char *targets[] = {"*.self_attn.linear_q", "*.self_attn.linear_v"};
    int n = avsr_lora_attach(l, p, targets, 2, 2, 4.0f, 0.5f, &err);
    tap_ok(n == 2 && att.linear_q.lora && att.linear_v.lora && !att.linear_k.lora &&
               !att.linear_out.lora,
           "mha: targets *.self_attn.linear_q / linear_v wrap exactly q and v (%d)", n);
    tap_ok(!att.fuse_qkv, "mha: the fused q/k/v product is switched off for the adapted block");
    tap_ok(avsr_lora_attach(l, p, targets, 2, 2, 4.0f, 0.5f, &err) == 0,
           "mha: attaching again wraps nothing (already wrapped)");
    if (avsr_params_finalize(p, &err) < 0 || avsr_params_init(p, 9, &err) < 0)
        tap_bail("%s", err.msg);
    int64_t sx[3] = {2, 5, 8};
    avsr_tensor *x = tu_rand(3, sx, 11, -1, 1, false);
    avsr_ctx_set_grad(ctx, false);
    avsr_ctx_set_training(ctx, false); /* contexts start in training mode */
    avsr_tensor *y0 = avsr_mha_forward(ctx, &att, x, x, x, NULL, 1);
    for (int i = 0; i < avsr_lora_count(l); i++) /* a trained B */
        tu_fill_uniform(avsr_f32(avsr_lora_at(l, i)->B), avsr_lora_at(l, i)->B->numel, 40 + i,
                        -1, 1);
    avsr_tensor *y1 = avsr_mha_forward(ctx, &att, x, x, x, NULL, 1);
    float dmax = 0.0f;
    for (int64_t i = 0; y0 && y1 && i < y0->numel; i++)
        dmax = fmaxf(dmax, fabsf(avsr_f32(y0)[i] - avsr_f32(y1)[i]));
    tap_ok(dmax > 1e-3f, "mha: the adapters change the attention output (max diff %.3g)",
           (double)dmax);
    /* dropout: evaluation = no dropout; training: keyed, reproducible */
    avsr_ctx_set_training(ctx, true);
    avsr_tensor *yt1 = avsr_mha_forward(ctx, &att, x, x, x, NULL, 1);
    avsr_tensor *yt2 = avsr_mha_forward(ctx, &att, x, x, x, NULL, 1);
    avsr_ctx_set_training(ctx, true);
    bool differ = false;
    for (int64_t i = 0; yt1 && i < yt1->numel; i++)
        differ = differ || avsr_f32(yt1)[i] != avsr_f32(y1)[i];
    tap_ok(yt1 && yt2 && differ && memcmp(yt1->data, yt2->data, (size_t)yt1->numel * 4) == 0,
           "mha: adapter dropout acts in training only and is reproducible for the same keys");
    avsr_ctx_set_grad(ctx, true);
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x);

    /* bad arguments */
    avsr_lora *l2 = avsr_lora_create();
    avsr_params *p2 = avsr_params_create();
    avsr_nn_linear lin;
    avsr_lora_track_begin(l2);
    avsr_nn_linear_init(&lin, p2, "dec.fc", 3, 4, false, &err);
    avsr_lora_track_end(l2);
    const char *t1[] = {"dec.fc"};
    avsr_error e = {0};
    tap_ok(avsr_lora_attach(l2, p2, t1, 1, 0, 1.0f, 0.0f, &e) < 0 && strstr(e.msg, "rank 0"),
           "rank 0 is rejected: %s", e.msg);
    memset(&e, 0, sizeof e);
    tap_ok(avsr_lora_attach(l2, p2, t1, 1, 4, 1.0f, 0.0f, &e) < 0 &&
               strstr(e.msg, "rank 4 exceeds min(in 3, out 4)"),
           "rank above min(in, out) is rejected: %s", e.msg);
    memset(&e, 0, sizeof e);
    tap_ok(avsr_lora_attach(l2, p2, t1, 1, 1, 1.0f, 1.0f, &e) < 0 && strstr(e.msg, "dropout 1"),
           "dropout 1 is rejected: %s", e.msg);
    memset(&e, 0, sizeof e);
    tap_ok(avsr_lora_attach(l2, p2, t1, 1, 1, -2.0f, 0.0f, &e) < 0 && strstr(e.msg, "alpha -2"),
           "negative alpha is rejected: %s", e.msg);
    const char *t2[] = {"*.nothing"};
    tap_ok(avsr_lora_attach(l2, p2, t2, 1, 1, 1.0f, 0.0f, &e) == 0 && !lin.lora,
           "a pattern that matches nothing wraps nothing");
    avsr_lora *l3 = avsr_lora_create();
    tap_ok(avsr_lora_attach(l3, p2, t1, 1, 1, 1.0f, 0.0f, &e) == 0,
           "layers built outside a tracking region are not seen");
    tap_ok(avsr_lora_track(l3, &lin) == 0 && avsr_lora_attach(l3, p2, t1, 1, 1, 1.0f, 0.0f, &e) == 1 &&
               lin.lora,
           "avsr_lora_track adds a layer explicitly");
    avsr_params *p3 = avsr_params_create();
    avsr_nn_linear other;
    avsr_nn_linear_init(&other, p3, "dec.fc", 3, 4, false, &err);
    avsr_lora *l4 = avsr_lora_create();
    avsr_lora_track(l4, &other);
    memset(&e, 0, sizeof e);
    tap_ok(avsr_lora_attach(l4, p2, t1, 1, 1, 1.0f, 0.0f, &e) < 0 &&
               strstr(e.msg, "is not a parameter of this store"),
           "a layer of another store is rejected: %s", e.msg);
    tap_ok(avsr_lora_is_adapter_name("a.b.lora_A.weight") && avsr_lora_is_adapter_name("x.lora_B.weight") &&
               !avsr_lora_is_adapter_name("x.lora_B.bias") && !avsr_lora_is_adapter_name("lora_A.weight"),
           "adapter names are recognised by their suffix");
    avsr_lora_destroy(l4);
    avsr_lora_destroy(l3);
    avsr_lora_destroy(l2);
    avsr_lora_destroy(l);
    avsr_params_destroy(p3);
    avsr_params_destroy(p2);
    avsr_params_destroy(p);
}

/* One adapter per linear layer, however the layer was found: a whole
 * model (Conformer encoder, decoder, CTC head, fusion module) built inside
 * a tracking region -- q/k/v reported by avsr_mha_init, the rest by
 * avsr_nn_linear_init -- and every attention block ALSO recorded with
 * avsr_lora_track_mha (as the header's example does), then "*" attached.
 * Fails if any linear gets two adapters: adapters and their base layers,
 * base weights and adapter names must all be distinct, every linear must
 * point at exactly the adapter whose base it is, and merging must equal the
 * unmerged forward (a second adapter on a base would be merged too). */
static void no_double_attach(avsr_ctx *ctx)
{
    const char *text = "model:\n  audio: {features: logmel80, subsample_channels: 4}\n"
                       "  fusion_module:\n    audio_cnn: {channels: 2, blocks: 2}\n"
                       "    video_cnn: {stem: 2, channels: [2, 2, 2, 2], inner: 2,"
                       " blocks: [[1, 0], [1, 0], [1, 0], [1, 0]]}\n"
                       "    cross_attention: {layers: 1, heads: 2, dim: 8, window: 16}\n"
                       "  encoder: {layers: 2, dim: 16, heads: 2, ffn: 24, conv_kernel: 3,"
                       " dropout: 0.0}\n"
                       "  decoder: {layers: 2, dim: 8, heads: 2, ffn: 16, dropout: 0.0}\n"
                       "  ctc_weight: 0.3\n  ctc_dropout: 0.0\n";
    avsr_error err = {0};
    avsr_yaml *y = avsr_yaml_load_string("lora.yaml", text, strlen(text), &err);
    avsr_params *p = avsr_params_create();
    avsr_model *m = NULL;
    avsr_lora *l = avsr_lora_create();
    avsr_lora_track_begin(l);
    int rc = y ? avsr_model_build(y, avsr_ynode_get(avsr_yaml_root(y), "model"), 11, &m, p, &err)
               : -1;
    avsr_lora_track_end(l);
    if (rc < 0)
        tap_bail("build: %s", err.msg);
    avsr_yaml_free(y);
    int nmha = 0;
    for (int i = 0; i < m->enc.cfg.layers; i++, nmha++)
        if (avsr_lora_track_mha(l, &m->enc.layers[i].self_attn) < 0)
            tap_bail("track_mha");
    for (int i = 0; i < m->dec.cfg.layers; i++, nmha += 2)
        if (avsr_lora_track_mha(l, &m->dec.layers[i].self_attn) < 0 ||
            avsr_lora_track_mha(l, &m->dec.layers[i].src_attn) < 0)
            tap_bail("track_mha");
    /* the same blocks once more: recording twice must not matter either */
    for (int i = 0; i < m->enc.cfg.layers; i++)
        avsr_lora_track_mha(l, &m->enc.layers[i].self_attn);
    /* linear layers in the store: 2-D weights of the linears we know of */
    int nlin = 0;
    for (int i = 0; i < avsr_params_count(p); i++) {
        const char *n = avsr_params_at(p, i)->name;
        size_t k = strlen(n);
        bool lin = avsr_params_at(p, i)->ndim == 2 && k > 7 && !strcmp(n + k - 7, ".weight") &&
                   !strstr(n, "embed.0.weight") /* the decoder's embedding */;
        nlin += lin;
    }
    const char *all[] = {"*"};
    int n1 = avsr_lora_attach(l, p, all, 1, 1, 2.0f, 0.0f, &err);
    int n2 = avsr_lora_attach(l, p, all, 1, 1, 2.0f, 0.0f, &err);
    avsr_lora *l2 = avsr_lora_create();
    avsr_lora_track_mha(l2, &m->enc.layers[0].self_attn);
    avsr_lora_track(l2, &m->ctc_lo);
    int n3 = avsr_lora_attach(l2, p, all, 1, 1, 2.0f, 0.0f, &err);
    tap_ok(n1 == nlin && n2 == 0 && n3 == 0 && avsr_lora_count(l) == nlin &&
               avsr_lora_count(l2) == 0,
           "\"*\" wraps each of the %d linear layers once (%d), again: %d, from a second set: "
           "%d (%d attention blocks tracked twice) %s",
           nlin, n1, n2, n3, nmha, err.msg);
    int dup = 0, stale = 0;
    for (int i = 0; i < avsr_lora_count(l); i++) {
        const avsr_nn_linear *bi = avsr_lora_base(l, i);
        stale += bi->lora != avsr_lora_at(l, i);
        for (int j = 0; j < i; j++) {
            const avsr_nn_linear *bj = avsr_lora_base(l, j);
            dup += bi == bj || bi->weight == bj->weight ||
                   !strcmp(avsr_lora_at(l, i)->A->name, avsr_lora_at(l, j)->A->name);
        }
    }
    const avsr_mha *sa = &m->enc.layers[1].self_attn;
    tap_ok(dup == 0 && stale == 0 && sa->linear_q.lora && sa->linear_k.lora && sa->linear_v.lora &&
               sa->linear_pos.lora && m->dec.layers[0].src_attn.linear_v.lora,
           "no two adapters share a base layer or weight, every base points at its own adapter "
           "(%d shared, %d stale); q/k/v/pos of the attention blocks are wrapped",
           dup, stale);
    if (avsr_params_finalize(p, &err) < 0 || avsr_params_init(p, 2, &err) < 0)
        tap_bail("%s", err.msg);
    for (int i = 0; i < avsr_lora_count(l); i++)
        tu_fill_uniform(avsr_f32(avsr_lora_at(l, i)->B), avsr_lora_at(l, i)->B->numel, 70 + i,
                        -0.5f, 0.5f);
    avsr_ctx_set_training(ctx, false);
    avsr_ctx_set_grad(ctx, false);
    int64_t sa2[2] = {1, 8 * 640}, sv[4] = {1, 8, 65, 65}, ys[3] = {3, 4, 5}, yl[1] = {3};
    avsr_tensor *audio = tu_rand(2, sa2, 9, -1, 1, false), *video = tu_rand(4, sv, 10, -1, 1, false);
    avsr_model_input in = {.B = 1, .audio = audio, .video = video, .targets = ys,
                           .target_lengths = yl, .max_target = 3};
    avsr_model_out o0, o1;
    rc = avsr_model_forward(ctx, m, &in, &o0);
    int merged = avsr_lora_merge(l);
    if (rc == 0)
        rc = avsr_model_forward(ctx, m, &in, &o1);
    double d = rc == 0 ? 0.0 : INFINITY;
    for (int64_t i = 0; rc == 0 && i < o0.ctc_logits->numel; i++)
        d = fmax(d, fabs(avsr_f32(o0.ctc_logits)[i] - avsr_f32(o1.ctc_logits)[i]));
    for (int64_t i = 0; rc == 0 && i < o0.dec_logits->numel; i++)
        d = fmax(d, fabs(avsr_f32(o0.dec_logits)[i] - avsr_f32(o1.dec_logits)[i]));
    tap_ok(merged == nlin && rc == 0 && o0.fused && d < 1e-4,
           "merging the %d adapters gives the unmerged model's CTC and decoder logits (fusion "
           "module, encoder, decoder; max diff %.2e)%s",
           merged, d, rc ? avsr_ctx_errmsg(ctx) : "");
    avsr_ctx_reset(ctx);
    avsr_ctx_set_grad(ctx, true);
    avsr_tensor_free(audio);
    avsr_tensor_free(video);
    avsr_lora_destroy(l2);
    avsr_lora_destroy(l);
    avsr_model_free(m);
    avsr_params_destroy(p);
}

int main(void)
{
    avsr_ctx *ctx = tu_ctx();
    avsr_st *st = tu_golden_open("lora");
    golden(ctx, st, "lin");
    golden(ctx, st, "lin1");
    gradchecks(ctx);
    dropout_and_mha(ctx);
    no_double_attach(ctx);
    avsr_st_close(st);
    avsr_ctx_destroy(ctx);
    return tap_done();
}
