/* op_features: log-mel (Whisper), Kaldi fbank, frame stacking and
 * SpecAugment (see op_features.h, docs/ops/features.md). */
#include "op_features.h"

#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ctx_int.h"
#include "features_fn.h"
#include "rng.h"
#include "tape.h"

/* ================================================================ FFTW plans
 *
 * FFTW's planner is not thread-safe; executing a plan is. Plans are made
 * once per (size, direction) with FFTW_ESTIMATE (deterministic: the same
 * algorithm in every process, so features are bitwise reproducible), under a
 * process-wide mutex, on 64-byte aligned scratch arrays; every array later
 * passed to fftwf_execute_dft_{r2c,c2r} is 64-byte aligned too, which the
 * new-array functions require (same alignment as at planning time). Plans
 * live until the process ends. */

enum { PLAN_R2C = 0, PLAN_C2R = 1, PLAN_MAX = 64 };

static pthread_mutex_t plan_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int n, dir;
    fftwf_plan p;
} plan_tab[PLAN_MAX];
static int plan_count;

static fftwf_plan get_plan(avsr_ctx *ctx, int n, int dir)
{
    fftwf_plan p = NULL;
    pthread_mutex_lock(&plan_mu);
    for (int i = 0; i < plan_count; i++)
        if (plan_tab[i].n == n && plan_tab[i].dir == dir)
            p = plan_tab[i].p;
    if (!p && plan_count < PLAN_MAX) {
        float *re = NULL;
        fftwf_complex *cx = NULL;
        if (posix_memalign((void **)&re, 64, sizeof(float) * (size_t)(n + 16)) == 0 &&
            posix_memalign((void **)&cx, 64, sizeof(fftwf_complex) * (size_t)(n / 2 + 1 + 8)) ==
                0) {
            if (dir == PLAN_R2C)
                p = fftwf_plan_dft_r2c_1d(n, re, cx, FFTW_ESTIMATE);
            else
                p = fftwf_plan_dft_c2r_1d(n, cx, re, FFTW_ESTIMATE);
        }
        free(re);
        free(cx);
        if (p) {
            plan_tab[plan_count].n = n;
            plan_tab[plan_count].dir = dir;
            plan_tab[plan_count].p = p;
            plan_count++;
        }
    }
    pthread_mutex_unlock(&plan_mu);
    if (!p)
        avsr_ctx_fail(ctx, "fft: no FFTW plan for size %d", n);
    return p;
}

/* Per-thread scratch: real [n_fft] and complex [n_fft/2 + 1], each start
 * 64-byte aligned. */
struct fft_scratch {
    float *mem;
    size_t stride; /* floats per thread */
    int n;
};

static int scratch_init(avsr_ctx *ctx, struct fft_scratch *s, int n, int extra)
{
    size_t re = ((size_t)n + 15) & ~(size_t)15;
    size_t cx = ((size_t)(n / 2 + 1) * 2 + 15) & ~(size_t)15;
    size_t ex = ((size_t)extra + 15) & ~(size_t)15;
    s->stride = re + cx + ex;
    s->n = n;
    s->mem = avsr_ctx_alloc(ctx, sizeof(float) * s->stride * (size_t)omp_get_max_threads());
    return s->mem ? 0 : -1;
}

static float *scratch_re(const struct fft_scratch *s)
{
    return s->mem + s->stride * (size_t)omp_get_thread_num();
}
static fftwf_complex *scratch_cx(const struct fft_scratch *s)
{
    return (fftwf_complex *)(scratch_re(s) + (((size_t)s->n + 15) & ~(size_t)15));
}
static float *scratch_extra(const struct fft_scratch *s)
{
    return (float *)scratch_cx(s) + (((size_t)(s->n / 2 + 1) * 2 + 15) & ~(size_t)15);
}

/* ================================================================ filterbanks */

static double hz_to_mel_slaney(double f)
{
    const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = 15.0;
    const double logstep = log(6.4) / 27.0;
    if (f >= min_log_hz)
        return min_log_mel + log(f / min_log_hz) / logstep;
    return f / f_sp;
}

static double mel_to_hz_slaney(double m)
{
    const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, min_log_mel = 15.0;
    const double logstep = log(6.4) / 27.0;
    if (m >= min_log_mel)
        return min_log_hz * exp(logstep * (m - min_log_mel));
    return f_sp * m;
}

