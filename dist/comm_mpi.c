/* comm_mpi: the MPI implementation of the communicator (comm.h).
 *
 * The communicator is a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN,
 * so a failing call returns an error code that AVSR_MPI turns into a
 * message; the wrappers in comm.c then apply the failure policy
 * (MPI_Abort(MPI_COMM_WORLD, 1) unless no_abort). Counts above what an MPI
 * int can carry are split into chunks. */
#include "comm_mpi.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Elements per MPI call: well inside INT_MAX for every datatype used. */
#define MPI_CHUNK (1 << 28)

typedef struct mpi_impl {
    MPI_Comm comm;  /* duplicate of MPI_COMM_WORLD, MPI_ERRORS_RETURN */
    MPI_Comm local; /* ranks on this node (MPI_COMM_TYPE_SHARED) */
    bool we_init;   /* MPI_Init_thread was called here: finalize on destroy */
} mpi_impl;

int avsr_mpi_check(int rc, const char *call, const char *file, int line, avsr_error *err)
{
    if (rc == MPI_SUCCESS)
        return 0;
    char s[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS)
        snprintf(s, sizeof s, "MPI error code %d", rc);
    else
        s[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING] = '\0';
    return avsr_error_set(err, AVSR_ERR_BACKEND, "%s:%d: %s failed: %s", file, line, call, s);
}

static mpi_impl *impl_of(avsr_comm *c)
{
    return avsr_comm_impl(c);
}

MPI_Comm *avsr_comm_mpi_handle(avsr_comm *c)
{
    if (!c || strcmp(avsr_comm_name(c), "mpi") != 0)
        return NULL;
    return &impl_of(c)->comm;
}

static int mpi_barrier(avsr_comm *c, avsr_error *err)
{
    return AVSR_MPI(err, MPI_Barrier(impl_of(c)->comm));
}

static int mpi_bcast(avsr_comm *c, void *buf, size_t bytes, int root, avsr_error *err)
{
    MPI_Comm comm = impl_of(c)->comm;
    unsigned char *p = buf;
    do { /* at least one call, so an invalid root is reported even for 0 bytes */
        int n = bytes > (size_t)MPI_CHUNK ? MPI_CHUNK : (int)bytes;
        if (AVSR_MPI(err, MPI_Bcast(p, n, MPI_BYTE, root, comm)) < 0)
            return -1;
        p += n;
        bytes -= (size_t)n;
    } while (bytes > 0);
    return 0;
}

static int allreduce(avsr_comm *c, void *buf, int64_t n, size_t elem, MPI_Datatype type,
                     MPI_Op op, avsr_error *err)
{
    MPI_Comm comm = impl_of(c)->comm;
    unsigned char *p = buf;
    while (n > 0) {
        int k = n > MPI_CHUNK ? MPI_CHUNK : (int)n;
        if (AVSR_MPI(err, MPI_Allreduce(MPI_IN_PLACE, p, k, type, op, comm)) < 0)
            return -1;
        p += (size_t)k * elem;
        n -= k;
    }
    return 0;
}

static int mpi_allreduce_sum_f32(avsr_comm *c, float *buf, int64_t n, avsr_error *err)
{
    return allreduce(c, buf, n, sizeof(float), MPI_FLOAT, MPI_SUM, err);
}

static int mpi_allreduce_sum_f64(avsr_comm *c, double *buf, int64_t n, avsr_error *err)
{
    return allreduce(c, buf, n, sizeof(double), MPI_DOUBLE, MPI_SUM, err);
}

static int mpi_allreduce_max_int(avsr_comm *c, int *buf, int n, avsr_error *err)
{
    return allreduce(c, buf, n, sizeof(int), MPI_INT, MPI_MAX, err);
}

static int mpi_gather(avsr_comm *c, const void *send, size_t bytes, void *recv, avsr_error *err)
{
    if (bytes > (size_t)INT_MAX)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "comm: gather: a record of %zu bytes is larger than an MPI count",
                              bytes);
    mpi_impl *m = impl_of(c);
    return AVSR_MPI(err, MPI_Gather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, 0,
                                    m->comm));
}

static void mpi_abort(avsr_comm *c, int code)
{
    (void)c;
    MPI_Abort(MPI_COMM_WORLD, code);
    _exit(code); /* MPI_Abort does not return; this keeps the noreturn promise */
}

static void mpi_destroy(avsr_comm *c)
{
    mpi_impl *m = impl_of(c);
    if (!m)
        return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
        if (m->local != MPI_COMM_NULL)
            MPI_Comm_free(&m->local);
        if (m->comm != MPI_COMM_NULL)
            MPI_Comm_free(&m->comm);
        if (m->we_init)
            MPI_Finalize();
    }
    free(m);
}

static const avsr_comm_ops mpi_ops = {
    .name = "mpi",
    .barrier = mpi_barrier,
    .bcast = mpi_bcast,
    .allreduce_sum_f32 = mpi_allreduce_sum_f32,
    .allreduce_sum_f64 = mpi_allreduce_sum_f64,
    .allreduce_max_int = mpi_allreduce_max_int,
    .gather = mpi_gather,
    .abort = mpi_abort,
    .destroy = mpi_destroy,
};

avsr_comm *avsr_comm_mpi_create(int *argc, char ***argv, const avsr_comm_opts *opts,
                                avsr_error *err)
{
    mpi_impl *m = calloc(1, sizeof *m);
    if (!m) {
        AVSR_NOMEM(err, sizeof *m);
        return NULL;
    }
    m->comm = MPI_COMM_NULL;
    m->local = MPI_COMM_NULL;
    avsr_comm *c = avsr_comm_alloc(&mpi_ops, m, opts, err);
    if (!c) {
        free(m);
        return NULL;
    }
    int inited = 0, provided = 0, rank = 0, size = 0, lrank = 0, lsize = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        /* FUNNELED: only the main thread calls MPI (the prefetch thread and
         * the watchdog never do). */
        if (AVSR_MPI(err, MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided)) < 0)
            goto fail;
        m->we_init = true;
    } else if (AVSR_MPI(err, MPI_Query_thread(&provided)) < 0) {
        goto fail;
    }
    if (provided < MPI_THREAD_FUNNELED) {
        avsr_error_set(err, AVSR_ERR_BACKEND,
                       "comm: MPI provides thread level %d, at least MPI_THREAD_FUNNELED (%d) is needed",
                       provided, MPI_THREAD_FUNNELED);
        goto fail;
    }
    if (AVSR_MPI(err, MPI_Comm_dup(MPI_COMM_WORLD, &m->comm)) < 0 ||
        AVSR_MPI(err, MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN)) < 0 ||
        AVSR_MPI(err, MPI_Comm_rank(m->comm, &rank)) < 0 ||
        AVSR_MPI(err, MPI_Comm_size(m->comm, &size)) < 0 ||
        AVSR_MPI(err, MPI_Comm_split_type(m->comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL,
                                          &m->local)) < 0 ||
        AVSR_MPI(err, MPI_Comm_set_errhandler(m->local, MPI_ERRORS_RETURN)) < 0 ||
        AVSR_MPI(err, MPI_Comm_rank(m->local, &lrank)) < 0 ||
        AVSR_MPI(err, MPI_Comm_size(m->local, &lsize)) < 0)
        goto fail;
    if (avsr_comm_start(c, rank, size, lrank, lsize, AVSR_DEV_CPU, err) < 0)
        goto fail;
    return c;
fail:
    avsr_error_prefix(err, "comm: MPI setup: ");
    avsr_comm_destroy(c); /* frees m, finalizes MPI if it was initialised here */
    return NULL;
}
