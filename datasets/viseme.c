/* viseme: phoneme -> viseme mapping, coarticulated mouth tracks and the
 * parametric mouth renderer (see viseme.h). */
#include "datasets/viseme.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const vis_names[AVSR_VIS_COUNT] = {
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou"};

const char *avsr_viseme_name(int v)
{
    return (v >= 0 && v < AVSR_VIS_COUNT) ? vis_names[v] : "?";
}

/* ---- phoneme mnemonics (espeak-ng, English voices) ----------------------
 * Consonants follow the MPEG-4/Oculus examples; vowels are assigned by
 * mouth opening and rounding (reference/data-eval.md section 6). */
static const struct {
    const char *ph;
    int vis;
} ph_map[] = {
    {"_", AVSR_VIS_SIL},   {"_:", AVSR_VIS_SIL},  {"_!", AVSR_VIS_SIL},  {"_|", AVSR_VIS_SIL},
    {"p", AVSR_VIS_PP},    {"b", AVSR_VIS_PP},    {"m", AVSR_VIS_PP},    {"m-", AVSR_VIS_PP},
    {"f", AVSR_VIS_FF},    {"v", AVSR_VIS_FF},
    {"T", AVSR_VIS_TH},    {"D", AVSR_VIS_TH},
    {"t", AVSR_VIS_DD},    {"d", AVSR_VIS_DD},    {"t#", AVSR_VIS_DD},   {"d#", AVSR_VIS_DD},
    {"t2", AVSR_VIS_DD},   {"d2", AVSR_VIS_DD},   {"*", AVSR_VIS_DD},
    {"k", AVSR_VIS_KK},    {"g", AVSR_VIS_KK},    {"N", AVSR_VIS_KK},    {"h", AVSR_VIS_KK},
    {"x", AVSR_VIS_KK},    {"?", AVSR_VIS_KK},
    {"tS", AVSR_VIS_CH},   {"dZ", AVSR_VIS_CH},   {"S", AVSR_VIS_CH},    {"Z", AVSR_VIS_CH},
    {"j", AVSR_VIS_CH},
    {"s", AVSR_VIS_SS},    {"z", AVSR_VIS_SS},
    {"n", AVSR_VIS_NN},    {"l", AVSR_VIS_NN},    {"@L", AVSR_VIS_NN},   {"n-", AVSR_VIS_NN},
    {"l-", AVSR_VIS_NN},   {"L", AVSR_VIS_NN},
    {"r", AVSR_VIS_RR},    {"r-", AVSR_VIS_RR},   {"3:", AVSR_VIS_RR},   {"3", AVSR_VIS_RR},
    {"R", AVSR_VIS_RR},    {"r/", AVSR_VIS_RR},
    {"a", AVSR_VIS_AA},    {"A:", AVSR_VIS_AA},   {"A@", AVSR_VIS_AA},   {"V", AVSR_VIS_AA},
    {"aI", AVSR_VIS_AA},   {"aU", AVSR_VIS_AA},   {"a#", AVSR_VIS_AA},   {"A", AVSR_VIS_AA},
    {"aI@", AVSR_VIS_AA},  {"aU@", AVSR_VIS_AA},  {"a2", AVSR_VIS_AA},   {"aI3", AVSR_VIS_AA},
    {"E", AVSR_VIS_E},     {"e@", AVSR_VIS_E},    {"eI", AVSR_VIS_E},    {"@", AVSR_VIS_E},
    {"@2", AVSR_VIS_E},    {"@5", AVSR_VIS_E},    {"e", AVSR_VIS_E},     {"E2", AVSR_VIS_E},
    {"I", AVSR_VIS_IH},    {"i:", AVSR_VIS_IH},   {"i", AVSR_VIS_IH},    {"I2", AVSR_VIS_IH},
    {"I#", AVSR_VIS_IH},   {"i@", AVSR_VIS_IH},   {"i@3", AVSR_VIS_IH},
    {"0", AVSR_VIS_OH},    {"O:", AVSR_VIS_OH},   {"O@", AVSR_VIS_OH},   {"O2", AVSR_VIS_OH},
    {"o@", AVSR_VIS_OH},   {"oU", AVSR_VIS_OH},   {"OI", AVSR_VIS_OH},   {"O", AVSR_VIS_OH},
    {"o", AVSR_VIS_OH},
    {"U", AVSR_VIS_OU},    {"u:", AVSR_VIS_OU},   {"U@", AVSR_VIS_OU},   {"w", AVSR_VIS_OU},
    {"u", AVSR_VIS_OU},    {"u@", AVSR_VIS_OU},
};