void avsr_mel_filters_slaney(float *fb, int sample_rate, int n_fft, int n_mels, float f_min,
                             float f_max)
{
    int nf = n_fft / 2 + 1;
    double fmax = f_max > 0 ? f_max : sample_rate / 2.0;
    double mmin = hz_to_mel_slaney(f_min), mmax = hz_to_mel_slaney(fmax);
    double *mel_f = malloc(sizeof(double) * (size_t)(n_mels + 2));
    if (!mel_f) {
        memset(fb, 0, sizeof(float) * (size_t)n_mels * (size_t)nf);
        return;
    }
    /* np.linspace(min_mel, max_mel, n_mels + 2) -> Hz */
    for (int i = 0; i < n_mels + 2; i++) {
        double m = n_mels + 1 > 0 ? mmin + (mmax - mmin) * i / (n_mels + 1) : mmin;
        if (i == n_mels + 1)
            m = mmax;
        mel_f[i] = mel_to_hz_slaney(m);
    }
    for (int m = 0; m < n_mels; m++) {
        double fd0 = mel_f[m + 1] - mel_f[m], fd1 = mel_f[m + 2] - mel_f[m + 1];
        double enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
        for (int k = 0; k < nf; k++) {
            /* np.linspace(0, sr / 2, nf) */
            double f = nf > 1 ? (sample_rate / 2.0) * k / (nf - 1) : 0.0;
            double lower = -(mel_f[m] - f) / fd0;
            double upper = (mel_f[m + 2] - f) / fd1;
            double w = lower < upper ? lower : upper;
            /* librosa stores the triangle in f32, then scales it by the
             * f64 enorm (numpy: f32 *= f64 computes in f64, stores f32) */
            float wf = (float)(w > 0 ? w : 0.0);
            fb[(size_t)m * nf + k] = (float)((double)wf * enorm);
        }
    }
    free(mel_f);
}

/* Kaldi mel banks (torchaudio.compliance.kaldi.get_mel_banks, no VTLN):
 * fb [n_mels, padded / 2 + 1], last column 0. Evaluated in single
 * precision in torchaudio's order of operations (its tensors are f32), so
 * the narrow low-frequency triangles carry the same rounding. */
static void mel_filters_kaldi(float *fb, int n_mels, int padded, double sr, double low,
                              double high)
{
    int nbins = padded / 2, nf = padded / 2 + 1;
    double nyq = 0.5 * sr;
    if (high <= 0.0)
        high += nyq;
    float width = (float)(sr / padded);
    double mlow = 1127.0 * log(1.0 + low / 700.0), mhigh = 1127.0 * log(1.0 + high / 700.0);
    float mlowf = (float)mlow, delta = (float)((mhigh - mlow) / (n_mels + 1));
    for (int m = 0; m < n_mels; m++) {
        float left = mlowf + (float)m * delta, center = mlowf + (float)(m + 1) * delta,
              right = mlowf + (float)(m + 2) * delta;
        for (int k = 0; k < nf; k++) {
            float w = 0.0f;
            if (k < nbins) {
                float mel = 1127.0f * logf(1.0f + width * (float)k / 700.0f);
                float up = (mel - left) / (center - left), down = (right - mel) / (right - center);
                w = up < down ? up : down;
                if (w < 0.0f)
                    w = 0.0f;
            }
            fb[(size_t)m * nf + k] = w;
        }
    }
}

/* Nonzero range [lo[m], hi[m]) of each filter row, so the mel product
 * skips the zeros (each triangle spans a few bins). */
static void filter_ranges(const float *fb, int n_mels, int nf, int *lo, int *hi)
{
    for (int m = 0; m < n_mels; m++) {
        const float *r = fb + (size_t)m * nf;
        int a = 0, b = nf;
        while (a < nf && r[a] == 0.0f)
            a++;
        while (b > a && r[b - 1] == 0.0f)
            b--;
        lo[m] = a;
        hi[m] = b;
    }
}

/* ================================================================ log-mel */

void avsr_logmel_whisper_defaults(avsr_logmel_cfg *cfg)
{
    *cfg = (avsr_logmel_cfg){.sample_rate = 16000, .n_fft = 400, .hop = 160, .n_mels = 80,
                             .f_min = 0.0f, .f_max = 8000.0f, .dyn_range = 8.0f, .pad_to = 0};
}

int64_t avsr_logmel_frames(const avsr_logmel_cfg *cfg, int64_t n)
{
    if (cfg->hop <= 0)
        return 0;
    if (cfg->pad_to > 0)
        return cfg->pad_to / cfg->hop;
    return n > 0 ? n / cfg->hop : 0;
}

struct logmel_saved {
    avsr_tensor *wave, *out;
    avsr_logmel_cfg cfg;
    int64_t *len;    /* [B] valid samples */
    int64_t *nfr;    /* [B] valid frames */
    float *mel;      /* [B, T, M] mel energies before the log */
    float *fb;       /* [M, nf] */
    int *lo, *hi;    /* [M] */
    float *win;      /* [n_fft] */
    float *lmax;     /* [B] utterance maximum of log10 */
    int64_t *amax;   /* [B] its flat index m * T + t */
};

/* Sample i of clip b as the STFT sees it: the clip (len samples) zero-padded
 * to sig samples (sig = len without pad_to), read with reflect padding. */
static inline float logmel_sample(const float *x, int64_t len, int64_t sig, int64_t j)
{
    int64_t i = avsr_fn_reflect(j, sig);
    return i < len ? x[i] : 0.0f;
}

