/* augment: per-sample augmentation (see augment.h, docs/data/augment.md). */
#include "augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* elements above which a loop inside one sample is split across threads
 * (the batch assembler normally parallelises over samples instead) */
#define OMP_MIN (1 << 18)

void avsr_aug_stream(avsr_rng *r, const avsr_aug_key *key, uint32_t purpose, uint32_t sub)
{
    avsr_rng_init(r, key->seed, key->epoch, key->sample_id, purpose);
    avsr_rng_seek(r, (uint64_t)sub << 40);
}

/* uniform double in [0, 1) with 53 random bits */
static double unit53(avsr_rng *r)
{
    uint64_t hi = avsr_rng_u32(r) >> 5, lo = avsr_rng_u32(r) >> 6;
    return ((double)hi * 67108864.0 + (double)lo) * (1.0 / 9007199254740992.0);
}

/* integer uniform in [0, n) for n up to 2^63 */
static int64_t below64(avsr_rng *r, int64_t n)
{
    if (n <= 0)
        return 0;
    if (n <= (int64_t)UINT32_MAX)
        return (int64_t)avsr_rng_below(r, (uint32_t)n);
    uint64_t un = (uint64_t)n, lim = (uint64_t)(-un) % un;
    for (;;) {
        uint64_t x = ((uint64_t)avsr_rng_u32(r) << 32) | avsr_rng_u32(r);
        unsigned __int128 m = (unsigned __int128)x * un;
        if ((uint64_t)m >= lim)
            return (int64_t)(m >> 64);
    }
}

/* ---- audio --------------------------------------------------------------- */

void avsr_audio_from_i16(float *out, const int16_t *in, int64_t n)
{
#pragma omp parallel for if (n > OMP_MIN)
    for (int64_t i = 0; i < n; i++)
        out[i] = (float)in[i] * (1.0f / 32768.0f);
}

double avsr_power(const float *x, int64_t n)
{
    if (n <= 0)
        return 0.0;
    double s = 0.0;
#pragma omp parallel for reduction(+ : s) if (n > OMP_MIN)
    for (int64_t i = 0; i < n; i++)
        s += (double)x[i] * (double)x[i];
    return s / (double)n;
}

void avsr_audio_normalize(float *x, int64_t n, float eps)
{
    if (n <= 0)
        return;
    double s = 0.0;
#pragma omp parallel for reduction(+ : s) if (n > OMP_MIN)
    for (int64_t i = 0; i < n; i++)
        s += x[i];
    double mean = s / (double)n, v = 0.0;
#pragma omp parallel for reduction(+ : v) if (n > OMP_MIN)
    for (int64_t i = 0; i < n; i++) {
        double d = x[i] - mean;
        v += d * d;
    }
    float m = (float)mean, inv = (float)(1.0 / sqrt(v / (double)n + (double)eps));
#pragma omp parallel for if (n > OMP_MIN)
    for (int64_t i = 0; i < n; i++)
        x[i] = (x[i] - m) * inv;
}

/* mean square of the tiled segment noise[(off + i) mod nn], i < n */
static double tiled_power(const float *noise, int64_t nn, int64_t off, int64_t n)
{
    if (off + n <= nn)
        return avsr_power(noise + off, n);
    /* head up to the end of the file, whole periods, then the rest */
    int64_t head = nn - off;
    double s = avsr_power(noise + off, head) * (double)head;
    int64_t periods = (n - head) / nn, rest = n - head - periods * nn;
    if (periods)
        s += avsr_power(noise, nn) * (double)nn * (double)periods;
    if (rest > 0)
        s += avsr_power(noise, rest) * (double)rest;
    return s / (double)n;
}

