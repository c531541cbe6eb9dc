/* bench_conv: forward + backward (all gradients) of the visual frontend's
 * convolutions and pooling, against PyTorch on the same shapes.
 *
 *   bench/bench_conv [torch_results.txt|-] [case]
 *
 * The optional file holds "<case> <ms>" lines written by bench/conv_torch.py;
 * bench/run_conv.sh runs both and prints the joined table. Threads: 2 (or
 * OMP_NUM_THREADS). AVSR_CONV_LAYOUT=plain|blocked forces a layout.
 *
 * Cases (B*T = 2*25 = 50 frames for the 2D trunk):
 *   rb64    ResNet-18 basic-block conv 3x3 64->64 at 22x22, stride 1
 *   rb128   ResNet-18 basic-block conv 3x3 128->128 at 11x11, stride 1
 *   down    downsampling conv 3x3 64->128 22->11, stride 2
 *   stem    Conv3d(1->64, k(5,7,7), s(1,2,2), p(2,3,3)) on [2, 1, 25, 88, 88]
 *           (input video needs no gradient: weight gradient only)
 *   maxpool MaxPool3d(k(1,3,3), s(1,2,2), p(0,1,1)) on the stem's output
 * The ResNet convolutions have no bias (they are followed by BatchNorm).
 * Each iteration: forward, backward seeded with a fixed upstream gradient
 * (the input's gradient fresh, the weight's accumulated like a parameter's),
 * arena reset. Warm-up, then the median of the timed runs (wall clock).
 * The last column is the median process CPU time per iteration of both
 * sides: on a shared machine it shows the work done, where wall time also
 * shows waiting for cores (run with OMP_WAIT_POLICY=passive so idle
 * threads sleep instead of spinning, otherwise it counts spinning too). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "op_conv.h"
#include "tape.h"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static double cpu_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static avsr_tensor *heap(int ndim, const int64_t *shape, bool grad, unsigned seed)
{
    avsr_tensor *t = avsr_tensor_create(AVSR_F32, ndim, shape, grad);
    if (!t) {
        fprintf(stderr, "bench_conv: out of memory\n");
        exit(1);
    }
    float *d = avsr_f32(t);
    for (int64_t i = 0; i < t->numel; i++) {
        seed = seed * 1664525u + 1013904223u;
        d[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    return t;
}

struct bcase {
    const char *name, *desc;
    int kind; /* 0 conv, 1 max pool */
    int nsp;
    int64_t xs[5], ws[5];
    avsr_conv_params cp;
    avsr_pool_params pp;
    bool x_grad;
    int runs;
};

/* "<case> <wall ms> <cpu ms>" lines of bench/conv_torch.py */
static double torch_ms(const char *file, const char *name, double *cpu)
{
    *cpu = 0;
    if (!file)
        return 0;
    FILE *f = fopen(file, "r");
    if (!f)
        return 0;
    char n[64];
    double ms, c, r = 0;
    while (fscanf(f, "%63s %lf %lf", n, &ms, &c) == 3)
        if (!strcmp(n, name)) {
            r = ms;
            *cpu = c;
        }
    fclose(f);
    return r;
}

