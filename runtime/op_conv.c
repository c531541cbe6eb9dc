/* op_conv: convolution and transposed convolution on oneDNN (see op_conv.h).
 *
 * One geometry struct describes both directions; every oneDNN object (the
 * convolution primitives and the reorders into and out of the layouts they
 * choose) is cached under a key made of that geometry plus a tag.
 *
 * Layout: our tensors are plain NC(D)HW. In "any" mode the primitives pick
 * their own (blocked, e.g. nChw16c) layouts and we reorder: activations on
 * each call, weights on each call (a few hundred KB at most). The forward's
 * blocked copies of x and w stay in the arena until the step ends anyway,
 * so backward reuses them instead of reordering again. Gradients leave the
 * primitives through a reorder with a sum post-op, which accumulates
 * (grad += ...) in the same pass. In "plain" mode the primitives run on our
 * layout directly; their outputs are then added into existing gradients
 * (or written straight into a gradient buffer that does not exist yet). */
#include "op_conv.h"

#include <stdlib.h>
#include <string.h>

#include "ctx_int.h"
#include "dnnl_util.h"
#include "tape.h"

enum { K_FWD = 1, K_BWD_DATA = 2, K_BWD_WEIGHTS = 3, K_REORDER = 4 };

struct geom {
    int nsp, transposed, G, has_bias, any;
    int64_t B, Cin, Cout;
    int64_t S[3], K[3], O[3];
    int64_t stride[3], pad[3], dil[3], opad[3];
};

/* Multiply-adds x 2 of one pass (forward, backward data or backward
 * weights all do the same number). */
static double conv_flops(const struct geom *g)
{
    double f = 2.0 * (double)g->B * (double)g->Cin * (double)g->Cout / (double)g->G;
    for (int i = 0; i < g->nsp; i++)
        f *= (double)g->K[i] * (double)(g->transposed ? g->S[i] : g->O[i]);
    return f;
}

/* Layout choice: AVSR_CONV_LAYOUT=plain|blocked or avsr_conv_set_layout()
 * override the default (for measurements and tests). */
static int layout_mode = -1; /* -1: not read from the environment yet */

static int layout_get(void)
{
    if (layout_mode < 0) {
        const char *e = getenv("AVSR_CONV_LAYOUT");
        layout_mode = !e                      ? AVSR_CONV_AUTO
                      : !strcmp(e, "plain")   ? AVSR_CONV_PLAIN
                      : !strcmp(e, "blocked") ? AVSR_CONV_BLOCKED
                                              : AVSR_CONV_AUTO;
    }
    return layout_mode;
}

int avsr_conv_set_layout(int mode)
{
    int old = layout_get();
    layout_mode = mode;
    return old;
}

/* The default is blocked for every shape: on the benchmark's convolutions
 * (ResNet-18 3x3 at 22x22 and 11x11, the stride-2 downsampling conv, the
 * 3D stem) oneDNN's plain-layout kernels (gemm-based) cost 1.4-2.4x the
 * CPU time of the blocked ones plus our reorders (bench/bench_conv with
 * AVSR_CONV_LAYOUT=plain|blocked). */
static int choose_any(const struct geom *g)
{
    int m = layout_get();
    (void)g;
    if (m != AVSR_CONV_AUTO)
        return m == AVSR_CONV_BLOCKED;
    return 1;
}

static void geom_key(avsr_dnnl_key *k, const struct geom *g, int kind)
{
    avsr_dnnl_key_init(k, 0xC0A7 * 16 + kind);
    avsr_dnnl_key_add(k, g->nsp);
    avsr_dnnl_key_add(k, g->transposed);
    avsr_dnnl_key_add(k, g->G);
    avsr_dnnl_key_add(k, g->has_bias);
    avsr_dnnl_key_add(k, g->any);
    avsr_dnnl_key_add(k, g->B);
    avsr_dnnl_key_add(k, g->Cin);
    avsr_dnnl_key_add(k, g->Cout);
    for (int i = 0; i < g->nsp; i++) {
        avsr_dnnl_key_add(k, g->S[i]);
        avsr_dnnl_key_add(k, g->K[i]);
        avsr_dnnl_key_add(k, g->stride[i]);
        avsr_dnnl_key_add(k, g->pad[i]);
        avsr_dnnl_key_add(k, g->dil[i]);
        avsr_dnnl_key_add(k, g->opad[i]);
    }
}

