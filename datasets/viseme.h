/* viseme: phoneme -> viseme classes and a parametric mouth renderer for the
 * synthetic demo corpus (avsr-synth).
 *
 * - 15 viseme classes (the MPEG-4 / Oculus set): sil PP FF TH DD kk CH SS nn
 *   RR aa E ih oh ou. avsr_viseme_from_phoneme() maps espeak-ng phoneme
 *   mnemonics (the names in its PHONEME events) to a class.
 * - Each class has target mouth parameters (avsr_mouth: opening, width,
 *   rounding, teeth and tongue visibility, lip press, lower-lip tuck).
 * - avsr_mouth_track() turns a phoneme timeline into per-frame mouth
 *   parameters at 25 fps (frame k shows time 40k+20 ms), with coarticulation:
 *   the step-wise targets are smoothed by a zero-phase first-order filter
 *   (forward + backward exponential) whose time constant is short for
 *   bilabials and labiodentals, so p/b/m still close the lips.
 * - avsr_mouth_render() draws one 96x96 8-bit grey frame from mouth
 *   parameters and a face (per-speaker shades and geometry, per-clip pose and
 *   lighting), adding sensor noise from a caller-owned RNG stream.
 * Everything here is deterministic given its inputs and thread-safe. */
#ifndef AVSR_VISEME_H
#define AVSR_VISEME_H

#include <stdint.h>

#include "error.h"
#include "rng.h"

#define AVSR_MOUTH_W 96
#define AVSR_MOUTH_H 96
#define AVSR_MOUTH_FPS 25
#define AVSR_MOUTH_MS_PER_FRAME 40

enum avsr_viseme {
    AVSR_VIS_SIL = 0,
    AVSR_VIS_PP,  /* p b m */
    AVSR_VIS_FF,  /* f v */
    AVSR_VIS_TH,  /* T D (thin, this) */
    AVSR_VIS_DD,  /* t d */
    AVSR_VIS_KK,  /* k g N h */
    AVSR_VIS_CH,  /* tS dZ S Z j */
    AVSR_VIS_SS,  /* s z */
    AVSR_VIS_NN,  /* n l */
    AVSR_VIS_RR,  /* r 3: */
    AVSR_VIS_AA,  /* a A: V aI aU */
    AVSR_VIS_E,   /* E eI @ */
    AVSR_VIS_IH,  /* I i: */
    AVSR_VIS_OH,  /* 0 O: oU OI */
    AVSR_VIS_OU,  /* U u: w */
    AVSR_VIS_COUNT
};

/* "sil", "PP", ... ; "?" for an out-of-range class. */
const char *avsr_viseme_name(int v);

/* Viseme class of an espeak-ng phoneme mnemonic ("b", "aU", "3:", "_:").
 * Returns -1 for names that carry no mouth shape of their own (";", the
 * palatalisation mark, and ""), meaning "keep the previous viseme".
 * Unknown names fall back to a guess from their first character. */
int avsr_viseme_from_phoneme(const char *name);

/* Mouth parameters; all in [0, 1] except width (a factor around 1). */
typedef struct avsr_mouth {
    float open;        /* lip opening, fraction of the maximal gap */
    float width;       /* mouth width factor (1 = neutral) */
    float round;       /* lip rounding / protrusion */
    float teeth_up;    /* visibility of the upper teeth */
    float teeth_low;   /* visibility of the lower teeth */
    float tongue;      /* visibility of the tongue inside the mouth */
    float tongue_high; /* tongue tip height (0 low, 1 at the upper teeth) */
    float tongue_out;  /* tongue between the teeth (TH) */
    float press;       /* lips pressed together (PP): thinner, darker seam */
    float tuck;        /* lower lip tucked under the upper teeth (FF) */
} avsr_mouth;

#define AVSR_MOUTH_NPARAM 10

/* Target mouth parameters of a viseme class (v must be valid). */
void avsr_viseme_mouth(int v, avsr_mouth *m);

/* Appearance. Shades are grey levels 0..255. */
typedef struct avsr_face {
    float skin, lip, interior, teeth, tongue; /* shades */
    float half_width;   /* neutral mouth half width, pixels */
    float max_open;     /* maximal lip gap, pixels */
    float lip_up, lip_low; /* lip thickness, pixels */
    float cx, cy;       /* mouth centre, pixels */
    float scale;        /* geometry scale */
    float tilt;         /* head roll, radians */
    float light_gx, light_gy; /* lighting gradient, grey levels per pixel */
    float gain;         /* global gain */
    float noise_sigma;  /* sensor noise, grey levels */
} avsr_face;

/* Face of speaker `speaker` under `seed` (shades, mouth size, lips). */
void avsr_face_speaker(avsr_face *f, uint64_t seed, uint64_t speaker);
/* Per-clip variation drawn from r: position, scale, tilt, lighting, gain,
 * noise level (applied on top of a speaker face). */
void avsr_face_jitter(avsr_face *f, avsr_rng *r);

/* Render one AVSR_MOUTH_W x AVSR_MOUTH_H grey frame into out (row-major).
 * (dx, dy) shift the mouth (head motion); noise (may be NULL: no noise)
 * supplies the sensor noise. */
void avsr_mouth_render(const avsr_mouth *m, const avsr_face *f, float dx, float dy,
                       avsr_rng *noise, uint8_t *out);

/* A phoneme event: start time in ms and viseme class (-1: keep previous). */
typedef struct avsr_phone {
    int start_ms;
    int viseme;
} avsr_phone;

/* Viseme active at time t_ms: the class of the last event with
 * start_ms <= t_ms (events sorted by start), sil before the first one and
 * from end_ms on. */
int avsr_viseme_at(const avsr_phone *ph, int n, int end_ms, int t_ms);

/* Per-frame mouth parameters for n_frames frames at 25 fps (frame k at
 * 40k+20 ms) from events ph[0..n) (sorted, times in ms) that end at end_ms,
 * with coarticulation smoothing (tau_ms: time constant for most visemes,
 * <= 0 means the default 25 ms; PP and FF use a third of it). out holds
 * n_frames entries. Returns 0, or -1 (bad sizes, out of memory) with err set. */
int avsr_mouth_track(const avsr_phone *ph, int n, int end_ms, int n_frames, float tau_ms,
                     avsr_mouth *out, avsr_error *err);

/* Count of "dark interior" pixels of a rendered frame: pixels within the
 * mouth box darker than interior + frac * (lip - interior) (shades of face
 * f, with its lighting and gain). Near zero when the lips are closed. */
int avsr_mouth_dark_pixels(const uint8_t *frame, const avsr_face *f, float frac);

#endif
