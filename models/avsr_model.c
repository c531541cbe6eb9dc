/* avsr_model: assembly of frontends, fusion, encoder, CTC head, decoder and
 * the hybrid loss (see avsr_model.h). */
#include "avsr_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "rng.h"
#include "search.h"

#define SAMPLES_PER_FRAME 640
#define PURPOSE_AUX_ENCODER 2048u
#define PURPOSE_DECODER 4096u
#define PURPOSE_CTC 8192u
#define IGNORE_ID (-1)
#define FBANK_BINS 26
#define FBANK_STACK 4
#define MEL_BINS 80
#define MEL_PER_FRAME 4 /* 100 Hz mel frames per 25 Hz video frame */

static const char *const MODULE_NAMES[AVSR_MOD_COUNT] = {
    "visual frontend", "audio frontend", "fusion", "encoder", "decoder", "ctc", "fusion module"};

const char *avsr_model_module_name(int mod)
{
    return mod >= 0 && mod < AVSR_MOD_COUNT ? MODULE_NAMES[mod] : NULL;
}

void avsr_model_cfg_default(avsr_model_cfg *c, int64_t vocab)
{
    memset(c, 0, sizeof *c);
    c->vocab = vocab;
    c->use_video = true;
    avsr_visual_frontend_defaults(&c->video);
    c->audio = AVSR_AUDIO_WAVE;
    avsr_audio_resnet1d_defaults(&c->wave);
    c->fusion_pos = AVSR_FUSION_LATE;
    c->fusion = AVSR_FUSION_CONCAT_MLP;
    c->fusion_norm = AVSR_FUSION_NORM_BATCH;
    c->fusion_hidden = 8192;
    c->p_audio = 0.5f;
    c->encoder_kind = AVSR_ENCODER_CONFORMER;
    avsr_conformer_cfg_default(&c->encoder, 0, 768, 12, 3072, 12);
    c->use_decoder = true;
    avsr_decoder_cfg_default(&c->decoder, vocab, 768, 12, 3072, 6);
    c->ctc_weight = 0.1f;
    c->ctc_dropout = 0.1f;
    c->label_smoothing = 0.1f;
}

/* ---- registration bookkeeping -------------------------------------------- */

static int take_members(avsr_model *m, avsr_params *p, int mod, int start, avsr_error *err)
{
    int n = avsr_params_count(p) - start;
    if (n <= 0)
        return 0;
    avsr_tensor **a = realloc(m->members[mod], sizeof *a * (size_t)(m->n_members[mod] + n));
    if (!a)
        return AVSR_NOMEM(err, sizeof *a * (size_t)(m->n_members[mod] + n));
    for (int i = 0; i < n; i++)
        a[m->n_members[mod] + i] = avsr_params_at(p, start + i);
    m->members[mod] = a;
    m->n_members[mod] += n;
    return 0;
}

static int64_t audio_frontend_dim(const avsr_model_cfg *c)
{
    switch (c->audio) {
    case AVSR_AUDIO_WAVE:
        return 8 * (int64_t)c->wave.width;
    case AVSR_AUDIO_LOGMEL80:
    case AVSR_AUDIO_FBANK104:
        return c->encoder.d_model;
    default:
        return 0;
    }
}

static int check_cfg(const avsr_model_cfg *c, avsr_error *err)
{
#define BAD(...) return avsr_error_set(err, AVSR_ERR_INVALID, "model: " __VA_ARGS__)
    if (c->vocab < 3)
        BAD("vocabulary size %lld, expected at least 3 (blank, one token, eos)",
            (long long)c->vocab);
    if (!c->use_video && c->audio == AVSR_AUDIO_NONE)
        BAD("neither video nor audio: at least one modality is needed");
    if (c->use_video && (c->video.width < 1 || c->video.roi < 0))
        BAD("video frontend width %d / roi %d out of range", c->video.width, c->video.roi);
    if (c->audio == AVSR_AUDIO_WAVE && (c->wave.width < 1 || c->wave.pool < 1))
        BAD("audio frontend width %d / pool %d out of range", c->wave.width, c->wave.pool);
    const avsr_conformer_cfg *e = &c->encoder;
    if (e->d_model < 1 || e->heads < 1 || e->d_model % e->heads != 0)
        BAD("encoder dim %lld is not a multiple of heads %d", (long long)e->d_model, e->heads);
    if (e->layers < 0 || e->ffn < 1 || (e->use_conv && (e->kernel < 1 || e->kernel % 2 == 0)))
        BAD("encoder layers %d / ffn %lld / kernel %d out of range", e->layers, (long long)e->ffn,
            e->kernel);
    if (e->layers > 120)
        BAD("encoder layers %d, at most 120", e->layers);
    if (!(c->ctc_weight >= 0.0f && c->ctc_weight <= 1.0f))
        BAD("ctc_weight %g outside [0, 1]", c->ctc_weight);
    if (c->use_decoder == (c->ctc_weight >= 1.0f))
        BAD("ctc_weight %g %s", c->ctc_weight,
            c->use_decoder ? "is 1 but a decoder is configured"
                           : "is below 1 but there is no decoder");
    if (c->use_decoder) {
        const avsr_decoder_cfg *d = &c->decoder;
        if (d->d_model < 1 || d->heads < 1 || d->d_model % d->heads != 0)
            BAD("decoder dim %lld is not a multiple of heads %d", (long long)d->d_model,
                d->heads);
        if (d->layers < 1 || d->ffn < 1)
            BAD("decoder layers %d / ffn %lld out of range", d->layers, (long long)d->ffn);
    }
    if (c->use_fusion_module) {
        if (c->audio != AVSR_AUDIO_LOGMEL80)
            BAD("the fusion module enhances a log-mel: it needs audio features logmel80");
        if (c->use_video)
            BAD("a fusion module and a visual frontend together: the fusion module takes the "
                "video itself (remove the video frontend)");
        if (c->fusion_module.n_mels != MEL_BINS)
            BAD("fusion module n_mels %d, expected %d (the log-mel bins)", c->fusion_module.n_mels,
                MEL_BINS);
    }
    if (c->mel_pad_frames < 0 || (c->mel_pad_frames > 0 && c->audio != AVSR_AUDIO_LOGMEL80))
        BAD("mel_pad_frames %lld needs audio features logmel80 and a value >= 0",
            (long long)c->mel_pad_frames);
    if (c->mel_pad_frames > 0 && c->mel_pad_frames < 7)
        BAD("mel_pad_frames %lld, expected 0 (off) or at least 7 (the subsampling's minimum)",
            (long long)c->mel_pad_frames);
    if (c->use_video && c->audio != AVSR_AUDIO_NONE && c->fusion != AVSR_FUSION_CONCAT_MLP) {
        int64_t dv = c->fusion_pos == AVSR_FUSION_LATE ? e->d_model : 8 * (int64_t)c->video.width;
        int64_t da = c->fusion_pos == AVSR_FUSION_LATE ? e->d_model : audio_frontend_dim(c);
        if (dv != da)
            BAD("fusion %s needs equal feature sizes, got video %lld and audio %lld",
                c->fusion == AVSR_FUSION_ADD ? "add" : "gated", (long long)dv, (long long)da);
    }
    return 0;
#undef BAD
}

