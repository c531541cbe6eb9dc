/* avsr-sched: the job scheduler. Expands a recipe into a job DAG (training
 * stages, average, one evaluation job per sweep point, report) or reads a
 * plan file, and runs it on local slots or on Slurm, keeping its state in
 * <exp_dir>/sched.db. See docs/tools/avsr-sched.md. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sched/plan.h"
#include "sched/recipe_plan.h"
#include "sched/sched.h"
#include "sched/state.h"
#include "train/recipe.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: avsr-sched run TARGET [--backend local|slurm] [options]\n"
            "       avsr-sched status TARGET\n"
            "       avsr-sched cancel TARGET\n"
            "       avsr-sched plan TARGET [--eval-ranks K]\n"
            "\n"
            "TARGET is a recipe (.yaml/.yml: its stages, average, evaluation sweep and\n"
            "report become jobs) or a plan file (.json, as `avsr-sched plan` prints).\n"
            "State: <exp_dir>/sched.db; job logs: <exp_dir>/logs/<job>.<attempt>.log.\n"
            "\n"
            "run options:\n"
            "  -b, --backend NAME      local (default) or slurm\n"
            "  -s, --slots N           local: ranks running at once (default: cores)\n"
            "  -r, --retries N         retries of a failed job (default 3)\n"
            "      --max-requeues N    exits 75 (preempted) before one counts as a\n"
            "                          failure (default 20)\n"
            "      --eval-ranks K      MPI ranks of each evaluation job (default 1)\n"
            "      --poll SECONDS      state polling period (local 0.2, Slurm 5)\n"
            "      --grace SECONDS     on stop: SIGTERM, then SIGKILL after this (60)\n"
            "  slurm:\n"
            "      --launcher NAME     srun (default) or mpirun for MPI jobs\n"
            "      --srun-mpi TYPE     srun --mpi=TYPE (default pmix; 'default': the\n"
            "                          cluster's MpiDefault)\n"
            "      --sbatch OPT        an extra #SBATCH line (repeatable), e.g.\n"
            "                          --sbatch=--partition=gpu\n"
            "      --templates DIR     directory of avsr-job.sbatch\n"
            "      --detach            submit and return (run again to watch)\n"
            "  -q, --quiet             no progress lines\n"
            "  -h, --help              this text\n"
            "\n"
            "Programs (avsr-worker, avsr-avg, avsr-eval) are found in $AVSR_BIN_DIR, then\n"
            "beside avsr-sched, then in PATH; MPI jobs start with $MPIRUN (default mpirun).\n"
            "Exit status: 0 every job done, 1 a job failed (or is blocked by one) or an\n"
            "error, 2 usage, 128+N stopped by signal N (jobs requeued; run again).\n");
}

static volatile sig_atomic_t stop_flag = 0;
static volatile sig_atomic_t stop_signal = 0;

static void on_signal(int sig)
{
    stop_flag = 1;
    stop_signal = sig;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int parse_int(const char *opt, const char *s, int lo, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > INT_MAX) {
        fprintf(stderr, "avsr-sched: %s: got '%s', expected an integer >= %d\n", opt, s, lo);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_secs(const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || v > 86400) {
        fprintf(stderr, "avsr-sched: %s: got '%s', expected seconds > 0\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* The plan of TARGET: a recipe or a plan file. */
static avsr_sched_plan *load_target(const char *target, int eval_ranks, avsr_error *err)
{
    if (ends_with(target, ".json"))
        return avsr_sched_plan_read(target, err);
    if (!ends_with(target, ".yaml") && !ends_with(target, ".yml")) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: expected a recipe (.yaml, .yml) or a plan file (.json)", target);
        return NULL;
    }
    avsr_recipe *r = avsr_recipe_load(target, err);
    if (!r)
        return NULL;
    avsr_sched_plan *p = avsr_sched_plan_from_recipe(r, eval_ranks, err);
    avsr_recipe_free(r);
    return p;
}

/* ---- status ------------------------------------------------------------------ */

