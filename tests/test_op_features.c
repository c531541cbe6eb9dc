/* test_op_features: Whisper log-mel, Kaldi fbank, frame stacking and
 * SpecAugment: golden comparisons against PyTorch/torchaudio
 * (tests/golden/gen_features.py), finite-difference gradient checks, mask
 * determinism and bounds, and bad-input messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "op_features.h"
#include "rng.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"

/* Tolerances (worst errors seen when written in brackets).
 * - Filterbank: computed in double and rounded to f32 exactly as librosa
 *   does [bitwise equal]; the tolerance only allows a last-bit libm
 *   difference on another machine.
 * - Whisper log-mel, after (x + 4) / 4: both sides do a single-precision
 *   FFT (FFTW here, pocketfft/MKL in torch) whose rounding error is ~1e-7 of
 *   the frame's energy; bins more than 8 decades down are clamped (exact),
 *   so a kept bin has a relative power error of at most ~1e-4, i.e. 4e-5 in
 *   log10 and 1e-5 after the division by 4 [1e-6]. atol 1e-4 (the usual
 *   log-domain bound) leaves a wide margin.
 * - Its gradient: d/dx goes through 1 / mel and the adjoint FFT; relative
 *   2e-3 plus atol 2e-4 on gradients up to ~10 [1.1e-4 absolute on a value
 *   of 7.7, 1.4e-5 relative].
 * - Kaldi fbank: natural log (no clamp, no division by 4), so bins 13 nats
 *   below the frame peak keep the FFT rounding [9e-5 at a log energy of
 *   -12.5]; the mel weights are built in f32 in torchaudio's order. 2e-4.
 * - Stacking is a permutation: exact. */
#define FB_ATOL 1e-9
#define FB_RTOL 1e-6
#define WM_ATOL 1e-4
#define WM_GATOL 2e-4
#define WM_GRTOL 2e-3
#define KF_ATOL 2e-4
#define KF_RTOL 1e-5

static avsr_st *G;

static avsr_tensor *gt(const char *cs, const char *what, bool grad)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", cs, what);
    return tu_golden_tensor(G, name, grad);
}

static bool meta_has(const char *cs, const char *s)
{
    return strstr(tu_golden_meta(G, cs), s) != NULL;
}

static long meta_int(const char *cs, const char *key)
{
    const char *m = tu_golden_meta(G, cs);
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(m, pat);
    if (!p)
        tap_bail("metadata of %s has no %s", cs, key);
    return strtol(p + strlen(pat), NULL, 10);
}

static void cmp(const char *cs, const char *what, const float *got, const char *ref, double atol,
                double rtol)
{
    avsr_tensor *r = gt(cs, ref, false);
    char msg[160];
    snprintf(msg, sizeof msg, "%s: %s matches PyTorch", cs, what);
    tu_close(msg, got, avsr_f32(r), r->numel, atol, rtol);
    avsr_tensor_free(r);
}

/* lengths stored as I64 come back as f32 */
static int64_t *lengths_of(const char *cs, int64_t *B)
{
    avsr_tensor *l = gt(cs, "lengths", false);
    int64_t *v = malloc(sizeof *v * (size_t)l->numel);
    for (int64_t i = 0; i < l->numel; i++)
        v[i] = (int64_t)avsr_f32(l)[i];
    *B = l->numel;
    avsr_tensor_free(l);
    return v;
}

/* ---------------------------------------------------------------- filterbank */

static void test_filters(void)
{
    avsr_tensor *ref = gt("fb", "librosa", false);
    float *fb = malloc(sizeof(float) * 80 * 201);
    avsr_mel_filters_slaney(fb, 16000, 400, 80, 0.0f, 8000.0f);
    tu_close("mel filters equal librosa.filters.mel(16000, 400, 80)", fb, avsr_f32(ref), 80 * 201,
             FB_ATOL, FB_RTOL);
    free(fb);
    avsr_tensor_free(ref);
}

/* ---------------------------------------------------------------- log-mel */