/* ---- memory descriptors of our (plain) tensors ---- */

static int md_act(avsr_ctx *ctx, dnnl_memory_desc_t *md, const struct geom *g, int64_t C,
                  const int64_t *sp, int any)
{
    int64_t d[5] = {g->B, C, sp[0], sp[1], sp[2]};
    if (any) {
        dnnl_dims_t dd;
        for (int i = 0; i < g->nsp + 2; i++)
            dd[i] = d[i];
        return AVSR_DNNL(&ctx->err, dnnl_memory_desc_init_by_tag(md, g->nsp + 2, dd, dnnl_f32,
                                                                 dnnl_format_tag_any));
    }
    return avsr_dnnl_md_plain(ctx, md, g->nsp + 2, d);
}

/* oneDNN weights are [G,] OC/G, IC/G, *K (OC/IC: the primitive's output and
 * input channels). Convolution weights [Cout, Cin/G, *K] are that layout
 * exactly; transposed weights [Cin, Cout/G, *K] = [G, Cin/G, Cout/G, *K]
 * have the two channel dimensions swapped, which strides express. */
static int md_weights(avsr_ctx *ctx, dnnl_memory_desc_t *md, const struct geom *g, int any)
{
    int64_t ksz = 1;
    for (int i = 0; i < g->nsp; i++)
        ksz *= g->K[i];
    int64_t ocg = g->Cout / g->G, icg = g->Cin / g->G;
    dnnl_dims_t dims, str;
    int n = 0;
    if (g->G > 1) {
        dims[n] = g->G;
        str[n++] = ocg * icg * ksz;
    }
    dims[n] = ocg;
    str[n++] = g->transposed ? ksz : icg * ksz;
    dims[n] = icg;
    str[n++] = g->transposed ? ocg * ksz : ksz;
    int64_t s = ksz;
    for (int i = 0; i < g->nsp; i++) {
        s /= g->K[i];
        dims[n] = g->K[i];
        str[n++] = s;
    }
    if (any)
        return AVSR_DNNL(&ctx->err,
                         dnnl_memory_desc_init_by_tag(md, n, dims, dnnl_f32, dnnl_format_tag_any));
    return AVSR_DNNL(&ctx->err, dnnl_memory_desc_init_by_strides(md, n, dims, dnnl_f32, str));
}

static int md_bias(avsr_ctx *ctx, dnnl_memory_desc_t *md, const struct geom *g)
{
    return avsr_dnnl_md_plain(ctx, md, 1, &g->Cout);
}

/* ---- primitives ---- */

