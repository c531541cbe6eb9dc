/* test_sched: the scheduler's library (sched/): plan checks with their exact
 * messages and the JSON round trip, the plan of recipes/demo-joint.yaml, and the
 * DAG engine on the local backend with real processes (sh -c jobs that
 * append to a file, so every execution is counted): a failing job retried
 * and then succeeding, the retry limit and a fresh budget on re-run, exit 75
 * requeued without counting a failure, independent jobs in parallel, the
 * slot budget never exceeded, a finished plan never run again, and the
 * errors for a job larger than the budget and a missing program.
 *
 * Runs in a temporary directory. Jobs use only sh and coreutils. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sched/plan.h"
#include "sched/recipe_plan.h"
#include "sched/sched.h"
#include "sched/state.h"
#include "tap.h"
#include "testutil.h"
#include "train/recipe.h"

static char tmpdir[PATH_MAX];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        tap_bail("cannot create %s", path);
    fputs(text, f);
    fclose(f);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (!s || fread(s, 1, (size_t)n, f) != (size_t)n)
        tap_bail("cannot read %s", path);
    s[n] = 0;
    fclose(f);
    return s;
}

static void touch(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(dir, 0755);
            *p = '/';
        }
    write_file(path, "");
}

/* ---- plan checks ------------------------------------------------------------- */

static void expect_plan_error(const char *what, const char *json, const char *msg)
{
    write_file("p.json", json);
    avsr_error err = {0};
    avsr_sched_plan *p = avsr_sched_plan_read("p.json", &err);
    bool ok = !p && strcmp(err.msg, msg) == 0;
    tap_ok(ok, "plan error: %s", what);
    if (!ok)
        tap_diag("got '%s', expected '%s'", p ? "(no error)" : err.msg, msg);
    avsr_sched_plan_free(p);
}

