/* slurm: the Slurm backend of avsr-sched.
 *
 * Jobs are submitted with sbatch as soon as each of their dependencies is
 * done or itself submitted, with --dependency=afterok:<ids of the submitted
 * ones>; the jobs of one array group (the evaluation sweep) go in one
 * --array submission. Scripts are rendered from the template
 * launch/slurm/avsr-job.sbatch into <exp_dir>/slurm/ (requeue protocol:
 * see the template). State is tracked with squeue (and the exit markers the
 * scripts write, so no accounting database is needed):
 *   - exit 0 -> done; a job that failed otherwise is resubmitted while
 *     failures <= retries, and the dependents still queued in Slurm are
 *     re-pointed to the new job id (scontrol update ... Dependency=);
 *   - dependents of a job that failed for good are scancel'ed (they would
 *     wait forever) and stay pending;
 *   - requeues inside a Slurm job (exit 75) are counted, not failed.
 * Every submission gets a unique --job-name recorded before sbatch runs,
 * so a scheduler killed in between finds the job again with squeue
 * instead of submitting it twice. */
#ifndef AVSR_SCHED_SLURM_H
#define AVSR_SCHED_SLURM_H

#include "sched/sched.h"
#include "sched/state.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Submit and watch until every job is done or nothing more can run (or
 * o->detach: return after submitting; *o->stop: return, jobs keep running). */
int avsr_sched_slurm_run(avsr_sched_db *db, const avsr_sched_opts *o, avsr_error *err);

/* One tracking pass (squeue, markers) without submitting anything. */
int avsr_sched_slurm_poll(avsr_sched_db *db, const avsr_sched_opts *o, avsr_error *err);

/* scancel every active Slurm attempt; they end as cancelled. */
int avsr_sched_slurm_cancel(avsr_sched_db *db, const avsr_sched_opts *o, avsr_error *err);

/* The template directory in use (see avsr_sched_opts.template_dir); NULL
 * with err when none has avsr-job.sbatch. */
char *avsr_sched_slurm_template_dir(const avsr_sched_opts *o, avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
