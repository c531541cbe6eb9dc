/* local: jobs as monitored subprocesses within a slot budget (see local.h). */
#define _GNU_SOURCE /* pipe2 */
#include "sched/local.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sched/proc.h"

#define EXIT_PREEMPTED 75

/* <log without .log>.exit */
static void exit_path(const char *log, char *buf, size_t size)
{
    size_t n = strlen(log);
    if (n > 4 && strcmp(log + n - 4, ".log") == 0)
        n -= 4;
    snprintf(buf, size, "%.*s.exit", (int)n, log);
}

/* Read an exit file: 1 and the outcome when present, 0 when absent. */
static int read_exit(const char *log, avsr_sched_outcome *out, char *status, size_t size)
{
    char path[PATH_MAX];
    exit_path(log, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[64] = "";
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    int v = -1;
    snprintf(status, size, "%s", line);
    if (sscanf(line, "exit %d", &v) == 1) {
        *out = v == 0 ? AVSR_SCHED_OUT_DONE
             : v == EXIT_PREEMPTED ? AVSR_SCHED_OUT_PREEMPTED
                                   : AVSR_SCHED_OUT_FAILED;
    } else if (strcmp(line, "unstarted") == 0) {
        *out = AVSR_SCHED_OUT_INTERRUPTED;
    } else {
        *out = AVSR_SCHED_OUT_FAILED; /* "signal N" (or a damaged file) */
    }
    return 1;
}

/* ---- the monitor process --------------------------------------------------- */

static void write_exit_file(const char *log, const char *text)
{
    char path[PATH_MAX], tmp[PATH_MAX + 32];
    exit_path(log, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int ok = w == (ssize_t)n && fsync(fd) == 0;
    close(fd);
    if (ok && rename(tmp, path) == 0) {
        /* the directory entry too */
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = '\0';
            int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
        }
    } else {
        unlink(tmp);
    }
}

/* the monitor's job, for its SIGUSR1 handler */
static volatile pid_t monitor_child = 0;

static void monitor_forward(int sig)
{
    if (monitor_child > 0)
        kill(monitor_child, sig);
}

/* The monitor: runs in its own session, waits for the go byte, runs the job,
 * records its status. SIGUSR1 is passed on to the job's process (mpirun
 * forwards it to every rank). Never returns. */
static void monitor_main(int go, char *const *argv, const char *log)
{
    setsid();
    signal(SIGTERM, SIG_IGN); /* the process group's SIGTERM is for the job */
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = monitor_forward;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &old);
    int lfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0)
        dup2(nul, 0);
    if (lfd >= 0) {
        dup2(lfd, 1);
        dup2(lfd, 2);
    }
    if (go != 3) {
        dup2(go, 3);
        go = 3;
    }
    /* nothing of the scheduler's (database, lock) stays open here */
    for (int fd = 4; fd < 1024; fd++)
        close(fd);
    char b;
    ssize_t r;
    while ((r = read(go, &b, 1)) < 0 && errno == EINTR)
        ;
    close(go);
    if (r != 1) {
        write_exit_file(log, "unstarted\n");
        _exit(0);
    }
    /* SIGUSR1 stays blocked until the child's pid is known */
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "avsr-sched: fork: %s\n", strerror(errno));
        write_exit_file(log, "exit 127\n");
        _exit(0);
    }
    if (child == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGUSR1, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(argv[0], argv);
        fprintf(stderr, "avsr-sched: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    monitor_child = child;
    sigprocmask(SIG_SETMASK, &old, NULL);
    int st = 0;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR)
        ;
    char text[64];
    if (WIFEXITED(st))
        snprintf(text, sizeof text, "exit %d\n", WEXITSTATUS(st));
    else
        snprintf(text, sizeof text, "signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    write_exit_file(log, text);
    _exit(0);
}

/* ---- starting a job --------------------------------------------------------- */

typedef struct runner {
    avsr_sched_db *db;
    const avsr_sched_opts *o;
    char **mpirun;
    int mpirun_argc;
} runner;

static char **job_argv(runner *R, const avsr_sched_row *r, avsr_error *err)
{
    char *prog = avsr_sched_proc_resolve(r->def.argv[0], err);
    if (!prog)
        return NULL;
    int extra = r->def.mpi ? R->mpirun_argc + 2 : 0;
    char **v = calloc((size_t)(extra + r->def.argc + 1), sizeof *v);
    if (!v) {
        free(prog);
        AVSR_NOMEM(err, 64);
        return NULL;
    }
    int k = 0;
    bool oom = false;
    if (r->def.mpi) {
        for (int i = 0; i < R->mpirun_argc; i++)
            oom |= !(v[k++] = strdup(R->mpirun[i]));
        char np[16];
        snprintf(np, sizeof np, "%d", r->def.ranks);
        oom |= !(v[k++] = strdup("-np"));
        oom |= !(v[k++] = strdup(np));
    }
    v[k++] = prog;
    for (int i = 1; i < r->def.argc; i++)
        oom |= !(v[k++] = strdup(r->def.argv[i]));
    if (oom) {
        avsr_sched_proc_free_argv(v);
        AVSR_NOMEM(err, 64);
        return NULL;
    }
    return v;
}

static int start_job(runner *R, avsr_sched_row *r, avsr_error *err)
{
    const char *dir = avsr_sched_state_dir(R->db);
    char logdir[PATH_MAX], log[PATH_MAX];
    snprintf(logdir, sizeof logdir, "%s/logs", dir);
    if (mkdir(logdir, 0777) != 0 && errno != EEXIST)
        return avsr_error_set(err, AVSR_ERR_IO, "%s: cannot create directory: %s", logdir,
                              strerror(errno));
    snprintf(log, sizeof log, "%s/logs/%s.%d.log", dir, r->def.name, r->attempts + 1);
    char **argv = job_argv(R, r, err);
    if (!argv)
        return -1;
    /* the log starts with what is run */
    FILE *lf = fopen(log, "a");
    if (!lf) {
        int e = errno;
        avsr_sched_proc_free_argv(argv);
        return avsr_error_set(err, AVSR_ERR_IO, "%s: cannot create: %s", log, strerror(e));
    }
    time_t now = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&now));
    fprintf(lf, "# avsr-sched: job %s, attempt %d, %s:", r->def.name, r->attempts + 1, when);
    for (char **a = argv; *a; a++) {
        char *q = avsr_sched_proc_shell_quote(*a);
        fprintf(lf, " %s", q ? q : *a);
        free(q);
    }
    fputc('\n', lf);
    fclose(lf);
    if (avsr_sched_state_begin(R->db, r, "local", log, err) < 0) {
        avsr_sched_proc_free_argv(argv);
        return -1;
    }
    int go[2];
    if (pipe2(go, O_CLOEXEC) != 0) {
        avsr_sched_proc_free_argv(argv);
        return avsr_error_set(err, AVSR_ERR_IO, "pipe: %s", strerror(errno));
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(go[0]);
        close(go[1]);
        avsr_sched_proc_free_argv(argv);
        return avsr_error_set(err, AVSR_ERR_IO, "fork: %s", strerror(e));
    }
    if (pid == 0) {
        close(go[1]);
        monitor_main(go[0], argv, log);
    }
    close(go[0]);
    avsr_sched_proc_free_argv(argv);
    /* the identity is stored before the job may start */
    long long t = 0;
    char boot[64];
    avsr_sched_proc_boot_id(boot, sizeof boot);
    for (int i = 0; i < 1000 && avsr_sched_proc_start_time(pid, &t) < 0; i++)
        avsr_sched_sleep(0.001);
    r->cur.pid = (long)pid;
    r->cur.pid_start = t;
    free(r->cur.boot_id);
    r->cur.boot_id = strdup(boot);
    r->cur.state = AVSR_SCHED_ATT_RUNNING;
    r->cur.started = avsr_sched_state_now();
    int rc = avsr_sched_state_update(R->db, r, err);
    if (rc == 0) {
        char b = 'g';
        ssize_t w;
        while ((w = write(go[1], &b, 1)) < 0 && errno == EINTR)
            ;
        if (w != 1)
            rc = avsr_error_set(err, AVSR_ERR_IO, "job %s: cannot start its monitor: %s",
                                r->def.name, strerror(errno));
    }
    close(go[1]); /* without the byte, the monitor records "unstarted" */
    if (rc == 0)
        avsr_sched_say(R->o->log, "%s: started (attempt %d, %d rank%s): %s", r->def.name, r->cur.n,
            r->def.ranks, r->def.ranks == 1 ? "" : "s", log);
    return rc;
}

