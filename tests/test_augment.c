/* test_augment: per-sample augmentation (datasets/augment.h). */
#include <fftw3.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/augment.h"
#include "tap.h"

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static float frand(uint32_t *s) { return (float)lcg(s) * (1.0f / 16777216.0f) * 2.0f - 1.0f; }

static double snr_measured(const float *x, const float *y, int64_t n)
{
    double px = 0, pd = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)y[i] - (double)x[i];
        px += (double)x[i] * x[i];
        pd += d * d;
    }
    return 10.0 * log10(px / pd);
}

static void test_mix(void)
{
    uint32_t s = 7;
    int ncase = 300, tiled = 0;
    double worst = 0;
    float *x = malloc(6000 * sizeof *x), *nz = malloc(9000 * sizeof *nz),
          *y = malloc(6000 * sizeof *y), *y2 = malloc(6000 * sizeof *y2);
    bool inplace_ok = true;
    for (int c = 0; c < ncase; c++) {
        int64_t n = 100 + lcg(&s) % 5000, nn = 10 + lcg(&s) % 8000;
        int64_t off = lcg(&s) % nn;
        double snr = -10.0 + 40.0 * (lcg(&s) / 16777216.0);
        float xs = 0.01f + 3.0f * (lcg(&s) / 16777216.0f);
        for (int64_t i = 0; i < n; i++)
            x[i] = xs * frand(&s);
        for (int64_t i = 0; i < nn; i++)
            nz[i] = frand(&s) + 0.3f; /* a DC offset: P is mean square, not variance */
        tiled += off + n > nn;
        avsr_error err = {0};
        if (avsr_mix_snr(y, x, n, nz, nn, off, snr, NULL, &err))
            tap_bail("mix failed: %s", err.msg);
        double d = fabs(snr_measured(x, y, n) - snr);
        worst = d > worst ? d : worst;
        memcpy(y2, x, (size_t)n * sizeof *y2);
        avsr_mix_snr(y2, y2, n, nz, nn, off, snr, NULL, &err);
        inplace_ok &= !memcmp(y, y2, (size_t)n * sizeof *y);
    }
    tap_ok(worst < 0.1 && tiled > 50,
           "mix_snr: %d random cases (%d with tiled noise), SNR -10..30 dB: worst error %.4f dB",
           ncase, tiled, worst);
    tap_ok(inplace_ok, "mix_snr: in place gives the same result");

    /* explicit cases */
    avsr_error err = {0};
    double g = -1;
    for (int i = 0; i < 1000; i++) {
        x[i] = frand(&s);
        nz[i] = frand(&s);
    }
    int rc = avsr_mix_snr(y, x, 1000, nz, 1000, 0, INFINITY, &g, &err);
    tap_ok(rc == 0 && g == 0.0 && !memcmp(x, y, 1000 * sizeof *x), "mix_snr: +inf returns x");
    float zeros[1000] = {0};
    rc = avsr_mix_snr(y, x, 1000, zeros, 1000, 0, 0.0, &g, &err);
    tap_ok(rc == 0 && g == 0.0 && !memcmp(x, y, 1000 * sizeof *x),
           "mix_snr: silent noise -> y = x, gain 0, no NaN");
    rc = avsr_mix_snr(y, zeros, 1000, nz, 1000, 0, 5.0, &g, &err);
    bool allz = true;
    for (int i = 0; i < 1000; i++)
        allz &= y[i] == 0.0f;
    tap_ok(rc == 0 && g == 0.0 && allz, "mix_snr: silent speech -> zeros, no NaN");
    /* the tiled noise wraps exactly: noise of length 3 at offset 2 */
    float n3[3] = {1, 2, 3}, x6[6] = {1, 1, 1, 1, 1, 1}, y6[6];
    avsr_mix_snr(y6, x6, 6, n3, 3, 2, 0.0, &g, &err);
    /* Px = 1, Pn = (9+1+4+9+1+4)/6 = 14/3, a = sqrt(3/14) */
    double a = sqrt(3.0 / 14.0);
    tap_ok(fabs(g - a) < 1e-12 && fabs(y6[0] - (1 + 3 * a)) < 1e-6 &&
               fabs(y6[1] - (1 + 1 * a)) < 1e-6 && fabs(y6[5] - (1 + 2 * a)) < 1e-6,
           "mix_snr: tiling order (offset 2 of [1 2 3] -> 3 1 2 3 1 2), gain %.6f", g);
    rc = avsr_mix_snr(y, x, 10, nz, 10, 0, NAN, NULL, &err);
    tap_ok(rc == -1 && strstr(err.msg, "avsr_mix_snr: snr_db must be finite or +inf, got nan"),
           "mix_snr: NaN SNR rejected: %s", err.msg);
    avsr_error_clear(&err);
    rc = avsr_mix_snr(y, x, 10, nz, 10, 0, -INFINITY, NULL, &err);
    tap_ok(rc == -1 && strstr(err.msg, "got -inf"), "mix_snr: -inf rejected");
    avsr_error_clear(&err);
    rc = avsr_mix_snr(y, x, 10, nz, 10, 10, 0, NULL, &err);
    tap_ok(rc == -1 && strstr(err.msg, "noise offset 10 out of range [0, 10)"),
           "mix_snr: offset out of range: %s", err.msg);
    avsr_error_clear(&err);
    rc = avsr_mix_snr(y, x, 10, nz, 0, 0, 0, NULL, &err);
    tap_ok(rc == -1 && strstr(err.msg, "empty noise"), "mix_snr: empty noise rejected");
    free(x);
    free(nz);
    free(y);
    free(y2);
}