static int map_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof ph_map / sizeof ph_map[0]; i++)
        if (strcmp(ph_map[i].ph, name) == 0)
            return ph_map[i].vis;
    return -2;
}

int avsr_viseme_from_phoneme(const char *name)
{
    if (!name || !name[0] || strcmp(name, ";") == 0)
        return -1;
    int v = map_lookup(name);
    if (v >= 0)
        return v;
    /* strip length / variant marks ("a#", "O:", "l-", "e2") and retry */
    char buf[16];
    size_t n = strlen(name);
    if (n >= sizeof buf)
        n = sizeof buf - 1;
    memcpy(buf, name, n);
    buf[n] = '\0';
    while (n > 1 && strchr(":#-;!0123456789", buf[n - 1]))
        buf[--n] = '\0';
    v = map_lookup(buf);
    if (v >= 0)
        return v;
    switch (name[0]) {
    case '_': return AVSR_VIS_SIL;
    case 'a': case 'A': case 'V': return AVSR_VIS_AA;
    case 'e': case 'E': case '@': return AVSR_VIS_E;
    case 'i': case 'I': case 'y': case 'Y': return AVSR_VIS_IH;
    case 'o': case 'O': case '0': return AVSR_VIS_OH;
    case 'u': case 'U': case 'w': case 'W': return AVSR_VIS_OU;
    case 'p': case 'b': case 'm': return AVSR_VIS_PP;
    case 'f': case 'v': return AVSR_VIS_FF;
    case 't': case 'd': return AVSR_VIS_DD;
    case 'k': case 'g': case 'N': case 'h': case 'x': case 'q': case 'G': return AVSR_VIS_KK;
    case 's': case 'z': return AVSR_VIS_SS;
    case 'S': case 'Z': case 'j': case 'c': case 'J': return AVSR_VIS_CH;
    case 'n': case 'l': case 'L': return AVSR_VIS_NN;
    case 'r': case 'R': case '3': return AVSR_VIS_RR;
    case 'T': case 'D': return AVSR_VIS_TH;
    default: return AVSR_VIS_SIL;
    }
}

/* ---- target mouth shapes -------------------------------------------------
 *            open  width round tUp  tLow tong  tHigh tOut press tuck */
static const float vis_shape[AVSR_VIS_COUNT][AVSR_MOUTH_NPARAM] = {
    /* sil */ {0.05f, 1.00f, 0.00f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f},
    /* PP  */ {0.00f, 0.92f, 0.10f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f},
    /* FF  */ {0.10f, 1.00f, 0.00f, 1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f},
    /* TH  */ {0.22f, 1.00f, 0.00f, 0.8f, 0.5f, 0.0f, 0.0f, 1.0f, 0.0f, 0.0f},
    /* DD  */ {0.34f, 1.06f, 0.00f, 0.8f, 0.6f, 0.5f, 1.0f, 0.0f, 0.0f, 0.0f},
    /* kk  */ {0.42f, 1.00f, 0.00f, 0.3f, 0.2f, 0.9f, 0.0f, 0.0f, 0.0f, 0.0f},
    /* CH  */ {0.24f, 0.80f, 0.65f, 1.0f, 1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f},
    /* SS  */ {0.13f, 1.12f, 0.00f, 1.0f, 1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f},
    /* nn  */ {0.18f, 0.92f, 0.00f, 0.3f, 0.0f, 1.0f, 0.8f, 0.0f, 0.0f, 0.0f},
    /* RR  */ {0.24f, 0.76f, 0.75f, 0.5f, 0.0f, 0.3f, 0.3f, 0.0f, 0.0f, 0.0f},
    /* aa  */ {1.00f, 1.00f, 0.00f, 0.6f, 0.3f, 0.5f, 0.0f, 0.0f, 0.0f, 0.0f},
    /* E   */ {0.60f, 1.10f, 0.00f, 0.8f, 0.5f, 0.4f, 0.2f, 0.0f, 0.0f, 0.0f},
    /* ih  */ {0.36f, 1.16f, 0.00f, 1.0f, 0.8f, 0.2f, 0.4f, 0.0f, 0.0f, 0.0f},
    /* oh  */ {0.68f, 0.70f, 1.00f, 0.2f, 0.0f, 0.3f, 0.0f, 0.0f, 0.0f, 0.0f},
    /* ou  */ {0.26f, 0.58f, 1.00f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f},
};

