/* test_frontend: the visual frontend (Conv3dResNet), ResNet1D, Conv2d
 * subsampling and the filterbank projection: parameter names and counts of
 * Auto-AVSR's modules, golden comparisons against the PyTorch replicas of
 * tests/golden/gen_frontend.py (training-mode forward with padding masked
 * out of batch norm, evaluation-mode forward, gradients of every parameter,
 * running statistics), finite-difference gradient checks on tiny sizes,
 * output lengths and error messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_golden.h"
#include "models/audio_frontend.h"
#include "models/visual_frontend.h"
#include "ops.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"

static avsr_params *new_params(void)
{
    avsr_params *p = avsr_params_create();
    if (!p)
        tap_bail("out of memory");
    return p;
}

static void finalize(avsr_params *p, uint64_t seed)
{
    avsr_error err = {0};
    if (avsr_params_finalize(p, &err) < 0 || avsr_params_init(p, seed, &err) < 0)
        tap_bail("params: %s", err.msg);
}

static avsr_fe_act parse_act(const char *js)
{
    return strstr(js, "\"prelu\"") ? AVSR_FE_ACT_PRELU : AVSR_FE_ACT_SWISH;
}

/* ---- names and sizes of the full-size modules ----------------------------- */

static void test_names(void)
{
    avsr_error err = {0};
    avsr_params *p = new_params();
    avsr_visual_frontend v;
    avsr_visual_frontend_cfg vc;
    avsr_visual_frontend_defaults(&vc);
    tap_ok(avsr_visual_frontend_init(&v, p, "encoder.frontend", &vc, &err) == 0,
           "Auto-AVSR visual frontend registers: %s", err.msg);
    finalize(p, 1);
    /* counts from the PyTorch module (gen_frontend.Conv3dResNet(64)) */
    tap_ok(avsr_params_numel_trainable(p) == 11182784 && avsr_params_count(p) == 120,
           "visual frontend: 11182784 trainable values in 120 state-dict entries (got %lld in %d)",
           (long long)avsr_params_numel_trainable(p), avsr_params_count(p));
    static const char *names[] = {"encoder.frontend.frontend3D.0.weight",
                                  "encoder.frontend.frontend3D.1.running_mean",
                                  "encoder.frontend.frontend3D.1.num_batches_tracked",
                                  "encoder.frontend.trunk.layer1.0.conv1.weight",
                                  "encoder.frontend.trunk.layer1.1.bn2.bias",
                                  "encoder.frontend.trunk.layer2.0.downsample.0.weight",
                                  "encoder.frontend.trunk.layer4.1.bn1.running_var"};
    int found = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        found += avsr_params_find(p, names[i]) != NULL;
    avsr_tensor *d = avsr_params_find(p, "encoder.frontend.trunk.layer2.0.downsample.0.weight");
    tap_ok(found == 7 && d && d->ndim == 4 && d->shape[0] == 128 && d->shape[1] == 64 &&
               d->shape[2] == 1 && !avsr_params_find(p, "encoder.frontend.trunk.layer1.0.downsample.0.weight"),
           "visual frontend: Auto-AVSR names and shapes (downsample only where needed)");

    /* forward shape at ROI 88: 88 -> 44 -> 22 -> 22, 11, 6, 3 -> [B, T, 512] */
    avsr_ctx *ctx = tu_ctx();
    avsr_ctx_set_grad(ctx, false);
    int64_t xs[4] = {1, 2, 88, 88};
    avsr_tensor *x = tu_rand(4, xs, 3, -1, 1, false);
    avsr_tensor *y = avsr_visual_frontend_forward(ctx, &v, x, NULL);
    tap_ok(y && y->ndim == 3 && y->shape[0] == 1 && y->shape[1] == 2 && y->shape[2] == 512,
           "visual frontend at ROI 88 in evaluation mode: [1, 2, 88, 88] -> [1, 2, 512] %s",
           avsr_ctx_errmsg(ctx));
    avsr_ctx_reset(ctx);
    avsr_ctx_destroy(ctx);
    avsr_tensor_free(x);
    avsr_visual_frontend_free(&v);
    avsr_params_destroy(p);

    p = new_params();
    vc.act = AVSR_FE_ACT_PRELU;
    avsr_visual_frontend_init(&v, p, "feature_extractor_video.resnet", &vc, &err);
    finalize(p, 1);
    avsr_tensor *pr = avsr_params_find(p, "feature_extractor_video.resnet.frontend3D.2.weight");
    tap_ok(avsr_params_numel_trainable(p) == 11186688 && avsr_params_count(p) == 137 && pr &&
               avsr_f32(pr)[0] == 0.25f &&
               avsr_params_find(p, "feature_extractor_video.resnet.trunk.layer3.1.relu2.weight"),
           "AV-HuBERT (PReLU) visual frontend: 11186688 values in 137 entries, PReLU slopes 0.25");
    avsr_visual_frontend_free(&v);
    avsr_params_destroy(p);

    p = new_params();
    avsr_audio_resnet1d a;
    avsr_audio_resnet1d_cfg ac;
    avsr_audio_resnet1d_defaults(&ac);
    avsr_audio_resnet1d_init(&a, p, "aux_encoder.frontend", &ac, &err);
    finalize(p, 1);
    tap_ok(avsr_params_numel_trainable(p) == 3848576 && avsr_params_count(p) == 120 &&
               avsr_params_find(p, "aux_encoder.frontend.trunk.conv1.weight") &&
               avsr_params_find(p, "aux_encoder.frontend.trunk.bn1.running_mean") &&
               avsr_params_find(p, "aux_encoder.frontend.trunk.layer3.0.downsample.1.weight") &&
               avsr_audio_resnet1d_hop(&a) == 640 && avsr_audio_resnet1d_dim(&a) == 512,
           "Auto-AVSR audio ResNet1D: 3848576 values in 120 entries, hop 640, 512-d");
    avsr_audio_resnet1d_free(&a);
    avsr_params_destroy(p);
}