static int encoder_init(avsr_conformer_encoder *enc, const avsr_model_cfg *c, avsr_params *p,
                        const char *prefix, int64_t idim, uint32_t purpose, avsr_error *err)
{
    avsr_conformer_cfg ec = c->encoder;
    ec.idim = idim;
    ec.purpose_base = purpose;
    return avsr_conformer_encoder_init(enc, p, prefix, &ec, err);
}

/* Register an audio frontend under prefix (the conv2d subsampling under
 * sub_prefix); returns its output dim, or -1. */
static int64_t audio_init(avsr_model *m, avsr_params *p, const char *prefix,
                          const char *sub_prefix, avsr_error *err)
{
    const avsr_model_cfg *c = &m->cfg;
    int64_t d = c->encoder.d_model;
    switch (c->audio) {
    case AVSR_AUDIO_WAVE:
        if (avsr_audio_resnet1d_init(&m->afe_wave, p, prefix, &c->wave, err) < 0)
            return -1;
        return avsr_audio_resnet1d_dim(&m->afe_wave);
    case AVSR_AUDIO_LOGMEL80: {
        avsr_conv2d_subsampling_cfg sc = {
            .idim = 80, .channels = c->subsample_channels > 0 ? c->subsample_channels : (int)d,
            .odim = (int)d};
        if (avsr_conv2d_subsampling_init(&m->afe_sub, p, sub_prefix, &sc, err) < 0)
            return -1;
        return d;
    }
    case AVSR_AUDIO_FBANK104:
        if (avsr_audio_fbank_proj_init(&m->afe_fbank, p, prefix, FBANK_BINS * FBANK_STACK, d,
                                       err) < 0)
            return -1;
        return d;
    default:
        return 0;
    }
}

int avsr_model_create(const avsr_model_cfg *cfg, avsr_params *p, avsr_model **out,
                      avsr_error *err)
{
    *out = NULL;
    if (check_cfg(cfg, err) < 0)
        return -1;
    avsr_model *m = calloc(1, sizeof *m);
    if (!m)
        return AVSR_NOMEM(err, sizeof *m);
    m->cfg = *cfg;
    const avsr_model_cfg *c = &m->cfg;
    bool video = c->use_video, audio = c->audio != AVSR_AUDIO_NONE;
    int64_t d = c->encoder.d_model;
    m->has_fusion = video && audio;
    m->has_aux = m->has_fusion && c->fusion_pos == AVSR_FUSION_LATE;
    int s;

    if (c->use_fusion_module) {
        s = avsr_params_count(p);
        if (avsr_avfm_init(&m->fm, p, "fusion_module", &c->fusion_module, err) < 0 ||
            take_members(m, p, AVSR_MOD_FUSION_MODULE, s, err) < 0)
            goto fail;
    }
    if (m->has_aux) {
        /* Auto-AVSR AV: encoder = video frontend + encoder, aux_encoder = audio */
        s = avsr_params_count(p);
        if (avsr_visual_frontend_init(&m->vfe, p, "encoder.frontend", &c->video, err) < 0 ||
            take_members(m, p, AVSR_MOD_VISUAL, s, err) < 0)
            goto fail;
        s = avsr_params_count(p);
        if (encoder_init(&m->enc, c, p, "encoder", avsr_visual_frontend_dim(&m->vfe), 0, err) < 0 ||
            take_members(m, p, AVSR_MOD_ENCODER, s, err) < 0)
            goto fail;
        s = avsr_params_count(p);
        int64_t da = audio_init(m, p, "aux_encoder.frontend", "aux_encoder.embed", err);
        if (da < 0 || take_members(m, p, AVSR_MOD_AUDIO, s, err) < 0)
            goto fail;
        s = avsr_params_count(p);
        if (encoder_init(&m->aux_enc, c, p, "aux_encoder", c->audio == AVSR_AUDIO_WAVE ? da : 0,
                         PURPOSE_AUX_ENCODER, err) < 0 ||
            take_members(m, p, AVSR_MOD_ENCODER, s, err) < 0)
            goto fail;
        avsr_fusion_cfg fc = {.kind = c->fusion, .dim_v = d, .dim_a = d,
                              .hidden = c->fusion_hidden, .out_dim = d, .norm = c->fusion_norm,
                              .len_mode = AVSR_FUSION_LEN_TRIM, .p_modality = c->p_modality,
                              .p_audio = c->p_audio};
        s = avsr_params_count(p);
        if (avsr_fusion_init(&m->fusion, p, "fusion", &fc, err) < 0 ||
            take_members(m, p, AVSR_MOD_FUSION, s, err) < 0)
            goto fail;
    } else {
        int64_t dv = 0, da = 0, idim = 0;
        if (video) {
            s = avsr_params_count(p);
            if (avsr_visual_frontend_init(&m->vfe, p, "encoder.frontend", &c->video, err) < 0 ||
                take_members(m, p, AVSR_MOD_VISUAL, s, err) < 0)
                goto fail;
            dv = avsr_visual_frontend_dim(&m->vfe);
        }
        if (audio) {
            s = avsr_params_count(p);
            const char *pre = video ? "encoder.audio_frontend" : "encoder.frontend";
            const char *sub = video ? "encoder.audio_frontend" : "encoder.embed";
            da = audio_init(m, p, pre, sub, err);
            if (da < 0 || take_members(m, p, AVSR_MOD_AUDIO, s, err) < 0)
                goto fail;
        }
        if (m->has_fusion) {
            int64_t fo = c->fusion == AVSR_FUSION_CONCAT_MLP
                             ? (c->fusion_dim > 0 ? c->fusion_dim : d)
                             : dv;
            avsr_fusion_cfg fc = {.kind = c->fusion, .dim_v = dv, .dim_a = da,
                                  .hidden = c->fusion_hidden, .out_dim = fo,
                                  .norm = c->fusion_norm, .len_mode = AVSR_FUSION_LEN_TRIM,
                                  .p_modality = c->p_modality, .p_audio = c->p_audio};
            s = avsr_params_count(p);
            if (avsr_fusion_init(&m->fusion, p, "fusion", &fc, err) < 0 ||
                take_members(m, p, AVSR_MOD_FUSION, s, err) < 0)
                goto fail;
            idim = fo;
        } else if (video) {
            idim = dv;
        } else {
            idim = c->audio == AVSR_AUDIO_WAVE ? da : 0; /* logmel / fbank give d */
        }
        s = avsr_params_count(p);
        if (encoder_init(&m->enc, c, p, "encoder", idim, 0, err) < 0 ||
            take_members(m, p, AVSR_MOD_ENCODER, s, err) < 0)
            goto fail;
    }

    if (c->use_decoder) {
        avsr_decoder_cfg dc = c->decoder;
        dc.vocab = c->vocab;
        dc.purpose_base = PURPOSE_DECODER;
        s = avsr_params_count(p);
        if (dc.d_model != d) {
            m->has_proj_decoder = true;
            if (avsr_nn_linear_init(&m->proj_decoder, p, "proj_decoder", d, dc.d_model, true,
                                    err) < 0)
                goto fail;
        }
        if (avsr_decoder_init(&m->dec, p, "decoder", &dc, err) < 0 ||
            take_members(m, p, AVSR_MOD_DECODER, s, err) < 0)
            goto fail;
    }
    s = avsr_params_count(p);
    if (avsr_nn_linear_init(&m->ctc_lo, p, "ctc.ctc_lo", d, c->vocab, true, err) < 0 ||
        take_members(m, p, AVSR_MOD_CTC, s, err) < 0)
        goto fail;
    *out = m;
    return 0;
fail:
    avsr_model_free(m);
    return -1;
}