int avsr_mix_snr(float *y, const float *x, int64_t n, const float *noise, int64_t nn,
                 int64_t offset, double snr_db, double *gain, avsr_error *err)
{
    const char *fn = "avsr_mix_snr";
    if (gain)
        *gain = 0.0;
    if (isnan(snr_db) || (isinf(snr_db) && snr_db < 0))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: snr_db must be finite or +inf, got %g", fn, snr_db);
    if (n < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: negative length %lld", fn,
                              (long long)n);
    if (!noise || nn <= 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: empty noise (length %lld)", fn,
                              (long long)nn);
    if (offset < 0 || offset >= nn)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: noise offset %lld out of range [0, %lld)", fn,
                              (long long)offset, (long long)nn);
    double a = 0.0;
    if (!isinf(snr_db) && n > 0) {
        double px = avsr_power(x, n), pn = tiled_power(noise, nn, offset, n);
        if (px > 0.0 && pn > 0.0)
            a = sqrt(px / (pn * pow(10.0, snr_db / 10.0)));
    }
    if (gain)
        *gain = a;
    if (a == 0.0) {
        if (y != x)
            memcpy(y, x, (size_t)n * sizeof *y);
        return 0;
    }
    float af = (float)a;
    int64_t i = 0, pos = offset;
    while (i < n) {
        int64_t run = nn - pos < n - i ? nn - pos : n - i;
        const float *s = noise + pos;
        float *yo = y + i;
        const float *xi = x + i;
#pragma omp parallel for if (run > OMP_MIN)
        for (int64_t j = 0; j < run; j++)
            yo[j] = xi[j] + af * s[j];
        i += run;
        pos = 0;
    }
    return 0;
}

void avsr_noise_config_default(avsr_noise_config *cfg)
{
    static const double list[] = {-5, 0, 5, 10, 15, 20, INFINITY};
    memset(cfg, 0, sizeof *cfg);
    cfg->prob = 1.0;
    cfg->n_snr = 7;
    memcpy(cfg->snr_list, list, sizeof list);
}

void avsr_noise_config_fixed(avsr_noise_config *cfg, double snr_db)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->prob = 1.0;
    cfg->n_snr = 1;
    cfg->snr_list[0] = snr_db;
}

int avsr_noise_draw(const avsr_noise_config *cfg, const avsr_aug_key *key, int64_t n_speech,
                    int n_files, const int64_t *file_lens, avsr_noise_pick *out,
                    avsr_error *err)
{
    const char *fn = "avsr_noise_draw";
    memset(out, 0, sizeof *out);
    out->snr_db = NAN;
    if (cfg->n_snr < 0 || cfg->n_snr > AVSR_SNR_LIST_MAX)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: n_snr must be in [0, %d], got %d",
                              fn, AVSR_SNR_LIST_MAX, cfg->n_snr);
    if (cfg->n_snr == 0 && !(cfg->snr_lo <= cfg->snr_hi && isfinite(cfg->snr_lo) &&
                             isfinite(cfg->snr_hi)))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: SNR range [%g, %g) must be finite with lo <= hi", fn,
                              cfg->snr_lo, cfg->snr_hi);
    if (n_files < 1 || !file_lens)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: no noise files (n = %d)", fn, n_files);
    avsr_rng r;
    avsr_aug_stream(&r, key, AVSR_RNG_NOISE, 0);
    /* fixed draw order: apply, file, SNR, offset */
    double u = unit53(&r);
    int file = (int)avsr_rng_below(&r, (uint32_t)n_files);
    double snr;
    if (cfg->n_snr > 0)
        snr = cfg->snr_list[avsr_rng_below(&r, (uint32_t)cfg->n_snr)];
    else
        snr = cfg->snr_lo + (cfg->snr_hi - cfg->snr_lo) * unit53(&r);
    int64_t len = file_lens[file];
    if (len <= 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: noise file %d is empty", fn, file);
    int64_t off = n_speech > 0 && len >= n_speech ? below64(&r, len - n_speech + 1)
                                                  : below64(&r, len);
    out->apply = u < cfg->prob;
    out->file = file;
    out->offset = off;
    out->snr_db = snr;
    return 0;
}

void avsr_noise_white(float *out, int64_t n, const avsr_aug_key *key)
{
    avsr_rng r;
    avsr_aug_stream(&r, key, AVSR_RNG_NOISE, 1);
    for (int64_t i = 0; i < n; i++)
        out[i] = avsr_rng_normal(&r);
}

void avsr_noise_pink(float *out, int64_t n, const avsr_aug_key *key)
{
    /* Paul Kellet's refined pink filter (music-dsp, "pink noise filter") */
    avsr_rng r;
    avsr_aug_stream(&r, key, AVSR_RNG_NOISE, 1);
    double b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0, b6 = 0;
    for (int64_t i = -8192; i < n; i++) {
        double w = avsr_rng_normal(&r);
        b0 = 0.99886 * b0 + w * 0.0555179;
        b1 = 0.99332 * b1 + w * 0.0750759;
        b2 = 0.96900 * b2 + w * 0.1538520;
        b3 = 0.86650 * b3 + w * 0.3104856;
        b4 = 0.55000 * b4 + w * 0.5329522;
        b5 = -0.7616 * b5 - w * 0.0168980;
        double p = b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362;
        b6 = w * 0.115926;
        if (i >= 0)
            out[i] = (float)p;
    }
    double pw = avsr_power(out, n);
    if (pw > 0) {
        float s = (float)(1.0 / sqrt(pw));
        for (int64_t i = 0; i < n; i++)
            out[i] *= s;
    }
}

