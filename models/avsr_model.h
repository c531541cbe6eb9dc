/* avsr_model: the whole audio-visual speech recognition model, assembled
 * from the frontends, fusion, encoder, CTC head and attention decoder.
 *
 *   video [B, T, H, W] -> visual frontend (Conv3d stem + ResNet, 8C)   ]
 *   audio [B, N] 16 kHz -> audio frontend:                             ] per
 *       wave:     ResNet1D on the waveform (8w, 25 Hz)                 ] modality
 *       logmel80: avsr_op_logmel_whisper (80 x 100 Hz) [-> SpecAugment]
 *                 -> Conv2dSubsampling (/4 -> 25 Hz, d)
 *       fbank104: Kaldi fbank 26 bins -> stack 4 frames (104, 25 Hz)
 *                 -> per-frame layer norm (no affine) -> Linear(104 -> d)
 *   fusion, when both modalities exist:
 *       LATE  (Auto-AVSR e2e_asr_conformer_av.py): one encoder per modality
 *             ("encoder" on video, "aux_encoder" on audio), then fusion of
 *             the two encoder outputs (concat+MLP to d, add, or gated);
 *       EARLY (AV-HuBERT / torchaudio style): fusion of the frontend outputs,
 *             then one shared encoder.
 *   encoder: Conformer or pre-LN Transformer (models/conformer.h), with an
 *       input Linear "embed.0" when its input is not already d-dimensional.
 *   CTC head: dropout -> ctc.ctc_lo Linear(d -> V).
 *   attention decoder (optional; "proj_decoder" Linear(d -> d_dec) when the
 *       decoder width differs, as in Auto-AVSR).
 *
 * ASR2AVSR composition (use_fusion_module; Simic et al., reference notes
 * §3): an audio-only log-mel ASR (logmel80 + Conv2dSubsampling + encoder +
 * decoder + CTC, no visual frontend) with the ASR2AVSR fusion module
 * (models/av_fusion_module.h) in front of it:
 *       mel = logmel(audio) [B, 80, Tm'] -> trimmed / zero-padded to
 *             Tm = 4 T (T = the video tensor's frames) -> [SpecAugment]
 *       -> fusion_module(mel, video) -> enhanced mel [B, 80, Tm], frames
 *          beyond a clip's valid length set to 0 -> the ASR as above.
 *   A batch without video bypasses the module: the ASR runs on the plain
 *   log-mel, so one model trains first as a plain ASR on clean audio and
 *   later, with video, as ASR2AVSR. The video goes to the module only
 *   (multiplied by fusion_module.video_scale: 1 for the loader's
 *   normalised video).
 *   mel_pad_frames > 0 (Whisper, whose encoder always sees 30 s = 3000
 *   frames; ASR2AVSR pads the enhanced mel so): the ASR input mel is padded
 *   to that many frames, with 0 in training and the clip's minimum input
 *   log-mel value in evaluation (ASR2AVSR's rule), and the ASR treats all of
 *   them as valid (its lengths are mel_pad_frames). A clip longer than that
 *   is an error. Our own ASR does not need it (off by default).
 *
 * Losses (avsr_model_forward_losses, weights avsr_model_loss_w):
 *   total = hybrid (w CTC + (1 - w) att) + ctc CTC + dec_ce att
 *         + mel_l1 L1(mel, teacher mel) + enc_l1 L1(enc, teacher enc)
 *   with w = cfg.ctc_weight;
 *       CTC: sum over utterances (zero_infinity) / B    (Auto-AVSR CTC module)
 *       att: ESPnet LabelSmoothingLoss(normalize_length=False), i.e.
 *       KL to the smoothed target (1 - eps on the target, eps / (V - 1)
 *       elsewhere) summed over tokens / B (eps = cfg.label_smoothing). The
 *       targets are whatever the batch holds (transcripts or a teacher's
 *       greedy tokens). accuracy = th_accuracy (argmax over non-padding
 *       decoder targets, <eos> included).
 *       L1: mean |x - teacher| over the valid elements only: the first
 *       mel_lengths[b] frames x 80 bins of every clip (the ASR input mel:
 *       the enhanced mel when the fusion module ran), and the first
 *       enc_lengths[b] frames x d of the encoder output. (ASR2AVSR averages
 *       per utterance, then over the batch; the two agree when every clip
 *       has the same length, and ours does not let padding dilute it.)
 *   avsr_model_forward is the hybrid term alone (hybrid = 1).
 * Teacher (avsr_model_teach): a frozen model from another stage, run in
 * evaluation mode without gradients on the clean audio and no video.
 *
 * Token ids: blank 0, sos = eos = V - 1, padding of targets -1 (ignore).
 *
 * Parameter names (the Auto-AVSR AV state dict, reference §1 item 13):
 *   encoder.frontend.*        visual frontend (frontend3D.*, trunk.layer*)
 *                             (audio-only models: the wave or fbank frontend)
 *   encoder.embed.*           logmel80 subsampling (embed.conv.0/2, embed.out.0)
 *                             in audio-only models, otherwise embed.0 (Linear)
 *   encoder.encoders.{i}.*, encoder.after_norm.*   the (video) encoder
 *   aux_encoder.frontend.*, aux_encoder.embed.*, aux_encoder.encoders.{i}.*,
 *   aux_encoder.after_norm.*  LATE fusion: the audio branch
 *   encoder.audio_frontend.*  EARLY fusion: the audio frontend
 *   fusion.*                  fc1, bn1 | norm1, fc2 (concat_mlp); gate (gated)
 *   fusion_module.*           ASR2AVSR fusion module (the PyTorch names of
 *                             AV_Fusion: spec_frontend.*, video_frontend.*,
 *                             fusion_block.*); the ASR behind it keeps the
 *                             audio-only names (encoder.embed.*, encoder.*)
 *   proj_decoder.*            only when the decoder width differs
 *   decoder.*                 embed.0, decoders.{i}.*, after_norm, output_layer
 *   ctc.ctc_lo.{weight,bias}
 *
 * Missing modality: a NULL video or audio in the batch skips that branch;
 * fusion (models/fusion.h) replaces its features by zeros (evaluation of
 * audio-only / video-only inputs on an AV model). Modality dropout (training)
 * is the fusion module's.
 *
 * Dropout purposes: encoder 0.., aux_encoder 2048.., decoder 4096..,
 * CTC input 8192. */
