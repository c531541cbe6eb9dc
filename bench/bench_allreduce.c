/* bench_allreduce: gradient all-reduce time through avsr_grad_sync over a
 * 50 MiB flat gradient (13,107,200 floats), for several bucket sizes (25 MiB
 * is the default), on the MPI communicator.
 *
 *   mpirun -np 2 --bind-to none bench/bench_allreduce [iters]
 *
 * Each row: 2 warm-up runs, then the median of `iters` (default 10) timed
 * runs; every run is preceded by a barrier. algbw = bytes / time (GB = 1e9
 * bytes); busbw = algbw * 2 (n - 1) / n (nccl-tests' convention, comparable
 * across rank counts). Rank 0 prints a Markdown table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/comm.h"
#include "dist/grad_sync.h"
#include "params.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    avsr_error err = {0};
    avsr_comm *c = avsr_comm_mpi_create(&argc, &argv, NULL, &err);
    if (!c) {
        fprintf(stderr, "bench_allreduce: %s\n", err.msg);
        return 1;
    }
    int iters = argc > 1 ? atoi(argv[1]) : 10;
    if (iters < 1)
        iters = 1;
    int rank = avsr_comm_rank(c), n = avsr_comm_size(c);
    const int64_t floats = (int64_t)50 << 18; /* 50 MiB of f32 */
    avsr_params *p = avsr_params_create();
    if (!avsr_params_add(p, "grad", 1, &floats, &err) || avsr_params_finalize(p, &err) < 0)
        goto fail;
    float *g = avsr_params_grad(p);
    const size_t mib = (size_t)1 << 20;
    const size_t buckets[] = {1 * mib, 5 * mib, 25 * mib, 50 * mib};
    if (rank == 0) {
        printf("all-reduce of a %.0f MiB gradient (%lld floats), %d ranks, MPI, median of %d\n\n",
               (double)floats * 4 / (double)mib, (long long)floats, n, iters);
        printf("| bucket | buckets | time (ms) | algbw (GB/s) | busbw (GB/s) |\n");
        printf("|---|---|---|---|---|\n");
    }
    double *t = malloc(sizeof(double) * (size_t)iters);
    for (size_t bi = 0; bi < sizeof buckets / sizeof buckets[0]; bi++) {
        avsr_grad_sync_opts o = {buckets[bi]};
        avsr_grad_sync *gs = avsr_grad_sync_create(p, c, &o, &err);
        if (!gs)
            goto fail;
        avsr_grad_sync_stats st = {0};
        for (int it = -2; it < iters; it++) {
            for (int64_t i = 0; i < floats; i += 1024)
                g[i] = (float)rank; /* touch the buffer like a backward pass would */
            if (avsr_comm_barrier(c, &err) < 0 || avsr_grad_sync_run(gs, 1.0f, &st, &err) < 0) {
                avsr_grad_sync_destroy(gs);
                goto fail;
            }
            if (it >= 0)
                t[it] = st.comm_seconds;
        }
        /* the slowest rank's median is the step's time */
        qsort(t, (size_t)iters, sizeof *t, cmp_double);
        int us = (int)(t[iters / 2] * 1e6); /* median, microseconds */
        if (avsr_comm_allreduce_max_int(c, &us, 1, &err) < 0) {
            avsr_grad_sync_destroy(gs);
            goto fail;
        }
        double sec = us * 1e-6;
        double alg = (double)floats * 4.0 / sec / 1e9;
        if (rank == 0)
            printf("| %zu MiB | %d | %.2f | %.2f | %.2f |\n", buckets[bi] / mib, st.buckets,
                   sec * 1e3, alg, alg * 2.0 * (n - 1) / n);
        avsr_grad_sync_destroy(gs);
    }
    free(t);
    avsr_params_destroy(p);
    avsr_comm_destroy(c);
    return 0;
fail:
    fprintf(stderr, "bench_allreduce: rank %d: %s\n", rank, err.msg);
    avsr_comm_abort(c, 1, "bench_allreduce failed");
}
