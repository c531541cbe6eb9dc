/* test_fusion: audio-visual fusion (models/fusion.h) and the modality
 * dropout draw (runtime/op_modality.h): golden comparisons against PyTorch
 * (concat + MLP with masked batch norm, add with padding, gated), finite-
 * difference gradient checks, length reconciliation, missing modalities,
 * the modality-dropout rule and its keying by sample id, error messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_golden.h"
#include "models/fusion.h"
#include "op_modality.h"
#include "ops.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"

static avsr_params *build(avsr_fusion *m, const avsr_fusion_cfg *cfg, const char *prefix)
{
    avsr_error err = {0};
    avsr_params *p = avsr_params_create();
    if (!p || avsr_fusion_init(m, p, prefix, cfg, &err) < 0 || avsr_params_finalize(p, &err) < 0 ||
        avsr_params_init(p, 3, &err) < 0)
        tap_bail("fusion: %s", err.msg);
    return p;
}

static void golden(avsr_ctx *ctx, avsr_st *st)
{
    /* concat + MLP, trim, train-mode BN with lengths */
    avsr_fusion m;
    avsr_fusion_cfg cfg = {.kind = AVSR_FUSION_CONCAT_MLP, .dim_v = 6, .dim_a = 5, .hidden = 10,
                           .out_dim = 7};
    avsr_params *p = build(&m, &cfg, "");
    fe_load(st, "fmlp", p);
    avsr_params_zero_grad(p);
    avsr_tensor *v = tu_golden_tensor(st, "fmlp.v", true), *a = tu_golden_tensor(st, "fmlp.a", true);
    int64_t lv[2], la[2], want[2], got[2] = {-1, -1};
    fe_meta_ints(st, "fmlp", "len_v", lv, 2);
    fe_meta_ints(st, "fmlp", "len_a", la, 2);
    fe_meta_ints(st, "fmlp", "out_lengths", want, 2);
    avsr_ctx_set_training(ctx, true);
    avsr_tensor *y = avsr_fusion_forward(ctx, &m, v, a, lv, la, got);
    if (!tap_ok(y && y->shape[1] == 6 && y->shape[2] == 7,
                "fmlp: video [2, 6, 6] + audio [2, 7, 5] -> [2, 6, 7] (audio trimmed) %s",
                avsr_ctx_errmsg(ctx)))
        tap_bail("cannot continue");
    tap_ok(got[0] == want[0] && got[1] == want[1], "fmlp: output lengths min(lv, la) = %lld, %lld",
           (long long)got[0], (long long)got[1]);
    fe_check(st, "fmlp.y", avsr_f32(y), y->numel,
             "fmlp: concat + MLP (BN over valid frames) matches PyTorch");
    avsr_tensor *R = tu_golden_tensor(st, "fmlp.R", false);
    avsr_backward(ctx, avsr_op_dot_const(ctx, y, avsr_f32(R)), NULL);
    fe_check_grads(st, "fmlp", p);
    fe_check(st, "fmlp.g_v", v->grad, v->numel, "fmlp: video gradient matches PyTorch");
    fe_check(st, "fmlp.g_a", a->grad, a->numel, "fmlp: audio gradient (zero on the trimmed frame)");
    avsr_ctx_reset(ctx);
    fe_check_after(st, "fmlp", p);
    avsr_ctx_set_training(ctx, false);
    avsr_tensor_free(v);
    avsr_tensor_free(a);
    avsr_tensor_free(R);
    avsr_params_destroy(p);

    /* add, pad */
    avsr_fusion_cfg ca = {.kind = AVSR_FUSION_ADD, .dim_v = 5, .dim_a = 5,
                          .len_mode = AVSR_FUSION_LEN_PAD};
    p = build(&m, &ca, "");
    tap_ok(avsr_params_count(p) == 0, "fadd: add has no parameters");
    v = tu_golden_tensor(st, "fadd.v", true);
    a = tu_golden_tensor(st, "fadd.a", true);
    y = avsr_fusion_forward(ctx, &m, v, a, NULL, NULL, got);
    tap_ok(y && y->shape[1] == 6 && got[0] == 6, "fadd: PAD: T = max(4, 6) = 6");
    fe_check(st, "fadd.y", avsr_f32(y), y->numel, "fadd: a + zero-padded v matches PyTorch");
    R = tu_golden_tensor(st, "fadd.R", false);
    avsr_backward(ctx, avsr_op_dot_const(ctx, y, avsr_f32(R)), NULL);
    fe_check(st, "fadd.g_v", v->grad, v->numel, "fadd: video gradient matches PyTorch");
    fe_check(st, "fadd.g_a", a->grad, a->numel, "fadd: audio gradient matches PyTorch");
    avsr_ctx_reset(ctx);
    avsr_tensor_free(v);
    avsr_tensor_free(a);
    avsr_tensor_free(R);
    avsr_params_destroy(p);

    /* gated */
    avsr_fusion_cfg cg = {.kind = AVSR_FUSION_GATED, .dim_v = 6, .dim_a = 6};
    p = build(&m, &cg, "");
    fe_load(st, "fgate", p);
    avsr_params_zero_grad(p);
    v = tu_golden_tensor(st, "fgate.v", true);
    a = tu_golden_tensor(st, "fgate.a", true);
    y = avsr_fusion_forward(ctx, &m, v, a, NULL, NULL, NULL);
    fe_check(st, "fgate.y", avsr_f32(y), y->numel,
             "fgate: g * a + (1 - g) * v, g = sigmoid(W[a; v] + b) matches PyTorch");
    R = tu_golden_tensor(st, "fgate.R", false);
    avsr_backward(ctx, avsr_op_dot_const(ctx, y, avsr_f32(R)), NULL);
    fe_check_grads(st, "fgate", p);
    fe_check(st, "fgate.g_v", v->grad, v->numel, "fgate: video gradient matches PyTorch");
    fe_check(st, "fgate.g_a", a->grad, a->numel, "fgate: audio gradient matches PyTorch");
    avsr_ctx_reset(ctx);
    avsr_tensor_free(v);
    avsr_tensor_free(a);
    avsr_tensor_free(R);
    avsr_params_destroy(p);
}

