/* test_av_shift: Align-AV-HuBERT's AV-shift head (models/av_shift.h) and
 * its ops (runtime/op_align.h): golden loss and gradients against a PyTorch
 * replica of the criterion, finite-difference checks of l2_normalize,
 * shift_infonce and roll, the prediction recovering planted shifts, the
 * data-side roll, bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/av_shift.h"
#include "op_align.h"
#include "ops.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"

/* Golden tolerance: float32 dot products of 5..6 terms and log-sum-exps in
 * double on our side, float32 in PyTorch: ~1e-7 relative; 1e-5 leaves room. */
#define ATOL 1e-5
#define RTOL 1e-5

static int meta_ints(avsr_st *st, const char *c, const char *field, int *out, int n)
{
    const char *js = tu_golden_meta(st, c);
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": [", field);
    const char *s = strstr(js, pat);
    if (!s)
        tap_bail("metadata of %s has no %s", c, field);
    s += strlen(pat);
    int k = 0;
    while (*s && *s != ']' && k < n) {
        char *end;
        out[k++] = (int)strtol(s, &end, 10);
        s = end;
        while (*s == ',' || *s == ' ')
            s++;
    }
    return k;
}

static void golden(avsr_ctx *ctx, avsr_st *st, const char *c)
{
    char key[96];
    avsr_error err = {0};
    avsr_params *p = avsr_params_create();
    avsr_av_shift m;
    if (avsr_av_shift_init(&m, p, "align", 25, &err) < 0 || avsr_params_finalize(p, &err) < 0 ||
        avsr_params_init(p, 1, &err) < 0)
        tap_bail("%s", err.msg);
    tap_ok(m.logit_scale == avsr_params_find(p, "align.logit_scale_a") && m.logit_scale->ndim == 0 &&
               fabsf(avsr_f32(m.logit_scale)[0] - logf(1.0f / 0.07f)) < 1e-6f,
           "%s: align.logit_scale_a is a scalar initialised to ln(1/0.07)", c);
    const char *js = tu_golden_meta(st, c);
    avsr_f32(m.logit_scale)[0] = (float)atof(strstr(js, "\"scale\": ") + 9);
    avsr_tensor *A = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.A", c), key), true);
    avsr_tensor *V = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.V", c), key), true);
    int shifts[8], len32[8];
    int64_t lengths[8];
    int B = meta_ints(st, c, "shifts", shifts, 8);
    meta_ints(st, c, "lengths", len32, 8);
    for (int b = 0; b < B; b++)
        lengths[b] = len32[b];
    avsr_params_zero_grad(p);
    avsr_tensor *loss = avsr_av_shift_loss(ctx, &m, A, V, shifts, lengths);
    if (!tap_ok(loss != NULL, "%s: loss computed %s", c, avsr_ctx_errmsg(ctx)))
        tap_bail("cannot continue");
    avsr_tensor *w = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.loss", c), key), false);
    tu_close("InfoNCE loss matches PyTorch", avsr_f32(loss), avsr_f32(w), 1, ATOL, RTOL);
    avsr_tensor_free(w);
    avsr_backward(ctx, loss, NULL);
    const char *gs[3] = {"g_A", "g_V", "g_scale"};
    float *got[3] = {A->grad, V->grad, m.logit_scale->grad};
    for (int i = 0; i < 3; i++) {
        w = tu_golden_tensor(st, (snprintf(key, sizeof key, "%s.%s", c, gs[i]), key), false);
        char what[64];
        snprintf(what, sizeof what, "%s: %s matches autograd", c, gs[i]);
        tu_close(what, got[i], avsr_f32(w), w->numel, ATOL, RTOL);
        avsr_tensor_free(w);
    }
    avsr_ctx_reset(ctx);
    avsr_tensor_free(A);
    avsr_tensor_free(V);
    avsr_params_destroy(p);
}

/* ---- gradient checks ---------------------------------------------------- */

struct nce_user {
    int shifts[3];
    int64_t lengths[3];
    bool use_len;
};