static void test_plan_checks(void)
{
    expect_plan_error("unknown key",
                      "{\"name\": \"t\", \"exp_dir\": \"e\", \"jobs\": ["
                      "{\"name\": \"a\", \"argv\": [\"true\"]},"
                      "{\"name\": \"b\", \"argv\": [\"true\"], \"dep\": [\"a\"]}]}",
                      "p.json: jobs[1] (b): unknown key 'dep'");
    expect_plan_error("unknown dependency",
                      "{\"name\": \"t\", \"exp_dir\": \"e\", \"jobs\": ["
                      "{\"name\": \"a\", \"argv\": [\"true\"]},"
                      "{\"name\": \"b\", \"argv\": [\"true\"], \"deps\": [\"x\"]}]}",
                      "p.json: jobs[1] (b): dependency 'x' is not a job of the plan");
    expect_plan_error("cycle",
                      "{\"name\": \"t\", \"exp_dir\": \"e\", \"jobs\": ["
                      "{\"name\": \"a\", \"argv\": [\"true\"], \"deps\": [\"c\"]},"
                      "{\"name\": \"b\", \"argv\": [\"true\"], \"deps\": [\"a\"]},"
                      "{\"name\": \"c\", \"argv\": [\"true\"], \"deps\": [\"b\"]}]}",
                      "p.json: dependency cycle: a -> c -> b -> a");
    expect_plan_error("duplicate name",
                      "{\"name\": \"t\", \"exp_dir\": \"e\", \"jobs\": ["
                      "{\"name\": \"a\", \"argv\": [\"true\"]},"
                      "{\"name\": \"a\", \"argv\": [\"false\"]}]}",
                      "p.json: jobs[1]: duplicate job name 'a' (also jobs[0])");
    expect_plan_error("bad name",
                      "{\"name\": \"t\", \"exp_dir\": \"e\", \"jobs\": ["
                      "{\"name\": \"a/b\", \"argv\": [\"true\"]}]}",
                      "p.json: jobs[0]: job name 'a/b': expected letters, digits and "
                      "_ . : + - (not starting with '.' or '-')");
    expect_plan_error("ranks of a plain command",
                      "{\"name\": \"t\", \"exp_dir\": \"e\", \"jobs\": ["
                      "{\"name\": \"a\", \"ranks\": 2, \"argv\": [\"true\"]}]}",
                      "p.json: jobs[0] (a): 2 ranks but not an MPI job: a plain command "
                      "runs once, on 1 rank");
    expect_plan_error("array members differ",
                      "{\"name\": \"t\", \"exp_dir\": \"e\", \"jobs\": ["
                      "{\"name\": \"a\", \"argv\": [\"true\"], \"array\": \"ev\"},"
                      "{\"name\": \"b\", \"argv\": [\"true\"], \"array\": \"ev\", "
                      "\"mpi\": true, \"ranks\": 2}]}",
                      "p.json: jobs[1] (b): array 'ev': its jobs must have the same ranks, "
                      "mpi, gpus_per_rank and deps as 'a'");
    expect_plan_error("empty argv",
                      "{\"name\": \"t\", \"exp_dir\": \"e\", \"jobs\": ["
                      "{\"name\": \"a\", \"argv\": []}]}",
                      "p.json: jobs[0] (a): 'argv': expected at least one string");
    expect_plan_error("JSON syntax",
                      "{\"name\": \"t\",\n \"exp_dir\": }",
                      "p.json:2:13: unexpected token near '}'");

    /* round trip */
    avsr_error err = {0};
    avsr_sched_plan *p = avsr_sched_plan_new("rt", "exp/rt", &err);
    char *argv[] = {"sh", "-c", "echo 'quoted' \"x\""};
    char *deps[] = {"a"};
    avsr_sched_job a = {.name = "a", .kind = "stage", .ranks = 2, .mpi = true,
                        .gpus_per_rank = 1, .argv = argv, .argc = 3};
    avsr_sched_job b = {.name = "b", .kind = "eval", .ranks = 1, .argv = argv, .argc = 1,
                        .deps = deps, .n_deps = 1, .array = "ev", .point = "audio:none:clean",
                        .result = "r.json"};
    tap_ok(p && avsr_sched_plan_add(p, &a, &err) == 0 && avsr_sched_plan_add(p, &b, &err) == 0 &&
               avsr_sched_plan_check(p, &err) == 0,
           "plan built through the API checks");
    char *j1 = avsr_sched_plan_json(p);
    write_file("rt.json", j1);
    avsr_sched_plan *q = avsr_sched_plan_read("rt.json", &err);
    char *j2 = q ? avsr_sched_plan_json(q) : NULL;
    tap_ok(j1 && j2 && strcmp(j1, j2) == 0, "plan JSON round trip");
    if (!q)
        tap_diag("%s", err.msg);
    free(j1);
    free(j2);
    avsr_sched_plan_free(p);
    avsr_sched_plan_free(q);
}

/* ---- the recipe's plan ------------------------------------------------------- */

