/* audio_frontend: ResNet1D, Conv2d subsampling, filterbank projection
 * (see audio_frontend.h). */
#include "models/audio_frontend.h"

#include <string.h>

#include "ops.h"

/* ---- (a) ResNet1D ------------------------------------------------------- */

void avsr_audio_resnet1d_defaults(avsr_audio_resnet1d_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->width = 64;
    for (int i = 0; i < 4; i++)
        cfg->depth[i] = 2;
    cfg->act = AVSR_FE_ACT_SWISH;
    cfg->pool = 20;
}

int avsr_audio_resnet1d_init(avsr_audio_resnet1d *m, avsr_params *params, const char *prefix,
                             const avsr_audio_resnet1d_cfg *cfg, avsr_error *err)
{
    memset(m, 0, sizeof *m);
    if (cfg->width < 1 || cfg->pool < 1)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: audio resnet1d: width %d, pool %d; expected >= 1", prefix,
                              cfg->width, cfg->pool);
    m->cfg = *cfg;
    int64_t w = cfg->width;
    int k[1] = {80}, s[1] = {4}, pd[1] = {38};
    char base[AVSR_NN_NAME_MAX], name[AVSR_NN_NAME_MAX];
    avsr_fe_join(base, prefix, "trunk");
    if (avsr_nn_conv_init(&m->stem, params, avsr_nn_name(name, "%s.conv1", base), 1, 1, w, k, s,
                          pd, NULL, 1, false, err) < 0 ||
        avsr_nn_batch_norm_init(&m->stem_bn, params, avsr_nn_name(name, "%s.bn1", base), w, 1e-5f,
                                0.1f, err) < 0)
        return -1;
    if (cfg->act == AVSR_FE_ACT_PRELU &&
        !(m->stem_prelu = avsr_fe_prelu_init(params, base, "relu.weight", w, err)))
        return -1;
    int64_t widths[4] = {w, 2 * w, 4 * w, 8 * w};
    return avsr_resnet_init(&m->trunk, params, base, 1, w, widths, cfg->depth, cfg->act, err);
}

void avsr_audio_resnet1d_free(avsr_audio_resnet1d *m)
{
    if (m)
        avsr_resnet_free(&m->trunk);
}

int64_t avsr_audio_resnet1d_hop(const avsr_audio_resnet1d *m) { return 32 * (int64_t)m->cfg.pool; }
int64_t avsr_audio_resnet1d_dim(const avsr_audio_resnet1d *m) { return 8 * (int64_t)m->cfg.width; }

avsr_tensor *avsr_audio_resnet1d_forward(avsr_ctx *ctx, const avsr_audio_resnet1d *m,
                                         avsr_tensor *wave, const int64_t *lengths,
                                         int64_t *out_lengths)
{
    if (!wave || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96];
    int64_t hop = avsr_audio_resnet1d_hop(m);
    bool ok = wave->dtype == AVSR_F32 &&
              (wave->ndim == 2 || (wave->ndim == 3 && wave->shape[2] == 1));
    int64_t B = ok ? wave->shape[0] : 0, L = ok ? wave->shape[1] : 0;
    if (!ok || L < hop)
        return avsr_ctx_fail(ctx, "audio_resnet1d: wave: got %s %s, expected f32 [B, L] or [B, L, 1] with L >= %lld",
                            avsr_dtype_name(wave->dtype), avsr_shape_str(wave, b1, sizeof b1),
                            (long long)hop);
    if (lengths)
        for (int64_t b = 0; b < B; b++)
            if (lengths[b] < 1 || lengths[b] > L)
                return avsr_ctx_fail(ctx, "audio_resnet1d: lengths[%lld] = %lld, expected 1..%lld",
                                    (long long)b, (long long)lengths[b], (long long)L);
    int64_t T = L / hop, Lt = T * hop;
    int64_t s2[2] = {B, L};
    avsr_tensor *x = avsr_op_reshape(ctx, wave, 2, s2);
    if (Lt < L)
        x = avsr_op_slice(ctx, x, 1, 0, Lt, 1); /* xs_pad[:, :T // 640 * 640] */
    int64_t s3[3] = {B, 1, Lt};
    x = avsr_op_reshape(ctx, x, 3, s3);
    int64_t *ext = NULL; /* [B] valid positions after the stem */
    if (lengths) {
        ext = avsr_ctx_alloc(ctx, sizeof *ext * (size_t)B);
        if (!ext)
            return avsr_ctx_fail(ctx, "audio_resnet1d: out of arena memory");
        for (int64_t b = 0; b < B; b++)
            ext[b] = (lengths[b] < Lt ? lengths[b] : Lt) / 4; /* k80 s4 p38: floor(l / 4) */
    }
    x = avsr_nn_conv_forward(ctx, &m->stem, x); /* [B, w, Lt/4] */
    if (!x)
        return NULL;
    avsr_tensor *mask = avsr_fe_extent_mask(ctx, B, x->shape[2], ext);
    x = avsr_nn_batch_norm_forward(ctx, &m->stem_bn, x, mask);
    x = avsr_fe_activation(ctx, m->cfg.act, x, m->stem_prelu);
    x = avsr_resnet_forward(ctx, &m->trunk, x, ext); /* [B, 8w, Lt/32] */
    avsr_pool_params pp = {.nsp = 1, .kernel = {m->cfg.pool}, .stride = {m->cfg.pool}};
    x = avsr_op_avg_pool(ctx, x, &pp); /* [B, 8w, T] */
    x = avsr_op_transpose(ctx, x, 1, 2);
    if (x && out_lengths)
        for (int64_t b = 0; b < B; b++)
            out_lengths[b] = lengths ? (lengths[b] < Lt ? lengths[b] : Lt) / hop : T;
    return x;
}

