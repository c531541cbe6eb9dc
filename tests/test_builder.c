/* test_builder: the recipe `model:` builder (models/builder.h): bad sections
 * give exact messages with line:column; good ones give the documented
 * defaults and model variants (video-only, audio-only with each feature
 * type, early/late fusion, Transformer encoder, CTC-only, decoder width
 * projection), each built, run forward and checked for shapes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/builder.h"
#include "ops.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"

static int parse(const char *text, avsr_model_cfg *cfg, avsr_error *err)
{
    avsr_yaml *y = avsr_yaml_load_string("recipe.yaml", text, strlen(text), err);
    if (!y)
        return -1;
    avsr_ynode *model = avsr_ynode_get(avsr_yaml_root(y), "model");
    int rc = avsr_model_cfg_parse(y, model, 41, cfg, err);
    avsr_yaml_free(y);
    return rc;
}

static void bad(const char *text, const char *want)
{
    avsr_model_cfg cfg;
    avsr_error err = {0};
    int rc = parse(text, &cfg, &err);
    bool ok = rc < 0 && strcmp(err.msg, want) == 0;
    tap_ok(ok, "error: %s", want);
    if (!ok)
        tap_diag("got rc %d: '%s'", rc, err.msg);
}

static const struct {
    const char *yaml, *msg;
} BAD[] = {
    {"model:\n  video: {width: 16}\n  encoder: {dim: 64, heads: 4, ffn: 128}\n  lr: 3\n",
     "recipe.yaml:4:3: model: unknown key 'lr' (valid keys here include: video, encoder)"},
    {"model:\n  video: {width: sixteen}\n",
     "recipe.yaml:2:18: model.video.width: expected an integer, got 'sixteen'"},
    {"model:\n  video: {width: 0}\n",
     "recipe.yaml:2:18: model.video.width: 0 is out of range [1, 1024]"},
    {"model:\n  audio: {features: mfcc}\n",
     "recipe.yaml:2:21: model.audio.features: 'mfcc' is not one of: wave, logmel80, fbank104"},
    {"model:\n  video: {}\n  fusion: {type: add}\n",
     "recipe.yaml:3:11: model.fusion: given, but the model has only video (fusion needs video "
     "and audio)"},
    {"model:\n  audio: {}\n  ctc_weight: 1.0\n  decoder: {layers: 2}\n",
     "recipe.yaml:4:12: model.decoder: given, but ctc_weight is 1 (CTC only); remove the "
     "decoder or lower ctc_weight"},
    {"model:\n  audio: {}\n  ctc_weight: 0.3\n  decoder: none\n",
     "recipe.yaml:3:15: model.ctc_weight: 0.3 < 1 needs the attention decoder, but decoder is "
     "none"},
    {"model:\n  audio: {}\n  encoder: {dim: 100, heads: 3}\n",
     "recipe.yaml:3:30: model.encoder: dim 100 is not a multiple of heads 3"},
    {"model:\n  video: {width: 16}\n  audio: {features: logmel80}\n"
     "  fusion: {type: gated, position: early}\n  encoder: {dim: 144, heads: 4}\n",
     "recipe.yaml:4:18: model.fusion.type: gated needs equal feature sizes, got video 128 "
     "(8 x video.width) and audio 144"},
    {"model:\n  audio: {features: logmel80, width: 32}\n",
     "recipe.yaml:2:38: model.audio.width: only for features: wave"},
    {"model:\n  encoder: {dim: 64, heads: 4}\n",
     "recipe.yaml:2:3: model: needs a video or an audio section (or both)"},
    {"model:\n  audio: {}\n  encoder: {type: transformer, conv_kernel: 15}\n",
     "recipe.yaml:3:45: model.encoder.conv_kernel: only for type: conformer"},
    {"model:\n  audio: {}\n  encoder: {conv_kernel: 16}\n",
     "recipe.yaml:3:26: model.encoder.conv_kernel: 16 is even, expected an odd size"},
    {"model:\n  video: {depth: [2, 2, 2]}\n",
     "recipe.yaml:2:18: model.video.depth: expected 4 blocks-per-stage counts, got 3"},
    {"model:\n  video: {}\n  audio: {}\n  fusion: {type: add, hidden: 512}\n",
     "recipe.yaml:4:31: model.fusion.hidden: only for type: concat_mlp"},
    {"model:\n  audio: {}\n  ctc_weight: 1.5\n",
     "recipe.yaml:3:15: model.ctc_weight: 1.5 is out of range [0, 1]"},
    {"model:\n  audio: {}\n  ctc_weight: 1\n  label_smoothing: 0.1\n",
     "recipe.yaml:4:20: model.label_smoothing: only with an attention decoder (ctc_weight < 1)"},
    {"model:\n  video: [16, 32]\n",
     "recipe.yaml:2:10: model.video: expected a mapping or none, got a list"},
    {"model:\n  audio: {}\n  decoder: {dim: 96, heads: 5}\n",
     "recipe.yaml:3:29: model.decoder: dim 96 is not a multiple of heads 5"},
    {"model:\n  video: {}\n  audio: {}\n  fusion: {modality_dropout: 1.2}\n",
     "recipe.yaml:4:30: model.fusion.modality_dropout: 1.2 is out of range [0, 1]"},
    {"model:\n  audio: {spec_augment: {time_masks: 2}}\n",
     "recipe.yaml:2:25: model.audio.spec_augment: only for features: logmel80"},
    {"model:\n  audio: {features: logmel80, spec_augment: {time_mask: 2}}\n",
     "recipe.yaml:2:46: model.audio.spec_augment: unknown key 'time_mask'"},
    /* ASR2AVSR: the fusion module and the Whisper-style mel padding */
    {"model:\n  video: {}\n  audio: {features: logmel80}\n  fusion_module: {}\n",
     "recipe.yaml:4:18: model.fusion_module: given together with model.video: the fusion "
     "module takes the video itself (remove the video section)"},
    {"model:\n  audio: {features: wave}\n  fusion_module: {}\n",
     "recipe.yaml:3:18: model.fusion_module: needs an audio section with features: logmel80 "
     "(it enhances the log-mel), got wave"},
    {"model:\n  audio: {features: logmel80}\n  fusion_module: {cross_attention: {window: 10}}\n",
     "recipe.yaml:3:45: model.fusion_module.cross_attention.window: 10 is not a multiple of 4 "
     "(windows overlap by half and are stitched by quarters)"},
    {"model:\n  audio: {features: logmel80}\n  fusion_module: {cross_attention: {hop: 80}}\n",
     "recipe.yaml:3:37: model.fusion_module.cross_attention: unknown key 'hop'"},
    {"model:\n  audio: {features: logmel80}\n"
     "  fusion_module: {video_cnn: {blocks: [[1, 1], [1, 1], [1, 1]]}}\n",
     "recipe.yaml:3:39: model.fusion_module.video_cnn.blocks: expected 4 stages of [2D blocks, "
     "3D blocks], got 3"},
    {"model:\n  audio: {features: logmel80}\n"
     "  fusion_module: {video_cnn: {blocks: [[1, 1], [1, 1], [1, 1], 2]}}\n",
     "recipe.yaml:3:64: model.fusion_module.video_cnn.blocks[3]: expected [2D blocks, 3D "
     "blocks], e.g. [2, 1]"},
    {"model:\n  audio: {features: logmel80}\n  fusion_module: {audio_cnn: {blocks: 1}}\n",
     "recipe.yaml:3:39: model.fusion_module.audio_cnn.blocks: 1 is out of range [2, 64]"},
    {"model:\n  audio: {features: logmel80}\n  fusion_module: [1]\n",
     "recipe.yaml:3:18: model.fusion_module: expected a mapping or none, got a list"},
    {"model:\n  audio: {features: wave, pad_frames: 3000}\n",
     "recipe.yaml:2:39: model.audio.pad_frames: only for features: logmel80"},
    {"model:\n  audio: {features: logmel80, pad_frames: 5}\n",
     "recipe.yaml:2:43: model.audio.pad_frames: 5, expected 0 (off) or at least 7 (the "
     "subsampling's minimum)"},
};

