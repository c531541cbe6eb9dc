/* proc: the process plumbing of the scheduler.
 *
 * - identity: a process is (pid, start time in clock ticks since boot, boot
 *   id), so a pid reused after the scheduler died is never mistaken for the
 *   job it once was;
 * - program lookup: a job's argv[0] without '/' is looked up in
 *   $AVSR_BIN_DIR, then in avsr-sched's own directory (in a libtool build
 *   tree, the directory above .libs), then in PATH;
 * - the MPI launcher: $MPIRUN (words split on blanks; default "mpirun") with
 *   --oversubscribe --bind-to none, and --allow-run-as-root when root;
 * - running a helper command (sbatch, squeue, ...) and capturing its output;
 * - quoting words for a POSIX shell (rendered Slurm scripts);
 * - the backends' progress lines and their poll sleep.
 * Nothing here uses system(): commands are argv vectors given to execvp. */
#ifndef AVSR_SCHED_PROC_H
#define AVSR_SCHED_PROC_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Start time of pid (field 22 of /proc/PID/stat). -1 when there is no such
 * process (or it is a zombie). */
int avsr_sched_proc_start_time(pid_t pid, long long *ticks);
/* This boot's id (/proc/sys/kernel/random/boot_id) into buf ("" if unknown). */
void avsr_sched_proc_boot_id(char *buf, size_t size);
/* The process (pid, start, boot) is still the one that was recorded. */
bool avsr_sched_proc_same(pid_t pid, long long start, const char *boot);

/* Absolute path of program prog (see above); a prog with '/' is returned
 * as it is. Error: "avsr-worker: not found in AVSR_BIN_DIR, DIR or PATH". */
char *avsr_sched_proc_resolve(const char *prog, avsr_error *err);

/* The mpirun words ($MPIRUN or "mpirun", resolved, plus the flags above),
 * NULL-terminated; free with avsr_sched_proc_free_argv. */
char **avsr_sched_proc_mpirun(int *argc, avsr_error *err);
void avsr_sched_proc_free_argv(char **argv);

/* Run argv (execvp, stdin /dev/null) and wait. *out gets stdout and *errout
 * stderr (both malloc'd, NUL-terminated; either pointer may be NULL),
 * *status the exit code (or 128 + signal). -1 only when it cannot be run. */
int avsr_sched_proc_capture(char *const argv[], char **out, char **errout, int *status,
                            avsr_error *err);

/* s quoted for a POSIX shell ('...' with ' as '\''); malloc'd. */
char *avsr_sched_proc_shell_quote(const char *s);

/* One progress line "avsr-sched: <text>\n" on log (flushed); nothing when
 * log is NULL. */
void avsr_sched_say(FILE *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sleep s seconds; a signal ends it early (the loops look at their stop
 * flags). */
void avsr_sched_sleep(double s);

#ifdef __cplusplus
}
#endif

#endif
