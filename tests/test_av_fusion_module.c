/* test_av_fusion_module: the ASR2AVSR fusion module (models/
 * av_fusion_module.h): golden comparisons against a PyTorch replica of the
 * original module at small widths (state dict loaded by name, every
 * parameter gradient, running statistics, evaluation mode), the windowed
 * attention at lengths 37, 160, 161 and 400, a finite-difference check of
 * the fusion block over several windows, the paper configuration's
 * parameter count, video_scale, bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_golden.h"
#include "models/av_fusion_module.h"
#include "ops.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"

static avsr_params *build(avsr_avfm *m, const avsr_avfm_cfg *cfg)
{
    avsr_error err = {0};
    avsr_params *p = avsr_params_create();
    if (!p || avsr_avfm_init(m, p, "", cfg, &err) < 0 || avsr_params_finalize(p, &err) < 0 ||
        avsr_params_init(p, 3, &err) < 0)
        tap_bail("av_fusion_module: %s", err.msg);
    return p;
}

static void set_lip(avsr_avfm_cfg *c, int stem, const int ch[4], const int bl[4][2], int inner)
{
    c->lip_stem = stem;
    c->lip_inner = inner;
    for (int k = 0; k < 4; k++) {
        c->lip_channels[k] = ch[k];
        c->lip_blocks[k][0] = bl[k][0];
        c->lip_blocks[k][1] = bl[k][1];
    }
}

/* Parameter gradients against "<c>.g.<name>": fe_golden's rule
 * |got - want| <= FE_RTOL * (|want| + max |want| of the tensor) plus an
 * absolute floor of 2e-6 x the largest gradient of the whole model. The
 * floor is for the biases of convolutions followed by training-mode batch
 * norm, whose gradient is zero in exact arithmetic: both sides return the
 * rounding residue of sums over 2,000..50,000 positions of terms up to the
 * largest gradient (~1e-7 relative each), seen at 1e-7..5e-6 absolute
 * against gradients up to 17. */
static bool check_grads(avsr_st *st, const char *c, avsr_params *p)
{
    char key[512];
    int n = avsr_params_count(p), bad = 0, cnt = 0;
    double gmax = 0.0;
    for (int i = 0; i < n; i++) {
        if (avsr_params_is_buffer(p, i))
            continue;
        avsr_tensor *t = avsr_params_at(p, i);
        snprintf(key, sizeof key, "%s.g.%s", c, t->name);
        avsr_tensor *w = tu_golden_tensor(st, key, false);
        for (int64_t k = 0; k < w->numel; k++)
            gmax = fmax(gmax, fabs(avsr_f32(w)[k]));
        avsr_tensor_free(w);
    }
    double floor_abs = 2e-6 * gmax, worst = 0.0;
    for (int i = 0; i < n; i++) {
        if (avsr_params_is_buffer(p, i))
            continue;
        avsr_tensor *t = avsr_params_at(p, i);
        snprintf(key, sizeof key, "%s.g.%s", c, t->name);
        avsr_tensor *w = tu_golden_tensor(st, key, false);
        const float *want = avsr_f32(w);
        double mx = 0.0, ex = 0.0;
        for (int64_t k = 0; k < w->numel; k++)
            mx = fmax(mx, fabs(want[k]));
        bool ok = w->numel == t->numel;
        for (int64_t k = 0; ok && k < w->numel; k++) {
            double d = fabs((double)t->grad[k] - want[k]);
            double tol = FE_RTOL * (fabs(want[k]) + mx) + floor_abs;
            ok = !isnan(d) && d <= tol;
            ex = fmax(ex, d / fmax(mx, floor_abs / FE_RTOL));
        }
        worst = fmax(worst, ex);
        if (!ok) {
            bad++;
            tap_diag("  grad %s: max |err| / max |ref| = %.3e", t->name, ex);
        }
        cnt++;
        avsr_tensor_free(w);
    }
    return tap_ok(bad == 0,
                  "%s: gradients of all %d parameters match torch autograd (worst %.2e; floor "
                  "%.1e for structurally zero gradients)",
                  c, cnt, worst, floor_abs);
}

