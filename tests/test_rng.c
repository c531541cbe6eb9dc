/* test_rng: Philox4x32-10 known answers, stream keying, seeking and the
 * distributions drawn from a stream (runtime/rng.h). All draws use fixed
 * keys, so every statistic below is deterministic; the bounds are several
 * standard errors wide and were not tuned to the observed values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "tap.h"

static void test_kat(void)
{
    /* Random123 kat_vectors, philox4x32 with 10 rounds */
    static const struct {
        uint32_t ctr[4], key[2], out[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t i = 0; i < sizeof kat / sizeof *kat; i++) {
        uint32_t out[4];
        avsr_philox4x32(kat[i].ctr, kat[i].key, out);
        tap_ok(memcmp(out, kat[i].out, sizeof out) == 0,
               "philox4x32-10 known answer %zu: %08x %08x %08x %08x", i, out[0], out[1], out[2],
               out[3]);
    }
    /* the inputs are not modified */
    uint32_t ctr[4] = {1, 2, 3, 4}, key[2] = {5, 6}, out[4];
    avsr_philox4x32(ctr, key, out);
    tap_ok(ctr[0] == 1 && ctr[3] == 4 && key[0] == 5 && key[1] == 6,
           "philox4x32 leaves counter and key alone");
}

/* First n words of a stream. */
static void draw(uint32_t *w, int n, uint64_t seed, uint64_t epoch, uint64_t sample,
                 uint32_t purpose)
{
    avsr_rng r;
    avsr_rng_init(&r, seed, epoch, sample, purpose);
    for (int i = 0; i < n; i++)
        w[i] = avsr_rng_u32(&r);
}

/* Pearson correlation of the unit floats of two word sequences. */
static double corr(const uint32_t *a, const uint32_t *b, int n)
{
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
    for (int i = 0; i < n; i++) {
        double x = avsr_rng_to_unit(a[i]), y = avsr_rng_to_unit(b[i]);
        sa += x;
        sb += y;
        saa += x * x;
        sbb += y * y;
        sab += x * y;
    }
    double cov = sab / n - (sa / n) * (sb / n);
    double va = saa / n - (sa / n) * (sa / n), vb = sbb / n - (sb / n) * (sb / n);
    return cov / sqrt(va * vb);
}

static int count_equal(const uint32_t *a, const uint32_t *b, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += a[i] == b[i];
    return k;
}

static void test_streams(void)
{
    enum { N = 4096 };
    static uint32_t a[N], b[N];
    draw(a, N, 42, 3, 1000, AVSR_RNG_NOISE);
    draw(b, N, 42, 3, 1000, AVSR_RNG_NOISE);
    tap_ok(memcmp(a, b, sizeof a) == 0, "same (seed, epoch, sample, purpose): same numbers");

    /* the stream is Philox over (block, stream id) with the stream's key */
    avsr_rng r;
    avsr_rng_init(&r, 42, 3, 1000, AVSR_RNG_NOISE);
    bool blocks = true;
    for (uint64_t blk = 0; blk < 8; blk++) {
        uint32_t ctr[4] = {(uint32_t)blk, 0, r.ctr[2], r.ctr[3]}, out[4];
        avsr_philox4x32(ctr, r.key, out);
        blocks &= memcmp(out, a + 4 * blk, sizeof out) == 0;
    }
    tap_ok(blocks, "word 4k+j of a stream is word j of philox(block k, stream id; key)");

    /* changing any one key component gives an unrelated stream */
    static const struct {
        uint64_t seed, epoch, sample;
        uint32_t purpose;
        const char *what;
    } other[] = {
        {43, 3, 1000, AVSR_RNG_NOISE, "seed"},
        {42, 4, 1000, AVSR_RNG_NOISE, "epoch"},
        {42, 3, 1001, AVSR_RNG_NOISE, "sample id"},
        {42, 3, 1000, AVSR_RNG_CROP, "purpose"},
        {42, 1000, 3, AVSR_RNG_NOISE, "epoch and sample id swapped"},
        {0, 0, 0, 0, "all zero"},
    };
    for (size_t i = 0; i < sizeof other / sizeof *other; i++) {
        draw(b, N, other[i].seed, other[i].epoch, other[i].sample, other[i].purpose);
        int eq = count_equal(a, b, N);
        double c = corr(a, b, N);
        /* equal words: expected N/2^32 ~ 0; correlation: sd 1/sqrt(N) = 0.016 */
        tap_ok(eq <= 1 && fabs(c) < 5.0 / sqrt((double)N),
               "different %s: independent stream (%d equal words, correlation %.4f)",
               other[i].what, eq, c);
    }
    /* neighbouring samples (the common case) never share a stream or lag */
    bool lag_free = true;
    for (uint64_t s = 0; s < 64; s++) {
        draw(a, 64, 7, 0, s, AVSR_RNG_SPEC_AUG);
        draw(b, 64, 7, 0, s + 1, AVSR_RNG_SPEC_AUG);
        for (int lag = 0; lag < 8; lag++)
            lag_free &= count_equal(a + lag, b, 56) == 0 && count_equal(a, b + lag, 56) == 0;
    }
    tap_ok(lag_free, "samples s and s+1: no shared or shifted words (64 pairs, lags 0..7)");
}

