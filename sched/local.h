/* local: the local backend of avsr-sched (jobs as subprocesses).
 *
 * Each attempt is a monitor process (a fork of the scheduler, in its own
 * session, so its process group holds the job) that runs the job's command
 * with stdout and stderr appended to <exp_dir>/logs/<job>.<attempt>.log,
 * waits for it and writes its wait status to <job>.<attempt>.exit
 * ("exit N" or "signal N"; atomically). The monitor passes SIGUSR1 on to
 * the job's process and ignores SIGTERM, SIGINT and SIGHUP. The scheduler records the
 * monitor's pid, start time and boot id before telling it to start, so:
 *   - a scheduler killed while jobs run leaves them running; the next
 *     scheduler finds each attempt's exit file, or adopts the still-running
 *     monitor (same pid and start time) and waits for its exit file;
 *   - a monitor gone without an exit file is a lost attempt (counted as a
 *     failure; its process group is killed first);
 *   - a monitor whose start was never confirmed writes "unstarted" and
 *     exits: the attempt is requeued without counting.
 * MPI jobs run as `mpirun -np R --oversubscribe --bind-to none
 * [--allow-run-as-root] CMD` (sched/proc.h). Jobs start in plan order, first
 * fit, while the ranks of running jobs stay within the slot budget. */
#ifndef AVSR_SCHED_LOCAL_H
#define AVSR_SCHED_LOCAL_H

#include "sched/sched.h"
#include "sched/state.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Run until nothing more can run or *o->stop is set (then running jobs are
 * stopped: MPI jobs by SIGUSR1 to mpirun through their monitor, others by
 * SIGTERM to their process group; SIGKILL after o->grace_s; they are
 * requeued). The caller holds the lock and has defined the plan. */
int avsr_sched_local_run(avsr_sched_db *db, const avsr_sched_opts *o, avsr_error *err);

/* Collect the outcome of every active local attempt without starting
 * anything (exit file read, or lost). Without stop, attempts still running
 * stay active; with stop, they are stopped as above and end as `outcome`
 * (interrupted or cancelled) unless they exited 0 (done) or 75 (preempted)
 * on the way. */
int avsr_sched_local_collect(avsr_sched_db *db, const avsr_sched_opts *o, bool stop,
                             avsr_sched_outcome outcome, avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