/* Build, finalise, run a forward pass with targets on a tiny batch. */
static void variant(avsr_ctx *ctx, const char *name, const char *text, int64_t want_enc_T,
                    bool want_dec)
{
    avsr_error err = {0};
    avsr_yaml *y = avsr_yaml_load_string("recipe.yaml", text, strlen(text), &err);
    avsr_params *p = avsr_params_create();
    avsr_model *m = NULL;
    if (!y || avsr_model_build(y, avsr_ynode_get(avsr_yaml_root(y), "model"), 41, &m, p, &err) < 0 ||
        avsr_params_finalize(p, &err) < 0 || avsr_params_init(p, 5, &err) < 0) {
        tap_ok(false, "%s: builds (%s)", name, err.msg);
        avsr_yaml_free(y);
        avsr_params_destroy(p);
        return;
    }
    avsr_yaml_free(y);
    int64_t B = 2, T = 6;
    int64_t sv[4] = {B, T, 24, 24}, sa[2] = {B, T * 640};
    avsr_tensor *video = m->cfg.use_video ? tu_rand(4, sv, 11, -1.f, 1.f, false) : NULL;
    avsr_tensor *audio = m->cfg.audio ? tu_rand(2, sa, 12, -1.f, 1.f, false) : NULL;
    int64_t lengths[2] = {6, 5}, targets[6] = {5, 6, 7, 8, 9, 10}, tl[2] = {3, 2};
    avsr_model_input b = {.B = B, .video = video, .audio = audio, .lengths = lengths,
                    .targets = targets, .target_lengths = tl, .max_target = 3};
    avsr_ctx_set_training(ctx, true);
    avsr_ctx_set_grad(ctx, true);
    avsr_model_out o;
    int rc = avsr_model_forward(ctx, m, &b, &o);
    bool ok = rc == 0 && o.enc->shape[1] == want_enc_T && o.enc->shape[2] == avsr_model_dim(m) &&
              o.ctc_logits->shape[2] == 41 && (o.dec_logits != NULL) == want_dec &&
              avsr_backward(ctx, o.loss.total, NULL) == 0;
    tap_ok(ok, "%s: forward + backward, encoder [2, %lld, %lld], %lld parameters%s%s", name,
           (long long)(rc == 0 ? o.enc->shape[1] : -1), (long long)avsr_model_dim(m),
           (long long)avsr_params_numel(p), rc ? ": " : "", rc ? avsr_ctx_errmsg(ctx) : "");
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
    avsr_tensor_free(video);
    avsr_tensor_free(audio);
    avsr_model_free(m);
    avsr_params_destroy(p);
}

