/* recipe_plan: the plan (sched/plan.h) of a recipe.
 *
 *   train.<stage>    one per stage, in order, each after the one before:
 *                    `avsr-worker RECIPE --stage <stage>` on run.ranks MPI
 *                    ranks (one GPU per rank with run.device cuda)
 *   average          after the last stage: `avsr-avg --last N (or --best N
 *                    --metric M [--higher-better]) <exp>/<last stage>/ckpt
 *                    -o <exp>/avg/model.safetensors`
 *   eval.<m>.<n>.<s> one per sweep point, after average, in array group
 *                    "eval": `avsr-eval RECIPE --point m:n:s` on eval_ranks
 *                    MPI ranks, writing <exp>/eval/points/m-n-s.json
 *   report           after every point: `avsr-eval report RECIPE`
 * The sweep points are avsr_eval_sweep_points()'s (eval/sweep.h): per
 * modality, video gives video:none:clean only (its audio is zeroed, noise
 * cannot matter); audio and audiovisual give M:none:clean when the SNR list
 * holds clean, then M:NOISE:SNR for every noise type and finite SNR, in the
 * recipe's order.
 * Without test data (data.test empty) there are no evaluation jobs and no
 * report. */
#ifndef AVSR_SCHED_RECIPE_PLAN_H
#define AVSR_SCHED_RECIPE_PLAN_H

#include "error.h"
#include "sched/plan.h"
#include "train/recipe.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The plan of r (checked). eval_ranks >= 1. */
avsr_sched_plan *avsr_sched_plan_from_recipe(const avsr_recipe *r, int eval_ranks,
                                             avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
