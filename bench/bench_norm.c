/* bench_norm: forward + backward time of layer norm, softmax, log-softmax
 * and GLU (avsr ops) against PyTorch. Layer norm and softmax are timed with
 * each kernel selection of op_norm.c: "own" (AVSR_NORM_IMPL=own, the OpenMP
 * kernels), "oneDNN" (=dnnl, the cached oneDNN primitives wherever
 * possible) and "default" (=auto, the selection the op makes by itself).
 * The bare oneDNN primitives on the same shapes (no framework around them)
 * are timed too. 2 threads unless OMP_NUM_THREADS is set.
 *
 *   /usr/bin/python3 bench/norm_torch.py > torch.txt
 *   OMP_NUM_THREADS=2 build/bench/bench_norm [--split] [--only TEXT] torch.txt
 *
 * --split adds a table of the forward and backward minima of each
 * selection (backward includes avsr_backward seeding dy) and the cost of
 * that seeding alone. --only TEXT times only the rows whose name contains
 * TEXT (e.g. "softmax": both softmax rows and log-softmax).
 * bench/norm_interleave.sh alternates this program with norm_torch.py
 * several times and reports the medians of the per-run ratios.
 *
 * One step: y = op(x); avsr_backward(y, R) (PyTorch: y.backward(R)), arena
 * reset. x is an activation: a fresh arena copy of the input each step
 * (outside the timing), so d x is a new gradient, as PyTorch's is with
 * x.grad = None. Rows marked "d x +=" use a heap x whose gradient already
 * exists and is added to (PyTorch: x.grad kept). gamma and beta are heap
 * parameters whose gradients accumulate. The selections run in separate
 * contexts and alternate step by step, so a change in the machine's load
 * hits them alike. Each: 5 warm-up steps, then 30 timed; the table gives
 * the median and the minimum of the 30. The ratios torch/avsr are of the
 * minima (on a shared machine the minimum is the least disturbed run) and
 * of the medians. The
 * last two rows are small tensors, below the sizes at which the default
 * switches to oneDNN. The torch file holds "name median_ms min_ms" lines;
 * without it the torch columns are "-". */
#define _POSIX_C_SOURCE 200809L
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

/* median and minimum of t[0..n) (sorts t) */
struct stat {
    double med, min;
};

static struct stat stats(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    return (struct stat){n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]), t[0]};
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

enum which { LN, SM, LSM, GLU };

struct row {
    const char *name;
    enum which w;
    int nd;
    int64_t s[4];
    bool acc; /* d x accumulates into an existing gradient */
};

static const struct row ROWS[] = {
    {"layer_norm [4096,256]", LN, 2, {4096, 256}, false},
    {"layer_norm [4096,256] d x +=", LN, 2, {4096, 256}, true},
    {"layer_norm [4096,768]", LN, 2, {4096, 768}, false},
    {"softmax [8,4,250,250]", SM, 4, {8, 4, 250, 250}, false},
    {"log_softmax [8,250,500]", LSM, 3, {8, 250, 500}, false},
    {"glu [8,512,250] dim 1", GLU, 3, {8, 512, 250}, false},
    /* small: below the sizes at which the default switches to oneDNN */
    {"layer_norm [64,256]", LN, 2, {64, 256}, false},
    {"softmax [2,4,10,20]", SM, 4, {2, 4, 10, 20}, false},
};
#define NROWS (int)(sizeof ROWS / sizeof ROWS[0])

struct res {
    struct stat t, fwd, bwd; /* step, forward only, backward only */
    size_t peak;
};

struct side {
    avsr_ctx *ctx;
    avsr_tensor *src, *g, *b;
    double t[RUNS], tf[RUNS], tb[RUNS];
};

static void side_init(struct side *sd, const struct row *rw)
{
    avsr_error err = {0};
    avsr_ctx_opts o = {getenv("OMP_NUM_THREADS") ? 0 : 2, 0, AVSR_DEV_CPU};
    if (!(sd->ctx = avsr_ctx_create(&o, &err))) {
        fprintf(stderr, "context: %s\n", err.msg);
        exit(1);
    }
    int64_t D = rw->s[rw->nd - 1];
    sd->src = heap(rw->nd, rw->s, rw->acc, 1);
    sd->g = heap(1, &D, true, 2);
    sd->b = heap(1, &D, true, 3);
}

