/* plan: the job graph (DAG) that avsr-sched runs.
 *
 * A plan is a named list of jobs, each a command line with the number of
 * ranks it needs and the names of the jobs it waits for. avsr-sched makes
 * one from a recipe (sched/recipe_plan.h: training stages, average, one
 * evaluation job per sweep point, report) or reads one from a JSON file
 * (`avsr-sched plan` prints that form; `avsr-sched run plan.json` runs it,
 * which is also how the tests give the scheduler small shell-command jobs).
 * The JSON form is documented in docs/tools/avsr-sched.md.
 *
 * avsr_sched_plan_check() validates names, dependencies (known, no cycle)
 * and array groups; the engines only see checked plans. */
#ifndef AVSR_SCHED_PLAN_H
#define AVSR_SCHED_PLAN_H

#include <stdbool.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_sched_job {
    char *name;          /* unique; [A-Za-z0-9_.:+-]+, not starting with '.' or '-' */
    char *kind;          /* "stage", "average", "eval", "report", "command" */
    int ranks;           /* slots (MPI ranks, Slurm tasks) it needs; >= 1 */
    bool mpi;            /* launched with mpirun/srun on `ranks` ranks; otherwise
                          * run as it is (and ranks must be 1) */
    int gpus_per_rank;   /* Slurm: --gpus-per-task (0 = none) */
    char **argv;         /* the command; argv[0] without '/' is a program name
                          * resolved when the job starts (docs: "Programs") */
    int argc;
    char **deps;         /* names of the jobs that must be done first */
    int n_deps;
    char *array;         /* Slurm: jobs with the same group are submitted as one
                          * job array (NULL = alone) */
    char *point;         /* evaluation sweep point "MODALITY:NOISE:SNR" or NULL */
    char *result;        /* JSON file whose "wer" status shows when done, or NULL */
} avsr_sched_job;

typedef struct avsr_sched_plan {
    char *name;
    char *exp_dir;       /* where sched.db, logs/ and slurm/ go */
    avsr_sched_job *jobs;
    int n_jobs;
} avsr_sched_plan;

/* An empty plan. NULL when out of memory (err set). */
avsr_sched_plan *avsr_sched_plan_new(const char *name, const char *exp_dir, avsr_error *err);
/* Append a deep copy of job (kind NULL = "command"). */
int avsr_sched_plan_add(avsr_sched_plan *p, const avsr_sched_job *job, avsr_error *err);
void avsr_sched_plan_free(avsr_sched_plan *p);

/* Index of the job called name, or -1. */
int avsr_sched_plan_find(const avsr_sched_plan *p, const char *name);

/* Validate: names well formed and unique, dependencies known and acyclic
 * ("dependency cycle: a -> b -> a"), ranks >= 1, non-MPI jobs on 1 rank,
 * members of one array group alike (ranks, mpi, gpus_per_rank, deps). */
int avsr_sched_plan_check(const avsr_sched_plan *p, avsr_error *err);

/* Read and check a plan file (JSON). Messages name the file and the job:
 * "p.json: jobs[2] (b): unknown key 'foo'". */
avsr_sched_plan *avsr_sched_plan_read(const char *path, avsr_error *err);
/* The plan as JSON text (malloc'd, ends in a newline); NULL when out of memory. */
char *avsr_sched_plan_json(const avsr_sched_plan *p);

/* A file-name-safe job name check (the rule above). */
bool avsr_sched_plan_name_ok(const char *name);

#ifdef __cplusplus
}
#endif

#endif
