/* rng: Philox streams (see rng.h). */
#include "rng.h"

#include <math.h>

void avsr_rng_init(avsr_rng *r, uint64_t seed, uint64_t epoch, uint64_t sample_id,
                   uint32_t purpose)
{
    uint64_t k = avsr_rng_mix64(seed ^ avsr_rng_mix64((uint64_t)purpose + 0x5851f42d4c957f2dull));
    uint64_t s = avsr_rng_mix64(sample_id ^ avsr_rng_mix64(epoch + 0x14057b7ef767814full));
    r->key[0] = (uint32_t)k;
    r->key[1] = (uint32_t)(k >> 32);
    r->ctr[0] = 0;
    r->ctr[1] = 0;
    r->ctr[2] = (uint32_t)s;
    r->ctr[3] = (uint32_t)(s >> 32);
    r->pos = 4;
}

void avsr_rng_seek(avsr_rng *r, uint64_t block)
{
    r->ctr[0] = (uint32_t)block;
    r->ctr[1] = (uint32_t)(block >> 32);
    r->pos = 4;
}

uint32_t avsr_rng_u32(avsr_rng *r)
{
    if (r->pos >= 4) {
        avsr_philox4x32(r->ctr, r->key, r->buf);
        if (++r->ctr[0] == 0)
            r->ctr[1]++;
        r->pos = 0;
    }
    return r->buf[r->pos++];
}

float avsr_rng_uniform(avsr_rng *r) { return avsr_rng_to_unit(avsr_rng_u32(r)); }

uint32_t avsr_rng_below(avsr_rng *r, uint32_t n)
{
    uint32_t limit = (uint32_t)(-n) % n; /* 2^32 mod n */
    for (;;) {
        uint32_t x = avsr_rng_u32(r);
        uint64_t m = (uint64_t)x * n;
        if ((uint32_t)m >= limit)
            return (uint32_t)(m >> 32);
    }
}

float avsr_rng_normal(avsr_rng *r)
{
    float u1 = ((float)(avsr_rng_u32(r) >> 8) + 0.5f) * (1.0f / 16777216.0f);
    float u2 = avsr_rng_uniform(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2);
}