static void test_seek(void)
{
    enum { N = 64 };
    uint32_t a[N];
    draw(a, N, 9, 1, 2, AVSR_RNG_CROP);
    avsr_rng r;
    avsr_rng_init(&r, 9, 1, 2, AVSR_RNG_CROP);
    bool ok = true;
    for (uint64_t blk = 0; blk < N / 4; blk += 3) {
        avsr_rng_seek(&r, blk);
        for (int j = 0; j < 4; j++)
            ok &= avsr_rng_u32(&r) == a[4 * blk + (uint64_t)j];
    }
    tap_ok(ok, "seek(k) continues at word 4k");
    /* seeking in the middle of a block discards the rest of it */
    avsr_rng_init(&r, 9, 1, 2, AVSR_RNG_CROP);
    avsr_rng_u32(&r);
    avsr_rng_seek(&r, 5);
    tap_ok(avsr_rng_u32(&r) == a[20], "seek from the middle of a block");
    /* the 64-bit block counter carries into the high word */
    avsr_rng_seek(&r, 0xffffffffull);
    uint32_t w[8];
    for (int j = 0; j < 8; j++)
        w[j] = avsr_rng_u32(&r);
    uint32_t c0[4] = {0xffffffffu, 0, r.ctr[2], r.ctr[3]}, c1[4] = {0, 1, r.ctr[2], r.ctr[3]};
    uint32_t o0[4], o1[4];
    avsr_philox4x32(c0, r.key, o0);
    avsr_philox4x32(c1, r.key, o1);
    tap_ok(memcmp(w, o0, 16) == 0 && memcmp(w + 4, o1, 16) == 0,
           "block counter carries from 2^32-1 to 2^32");
    /* the state is plain integers: copying it resumes the stream exactly */
    avsr_rng_init(&r, 5, 5, 5, 5);
    for (int j = 0; j < 7; j++)
        avsr_rng_u32(&r);
    avsr_rng copy = r;
    ok = true;
    for (int j = 0; j < 20; j++)
        ok &= avsr_rng_u32(&r) == avsr_rng_u32(&copy);
    tap_ok(ok, "a copied state (checkpoint) continues identically mid-block");
}