/* One frame: windowed samples into re, r2c into cx, mel energies into mel. */
static void logmel_frame(fftwf_plan plan, const float *x, int64_t len, int64_t sig, int64_t t,
                         const avsr_logmel_cfg *cfg, const float *win, const float *fb,
                         const int *lo, const int *hi, float *re, fftwf_complex *cx, float *mel)
{
    int n = cfg->n_fft, nf = n / 2 + 1;
    int64_t start = t * cfg->hop - n / 2;
    if (start >= 0 && start + n <= len && sig == len) {
        for (int k = 0; k < n; k++)
            re[k] = win[k] * x[start + k];
    } else {
        for (int k = 0; k < n; k++)
            re[k] = win[k] * logmel_sample(x, len, sig, start + k);
    }
    fftwf_execute_dft_r2c(plan, re, cx);
    float *pw = re; /* power spectrum [nf] reuses the real buffer (nf <= n) */
    for (int k = 0; k < nf; k++)
        pw[k] = cx[k][0] * cx[k][0] + cx[k][1] * cx[k][1];
    for (int m = 0; m < cfg->n_mels; m++) {
        const float *r = fb + (size_t)m * nf;
        float acc = 0.0f;
        for (int k = lo[m]; k < hi[m]; k++)
            acc += r[k] * pw[k];
        mel[m] = acc;
    }
}

static void logmel_backward(avsr_ctx *ctx, void *sv)
{
    struct logmel_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->wave))
        return;
    float *gx = avsr_tensor_grad(ctx, s->wave); /* [B, N] */
    if (!gx)
        return;
    const avsr_logmel_cfg *cfg = &s->cfg;
    int64_t B = s->wave->shape[0], N = s->wave->shape[1], T = s->out->shape[2];
    int M = cfg->n_mels, n = cfg->n_fft, nf = n / 2 + 1;
    const float *gy = s->out->grad; /* [B, M, T] */
    float lfloor_off = cfg->dyn_range;
    fftwf_plan pr = get_plan(ctx, n, PLAN_R2C), pc = get_plan(ctx, n, PLAN_C2R);
    float *gmel = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(B * T * M)); /* [B, T, M] */
    float *gfr = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(B * T * n));  /* [B, T, n_fft] */
    struct fft_scratch sc;
    if (!pr || !pc || !gmel || !gfr || scratch_init(ctx, &sc, n, nf) < 0)
        return;
    /* 1. through (x + 4) / 4, the clamp at lmax - range (clamped positions
     *    feed the maximum, i.e. its argmax) and log10(max(mel, 1e-10)) */
#pragma omp parallel for schedule(static) if (B > 1)
    for (int64_t b = 0; b < B; b++) {
        int64_t nfr = s->nfr[b];
        float fl = s->lmax[b] - lfloor_off;
        const float *mel = s->mel + (size_t)b * T * M;
        float *gm = gmel + (size_t)b * T * M;
        double gmax = 0.0;
        for (int64_t t = 0; t < nfr; t++)
            for (int m = 0; m < M; m++) {
                float g = 0.25f * gy[((size_t)b * M + m) * T + t];
                float l = avsr_fn_log10_floor(mel[t * M + m]);
                if (l < fl) {
                    gmax += g;
                    g = 0.0f;
                }
                gm[t * M + m] = g;
            }
        if (nfr > 0) {
            int64_t am = s->amax[b];
            int64_t m = am / T, t = am % T;
            gm[t * M + m] += (float)gmax;
        }
        for (int64_t t = 0; t < nfr; t++)
            for (int m = 0; m < M; m++)
                gm[t * M + m] *= avsr_fn_log10_floor_grad(mel[t * M + m]);
    }
    /* 2. per frame: mel product, |X|^2 and the real DFT, adjoint.
     *    dx_j = sum_{k=0}^{n/2} Re(G_k e^{+2 pi i k j / n}), G_k = 2 gP_k X_k:
     *    a c2r transform of G with the interior bins halved. */
#pragma omp parallel for schedule(dynamic, 8) if (B * T > 4)
    for (int64_t bt = 0; bt < B * T; bt++) {
        int64_t b = bt / T, t = bt % T;
        float *gf = gfr + (size_t)bt * n;
        if (t >= s->nfr[b])
            continue;
        float *re = scratch_re(&sc);
        fftwf_complex *cx = scratch_cx(&sc);
        float *gp = scratch_extra(&sc);
        const float *x = avsr_f32(s->wave) + (size_t)b * N;
        int64_t sig = cfg->pad_to > 0 ? cfg->pad_to : s->len[b];
        int64_t start = t * cfg->hop - n / 2;
        for (int k = 0; k < n; k++)
            re[k] = s->win[k] * logmel_sample(x, s->len[b], sig, start + k);
        fftwf_execute_dft_r2c(pr, re, cx);
        const float *gm = gmel + (size_t)bt * M;
        for (int k = 0; k < nf; k++)
            gp[k] = 0.0f;
        for (int m = 0; m < M; m++) {
            const float *r = s->fb + (size_t)m * nf;
            for (int k = s->lo[m]; k < s->hi[m]; k++)
                gp[k] += r[k] * gm[m];
        }
        for (int k = 0; k < nf; k++) {
            float c = 2.0f * gp[k];
            if (k != 0 && 2 * k != n)
                c *= 0.5f;
            cx[k][0] *= c;
            cx[k][1] *= c;
        }
        fftwf_execute_dft_c2r(pc, cx, re);
        for (int k = 0; k < n; k++)
            gf[k] = s->win[k] * re[k];
    }
    /* 3. overlap-add the frame gradients through the reflect padding */
