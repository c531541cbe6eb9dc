/* test_op_conv: convolution, transposed convolution and pooling.
 *
 * - golden: every case of tests/golden/ops/conv.safetensors (PyTorch) in
 *   both layouts (plain, blocked) and both gradient paths (a fresh gradient
 *   buffer, and accumulation into an existing one);
 * - finite-difference gradient checks on odd shapes;
 * - bad input: the exact messages. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "op_basic.h"
#include "op_conv.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"

/* Tolerances against PyTorch. Convolutions: both sides sum at most a few
 * hundred f32 products of values in [-1, 1] (weight gradients: B * O
 * products per element, up to ~400 here) in different orders (oneDNN's
 * blocked kernels vs PyTorch's); f32 rounding of such sums stays below
 * 1e-5 absolute, so atol 1e-4 + rtol 1e-4 leaves a 10x margin without
 * hiding an indexing mistake (which shows up as O(0.1) errors).
 * Max pooling selects values: exact up to copying (atol 1e-6).
 * Average pooling divides a sum of at most 18 values: atol 1e-5. */
#define CONV_ATOL 1e-4
#define CONV_RTOL 1e-4
#define MAXP_ATOL 1e-6
#define AVGP_ATOL 1e-5

enum op_kind { OP_CONV, OP_CONVT, OP_MAXP, OP_AVGP, OP_ADAPT };

struct spec {
    enum op_kind kind;
    avsr_conv_params cp;
    avsr_pool_params pp;
    int64_t out[3];
};

static avsr_tensor *run_spec(avsr_ctx *ctx, avsr_tensor **in, void *user)
{
    const struct spec *s = user;
    switch (s->kind) {
    case OP_CONV: return avsr_op_conv(ctx, in[0], in[1], in[2], &s->cp);
    case OP_CONVT: return avsr_op_conv_transpose(ctx, in[0], in[1], in[2], &s->cp);
    case OP_MAXP: return avsr_op_max_pool(ctx, in[0], &s->pp);
    case OP_AVGP: return avsr_op_avg_pool(ctx, in[0], &s->pp);
    default: return avsr_op_adaptive_avg_pool(ctx, in[0], s->pp.nsp, s->out);
    }
}

/* The integers of a metadata string, in order. */
static int meta_ints(const char *m, int *v, int max)
{
    int n = 0;
    for (const char *p = m; *p && n < max;) {
        if (isdigit((unsigned char)*p) || (*p == '-' && isdigit((unsigned char)p[1]))) {
            char *e;
            v[n++] = (int)strtol(p, &e, 10);
            p = e;
        } else {
            p++;
        }
    }
    return n;
}

static struct spec parse_spec(const char *m)
{
    struct spec s;
    memset(&s, 0, sizeof s);
    int v[32], k = 1;
    meta_ints(m, v, 32);
    int n = v[0];
    if (strstr(m, "\"op\": \"conv\"") || strstr(m, "\"op\": \"conv_transpose\"")) {
        s.kind = strstr(m, "conv_transpose") ? OP_CONVT : OP_CONV;
        s.cp.nsp = n;
        for (int i = 0; i < n; i++) s.cp.stride[i] = v[k++];
        for (int i = 0; i < n; i++) s.cp.pad[i] = v[k++];
        for (int i = 0; i < n; i++) s.cp.dil[i] = v[k++];
        for (int i = 0; i < n; i++) s.cp.out_pad[i] = v[k++];
        s.cp.groups = v[k++];
    } else if (strstr(m, "\"op\": \"adaptive_avg_pool\"")) {
        s.kind = OP_ADAPT;
        s.pp.nsp = n;
        for (int i = 0; i < n; i++) s.out[i] = v[k++];
    } else {
        s.kind = strstr(m, "max_pool") ? OP_MAXP : OP_AVGP;
        s.pp.nsp = n;
        for (int i = 0; i < n; i++) s.pp.kernel[i] = v[k++];
        for (int i = 0; i < n; i++) s.pp.stride[i] = v[k++];
        for (int i = 0; i < n; i++) s.pp.pad[i] = v[k++];
        s.pp.exclude_pad = v[k++] != 0;
    }
    return s;
}