void avsr_model_free(avsr_model *m)
{
    if (!m)
        return;
    if (m->cfg.use_video)
        avsr_visual_frontend_free(&m->vfe);
    if (m->cfg.audio == AVSR_AUDIO_WAVE)
        avsr_audio_resnet1d_free(&m->afe_wave);
    avsr_conformer_encoder_free(&m->enc);
    avsr_conformer_encoder_free(&m->aux_enc);
    avsr_decoder_free(&m->dec);
    if (m->cfg.use_fusion_module)
        avsr_avfm_free(&m->fm);
    for (int i = 0; i < AVSR_MOD_COUNT; i++)
        free(m->members[i]);
    free(m);
}

int64_t avsr_model_dim(const avsr_model *m) { return m->cfg.encoder.d_model; }

/* ---- forward -------------------------------------------------------------- */

static int64_t *arena_i64(avsr_ctx *ctx, int64_t n)
{
    int64_t *a = avsr_ctx_alloc(ctx, sizeof *a * (size_t)(n > 0 ? n : 1));
    if (!a)
        avsr_ctx_fail(ctx, "model: out of arena memory");
    return a;
}

/* What the log-mel path leaves behind for the losses. */
typedef struct mel_info {
    avsr_tensor *mel;     /* [B, 80, F] the ASR input */
    int64_t *mel_lengths; /* [B] valid frames */
    bool fused;
} mel_info;

/* U8 [B, 1, W] (time_dim 2) or [B, W, 1] (time_dim 1): 1 where t < len[b]
 * (valid), or the complement with invert. */
static avsr_tensor *len_mask(avsr_ctx *ctx, int64_t B, int64_t W, const int64_t *len,
                             int time_dim, bool invert)
{
    int64_t s[3] = {B, time_dim == 2 ? 1 : W, time_dim == 2 ? W : 1};
    avsr_tensor *mk = avsr_tensor_new(ctx, AVSR_U8, 3, s);
    if (!mk)
        return NULL;
    uint8_t *d = mk->data;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < W; t++)
            d[b * W + t] = (uint8_t)((t < len[b]) != invert);
    return mk;
}

/* ASR2AVSR: mel [B, 80, Tw] of the (noisy) audio -> enhanced mel [B, 80,
 * 4 T] with the frames beyond mlen (updated here) zero. */
static avsr_tensor *fusion_module_forward(avsr_ctx *ctx, const avsr_model *m,
                                          const avsr_model_input *b, avsr_tensor *mel,
                                          int64_t *mlen)
{
    avsr_tensor *v = b->video;
    char s[96];
    if (v->dtype != AVSR_F32 || (v->ndim != 4 && !(v->ndim == 5 && v->shape[2] == 1)) ||
        v->shape[0] != b->B)
        return avsr_ctx_fail(ctx, "model: fusion module: video: got %s, expected f32 [B=%lld, T, "
                             "H, W] or [B, T, 1, H, W]",
                             avsr_shape_str(v, s, sizeof s), (long long)b->B);
    int64_t B = b->B, Tv = v->shape[1], Tm = MEL_PER_FRAME * Tv, Tw = mel->shape[2];
    if (v->ndim == 5) {
        int64_t s4[4] = {B, Tv, v->shape[3], v->shape[4]};
        v = avsr_op_reshape(ctx, v, 4, s4);
    }
    /* 100 fps mel against 25 fps video: exactly 4 mel frames per video frame */
    if (Tw > Tm)
        mel = avsr_op_slice(ctx, mel, 2, 0, Tm, 1);
    else if (Tw < Tm)
        mel = avsr_op_pad(ctx, mel, 2, 0, Tm - Tw, 0.0f);
    for (int64_t i = 0; i < B; i++) {
        int64_t vl = b->lengths && b->lengths[i] < Tv ? b->lengths[i] : Tv;
        if (mlen[i] > MEL_PER_FRAME * vl)
            mlen[i] = MEL_PER_FRAME * vl;
    }
    const avsr_model_cfg *c = &m->cfg;
    if (c->specaug.n_time_masks > 0 || c->specaug.n_freq_masks > 0)
        mel = avsr_op_spec_augment(ctx, mel, mlen, &c->specaug, AVSR_RNG_SPEC_AUG);
    avsr_tensor *y = avsr_avfm_forward(ctx, &m->fm, mel, v); /* [B, 80, Tm] */
    avsr_tensor *pad = len_mask(ctx, B, Tm, mlen, 2, true);
    return avsr_op_masked_fill(ctx, y, pad, 0.0f);
}

/* Whisper-style padding of the ASR input to P frames: 0 in training, the
 * clip's minimum input log-mel value (over its valid frames of src) in
 * evaluation. mel is zero beyond mlen[b]. */