static void test_recipe_plan(void)
{
    touch("data/demo/train.h5");
    touch("data/demo/valid.h5");
    touch("data/demo/test.h5");
    touch("data/demo/noise-babble.h5");
    avsr_error err = {0};
    avsr_recipe *r = avsr_recipe_load(tu_srcpath("recipes/demo-joint.yaml"), &err);
    if (!r) {
        tap_ok(false, "recipes/demo-joint.yaml loads: %s", err.msg);
        return;
    }
    avsr_sched_plan *p = avsr_sched_plan_from_recipe(r, 2, &err);
    tap_ok(p != NULL, "plan of recipes/demo-joint.yaml%s%s", p ? "" : ": ", p ? "" : err.msg);
    if (!p) {
        avsr_recipe_free(r);
        return;
    }
    /* train, average, 23 points (audio 1 + 2 noises x 5 SNRs, video 1,
     * audiovisual 11), report */
    tap_ok(p->n_jobs == 26, "26 jobs (got %d)", p->n_jobs);
    const avsr_sched_job *t = &p->jobs[0];
    tap_ok(!strcmp(t->name, "train.train") && t->ranks == 2 && t->mpi && t->argc == 4 &&
               !strcmp(t->argv[0], "avsr-worker") && !strcmp(t->argv[1], r->path) &&
               !strcmp(t->argv[2], "--stage") && !strcmp(t->argv[3], "train") &&
               t->n_deps == 0 && t->gpus_per_rank == 0,
           "stage job: avsr-worker RECIPE --stage train on run.ranks ranks");
    const avsr_sched_job *a = &p->jobs[1];
    tap_ok(!strcmp(a->name, "average") && a->argc == 6 && !strcmp(a->argv[0], "avsr-avg") &&
               !strcmp(a->argv[1], "--last") && !strcmp(a->argv[2], "5") &&
               !strcmp(a->argv[3], "exp/demo-joint/train/ckpt") && !strcmp(a->argv[4], "-o") &&
               !strcmp(a->argv[5], "exp/demo-joint/avg/model.safetensors") && a->n_deps == 1 &&
               !strcmp(a->deps[0], "train.train") && !a->mpi,
           "average job: avsr-avg --last 5 exp/demo-joint/train/ckpt -o exp/demo-joint/avg/model.safetensors");
    /* modality, then noise (none first), then SNR (clean, then descending) */
    char want[23][40];
    int nw = 0;
    static const char *const mods[] = {"audio", "video", "audiovisual"};
    static const char *const noises[] = {"babble", "white"};
    static const char *const snrs[] = {"10", "5", "0", "-5", "-10"};
    for (int m = 0; m < 3; m++) {
        snprintf(want[nw++], sizeof want[0], "%s:none:clean", mods[m]);
        for (int n = 0; m != 1 && n < 2; n++)
            for (int k = 0; k < 5; k++)
                snprintf(want[nw++], sizeof want[0], "%s:%s:%s", mods[m], noises[n], snrs[k]);
    }
    bool pts = p->n_jobs == nw + 3;
    for (int i = 0; pts && i < nw; i++) {
        const avsr_sched_job *e = &p->jobs[2 + i];
        char name[160], result[200], mod[32], noise[32], snr[32];
        sscanf(want[i], "%31[^:]:%31[^:]:%31s", mod, noise, snr);
        snprintf(name, sizeof name, "eval.%s.%s.%s", mod, noise, snr);
        snprintf(result, sizeof result, "exp/demo-joint/eval/points/%s-%s-%s.json", mod, noise, snr);
        pts = !strcmp(e->name, name) && !strcmp(e->kind, "eval") && e->point &&
              !strcmp(e->point, want[i]) && e->argc == 4 && !strcmp(e->argv[0], "avsr-eval") &&
              !strcmp(e->argv[2], "--point") && !strcmp(e->argv[3], want[i]) && e->ranks == 2 &&
              e->mpi && e->array && !strcmp(e->array, "eval") && e->n_deps == 1 &&
              !strcmp(e->deps[0], "average") && e->result && !strcmp(e->result, result);
        if (!pts)
            tap_diag("job %d: %s (%s), expected %s", 2 + i, e->name, e->point ? e->point : "-",
                     want[i]);
    }
    tap_ok(pts, "23 sweep points in eval/sweep.h's order, an array group, after average");
    const avsr_sched_job *rep = &p->jobs[p->n_jobs - 1];
    tap_ok(!strcmp(rep->name, "report") && rep->argc == 3 && !strcmp(rep->argv[1], "report") &&
               rep->n_deps == nw,
           "report job: avsr-eval report RECIPE after every point");
    avsr_sched_plan_free(p);
    avsr_recipe_free(r);
}

/* ---- the engine ------------------------------------------------------------- */

static avsr_sched_plan *plan_new(const char *name)
{
    char exp[PATH_MAX];
    snprintf(exp, sizeof exp, "exp/%s", name);
    avsr_error err = {0};
    avsr_sched_plan *p = avsr_sched_plan_new(name, exp, &err);
    if (!p)
        tap_bail("%s", err.msg);
    return p;
}

