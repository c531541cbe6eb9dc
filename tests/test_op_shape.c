/* test_op_shape: arithmetic with broadcasting, shape ops, reductions along a
 * dimension, masked fill, positional encodings and rel_shift.
 *
 * 1. Finite-difference gradient checks of every op (odd shapes, broadcasting
 *    both ways, batch 1, length 1, negative slice indices, concat with an
 *    input that does not require grad, sizes above the threading threshold
 *    so both reduction strategies of the broadcast backward run).
 * 2. Golden comparison against PyTorch (tests/golden/gen_shape.py): every
 *    case in the fixture, forward and gradients of loss = sum(y * R). The
 *    op and its parameters come from the case's JSON metadata.
 * 3. Bad input: the exact messages.
 * 4. Threaded kernels against naive loops. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "op_basic.h"
#include "op_shape.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"

#define S(...) ((const int64_t[]){__VA_ARGS__})

/* ---- gradient checks ------------------------------------------------------ */

typedef avsr_tensor *(*binop_fn)(avsr_ctx *, avsr_tensor *, avsr_tensor *);

static avsr_tensor *gc_binary(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    return ((binop_fn)user)(ctx, in[0], in[1]);
}

static void gc_bin(const char *name, binop_fn fn, int na, const int64_t *sa, int nb,
                   const int64_t *sb, bool ga, bool gb, float blo, double eps)
{
    avsr_ctx *ctx = tu_ctx();
    avsr_tensor *in[2] = {tu_rand(na, sa, 11, -1, 1, ga), tu_rand(nb, sb, 12, blo, 2, gb)};
    tu_gc_opts o = {eps, 0, 0, 0};
    tu_gradcheck(name, ctx, gc_binary, (void *)fn, 2, in, &o);
    avsr_tensor_free(in[0]);
    avsr_tensor_free(in[1]);
    avsr_ctx_destroy(ctx);
}

struct gc_par {
    int op;
    float f0, f1;
    int64_t i0, i1, i2;
    int ip[AVSR_MAX_DIMS];
};

enum { G_SCALE, G_ADDS, G_AXPBY, G_MFILL, G_CONCAT, G_SPLIT, G_SLICE, G_PAD, G_PERM, G_TRANS,
       G_SUM, G_MEAN, G_RSHIFT };

static avsr_tensor *gc_op(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    struct gc_par *p = user;
    switch (p->op) {
    case G_SCALE: return avsr_op_scale(ctx, in[0], p->f0);
    case G_ADDS: return avsr_op_add_scalar(ctx, in[0], p->f0);
    case G_AXPBY: return avsr_op_axpby(ctx, in[0], in[1], p->f0, p->f1);
    case G_MFILL: return avsr_op_masked_fill(ctx, in[0], in[1], p->f0);
    case G_CONCAT: return avsr_op_concat(ctx, 3, in, (int)p->i0);
    case G_SPLIT: {
        /* pieces 2 and 0 reach the loss, piece 1 does not */
        avsr_tensor *o[3];
        int64_t sizes[3] = {p->i1, p->i2, in[0]->shape[p->i0] - p->i1 - p->i2};
        if (avsr_op_split(ctx, in[0], (int)p->i0, 3, sizes, o) < 0)
            return NULL;
        avsr_tensor *two[2] = {o[2], o[0]};
        return avsr_op_concat(ctx, 2, two, (int)p->i0);
    }
    case G_SLICE: return avsr_op_slice(ctx, in[0], (int)p->i0, p->i1, p->i2, p->ip[0]);
    case G_PAD: return avsr_op_pad(ctx, in[0], (int)p->i0, p->i1, p->i2, p->f0);
    case G_PERM: return avsr_op_permute(ctx, in[0], p->ip);
    case G_TRANS: return avsr_op_transpose(ctx, in[0], (int)p->i0, (int)p->i1);
    case G_SUM: return avsr_op_sum(ctx, in[0], (int)p->i0, p->i1 != 0);
    case G_MEAN: return avsr_op_mean(ctx, in[0], (int)p->i0, p->i1 != 0);
    default: return avsr_op_rel_shift(ctx, in[0]);
    }
}

static void gc_unary(const char *name, struct gc_par p, int nd, const int64_t *shape)
{
    avsr_ctx *ctx = tu_ctx();
    avsr_tensor *x = tu_rand(nd, shape, 21, -1, 1, true);
    tu_gradcheck(name, ctx, gc_op, &p, 1, &x, NULL);
    avsr_tensor_free(x);
    avsr_ctx_destroy(ctx);
}

