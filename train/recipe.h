/* recipe: the whole recipe YAML (DESIGN.md section 4) read, validated and
 * resolved into plain structs for avsr-worker, avsr-eval and avsr-sched.
 *
 * avsr_recipe_load() reads every section with yamltree, so an unknown key,
 * a wrong type, a value out of range, a missing file or an impossible
 * combination is an error "recipe.yaml:LINE:COL: <key path>: message" before
 * any rank starts work. The `model:` section is parsed by the model builder
 * (models/builder.h) as part of the load (so it is validated too) and kept
 * as a node for the callers that build the model.
 *
 * Every value the recipe leaves out gets its documented default
 * (docs/recipes.md); the resolved recipe (every key with its value) is
 * available as YAML text (recipe.resolved.yaml, `avsr-worker --check`), as a
 * flattened key/value list ("stages.1.optimizer.lr" = "0.0005") for
 * comparing a checkpoint's recipe with the current one
 * (avsr_ckpt_recipe_diff), and as a hash of that list.
 *
 * Paths in the recipe (data files, init/teacher checkpoint paths,
 * tokenizer models) are relative to the current directory, as the user
 * typed them; they are kept as written. */
#ifndef AVSR_TRAIN_RECIPE_H
#define AVSR_TRAIN_RECIPE_H

#include <stdbool.h>
#include <stdint.h>

#include "datasets/augment.h"
#include "datasets/sampler.h"
#include "datasets/tokenizer.h"
#include "error.h"
#include "lrsched.h"
#include "models/search.h"
#include "optim.h"
#include "train/checkpoint.h"
#include "yamltree.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where a stage's starting weights (init) or its teacher come from. */
typedef enum avsr_recipe_src_kind {
    AVSR_SRC_NONE = 0,     /* init: none (fresh initialisation); teacher: none */
    AVSR_SRC_STAGE = 1,    /* a stage of this recipe: "previous.best",
                            * "stage.NAME.last", ... (previous = the stage
                            * before, resolved to its name) */
    AVSR_SRC_PATH = 2      /* a model.safetensors or a step-<N> directory */
} avsr_recipe_src_kind;

typedef enum avsr_recipe_pick {
    AVSR_PICK_BEST = 0,    /* the stage's `best` checkpoint (validation metric) */
    AVSR_PICK_LAST = 1,    /* its newest complete checkpoint */
    AVSR_PICK_AVERAGE = 2  /* the average of the recipe's `average:` setting over
                            * the stage's checkpoints (computed when needed) */
} avsr_recipe_pick;

typedef struct avsr_recipe_src {
    avsr_recipe_src_kind kind;
    int stage;             /* AVSR_SRC_STAGE: index into stages (< this stage) */
    avsr_recipe_pick pick; /* AVSR_SRC_STAGE */
    char *path;            /* AVSR_SRC_PATH */
} avsr_recipe_src;

/* Inputs of a stage. */
typedef enum avsr_recipe_audio_in {
    AVSR_IN_AUDIO_NOISY = 0, /* the augmented (noisy) audio */
    AVSR_IN_AUDIO_CLEAN = 1, /* the same chain without noise */
    AVSR_IN_AUDIO_NONE = 2   /* zeros / no audio branch */
} avsr_recipe_audio_in;
typedef enum avsr_recipe_video_in {
    AVSR_IN_VIDEO_LIPS = 0,
    AVSR_IN_VIDEO_NONE = 1
} avsr_recipe_video_in;

/* Loss terms and weights of a stage (0 = term off). The total is
 *   hybrid * (w CTC + (1 - w) att) + ctc * CTC + dec_ce * att
 *   + mel_l1 * L1(mel) + enc_l1 * L1(encoder)
 * with w = model.ctc_weight; the L1 terms need a teacher. */
typedef struct avsr_recipe_losses {
    double hybrid, ctc, dec_ce, mel_l1, enc_l1;
} avsr_recipe_losses;

