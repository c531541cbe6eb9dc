/* comm: the communicator the distributed layer and the trainer talk to.
 *
 * A small vtable (avsr_comm_ops) behind an opaque handle, like a backend in
 * ggml: control collectives (barrier, byte broadcast, max of ints, gather of
 * fixed-size records to rank 0) and tensor collectives (in-place sums of
 * floats and doubles). Today there is one implementation, MPI
 * (dist/comm_mpi.c), used for everything on the CPU. The NCCL backend for
 * GPU runs will implement the same table: control calls go to the MPI
 * communicator it wraps, allreduce_sum_f32 to avsr_nccl_allreduce_sum on
 * device memory (avsr_comm_device() says which memory the tensor
 * collectives take). docs/dist/comm.md has the details.
 *
 * Every collective must be called by every rank of the communicator in the
 * same order with the same sizes.
 *
 * Failure policy (the default): a collective that fails prints
 * "avsr: rank R: <what failed>: aborting the job" on stderr and calls
 * MPI_Abort(MPI_COMM_WORLD, 1), so the whole job ends and the scheduler can
 * restart it; a half-failed collective is never left for the other ranks to
 * hang in. With avsr_comm_opts.no_abort the call returns -1 with err filled
 * in instead (tests use this to check messages).
 *
 * Watchdog: a helper thread (it never calls MPI) watches a deadline that
 * each collective arms on entry and clears on return; if a collective has
 * not returned within the timeout, the thread prints
 * "avsr: rank R: watchdog: <collective> did not return within T s" and ends
 * the process with _exit(1). mpirun then ends the other ranks. This covers
 * the case Open MPI cannot see: a peer that is alive but never arrives (a
 * hang, a deadlock, a rank stuck in I/O). A peer that dies is detected by
 * mpirun itself within about a second (measured in docs/dist/comm.md).
 *
 * Threads: MPI is initialised with MPI_THREAD_FUNNELED; only the thread that
 * created the communicator may call these functions. The data-loader
 * prefetch thread and the watchdog never call MPI. */
#ifndef AVSR_DIST_COMM_H
#define AVSR_DIST_COMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_comm avsr_comm;

/* The implementation table. Every entry returns 0 on success, -1 with err
 * filled in on failure; the public wrappers below add the watchdog, timing
 * and the failure policy around them. */
typedef struct avsr_comm_ops {
    const char *name; /* "mpi" */
    int (*barrier)(avsr_comm *c, avsr_error *err);
    /* bytes from rank `root` to every rank (same `bytes` everywhere) */
    int (*bcast)(avsr_comm *c, void *buf, size_t bytes, int root, avsr_error *err);
    /* in place: buf[i] = sum over ranks (memory of avsr_comm_device()) */
    int (*allreduce_sum_f32)(avsr_comm *c, float *buf, int64_t n, avsr_error *err);
    int (*allreduce_sum_f64)(avsr_comm *c, double *buf, int64_t n, avsr_error *err);
    /* in place: buf[i] = max over ranks (host memory) */
    int (*allreduce_max_int)(avsr_comm *c, int *buf, int n, avsr_error *err);
    /* every rank sends `bytes`; rank 0 receives size * bytes in rank order
     * into recv (ignored on other ranks) */
    int (*gather)(avsr_comm *c, const void *send, size_t bytes, void *recv, avsr_error *err);
    void (*abort)(avsr_comm *c, int code); /* must not return */
    void (*destroy)(avsr_comm *c); /* frees the implementation's state */
} avsr_comm_ops;

typedef struct avsr_comm_opts {
    /* Watchdog timeout in seconds for one collective: 0 = the default
     * (AVSR_COMM_DEFAULT_TIMEOUT_S), < 0 = no watchdog. */
    double timeout_s;
    /* false (default): a failed collective aborts the job (see above);
     * true: it returns -1 with the message in err. */
    bool no_abort;
} avsr_comm_opts;

#define AVSR_COMM_DEFAULT_TIMEOUT_S 300.0

/* Exit status of a watchdog kill and of the abort policy. */
#define AVSR_COMM_EXIT_FAILURE 1

/* The MPI communicator over all ranks of MPI_COMM_WORLD (a duplicate, with
 * MPI_ERRORS_RETURN). Initialises MPI (MPI_Init_thread, FUNNELED) unless the
 * program already did, in which case the provided level must be at least
 * FUNNELED. argc/argv may be NULL. opts may be NULL (defaults). */
avsr_comm *avsr_comm_mpi_create(int *argc, char ***argv, const avsr_comm_opts *opts,
                                avsr_error *err);

/* Stops the watchdog, frees the communicator and, if avsr_comm_mpi_create
 * initialised MPI, finalises it. Not a collective for the caller, but MPI
 * communicators are freed collectively: call it on every rank. */
void avsr_comm_destroy(avsr_comm *c);

int avsr_comm_rank(const avsr_comm *c);
int avsr_comm_size(const avsr_comm *c);
/* Rank and number of ranks on this node (MPI_Comm_split_type with
 * MPI_COMM_TYPE_SHARED). */
int avsr_comm_local_rank(const avsr_comm *c);
int avsr_comm_local_size(const avsr_comm *c);
const char *avsr_comm_name(const avsr_comm *c);
/* Memory that the tensor collectives (allreduce_sum_*) take: AVSR_DEV_CPU
 * for MPI, AVSR_DEV_CUDA for the NCCL backend. */
avsr_device avsr_comm_device(const avsr_comm *c);

/* Change the watchdog timeout (seconds; < 0 turns it off for later calls;
 * 0 = default). A trainer raises it around long one-sided work such as a
 * checkpoint that rank 0 writes while the others wait in a barrier. */
void avsr_comm_set_timeout(avsr_comm *c, double seconds);
double avsr_comm_timeout(const avsr_comm *c);

/* Seconds spent inside collectives since creation (all of the calls below). */
double avsr_comm_seconds(const avsr_comm *c);

/* The collectives (see avsr_comm_ops). */
int avsr_comm_barrier(avsr_comm *c, avsr_error *err);
int avsr_comm_bcast(avsr_comm *c, void *buf, size_t bytes, int root, avsr_error *err);
int avsr_comm_allreduce_sum_f32(avsr_comm *c, float *buf, int64_t n, avsr_error *err);
int avsr_comm_allreduce_sum_f64(avsr_comm *c, double *buf, int64_t n, avsr_error *err);
int avsr_comm_allreduce_max_int(avsr_comm *c, int *buf, int n, avsr_error *err);
int avsr_comm_gather(avsr_comm *c, const void *send, size_t bytes, void *recv, avsr_error *err);

/* Print "avsr: rank R: <message>: aborting the job" and end every rank
 * (MPI_Abort(MPI_COMM_WORLD, code) for MPI). */
void avsr_comm_abort(avsr_comm *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* ---- for implementations ------------------------------------------------ */

/* The state every implementation shares; an implementation allocates it
 * (avsr_comm_alloc), fills rank/size/local_*, then starts the watchdog with
 * avsr_comm_start(). */
avsr_comm *avsr_comm_alloc(const avsr_comm_ops *ops, void *impl, const avsr_comm_opts *opts,
                           avsr_error *err);
int avsr_comm_start(avsr_comm *c, int rank, int size, int local_rank, int local_size,
                    avsr_device device, avsr_error *err);
void *avsr_comm_impl(const avsr_comm *c);

#ifdef __cplusplus
}
#endif

#endif