static void test_gradcheck(void)
{
    /* Tolerances: the default (2e-2 abs + rel, eps 1e-2). Every op here but
     * div is linear or bilinear in each input, so central differences are
     * exact up to f32 rounding of the loss; div uses eps 1e-3 (b in
     * [0.5, 2): third-derivative error ~ eps^2 * 6|a|/b^4 <= 1e-4). */
    gc_bin("add same shape [3,5,7]", avsr_op_add, 3, S(3, 5, 7), 3, S(3, 5, 7), true, true, -1, 0);
    gc_bin("sub both broadcast [3,1,5]-[4,1]", avsr_op_sub, 3, S(3, 1, 5), 2, S(4, 1), true, true,
           -1, 0);
    gc_bin("mul bias [4,7,13]*[13]", avsr_op_mul, 3, S(4, 7, 13), 1, S(13), true, true, -1, 0);
    gc_bin("mul per-channel [2,5,9]*[1,5,1]", avsr_op_mul, 3, S(2, 5, 9), 3, S(1, 5, 1), true, true,
           -1, 0);
    gc_bin("div b broadcast [2,3,4]/[3,1]", avsr_op_div, 3, S(2, 3, 4), 2, S(3, 1), true, true, 0.5f,
           1e-3);
    gc_bin("div a broadcast [1,4]/[3,4]", avsr_op_div, 2, S(1, 4), 2, S(3, 4), true, true, 0.5f,
           1e-3);
    gc_bin("add batch 1, length 1 [1,1,7]+[1,7]", avsr_op_add, 3, S(1, 1, 7), 2, S(1, 7), true,
           true, -1, 0);
    gc_bin("mul only b requires grad [3,4]*[4]", avsr_op_mul, 2, S(3, 4), 1, S(4), false, true, -1,
           0);
    /* above the threading threshold: per-thread buffers (factor 300) and
     * per-element ownership (factor 3) for the broadcast operand */
    gc_bin("add threaded bias [300,130]+[130]", avsr_op_add, 2, S(300, 130), 1, S(130), true, true,
           -1, 0);
    gc_bin("mul threaded [3,100,120]*[100,120]", avsr_op_mul, 3, S(3, 100, 120), 2, S(100, 120),
           true, true, -1, 0);
    gc_bin("div threaded [100,120,3]/[1,120,1]", avsr_op_div, 3, S(100, 120, 3), 3, S(1, 120, 1),
           true, true, 0.5f, 1e-3);

    gc_unary("scale", (struct gc_par){.op = G_SCALE, .f0 = -0.7f}, 2, S(3, 5));
    gc_unary("add_scalar", (struct gc_par){.op = G_ADDS, .f0 = 2.5f}, 1, S(1));
    {
        avsr_ctx *ctx = tu_ctx();
        avsr_tensor *in[2] = {tu_rand(3, S(2, 3, 5), 1, -1, 1, true),
                              tu_rand(3, S(2, 3, 5), 2, -1, 1, true)};
        struct gc_par p = {.op = G_AXPBY, .f0 = 1.0f, .f1 = 0.5f};
        tu_gradcheck("axpby 1*a + 0.5*b", ctx, gc_op, &p, 2, in, NULL);
        /* masked_fill: mask [2,1,5] (f32 0/1) on [2,3,5] */
        avsr_tensor *m = avsr_tensor_create(AVSR_F32, 3, S(2, 1, 5), false);
        const float mv[10] = {0, 0, 0, 1, 1, 0, 1, 0, 0, 1};
        memcpy(m->data, mv, sizeof mv);
        avsr_tensor *in2[2] = {in[0], m};
        p = (struct gc_par){.op = G_MFILL, .f0 = -100.0f};
        tu_gradcheck("masked_fill [2,3,5] mask [2,1,5]", ctx, gc_op, &p, 2, in2, NULL);
        avsr_tensor_free(m);
        avsr_tensor_free(in[0]);
        avsr_tensor_free(in[1]);
        /* concat of 3 where the middle one does not require grad */
        avsr_tensor *c[3] = {tu_rand(3, S(2, 3, 4), 3, -1, 1, true),
                             tu_rand(3, S(2, 5, 4), 4, -1, 1, false),
                             tu_rand(3, S(2, 1, 4), 5, -1, 1, true)};
        p = (struct gc_par){.op = G_CONCAT, .i0 = -2};
        tu_gradcheck("concat 3 inputs dim -2, input 1 without grad", ctx, gc_op, &p, 3, c, NULL);
        for (int k = 0; k < 3; k++)
            avsr_tensor_free(c[k]);
        avsr_ctx_destroy(ctx);
    }
    gc_unary("split [3,10,4] dim 1 into 3/4/3, middle piece unused",
             (struct gc_par){.op = G_SPLIT, .i0 = 1, .i1 = 3, .i2 = 4}, 3, S(3, 10, 4));
    gc_unary("slice [4,11,3] dim 1 [-8:-1:3]",
             (struct gc_par){.op = G_SLICE, .i0 = 1, .i1 = -8, .i2 = -1, .ip = {3}}, 3, S(4, 11, 3));
    gc_unary("slice length 1 [1,7] dim -1 [-1:]",
             (struct gc_par){.op = G_SLICE, .i0 = -1, .i1 = -1, .i2 = INT64_MAX, .ip = {1}}, 2,
             S(1, 7));
    gc_unary("pad [2,5,3] dim 1 (2, 3)",
             (struct gc_par){.op = G_PAD, .i0 = 1, .i1 = 2, .i2 = 3, .f0 = 0.5f}, 3, S(2, 5, 3));
    gc_unary("permute [2,3,4,5] (3,1,0,2)",
             (struct gc_par){.op = G_PERM, .ip = {3, 1, 0, 2}}, 4, S(2, 3, 4, 5));
    gc_unary("permute [2,3,4,5] (0,2,1,3)",
             (struct gc_par){.op = G_PERM, .ip = {0, 2, 1, 3}}, 4, S(2, 3, 4, 5));
    gc_unary("transpose threaded tiled [2,150,130] (1,2)",
             (struct gc_par){.op = G_TRANS, .i0 = 1, .i1 = 2}, 3, S(2, 150, 130));
    gc_unary("transpose batch 1, length 1 [1,1,6] (0,-1)",
             (struct gc_par){.op = G_TRANS, .i0 = 0, .i1 = -1}, 3, S(1, 1, 6));
    gc_unary("sum [3,5,7] dim 1", (struct gc_par){.op = G_SUM, .i0 = 1}, 3, S(3, 5, 7));
    gc_unary("sum [3,5,7] dim -1 keepdim", (struct gc_par){.op = G_SUM, .i0 = -1, .i1 = 1}, 3,
             S(3, 5, 7));
    gc_unary("mean [4,1,3] dim 0", (struct gc_par){.op = G_MEAN, .i0 = 0}, 3, S(4, 1, 3));
    gc_unary("mean [2,3,300] dim 1 keepdim", (struct gc_par){.op = G_MEAN, .i0 = 1, .i1 = 1}, 3,
             S(2, 3, 300));
    gc_unary("rel_shift [2,3,5,9]", (struct gc_par){.op = G_RSHIFT}, 4, S(2, 3, 5, 9));
    gc_unary("rel_shift T=1 [1,1,1,1]", (struct gc_par){.op = G_RSHIFT}, 4, S(1, 1, 1, 1));
}