static void test_uniform(void)
{
    enum { N = 200000 };
    avsr_rng r;
    avsr_rng_init(&r, 1, 0, 0, AVSR_RNG_INIT);
    double s = 0, ss = 0;
    float lo = 1, hi = 0;
    for (int i = 0; i < N; i++) {
        float u = avsr_rng_uniform(&r);
        s += u;
        ss += (double)u * u;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    double mean = s / N, var = ss / N - mean * mean;
    /* sd of the mean sqrt(1/12/N) = 6.5e-4; of the variance
     * sqrt((1/80 - 1/144)/N) = 1.7e-4 */
    tap_ok(fabs(mean - 0.5) < 5 * 6.5e-4, "uniform: mean %.5f (0.5)", mean);
    tap_ok(fabs(var - 1.0 / 12) < 5 * 1.7e-4, "uniform: variance %.5f (1/12 = 0.08333)", var);
    tap_ok(lo >= 0.0f && hi < 1.0f && lo < 1e-4f && hi > 1 - 1e-4f,
           "uniform: range [%g, %g] inside [0, 1)", lo, hi);
    tap_ok(avsr_rng_to_unit(0xffffffffu) < 1.0f && avsr_rng_to_unit(0) == 0.0f,
           "to_unit maps the extremes into [0, 1)");
}

static void test_normal(void)
{
    enum { N = 200000 };
    avsr_rng r;
    avsr_rng_init(&r, 2, 0, 0, AVSR_RNG_INIT);
    double s = 0, ss = 0, s4 = 0;
    int within1 = 0, finite = 0;
    for (int i = 0; i < N; i++) {
        double x = avsr_rng_normal(&r);
        finite += isfinite(x) != 0;
        s += x;
        ss += x * x;
        s4 += x * x * x * x;
        within1 += fabs(x) < 1.0;
    }
    double mean = s / N, sd = sqrt(ss / N - mean * mean), kurt = s4 / N;
    double p1 = (double)within1 / N;
    tap_ok(finite == N, "normal: all %d draws finite", N);
    /* sd of the mean 1/sqrt(N) = 2.2e-3; of the sd 1/sqrt(2N) = 1.6e-3;
     * of P(|x|<1) sqrt(p(1-p)/N) = 1.0e-3; of E[x^4] sqrt(96/N) = 0.022 */
    tap_ok(fabs(mean) < 5 * 2.2e-3, "normal: mean %.5f (0)", mean);
    tap_ok(fabs(sd - 1) < 5 * 1.6e-3, "normal: std %.5f (1)", sd);
    tap_ok(fabs(p1 - 0.682689) < 5 * 1.0e-3, "normal: P(|x| < 1) = %.5f (0.68269)", p1);
    tap_ok(fabs(kurt - 3) < 5 * 0.022, "normal: E[x^4] = %.4f (3)", kurt);
}

/* chi-square statistic of counts against a uniform expectation */
static double chi2(const int *c, int k, int n)
{
    double e = (double)n / k, x = 0;
    for (int i = 0; i < k; i++)
        x += (c[i] - e) * (c[i] - e) / e;
    return x;
}

static void test_below(void)
{
    /* 0.1% critical values of chi-square with k-1 degrees of freedom */
    static const struct {
        uint32_t n;
        double crit;
    } cases[] = {{2, 10.83}, {3, 13.82}, {5, 18.47}, {7, 22.46}, {10, 27.88}, {13, 32.91}};
    avsr_rng r;
    avsr_rng_init(&r, 3, 0, 0, AVSR_RNG_SHUFFLE);
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        uint32_t n = cases[ci].n;
        int cnt[16] = {0}, N = 20000 * (int)n;
        bool inrange = true;
        for (int i = 0; i < N; i++) {
            uint32_t x = avsr_rng_below(&r, n);
            inrange &= x < n;
            if (x < n)
                cnt[x]++;
        }
        double x2 = chi2(cnt, (int)n, N);
        tap_ok(inrange && x2 < cases[ci].crit, "below(%u): chi-square %.2f < %.2f (%u dof)", n,
               x2, cases[ci].crit, n - 1);
    }
    bool zero = true;
    for (int i = 0; i < 100; i++)
        zero &= avsr_rng_below(&r, 1) == 0;
    tap_ok(zero, "below(1) is always 0");
    /* n = 3*2^30: plain `u32 % n` would put half the draws below 2^30
     * instead of a third; the rejection method must not */
    uint32_t big = 3u << 30;
    int lowc = 0, N = 300000;
    bool inrange = true;
    for (int i = 0; i < N; i++) {
        uint32_t x = avsr_rng_below(&r, big);
        inrange &= x < big;
        lowc += x < (1u << 30);
    }
    double frac = (double)lowc / N;
    /* sd sqrt(2/9/N) = 8.6e-4 */
    tap_ok(inrange && fabs(frac - 1.0 / 3) < 5 * 8.6e-4,
           "below(3*2^30): fraction below 2^30 is %.4f (1/3; modulo bias would give 1/2)",
           frac);
    uint32_t top = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = avsr_rng_below(&r, 0xffffffffu);
        top = x > top ? x : top;
    }
    tap_ok(top < 0xffffffffu && top > 0xf0000000u, "below(2^32-1) stays below n (max %u)", top);
}

int main(void)
{
    test_kat();
    test_streams();
    test_seek();
    test_uniform();
    test_normal();
    test_below();
    return tap_done();
}
