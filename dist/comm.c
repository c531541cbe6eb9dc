/* comm: the backend-independent half of the communicator (comm.h): public
 * wrappers that time each collective, arm the watchdog and apply the
 * failure policy, and the watchdog thread itself. */
#include "comm.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How often the watchdog looks at the deadline. */
#define WATCHDOG_POLL_NS 100000000LL /* 100 ms */

struct avsr_comm {
    const avsr_comm_ops *ops;
    void *impl;
    int rank, size, local_rank, local_size;
    avsr_device device;
    bool no_abort;
    double seconds;               /* time inside collectives */
    _Atomic int64_t timeout_ns;   /* <= 0: watchdog off */
    _Atomic int64_t deadline_ns;  /* CLOCK_MONOTONIC; 0 = no collective pending */
    _Atomic(const char *) pending;/* name of the pending collective (static string) */
    /* watchdog thread */
    pthread_t wd;
    bool wd_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t timeout_to_ns(double s)
{
    if (s == 0.0)
        s = AVSR_COMM_DEFAULT_TIMEOUT_S;
    if (s < 0.0)
        return 0;
    return (int64_t)(s * 1e9);
}

/* The watchdog: sleeps on a condition variable (so destroy wakes it at
 * once), checks the deadline every WATCHDOG_POLL_NS. It calls no MPI
 * function (the library is initialised FUNNELED): it only writes a message
 * with write(2) and ends the process with _exit. */
static void *watchdog_main(void *arg)
{
    avsr_comm *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t t = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + WATCHDOG_POLL_NS;
        ts.tv_sec = (time_t)(t / 1000000000LL);
        ts.tv_nsec = (long)(t % 1000000000LL);
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        if (c->stop)
            break;
        int64_t d = atomic_load(&c->deadline_ns);
        if (d != 0 && now_ns() > d) {
            const char *what = atomic_load(&c->pending);
            char msg[256];
            int n = snprintf(msg, sizeof msg,
                             "avsr: rank %d: watchdog: %s did not return within %.1f s "
                             "(a peer hangs or is stuck): ending this process\n",
                             c->rank, what ? what : "a collective",
                             (double)atomic_load(&c->timeout_ns) / 1e9);
            if (n > 0) {
                ssize_t w = write(STDERR_FILENO, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
                (void)w;
            }
            _exit(AVSR_COMM_EXIT_FAILURE);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

avsr_comm *avsr_comm_alloc(const avsr_comm_ops *ops, void *impl, const avsr_comm_opts *opts,
                           avsr_error *err)
{
    avsr_comm *c = calloc(1, sizeof *c);
    if (!c) {
        AVSR_NOMEM(err, sizeof *c);
        return NULL;
    }
    c->ops = ops;
    c->impl = impl;
    c->no_abort = opts ? opts->no_abort : false;
    atomic_init(&c->timeout_ns, timeout_to_ns(opts ? opts->timeout_s : 0.0));
    atomic_init(&c->deadline_ns, 0);
    atomic_init(&c->pending, NULL);
    return c;
}

int avsr_comm_start(avsr_comm *c, int rank, int size, int local_rank, int local_size,
                    avsr_device device, avsr_error *err)
{
    c->rank = rank;
    c->size = size;
    c->local_rank = local_rank;
    c->local_size = local_size;
    c->device = device;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&c->mu, NULL);
    int rc = pthread_create(&c->wd, NULL, watchdog_main, c);
    if (rc != 0)
        return avsr_error_set(err, AVSR_ERR_BACKEND, "comm: cannot start the watchdog thread: %s",
                              strerror(rc));
    c->wd_started = true;
    return 0;
}

void *avsr_comm_impl(const avsr_comm *c)
{
    return c->impl;
}

void avsr_comm_destroy(avsr_comm *c)
{
    if (!c)
        return;
    if (c->wd_started) {
        pthread_mutex_lock(&c->mu);
        c->stop = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->wd, NULL);
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
    }
    if (c->ops && c->ops->destroy)
        c->ops->destroy(c);
    free(c);
}

int avsr_comm_rank(const avsr_comm *c) { return c->rank; }
int avsr_comm_size(const avsr_comm *c) { return c->size; }
int avsr_comm_local_rank(const avsr_comm *c) { return c->local_rank; }
int avsr_comm_local_size(const avsr_comm *c) { return c->local_size; }
const char *avsr_comm_name(const avsr_comm *c) { return c->ops->name; }
avsr_device avsr_comm_device(const avsr_comm *c) { return c->device; }
double avsr_comm_seconds(const avsr_comm *c) { return c->seconds; }

void avsr_comm_set_timeout(avsr_comm *c, double seconds)
{
    atomic_store(&c->timeout_ns, timeout_to_ns(seconds));
}

double avsr_comm_timeout(const avsr_comm *c)
{
    int64_t t = atomic_load(&((avsr_comm *)c)->timeout_ns);
    return t > 0 ? (double)t / 1e9 : -1.0;
}

void avsr_comm_abort(avsr_comm *c, int code, const char *fmt, ...)
{
    char msg[AVSR_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "avsr: rank %d: %s: aborting the job\n", c->rank, msg);
    fflush(stderr);
    c->ops->abort(c, code);
    _exit(code); /* an implementation that returned: end this process anyway */
}

/* ---- wrappers ------------------------------------------------------------ */

static int64_t begin(avsr_comm *c, const char *what)
{
    int64_t t0 = now_ns();
    int64_t to = atomic_load(&c->timeout_ns);
    atomic_store(&c->pending, what);
    atomic_store(&c->deadline_ns, to > 0 ? t0 + to : 0);
    return t0;
}

static int end(avsr_comm *c, int64_t t0, int rc, avsr_error *local, avsr_error *err)
{
    atomic_store(&c->deadline_ns, 0);
    c->seconds += (double)(now_ns() - t0) / 1e9;
    if (rc == 0)
        return 0;
    if (!c->no_abort)
        avsr_comm_abort(c, AVSR_COMM_EXIT_FAILURE, "%s",
                        local->msg[0] ? local->msg : "collective failed");
    return avsr_error_set(err, local->code ? local->code : AVSR_ERR_BACKEND, "%s", local->msg);
}

#define COMM_CALL(c, err, what, call)                  \
    do {                                               \
        avsr_error local_ = {0};                       \
        avsr_error *e_ = &local_;                      \
        int64_t t0_ = begin((c), (what));              \
        int rc_ = (call);                              \
        return end((c), t0_, rc_, &local_, (err));     \
    } while (0)

int avsr_comm_barrier(avsr_comm *c, avsr_error *err)
{
    COMM_CALL(c, err, "barrier", c->ops->barrier(c, e_));
}

int avsr_comm_bcast(avsr_comm *c, void *buf, size_t bytes, int root, avsr_error *err)
{
    COMM_CALL(c, err, "broadcast", c->ops->bcast(c, buf, bytes, root, e_));
}

int avsr_comm_allreduce_sum_f32(avsr_comm *c, float *buf, int64_t n, avsr_error *err)
{
    if (n < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "comm: allreduce_sum_f32: negative count %lld",
                              (long long)n);
    COMM_CALL(c, err, "all-reduce (sum, f32)", c->ops->allreduce_sum_f32(c, buf, n, e_));
}

int avsr_comm_allreduce_sum_f64(avsr_comm *c, double *buf, int64_t n, avsr_error *err)
{
    if (n < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "comm: allreduce_sum_f64: negative count %lld",
                              (long long)n);
    COMM_CALL(c, err, "all-reduce (sum, f64)", c->ops->allreduce_sum_f64(c, buf, n, e_));
}

int avsr_comm_allreduce_max_int(avsr_comm *c, int *buf, int n, avsr_error *err)
{
    if (n < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "comm: allreduce_max_int: negative count %d", n);
    COMM_CALL(c, err, "all-reduce (max, int)", c->ops->allreduce_max_int(c, buf, n, e_));
}

int avsr_comm_gather(avsr_comm *c, const void *send, size_t bytes, void *recv, avsr_error *err)
{
    COMM_CALL(c, err, "gather", c->ops->gather(c, send, bytes, recv, e_));
}
