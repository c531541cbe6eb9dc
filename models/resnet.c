/* resnet: BasicBlock trunk of the frontends (see resnet.h). */
#include "models/resnet.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

const char *avsr_fe_act_name(avsr_fe_act a)
{
    switch (a) {
    case AVSR_FE_ACT_SWISH: return "swish";
    case AVSR_FE_ACT_RELU: return "relu";
    case AVSR_FE_ACT_PRELU: return "prelu";
    }
    return "?";
}

const char *avsr_fe_join(char *buf, const char *prefix, const char *leaf)
{
    return avsr_nn_sub(buf, prefix, "%s", leaf);
}

avsr_tensor *avsr_fe_prelu_init(avsr_params *p, const char *prefix, const char *leaf, int64_t n,
                                avsr_error *err)
{
    char name[AVSR_NN_NAME_MAX];
    int64_t s[1] = {n};
    avsr_tensor *t = avsr_params_add(p, avsr_fe_join(name, prefix, leaf), 1, s, err);
    if (t && avsr_params_set_init(p, t, AVSR_INIT_CONST, 0.25f, err) < 0)
        return NULL;
    return t;
}

avsr_tensor *avsr_fe_activation(avsr_ctx *ctx, avsr_fe_act act, avsr_tensor *x, avsr_tensor *a)
{
    switch (act) {
    case AVSR_FE_ACT_SWISH: return avsr_op_silu(ctx, x);
    case AVSR_FE_ACT_RELU: return avsr_op_relu(ctx, x);
    case AVSR_FE_ACT_PRELU: return avsr_op_prelu(ctx, x, a);
    }
    return NULL;
}

avsr_tensor *avsr_fe_extent_mask(avsr_ctx *ctx, int64_t B, int64_t S, const int64_t *extent)
{
    if (!extent || avsr_ctx_failed(ctx))
        return NULL;
    int64_t shape[2] = {B, S};
    avsr_tensor *m = avsr_tensor_new(ctx, AVSR_U8, 2, shape);
    if (!m)
        return NULL;
    uint8_t *d = m->data; /* [B, S] */
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++)
            d[b * S + s] = s < extent[b];
    return m;
}

/* Output extent of a k3/p1 (or k1/p0) convolution with this stride. */
static int64_t conv_extent(int64_t l, int stride) { return l > 0 ? (l - 1) / stride + 1 : 0; }

int avsr_resnet_init(avsr_resnet *r, avsr_params *p, const char *prefix, int nsp,
                     int64_t in_channels, const int64_t *widths, const int *depth, avsr_fe_act act,
                     avsr_error *err)
{
    memset(r, 0, sizeof *r);
    if (nsp != 1 && nsp != 2)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: resnet: nsp %d, expected 1 or 2",
                              prefix, nsp);
    r->nsp = nsp;
    r->act = act;
    r->in_channels = in_channels;
    for (int s = 0; s < AVSR_RESNET_STAGES; s++) {
        if (depth[s] < 1 || widths[s] < 1)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "%s: resnet: stage %d has depth %d, width %lld; expected >= 1",
                                  prefix, s + 1, depth[s], (long long)widths[s]);
        r->depth[s] = depth[s];
        r->widths[s] = widths[s];
        r->nblocks += depth[s];
    }
    r->blocks = calloc((size_t)r->nblocks, sizeof *r->blocks);
    if (!r->blocks)
        return AVSR_NOMEM(err, sizeof *r->blocks * (size_t)r->nblocks);
    static const int stage_stride[AVSR_RESNET_STAGES] = {1, 2, 2, 2};
    int k3[2] = {3, 3}, k1[2] = {1, 1}, p1[2] = {1, 1};
    int64_t inplanes = in_channels;
    int bi = 0;
    char base[AVSR_NN_NAME_MAX], leaf[AVSR_NN_NAME_MAX], name[AVSR_NN_NAME_MAX];
    for (int s = 0; s < AVSR_RESNET_STAGES; s++) {
        int64_t planes = widths[s];
        for (int i = 0; i < depth[s]; i++, bi++) {
            avsr_resnet_block *b = &r->blocks[bi];
            int st = i == 0 ? stage_stride[s] : 1;
            int sv[2] = {st, st};
            b->stride = st;
            b->has_down = i == 0 && (st != 1 || inplanes != planes);
            snprintf(leaf, sizeof leaf, "layer%d.%d", s + 1, i);
            avsr_fe_join(base, prefix, leaf);
            if (avsr_nn_conv_init(&b->conv1, p, avsr_nn_name(name, "%s.conv1", base), nsp,
                                  inplanes, planes, k3, sv, p1, NULL, 1, false, err) < 0 ||
                avsr_nn_batch_norm_init(&b->bn1, p, avsr_nn_name(name, "%s.bn1", base), planes,
                                        1e-5f, 0.1f, err) < 0 ||
                avsr_nn_conv_init(&b->conv2, p, avsr_nn_name(name, "%s.conv2", base), nsp, planes,
                                  planes, k3, NULL, p1, NULL, 1, false, err) < 0 ||
                avsr_nn_batch_norm_init(&b->bn2, p, avsr_nn_name(name, "%s.bn2", base), planes,
                                        1e-5f, 0.1f, err) < 0)
                return -1;
            if (b->has_down &&
                (avsr_nn_conv_init(&b->down_conv, p, avsr_nn_name(name, "%s.downsample.0", base),
                                   nsp, inplanes, planes, k1, sv, NULL, NULL, 1, false, err) < 0 ||
                 avsr_nn_batch_norm_init(&b->down_bn, p,
                                         avsr_nn_name(name, "%s.downsample.1", base), planes,
                                         1e-5f, 0.1f, err) < 0))
                return -1;
            if (act == AVSR_FE_ACT_PRELU &&
                (!(b->prelu1 = avsr_fe_prelu_init(p, base, "relu1.weight", planes, err)) ||
                 !(b->prelu2 = avsr_fe_prelu_init(p, base, "relu2.weight", planes, err))))
                return -1;
            inplanes = planes;
        }
    }
    return 0;
}

