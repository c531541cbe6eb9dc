/* op_modality: the per-sample draw of modality dropout (AV-HuBERT's rule)
 * for audio-visual fusion. It lives in the runtime because it reads the
 * context's random-stream keys (seed, epoch, sample ids of the batch).
 *
 *   avsr_modality_dropout_draw(ctx, B, p_m, p_a, drop)
 *     For row b of the batch: from the Philox stream (seed, epoch, sample id
 *     of row b, AVSR_RNG_MODALITY) draw u1, u2 (uniform [0, 1)). If
 *     u1 < p_m one modality is dropped: audio when u2 < p_a, else video.
 *     drop[b] = AVSR_MODALITY_KEEP, AVSR_MODALITY_DROP_AUDIO or
 *     AVSR_MODALITY_DROP_VIDEO. With p_m = 0.5, p_a = 0.5: 25 % of samples
 *     have no audio, 25 % no video. The draw depends only on the sample and
 *     the epoch, never on the rank or the row's position in the batch.
 *     Returns 0, or -1 with the context's error set (bad probabilities).
 *   AV-HuBERT draws once per batch (hubert.py); we draw per sample. */
#ifndef AVSR_OP_MODALITY_H
#define AVSR_OP_MODALITY_H

#include <stdint.h>

#include "ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { AVSR_MODALITY_KEEP = 0, AVSR_MODALITY_DROP_AUDIO = 1, AVSR_MODALITY_DROP_VIDEO = 2 };

int avsr_modality_dropout_draw(avsr_ctx *ctx, int B, float p_m, float p_a, uint8_t *drop);

#ifdef __cplusplus
}
#endif

#endif