/* ---- golden ------------------------------------------------------------- */

/* Minimal reader for the flat JSON objects gen_shape.py writes
 * ({"op": "slice", "dim": 1, "sizes": [3, 4, 3], "keepdim": true}). */
static const char *jfind(const char *js, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(js, pat);
    return p ? p + strlen(pat) : NULL;
}

static double jnum(const char *js, const char *key)
{
    const char *p = jfind(js, key);
    if (!p)
        tap_bail("golden metadata %s has no '%s'", js, key);
    return strtod(p, NULL);
}

static bool jbool(const char *js, const char *key)
{
    const char *p = jfind(js, key);
    return p && strncmp(p, "true", 4) == 0;
}

static int jlist(const char *js, const char *key, int64_t *out, int max)
{
    const char *p = jfind(js, key);
    if (!p || *p != '[')
        tap_bail("golden metadata %s has no list '%s'", js, key);
    int n = 0;
    p++;
    while (*p && *p != ']' && n < max) {
        char *end;
        out[n++] = strtoll(p, &end, 10);
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return n;
}

static void jstr(const char *js, const char *key, char *out, size_t cap)
{
    const char *p = jfind(js, key);
    if (!p || *p != '"')
        tap_bail("golden metadata %s has no string '%s'", js, key);
    p++;
    size_t n = 0;
    while (p[n] && p[n] != '"' && n + 1 < cap) {
        out[n] = p[n];
        n++;
    }
    out[n] = 0;
}

static bool has(avsr_st *st, const char *cs, const char *what)
{
    char nm[128];
    avsr_st_tensor t;
    snprintf(nm, sizeof nm, "%s.%s", cs, what);
    return avsr_st_find(st, nm, &t) == 0;
}

static avsr_tensor *load(avsr_st *st, const char *cs, const char *what)
{
    char nm[128], g[128];
    snprintf(nm, sizeof nm, "%s.%s", cs, what);
    snprintf(g, sizeof g, "g%s", what);
    return tu_golden_tensor(st, nm, has(st, cs, g));
}

/* Tolerances per op (|got - want| <= atol + rtol |want|):
 * - add/sub/mul/div forward: one IEEE operation per element, the same as
 *   PyTorch's, so bit-exact (0, 0). Gradients: an operand that does not
 *   broadcast gets the same single operation (exact); a broadcast one is a
 *   sum over up to 28 terms (|term| <= 4 for div) that we accumulate in
 *   double and PyTorch in f32 in another order: 1e-6 abs + 1e-6 rel.
 * - scale, add_scalar, masked_fill, concat, split, slice, pad, permute,
 *   transpose, rel_shift: copies or one operation: exact.
 * - axpby: two products and a sum like PyTorch's alpha*a + beta*b; exact
 *   unless the compiler fuses a multiply-add (then 1 ulp): 0 abs, 2e-7 rel.
 * - sum/mean along a dim: double accumulation vs PyTorch's f32 cascade over
 *   up to 5 terms: 1e-6 abs + 1e-6 rel; mean's backward multiplies by
 *   (float)(1/n) where PyTorch divides by n (1 ulp).
 * - positional encodings: the same f32 formulas as the PyTorch code, but
 *   glibc's expf/sinf/cosf are correctly rounded where PyTorch's vectorised
 *   exp/sin/cos may be 1 ulp off. A frequency 1 ulp (<= 6e-8) apart moves
 *   the argument t * w by up to t * 6e-8, plus 1 ulp of the argument
 *   itself; sin/cos have slope <= 1: 1e-6 + 2.4e-7 * T abs (measured: 3.8e-6
 *   at t = 38 for Whisper's table, where PyTorch's exp(-0.297...) is 1 ulp
 *   below the correctly rounded value). */
struct tol {
    const char *op;
    double fa, fr, ga, gr;
};

static const struct tol TOLS[] = {
    {"add", 0, 0, 1e-6, 1e-6},       {"sub", 0, 0, 1e-6, 1e-6},
    {"mul", 0, 0, 1e-6, 1e-6},       {"div", 0, 0, 1e-6, 1e-6},
    {"scale", 0, 0, 0, 0},           {"add_scalar", 0, 0, 0, 0},
    {"axpby", 0, 2e-7, 0, 0},        {"masked_fill", 0, 0, 0, 0},
    {"concat", 0, 0, 0, 0},          {"split", 0, 0, 0, 0},
    {"slice", 0, 0, 0, 0},           {"pad", 0, 0, 0, 0},
    {"permute", 0, 0, 0, 0},         {"transpose", 0, 0, 0, 0},
    {"sum", 1e-6, 1e-6, 0, 0},       {"mean", 1e-6, 1e-6, 0, 2e-7},
    {"rel_shift", 0, 0, 0, 0},       {"sinusoid_positions", 1e-6, 0, 0, 0},
    {"rel_positions", 1e-6, 0, 0, 0}, {"whisper_positions", 1e-6, 0, 0, 0},
};

static bool same_shape(const avsr_tensor *a, const avsr_tensor *b)
{
    return a && b && a->ndim == b->ndim && avsr_shape_equal(a, b);
}

static int golden_case(avsr_ctx *ctx, avsr_st *st, const char *cs, const char *js)
{
    char op[32];
    jstr(js, "op", op, sizeof op);
    const struct tol *tl = NULL;
    for (size_t i = 0; i < sizeof TOLS / sizeof TOLS[0]; i++)
        if (strcmp(TOLS[i].op, op) == 0)
            tl = &TOLS[i];
    if (!tl) {
        tap_ok(false, "golden %s: unknown op '%s'", cs, op);
        return 0;
    }
    const char *names[8];
    avsr_tensor *in[8];
    int nin = 0;
    static const char *cand[] = {"a", "b", "x", "m", "x0", "x1", "x2"};
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
        if (has(st, cs, cand[i])) {
            names[nin] = cand[i];
            in[nin++] = load(st, cs, cand[i]);
        }
    avsr_tensor *y[8] = {NULL};
    int ny = 1;
    if (!strcmp(op, "add"))
        y[0] = avsr_op_add(ctx, in[0], in[1]);
    else if (!strcmp(op, "sub"))
        y[0] = avsr_op_sub(ctx, in[0], in[1]);
    else if (!strcmp(op, "mul"))
        y[0] = avsr_op_mul(ctx, in[0], in[1]);
    else if (!strcmp(op, "div"))
        y[0] = avsr_op_div(ctx, in[0], in[1]);
    else if (!strcmp(op, "scale"))
        y[0] = avsr_op_scale(ctx, in[0], (float)jnum(js, "s"));
    else if (!strcmp(op, "add_scalar"))
        y[0] = avsr_op_add_scalar(ctx, in[0], (float)jnum(js, "s"));
    else if (!strcmp(op, "axpby"))
        y[0] = avsr_op_axpby(ctx, in[0], in[1], (float)jnum(js, "alpha"), (float)jnum(js, "beta"));
    else if (!strcmp(op, "masked_fill"))
        y[0] = avsr_op_masked_fill(ctx, in[0], in[1], (float)jnum(js, "value"));
    else if (!strcmp(op, "concat"))
        y[0] = avsr_op_concat(ctx, nin, in, (int)jnum(js, "dim"));
    else if (!strcmp(op, "split")) {
        int64_t sizes[8];
        ny = jlist(js, "sizes", sizes, 8);
        avsr_op_split(ctx, in[0], (int)jnum(js, "dim"), ny, sizes, y);
    } else if (!strcmp(op, "slice"))
        y[0] = avsr_op_slice(ctx, in[0], (int)jnum(js, "dim"), (int64_t)jnum(js, "start"),
                             (int64_t)jnum(js, "end"), (int64_t)jnum(js, "step"));
    else if (!strcmp(op, "pad"))
        y[0] = avsr_op_pad(ctx, in[0], (int)jnum(js, "dim"), (int64_t)jnum(js, "before"),
                           (int64_t)jnum(js, "after"), (float)jnum(js, "value"));
    else if (!strcmp(op, "permute")) {
        int64_t p64[AVSR_MAX_DIMS];
        int perm[AVSR_MAX_DIMS];
        int n = jlist(js, "perm", p64, AVSR_MAX_DIMS);
        for (int i = 0; i < n; i++)
            perm[i] = (int)p64[i];
        y[0] = avsr_op_permute(ctx, in[0], perm);
    } else if (!strcmp(op, "transpose"))
        y[0] = avsr_op_transpose(ctx, in[0], (int)jnum(js, "d0"), (int)jnum(js, "d1"));
    else if (!strcmp(op, "sum"))
        y[0] = avsr_op_sum(ctx, in[0], (int)jnum(js, "dim"), jbool(js, "keepdim"));
    else if (!strcmp(op, "mean"))
        y[0] = avsr_op_mean(ctx, in[0], (int)jnum(js, "dim"), jbool(js, "keepdim"));
    else if (!strcmp(op, "rel_shift"))
        y[0] = avsr_op_rel_shift(ctx, in[0]);
    else if (!strcmp(op, "sinusoid_positions"))
        y[0] = avsr_op_sinusoid_positions(ctx, (int64_t)jnum(js, "T"), (int64_t)jnum(js, "D"));
    else if (!strcmp(op, "rel_positions"))
        y[0] = avsr_op_rel_positions(ctx, (int64_t)jnum(js, "T"), (int64_t)jnum(js, "D"));
    else if (!strcmp(op, "whisper_positions"))
        y[0] = avsr_op_whisper_positions(ctx, (int64_t)jnum(js, "T"), (int64_t)jnum(js, "D"));

    int checks = 0;
    avsr_tensor *loss = NULL;
    for (int k = 0; k < ny; k++) {
        char yn[16], rn[16], what[160];
        snprintf(yn, sizeof yn, ny > 1 || !strcmp(op, "split") ? "y%d" : "y", k);
        snprintf(rn, sizeof rn, ny > 1 || !strcmp(op, "split") ? "r%d" : "r", k);
        avsr_tensor *want = load(st, cs, yn);
        snprintf(what, sizeof what, "golden %s: %s vs PyTorch", cs, yn);
        if (!same_shape(y[k], want)) {
            char b1[96] = "NULL", b2[96];
            if (y[k])
                avsr_shape_str(y[k], b1, sizeof b1);
            tap_ok(false, "%s: shape %s, want %s (%s)", what, b1, avsr_shape_str(want, b2, sizeof b2),
                   avsr_ctx_errmsg(ctx));
            avsr_ctx_clear_error(ctx);
        } else {
            double fa = tl->fa;
            if (strstr(op, "positions"))
                fa += 2.4e-7 * jnum(js, "T");
            tu_close(what, avsr_f32(y[k]), avsr_f32(want), want->numel, fa, tl->fr);
            if (has(st, cs, rn) && avsr_tensor_requires_grad(y[k])) {
                avsr_tensor *r = load(st, cs, rn);
                /* dot_const keeps a pointer to r: free it after backward */
                float *rd = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(r->numel ? r->numel : 1));
                memcpy(rd, r->data, sizeof(float) * (size_t)r->numel);
                avsr_tensor *l = avsr_op_dot_const(ctx, y[k], rd);
                loss = loss ? avsr_op_add(ctx, loss, l) : l;
                avsr_tensor_free(r);
            }
        }
        checks++;
        avsr_tensor_free(want);
    }
    if (loss) {
        if (avsr_backward(ctx, loss, NULL) < 0) {
            tap_ok(false, "golden %s: backward: %s", cs, avsr_ctx_errmsg(ctx));
            avsr_ctx_clear_error(ctx);
        }
        for (int i = 0; i < nin; i++) {
            char g[16], what[160];
            snprintf(g, sizeof g, "g%s", names[i]);
            if (!has(st, cs, g)) {
                tap_ok(in[i]->grad == NULL || !avsr_tensor_requires_grad(in[i]),
                       "golden %s: %s has no gradient", cs, names[i]);
                continue;
            }
            avsr_tensor *want = load(st, cs, g);
            snprintf(what, sizeof what, "golden %s: d loss / d %s vs PyTorch", cs, names[i]);
            tu_close(what, in[i]->grad, avsr_f32(want), want->numel, tl->ga, tl->gr);
            avsr_tensor_free(want);
            checks++;
        }
    }
    avsr_ctx_reset(ctx);
    for (int i = 0; i < nin; i++)
        avsr_tensor_free(in[i]);
    return checks;
}