static avsr_dnnl_prim *get_prim(avsr_ctx *ctx, const struct geom *g, int kind)
{
    avsr_dnnl_key key;
    geom_key(&key, g, kind);
    avsr_dnnl_prim *p = avsr_dnnl_find(ctx, key.v, avsr_dnnl_key_bytes(&key));
    if (p)
        return p;
    const dnnl_primitive_desc_t hint = NULL;
    avsr_dnnl_prim *fwd = NULL;
    if (kind != K_FWD && !(fwd = get_prim(ctx, g, K_FWD)))
        return NULL;
    dnnl_memory_desc_t src, wei, bia, dst;
    if (md_act(ctx, &src, g, g->Cin, g->S, g->any) < 0 ||
        md_act(ctx, &dst, g, g->Cout, g->O, g->any) < 0 || md_weights(ctx, &wei, g, g->any) < 0 ||
        md_bias(ctx, &bia, g) < 0)
        return NULL;
    dnnl_dims_t st, dl, pl, pr;
    for (int i = 0; i < g->nsp; i++) {
        st[i] = g->stride[i];
        dl[i] = g->dil[i] - 1;
        pl[i] = g->pad[i];
        /* oneDNN checks (S - K_eff + pl + pr) / stride + 1 == O with integer
         * division: a symmetric pad reproduces PyTorch's floor, and for the
         * transposed direction out_pad < stride keeps the same identity. */
        pr[i] = g->pad[i];
    }
    const dnnl_memory_desc_t *bp = g->has_bias ? &bia : NULL;
    union {
        dnnl_convolution_desc_t c;
        dnnl_deconvolution_desc_t d;
    } od;
    dnnl_status_t stt;
    int args[6], nargs = 0;
    if (!g->transposed) {
        switch (kind) {
        case K_FWD:
            stt = dnnl_dilated_convolution_forward_desc_init(&od.c, dnnl_forward_training,
                                                             dnnl_convolution_direct, &src, &wei,
                                                             bp, &dst, st, dl, pl, pr);
            break;
        case K_BWD_DATA:
            stt = dnnl_dilated_convolution_backward_data_desc_init(
                &od.c, dnnl_convolution_direct, &src, &wei, &dst, st, dl, pl, pr);
            break;
        default:
            stt = dnnl_dilated_convolution_backward_weights_desc_init(
                &od.c, dnnl_convolution_direct, &src, &wei, bp, &dst, st, dl, pl, pr);
        }
    } else {
        switch (kind) {
        case K_FWD:
            stt = dnnl_dilated_deconvolution_forward_desc_init(
                &od.d, dnnl_forward_training, dnnl_deconvolution_direct, &src, &wei, bp, &dst, st,
                dl, pl, pr);
            break;
        case K_BWD_DATA:
            stt = dnnl_dilated_deconvolution_backward_data_desc_init(
                &od.d, dnnl_deconvolution_direct, &src, &wei, &dst, st, dl, pl, pr);
            break;
        default:
            stt = dnnl_dilated_deconvolution_backward_weights_desc_init(
                &od.d, dnnl_deconvolution_direct, &src, &wei, bp, &dst, st, dl, pl, pr);
        }
    }
    if (AVSR_DNNL(&ctx->err, stt) < 0)
        return NULL;
    if (kind == K_FWD) {
        args[nargs++] = DNNL_ARG_SRC;
        args[nargs++] = DNNL_ARG_WEIGHTS;
        if (g->has_bias)
            args[nargs++] = DNNL_ARG_BIAS;
        args[nargs++] = DNNL_ARG_DST;
    } else if (kind == K_BWD_DATA) {
        args[nargs++] = DNNL_ARG_DIFF_DST;
        args[nargs++] = DNNL_ARG_WEIGHTS;
        args[nargs++] = DNNL_ARG_DIFF_SRC;
    } else {
        args[nargs++] = DNNL_ARG_SRC;
        args[nargs++] = DNNL_ARG_DIFF_DST;
        args[nargs++] = DNNL_ARG_DIFF_WEIGHTS;
        if (g->has_bias)
            args[nargs++] = DNNL_ARG_DIFF_BIAS;
    }
    dnnl_primitive_desc_t pd;
    if (AVSR_DNNL(&ctx->err, dnnl_primitive_desc_create(&pd, &od, NULL, ctx->engine,
                                                        fwd ? fwd->pd : hint)) < 0)
        return NULL;
    return avsr_dnnl_insert(ctx, key.v, avsr_dnnl_key_bytes(&key), pd, nargs, args);
}

/* A cached reorder between our plain layout and a primitive's layout for
 * argument `arg` of primitive `kind`; accumulate adds into the destination. */