#pragma omp parallel for schedule(static) if (B > 1)
    for (int64_t b = 0; b < B; b++) {
        int64_t len = s->len[b], sig = cfg->pad_to > 0 ? cfg->pad_to : len;
        float *g = gx + (size_t)b * N;
        for (int64_t t = 0; t < s->nfr[b]; t++) {
            const float *gf = gfr + ((size_t)b * T + t) * n;
            int64_t start = t * cfg->hop - n / 2;
            for (int k = 0; k < n; k++) {
                int64_t i = avsr_fn_reflect(start + k, sig);
                if (i < len)
                    g[i] += gf[k];
            }
        }
    }
}

static int check_lengths(avsr_ctx *ctx, const char *op, const int64_t *lengths, int64_t B,
                         int64_t N)
{
    if (!lengths)
        return 0;
    for (int64_t b = 0; b < B; b++)
        if (lengths[b] < 0 || lengths[b] > N) {
            avsr_ctx_fail(ctx, "%s: lengths[%lld] = %lld outside [0, %lld]", op, (long long)b,
                          (long long)lengths[b], (long long)N);
            return -1;
        }
    return 0;
}

static int check_wave(avsr_ctx *ctx, const char *op, const avsr_tensor *wave)
{
    char sb[96];
    if (wave->dtype != AVSR_F32) {
        avsr_ctx_fail(ctx, "%s: wave: expects F32, got %s", op, avsr_dtype_name(wave->dtype));
        return -1;
    }
    if (wave->ndim != 2) {
        avsr_ctx_fail(ctx, "%s: wave: got %s, expected [B, N]", op,
                      avsr_shape_str(wave, sb, sizeof sb));
        return -1;
    }
    return 0;
}

avsr_tensor *avsr_op_logmel_whisper(avsr_ctx *ctx, avsr_tensor *wave, const int64_t *lengths,
                                    const avsr_logmel_cfg *cfgp)
{
    if (!wave || avsr_ctx_failed(ctx))
        return NULL;
    const char *op = "logmel_whisper";
    avsr_logmel_cfg cfg;
    if (cfgp)
        cfg = *cfgp;
    else
        avsr_logmel_whisper_defaults(&cfg);
    if (check_wave(ctx, op, wave) < 0)
        return NULL;
    if (cfg.n_fft < 2 || cfg.hop < 1 || cfg.n_mels < 1 || cfg.sample_rate < 1 ||
        cfg.pad_to < 0 || !(cfg.dyn_range > 0))
        return avsr_ctx_fail(ctx,
                             "%s: cfg: n_fft %d, hop %d, n_mels %d, sample_rate %d, pad_to %lld, "
                             "dyn_range %g: expected n_fft >= 2, hop >= 1, n_mels >= 1, "
                             "pad_to >= 0, dyn_range > 0",
                             op, cfg.n_fft, cfg.hop, cfg.n_mels, cfg.sample_rate,
                             (long long)cfg.pad_to, cfg.dyn_range);
    int64_t B = wave->shape[0], N = wave->shape[1];
    if (check_lengths(ctx, op, lengths, B, N) < 0)
        return NULL;
    int M = cfg.n_mels, n = cfg.n_fft, nf = n / 2 + 1;
    int64_t *len = avsr_ctx_alloc(ctx, sizeof(int64_t) * (size_t)(2 * B + 1));
    if (!len)
        return NULL;
    int64_t *nfr = len + B;
    for (int64_t b = 0; b < B; b++) {
        len[b] = lengths ? lengths[b] : N;
        if (cfg.pad_to > 0 && len[b] > cfg.pad_to)
            return avsr_ctx_fail(ctx, "%s: clip %lld has %lld samples, more than pad_to %lld", op,
                                 (long long)b, (long long)len[b], (long long)cfg.pad_to);
        nfr[b] = avsr_logmel_frames(&cfg, len[b]);
    }
    int64_t T = avsr_logmel_frames(&cfg, N);
    int64_t oshape[3] = {B, M, T};
    avsr_tensor *out = avsr_tensor_new(ctx, AVSR_F32, 3, oshape); /* [B, M, T] */
    float *mel = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(B * T * M + 1)); /* [B, T, M] */
    float *fb = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)M * nf);           /* [M, nf] */
    float *win = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)n);               /* [n] */
    int *lo = avsr_ctx_alloc(ctx, sizeof(int) * 2 * (size_t)M), *hi = lo ? lo + M : NULL;
    float *lmax = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)(B + 1));
    int64_t *amax = avsr_ctx_alloc(ctx, sizeof(int64_t) * (size_t)(B + 1));
    struct fft_scratch sc;
    if (!out || !mel || !fb || !win || !lo || !lmax || !amax || scratch_init(ctx, &sc, n, 0) < 0)
        return NULL;
    fftwf_plan plan = get_plan(ctx, n, PLAN_R2C);
    if (!plan)
        return NULL;
    avsr_mel_filters_slaney(fb, cfg.sample_rate, n, M, cfg.f_min, cfg.f_max);
    filter_ranges(fb, M, nf, lo, hi);
    for (int k = 0; k < n; k++)
        win[k] = (float)avsr_fn_hann(k, n, 1);
    const float *xd = avsr_f32(wave);
    float *y = avsr_f32(out);
    /* 1. mel energies of every valid frame */
