/* state: the scheduler's SQLite database, <exp_dir>/sched.db.
 *
 * Tables (schema in docs/tools/avsr-sched.md, "State database"):
 *   meta      key/value: schema version, backend, the running scheduler's
 *             identity (pid, start time, boot id), a random token
 *   jobs      one row per job of the plan: definition, state, attempt,
 *             failure and requeue counts, last exit status and log, times
 *   deps      (job, dep) pairs
 *   attempts  one row per run (local) or submission (Slurm) of a job:
 *             process identity or Slurm job id, times, exit status, outcome
 * Every change is one transaction, so a scheduler killed at any point
 * leaves a consistent database. The retry policy lives here
 * (avsr_sched_state_end): an exit status of 0 makes the job done, 75 (the
 * worker was preempted and saved its state) puts it back in the queue
 * without counting a failure, anything else counts a failure and retries
 * the job while failures <= retries. */
#ifndef AVSR_SCHED_STATE_H
#define AVSR_SCHED_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "sched/plan.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum avsr_sched_jstate {
    AVSR_SCHED_PENDING = 0,   /* waiting: dependencies, slots, or (re)submission */
    AVSR_SCHED_QUEUED = 1,    /* Slurm: submitted, not running yet */
    AVSR_SCHED_RUNNING = 2,
    AVSR_SCHED_DONE = 3,
    AVSR_SCHED_FAILED = 4,    /* failed more often than the retry limit */
    AVSR_SCHED_CANCELLED = 5  /* by avsr-sched cancel */
} avsr_sched_jstate;

/* How an attempt ended. */
typedef enum avsr_sched_outcome {
    AVSR_SCHED_OUT_DONE = 0,        /* exit 0 */
    AVSR_SCHED_OUT_FAILED = 1,      /* other exit status or a signal: counted */
    AVSR_SCHED_OUT_PREEMPTED = 2,   /* exit 75: requeued, not counted */
    AVSR_SCHED_OUT_INTERRUPTED = 3, /* stopped by the scheduler itself (or never
                                     * started): requeued, not counted */
    AVSR_SCHED_OUT_LOST = 4,        /* gone without an exit status: counted */
    AVSR_SCHED_OUT_CANCELLED = 5
} avsr_sched_outcome;

/* Attempt states */
enum {
    AVSR_SCHED_ATT_STARTING = 0, /* recorded; not started or submitted yet */
    AVSR_SCHED_ATT_QUEUED = 1,
    AVSR_SCHED_ATT_RUNNING = 2,
    AVSR_SCHED_ATT_ENDED = 3
};

typedef struct avsr_sched_attempt {
    int64_t id;          /* 0 = none */
    int n;               /* 1, 2, ... for this job */
    int state;           /* AVSR_SCHED_ATT_* */
    char backend[8];     /* "local" | "slurm" */
    long pid;            /* local: the monitor process (leader of the job's
                          * process group) */
    long long pid_start; /* its start time (ticks since boot) */
    char *boot_id;
    char *slurm_id;      /* "123" or "123_4" (array task) */
    char *slurm_name;    /* the unique --job-name it was submitted with */
    char *script;        /* the rendered sbatch script */
    char *dependency;    /* the --dependency it was submitted (or updated) with */
    int requeues;        /* requeues inside this Slurm job (exit 75 markers) */
    double submitted, started, ended; /* unix time; 0 = not yet */
    char *exit_status;   /* "exit N", "signal N" or NULL */
    char *log_path;
} avsr_sched_attempt;

typedef struct avsr_sched_row {
    int64_t id;
    avsr_sched_job def;  /* the definition (deps by name) */
    int *dep_rows;       /* deps as indices into the rows array */
    avsr_sched_jstate state;
    int attempts, failures, requeues;
    char *exit_status;   /* of the last attempt that ended */
    char *log_path;      /* of the newest attempt */
    double created, started, finished, runtime; /* runtime: sum over attempts, s */
    avsr_sched_attempt cur; /* the active attempt (cur.id != 0), else the newest
                             * ended one (or none) */
    bool active;         /* cur is not ended */
} avsr_sched_row;

typedef struct avsr_sched_limits {
    int retries;         /* failures retried (default 3) */
    int max_requeues;    /* exits 75 before one counts as a failure (default 20) */
} avsr_sched_limits;

typedef struct avsr_sched_db avsr_sched_db;

const char *avsr_sched_jstate_name(avsr_sched_jstate s);
const char *avsr_sched_outcome_name(avsr_sched_outcome o);

/* Open (create) <exp_dir>/sched.db, creating exp_dir if needed. */
avsr_sched_db *avsr_sched_state_open(const char *exp_dir, avsr_error *err);
void avsr_sched_state_close(avsr_sched_db *db);
const char *avsr_sched_state_dir(const avsr_sched_db *db);

/* meta: *value malloc'd, NULL when the key is absent. */
int avsr_sched_state_meta_get(avsr_sched_db *db, const char *key, char **value, avsr_error *err);
int avsr_sched_state_meta_set(avsr_sched_db *db, const char *key, const char *value,
                              avsr_error *err);

/* Make the jobs table match the plan: new jobs are added (pending), jobs
 * that are done stay done, failed and cancelled jobs become pending with a
 * fresh failure count, definitions of jobs not done are updated, jobs no
 * longer in the plan are removed (an error if one of them is active). */
int avsr_sched_state_define(avsr_sched_db *db, const avsr_sched_plan *p, avsr_error *err);

/* All jobs in plan order with their active (or newest) attempt. */
int avsr_sched_state_load(avsr_sched_db *db, avsr_sched_row **rows, int *n, avsr_error *err);
void avsr_sched_state_rows_free(avsr_sched_row *rows, int n);

/* Record a new attempt of r (state AVSR_SCHED_ATT_STARTING, r->cur filled
 * in, attempts counted, job queued (Slurm) or running (local)). */
int avsr_sched_state_begin(avsr_sched_db *db, avsr_sched_row *r, const char *backend,
                           const char *log_path, avsr_error *err);
/* Store r->cur's fields (state, pid, ids, times) and the job state they imply. */
int avsr_sched_state_update(avsr_sched_db *db, avsr_sched_row *r, avsr_error *err);
/* End r's active attempt and apply the retry policy; r is updated. */
int avsr_sched_state_end(avsr_sched_db *db, avsr_sched_row *r, avsr_sched_outcome outcome,
                         const char *exit_status, const avsr_sched_limits *lim,
                         avsr_error *err);
/* Count requeues done inside a running Slurm job (exit 75 + scontrol requeue). */
int avsr_sched_state_add_requeues(avsr_sched_db *db, avsr_sched_row *r, int n, avsr_error *err);
/* Set a job's state directly (cancel). */
int avsr_sched_state_set(avsr_sched_db *db, avsr_sched_row *r, avsr_sched_jstate s,
                         avsr_error *err);

/* Unix time now, in seconds. */
double avsr_sched_state_now(void);

#ifdef __cplusplus
}
#endif

#endif