static avsr_dnnl_prim *get_reorder(avsr_ctx *ctx, const struct geom *g, int kind, int arg,
                                   const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                   int accumulate)
{
    avsr_dnnl_key key;
    geom_key(&key, g, K_REORDER);
    avsr_dnnl_key_add(&key, kind);
    avsr_dnnl_key_add(&key, arg);
    avsr_dnnl_key_add(&key, accumulate);
    avsr_dnnl_prim *p = avsr_dnnl_find(ctx, key.v, avsr_dnnl_key_bytes(&key));
    if (p)
        return p;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int bad = 0;
    if (accumulate) {
        bad = AVSR_DNNL(&ctx->err, dnnl_primitive_attr_create(&attr)) < 0 ||
              AVSR_DNNL(&ctx->err, dnnl_post_ops_create(&po)) < 0 ||
              AVSR_DNNL(&ctx->err, dnnl_post_ops_append_sum(po, 1.0f)) < 0 ||
              AVSR_DNNL(&ctx->err, dnnl_primitive_attr_set_post_ops(attr, po)) < 0;
    }
    if (!bad)
        bad = AVSR_DNNL(&ctx->err, dnnl_reorder_primitive_desc_create(&pd, from, ctx->engine, to,
                                                                      ctx->engine, attr)) < 0;
    if (po)
        dnnl_post_ops_destroy(po);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (bad)
        return NULL;
    int args[2] = {DNNL_ARG_FROM, DNNL_ARG_TO};
    return avsr_dnnl_insert(ctx, key.v, avsr_dnnl_key_bytes(&key), pd, 2, args);
}

/* Data of a plain tensor in the layout `want` of argument `arg`: the tensor
 * itself when the layouts agree, else a reordered arena copy. */
static void *to_layout(avsr_ctx *ctx, const struct geom *g, int kind, int arg,
                       const dnnl_memory_desc_t *user, const dnnl_memory_desc_t *want, void *data)
{
    if (dnnl_memory_desc_equal(user, want))
        return data;
    void *buf = avsr_ctx_alloc(ctx, dnnl_memory_desc_get_size(want));
    avsr_dnnl_prim *r = get_reorder(ctx, g, kind, arg, user, want, 0);
    if (!buf) {
        AVSR_NOMEM(&ctx->err, dnnl_memory_desc_get_size(want));
        return NULL;
    }
    if (!r)
        return NULL;
    void *h[2] = {data, buf};
    return avsr_dnnl_exec(ctx, r, h) < 0 ? NULL : buf;
}

/* A gradient leaving a primitive: where the primitive writes it, and how it
 * reaches the tensor's gradient. */
struct gout {
    avsr_tensor *t;
    void *buf;   /* what the primitive writes */
    int mode;    /* 0: buf is t->grad (fresh), 1: add buf, 2: reorder buf (sum if acc) */
    int acc;
    int kind, arg;
    const dnnl_memory_desc_t *pmd, *umd;
};

static int gout_begin(avsr_ctx *ctx, struct gout *o, avsr_tensor *t,
                      const dnnl_memory_desc_t *user, const dnnl_memory_desc_t *prim)
{
    size_t bytes = (size_t)t->numel * sizeof(float);
    o->t = t;
    o->pmd = prim;
    o->umd = user;
    o->acc = t->grad != NULL;
    if (!dnnl_memory_desc_equal(user, prim)) {
        o->mode = 2;
        bytes = dnnl_memory_desc_get_size(prim);
    } else {
        o->mode = o->acc ? 1 : 0;
    }
    o->buf = avsr_ctx_alloc(ctx, bytes);
    if (!o->buf) {
        AVSR_NOMEM(&ctx->err, bytes);
        return -1;
    }
    if (o->mode == 0)
        t->grad = o->buf; /* fresh gradient: the primitive's output is it */
    return 0;
}

static int gout_end(avsr_ctx *ctx, struct gout *o, const struct geom *g)
{
    avsr_tensor *t = o->t;
    if (o->mode == 0)
        return 0;
    if (o->mode == 1) {
        float *gr = t->grad;
        const float *src = o->buf;
        int64_t n = t->numel;
#pragma omp parallel for simd schedule(static) if (n > 32768)
        for (int64_t i = 0; i < n; i++)
            gr[i] += src[i];
        return 0;
    }
    if (!o->acc) {
        size_t bytes = (size_t)t->numel * sizeof(float);
        if (!(t->grad = avsr_ctx_alloc(ctx, bytes))) {
            AVSR_NOMEM(&ctx->err, bytes);
            return -1;
        }
    }
    avsr_dnnl_prim *r = get_reorder(ctx, g, o->kind, o->arg, o->pmd, o->umd, o->acc);
    if (!r)
        return -1;
    void *h[2] = {o->buf, t->grad};
    return avsr_dnnl_exec(ctx, r, h);
}