int avsr_noise_babble(float *out, int64_t n, int k, const float *const *utts,
                      const int64_t *lens, const avsr_aug_key *key, avsr_error *err)
{
    const char *fn = "avsr_noise_babble";
    if (k < 1 || !utts || !lens)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: need k >= 1 utterances, got %d", fn,
                              k);
    for (int j = 0; j < k; j++)
        if (lens[j] <= 0 || !utts[j])
            return avsr_error_set(err, AVSR_ERR_INVALID, "%s: utterance %d is empty", fn, j);
    memset(out, 0, (size_t)n * sizeof *out);
    avsr_rng r;
    avsr_aug_stream(&r, key, AVSR_RNG_NOISE, 2);
    for (int j = 0; j < k; j++) {
        int64_t off = below64(&r, lens[j]);
        double p = tiled_power(utts[j], lens[j], off, n);
        if (p <= 0.0)
            continue;
        float s = (float)(1.0 / sqrt(p));
        int64_t i = 0, pos = off;
        while (i < n) {
            int64_t run = lens[j] - pos < n - i ? lens[j] - pos : n - i;
            for (int64_t t = 0; t < run; t++)
                out[i + t] += s * utts[j][pos + t];
            i += run;
            pos = 0;
        }
    }
    double p = avsr_power(out, n);
    if (p > 0.0) {
        float s = (float)(1.0 / sqrt(p));
        for (int64_t i = 0; i < n; i++)
            out[i] *= s;
    }
    return 0;
}

/* ---- video --------------------------------------------------------------- */

int avsr_crop_draw(const avsr_aug_key *key, int H, int W, int ch, int cw, bool random_crop,
                   int *y0, int *x0, avsr_error *err)
{
    if (ch <= 0 || cw <= 0 || ch > H || cw > W)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_crop_draw: crop %dx%d does not fit in %dx%d", ch, cw, H, W);
    if (random_crop) {
        avsr_rng r;
        avsr_aug_stream(&r, key, AVSR_RNG_CROP, 0);
        *y0 = (int)avsr_rng_below(&r, (uint32_t)(H - ch + 1));
        *x0 = (int)avsr_rng_below(&r, (uint32_t)(W - cw + 1));
    } else {
        *y0 = (int)nearbyint((H - ch) / 2.0);
        *x0 = (int)nearbyint((W - cw) / 2.0);
    }
    return 0;
}

bool avsr_flip_draw(const avsr_aug_key *key, double p)
{
    if (p <= 0.0)
        return false;
    avsr_rng r;
    avsr_aug_stream(&r, key, AVSR_RNG_FLIP, 0);
    return unit53(&r) < p;
}

static int check_crop(const char *fn, int64_t T, int H, int W, int ch, int cw, int y0, int x0,
                      avsr_error *err)
{
    if (T < 0 || H <= 0 || W <= 0 || ch <= 0 || cw <= 0 || y0 < 0 || x0 < 0 || y0 + ch > H ||
        x0 + cw > W)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: crop %dx%d at (%d, %d) does not fit in frames %lldx%dx%d", fn,
                              ch, cw, y0, x0, (long long)T, H, W);
    return 0;
}

int avsr_video_crop_u8(uint8_t *out, const uint8_t *in, int64_t T, int H, int W, int ch, int cw,
                       int y0, int x0, avsr_error *err)
{
    if (check_crop("avsr_video_crop_u8", T, H, W, ch, cw, y0, x0, err))
        return -1;
#pragma omp parallel for if (T * ch * cw > OMP_MIN)
    for (int64_t t = 0; t < T; t++)
        for (int i = 0; i < ch; i++)
            memcpy(out + (t * ch + i) * cw, in + (t * H + y0 + i) * W + x0, (size_t)cw);
    return 0;
}

void avsr_video_flip(float *x, int64_t T, int H, int W)
{
#pragma omp parallel for if (T * H * W > OMP_MIN)
    for (int64_t t = 0; t < T; t++)
        for (int i = 0; i < H; i++) {
            float *row = x + (t * H + i) * W;
            for (int j = 0; j < W / 2; j++) {
                float v = row[j];
                row[j] = row[W - 1 - j];
                row[W - 1 - j] = v;
            }
        }
}