static void defaults(void)
{
    avsr_model_cfg c;
    avsr_error err = {0};
    int rc = parse("model:\n  video: {}\n  audio: {}\n", &c, &err);
    tap_ok(rc == 0 && c.video.width == 64 && c.video.roi == 88 && c.video.depth[3] == 2 &&
               c.wave.width == 64 && c.wave.pool == 20 && c.fusion == AVSR_FUSION_CONCAT_MLP &&
               c.fusion_pos == AVSR_FUSION_LATE && c.fusion_hidden == 8192 &&
               c.encoder.layers == 12 && c.encoder.d_model == 768 && c.encoder.heads == 12 &&
               c.encoder.ffn == 3072 && c.encoder.kernel == 31 && c.decoder.layers == 6 &&
               c.decoder.d_model == 768 && c.use_decoder && c.ctc_weight == 0.1f &&
               c.label_smoothing == 0.1f && c.encoder.dropout == 0.1f,
           "defaults are Auto-AVSR's (%s)", err.msg);
    avsr_model_cfg f;
    avsr_avfm_cfg paper;
    avsr_avfm_cfg_default(&paper);
    rc = parse("model:\n  audio: {features: logmel80, pad_frames: 3000}\n  fusion_module: {}\n",
               &f, &err);
    const avsr_avfm_cfg *m = &f.fusion_module;
    tap_ok(rc == 0 && f.use_fusion_module && !f.use_video && f.mel_pad_frames == 3000 &&
               m->spec_channels == 128 && m->spec_layers == 7 && m->lip_stem == 64 &&
               m->lip_channels[2] == 256 && m->lip_blocks[3][0] == 3 && m->lip_blocks[3][1] == 1 &&
               m->lip_inner == 64 && m->d_model == 80 && m->heads == 12 && m->layers == 12 &&
               m->window == 160 && m->video_scale == 1.0f && paper.video_scale < 0.004f,
           "fusion_module: {} is the paper's configuration, with video_scale 1 (the loader's "
           "video) %s", err.msg);
    rc = parse("model:\n  audio: {features: logmel80}\n"
               "  fusion_module:\n"
               "    audio_cnn: {channels: 16, blocks: 3}\n"
               "    video_cnn: {stem: 8, channels: [8, 16, 32, 48], blocks: [[1, 0], [2, 1], [1, 2],"
               " [1, 1]], inner: 12}\n"
               "    cross_attention: {layers: 3, heads: 4, dim: 40, window: 80}\n"
               "    video_scale: 0.00392156862745098\n",
               &f, &err);
    tap_ok(rc == 0 && m->spec_channels == 16 && m->spec_layers == 3 && m->lip_stem == 8 &&
               m->lip_channels[3] == 48 && m->lip_blocks[1][0] == 2 && m->lip_blocks[2][1] == 2 &&
               m->lip_inner == 12 && m->layers == 3 && m->heads == 4 && m->d_model == 40 &&
               m->window == 80 && fabsf(m->video_scale - 1.0f / 255.0f) < 1e-9f,
           "fusion_module: every key reaches the configuration %s", err.msg);
}