/* add a plain job running `sh -c script`; deps: space separated */
static void job(avsr_sched_plan *p, const char *name, const char *script, const char *deps)
{
    char *argv[] = {"sh", "-c", (char *)script};
    char buf[256], *dv[16];
    int nd = 0;
    snprintf(buf, sizeof buf, "%s", deps ? deps : "");
    for (char *t = strtok(buf, " "); t && nd < 16; t = strtok(NULL, " "))
        dv[nd++] = t;
    avsr_sched_job j = {.name = (char *)name, .ranks = 1, .argv = argv, .argc = 3,
                        .deps = dv, .n_deps = nd};
    avsr_error err = {0};
    if (avsr_sched_plan_add(p, &j, &err) < 0)
        tap_bail("%s", err.msg);
}

static avsr_sched_opts opts(int slots, int retries)
{
    avsr_sched_opts o;
    avsr_sched_opts_default(&o);
    o.slots = slots;
    o.limits.retries = retries;
    o.poll_s = 0.05;
    o.log = stderr;
    return o;
}

static int run(const avsr_sched_plan *p, avsr_sched_opts o, avsr_sched_summary *s)
{
    avsr_error err = {0};
    int rc = avsr_sched_run(p, &o, s, &err);
    if (rc < 0)
        tap_diag("run: %s", err.msg);
    return rc;
}

/* the row of job name in exp (state after the run) */
static bool row_is(const char *exp, const char *name, avsr_sched_jstate st, int attempts,
                   int failures, int requeues)
{
    avsr_error err = {0};
    avsr_sched_db *db = avsr_sched_state_open(exp, &err);
    avsr_sched_row *rows = NULL;
    int n = 0;
    bool ok = false, found = false;
    if (db && avsr_sched_state_load(db, &rows, &n, &err) == 0)
        for (int i = 0; i < n; i++)
            if (!strcmp(rows[i].def.name, name)) {
                found = true;
                ok = rows[i].state == st && rows[i].attempts == attempts &&
                     rows[i].failures == failures && rows[i].requeues == requeues;
                if (!ok)
                    tap_diag("%s: %s, %d attempts, %d failures, %d requeues", name,
                             avsr_sched_jstate_name(rows[i].state), rows[i].attempts,
                             rows[i].failures, rows[i].requeues);
            }
    if (!found)
        tap_diag("%s: not in %s/sched.db (%s)", name, exp, err.msg);
    avsr_sched_state_rows_free(rows, n);
    avsr_sched_state_close(db);
    return ok;
}

static void test_retry(void)
{
    avsr_sched_plan *p = plan_new("retry");
    job(p, "a", "echo a >> retry.count", NULL);
    /* fails on its first run, succeeds on the second */
    job(p, "b", "echo b >> retry.count; [ $(grep -c b retry.count) -ge 2 ]", "a");
    job(p, "c", "echo c >> retry.count", "b");
    avsr_sched_summary s;
    int rc = run(p, opts(2, 3), &s);
    tap_ok(rc == 0 && s.done == 3 && s.total == 3, "retry: the plan completes (%d of %d done)",
           s.done, s.total);
    char *count = read_file("retry.count");
    tap_ok(!strcmp(count, "a\nb\nb\nc\n"), "retry: b ran twice, c once after it");
    if (strcmp(count, "a\nb\nb\nc\n"))
        tap_diag("executions: %s", count);
    free(count);
    tap_ok(row_is("exp/retry", "b", AVSR_SCHED_DONE, 2, 1, 0),
           "retry: b done after 2 attempts, 1 failure");
    tap_ok(access("exp/retry/logs/b.1.log", R_OK) == 0 &&
               access("exp/retry/logs/b.2.log", R_OK) == 0 &&
               !strcmp(read_file("exp/retry/logs/b.1.exit"), "exit 1\n"),
           "retry: one log and exit file per attempt");
    /* a second run of the finished plan runs nothing */
    tap_ok(run(p, opts(2, 3), &s) == 0 && s.done == 3, "re-run of a finished plan: all done");
    count = read_file("retry.count");
    tap_ok(!strcmp(count, "a\nb\nb\nc\n"), "re-run of a finished plan: nothing ran again");
    free(count);
    avsr_sched_plan_free(p);
}