static void make_lut(float lut[256], float mean, float std)
{
    for (int v = 0; v < 256; v++)
        lut[v] = ((float)v / 255.0f - mean) / std;
}

void avsr_video_normalize(float *out, const uint8_t *in, int64_t n, float mean, float std)
{
    float lut[256];
    make_lut(lut, mean, std);
#pragma omp parallel for if (n > OMP_MIN)
    for (int64_t i = 0; i < n; i++)
        out[i] = lut[in[i]];
}

int avsr_video_crop_normalize(float *out, const uint8_t *in, int64_t T, int H, int W, int ch,
                              int cw, int y0, int x0, bool flip, float mean, float std,
                              avsr_error *err)
{
    if (check_crop("avsr_video_crop_normalize", T, H, W, ch, cw, y0, x0, err))
        return -1;
    if (!(std > 0.0f))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_video_crop_normalize: std must be > 0, got %g", (double)std);
    float lut[256];
    make_lut(lut, mean, std);
#pragma omp parallel for if (T * ch * cw > OMP_MIN)
    for (int64_t t = 0; t < T; t++)
        for (int i = 0; i < ch; i++) {
            const uint8_t *src = in + (t * H + y0 + i) * W + x0; /* [cw] */
            float *dst = out + (t * ch + i) * cw;                /* [cw] */
            if (flip)
                for (int j = 0; j < cw; j++)
                    dst[j] = lut[src[cw - 1 - j]];
            else
                for (int j = 0; j < cw; j++)
                    dst[j] = lut[src[j]];
        }
    return 0;
}

/* ---- time masks and modality dropout ------------------------------------- */

typedef struct span {
    int64_t a, b;
} span;

static int cmp_span(const void *x, const void *y)
{
    const span *p = x, *q = y;
    return (p->a > q->a) - (p->a < q->a);
}

int avsr_time_mask(float *x, int64_t len, int64_t inner, int64_t window, int64_t stride,
                   float fill, const avsr_aug_key *key, uint32_t sub, int64_t *n_masks,
                   int64_t *masked, avsr_error *err)
{
    if (n_masks)
        *n_masks = 0;
    if (masked)
        *masked = 0;
    if (window < 0 || stride <= 0 || len < 0 || inner < 0 || window > UINT32_MAX)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_time_mask: need window in [0, 2^32), stride > 0, got window "
                              "%lld stride %lld",
                              (long long)window, (long long)stride);
    if (window == 0 || len == 0)
        return 0;
    /* int((L + stride - 0.1) // stride) in double, as Python computes it */
    int64_t nm = (int64_t)floor(((double)len + (double)stride - 0.1) / (double)stride);
    span *sp = malloc((size_t)nm * sizeof *sp);
    if (!sp)
        return AVSR_NOMEM(err, (size_t)nm * sizeof *sp);
    avsr_rng r;
    avsr_aug_stream(&r, key, AVSR_RNG_TIME_MASK, sub);
    int64_t ns = 0;
    for (int64_t k = 0; k < nm; k++) {
        int64_t t = avsr_rng_below(&r, (uint32_t)window);
        int64_t m = avsr_rng_below(&r, (uint32_t)window);
        if (len - t <= 0)
            continue;
        int64_t start = below64(&r, len - t);
        if (t == 0)
            continue;
        int64_t end = start + m < len ? start + m : len;
        if (end > start) {
            sp[ns].a = start;
            sp[ns].b = end;
            ns++;
        }
        /* a zero-length second draw still counts as an applied mask */
        if (n_masks)
            (*n_masks)++;
    }
    for (int64_t s = 0; s < ns; s++) {
        float *p = x + sp[s].a * inner;
        int64_t cnt = (sp[s].b - sp[s].a) * inner;
        for (int64_t i = 0; i < cnt; i++)
            p[i] = fill;
    }
    if (masked && ns) {
        qsort(sp, (size_t)ns, sizeof *sp, cmp_span);
        int64_t tot = 0, ca = sp[0].a, cb = sp[0].b;
        for (int64_t s = 1; s < ns; s++) {
            if (sp[s].a > cb) {
                tot += cb - ca;
                ca = sp[s].a;
                cb = sp[s].b;
            } else if (sp[s].b > cb)
                cb = sp[s].b;
        }
        *masked = tot + cb - ca;
    }
    free(sp);
    return 0;
}