int main(void)
{
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++)
        bad(BAD[i].yaml, BAD[i].msg);
    defaults();
    avsr_ctx *ctx = tu_ctx();
    const char *enc = "  encoder: {layers: 1, dim: 32, heads: 2, ffn: 48, conv_kernel: 3}\n";
    char text[1024];
#define V(name, body, T, dec)                                   \
    do {                                                        \
        snprintf(text, sizeof text, "model:\n%s%s", body, enc); \
        variant(ctx, name, text, T, dec);                       \
    } while (0)
    V("video only", "  video: {width: 4, depth: [1, 1, 1, 1], roi: 24}\n"
                    "  decoder: {layers: 1}\n", 6, true);
    V("audio wave, CTC only", "  audio: {width: 4, depth: [1, 1, 1, 1]}\n  ctc_weight: 1\n", 6,
      false);
    V("audio logmel80 + SpecAugment", "  audio: {features: logmel80, subsample_channels: 8,"
                                      " spec_augment: {time_masks: 1}}\n"
                                      "  decoder: {layers: 1, dim: 16, heads: 2}\n", 5, true);
    V("audio fbank104", "  audio: {features: fbank104}\n  decoder: {layers: 1}\n", 6, true);
    V("early concat_mlp", "  video: {width: 4, depth: [1, 1, 1, 1], roi: 24}\n"
                          "  audio: {features: logmel80, subsample_channels: 4}\n"
                          "  fusion: {position: early, hidden: 24, dim: 20, norm: layernorm}\n"
                          "  decoder: {layers: 1}\n", 5, true);
    V("early gated", "  video: {width: 4, depth: [1, 1, 1, 1], roi: 24}\n"
                     "  audio: {width: 4, depth: [1, 1, 1, 1]}\n"
                     "  fusion: {type: gated, position: early, modality_dropout: 0.5}\n"
                     "  decoder: {layers: 1}\n", 6, true);
    V("late add", "  video: {width: 4, depth: [1, 1, 1, 1], roi: 24}\n"
                  "  audio: {features: fbank104}\n  fusion: {type: add}\n"
                  "  decoder: {layers: 1}\n", 6, true);
    snprintf(text, sizeof text, "model:\n  audio: {width: 4, depth: [1, 1, 1, 1]}\n"
                                "  encoder: {type: transformer, layers: 1, dim: 32, heads: 2, ffn: 48}\n"
                                "  decoder: {layers: 1}\n");
    variant(ctx, "transformer encoder", text, 6, true);
    avsr_ctx_destroy(ctx);
    return tap_done();
}
