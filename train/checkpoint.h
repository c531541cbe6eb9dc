/* checkpoint: saving and restoring a training run, crash-safe.
 *
 * Layout under a stage directory (docs/formats/checkpoint.md):
 *
 *   <stage_dir>/ckpt/step-<N>/model.safetensors  parameters and buffers by
 *                                                name, model metadata
 *   <stage_dir>/ckpt/step-<N>/state.safetensors  optimizer moments, step,
 *                                                epoch, caller state items
 *                                                (sampler cursor, RNG states,
 *                                                schedule state), world size,
 *                                                recipe hash
 *   <stage_dir>/ckpt/step-<N>/DONE               written last (JSON: step,
 *                                                epoch, metrics, file sizes)
 *   <stage_dir>/ckpt/index.json                  every complete checkpoint
 *   <stage_dir>/last, <stage_dir>/best           symlinks to ckpt/step-<N>
 *
 * Write order: both files are written (each temp + fsync + rename) inside
 * "ckpt/step-<N>.tmp.<pid>", that directory is fsynced and renamed to
 * "step-<N>", the ckpt directory is fsynced, and DONE is written last (temp
 * + fsync + rename + fsync of the directory). A directory without a valid
 * DONE is not a checkpoint: it is ignored by restore and listing, and
 * removed by the next save, as are temp directories of killed writers.
 * index.json and the symlinks are derived from the DONE files and are
 * rewritten (atomically) after every save; they are conveniences, never the
 * source of truth.
 *
 * Restore picks the complete checkpoint with the highest step whose files
 * pass the validated safetensors reader (older ones are tried when the
 * newest is truncated or corrupt, each skip reported as a note), then checks
 * every parameter, buffer, moment and state item by name, dtype and shape
 * before it writes anything: a mismatch is an error naming the tensor, and
 * the parameter store is left unchanged. Restored values are bit copies, so
 * training continued after a restore is bitwise identical to training that
 * never stopped (tested with AdamW in tests/test_checkpoint.c).
 *
 * Everything returns 0 / -1 with the message in an avsr_error, except where
 * noted. Notes (warnings that are not errors: skipped or removed
 * directories) are appended to an avsr_ckpt_notes the caller may pass. */
#ifndef AVSR_CHECKPOINT_H
#define AVSR_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "dtype.h"
#include "error.h"
#include "optim.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Format version written into metadata ("avsr.ckpt_version") and DONE. */
#define AVSR_CKPT_VERSION 1

/* A string key/value pair (metadata, resolved-recipe entries). */
typedef struct avsr_kv {
    const char *key;
    const char *value;
} avsr_kv;

/* A named validation metric ("wer", "loss", "acc"): finite values only. */
typedef struct avsr_ckpt_metric {
    const char *name;
    double value;
} avsr_ckpt_metric;

/* A piece of training state the caller owns, stored in state.safetensors as
 * the 1-D tensor `name` of `count` elements of `dtype`: the sampler cursor
 * (conventionally "sampler.cursor", I64), RNG states ("rng.<what>": an
 * opaque blob as U8, or words as I64/I32), schedule state ("sched.<what>").
 * Names must not begin with "optim." (reserved for moments). On save, data
 * is read; on restore, the stored tensor must have the same dtype and count
 * and is copied into data. */
typedef struct avsr_ckpt_item {
    const char *name;
    avsr_dtype dtype;
    int64_t count;
    void *data;
} avsr_ckpt_item;

/* What a save records besides the parameters. Pointers may be NULL when the
 * matching count is 0; strings may be NULL (not recorded). */
typedef struct avsr_ckpt_save_info {
    int64_t step;               /* >= 0: the directory is step-<step> */
    int64_t epoch;              /* >= 0 */
    const char *stage;          /* stage name -> "avsr.stage" */
    const char *model_config;   /* JSON text -> "avsr.model" */
    const char *vocab;          /* tokenizer/vocabulary JSON -> "avsr.tokenizer" */
    const char *recipe_hash;    /* -> "avsr.recipe_hash" (model and state) */
    int world_size;             /* >= 1 (0 is taken as 1) */
    const avsr_ckpt_metric *metrics; /* validation metrics at this step */
    int n_metrics;
    const avsr_kv *meta;        /* further model metadata; keys must not be
                                   "format" or begin with "avsr." */
    int n_meta;
    const avsr_ckpt_item *items; /* sampler cursor, RNG states, ... */
    int n_items;
} avsr_ckpt_save_info;

/* Retention, applied after each save. keep_last = 0 disables deletion (every
 * checkpoint is kept); otherwise a complete checkpoint survives if it is
 * among the keep_last newest or among the keep_best best by `metric`
 * (checkpoints without that metric do not compete). The newest complete
 * checkpoint is never deleted. `metric` also chooses the "best" symlink
 * (no metric: no best symlink). Ties go to the newer checkpoint. */
typedef struct avsr_ckpt_retention {
    int keep_last;
    int keep_best;
    const char *metric;
    bool higher_better;
} avsr_ckpt_retention;