int avsr_modality_draw(const avsr_aug_key *key, double p_drop, double p_audio)
{
    if (p_drop <= 0.0)
        return AVSR_KEEP_BOTH;
    avsr_rng r;
    avsr_aug_stream(&r, key, AVSR_RNG_MODALITY, 0);
    double u = unit53(&r), v = unit53(&r);
    if (u >= p_drop)
        return AVSR_KEEP_BOTH;
    return v < p_audio ? AVSR_DROP_AUDIO : AVSR_DROP_VIDEO;
}

/* ---- the chain ----------------------------------------------------------- */

void avsr_augment_config_default(avsr_augment_config *cfg, bool train)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->crop_h = cfg->crop_w = 88;
    cfg->random_crop = train;
    cfg->flip_prob = 0.0;
    cfg->vmask_window = train ? 10 : 0;
    cfg->vmask_stride = 25;
    cfg->amask_window = train ? 6400 : 0;
    cfg->amask_stride = 16000;
    cfg->video_mean = 0.421f;
    cfg->video_std = 0.165f;
    cfg->audio_norm = true;
    cfg->audio_eps = 1e-8f;
    if (train)
        avsr_noise_config_default(&cfg->noise);
    else
        avsr_noise_config_fixed(&cfg->noise, INFINITY);
    cfg->modality_prob = 0.0;
    cfg->modality_audio_prob = 0.5;
}

int avsr_augment_sample(const avsr_augment_config *cfg, const avsr_aug_key *key,
                        const uint8_t *video, int64_t T, int H, int W, float *video_out,
                        const int16_t *audio, int64_t n_audio, float *audio_out,
                        const avsr_noise_bank *noise, avsr_augment_report *rep, avsr_error *err)
{
    avsr_augment_report local;
    if (!rep)
        rep = &local;
    memset(rep, 0, sizeof *rep);
    rep->snr_db = NAN;
    rep->noise_file = -1;
    int drop = avsr_modality_draw(key, cfg->modality_prob, cfg->modality_audio_prob);
    rep->audio_dropped = cfg->drop_audio || drop == AVSR_DROP_AUDIO;
    rep->video_dropped = cfg->drop_video || drop == AVSR_DROP_VIDEO;

    if (video) {
        int ch = cfg->crop_h, cw = cfg->crop_w;
        if (avsr_crop_draw(key, H, W, ch, cw, cfg->random_crop, &rep->crop_y, &rep->crop_x,
                           err))
            return -1;
        rep->flipped = avsr_flip_draw(key, cfg->flip_prob);
        if (avsr_video_crop_normalize(video_out, video, T, H, W, ch, cw, rep->crop_y,
                                      rep->crop_x, rep->flipped, cfg->video_mean,
                                      cfg->video_std, err))
            return -1;
        float fill = (0.0f - cfg->video_mean) / cfg->video_std;
        if (avsr_time_mask(video_out, T, (int64_t)ch * cw, cfg->vmask_window, cfg->vmask_stride,
                           fill, key, 0, &rep->vmasks, &rep->vmasked, err))
            return -1;
        if (rep->video_dropped)
            memset(video_out, 0, (size_t)(T * ch * cw) * sizeof *video_out);
    }

    if (audio) {
        avsr_audio_from_i16(audio_out, audio, n_audio);
        if (avsr_time_mask(audio_out, n_audio, 1, cfg->amask_window, cfg->amask_stride, 0.0f,
                           key, 1, &rep->amasks, &rep->amasked, err))
            return -1;
        if (noise && noise->n > 0) {
            avsr_noise_pick pick;
            if (avsr_noise_draw(&cfg->noise, key, n_audio, noise->n, noise->len, &pick, err))
                return -1;
            if (pick.apply) {
                rep->noise_file = pick.file;
                rep->noise_offset = pick.offset;
                rep->snr_db = pick.snr_db;
                if (avsr_mix_snr(audio_out, audio_out, n_audio, noise->wav[pick.file],
                                 noise->len[pick.file], pick.offset, pick.snr_db,
                                 &rep->noise_gain, err))
                    return -1;
                rep->noise = rep->noise_gain > 0.0;
            }
        }
        if (cfg->audio_norm)
            avsr_audio_normalize(audio_out, n_audio, cfg->audio_eps);
        if (rep->audio_dropped)
            memset(audio_out, 0, (size_t)n_audio * sizeof *audio_out);
    }
    return 0;
}