#pragma omp parallel for schedule(dynamic, 8) if (B * T > 4)
    for (int64_t bt = 0; bt < B * T; bt++) {
        int64_t b = bt / T, t = bt % T;
        if (t >= nfr[b])
            continue;
        int64_t sig = cfg.pad_to > 0 ? cfg.pad_to : len[b];
        logmel_frame(plan, xd + (size_t)b * N, len[b], sig, t, &cfg, win, fb, lo, hi,
                     scratch_re(&sc), scratch_cx(&sc), mel + (size_t)bt * M);
    }
    /* 2. per clip: log10, its maximum over the valid frames, clamp, scale */
#pragma omp parallel for schedule(static) if (B > 1)
    for (int64_t b = 0; b < B; b++) {
        const float *mb = mel + (size_t)b * T * M;
        float *yb = y + (size_t)b * M * T;
        float mx = -INFINITY;
        int64_t am = 0;
        for (int m = 0; m < M; m++)
            for (int64_t t = 0; t < nfr[b]; t++) {
                float l = avsr_fn_log10_floor(mb[t * M + m]);
                yb[m * T + t] = l;
                if (l > mx) {
                    mx = l;
                    am = m * T + t;
                }
            }
        lmax[b] = mx;
        amax[b] = am;
        float fl = mx - cfg.dyn_range;
        for (int m = 0; m < M; m++) {
            float *row = yb + (size_t)m * T;
            for (int64_t t = 0; t < nfr[b]; t++)
                row[t] = avsr_fn_whisper_scale(row[t], fl);
            for (int64_t t = nfr[b]; t < T; t++)
                row[t] = 0.0f;
        }
    }
    if (avsr_ctx_needs_grad(ctx, 1, &wave)) {
        struct logmel_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct logmel_saved){wave, out, cfg, len, nfr, mel, fb, lo, hi, win, lmax, amax};
        out->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, logmel_backward, out, s) < 0)
            return NULL;
    }
    return out;
}

/* ================================================================ Kaldi fbank */

void avsr_fbank_kaldi_defaults(avsr_fbank_cfg *cfg)
{
    *cfg = (avsr_fbank_cfg){.sample_rate = 16000, .frame_length_ms = 25.0f,
                            .frame_shift_ms = 10.0f, .num_mel_bins = 80, .low_freq = 20.0f,
                            .high_freq = 0.0f, .preemphasis = 0.97f, .remove_dc_offset = true,
                            .round_to_power_of_two = true};
}

/* window and shift in samples (torchaudio: int(sr * ms * 0.001)) */
static void fbank_sizes(const avsr_fbank_cfg *cfg, int *win, int *shift, int *padded)
{
    *win = (int)(cfg->sample_rate * cfg->frame_length_ms * 0.001);
    *shift = (int)(cfg->sample_rate * cfg->frame_shift_ms * 0.001);
    int p = *win;
    if (cfg->round_to_power_of_two) {
        p = 1;
        while (p < *win)
            p <<= 1;
    }
    *padded = p;
}

int64_t avsr_fbank_frames(const avsr_fbank_cfg *cfg, int64_t n)
{
    int win, shift, padded;
    fbank_sizes(cfg, &win, &shift, &padded);
    if (win < 1 || shift < 1 || n < win)
        return 0;
    return 1 + (n - win) / shift;
}