/* ---- collecting outcomes ------------------------------------------------------ */

/* Signal the process group of an attempt whose monitor is gone; wait until
 * the group is empty (SIGKILL after grace). */
static void kill_group(long pgid, double grace)
{
    if (pgid <= 1 || kill(-(pid_t)pgid, 0) != 0)
        return;
    kill(-(pid_t)pgid, SIGTERM);
    double t0 = avsr_sched_state_now();
    while (kill(-(pid_t)pgid, 0) == 0 && avsr_sched_state_now() - t0 < grace)
        avsr_sched_sleep(0.05);
    if (kill(-(pid_t)pgid, 0) == 0)
        kill(-(pid_t)pgid, SIGKILL);
}

static void report_end(const avsr_sched_opts *o, const avsr_sched_row *r,
                       avsr_sched_outcome out, const char *status)
{
    const char *next = r->state == AVSR_SCHED_DONE      ? "done"
                       : r->state == AVSR_SCHED_FAILED    ? "failed: retry limit reached"
                       : r->state == AVSR_SCHED_CANCELLED ? "cancelled"
                                                          : "requeued";
    avsr_sched_say(o->log, "%s: attempt %d %s (%s, failures %d, requeues %d): %s; log %s", r->def.name, r->cur.n,
        avsr_sched_outcome_name(out), status && *status ? status : "no exit status",
        r->failures, r->requeues, next, r->cur.log_path ? r->cur.log_path : "-");
}