static void mouth_from_array(const float *a, avsr_mouth *m)
{
    m->open = a[0];
    m->width = a[1];
    m->round = a[2];
    m->teeth_up = a[3];
    m->teeth_low = a[4];
    m->tongue = a[5];
    m->tongue_high = a[6];
    m->tongue_out = a[7];
    m->press = a[8];
    m->tuck = a[9];
}

void avsr_viseme_mouth(int v, avsr_mouth *m)
{
    if (v < 0 || v >= AVSR_VIS_COUNT)
        v = AVSR_VIS_SIL;
    mouth_from_array(vis_shape[v], m);
}

/* ---- faces ---------------------------------------------------------------- */
#define FACE_PURPOSE 0x53594e46u /* "SYNF" */

static float urange(avsr_rng *r, float lo, float hi) { return lo + (hi - lo) * avsr_rng_uniform(r); }

void avsr_face_speaker(avsr_face *f, uint64_t seed, uint64_t speaker)
{
    avsr_rng r;
    avsr_rng_init(&r, seed, 0, speaker, FACE_PURPOSE);
    memset(f, 0, sizeof *f);
    f->skin = urange(&r, 105.0f, 200.0f);
    f->lip = f->skin * urange(&r, 0.62f, 0.78f);
    f->interior = urange(&r, 10.0f, 34.0f);
    f->teeth = urange(&r, 190.0f, 240.0f);
    f->tongue = fminf(f->lip + urange(&r, 20.0f, 35.0f), 235.0f);
    f->half_width = urange(&r, 27.0f, 33.0f);
    f->max_open = urange(&r, 28.0f, 34.0f);
    f->lip_up = urange(&r, 6.0f, 8.5f);
    f->lip_low = urange(&r, 7.0f, 10.5f);
    f->cx = 48.0f;
    f->cy = 50.0f;
    f->scale = 1.0f;
    f->tilt = 0.0f;
    f->light_gx = f->light_gy = 0.0f;
    f->gain = 1.0f;
    f->noise_sigma = 0.0f;
}

void avsr_face_jitter(avsr_face *f, avsr_rng *r)
{
    f->cx += fmaxf(-3.0f, fminf(3.0f, 1.2f * avsr_rng_normal(r)));
    f->cy += fmaxf(-3.0f, fminf(3.0f, 1.2f * avsr_rng_normal(r)));
    f->scale *= urange(r, 0.94f, 1.06f);
    f->tilt = urange(r, -0.06f, 0.06f);
    f->light_gx = urange(r, -0.45f, 0.45f);
    f->light_gy = urange(r, -0.45f, 0.45f);
    f->gain = urange(r, 0.9f, 1.1f);
    f->noise_sigma = urange(r, 1.5f, 5.0f);
}

/* ---- rendering ------------------------------------------------------------ */
static float clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* coverage of a pixel by the region {d < 0}, d a signed distance in pixels */
static float cover(float d) { return clampf(0.5f - d, 0.0f, 1.0f); }