static bool has_tensor(avsr_st *st, const char *name)
{
    avsr_st_tensor t;
    return avsr_st_find(st, name, &t) == 0;
}

/* One golden case. fresh: x's gradient does not exist before backward (an
 * arena tensor); otherwise every gradient starts at 0.5 and must end at
 * 0.5 + PyTorch's. */
static void golden_case(avsr_ctx *ctx, avsr_st *st, const char *name, bool fresh,
                        const char *layout)
{
    char key[128];
    struct spec s = parse_spec(tu_golden_meta(st, name));
    double atol = s.kind == OP_MAXP ? MAXP_ATOL : s.kind <= OP_CONVT ? CONV_ATOL : AVGP_ATOL;
    double rtol = s.kind <= OP_CONVT ? CONV_RTOL : 1e-5;
    const char *names[3] = {"x", "w", "b"};
    avsr_tensor *heap[3] = {NULL, NULL, NULL}, *in[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "%s.%s", name, names[i]);
        if (!has_tensor(st, key))
            continue;
        heap[i] = tu_golden_tensor(st, key, true);
        for (int64_t j = 0; j < heap[i]->numel; j++)
            heap[i]->grad[j] = 0.5f;
        in[i] = heap[i];
    }
    avsr_ctx_reset(ctx);
    if (fresh) {
        in[0] = avsr_tensor_wrap(ctx, AVSR_F32, heap[0]->ndim, heap[0]->shape, heap[0]->data);
        in[0]->flags |= AVSR_T_REQUIRES_GRAD;
    }
    avsr_tensor *y = run_spec(ctx, in, &s);
    snprintf(key, sizeof key, "%s.y", name);
    avsr_tensor *wy = tu_golden_tensor(st, key, false);
    snprintf(key, sizeof key, "%s.r", name);
    avsr_tensor *r = tu_golden_tensor(st, key, false);
    char what[256];
    if (!y || !avsr_shape_equal(y, wy)) {
        tap_ok(false, "golden %s (%s): forward: %s", name, layout,
               y ? "wrong shape" : avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
        goto out;
    }
    if (!fresh) {
        snprintf(what, sizeof what, "golden %s (%s): y", name, layout);
        tu_close(what, avsr_f32(y), avsr_f32(wy), y->numel, atol, rtol);
    }
    avsr_tensor *L = avsr_op_dot_const(ctx, y, avsr_f32(r));
    if (!L || avsr_backward(ctx, L, NULL) < 0) {
        tap_ok(false, "golden %s (%s): backward: %s", name, layout, avsr_ctx_errmsg(ctx));
        avsr_ctx_clear_error(ctx);
        goto out;
    }
    for (int i = 0; i < 3; i++) {
        if (!in[i])
            continue;
        snprintf(key, sizeof key, "%s.g%s", name, names[i]);
        avsr_tensor *g = tu_golden_tensor(st, key, false);
        float *got = in[i]->grad;
        if (!(fresh && i == 0))
            for (int64_t j = 0; j < g->numel; j++)
                avsr_f32(g)[j] += 0.5f;
        snprintf(what, sizeof what, "golden %s (%s, %s): d%s", name, layout,
                 fresh ? "fresh grad" : "accumulated", names[i]);
        if (got)
            tu_close(what, got, avsr_f32(g), g->numel, atol, rtol);
        else
            tap_ok(false, "%s: no gradient", what);
        avsr_tensor_free(g);
    }
out:
    avsr_ctx_reset(ctx);
    avsr_tensor_free(wy);
    avsr_tensor_free(r);
    for (int i = 0; i < 3; i++)
        avsr_tensor_free(heap[i]);
}