/* ---- validation ---- */

static const char *opname(int transposed) { return transposed ? "conv_transpose" : "conv"; }

static int geom_make(avsr_ctx *ctx, struct geom *g, const avsr_tensor *x, const avsr_tensor *w,
                     const avsr_tensor *b, const avsr_conv_params *p, int transposed)
{
    const char *op = opname(transposed);
    char bx[96], bw[96];
    memset(g, 0, sizeof *g);
    if (!p || p->nsp < 1 || p->nsp > 3) {
        avsr_ctx_fail(ctx, "%s: params: nsp must be 1, 2 or 3, got %d", op, p ? p->nsp : -1);
        return -1;
    }
    int n = p->nsp;
    g->nsp = n;
    g->transposed = transposed;
    g->G = p->groups ? p->groups : 1;
    if (x->dtype != AVSR_F32 || w->dtype != AVSR_F32 || (b && b->dtype != AVSR_F32)) {
        avsr_ctx_fail(ctx, "%s: expects f32 tensors", op);
        return -1;
    }
    if (x->ndim != n + 2) {
        avsr_ctx_fail(ctx, "%s: input x: got %s, expected %d dims [B, C, *S] for %dd", op,
                      avsr_shape_str(x, bx, sizeof bx), n + 2, n);
        return -1;
    }
    if (w->ndim != n + 2) {
        avsr_ctx_fail(ctx, "%s: weight w: got %s, expected %d dims for %dd", op,
                      avsr_shape_str(w, bw, sizeof bw), n + 2, n);
        return -1;
    }
    if (g->G < 1) {
        avsr_ctx_fail(ctx, "%s: groups must be positive, got %d", op, g->G);
        return -1;
    }
    g->B = x->shape[0];
    g->Cin = x->shape[1];
    g->Cout = transposed ? w->shape[1] * g->G : w->shape[0];
    if (g->Cin % g->G) {
        avsr_ctx_fail(ctx, "%s: input channels %lld not divisible by groups %d", op,
                      (long long)g->Cin, g->G);
        return -1;
    }
    if (!transposed && g->Cout % g->G) {
        avsr_ctx_fail(ctx, "%s: output channels %lld not divisible by groups %d", op,
                      (long long)g->Cout, g->G);
        return -1;
    }
    if (transposed ? w->shape[0] != g->Cin : w->shape[1] != g->Cin / g->G) {
        avsr_ctx_fail(ctx, "%s: weight w: got %s, expected %s for input %s with groups %d", op,
                      avsr_shape_str(w, bw, sizeof bw),
                      transposed ? "[Cin, Cout/groups, *K]" : "[Cout, Cin/groups, *K]",
                      avsr_shape_str(x, bx, sizeof bx), g->G);
        return -1;
    }
    if (b && (b->ndim != 1 || b->shape[0] != g->Cout)) {
        avsr_ctx_fail(ctx, "%s: bias b: got %s, expected [%lld]", op,
                      avsr_shape_str(b, bx, sizeof bx), (long long)g->Cout);
        return -1;
    }
    if (g->B < 1 || g->Cin < 1 || g->Cout < 1) {
        avsr_ctx_fail(ctx, "%s: empty input x %s or weight w %s", op,
                      avsr_shape_str(x, bx, sizeof bx), avsr_shape_str(w, bw, sizeof bw));
        return -1;
    }
    g->has_bias = b != NULL;
    for (int i = 0; i < n; i++) {
        g->S[i] = x->shape[2 + i];
        g->K[i] = w->shape[2 + i];
        g->stride[i] = p->stride[i] ? p->stride[i] : 1;
        g->dil[i] = p->dil[i] ? p->dil[i] : 1;
        g->pad[i] = p->pad[i];
        g->opad[i] = transposed ? p->out_pad[i] : 0;
        if (g->stride[i] < 1 || g->dil[i] < 1 || g->pad[i] < 0 || g->opad[i] < 0) {
            avsr_ctx_fail(ctx, "%s: params: dimension %d: stride %lld and dilation %lld must be "
                          "positive, padding %lld and out_pad %lld non-negative", op, i,
                          (long long)g->stride[i], (long long)g->dil[i], (long long)g->pad[i],
                          (long long)g->opad[i]);
            return -1;
        }
        if (g->K[i] < 1 || g->S[i] < 1) {
            avsr_ctx_fail(ctx, "%s: empty spatial dimension %d: input x %s, weight w %s", op, i,
                          avsr_shape_str(x, bx, sizeof bx), avsr_shape_str(w, bw, sizeof bw));
            return -1;
        }
        int64_t keff = g->dil[i] * (g->K[i] - 1) + 1;
        if (!transposed) {
            if (g->S[i] + 2 * g->pad[i] < keff) {
                avsr_ctx_fail(ctx, "%s: kernel larger than padded input in dimension %d: "
                              "input %lld + 2*padding %lld < dilated kernel %lld (x %s, w %s)",
                              op, i, (long long)g->S[i], (long long)g->pad[i], (long long)keff,
                              avsr_shape_str(x, bx, sizeof bx), avsr_shape_str(w, bw, sizeof bw));
                return -1;
            }
            g->O[i] = (g->S[i] + 2 * g->pad[i] - keff) / g->stride[i] + 1;
        } else {
            if (g->opad[i] >= g->stride[i]) {
                avsr_ctx_fail(ctx, "%s: out_pad %lld must be smaller than stride %lld in "
                              "dimension %d", op, (long long)g->opad[i], (long long)g->stride[i], i);
                return -1;
            }
            g->O[i] = (g->S[i] - 1) * g->stride[i] - 2 * g->pad[i] + keff + g->opad[i];
            if (g->O[i] < 1) {
                avsr_ctx_fail(ctx, "%s: output size %lld in dimension %d is not positive "
                              "(padding %lld too large)", op, (long long)g->O[i], i,
                              (long long)g->pad[i]);
                return -1;
            }
        }
    }
    for (int i = n; i < 3; i++) {
        g->S[i] = g->K[i] = g->O[i] = 1;
        g->stride[i] = g->dil[i] = 1;
    }
    g->any = choose_any(g);
    return 0;
}

