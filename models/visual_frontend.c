/* visual_frontend: Conv3d stem + per-frame ResNet trunk (see visual_frontend.h). */
#include "models/visual_frontend.h"

#include <string.h>

#include "ops.h"

void avsr_visual_frontend_defaults(avsr_visual_frontend_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->width = 64;
    for (int i = 0; i < 4; i++)
        cfg->depth[i] = 2;
    cfg->act = AVSR_FE_ACT_SWISH;
    cfg->roi = 88;
}

int avsr_visual_frontend_init(avsr_visual_frontend *m, avsr_params *params, const char *prefix,
                              const avsr_visual_frontend_cfg *cfg, avsr_error *err)
{
    memset(m, 0, sizeof *m);
    if (cfg->width < 1 || cfg->roi < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: visual frontend: width %d, roi %d; expected width >= 1, roi >= 0",
                              prefix, cfg->width, cfg->roi);
    m->cfg = *cfg;
    int64_t C = cfg->width;
    int k[3] = {5, 7, 7}, s[3] = {1, 2, 2}, pd[3] = {2, 3, 3};
    char name[AVSR_NN_NAME_MAX];
    if (avsr_nn_conv_init(&m->stem, params, avsr_fe_join(name, prefix, "frontend3D.0"), 3, 1, C, k,
                          s, pd, NULL, 1, false, err) < 0 ||
        avsr_nn_batch_norm_init(&m->stem_bn, params, avsr_fe_join(name, prefix, "frontend3D.1"), C,
                                1e-5f, 0.1f, err) < 0)
        return -1;
    if (cfg->act == AVSR_FE_ACT_PRELU &&
        !(m->stem_prelu = avsr_fe_prelu_init(params, prefix, "frontend3D.2.weight", C, err)))
        return -1;
    int64_t widths[4] = {C, 2 * C, 4 * C, 8 * C};
    return avsr_resnet_init(&m->trunk, params, avsr_fe_join(name, prefix, "trunk"), 2, C, widths,
                            cfg->depth, cfg->act, err);
}

void avsr_visual_frontend_free(avsr_visual_frontend *m)
{
    if (m)
        avsr_resnet_free(&m->trunk);
}

int64_t avsr_visual_frontend_dim(const avsr_visual_frontend *m) { return 8 * (int64_t)m->cfg.width; }

avsr_tensor *avsr_visual_frontend_forward(avsr_ctx *ctx, const avsr_visual_frontend *m,
                                          avsr_tensor *video, const int64_t *lengths)
{
    if (!video || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96];
    bool ok = video->dtype == AVSR_F32 &&
              (video->ndim == 4 || (video->ndim == 5 && video->shape[2] == 1));
    int64_t B = ok ? video->shape[0] : 0, T = ok ? video->shape[1] : 0;
    int64_t H = ok ? video->shape[video->ndim - 2] : 0, W = ok ? video->shape[video->ndim - 1] : 0;
    int roi = m->cfg.roi;
    if (!ok || (roi > 0 && (H != roi || W != roi)))
        return avsr_ctx_fail(ctx, "visual_frontend: video: got %s %s, expected f32 [B, T, %s, %s] or [B, T, 1, H, W]",
                            avsr_dtype_name(video->dtype), avsr_shape_str(video, b1, sizeof b1),
                            roi > 0 ? "ROI" : "H", roi > 0 ? "ROI" : "W");
    if (lengths)
        for (int64_t b = 0; b < B; b++)
            if (lengths[b] < 1 || lengths[b] > T)
                return avsr_ctx_fail(ctx, "visual_frontend: lengths[%lld] = %lld, expected 1..%lld",
                                    (long long)b, (long long)lengths[b], (long long)T);

    /* [B, 1, T, H, W]: same memory as [B, T, H, W] since C = 1 */
    int64_t s5[5] = {B, 1, T, H, W};
    avsr_tensor *x = avsr_op_reshape(ctx, video, 5, s5);
    x = avsr_nn_conv_forward(ctx, &m->stem, x); /* [B, C, T, H/2, W/2] */
    avsr_tensor *tmask = NULL;                  /* [B, T] valid frames */
    if (lengths) {
        tmask = avsr_fe_extent_mask(ctx, B, T, lengths);
        if (!tmask)
            return NULL;
    }
    x = avsr_nn_batch_norm_forward(ctx, &m->stem_bn, x, tmask);
    x = avsr_fe_activation(ctx, m->cfg.act, x, m->stem_prelu);
    avsr_pool_params pp = {.nsp = 3, .kernel = {1, 3, 3}, .stride = {1, 2, 2}, .pad = {0, 1, 1}};
    x = avsr_op_max_pool(ctx, x, &pp); /* [B, C, T, H', W'] */
    if (!x)
        return NULL;
    /* fold time into batch: [B, T, C, H', W'] -> [B*T, C, H', W'] */
    int64_t C = x->shape[1], Hp = x->shape[3], Wp = x->shape[4];
    x = avsr_op_transpose(ctx, x, 1, 2);
    int64_t s4[4] = {B * T, C, Hp, Wp};
    x = avsr_op_reshape(ctx, x, 4, s4);
    int64_t *ext = NULL; /* [B*T]: Hp for a real frame, 0 for padding */
    if (lengths) {
        ext = avsr_ctx_alloc(ctx, sizeof *ext * (size_t)(B * T));
        if (!ext)
            return avsr_ctx_fail(ctx, "visual_frontend: out of arena memory");
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < T; t++)
                ext[b * T + t] = t < lengths[b] ? Hp : 0;
    }
    x = avsr_resnet_forward(ctx, &m->trunk, x, ext); /* [B*T, 8C, h, w] */
    x = avsr_op_global_avg_pool(ctx, x, 2);          /* [B*T, 8C, 1, 1] */
    int64_t s3[3] = {B, T, avsr_visual_frontend_dim(m)};
    return avsr_op_reshape(ctx, x, 3, s3);
}
