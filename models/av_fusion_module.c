/* av_fusion_module: the ASR2AVSR fusion module (see av_fusion_module.h). */
#include "av_fusion_module.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

#define BN_EPS 1e-5f
#define BN_MOM 0.1f
#define LN_EPS 1e-5f

void avsr_avfm_cfg_default(avsr_avfm_cfg *c)
{
    static const int blocks[4][2] = {{2, 1}, {2, 1}, {2, 1}, {3, 1}};
    static const int ch[4] = {64, 128, 256, 256};
    memset(c, 0, sizeof *c);
    c->n_mels = 80;
    c->spec_channels = 128;
    c->spec_layers = 7;
    c->lip_stem = 64;
    for (int k = 0; k < 4; k++) {
        c->lip_channels[k] = ch[k];
        c->lip_blocks[k][0] = blocks[k][0];
        c->lip_blocks[k][1] = blocks[k][1];
    }
    c->lip_inner = 64;
    c->d_model = 80;
    c->heads = 12;
    c->layers = 12;
    c->window = 160;
    c->video_scale = 1.0f / 255.0f;
}

/* "<prefix>.<fmt>" (or "<fmt>" for an empty prefix) */
static const char *nm(char *buf, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *nm(char *buf, const char *prefix, const char *fmt, ...)
{
    char leaf[AVSR_NN_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(leaf, sizeof leaf, fmt, ap);
    va_end(ap);
    int r = prefix && *prefix ? snprintf(buf, AVSR_NN_NAME_MAX, "%s.%s", prefix, leaf)
                              : snprintf(buf, AVSR_NN_NAME_MAX, "%s", leaf);
    if (r >= AVSR_NN_NAME_MAX)
        buf[AVSR_NN_NAME_MAX - 1] = '\0'; /* truncated: registration fails on a duplicate */
    return buf;
}

static int conv(avsr_nn_conv *c, avsr_params *p, const char *name, int nsp, int64_t cin,
                int64_t cout, const int *k, const int *s, const int *pd, avsr_error *err)
{
    return avsr_nn_conv_init(c, p, name, nsp, cin, cout, k, s, pd, NULL, 1, true, err);
}

static int bn(avsr_nn_batch_norm *b, avsr_params *p, const char *name, int64_t c, avsr_error *err)
{
    return avsr_nn_batch_norm_init(b, p, name, c, BN_EPS, BN_MOM, err);
}

static int check_cfg(const avsr_avfm_cfg *c, const char *prefix, avsr_error *err)
{
    bool ok = c->n_mels >= 1 && c->spec_channels >= 1 && c->spec_layers >= 2 &&
              c->lip_stem >= 1 && c->lip_inner >= 1 && c->d_model >= 1 && c->heads >= 1 &&
              c->layers >= 0 && c->window >= 4 && c->window % 4 == 0 &&
              c->video_scale > 0.0f && isfinite(c->video_scale);
    for (int k = 0; k < 4; k++)
        ok = ok && c->lip_channels[k] >= 1 && c->lip_blocks[k][0] >= 1 && c->lip_blocks[k][1] >= 0;
    if (!ok)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: av_fusion_module: bad configuration (n_mels %d, spec %d x %d, "
                              "lip stem %d, inner %d, d_model %d, heads %d, layers %d, window %d, "
                              "video_scale %g; spec_layers >= 2, window a multiple of 4, widths "
                              "and 2D blocks >= 1, video_scale > 0)",
                              prefix && *prefix ? prefix : "(root)", c->n_mels, c->spec_channels,
                              c->spec_layers, c->lip_stem, c->lip_inner, c->d_model, c->heads,
                              c->layers, c->window, (double)c->video_scale);
    return 0;
}

int avsr_avfm_init(avsr_avfm *m, avsr_params *p, const char *prefix, const avsr_avfm_cfg *cfg,
                   avsr_error *err)
{
    memset(m, 0, sizeof *m);
    if (check_cfg(cfg, prefix, err) < 0)
        return -1;
    m->cfg = *cfg;
    char n[AVSR_NN_NAME_MAX];
    const int64_t F = cfg->n_mels, C = cfg->spec_channels, D = cfg->d_model;
    const int64_t HD = (int64_t)cfg->heads * D;

    /* audio branch */
    int nl = cfg->spec_layers;
    int k3[3] = {3, 3}, p1[3] = {1, 1}, k1[3] = {1, 1};
    if (!(m->spec = calloc((size_t)nl, sizeof *m->spec)))
        return avsr_error_set(err, AVSR_ERR_NOMEM, "av_fusion_module: out of memory");
    for (int i = 0; i < nl; i++) {
        avsr_avfm_spec_block *b = &m->spec[i];
        int64_t ci = i == 0 ? 1 : C, co = i == nl - 1 ? 1 : C;
        b->has_down = ci != co;
        if (conv(&b->conv1, p, nm(n, prefix, "spec_frontend.CNN_layer.%d.conv1.0", i), 2, ci, co,
                 k3, NULL, p1, err) < 0 ||
            bn(&b->bn1, p, nm(n, prefix, "spec_frontend.CNN_layer.%d.conv1.1", i), co, err) < 0 ||
            conv(&b->conv2, p, nm(n, prefix, "spec_frontend.CNN_layer.%d.conv2.0", i), 2, co, co,
                 k3, NULL, p1, err) < 0 ||
            bn(&b->bn2, p, nm(n, prefix, "spec_frontend.CNN_layer.%d.conv2.1", i), co, err) < 0)
            return -1;
        if (b->has_down && conv(&b->down, p, nm(n, prefix, "spec_frontend.CNN_layer.%d.downsample", i),
                                2, ci, co, k1, NULL, NULL, err) < 0)
            return -1;
    }
    if (avsr_nn_linear_init(&m->spec_out, p, nm(n, prefix, "spec_frontend.out_proj"), F, F, true,
                            err) < 0)
        return -1;

    /* video branch */
    int ks[3] = {1, 7, 7}, ss[3] = {1, 2, 2}, ps[3] = {0, 3, 3};
    if (conv(&m->stem, p, nm(n, prefix, "video_frontend.inpConv.0"), 3, 1, cfg->lip_stem, ks, ss,
             ps, err) < 0 ||
        bn(&m->stem_bn, p, nm(n, prefix, "video_frontend.inpConv.1"), cfg->lip_stem, err) < 0)
        return -1;
    int64_t inpl = cfg->lip_stem;
    int kb[3] = {1, 3, 3}, pb[3] = {0, 1, 1}, one[3] = {1, 1, 1};
    int kt[3] = {5, 3, 3}, pt[3] = {2, 1, 1};
    for (int st = 0; st < 4; st++) {
        int64_t pl = cfg->lip_channels[st], inner = cfg->lip_inner;
        int stride = st == 0 ? 1 : 2;
        int sd[3] = {1, stride, stride};
        int n2 = cfg->lip_blocks[st][0], n3 = cfg->lip_blocks[st][1];
        m->r2d[st] = calloc((size_t)n2, sizeof *m->r2d[st]);
        m->r3d[st] = calloc((size_t)(n3 ? n3 : 1), sizeof *m->r3d[st]);
        if (!m->r2d[st] || !m->r3d[st])
            return avsr_error_set(err, AVSR_ERR_NOMEM, "av_fusion_module: out of memory");
        for (int j = 0; j < n2; j++) {
            avsr_avfm_res2d *b = &m->r2d[st][j];
            int64_t ci = j == 0 ? inpl : pl;
            const int *sj = j == 0 ? sd : NULL;
            const char *L = "video_frontend.layer";
            if (conv(&b->conv1, p, nm(n, prefix, "%s%d1.%d.conv1.0", L, st, j), 3, ci, pl, kb, sj,
                     pb, err) < 0 ||
                bn(&b->bn1, p, nm(n, prefix, "%s%d1.%d.conv1.1", L, st, j), pl, err) < 0 ||
                conv(&b->conv2, p, nm(n, prefix, "%s%d1.%d.conv2.0", L, st, j), 3, pl, pl, kb, NULL,
                     pb, err) < 0 ||
                bn(&b->bn2, p, nm(n, prefix, "%s%d1.%d.conv2.1", L, st, j), pl, err) < 0)
                return -1;
            b->has_down = j == 0 && (stride != 1 || inpl != pl);
            if (b->has_down &&
                (conv(&b->down, p, nm(n, prefix, "%s%d1.%d.downsample.0", L, st, j), 3, ci, pl, one,
                      sd, NULL, err) < 0 ||
                 bn(&b->down_bn, p, nm(n, prefix, "%s%d1.%d.downsample.1", L, st, j), pl, err) < 0))
                return -1;
        }
        inpl = pl;
        for (int j = 0; j < n3; j++) {
            avsr_avfm_res3d *b = &m->r3d[st][j];
            const char *L = "video_frontend.layer";
            if (conv(&b->conv1, p, nm(n, prefix, "%s%d2.%d.conv1.0", L, st, j), 3, pl, inner, one,
                     NULL, NULL, err) < 0 ||
                bn(&b->bn1, p, nm(n, prefix, "%s%d2.%d.conv1.1", L, st, j), inner, err) < 0 ||
                conv(&b->conv2, p, nm(n, prefix, "%s%d2.%d.conv2.0", L, st, j), 3, inner, inner, kt,
                     NULL, pt, err) < 0 ||
                bn(&b->bn2, p, nm(n, prefix, "%s%d2.%d.conv2.1", L, st, j), inner, err) < 0 ||
                conv(&b->conv3, p, nm(n, prefix, "%s%d2.%d.conv3.0", L, st, j), 3, inner, pl, one,
                     NULL, NULL, err) < 0 ||
                bn(&b->bn3, p, nm(n, prefix, "%s%d2.%d.conv3.1", L, st, j), pl, err) < 0)
                return -1;
        }
        if (st == 1 || st == 2) {
            /* ConvTranspose3d(pl, pl): weight [Cin, Cout, 6, 1, 1]; with
             * Cin = Cout the Conv3d registration has the same shape and
             * PyTorch's bound (fan_in = weight.size(1) * 6) */
            int ku[3] = {6, 1, 1}, su[3] = {2, 1, 1}, pu[3] = {2, 0, 0};
            avsr_nn_conv *u = st == 1 ? &m->up1 : &m->up2;
            if (conv(u, p, nm(n, prefix, "video_frontend.upsample%d", st), 3, pl, pl, ku, su, pu,
                     err) < 0)
                return -1;
        }
    }
    if (conv(&m->out_cnn, p, nm(n, prefix, "video_frontend.out_CNN.0"), 3, inpl, F, one, NULL, NULL,
             err) < 0)
        return -1;

    /* fusion block */
    if (avsr_nn_linear_init(&m->value_proj, p, nm(n, prefix, "fusion_block.value_proj"), F, D, true,
                            err) < 0 ||
        avsr_nn_linear_init(&m->query_proj, p, nm(n, prefix, "fusion_block.query_proj"), F, D, true,
                            err) < 0)
        return -1;
    if (cfg->layers > 0 && !(m->layers = calloc((size_t)cfg->layers, sizeof *m->layers)))
        return avsr_error_set(err, AVSR_ERR_NOMEM, "av_fusion_module: out of memory");
    for (int l = 0; l < cfg->layers; l++) {
        avsr_avfm_layer *y = &m->layers[l];
        const char *A = "fusion_block.attn_layers";
        if (avsr_nn_linear_init(&y->q, p, nm(n, prefix, "%s.%d.MHA.query.linear", A, l), D, HD,
                                true, err) < 0 ||
            avsr_nn_linear_init(&y->k, p, nm(n, prefix, "%s.%d.MHA.key.linear", A, l), D, HD, true,
                                err) < 0 ||
            avsr_nn_linear_init(&y->v, p, nm(n, prefix, "%s.%d.MHA.value.linear", A, l), D, HD,
                                true, err) < 0 ||
            avsr_nn_linear_init(&y->out, p, nm(n, prefix, "%s.%d.MHA.output", A, l), HD, D, true,
                                err) < 0 ||
            avsr_nn_layer_norm_init(&y->ln1, p, nm(n, prefix, "%s.%d.layernorm1", A, l), D, LN_EPS,
                                    err) < 0 ||
            avsr_nn_linear_init(&y->ff, p, nm(n, prefix, "%s.%d.feed_forward", A, l), D, D, true,
                                err) < 0 ||
            avsr_nn_layer_norm_init(&y->ln2, p, nm(n, prefix, "%s.%d.layernorm2", A, l), D, LN_EPS,
                                    err) < 0)
            return -1;
    }
    if (avsr_nn_linear_init(&m->out_proj, p, nm(n, prefix, "fusion_block.out_proj"), D, F, true,
                            err) < 0)
        return -1;
    /* with the mel skip the module starts as the identity */
    if (cfg->mel_skip && (avsr_params_set_init(p, m->out_proj.weight, AVSR_INIT_ZEROS, 0, err) < 0 ||
                          avsr_params_set_init(p, m->out_proj.bias, AVSR_INIT_ZEROS, 0, err) < 0))
        return -1;
    return 0;
}

void avsr_avfm_free(avsr_avfm *m)
{
    if (!m)
        return;
    free(m->spec);
    for (int k = 0; k < 4; k++) {
        free(m->r2d[k]);
        free(m->r3d[k]);
    }
    free(m->layers);
    memset(m, 0, sizeof *m);
}

/* ---- audio branch ------------------------------------------------------- */

static avsr_tensor *conv_bn(avsr_ctx *ctx, const avsr_nn_conv *c, const avsr_nn_batch_norm *b,
                            avsr_tensor *x, bool relu)
{
    avsr_tensor *y = avsr_nn_batch_norm_forward(ctx, b, avsr_nn_conv_forward(ctx, c, x), NULL);
    return relu ? avsr_op_relu(ctx, y) : y;
}

avsr_tensor *avsr_avfm_audio_forward(avsr_ctx *ctx, const avsr_avfm *m, avsr_tensor *mel)
{
    if (!mel || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96];
    int64_t F = m->cfg.n_mels;
    if (mel->dtype != AVSR_F32 || mel->ndim != 3 || mel->shape[1] != F || mel->shape[2] < 1)
        return avsr_ctx_fail(ctx, "av_fusion_module: mel: got %s %s, expected f32 [B, %lld, Tm]",
                             avsr_dtype_name(mel->dtype), avsr_shape_str(mel, b1, sizeof b1),
                             (long long)F);
    int64_t B = mel->shape[0], Tm = mel->shape[2];
    avsr_tensor *x = avsr_op_transpose(ctx, mel, 1, 2); /* [B, Tm, F] */
    int64_t s4[4] = {B, 1, Tm, F};
    x = avsr_op_reshape(ctx, x, 4, s4); /* [B, 1, Tm, F] */
    for (int i = 0; i < m->cfg.spec_layers; i++) {
        const avsr_avfm_spec_block *b = &m->spec[i];
        avsr_tensor *h = conv_bn(ctx, &b->conv1, &b->bn1, x, true); /* [B, C, Tm, F] */
        h = conv_bn(ctx, &b->conv2, &b->bn2, h, false);
        avsr_tensor *r = b->has_down ? avsr_nn_conv_forward(ctx, &b->down, x) : x;
        x = avsr_op_relu(ctx, avsr_op_add(ctx, h, r));
    }
    int64_t s3[3] = {B, Tm, F};
    x = avsr_op_reshape(ctx, x, 3, s3); /* [B, Tm, F] */
    return avsr_nn_linear_forward(ctx, &m->spec_out, x);
}

/* ---- video branch ------------------------------------------------------- */

avsr_tensor *avsr_avfm_video_forward(avsr_ctx *ctx, const avsr_avfm *m, avsr_tensor *video)
{
    if (!video || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96];
    if (video->dtype != AVSR_F32 || video->ndim != 4 || video->shape[1] < 1)
        return avsr_ctx_fail(ctx, "av_fusion_module: video: got %s %s, expected f32 [B, T, H, W]",
                             avsr_dtype_name(video->dtype), avsr_shape_str(video, b1, sizeof b1));
    int64_t B = video->shape[0], T = video->shape[1], H = video->shape[2], W = video->shape[3];
    /* spatial size before the final average pool: every stage halves
     * (rounding up) 5 times; the pool then averages all of it (3 x 3 at the
     * paper's 88 x 88, 2 x 2 at 44 x 44) */
    int64_t h = H, w = W;
    for (int i = 0; i < 5; i++) {
        h = (h + 1) / 2;
        w = (w + 1) / 2;
    }
    if (H < 16 || W < 16 || h > 8 || w > 8)
        return avsr_ctx_fail(ctx,
                             "av_fusion_module: video: %lld x %lld frames reach %lld x %lld before "
                             "the final average pool; expected 16..256 pixels a side (88 in the "
                             "paper)",
                             (long long)H, (long long)W, (long long)h, (long long)w);
    int64_t s5[5] = {B, 1, T, H, W};
    avsr_tensor *x = avsr_op_reshape(ctx, m->cfg.video_scale == 1.0f ? video : avsr_op_scale(ctx, video, m->cfg.video_scale), 5, s5);
    x = conv_bn(ctx, &m->stem, &m->stem_bn, x, true); /* [B, S, T, H/2, W/2] */
    avsr_pool_params pp = {.nsp = 3, .kernel = {1, 3, 3}, .stride = {1, 2, 2}, .pad = {0, 1, 1}};
    x = avsr_op_max_pool(ctx, x, &pp); /* [B, S, T, H/4, W/4] */
    for (int st = 0; st < 4; st++) {
        for (int j = 0; j < m->cfg.lip_blocks[st][0]; j++) {
            const avsr_avfm_res2d *b = &m->r2d[st][j];
            avsr_tensor *y = conv_bn(ctx, &b->conv1, &b->bn1, x, true);
            y = conv_bn(ctx, &b->conv2, &b->bn2, y, false);
            avsr_tensor *r = b->has_down ? conv_bn(ctx, &b->down, &b->down_bn, x, false) : x;
            x = avsr_op_relu(ctx, avsr_op_add(ctx, y, r));
        }
        for (int j = 0; j < m->cfg.lip_blocks[st][1]; j++) {
            const avsr_avfm_res3d *b = &m->r3d[st][j];
            avsr_tensor *y = conv_bn(ctx, &b->conv1, &b->bn1, x, true);
            y = conv_bn(ctx, &b->conv2, &b->bn2, y, true);
            y = conv_bn(ctx, &b->conv3, &b->bn3, y, false);
            x = avsr_op_relu(ctx, avsr_op_add(ctx, y, x));
        }
        if (st == 1 || st == 2) {
            const avsr_nn_conv *u = st == 1 ? &m->up1 : &m->up2;
            x = avsr_op_conv_transpose(ctx, x, u->weight, u->bias, &u->cp); /* T -> 2T */
        }
    }
    x = avsr_nn_conv_forward(ctx, &m->out_cnn, x); /* [B, F, 4T, h, w] */
    avsr_pool_params ap = {.nsp = 3, .kernel = {1, h, w}, .stride = {1, 1, 1}};
    x = avsr_op_avg_pool(ctx, x, &ap); /* [B, F, 4T, 1, 1] */
    if (!x)
        return NULL;
    int64_t s3[3] = {B, m->cfg.n_mels, x->shape[2]};
    x = avsr_op_reshape(ctx, x, 3, s3);  /* [B, F, 4T] */
    return avsr_op_transpose(ctx, x, 1, 2); /* [B, 4T, F] */
}

/* ---- fusion block ------------------------------------------------------- */

/* [B, L, d] -> [B * n, w, d]: windows of w frames with hop w / 2, sample
 * major (window j of sample b is row b * n + j) */
static avsr_tensor *windows(avsr_ctx *ctx, avsr_tensor *x, int64_t w, int64_t n)
{
    if (!x)
        return NULL;
    int64_t B = x->shape[0], d = x->shape[2];
    avsr_tensor **parts = avsr_ctx_alloc(ctx, (size_t)n * sizeof *parts);
    if (!parts)
        return NULL;
    int64_t s4[4] = {B, 1, w, d};
    for (int64_t j = 0; j < n; j++)
        parts[j] = avsr_op_reshape(ctx, avsr_op_slice(ctx, x, 1, j * (w / 2), j * (w / 2) + w, 1),
                                   4, s4);
    avsr_tensor *y = avsr_op_concat(ctx, (int)n, parts, 1); /* [B, n, w, d] */
    int64_t s3[3] = {B * n, w, d};
    return avsr_op_reshape(ctx, y, 3, s3);
}

/* [B * n, w, d] -> [B, L, d] from the window centres */
static avsr_tensor *stitch(avsr_ctx *ctx, avsr_tensor *y, int64_t B, int64_t w, int64_t n)
{
    if (!y)
        return NULL;
    int64_t d = y->shape[2], q = w / 4;
    int64_t s4[4] = {B, n, w, d};
    avsr_tensor *y4 = avsr_op_reshape(ctx, y, 4, s4);
    avsr_tensor **parts = avsr_ctx_alloc(ctx, (size_t)n * sizeof *parts);
    if (!parts)
        return NULL;
    for (int64_t j = 0; j < n; j++) {
        int64_t lo = j == 0 ? 0 : q, hi = j == n - 1 ? w : w - q;
        avsr_tensor *win = avsr_op_slice(ctx, y4, 1, j, j + 1, 1); /* [B, 1, w, d] */
        win = avsr_op_slice(ctx, win, 2, lo, hi, 1);               /* [B, 1, hi-lo, d] */
        int64_t s3[3] = {B, hi - lo, d};
        parts[j] = avsr_op_reshape(ctx, win, 3, s3);
    }
    return avsr_op_concat(ctx, (int)n, parts, 1); /* [B, L, d] */
}

/* MultiHeadAttention of attention.py: q [N, S, d], kv [N, S, d] */
static avsr_tensor *mha(avsr_ctx *ctx, const avsr_avfm_layer *y, avsr_tensor *q, avsr_tensor *kv,
                        int heads, int64_t d)
{
    if (!q || !kv)
        return NULL;
    int64_t N = q->shape[0], S = q->shape[1];
    int64_t s4[4] = {N, heads, S, d}; /* view without transpose */
    avsr_tensor *qh = avsr_op_reshape(ctx, avsr_nn_linear_forward(ctx, &y->q, q), 4, s4);
    avsr_tensor *kh = avsr_op_reshape(ctx, avsr_nn_linear_forward(ctx, &y->k, kv), 4, s4);
    avsr_tensor *vh = avsr_op_reshape(ctx, avsr_nn_linear_forward(ctx, &y->v, kv), 4, s4);
    avsr_tensor *sc = avsr_op_matmul(ctx, qh, kh, false, true, 1.0f / sqrtf((float)d));
    avsr_tensor *at = avsr_op_softmax(ctx, sc, NULL);          /* [N, H, S, S] */
    avsr_tensor *c = avsr_op_matmul(ctx, at, vh, false, false, 1.0f); /* [N, H, S, d] */
    int64_t s3[3] = {N, S, (int64_t)heads * d};                /* reshape, no transpose */
    return avsr_nn_linear_forward(ctx, &y->out, avsr_op_reshape(ctx, c, 3, s3));
}

avsr_tensor *avsr_avfm_fuse(avsr_ctx *ctx, const avsr_avfm *m, avsr_tensor *audio,
                            avsr_tensor *video)
{
    if (!audio || !video || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96], b2[96];
    int64_t F = m->cfg.n_mels, w = m->cfg.window, D = m->cfg.d_model;
    if (audio->dtype != AVSR_F32 || audio->ndim != 3 || audio->shape[2] != F ||
        audio->shape[1] < 1 || video->dtype != AVSR_F32 || !avsr_shape_equal(audio, video))
        return avsr_ctx_fail(ctx,
                             "av_fusion_module: fuse: audio %s and video %s must be f32 [B, L, %lld] "
                             "of one shape",
                             avsr_shape_str(audio, b1, sizeof b1),
                             avsr_shape_str(video, b2, sizeof b2), (long long)F);
    int64_t B = audio->shape[0], Ls = audio->shape[1];
    int64_t L = (Ls + w - 1) / w * w, n = 2 * L / w - 1;
    avsr_tensor *a = audio, *v = video;
    if (L != Ls) {
        a = avsr_op_pad(ctx, a, 1, 0, L - Ls, 0.0f); /* [B, L, F] */
        v = avsr_op_pad(ctx, v, 1, 0, L - Ls, 0.0f);
    }
    avsr_tensor *value = avsr_nn_linear_forward(ctx, &m->value_proj, a); /* [B, L, D] */
    avsr_tensor *query = avsr_nn_linear_forward(ctx, &m->query_proj, v); /* [B, L, D] */
    /* the query windows are the same for every layer */
    avsr_tensor *qw = n > 1 ? windows(ctx, query, w, n) : query; /* [B*n, w, D] */
    for (int l = 0; l < m->cfg.layers; l++) {
        const avsr_avfm_layer *y = &m->layers[l];
        avsr_tensor *vw = n > 1 ? windows(ctx, value, w, n) : value; /* [B*n, w, D] */
        avsr_tensor *x = avsr_op_add(ctx, mha(ctx, y, qw, vw, m->cfg.heads, D), vw);
        if (m->cfg.query_residual)
            x = avsr_op_add(ctx, x, qw); /* [B*n, w, D] */
        x = avsr_nn_layer_norm_forward(ctx, &y->ln1, x);
        x = avsr_op_add(ctx, avsr_nn_linear_forward(ctx, &y->ff, x), x);
        x = avsr_nn_layer_norm_forward(ctx, &y->ln2, x);
        value = n > 1 ? stitch(ctx, x, B, w, n) : x; /* [B, L, D] */
    }
    avsr_tensor *out = avsr_nn_linear_forward(ctx, &m->out_proj, value); /* [B, L, F] */
    return L != Ls ? avsr_op_slice(ctx, out, 1, 0, Ls, 1) : out;
}

avsr_tensor *avsr_avfm_forward(avsr_ctx *ctx, const avsr_avfm *m, avsr_tensor *mel,
                               avsr_tensor *video)
{
    if (!mel || !video || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96], b2[96];
    if (mel->ndim != 3 || video->ndim != 4 || mel->shape[0] != video->shape[0] ||
        mel->shape[2] != 4 * video->shape[1])
        return avsr_ctx_fail(ctx,
                             "av_fusion_module: mel %s and video %s: expected [B, F, 4T] and "
                             "[B, T, H, W] (100 fps mel, 25 fps video)",
                             avsr_shape_str(mel, b1, sizeof b1),
                             avsr_shape_str(video, b2, sizeof b2));
    avsr_tensor *a = avsr_avfm_audio_forward(ctx, m, mel);   /* [B, Tm, F] */
    avsr_tensor *v = avsr_avfm_video_forward(ctx, m, video); /* [B, Tm, F] */
    avsr_tensor *y = avsr_avfm_fuse(ctx, m, a, v);           /* [B, Tm, F] */
    y = avsr_op_transpose(ctx, y, 1, 2);                     /* [B, F, Tm] */
    return m->cfg.mel_skip ? avsr_op_add(ctx, y, mel) : y;   /* [B, F, Tm] */
}