/* one step of row rw on side sd with kernel impl ("own", "dnnl") */
static void step(const struct row *rw, struct side *sd, const char *impl, const float *R, int it)
{
    avsr_ctx *ctx = sd->ctx;
    setenv("AVSR_NORM_IMPL", impl, 1);
    avsr_ctx_reset(ctx);
    avsr_tensor *x = sd->src;
    if (!rw->acc) {
        /* an activation: arena tensor, gradient created by backward */
        x = avsr_tensor_new(ctx, AVSR_F32, rw->nd, rw->s);
        if (!x) {
            fprintf(stderr, "%s: %s\n", rw->name, avsr_ctx_errmsg(ctx));
            exit(1);
        }
        memcpy(x->data, sd->src->data, sizeof(float) * (size_t)sd->src->numel);
        x->flags |= AVSR_T_REQUIRES_GRAD;
    }
    double t0 = now_ms();
    avsr_tensor *y = rw->w == LN    ? avsr_op_layer_norm(ctx, x, sd->g, sd->b, 1e-5f)
                     : rw->w == SM  ? avsr_op_softmax(ctx, x, NULL)
                     : rw->w == LSM ? avsr_op_log_softmax(ctx, x, NULL)
                                    : avsr_op_glu(ctx, x, 1);
    double t1 = now_ms();
    if (!y || avsr_backward(ctx, y, R) < 0) {
        fprintf(stderr, "%s: %s\n", rw->name, avsr_ctx_errmsg(ctx));
        exit(1);
    }
    double t2 = now_ms();
    if (it >= WARM) {
        sd->t[it - WARM] = t2 - t0;
        sd->tf[it - WARM] = t1 - t0;
        sd->tb[it - WARM] = t2 - t1;
    }
}

/* Times row rw with each of the nimpl kernels, alternating steps between
 * them so that a change in the machine's load hits all alike. A context
 * per kernel, so the arena peak is that kernel's. */
static void bench_avsr(const struct row *rw, int nimpl, const char *const *impl, struct res *out)
{
    struct side sd[3];
    for (int k = 0; k < nimpl; k++)
        side_init(&sd[k], rw);
    int64_t on = sd[0].src->numel / (rw->w == GLU ? 2 : 1);
    float *R = malloc(sizeof(float) * (size_t)on);
    fill(R, on, 4);
    for (int it = 0; it < WARM + RUNS; it++)
        for (int k = 0; k < nimpl; k++)
            step(rw, &sd[k], impl[k], R, it);
    for (int k = 0; k < nimpl; k++) {
        out[k] = (struct res){stats(sd[k].t, RUNS), stats(sd[k].tf, RUNS), stats(sd[k].tb, RUNS),
                              avsr_ctx_arena_peak(sd[k].ctx)};
        avsr_ctx_destroy(sd[k].ctx);
        avsr_tensor_free(sd[k].src);
        avsr_tensor_free(sd[k].g);
        avsr_tensor_free(sd[k].b);
    }
    free(R);
}

/* What avsr_backward spends seeding dy (a tape with no entries): part of
 * every avsr row's backward time, not of the op's */
static struct stat seed_cost(const struct row *rw)
{
    avsr_error err = {0};
    avsr_ctx_opts o = {getenv("OMP_NUM_THREADS") ? 0 : 2, 0, AVSR_DEV_CPU};
    avsr_ctx *ctx = avsr_ctx_create(&o, &err);
    if (!ctx) {
        fprintf(stderr, "context: %s\n", err.msg);
        exit(1);
    }
    int64_t os[4];
    memcpy(os, rw->s, sizeof os);
    if (rw->w == GLU)
        os[1] /= 2;
    int64_t on = 1;
    for (int k = 0; k < rw->nd; k++)
        on *= os[k];
    float *R = malloc(sizeof(float) * (size_t)on);
    fill(R, on, 4);
    double t[RUNS];
    for (int it = 0; it < WARM + RUNS; it++) {
        avsr_ctx_reset(ctx);
        avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, rw->nd, os);
        if (!y) {
            fprintf(stderr, "%s: %s\n", rw->name, avsr_ctx_errmsg(ctx));
            exit(1);
        }
        y->flags |= AVSR_T_REQUIRES_GRAD;
        double t0 = now_ms();
        if (avsr_backward(ctx, y, R) < 0) {
            fprintf(stderr, "%s: %s\n", rw->name, avsr_ctx_errmsg(ctx));
            exit(1);
        }
        if (it >= WARM)
            t[it - WARM] = now_ms() - t0;
    }
    avsr_ctx_destroy(ctx);
    free(R);
    return stats(t, RUNS);
}

/* ---- bare oneDNN primitives on the same shapes (forward + backward) ---- */

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

static struct stat bench_dnnl_ln(dnnl_engine_t eng, dnnl_stream_t st, int64_t N, int64_t D)
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
    return stats(t, RUNS);
}

/* softmax (alg dnnl_softmax_accurate) or log-softmax (dnnl_softmax_log)
 * over the last dim of [N, D] */
static struct stat bench_dnnl_sm(dnnl_engine_t eng, dnnl_stream_t st, dnnl_alg_kind_t alg,
                                 int64_t N, int64_t D)
{
    dnnl_dims_t dims = {N, D};
    size_t n = (size_t)(N * D);
    float *x = malloc(4 * n), *y = malloc(4 * n), *dy = malloc(4 * n), *dx = malloc(4 * n);
    fill(x, (int64_t)n, 1);
    fill(dy, (int64_t)n, 4);
    dnnl_memory_desc_t md;
    CK(dnnl_memory_desc_init_by_tag(&md, 2, dims, dnnl_f32, dnnl_ab));
    dnnl_softmax_v2_desc_t fd, bd;
    CK(dnnl_softmax_v2_forward_desc_init(&fd, dnnl_forward_training, alg, &md, &md, 1));
    dnnl_primitive_desc_t fpd, bpd;
    CK(dnnl_primitive_desc_create(&fpd, &fd, NULL, eng, NULL));
    CK(dnnl_softmax_v2_backward_desc_init(&bd, alg, &md, &md, &md, 1));
    CK(dnnl_primitive_desc_create(&bpd, &bd, NULL, eng, fpd));
    dnnl_primitive_t fp, bp;
    CK(dnnl_primitive_create(&fp, fpd));
    CK(dnnl_primitive_create(&bp, bpd));
    dnnl_memory_t mx = mem(eng, 2, dims, x), my = mem(eng, 2, dims, y), mdy = mem(eng, 2, dims, dy),
                  mdx = mem(eng, 2, dims, dx);
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
    return stats(t, RUNS);
}

