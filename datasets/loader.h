/* loader: the training/evaluation data loader that glues the pack reader,
 * the tokenizer, the epoch plan and the augmentation chain together and
 * keeps ready batches ahead of the trainer on a prefetch thread.
 *
 * avsr_loader_open() opens the AV shards (avsr_pack_open), the optional
 * noise sources (packed noise and babble corpora, kind "noise", read into
 * memory as float; generated white and pink noise), tokenises every
 * transcript once and checks the configuration. Per epoch,
 * avsr_loader_start(epoch, rank, world, cursor) builds the plan (training:
 * avsr_plan_build over the clips' frame and token counts; evaluation: every
 * clip in index order) and starts a prefetch thread that assembles rank
 * `rank`'s batches from step `cursor` on into a bounded queue.
 * avsr_loader_next() blocks until the next batch is ready; the batch is
 * the caller's until avsr_batch_release().
 *
 * Each sample is augmented with the key (seed, epoch, sample id = the
 * clip's global index), never the rank, so a sample's tensors are bitwise
 * the same whatever the world size and whatever batch it lands in.
 *
 * Batch layout (row b = clip sample_ids[b], T = longest clip in frames,
 * padding is 0 in the float tensors):
 *   video    float [B, T, crop_h, crop_w]  cropped, normalised
 *   audio    float [B, T * 640]            noisy audio (the chain's output)
 *   clean    float [B, T * 640]            the same chain without noise and
 *                                          without modality dropout (NULL when
 *                                          the loader adds no noise)
 *   lengths  int64 [B]                     frames
 *   mask     uint8 [B, T]                  1 = valid frame, 0 = padding
 *   targets  int32 [B, L]                  token ids, padded with -1
 *   target_lengths int64 [B]
 *   sample_ids uint64 [B]                  for avsr_ctx_set_batch_keys
 *   aug      avsr_augment_report [B], noise_type uint8 [B]
 * All of it lives in one allocation owned by the batch.
 * See docs/data/loader.md. */
#ifndef AVSR_LOADER_H
#define AVSR_LOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "augment.h"
#include "error.h"
#include "sampler.h"
#include "tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Noise sources (also the values of avsr_batch.noise_type). */
enum avsr_noise_type {
    AVSR_NOISE_NONE = 0,   /* no noise added (clean) */
    AVSR_NOISE_FILE = 1,   /* clips of the packed noise corpus */
    AVSR_NOISE_BABBLE = 2, /* clips of the packed babble corpus */
    AVSR_NOISE_WHITE = 3,  /* generated white noise */
    AVSR_NOISE_PINK = 4,   /* generated pink noise */
    AVSR_NOISE_TYPES = 5
};

/* "none", "file", "babble", "white", "pink"; NULL when out of range */
const char *avsr_noise_type_name(int type);
/* The type of a name above, or -1. */
int avsr_noise_type_parse(const char *name);

/* Evaluation noise: one type at one SNR for every utterance (+INFINITY or
 * type NONE = clean). The segment and offset are drawn per utterance from
 * the key (seed, epoch, sample id), so they are the same on every run. */
typedef struct avsr_loader_noise {
    int type;      /* enum avsr_noise_type */
    double snr_db;
} avsr_loader_noise;

typedef struct avsr_loader_config {
    const char *const *paths;        /* AV shards (kind "av"), n_paths >= 1 */
    int n_paths;
    const char *const *noise_paths;  /* packed noise corpus (shards), may be 0 */
    int n_noise_paths;
    const char *const *babble_paths; /* packed babble corpus (shards), may be 0 */
    int n_babble_paths;
    bool white_noise, pink_noise;    /* generated noise sources (default false) */
    double gen_noise_seconds;        /* length of each generated waveform (60) */
    const avsr_vocab *vocab;         /* borrowed; NULL = avsr_vocab_default */
    bool train;                      /* training plan or evaluation order */
    avsr_sampler_config sampler;     /* plan; its seed also keys augmentation */
    avsr_augment_config augment;     /* train or eval chain */
    avsr_loader_noise eval_noise;    /* evaluation only (default: none, +inf) */
    int queue_depth;                 /* ready batches kept ahead (default 4) */
    int threads;                     /* OpenMP threads assembling a batch (1) */
    bool clean_audio;                /* fill batch->clean when noise is on (true) */
} avsr_loader_config;

/* Defaults: sampler and augmentation defaults for train / eval, no noise
 * sources, default vocabulary, queue depth 4, one thread. */