static avsr_tensor *mel_pad(avsr_ctx *ctx, const avsr_model *m, avsr_tensor *mel,
                            const avsr_tensor *src, const int64_t *mlen)
{
    int64_t B = mel->shape[0], W = mel->shape[2], P = m->cfg.mel_pad_frames;
    for (int64_t i = 0; i < B; i++)
        if (mlen[i] > P)
            return avsr_ctx_fail(ctx, "model: clip %lld has %lld mel frames, more than "
                                 "mel_pad_frames %lld",
                                 (long long)i, (long long)mlen[i], (long long)P);
    if (W > P)
        mel = avsr_op_slice(ctx, mel, 2, 0, P, 1);
    else if (W < P)
        mel = avsr_op_pad(ctx, mel, 2, 0, P - W, 0.0f);
    if (!mel || avsr_ctx_training(ctx))
        return mel;
    int64_t s3[3] = {B, 1, P};
    avsr_tensor *fill = avsr_tensor_zeros(ctx, AVSR_F32, 3, s3);
    if (!fill)
        return NULL;
    const float *x = avsr_f32(src);
    int64_t F = src->shape[1], Ws = src->shape[2];
    for (int64_t i = 0; i < B; i++) {
        float lo = 0.0f;
        for (int64_t f = 0; f < F; f++)
            for (int64_t t = 0; t < mlen[i] && t < Ws; t++) {
                float v = x[(i * F + f) * Ws + t];
                lo = (f == 0 && t == 0) || v < lo ? v : lo;
            }
        for (int64_t t = mlen[i]; t < P; t++)
            avsr_f32(fill)[i * P + t] = lo;
    }
    return avsr_op_add(ctx, mel, fill);
}

/* audio features [B, T', D] and their lengths (frames); the log-mel path
 * fills info. fm: the batch's video goes through the fusion module. */
static avsr_tensor *audio_forward(avsr_ctx *ctx, const avsr_model *m, const avsr_model_input *b,
                                  bool fm, int64_t *alen, mel_info *info)
{
    const avsr_model_cfg *c = &m->cfg;
    avsr_tensor *wave = b->audio;
    if (wave->ndim != 2 || wave->dtype != AVSR_F32 || wave->shape[0] != b->B) {
        char s[96];
        return avsr_ctx_fail(ctx, "model: audio: got %s, expected f32 [B=%lld, N]",
                             avsr_shape_str(wave, s, sizeof s), (long long)b->B);
    }
    int64_t B = b->B, N = wave->shape[1];
    int64_t *slen = arena_i64(ctx, B); /* valid samples */
    if (!slen)
        return NULL;
    for (int64_t i = 0; i < B; i++) {
        int64_t l = b->lengths ? b->lengths[i] * SAMPLES_PER_FRAME : N;
        slen[i] = l < N ? l : N;
        if (slen[i] < 1)
            return avsr_ctx_fail(ctx, "model: audio of clip %lld is empty", (long long)i);
    }
    switch (c->audio) {
    case AVSR_AUDIO_WAVE:
        if (N < avsr_audio_resnet1d_hop(&m->afe_wave))
            return avsr_ctx_fail(ctx, "model: audio has %lld samples, fewer than one frame (%lld)",
                                 (long long)N, (long long)avsr_audio_resnet1d_hop(&m->afe_wave));
        return avsr_audio_resnet1d_forward(ctx, &m->afe_wave, wave, slen, alen);
    case AVSR_AUDIO_LOGMEL80: {
        avsr_logmel_cfg lc;
        avsr_logmel_whisper_defaults(&lc);
        avsr_tensor *raw = avsr_op_logmel_whisper(ctx, wave, slen, &lc); /* [B, 80, Tm] */
        int64_t *mlen = arena_i64(ctx, B);
        if (!raw || !mlen)
            return NULL;
        for (int64_t i = 0; i < B; i++)
            mlen[i] = avsr_logmel_frames(&lc, slen[i]);
        avsr_tensor *mel = raw;
        if (fm)
            mel = fusion_module_forward(ctx, m, b, raw, mlen);
        else if (c->specaug.n_time_masks > 0 || c->specaug.n_freq_masks > 0)
            mel = avsr_op_spec_augment(ctx, mel, mlen, &c->specaug, AVSR_RNG_SPEC_AUG);
        const int64_t *sub_len = mlen;
        if (mel && c->mel_pad_frames > 0) {
            mel = mel_pad(ctx, m, mel, raw, mlen);
            int64_t *pl = arena_i64(ctx, B);
            if (!pl)
                return NULL;
            for (int64_t i = 0; i < B; i++)
                pl[i] = c->mel_pad_frames;
            sub_len = pl;
        }
        if (!mel)
            return NULL;
        info->mel = mel;
        info->mel_lengths = mlen;
        info->fused = fm;
        avsr_tensor *y = avsr_conv2d_subsampling_forward(ctx, &m->afe_sub, mel, sub_len, alen);
        for (int64_t i = 0; y && i < B; i++)
            if (alen[i] < 1)
                return avsr_ctx_fail(ctx, "model: audio of clip %lld is too short for the "
                                     "subsampling (%lld mel frames)",
                                     (long long)i, (long long)sub_len[i]);
        return y;
    }
    case AVSR_AUDIO_FBANK104: {
        avsr_fbank_cfg fc;
        avsr_fbank_kaldi_defaults(&fc);
        fc.num_mel_bins = FBANK_BINS;
        avsr_tensor *fb = avsr_op_fbank_kaldi(ctx, wave, slen, &fc); /* [B, 26, Tf] */
        avsr_tensor *st = avsr_op_stack_frames(ctx, fb, FBANK_STACK); /* [B, 104, T'] */
        avsr_tensor *x = avsr_op_transpose(ctx, st, 1, 2);           /* [B, T', 104] */
        x = avsr_op_layer_norm(ctx, x, NULL, NULL, 1e-5f);
        if (!x)
            return NULL;
        for (int64_t i = 0; i < B; i++) {
            alen[i] = (avsr_fbank_frames(&fc, slen[i]) + FBANK_STACK - 1) / FBANK_STACK;
            if (alen[i] < 1)
                return avsr_ctx_fail(ctx, "model: audio of clip %lld is shorter than one "
                                     "filterbank frame", (long long)i);
        }
        return avsr_audio_fbank_proj_forward(ctx, &m->afe_fbank, x);
    }
    default:
        return avsr_ctx_fail(ctx, "model: no audio frontend");
    }
}

static avsr_tensor *video_forward(avsr_ctx *ctx, const avsr_model *m, const avsr_model_input *b,
                                  int64_t *vlen)
{
    avsr_tensor *v = b->video;
    if ((v->ndim != 4 && v->ndim != 5) || v->shape[0] != b->B) {
        char s[96];
        return avsr_ctx_fail(ctx, "model: video: got %s, expected f32 [B=%lld, T, H, W]",
                             avsr_shape_str(v, s, sizeof s), (long long)b->B);
    }
    int64_t T = v->shape[1];
    for (int64_t i = 0; i < b->B; i++) {
        vlen[i] = b->lengths ? b->lengths[i] : T;
        if (vlen[i] > T)
            vlen[i] = T;
    }
    return avsr_visual_frontend_forward(ctx, &m->vfe, v, vlen);
}