static void test_golden(avsr_ctx *ctx)
{
    avsr_st *st = tu_golden_open("shape");
    int ncases = 0;
    for (int i = 0; i < avsr_st_meta_count(st); i++) {
        const char *key, *val;
        avsr_st_meta_at(st, i, &key, &val);
        if (!strchr(val, '{'))
            continue;
        golden_case(ctx, st, key, val);
        ncases++;
    }
    tap_ok(ncases >= 70, "golden: %d cases in the fixture", ncases);
    avsr_st_close(st);
}

/* ---- bad input ------------------------------------------------------------ */

static void expect(avsr_ctx *ctx, bool failed, const char *msg)
{
    tap_ok(failed && strstr(avsr_ctx_errmsg(ctx), msg) != NULL, "bad input: %s (got: %s)", msg,
           avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
}

static void test_bad_input(avsr_ctx *ctx)
{
    avsr_tensor *x23 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(2, 3));
    avsr_tensor *x4 = avsr_tensor_zeros(ctx, AVSR_F32, 1, S(4));
    expect(ctx, !avsr_op_add(ctx, x23, x4),
           "add: shapes [2, 3] and [4] cannot be broadcast (dimension 1: 3 vs 4)");
    x23 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(2, 3));
    avsr_tensor *x523 = avsr_tensor_zeros(ctx, AVSR_F32, 3, S(5, 3, 3));
    expect(ctx, !avsr_op_div(ctx, x523, x23),
           "div: shapes [5, 3, 3] and [2, 3] cannot be broadcast (dimension 1: 3 vs 2)");
    avsr_tensor *i64 = avsr_tensor_zeros(ctx, AVSR_I64, 1, S(3));
    x23 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(2, 3));
    expect(ctx, !avsr_op_mul(ctx, x23, i64), "mul: b must be f32, got I64");
    x23 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(2, 3));
    avsr_tensor *x32 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(3, 2));
    expect(ctx, !avsr_op_axpby(ctx, x23, x32, 1, 1),
           "axpby: a [2, 3] and b [3, 2] must have the same shape");
    avsr_tensor *x56 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(5, 6));
    avsr_tensor *m = avsr_tensor_zeros(ctx, AVSR_U8, 3, S(2, 5, 6));
    expect(ctx, !avsr_op_masked_fill(ctx, x56, m, 0),
           "masked_fill: mask [2, 5, 6] does not broadcast to x [5, 6]");
    x56 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(5, 6));
    m = avsr_tensor_zeros(ctx, AVSR_F64, 1, S(6));
    expect(ctx, !avsr_op_masked_fill(ctx, x56, m, 0),
           "masked_fill: mask must be f32, u8, bool, i32 or i64, got F64");
    x23 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(2, 3));
    expect(ctx, !avsr_op_sum(ctx, x23, 2, false), "sum: dim 2 out of range for x [2, 3]");
    x23 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(2, 3));
    expect(ctx, !avsr_op_mean(ctx, x23, -3, true), "mean: dim -3 out of range for x [2, 3]");
    x23 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(2, 3));
    expect(ctx, !avsr_op_transpose(ctx, x23, 0, 5), "transpose: dim 5 out of range for x [2, 3]");
    avsr_tensor *x234 = avsr_tensor_zeros(ctx, AVSR_F32, 3, S(2, 3, 4));
    expect(ctx, !avsr_op_permute(ctx, x234, (const int[]){0, 0, 1}),
           "permute: perm [0, 0, 1] is not a permutation of 0..2 for x [2, 3, 4]");
    x234 = avsr_tensor_zeros(ctx, AVSR_F32, 3, S(2, 3, 4));
    expect(ctx, !avsr_op_permute(ctx, x234, (const int[]){2, -1, 0}),
           "permute: perm [2, -1, 0] is not a permutation of 0..2");
    avsr_tensor *x53 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(5, 3));
    avsr_tensor *outs[2] = {x53, x53};
    expect(ctx, avsr_op_split(ctx, x53, 0, 2, S(2, 2), outs) < 0 && !outs[0] && !outs[1],
           "split: sizes sum to 4, but x [5, 3] has 5 along dim 0");
    x53 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(5, 3));
    expect(ctx, avsr_op_split(ctx, x53, 1, 2, S(4, -1), outs) < 0,
           "split: sizes[1] is negative (-1)");
    x53 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(5, 3));
    avsr_tensor *x25 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(2, 5));
    avsr_tensor *cc[2] = {x53, x25};
    expect(ctx, !avsr_op_concat(ctx, 2, cc, 0),
           "concat: input 1 has shape [2, 5], input 0 has [5, 3] (only dim 0 may differ)");
    expect(ctx, !avsr_op_concat(ctx, 0, cc, 0), "concat: needs at least one input, got 0");
    x53 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(5, 3));
    expect(ctx, !avsr_op_slice(ctx, x53, 0, 0, 2, 0), "slice: step must be >= 1, got 0");
    x53 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(5, 3));
    expect(ctx, !avsr_op_pad(ctx, x53, 1, -1, 0, 0),
           "pad: before and after must be >= 0, got -1 and 0");
    avsr_tensor *r = avsr_tensor_zeros(ctx, AVSR_F32, 4, S(1, 1, 3, 4));
    expect(ctx, !avsr_op_rel_shift(ctx, r), "rel_shift: x must be [B, H, T, 2T-1], got [1, 1, 3, 4]");
    expect(ctx, !avsr_op_rel_positions(ctx, 3, 5),
           "rel_positions: needs T >= 1 and an even D >= 2, got T = 3, D = 5");
    expect(ctx, !avsr_op_whisper_positions(ctx, 3, 2),
           "whisper_positions: needs T >= 1 and an even D >= 4, got T = 3, D = 2");
    expect(ctx, !avsr_op_sinusoid_positions(ctx, 0, 8),
           "sinusoid_positions: needs T >= 1 and an even D >= 2, got T = 0, D = 8");
    /* sticky: a NULL input gives NULL and keeps the first message */
    x23 = avsr_tensor_zeros(ctx, AVSR_F32, 2, S(2, 3));
    avsr_tensor *bad = avsr_op_sum(ctx, x23, 7, false);
    avsr_tensor *after = avsr_op_scale(ctx, bad, 2.0f);
    expect(ctx, !bad && !after && !avsr_op_add(ctx, x23, x23), "sum: dim 7 out of range");
}

