/* test_dist_local: the parts of dist/ that need no mpirun: the thread-count
 * rule, FNV-1a, signal flags and their control-flag mapping. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "dist/coord.h"
#include "dist/signals.h"
#include "dist/threads.h"
#include "tap.h"

/* Apply the rule, then report (arguments are evaluated after the call). */
static int rule(const char *setting, const char *omp, int cores, int local,
                avsr_threads_choice *t, avsr_error *err)
{
    return avsr_threads_rule(setting, omp, cores, local, t, err);
}

static void test_threads(void)
{
    avsr_threads_choice t = {0};
    avsr_error err = {0};
    int rc = rule("4", "8", 16, 2, &t, &err);
    tap_ok(rc == 0 && t.threads == 4 && strcmp(t.source, "recipe") == 0 && t.warning[0] == '\0',
           "threads: a number in the recipe wins over OMP_NUM_THREADS (%d, %s)", t.threads,
           t.source);
    rc = rule("auto", "3", 16, 2, &t, &err);
    tap_ok(rc == 0 && t.threads == 3 && strcmp(t.source, "OMP_NUM_THREADS") == 0,
           "threads: auto takes OMP_NUM_THREADS (%d)", t.threads);
    rc = rule("auto", "5,2", 16, 2, &t, &err);
    tap_ok(rc == 0 && t.threads == 5,
           "threads: auto takes the first entry of an OMP_NUM_THREADS list (%d)", t.threads);
    rc = rule(NULL, NULL, 16, 3, &t, &err);
    tap_ok(rc == 0 && t.threads == 5 && strcmp(t.source, "cores/local ranks") == 0 &&
               t.warning[0] == '\0',
           "threads: no setting = auto = cores / local ranks (16/3 -> %d)", t.threads);
    rc = rule("auto", NULL, 2, 3, &t, &err);
    tap_ok(rc == 0 && t.threads == 1 &&
               strstr(t.warning, "1 threads x 3 local ranks = 3 > 2 cores: oversubscribed"),
           "threads: at least 1 thread; 3 ranks on 2 cores warn: '%s'", t.warning);
    rc = rule("4", NULL, 4, 2, &t, &err);
    tap_ok(rc == 0 && strstr(t.warning, "4 threads x 2 local ranks = 8 > 4 cores: oversubscribed"),
           "threads: oversubscription warning: '%s'", t.warning);
    rc = rule("auto", "lots", 8, 2, &t, &err);
    tap_ok(rc == 0 && t.threads == 4 &&
               strstr(t.warning, "OMP_NUM_THREADS='lots' is not a positive number: ignored"),
           "threads: a bad OMP_NUM_THREADS is ignored with a warning: '%s'", t.warning);
    const char *bad[] = {"0", "-2", "four", "3x"};
    for (int i = 0; i < 4; i++) {
        avsr_error_clear(&err);
        rc = rule(bad[i], NULL, 8, 1, &t, &err);
        tap_ok(rc < 0 && strstr(err.msg, "threads: expected a positive integer or 'auto', got"),
               "threads: setting '%s' is an error: %s", bad[i], err.msg);
    }
    avsr_error_clear(&err);
    rc = avsr_threads_resolve("2", 1, &t, &err);
    tap_ok(rc == 0 && t.threads == 2 && avsr_threads_cores() >= 1 && avsr_threads_affinity() >= 1,
           "threads: resolve on this machine (%d cores, affinity %d)", avsr_threads_cores(),
           avsr_threads_affinity());
}

static void test_fnv(void)
{
    /* reference values of 64-bit FNV-1a (draft-eastlake-fnv test vectors) */
    tap_ok(avsr_fnv1a64("", 0) == 0xcbf29ce484222325ULL, "fnv1a64(\"\")");
    tap_ok(avsr_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cULL, "fnv1a64(\"a\")");
    tap_ok(avsr_fnv1a64("foobar", 6) == 0x85944171f73967e8ULL, "fnv1a64(\"foobar\")");
    uint64_t h = avsr_fnv1a64_update(avsr_fnv1a64("foo", 3), "bar", 3);
    tap_ok(h == 0x85944171f73967e8ULL, "fnv1a64_update continues a hash");
}

static void test_signals(void)
{
    avsr_error err = {0};
    tap_ok(avsr_signals_install(&err) == 0, "signals: install");
    tap_ok(avsr_signals_pending() == 0, "signals: nothing pending at start");
    raise(SIGUSR1);
    tap_ok(avsr_signals_pending() == AVSR_SIG_USR1, "signals: SIGUSR1 sets its flag");
    raise(SIGTERM);
    unsigned s = avsr_signals_take();
    tap_ok(s == (AVSR_SIG_USR1 | AVSR_SIG_TERM) && avsr_signals_pending() == 0,
           "signals: take returns both and clears (0x%x)", s);
    unsigned f = avsr_signals_ctl_flags(s);
    tap_ok(f == (AVSR_CTL_STOP | AVSR_CTL_CHECKPOINT | AVSR_CTL_PREEMPTED),
           "signals: TERM/USR1 -> stop + checkpoint + preempted (0x%x)", f);
    raise(SIGINT); /* one SIGINT only sets the flag */
    s = avsr_signals_take();
    f = avsr_signals_ctl_flags(s);
    tap_ok(s == AVSR_SIG_INT && f == (AVSR_CTL_STOP | AVSR_CTL_CHECKPOINT),
           "signals: SIGINT -> stop + checkpoint, not preempted (0x%x)", f);
    tap_ok(AVSR_EXIT_REQUEUE == 75, "signals: requeue exit status is 75");
    avsr_signals_restore();
}

int main(void)
{
    test_threads();
    test_fnv();
    test_signals();
    return tap_done();
}
