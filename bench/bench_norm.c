/* bench_norm: forward + backward time of layer norm, softmax and GLU (avsr
 * ops), and of oneDNN's layer normalisation and softmax primitives on the
 * same shapes (to justify the choice of kernel), 2 threads.
 *
 *   /usr/bin/python3 bench/norm_torch.py > torch.txt
 *   OMP_NUM_THREADS=2 build/bench/bench_norm torch.txt
 *
 * The timed step is y = op(x); backward with dL/dy = R (both sides).
 * Without the file only the avsr column is printed. Each row: 5 warm-up
 * runs, then the median of 30. The torch file holds "name ms" lines. */
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "op_act.h"
#include "op_norm.h"
#include "tape.h"

#define WARM 5
#define RUNS 30

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

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static void fill(float *x, int64_t n, unsigned seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) * (1.0f / 16777216.0f) * 4.0f - 2.0f;
    }
}

static avsr_tensor *heap(int nd, const int64_t *s, bool grad, unsigned seed)
{
    avsr_tensor *t = avsr_tensor_create(AVSR_F32, nd, s, grad);
    if (!t) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    fill(avsr_f32(t), t->numel, seed);
    return t;
}

struct row {
    const char *name;
    double ms;
    size_t peak;
};

static struct row rows[16];
static int nrows;

enum which { LN, SM, GLU };

/* a fresh context per row, so the arena peak is this row's */
static void bench_avsr(const char *name, enum which w, int nd, const int64_t *s)
{
    avsr_error err = {0};
    avsr_ctx_opts o = {getenv("OMP_NUM_THREADS") ? 0 : 2, 0, AVSR_DEV_CPU};
    avsr_ctx *ctx = avsr_ctx_create(&o, &err);
    if (!ctx) {
        fprintf(stderr, "context: %s\n", err.msg);
        exit(1);
    }
    avsr_tensor *x = heap(nd, s, true, 1);
    int64_t D = s[nd - 1];
    avsr_tensor *g = heap(1, &D, true, 2), *b = heap(1, &D, true, 3);
    int64_t os[AVSR_MAX_DIMS];
    memcpy(os, s, sizeof(int64_t) * (size_t)nd);
    if (w == GLU)
        os[1] /= 2;
    int64_t on = 1;
    for (int i = 0; i < nd; i++)
        on *= os[i];
    float *R = malloc(sizeof(float) * (size_t)on);
    fill(R, on, 4);
    double t[RUNS];
    for (int it = 0; it < WARM + RUNS; it++) {
        avsr_ctx_reset(ctx);
        double t0 = now_ms();
        avsr_tensor *y = w == LN ? avsr_op_layer_norm(ctx, x, g, b, 1e-5f)
                         : w == SM ? avsr_op_softmax(ctx, x, NULL)
                                   : avsr_op_glu(ctx, x, 1);
        if (!y || avsr_backward(ctx, y, R) < 0) {
            fprintf(stderr, "%s: %s\n", name, avsr_ctx_errmsg(ctx));
            exit(1);
        }
        double t1 = now_ms();
        if (it >= WARM)
            t[it - WARM] = t1 - t0;
    }
    rows[nrows++] = (struct row){name, median(t, RUNS), avsr_ctx_arena_peak(ctx)};
    avsr_ctx_destroy(ctx);
    avsr_tensor_free(x);
    avsr_tensor_free(g);
    avsr_tensor_free(b);
    free(R);
}

/* ---- oneDNN primitives on the same shapes (forward + backward) ---- */

#define CK(call)                                                                  \
    do {                                                                          \
        dnnl_status_t st_ = (call);                                               \
        if (st_ != dnnl_success) {                                                \
            fprintf(stderr, "%s:%d: %s failed (%d)\n", __FILE__, __LINE__, #call, \
                    (int)st_);                                                    \
            exit(1);                                                              \
        }                                                                         \
    } while (0)

static dnnl_memory_t mem(dnnl_engine_t eng, int nd, const dnnl_dim_t *dims, void *p)
{
    dnnl_memory_desc_t md;
    static const dnnl_format_tag_t tags[] = {dnnl_a, dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd};
    CK(dnnl_memory_desc_init_by_tag(&md, nd, dims, dnnl_f32, tags[nd]));
    dnnl_memory_t m;
    CK(dnnl_memory_create(&m, &md, eng, p));
    return m;
}