static avsr_tensor *nce_fn(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    struct nce_user *u = user;
    return avsr_op_shift_infonce(ctx, in[0], in[1], in[2], u->shifts, u->use_len ? u->lengths : NULL);
}

static avsr_tensor *l2n_fn(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    return avsr_op_l2_normalize(ctx, in[0], *(float *)user);
}

static avsr_tensor *roll_fn(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    return avsr_op_roll(ctx, in[0], 2, user);
}

static avsr_tensor *full_fn(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    /* normalise + InfoNCE as the head runs it (scale as an input) */
    struct nce_user *u = user;
    avsr_tensor *a = avsr_op_l2_normalize(ctx, in[0], 1e-12f);
    avsr_tensor *v = avsr_op_l2_normalize(ctx, in[1], 1e-12f);
    return avsr_op_shift_infonce(ctx, a, v, in[2], u->shifts, u->lengths);
}

static void gradchecks(avsr_ctx *ctx)
{
    int64_t s3[3] = {3, 7, 5}, s1[1] = {1};
    tu_gc_opts o = {.eps = 1e-3, .atol = 2e-3, .rtol = 2e-3}; /* smooth; double accumulations */
    struct nce_user u = {{2, -3, 0}, {7, 6, 4}, true};
    avsr_tensor *in[3] = {tu_rand(3, s3, 1, -1, 1, true), tu_rand(3, s3, 2, -1, 1, true),
                          tu_rand(1, s1, 3, 0.5f, 2.0f, true)};
    tu_gradcheck("shift_infonce [3,7,5] shifts 2,-3,0 lengths 7,6,4", ctx, nce_fn, &u, 3, in, &o);
    u.use_len = false;
    u.shifts[0] = 6; /* n = 1: one aligned pair, zero loss */
    tu_gradcheck("shift_infonce shift 6 of 7 (one aligned frame)", ctx, nce_fn, &u, 3, in, &o);
    struct nce_user uf = {{1, -2, 0}, {7, 7, 3}, true};
    tu_gradcheck("l2_normalize + shift_infonce (the head's loss)", ctx, full_fn, &uf, 3, in, &o);
    for (int i = 0; i < 3; i++)
        avsr_tensor_free(in[i]);

    int64_t sx[3] = {2, 3, 7}, sx1[2] = {1, 1};
    float eps = 1e-12f;
    avsr_tensor *x = tu_rand(3, sx, 4, -1, 1, true);
    tu_gradcheck("l2_normalize [2,3,7]", ctx, l2n_fn, &eps, 1, &x, &o);
    avsr_tensor_free(x);
    x = tu_rand(2, sx1, 5, 0.5f, 1.0f, true);
    tu_gradcheck("l2_normalize [1,1] (one element)", ctx, l2n_fn, &eps, 1, &x, &o);
    avsr_tensor_free(x);
    float big = 10.0f; /* every row below eps: y = x / eps */
    x = tu_rand(3, sx, 6, -1, 1, true);
    tu_gradcheck("l2_normalize clamped at eps", ctx, l2n_fn, &big, 1, &x, &o);
    avsr_tensor_free(x);

    int64_t sr[4] = {2, 3, 5, 2}, shifts[2] = {2, -7};
    x = tu_rand(4, sr, 7, -1, 1, true);
    tu_gradcheck("roll [2,3,5,2] dim 2 by 2 / -7", ctx, roll_fn, shifts, 1, &x, &o);
    avsr_tensor_free(x);
}

/* ---- roll semantics ---------------------------------------------------- */