/* torch median and minimum of a row from "name median min" lines; false if absent */
static bool torch_ms(const char *path, const char *name, struct stat *out)
{
    if (!path)
        return false;
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[256];
    bool found = false;
    size_t nl = strlen(name);
    while (fgets(line, sizeof line, f)) {
        double a, b;
        if (!strncmp(line, name, nl) && line[nl] == ' ' &&
            sscanf(line + nl + 1, "%lf %lf", &a, &b) == 2) {
            *out = (struct stat){a, b};
            found = true;
        }
    }
    fclose(f);
    return found;
}

static void cell(char *buf, size_t n, const struct stat *s)
{
    if (s)
        snprintf(buf, n, "%.3f / %.3f", s->med, s->min);
    else
        snprintf(buf, n, "-");
}

int main(int argc, char **argv)
{
    const char *tpath = NULL, *only = NULL;
    bool split = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--split"))
            split = true;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else
            tpath = argv[i];
    }
    struct res saved[NROWS][3];
    struct stat seed[NROWS];
    if (!getenv("OMP_NUM_THREADS"))
        omp_set_num_threads(2);
    dnnl_engine_t eng;
    dnnl_stream_t st;
    CK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CK(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
    printf("| op (forward + backward, %d threads) | own ms (med / min) | oneDNN ms (med / min) | "
           "default ms (med / min) | torch ms (med / min) | torch/default (min) | "
           "torch/default (med) | bare oneDNN prim. ms (med / min) | peak arena bytes (default) |\n",
           omp_get_max_threads());
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    bool done[NROWS] = {false};
    for (int i = 0; i < NROWS; i++) {
        const struct row *rw = &ROWS[i];
        if (only && !strstr(rw->name, only))
            continue;
        done[i] = true;
        int64_t N = 1, D = rw->s[rw->nd - 1];
        for (int k = 0; k < rw->nd - 1; k++)
            N *= rw->s[k];
        static const char *const impls[3] = {"own", "dnnl", "auto"};
        bool three = rw->w != GLU; /* GLU has one kernel */
        struct res *r = saved[i];
        bench_avsr(rw, three ? 3 : 1, impls, r);
        seed[i] = seed_cost(rw);
        struct stat bare, tt;
        bool has_bare = three && !rw->acc;
        if (has_bare)
            bare = rw->w == LN ? bench_dnnl_ln(eng, st, N, D)
                               : bench_dnnl_sm(eng, st, rw->w == LSM ? dnnl_softmax_log
                                                                     : dnnl_softmax_accurate,
                                               N, D);
        bool has_t = torch_ms(tpath, rw->name, &tt);
        const struct res *def = three ? &r[2] : &r[0];
        char c1[48], c2[48], c3[48], c4[48], c5[48], ra[16] = "-", rm[16] = "-";
        cell(c1, sizeof c1, &r[0].t);
        cell(c2, sizeof c2, three ? &r[1].t : NULL);
        cell(c3, sizeof c3, three ? &r[2].t : NULL);
        cell(c4, sizeof c4, has_t ? &tt : NULL);
        cell(c5, sizeof c5, has_bare ? &bare : NULL);
        if (has_t) {
            snprintf(ra, sizeof ra, "%.2f", tt.min / def->t.min);
            snprintf(rm, sizeof rm, "%.2f", tt.med / def->t.med);
        }
        printf("| %s | %s | %s | %s | %s | %s | %s | %s | %zu |\n", rw->name, c1, c2, c3, c4, ra,
               rm, c5, def->peak);
        fflush(stdout);
    }
    if (split) {
        printf("\n| op: forward / backward min ms | own | oneDNN | default | seeding dy min ms |\n"
               "|---|---:|---:|---:|---:|\n");
        for (int i = 0; i < NROWS; i++) {
            if (!done[i])
                continue;
            const struct res *r = saved[i];
            printf("| %s | %.3f / %.3f |", ROWS[i].name, r[0].fwd.min, r[0].bwd.min);
            for (int k = 1; k < 3; k++) {
                if (ROWS[i].w != GLU)
                    printf(" %.3f / %.3f |", r[k].fwd.min, r[k].bwd.min);
                else
                    printf(" - |");
            }
            printf(" %.3f |\n", seed[i].min);
        }
    }
    dnnl_stream_destroy(st);
    dnnl_engine_destroy(eng);
    return 0;
}