/* ---- golden: visual frontend -------------------------------------------------- */

static void golden_visual(avsr_ctx *ctx, avsr_st *st, const char *c, bool grads)
{
    const char *js = tu_golden_meta(st, c);
    avsr_visual_frontend_cfg cfg;
    avsr_visual_frontend_defaults(&cfg);
    int64_t w, d[4], roi, lengths[8];
    fe_meta_ints(st, c, "depth", d, 4);
    sscanf(strstr(js, "\"width\": ") + 9, "%lld", (long long *)&w);
    sscanf(strstr(js, "\"roi\": ") + 7, "%lld", (long long *)&roi);
    cfg.width = (int)w;
    cfg.roi = (int)roi;
    for (int i = 0; i < 4; i++)
        cfg.depth[i] = (int)d[i];
    cfg.act = parse_act(js);
    fe_meta_ints(st, c, "lengths", lengths, 8);

    avsr_error err = {0};
    avsr_params *p = new_params();
    avsr_visual_frontend m;
    if (avsr_visual_frontend_init(&m, p, "", &cfg, &err) < 0)
        tap_bail("%s: %s", c, err.msg);
    finalize(p, 7);
    fe_load(st, c, p);
    avsr_params_zero_grad(p);

    char key[128], what[160];
    snprintf(key, sizeof key, "%s.x", c);
    avsr_tensor *x = tu_golden_tensor(st, key, false);
    avsr_ctx_set_training(ctx, true);
    avsr_ctx_set_grad(ctx, grads);
    avsr_tensor *y = avsr_visual_frontend_forward(ctx, &m, x, lengths);
    if (!tap_ok(y != NULL, "%s: training-mode forward runs %s", c, avsr_ctx_errmsg(ctx)))
        tap_bail("cannot continue");
    snprintf(key, sizeof key, "%s.y", c);
    snprintf(what, sizeof what, "%s: output [%lld, %lld, %lld] (train mode, padded frames out of BN) matches PyTorch",
             c, (long long)y->shape[0], (long long)y->shape[1], (long long)y->shape[2]);
    fe_check(st, key, avsr_f32(y), y->numel, what);
    if (grads) {
        snprintf(key, sizeof key, "%s.R", c);
        avsr_tensor *R = tu_golden_tensor(st, key, false);
        avsr_tensor *L = avsr_op_dot_const(ctx, y, avsr_f32(R));
        tap_ok(L && avsr_backward(ctx, L, NULL) == 0, "%s: backward runs %s", c,
               avsr_ctx_errmsg(ctx));
        fe_check_grads(st, c, p);
        avsr_tensor_free(R);
    }
    avsr_ctx_reset(ctx);
    fe_check_after(st, c, p);
    if (!grads) {
        avsr_ctx_set_training(ctx, false);
        avsr_ctx_set_grad(ctx, false);
        y = avsr_visual_frontend_forward(ctx, &m, x, lengths);
        snprintf(key, sizeof key, "%s.y_eval", c);
        snprintf(what, sizeof what, "%s: evaluation-mode output (updated running statistics) matches PyTorch", c);
        if (y)
            fe_check(st, key, avsr_f32(y), y->numel, what);
        else
            tap_ok(false, "%s", what);
        avsr_ctx_reset(ctx);
    }
    avsr_ctx_set_training(ctx, false);
    avsr_ctx_set_grad(ctx, true);
    avsr_tensor_free(x);
    avsr_visual_frontend_free(&m);
    avsr_params_destroy(p);
}