static int test_golden(avsr_ctx *ctx)
{
    avsr_st *st = tu_golden_open("conv");
    char *cases = strdup(tu_golden_meta(st, "cases"));
    int n = 0;
    for (char *save = NULL, *c = strtok_r(cases, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        struct spec s = parse_spec(tu_golden_meta(st, c));
        n++;
        if (s.kind <= OP_CONVT) {
            avsr_conv_set_layout(AVSR_CONV_PLAIN);
            golden_case(ctx, st, c, false, "plain");
            golden_case(ctx, st, c, true, "plain");
            avsr_conv_set_layout(AVSR_CONV_BLOCKED);
            golden_case(ctx, st, c, false, "blocked");
            golden_case(ctx, st, c, true, "blocked");
            avsr_conv_set_layout(AVSR_CONV_AUTO);
        } else {
            golden_case(ctx, st, c, false, "plain");
            golden_case(ctx, st, c, true, "plain");
        }
    }
    free(cases);
    avsr_st_close(st);
    return n;
}

/* ---- finite differences ---- */

static void gradcheck(avsr_ctx *ctx, const char *name, struct spec *s, int nsp, const int64_t *xs,
                      const int64_t *ws, bool bias, bool distinct)
{
    avsr_tensor *in[3] = {NULL, NULL, NULL};
    in[0] = tu_rand(nsp + 2, xs, 11, -1, 1, true);
    if (distinct) {
        /* max pooling: distinct values 0.01 apart, so the finite-difference
         * step (1e-3) never changes which element is the maximum */
        int64_t n = in[0]->numel;
        for (int64_t i = 0; i < n; i++)
            avsr_f32(in[0])[i] = (float)((i * 7919) % n) * 0.01f - 0.3f;
    }
    int nin = 1;
    if (ws) {
        in[1] = tu_rand(nsp + 2, ws, 12, -1, 1, true);
        nin = 2;
        if (bias) {
            int64_t c = s->kind == OP_CONVT ? ws[1] * (s->cp.groups ? s->cp.groups : 1) : ws[0];
            in[2] = tu_rand(1, &c, 13, -1, 1, true);
            nin = 3;
        }
    }
    /* conv and pooling are linear in each input: central differences are
     * exact up to f32 rounding of the loss (~1e-6 relative of sums of a few
     * hundred terms, divided by 2*eps), so 1e-2 tolerances are loose. */
    tu_gc_opts o = {.eps = distinct ? 1e-3 : 1e-2, .atol = 1e-2, .rtol = 1e-2, .max_elems = 40};
    tu_gradcheck(name, ctx, run_spec, s, nin, in, &o);
    for (int i = 0; i < 3; i++)
        avsr_tensor_free(in[i]);
    avsr_ctx_reset(ctx);
}

static void test_gradcheck(avsr_ctx *ctx)
{
    struct spec s;
    /* conv 2d, 7x9 image, batch 1, stride 2 with padding */
    s = (struct spec){.kind = OP_CONV, .cp = {.nsp = 2, .stride = {2, 2}, .pad = {1, 1}}};
    gradcheck(ctx, "conv2d 7x9 stride 2 pad 1", &s, 2, (int64_t[]){1, 3, 7, 9},
              (int64_t[]){4, 3, 3, 3}, true, false);
    /* dilation 2, groups 2 */
    s = (struct spec){.kind = OP_CONV, .cp = {.nsp = 2, .pad = {2, 1}, .dil = {2, 2}, .groups = 2}};
    gradcheck(ctx, "conv2d dilation 2 groups 2", &s, 2, (int64_t[]){2, 4, 7, 9},
              (int64_t[]){6, 2, 3, 3}, true, false);
    /* depthwise */
    s = (struct spec){.kind = OP_CONV, .cp = {.nsp = 2, .stride = {1, 2}, .pad = {1, 1}, .groups = 5}};
    gradcheck(ctx, "conv2d depthwise", &s, 2, (int64_t[]){2, 5, 7, 9}, (int64_t[]){5, 1, 3, 3},
              true, false);
    /* 1d, length 1 */
    s = (struct spec){.kind = OP_CONV, .cp = {.nsp = 1, .pad = {1}}};
    gradcheck(ctx, "conv1d length 1", &s, 1, (int64_t[]){2, 3, 1}, (int64_t[]){4, 3, 3}, true,
              false);
    s = (struct spec){.kind = OP_CONV, .cp = {.nsp = 1, .stride = {2}, .pad = {2}, .dil = {2}}};
    gradcheck(ctx, "conv1d stride 2 dilation 2", &s, 1, (int64_t[]){1, 3, 13},
              (int64_t[]){5, 3, 3}, false, false);
    /* 3d stem-like */
    s = (struct spec){.kind = OP_CONV, .cp = {.nsp = 3, .stride = {1, 2, 2}, .pad = {1, 2, 2}}};
    gradcheck(ctx, "conv3d stem-like", &s, 3, (int64_t[]){1, 1, 3, 9, 7},
              (int64_t[]){3, 1, 3, 5, 5}, true, false);
    /* transposed 1d / 3d with output padding */
    s = (struct spec){.kind = OP_CONVT, .cp = {.nsp = 1, .stride = {2}, .pad = {1}, .out_pad = {1}}};
    gradcheck(ctx, "conv_transpose1d out_pad 1", &s, 1, (int64_t[]){2, 3, 5},
              (int64_t[]){3, 4, 4}, true, false);
    s = (struct spec){.kind = OP_CONVT,
                      .cp = {.nsp = 3, .stride = {2, 1, 1}, .pad = {2, 0, 0}, .out_pad = {1, 0, 0},
                             .groups = 2}};
    gradcheck(ctx, "conv_transpose3d groups 2 out_pad", &s, 3, (int64_t[]){1, 4, 3, 2, 3},
              (int64_t[]){4, 1, 6, 1, 1}, true, false);
    /* pooling */
    s = (struct spec){.kind = OP_MAXP, .pp = {.nsp = 2, .kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}}};
    gradcheck(ctx, "max_pool2d 7x9", &s, 2, (int64_t[]){1, 2, 7, 9}, NULL, false, true);
    s = (struct spec){.kind = OP_MAXP, .pp = {.nsp = 1, .kernel = {2}}};
    gradcheck(ctx, "max_pool1d", &s, 1, (int64_t[]){2, 2, 9}, NULL, false, true);
    s = (struct spec){.kind = OP_MAXP,
                      .pp = {.nsp = 3, .kernel = {1, 3, 3}, .stride = {1, 2, 2}, .pad = {0, 1, 1}}};
    gradcheck(ctx, "max_pool3d", &s, 3, (int64_t[]){1, 2, 3, 7, 5}, NULL, false, true);
    s = (struct spec){.kind = OP_AVGP, .pp = {.nsp = 2, .kernel = {3, 2}, .stride = {2, 1}, .pad = {1, 1}}};
    gradcheck(ctx, "avg_pool2d count_include_pad", &s, 2, (int64_t[]){1, 2, 7, 9}, NULL, false,
              false);
    s.pp.exclude_pad = true;
    gradcheck(ctx, "avg_pool2d exclude pad", &s, 2, (int64_t[]){1, 2, 7, 9}, NULL, false, false);
    s = (struct spec){.kind = OP_AVGP, .pp = {.nsp = 1, .kernel = {3}, .pad = {1}}};
    gradcheck(ctx, "avg_pool1d", &s, 1, (int64_t[]){2, 3, 10}, NULL, false, false);
    s = (struct spec){.kind = OP_AVGP,
                      .pp = {.nsp = 3, .kernel = {2, 2, 3}, .stride = {1, 2, 2}, .pad = {1, 1, 1},
                             .exclude_pad = true}};
    gradcheck(ctx, "avg_pool3d exclude pad", &s, 3, (int64_t[]){1, 2, 3, 5, 7}, NULL, false,
              false);
    s = (struct spec){.kind = OP_ADAPT, .pp = {.nsp = 1}, .out = {4}};
    gradcheck(ctx, "adaptive_avg_pool1d 10->4", &s, 1, (int64_t[]){2, 3, 10}, NULL, false, false);
    s = (struct spec){.kind = OP_ADAPT, .pp = {.nsp = 2}, .out = {3, 5}};
    gradcheck(ctx, "adaptive_avg_pool2d 7x9->3x5", &s, 2, (int64_t[]){1, 2, 7, 9}, NULL, false,
              false);
    s = (struct spec){.kind = OP_ADAPT, .pp = {.nsp = 3}, .out = {4, 2, 3}};
    gradcheck(ctx, "adaptive_avg_pool3d 3x5x7->4x2x3", &s, 3, (int64_t[]){1, 2, 3, 5, 7}, NULL,
              false, false);
    s = (struct spec){.kind = OP_ADAPT, .pp = {.nsp = 2}, .out = {1, 1}};
    gradcheck(ctx, "global_avg_pool2d", &s, 2, (int64_t[]){2, 3, 7, 9}, NULL, false, false);
}