static void test_retry_limit(void)
{
    avsr_sched_plan *p = plan_new("limit");
    job(p, "a", "echo a >> limit.count; [ -f limit.ok ]", NULL);
    job(p, "b", "echo b >> limit.count", "a");
    avsr_sched_summary s;
    int rc = run(p, opts(2, 1), &s);
    tap_ok(rc == 0 && s.failed == 1 && s.pending == 1 && s.done == 0,
           "retry limit: a failed, b pending (failed %d, pending %d)", s.failed, s.pending);
    tap_ok(row_is("exp/limit", "a", AVSR_SCHED_FAILED, 2, 2, 0),
           "retry limit 1: 2 attempts, then failed");
    char *count = read_file("limit.count");
    tap_ok(!strcmp(count, "a\na\n"), "retry limit: the dependent never ran");
    free(count);
    write_file("limit.ok", "");
    tap_ok(run(p, opts(2, 1), &s) == 0 && s.done == 2,
           "re-run after fixing the cause: everything done");
    tap_ok(row_is("exp/limit", "a", AVSR_SCHED_DONE, 3, 0, 0),
           "re-run: a fresh failure budget, attempt 3 succeeded");
    count = read_file("limit.count");
    tap_ok(!strcmp(count, "a\na\na\nb\n"), "re-run: a once more, then b");
    free(count);
    avsr_sched_plan_free(p);
}

static void test_preempted(void)
{
    avsr_sched_plan *p = plan_new("preempt");
    /* exit 75 (preempted, state saved) on the first run */
    job(p, "w", "echo w >> preempt.count; [ $(grep -c w preempt.count) -ge 2 ] || exit 75", NULL);
    avsr_sched_summary s;
    tap_ok(run(p, opts(1, 0), &s) == 0 && s.done == 1,
           "exit 75 with retries 0: requeued and done");
    tap_ok(row_is("exp/preempt", "w", AVSR_SCHED_DONE, 2, 0, 1),
           "exit 75: 1 requeue, no failure counted");
    avsr_sched_plan_free(p);

    /* a job that only ever asks to be requeued is stopped by max_requeues */
    p = plan_new("requeue-loop");
    job(p, "x", "exit 75", NULL);
    avsr_sched_opts o = opts(1, 0);
    o.limits.max_requeues = 2;
    tap_ok(run(p, o, &s) == 0 && s.failed == 1, "exit 75 forever: failed after max_requeues");
    tap_ok(row_is("exp/requeue-loop", "x", AVSR_SCHED_FAILED, 3, 1, 3),
           "exit 75 forever: 3 attempts, the third counted as a failure");
    avsr_sched_plan_free(p);
}