avsr_tensor *avsr_op_fbank_kaldi(avsr_ctx *ctx, avsr_tensor *wave, const int64_t *lengths,
                                 const avsr_fbank_cfg *cfgp)
{
    if (!wave || avsr_ctx_failed(ctx))
        return NULL;
    const char *op = "fbank_kaldi";
    avsr_fbank_cfg cfg;
    if (cfgp)
        cfg = *cfgp;
    else
        avsr_fbank_kaldi_defaults(&cfg);
    if (check_wave(ctx, op, wave) < 0)
        return NULL;
    if (avsr_ctx_needs_grad(ctx, 1, &wave))
        return avsr_ctx_fail(ctx,
                             "%s: wave requires grad, but fbank_kaldi has no gradient with "
                             "respect to the waveform (compute it on a constant input)",
                             op);
    int win, shift, padded;
    fbank_sizes(&cfg, &win, &shift, &padded);
    double nyq = 0.5 * cfg.sample_rate;
    double high = cfg.high_freq <= 0 ? cfg.high_freq + nyq : cfg.high_freq;
    if (win < 2 || shift < 1 || cfg.num_mel_bins < 1 || padded < win || cfg.low_freq < 0 ||
        !(high > cfg.low_freq) || high > nyq)
        return avsr_ctx_fail(ctx,
                             "%s: cfg: window %d samples, shift %d, %d mel bins, %g..%g Hz: "
                             "expected window >= 2, shift >= 1, bins >= 1, "
                             "0 <= low_freq < high_freq <= %g",
                             op, win, shift, cfg.num_mel_bins, cfg.low_freq, high, nyq);
    int64_t B = wave->shape[0], N = wave->shape[1];
    if (check_lengths(ctx, op, lengths, B, N) < 0)
        return NULL;
    int M = cfg.num_mel_bins, nf = padded / 2 + 1;
    int64_t T = avsr_fbank_frames(&cfg, N);
    int64_t oshape[3] = {B, M, T};
    avsr_tensor *out = avsr_tensor_new(ctx, AVSR_F32, 3, oshape); /* [B, M, T] */
    float *fb = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)M * nf);  /* [M, nf] */
    float *wnd = avsr_ctx_alloc(ctx, sizeof(float) * (size_t)win);     /* [win] */
    int *lo = avsr_ctx_alloc(ctx, sizeof(int) * 2 * (size_t)M), *hi = lo ? lo + M : NULL;
    struct fft_scratch sc;
    if (!out || !fb || !wnd || !lo || scratch_init(ctx, &sc, padded, 0) < 0)
        return NULL;
    fftwf_plan plan = get_plan(ctx, padded, PLAN_R2C);
    if (!plan)
        return NULL;
    mel_filters_kaldi(fb, M, padded, cfg.sample_rate, cfg.low_freq, cfg.high_freq);
    filter_ranges(fb, M, nf, lo, hi);
    for (int k = 0; k < win; k++) /* povey: symmetric Hann ^ 0.85 */
        wnd[k] = (float)pow(avsr_fn_hann(k, win, 0), 0.85);
    const float *xd = avsr_f32(wave);
    float *y = avsr_f32(out);
    float pre = cfg.preemphasis;
#pragma omp parallel for schedule(dynamic, 8) if (B * T > 4)
    for (int64_t bt = 0; bt < B * T; bt++) {
        int64_t b = bt / T, t = bt % T;
        int64_t len = lengths ? lengths[b] : N;
        float *yb = y + (size_t)b * M * T;
        if (t >= avsr_fbank_frames(&cfg, len)) {
            for (int m = 0; m < M; m++)
                yb[m * T + t] = 0.0f;
            continue;
        }
        float *re = scratch_re(&sc);
        fftwf_complex *cx = scratch_cx(&sc);
        const float *x = xd + (size_t)b * N + t * shift;
        for (int k = 0; k < win; k++)
            re[k] = x[k];
        if (cfg.remove_dc_offset) {
            float s = 0.0f;
            for (int k = 0; k < win; k++)
                s += re[k];
            float mean = s / (float)win;
            for (int k = 0; k < win; k++)
                re[k] -= mean;
        }
        if (pre != 0.0f) {
            for (int k = win - 1; k > 0; k--)
                re[k] -= pre * re[k - 1];
            re[0] -= pre * re[0];
        }
        for (int k = 0; k < win; k++)
            re[k] *= wnd[k];
        for (int k = win; k < padded; k++)
            re[k] = 0.0f;
        fftwf_execute_dft_r2c(plan, re, cx);
        float *pw = re;
        for (int k = 0; k < nf; k++)
            pw[k] = cx[k][0] * cx[k][0] + cx[k][1] * cx[k][1];
        for (int m = 0; m < M; m++) {
            const float *r = fb + (size_t)m * nf;
            float acc = 0.0f;
            for (int k = lo[m]; k < hi[m]; k++)
                acc += r[k] * pw[k];
            yb[m * T + t] = avsr_fn_log_eps(acc);
        }
    }
    return out;
}

/* ================================================================ stacking */

struct stack_saved {
    avsr_tensor *x, *y;
    int k;
};