static void test_noise_draw(void)
{
    avsr_noise_config cfg;
    avsr_noise_config_default(&cfg);
    int64_t lens[3] = {50000, 20000, 3000};
    int hist[7] = {0}, files[3] = {0}, nd = 7000;
    bool range_ok = true, det = true;
    for (int i = 0; i < nd; i++) {
        avsr_aug_key k = {1, 2, (uint64_t)i};
        avsr_noise_pick p, q;
        avsr_error err = {0};
        if (avsr_noise_draw(&cfg, &k, 16000, 3, lens, &p, &err))
            tap_bail("noise draw: %s", err.msg);
        avsr_noise_draw(&cfg, &k, 16000, 3, lens, &q, &err);
        det &= !memcmp(&p, &q, sizeof p);
        files[p.file]++;
        for (int j = 0; j < 7; j++)
            if (p.snr_db == cfg.snr_list[j])
                hist[j]++;
        int64_t hi = lens[p.file] >= 16000 ? lens[p.file] - 16000 : lens[p.file] - 1;
        range_ok &= p.apply && p.offset >= 0 && p.offset <= hi;
    }
    int mn = nd, mx = 0;
    for (int j = 0; j < 7; j++) {
        mn = hist[j] < mn ? hist[j] : mn;
        mx = hist[j] > mx ? hist[j] : mx;
    }
    tap_ok(det, "noise_draw: same key, same draw");
    tap_ok(mn > 850 && mx < 1150, "noise_draw: SNR list uniform (counts %d..%d of %d, expect 1000)",
           mn, mx, nd);
    tap_ok(files[0] > 2100 && files[1] > 2100 && files[2] > 2100,
           "noise_draw: files uniform (%d %d %d)", files[0], files[1], files[2]);
    tap_ok(range_ok, "noise_draw: offsets within [0, len - n] (or [0, len) for short files)");
    cfg.n_snr = 0;
    cfg.snr_lo = -5;
    cfg.snr_hi = 15;
    cfg.prob = 0.25;
    double sum = 0;
    int applied = 0;
    bool in = true;
    for (int i = 0; i < 4000; i++) {
        avsr_aug_key k = {1, 2, (uint64_t)i};
        avsr_noise_pick p;
        avsr_noise_draw(&cfg, &k, 16000, 3, lens, &p, NULL);
        sum += p.snr_db;
        in &= p.snr_db >= -5 && p.snr_db < 15;
        applied += p.apply;
    }
    tap_ok(in && fabs(sum / 4000 - 5.0) < 0.35,
           "noise_draw: uniform SNR range [-5, 15): mean %.3f (expect 5, 4 sigma 0.37)", sum / 4000);
    tap_ok(abs(applied - 1000) < 110, "noise_draw: prob 0.25 applied %d of 4000", applied);
    avsr_error err = {0};
    avsr_noise_pick p;
    cfg.snr_lo = 10;
    cfg.snr_hi = 5;
    avsr_aug_key k0 = {0, 0, 0};
    tap_ok(avsr_noise_draw(&cfg, &k0, 10, 3, lens, &p, &err) == -1 &&
               strstr(err.msg, "SNR range [10, 5) must be finite with lo <= hi"),
           "noise_draw: bad range: %s", err.msg);
}