typedef enum avsr_recipe_dec_target {
    AVSR_DEC_TARGET_TRANSCRIPT = 0,
    AVSR_DEC_TARGET_TEACHER = 1 /* the teacher's greedy tokens on the clean audio */
} avsr_recipe_dec_target;

typedef struct avsr_recipe_stage {
    char *name;                /* unique, [A-Za-z0-9_.-]+ (a directory name) */
    avsr_recipe_src init;      /* default: previous.best for stages after the
                                * first (previous.last without a validation
                                * metric), none for the first */
    char **train;              /* fnmatch patterns of trainable parameters */
    int n_train;               /* (default ["*"]) */
    char **freeze;             /* patterns frozen even if `train` matches */
    int n_freeze;
    avsr_recipe_audio_in audio_in;
    avsr_recipe_video_in video_in;
    avsr_recipe_src teacher;   /* inherited from the previous stage when absent */
    avsr_recipe_dec_target dec_target;
    avsr_recipe_losses losses; /* default {hybrid: 1} */
    unsigned noise_types;      /* training noise sources: bit (1u << t) for each
                                * enum avsr_noise_type t (datasets/loader.h)
                                * of augment.noise.types (default: every
                                * source of data.noise) */
    avsr_optim_cfg optim;
    avsr_lrsched sched;        /* total_steps is 0 when derived from epochs:
                                * the trainer fills it in */
    double warmup_epochs;      /* > 0: warmup given in epochs; the trainer sets
                                * sched.warmup_steps = round(warmup_epochs *
                                * updates per epoch) (sched.warmup_steps is 0) */
    double clip_grad_norm;     /* 0 = no clipping (default 5, Auto-AVSR's) */
    int64_t epochs;            /* exactly one of epochs and steps is > 0 */
    int64_t steps;
    int accum;                 /* micro-steps per update (default 1) */
    avsr_sampler_config sampler;  /* data.batching with the stage's overrides;
                                   * seed = run.seed */
    avsr_augment_config augment;  /* the training chain: augment: with the
                                   * stage's overrides */
    int64_t valid_every_steps; /* 0 = validate at epoch ends only (default) */
    char *early_stop_metric;   /* NULL = no early stopping */
    int early_stop_patience;   /* validations without improvement */
} avsr_recipe_stage;

typedef enum avsr_recipe_modality {
    AVSR_MODALITY_AUDIO = 0,        /* video zeroed */
    AVSR_MODALITY_VIDEO = 1,        /* audio zeroed */
    AVSR_MODALITY_AUDIOVISUAL = 2
} avsr_recipe_modality;

typedef enum avsr_recipe_search_kind {
    AVSR_SEARCH_CTC_GREEDY = 0,
    AVSR_SEARCH_CTC_BEAM = 1,
    AVSR_SEARCH_ATTENTION_BEAM = 2
} avsr_recipe_search_kind;

#define AVSR_RECIPE_MAX_SNR 16

typedef enum avsr_recipe_tokenizer {
    AVSR_TOKENIZER_CHAR = 0,         /* avsr_vocab (datasets/tokenizer.h) */
    AVSR_TOKENIZER_SENTENCEPIECE = 1, /* datasets/spm.h model at spm_model */
    AVSR_TOKENIZER_WORD = 2           /* avsr_vocab of the training transcripts' words */
} avsr_recipe_tokenizer;

typedef struct avsr_recipe_priv avsr_recipe_priv;