/* ---- forward / backward ---- */

struct conv_saved {
    struct geom g;
    avsr_tensor *x, *w, *b, *y;
    void *xp, *wp;                        /* x, w in the forward's layouts */
    const dnnl_memory_desc_t *xmd, *wmd;  /* those layouts */
};

static void conv_backward(avsr_ctx *ctx, void *sv)
{
    struct conv_saved *s = sv;
    const struct geom *g = &s->g;
    bool need_x = avsr_tensor_requires_grad(s->x);
    bool need_w = avsr_tensor_requires_grad(s->w);
    bool need_b = s->b && avsr_tensor_requires_grad(s->b);
    dnnl_memory_desc_t ux, uy, uw;
    if (md_act(ctx, &ux, g, g->Cin, g->S, 0) < 0 || md_act(ctx, &uy, g, g->Cout, g->O, 0) < 0 ||
        md_weights(ctx, &uw, g, 0) < 0)
        return;
    float *dy = s->y->grad; /* [B, Cout, *O] plain */
    const dnnl_memory_desc_t *dymd = NULL;
    void *dyp = NULL;
    if (need_x) {
        avsr_dnnl_prim *p = get_prim(ctx, g, K_BWD_DATA);
        if (!p)
            return;
        dymd = avsr_dnnl_arg_md(p, DNNL_ARG_DIFF_DST);
        dyp = to_layout(ctx, g, K_BWD_DATA, DNNL_ARG_DIFF_DST, &uy, dymd, dy);
        const dnnl_memory_desc_t *wmd = avsr_dnnl_arg_md(p, DNNL_ARG_WEIGHTS);
        void *wp = dnnl_memory_desc_equal(wmd, s->wmd)
                       ? s->wp
                       : to_layout(ctx, g, K_BWD_DATA, DNNL_ARG_WEIGHTS, &uw, wmd, s->w->data);
        struct gout gx = {.kind = K_BWD_DATA, .arg = DNNL_ARG_DIFF_SRC};
        if (!dyp || !wp ||
            gout_begin(ctx, &gx, s->x, &ux, avsr_dnnl_arg_md(p, DNNL_ARG_DIFF_SRC)) < 0)
            return;
        void *h[3] = {dyp, wp, gx.buf};
        avsr_ctx_add_flops(ctx, conv_flops(g));
        if (avsr_dnnl_exec(ctx, p, h) < 0 || gout_end(ctx, &gx, g) < 0)
            return;
    }
    if (need_w || need_b) {
        avsr_dnnl_prim *p = get_prim(ctx, g, K_BWD_WEIGHTS);
        if (!p)
            return;
        const dnnl_memory_desc_t *xmd = avsr_dnnl_arg_md(p, DNNL_ARG_SRC);
        void *xp = dnnl_memory_desc_equal(xmd, s->xmd)
                       ? s->xp
                       : to_layout(ctx, g, K_BWD_WEIGHTS, DNNL_ARG_SRC, &ux, xmd, s->x->data);
        const dnnl_memory_desc_t *md = avsr_dnnl_arg_md(p, DNNL_ARG_DIFF_DST);
        void *dwp = (dymd && dnnl_memory_desc_equal(md, dymd))
                        ? dyp
                        : to_layout(ctx, g, K_BWD_WEIGHTS, DNNL_ARG_DIFF_DST, &uy, md, dy);
        if (!xp || !dwp)
            return;
        struct gout gw = {.kind = K_BWD_WEIGHTS, .arg = DNNL_ARG_DIFF_WEIGHTS};
        const dnnl_memory_desc_t *dwmd = avsr_dnnl_arg_md(p, DNNL_ARG_DIFF_WEIGHTS);
        void *wbuf;
        if (need_w) {
            if (gout_begin(ctx, &gw, s->w, &uw, dwmd) < 0)
                return;
            wbuf = gw.buf;
        } else if (!(wbuf = avsr_ctx_alloc(ctx, dnnl_memory_desc_get_size(dwmd)))) {
            AVSR_NOMEM(&ctx->err, dnnl_memory_desc_get_size(dwmd));
            return;
        }
        float *db = NULL; /* [Cout] */
        if (g->has_bias &&
            !(db = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)g->Cout))) {
            AVSR_NOMEM(&ctx->err, sizeof(float) * (size_t)g->Cout);
            return;
        }
        void *h[4] = {xp, dwp, wbuf, db};
        avsr_ctx_add_flops(ctx, conv_flops(g));
        if (avsr_dnnl_exec(ctx, p, h) < 0)
            return;
        if (need_w && gout_end(ctx, &gw, g) < 0)
            return;
        if (need_b) {
            float *gb = avsr_tensor_grad(ctx, s->b);
            if (!gb)
                return;
            for (int64_t i = 0; i < g->Cout; i++)
                gb[i] += db[i];
        }
    }
}

