/* op_features: audio features computed from the waveform, and the
 * train-time masks applied to them.
 *
 * - avsr_op_logmel_whisper: the Whisper log-mel front end (OpenAI
 *   whisper/audio.py, HF WhisperFeatureExtractor): periodic Hann window,
 *   STFT with centre reflect padding, |X|^2, Slaney mel filters (librosa),
 *   log10, dynamic-range clamp, (x + 4) / 4. wave [B, N] -> [B, n_mels, T].
 *   PyTorch: torch.stft(w, 400, 160, window=torch.hann_window(400),
 *   return_complex=True)[..., :-1].abs()**2, mel_filters @ power,
 *   clamp(min=1e-10).log10(), maximum(x, x.max() - 8), (x + 4) / 4.
 * - avsr_op_fbank_kaldi: torchaudio.compliance.kaldi.fbank (Kaldi
 *   compute-fbank-feats) with its defaults: povey window, 25 ms / 10 ms,
 *   snip_edges, DC removal, pre-emphasis 0.97, FFT size rounded up to a power
 *   of two, log of mel energies floored at FLT_EPSILON. -> [B, n_mels, T].
 * - avsr_op_stack_frames: AV-HuBERT's stacker (k frames -> one, 100 Hz ->
 *   25 Hz): [B, F, T] -> [B, k*F, ceil(T/k)].
 * - avsr_op_spec_augment: SpecAugment time and frequency masks at train
 *   time, drawn from Philox streams keyed by (seed, epoch, sample id,
 *   purpose).
 *
 * Features are channel-first, [B, n_mels, frames] (the layout conv1d and
 * Whisper's encoder take). Every FFT uses single-precision FFTW; plans are
 * made once per size in a process-wide table guarded by a mutex and executed
 * with the new-array functions from OpenMP threads. Exact formulas,
 * tolerances and the PyTorch equivalents: docs/ops/features.md. */
#ifndef AVSR_OP_FEATURES_H
#define AVSR_OP_FEATURES_H

#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- log-mel */

typedef struct avsr_logmel_cfg {
    int sample_rate;  /* Hz (16000) */
    int n_fft;        /* FFT size = window length (400) */
    int hop;          /* frame shift in samples (160) */
    int n_mels;       /* mel bins (80) */
    float f_min;      /* lowest filter edge, Hz (0) */
    float f_max;      /* highest filter edge, Hz; <= 0: sample_rate / 2 */
    float dyn_range;  /* decades kept below the utterance maximum (8) */
    /* 0: each clip is processed as given (its first lengths[b] samples);
     * the maximum of the dynamic-range clamp is taken over its own frames
     * (ASR2AVSR). > 0 (Whisper: 480000 = 30 s): each clip is zero-padded
     * to pad_to samples first, so the maximum covers the padding too and
     * every clip has pad_to / hop frames; a clip longer than pad_to is an
     * error. */
    int64_t pad_to;
} avsr_logmel_cfg;

/* Whisper's values (16 kHz, 400, 160, 80 mels, 0..8000 Hz, 8 decades) with
 * pad_to = 0. Set pad_to = 480000 for exact Whisper (30 s) input. */
void avsr_logmel_whisper_defaults(avsr_logmel_cfg *cfg);

/* Frames of a clip of n samples: n / hop (pad_to > 0: pad_to / hop). */
int64_t avsr_logmel_frames(const avsr_logmel_cfg *cfg, int64_t n);

/* The Slaney-normalised mel filterbank of librosa.filters.mel(sr, n_fft,
 * n_mels, fmin, fmax) (htk=False, norm='slaney'), computed in double and
 * rounded to f32 as librosa does: fb [n_mels, n_fft / 2 + 1]. */
void avsr_mel_filters_slaney(float *fb, int sample_rate, int n_fft, int n_mels, float f_min,
                             float f_max);

/* wave [B, N] f32; lengths [B] valid samples per clip (NULL: all N).
 * -> [B, n_mels, T], T = avsr_logmel_frames(cfg, N); frames t >=
 * avsr_logmel_frames(cfg, lengths[b]) of clip b are 0. cfg NULL = the
 * Whisper defaults. Differentiable with respect to wave (see docs). */