static void fmt_duration(double s, char *buf, size_t size)
{
    if (s <= 0) {
        snprintf(buf, size, "-");
        return;
    }
    long t = (long)(s + 0.5);
    snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

/* "12.3" from the result file's "wer" (a fraction), or "" */
static void result_wer(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    if (!path)
        return;
    json_t *root = json_load_file(path, 0, NULL);
    json_t *w = root ? json_object_get(root, "wer") : NULL;
    if (json_is_number(w))
        snprintf(buf, size, "%.2f", 100.0 * json_number_value(w));
    json_decref(root);
}

static int cmd_status(const char *target, const avsr_sched_opts *o)
{
    avsr_error err = {0};
    avsr_sched_plan *p = load_target(target, 1, &err);
    if (!p) {
        fprintf(stderr, "avsr-sched: %s\n", err.msg);
        return 1;
    }
    char dbpath[PATH_MAX];
    snprintf(dbpath, sizeof dbpath, "%s/sched.db", p->exp_dir);
    struct stat st;
    if (stat(dbpath, &st) != 0) {
        printf("%s: nothing has run yet (no %s)\n", target, dbpath);
        avsr_sched_plan_free(p);
        return 0;
    }
    bool busy = false;
    if (avsr_sched_refresh(p->exp_dir, o, &busy, &err) < 0)
        fprintf(stderr, "avsr-sched: warning: state not refreshed: %s\n", err.msg);
    avsr_error_clear(&err);
    avsr_sched_db *db = avsr_sched_state_open(p->exp_dir, &err);
    avsr_sched_row *rows = NULL;
    int n = 0;
    if (!db || avsr_sched_state_load(db, &rows, &n, &err) < 0) {
        fprintf(stderr, "avsr-sched: %s\n", err.msg);
        avsr_sched_state_close(db);
        avsr_sched_plan_free(p);
        return 1;
    }
    char *backend = NULL;
    avsr_sched_state_meta_get(db, "backend", &backend, NULL);
    bool slurm = backend && strcmp(backend, "slurm") == 0;
    int wname = 3;
    for (int i = 0; i < n; i++)
        if ((int)strlen(rows[i].def.name) > wname)
            wname = (int)strlen(rows[i].def.name);
    printf("%s (%s, %s backend%s)\n", p->name, p->exp_dir, backend ? backend : "no",
           busy ? ", scheduler running" : "");
    printf("%-*s  %-9s  %8s  %8s  %8s  %9s  %7s  %s\n", wname, "job", "state", "attempts",
           "failures", "requeues", "runtime", "WER %", slurm ? "slurm job / log" : "log");
    double now = avsr_sched_state_now();
    for (int i = 0; i < n; i++) {
        const avsr_sched_row *r = &rows[i];
        char rt[32], wer[32] = "";
        double t = r->runtime;
        if (r->active && r->cur.started > 0)
            t += now - r->cur.started;
        fmt_duration(t, rt, sizeof rt);
        if (r->state == AVSR_SCHED_DONE)
            result_wer(r->def.result, wer, sizeof wer);
        char where[PATH_MAX + 64];
        if (slurm && r->active && r->cur.slurm_id)
            snprintf(where, sizeof where, "%s  %s", r->cur.slurm_id,
                     r->log_path ? r->log_path : "");
        else
            snprintf(where, sizeof where, "%s", r->log_path ? r->log_path : "-");
        printf("%-*s  %-9s  %8d  %8d  %8d  %9s  %7s  %s\n", wname, r->def.name,
               avsr_sched_jstate_name(r->state), r->attempts, r->failures, r->requeues, rt,
               *wer ? wer : "-", where);
    }
    avsr_sched_summary s;
    avsr_sched_summarize(rows, n, &s);
    printf("%d jobs: %d done, %d running or queued, %d pending, %d failed, %d cancelled\n",
           s.total, s.done, s.active, s.pending, s.failed, s.cancelled);
    /* the evaluation's table, when the report has been written */
    char md[PATH_MAX];
    snprintf(md, sizeof md, "%s/eval/results.md", p->exp_dir);
    FILE *f = fopen(md, "r");
    if (f) {
        printf("\n%s:\n", md);
        char line[4096];
        while (fgets(line, sizeof line, f))
            fputs(line, stdout);
        fclose(f);
    }
    free(backend);
    avsr_sched_state_rows_free(rows, n);
    avsr_sched_state_close(db);
    avsr_sched_plan_free(p);
    return 0;
}

/* ---- main ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(stdout);
        return 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") && strcmp(cmd, "status") && strcmp(cmd, "cancel") &&
        strcmp(cmd, "plan")) {
        fprintf(stderr, "avsr-sched: unknown command '%s' (expected run, status, cancel or "
                        "plan)\n", cmd);
        usage(stderr);
        return 2;
    }
    enum { OPT_MAXRQ = 256, OPT_EVALR, OPT_POLL, OPT_GRACE, OPT_LAUNCHER, OPT_SRUN_MPI,
           OPT_SBATCH, OPT_TEMPLATES, OPT_DETACH };
    static const struct option longopts[] = {
        {"backend", required_argument, NULL, 'b'},
        {"slots", required_argument, NULL, 's'},
        {"retries", required_argument, NULL, 'r'},
        {"max-requeues", required_argument, NULL, OPT_MAXRQ},
        {"eval-ranks", required_argument, NULL, OPT_EVALR},
        {"poll", required_argument, NULL, OPT_POLL},
        {"grace", required_argument, NULL, OPT_GRACE},
        {"launcher", required_argument, NULL, OPT_LAUNCHER},
        {"srun-mpi", required_argument, NULL, OPT_SRUN_MPI},
        {"sbatch", required_argument, NULL, OPT_SBATCH},
        {"templates", required_argument, NULL, OPT_TEMPLATES},
        {"detach", no_argument, NULL, OPT_DETACH},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    avsr_sched_opts o;
    avsr_sched_opts_default(&o);
    o.log = stderr;
    int eval_ranks = 1, c;
    const char **sbatch = calloc((size_t)argc, sizeof *sbatch);
    if (!sbatch)
        return 1;
    optind = 2;
    while ((c = getopt_long(argc, argv, "b:s:r:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (strcmp(optarg, "local") && strcmp(optarg, "slurm")) {
                fprintf(stderr, "avsr-sched: --backend: got '%s', expected local or slurm\n",
                        optarg);
                return 2;
            }
            o.backend = optarg;
            break;
        case 's':
            if (parse_int("--slots", optarg, 1, &o.slots) < 0)
                return 2;
            break;
        case 'r':
            if (parse_int("--retries", optarg, 0, &o.limits.retries) < 0)
                return 2;
            break;
        case OPT_MAXRQ:
            if (parse_int("--max-requeues", optarg, 0, &o.limits.max_requeues) < 0)
                return 2;
            break;
        case OPT_EVALR:
            if (parse_int("--eval-ranks", optarg, 1, &eval_ranks) < 0)
                return 2;
            break;
        case OPT_POLL:
            if (parse_secs("--poll", optarg, &o.poll_s) < 0)
                return 2;
            break;
        case OPT_GRACE:
            if (parse_secs("--grace", optarg, &o.grace_s) < 0)
                return 2;
            break;
        case OPT_LAUNCHER:
            if (strcmp(optarg, "srun") && strcmp(optarg, "mpirun")) {
                fprintf(stderr, "avsr-sched: --launcher: got '%s', expected srun or mpirun\n",
                        optarg);
                return 2;
            }
            o.launcher = optarg;
            break;
        case OPT_SRUN_MPI: o.srun_mpi = optarg; break;
        case OPT_SBATCH:
            if (strpbrk(optarg, "\n\r")) {
                fprintf(stderr, "avsr-sched: --sbatch: one option per line, no newlines\n");
                return 2;
            }
            sbatch[o.n_sbatch_opts++] = optarg;
            break;
        case OPT_TEMPLATES: o.template_dir = optarg; break;
        case OPT_DETACH: o.detach = true; break;
        case 'q': o.log = NULL; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    o.sbatch_opts = sbatch;
    if (argc - optind != 1) {
        fprintf(stderr, "avsr-sched %s: expected one TARGET (recipe or plan file), got %d\n",
                cmd, argc - optind);
        return 2;
    }
    const char *target = argv[optind];
    avsr_error err = {0};
    int rc;
    if (!strcmp(cmd, "status")) {
        rc = cmd_status(target, &o);
        free(sbatch);
        return rc;
    }
    avsr_sched_plan *p = load_target(target, eval_ranks, &err);
    if (!p) {
        fprintf(stderr, "avsr-sched: %s\n", err.msg);
        free(sbatch);
        return 1;
    }
    if (!strcmp(cmd, "plan")) {
        char *json = avsr_sched_plan_json(p);
        rc = json ? 0 : 1;
        if (json)
            fputs(json, stdout);
        free(json);
    } else if (!strcmp(cmd, "cancel")) {
        int n = 0;
        rc = avsr_sched_cancel(p->exp_dir, &o, &n, &err) < 0 ? 1 : 0;
        if (rc)
            fprintf(stderr, "avsr-sched: %s\n", err.msg);
        else
            printf("avsr-sched: %d job%s cancelled\n", n, n == 1 ? "" : "s");
    } else {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        o.stop = &stop_flag;
        rc = 0;
        avsr_sched_summary s = {0};
        if (rc == 0 && avsr_sched_run(p, &o, &s, &err) < 0) {
            fprintf(stderr, "avsr-sched: %s\n", err.msg);
            rc = 1;
        } else if (rc == 0) {
            if (o.log)
                fprintf(o.log,
                        "avsr-sched: %d jobs: %d done, %d running or queued, %d pending, "
                        "%d failed, %d cancelled\n",
                        s.total, s.done, s.active, s.pending, s.failed, s.cancelled);
            if (s.stopped && stop_signal)
                rc = 128 + stop_signal;
            else if (s.done == s.total || (o.detach && s.failed == 0))
                rc = 0;
            else
                rc = 1;
        }
    }
    avsr_sched_plan_free(p);
    free(sbatch);
    return rc;
}