/* One active attempt: 1 if it ended (recorded), 0 if it still runs. With
 * stopped set (the scheduler signalled it), a failure or a loss is recorded
 * as *stopped instead (interrupted or cancelled: not counted). */
static int collect_one(avsr_sched_db *db, const avsr_sched_opts *o, avsr_sched_row *r,
                       const avsr_sched_outcome *stopped, avsr_error *err)
{
    avsr_sched_outcome out;
    char status[64] = "";
    if (r->cur.state == AVSR_SCHED_ATT_STARTING && r->cur.pid <= 0) {
        /* a scheduler died between recording the attempt and forking */
        if (avsr_sched_state_end(db, r, AVSR_SCHED_OUT_INTERRUPTED, NULL, &o->limits, err) < 0)
            return -1;
        report_end(o, r, AVSR_SCHED_OUT_INTERRUPTED, "never started");
        return 1;
    }
    if (!r->cur.log_path)
        return avsr_error_set(err, AVSR_ERR_INVALID, "job %s attempt %d: no log path",
                              r->def.name, r->cur.n);
    int have = read_exit(r->cur.log_path, &out, status, sizeof status);
    if (!have) {
        if (avsr_sched_proc_same((pid_t)r->cur.pid, r->cur.pid_start, r->cur.boot_id))
            return 0;
        /* gone (or a zombie): it writes the file before exiting */
        have = read_exit(r->cur.log_path, &out, status, sizeof status);
    }
    if (!have) {
        char boot[64];
        avsr_sched_proc_boot_id(boot, sizeof boot);
        if (r->cur.boot_id && strcmp(r->cur.boot_id, boot) == 0)
            kill_group(r->cur.pid, o->grace_s);
        out = stopped ? *stopped : AVSR_SCHED_OUT_LOST;
        snprintf(status, sizeof status, "monitor gone without an exit status");
        if (avsr_sched_state_end(db, r, out, NULL, &o->limits, err) < 0)
            return -1;
    } else {
        if (stopped && out == AVSR_SCHED_OUT_FAILED)
            out = *stopped;
        if (avsr_sched_state_end(db, r, out, status, &o->limits, err) < 0)
            return -1;
    }
    report_end(o, r, out, status);
    return 1;
}