/* the configuration of gen_lora.py window_cases() */
static void win_cfg(avsr_avfm_cfg *c)
{
    static const int ch[4] = {2, 2, 2, 2}, bl[4][2] = {{1, 0}, {1, 0}, {1, 0}, {1, 0}};
    avsr_avfm_cfg_default(c);
    c->n_mels = 8;
    c->spec_channels = 2;
    c->spec_layers = 2;
    set_lip(c, 2, ch, bl, 2);
    c->d_model = 8;
    c->heads = 2;
    c->layers = 2;
    c->window = 160;
}

/* gen_lora.py avfm_cases() */
static void avfm_cfg(avsr_avfm_cfg *c)
{
    static const int ch[4] = {4, 6, 8, 8}, bl[4][2] = {{2, 1}, {1, 1}, {1, 2}, {3, 1}};
    avsr_avfm_cfg_default(c);
    c->n_mels = 8;
    c->spec_channels = 4;
    c->spec_layers = 3;
    set_lip(c, 4, ch, bl, 4);
    c->d_model = 8;
    c->heads = 2;
    c->layers = 2;
    c->window = 160;
}

static void windows(avsr_ctx *ctx, avsr_st *st)
{
    avsr_avfm m;
    avsr_avfm_cfg cfg;
    win_cfg(&cfg);
    avsr_params *p = build(&m, &cfg);
    fe_load(st, "win", p);
    static const char *cases[4] = {"win37", "win160", "win161", "win400"};
    static const int64_t Ls[4] = {37, 160, 161, 400};
    for (int c = 0; c < 4; c++) {
        char key[64];
        avsr_params_zero_grad(p);
        avsr_tensor *a = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.a", cases[c]), key), true);
        avsr_tensor *v = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.v", cases[c]), key), true);
        avsr_tensor *y = avsr_avfm_fuse(ctx, &m, a, v);
        if (!tap_ok(y && y->shape[1] == Ls[c], "%s: fuse [%lld, %lld, 8] -> same shape %s", cases[c],
                    (long long)a->shape[0], (long long)Ls[c], avsr_ctx_errmsg(ctx)))
            tap_bail("cannot continue");
        char what[96];
        snprintf(what, sizeof what, "%s: fusion block (pad to %lld, %lld window(s)) matches PyTorch",
                 cases[c], (long long)((Ls[c] + 159) / 160 * 160),
                 (long long)(2 * ((Ls[c] + 159) / 160) - 1));
        fe_check(st, (snprintf(key, sizeof key, "%s.y", cases[c]), key), avsr_f32(y), y->numel, what);
        avsr_tensor *R = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.R", cases[c]), key), false);
        avsr_backward(ctx, avsr_op_dot_const(ctx, y, avsr_f32(R)), NULL);
        fe_check(st, (snprintf(key, sizeof key, "%s.g_a", cases[c]), key), a->grad, a->numel,
                 "audio-feature gradient matches PyTorch");
        fe_check(st, (snprintf(key, sizeof key, "%s.g_v", cases[c]), key), v->grad, v->numel,
                 "video-feature gradient matches PyTorch");
        fe_check_grads(st, cases[c], p);
        avsr_ctx_reset(ctx);
        avsr_tensor_free(a);
        avsr_tensor_free(v);
        avsr_tensor_free(R);
    }
    avsr_avfm_free(&m);
    avsr_params_destroy(p);
}