/* ---- golden: ResNet1D ---------------------------------------------------------- */

static void golden_resnet1d(avsr_ctx *ctx, avsr_st *st)
{
    const char *c = "a1d";
    avsr_audio_resnet1d_cfg cfg;
    avsr_audio_resnet1d_defaults(&cfg);
    int64_t d[4], lengths[2], want_len[2], out_len[2] = {-1, -1};
    fe_meta_ints(st, c, "depth", d, 4);
    fe_meta_ints(st, c, "lengths", lengths, 2);
    fe_meta_ints(st, c, "out_lengths", want_len, 2);
    cfg.width = 4;
    for (int i = 0; i < 4; i++)
        cfg.depth[i] = (int)d[i];
    avsr_error err = {0};
    avsr_params *p = new_params();
    avsr_audio_resnet1d m;
    if (avsr_audio_resnet1d_init(&m, p, "", &cfg, &err) < 0)
        tap_bail("%s: %s", c, err.msg);
    finalize(p, 7);
    fe_load(st, c, p);
    avsr_params_zero_grad(p);
    avsr_tensor *x = tu_golden_tensor(st, "a1d.x", false);
    avsr_ctx_set_training(ctx, true);
    avsr_tensor *y = avsr_audio_resnet1d_forward(ctx, &m, x, lengths, out_len);
    if (!tap_ok(y && y->shape[1] == 3 && y->shape[2] == 32,
                "a1d: [2, 2000] waveform -> [2, 3, 32] (truncated to 1920 samples) %s",
                avsr_ctx_errmsg(ctx)))
        tap_bail("cannot continue");
    tap_ok(out_len[0] == want_len[0] && out_len[1] == want_len[1],
           "a1d: output lengths %lld, %lld (samples / 640)", (long long)out_len[0],
           (long long)out_len[1]);
    fe_check(st, "a1d.y", avsr_f32(y), y->numel,
             "a1d: ResNet1D output (train mode, padding out of BN) matches PyTorch");
    avsr_tensor *R = tu_golden_tensor(st, "a1d.R", false);
    avsr_tensor *L = avsr_op_dot_const(ctx, y, avsr_f32(R));
    tap_ok(L && avsr_backward(ctx, L, NULL) == 0, "a1d: backward runs");
    fe_check_grads(st, c, p);
    avsr_ctx_reset(ctx);
    fe_check_after(st, c, p);
    avsr_ctx_set_training(ctx, false);
    avsr_tensor_free(R);
    avsr_tensor_free(x);
    avsr_audio_resnet1d_free(&m);
    avsr_params_destroy(p);
}

/* ---- golden: Conv2d subsampling and filterbank projection ---------------------- */