/* approximate signed distance to an axis-aligned ellipse with semi-axes a, b */
static float ellipse_sd(float u, float v, float a, float b)
{
    float q = sqrtf((u * u) / (a * a) + (v * v) / (b * b));
    return (q - 1.0f) * fminf(a, b);
}

static float smooth01(float x, float lo, float hi)
{
    float t = clampf((x - lo) / (hi - lo), 0.0f, 1.0f);
    return t * t * (3.0f - 2.0f * t);
}

static float mixf(float a, float b, float t) { return a + (b - a) * t; }

/* Geometry of one mouth under one face, in pixels. */
typedef struct mouth_geom {
    float w;          /* outer half width */
    float hi, wi;     /* interior half height / half width */
    float tu, tl;     /* upper / lower lip thickness */
    float closed_vis; /* 0 when the gap is closed, 1 when open */
    float th_u, th_l; /* visible teeth band heights */
} mouth_geom;

static void mouth_geometry(const avsr_mouth *m, const avsr_face *f, mouth_geom *g)
{
    float s = f->scale;
    g->w = f->half_width * s * m->width;
    g->hi = 0.5f * f->max_open * s * clampf(m->open, 0.0f, 1.2f);
    g->wi = g->w * (0.84f - 0.22f * m->round);
    float thick = (1.0f - 0.45f * m->press) * (1.0f + 0.35f * m->round);
    g->tu = f->lip_up * s * thick;
    g->tl = f->lip_low * s * thick * (1.0f - 0.25f * m->tuck);
    g->closed_vis = smooth01(g->hi, 0.25f, 1.25f);
    float tooth = 4.5f * s;
    g->th_u = m->teeth_up * fminf(tooth, 0.75f * g->hi + 0.6f);
    g->th_l = m->teeth_low * fminf(0.8f * tooth, 0.6f * g->hi + 0.4f);
}

/* Approximately normal noise, cheaply: the sum of the four bytes of one
 * random word (Irwin-Hall, n = 4), scaled to zero mean and unit variance. */
static float sensor_noise(avsr_rng *r)
{
    uint32_t x = avsr_rng_u32(r);
    int sum = (int)(x & 255u) + (int)((x >> 8) & 255u) + (int)((x >> 16) & 255u) + (int)(x >> 24);
    return ((float)sum - 510.0f) * (1.0f / 147.80f);
}

