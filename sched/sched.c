/* sched: the lock, the backends' dispatch, refresh and cancel (see sched.h). */
#include "sched/sched.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "sched/local.h"
#include "sched/proc.h"
#include "sched/slurm.h"

void avsr_sched_opts_default(avsr_sched_opts *o)
{
    memset(o, 0, sizeof *o);
    o->backend = "local";
    o->limits.retries = 3;
    o->limits.max_requeues = 20;
    o->grace_s = 60;
    o->launcher = "srun";
    o->srun_mpi = "pmix";
}

void avsr_sched_summarize(const avsr_sched_row *rows, int n, avsr_sched_summary *s)
{
    memset(s, 0, sizeof *s);
    s->total = n;
    for (int i = 0; i < n; i++) {
        switch (rows[i].state) {
        case AVSR_SCHED_DONE: s->done++; break;
        case AVSR_SCHED_FAILED: s->failed++; break;
        case AVSR_SCHED_CANCELLED: s->cancelled++; break;
        case AVSR_SCHED_QUEUED:
        case AVSR_SCHED_RUNNING: s->active++; break;
        default: s->pending++; break;
        }
    }
}

/* ---- the lock: one scheduler per experiment directory ----------------------- */

static int lock_open(const char *exp_dir, avsr_error *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/sched.lock", exp_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        avsr_error_set(err, AVSR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return fd;
}

/* 1 locked, 0 busy, -1 error */
static int lock_try(int fd, avsr_error *err)
{
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return 1;
    if (errno == EWOULDBLOCK)
        return 0;
    return avsr_error_set(err, AVSR_ERR_IO, "sched.lock: flock: %s", strerror(errno));
}

static int record_self(avsr_sched_db *db, const char *backend, avsr_error *err)
{
    char pid[32], start[32], boot[64];
    long long t = 0;
    avsr_sched_proc_start_time(getpid(), &t);
    avsr_sched_proc_boot_id(boot, sizeof boot);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    snprintf(start, sizeof start, "%lld", t);
    if (avsr_sched_state_meta_set(db, "scheduler_pid", pid, err) < 0 ||
        avsr_sched_state_meta_set(db, "scheduler_start", start, err) < 0 ||
        avsr_sched_state_meta_set(db, "scheduler_boot", boot, err) < 0)
        return -1;
    return backend ? avsr_sched_state_meta_set(db, "backend", backend, err) : 0;
}

static void forget_self(avsr_sched_db *db)
{
    avsr_sched_state_meta_set(db, "scheduler_pid", NULL, NULL);
    avsr_sched_state_meta_set(db, "scheduler_start", NULL, NULL);
    avsr_sched_state_meta_set(db, "scheduler_boot", NULL, NULL);
}

/* The pid of the scheduler recorded in the database if it still runs, else 0. */
static long running_scheduler(avsr_sched_db *db)
{
    char *pid = NULL, *start = NULL, *boot = NULL;
    long r = 0;
    avsr_sched_state_meta_get(db, "scheduler_pid", &pid, NULL);
    avsr_sched_state_meta_get(db, "scheduler_start", &start, NULL);
    avsr_sched_state_meta_get(db, "scheduler_boot", &boot, NULL);
    if (pid && start && avsr_sched_proc_same((pid_t)atol(pid), atoll(start), boot))
        r = atol(pid);
    free(pid);
    free(start);
    free(boot);
    return r;
}

static int busy_error(avsr_sched_db *db, const char *exp_dir, avsr_error *err)
{
    long pid = running_scheduler(db);
    if (pid)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: another avsr-sched (pid %ld) is running this experiment",
                              exp_dir, pid);
    return avsr_error_set(err, AVSR_ERR_INVALID,
                          "%s: another avsr-sched holds %s/sched.lock", exp_dir, exp_dir);
}

/* Active attempts of the other backend: the experiment cannot switch now. */
static int check_backend(avsr_sched_db *db, const char *backend, avsr_error *err)
{
    avsr_sched_row *rows;
    int n;
    if (avsr_sched_state_load(db, &rows, &n, err) < 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].active && strcmp(rows[i].cur.backend, backend) != 0) {
            rc = avsr_error_set(err, AVSR_ERR_INVALID,
                                "%s: job %s is active on the %s backend: run with --backend "
                                "%s, or stop it with avsr-sched cancel",
                                avsr_sched_state_dir(db), rows[i].def.name,
                                rows[i].cur.backend, rows[i].cur.backend);
            break;
        }
    avsr_sched_state_rows_free(rows, n);
    return rc;
}

