/* bench_ctc: CTC loss forward + backward (fused log-softmax) against PyTorch.
 *
 * Shapes: logits [8, 250, 40] with target lengths ~60 and [16, 150, 500]
 * with target lengths ~30 (uniform +-5), input lengths uniform in
 * [0.8 T, T] (the first utterance uses all T), labels uniform in [1, C),
 * logits N(0, 2^2), fixed seeds. Each run: avsr_op_ctc_loss (mean, blank 0)
 * + avsr_backward + arena reset; 3 warm-up runs, median of 20. Threads: 2
 * (OMP_NUM_THREADS overrides).
 *
 * The PyTorch side is bench/ctc_torch.py (same shapes and timing rule). This
 * program runs it through /usr/bin/python3 unless --no-torch is given (or
 * AVSR_BENCH_PYTHON names another interpreter) and prints a Markdown table
 * with the ratio torch ms / avsr ms and the peak arena bytes.
 *   usage: bench/bench_ctc [--no-torch] [path/to/ctc_torch.py] */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "op_loss.h"
#include "tape.h"

#define WARMUP 3
#define RUNS 20

struct shape {
    int64_t B, T, C, Lm;
};

static const struct shape SHAPES[] = {{8, 250, 40, 60}, {16, 150, 500, 30}};
#define NSHAPES (int)(sizeof SHAPES / sizeof *SHAPES)

static uint64_t rng_state;

static uint64_t next_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unif(void) { return (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0); }

static int64_t rand_int(int64_t lo, int64_t hi) /* [lo, hi] */
{
    return lo + (int64_t)(next_u64() % (uint64_t)(hi - lo + 1));
}

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

/* median ms of forward + backward; *peak = arena high-water mark */
static double bench_shape(avsr_ctx *ctx, const struct shape *s, size_t *peak)
{
    int64_t shp[3] = {s->B, s->T, s->C};
    avsr_tensor *x = avsr_tensor_create(AVSR_F32, 3, shp, true);
    float *xd = avsr_f32(x);
    rng_state = 1234;
    for (int64_t i = 0; i < x->numel; i += 2) { /* Box-Muller, sigma 2 */
        double u1 = unif() + 1e-300, u2 = unif();
        double r = sqrt(-2.0 * log(u1)) * 2.0;
        xd[i] = (float)(r * cos(2 * M_PI * u2));
        if (i + 1 < x->numel)
            xd[i + 1] = (float)(r * sin(2 * M_PI * u2));
    }
    int64_t *il = malloc(sizeof(int64_t) * (size_t)s->B);
    int64_t *tl = malloc(sizeof(int64_t) * (size_t)s->B);
    int64_t tot = 0;
    for (int64_t b = 0; b < s->B; b++) {
        tl[b] = rand_int(s->Lm - 5, s->Lm + 5);
        il[b] = b == 0 ? s->T : rand_int((int64_t)(0.8 * (double)s->T), s->T);
        tot += tl[b];
    }
    int64_t *tg = malloc(sizeof(int64_t) * (size_t)tot);
    for (int64_t i = 0; i < tot; i++)
        tg[i] = rand_int(1, s->C - 1);
    double ts[RUNS];
    for (int r = 0; r < WARMUP + RUNS; r++) {
        memset(x->grad, 0, sizeof(float) * (size_t)x->numel);
        double t0 = now_ms();
        avsr_tensor *L = avsr_op_ctc_loss(ctx, x, il, tg, tl, 0, AVSR_LOSS_MEAN, false);
        if (!L || avsr_backward(ctx, L, NULL) < 0) {
            fprintf(stderr, "bench_ctc: %s\n", avsr_ctx_errmsg(ctx));
            exit(1);
        }
        double t1 = now_ms();
        avsr_ctx_reset(ctx);
        if (r >= WARMUP)
            ts[r - WARMUP] = t1 - t0;
    }
    *peak = avsr_ctx_arena_peak(ctx);
    qsort(ts, RUNS, sizeof *ts, cmp_double);
    avsr_tensor_free(x);
    free(il);
    free(tl);
    free(tg);
    return 0.5 * (ts[(RUNS - 1) / 2] + ts[RUNS / 2]);
}

/* torch ms per shape from bench/ctc_torch.py, NAN where unavailable */
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
        long long B, T, C;
        double v;
        if (sscanf(line, "torch %lldx%lldx%lld %lf", &B, &T, &C, &v) != 4)
            continue;
        for (int i = 0; i < NSHAPES; i++)
            if (SHAPES[i].B == B && SHAPES[i].T == T && SHAPES[i].C == C)
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
        snprintf(defscript, sizeof defscript, "%s/bench/ctc_torch.py", src && *src ? src : ".");
        script = defscript;
    }
    avsr_error err = {0};
    avsr_ctx_opts o = {0};
    if (!getenv("OMP_NUM_THREADS"))
        o.threads = 2;
    double ours[NSHAPES], theirs[NSHAPES];
    size_t peak[NSHAPES];
    int threads = 0;
    for (int i = 0; i < NSHAPES; i++) {
        /* a fresh context per shape, so the arena peak is that shape's */
        avsr_ctx *ctx = avsr_ctx_create(&o, &err);
        if (!ctx) {
            fprintf(stderr, "bench_ctc: %s\n", err.msg);
            return 1;
        }
        ours[i] = bench_shape(ctx, &SHAPES[i], &peak[i]);
        threads = avsr_ctx_threads(ctx);
        avsr_ctx_destroy(ctx);
    }
    if (torch)
        run_torch(script, theirs);
    else
        for (int i = 0; i < NSHAPES; i++)
            theirs[i] = NAN;
    printf("CTC loss forward + backward (fused log-softmax, reduction mean), %d threads, "
           "median of %d\n\n", threads, RUNS);
    printf("| logits [B, T, C] | target len ~ | avsr ms | torch ms | torch/avsr | peak arena bytes |\n");
    printf("|---|---|---|---|---|---|\n");
    for (int i = 0; i < NSHAPES; i++) {
        const struct shape *s = &SHAPES[i];
        printf("| [%lld, %lld, %lld] | %lld | %.3f | ", (long long)s->B, (long long)s->T,
               (long long)s->C, (long long)s->Lm, ours[i]);
        if (isnan(theirs[i]))
            printf("n/a | n/a | %zu |\n", peak[i]);
        else
            printf("%.3f | %.2f | %zu |\n", theirs[i], theirs[i] / ours[i], peak[i]);
    }
    return 0;
}
