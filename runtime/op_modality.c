/* op_modality: modality dropout draw (see op_modality.h). */
#include "op_modality.h"

#include "ctx_int.h"
#include "rng.h"

int avsr_modality_dropout_draw(avsr_ctx *ctx, int B, float p_m, float p_a, uint8_t *drop)
{
    if (avsr_ctx_failed(ctx))
        return -1;
    if (B < 0 || !drop || !(p_m >= 0.0f && p_m <= 1.0f) || !(p_a >= 0.0f && p_a <= 1.0f)) {
        avsr_ctx_fail(ctx, "modality_dropout: B %d, p_m %g, p_a %g: expected B >= 0, probabilities in [0, 1]",
                      B, (double)p_m, (double)p_a);
        return -1;
    }
    for (int b = 0; b < B; b++) {
        avsr_rng r;
        avsr_rng_init(&r, ctx->seed, ctx->epoch, avsr_ctx_sample_id(ctx, b), AVSR_RNG_MODALITY);
        float u1 = avsr_rng_uniform(&r), u2 = avsr_rng_uniform(&r);
        drop[b] = u1 < p_m ? (u2 < p_a ? AVSR_MODALITY_DROP_AUDIO : AVSR_MODALITY_DROP_VIDEO)
                           : AVSR_MODALITY_KEEP;
    }
    return 0;
}