static avsr_tensor *conv_any(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w, avsr_tensor *b,
                             const avsr_conv_params *p, int transposed)
{
    struct geom g;
    if (geom_make(ctx, &g, x, w, b, p, transposed) < 0)
        return NULL;
    int64_t shape[5] = {g.B, g.Cout, g.O[0], g.O[1], g.O[2]};
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, g.nsp + 2, shape); /* [B, Cout, *O] */
    if (!y)
        return NULL;
    avsr_dnnl_prim *pr = get_prim(ctx, &g, K_FWD);
    dnnl_memory_desc_t ux, uy, uw;
    if (!pr || md_act(ctx, &ux, &g, g.Cin, g.S, 0) < 0 ||
        md_act(ctx, &uy, &g, g.Cout, g.O, 0) < 0 || md_weights(ctx, &uw, &g, 0) < 0)
        return NULL;
    const dnnl_memory_desc_t *xmd = avsr_dnnl_arg_md(pr, DNNL_ARG_SRC);
    const dnnl_memory_desc_t *wmd = avsr_dnnl_arg_md(pr, DNNL_ARG_WEIGHTS);
    const dnnl_memory_desc_t *ymd = avsr_dnnl_arg_md(pr, DNNL_ARG_DST);
    void *xp = to_layout(ctx, &g, K_FWD, DNNL_ARG_SRC, &ux, xmd, x->data);
    void *wp = to_layout(ctx, &g, K_FWD, DNNL_ARG_WEIGHTS, &uw, wmd, w->data);
    if (!xp || !wp)
        return NULL;
    bool direct = dnnl_memory_desc_equal(&uy, ymd);
    void *yp = direct ? y->data : avsr_ctx_alloc(ctx, dnnl_memory_desc_get_size(ymd));
    if (!yp) {
        AVSR_NOMEM(&ctx->err, dnnl_memory_desc_get_size(ymd));
        return NULL;
    }
    void *h[4];
    int n = 0;
    h[n++] = xp;
    h[n++] = wp;
    if (b)
        h[n++] = b->data;
    h[n++] = yp;
    avsr_ctx_add_flops(ctx, conv_flops(&g));
    if (avsr_dnnl_exec(ctx, pr, h) < 0)
        return NULL;
    if (!direct) {
        avsr_dnnl_prim *r = get_reorder(ctx, &g, K_FWD, DNNL_ARG_DST, ymd, &uy, 0);
        void *hr[2] = {yp, y->data};
        if (!r || avsr_dnnl_exec(ctx, r, hr) < 0)
            return NULL;
    }
    avsr_tensor *ins[3] = {x, w, b};
    if (avsr_ctx_needs_grad(ctx, b ? 3 : 2, ins)) {
        struct conv_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct conv_saved){g, x, w, b, y, xp, wp, xmd, wmd};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, conv_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