/* ---- names -------------------------------------------------------------------- */

static void names(void)
{
    avsr_fusion m;
    avsr_fusion_cfg cfg = {.kind = AVSR_FUSION_CONCAT_MLP, .dim_v = 768, .dim_a = 768,
                           .hidden = 8192, .out_dim = 768};
    avsr_params *p = build(&m, &cfg, "fusion");
    avsr_tensor *w = avsr_params_find(p, "fusion.fc1.weight");
    tap_ok(w && w->shape[0] == 8192 && w->shape[1] == 1536 &&
               avsr_params_find(p, "fusion.bn1.running_var") &&
               avsr_params_find(p, "fusion.bn1.num_batches_tracked") &&
               avsr_params_find(p, "fusion.fc2.bias") && avsr_params_count(p) == 9,
           "Auto-AVSR MLPHead names: fusion.fc1 [8192, 1536], fusion.bn1.*, fusion.fc2 (9 entries)");
    avsr_params_destroy(p);
    cfg.norm = AVSR_FUSION_NORM_LAYER;
    p = build(&m, &cfg, "fusion");
    tap_ok(avsr_params_find(p, "fusion.norm1.weight") && avsr_params_count(p) == 6,
           "fusion_norm layernorm: fusion.norm1.* (6 entries)");
    avsr_params_destroy(p);
    avsr_fusion_cfg cg = {.kind = AVSR_FUSION_GATED, .dim_v = 4, .dim_a = 4};
    p = build(&m, &cg, "fusion");
    w = avsr_params_find(p, "fusion.gate.weight");
    tap_ok(w && w->shape[0] == 4 && w->shape[1] == 8 && avsr_fusion_dim(&m) == 4,
           "gated: fusion.gate.weight [4, 8]");
    avsr_params_destroy(p);
}

/* ---- gradient checks ------------------------------------------------------------ */

typedef struct gc_f {
    avsr_fusion *m;
    const int64_t *lv, *la;
} gc_f;

static avsr_tensor *run_f(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    gc_f *g = user;
    return avsr_fusion_forward(ctx, g->m, in[0], in[1], g->lv, g->la, NULL);
}