static void test_parallel(void)
{
    /* each job waits (up to 60 s) for the other to have started: both can
     * only finish if they run at the same time */
    avsr_sched_plan *p = plan_new("parallel");
    job(p, "x", "touch par.x; i=0; while [ ! -f par.y ] && [ $i -lt 600 ]; do sleep 0.1; "
                "i=$((i+1)); done; [ -f par.y ]", NULL);
    job(p, "y", "touch par.y; i=0; while [ ! -f par.x ] && [ $i -lt 600 ]; do sleep 0.1; "
                "i=$((i+1)); done; [ -f par.x ]", NULL);
    avsr_sched_summary s;
    tap_ok(run(p, opts(2, 0), &s) == 0 && s.done == 2,
           "independent jobs run in parallel within the slots");
    avsr_sched_plan_free(p);

    /* six jobs, two slots: the number running at once never exceeds 2 (each
     * job records how many are running while it runs) */
    p = plan_new("budget");
    const char *script = "touch run.$$; n=$(ls run.* | wc -l); echo $n >> budget.max; sleep 0.3; "
                         "n=$(ls run.* | wc -l); echo $n >> budget.max; rm -f run.$$";
    const char *names[] = {"j1", "j2", "j3", "j4", "j5", "j6"};
    for (int i = 0; i < 6; i++)
        job(p, names[i], script, NULL);
    tap_ok(run(p, opts(2, 0), &s) == 0 && s.done == 6, "six jobs on two slots: all done");
    char *m = read_file("budget.max");
    int max = 0, lines = 0;
    for (char *t = strtok(m, "\n"); t; t = strtok(NULL, "\n")) {
        int v = atoi(t);
        max = v > max ? v : max;
        lines++;
    }
    free(m);
    tap_ok(lines == 12 && max >= 1 && max <= 2, "at most 2 jobs ran at once (max %d)", max);
    avsr_sched_plan_free(p);
}

static void test_errors(void)
{
    avsr_sched_plan *p = plan_new("big");
    char *argv[] = {"true"};
    avsr_sched_job j = {.name = "big", .ranks = 2, .mpi = true, .argv = argv, .argc = 1};
    avsr_error err = {0};
    avsr_sched_plan_add(p, &j, &err);
    avsr_sched_opts o = opts(1, 0);
    avsr_sched_summary s;
    int rc = avsr_sched_run(p, &o, &s, &err);
    tap_ok(rc < 0 && !strcmp(err.msg, "job big needs 2 ranks but --slots is 1"),
           "a job larger than the slot budget: '%s'", err.msg);
    avsr_sched_plan_free(p);

    p = plan_new("noprog");
    char *argv2[] = {"no-such-prog-xyz", "--flag"};
    avsr_sched_job k = {.name = "x", .ranks = 1, .argv = argv2, .argc = 2};
    avsr_sched_plan_add(p, &k, &err);
    setenv("AVSR_BIN_DIR", "/nonexistent-avsr-bin", 1);
    avsr_error_clear(&err);
    rc = avsr_sched_run(p, &o, &s, &err);
    unsetenv("AVSR_BIN_DIR");
    tap_ok(rc < 0 && !strcmp(err.msg, "job x: no-such-prog-xyz: not found in AVSR_BIN_DIR "
                                      "(/nonexistent-avsr-bin), avsr-sched's directory, PATH"),
           "a missing program: '%s'", err.msg);
    avsr_sched_plan_free(p);

    /* the plan changed: a job gone from it leaves the database */
    p = plan_new("retry");
    job(p, "a", "echo a >> retry.count", NULL);
    o = opts(2, 0);
    tap_ok(run(p, o, &s) == 0 && s.total == 1 && s.done == 1,
           "a job removed from the plan leaves the database; done jobs stay done");
    char *count = read_file("retry.count");
    tap_ok(!strcmp(count, "a\nb\nb\nc\n"), "... and do not run again");
    free(count);
    avsr_sched_plan_free(p);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/avsr-test-sched-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir))
        tap_bail("mkdtemp: %s", strerror(errno));
    /* tu_srcpath is relative to srcdir: make it absolute before the chdir */
    char src[PATH_MAX];
    const char *sd = getenv("srcdir");
    if (!realpath(sd && *sd ? sd : ".", src))
        tap_bail("srcdir: %s", strerror(errno));
    setenv("srcdir", src, 1);
    if (chdir(tmpdir) != 0)
        tap_bail("chdir %s", tmpdir);
    test_plan_checks();
    test_recipe_plan();
    test_retry();
    test_retry_limit();
    test_preempted();
    test_parallel();
    test_errors();
    if (!tap_failed()) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            tap_diag("could not remove %s", tmpdir);
    } else {
        tap_diag("files kept in %s", tmpdir);
    }
    return tap_done();
}