avsr_tensor *avsr_op_logmel_whisper(avsr_ctx *ctx, avsr_tensor *wave, const int64_t *lengths,
                                    const avsr_logmel_cfg *cfg);

/* ---------------------------------------------------------------- Kaldi fbank */

typedef struct avsr_fbank_cfg {
    int sample_rate;         /* Hz (16000) */
    float frame_length_ms;   /* 25 */
    float frame_shift_ms;    /* 10 */
    int num_mel_bins;        /* torchaudio default 23; 80 (Auto-AVSR style) or 26 (AV-HuBERT) */
    float low_freq;          /* 20 Hz */
    float high_freq;         /* <= 0: offset from Nyquist (0 = Nyquist) */
    float preemphasis;       /* 0.97 */
    bool remove_dc_offset;   /* true */
    bool round_to_power_of_two; /* true */
} avsr_fbank_cfg;

/* torchaudio.compliance.kaldi.fbank defaults (dither 0, use_energy false,
 * snip_edges true, povey window), num_mel_bins 80. */
void avsr_fbank_kaldi_defaults(avsr_fbank_cfg *cfg);

/* Frames of a clip of n samples: 1 + (n - win) / shift if n >= win, else 0. */
int64_t avsr_fbank_frames(const avsr_fbank_cfg *cfg, int64_t n);

/* wave [B, N] f32, lengths [B] or NULL -> [B, num_mel_bins, T] with T =
 * avsr_fbank_frames(cfg, N); frames past a clip's own count are 0.
 * Not differentiable: a wave that requires grad (in grad mode) is refused. */
avsr_tensor *avsr_op_fbank_kaldi(avsr_ctx *ctx, avsr_tensor *wave, const int64_t *lengths,
                                 const avsr_fbank_cfg *cfg);

/* ---------------------------------------------------------------- stacking */

/* AV-HuBERT stacker: x [B, F, T] -> y [B, k*F, ceil(T/k)] with
 * y[b, j*F + f, t] = x[b, f, k*t + j] (0 past T). Valid frames of a clip of
 * n frames: (n + k - 1) / k. Differentiable. */
avsr_tensor *avsr_op_stack_frames(avsr_ctx *ctx, avsr_tensor *x, int k);

/* ---------------------------------------------------------------- SpecAugment */

typedef struct avsr_specaug_cfg {
    int n_time_masks;     /* time masks per utterance */
    int max_time;         /* widest time mask, frames */
    float max_time_ratio; /* and at most ratio * length frames (<= 0: no limit) */
    int n_freq_masks;     /* frequency masks per utterance */
    int max_freq;         /* widest frequency mask, bins */
    bool fill_mean;       /* masked values = utterance mean (over its valid
                           * frames and all bins), else 0 */
} avsr_specaug_cfg;

/* Draw the masks of one utterance of F bins and len valid frames: mask i
 * covers frames [t0[i], t0[i] + tw[i]) and bins [f0[i], f0[i] + fw[i]).
 * Widths are uniform integers in [0, W] (W = min(max_time, floor(ratio *
 * len), len) or min(max_freq, F)), starts uniform in [0, size - width]. */
void avsr_spec_augment_draw(const avsr_specaug_cfg *cfg, uint64_t seed, uint64_t epoch,
                            uint64_t sample_id, uint32_t purpose, int64_t F, int64_t len,
                            int32_t *t0, int32_t *tw, int32_t *f0, int32_t *fw);

/* feats [B, F, T], lengths [B] (NULL: all T). In training mode returns a
 * masked copy; otherwise returns feats itself. Row b's stream is keyed by
 * (ctx seed, epoch, avsr_ctx_sample_id(ctx, b), purpose), purpose normally
 * AVSR_RNG_SPEC_AUG. Gradient: identity on unmasked positions, 0 on masked
 * ones (plus the mean's gradient with fill_mean). */
avsr_tensor *avsr_op_spec_augment(avsr_ctx *ctx, avsr_tensor *feats, const int64_t *lengths,
                                  const avsr_specaug_cfg *cfg, uint32_t purpose);

#ifdef __cplusplus
}
#endif

#endif
