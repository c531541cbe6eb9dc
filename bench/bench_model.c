/* bench_model: one training step of the whole AV model (forward, hybrid
 * CTC/attention loss, backward, AdamW step) on a fixed batch, for the
 * "demo" model (recipes/demo-joint.yaml sizes) and a "base" model (two Conformers
 * 12 x 256, ResNet-18 width 64 at 88 x 88, ResNet1D width 64, concat+MLP
 * fusion hidden 1024, 6-layer decoder), vocabulary 41, training mode,
 * dropout 0, no padding, against the PyTorch peer bench/torch_models.py
 * (the Auto-AVSR AV replica the golden test compares with).
 *
 *   /usr/bin/python3 bench/torch_models.py > torch.txt
 *   OMP_NUM_THREADS=2 build/bench/bench_model torch.txt [demo|base ...]
 *
 * Warm-up then the median (demo: 2 + 5, base: 1 + 3). Memory: the
 * process's peak RSS (getrusage) on both sides, and our activation arena
 * peak and flat parameter buffers (data, grad, two moments). The torch
 * file holds "name ms params peak_rss_mib" lines; without it only our
 * columns are printed. Each model runs in a fresh process when named alone
 * (the RSS is per process: run `bench_model torch.txt demo` and
 * `bench_model torch.txt base` separately for clean memory numbers). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "ctx.h"
#include "models/builder.h"
#include "optim.h"
#include "params.h"
#include "tape.h"

typedef struct bm {
    const char *name, *yaml;
    int64_t B, T, L;
    int warm, runs;
} bm;

static const bm MODELS[] = {
    {"demo",
     "model:\n"
     "  video: {width: 16, depth: [1, 1, 1, 1], roi: 88}\n"
     "  audio: {features: wave, width: 16, depth: [1, 1, 1, 1]}\n"
     "  fusion: {type: concat_mlp, position: late, hidden: 256}\n"
     "  encoder: {layers: 4, dim: 144, heads: 4, ffn: 576, conv_kernel: 15, dropout: 0.0}\n"
     "  decoder: {layers: 1, dim: 144, heads: 4, ffn: 576, dropout: 0.0}\n"
     "  ctc_weight: 0.3\n  ctc_dropout: 0.0\n  label_smoothing: 0.1\n",
     4, 50, 20, 2, 5},
    {"base",
     "model:\n"
     "  video: {width: 64, depth: [2, 2, 2, 2], roi: 88}\n"
     "  audio: {features: wave, width: 64, depth: [2, 2, 2, 2]}\n"
     "  fusion: {type: concat_mlp, position: late, hidden: 1024}\n"
     "  encoder: {layers: 12, dim: 256, heads: 4, ffn: 1024, conv_kernel: 31, dropout: 0.0}\n"
     "  decoder: {layers: 6, dim: 256, heads: 4, ffn: 1024, dropout: 0.0}\n"
     "  ctc_weight: 0.1\n  ctc_dropout: 0.0\n  label_smoothing: 0.1\n",
     2, 40, 20, 1, 3},
};

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

/* torch line for name: ms, params, rss (MiB); 0 if absent */
static int torch_row(const char *file, const char *name, double *ms, long long *np, double *rss)
{
    FILE *f = file ? fopen(file, "r") : NULL;
    char n[64];
    double a, c;
    long long b;
    int found = 0;
    while (f && fscanf(f, "%63s %lf %lld %lf", n, &a, &b, &c) == 4)
        if (!strcmp(n, name)) {
            *ms = a;
            *np = b;
            *rss = c;
            found = 1;
        }
    if (f)
        fclose(f);
    return found;
}