int main(int argc, char **argv)
{
    const char *tfile = argc > 1 && strcmp(argv[1], "-") ? argv[1] : NULL;
    const char *only = argc > 2 ? argv[2] : NULL; /* run one case */
    avsr_error err = {0};
    avsr_ctx_opts o = {0};
    if (!getenv("OMP_NUM_THREADS"))
        o.threads = 2;
    avsr_ctx *ctx = avsr_ctx_create(&o, &err);
    if (!ctx) {
        fprintf(stderr, "bench_conv: %s\n", err.msg);
        return 1;
    }
    struct bcase cases[] = {
        {"rb64", "conv3x3 64->64 22x22 s1, B=50", 0, 2, {50, 64, 22, 22}, {64, 64, 3, 3},
         {.nsp = 2, .pad = {1, 1}}, {0}, true, 15},
        {"rb128", "conv3x3 128->128 11x11 s1, B=50", 0, 2, {50, 128, 11, 11}, {128, 128, 3, 3},
         {.nsp = 2, .pad = {1, 1}}, {0}, true, 15},
        {"down", "conv3x3 64->128 22->11 s2, B=50", 0, 2, {50, 64, 22, 22}, {128, 64, 3, 3},
         {.nsp = 2, .stride = {2, 2}, .pad = {1, 1}}, {0}, true, 15},
        {"stem", "conv3d 1->64 k(5,7,7) s(1,2,2) [2,1,25,88,88]", 0, 3, {2, 1, 25, 88, 88},
         {64, 1, 5, 7, 7}, {.nsp = 3, .stride = {1, 2, 2}, .pad = {2, 3, 3}}, {0}, false, 7},
        {"maxpool", "maxpool3d (1,3,3)/(1,2,2)/(0,1,1) [2,64,25,44,44]", 1, 3,
         {2, 64, 25, 44, 44}, {0}, {0},
         {.nsp = 3, .kernel = {1, 3, 3}, .stride = {1, 2, 2}, .pad = {0, 1, 1}}, true, 15},
    };
    int nc = (int)(sizeof cases / sizeof *cases);
    printf("threads: %d, layout: %s\n\n", avsr_ctx_threads(ctx),
           getenv("AVSR_CONV_LAYOUT") ? getenv("AVSR_CONV_LAYOUT") : "auto");
    printf("| case | shape | avsr ms | torch ms | torch/avsr | peak arena bytes "
           "| cpu ms avsr / torch |\n");
    printf("|---|---|---:|---:|---:|---:|---:|\n");
    for (int c = 0; c < nc; c++) {
        struct bcase *bc = &cases[c];
        if (only && strcmp(only, bc->name))
            continue;
        int nd = bc->nsp + 2;
        avsr_tensor *x = heap(nd, bc->xs, false, 1);
        avsr_tensor *w = bc->kind == 0 ? heap(nd, bc->ws, true, 2) : NULL;
        avsr_tensor *seed = NULL;
        double t[64], tc[64];
        int warm = 2, n = bc->runs;
        size_t peak = 0;
        for (int it = 0; it < warm + n; it++) {
            avsr_ctx_reset(ctx);
            double t0 = now_ms(), c0 = cpu_ms();
            /* the input as an activation: its gradient starts fresh */
            avsr_tensor *xa = avsr_tensor_wrap(ctx, AVSR_F32, nd, x->shape, x->data);
            if (bc->x_grad)
                xa->flags |= AVSR_T_REQUIRES_GRAD;
            avsr_tensor *y = bc->kind == 0 ? avsr_op_conv(ctx, xa, w, NULL, &bc->cp)
                                           : avsr_op_max_pool(ctx, xa, &bc->pp);
            if (y && !seed)
                seed = heap(y->ndim, y->shape, false, 3);
            if (!y || avsr_backward(ctx, y, avsr_f32(seed)) < 0) {
                fprintf(stderr, "bench_conv: %s: %s\n", bc->name, avsr_ctx_errmsg(ctx));
                return 1;
            }
            double t1 = now_ms(), c1 = cpu_ms();
            if (it >= warm) {
                t[it - warm] = t1 - t0;
                tc[it - warm] = c1 - c0;
            }
            size_t pk = avsr_ctx_arena_used(ctx);
            if (pk > peak)
                peak = pk;
        }
        qsort(t, (size_t)n, sizeof *t, cmp_d);
        qsort(tc, (size_t)n, sizeof *tc, cmp_d);
        double med = t[n / 2], cmed = tc[n / 2], tcpu;
        double tm = torch_ms(tfile, bc->name, &tcpu);
        if (tm > 0)
            printf("| %s | %s | %.2f | %.2f | %.2f | %zu | %.1f / %.1f |\n", bc->name, bc->desc,
                   med, tm, tm / med, peak, cmed, tcpu);
        else
            printf("| %s | %s | %.2f | - | - | %zu | %.1f / - |\n", bc->name, bc->desc, med,
                   peak, cmed);
        fflush(stdout);
        avsr_tensor_free(x);
        avsr_tensor_free(w);
        avsr_tensor_free(seed);
        seed = NULL;
    }
    avsr_ctx_reset(ctx);
    avsr_ctx_destroy(ctx);
    return 0;
}