/* ---- kernels against naive loops ------------------------------------------ */

static void test_naive(avsr_ctx *ctx)
{
    /* broadcast both ways above the threading threshold: [40,1,70]*[33,1] */
    avsr_tensor *a = tu_rand(3, S(40, 1, 70), 31, -1, 1, false);
    avsr_tensor *b = tu_rand(2, S(33, 1), 32, -1, 1, false);
    avsr_tensor *y = avsr_op_mul(ctx, a, b);
    int64_t n = 40 * 33 * 70;
    float *ref = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < 40; i++)
        for (int j = 0; j < 33; j++)
            for (int k = 0; k < 70; k++)
                ref[(i * 33 + j) * 70 + k] = avsr_f32(a)[i * 70 + k] * avsr_f32(b)[j];
    tap_ok(y && y->ndim == 3 && y->shape[0] == 40 && y->shape[1] == 33 && y->shape[2] == 70,
           "mul [40,1,70]*[33,1] has shape [40, 33, 70]");
    if (y)
        tu_close("mul [40,1,70]*[33,1] threaded vs naive", avsr_f32(y), ref, n, 0, 0);
    free(ref);
    avsr_ctx_reset(ctx);
    /* 4-D permute with the innermost dim moving, above the threshold */
    avsr_tensor *x = tu_rand(4, S(3, 17, 29, 37), 33, -1, 1, false);
    y = avsr_op_permute(ctx, x, (const int[]){2, 3, 0, 1});
    n = x->numel;
    ref = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 17; j++)
            for (int k = 0; k < 29; k++)
                for (int l = 0; l < 37; l++)
                    ref[((k * 37 + l) * 3 + i) * 17 + j] =
                        avsr_f32(x)[((i * 17 + j) * 29 + k) * 37 + l];
    if (y)
        tu_close("permute [3,17,29,37] (2,3,0,1) threaded vs naive", avsr_f32(y), ref, n, 0, 0);
    else
        tap_ok(false, "permute: %s", avsr_ctx_errmsg(ctx));
    free(ref);
    avsr_ctx_reset(ctx);
    /* empty slice, masks of integer types, no-grad mode */
    avsr_tensor *e = avsr_op_slice(ctx, x, 1, 5, 2, 1);
    tap_ok(e && e->shape[1] == 0 && e->numel == 0, "slice with end < start is empty");
    avsr_tensor *xm = tu_rand(2, S(2, 3), 34, -1, 1, false);
    avsr_tensor *mi = avsr_tensor_zeros(ctx, AVSR_I64, 2, S(2, 1));
    ((int64_t *)mi->data)[1] = 5;
    avsr_tensor *f = avsr_op_masked_fill(ctx, xm, mi, 9.0f);
    tap_ok(f && avsr_f32(f)[0] == avsr_f32(xm)[0] && avsr_f32(f)[3] == 9.0f &&
               avsr_f32(f)[5] == 9.0f,
           "masked_fill with an i64 [2,1] mask fills row 1");
    avsr_ctx_reset(ctx);
    avsr_tensor *g = tu_rand(2, S(2, 3), 35, -1, 1, true);
    bool was = avsr_ctx_set_grad(ctx, false);
    avsr_tensor *o = avsr_op_add(ctx, g, g);
    o = avsr_op_transpose(ctx, o, 0, 1);
    tap_ok(o && avsr_tape_size(ctx) == 0 && !avsr_tensor_requires_grad(o),
           "no-grad mode: nothing recorded");
    avsr_ctx_set_grad(ctx, was);
    avsr_ctx_reset(ctx);
    /* a + a: both gradient paths accumulate into the same buffer */
    memset(g->grad, 0, sizeof(float) * 6);
    o = avsr_op_add(ctx, g, g);
    avsr_tensor *L = avsr_op_sum_all(ctx, o);
    avsr_backward(ctx, L, NULL);
    const float two[6] = {2, 2, 2, 2, 2, 2};
    tu_close("add(x, x): gradient 2 from both operands", g->grad, two, 6, 0, 0);
    avsr_ctx_reset(ctx);
    avsr_tensor_free(a);
    avsr_tensor_free(b);
    avsr_tensor_free(x);
    avsr_tensor_free(xm);
    avsr_tensor_free(g);
}

int main(void)
{
    avsr_ctx *ctx = tu_ctx();
    test_gradcheck();
    test_golden(ctx);
    test_bad_input(ctx);
    test_naive(ctx);
    avsr_ctx_destroy(ctx);
    return tap_done();
}
