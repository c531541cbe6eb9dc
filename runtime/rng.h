/* rng: counter-based random numbers (Philox4x32-10).
 *
 * The whole state of a stream is a few integers (key, counter, position), so
 * it is checkpointed exactly and gives the same numbers on CPU and GPU (the
 * block function is AVSR_HD). Streams are keyed by (seed, epoch, sample id,
 * purpose), never by rank: the noise, crop, mask and dropout drawn for a
 * sample are the same whatever the world size and batch composition. */
#ifndef AVSR_RNG_H
#define AVSR_RNG_H

#include <stdint.h>

#include "mathfn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Philox4x32 with 10 rounds (Salmon et al., SC'11). */
AVSR_HD void avsr_philox4x32(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4])
{
    uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
    uint32_t k0 = key_in[0], k1 = key_in[1];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* 64-bit mixer used to fold keys together. */
AVSR_HD uint64_t avsr_rng_mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uint32 -> float in [0, 1) with 24 random bits */
AVSR_HD float avsr_rng_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

typedef struct avsr_rng {
    uint32_t key[2];
    uint32_t ctr[4]; /* ctr[0..1]: block index; ctr[2..3]: stream id */
    uint32_t buf[4];
    uint32_t pos;    /* next unused word of buf; 4 = empty */
} avsr_rng;

/* Stream for (seed, epoch, sample id, purpose). Purposes are small integers
 * naming what the numbers are for (AVSR_RNG_* below, or a layer index). */
void avsr_rng_init(avsr_rng *r, uint64_t seed, uint64_t epoch, uint64_t sample_id,
                   uint32_t purpose);
/* Jump to block `block` of the stream (4 words per block). */
void avsr_rng_seek(avsr_rng *r, uint64_t block);
uint32_t avsr_rng_u32(avsr_rng *r);
/* uniform in [0, 1) */
float avsr_rng_uniform(avsr_rng *r);
/* integer in [0, n) (n > 0), without modulo bias */
uint32_t avsr_rng_below(avsr_rng *r, uint32_t n);
/* standard normal (Box-Muller) */
float avsr_rng_normal(avsr_rng *r);

/* Purposes used by the framework. Layer-specific streams (dropout) use
 * AVSR_RNG_LAYER_BASE + layer index. */
enum avsr_rng_purpose {
    AVSR_RNG_INIT = 1,        /* weight initialisation */
    AVSR_RNG_SHUFFLE = 2,     /* epoch plans */
    AVSR_RNG_NOISE = 3,       /* noise choice, segment, SNR */
    AVSR_RNG_CROP = 4,
    AVSR_RNG_FLIP = 5,
    AVSR_RNG_TIME_MASK = 6,
    AVSR_RNG_MODALITY = 7,    /* modality dropout */
    AVSR_RNG_SPEC_AUG = 8,
    AVSR_RNG_LAYER_BASE = 1024
};

#ifdef __cplusplus
}
#endif

#endif