void avsr_resnet_free(avsr_resnet *r)
{
    if (!r)
        return;
    free(r->blocks);
    r->blocks = NULL;
    r->nblocks = 0;
}

static avsr_tensor *block_forward(avsr_ctx *ctx, const avsr_resnet *r, const avsr_resnet_block *b,
                                  avsr_tensor *x, const int64_t *ext_out)
{
    avsr_tensor *h = avsr_nn_conv_forward(ctx, &b->conv1, x); /* [B, planes, S0', S1'] */
    if (!h)
        return NULL;
    int64_t B = h->shape[0], S0 = h->shape[2];
    avsr_tensor *m = avsr_fe_extent_mask(ctx, B, S0, ext_out); /* [B, S0'] or NULL */
    h = avsr_nn_batch_norm_forward(ctx, &b->bn1, h, m);
    h = avsr_fe_activation(ctx, r->act, h, b->prelu1);
    h = avsr_nn_conv_forward(ctx, &b->conv2, h);
    h = avsr_nn_batch_norm_forward(ctx, &b->bn2, h, m);
    avsr_tensor *res = x;
    if (b->has_down)
        res = avsr_nn_batch_norm_forward(ctx, &b->down_bn,
                                         avsr_nn_conv_forward(ctx, &b->down_conv, x), m);
    h = avsr_op_add(ctx, h, res);
    return avsr_fe_activation(ctx, r->act, h, b->prelu2);
}

avsr_tensor *avsr_resnet_forward(avsr_ctx *ctx, const avsr_resnet *r, avsr_tensor *x,
                                 const int64_t *extent)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    char b1[96];
    if (x->ndim != 2 + r->nsp || x->shape[1] != r->in_channels)
        return avsr_ctx_fail(ctx, "resnet: x: got %s, expected [B, %lld, %s]",
                             avsr_shape_str(x, b1, sizeof b1), (long long)r->in_channels,
                             r->nsp == 1 ? "L" : "H, W");
    int64_t B = x->shape[0];
    int64_t *ext = NULL; /* [B] current extents */
    if (extent) {
        ext = avsr_ctx_alloc(ctx, sizeof *ext * (size_t)B);
        if (!ext)
            return avsr_ctx_fail(ctx, "resnet: out of arena memory");
        memcpy(ext, extent, sizeof *ext * (size_t)B);
    }
    for (int i = 0; i < r->nblocks && x; i++) {
        const avsr_resnet_block *b = &r->blocks[i];
        if (ext && b->stride != 1) {
            int64_t *e2 = avsr_ctx_alloc(ctx, sizeof *e2 * (size_t)B);
            if (!e2)
                return avsr_ctx_fail(ctx, "resnet: out of arena memory");
            for (int64_t k = 0; k < B; k++)
                e2[k] = conv_extent(ext[k], b->stride);
            ext = e2;
        }
        x = block_forward(ctx, r, b, x, ext);
    }
    return x;
}