/* Welch PSD (Hann, 4096, hop 2048) -> mean density per octave band from
 * 125 Hz (fs 16 kHz) -> least-squares slope in dB per octave over 5 bands */
static double octave_slope(const float *x, int64_t n)
{
    const int L = 4096, nb = 5;
    float *in = fftwf_malloc(sizeof(float) * L);
    fftwf_complex *out = fftwf_malloc(sizeof(fftwf_complex) * (L / 2 + 1));
    fftwf_plan plan = fftwf_plan_dft_r2c_1d(L, in, out, FFTW_ESTIMATE);
    double *psd = calloc(L / 2 + 1, sizeof *psd);
    for (int64_t st = 0; st + L <= n; st += L / 2) {
        for (int i = 0; i < L; i++)
            in[i] = x[st + i] * (float)(0.5 - 0.5 * cos(2 * M_PI * i / L));
        fftwf_execute(plan);
        for (int k = 0; k <= L / 2; k++)
            psd[k] += (double)out[k][0] * out[k][0] + (double)out[k][1] * out[k][1];
    }
    double db[5], sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int b = 0; b < nb; b++) {
        double f0 = 125.0 * (1 << b), f1 = 2 * f0, s = 0;
        int cnt = 0;
        for (int k = 0; k <= L / 2; k++) {
            double f = k * 16000.0 / L;
            if (f >= f0 && f < f1) {
                s += psd[k];
                cnt++;
            }
        }
        db[b] = 10 * log10(s / cnt);
        sx += b;
        sy += db[b];
        sxx += b * b;
        sxy += b * db[b];
    }
    fftwf_destroy_plan(plan);
    fftwf_free(in);
    fftwf_free(out);
    free(psd);
    return (nb * sxy - sx * sy) / (nb * sxx - sx * sx);
}

static void test_generated(void)
{
    int64_t n = 1 << 17;
    float *w = malloc((size_t)n * sizeof *w), *p = malloc((size_t)n * sizeof *p);
    avsr_aug_key k = {3, 0, 11};
    avsr_noise_white(w, n, &k);
    avsr_noise_pink(p, n, &k);
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m += w[i];
    m /= n;
    double pw = avsr_power(w, n), pp = avsr_power(p, n);
    tap_ok(fabs(m) < 0.015 && fabs(pw - 1) < 0.02, "white: mean %.4f, power %.4f", m, pw);
    tap_ok(fabs(pp - 1) < 1e-4, "pink: unit power (%.6f)", pp);
    double sw = octave_slope(w, n), sp = octave_slope(p, n);
    tap_ok(fabs(sw) < 0.3, "white: spectral slope %.3f dB/octave over 125-4000 Hz (expect 0)", sw);
    tap_ok(fabs(sp + 3.01) < 0.2,
           "pink: spectral slope %.3f dB/octave over 125-4000 Hz (expect -3.01)", sp);
    float *w2 = malloc(1000 * sizeof *w2);
    avsr_noise_white(w2, 1000, &k);
    tap_ok(!memcmp(w, w2, 1000 * sizeof *w2), "white: same key, same noise (prefix)");
    free(w);
    free(p);
    free(w2);
}