static void whole(avsr_ctx *ctx, avsr_st *st, const char *c, int window)
{
    avsr_avfm m;
    avsr_avfm_cfg cfg;
    avfm_cfg(&cfg);
    cfg.window = window;
    avsr_params *p = build(&m, &cfg);
    fe_load(st, "avfm", p);
    avsr_params_zero_grad(p);
    avsr_tensor *mel = tu_golden_tensor(st, "avfm.mel", false);
    avsr_tensor *video = tu_golden_tensor(st, "avfm.video", false);
    char key[96];
    avsr_ctx_set_training(ctx, true);
    avsr_tensor *y = avsr_avfm_forward(ctx, &m, mel, video);
    if (!tap_ok(y && avsr_shape_equal(y, mel), "%s: mel [2, 8, 24] + video [2, 6, 65, 65] -> [2, 8, 24] %s",
                c, avsr_ctx_errmsg(ctx)))
        tap_bail("cannot continue");
    char what[128];
    snprintf(what, sizeof what, "%s: whole module, training mode, window %d, matches PyTorch", c, window);
    fe_check(st, (snprintf(key, sizeof key, "%s.y", c), key), avsr_f32(y), y->numel, what);
    avsr_tensor *R = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.R", c), key), false);
    avsr_backward(ctx, avsr_op_dot_const(ctx, y, avsr_f32(R)), NULL);
    check_grads(st, c, p);
    avsr_ctx_reset(ctx);
    fe_check_after(st, c, p);
    avsr_ctx_set_training(ctx, false);
    avsr_ctx_set_grad(ctx, false);
    avsr_tensor *ye = avsr_avfm_forward(ctx, &m, mel, video);
    snprintf(what, sizeof what, "%s: evaluation mode (running statistics) matches PyTorch", c);
    if (ye)
        fe_check(st, (snprintf(key, sizeof key, "%s.y_eval", c), key), avsr_f32(ye), ye->numel, what);
    else
        tap_ok(false, "%s", what);
    avsr_ctx_set_grad(ctx, true);
    avsr_ctx_set_training(ctx, true);
    avsr_ctx_reset(ctx);
    avsr_tensor_free(R);
    avsr_tensor_free(mel);
    avsr_tensor_free(video);
    avsr_avfm_free(&m);
    avsr_params_destroy(p);
}

/* finite differences through the fusion block: window 4 on length 9
 * (padded to 12, 5 windows), gradients of both inputs */
static avsr_avfm gc_m;

/* a small fusion block: 3 mel bins, width 4, 2 heads, 2 layers, window 4 */
static void small_fuse_cfg(avsr_avfm_cfg *cfg)
{
    win_cfg(cfg);
    cfg->n_mels = 3;
    cfg->d_model = 4;
    cfg->heads = 2;
    cfg->layers = 2;
    cfg->window = 4;
}

static avsr_tensor *gc_fn(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    (void)user;
    return avsr_avfm_fuse(ctx, &gc_m, in[0], in[1]);
}

static void gradcheck(avsr_ctx *ctx)
{
    avsr_avfm_cfg cfg;
    small_fuse_cfg(&cfg);
    avsr_params *p = build(&gc_m, &cfg);
    int64_t s[3] = {2, 9, 3};
    avsr_tensor *in[2] = {tu_rand(3, s, 31, -1, 1, true), tu_rand(3, s, 32, -1, 1, true)};
    /* two layer norms per layer make the function curved: central
     * differences with eps 1e-3 in float32 give ~1e-3 relative noise */
    tu_gc_opts o = {.eps = 1e-3, .atol = 3e-3, .rtol = 3e-2};
    tu_gradcheck("fuse L=9 window 4 (5 windows, padding)", ctx, gc_fn, NULL, 2, in, &o);
    avsr_avfm_free(&gc_m);
    avsr_params_destroy(p);
    cfg.query_residual = true;
    p = build(&gc_m, &cfg);
    tu_gradcheck("fuse with query_residual", ctx, gc_fn, NULL, 2, in, &o);
    avsr_tensor_free(in[0]);
    avsr_tensor_free(in[1]);
    avsr_avfm_free(&gc_m);
    avsr_params_destroy(p);
}

