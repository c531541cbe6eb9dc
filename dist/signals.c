/* signals: flag-setting handlers for SIGTERM, SIGUSR1 and SIGINT
 * (signals.h). The handlers touch nothing but volatile sig_atomic_t flags
 * (and, for a second SIGINT, sigaction and raise, both async-signal-safe). */
#include "signals.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>

#include "coord.h"

static volatile sig_atomic_t got_term, got_usr1, got_int;
static struct sigaction old_term, old_usr1, old_int;
static bool installed;

static void on_signal(int sig)
{
    if (sig == SIGTERM) {
        got_term = 1;
    } else if (sig == SIGUSR1) {
        got_usr1 = 1;
    } else if (sig == SIGINT) {
        if (got_int) { /* second Ctrl-C before the trainer reacted: die now */
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = SIG_DFL;
            sigemptyset(&sa.sa_mask);
            sigaction(SIGINT, &sa, NULL);
            raise(SIGINT);
            return;
        }
        got_int = 1;
    }
}

int avsr_signals_install(avsr_error *err)
{
    if (installed)
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, &old_term) < 0 || sigaction(SIGUSR1, &sa, &old_usr1) < 0 ||
        sigaction(SIGINT, &sa, &old_int) < 0)
        return avsr_error_set(err, AVSR_ERR_BACKEND, "signals: sigaction failed: %s",
                              strerror(errno));
    installed = true;
    return 0;
}

void avsr_signals_restore(void)
{
    if (!installed)
        return;
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGUSR1, &old_usr1, NULL);
    sigaction(SIGINT, &old_int, NULL);
    installed = false;
}

unsigned avsr_signals_pending(void)
{
    return (got_term ? AVSR_SIG_TERM : 0u) | (got_usr1 ? AVSR_SIG_USR1 : 0u) |
           (got_int ? AVSR_SIG_INT : 0u);
}

unsigned avsr_signals_take(void)
{
    unsigned bits = 0;
    if (got_term) {
        got_term = 0;
        bits |= AVSR_SIG_TERM;
    }
    if (got_usr1) {
        got_usr1 = 0;
        bits |= AVSR_SIG_USR1;
    }
    if (got_int) {
        got_int = 0;
        bits |= AVSR_SIG_INT;
    }
    return bits;
}

unsigned avsr_signals_ctl_flags(unsigned sig_bits)
{
    unsigned f = 0;
    if (sig_bits & (AVSR_SIG_TERM | AVSR_SIG_USR1))
        f |= AVSR_CTL_CHECKPOINT | AVSR_CTL_STOP | AVSR_CTL_PREEMPTED;
    if (sig_bits & AVSR_SIG_INT)
        f |= AVSR_CTL_CHECKPOINT | AVSR_CTL_STOP;
    return f;
}