#ifndef AVSR_MODELS_AVSR_MODEL_H
#define AVSR_MODELS_AVSR_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "audio_frontend.h"
#include "av_fusion_module.h"
#include "conformer.h"
#include "decoder.h"
#include "fusion.h"
#include "nn.h"
#include "op_features.h"
#include "visual_frontend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum avsr_audio_kind {
    AVSR_AUDIO_NONE = 0,
    AVSR_AUDIO_WAVE = 1,     /* ResNet1D on the waveform */
    AVSR_AUDIO_LOGMEL80 = 2, /* Whisper log-mel + Conv2d subsampling */
    AVSR_AUDIO_FBANK104 = 3  /* Kaldi fbank x 4 stacked + Linear */
} avsr_audio_kind;

typedef enum avsr_fusion_pos { AVSR_FUSION_LATE = 0, AVSR_FUSION_EARLY = 1 } avsr_fusion_pos;

typedef enum avsr_encoder_kind {
    AVSR_ENCODER_CONFORMER = 0,
    AVSR_ENCODER_TRANSFORMER = 1
} avsr_encoder_kind;

/* Modules of the parameter summary. */
enum avsr_model_module {
    AVSR_MOD_VISUAL = 0,
    AVSR_MOD_AUDIO,
    AVSR_MOD_FUSION,
    AVSR_MOD_ENCODER,
    AVSR_MOD_DECODER,
    AVSR_MOD_CTC,
    AVSR_MOD_FUSION_MODULE,
    AVSR_MOD_COUNT
};

/* "visual frontend", "audio frontend", "fusion", "encoder", "decoder", "ctc",
 * "fusion module" */
const char *avsr_model_module_name(int mod);

typedef struct avsr_model_cfg {
    int64_t vocab;                      /* V (blank 0, sos = eos = V - 1) */
    bool use_video;
    avsr_visual_frontend_cfg video;
    avsr_audio_kind audio;
    avsr_audio_resnet1d_cfg wave;       /* AVSR_AUDIO_WAVE */
    int subsample_channels;             /* LOGMEL80: conv channels (0 = d) */
    avsr_specaug_cfg specaug;           /* LOGMEL80, training only; all 0 = off */
    avsr_fusion_pos fusion_pos;         /* both modalities only */
    avsr_fusion_kind fusion;
    avsr_fusion_norm fusion_norm;       /* CONCAT_MLP */
    int64_t fusion_hidden;              /* CONCAT_MLP hidden size */
    int64_t fusion_dim;                 /* EARLY + CONCAT_MLP output (0 = d) */
    float p_modality, p_audio;          /* modality dropout */
    avsr_encoder_kind encoder_kind;
    avsr_conformer_cfg encoder;         /* idim and purpose_base are set by the model */
    bool use_decoder;
    avsr_decoder_cfg decoder;           /* vocab is set by the model */
    float ctc_weight;                   /* w in [0, 1]; 1 = CTC only (no decoder) */
    float ctc_dropout;                  /* dropout before ctc_lo */
    float label_smoothing;              /* ESPnet lsm_weight */
    bool use_fusion_module;             /* ASR2AVSR: needs audio LOGMEL80, no video */
    avsr_avfm_cfg fusion_module;        /* n_mels must be 80 */
    int64_t mel_pad_frames;             /* LOGMEL80: pad the ASR input mel (0 = off;
                                         * Whisper: 3000) */
} avsr_model_cfg;