static void reap(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

int avsr_sched_local_collect(avsr_sched_db *db, const avsr_sched_opts *o, bool stop,
                             avsr_sched_outcome outcome, avsr_error *err)
{
    avsr_sched_row *rows;
    int n;
    if (avsr_sched_state_load(db, &rows, &n, err) < 0)
        return -1;
    int rc = 0;
    reap();
    for (int i = 0; i < n && rc == 0; i++)
        if (rows[i].active && strcmp(rows[i].cur.backend, "local") == 0)
            rc = collect_one(db, o, &rows[i], NULL, err) < 0 ? -1 : 0;
    if (rc < 0 || !stop) {
        avsr_sched_state_rows_free(rows, n);
        return rc;
    }
    /* stop what still runs: MPI jobs get SIGUSR1 through their monitor (mpirun
     * forwards it to the ranks, which checkpoint and exit 75; SIGTERM to
     * mpirun itself would make it exit 1 and kill ranks still writing),
     * other jobs SIGTERM to their process group (the monitor ignores it) */
    int left = 0;
    for (int i = 0; i < n; i++) {
        avsr_sched_row *r = &rows[i];
        if (!r->active || strcmp(r->cur.backend, "local") != 0)
            continue;
        if (avsr_sched_proc_same((pid_t)r->cur.pid, r->cur.pid_start, r->cur.boot_id)) {
            if (r->def.mpi) {
                avsr_sched_say(o->log, "%s: stopping (SIGUSR1 to mpirun, which passes it to the ranks)",
                    r->def.name);
                kill((pid_t)r->cur.pid, SIGUSR1);
            } else {
                avsr_sched_say(o->log, "%s: stopping (SIGTERM to its process group)", r->def.name);
                kill(-(pid_t)r->cur.pid, SIGTERM);
            }
            left++;
        }
    }
    double t0 = avsr_sched_state_now();
    bool killed = false;
    while (rc == 0 && left > 0) {
        reap();
        left = 0;
        for (int i = 0; i < n && rc == 0; i++) {
            avsr_sched_row *r = &rows[i];
            if (!r->active || strcmp(r->cur.backend, "local") != 0)
                continue;
            int e = collect_one(db, o, r, &outcome, err);
            if (e < 0)
                rc = -1;
            else if (e == 0)
                left++;
        }
        if (left == 0 || rc < 0)
            break;
        double waited = avsr_sched_state_now() - t0;
        if (!killed && waited > o->grace_s) {
            for (int i = 0; i < n; i++)
                if (rows[i].active && strcmp(rows[i].cur.backend, "local") == 0) {
                    avsr_sched_say(o->log, "%s: still running after %.0f s: SIGKILL", rows[i].def.name,
                        o->grace_s);
                    kill(-(pid_t)rows[i].cur.pid, SIGKILL);
                }
            killed = true;
        }
        avsr_sched_sleep(0.05);
    }
    avsr_sched_state_rows_free(rows, n);
    return rc;
}

/* ---- the loop ------------------------------------------------------------------ */

static bool deps_done(const avsr_sched_row *rows, const avsr_sched_row *r)
{
    for (int d = 0; d < r->def.n_deps; d++)
        if (r->dep_rows[d] < 0 || rows[r->dep_rows[d]].state != AVSR_SCHED_DONE)
            return false;
    return true;
}

int avsr_sched_local_run(avsr_sched_db *db, const avsr_sched_opts *o, avsr_error *err)
{
    runner R = {db, o, NULL, 0};
    avsr_sched_row *rows = NULL;
    int n = 0, rc = 0;
    double poll = o->poll_s > 0 ? o->poll_s : 0.2;
    int slots = o->slots;
    if (slots <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        slots = c > 0 ? (int)c : 1;
    }
    /* checks before anything starts: sizes, programs, the MPI launcher */
    if (avsr_sched_state_load(db, &rows, &n, err) < 0)
        return -1;
    bool need_mpi = false;
    for (int i = 0; i < n && rc == 0; i++) {
        const avsr_sched_row *r = &rows[i];
        if (r->state == AVSR_SCHED_DONE)
            continue;
        if (r->def.ranks > slots) {
            rc = avsr_error_set(err, AVSR_ERR_INVALID,
                                "job %s needs %d ranks but --slots is %d", r->def.name,
                                r->def.ranks, slots);
            break;
        }
        char *p = avsr_sched_proc_resolve(r->def.argv[0], err);
        if (!p) {
            avsr_error_prefix(err, "job %s: ", r->def.name);
            rc = -1;
            break;
        }
        free(p);
        need_mpi = need_mpi || r->def.mpi;
    }
    for (int i = 0; i < n; i++)
        if (rows[i].active && strcmp(rows[i].cur.backend, "local") == 0 &&
            avsr_sched_proc_same((pid_t)rows[i].cur.pid, rows[i].cur.pid_start,
                                 rows[i].cur.boot_id))
            avsr_sched_say(o->log, "%s: attempt %d still running from an earlier scheduler (monitor pid %ld): "
                   "adopted", rows[i].def.name, rows[i].cur.n, rows[i].cur.pid);
    avsr_sched_state_rows_free(rows, n);
    rows = NULL;
    n = 0;
    if (rc < 0)
        return -1;
    if (need_mpi && !(R.mpirun = avsr_sched_proc_mpirun(&R.mpirun_argc, err)))
        return -1;
    avsr_sched_say(o->log, "local backend: %d slot%s, retries %d", slots, slots == 1 ? "" : "s",
        o->limits.retries);

    for (;;) {
        if (o->stop && *o->stop) {
            avsr_sched_say(o->log, "stopping: running jobs are stopped and requeued");
            rc = avsr_sched_local_collect(db, o, true, AVSR_SCHED_OUT_INTERRUPTED, err);
            break;
        }
        if (avsr_sched_local_collect(db, o, false, AVSR_SCHED_OUT_INTERRUPTED, err) < 0) {
            rc = -1;
            break;
        }
        if (avsr_sched_state_load(db, &rows, &n, err) < 0) {
            rc = -1;
            break;
        }
        int used = 0, running = 0, started = 0;
        for (int i = 0; i < n; i++)
            if (rows[i].active) {
                used += rows[i].def.ranks;
                running++;
            }
        for (int i = 0; i < n && rc == 0; i++) {
            avsr_sched_row *r = &rows[i];
            if (r->state != AVSR_SCHED_PENDING || r->active || !deps_done(rows, r))
                continue;
            if (used + r->def.ranks > slots)
                continue;
            if (start_job(&R, r, err) < 0) {
                rc = -1;
                break;
            }
            used += r->def.ranks;
            started++;
        }
        avsr_sched_state_rows_free(rows, n);
        rows = NULL;
        n = 0;
        if (rc < 0) {
            /* leave nothing running behind an error of the scheduler */
            avsr_error e2 = {0};
            avsr_sched_local_collect(db, o, true, AVSR_SCHED_OUT_INTERRUPTED, &e2);
            break;
        }
        if (running == 0 && started == 0)
            break; /* everything done, or the rest waits on failed jobs */
        avsr_sched_sleep(poll);
    }
    avsr_sched_proc_free_argv(R.mpirun);
    return rc;
}