static void stack_backward(avsr_ctx *ctx, void *sv)
{
    struct stack_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x))
        return;
    float *gx = avsr_tensor_grad(ctx, s->x); /* [B, F, T] */
    if (!gx)
        return;
    const float *gy = s->y->grad; /* [B, k*F, To] */
    int64_t B = s->x->shape[0], F = s->x->shape[1], T = s->x->shape[2], To = s->y->shape[2];
    int k = s->k;
#pragma omp parallel for collapse(2) schedule(static) if (B * F * T > 32768)
    for (int64_t b = 0; b < B; b++)
        for (int64_t f = 0; f < F; f++)
            for (int64_t t = 0; t < T; t++) {
                int64_t j = t % k, to = t / k;
                gx[(b * F + f) * T + t] += gy[(b * k * F + j * F + f) * To + to];
            }
}

avsr_tensor *avsr_op_stack_frames(avsr_ctx *ctx, avsr_tensor *x, int k)
{
    if (!x || avsr_ctx_failed(ctx))
        return NULL;
    char sb[96];
    if (x->dtype != AVSR_F32 || x->ndim != 3)
        return avsr_ctx_fail(ctx, "stack_frames: x: got %s %s, expected F32 [B, F, T]",
                             avsr_dtype_name(x->dtype), avsr_shape_str(x, sb, sizeof sb));
    if (k < 1)
        return avsr_ctx_fail(ctx, "stack_frames: k = %d, expected >= 1", k);
    int64_t B = x->shape[0], F = x->shape[1], T = x->shape[2], To = (T + k - 1) / k;
    int64_t oshape[3] = {B, k * F, To};
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, 3, oshape); /* [B, k*F, To] */
    if (!y)
        return NULL;
    const float *xd = avsr_f32(x);
    float *yd = avsr_f32(y);
#pragma omp parallel for collapse(2) schedule(static) if (B * F * T > 32768)
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < k * F; c++) {
            int64_t j = c / F, f = c % F;
            float *row = yd + (b * k * F + c) * To;
            const float *xr = xd + (b * F + f) * T;
            for (int64_t to = 0; to < To; to++) {
                int64_t t = to * k + j;
                row[to] = t < T ? xr[t] : 0.0f;
            }
        }
    if (avsr_ctx_needs_grad(ctx, 1, &x)) {
        struct stack_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct stack_saved){x, y, k};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, stack_backward, y, s) < 0)
            return NULL;
    }
    return y;
}

/* ================================================================ SpecAugment */

void avsr_spec_augment_draw(const avsr_specaug_cfg *cfg, uint64_t seed, uint64_t epoch,
                            uint64_t sample_id, uint32_t purpose, int64_t F, int64_t len,
                            int32_t *t0, int32_t *tw, int32_t *f0, int32_t *fw)
{
    avsr_rng r;
    avsr_rng_init(&r, seed, epoch, sample_id, purpose);
    int64_t wt = cfg->max_time > 0 ? cfg->max_time : 0;
    if (cfg->max_time_ratio > 0) {
        int64_t rw = (int64_t)floor((double)cfg->max_time_ratio * (double)len);
        if (rw < wt)
            wt = rw;
    }
    if (wt > len)
        wt = len;
    if (wt < 0)
        wt = 0;
    int64_t wf = cfg->max_freq > 0 ? cfg->max_freq : 0;
    if (wf > F)
        wf = F;
    /* always two draws per mask, so the stream position of mask i does not
     * depend on the sizes */
    for (int i = 0; i < cfg->n_time_masks; i++) {
        uint32_t w = avsr_rng_below(&r, (uint32_t)wt + 1);
        uint32_t s = avsr_rng_below(&r, (uint32_t)(len - w) + 1);
        tw[i] = (int32_t)w;
        t0[i] = (int32_t)s;
    }
    for (int i = 0; i < cfg->n_freq_masks; i++) {
        uint32_t w = avsr_rng_below(&r, (uint32_t)wf + 1);
        uint32_t s = avsr_rng_below(&r, (uint32_t)(F - w) + 1);
        fw[i] = (int32_t)w;
        f0[i] = (int32_t)s;
    }
}

struct specaug_saved {
    avsr_tensor *x, *y;
    uint8_t *mask; /* [B, F, T] 1 = masked */
    int64_t *len;  /* [B] */
    bool fill_mean;
};

static void specaug_backward(avsr_ctx *ctx, void *sv)
{
    struct specaug_saved *s = sv;
    if (!avsr_tensor_requires_grad(s->x))
        return;
    float *gx = avsr_tensor_grad(ctx, s->x);
    if (!gx)
        return;
    const float *gy = s->y->grad;
    int64_t B = s->x->shape[0], F = s->x->shape[1], T = s->x->shape[2];
#pragma omp parallel for schedule(static) if (B * F * T > 32768)
    for (int64_t b = 0; b < B; b++) {
        const uint8_t *mk = s->mask + (size_t)b * F * T;
        const float *g = gy + (size_t)b * F * T;
        float *o = gx + (size_t)b * F * T;
        double gm = 0.0; /* gradient of the fill value (the mean) */
        for (int64_t i = 0; i < F * T; i++) {
            if (mk[i])
                gm += g[i];
            else
                o[i] += g[i];
        }
        int64_t len = s->len[b];
        if (s->fill_mean && len > 0 && gm != 0.0) {
            float d = (float)(gm / ((double)len * (double)F));
            for (int64_t f = 0; f < F; f++)
                for (int64_t t = 0; t < len; t++)
                    o[f * T + t] += d;
        }
    }
}