/* ---- frozen inputs: no gradient written ---- */

static void test_frozen(avsr_ctx *ctx)
{
    int64_t xs[4] = {2, 4, 7, 9}, ws[4] = {6, 4, 3, 3}, bs[1] = {6};
    avsr_tensor *x = tu_rand(4, xs, 1, -1, 1, false);
    avsr_tensor *w = tu_rand(4, ws, 2, -1, 1, false);
    avsr_tensor *b = tu_rand(1, bs, 3, -1, 1, true);
    avsr_tensor *y = avsr_op_conv2d(ctx, x, w, b, 1, 1, 1, 1);
    avsr_tensor *L = avsr_op_sum_all(ctx, y);
    tap_ok(L && avsr_backward(ctx, L, NULL) == 0 && !x->grad && !w->grad,
           "conv with frozen x and w writes only the bias gradient");
    /* d sum(y) / d b = B * H * W per channel */
    float want[6];
    for (int i = 0; i < 6; i++)
        want[i] = 2 * 7 * 9;
    tu_close("conv bias gradient alone", b->grad, want, 6, 1e-4, 1e-6);
    avsr_ctx_reset(ctx);
    avsr_ctx_set_grad(ctx, false);
    y = avsr_op_conv2d(ctx, x, w, b, 1, 1, 1, 1);
    tap_ok(y && avsr_tape_size(ctx) == 0 && !avsr_tensor_requires_grad(y),
           "no-grad mode: conv records nothing");
    avsr_ctx_set_grad(ctx, true);
    avsr_ctx_reset(ctx);
    avsr_tensor_free(x);
    avsr_tensor_free(w);
    avsr_tensor_free(b);
}