static void bench_dnnl_ln(dnnl_engine_t eng, dnnl_stream_t st, const char *name, int64_t N,
                          int64_t D)
{
    dnnl_dims_t dims = {N, D}, ddims = {D};
    size_t n = (size_t)(N * D);
    float *x = malloc(4 * n), *y = malloc(4 * n), *dy = malloc(4 * n), *dx = malloc(4 * n);
    float *mean = malloc(4 * (size_t)N), *var = malloc(4 * (size_t)N);
    float *sc = malloc(4 * (size_t)D), *sh = malloc(4 * (size_t)D);
    float *dsc = malloc(4 * (size_t)D), *dsh = malloc(4 * (size_t)D);
    fill(x, (int64_t)n, 1);
    fill(dy, (int64_t)n, 4);
    fill(sc, D, 2);
    fill(sh, D, 3);
    dnnl_memory_desc_t dmd, smd;
    CK(dnnl_memory_desc_init_by_tag(&dmd, 2, dims, dnnl_f32, dnnl_ab));
    CK(dnnl_memory_desc_init_by_tag(&smd, 1, dims, dnnl_f32, dnnl_a));
    unsigned flags = dnnl_use_scale | dnnl_use_shift;
    dnnl_layer_normalization_desc_t fd, bd;
    CK(dnnl_layer_normalization_forward_desc_init(&fd, dnnl_forward_training, &dmd, &smd, 1e-5f, flags));
    dnnl_primitive_desc_t fpd, bpd;
    CK(dnnl_primitive_desc_create(&fpd, &fd, NULL, eng, NULL));
    CK(dnnl_layer_normalization_backward_desc_init(&bd, dnnl_backward, &dmd, &dmd, &smd, 1e-5f, flags));
    CK(dnnl_primitive_desc_create(&bpd, &bd, NULL, eng, fpd));
    dnnl_primitive_t fp, bp;
    CK(dnnl_primitive_create(&fp, fpd));
    CK(dnnl_primitive_create(&bp, bpd));
    dnnl_memory_t mx = mem(eng, 2, dims, x), my = mem(eng, 2, dims, y), mdy = mem(eng, 2, dims, dy),
                  mdx = mem(eng, 2, dims, dx), mm = mem(eng, 1, dims, mean),
                  mv = mem(eng, 1, dims, var), msc = mem(eng, 1, ddims, sc),
                  msh = mem(eng, 1, ddims, sh), mdsc = mem(eng, 1, ddims, dsc),
                  mdsh = mem(eng, 1, ddims, dsh);
    dnnl_exec_arg_t fa[] = {{DNNL_ARG_SRC, mx}, {DNNL_ARG_DST, my}, {DNNL_ARG_MEAN, mm},
                            {DNNL_ARG_VARIANCE, mv}, {DNNL_ARG_SCALE, msc}, {DNNL_ARG_SHIFT, msh}};
    dnnl_exec_arg_t ba[] = {{DNNL_ARG_SRC, mx}, {DNNL_ARG_DIFF_DST, mdy}, {DNNL_ARG_MEAN, mm},
                            {DNNL_ARG_VARIANCE, mv}, {DNNL_ARG_SCALE, msc}, {DNNL_ARG_SHIFT, msh},
                            {DNNL_ARG_DIFF_SRC, mdx}, {DNNL_ARG_DIFF_SCALE, mdsc},
                            {DNNL_ARG_DIFF_SHIFT, mdsh}};
    double t[RUNS];
    for (int it = 0; it < WARM + RUNS; it++) {
        double t0 = now_ms();
        CK(dnnl_primitive_execute(fp, st, 6, fa));
        CK(dnnl_primitive_execute(bp, st, 9, ba));
        CK(dnnl_stream_wait(st));
        if (it >= WARM)
            t[it - WARM] = now_ms() - t0;
    }
    rows[nrows++] = (struct row){name, median(t, RUNS), 0};
    dnnl_memory_t all[] = {mx, my, mdy, mdx, mm, mv, msc, msh, mdsc, mdsh};
    for (int i = 0; i < 10; i++)
        dnnl_memory_destroy(all[i]);
    dnnl_primitive_destroy(fp);
    dnnl_primitive_destroy(bp);
    dnnl_primitive_desc_destroy(fpd);
    dnnl_primitive_desc_destroy(bpd);
    float *bufs[] = {x, y, dy, dx, mean, var, sc, sh, dsc, dsh};
    for (int i = 0; i < 10; i++)
        free(bufs[i]);
}