static void rolls(avsr_ctx *ctx)
{
    int64_t s[3] = {2, 5, 2}, sh[2] = {2, -1};
    avsr_tensor *x = avsr_tensor_create(AVSR_F32, 3, s, false);
    for (int i = 0; i < 20; i++)
        avsr_f32(x)[i] = (float)i;
    avsr_tensor *y = avsr_op_roll(ctx, x, 1, sh);
    /* torch.roll(x[0], 2, 0): rows 3,4,0,1,2; torch.roll(x[1], -1, 0): 6,7,8,9,5 */
    static const float want[20] = {6, 7, 8, 9, 0, 1, 2, 3, 4, 5,
                                   12, 13, 14, 15, 16, 17, 18, 19, 10, 11};
    tap_ok(y && memcmp(y->data, want, sizeof want) == 0,
           "roll: per-sample circular shift as torch.roll (+2 and -1 along time)");
    int64_t shn[2] = {-1, 12}; /* negative dim, shift beyond the length */
    avsr_tensor *y2 = avsr_op_roll(ctx, x, -2, shn);
    static const float want2[20] = {2, 3, 4, 5, 6, 7, 8, 9, 0, 1,
                                    16, 17, 18, 19, 10, 11, 12, 13, 14, 15};
    tap_ok(y2 && memcmp(y2->data, want2, sizeof want2) == 0,
           "roll: dim -2 and a shift of 12 on length 5 (= 2)");
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x);

    uint8_t frames[5][3], out[5][3];
    for (int t = 0; t < 5; t++)
        for (int k = 0; k < 3; k++)
            frames[t][k] = (uint8_t)(10 * t + k);
    avsr_av_shift_roll_frames(out, frames, 5, 3, 2);
    bool ok = true;
    for (int t = 0; t < 5; t++)
        ok = ok && memcmp(out[(t + 2) % 5], frames[t], 3) == 0;
    avsr_av_shift_roll_frames(out, frames, 5, 3, -6);
    for (int t = 0; t < 5; t++)
        ok = ok && memcmp(out[(t + 4) % 5], frames[t], 3) == 0;
    avsr_av_shift_roll_frames(out, frames, 5, 3, 0);
    ok = ok && memcmp(out, frames, sizeof frames) == 0;
    tap_ok(ok, "roll_frames: uint8 frames rolled by 2, -6 and 0 as torch.roll(dims=0)");
}

/* ---- prediction ---------------------------------------------------------- */

