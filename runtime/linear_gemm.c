/* linear_gemm: cached oneDNN matmul with strided transposes, broadcast,
 * bias, activation and sum post-ops (see linear_gemm.h). */
#include "linear_gemm.h"

#include <string.h>

#include "dnnl_util.h"
#include "mathfn.h"

#define LIN_GEMM_KEY 0x4c494e47 /* "LING" */

/* Memory descriptor of one operand as the product uses it: logical
 * [rows, cols] per batch (3 dims when nb > 1), stored either row-major or,
 * with trans, as the row-major [cols, rows] matrix (a strided view). */
static int operand_md(avsr_ctx *ctx, dnnl_memory_desc_t *md, int64_t nb, bool bcast,
                      int64_t rows, int64_t cols, bool trans)
{
    dnnl_dims_t d, s;
    int nd = 0;
    if (nb > 1) {
        d[nd] = bcast ? 1 : nb;
        s[nd] = rows * cols;
        nd++;
    }
    d[nd] = rows;
    s[nd] = trans ? 1 : cols;
    d[nd + 1] = cols;
    s[nd + 1] = trans ? rows : 1;
    nd += 2;
    return AVSR_DNNL(&ctx->err, dnnl_memory_desc_init_by_strides(md, nd, d, dnnl_f32, s));
}

static dnnl_alg_kind_t act_alg(avsr_act_kind act)
{
    switch (act) {
    case AVSR_ACT_RELU: return dnnl_eltwise_relu;
    case AVSR_ACT_SILU: return dnnl_eltwise_swish;
    case AVSR_ACT_GELU: return dnnl_eltwise_gelu_erf;
    default: return dnnl_alg_kind_undef;
    }
}

static avsr_dnnl_prim *make_prim(avsr_ctx *ctx, const avsr_lin_gemm *g, const avsr_dnnl_key *key)
{
    avsr_error *err = &ctx->err;
    dnnl_memory_desc_t amd, bmd, cmd, biasmd;
    if (operand_md(ctx, &amd, g->nb, g->a_bcast, g->M, g->K, g->ta) < 0 ||
        operand_md(ctx, &bmd, g->nb, g->b_bcast, g->K, g->N, g->tb) < 0 ||
        operand_md(ctx, &cmd, g->nb, false, g->M, g->N, false) < 0)
        return NULL;
    if (g->bias && operand_md(ctx, &biasmd, g->nb, true, 1, g->N, false) < 0)
        return NULL;
    dnnl_matmul_desc_t md;
    if (AVSR_DNNL(err, dnnl_matmul_desc_init(&md, &amd, &bmd, g->bias ? &biasmd : NULL, &cmd)) < 0)
        return NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int rc = AVSR_DNNL(err, dnnl_primitive_attr_create(&attr));
    if (rc == 0 && g->alpha != 1.0f)
        rc = AVSR_DNNL(err, dnnl_primitive_attr_set_output_scales(attr, 1, 0, &g->alpha));
    if (rc == 0 && (g->accumulate || g->act != AVSR_ACT_NONE)) {
        rc = AVSR_DNNL(err, dnnl_post_ops_create(&po));
        if (rc == 0 && g->accumulate)
            rc = AVSR_DNNL(err, dnnl_post_ops_append_sum(po, 1.0f));
        if (rc == 0 && g->act != AVSR_ACT_NONE)
            rc = AVSR_DNNL(err, dnnl_post_ops_append_eltwise(po, 1.0f, act_alg(g->act),
                                                             g->act == AVSR_ACT_SILU ? 1.0f : 0.0f,
                                                             0.0f));
        if (rc == 0)
            rc = AVSR_DNNL(err, dnnl_primitive_attr_set_post_ops(attr, po));
    }
    if (rc == 0)
        rc = AVSR_DNNL(err, dnnl_primitive_desc_create(&pd, &md, attr, ctx->engine, NULL));
    if (po)
        dnnl_post_ops_destroy(po);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (rc < 0)
        return NULL;
    int args[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS};
    return avsr_dnnl_insert(ctx, key->v, avsr_dnnl_key_bytes(key), pd, g->bias ? 4 : 3, args);
}

/* K == 0: the product is zero; only bias and activation remain. */
static void empty_product(const avsr_lin_gemm *g)
{
    if (g->accumulate)
        return;
    int64_t rows = g->nb * g->M;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < g->N; j++) {
            float v = g->bias ? g->bias[j] : 0.0f;
            switch (g->act) {
            case AVSR_ACT_RELU: v = avsr_fn_relu(v); break;
            case AVSR_ACT_SILU: v = avsr_fn_silu(v); break;
            case AVSR_ACT_GELU: v = avsr_fn_gelu(v); break;
            default: break;
            }
            g->c[r * g->N + j] = v;
        }
}

int avsr_lin_gemm_run(avsr_ctx *ctx, const avsr_lin_gemm *g)
{
    if (g->nb <= 0 || g->M <= 0 || g->N <= 0)
        return 0;
    if (g->K <= 0) {
        empty_product(g);
        return 0;
    }
    avsr_dnnl_key key;
    uint32_t alpha_bits;
    memcpy(&alpha_bits, &g->alpha, sizeof alpha_bits);
    avsr_dnnl_key_init(&key, LIN_GEMM_KEY);
    avsr_dnnl_key_add(&key, g->nb);
    avsr_dnnl_key_add(&key, g->M);
    avsr_dnnl_key_add(&key, g->N);
    avsr_dnnl_key_add(&key, g->K);
    avsr_dnnl_key_add(&key, (g->ta ? 1 : 0) | (g->a_bcast ? 2 : 0) | (g->tb ? 4 : 0) |
                                (g->b_bcast ? 8 : 0) | (g->bias ? 16 : 0) |
                                (g->accumulate ? 32 : 0));
    avsr_dnnl_key_add(&key, (int64_t)g->act);
    avsr_dnnl_key_add(&key, (int64_t)alpha_bits);
    avsr_dnnl_prim *p = avsr_dnnl_find(ctx, key.v, avsr_dnnl_key_bytes(&key));
    if (!p && !(p = make_prim(ctx, g, &key)))
        return -1;
    void *h[4] = {(void *)g->a, (void *)g->b, g->c, (void *)g->bias};
    avsr_ctx_add_flops(ctx, 2.0 * (double)g->nb * (double)g->M * (double)g->N * (double)g->K);
    return avsr_dnnl_exec(ctx, p, h);
}
