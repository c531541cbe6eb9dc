/* fusion: audio-visual fusion (see fusion.h). */
#include "models/fusion.h"

#include <string.h>

#include "models/resnet.h"
#include "op_modality.h"
#include "ops.h"

int avsr_fusion_init(avsr_fusion *m, avsr_params *params, const char *prefix,
                     const avsr_fusion_cfg *cfg, avsr_error *err)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    if (cfg->dim_v < 1 || cfg->dim_a < 1 || !(cfg->p_modality >= 0.0f && cfg->p_modality <= 1.0f) ||
        !(cfg->p_audio >= 0.0f && cfg->p_audio <= 1.0f))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: fusion: dims %lld/%lld, p_modality %g, p_audio %g; expected dims >= 1, probabilities in [0, 1]",
                              prefix, (long long)cfg->dim_v, (long long)cfg->dim_a,
                              (double)cfg->p_modality, (double)cfg->p_audio);
    char name[AVSR_NN_NAME_MAX];
    switch (cfg->kind) {
    case AVSR_FUSION_CONCAT_MLP:
        if (cfg->hidden < 1 || cfg->out_dim < 1)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "%s: fusion: hidden %lld, out_dim %lld; expected >= 1", prefix,
                                  (long long)cfg->hidden, (long long)cfg->out_dim);
        if (avsr_nn_linear_init(&m->fc1, params, avsr_fe_join(name, prefix, "fc1"),
                                cfg->dim_v + cfg->dim_a, cfg->hidden, true, err) < 0)
            return -1;
        if (cfg->norm == AVSR_FUSION_NORM_BATCH &&
            avsr_nn_batch_norm_init(&m->bn1, params, avsr_fe_join(name, prefix, "bn1"),
                                    cfg->hidden, 1e-5f, 0.1f, err) < 0)
            return -1;
        if (cfg->norm == AVSR_FUSION_NORM_LAYER &&
            avsr_nn_layer_norm_init(&m->norm1, params, avsr_fe_join(name, prefix, "norm1"),
                                    cfg->hidden, 1e-5f, err) < 0)
            return -1;
        return avsr_nn_linear_init(&m->fc2, params, avsr_fe_join(name, prefix, "fc2"),
                                   cfg->hidden, cfg->out_dim, true, err);
    case AVSR_FUSION_ADD:
    case AVSR_FUSION_GATED:
        if (cfg->dim_v != cfg->dim_a)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "%s: fusion: %s needs equal dims, got video %lld, audio %lld",
                                  prefix, cfg->kind == AVSR_FUSION_ADD ? "add" : "gated",
                                  (long long)cfg->dim_v, (long long)cfg->dim_a);
        if (cfg->kind == AVSR_FUSION_GATED)
            return avsr_nn_linear_init(&m->gate, params, avsr_fe_join(name, prefix, "gate"),
                                       2 * cfg->dim_a, cfg->dim_a, true, err);
        return 0;
    }
    return avsr_error_set(err, AVSR_ERR_INVALID, "%s: fusion: unknown kind %d", prefix,
                          (int)cfg->kind);
}

int64_t avsr_fusion_dim(const avsr_fusion *m)
{
    return m->cfg.kind == AVSR_FUSION_CONCAT_MLP ? m->cfg.out_dim : m->cfg.dim_a;
}

static bool check_stream(avsr_ctx *ctx, const char *what, avsr_tensor *x, int64_t D)
{
    char b1[96];
    if (x->dtype != AVSR_F32 || x->ndim != 3 || x->shape[2] != D) {
        avsr_ctx_fail(ctx, "fusion: %s: got %s %s, expected f32 [B, T, %lld]", what,
                     avsr_dtype_name(x->dtype), avsr_shape_str(x, b1, sizeof b1), (long long)D);
        return false;
    }
    return true;
}

/* x [B, T, D] -> [B, Tn, D] (trimmed or zero padded at the end) */
static avsr_tensor *fit_time(avsr_ctx *ctx, avsr_tensor *x, int64_t Tn)
{
    int64_t T = x->shape[1];
    if (T > Tn)
        return avsr_op_slice(ctx, x, 1, 0, Tn, 1);
    if (T < Tn)
        return avsr_op_pad(ctx, x, 1, 0, Tn - T, 0.0f);
    return x;
}

/* x * keep[b] for a constant per-row factor (0 or 1): [B, T, D] */
static avsr_tensor *scale_rows(avsr_ctx *ctx, avsr_tensor *x, const float *keep)
{
    int64_t B = x->shape[0];
    int64_t s[3] = {B, 1, 1};
    avsr_tensor *k = avsr_tensor_new(ctx, AVSR_F32, 3, s); /* [B, 1, 1] */
    if (!k)
        return NULL;
    memcpy(k->data, keep, sizeof(float) * (size_t)B);
    return avsr_op_mul(ctx, x, k);
}