static void predict(avsr_ctx *ctx)
{
    avsr_error err = {0};
    avsr_params *p = avsr_params_create();
    avsr_av_shift m;
    if (avsr_av_shift_init(&m, p, "", 25, &err) < 0 || avsr_params_finalize(p, &err) < 0 ||
        avsr_params_init(p, 1, &err) < 0)
        tap_bail("%s", err.msg);
    tap_ok(avsr_params_find(p, "logit_scale_a") != NULL, "empty prefix: name logit_scale_a");
    enum { B = 5, T = 60, D = 16 };
    int64_t s[3] = {B, T, D};
    const int planted[B] = {7, -12, 0, 25, -25};
    avsr_tensor *A = tu_rand(3, s, 21, -1, 1, false);
    avsr_tensor *V = tu_rand(3, s, 22, -0.3f, 0.3f, false); /* noise */
    /* video lags by s: V[t + s] ~ A[t] (circularly, as the data roll) */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int tv = ((t + planted[b]) % T + T) % T;
            for (int k = 0; k < D; k++)
                avsr_f32(V)[((int64_t)b * T + tv) * D + k] += avsr_f32(A)[((int64_t)b * T + t) * D + k];
        }
    int pred[B];
    float *scores = malloc(sizeof(float) * B * 51);
    int rc = avsr_av_shift_predict(ctx, &m, A, V, NULL, pred, scores);
    bool ok = rc == 0;
    for (int b = 0; b < B; b++)
        ok = ok && pred[b] == planted[b];
    tap_ok(ok, "predict recovers planted shifts 7, -12, 0, 25, -25 (got %d, %d, %d, %d, %d)",
           pred[0], pred[1], pred[2], pred[3], pred[4]);
    /* roll the video back by -prediction: the diagonal then wins */
    int64_t back[B];
    for (int b = 0; b < B; b++)
        back[b] = -pred[b];
    avsr_ctx_set_grad(ctx, false);
    avsr_tensor *V2 = avsr_op_roll(ctx, V, 1, back);
    int pred2[B];
    avsr_av_shift_predict(ctx, &m, A, V2, NULL, pred2, NULL);
    ok = true;
    for (int b = 0; b < B; b++)
        ok = ok && pred2[b] == 0;
    tap_ok(ok, "after rolling the video by -prediction the predicted shift is 0");
    /* lengths: sample 0 limited to 10 frames: candidates -9..9 only */
    int64_t lengths[B] = {10, T, T, T, T};
    rc = avsr_av_shift_predict(ctx, &m, A, V, lengths, pred, scores);
    tap_ok(rc == 0 && isnan(scores[0 * 51 + 25 + 10]) && isnan(scores[0 * 51 + 25 - 10]) &&
               !isnan(scores[0 * 51 + 25 + 9]) && !isnan(scores[1 * 51 + 0]),
           "predict: candidates limited to |s| < length (NaN scores beyond)");
    /* all means <= 0: Align-AV-HuBERT's loop keeps 0 */
    avsr_f32(m.logit_scale)[0] = -1.0f;
    for (int64_t i = 0; i < A->numel; i++)
        avsr_f32(V)[i] = avsr_f32(A)[i]; /* aligned, every diagonal positive before the sign */
    avsr_av_shift_predict(ctx, &m, A, V, NULL, pred, scores);
    bool zero_ok = true;
    for (int b = 0; b < B; b++)
        zero_ok = zero_ok && (pred[b] == 0 || scores[b * 51 + pred[b] + 25] > 0.0f);
    tap_ok(zero_ok && pred[0] != 0 ? scores[pred[0] + 25] > 0.0f : zero_ok,
           "predict: similarity_max starts at 0 (a negative scale never picks an all-negative best)");
    avsr_ctx_set_grad(ctx, true);
    avsr_ctx_reset(ctx);

    /* bad input */
    avsr_f32(m.logit_scale)[0] = 1.0f;
    int sh[B] = {0, 0, 30, 0, 0};
    tap_ok(!avsr_av_shift_loss(ctx, &m, A, V, sh, NULL) &&
               strstr(avsr_ctx_errmsg(ctx), "av_shift_loss: shifts[2] = 30 outside -25..25"),
           "loss: a shift beyond max_shift is rejected: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    int sh2[B] = {0, 9, 0, 0, 0};
    int64_t len2[B] = {T, 9, T, T, T};
    tap_ok(!avsr_av_shift_loss(ctx, &m, A, V, sh2, len2) &&
               strstr(avsr_ctx_errmsg(ctx), "shifts[1] = 9 leaves no aligned frame (length 9)"),
           "loss: |shift| >= length is rejected: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    int64_t sb[3] = {B, T - 1, D};
    avsr_tensor *W = tu_rand(3, sb, 3, -1, 1, false);
    int sh0[B] = {0};
    tap_ok(!avsr_av_shift_loss(ctx, &m, A, W, sh0, NULL) &&
               strstr(avsr_ctx_errmsg(ctx), "shift_infonce: V: got F32 [5, 59, 16], expected f32 [5, 60, 16] like A"),
           "loss: V of another shape is rejected: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    tap_ok(avsr_av_shift_predict(ctx, &m, A, W, NULL, pred, NULL) < 0 &&
               strstr(avsr_ctx_errmsg(ctx), "av_shift_predict: A [5, 60, 16] and V [5, 59, 16]"),
           "predict: shape mismatch is rejected: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    tap_ok(!avsr_op_roll(ctx, A, 0, back) &&
               strstr(avsr_ctx_errmsg(ctx), "roll: dim 0 of [5, 60, 16]: must be a non-batch dimension"),
           "roll: the batch dimension is rejected: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    tap_ok(!avsr_op_l2_normalize(ctx, A, -1.0f) && strstr(avsr_ctx_errmsg(ctx), "l2_normalize: eps -1"),
           "l2_normalize: negative eps is rejected: %s", avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
    avsr_tensor_free(W);
    avsr_tensor_free(A);
    avsr_tensor_free(V);
    free(scores);
    avsr_params_destroy(p);
}

int main(void)
{
    avsr_ctx *ctx = tu_ctx();
    avsr_st *st = tu_golden_open("lora");
    golden(ctx, st, "nce");
    golden(ctx, st, "nce1");
    gradchecks(ctx);
    rolls(ctx);
    predict(ctx);
    avsr_st_close(st);
    avsr_ctx_destroy(ctx);
    return tap_done();
}
