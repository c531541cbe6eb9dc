/* sched: run a plan (sched/plan.h) to the end on a backend, and the
 * commands around it (status refresh, cancel).
 *
 * avsr_sched_run() takes <exp_dir>/sched.lock (one scheduler per
 * experiment), brings <exp_dir>/sched.db up to the plan
 * (avsr_sched_state_define), recovers attempts that a killed scheduler left
 * behind and then runs the local backend (sched/local.h: subprocesses
 * within a slot budget) or the Slurm backend (sched/slurm.h: sbatch with
 * afterok dependencies and job arrays) until every job is done or nothing
 * more can run. Finished jobs are never run again; re-running after a
 * failure gives failed jobs a fresh retry budget.
 * See docs/tools/avsr-sched.md. */
#ifndef AVSR_SCHED_SCHED_H
#define AVSR_SCHED_SCHED_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "error.h"
#include "sched/plan.h"
#include "sched/state.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_sched_opts {
    const char *backend;        /* "local" (default) or "slurm" */
    int slots;                  /* local: ranks running at once (0 = online cores) */
    avsr_sched_limits limits;   /* retries 3, max_requeues 20 */
    double poll_s;              /* state polling period (0 = 0.2 s local, 5 s Slurm) */
    double grace_s;             /* stop: SIGTERM, then SIGKILL after this (default 60) */
    /* Slurm */
    const char *launcher;       /* MPI jobs: "srun" (default) or "mpirun" */
    const char *srun_mpi;       /* srun --mpi=TYPE (default "pmix", which Debian's
                                 * Open MPI needs); NULL, "" or "default": the
                                 * cluster's MpiDefault */
    const char *template_dir;   /* NULL: $AVSR_SLURM_TEMPLATES, the installed
                                 * templates, the source tree's launch/slurm */
    const char *const *sbatch_opts; /* extra #SBATCH lines ("--partition=gpu") */
    int n_sbatch_opts;
    bool detach;                /* submit and return without watching */
    /* both */
    volatile sig_atomic_t *stop; /* set (by a signal handler) to stop: local jobs
                                  * get SIGTERM and are requeued; Slurm jobs keep
                                  * running */
    FILE *log;                  /* progress lines (NULL = none) */
} avsr_sched_opts;

typedef struct avsr_sched_summary {
    int total, done, failed, cancelled, active, pending;
    bool stopped;               /* ended by opts.stop */
} avsr_sched_summary;

void avsr_sched_opts_default(avsr_sched_opts *o);

/* Run the plan. 0 when the scheduler did its work (look at the summary:
 * done == total is success); -1 on errors of the scheduler itself. */
int avsr_sched_run(const avsr_sched_plan *p, const avsr_sched_opts *o, avsr_sched_summary *sum,
                   avsr_error *err);

/* Bring the database up to date without running anything new: when no
 * scheduler holds the lock, ended local attempts are collected and Slurm
 * jobs are polled once. *busy = a scheduler is running (nothing done). */
int avsr_sched_refresh(const char *exp_dir, const avsr_sched_opts *o, bool *busy,
                       avsr_error *err);

/* Stop everything: SIGTERM to a running scheduler (waits for it to stop),
 * local jobs' process groups stopped, Slurm jobs scancel'ed; every job not
 * done becomes cancelled. *n = the number of jobs cancelled. */
int avsr_sched_cancel(const char *exp_dir, const avsr_sched_opts *o, int *n, avsr_error *err);

/* The summary of rows (counts by state). */
void avsr_sched_summarize(const avsr_sched_row *rows, int n, avsr_sched_summary *s);

#ifdef __cplusplus
}
#endif

#endif
