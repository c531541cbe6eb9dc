/* signals: scheduler and user signals, turned into control flags that the
 * trainer reads at the next step boundary.
 *
 * avsr_signals_install() installs handlers for SIGTERM, SIGUSR1 and SIGINT
 * that only set a flag (a volatile sig_atomic_t: async-signal-safe). The
 * trainer calls avsr_signals_take() at each step boundary, maps the result
 * with avsr_signals_ctl_flags() and combines it across ranks with
 * avsr_coord_agree_flags(), so a signal delivered to one rank makes every
 * rank stop at the same step:
 *
 *   SIGUSR1  Slurm's warning before the time limit (--signal=USR1@90), or a
 *            user asking for a checkpoint-and-requeue
 *            -> AVSR_CTL_CHECKPOINT | AVSR_CTL_STOP | AVSR_CTL_PREEMPTED
 *   SIGTERM  preemption / scancel -> the same
 *   SIGINT   Ctrl-C -> AVSR_CTL_CHECKPOINT | AVSR_CTL_STOP; a second
 *            SIGINT before the first is taken kills the process at once
 *            (default action), for a user who does not want to wait.
 *
 * After a preempted stop the trainer writes its checkpoint and every rank
 * exits with AVSR_EXIT_REQUEUE (75, EX_TEMPFAIL of sysexits.h): "stopped on
 * purpose, requeue me"; launch scripts and avsr-sched requeue on 75 and
 * treat other non-zero statuses as failures. */
#ifndef AVSR_DIST_SIGNALS_H
#define AVSR_DIST_SIGNALS_H

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AVSR_EXIT_REQUEUE 75

enum avsr_sig_bit {
    AVSR_SIG_TERM = 1u << 0,
    AVSR_SIG_USR1 = 1u << 1,
    AVSR_SIG_INT = 1u << 2
};

/* Install the handlers (sigaction, SA_RESTART). Calling it again is a no-op. */
int avsr_signals_install(avsr_error *err);
/* Put back the dispositions that were there before avsr_signals_install. */
void avsr_signals_restore(void);
/* Signals received since the last take (AVSR_SIG_* bits), without clearing. */
unsigned avsr_signals_pending(void);
/* Read and clear. */
unsigned avsr_signals_take(void);
/* AVSR_SIG_* bits -> AVSR_CTL_* flags (coord.h), as in the table above. */
unsigned avsr_signals_ctl_flags(unsigned sig_bits);

#ifdef __cplusplus
}
#endif

#endif