typedef struct avsr_ckpt_notes {
    char **msg;
    int n;
} avsr_ckpt_notes;
void avsr_ckpt_notes_free(avsr_ckpt_notes *notes);

/* Save a checkpoint of p (every parameter and buffer), the optimizer's
 * moments and step (opt may be NULL: no optimizer state) and info into
 * <stage_dir>/ckpt/step-<info->step>, then apply retention (ret may be NULL:
 * keep everything, no best symlink), rewrite index.json and the symlinks.
 * Moments are stored for every parameter that requires grad and for frozen
 * ones whose moments are not all zero. Fails if a complete checkpoint of the
 * same step exists; a leftover incomplete one is replaced. On failure no
 * complete checkpoint is created and existing ones are untouched (the temp
 * directory is removed). */
int avsr_ckpt_save(const char *stage_dir, avsr_params *p, const avsr_optim *opt,
                   const avsr_ckpt_save_info *info, const avsr_ckpt_retention *ret,
                   avsr_ckpt_notes *notes, avsr_error *err);

/* One complete checkpoint as recorded in its DONE file (or index.json). */
typedef struct avsr_ckpt_entry {
    int64_t step, epoch;
    char *dir;             /* full path of the checkpoint directory */
    int n_metrics;
    char **metric_names;
    double *metric_values;
} avsr_ckpt_entry;

typedef struct avsr_ckpt_list {
    avsr_ckpt_entry *e;    /* ascending by step */
    int n;
} avsr_ckpt_list;
void avsr_ckpt_list_free(avsr_ckpt_list *l);

/* The complete checkpoints under ckpt_dir (= <stage_dir>/ckpt), found by
 * scanning for step-<N>/DONE. Directories without DONE, temp directories and
 * unreadable DONE files are skipped (noted). A missing ckpt_dir is an empty
 * list. */
int avsr_ckpt_list_dir(const char *ckpt_dir, avsr_ckpt_list *out, avsr_ckpt_notes *notes,
                       avsr_error *err);
/* The same from ckpt_dir/index.json; entries whose DONE is gone are skipped
 * (noted). A missing or malformed index is an error naming the file. */
int avsr_ckpt_index_read(const char *ckpt_dir, avsr_ckpt_list *out, avsr_ckpt_notes *notes,
                         avsr_error *err);
/* Value of metric `name` of an entry: 0 and *v, or -1 if not recorded. */
int avsr_ckpt_entry_metric(const avsr_ckpt_entry *e, const char *name, double *v);

/* What a restore found. Strings are malloc'd (NULL if not recorded). */
typedef struct avsr_ckpt_loaded {
    char *dir;                  /* the checkpoint directory */
    int64_t step, epoch;
    int64_t optim_step;         /* optimizer updates (-1 if no optimizer state) */
    int world_size;
    char *recipe_hash;
    char *stage;
    char *model_config;
    char *vocab;
    int n_metrics;
    char **metric_names;
    double *metric_values;
} avsr_ckpt_loaded;
void avsr_ckpt_loaded_free(avsr_ckpt_loaded *l);

/* Restore the newest complete, readable checkpoint under <stage_dir>/ckpt
 * into p, opt (may be NULL: moments are not read) and the caller's items
 * (every one must be present). Returns 1 when restored (*out filled), 0 when
 * there is no usable checkpoint (a fresh start; skipped ones are noted), -1
 * on error (a tensor missing, unexpected or of the wrong dtype or shape; the
 * message names it and the file). Nothing is modified unless it returns 1.
 * The caller compares out->recipe_hash and out->world_size with its own and
 * decides (avsr_ckpt_recipe_diff names changed keys). */
int avsr_ckpt_restore(const char *stage_dir, avsr_params *p, avsr_optim *opt,
                      avsr_ckpt_item *items, int n_items, avsr_ckpt_loaded *out,
                      avsr_ckpt_notes *notes, avsr_error *err);
/* Restore one given checkpoint directory (step-<N>): 0 or -1 (a corrupt
 * file is an error here). */
int avsr_ckpt_load_dir(const char *ckpt_path, avsr_params *p, avsr_optim *opt,
                       avsr_ckpt_item *items, int n_items, avsr_ckpt_loaded *out,
                       avsr_error *err);

/* Remove leftovers of killed writers under <stage_dir>/ckpt: temp
 * directories (step-<N>.tmp.<pid>, step-<N>.del.<pid>) and step-<N>
 * directories without DONE. Each removal is noted. Only one process may
 * write a stage directory; call this from that process. */
int avsr_ckpt_clean(const char *stage_dir, avsr_ckpt_notes *notes, avsr_error *err);

/* Compare two resolved recipes given as flattened key/value lists (keys in
 * any order, unique). Returns the number of keys that differ (value
 * changed, only in `saved`, only in `now`); if names is not NULL it receives
 * a malloc'd text naming them in key order, e.g.
 *   "optim.lr: '0.001' -> '0.002'; data.noise: only in the checkpoint"
 * ("" when equal; NULL if out of memory). */
int avsr_ckpt_recipe_diff(const avsr_kv *saved, int n_saved, const avsr_kv *now, int n_now,
                          char **names);

#ifdef __cplusplus
}
#endif

#endif