void avsr_mouth_render(const avsr_mouth *m, const avsr_face *f, float dx, float dy,
                       avsr_rng *noise, uint8_t *out)
{
    mouth_geom g;
    mouth_geometry(m, f, &g);
    float cx = f->cx + dx, cy = f->cy + dy;
    float ct = cosf(f->tilt), st = sinf(f->tilt);
    float s = f->scale;
    float lip_up_shade = f->lip - 8.0f, lip_low_shade = f->lip + 6.0f;
    float seam = 0.30f + 0.15f * m->press; /* seam darkness, fraction of lip-interior */
    float tongue_out_h = fmaxf(0.9f * g.hi, 2.5f * s);
    float bow_w = 0.16f * g.w;
    for (int y = 0; y < AVSR_MOUTH_H; y++) {
        for (int x = 0; x < AVSR_MOUTH_W; x++) {
            float px = (float)x + 0.5f - cx, py = (float)y + 0.5f - cy;
            float u = ct * px + st * py;  /* along the mouth */
            float v = -st * px + ct * py; /* down */
            float val = f->skin;
            float below = v - (g.hi + g.tl);
            /* far from the mouth (shadows below 0.2 grey levels): skin only */
            if (fabsf(u) > 3.2f * g.w || v < -(g.hi + g.tu) - 2.0f || below > 40.0f * s)
                goto shade;
            /* skin with a soft shadow under the lower lip and a jaw shadow
             * that deepens as the mouth opens */
            float shadow = 14.0f * expf(-0.5f * (below - 3.0f * s) * (below - 3.0f * s) / (4.0f * s * s));
            float jaw = 10.0f * clampf(m->open, 0.0f, 1.0f) *
                        expf(-0.5f * (below - 14.0f * s) * (below - 14.0f * s) / (16.0f * s * s));
            float side = expf(-0.5f * u * u / (g.w * g.w));
            val -= (shadow + jaw) * side;
            /* lips: upper and lower half-ellipses, with a Cupid's bow dip */
            float bu = g.hi + g.tu - 0.3f * g.tu * expf(-(u * u) / (bow_w * bow_w));
            float bl = g.hi + g.tl;
            float d_out = v < 0.0f ? ellipse_sd(u, v, g.w, bu) : ellipse_sd(u, v, g.w, bl);
            float c_lip = cover(d_out);
            if (c_lip > 0.0f) {
                float lip = v < 0.0f ? lip_up_shade : lip_low_shade;
                /* highlight on the lower lip */
                if (v > 0.0f)
                    lip += 10.0f * expf(-0.5f * ((v - g.hi - 0.5f * g.tl) * (v - g.hi - 0.5f * g.tl)) /
                                        (1.5f * s * s)) * expf(-0.5f * u * u / (0.3f * g.w * g.w));
                val = mixf(val, lip, c_lip);
                /* seam where the lips meet */
                float c_seam = (1.0f - g.closed_vis) * cover(fabsf(v) - 0.6f) *
                               cover(fabsf(u) - 0.92f * g.w);
                val = mixf(val, f->lip - seam * (f->lip - f->interior), c_seam);
                /* interior */
                float c_in = 0.0f;
                if (g.hi > 0.05f)
                    c_in = g.closed_vis * cover(ellipse_sd(u, v, g.wi, g.hi));
                if (c_in > 0.0f) {
                    float in = f->interior;
                    /* tongue */
                    if (m->tongue > 0.0f) {
                        float tcy = g.hi * (0.6f - 1.1f * m->tongue_high);
                        float c_t = cover(ellipse_sd(u, v - tcy, 0.62f * g.wi, 0.55f * g.hi + 0.5f));
                        in = mixf(in, f->tongue, c_t * clampf(m->tongue, 0.0f, 1.0f));
                    }
                    /* teeth: bands below the upper lip and above the lower one */
                    float t_side = cover(fabsf(u) - 0.72f * g.wi);
                    if (g.th_u > 0.0f)
                        in = mixf(in, f->teeth, t_side * cover(v - (-g.hi + g.th_u)));
                    if (g.th_l > 0.0f)
                        in = mixf(in, f->teeth - 12.0f, t_side * cover((g.hi - g.th_l) - v));
                    val = mixf(val, in, c_in);
                }
                /* tongue between the teeth (TH) */
                if (m->tongue_out > 0.0f) {
                    float c_to = cover(ellipse_sd(u, v - 0.3f * tongue_out_h, 0.42f * g.w,
                                                  tongue_out_h));
                    val = mixf(val, f->tongue, c_to * clampf(m->tongue_out, 0.0f, 1.0f) * c_lip);
                }
                /* upper teeth resting on the tucked lower lip (FF) */
                if (m->tuck > 0.0f) {
                    float c_tk = cover(fabsf(u) - 0.5f * g.w) * cover(-v - 0.5f) *
                                 cover(v - (g.hi + 3.5f * s * m->tuck));
                    val = mixf(val, f->teeth, c_tk * clampf(m->tuck, 0.0f, 1.0f) * c_lip);
                }
            }
        shade:
            /* lighting, gain, sensor noise */
            val = f->gain * val + f->light_gx * ((float)x - 47.5f) + f->light_gy * ((float)y - 47.5f);
            if (noise && f->noise_sigma > 0.0f)
                val += f->noise_sigma * sensor_noise(noise);
            val = clampf(val + 0.5f, 0.0f, 255.0f);
            out[y * AVSR_MOUTH_W + x] = (uint8_t)val;
        }
    }
}

