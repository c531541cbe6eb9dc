/* lrsched: learning-rate schedules as pure functions of (step, epoch).
 *
 * `step` is the number of optimizer updates already done (0 for the first
 * update), `epoch` the 0-based epoch; the value returned is the learning rate
 * for the next update. This is the convention of torch's LambdaLR stepped
 * once per update (lr_lambda(last_epoch)) and of fairseq's
 * lr_scheduler.step_update(num_updates). Being pure functions, schedules have
 * no state to checkpoint: resuming needs only the step and epoch.
 *
 * Schedules (lr = the configured peak/base learning rate, w = warmup_steps):
 *   CONSTANT    lr, times step/w while step < w (no warmup if w = 0).
 *   COSINE      Auto-AVSR's WarmupCosineScheduler:
 *                 step < w:          lr * step / w
 *                 w <= step < total: 0.5*lr*(1 + cos(pi*(step - w)/(total - w)))
 *                 step >= total:     0
 *   TRI_STAGE   fairseq's tri_stage (init = init_lr_scale*lr,
 *               final = final_lr_scale*lr, h = hold_steps, d = decay_steps):
 *                 step < w:              init + (lr - init) * step / w
 *                 step < w + h:          lr
 *                 step <= w + h + d:     lr * exp(ln(final_lr_scale) * (step-w-h)/d)
 *                 later:                 final
 *   EXP_EPOCH   lr * factor^epoch, times step/w while step < w.
 * Configuration is plain structs; the recipe layer parses YAML into them. */
#ifndef AVSR_LRSCHED_H
#define AVSR_LRSCHED_H

#include <stdint.h>

#include "error.h"

typedef enum avsr_lrsched_type {
    AVSR_LRSCHED_CONSTANT = 0,
    AVSR_LRSCHED_COSINE = 1,
    AVSR_LRSCHED_TRI_STAGE = 2,
    AVSR_LRSCHED_EXP_EPOCH = 3,
    AVSR_LRSCHED_TYPE_COUNT
} avsr_lrsched_type;

typedef struct avsr_lrsched {
    avsr_lrsched_type type;
    double lr;             /* peak / base learning rate, finite, >= 0 */
    int64_t warmup_steps;  /* >= 0: CONSTANT, COSINE, TRI_STAGE, EXP_EPOCH */
    int64_t total_steps;   /* COSINE: > warmup_steps */
    int64_t hold_steps;    /* TRI_STAGE: >= 0 */
    int64_t decay_steps;   /* TRI_STAGE: >= 0 */
    double init_lr_scale;  /* TRI_STAGE: in [0, 1] (fairseq default 0.01) */
    double final_lr_scale; /* TRI_STAGE: in (0, 1] (fairseq default 0.01) */
    double factor;         /* EXP_EPOCH: > 0 (the decay per epoch) */
} avsr_lrsched;

/* A schedule of the given type with lr and fairseq/Auto-AVSR defaults for
 * the rest (scales 0.01, factor 1, no steps); callers fill in the step
 * counts. */
avsr_lrsched avsr_lrsched_defaults(avsr_lrsched_type type, double lr);

/* "constant", "warmup_cosine", "tri_stage", "exp_per_epoch" (the recipe's
 * names); NULL for an unknown type. */
const char *avsr_lrsched_type_name(avsr_lrsched_type type);
/* Name -> type; 0, or -1 with a message listing the names. */
int avsr_lrsched_type_parse(const char *name, avsr_lrsched_type *out, avsr_error *err);

/* Validate; 0 or -1 with a message naming the bad field and its value. */
int avsr_lrsched_check(const avsr_lrsched *s, avsr_error *err);

/* The learning rate for the update after `step` updates, in epoch `epoch`
 * (negative values count as 0). s must have passed avsr_lrsched_check. */
double avsr_lrsched_lr(const avsr_lrsched *s, int64_t step, int64_t epoch);

#endif
