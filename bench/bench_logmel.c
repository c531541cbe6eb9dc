/* bench_logmel: Whisper log-mel front end against PyTorch.
 *
 * Shapes: a batch of 8 clips of 10 s at 16 kHz (wave [8, 160000]) processed
 * as given (ASR2AVSR: 1000 frames each), and the same clips zero-padded to
 * 30 s (Whisper: pad_to 480000, 3000 frames each). Input: a 220 Hz tone
 * plus uniform noise, fixed seed. Each run: avsr_op_logmel_whisper forward
 * (no gradient) + arena reset; 3 warm-up runs, median of 20. Threads: 2
 * (OMP_NUM_THREADS overrides).
 *
 * The PyTorch side is bench/logmel_torch.py (torch.stft + mel matmul + log,
 * same shapes and timing rule). This program runs it through /usr/bin/python3
 * unless --no-torch is given (or AVSR_BENCH_PYTHON names another
 * interpreter) and prints a Markdown table with the ratio torch ms / avsr ms.
 *   usage: bench/bench_logmel [--no-torch] [path/to/logmel_torch.py] */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "op_features.h"

#define WARMUP 3
#define RUNS 20

struct shape {
    int64_t B, N, pad_to;
};

static const struct shape SHAPES[] = {{8, 160000, 0}, {8, 160000, 480000}};
#define NSHAPES (int)(sizeof SHAPES / sizeof *SHAPES)

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double bench_shape(avsr_ctx *ctx, const struct shape *s)
{
    int64_t shp[2] = {s->B, s->N};
    avsr_tensor *x = avsr_tensor_create(AVSR_F32, 2, shp, false);
    float *xd = avsr_f32(x);
    uint64_t st = 1234;
    for (int64_t i = 0; i < x->numel; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(st >> 11) * (1.0 / 9007199254740992.0);
        xd[i] = (float)(0.3 * sin(2 * M_PI * 220.0 * (double)(i % s->N) / 16000.0) +
                        0.1 * (2 * u - 1));
    }
    avsr_logmel_cfg cfg;
    avsr_logmel_whisper_defaults(&cfg);
    cfg.pad_to = s->pad_to;
    double ts[RUNS];
    for (int r = 0; r < WARMUP + RUNS; r++) {
        double t0 = now_ms();
        avsr_tensor *y = avsr_op_logmel_whisper(ctx, x, NULL, &cfg);
        if (!y) {
            fprintf(stderr, "bench_logmel: %s\n", avsr_ctx_errmsg(ctx));
            exit(1);
        }
        double t1 = now_ms();
        avsr_ctx_reset(ctx);
        if (r >= WARMUP)
            ts[r - WARMUP] = t1 - t0;
    }
    qsort(ts, RUNS, sizeof *ts, cmp_double);
    avsr_tensor_free(x);
    return 0.5 * (ts[(RUNS - 1) / 2] + ts[RUNS / 2]);
}

/* torch ms per shape from bench/logmel_torch.py, NAN where unavailable */
static void run_torch(const char *script, double *ms)
{
    for (int i = 0; i < NSHAPES; i++)
        ms[i] = NAN;
    const char *py = getenv("AVSR_BENCH_PYTHON");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s '%s'", py && *py ? py : "/usr/bin/python3", script);
    FILE *p = popen(cmd, "r");
    if (!p)
        return;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        long long B, N, P;
        double v;
        if (sscanf(line, "torch %lldx%lld pad %lld %lf", &B, &N, &P, &v) != 4)
            continue;
        for (int i = 0; i < NSHAPES; i++)
            if (SHAPES[i].B == B && SHAPES[i].N == N && SHAPES[i].pad_to == P)
                ms[i] = v;
    }
    pclose(p);
}

int main(int argc, char **argv)
{
    bool torch = true;
    const char *script = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-torch") == 0)
            torch = false;
        else
            script = argv[i];
    }
    char defscript[4096];
    if (!script) {
        const char *src = getenv("srcdir");
        snprintf(defscript, sizeof defscript, "%s/bench/logmel_torch.py",
                 src && *src ? src : ".");
        script = defscript;
    }
    avsr_error err = {0};
    avsr_ctx_opts o = {0};
    if (!getenv("OMP_NUM_THREADS"))
        o.threads = 2;
    avsr_ctx *ctx = avsr_ctx_create(&o, &err);
    if (!ctx) {
        fprintf(stderr, "bench_logmel: %s\n", err.msg);
        return 1;
    }
    double ours[NSHAPES], theirs[NSHAPES];
    for (int i = 0; i < NSHAPES; i++)
        ours[i] = bench_shape(ctx, &SHAPES[i]);
    int threads = avsr_ctx_threads(ctx);
    avsr_ctx_destroy(ctx);
    if (torch)
        run_torch(script, theirs);
    else
        for (int i = 0; i < NSHAPES; i++)
            theirs[i] = NAN;
    printf("Whisper log-mel (n_fft 400, hop 160, 80 mels), forward only, %d threads, "
           "median of %d\n\n", threads, RUNS);
    printf("| wave [B, N] | pad_to | frames | avsr ms | torch ms | torch/avsr |\n");
    printf("|---|---|---|---|---|---|\n");
    for (int i = 0; i < NSHAPES; i++) {
        const struct shape *s = &SHAPES[i];
        int64_t fr = (s->pad_to ? s->pad_to : s->N) / 160;
        printf("| [%lld, %lld] | %lld | %lld | %.3f | ", (long long)s->B, (long long)s->N,
               (long long)s->pad_to, (long long)fr, ours[i]);
        if (isnan(theirs[i]))
            printf("n/a | n/a |\n");
        else
            printf("%.3f | %.2f |\n", theirs[i], theirs[i] / ours[i]);
    }
    return 0;
}
