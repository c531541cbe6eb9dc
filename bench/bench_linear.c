/* bench_linear: linear forward + backward through avsr next to the raw
 * oneDNN matmuls it is made of.
 *
 * For each Conformer-sized projection (B*T = 4096 rows; 256->1024,
 * 1024->256, 768->3072, 3072->768) one step is
 *   avsr: y = avsr_op_linear(x, W, b) on an activation x that requires grad
 *         and parameters W, b from a parameter store, then backward with a
 *         given dy (dx written fresh, dW and db accumulated);
 *   raw:  the same three matmuls as oneDNN primitives created once and
 *         executed directly (y = x W^T, dx = dy W, dW = dy^T x; no bias,
 *         no accumulation), i.e. strictly less work than the avsr step.
 * The two are timed alternately (warm-up 3, then the median of --reps,
 * default 10) on the same matrices and threads (2 unless OMP_NUM_THREADS
 * is set). Flops: forward 2*M*N*K, backward twice that. Prints a Markdown
 * table. Usage: bench/bench_linear [--reps N] [--shapes N] (the first N
 * shapes only). */
#define _POSIX_C_SOURCE 200809L
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "op_linear.h"
#include "params.h"
#include "tape.h"

#define CHECK(call)                                                                   \
    do {                                                                              \
        dnnl_status_t st_ = (call);                                                   \
        if (st_ != dnnl_success) {                                                    \
            fprintf(stderr, "bench_linear: %s failed (status %d)\n", #call, (int)st_); \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void fill(float *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) * (1.0f / 16777216.0f) - 0.5f;
    }
}

static float *falloc(size_t n)
{
    float *p = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
    if (!p) {
        fprintf(stderr, "bench_linear: out of memory\n");
        exit(1);
    }
    return p;
}

/* ---- raw oneDNN ---- */

/* md of a logical [rows, cols] matrix, stored row-major or (trans) as the
 * row-major [cols, rows] matrix */
static void md2(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int trans)
{
    dnnl_dims_t d = {rows, cols};
    dnnl_dims_t s = {trans ? 1 : cols, trans ? rows : 1};
    CHECK(dnnl_memory_desc_init_by_strides(md, 2, d, dnnl_f32, s));
}

typedef struct raw_mm {
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, dst;
} raw_mm;

/* c[M, N] = op(a)[M, K] op(b)[K, N] */
static void raw_create(raw_mm *r, dnnl_engine_t eng, int64_t M, int64_t N, int64_t K, int ta,
                       int tb, float *a, float *b, float *c)
{
    dnnl_memory_desc_t amd, bmd, cmd;
    md2(&amd, M, K, ta);
    md2(&bmd, K, N, tb);
    md2(&cmd, M, N, 0);
    dnnl_matmul_desc_t d;
    CHECK(dnnl_matmul_desc_init(&d, &amd, &bmd, NULL, &cmd));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &d, NULL, eng, NULL));
    CHECK(dnnl_primitive_create(&r->prim, pd));
    CHECK(dnnl_primitive_desc_destroy(pd));
    CHECK(dnnl_memory_create(&r->src, &amd, eng, a));
    CHECK(dnnl_memory_create(&r->wei, &bmd, eng, b));
    CHECK(dnnl_memory_create(&r->dst, &cmd, eng, c));
}

static void raw_exec(raw_mm *r, dnnl_stream_t s)
{
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, r->src}, {DNNL_ARG_WEIGHTS, r->wei},
                               {DNNL_ARG_DST, r->dst}};
    CHECK(dnnl_primitive_execute(r->prim, s, 3, args));
    CHECK(dnnl_stream_wait(s));
}

static void raw_destroy(raw_mm *r)
{
    dnnl_primitive_destroy(r->prim);
    dnnl_memory_destroy(r->src);
    dnnl_memory_destroy(r->wei);
    dnnl_memory_destroy(r->dst);
}

/* ---- avsr ---- */

struct seed_saved {
    avsr_tensor *y;
    float *dy;
};

/* The bench's "loss": hands y its upstream gradient without a copy, as a
 * following op would. */
static void seed_backward(avsr_ctx *ctx, void *sv)
{
    (void)ctx;
    struct seed_saved *s = sv;
    s->y->grad = s->dy;
}