static void golden_sub(avsr_ctx *ctx, avsr_st *st)
{
    const char *c = "sub";
    avsr_conv2d_subsampling_cfg cfg = {.idim = 80, .channels = 6, .odim = 10};
    int64_t lengths[2], want_len[2], out_len[2] = {-1, -1};
    fe_meta_ints(st, c, "lengths", lengths, 2);
    fe_meta_ints(st, c, "out_lengths", want_len, 2);
    avsr_error err = {0};
    avsr_params *p = new_params();
    avsr_conv2d_subsampling m;
    if (avsr_conv2d_subsampling_init(&m, p, "", &cfg, &err) < 0)
        tap_bail("%s: %s", c, err.msg);
    finalize(p, 7);
    fe_load(st, c, p);
    avsr_params_zero_grad(p);
    avsr_tensor *x = tu_golden_tensor(st, "sub.x", true);
    avsr_tensor *y = avsr_conv2d_subsampling_forward(ctx, &m, x, lengths, out_len);
    if (!tap_ok(y && y->shape[1] == 5 && y->shape[2] == 10,
                "sub: [2, 80, 23] log-mel -> [2, 5, 10] %s", avsr_ctx_errmsg(ctx)))
        tap_bail("cannot continue");
    tap_ok(out_len[0] == want_len[0] && out_len[1] == want_len[1],
           "sub: output lengths %lld, %lld = ((n - 1) / 2 - 1) / 2", (long long)out_len[0],
           (long long)out_len[1]);
    fe_check(st, "sub.y", avsr_f32(y), y->numel, "sub: Conv2dSubsampling output matches PyTorch");
    avsr_tensor *R = tu_golden_tensor(st, "sub.R", false);
    avsr_backward(ctx, avsr_op_dot_const(ctx, y, avsr_f32(R)), NULL);
    fe_check_grads(st, c, p);
    fe_check(st, "sub.g_x", x->grad, x->numel, "sub: input gradient matches PyTorch");
    avsr_ctx_reset(ctx);
    avsr_tensor_free(R);
    avsr_tensor_free(x);
    avsr_params_destroy(p);

    c = "fbank";
    p = new_params();
    avsr_audio_fbank_proj f;
    avsr_audio_fbank_proj_init(&f, p, "feature_extractor_audio", 104, 12, &err);
    finalize(p, 7);
    tap_ok(avsr_params_find(p, "feature_extractor_audio.proj.weight") != NULL,
           "fbank: AV-HuBERT name feature_extractor_audio.proj.weight");
    avsr_params_destroy(p);
    p = new_params();
    avsr_audio_fbank_proj_init(&f, p, "", 104, 12, &err);
    finalize(p, 7);
    fe_load(st, c, p);
    avsr_params_zero_grad(p);
    x = tu_golden_tensor(st, "fbank.x", true);
    y = avsr_audio_fbank_proj_forward(ctx, &f, x);
    fe_check(st, "fbank.y", avsr_f32(y), y->numel, "fbank: projection output matches PyTorch");
    R = tu_golden_tensor(st, "fbank.R", false);
    avsr_backward(ctx, avsr_op_dot_const(ctx, y, avsr_f32(R)), NULL);
    fe_check_grads(st, c, p);
    fe_check(st, "fbank.g_x", x->grad, x->numel, "fbank: input gradient matches PyTorch");
    avsr_ctx_reset(ctx);
    avsr_tensor_free(R);
    avsr_tensor_free(x);
    avsr_params_destroy(p);
}

/* ---- finite-difference gradient checks (tiny sizes, training mode) -------------- */

typedef struct gc_vis {
    avsr_visual_frontend *m;
    avsr_tensor *x;
    const int64_t *lengths;
} gc_vis;

static avsr_tensor *run_vis(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    (void)in;
    gc_vis *g = user;
    return avsr_visual_frontend_forward(ctx, g->m, g->x, g->lengths);
}

typedef struct gc_aud {
    avsr_audio_resnet1d *m;
    avsr_tensor *x;
    const int64_t *lengths;
} gc_aud;