/* query_residual: with a constant audio stream (silence) the value-residual
 * block's output barely depends on the lips (only through the paper's head
 * split, a reshape without transpose that mixes slices of the constant
 * values); with the query residual it follows them */
static void query_residual(avsr_ctx *ctx)
{
    avsr_avfm_cfg cfg;
    small_fuse_cfg(&cfg);
    int64_t s[3] = {1, 8, 3};
    avsr_tensor *a = tu_rand(3, s, 51, 0, 0, false); /* constant (zero) audio */
    avsr_tensor *v1 = tu_rand(3, s, 52, -1, 1, false), *v2 = tu_rand(3, s, 53, -1, 1, false);
    avsr_ctx_set_training(ctx, false);
    avsr_ctx_set_grad(ctx, false);
    double diff[2] = {0, 0};
    for (int q = 0; q < 2; q++) {
        avsr_avfm m;
        cfg.query_residual = q == 1;
        avsr_params *p = build(&m, &cfg);
        avsr_tensor *y1 = avsr_avfm_fuse(ctx, &m, a, v1), *y2 = avsr_avfm_fuse(ctx, &m, a, v2);
        for (int64_t i = 0; y1 && y2 && i < y1->numel; i++)
            diff[q] = fmax(diff[q], fabs(avsr_f32(y1)[i] - avsr_f32(y2)[i]));
        avsr_ctx_reset(ctx);
        avsr_avfm_free(&m);
        avsr_params_destroy(p);
    }
    tap_ok(diff[1] > 0.1 && diff[1] > 20 * diff[0],
           "silent audio: two videos give outputs %.1e apart with the value residual only, %.2f "
           "apart with query_residual", diff[0], diff[1]);
    avsr_ctx_set_grad(ctx, true);
    avsr_tensor_free(a);
    avsr_tensor_free(v1);
    avsr_tensor_free(v2);
}