static void bench_dnnl_sm(dnnl_engine_t eng, dnnl_stream_t st, const char *name, const int64_t *d4)
{
    dnnl_dims_t dims = {d4[0], d4[1], d4[2], d4[3]};
    size_t n = (size_t)(dims[0] * dims[1] * dims[2] * dims[3]);
    float *x = malloc(4 * n), *y = malloc(4 * n), *dy = malloc(4 * n), *dx = malloc(4 * n);
    fill(x, (int64_t)n, 1);
    fill(dy, (int64_t)n, 4);
    dnnl_memory_desc_t md;
    CK(dnnl_memory_desc_init_by_tag(&md, 4, dims, dnnl_f32, dnnl_abcd));
    dnnl_softmax_v2_desc_t fd, bd;
    CK(dnnl_softmax_v2_forward_desc_init(&fd, dnnl_forward_training, dnnl_softmax_accurate, &md, &md, 3));
    dnnl_primitive_desc_t fpd, bpd;
    CK(dnnl_primitive_desc_create(&fpd, &fd, NULL, eng, NULL));
    CK(dnnl_softmax_v2_backward_desc_init(&bd, dnnl_softmax_accurate, &md, &md, &md, 3));
    CK(dnnl_primitive_desc_create(&bpd, &bd, NULL, eng, fpd));
    dnnl_primitive_t fp, bp;
    CK(dnnl_primitive_create(&fp, fpd));
    CK(dnnl_primitive_create(&bp, bpd));
    dnnl_memory_t mx = mem(eng, 4, dims, x), my = mem(eng, 4, dims, y), mdy = mem(eng, 4, dims, dy),
                  mdx = mem(eng, 4, dims, dx);
    dnnl_exec_arg_t fa[] = {{DNNL_ARG_SRC, mx}, {DNNL_ARG_DST, my}};
    dnnl_exec_arg_t ba[] = {{DNNL_ARG_DST, my}, {DNNL_ARG_DIFF_DST, mdy}, {DNNL_ARG_DIFF_SRC, mdx}};
    double t[RUNS];
    for (int it = 0; it < WARM + RUNS; it++) {
        double t0 = now_ms();
        CK(dnnl_primitive_execute(fp, st, 2, fa));
        CK(dnnl_primitive_execute(bp, st, 3, ba));
        CK(dnnl_stream_wait(st));
        if (it >= WARM)
            t[it - WARM] = now_ms() - t0;
    }
    rows[nrows++] = (struct row){name, median(t, RUNS), 0};
    dnnl_memory_t all[] = {mx, my, mdy, mdx};
    for (int i = 0; i < 4; i++)
        dnnl_memory_destroy(all[i]);
    dnnl_primitive_destroy(fp);
    dnnl_primitive_destroy(bp);
    dnnl_primitive_desc_destroy(fpd);
    dnnl_primitive_desc_destroy(bpd);
    free(x);
    free(y);
    free(dy);
    free(dx);
}

/* torch time of a row from "name ms" lines; <0 if absent */
static double torch_ms(const char *path, const char *name)
{
    if (!path)
        return -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    double v = -1;
    size_t nl = strlen(name);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, name, nl) && line[nl] == ' ')
            v = atof(line + nl + 1);
    fclose(f);
    return v;
}

int main(int argc, char **argv)
{
    const char *tpath = argc > 1 ? argv[1] : NULL;
    int64_t ln1[2] = {4096, 256}, ln2[2] = {4096, 768}, sm[4] = {8, 4, 250, 250}, glu[3] = {8, 512, 250};
    bench_avsr("layer_norm [4096,256]", LN, 2, ln1);
    bench_avsr("layer_norm [4096,768]", LN, 2, ln2);
    bench_avsr("softmax [8,4,250,250]", SM, 4, sm);
    bench_avsr("glu [8,512,250] dim 1", GLU, 3, glu);
    int navsr = nrows;
    dnnl_engine_t eng;
    dnnl_stream_t st;
    CK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CK(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
    bench_dnnl_ln(eng, st, "layer_norm [4096,256]", 4096, 256);
    bench_dnnl_ln(eng, st, "layer_norm [4096,768]", 4096, 768);
    bench_dnnl_sm(eng, st, "softmax [8,4,250,250]", sm);
    printf("| op (forward + backward, %d threads) | avsr ms | torch ms | torch/avsr | "
           "oneDNN primitive ms | peak arena bytes |\n",
           omp_get_max_threads());
    printf("|---|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < navsr; i++) {
        double tm = torch_ms(tpath, rows[i].name), dm = -1;
        for (int j = navsr; j < nrows; j++)
            if (!strcmp(rows[j].name, rows[i].name))
                dm = rows[j].ms;
        char ts[32] = "-", rs[32] = "-", ds[32] = "-";
        if (tm > 0) {
            snprintf(ts, sizeof ts, "%.3f", tm);
            snprintf(rs, sizeof rs, "%.2f", tm / rows[i].ms);
        }
        if (dm > 0)
            snprintf(ds, sizeof ds, "%.3f", dm);
        printf("| %s | %.3f | %s | %s | %s | %zu |\n", rows[i].name, rows[i].ms, ts, rs, ds,
               rows[i].peak);
    }
    dnnl_stream_destroy(st);
    dnnl_engine_destroy(eng);
    return 0;
}