static avsr_tensor *encode(avsr_ctx *ctx, const avsr_model *m, const avsr_model_input *b,
                           int64_t *enc_lengths, mel_info *info)
{
    memset(info, 0, sizeof *info);
    if (avsr_ctx_failed(ctx))
        return NULL;
    const avsr_model_cfg *c = &m->cfg;
    if (b->B < 1)
        return avsr_ctx_fail(ctx, "model: batch size %lld", (long long)b->B);
    avsr_tensor *video = c->use_video ? b->video : NULL;
    avsr_tensor *audio = c->audio != AVSR_AUDIO_NONE ? b->audio : NULL;
    bool fm = c->use_fusion_module && b->video;
    if (b->video && !c->use_video && !c->use_fusion_module)
        return avsr_ctx_fail(ctx, "model: the batch has video but the model has no visual frontend");
    if (fm && !b->audio)
        return avsr_ctx_fail(ctx, "model: the batch has video but no audio: the fusion module "
                             "needs the (noisy) audio whose log-mel it enhances");
    if (b->audio && c->audio == AVSR_AUDIO_NONE)
        return avsr_ctx_fail(ctx, "model: the batch has audio but the model has no audio frontend");
    if (!video && !audio)
        return avsr_ctx_fail(ctx, "model: the batch has neither video nor audio");
    if (b->lengths)
        for (int64_t i = 0; i < b->B; i++)
            if (b->lengths[i] < 1)
                return avsr_ctx_fail(ctx, "model: lengths[%lld] = %lld, expected >= 1",
                                     (long long)i, (long long)b->lengths[i]);
    int64_t B = b->B;
    int64_t *vlen = arena_i64(ctx, B), *alen = arena_i64(ctx, B), *olen = arena_i64(ctx, B);
    if (!vlen || !alen || !olen)
        return NULL;
    avsr_tensor *vf = video ? video_forward(ctx, m, b, vlen) : NULL;
    avsr_tensor *af = audio ? audio_forward(ctx, m, b, fm, alen, info) : NULL;
    if (avsr_ctx_failed(ctx))
        return NULL;
    avsr_tensor *x;
    if (m->has_aux) {
        /* late: per-modality encoders, then fusion of their outputs */
        avsr_tensor *ev = vf ? avsr_conformer_encoder_forward(ctx, &m->enc, vf, vlen) : NULL;
        avsr_tensor *ea = af ? avsr_conformer_encoder_forward(ctx, &m->aux_enc, af, alen) : NULL;
        if (avsr_ctx_failed(ctx))
            return NULL;
        x = avsr_fusion_forward(ctx, &m->fusion, ev, ea, vf ? vlen : NULL, af ? alen : NULL, olen);
    } else {
        if (m->has_fusion) {
            x = avsr_fusion_forward(ctx, &m->fusion, vf, af, vf ? vlen : NULL, af ? alen : NULL,
                                    olen);
        } else {
            x = vf ? vf : af;
            memcpy(olen, vf ? vlen : alen, sizeof *olen * (size_t)B);
        }
        x = avsr_conformer_encoder_forward(ctx, &m->enc, x, olen);
    }
    if (x && enc_lengths)
        memcpy(enc_lengths, olen, sizeof *olen * (size_t)B);
    return x;
}

avsr_tensor *avsr_model_encode(avsr_ctx *ctx, const avsr_model *m, const avsr_model_input *b,
                               int64_t *enc_lengths)
{
    mel_info info;
    return encode(ctx, m, b, enc_lengths, &info);
}

avsr_tensor *avsr_model_ctc_logits(avsr_ctx *ctx, const avsr_model *m, avsr_tensor *enc)
{
    avsr_tensor *x = avsr_op_dropout(ctx, enc, m->cfg.ctc_dropout, PURPOSE_CTC);
    return avsr_nn_linear_forward(ctx, &m->ctc_lo, x);
}

avsr_tensor *avsr_model_ctc_log_probs(avsr_ctx *ctx, const avsr_model *m, avsr_tensor *enc)
{
    return avsr_op_log_softmax(ctx, avsr_model_ctc_logits(ctx, m, enc), NULL);
}

/* th_accuracy: argmax of logits [N, V] against targets [N] (ignore skipped) */
static void accuracy(const avsr_tensor *logits, const avsr_tensor *tgt, double *acc,
                     int64_t *count)
{
    int64_t V = logits->shape[logits->ndim - 1], N = logits->numel / V, hit = 0, n = 0;
    const float *l = avsr_f32(logits);
    const int64_t *t = tgt->data;
    for (int64_t i = 0; i < N; i++) {
        if (t[i] == IGNORE_ID)
            continue;
        const float *r = l + i * V;
        int64_t best = 0;
        for (int64_t v = 1; v < V; v++)
            if (r[v] > r[best])
                best = v;
        hit += best == t[i];
        n++;
    }
    *count = n;
    *acc = n ? (double)hit / (double)n : 0.0;
}

/* targets in range; their total count into *total */
static int check_targets(avsr_ctx *ctx, const avsr_model *m, const avsr_model_input *b,
                         int64_t *total)
{
    int64_t L = b->max_target, V = m->cfg.vocab;
    *total = 0;
    if (!b->target_lengths || L < 0) {
        avsr_ctx_fail(ctx, "model: targets without target_lengths / max_target");
        return -1;
    }
    for (int64_t i = 0; i < b->B; i++) {
        int64_t n = b->target_lengths[i];
        if (n < 0 || n > L) {
            avsr_ctx_fail(ctx, "model: target_lengths[%lld] = %lld, expected 0..%lld",
                          (long long)i, (long long)n, (long long)L);
            return -1;
        }
        for (int64_t j = 0; j < n; j++) {
            int64_t y = b->targets[i * L + j];
            if (y < 1 || y >= V - 1) {
                avsr_ctx_fail(ctx, "model: target %lld of clip %lld is %lld, expected 1..%lld",
                              (long long)j, (long long)i, (long long)y, (long long)(V - 2));
                return -1;
            }
        }
        *total += n;
    }
    return 0;
}

/* CTC: targets concatenated; sum / B (Auto-AVSR's CTC module) */
static avsr_tensor *ctc_loss(avsr_ctx *ctx, const avsr_model_input *b, avsr_model_out *out,
                             int64_t total)
{
    int64_t B = b->B, L = b->max_target;
    int64_t *cat = arena_i64(ctx, total);
    if (!cat)
        return NULL;
    for (int64_t i = 0, k = 0; i < B; i++)
        for (int64_t j = 0; j < b->target_lengths[i]; j++)
            cat[k++] = b->targets[i * L + j];
    avsr_tensor *ctc = avsr_op_ctc_loss(ctx, out->ctc_logits, out->enc_lengths, cat,
                                        b->target_lengths, 0, AVSR_LOSS_SUM, true);
    return avsr_op_scale(ctx, ctc, 1.0f / (float)B);
}

