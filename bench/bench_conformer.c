/* bench_conformer: forward + backward time of one Conformer layer
 * (models/conformer.h: macaron FFN, rel-pos MHSA, convolution module),
 * d 256, 4 heads, FFN 1024, kernel 31, B 8, T 250, training mode with
 * dropout 0.1, against the PyTorch replica of the ESPnet layer
 * (bench/conformer_torch.py), 2 threads:
 *
 *   /usr/bin/python3 bench/conformer_torch.py > torch.txt
 *   OMP_NUM_THREADS=2 build/bench/bench_conformer torch.txt
 *
 * Rows: "train" = y = layer(x); backward with dL/dy = R, with the fused
 * q/k/v product and with three separate products; "eval_fwd" = forward
 * only, evaluation mode, no tape. 2 warm-up runs, then the median of 7.
 * Without the file only the avsr column is printed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "models/conformer.h"
#include "ops.h"
#include "params.h"
#include "tape.h"

#define WARM 2
#define RUNS 7
#define B 8
#define T 250
#define D 256

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

static double torch_ms(const char *file, const char *name)
{
    if (!file)
        return 0;
    FILE *f = fopen(file, "r");
    if (!f)
        return 0;
    char n[64];
    double ms, r = 0;
    while (fscanf(f, "%63s %lf", n, &ms) == 2)
        if (!strcmp(n, name))
            r = ms;
    fclose(f);
    return r;
}

static avsr_conformer_encoder enc;
static avsr_tensor *x;
static float *R;

static double run(avsr_ctx *ctx, bool train)
{
    double t[RUNS];
    avsr_ctx_set_training(ctx, train);
    avsr_ctx_set_grad(ctx, train);
    for (int it = 0; it < WARM + RUNS; it++) {
        avsr_ctx_reset(ctx);
        double t0 = now_ms();
        avsr_tensor *pos = avsr_op_reshape(ctx, avsr_op_rel_positions(ctx, T, D), 3,
                                           (int64_t[]){1, 2 * T - 1, D});
        avsr_tensor *mask = avsr_pad_mask(ctx, B, T, NULL);
        avsr_tensor *y = avsr_conformer_layer_forward(ctx, &enc, 0, x, pos, mask);
        if (train && y)
            avsr_backward(ctx, avsr_op_dot_const(ctx, y, R), NULL);
        double t1 = now_ms();
        if (avsr_ctx_failed(ctx)) {
            fprintf(stderr, "bench_conformer: %s\n", avsr_ctx_errmsg(ctx));
            exit(1);
        }
        if (it >= WARM)
            t[it - WARM] = t1 - t0;
    }
    qsort(t, RUNS, sizeof *t, cmp_d);
    return t[RUNS / 2];
}

int main(int argc, char **argv)
{
    const char *tf = argc > 1 ? argv[1] : NULL;
    avsr_error err = {0};
    avsr_ctx *ctx = avsr_ctx_create(&(avsr_ctx_opts){0}, &err);
    avsr_params *p = avsr_params_create();
    avsr_conformer_cfg c;
    avsr_conformer_cfg_default(&c, 0, D, 4, 1024, 1);
    c.bn_mask = false; /* ESPnet: no padding in this batch anyway */
    if (!ctx || avsr_conformer_encoder_init(&enc, p, "", &c, &err) < 0 ||
        avsr_params_finalize(p, &err) < 0 || avsr_params_init(p, 1, &err) < 0) {
        fprintf(stderr, "bench_conformer: %s\n", err.msg);
        return 1;
    }
    x = avsr_tensor_create(AVSR_F32, 3, (int64_t[]){B, T, D}, true);
    R = malloc(sizeof(float) * B * T * D);
    unsigned s = 1;
    for (int64_t i = 0; i < x->numel; i++) {
        s = s * 1664525u + 1013904223u;
        avsr_f32(x)[i] = (float)(s >> 8) / 16777216.0f * 2 - 1;
        s = s * 1664525u + 1013904223u;
        R[i] = (float)(s >> 8) / 16777216.0f * 2 - 1;
    }
    printf("One Conformer layer, d %d, 4 heads, FFN 1024, kernel 31, B %d, T %d, %d threads\n\n",
           D, B, T, avsr_ctx_threads(ctx));
    printf("| case | avsr ms | PyTorch ms | PyTorch / avsr |\n|---|---:|---:|---:|\n");
    struct {
        const char *row, *tname;
        bool train, fuse;
    } rows[] = {{"train fwd+bwd, fused q/k/v", "train", true, true},
                {"train fwd+bwd, three q/k/v products", "train", true, false},
                {"eval forward, fused q/k/v", "eval_fwd", false, true},
                {"eval forward, three q/k/v products", "eval_fwd", false, false}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        enc.layers[0].self_attn.fuse_qkv = rows[i].fuse;
        double ms = run(ctx, rows[i].train), tm = torch_ms(tf, rows[i].tname);
        if (tm > 0)
            printf("| %s | %.1f | %.1f | %.2f |\n", rows[i].row, ms, tm, tm / ms);
        else
            printf("| %s | %.1f | - | - |\n", rows[i].row, ms);
        fflush(stdout);
    }
    avsr_tensor_free(x);
    free(R);
    avsr_conformer_encoder_free(&enc);
    avsr_params_destroy(p);
    avsr_ctx_destroy(ctx);
    return 0;
}