static void golden_logmel(avsr_ctx *ctx, const char *cs)
{
    int64_t B;
    int64_t *len = lengths_of(cs, &B);
    bool grad = meta_has(cs, "\"grad\": true");
    avsr_logmel_cfg cfg;
    avsr_logmel_whisper_defaults(&cfg);
    cfg.pad_to = meta_int(cs, "pad_to");
    avsr_tensor *w = gt(cs, "wave", grad);
    avsr_tensor *y = avsr_op_logmel_whisper(ctx, w, len, &cfg);
    avsr_tensor *R = grad ? gt(cs, "R", false) : NULL;
    if (!y || (grad && avsr_backward(ctx, y, avsr_f32(R)) < 0)) {
        tap_ok(false, "%s: forward/backward: %s", cs, avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
    } else {
        avsr_tensor *ref = gt(cs, "y", false);
        tap_ok(avsr_shape_equal(y, ref), "%s: output shape [%lld, %lld, %lld]", cs,
               (long long)y->shape[0], (long long)y->shape[1], (long long)y->shape[2]);
        avsr_tensor_free(ref);
        cmp(cs, "log-mel", avsr_f32(y), "y", WM_ATOL, 0);
        if (grad)
            cmp(cs, "d wave", w->grad, "g_wave", WM_GATOL, WM_GRTOL);
    }
    avsr_ctx_reset(ctx);
    avsr_tensor_free(w);
    avsr_tensor_free(R);
    free(len);
}

struct lm_args {
    avsr_logmel_cfg cfg;
    const int64_t *len;
};

static avsr_tensor *op_logmel(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    struct lm_args *a = user;
    return avsr_op_logmel_whisper(ctx, in[0], a->len, &a->cfg);
}

static void gradcheck_logmel(avsr_ctx *ctx, const char *name, int n_fft, int hop, int n_mels,
                             int64_t pad_to, int B, int64_t N, const int64_t *len, int quiet_from)
{
    struct lm_args a;
    avsr_logmel_whisper_defaults(&a.cfg);
    a.cfg.n_fft = n_fft;
    a.cfg.hop = hop;
    a.cfg.n_mels = n_mels;
    a.cfg.pad_to = pad_to;
    a.len = len;
    int64_t shape[2] = {B, N};
    avsr_tensor *x = tu_rand(2, shape, 77, -1.0f, 1.0f, true);
    if (quiet_from >= 0) {
        /* a quiet end (amplitude 1e-3) with a dynamic range of 1.5 decades:
         * those outputs are clamped at max - 1.5 and their gradient goes to
         * the maximum. (Digital silence would sit on the 1e-10 floor, where
         * a finite-difference step jumps off the flat part.) */
        a.cfg.dyn_range = 1.5f;
        for (int b = 0; b < B; b++)
            for (int64_t i = quiet_from; i < N; i++)
                avsr_f32(x)[b * N + i] *= 1e-3f;
    }
    avsr_tensor *in[1] = {x};
    /* log-mel of noise is smooth away from the clamps; step 1e-3 on samples
     * of magnitude <= 1 keeps the second-order error ~1e-5 while the f32
     * loss (sum of ~100-1000 terms of magnitude 1) rounds at ~1e-5 / 2e-3 */
    tu_gc_opts o = {1e-3, 1e-2, 3e-2, 40};
    tu_gradcheck(name, ctx, op_logmel, &a, 1, in, &o);
    avsr_tensor_free(x);
}

/* ---------------------------------------------------------------- Kaldi fbank */

static void golden_fbank(avsr_ctx *ctx, const char *cs)
{
    int64_t B;
    int64_t *len = lengths_of(cs, &B);
    avsr_fbank_cfg cfg;
    avsr_fbank_kaldi_defaults(&cfg);
    cfg.num_mel_bins = (int)meta_int(cs, "bins");
    avsr_tensor *w = gt(cs, "wave", false);
    avsr_tensor *y = avsr_op_fbank_kaldi(ctx, w, len, &cfg);
    if (!y) {
        tap_ok(false, "%s: forward: %s", cs, avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
    } else {
        avsr_tensor *ref = gt(cs, "y", false);
        tap_ok(avsr_shape_equal(y, ref), "%s: output shape [%lld, %lld, %lld]", cs,
               (long long)y->shape[0], (long long)y->shape[1], (long long)y->shape[2]);
        avsr_tensor_free(ref);
        cmp(cs, "fbank", avsr_f32(y), "y", KF_ATOL, KF_RTOL);
    }
    avsr_ctx_reset(ctx);
    avsr_tensor_free(w);
    free(len);
}

/* ---------------------------------------------------------------- stacking */

static void golden_stack(avsr_ctx *ctx, const char *cs)
{
    avsr_tensor *x = gt(cs, "x", true);
    avsr_tensor *R = gt(cs, "R", false);
    avsr_tensor *y = avsr_op_stack_frames(ctx, x, (int)meta_int(cs, "k"));
    if (!y || avsr_backward(ctx, y, avsr_f32(R)) < 0) {
        tap_ok(false, "%s: forward/backward: %s", cs, avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
    } else {
        cmp(cs, "stacked", avsr_f32(y), "y", 0, 0);
        cmp(cs, "d x", x->grad, "g_x", 0, 0);
    }
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x);
    avsr_tensor_free(R);
}

static avsr_tensor *op_stack(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    return avsr_op_stack_frames(ctx, in[0], *(int *)user);
}

static void gradcheck_stack(avsr_ctx *ctx, const char *name, int64_t B, int64_t F, int64_t T,
                            int k)
{
    int64_t s[3] = {B, F, T};
    avsr_tensor *x = tu_rand(3, s, 5, -1, 1, true);
    avsr_tensor *in[1] = {x};
    tu_gc_opts o = {1e-2, 1e-3, 1e-3, 48}; /* linear: exact up to f32 rounding */
    tu_gradcheck(name, ctx, op_stack, &k, 1, in, &o);
    avsr_tensor_free(x);
}

/* ---------------------------------------------------------------- SpecAugment */

static void test_mask_bounds(void)
{
    avsr_specaug_cfg c = {.n_time_masks = 3, .max_time = 40, .max_time_ratio = 0.3f,
                          .n_freq_masks = 2, .max_freq = 27, .fill_mean = false};
    int32_t t0[3], tw[3], f0[2], fw[2];
    int bad = 0, widest_t = 0, widest_f = 0;
    for (int i = 0; i < 400; i++) {
        int64_t len = 1 + (i * 37) % 250, F = 1 + (i * 13) % 90;
        avsr_spec_augment_draw(&c, 1234, (uint64_t)i % 3, (uint64_t)i, AVSR_RNG_SPEC_AUG, F, len,
                               t0, tw, f0, fw);
        int64_t wt = (int64_t)floor(0.3 * (double)len);
        if (wt > 40)
            wt = 40;
        for (int j = 0; j < 3; j++) {
            bad += tw[j] < 0 || tw[j] > wt || t0[j] < 0 || t0[j] + tw[j] > len;
            if (tw[j] > widest_t)
                widest_t = tw[j];
        }
        for (int j = 0; j < 2; j++) {
            bad += fw[j] < 0 || fw[j] > 27 || fw[j] > F || f0[j] < 0 || f0[j] + fw[j] > F;
            if (fw[j] > widest_f)
                widest_f = fw[j];
        }
    }
    tap_ok(bad == 0, "spec_augment: 400 draws keep masks within bounds (%d violations)", bad);
    tap_ok(widest_t == 40 && widest_f == 27,
           "spec_augment: the widest masks reach the limits (time %d of 40, freq %d of 27)",
           widest_t, widest_f);
}

static void test_specaug_determinism(avsr_ctx *ctx)
{
    avsr_specaug_cfg c = {.n_time_masks = 2, .max_time = 10, .max_time_ratio = 0.3f,
                          .n_freq_masks = 2, .max_freq = 5, .fill_mean = false};
    const int64_t F = 11, T = 37;
    int64_t s[3] = {3, F, T};
    avsr_tensor *x = tu_rand(3, s, 9, 1.0f, 2.0f, false); /* no zeros in the input */
    int64_t len[3] = {37, 30, 21};
    uint64_t ids_a[3] = {7, 8, 9}, ids_b[3] = {9, 100, 7};
    avsr_ctx_set_training(ctx, true);
    avsr_ctx_set_batch_keys(ctx, 42, 3, 3, ids_a);
    avsr_tensor *ya = avsr_op_spec_augment(ctx, x, len, &c, AVSR_RNG_SPEC_AUG);
    avsr_tensor *ya2 = avsr_op_spec_augment(ctx, x, len, &c, AVSR_RNG_SPEC_AUG);
    /* sample 7 in row 0 (length 37) moves to row 2 of another batch; give it
     * the same length there to compare */
    int64_t len_b[3] = {21, 30, 37};
    avsr_ctx_set_batch_keys(ctx, 42, 3, 3, ids_b);
    avsr_tensor *yb = avsr_op_spec_augment(ctx, x, len_b, &c, AVSR_RNG_SPEC_AUG);
    avsr_ctx_set_batch_keys(ctx, 42, 4, 3, ids_a);
    avsr_tensor *yc = avsr_op_spec_augment(ctx, x, len, &c, AVSR_RNG_SPEC_AUG);
    if (!ya || !ya2 || !yb || !yc) {
        tap_ok(false, "spec_augment: forward: %s", avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
        avsr_ctx_reset(ctx);
        avsr_tensor_free(x);
        return;
    }
    const float *a = avsr_f32(ya), *xd = avsr_f32(x);
    tap_ok(!memcmp(a, avsr_f32(ya2), sizeof(float) * (size_t)(3 * F * T)),
           "spec_augment: same keys give the same masks");
    /* mask of sample 7: zero pattern of row 0 in ya vs row 2 in yb (x rows
     * differ, so compare where zeros are) */
    int same = 1, masked = 0;
    for (int64_t i = 0; i < F * T; i++) {
        int za = a[i] == 0.0f, zb = avsr_f32(yb)[2 * F * T + i] == 0.0f;
        same &= za == zb;
        masked += za;
    }
    tap_ok(same && masked > 0,
           "spec_augment: a sample's masks do not depend on its row in the batch (%d masked)",
           masked);
    int differs = 0;
    for (int64_t i = 0; i < 3 * F * T; i++)
        differs += (a[i] == 0.0f) != (avsr_f32(yc)[i] == 0.0f);
    tap_ok(differs > 0, "spec_augment: another epoch draws other masks");
    /* unmasked values copied, padding frames untouched */
    int ok = 1;
    for (int64_t b = 0; b < 3; b++)
        for (int64_t f = 0; f < F; f++)
            for (int64_t t = 0; t < T; t++) {
                int64_t i = (b * F + f) * T + t;
                if (t >= len[b])
                    ok &= a[i] == xd[i];
                else
                    ok &= a[i] == 0.0f || a[i] == xd[i];
            }
    tap_ok(ok, "spec_augment: masked values are 0, others and padding frames unchanged");
    /* fill with the mean */
    c.fill_mean = true;
    avsr_ctx_set_batch_keys(ctx, 42, 3, 3, ids_a);
    avsr_tensor *ym = avsr_op_spec_augment(ctx, x, len, &c, AVSR_RNG_SPEC_AUG);
    double mean1 = 0;
    for (int64_t f = 0; f < F; f++)
        for (int64_t t = 0; t < len[1]; t++)
            mean1 += xd[(F + f) * T + t];
    mean1 /= (double)(F * len[1]);
    int mok = 1, nm = 0;
    for (int64_t i = 0; i < F * T; i++)
        if (a[F * T + i] == 0.0f) {
            mok &= fabs(avsr_f32(ym)[F * T + i] - mean1) < 1e-6;
            nm++;
        }
    tap_ok(ym && mok && nm > 0, "spec_augment: fill_mean puts the utterance mean (%d values)", nm);
    /* evaluation: identity */
    avsr_ctx_set_training(ctx, false);
    avsr_tensor *ye = avsr_op_spec_augment(ctx, x, len, &c, AVSR_RNG_SPEC_AUG);
    tap_ok(ye == x, "spec_augment: identity (the same tensor) when not training");
    avsr_ctx_set_training(ctx, true);
    avsr_ctx_set_batch_keys(ctx, 0, 0, 0, NULL);
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x);
}

struct sa_args {
    avsr_specaug_cfg cfg;
    const int64_t *len;
};

static avsr_tensor *op_specaug(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    struct sa_args *a = user;
    return avsr_op_spec_augment(ctx, in[0], a->len, &a->cfg, AVSR_RNG_SPEC_AUG);
}

static void gradcheck_specaug(avsr_ctx *ctx, const char *name, bool fill_mean)
{
    struct sa_args a = {{.n_time_masks = 2, .max_time = 6, .max_time_ratio = 0.5f,
                         .n_freq_masks = 1, .max_freq = 3, .fill_mean = fill_mean},
                        NULL};
    int64_t len[2] = {13, 9};
    a.len = len;
    int64_t s[3] = {2, 7, 13};
    avsr_tensor *x = tu_rand(3, s, 21, -1, 1, true);
    avsr_tensor *in[1] = {x};
    avsr_ctx_set_batch_keys(ctx, 5, 1, 0, NULL);
    tu_gc_opts o = {1e-2, 1e-3, 1e-3, 182}; /* linear in x: every element */
    tu_gradcheck(name, ctx, op_specaug, &a, 1, in, &o);
    avsr_tensor_free(x);
}

/* ---------------------------------------------------------------- bad input */

static void expect_fail(avsr_ctx *ctx, avsr_tensor *y, const char *want)
{
    const char *msg = avsr_ctx_errmsg(ctx);
    tap_ok(!y && strstr(msg, want), "error names the problem: \"%s\" in \"%s\"", want, msg);
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
}

static void test_bad_input(avsr_ctx *ctx)
{
    int64_t s3[3] = {2, 3, 4}, s2[2] = {2, 500};
    avsr_tensor *x3 = tu_rand(3, s3, 1, -1, 1, false);
    avsr_tensor *w = tu_rand(2, s2, 2, -1, 1, true);
    avsr_tensor *wc = tu_rand(2, s2, 3, -1, 1, false);
    expect_fail(ctx, avsr_op_logmel_whisper(ctx, x3, NULL, NULL),
                "logmel_whisper: wave: got [2, 3, 4], expected [B, N]");
    int64_t badlen[2] = {500, 501};
    expect_fail(ctx, avsr_op_logmel_whisper(ctx, wc, badlen, NULL),
                "logmel_whisper: lengths[1] = 501 outside [0, 500]");
    avsr_logmel_cfg c;
    avsr_logmel_whisper_defaults(&c);
    c.pad_to = 480;
    expect_fail(ctx, avsr_op_logmel_whisper(ctx, wc, NULL, &c),
                "logmel_whisper: clip 0 has 500 samples, more than pad_to 480");
    c.pad_to = 0;
    c.hop = 0;
    expect_fail(ctx, avsr_op_logmel_whisper(ctx, wc, NULL, &c), "logmel_whisper: cfg: n_fft 400, hop 0");
    expect_fail(ctx, avsr_op_fbank_kaldi(ctx, w, NULL, NULL),
                "fbank_kaldi: wave requires grad, but fbank_kaldi has no gradient");
    expect_fail(ctx, avsr_op_stack_frames(ctx, wc, 4),
                "stack_frames: x: got F32 [2, 500], expected F32 [B, F, T]");
    expect_fail(ctx, avsr_op_stack_frames(ctx, x3, 0), "stack_frames: k = 0, expected >= 1");
    avsr_specaug_cfg sc = {1, 5, 0.2f, 1, 3, false};
    expect_fail(ctx, avsr_op_spec_augment(ctx, wc, NULL, &sc, AVSR_RNG_SPEC_AUG),
                "spec_augment: feats: got F32 [2, 500], expected F32 [B, F, T]");
    int64_t l5[2] = {4, 5};
    expect_fail(ctx, avsr_op_spec_augment(ctx, x3, l5, &sc, AVSR_RNG_SPEC_AUG),
                "spec_augment: lengths[1] = 5 outside [0, 4]");
    /* without grad mode the fbank of a grad-requiring wave is fine */
    bool old = avsr_ctx_set_grad(ctx, false);
    avsr_tensor *y = avsr_op_fbank_kaldi(ctx, w, NULL, NULL);
    tap_ok(y && y->shape[2] == 1 && avsr_tape_size(ctx) == 0,
           "fbank_kaldi: computes without grad mode (1 frame of 500 samples)");
    avsr_ctx_set_grad(ctx, old);
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x3);
    avsr_tensor_free(w);
    avsr_tensor_free(wc);
}

/* Thread count must not change the result: features are per frame. */
static void test_frames_helpers(void)
{
    avsr_logmel_cfg c;
    avsr_logmel_whisper_defaults(&c);
    avsr_fbank_cfg k;
    avsr_fbank_kaldi_defaults(&k);
    tap_ok(avsr_logmel_frames(&c, 1601) == 10 && avsr_logmel_frames(&c, 159) == 0,
           "logmel frames: n / hop (1601 -> 10, 159 -> 0)");
    c.pad_to = 480000;
    tap_ok(avsr_logmel_frames(&c, 1601) == 3000, "logmel frames with pad_to 480000: 3000");
    tap_ok(avsr_fbank_frames(&k, 400) == 1 && avsr_fbank_frames(&k, 399) == 0 &&
               avsr_fbank_frames(&k, 16000) == 98,
           "fbank frames: 1 + (n - 400) / 160 (400 -> 1, 399 -> 0, 1 s -> 98)");
}

int main(void)
{
    avsr_ctx *ctx = tu_ctx();
    G = tu_golden_open("features");
    test_filters();
    test_frames_helpers();
    golden_logmel(ctx, "wm_batch");
    golden_logmel(ctx, "wm_short");
    golden_logmel(ctx, "wm_pad");
    golden_fbank(ctx, "kf_80");
    golden_fbank(ctx, "kf_26");
    golden_fbank(ctx, "kf_short");
    golden_stack(ctx, "stack");
    golden_stack(ctx, "stack1");

    int64_t l2[2] = {37, 23}, l0[2] = {41, 3}, l1[1] = {480};
    gradcheck_logmel(ctx, "logmel small fft, odd lengths", 16, 4, 6, 0, 2, 37, l2, -1);
    gradcheck_logmel(ctx, "logmel, a clip with no frames", 16, 4, 6, 0, 2, 41, l0, -1);
    gradcheck_logmel(ctx, "logmel small fft, quiet end (clamps)", 16, 4, 6, 0, 2, 37, l2, 20);
    gradcheck_logmel(ctx, "logmel small fft, pad_to", 16, 4, 6, 48, 2, 37, l2, -1);
    gradcheck_logmel(ctx, "logmel Whisper config, 3 frames", 400, 160, 80, 0, 1, 480, l1, -1);
    gradcheck_stack(ctx, "stack_frames 2x5x7 k=4", 2, 5, 7, 4);
    gradcheck_stack(ctx, "stack_frames 1x3x1 k=4", 1, 3, 1, 4);
    gradcheck_stack(ctx, "stack_frames 3x2x9 k=3", 3, 2, 9, 3);

    test_mask_bounds();
    test_specaug_determinism(ctx);
    gradcheck_specaug(ctx, "spec_augment fill 0", false);
    gradcheck_specaug(ctx, "spec_augment fill mean", true);

    test_bad_input(ctx);
    avsr_st_close(G);
    avsr_ctx_destroy(ctx);
    return tap_done();
}