void avsr_loader_config_default(avsr_loader_config *cfg, bool train);

typedef struct avsr_loader avsr_loader;

typedef struct avsr_batch {
    int64_t B, T, L;        /* clips, longest clip (frames), longest target */
    int crop_h, crop_w;
    float *video;           /* [B, T, crop_h, crop_w] */
    float *audio;           /* [B, T * 640] */
    float *clean;           /* [B, T * 640] or NULL */
    int64_t *lengths;       /* [B] frames */
    uint8_t *mask;          /* [B, T] 1 = valid */
    int32_t *targets;       /* [B, L], -1 = padding */
    int64_t *target_lengths; /* [B] */
    uint64_t *sample_ids;   /* [B] global clip indices */
    avsr_augment_report *aug; /* [B] what the chain did */
    uint8_t *noise_type;    /* [B] enum avsr_noise_type actually added */
    uint64_t seed, epoch;   /* augmentation keys (avsr_ctx_set_batch_keys) */
    int64_t step;           /* step within the epoch (resume cursor = step + 1) */
    int micro;              /* micro-batch within the step (0 .. micro - 1) */
    int ranks;              /* training: the batch is split over this many
                             * ranks; T and L are the whole batch's longest
                             * clip and target */
    int64_t index;          /* batch index within the epoch's plan */
    int64_t frames;         /* sum of lengths */
    bool repeat;            /* a repeated batch filling the last step */
} avsr_batch;

/* Open everything; NULL with err set ("<file>: ..." for bad files,
 * "<file>: clip <i> (<id>): ..." for a bad transcript). */
avsr_loader *avsr_loader_open(const avsr_loader_config *cfg, avsr_error *err);
/* Stop the prefetch thread (also mid-epoch), join it, free everything.
 * Batches not yet released stay valid until released. NULL is allowed. */
void avsr_loader_close(avsr_loader *l);

int64_t avsr_loader_count(const avsr_loader *l);       /* clips in the shards */
int64_t avsr_loader_clip_frames(const avsr_loader *l, int64_t i); /* -1 if out of range */
/* Token ids of clip i (valid until close); *n receives the count. */
const int32_t *avsr_loader_clip_tokens(const avsr_loader *l, int64_t i, int64_t *n);

/* Build the plan of `epoch` and start serving rank `rank` of `world` its
 * batches from step `cursor` (0 = the start; steps <= cursor are skipped,
 * so a resumed run continues exactly): avsr_loader_start_micro with micro
 * 1. Stops a running epoch first. Returns 0 or -1 with err set. */
int avsr_loader_start(avsr_loader *l, uint64_t epoch, int rank, int world, int64_t cursor,
                      avsr_error *err);
/* Training with data parallelism and gradient accumulation. The plan is
 * built once for all ranks (world size 1 in the sampler's terms, so it does
 * not depend on the world size); a step consumes `micro` consecutive plan
 * batches (micro-batches; a tail of fewer than micro batches is dropped),
 * and every batch is split over the `world` ranks: clip j of the batch goes
 * to rank j mod world, and every rank's share is padded to the longest clip
 * (and the longest target) of the whole batch. So the union over ranks of a step's batches is the
 * same for every world size, each clip is padded the same way, and with
 * synchronized BatchNorm and a loss normalised by the global number of
 * utterances an update does not depend on the world size. A batch with
 * fewer clips than ranks is an error at next() (set the sampler's
 * min_clips to the world size). cursor and avsr_loader_steps count steps.
 * Evaluation loaders: micro 1, whole batches dealt round robin. */
int avsr_loader_start_micro(avsr_loader *l, uint64_t epoch, int rank, int world, int micro,
                            int64_t cursor, avsr_error *err);
/* The current plan (after start). */
uint64_t avsr_loader_plan_hash(const avsr_loader *l);
int64_t avsr_loader_steps(const avsr_loader *l); /* steps of this rank this epoch */
const avsr_plan_counts *avsr_loader_counts(const avsr_loader *l);

/* Next batch of the epoch: 1 with *out set, 0 at the end of the epoch
 * (*out = NULL), -1 with err set (an error of the prefetch thread, naming
 * the file and clip, or no epoch started). Blocks until ready. */
int avsr_loader_next(avsr_loader *l, avsr_batch **out, avsr_error *err);
/* Give a batch back (its memory is reused for later batches). NULL ok. */
void avsr_batch_release(avsr_batch *b);

#ifdef __cplusplus
}
#endif

#endif