typedef struct avsr_recipe {
    char *path;                /* the file as given */
    char *name;

    /* run */
    char *exp_dir;             /* default "exp/<name>" */
    uint64_t seed;             /* default 1234 */
    bool cuda;                 /* run.device: cpu (false) | cuda */
    int ranks;                 /* default 1 */
    char *threads;             /* "auto" or a positive number as text */
    int64_t ckpt_every_steps;  /* 0 = epoch ends only (default 0) */
    int keep_last, keep_best;  /* default 5, 5 */
    int max_nonfinite;         /* non-finite steps in a row that stop the run (10) */
    int log_every_steps;       /* metrics.jsonl / log line period (default 10) */
    int watchdog_s;            /* collective timeout, s (default 600) */

    /* data */
    char **train, **valid, **test; /* shard paths */
    int n_train, n_valid, n_test;
    char **noise_files;        /* data.noise.<name>: {from: file.h5} of kind noise */
    int n_noise_files;
    char **babble_files;       /* data.noise.babble: {from: file.h5} */
    int n_babble_files;
    bool white_noise, pink_noise; /* data.noise.<name>: {generate: white|pink} */
    avsr_recipe_tokenizer tokenizer; /* data.tokenizer.type */
    avsr_vocab *vocab;         /* char: the default 41-symbol vocabulary;
                                * NULL for sentencepiece */
    char *spm_model;           /* sentencepiece: the model file, else NULL */
    int vocab_size;            /* the model's output size V: the char
                                * vocabulary's size, or for sentencepiece the
                                * model's pieces + 2 (blank 0 before them,
                                * eos = V - 1 after them) */
    int video_roi;             /* data.video.roi: stored frame size (96) */
    avsr_sampler_config sampler;  /* data.batching */
    avsr_augment_config eval_augment; /* evaluation chain: center crop, the
                                       * video/audio normalisation of data: */

    /* model */
    const avsr_yaml *yaml;     /* the loaded document (kept) */
    avsr_ynode *model;         /* the `model:` section */
    char *model_json;          /* the resolved model section as JSON (what
                                * checkpoints store as "avsr.model") */

    /* augment (base of every stage's chain) */
    avsr_augment_config augment;

    avsr_recipe_stage *stages;
    int n_stages;

    /* average */
    int average_last, average_best; /* exactly one > 0 (default last 5) */

    /* eval */
    char *valid_metric;        /* "valid_wer" (default with validation data),
                                * "valid_cer", "valid_loss", "valid_acc";
                                * NULL = none (no validation data) */
    bool valid_higher_better;
    avsr_recipe_search_kind search;
    avsr_att_beam_opts att_beam;   /* search settings (attention beam) */
    avsr_ctc_beam_opts ctc_beam;   /* (CTC prefix beam) */
    int *sweep_noise;          /* enum avsr_noise_type (datasets/loader.h) */
    int n_sweep_noise;
    double sweep_snr[AVSR_RECIPE_MAX_SNR]; /* INFINITY = clean */
    int n_sweep_snr;
    avsr_recipe_modality sweep_modality[3];
    int n_sweep_modality;

    /* resolved form */
    avsr_kv *resolved;         /* flattened ("stages.0.optimizer.lr" = "0.001";
                                * lists as JSON arrays), in section order
                                * (docs/recipes.md); strings owned by r */
    int n_resolved;
    char hash[17];             /* FNV-1a 64 of the flattened list, hex */
    avsr_recipe_priv *priv;    /* the resolved YAML text and bookkeeping */
} avsr_recipe;

/* Load and validate path. NULL with err = "path:LINE:COL: message". */
avsr_recipe *avsr_recipe_load(const char *path, avsr_error *err);
/* The same from text (name is used in messages and as path). */
avsr_recipe *avsr_recipe_load_string(const char *name, const char *text, avsr_error *err);
void avsr_recipe_free(avsr_recipe *r);

/* Index of the stage called name, or -1. */
int avsr_recipe_stage_index(const avsr_recipe *r, const char *name);
/* <exp_dir>/<stage name> into buf. */
int avsr_recipe_stage_dir(const avsr_recipe *r, int stage, char *buf, size_t size);

/* The resolved recipe as YAML text (malloc'd): every key with its value,
 * comments naming defaults. NULL when out of memory. */
char *avsr_recipe_resolved_yaml(const avsr_recipe *r);

#ifdef __cplusplus
}
#endif

#endif