static void gradchecks(avsr_ctx *ctx)
{
    /* float32 central differences, tolerance 2e-2 (default). Step 1e-4:
     * after a training-mode batch norm half of the ReLU inputs are near 0,
     * and a larger step crosses the kink (1e-3 still does for one element). */
    tu_gc_opts o = {.eps = 1e-4, .max_elems = 32};
    avsr_fusion m;
    int64_t vs[3] = {2, 5, 3}, as[3] = {2, 4, 3}, lv[2] = {5, 3}, la[2] = {4, 4};
    avsr_tensor *v = tu_rand(3, vs, 21, -1, 1, true), *a = tu_rand(3, as, 22, -1, 1, true);

    avsr_fusion_cfg cfg = {.kind = AVSR_FUSION_CONCAT_MLP, .dim_v = 3, .dim_a = 3, .hidden = 5,
                           .out_dim = 2};
    avsr_params *p = build(&m, &cfg, "");
    gc_f g = {&m, lv, la};
    avsr_ctx_set_training(ctx, true);
    avsr_tensor *in[5] = {v, a, m.fc1.weight, m.bn1.weight, m.fc2.bias};
    tu_gradcheck("concat + MLP (train mode, masked BN, trim)", ctx, run_f, &g, 5, in, &o);
    avsr_ctx_set_training(ctx, false);
    avsr_params_destroy(p);

    avsr_fusion_cfg cg = {.kind = AVSR_FUSION_GATED, .dim_v = 3, .dim_a = 3,
                          .len_mode = AVSR_FUSION_LEN_PAD};
    p = build(&m, &cg, "");
    avsr_tensor *in2[4] = {v, a, m.gate.weight, m.gate.bias};
    tu_gradcheck("gated (pad)", ctx, run_f, &g, 4, in2, &o);
    avsr_params_destroy(p);

    int64_t vs1[3] = {1, 1, 3};
    avsr_tensor *v1 = tu_rand(3, vs1, 23, -1, 1, true), *a1 = tu_rand(3, vs1, 24, -1, 1, true);
    avsr_fusion_cfg cd = {.kind = AVSR_FUSION_ADD, .dim_v = 3, .dim_a = 3};
    p = build(&m, &cd, "");
    gc_f g1 = {&m, NULL, NULL};
    avsr_tensor *in3[2] = {v1, a1};
    tu_gradcheck("add (batch 1, length 1)", ctx, run_f, &g1, 2, in3, &o);
    avsr_params_destroy(p);
    avsr_tensor_free(v1);
    avsr_tensor_free(a1);
    avsr_tensor_free(v);
    avsr_tensor_free(a);
}

/* ---- modality dropout and missing modalities ------------------------------------ */