/* Auto-AVSR's AV model (audio wave + video, late concat+MLP fusion with
 * hidden 8192, Conformer 12 x 768 / 12 heads / FFN 3072 / kernel 31, decoder
 * 6 x 768, ctc_weight 0.1, label smoothing 0.1, dropouts 0.1). */
void avsr_model_cfg_default(avsr_model_cfg *c, int64_t vocab);

typedef struct avsr_model {
    avsr_model_cfg cfg;
    avsr_visual_frontend vfe;
    avsr_audio_resnet1d afe_wave;
    avsr_conv2d_subsampling afe_sub;
    avsr_audio_fbank_proj afe_fbank;
    avsr_fusion fusion;
    avsr_conformer_encoder enc;     /* "encoder" */
    avsr_conformer_encoder aux_enc; /* "aux_encoder" (LATE fusion) */
    bool has_aux, has_fusion, has_proj_decoder;
    avsr_nn_linear proj_decoder;
    avsr_decoder dec;
    avsr_nn_linear ctc_lo;
    avsr_avfm fm;                   /* "fusion_module" (cfg.use_fusion_module) */
    /* the tensors each module registered (for the summary) */
    avsr_tensor **members[AVSR_MOD_COUNT];
    int n_members[AVSR_MOD_COUNT];
} avsr_model;

/* Register every parameter in p (not finalized; the caller finalizes and
 * initialises, or only counts: nothing is allocated for values before
 * avsr_params_finalize). Checks the configuration; errors name the field. */
int avsr_model_create(const avsr_model_cfg *cfg, avsr_params *p, avsr_model **out,
                      avsr_error *err);
void avsr_model_free(avsr_model *m);

/* Encoder output size d. */
int64_t avsr_model_dim(const avsr_model *m);

/* One batch. Lengths are in 25 Hz frames for both modalities: clip b has
 * lengths[b] video frames and lengths[b] * 640 audio samples (at most N).
 * targets: [B, max_target] row-major token ids (1 .. V-2), row b valid for
 * its first target_lengths[b] entries; NULL when there are no targets. */
typedef struct avsr_model_input {
    int64_t B;
    avsr_tensor *video;            /* f32 [B, T, H, W] normalised, or NULL */
    avsr_tensor *audio;            /* f32 [B, N] normalised 16 kHz, or NULL */
    const int64_t *lengths;        /* [B] frames, or NULL (all frames valid) */
    const int64_t *targets;        /* [B, max_target] or NULL */
    const int64_t *target_lengths; /* [B] */
    int64_t max_target;
    int64_t pad_target;            /* decoder sequences padded to at least this
                                    * many labels (0: the longest in the batch;
                                    * avsr_decoder_make_inputs) */
} avsr_model_input;

typedef struct avsr_losses {
    avsr_tensor *total;  /* [1] the weighted sum (what backward starts from) */
    avsr_tensor *ctc;    /* [1], or NULL when no term contains it (hybrid, ctc) */
    avsr_tensor *att;    /* [1], or NULL without decoder or when no term contains
                          * it (hybrid, dec_ce) */
    avsr_tensor *mel_l1; /* [1] or NULL when the term is off */
    avsr_tensor *enc_l1; /* [1] or NULL when the term is off */
    double att_acc;      /* attention accuracy (0 without decoder) */
    int64_t att_count;   /* tokens counted for the accuracy */
} avsr_losses;

typedef struct avsr_model_out {
    avsr_tensor *enc;       /* [B, T, d] encoder output (after late fusion) */
    int64_t *enc_lengths;   /* [B] (arena) */
    avsr_tensor *ctc_logits;/* [B, T, V] */
    avsr_tensor *dec_logits;/* [B, L + 1, V] (targets and decoder) or NULL */
    avsr_tensor *mel;       /* logmel80 models: [B, 80, F] the ASR's input
                             * log-mel (enhanced when the fusion module ran;
                             * after mel_pad_frames padding), else NULL */
    int64_t *mel_lengths;   /* [B] valid (unpadded) frames of mel, or NULL */
    bool fused;             /* the fusion module ran (the batch had video) */
    avsr_losses loss;       /* filled when targets or L1 terms are given */
} avsr_model_out;