avsr_tensor *avsr_fusion_forward(avsr_ctx *ctx, const avsr_fusion *m, avsr_tensor *video,
                                 avsr_tensor *audio, const int64_t *len_v, const int64_t *len_a,
                                 int64_t *out_len)
{
    if (avsr_ctx_failed(ctx))
        return NULL;
    const avsr_fusion_cfg *c = &m->cfg;
    if (!video && !audio)
        return avsr_ctx_fail(ctx, "fusion: video and audio are both missing");
    if ((video && !check_stream(ctx, "video", video, c->dim_v)) ||
        (audio && !check_stream(ctx, "audio", audio, c->dim_a)))
        return NULL;
    if (video && audio && video->shape[0] != audio->shape[0]) {
        char b1[96], b2[96];
        return avsr_ctx_fail(ctx, "fusion: video %s and audio %s: batch sizes differ",
                            avsr_shape_str(video, b1, sizeof b1),
                            avsr_shape_str(audio, b2, sizeof b2));
    }
    bool both = video && audio;
    /* 1. a missing modality is zeros shaped like the other stream */
    if (!video) {
        int64_t s[3] = {audio->shape[0], audio->shape[1], c->dim_v};
        video = avsr_tensor_zeros(ctx, AVSR_F32, 3, s);
        len_v = len_a;
    }
    if (!audio) {
        int64_t s[3] = {video->shape[0], video->shape[1], c->dim_a};
        audio = avsr_tensor_zeros(ctx, AVSR_F32, 3, s);
        len_a = len_v;
    }
    if (!video || !audio)
        return NULL;
    int64_t B = video->shape[0], Tv = video->shape[1], Ta = audio->shape[1];
    for (int64_t b = 0; b < B; b++)
        if ((len_v && (len_v[b] < 0 || len_v[b] > Tv)) || (len_a && (len_a[b] < 0 || len_a[b] > Ta)))
            return avsr_ctx_fail(ctx, "fusion: lengths of clip %lld (video %lld of %lld, audio %lld of %lld) out of range",
                                (long long)b, (long long)(len_v ? len_v[b] : Tv), (long long)Tv,
                                (long long)(len_a ? len_a[b] : Ta), (long long)Ta);

    /* 2. lengths */
    bool trim = c->len_mode == AVSR_FUSION_LEN_TRIM;
    int64_t T = trim ? (Tv < Ta ? Tv : Ta) : (Tv > Ta ? Tv : Ta);
    int64_t *lens = NULL; /* [B] output lengths, when any input has lengths */
    if (len_v || len_a) {
        lens = avsr_ctx_alloc(ctx, sizeof *lens * (size_t)B);
        if (!lens)
            return avsr_ctx_fail(ctx, "fusion: out of arena memory");
        for (int64_t b = 0; b < B; b++) {
            int64_t lv = len_v ? len_v[b] : Tv, la = len_a ? len_a[b] : Ta;
            int64_t l = trim ? (lv < la ? lv : la) : (lv > la ? lv : la);
            lens[b] = l < T ? l : T;
        }
    }
    video = fit_time(ctx, video, T);
    audio = fit_time(ctx, audio, T);

    /* 3. modality dropout */
    if (both && avsr_ctx_training(ctx) && c->p_modality > 0.0f) {
        uint8_t *drop = avsr_ctx_alloc(ctx, (size_t)B);
        float *kv = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(2 * B)); /* [2, B] */
        if (!drop || !kv)
            return avsr_ctx_fail(ctx, "fusion: out of arena memory");
        if (avsr_modality_dropout_draw(ctx, (int)B, c->p_modality, c->p_audio, drop) < 0)
            return NULL;
        bool any_a = false, any_v = false;
        for (int64_t b = 0; b < B; b++) {
            kv[b] = drop[b] == AVSR_MODALITY_DROP_VIDEO ? 0.0f : 1.0f;
            kv[B + b] = drop[b] == AVSR_MODALITY_DROP_AUDIO ? 0.0f : 1.0f;
            any_v |= drop[b] == AVSR_MODALITY_DROP_VIDEO;
            any_a |= drop[b] == AVSR_MODALITY_DROP_AUDIO;
        }
        if (any_v)
            video = scale_rows(ctx, video, kv);
        if (any_a)
            audio = scale_rows(ctx, audio, kv + B);
    }
    if (!video || !audio)
        return NULL;

    /* 4. fuse */
    avsr_tensor *y = NULL;
    switch (c->kind) {
    case AVSR_FUSION_CONCAT_MLP: {
        avsr_tensor *xs[2] = {video, audio};
        avsr_tensor *h = avsr_nn_linear_forward(ctx, &m->fc1, avsr_op_concat(ctx, 2, xs, 2));
        if (c->norm == AVSR_FUSION_NORM_BATCH) {
            avsr_tensor *mask = avsr_fe_extent_mask(ctx, B, T, lens); /* [B, T] or NULL */
            if (lens && !mask)
                return NULL;
            h = avsr_op_transpose(ctx, h, 1, 2); /* [B, h, T] */
            h = avsr_nn_batch_norm_forward(ctx, &m->bn1, h, mask);
            h = avsr_op_transpose(ctx, h, 1, 2);
        } else if (c->norm == AVSR_FUSION_NORM_LAYER) {
            h = avsr_nn_layer_norm_forward(ctx, &m->norm1, h);
        }
        y = avsr_nn_linear_forward(ctx, &m->fc2, avsr_op_relu(ctx, h));
        break;
    }
    case AVSR_FUSION_ADD:
        y = avsr_op_add(ctx, audio, video);
        break;
    case AVSR_FUSION_GATED: {
        avsr_tensor *xs[2] = {audio, video};
        avsr_tensor *g = avsr_op_sigmoid(
            ctx, avsr_nn_linear_forward(ctx, &m->gate, avsr_op_concat(ctx, 2, xs, 2)));
        y = avsr_op_add(ctx, video, avsr_op_mul(ctx, g, avsr_op_sub(ctx, audio, video)));
        break;
    }
    }
    if (y && out_len)
        for (int64_t b = 0; b < B; b++)
            out_len[b] = lens ? lens[b] : T;
    return y;
}