static void test_babble(void)
{
    float u0[700], u1[300], u2[50];
    uint32_t s = 99;
    for (int i = 0; i < 700; i++)
        u0[i] = 5 * frand(&s);
    for (int i = 0; i < 300; i++)
        u1[i] = 0.1f * frand(&s);
    for (int i = 0; i < 50; i++)
        u2[i] = 0;
    const float *utts[3] = {u0, u1, u2};
    int64_t lens[3] = {700, 300, 50};
    float out[1000], out2[1000];
    avsr_aug_key k = {5, 1, 3};
    avsr_error err = {0};
    int rc = avsr_noise_babble(out, 1000, 3, utts, lens, &k, &err);
    avsr_noise_babble(out2, 1000, 3, utts, lens, &k, &err);
    double p = avsr_power(out, 1000);
    bool finite = true;
    for (int i = 0; i < 1000; i++)
        finite &= isfinite(out[i]);
    tap_ok(rc == 0 && fabs(p - 1) < 1e-4 && finite && !memcmp(out, out2, sizeof out),
           "babble: unit power (%.6f), finite with a silent utterance, deterministic", p);
    /* k = 1: the output is the utterance rotated by some offset and scaled */
    float ramp[100];
    for (int i = 0; i < 100; i++)
        ramp[i] = (float)(i + 1);
    const float *u[1] = {ramp};
    int64_t l1[1] = {100};
    rc = avsr_noise_babble(out, 250, 1, u, l1, &k, &err);
    int start = -1;
    for (int st = 0; st < 100 && start < 0; st++) {
        double sc = out[0] / ramp[st];
        bool rot = true;
        for (int i = 0; rot && i < 250; i++)
            rot = fabs(out[i] - sc * ramp[(st + i) % 100]) < 1e-4 * fabs(out[i]) + 1e-5;
        if (rot)
            start = st;
    }
    bool rot = start >= 0;
    tap_ok(rc == 0 && rot, "babble k=1: tiled rotation of the utterance from offset %d", start);
    rc = avsr_noise_babble(out, 10, 0, u, l1, &k, &err);
    tap_ok(rc == -1 && strstr(err.msg, "need k >= 1"), "babble: k = 0 rejected");
}

static void test_video(void)
{
    enum { T = 7, H = 96, W = 96, C = 88 };
    uint8_t *v = malloc(T * H * W), *c8 = malloc(T * C * C);
    float *a = malloc(T * C * C * sizeof *a), *b = malloc(T * C * C * sizeof *b);
    uint32_t s = 5;
    for (int i = 0; i < T * H * W; i++)
        v[i] = (uint8_t)(lcg(&s) & 255);
    int y0, x0;
    avsr_aug_key k = {1, 0, 0};
    avsr_crop_draw(&k, H, W, C, C, false, &y0, &x0, NULL);
    tap_ok(y0 == 4 && x0 == 4, "center crop 88 of 96 at (4, 4)");
    avsr_crop_draw(&k, 97, 98, C, C, false, &y0, &x0, NULL);
    tap_ok(y0 == 4 && x0 == 5, "center crop of 97x98 at (4, 5) (round half to even, torchvision)");
    int hist[9] = {0};
    bool det = true;
    for (int i = 0; i < 2700; i++) {
        avsr_aug_key ki = {1, 0, (uint64_t)i};
        int y1, x1;
        avsr_crop_draw(&ki, H, W, C, C, true, &y0, &x0, NULL);
        avsr_crop_draw(&ki, H, W, C, C, true, &y1, &x1, NULL);
        det &= y0 == y1 && x0 == x1;
        hist[y0]++;
        hist[x0]++;
    }
    int mn = 1 << 30, mx = 0;
    for (int i = 0; i < 9; i++) {
        mn = hist[i] < mn ? hist[i] : mn;
        mx = hist[i] > mx ? hist[i] : mx;
    }
    tap_ok(det && mn > 480 && mx < 720,
           "random crop: offsets 0..8 uniform (counts %d..%d, expect 600), deterministic", mn, mx);
    avsr_error err = {0};
    tap_ok(avsr_crop_draw(&k, 80, 96, C, C, true, &y0, &x0, &err) == -1 &&
               strstr(err.msg, "crop 88x88 does not fit in 80x96"),
           "crop larger than the frame rejected");
    avsr_error_clear(&err);

    /* fused crop + flip + normalise equals the separate steps */
    avsr_video_crop_u8(c8, v, T, H, W, C, C, 3, 6, NULL);
    avsr_video_normalize(b, c8, T * C * C, 0.421f, 0.165f);
    avsr_video_flip(b, T, C, C);
    avsr_video_crop_normalize(a, v, T, H, W, C, C, 3, 6, true, 0.421f, 0.165f, NULL);
    tap_ok(!memcmp(a, b, T * C * C * sizeof *a), "crop+flip+normalise fused = separate steps");
    float want = ((float)v[(2 * H + 3 + 10) * W + 6 + (C - 1 - 20)] / 255.0f - 0.421f) / 0.165f;
    tap_ok(fabsf(a[(2 * C + 10) * C + 20] - want) < 1e-6f,
           "normalise: (x/255 - 0.421)/0.165 at a flipped pixel");
    tap_ok(avsr_video_crop_normalize(a, v, T, H, W, C, C, 9, 0, false, 0.4f, 0.2f, &err) == -1 &&
               strstr(err.msg, "crop 88x88 at (9, 0) does not fit"),
           "crop out of frame rejected: %s", err.msg);
    avsr_error_clear(&err);

    int flips = 0;
    for (int i = 0; i < 4000; i++) {
        avsr_aug_key ki = {1, 0, (uint64_t)i};
        flips += avsr_flip_draw(&ki, 0.5);
    }
    avsr_aug_key k1 = {1, 0, 1};
    tap_ok(abs(flips - 2000) < 130 && !avsr_flip_draw(&k1, 0.0) && avsr_flip_draw(&k1, 1.0),
           "flip: p 0.5 -> %d of 4000; p 0 never, p 1 always", flips);
    free(v);
    free(c8);
    free(a);
    free(b);
}