avsr_tensor *avsr_op_conv(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w, avsr_tensor *b,
                          const avsr_conv_params *p)
{
    if (!x || !w || avsr_ctx_failed(ctx))
        return NULL;
    return conv_any(ctx, x, w, b, p, 0);
}

avsr_tensor *avsr_op_conv_transpose(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w,
                                    avsr_tensor *b, const avsr_conv_params *p)
{
    if (!x || !w || avsr_ctx_failed(ctx))
        return NULL;
    return conv_any(ctx, x, w, b, p, 1);
}

static avsr_tensor *conv_n(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w, avsr_tensor *b, int nsp,
                           int stride, int pad, int dil, int groups)
{
    avsr_conv_params p = {.nsp = nsp, .groups = groups};
    for (int i = 0; i < nsp; i++) {
        p.stride[i] = stride;
        p.pad[i] = pad;
        p.dil[i] = dil;
    }
    return avsr_op_conv(ctx, x, w, b, &p);
}

avsr_tensor *avsr_op_conv1d(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w, avsr_tensor *b,
                            int stride, int pad, int dil, int groups)
{
    return conv_n(ctx, x, w, b, 1, stride, pad, dil, groups);
}

avsr_tensor *avsr_op_conv2d(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w, avsr_tensor *b,
                            int stride, int pad, int dil, int groups)
{
    return conv_n(ctx, x, w, b, 2, stride, pad, dil, groups);
}

avsr_tensor *avsr_op_conv3d(avsr_ctx *ctx, avsr_tensor *x, avsr_tensor *w, avsr_tensor *b,
                            int stride, int pad, int dil, int groups)
{
    return conv_n(ctx, x, w, b, 3, stride, pad, dil, groups);
}