static void paper_and_errors(avsr_ctx *ctx)
{
    avsr_avfm m;
    avsr_avfm_cfg cfg;
    avsr_avfm_cfg_default(&cfg);
    avsr_error err = {0};
    avsr_params *p = avsr_params_create();
    int rc = avsr_avfm_init(&m, p, "fusion_module", &cfg, &err);
    /* counted with the PyTorch replica (gen_lora.py AV_Fusion, paper config) */
    tap_ok(rc == 0 && avsr_params_count(p) == 522 && avsr_params_numel(p) == 13190880,
           "paper configuration: 522 state-dict entries, 13190880 parameters (got %d, %lld)",
           avsr_params_count(p), (long long)avsr_params_numel(p));
    tap_ok(avsr_params_find(p, "fusion_module.fusion_block.attn_layers.11.MHA.query.linear.weight") &&
               avsr_params_find(p, "fusion_module.fusion_block.attn_layers.11.MHA.query.linear.weight")->shape[0] == 960 &&
               avsr_params_find(p, "fusion_module.fusion_block.attn_layers.0.MHA.output.weight")->shape[1] == 960 &&
               avsr_params_find(p, "fusion_module.video_frontend.upsample2.weight")->shape[2] == 6 &&
               avsr_params_find(p, "fusion_module.spec_frontend.CNN_layer.6.downsample.weight"),
           "paper configuration: q/k/v 80 -> 960, output 960 -> 80, names under the prefix");
    avsr_avfm_free(&m);
    avsr_params_destroy(p);

    avsr_avfm_cfg bad;
    avsr_avfm_cfg_default(&bad);
    bad.window = 10;
    p = avsr_params_create();
    memset(&err, 0, sizeof err);
    tap_ok(avsr_avfm_init(&m, p, "f", &bad, &err) < 0 && strstr(err.msg, "window 10"),
           "a window that is not a multiple of 4 is rejected: %s", err.msg);
    avsr_avfm_free(&m);
    avsr_params_destroy(p);

    avfm_cfg(&cfg);
    p = build(&m, &cfg);
    int64_t sm[3] = {1, 8, 20}, sv[4] = {1, 6, 65, 65}, sv2[4] = {1, 5, 12, 12}, sm2[3] = {1, 7, 20};
    avsr_tensor *mel = tu_rand(3, sm, 1, -1, 1, false), *vid = tu_rand(4, sv, 2, 0, 255, false);
    avsr_tensor *vid2 = tu_rand(4, sv2, 3, 0, 255, false), *mel2 = tu_rand(3, sm2, 4, -1, 1, false);
    tap_ok(!avsr_avfm_forward(ctx, &m, mel, vid) &&
               strstr(avsr_ctx_errmsg(ctx), "mel [1, 8, 20] and video [1, 6, 65, 65]: expected [B, F, 4T]"),
           "mel frames != 4 x video frames is rejected: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    tap_ok(!avsr_avfm_forward(ctx, &m, mel, vid2) &&
               strstr(avsr_ctx_errmsg(ctx), "12 x 12 frames reach 1 x 1 before the final average pool; "
                                            "expected 16..256 pixels a side"),
           "12 x 12 frames are rejected: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    tap_ok(!avsr_avfm_audio_forward(ctx, &m, mel2) &&
               strstr(avsr_ctx_errmsg(ctx), "mel: got F32 [1, 7, 20], expected f32 [B, 8, Tm]"),
           "a mel with the wrong bin count is rejected: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
    avsr_tensor_free(mel);
    avsr_tensor_free(vid);
    avsr_tensor_free(mel2);
    avsr_tensor_free(vid2);
    avsr_avfm_free(&m);
    avsr_params_destroy(p);
}

/* video_scale: 1/255 on raw gray values (the paper, the default) equals
 * scale 1 on video the caller divided by 255 (the AVSR model passes the
 * loader's video with scale 1); a scale <= 0 is rejected. */
static void video_scale(avsr_ctx *ctx)
{
    avsr_avfm m1, m2;
    avsr_avfm_cfg c1, c2;
    avsr_avfm_cfg_default(&c1);
    tap_ok(fabsf(c1.video_scale - 1.0f / 255.0f) < 1e-9f, "default video_scale is 1/255");
    avfm_cfg(&c1);
    c2 = c1;
    c2.video_scale = 1.0f;
    avsr_params *p1 = build(&m1, &c1), *p2 = build(&m2, &c2);
    int64_t sm[3] = {2, 8, 24}, sv[4] = {2, 6, 65, 65};
    avsr_tensor *mel = tu_rand(3, sm, 31, -1, 1, false), *raw = tu_rand(4, sv, 32, 0, 255, false);
    avsr_tensor *scaled = tu_rand(4, sv, 32, 0, 255, false);
    for (int64_t i = 0; i < scaled->numel; i++)
        avsr_f32(scaled)[i] /= 255.0f;
    avsr_ctx_set_training(ctx, false);
    avsr_ctx_set_grad(ctx, false);
    avsr_tensor *y1 = avsr_avfm_forward(ctx, &m1, mel, raw);
    avsr_tensor *y2 = avsr_avfm_forward(ctx, &m2, mel, scaled);
    bool ok = y1 && y2;
    double d = 0;
    for (int64_t i = 0; ok && i < y1->numel; i++)
        d = fmax(d, fabs(avsr_f32(y1)[i] - avsr_f32(y2)[i]));
    tap_ok(ok && d <= 1e-5, "video_scale 1/255 on 0..255 equals video_scale 1 on x / 255 (max "
                            "diff %.2e)", d);
    avsr_ctx_reset(ctx);
    avsr_ctx_set_grad(ctx, true);
    avsr_avfm_free(&m1);
    avsr_avfm_free(&m2);
    avsr_params_destroy(p1);
    avsr_params_destroy(p2);
    avsr_tensor_free(mel);
    avsr_tensor_free(raw);
    avsr_tensor_free(scaled);
    avsr_avfm_cfg bad = c2;
    bad.video_scale = 0.0f;
    avsr_error err = {0};
    avsr_params *p = avsr_params_create();
    tap_ok(avsr_avfm_init(&m1, p, "f", &bad, &err) < 0 && strstr(err.msg, "video_scale 0;"),
           "video_scale 0 is rejected: %s", err.msg);
    avsr_avfm_free(&m1);
    avsr_params_destroy(p);
}

/* mel_skip: the module starts as the identity (out_proj at zero), and with
 * the same parameters its output is the plain module's plus the input mel */
static void mel_skip(avsr_ctx *ctx)
{
    avsr_avfm m1, m2;
    avsr_avfm_cfg c1, c2;
    avsr_avfm_cfg_default(&c1);
    tap_ok(!c1.mel_skip, "mel_skip is off by default (the paper has none)");
    avfm_cfg(&c1);
    c1.video_scale = 1.0f;
    c2 = c1;
    c1.mel_skip = true;
    avsr_params *p1 = build(&m1, &c1), *p2 = build(&m2, &c2);
    int64_t sm[3] = {2, 8, 24}, sv[4] = {2, 6, 44, 44};
    avsr_tensor *mel = tu_rand(3, sm, 41, -1, 1, false), *vid = tu_rand(4, sv, 42, -1, 1, false);
    avsr_ctx_set_training(ctx, false);
    avsr_ctx_set_grad(ctx, false);
    avsr_tensor *y = avsr_avfm_forward(ctx, &m1, mel, vid);
    bool same = y && avsr_shape_equal(y, mel);
    for (int64_t i = 0; same && i < y->numel; i++)
        same = avsr_f32(y)[i] == avsr_f32(mel)[i];
    tap_ok(same, "mel_skip at initialisation: output == input mel (44 x 44 lips)");
    avsr_ctx_reset(ctx);
    memcpy(avsr_params_data(p1), avsr_params_data(p2),
           sizeof(float) * (size_t)avsr_params_flat_size(p2));
    avsr_tensor *ys = avsr_avfm_forward(ctx, &m1, mel, vid);
    avsr_tensor *yp = avsr_avfm_forward(ctx, &m2, mel, vid);
    double d = ys && yp ? 0 : INFINITY, amax = 0;
    for (int64_t i = 0; ys && yp && i < ys->numel; i++) {
        d = fmax(d, fabs(avsr_f32(ys)[i] - avsr_f32(yp)[i] - avsr_f32(mel)[i]));
        amax = fmax(amax, fabs(avsr_f32(yp)[i]));
    }
    tap_ok(d <= 1e-6 * (1 + amax) && amax > 0.01,
           "mel_skip: output = plain module's + mel with the same parameters (max diff %.2e)", d);
    avsr_ctx_reset(ctx);
    avsr_ctx_set_grad(ctx, true);
    avsr_avfm_free(&m1);
    avsr_avfm_free(&m2);
    avsr_params_destroy(p1);
    avsr_params_destroy(p2);
    avsr_tensor_free(mel);
    avsr_tensor_free(vid);
}

int main(void)
{
    avsr_ctx *ctx = tu_ctx();
    avsr_st *sw = tu_golden_open("lora_window");
    windows(ctx, sw);
    avsr_st_close(sw);
    avsr_st *sa = tu_golden_open("lora_avfm");
    whole(ctx, sa, "avfm", 160);
    whole(ctx, sa, "avfm16", 16);
    avsr_st_close(sa);
    gradcheck(ctx);
    paper_and_errors(ctx);
    video_scale(ctx);
    mel_skip(ctx);
    query_residual(ctx);
    avsr_ctx_destroy(ctx);
    return tap_done();
}