static int64_t nmask_ref(int64_t L, int64_t stride)
{
    return (int64_t)floor(((double)L + (double)stride - 0.1) / (double)stride);
}

static void test_time_mask(void)
{
    tap_ok(nmask_ref(0, 25) == 0 && nmask_ref(1, 25) == 1 && nmask_ref(25, 25) == 1 &&
               nmask_ref(26, 25) == 2 && nmask_ref(16000, 16000) == 1 &&
               nmask_ref(16001, 16000) == 2,
           "n_mask = int((L + stride - 0.1) // stride): 0 1 1 2 1 2");
    /* statistics on video-like [75, 4] (n_mask 3, window 10) */
    enum { L = 75, IN = 4, NK = 3000 };
    float x[L * IN];
    double applied = 0, masked = 0;
    bool consistent = true, det = true;
    for (int i = 0; i < NK; i++) {
        for (int j = 0; j < L * IN; j++)
            x[j] = 1.0f + (float)j;
        avsr_aug_key k = {2, 1, (uint64_t)i};
        int64_t nm, mk, nm2, mk2;
        avsr_time_mask(x, L, IN, 10, 25, -7.0f, &k, 0, &nm, &mk, NULL);
        float y[L * IN];
        for (int j = 0; j < L * IN; j++)
            y[j] = 1.0f + (float)j;
        avsr_time_mask(y, L, IN, 10, 25, -7.0f, &k, 0, &nm2, &mk2, NULL);
        det &= !memcmp(x, y, sizeof x) && nm == nm2 && mk == mk2;
        int64_t rows = 0;
        for (int r = 0; r < L; r++) {
            int f = 0;
            for (int c = 0; c < IN; c++)
                f += x[r * IN + c] == -7.0f;
            consistent &= f == 0 || f == IN; /* whole rows */
            for (int c = 0; c < IN; c++)
                consistent &= f || x[r * IN + c] == 1.0f + (float)(r * IN + c);
            rows += f == IN;
        }
        consistent &= rows == mk && nm <= 3;
        applied += nm;
        masked += mk;
    }
    applied /= NK;
    masked /= NK;
    /* 3 masks, each skipped when t == 0 (p 1/10): 2.7 applied; mean zeroed
     * length of one mask = E[m] = 4.5 before overlap/clipping */
    tap_ok(det && consistent, "time mask: whole rows set to fill, others untouched, "
                              "reported count = rows masked, deterministic");
    tap_ok(fabs(applied - 2.7) < 0.05 && masked > 9.5 && masked < 12.15,
           "time mask: %.3f masks applied (expect 2.7), %.2f rows masked (<= 12.15 = 2.7 x 4.5)",
           applied, masked);
    /* audio sub-stream differs from video sub-stream */
    float a1[100], a2[100];
    for (int j = 0; j < 100; j++)
        a1[j] = a2[j] = 1;
    int64_t n1, n2;
    avsr_aug_key k = {2, 1, 5};
    avsr_time_mask(a1, 100, 1, 30, 10, 0, &k, 0, &n1, NULL, NULL);
    avsr_time_mask(a2, 100, 1, 30, 10, 0, &k, 1, &n2, NULL, NULL);
    tap_ok(memcmp(a1, a2, sizeof a1), "time mask: sub-streams 0 and 1 differ");
    avsr_error err = {0};
    tap_ok(avsr_time_mask(a1, 100, 1, 10, 0, 0, &k, 0, NULL, NULL, &err) == -1 &&
               strstr(err.msg, "stride > 0"),
           "time mask: stride 0 rejected");
}