static avsr_tensor *run_aud(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    (void)in;
    gc_aud *g = user;
    return avsr_audio_resnet1d_forward(ctx, g->m, g->x, g->lengths, NULL);
}

typedef struct gc_sub {
    avsr_conv2d_subsampling *m;
} gc_sub;

static avsr_tensor *run_sub(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    gc_sub *g = user;
    return avsr_conv2d_subsampling_forward(ctx, g->m, in[0], NULL, NULL);
}

static void gradchecks(avsr_ctx *ctx)
{
    avsr_error err = {0};
    /* Tolerances: float32 central differences with step 1e-2 through train-
     * mode batch norms over few values; 3e-2 absolute + relative. */
    tu_gc_opts o = {.eps = 1e-2, .atol = 3e-2, .rtol = 3e-2, .max_elems = 24};
    avsr_ctx_set_training(ctx, true);

    /* visual: C=2, ROI 16 (16 -> 8 -> 4 -> 4, 2, 1, 1), T=3, B=2, lengths {3, 2} */
    avsr_params *p = new_params();
    avsr_visual_frontend v;
    avsr_visual_frontend_cfg vc = {.width = 2, .depth = {1, 1, 1, 1}, .act = AVSR_FE_ACT_SWISH,
                                   .roi = 16};
    avsr_visual_frontend_init(&v, p, "", &vc, &err);
    finalize(p, 11);
    int64_t xs[4] = {2, 3, 16, 16}, vl[2] = {3, 2};
    avsr_tensor *x = tu_rand(4, xs, 5, -1, 1, false);
    gc_vis gv = {&v, x, vl};
    avsr_tensor *in[5] = {v.stem.weight, v.stem_bn.weight, v.trunk.blocks[0].bn1.bias,
                          v.trunk.blocks[1].conv1.weight, v.trunk.blocks[3].down_bn.bias};
    /* the stem's weights are ~0.06 (U(+-1/sqrt(245))) and the loss is
     * curved through max pooling and 5 batch norms: a step of 3e-4 */
    tu_gc_opts ov = o;
    ov.eps = 3e-4;
    tu_gradcheck("visual frontend C=2 (train mode, masked BN)", ctx, run_vis, &gv, 5, in, &ov);
    avsr_tensor_free(x);
    avsr_visual_frontend_free(&v);
    avsr_params_destroy(p);

    /* ResNet1D: width 2, 2 frames + 100 samples, lengths {1380, 700} */
    p = new_params();
    avsr_audio_resnet1d a;
    avsr_audio_resnet1d_cfg ac = {.width = 2, .depth = {1, 1, 1, 1}, .act = AVSR_FE_ACT_SWISH,
                                  .pool = 20};
    avsr_audio_resnet1d_init(&a, p, "", &ac, &err);
    finalize(p, 12);
    int64_t ws[2] = {2, 1380}, al[2] = {1380, 700};
    x = tu_rand(2, ws, 6, -1, 1, false);
    gc_aud ga = {&a, x, al};
    avsr_tensor *ain[4] = {a.stem.weight, a.stem_bn.bias, a.trunk.blocks[0].conv2.weight,
                           a.trunk.blocks[2].down_conv.weight};
    tu_gradcheck("ResNet1D width 2 (train mode, masked BN)", ctx, run_aud, &ga, 4, ain, &o);
    avsr_tensor_free(x);
    avsr_audio_resnet1d_free(&a);
    avsr_params_destroy(p);

    /* Conv2d subsampling: idim 9, 3 channels, odim 4, 11 frames */
    p = new_params();
    avsr_conv2d_subsampling s;
    avsr_conv2d_subsampling_cfg sc = {.idim = 9, .channels = 3, .odim = 4};
    avsr_conv2d_subsampling_init(&s, p, "", &sc, &err);
    finalize(p, 13);
    int64_t fs[3] = {1, 9, 11};
    x = tu_rand(3, fs, 7, -1, 1, true);
    gc_sub gs = {&s};
    avsr_tensor *sin[4] = {x, s.conv0.weight, s.conv2.bias, s.out.weight};
    tu_gradcheck("Conv2d subsampling (batch 1)", ctx, run_sub, &gs, 4, sin, &o);
    avsr_tensor_free(x);
    avsr_params_destroy(p);
    avsr_ctx_set_training(ctx, false);
}

