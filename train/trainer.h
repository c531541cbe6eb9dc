/* trainer: runs the stages of a recipe, data-parallel over the ranks of a
 * communicator, with checkpoints that resume exactly. This is the body of
 * avsr-worker (DESIGN.md sections 3, 4, 7; docs/tools/avsr-worker.md).
 *
 * Every rank runs avsr_train with the same recipe. Rank 0 is coordinator
 * and worker: it writes the experiment directory (resolved recipe,
 * metrics.jsonl, checkpoints), the others follow; control decisions
 * (stop, checkpoint now, preempted) are agreed at every step boundary.
 *
 * One optimizer step of a stage:
 *   for each of the stage's micro-batches (gradient accumulation):
 *     the rank's share of the plan batch (datasets/loader.h: every batch is
 *     split over the ranks and padded to its longest clip, so the global
 *     batch does not depend on the world size) -> forward with BatchNorm
 *     statistics synchronised over the ranks and dropout keyed by sample
 *     -> the stage's weighted loss terms -> backward of the SUM over the
 *     share's utterances (gradients accumulate in the flat buffer)
 *   loss sums and utterance counts summed over the ranks; a non-finite
 *   loss skips the step on every rank
 *   gradients all-reduced in buckets and divided by the global number of
 *   utterances (the loss is a mean per utterance over the global batch, the
 *   Auto-AVSR normalisation), global-norm clipping (a non-finite norm skips
 *   the step), the scheduled learning rate, the optimizer update.
 * So -np 1 and -np 2 make the same updates up to the order of float sums.
 *
 * Stage directory <exp_dir>/<stage>/: ckpt/ (train/checkpoint.h),
 * metrics.jsonl (one JSON object per line: kind "step", "valid", "epoch",
 * "end"), FINISHED (written when the stage completed; a finished stage is
 * skipped when the recipe is run again). */
#ifndef AVSR_TRAIN_TRAINER_H
#define AVSR_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stdio.h>

#include "dist/comm.h"
#include "error.h"
#include "train/recipe.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_train_opts {
    const char *stage;  /* run only this stage (NULL: every stage in order) */
    bool force_resume;  /* resume although the recipe changed since the checkpoint */
    FILE *log;          /* rank 0's progress and notes (NULL: stderr) */
} avsr_train_opts;

/* Train. Returns 0 when every requested stage has finished,
 * AVSR_EXIT_REQUEUE (75) after a checkpoint on SIGTERM/SIGUSR1, 130 after
 * a checkpoint on SIGINT, or -1 with err set (the same on every rank when
 * the cause is shared: a bad checkpoint, a changed recipe, too many
 * non-finite steps). */
int avsr_train(const avsr_recipe *r, avsr_comm *c, const avsr_train_opts *o, avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