static int run(const bm *b, const char *tfile)
{
    avsr_error err = {0};
    avsr_ctx_opts o = {getenv("OMP_NUM_THREADS") ? 0 : 2, 0, AVSR_DEV_CPU};
    avsr_ctx *ctx = avsr_ctx_create(&o, &err);
    avsr_yaml *y = avsr_yaml_load_string(b->name, b->yaml, strlen(b->yaml), &err);
    avsr_params *p = avsr_params_create();
    avsr_model *m = NULL;
    avsr_optim_cfg oc = avsr_optim_defaults(AVSR_OPTIM_ADAMW);
    oc.beta2 = 0.98;
    oc.weight_decay = 0.03;
    avsr_optim *opt = NULL;
    if (!ctx || !y || avsr_model_build(y, avsr_ynode_get(avsr_yaml_root(y), "model"), 41, &m, p, &err) < 0 ||
        avsr_params_finalize(p, &err) < 0 || avsr_params_init(p, 1, &err) < 0 ||
        !(opt = avsr_optim_create(&oc, &err))) {
        fprintf(stderr, "bench_model: %s\n", err.msg);
        return 1;
    }
    int64_t B = b->B, T = b->T, L = b->L;
    int64_t sv[4] = {B, T, 88, 88}, sa[2] = {B, T * 640};
    avsr_tensor *video = avsr_tensor_create(AVSR_F32, 4, sv, false);
    avsr_tensor *audio = avsr_tensor_create(AVSR_F32, 2, sa, false);
    fill(avsr_f32(video), video->numel, 1);
    fill(avsr_f32(audio), audio->numel, 2);
    int64_t *tg = malloc(sizeof *tg * (size_t)(B * L)), tl[16];
    for (int64_t i = 0; i < B * L; i++)
        tg[i] = 1 + (int64_t)((i * 7919) % 39);
    for (int64_t i = 0; i < B; i++)
        tl[i] = L;
    avsr_model_input bt = {.B = B, .video = video, .audio = audio, .targets = tg,
                     .target_lengths = tl, .max_target = L};
    double t[16];
    for (int it = 0; it < b->warm + b->runs; it++) {
        double t0 = now_ms();
        avsr_params_zero_grad(p);
        avsr_ctx_set_training(ctx, true);
        avsr_ctx_set_grad(ctx, true);
        avsr_model_out out;
        if (avsr_model_forward(ctx, m, &bt, &out) < 0 ||
            avsr_backward(ctx, out.loss.total, NULL) < 0) {
            fprintf(stderr, "bench_model: %s\n", avsr_ctx_errmsg(ctx));
            return 1;
        }
        if (avsr_optim_step(opt, p, 1e-3f, &err) < 0) {
            fprintf(stderr, "bench_model: %s\n", err.msg);
            return 1;
        }
        avsr_ctx_reset(ctx);
        t[it] = now_ms() - t0;
    }
    qsort(t + b->warm, (size_t)b->runs, sizeof *t, cmp_d);
    double ms = t[b->warm + b->runs / 2];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss = ru.ru_maxrss / 1024.0;
    double arena = avsr_ctx_arena_peak(ctx) / 1048576.0;
    double flat = 4.0 * (double)avsr_params_flat_size(p) * 4.0 / 1048576.0;
    double tms = 0, trss = 0;
    long long tnp = 0;
    int have = torch_row(tfile, b->name, &tms, &tnp, &trss);
    long long np = (long long)avsr_params_numel(p);
    if (have)
        printf("| %s | B=%lld T=%lld | %lld | %lld | %.0f | %.0f | %.2f | %.0f (arena %.0f + flat %.0f) | %.0f |\n",
               b->name, (long long)B, (long long)T, np, tnp, ms, tms, tms / ms, rss, arena, flat, trss);
    else
        printf("| %s | B=%lld T=%lld | %lld | - | %.0f | - | - | %.0f (arena %.0f + flat %.0f) | - |\n",
               b->name, (long long)B, (long long)T, np, ms, rss, arena, flat);
    if (have && tnp != np)
        fprintf(stderr, "bench_model: %s: parameter counts differ (avsr %lld, torch %lld)\n",
                b->name, np, tnp);
    free(tg);
    avsr_tensor_free(video);
    avsr_tensor_free(audio);
    avsr_optim_destroy(opt);
    avsr_model_free(m);
    avsr_params_destroy(p);
    avsr_yaml_free(y);
    avsr_ctx_destroy(ctx);
    return have && tnp != np;
}

int main(int argc, char **argv)
{
    const char *tfile = argc > 1 ? argv[1] : NULL;
    printf("| model | batch | params avsr | params torch | avsr ms/step | torch ms/step | "
           "torch/avsr | avsr peak RSS MiB | torch peak RSS MiB |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    int rc = 0;
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++) {
        bool want = argc <= 2;
        for (int a = 2; a < argc; a++)
            want |= !strcmp(argv[a], MODELS[i].name);
        if (want)
            rc |= run(&MODELS[i], tfile);
    }
    return rc;
}
