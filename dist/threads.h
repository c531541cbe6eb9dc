/* threads: how many OpenMP threads each rank runs.
 *
 * The rule (run.threads in the recipe):
 *   - a number (run.threads: 4) wins;
 *   - "auto" (or no setting) takes OMP_NUM_THREADS when it is set to a
 *     positive number (the first entry of a list like "4,2"), else
 *     cores / local ranks (at least 1), where cores is the number of online
 *     CPUs of the node and local ranks the ranks on this node
 *     (avsr_comm_local_size: MPI_Comm_split_type with MPI_COMM_TYPE_SHARED).
 * Oversubscription (threads x local ranks > cores) is allowed but returned
 * as a warning for the caller to print; so is a CPU binding narrower than
 * the thread count (mpirun binds each rank to one core by default for 2
 * ranks or fewer: use --bind-to none or --map-by slot:PE=<threads>). */
#ifndef AVSR_DIST_THREADS_H
#define AVSR_DIST_THREADS_H

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_threads_choice {
    int threads;
    const char *source; /* "recipe", "OMP_NUM_THREADS" or "cores/local ranks" */
    char warning[320];  /* "" when there is nothing to say */
} avsr_threads_choice;

/* The rule with every input given (for tests and for callers that know
 * better): setting = the recipe's value ("auto", "4" or NULL), omp_env =
 * OMP_NUM_THREADS or NULL, cores >= 1, local_ranks >= 1. An invalid setting
 * is an error ("threads: expected a positive integer or 'auto', got 'x'");
 * an invalid OMP_NUM_THREADS is ignored with a warning. */
int avsr_threads_rule(const char *setting, const char *omp_env, int cores, int local_ranks,
                      avsr_threads_choice *out, avsr_error *err);

/* The rule on this machine: OMP_NUM_THREADS from the environment, cores =
 * online CPUs; also warns if the process's CPU affinity has fewer CPUs
 * than the chosen thread count. */
int avsr_threads_resolve(const char *setting, int local_ranks, avsr_threads_choice *out,
                         avsr_error *err);

/* Online CPUs of this node (sysconf), and CPUs this process may run on
 * (sched_getaffinity; the online count if unknown). */
int avsr_threads_cores(void);
int avsr_threads_affinity(void);

#ifdef __cplusplus
}
#endif

#endif
