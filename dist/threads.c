/* threads: the thread-count rule (threads.h). */
#define _GNU_SOURCE
#include "threads.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A positive int from the whole of s (surrounding blanks allowed), or from
 * s up to the first ',' when list is true; -1 if there is none. */
static int parse_count(const char *s, bool list)
{
    while (isspace((unsigned char)*s))
        s++;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || errno || v < 1 || v > INT_MAX)
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (*end && !(list && *end == ','))
        return -1;
    return (int)v;
}

static void add_warning(avsr_threads_choice *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_warning(avsr_threads_choice *out, const char *fmt, ...)
{
    size_t len = strlen(out->warning);
    if (len + 3 >= sizeof out->warning)
        return;
    if (len) {
        strcat(out->warning, "; ");
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->warning + len, sizeof out->warning - len, fmt, ap);
    va_end(ap);
}

int avsr_threads_rule(const char *setting, const char *omp_env, int cores, int local_ranks,
                      avsr_threads_choice *out, avsr_error *err)
{
    memset(out, 0, sizeof *out);
    if (cores < 1)
        cores = 1;
    if (local_ranks < 1)
        local_ranks = 1;
    bool is_auto = !setting || !*setting || strcmp(setting, "auto") == 0;
    if (!is_auto) {
        int n = parse_count(setting, false);
        if (n < 0)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "threads: expected a positive integer or 'auto', got '%s'",
                                  setting);
        out->threads = n;
        out->source = "recipe";
    } else {
        int n = omp_env && *omp_env ? parse_count(omp_env, true) : -1;
        if (n > 0) {
            out->threads = n;
            out->source = "OMP_NUM_THREADS";
        } else {
            if (omp_env && *omp_env)
                add_warning(out, "OMP_NUM_THREADS='%s' is not a positive number: ignored", omp_env);
            out->threads = cores / local_ranks > 0 ? cores / local_ranks : 1;
            out->source = "cores/local ranks";
        }
    }
    if ((long)out->threads * local_ranks > cores)
        add_warning(out,
                    "%d threads x %d local ranks = %ld > %d cores: oversubscribed (lower run.threads "
                    "or OMP_NUM_THREADS)",
                    out->threads, local_ranks, (long)out->threads * local_ranks, cores);
    return 0;
}

int avsr_threads_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int avsr_threads_affinity(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    return avsr_threads_cores();
}

int avsr_threads_resolve(const char *setting, int local_ranks, avsr_threads_choice *out,
                         avsr_error *err)
{
    if (avsr_threads_rule(setting, getenv("OMP_NUM_THREADS"), avsr_threads_cores(), local_ranks,
                          out, err) < 0)
        return -1;
    int aff = avsr_threads_affinity();
    if (aff < out->threads)
        add_warning(out,
                    "this rank may run on %d CPU(s) only (CPU binding) but uses %d threads: run "
                    "mpirun with --bind-to none or --map-by slot:PE=%d",
                    aff, out->threads, out->threads);
    return 0;
}
