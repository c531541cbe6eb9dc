/* bench_frontend: forward + backward time of the Auto-AVSR visual frontend
 * (width 64, ROI 88, B=2, T=25, depth 2/2/2/2, Swish, training mode, clip
 * once with clip lengths 25 and 20 so batch norm masks padding, once
 * without lengths), 2 threads, against the PyTorch peer
 * bench/frontend_torch.py.
 *
 *   /usr/bin/python3 bench/frontend_torch.py > torch.txt
 *   OMP_NUM_THREADS=2 build/bench/bench_frontend torch.txt
 *
 * Timed step: y = frontend(x); backward with dL/dy = R (parameter gradients
 * only; the video needs none); avsr_ctx_reset. 2 warm-up runs, then the
 * median of 7 (each step is seconds long on 2 threads). Without the file
 * only the avsr column is printed. The torch file holds "name ms" lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "models/visual_frontend.h"
#include "op_basic.h"
#include "params.h"
#include "tape.h"

#define WARM 2
#define RUNS 7

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void fill(float *x, int64_t n, unsigned seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
    }
}

static double torch_ms(const char *file, const char *name)
{
    FILE *f = file ? fopen(file, "r") : NULL;
    char n[128];
    double ms, found = -1;
    while (f && fscanf(f, "%127s %lf", n, &ms) == 2)
        if (!strcmp(n, name))
            found = ms;
    if (f)
        fclose(f);
    return found;
}

int main(int argc, char **argv)
{
    avsr_error err = {0};
    avsr_ctx_opts o = {getenv("OMP_NUM_THREADS") ? 0 : 2, 0, AVSR_DEV_CPU};
    avsr_ctx *ctx = avsr_ctx_create(&o, &err);
    avsr_params *p = avsr_params_create();
    avsr_visual_frontend m;
    avsr_visual_frontend_cfg cfg;
    avsr_visual_frontend_defaults(&cfg);
    if (!ctx || !p || avsr_visual_frontend_init(&m, p, "frontend", &cfg, &err) < 0 ||
        avsr_params_finalize(p, &err) < 0 || avsr_params_init(p, 1, &err) < 0) {
        fprintf(stderr, "bench_frontend: %s\n", err.msg);
        return 1;
    }
    int64_t B = 2, T = 25, xs[4] = {B, T, 88, 88}, lengths[2] = {25, 20};
    avsr_tensor *x = avsr_tensor_create(AVSR_F32, 4, xs, false);
    fill(avsr_f32(x), x->numel, 1);
    float *R = malloc(sizeof(float) * (size_t)(B * T * 512));
    fill(R, B * T * 512, 2);
    avsr_ctx_set_training(ctx, true);
    const char *file = argc > 1 ? argv[1] : NULL;
    printf("| visual frontend (C 64, ROI 88, B 2, T 25, train) | avsr ms | PyTorch ms | PyTorch / avsr |\n");
    printf("|---|---:|---:|---:|\n");
    for (int mode = 0; mode < 2; mode++) {
        const int64_t *lens = mode == 0 ? lengths : NULL;
        const char *tag = mode == 0 ? "" : "_plain";
        double t[RUNS], tf[RUNS];
        for (int it = 0; it < WARM + RUNS; it++) {
            avsr_params_zero_grad(p);
            double t0 = now_ms();
            avsr_tensor *y = avsr_visual_frontend_forward(ctx, &m, x, lens);
            double t1 = now_ms();
            avsr_tensor *L = avsr_op_dot_const(ctx, y, R);
            if (!L || avsr_backward(ctx, L, NULL) < 0) {
                fprintf(stderr, "bench_frontend: %s\n", avsr_ctx_errmsg(ctx));
                return 1;
            }
            double t2 = now_ms();
            if (it >= WARM) {
                t[it - WARM] = t2 - t0;
                tf[it - WARM] = t1 - t0;
            }
            if (it == WARM + RUNS - 1)
                fprintf(stderr, "arena peak %.1f MiB\n", avsr_ctx_arena_peak(ctx) / 1048576.0);
            avsr_ctx_reset(ctx);
        }
        qsort(t, RUNS, sizeof *t, cmp_d);
        qsort(tf, RUNS, sizeof *tf, cmp_d);
        double ours = t[RUNS / 2], ours_f = tf[RUNS / 2];
        char n1[64], n2[64];
        snprintf(n1, sizeof n1, "visual_fwd_bwd%s", tag);
        snprintf(n2, sizeof n2, "visual_fwd%s", tag);
        double th = torch_ms(file, n1), thf = torch_ms(file, n2);
        const char *what = mode == 0 ? "lengths 25, 20 (masked BN)" : "no lengths (plain BN)";
        if (th > 0) {
            printf("| forward, %s | %.1f | %.1f | %.2f |\n", what, ours_f, thf, thf / ours_f);
            printf("| forward + backward, %s | %.1f | %.1f | %.2f |\n", what, ours, th, th / ours);
        } else {
            printf("| forward, %s | %.1f | - | - |\n", what, ours_f);
            printf("| forward + backward, %s | %.1f | - | - |\n", what, ours);
        }
    }
    free(R);
    avsr_tensor_free(x);
    avsr_visual_frontend_free(&m);
    avsr_params_destroy(p);
    avsr_ctx_destroy(ctx);
    return 0;
}