static void modality(avsr_ctx *ctx)
{
    enum { N = 4000 };
    static uint64_t ids[N];
    static uint8_t drop[N], drop2[N];
    for (int i = 0; i < N; i++)
        ids[i] = 1000 + (uint64_t)i;
    avsr_ctx_set_batch_keys(ctx, 42, 3, N, ids);
    avsr_modality_dropout_draw(ctx, N, 0.5f, 0.5f, drop);
    int na = 0, nv = 0;
    for (int i = 0; i < N; i++) {
        na += drop[i] == AVSR_MODALITY_DROP_AUDIO;
        nv += drop[i] == AVSR_MODALITY_DROP_VIDEO;
    }
    /* binomial(4000, 0.25): sd 27; 4.5 sd = 120 */
    tap_ok(abs(na - 1000) < 120 && abs(nv - 1000) < 120,
           "p_m 0.5, p_a 0.5: %d of 4000 without audio, %d without video (expected about 1000 each)",
           na, nv);
    /* keyed by sample id: reversing the batch order reverses the draws */
    uint64_t rev[N];
    for (int i = 0; i < N; i++)
        rev[i] = ids[N - 1 - i];
    avsr_ctx_set_batch_keys(ctx, 42, 3, N, rev);
    avsr_modality_dropout_draw(ctx, N, 0.5f, 0.5f, drop2);
    bool same = true;
    for (int i = 0; i < N; i++)
        same &= drop2[i] == drop[N - 1 - i];
    tap_ok(same, "the draw of a sample does not depend on its row in the batch");
    avsr_ctx_set_batch_keys(ctx, 42, 4, N, ids);
    avsr_modality_dropout_draw(ctx, N, 0.5f, 0.5f, drop2);
    int diff = 0;
    for (int i = 0; i < N; i++)
        diff += drop2[i] != drop[i];
    tap_ok(diff > 1000, "another epoch draws differently (%d of 4000 differ)", diff);
    avsr_modality_dropout_draw(ctx, N, 0.0f, 0.5f, drop2);
    int any = 0;
    for (int i = 0; i < N; i++)
        any += drop2[i] != 0;
    tap_ok(any == 0, "p_m 0 drops nothing");
    int rc = avsr_modality_dropout_draw(ctx, 4, 1.5f, 0.5f, drop2);
    const char *msg = avsr_ctx_errmsg(ctx);
    tap_ok(rc < 0 && strstr(msg, "modality_dropout: B 4, p_m 1.5"), "p_m 1.5 is rejected (%s)",
           msg);
    avsr_ctx_clear_error(ctx);

    /* fusion in training mode with p_m = 1, p_a = 1: audio always dropped;
     * add gives exactly the video and no gradient reaches the audio */
    uint64_t ids3[3] = {7, 8, 9};
    avsr_ctx_set_batch_keys(ctx, 1, 0, 3, ids3);
    avsr_fusion m;
    avsr_fusion_cfg cd = {.kind = AVSR_FUSION_ADD, .dim_v = 4, .dim_a = 4, .p_modality = 1.0f,
                          .p_audio = 1.0f};
    avsr_params *p = build(&m, &cd, "");
    int64_t s[3] = {3, 5, 4};
    avsr_tensor *v = tu_rand(3, s, 31, -1, 1, true), *a = tu_rand(3, s, 32, -1, 1, true);
    avsr_ctx_set_training(ctx, true);
    avsr_tensor *y = avsr_fusion_forward(ctx, &m, v, a, NULL, NULL, NULL);
    bool eq = y && memcmp(y->data, v->data, sizeof(float) * (size_t)v->numel) == 0;
    memset(a->grad, 0, sizeof(float) * (size_t)a->numel);
    avsr_backward(ctx, avsr_op_sum_all(ctx, y), NULL);
    bool zero = true;
    for (int64_t i = 0; i < a->numel; i++)
        zero &= a->grad[i] == 0.0f;
    tap_ok(eq && zero, "training, p_m 1, p_a 1: audio replaced by zeros, no gradient to it");
    avsr_ctx_reset(ctx);
    /* p_a = 0: video dropped */
    m.cfg.p_audio = 0.0f;
    y = avsr_fusion_forward(ctx, &m, v, a, NULL, NULL, NULL);
    tap_ok(y && memcmp(y->data, a->data, sizeof(float) * (size_t)a->numel) == 0,
           "training, p_m 1, p_a 0: video replaced by zeros");
    avsr_ctx_reset(ctx);
    /* evaluation: no dropout */
    avsr_ctx_set_training(ctx, false);
    y = avsr_fusion_forward(ctx, &m, v, a, NULL, NULL, NULL);
    bool sum_ok = y != NULL;
    for (int64_t i = 0; sum_ok && i < y->numel; i++)
        sum_ok = avsr_f32(y)[i] == avsr_f32(v)[i] + avsr_f32(a)[i];
    tap_ok(sum_ok, "evaluation mode: no modality dropout");
    avsr_ctx_reset(ctx);
    avsr_params_destroy(p);

    /* missing modality = zeros of the right shape (concat + MLP, eval) */
    avsr_fusion_cfg cm = {.kind = AVSR_FUSION_CONCAT_MLP, .dim_v = 4, .dim_a = 3, .hidden = 6,
                          .out_dim = 5};
    p = build(&m, &cm, "");
    int64_t sa[3] = {3, 5, 3};
    avsr_tensor *z = avsr_tensor_create(AVSR_F32, 3, sa, false);
    memset(z->data, 0, sizeof(float) * (size_t)z->numel);
    int64_t lv[3] = {5, 2, 4}, lo[3] = {0};
    avsr_tensor *y1 = avsr_fusion_forward(ctx, &m, v, NULL, lv, NULL, lo);
    avsr_tensor *y2 = avsr_fusion_forward(ctx, &m, v, z, lv, NULL, NULL);
    tap_ok(y1 && y2 && y1->shape[2] == 5 &&
               memcmp(y1->data, y2->data, sizeof(float) * (size_t)y1->numel) == 0 && lo[1] == 2,
           "missing audio (NULL) = zeros [B, Tv, Da]; lengths from the video");
    int64_t s2[3] = {3, 5, 4};
    avsr_tensor *a3 = tu_rand(3, sa, 33, -1, 1, false);
    avsr_tensor *zv = avsr_tensor_create(AVSR_F32, 3, s2, false);
    memset(zv->data, 0, sizeof(float) * (size_t)zv->numel);
    y1 = avsr_fusion_forward(ctx, &m, NULL, a3, NULL, NULL, NULL);
    y2 = avsr_fusion_forward(ctx, &m, zv, a3, NULL, NULL, NULL);
    tap_ok(y1 && y2 && memcmp(y1->data, y2->data, sizeof(float) * (size_t)y1->numel) == 0,
           "missing video (NULL) = zeros [B, Ta, Dv]");
    y1 = avsr_fusion_forward(ctx, &m, NULL, NULL, NULL, NULL, NULL);
    tap_ok(!y1 && strstr(avsr_ctx_errmsg(ctx), "fusion: video and audio are both missing"),
           "both missing is an error (%s)", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);

    /* length reconciliation: pad gives max lengths */
    m.cfg.len_mode = AVSR_FUSION_LEN_PAD;
    int64_t s4[3] = {3, 3, 3}, la4[3] = {3, 1, 2}, lv4[3] = {5, 2, 1};
    avsr_tensor *a4 = tu_rand(3, s4, 34, -1, 1, false);
    y1 = avsr_fusion_forward(ctx, &m, v, a4, lv4, la4, lo);
    tap_ok(y1 && y1->shape[1] == 5 && lo[0] == 5 && lo[1] == 2 && lo[2] == 2,
           "PAD: T = 5, lengths max(lv, la) = 5, 2, 2");
    m.cfg.len_mode = AVSR_FUSION_LEN_TRIM;
    y1 = avsr_fusion_forward(ctx, &m, v, a4, lv4, la4, lo);
    tap_ok(y1 && y1->shape[1] == 3 && lo[0] == 3 && lo[1] == 1 && lo[2] == 1,
           "TRIM: T = 3, lengths min(lv, la) = 3, 1, 1");
    int64_t bad[3] = {6, 1, 1};
    y1 = avsr_fusion_forward(ctx, &m, v, a4, bad, NULL, lo);
    tap_ok(!y1 && strstr(avsr_ctx_errmsg(ctx), "fusion: lengths of clip 0 (video 6 of 5"),
           "a length beyond T is an error (%s)", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    avsr_tensor *w = tu_rand(3, s, 35, -1, 1, false); /* [3, 5, 4]: wrong audio dim */
    y1 = avsr_fusion_forward(ctx, &m, v, w, NULL, NULL, NULL);
    tap_ok(!y1 && strstr(avsr_ctx_errmsg(ctx), "fusion: audio: got F32 [3, 5, 4], expected f32 [B, T, 3]"),
           "wrong feature size is an error (%s)", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
    avsr_error err = {0};
    avsr_fusion_cfg cbad = {.kind = AVSR_FUSION_GATED, .dim_v = 4, .dim_a = 3};
    avsr_params *p2 = avsr_params_create();
    tap_ok(avsr_fusion_init(&m, p2, "f", &cbad, &err) < 0 &&
               strstr(err.msg, "f: fusion: gated needs equal dims, got video 4, audio 3"),
           "gated with unequal dims is rejected at init (%s)", err.msg);
    avsr_params_destroy(p2);
    avsr_params_destroy(p);
    avsr_tensor_free(v);
    avsr_tensor_free(a);
    avsr_tensor_free(z);
    avsr_tensor_free(zv);
    avsr_tensor_free(a3);
    avsr_tensor_free(a4);
    avsr_tensor_free(w);
}

int main(void)
{
    avsr_ctx *ctx = tu_ctx();
    names();
    avsr_st *st = tu_golden_open("frontend_grad");
    golden(ctx, st);
    avsr_st_close(st);
    gradchecks(ctx);
    modality(ctx);
    avsr_ctx_destroy(ctx);
    return tap_done();
}