/* ---- (b) Conv2d subsampling ----------------------------------------------- */

int64_t avsr_conv2d_subsampling_length(int64_t n)
{
    if (n < 3)
        return 0;
    return ((n - 1) / 2 - 1) / 2;
}

int avsr_conv2d_subsampling_init(avsr_conv2d_subsampling *m, avsr_params *params,
                                 const char *prefix, const avsr_conv2d_subsampling_cfg *cfg,
                                 avsr_error *err)
{
    memset(m, 0, sizeof *m);
    if (cfg->idim < 7 || cfg->channels < 1 || cfg->odim < 1)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: conv2d subsampling: idim %d, channels %d, odim %d; expected idim >= 7, others >= 1",
                              prefix, cfg->idim, cfg->channels, cfg->odim);
    m->cfg = *cfg;
    int k[2] = {3, 3}, s[2] = {2, 2};
    int64_t fp = avsr_conv2d_subsampling_length(cfg->idim);
    char name[AVSR_NN_NAME_MAX];
    if (avsr_nn_conv_init(&m->conv0, params, avsr_fe_join(name, prefix, "conv.0"), 2, 1,
                          cfg->channels, k, s, NULL, NULL, 1, true, err) < 0 ||
        avsr_nn_conv_init(&m->conv2, params, avsr_fe_join(name, prefix, "conv.2"), 2,
                          cfg->channels, cfg->channels, k, s, NULL, NULL, 1, true, err) < 0 ||
        avsr_nn_linear_init(&m->out, params, avsr_fe_join(name, prefix, "out.0"),
                            (int64_t)cfg->channels * fp, cfg->odim, true, err) < 0)
        return -1;
    return 0;
}

avsr_tensor *avsr_conv2d_subsampling_forward(avsr_ctx *ctx, const avsr_conv2d_subsampling *m,
                                             avsr_tensor *feats, const int64_t *lengths,
                                             int64_t *out_lengths)
{
    if (!feats || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96];
    if (feats->dtype != AVSR_F32 || feats->ndim != 3 || feats->shape[1] != m->cfg.idim ||
        feats->shape[2] < 7)
        return avsr_ctx_fail(ctx, "conv2d_subsampling: feats: got %s %s, expected f32 [B, %d, T] with T >= 7",
                            avsr_dtype_name(feats->dtype), avsr_shape_str(feats, b1, sizeof b1),
                            m->cfg.idim);
    int64_t B = feats->shape[0], Tm = feats->shape[2];
    if (lengths)
        for (int64_t b = 0; b < B; b++)
            if (lengths[b] < 0 || lengths[b] > Tm)
                return avsr_ctx_fail(ctx, "conv2d_subsampling: lengths[%lld] = %lld, expected 0..%lld",
                                    (long long)b, (long long)lengths[b], (long long)Tm);
    avsr_tensor *x = avsr_op_transpose(ctx, feats, 1, 2); /* [B, Tm, idim] */
    int64_t s4[4] = {B, 1, Tm, m->cfg.idim};
    x = avsr_op_reshape(ctx, x, 4, s4);
    x = avsr_op_relu(ctx, avsr_nn_conv_forward(ctx, &m->conv0, x));
    x = avsr_op_relu(ctx, avsr_nn_conv_forward(ctx, &m->conv2, x)); /* [B, c, T', F'] */
    if (!x)
        return NULL;
    int64_t c = x->shape[1], Tp = x->shape[2], Fp = x->shape[3];
    x = avsr_op_transpose(ctx, x, 1, 2); /* [B, T', c, F'] */
    int64_t s3[3] = {B, Tp, c * Fp};
    x = avsr_op_reshape(ctx, x, 3, s3);
    x = avsr_nn_linear_forward(ctx, &m->out, x); /* [B, T', d] */
    if (x && out_lengths)
        for (int64_t b = 0; b < B; b++)
            out_lengths[b] = avsr_conv2d_subsampling_length(lengths ? lengths[b] : Tm);
    return x;
}

/* ---- (c) AV-HuBERT filterbank projection ---------------------------------- */

int avsr_audio_fbank_proj_init(avsr_audio_fbank_proj *m, avsr_params *params, const char *prefix,
                               int64_t in_dim, int64_t out_dim, avsr_error *err)
{
    char name[AVSR_NN_NAME_MAX];
    return avsr_nn_linear_init(&m->proj, params, avsr_fe_join(name, prefix, "proj"), in_dim,
                               out_dim, true, err);
}

avsr_tensor *avsr_audio_fbank_proj_forward(avsr_ctx *ctx, const avsr_audio_fbank_proj *m,
                                           avsr_tensor *x)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96];
    if (x->dtype != AVSR_F32 || x->ndim != 3 || x->shape[2] != m->proj.in)
        return avsr_ctx_fail(ctx, "audio_fbank_proj: x: got %s %s, expected f32 [B, T, %lld]",
                            avsr_dtype_name(x->dtype), avsr_shape_str(x, b1, sizeof b1),
                            (long long)m->proj.in);
    return avsr_nn_linear_forward(ctx, &m->proj, x);
}