avsr_tensor *avsr_op_spec_augment(avsr_ctx *ctx, avsr_tensor *feats, const int64_t *lengths,
                                  const avsr_specaug_cfg *cfg, uint32_t purpose)
{
    if (!feats || avsr_ctx_failed(ctx))
        return NULL;
    char sb[96];
    if (feats->dtype != AVSR_F32 || feats->ndim != 3)
        return avsr_ctx_fail(ctx, "spec_augment: feats: got %s %s, expected F32 [B, F, T]",
                             avsr_dtype_name(feats->dtype), avsr_shape_str(feats, sb, sizeof sb));
    if (!cfg)
        return avsr_ctx_fail(ctx, "spec_augment: cfg is NULL");
    if (cfg->n_time_masks < 0 || cfg->n_freq_masks < 0 || cfg->max_time < 0 || cfg->max_freq < 0)
        return avsr_ctx_fail(ctx,
                             "spec_augment: cfg: %d time masks up to %d, %d frequency masks up "
                             "to %d: expected non-negative values",
                             cfg->n_time_masks, cfg->max_time, cfg->n_freq_masks, cfg->max_freq);
    int64_t B = feats->shape[0], F = feats->shape[1], T = feats->shape[2];
    if (check_lengths(ctx, "spec_augment", lengths, B, T) < 0)
        return NULL;
    if (!avsr_ctx_training(ctx))
        return feats;
    avsr_tensor *y = avsr_tensor_new(ctx, AVSR_F32, 3, feats->shape); /* [B, F, T] */
    uint8_t *mask = avsr_ctx_alloc(ctx, (size_t)(B * F * T + 1));     /* [B, F, T] */
    int64_t *len = avsr_ctx_alloc(ctx, sizeof(int64_t) * (size_t)(B + 1));
    int nt = cfg->n_time_masks, nfm = cfg->n_freq_masks;
    int32_t *draws = avsr_ctx_alloc(ctx, sizeof(int32_t) * (size_t)(B * 2 * (nt + nfm) + 1));
    if (!y || !mask || !len || !draws)
        return NULL;
    for (int64_t b = 0; b < B; b++) {
        len[b] = lengths ? lengths[b] : T;
        int32_t *d = draws + b * 2 * (nt + nfm);
        avsr_spec_augment_draw(cfg, ctx->seed, ctx->epoch, avsr_ctx_sample_id(ctx, (int)b),
                               purpose, F, len[b], d, d + nt, d + 2 * nt, d + 2 * nt + nfm);
    }
    const float *xd = avsr_f32(feats);
    float *yd = avsr_f32(y);
#pragma omp parallel for schedule(static) if (B * F * T > 32768)
    for (int64_t b = 0; b < B; b++) {
        const int32_t *d = draws + b * 2 * (nt + nfm);
        const int32_t *t0 = d, *tw = d + nt, *f0 = d + 2 * nt, *fw = d + 2 * nt + nfm;
        uint8_t *mk = mask + (size_t)b * F * T;
        const float *x = xd + (size_t)b * F * T;
        float *o = yd + (size_t)b * F * T;
        int64_t L = len[b];
        memset(mk, 0, (size_t)(F * T));
        for (int i = 0; i < nt; i++)
            for (int64_t f = 0; f < F; f++)
                memset(mk + f * T + t0[i], 1, (size_t)tw[i]);
        for (int i = 0; i < nfm; i++)
            for (int64_t f = f0[i]; f < f0[i] + fw[i]; f++)
                memset(mk + f * T, 1, (size_t)L);
        float fill = 0.0f;
        if (cfg->fill_mean && L > 0) {
            double s = 0.0;
            for (int64_t f = 0; f < F; f++)
                for (int64_t t = 0; t < L; t++)
                    s += x[f * T + t];
            fill = (float)(s / ((double)L * (double)F));
        }
        for (int64_t i = 0; i < F * T; i++)
            o[i] = mk[i] ? fill : x[i];
    }
    if (avsr_ctx_needs_grad(ctx, 1, &feats)) {
        struct specaug_saved *s = avsr_tape_saved(ctx, sizeof *s);
        if (!s)
            return NULL;
        *s = (struct specaug_saved){feats, y, mask, len, cfg->fill_mean};
        y->flags |= AVSR_T_REQUIRES_GRAD;
        if (avsr_tape_record(ctx, specaug_backward, y, s) < 0)
            return NULL;
    }
    return y;
}