/* Weights of the loss terms (0 = term off):
 *   total = hybrid * (w * CTC + (1 - w) * att) + ctc * CTC + dec_ce * att
 *         + mel_l1 * L1(mel, teacher mel) + enc_l1 * L1(enc, teacher enc)
 * w = cfg.ctc_weight. CTC and att as avsr_model_forward (sum over an
 * utterance, / B); L1: mean over the valid (unpadded) elements (see the
 * top of this file). */
typedef struct avsr_model_loss_w {
    double hybrid, ctc, dec_ce, mel_l1, enc_l1; /* 0 = term off */
} avsr_model_loss_w;

/* What a teacher gives (arena memory, valid until avsr_ctx_reset). */
typedef struct avsr_model_teacher_out {
    avsr_tensor *mel;        /* [B, 80, F] log-mel of the clean audio the teacher saw (or NULL) */
    avsr_tensor *enc;        /* [B, T, d] teacher encoder output */
    int64_t *enc_lengths;    /* [B] */
    int64_t *tokens;         /* [B, max_tokens] teacher greedy tokens (NULL unless asked) */
    int64_t *token_lengths;  /* [B] */
    int64_t max_tokens;
} avsr_model_teacher_out;

/* Encoder output only (for feature losses): [B, T, d], lengths into
 * enc_lengths [B] (caller memory) when not NULL. */
avsr_tensor *avsr_model_encode(avsr_ctx *ctx, const avsr_model *m, const avsr_model_input *b,
                               int64_t *enc_lengths);
/* CTC logits of an encoder output: [B, T, V]. */
avsr_tensor *avsr_model_ctc_logits(avsr_ctx *ctx, const avsr_model *m, avsr_tensor *enc);
/* Everything: encoder, CTC logits and, with targets, the decoder and the
 * losses. Returns 0, or -1 with the context's error set. */
int avsr_model_forward(avsr_ctx *ctx, const avsr_model *m, const avsr_model_input *b,
                       avsr_model_out *out);
/* Forward with the weighted loss terms of w (NULL = hybrid 1). teacher
 * (avsr_model_teach's output) may be NULL when mel_l1 == enc_l1 == 0.
 * CTC / att terms need targets; mel_l1 needs a fusion-module model and a
 * teacher mel. Fills out as avsr_model_forward does, and out->loss with
 * every term that is on (mel_l1 / enc_l1 [1] or NULL). Returns 0, or -1
 * with the context's error set. */
int avsr_model_forward_losses(avsr_ctx *ctx, const avsr_model *m, const avsr_model_input *in,
                              const avsr_model_loss_w *w, const avsr_model_teacher_out *teacher,
                              avsr_model_out *out);

/* Teacher pass: the frozen teacher model on the clean audio (clean->video
 * must be NULL; the fusion module, if any, is bypassed), run in evaluation
 * mode without gradients whatever the context's modes (restored after).
 * Fills out->mel (the teacher's ASR input log-mel; NULL unless logmel80),
 * out->enc / enc_lengths and, with want_tokens, greedy tokens: attention
 * greedy decoding when the teacher has a decoder (from <sos>, argmax over
 * 1..V-1 -- blank is never picked --, until <eos> or enc_lengths[b]
 * tokens), else CTC greedy (argmax per frame, repeats collapsed, blanks
 * dropped). tokens [B, max_tokens] row-major, padded with -1, max_tokens >=
 * 1. Memory from the ctx arena (valid until avsr_ctx_reset). Returns 0, or
 * -1 with the context's error set. */
int avsr_model_teach(avsr_ctx *ctx, const avsr_model *teacher, const avsr_model_input *clean,
                     bool want_tokens, avsr_model_teacher_out *out);

/* log_softmax of the CTC logits [B, T, V] (for search). */
avsr_tensor *avsr_model_ctc_log_probs(avsr_ctx *ctx, const avsr_model *m, avsr_tensor *enc);

/* Parameter counts of module mod: trainable and frozen (buffers excluded). */
void avsr_model_count(const avsr_model *m, int mod, int64_t *trainable, int64_t *frozen);
/* The table: one row per module present, then the total. */
void avsr_model_summary(const avsr_model *m, const avsr_params *p, FILE *f);

#ifdef __cplusplus
}
#endif

#endif