int avsr_sched_run(const avsr_sched_plan *p, const avsr_sched_opts *o, avsr_sched_summary *sum,
                   avsr_error *err)
{
    const char *backend = o->backend ? o->backend : "local";
    if (strcmp(backend, "local") != 0 && strcmp(backend, "slurm") != 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "backend '%s': expected local or slurm",
                              backend);
    if (avsr_sched_plan_check(p, err) < 0)
        return -1;
    avsr_sched_db *db = avsr_sched_state_open(p->exp_dir, err);
    if (!db)
        return -1;
    int fd = lock_open(p->exp_dir, err);
    int rc = fd < 0 ? -1 : lock_try(fd, err);
    /* `status` and `cancel` hold the lock for a moment; a scheduler holds it
     * for good (and says so in the database) */
    struct timespec ts = {0, 100000000};
    for (int i = 0; rc == 0 && i < 50 && !running_scheduler(db); i++) {
        nanosleep(&ts, NULL);
        rc = lock_try(fd, err);
    }
    if (rc == 0)
        rc = busy_error(db, p->exp_dir, err);
    if (rc < 0)
        goto out;
    rc = 0;
    if (check_backend(db, backend, err) < 0 || record_self(db, backend, err) < 0 ||
        avsr_sched_state_define(db, p, err) < 0) {
        rc = -1;
        goto unlock;
    }
    if (strcmp(backend, "local") == 0)
        rc = avsr_sched_local_run(db, o, err);
    else
        rc = avsr_sched_slurm_run(db, o, err);
    if (sum) {
        avsr_sched_row *rows;
        int n;
        avsr_error e2 = {0};
        if (avsr_sched_state_load(db, &rows, &n, &e2) == 0) {
            avsr_sched_summarize(rows, n, sum);
            avsr_sched_state_rows_free(rows, n);
        }
        sum->stopped = o->stop && *o->stop;
    }
unlock:
    forget_self(db);
out:
    if (fd >= 0)
        close(fd); /* releases the lock */
    avsr_sched_state_close(db);
    return rc;
}

static bool has_active(avsr_sched_db *db, const char *backend)
{
    avsr_sched_row *rows;
    int n;
    if (avsr_sched_state_load(db, &rows, &n, NULL) < 0)
        return false;
    bool any = false;
    for (int i = 0; i < n && !any; i++)
        any = rows[i].active && strcmp(rows[i].cur.backend, backend) == 0;
    avsr_sched_state_rows_free(rows, n);
    return any;
}

int avsr_sched_refresh(const char *exp_dir, const avsr_sched_opts *o, bool *busy,
                       avsr_error *err)
{
    *busy = false;
    avsr_sched_db *db = avsr_sched_state_open(exp_dir, err);
    if (!db)
        return -1;
    int fd = lock_open(exp_dir, err);
    int rc = fd < 0 ? -1 : lock_try(fd, err);
    if (rc == 0)
        *busy = true;
    if (rc == 1) {
        rc = avsr_sched_local_collect(db, o, false, AVSR_SCHED_OUT_INTERRUPTED, err);
        if (rc == 0 && has_active(db, "slurm"))
            rc = avsr_sched_slurm_poll(db, o, err);
    }
    if (fd >= 0)
        close(fd);
    avsr_sched_state_close(db);
    return rc < 0 ? -1 : 0;
}

int avsr_sched_cancel(const char *exp_dir, const avsr_sched_opts *o, int *n_cancelled,
                      avsr_error *err)
{
    *n_cancelled = 0;
    avsr_sched_db *db = avsr_sched_state_open(exp_dir, err);
    if (!db)
        return -1;
    int fd = lock_open(exp_dir, err);
    int rc = fd < 0 ? -1 : lock_try(fd, err);
    if (rc == 0) {
        /* a scheduler runs: SIGTERM makes it stop its jobs and exit */
        long pid = running_scheduler(db);
        if (pid) {
            if (o->log)
                fprintf(o->log, "avsr-sched: stopping the scheduler (pid %ld)\n", pid);
            kill((pid_t)pid, SIGTERM);
        }
        double wait = o->grace_s + 30;
        struct timespec ts = {0, 100000000};
        for (double t = 0; rc == 0 && t < wait; t += 0.1) {
            nanosleep(&ts, NULL);
            rc = lock_try(fd, err);
        }
        if (rc == 0)
            rc = avsr_error_set(err, AVSR_ERR_INVALID,
                                "%s: the scheduler%s did not stop in %.0f s", exp_dir,
                                pid ? " (SIGTERM sent)" : "", wait);
    }
    if (rc < 0)
        goto out;
    rc = avsr_sched_local_collect(db, o, true, AVSR_SCHED_OUT_CANCELLED, err);
    if (rc == 0 && has_active(db, "slurm"))
        rc = avsr_sched_slurm_cancel(db, o, err);
    if (rc == 0) {
        avsr_sched_row *rows = NULL;
        int n = 0;
        rc = avsr_sched_state_load(db, &rows, &n, err);
        for (int i = 0; rc == 0 && i < n; i++)
            if (rows[i].state != AVSR_SCHED_DONE && !rows[i].active) {
                if (rows[i].state != AVSR_SCHED_CANCELLED)
                    ++*n_cancelled;
                rc = avsr_sched_state_set(db, &rows[i], AVSR_SCHED_CANCELLED, err);
            }
        avsr_sched_state_rows_free(rows, n);
    }
out:
    if (fd >= 0)
        close(fd);
    avsr_sched_state_close(db);
    return rc < 0 ? -1 : 0;
}