/* One avsr step; returns forward and backward seconds. */
static int avsr_step(avsr_ctx *ctx, float *xd, int64_t M, int64_t K, avsr_tensor *w,
                     avsr_tensor *b, float *dy, double *tf, double *tb)
{
    int64_t xs[2] = {M, K}, one = 1;
    double t0 = now();
    avsr_tensor *x = avsr_tensor_wrap(ctx, AVSR_F32, 2, xs, xd);
    if (!x)
        return -1;
    x->flags |= AVSR_T_REQUIRES_GRAD; /* an activation: grad made by backward */
    avsr_tensor *y = avsr_op_linear(ctx, x, w, b);
    double t1 = now();
    avsr_tensor *loss = avsr_tensor_new(ctx, AVSR_F32, 1, &one);
    struct seed_saved *s = avsr_tape_saved(ctx, sizeof *s);
    if (!y || !loss || !s)
        return -1;
    s->y = y;
    s->dy = dy;
    loss->flags |= AVSR_T_REQUIRES_GRAD;
    if (avsr_tape_record(ctx, seed_backward, loss, s) < 0 || avsr_backward(ctx, loss, NULL) < 0)
        return -1;
    double t2 = now();
    *tf = t1 - t0;
    *tb = t2 - t1;
    avsr_ctx_reset(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    int reps = 10, warm = 3, nshapes = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shapes") && i + 1 < argc)
            nshapes = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--reps N] [--shapes 1-4]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;
    avsr_error err = {0};
    avsr_ctx_opts o = {0};
    o.threads = getenv("OMP_NUM_THREADS") ? 0 : 2;
    avsr_ctx *ctx = avsr_ctx_create(&o, &err);
    if (!ctx) {
        fprintf(stderr, "bench_linear: %s\n", err.msg);
        return 1;
    }
    int threads = avsr_ctx_threads(ctx);
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));

    const int64_t M = 4096;
    const int64_t shapes[4][2] = {{256, 1024}, {1024, 256}, {768, 3072}, {3072, 768}};
    printf("linear forward+backward, B*T = %lld rows, %d threads, median of %d (warm-up %d)\n\n",
           (long long)M, threads, reps, warm);
    printf("| shape (M x K -> N) | avsr GFLOP/s | raw oneDNN GFLOP/s | ratio | avsr fwd ms | avsr bwd ms "
           "| raw fwd ms | raw bwd ms | peak arena bytes |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int si = 0; si < nshapes && si < 4; si++) {
        int64_t K = shapes[si][0], N = shapes[si][1];
        /* a fresh context per shape, so the arena peak is this shape's */
        avsr_ctx_destroy(ctx);
        if (!(ctx = avsr_ctx_create(&o, &err))) {
            fprintf(stderr, "bench_linear: %s\n", err.msg);
            return 1;
        }
        avsr_params *p = avsr_params_create();
        int64_t ws[2] = {N, K};
        avsr_tensor *w = avsr_params_add(p, "w", 2, ws, &err);
        avsr_tensor *b = avsr_params_add(p, "b", 1, &N, &err);
        if (!w || !b || avsr_params_finalize(p, &err) < 0) {
            fprintf(stderr, "bench_linear: %s\n", err.msg);
            return 1;
        }
        fill(avsr_f32(w), (size_t)(N * K), 1);
        fill(avsr_f32(b), (size_t)N, 2);
        float *x = falloc((size_t)(M * K)), *dy = falloc((size_t)(M * N));
        float *y = falloc((size_t)(M * N)), *dx = falloc((size_t)(M * K));
        float *dw = falloc((size_t)(N * K));
        fill(x, (size_t)(M * K), 3);
        fill(dy, (size_t)(M * N), 4);
        raw_mm fwd, bwd_x, bwd_w;
        raw_create(&fwd, eng, M, N, K, 0, 1, x, avsr_f32(w), y);  /* y = x W^T */
        raw_create(&bwd_x, eng, M, K, N, 0, 0, dy, avsr_f32(w), dx); /* dx = dy W */
        raw_create(&bwd_w, eng, N, K, M, 1, 0, dy, x, dw);          /* dW = dy^T x */
        double *af = malloc(sizeof(double) * (size_t)reps), *ab = malloc(sizeof(double) * (size_t)reps);
        double *at = malloc(sizeof(double) * (size_t)reps), *rf = malloc(sizeof(double) * (size_t)reps);
        double *rb = malloc(sizeof(double) * (size_t)reps), *rt = malloc(sizeof(double) * (size_t)reps);
        for (int it = 0; it < warm + reps; it++) {
            double tf, tb;
            if (avsr_step(ctx, x, M, K, w, b, dy, &tf, &tb) < 0) {
                fprintf(stderr, "bench_linear: %s\n", avsr_ctx_errmsg(ctx));
                return 1;
            }
            double t0 = now();
            raw_exec(&fwd, strm);
            double t1 = now();
            raw_exec(&bwd_x, strm);
            raw_exec(&bwd_w, strm);
            double t2 = now();
            if (it >= warm) {
                int k = it - warm;
                af[k] = tf;
                ab[k] = tb;
                at[k] = tf + tb;
                rf[k] = t1 - t0;
                rb[k] = t2 - t1;
                rt[k] = t2 - t0;
            }
        }
        double *arr[6] = {af, ab, at, rf, rb, rt};
        for (int k = 0; k < 6; k++)
            qsort(arr[k], (size_t)reps, sizeof(double), cmp_double);
        int mid = reps / 2;
        double flops = 6.0 * (double)M * (double)N * (double)K;
        double ag = flops / at[mid] * 1e-9, rg = flops / rt[mid] * 1e-9;
        printf("| %lld x %lld -> %lld | %.1f | %.1f | %.3f | %.2f | %.2f | %.2f | %.2f | %zu |\n",
               (long long)M, (long long)K, (long long)N, ag, rg, ag / rg, af[mid] * 1e3,
               ab[mid] * 1e3, rf[mid] * 1e3, rb[mid] * 1e3, avsr_ctx_arena_peak(ctx));
        fflush(stdout);
        for (int k = 0; k < 6; k++)
            free(arr[k]);
        raw_destroy(&fwd);
        raw_destroy(&bwd_x);
        raw_destroy(&bwd_w);
        free(x); free(dy); free(y); free(dx); free(dw);
        avsr_params_destroy(p);
    }
    dnnl_stream_destroy(strm);
    dnnl_engine_destroy(eng);
    avsr_ctx_destroy(ctx);
    return 0;
}