static void test_modality_norm(void)
{
    int cnt[3] = {0};
    for (int i = 0; i < 8000; i++) {
        avsr_aug_key k = {4, 2, (uint64_t)i};
        cnt[avsr_modality_draw(&k, 0.5, 0.5)]++;
    }
    tap_ok(abs(cnt[0] - 4000) < 200 && abs(cnt[1] - 2000) < 170 && abs(cnt[2] - 2000) < 170,
           "modality dropout p 0.5 / audio 0.5: keep %d, no audio %d, no video %d of 8000",
           cnt[0], cnt[1], cnt[2]);
    avsr_aug_key k = {4, 2, 1};
    tap_ok(avsr_modality_draw(&k, 0.0, 0.5) == AVSR_KEEP_BOTH, "modality dropout p 0: keep");
    float x[5000];
    uint32_t s = 3;
    for (int i = 0; i < 5000; i++)
        x[i] = 3.0f + 0.5f * frand(&s);
    avsr_audio_normalize(x, 5000, 1e-8f);
    double m = 0, v = 0;
    for (int i = 0; i < 5000; i++)
        m += x[i];
    m /= 5000;
    for (int i = 0; i < 5000; i++)
        v += (x[i] - m) * (x[i] - m);
    v /= 5000;
    tap_ok(fabs(m) < 1e-5 && fabs(v - 1) < 1e-4, "audio normalise: mean %.2e, var %.6f", m, v);
    for (int i = 0; i < 100; i++)
        x[i] = 0.25f;
    avsr_audio_normalize(x, 100, 1e-8f);
    bool z = true;
    for (int i = 0; i < 100; i++)
        z &= x[i] == 0.0f;
    tap_ok(z, "audio normalise: constant signal -> zeros (no NaN)");
    int16_t i16[3] = {-32768, 0, 16384};
    avsr_audio_from_i16(x, i16, 3);
    tap_ok(x[0] == -1.0f && x[1] == 0.0f && x[2] == 0.5f, "int16 -> float: x / 32768");
}

