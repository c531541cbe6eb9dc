/* augment: per-sample audio and video augmentation (Auto-AVSR / AV-HuBERT
 * style): noise at a target SNR, generated and babble noise, crops, flips,
 * adaptive time masks, modality dropout, normalisation, and the configured
 * chain that turns one decoded sample (video uint8 [T, H, W], audio int16)
 * into model input (float [T, crop_h, crop_w], float [n]).
 *
 * Every random choice comes from a Philox stream keyed by (seed, epoch,
 * sample id, purpose) (runtime/rng.h), never by rank or thread, so a sample
 * is augmented the same way whatever batch or rank it lands in and in
 * whatever order samples are processed. Streams used:
 *   CROP       crop offsets            FLIP        flip decision
 *   TIME_MASK  sub-stream 0: video masks, sub-stream 1: audio masks
 *   NOISE      sub-stream 0: apply / file / SNR / offset,
 *              sub-stream 1: generated (white, pink) noise,
 *              sub-stream 2: babble offsets
 *   MODALITY   modality dropout
 * (sub-stream s = blocks from s * 2^40 on; see avsr_aug_stream).
 * Formulas and defaults: docs/data/augment.md. */
#ifndef AVSR_AUGMENT_H
#define AVSR_AUGMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the random streams of one sample are keyed by. */
typedef struct avsr_aug_key {
    uint64_t seed, epoch, sample_id;
} avsr_aug_key;

/* Stream (seed, epoch, sample id, purpose), positioned at sub-stream `sub`. */
void avsr_aug_stream(avsr_rng *r, const avsr_aug_key *key, uint32_t purpose, uint32_t sub);

/* ---- audio --------------------------------------------------------------- */

/* int16 -> float: x / 32768 (torchaudio.load's scale). */
void avsr_audio_from_i16(float *out, const int16_t *in, int64_t n);
/* Mean square over the whole buffer (double accumulation); 0 for n = 0. */
double avsr_power(const float *x, int64_t n);
/* In place: x = (x - mean) / sqrt(var + eps) over the whole waveform
 * (biased variance; F.layer_norm(x, x.shape, eps=eps)). */
void avsr_audio_normalize(float *x, int64_t n, float eps);

/* y = x + a * seg, seg[i] = noise[(offset + i) mod nn] (noise shorter than
 * the speech is tiled), a = sqrt(Px / (Pn * 10^(snr_db / 10))), P = mean
 * square over the whole utterance / segment (torchaudio add_noise).
 * snr_db = +INFINITY: y = x (no noise, a = 0). Silent speech (Px = 0) or
 * silent noise (Pn = 0): a = 0, y = x. y may equal x. *gain (may be NULL)
 * receives a. Errors: NaN or -inf SNR, empty noise, offset out of range. */
int avsr_mix_snr(float *y, const float *x, int64_t n, const float *noise, int64_t nn,
                 int64_t offset, double snr_db, double *gain, avsr_error *err);

#define AVSR_SNR_LIST_MAX 16

typedef struct avsr_noise_config {
    double prob;      /* probability of adding noise (default 1) */
    int n_snr;        /* > 0: SNR drawn uniformly from snr_list[0 .. n_snr) */
    double snr_list[AVSR_SNR_LIST_MAX]; /* dB; INFINITY = clean
                                         * (default -5 0 5 10 15 20 inf) */
    double snr_lo, snr_hi; /* n_snr == 0: SNR uniform in [lo, hi) (default 0 0) */
} avsr_noise_config;

/* Auto-AVSR training: prob 1, SNR from {-5, 0, 5, 10, 15, 20, inf}. */
void avsr_noise_config_default(avsr_noise_config *cfg);
/* One fixed SNR with probability 1 (evaluation; INFINITY = clean). */
void avsr_noise_config_fixed(avsr_noise_config *cfg, double snr_db);

typedef struct avsr_noise_pick {
    bool apply;     /* false: no noise for this sample */
    int file;       /* noise file index */
    int64_t offset; /* start sample in that file */
    double snr_db;
} avsr_noise_pick;

/* Draw (apply, file, SNR, offset) from NOISE sub-stream 0. The file is
 * uniform over n_files; the offset is uniform in [0, len - n_speech] when
 * the file is long enough (Auto-AVSR), else in [0, len) (tiled). */
int avsr_noise_draw(const avsr_noise_config *cfg, const avsr_aug_key *key, int64_t n_speech,
                    int n_files, const int64_t *file_lens, avsr_noise_pick *out,
                    avsr_error *err);

/* Generated noise (NOISE sub-stream 1), unit power. White: i.i.d. N(0, 1).
 * Pink: white noise through Paul Kellet's 7-pole 1/f filter (1/f power
 * within +-0.05 dB above fs / 4800, i.e. 3.3 Hz at 16 kHz), after 8192 discarded
 * warm-up samples, scaled to unit mean square over the buffer. */
void avsr_noise_white(float *out, int64_t n, const avsr_aug_key *key);
void avsr_noise_pink(float *out, int64_t n, const avsr_aug_key *key);

/* Babble: sum of k utterances, each read from a random offset (NOISE
 * sub-stream 2, uniform in [0, len)) and tiled to n samples, each scaled to
 * unit mean square first (silent ones add nothing); the sum is scaled to
 * unit mean square. Errors: k < 1, an empty utterance. */
int avsr_noise_babble(float *out, int64_t n, int k, const float *const *utts,
                      const int64_t *lens, const avsr_aug_key *key, avsr_error *err);

/* ---- video --------------------------------------------------------------- */

/* Crop offsets: random (torchvision RandomCrop: y uniform in [0, H - ch],
 * x in [0, W - cw], CROP stream) or centred (CenterCrop: round half to even
 * of (H - ch) / 2). Requires ch <= H, cw <= W. */