/* ---- error messages ------------------------------------------------------------ */

static void expect_error(avsr_ctx *ctx, avsr_tensor *y, const char *substr, const char *what)
{
    const char *msg = avsr_ctx_errmsg(ctx);
    tap_ok(!y && avsr_ctx_failed(ctx) && strstr(msg, substr), "%s: error names it (%s)", what,
           msg);
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
}

static void errors(avsr_ctx *ctx)
{
    avsr_error err = {0};
    avsr_params *p = new_params();
    avsr_visual_frontend v;
    avsr_visual_frontend_cfg vc = {.width = 2, .depth = {1, 1, 1, 1}, .roi = 8};
    avsr_visual_frontend_init(&v, p, "", &vc, &err);
    avsr_audio_resnet1d a;
    avsr_audio_resnet1d_cfg ac = {.width = 2, .depth = {1, 1, 1, 1}, .pool = 20};
    avsr_audio_resnet1d_init(&a, p, "aud", &ac, &err);
    avsr_conv2d_subsampling s;
    avsr_conv2d_subsampling_cfg sc = {.idim = 80, .channels = 2, .odim = 4};
    avsr_conv2d_subsampling_init(&s, p, "sub", &sc, &err);
    finalize(p, 1);
    int64_t s1[4] = {1, 2, 10, 10}, s2[2] = {1, 500}, s3[3] = {1, 40, 20}, s4[4] = {1, 2, 8, 8};
    avsr_tensor *x1 = tu_rand(4, s1, 1, 0, 1, false), *x2 = tu_rand(2, s2, 1, 0, 1, false);
    avsr_tensor *x3 = tu_rand(3, s3, 1, 0, 1, false), *x4 = tu_rand(4, s4, 1, 0, 1, false);
    expect_error(ctx, avsr_visual_frontend_forward(ctx, &v, x1, NULL),
                 "visual_frontend: video: got F32 [1, 2, 10, 10]", "visual frontend, wrong ROI");
    int64_t bad_len[1] = {3};
    expect_error(ctx, avsr_visual_frontend_forward(ctx, &v, x4, bad_len),
                 "visual_frontend: lengths[0] = 3, expected 1..2", "visual frontend, length > T");
    expect_error(ctx, avsr_audio_resnet1d_forward(ctx, &a, x2, NULL, NULL),
                 "with L >= 640", "ResNet1D, waveform shorter than one frame");
    expect_error(ctx, avsr_conv2d_subsampling_forward(ctx, &s, x3, NULL, NULL),
                 "conv2d_subsampling: feats: got F32 [1, 40, 20], expected f32 [B, 80, T]",
                 "Conv2d subsampling, wrong number of bins");
    avsr_visual_frontend v2;
    vc.width = 0;
    tap_ok(avsr_visual_frontend_init(&v2, p, "bad", &vc, &err) < 0 &&
               strstr(err.msg, "bad: visual frontend: width 0"),
           "visual frontend init rejects width 0 (%s)", err.msg);
    avsr_tensor_free(x1);
    avsr_tensor_free(x2);
    avsr_tensor_free(x3);
    avsr_tensor_free(x4);
    avsr_visual_frontend_free(&v);
    avsr_audio_resnet1d_free(&a);
    avsr_params_destroy(p);
}

int main(void)
{
    test_names();
    avsr_ctx *ctx = tu_ctx();
    avsr_st *st = tu_golden_open("frontend");
    golden_visual(ctx, st, "vis8", false);
    avsr_st_close(st);
    st = tu_golden_open("frontend_grad");
    golden_visual(ctx, st, "vis4", true);
    golden_resnet1d(ctx, st);
    golden_sub(ctx, st);
    avsr_st_close(st);
    gradchecks(ctx);
    errors(ctx);
    avsr_ctx_destroy(ctx);
    return tap_done();
}