/* the chain: deterministic, order independent, eval path exact */
static void test_chain(void)
{
    enum { T = 40, H = 96, W = 96, C = 88, NA = T * 640, NS = 6 };
    uint8_t *v = malloc((size_t)NS * T * H * W);
    int16_t *au = malloc((size_t)NS * NA * sizeof *au);
    uint32_t s = 17;
    for (int64_t i = 0; i < (int64_t)NS * T * H * W; i++)
        v[i] = (uint8_t)(lcg(&s) & 255);
    for (int64_t i = 0; i < (int64_t)NS * NA; i++)
        au[i] = (int16_t)((int)(lcg(&s) & 0xffff) - 32768) / 4;
    float noise[30000];
    for (int i = 0; i < 30000; i++)
        noise[i] = frand(&s);
    const float *wav[1] = {noise};
    int64_t nlen[1] = {30000};
    avsr_noise_bank bank = {1, wav, nlen};
    avsr_augment_config cfg;
    avsr_augment_config_default(&cfg, true);
    cfg.flip_prob = 0.5;
    cfg.modality_prob = 0.5;
    float *vo[2][NS], *ao[2][NS];
    avsr_augment_report rp[2][NS];
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < NS; j++) {
            int i = pass ? NS - 1 - j : j; /* reverse order in the second pass */
            vo[pass][i] = malloc((size_t)T * C * C * sizeof(float));
            ao[pass][i] = malloc((size_t)NA * sizeof(float));
            avsr_aug_key k = {42, 3, (uint64_t)(100 + i)};
            avsr_error err = {0};
            if (avsr_augment_sample(&cfg, &k, v + (int64_t)i * T * H * W, T, H, W, vo[pass][i],
                                    au + (int64_t)i * NA, NA, ao[pass][i], &bank, &rp[pass][i],
                                    &err))
                tap_bail("augment: %s", err.msg);
        }
    bool same = true, dropped_ok = true, masks = true;
    for (int i = 0; i < NS; i++) {
        same &= !memcmp(vo[0][i], vo[1][i], (size_t)T * C * C * sizeof(float)) &&
                !memcmp(ao[0][i], ao[1][i], (size_t)NA * sizeof(float)) &&
                !memcmp(&rp[0][i], &rp[1][i], sizeof rp[0][i]);
        const avsr_augment_report *r = &rp[0][i];
        tap_diag("sample %d: crop (%d,%d) flip %d vmask %lld/%lld rows amask %lld/%lld noise %d "
                 "snr %g gain %.4f drop a%d v%d",
                 100 + i, r->crop_y, r->crop_x, r->flipped, (long long)r->vmasks,
                 (long long)r->vmasked, (long long)r->amasks, (long long)r->amasked, r->noise,
                 r->snr_db, r->noise_gain, r->audio_dropped, r->video_dropped);
        if (r->audio_dropped)
            for (int t = 0; t < NA; t++)
                dropped_ok &= ao[0][i][t] == 0.0f;
        masks &= r->vmasks <= 2 && r->amasks <= 2 && r->crop_y <= 8 && r->crop_x <= 8;
    }
    tap_ok(same, "chain: same outputs and reports whatever order samples are processed in");
    tap_ok(dropped_ok && masks, "chain: dropped audio is zeros; reports within bounds");

    /* evaluation: centre crop, no masks, clean: exact reference */
    avsr_augment_config ev;
    avsr_augment_config_default(&ev, false);
    float *vr = malloc((size_t)T * C * C * sizeof(float)), *ar = malloc((size_t)NA * sizeof(float));
    avsr_aug_key k = {42, 3, 100};
    avsr_augment_report r;
    avsr_augment_sample(&ev, &k, v, T, H, W, vo[0][0], au, NA, ao[0][0], &bank, &r, NULL);
    avsr_video_crop_normalize(vr, v, T, H, W, C, C, 4, 4, false, 0.421f, 0.165f, NULL);
    avsr_audio_from_i16(ar, au, NA);
    avsr_audio_normalize(ar, NA, 1e-8f);
    tap_ok(!memcmp(vr, vo[0][0], (size_t)T * C * C * sizeof(float)) &&
               !memcmp(ar, ao[0][0], (size_t)NA * sizeof(float)) && !r.noise &&
               isinf(r.snr_db) && r.vmasks == 0 && r.amasks == 0,
           "chain eval: centre crop + normalise, clean audio normalised, no masks");
    /* evaluation at 0 dB with audio-only input (video forced off) */
    avsr_noise_config_fixed(&ev.noise, 0.0);
    ev.drop_video = true;
    avsr_augment_sample(&ev, &k, v, T, H, W, vo[0][0], au, NA, ao[0][0], &bank, &r, NULL);
    bool vz = true;
    for (int64_t t = 0; t < (int64_t)T * C * C; t++)
        vz &= vo[0][0][t] == 0.0f;
    /* the noisy audio before normalisation reaches 0 dB */
    float *clean = malloc((size_t)NA * sizeof(float)), *mixed = malloc((size_t)NA * sizeof(float));
    avsr_audio_from_i16(clean, au, NA);
    avsr_mix_snr(mixed, clean, NA, noise, 30000, r.noise_offset, r.snr_db, NULL, NULL);
    double snr = snr_measured(clean, mixed, NA);
    tap_ok(vz && r.noise && r.snr_db == 0.0 && fabs(snr) < 0.01 && r.video_dropped,
           "chain eval 0 dB, video dropped: zeros, measured SNR %.4f dB", snr);
    /* different epochs give different crops for most samples */
    int differ = 0;
    for (int i = 0; i < 16; i++) {
        avsr_aug_key ka = {42, 0, (uint64_t)i}, kb = {42, 1, (uint64_t)i};
        int y0, x0, y1, x1;
        avsr_crop_draw(&ka, H, W, C, C, true, &y0, &x0, NULL);
        avsr_crop_draw(&kb, H, W, C, C, true, &y1, &x1, NULL);
        differ += y0 != y1 || x0 != x1;
    }
    tap_ok(differ >= 12, "epochs 0 and 1 give different crops for %d of 16 samples", differ);
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < NS; i++) {
            free(vo[p][i]);
            free(ao[p][i]);
        }
    free(vr);
    free(ar);
    free(clean);
    free(mixed);
    free(v);
    free(au);
}

int main(void)
{
    test_mix();
    test_noise_draw();
    test_generated();
    test_babble();
    test_video();
    test_time_mask();
    test_modality_norm();
    test_chain();
    return tap_done();
}