/* decoder (teacher forcing) + label-smoothed attention loss, accuracy */
static avsr_tensor *att_loss(avsr_ctx *ctx, const avsr_model *m, const avsr_model_input *b,
                             avsr_model_out *out)
{
    const avsr_model_cfg *c = &m->cfg;
    int64_t B = b->B, L = b->max_target, V = c->vocab;
    int64_t s[2] = {B, L > 0 ? L : 1};
    avsr_tensor *ys = avsr_tensor_new(ctx, AVSR_I64, 2, s);
    if (!ys)
        return NULL;
    int64_t *py = ys->data;
    for (int64_t i = 0; i < B; i++)
        for (int64_t j = 0; j < s[1]; j++)
            py[i * s[1] + j] = j < b->target_lengths[i] ? b->targets[i * L + j] : IGNORE_ID;
    avsr_tensor *ys_in, *ys_out;
    if (avsr_decoder_make_inputs(ctx, ys, V - 1, V - 1, IGNORE_ID, b->pad_target, &ys_in,
                                 &ys_out, NULL) < 0)
        return NULL;
    avsr_tensor *mem = out->enc;
    if (m->has_proj_decoder)
        mem = avsr_nn_linear_forward(ctx, &m->proj_decoder, mem);
    out->dec_logits = avsr_decoder_forward(ctx, &m->dec, ys_in, mem, out->enc_lengths);
    if (!out->dec_logits)
        return NULL;
    int64_t Ld = ys_in->shape[1];
    int64_t s2[2] = {B * Ld, V};
    avsr_tensor *flat = avsr_op_reshape(ctx, out->dec_logits, 2, s2);
    int64_t s1[1] = {B * Ld};
    avsr_tensor *tflat = avsr_tensor_wrap(ctx, AVSR_I64, 1, s1, ys_out->data);
    avsr_tensor *att = avsr_op_cross_entropy(ctx, flat, tflat, IGNORE_ID, c->label_smoothing,
                                             AVSR_LS_ESPNET, AVSR_LOSS_MEAN, B);
    if (att)
        accuracy(out->dec_logits, tflat, &out->loss.att_acc, &out->loss.att_count);
    return att;
}

/* mean |x - t| over the valid elements: frames t < len[b] along time_dim
 * (1 or 2) of [B, ., .] tensors; the other dimension must agree. */
static avsr_tensor *l1_valid(avsr_ctx *ctx, const char *what, avsr_tensor *x, avsr_tensor *t,
                             const int64_t *len, int time_dim)
{
    char s1[96], s2[96];
    int fd = 3 - time_dim; /* the feature dimension */
    if (!t || t->dtype != AVSR_F32 || t->ndim != 3 || x->ndim != 3 ||
        t->shape[0] != x->shape[0] || t->shape[fd] != x->shape[fd])
        return avsr_ctx_fail(ctx, "model: %s: the teacher's %s does not match the model's %s",
                             what, t ? avsr_shape_str(t, s1, sizeof s1) : "(none)",
                             avsr_shape_str(x, s2, sizeof s2));
    int64_t B = x->shape[0], W = x->shape[time_dim];
    if (t->shape[time_dim] < W)
        W = t->shape[time_dim];
    for (int64_t b = 0; b < B; b++)
        if (len[b] > W)
            return avsr_ctx_fail(ctx, "model: %s: clip %lld has %lld valid frames, but the "
                                 "model's %s and the teacher's %s hold only %lld",
                                 what, (long long)b, (long long)len[b],
                                 avsr_shape_str(x, s2, sizeof s2),
                                 avsr_shape_str(t, s1, sizeof s1), (long long)W);
    if (x->shape[time_dim] > W)
        x = avsr_op_slice(ctx, x, time_dim, 0, W, 1);
    if (t->shape[time_dim] > W)
        t = avsr_op_slice(ctx, t, time_dim, 0, W, 1);
    avsr_tensor *mask = len_mask(ctx, B, W, len, time_dim, false);
    return avsr_op_l1_loss(ctx, x, t, mask, AVSR_LOSS_MEAN);
}

/* *total += coef * term */
static void add_term(avsr_ctx *ctx, avsr_tensor **total, avsr_tensor *term, double coef)
{
    if (!term || avsr_ctx_failed(ctx))
        return;
    if (!*total)
        *total = coef == 1.0 ? term : avsr_op_scale(ctx, term, (float)coef);
    else
        *total = avsr_op_axpby(ctx, *total, term, 1.0f, (float)coef);
}

static int check_weights(avsr_ctx *ctx, const avsr_model *m, const avsr_model_input *in,
                         const avsr_model_loss_w *w, const avsr_model_teacher_out *teacher)
{
    const double v[5] = {w->hybrid, w->ctc, w->dec_ce, w->mel_l1, w->enc_l1};
    static const char *const names[5] = {"hybrid", "ctc", "dec_ce", "mel_l1", "enc_l1"};
    bool any = false;
    for (int i = 0; i < 5; i++) {
        if (!(v[i] >= 0.0) || !isfinite(v[i])) {
            avsr_ctx_fail(ctx, "model: loss weight %s = %g, expected a finite value >= 0",
                          names[i], v[i]);
            return -1;
        }
        any = any || v[i] > 0.0;
    }
    if (!any) {
        avsr_ctx_fail(ctx, "model: every loss weight is 0 (hybrid, ctc, dec_ce, mel_l1, enc_l1)");
        return -1;
    }
    if ((w->hybrid > 0 || w->ctc > 0 || w->dec_ce > 0) && !in->targets) {
        avsr_ctx_fail(ctx, "model: the hybrid / ctc / dec_ce losses need targets, the batch "
                      "has none");
        return -1;
    }
    if (w->dec_ce > 0 && !m->cfg.use_decoder) {
        avsr_ctx_fail(ctx, "model: the dec_ce loss needs an attention decoder (model.decoder); "
                      "the model is CTC only");
        return -1;
    }
    if (w->mel_l1 > 0 && !m->cfg.use_fusion_module) {
        avsr_ctx_fail(ctx, "model: the mel_l1 loss needs a model with a fusion module "
                      "(model.fusion_module): it compares the enhanced log-mel with the "
                      "teacher's");
        return -1;
    }
    if ((w->mel_l1 > 0 || w->enc_l1 > 0) && !teacher) {
        avsr_ctx_fail(ctx, "model: the mel_l1 / enc_l1 losses need a teacher output "
                      "(avsr_model_teach)");
        return -1;
    }
    if (w->mel_l1 > 0 && !teacher->mel) {
        avsr_ctx_fail(ctx, "model: the mel_l1 loss needs the teacher's log-mel (a teacher "
                      "with audio features logmel80)");
        return -1;
    }
    if (w->enc_l1 > 0 && (!teacher->enc || !teacher->enc_lengths)) {
        avsr_ctx_fail(ctx, "model: the enc_l1 loss needs the teacher's encoder output");
        return -1;
    }
    return 0;
}