int avsr_mouth_dark_pixels(const uint8_t *frame, const avsr_face *f, float frac)
{
    float bw = f->half_width * f->scale * 1.3f + 3.0f;
    float bh = f->max_open * f->scale + 4.0f;
    int count = 0;
    for (int y = 0; y < AVSR_MOUTH_H; y++) {
        for (int x = 0; x < AVSR_MOUTH_W; x++) {
            if (fabsf((float)x + 0.5f - f->cx) > bw || fabsf((float)y + 0.5f - f->cy) > bh)
                continue;
            float thr = f->interior + frac * (f->lip - 8.0f - f->interior);
            thr = f->gain * thr + f->light_gx * ((float)x - 47.5f) + f->light_gy * ((float)y - 47.5f);
            if ((float)frame[y * AVSR_MOUTH_W + x] < thr)
                count++;
        }
    }
    return count;
}

/* ---- timelines and coarticulation ---------------------------------------- */
int avsr_viseme_at(const avsr_phone *ph, int n, int end_ms, int t_ms)
{
    if (t_ms >= end_ms)
        return AVSR_VIS_SIL;
    int cur = AVSR_VIS_SIL;
    for (int i = 0; i < n && ph[i].start_ms <= t_ms; i++)
        if (ph[i].viseme >= 0)
            cur = ph[i].viseme;
    return cur;
}

int avsr_mouth_track(const avsr_phone *ph, int n, int end_ms, int n_frames, float tau_ms,
                     avsr_mouth *out, avsr_error *err)
{
    if (n_frames < 0 || end_ms < 0 || n < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "mouth track: negative size (events %d, end %d ms, frames %d)", n,
                              end_ms, n_frames);
    if (n_frames == 0)
        return 0;
    if (tau_ms <= 0.0f)
        tau_ms = 25.0f;
    int T = n_frames * AVSR_MOUTH_MS_PER_FRAME; /* 1 ms steps */
    if (end_ms > T)
        T = end_ms;
    const int P = AVSR_MOUTH_NPARAM;
    float *y = malloc(sizeof(float) * (size_t)T * (size_t)P); /* [T, P] */
    float *alpha = malloc(sizeof(float) * (size_t)T);         /* [T] */
    if (!y || !alpha) {
        free(y);
        free(alpha);
        return AVSR_NOMEM(err, sizeof(float) * (size_t)T * (size_t)(P + 1));
    }
    float a_norm = 1.0f - expf(-1.0f / tau_ms);
    float a_fast = 1.0f - expf(-3.0f / tau_ms);
    /* step-wise targets, walking the events once */
    int cur = AVSR_VIS_SIL, i = 0;
    for (int t = 0; t < T; t++) {
        while (i < n && ph[i].start_ms <= t) {
            if (ph[i].viseme >= 0)
                cur = ph[i].viseme;
            i++;
        }
        int v = t >= end_ms ? AVSR_VIS_SIL : cur;
        memcpy(y + (size_t)t * P, vis_shape[v], sizeof(float) * P);
        alpha[t] = (v == AVSR_VIS_PP || v == AVSR_VIS_FF) ? a_fast : a_norm;
    }
    /* zero-phase smoothing: forward then backward first-order filter */
    for (int t = 1; t < T; t++)
        for (int p = 0; p < P; p++) {
            float *c = y + (size_t)t * P + p;
            c[0] = c[-P] + alpha[t] * (c[0] - c[-P]);
        }
    for (int t = T - 2; t >= 0; t--)
        for (int p = 0; p < P; p++) {
            float *c = y + (size_t)t * P + p;
            c[0] = c[P] + alpha[t] * (c[0] - c[P]);
        }
    for (int k = 0; k < n_frames; k++) {
        int t = k * AVSR_MOUTH_MS_PER_FRAME + AVSR_MOUTH_MS_PER_FRAME / 2;
        mouth_from_array(y + (size_t)t * P, &out[k]);
    }
    free(y);
    free(alpha);
    return 0;
}