/* ---- bad input ---- */

static void expect_fail(avsr_ctx *ctx, avsr_tensor *y, const char *msg)
{
    tap_ok(!y && strstr(avsr_ctx_errmsg(ctx), msg), "bad input: '%s' (got '%s')", msg,
           avsr_ctx_errmsg(ctx));
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
}

static void test_bad_input(avsr_ctx *ctx)
{
    avsr_tensor *x5 = tu_rand(4, (int64_t[]){1, 5, 7, 7}, 1, -1, 1, false);
    avsr_tensor *x4 = tu_rand(4, (int64_t[]){1, 4, 7, 7}, 1, -1, 1, false);
    avsr_tensor *x3d = tu_rand(3, (int64_t[]){1, 4, 7}, 1, -1, 1, false);
    avsr_tensor *xs = tu_rand(4, (int64_t[]){1, 2, 3, 3}, 1, -1, 1, false);
    avsr_tensor *w423 = tu_rand(4, (int64_t[]){4, 2, 3, 3}, 2, -1, 1, false);
    avsr_tensor *w433 = tu_rand(4, (int64_t[]){4, 3, 3, 3}, 2, -1, 1, false);
    avsr_tensor *w523 = tu_rand(4, (int64_t[]){5, 2, 3, 3}, 2, -1, 1, false);
    avsr_tensor *w425 = tu_rand(4, (int64_t[]){4, 2, 5, 5}, 2, -1, 1, false);
    avsr_tensor *b3 = tu_rand(1, (int64_t[]){3}, 3, -1, 1, false);
    avsr_tensor *wt = tu_rand(3, (int64_t[]){4, 2, 4}, 2, -1, 1, false);

    expect_fail(ctx, avsr_op_conv2d(ctx, x5, w423, NULL, 1, 1, 1, 2),
                "conv: input channels 5 not divisible by groups 2");
    expect_fail(ctx, avsr_op_conv2d(ctx, x4, w523, NULL, 1, 1, 1, 2),
                "conv: output channels 5 not divisible by groups 2");
    expect_fail(ctx, avsr_op_conv2d(ctx, x4, w433, NULL, 1, 1, 1, 1),
                "conv: weight w: got [4, 3, 3, 3], expected [Cout, Cin/groups, *K] for input "
                "[1, 4, 7, 7] with groups 1");
    expect_fail(ctx, avsr_op_conv2d(ctx, xs, w425, NULL, 1, 0, 1, 1),
                "conv: kernel larger than padded input in dimension 0: input 3 + 2*padding 0 < "
                "dilated kernel 5");
    expect_fail(ctx, avsr_op_conv2d(ctx, x4, w423, b3, 1, 1, 1, 2),
                "conv: bias b: got [3], expected [4]");
    expect_fail(ctx, avsr_op_conv2d(ctx, x3d, w423, NULL, 1, 1, 1, 2),
                "conv: input x: got [1, 4, 7], expected 4 dims [B, C, *S] for 2d");
    expect_fail(ctx, avsr_op_conv2d(ctx, x4, w423, NULL, -1, 1, 1, 2),
                "conv: params: dimension 0: stride -1 and dilation 1 must be positive");
    avsr_conv_params tp = {.nsp = 1, .stride = {2}, .out_pad = {2}};
    expect_fail(ctx, avsr_op_conv_transpose(ctx, x3d, wt, NULL, &tp),
                "conv_transpose: out_pad 2 must be smaller than stride 2 in dimension 0");
    avsr_pool_params pp = {.nsp = 2, .kernel = {3, 3}, .pad = {2, 2}};
    expect_fail(ctx, avsr_op_max_pool(ctx, x4, &pp),
                "max_pool: padding 2 should be at most half of kernel 3 in dimension 0");
    pp = (avsr_pool_params){.nsp = 2, .kernel = {5, 5}};
    expect_fail(ctx, avsr_op_avg_pool(ctx, xs, &pp),
                "avg_pool: kernel 5 larger than padded input 3 + 2*0 in dimension 0");
    pp = (avsr_pool_params){.nsp = 3, .kernel = {1, 1, 1}};
    expect_fail(ctx, avsr_op_max_pool(ctx, x4, &pp),
                "max_pool: input x: got [1, 4, 7, 7], expected 5 non-empty dims [B, C, *S] for 3d");
    expect_fail(ctx, avsr_op_adaptive_avg_pool(ctx, x4, 2, (int64_t[]){3, 0}),
                "adaptive_avg_pool: output size 0 in dimension 1 must be positive");
    avsr_conv_params bad = {.nsp = 4};
    expect_fail(ctx, avsr_op_conv(ctx, x4, w423, NULL, &bad),
                "conv: params: nsp must be 1, 2 or 3, got 4");
    /* sticky: a NULL input gives NULL without a new message */
    tap_ok(!avsr_op_conv2d(ctx, NULL, w423, NULL, 1, 1, 1, 1) && !avsr_ctx_failed(ctx) &&
               !avsr_op_max_pool(ctx, NULL, &pp),
           "NULL input returns NULL");
    avsr_tensor *all[] = {x5, x4, x3d, xs, w423, w433, w523, w425, b3, wt};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        avsr_tensor_free(all[i]);
}

int main(void)
{
    avsr_ctx *ctx = tu_ctx();
    int n = test_golden(ctx);
    tap_diag("%d golden cases", n);
    test_gradcheck(ctx);
    test_frozen(ctx);
    test_bad_input(ctx);
    avsr_ctx_destroy(ctx);
    return tap_done();
}