static int forward_impl(avsr_ctx *ctx, const avsr_model *m, const avsr_model_input *b,
                        const avsr_model_loss_w *w, const avsr_model_teacher_out *teacher,
                        avsr_model_out *out)
{
    memset(out, 0, sizeof *out);
    if (avsr_ctx_failed(ctx))
        return -1;
    if (w && check_weights(ctx, m, b, w, teacher) < 0)
        return -1;
    const avsr_model_cfg *c = &m->cfg;
    int64_t B = b->B, total = 0;
    if (w && b->targets && check_targets(ctx, m, b, &total) < 0)
        return -1;
    out->enc_lengths = arena_i64(ctx, B > 0 ? B : 1);
    if (!out->enc_lengths)
        return -1;
    mel_info info;
    out->enc = encode(ctx, m, b, out->enc_lengths, &info);
    out->mel = info.mel;
    out->mel_lengths = info.mel_lengths;
    out->fused = info.fused;
    out->ctc_logits = avsr_model_ctc_logits(ctx, m, out->enc);
    if (!out->ctc_logits || !w)
        return avsr_ctx_failed(ctx) ? -1 : 0;

    /* coefficients of CTC and att: hybrid (w CTC + (1 - w) att) + ctc CTC + dec_ce att */
    double wc = c->use_decoder ? c->ctc_weight : 1.0;
    double k_ctc = w->hybrid * wc + w->ctc;
    double k_att = c->use_decoder ? w->hybrid * (1.0 - wc) + w->dec_ce : 0.0;
    avsr_losses *ls = &out->loss;
    if (w->hybrid > 0 || w->ctc > 0)
        ls->ctc = ctc_loss(ctx, b, out, total);
    if (c->use_decoder && (w->hybrid > 0 || w->dec_ce > 0))
        ls->att = att_loss(ctx, m, b, out);
    if (ls->ctc && ls->att && k_ctc > 0 && k_att > 0)
        ls->total = avsr_op_axpby(ctx, ls->ctc, ls->att, (float)k_ctc, (float)k_att);
    else if (ls->ctc && k_ctc > 0)
        add_term(ctx, &ls->total, ls->ctc, k_ctc);
    else if (ls->att && k_att > 0)
        add_term(ctx, &ls->total, ls->att, k_att);
    if (w->mel_l1 > 0) {
        /* without video (out->fused false) the mel is the plain log-mel, which
         * has no parameters: the term is still computed and reported */
        ls->mel_l1 = l1_valid(ctx, "mel_l1", out->mel, teacher->mel, out->mel_lengths, 2);
        add_term(ctx, &ls->total, ls->mel_l1, w->mel_l1);
    }
    if (w->enc_l1 > 0) {
        for (int64_t i = 0; i < B && !avsr_ctx_failed(ctx); i++)
            if (teacher->enc_lengths[i] != out->enc_lengths[i])
                avsr_ctx_fail(ctx, "model: enc_l1: clip %lld has %lld encoder frames, the "
                              "teacher's %lld (the two must see clips of the same length)",
                              (long long)i, (long long)out->enc_lengths[i],
                              (long long)teacher->enc_lengths[i]);
        ls->enc_l1 = l1_valid(ctx, "enc_l1", out->enc, teacher->enc, out->enc_lengths, 1);
        add_term(ctx, &ls->total, ls->enc_l1, w->enc_l1);
    }
    return avsr_ctx_failed(ctx) ? -1 : 0;
}

int avsr_model_forward(avsr_ctx *ctx, const avsr_model *m, const avsr_model_input *b,
                       avsr_model_out *out)
{
    const avsr_model_loss_w hybrid = {.hybrid = 1.0};
    return forward_impl(ctx, m, b, b->targets ? &hybrid : NULL, NULL, out);
}

int avsr_model_forward_losses(avsr_ctx *ctx, const avsr_model *m, const avsr_model_input *in,
                              const avsr_model_loss_w *w, const avsr_model_teacher_out *teacher,
                              avsr_model_out *out)
{
    const avsr_model_loss_w hybrid = {.hybrid = 1.0};
    return forward_impl(ctx, m, in, w ? w : &hybrid, teacher, out);
}

/* ---- teacher ------------------------------------------------------------- */

/* Attention greedy decoding of all B clips at once (the cached decoder):
 * tokens into tok [B, cap] (cap = max enc length), lengths into n. */
static int greedy_att(avsr_ctx *ctx, const avsr_model *m, avsr_tensor *enc, const int64_t *elen,
                      int64_t *tok, int64_t cap, int64_t *n)
{
    int64_t B = enc->shape[0], V = m->cfg.vocab, eos = V - 1;
    avsr_tensor *mem = m->has_proj_decoder ? avsr_nn_linear_forward(ctx, &m->proj_decoder, enc)
                                           : enc;
    if (!mem)
        return -1;
    avsr_decoder_cache *cache = avsr_decoder_cache_create(&m->dec, avsr_ctx_error(ctx));
    bool *done = calloc((size_t)B, sizeof *done);
    int64_t *pre = malloc(sizeof *pre * (size_t)(B * (cap + 1)));
    if (!cache || !done || !pre) {
        if (!avsr_ctx_failed(ctx))
            avsr_ctx_fail(ctx, "model: teach: out of memory for greedy decoding");
        goto out;
    }
    int64_t left = 0;
    for (int64_t b = 0; b < B; b++) {
        n[b] = 0;
        done[b] = elen[b] < 1;
        left += !done[b];
    }
    for (int64_t l = 1; left > 0 && l <= cap; l++) {
        /* prefixes [B, l]: <sos>, then the tokens so far (eos once done) */
        for (int64_t b = 0; b < B; b++) {
            pre[b * l] = eos;
            for (int64_t j = 1; j < l; j++)
                pre[b * l + j] = j - 1 < n[b] ? tok[b * cap + j - 1] : eos;
        }
        int64_t s[2] = {B, l};
        avsr_tensor *ys = avsr_tensor_wrap(ctx, AVSR_I64, 2, s, pre);
        avsr_tensor *lp = ys ? avsr_decoder_step(ctx, &m->dec, cache, ys, mem, elen) : NULL;
        if (!lp)
            goto out;
        const float *p = avsr_f32(lp);
        for (int64_t b = 0; b < B; b++) {
            if (done[b])
                continue;
            int64_t best = 1; /* blank (0) is never a decoder output */
            for (int64_t v = 2; v < V; v++)
                if (p[b * V + v] > p[b * V + best])
                    best = v;
            if (best == eos) {
                done[b] = true;
            } else {
                tok[b * cap + n[b]++] = best;
                done[b] = n[b] >= elen[b];
            }
            left -= done[b];
        }
    }
out:
    avsr_decoder_cache_free(cache);
    free(done);
    free(pre);
    return avsr_ctx_failed(ctx) ? -1 : 0;
}