int avsr_crop_draw(const avsr_aug_key *key, int H, int W, int ch, int cw, bool random_crop,
                   int *y0, int *x0, avsr_error *err);
/* true with probability p (FLIP stream). */
bool avsr_flip_draw(const avsr_aug_key *key, double p);
/* uint8 [T, H, W] -> uint8 [T, ch, cw] at (y0, x0). */
int avsr_video_crop_u8(uint8_t *out, const uint8_t *in, int64_t T, int H, int W, int ch, int cw,
                       int y0, int x0, avsr_error *err);
/* In place horizontal flip of float [T, H, W]. */
void avsr_video_flip(float *x, int64_t T, int H, int W);
/* out = (in / 255 - mean) / std, n elements. */
void avsr_video_normalize(float *out, const uint8_t *in, int64_t n, float mean, float std);
/* Fused crop + optional flip + normalisation: uint8 [T, H, W] -> float
 * [T, ch, cw], out[t, i, j] = norm(in[t, y0 + i, x0 + (flip ? cw-1-j : j)]). */
int avsr_video_crop_normalize(float *out, const uint8_t *in, int64_t T, int H, int W, int ch,
                              int cw, int y0, int x0, bool flip, float mean, float std,
                              avsr_error *err);

/* ---- time masks and modality dropout ------------------------------------- */

/* Auto-AVSR AdaptiveTimeMask(window, stride) on x [len, inner] (masks whole
 * rows): n_mask = floor((len + stride - 0.1) / stride); for each mask draw
 * t, m uniform in [0, window) (TIME_MASK sub-stream `sub`); skip it when
 * len - t <= 0; draw start uniform in [0, len - t); skip it when t == 0;
 * set rows [start, min(start + m, len)) to `fill`. (As in Auto-AVSR, the
 * first draw only bounds the start and may skip the mask; the zeroed length
 * is the second draw.) *n_masks (may be NULL): masks applied; *masked (may
 * be NULL): rows zeroed (union of the spans). window 0 disables. */
int avsr_time_mask(float *x, int64_t len, int64_t inner, int64_t window, int64_t stride,
                   float fill, const avsr_aug_key *key, uint32_t sub, int64_t *n_masks,
                   int64_t *masked, avsr_error *err);

enum avsr_modality_drop { AVSR_KEEP_BOTH = 0, AVSR_DROP_AUDIO = 1, AVSR_DROP_VIDEO = 2 };
/* AV-HuBERT: with probability p_drop drop one modality: audio with
 * probability p_audio, else video (MODALITY stream). */
int avsr_modality_draw(const avsr_aug_key *key, double p_drop, double p_audio);

/* ---- the chain ----------------------------------------------------------- */

typedef struct avsr_augment_config {
    int crop_h, crop_w;      /* 88, 88 */
    bool random_crop;        /* train: true; eval: false (center) */
    double flip_prob;        /* 0 (Auto-AVSR); AV-HuBERT trains with 0.5 */
    int64_t vmask_window;    /* video time mask, frames: train 10, eval 0 (off) */
    int64_t vmask_stride;    /* 25 */
    int64_t amask_window;    /* audio time mask, samples: train 6400, eval 0 */
    int64_t amask_stride;    /* 16000 */
    float video_mean, video_std; /* 0.421, 0.165 */
    bool audio_norm;         /* true */
    float audio_eps;         /* 1e-8 */
    avsr_noise_config noise; /* train: Auto-AVSR list; eval: fixed +inf (clean) */
    double modality_prob;    /* 0 (AV-HuBERT noise configs: 0.5) */
    double modality_audio_prob; /* 0.5 */
    bool drop_audio, drop_video; /* forced (evaluation of one modality): false */
} avsr_augment_config;

/* Defaults for training (train = true) or evaluation. */
void avsr_augment_config_default(avsr_augment_config *cfg, bool train);

/* Noise waveforms supplied by the caller (files, babble, generated). */
typedef struct avsr_noise_bank {
    int n;
    const float *const *wav; /* [n] waveforms, 16 kHz float */
    const int64_t *len;      /* [n] lengths */
} avsr_noise_bank;

/* What the chain did to one sample (for logs and tests). */
typedef struct avsr_augment_report {
    int crop_y, crop_x;
    bool flipped;
    int64_t vmasks, vmasked;  /* video masks applied, frames masked */
    int64_t amasks, amasked;  /* audio masks applied, samples masked */
    bool noise;               /* noise added (false also when SNR = inf) */
    int noise_file;
    int64_t noise_offset;
    double snr_db;            /* drawn SNR (inf = clean); NAN when no draw */
    double noise_gain;        /* a in y = x + a n */
    bool audio_dropped, video_dropped;
} avsr_augment_report;

/* Apply the configured chain to one sample. Either modality may be absent
 * (NULL input, then its output is untouched).
 *   video: crop (random or centre) + flip + normalise in one pass ->
 *          time mask (fill = (0 - mean) / std, i.e. zero before
 *          normalisation as in Auto-AVSR) -> zeros if dropped.
 *   audio: int16 / 32768 -> time mask (zeros) -> noise at the drawn SNR
 *          (when a bank with n > 0 is given) -> whole-utterance
 *          normalisation -> zeros if dropped.
 * video_out is [T, crop_h, crop_w], audio_out [n_audio]. rep may be NULL. */
int avsr_augment_sample(const avsr_augment_config *cfg, const avsr_aug_key *key,
                        const uint8_t *video, int64_t T, int H, int W, float *video_out,
                        const int16_t *audio, int64_t n_audio, float *audio_out,
                        const avsr_noise_bank *noise, avsr_augment_report *rep, avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