int avsr_model_teach(avsr_ctx *ctx, const avsr_model *teacher, const avsr_model_input *clean,
                     bool want_tokens, avsr_model_teacher_out *out)
{
    memset(out, 0, sizeof *out);
    if (avsr_ctx_failed(ctx))
        return -1;
    if (clean->video) {
        avsr_ctx_fail(ctx, "model: teach: the teacher sees the clean audio only, but the input "
                      "has video");
        return -1;
    }
    if (!clean->audio) {
        avsr_ctx_fail(ctx, "model: teach: the input has no (clean) audio");
        return -1;
    }
    bool grad = avsr_ctx_set_grad(ctx, false), training = avsr_ctx_set_training(ctx, false);
    int64_t B = clean->B;
    avsr_model_input in = *clean;
    in.targets = NULL;
    in.target_lengths = NULL;
    in.max_target = 0;
    out->enc_lengths = arena_i64(ctx, B > 0 ? B : 1);
    mel_info info;
    out->enc = out->enc_lengths ? encode(ctx, teacher, &in, out->enc_lengths, &info) : NULL;
    if (out->enc) {
        out->mel = info.mel;
        if (want_tokens) {
            int64_t cap = out->enc->shape[1] > 0 ? out->enc->shape[1] : 1;
            int64_t *tok = arena_i64(ctx, B * cap), *n = arena_i64(ctx, B);
            if (tok && n) {
                if (teacher->cfg.use_decoder) {
                    greedy_att(ctx, teacher, out->enc, out->enc_lengths, tok, cap, n);
                } else {
                    avsr_tensor *lp = avsr_model_ctc_log_probs(ctx, teacher, out->enc);
                    int *lens = avsr_ctx_alloc(ctx, sizeof *lens * (size_t)B);
                    int *ol = avsr_ctx_alloc(ctx, sizeof *ol * (size_t)B);
                    if (lp && lens && ol) {
                        for (int64_t b = 0; b < B; b++)
                            lens[b] = (int)out->enc_lengths[b];
                        if (avsr_ctc_greedy_batch(avsr_f32(lp), (int)B, (int)cap,
                                                  (int)teacher->cfg.vocab, lens, 0, tok, ol,
                                                  avsr_ctx_error(ctx)) == 0)
                            for (int64_t b = 0; b < B; b++)
                                n[b] = ol[b];
                    } else if (!avsr_ctx_failed(ctx)) {
                        avsr_ctx_fail(ctx, "model: teach: out of arena memory");
                    }
                }
            }
            if (!avsr_ctx_failed(ctx)) {
                int64_t mx = 1;
                for (int64_t b = 0; b < B; b++)
                    mx = n[b] > mx ? n[b] : mx;
                out->tokens = arena_i64(ctx, B * mx);
                out->token_lengths = n;
                out->max_tokens = mx;
                for (int64_t b = 0; out->tokens && b < B; b++)
                    for (int64_t j = 0; j < mx; j++)
                        out->tokens[b * mx + j] = j < n[b] ? tok[b * cap + j] : IGNORE_ID;
            }
        }
    }
    avsr_ctx_set_grad(ctx, grad);
    avsr_ctx_set_training(ctx, training);
    if (avsr_ctx_failed(ctx)) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    return 0;
}

/* ---- summary -------------------------------------------------------------- */

void avsr_model_count(const avsr_model *m, int mod, int64_t *trainable, int64_t *frozen)
{
    int64_t t = 0, f = 0;
    for (int i = 0; i < m->n_members[mod]; i++) {
        const avsr_tensor *x = m->members[mod][i];
        if (!(x->flags & AVSR_T_PARAM))
            continue; /* buffer */
        if (x->flags & AVSR_T_REQUIRES_GRAD)
            t += x->numel;
        else
            f += x->numel;
    }
    *trainable = t;
    *frozen = f;
}

static void fmt_count(char *buf, size_t n, int64_t v)
{
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)v);
    size_t len = strlen(raw), k = 0;
    for (size_t i = 0; i < len && k + 2 < n; i++) {
        buf[k++] = raw[i];
        size_t left = len - i - 1;
        if (left && left % 3 == 0 && k + 2 < n)
            buf[k++] = ',';
    }
    buf[k] = 0;
}

void avsr_model_summary(const avsr_model *m, const avsr_params *p, FILE *f)
{
    char a[32], b[32], c[32];
    int64_t st = 0, sf = 0;
    fprintf(f, "| %-16s | %15s | %15s | %15s |\n", "module", "trainable", "frozen", "total");
    fprintf(f, "|%s|%s:|%s:|%s:|\n", "------------------", "----------------",
            "----------------", "----------------");
    /* in data-flow order: the fusion module sits in front of everything */
    static const int order[AVSR_MOD_COUNT] = {AVSR_MOD_FUSION_MODULE, AVSR_MOD_VISUAL,
                                              AVSR_MOD_AUDIO,         AVSR_MOD_FUSION,
                                              AVSR_MOD_ENCODER,       AVSR_MOD_DECODER,
                                              AVSR_MOD_CTC};
    for (int k = 0; k < AVSR_MOD_COUNT; k++) {
        int mod = order[k];
        if (!m->n_members[mod])
            continue;
        int64_t t, fr;
        avsr_model_count(m, mod, &t, &fr);
        st += t;
        sf += fr;
        fmt_count(a, sizeof a, t);
        fmt_count(b, sizeof b, fr);
        fmt_count(c, sizeof c, t + fr);
        fprintf(f, "| %-16s | %15s | %15s | %15s |\n", MODULE_NAMES[mod], a, b, c);
    }
    fmt_count(a, sizeof a, st);
    fmt_count(b, sizeof b, sf);
    fmt_count(c, sizeof c, st + sf);
    fprintf(f, "| %-16s | %15s | %15s | %15s |\n", "total", a, b, c);
    if (p) {
        int64_t nb = 0, nbuf = 0;
        for (int i = 0; i < avsr_params_count(p); i++)
            if (avsr_params_is_buffer(p, i)) {
                nbuf++;
                nb += avsr_params_at(p, i)->numel;
            }
        fmt_count(a, sizeof a, nb);
        fprintf(f, "\n%d parameter tensors (%.2f M values), %lld buffers (%s values: batch-norm "
                   "statistics and counters)\n",
                avsr_params_count_trainable(p), (double)(st + sf) / 1e6, (long long)nbuf, a);
    }
}
