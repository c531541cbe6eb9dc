/* synth: the embedded demo corpus (what avsr-synth writes).
 *
 * Sentences from a GRID-like grammar (command colour preposition letter
 * digit adverb, "BIN BLUE AT F TWO NOW") are spoken by libespeak-ng voices
 * (voice x variant x pitch = one speaker). The phoneme events of the same
 * synthesis call drive a mouth-shape video (viseme.h): 96x96 grey frames at
 * 25 fps, frame k showing time 40k+20 ms. Audio is resampled 22050 -> 16000
 * Hz and padded to n_frames x 640 samples.
 *
 * avsr_synth_corpus() writes a whole corpus directory:
 *     DIR/media/<speaker>/<id>.mkv|.mp4   video (no audio stream)
 *     DIR/media/<speaker>/<id>.wav        16 kHz mono s16 PCM
 *     DIR/speakers.csv                    speaker,split,voice,pitch,range,rate
 *     DIR/train.csv valid.csv test.csv babble.csv
 *                                         id,video,audio,text,speaker
 * with paths relative to DIR. Train, valid, test and babble speakers are
 * disjoint. It is built in DIR.tmp.<pid> and renamed to DIR when complete
 * (manifests written last). Everything is a function of the seed: RNG
 * streams are keyed by (seed, speaker/clip, purpose), espeak-ng is
 * deterministic, and the encoders run bit-exact with one thread.
 *
 * Speech synthesis goes through one espeak-ng helper process (see
 * avsr_tts_init), one request at a time; the rest runs in parallel (OpenMP
 * over clips). */
#ifndef AVSR_SYNTH_H
#define AVSR_SYNTH_H

#include <stdint.h>

#include "datasets/media_write.h"
#include "datasets/viseme.h"
#include "error.h"

#define AVSR_SYNTH_RATE 16000          /* output audio sample rate */
#define AVSR_SYNTH_SAMPLES_PER_FRAME 640 /* 16000 / 25 */
#define AVSR_SYNTH_TEXT_MAX 64
#define AVSR_SYNTH_SPOKEN_MAX 160
#define AVSR_SYNTH_MAX_SPEAKERS 264    /* 8 voices x 11 variants x 3 pitch tiers */
#define AVSR_SYNTH_MAX_CLIPS 100000    /* per speaker */

enum avsr_synth_split {
    AVSR_SPLIT_TRAIN = 0,
    AVSR_SPLIT_VALID,
    AVSR_SPLIT_TEST,
    AVSR_SPLIT_BABBLE,
    AVSR_SPLIT_COUNT
};

/* "train", "valid", "test", "babble" */
const char *avsr_synth_split_name(int split);

typedef struct avsr_synth_speaker {
    char name[16];   /* "s07" */
    char voice[48];  /* espeak-ng voice + variant, "en-us+f3" */
    int pitch;       /* espeak pitch 0..99 */
    int range;       /* espeak pitch range 0..99 */
    int rate;        /* base speaking rate, words per minute */
    int split;       /* enum avsr_synth_split */
    uint32_t index;  /* speaker number: face and RNG streams */
} avsr_synth_speaker;

typedef struct avsr_synth_config {
    uint64_t seed;                /* default 1 */
    int n_speakers;               /* train + valid + test speakers (default 24) */
    int n_valid, n_test;          /* default (-1): max(1, n_speakers / 8) each */
    int n_babble;                 /* babble-pool speakers (default 4) */
    int clips_per_speaker;        /* default 20 */
    int babble_clips;             /* clips per babble speaker (default -1: clips_per_speaker) */
    avsr_video_format format;     /* default AVSR_VIDEO_MKV_FFV1 */
    int force;                    /* replace an existing corpus in DIR (one with train.csv) */
    /* Called after each clip is written (from a worker thread, serialised). */
    void (*progress)(void *user, int done, int total);
    void *progress_user;
} avsr_synth_config;

void avsr_synth_config_default(avsr_synth_config *c);

/* Mean clip length (seconds) that --hours sizing assumes. */
#define AVSR_SYNTH_MEAN_CLIP_S 2.0

/* Clips per speaker that give about `hours` of train+valid+test audio with
 * c->n_speakers speakers (at least 1). */
int avsr_synth_clips_for_hours(const avsr_synth_config *c, double hours);

/* Check a configuration (counts, limits); fills in the -1 defaults of a
 * copy in *resolved. */
int avsr_synth_config_check(const avsr_synth_config *c, avsr_synth_config *resolved,
                            avsr_error *err);

/* All speakers of a (resolved) configuration: train first, then valid,
 * test, babble. *out is malloc'd; *n = n_speakers + n_babble. */
int avsr_synth_speakers(const avsr_synth_config *c, avsr_synth_speaker **out, int *n,
                        avsr_error *err);

/* A GRID sentence for clip key `key`: text (upper case, for the manifest,
 * "BIN BLUE AT F TWO NOW") and spoken (lower case with letter names spelled
 * out for espeak-ng, "bin blue at eff two now."). */
void avsr_synth_grid_sentence(uint64_t seed, uint64_t key, char text[AVSR_SYNTH_TEXT_MAX],
                              char spoken[AVSR_SYNTH_SPOKEN_MAX]);

/* Speech from espeak-ng: samples at the engine's rate (22050 Hz) and the
 * phoneme events of the same call (start in ms, espeak mnemonic). */
typedef struct avsr_tts_phone {
    int start_ms;
    char name[8];
} avsr_tts_phone;

typedef struct avsr_tts_result {
    int16_t *samples;
    int64_t n_samples;
    int sample_rate;
    avsr_tts_phone *phones;
    int n_phones;
} avsr_tts_result;

/* Start the speech engine (idempotent, thread-safe; avsr_tts_speak() calls
 * it too). espeak-ng keeps state across calls, so it runs in a helper
 * process that speaks each request from the same freshly initialised
 * state (a forked child per utterance): the result depends only on the
 * request. Best called before other threads exist. */
int avsr_tts_init(avsr_error *err);
/* Stop the helper process (a later call starts a new one). */
void avsr_tts_shutdown(void);
/* Speak `text` with a voice ("en-us+f3"), rate (words/min), pitch, range. */
int avsr_tts_speak(const char *voice, int rate, int pitch, int range, const char *text,
                   avsr_tts_result *out, avsr_error *err);
void avsr_tts_result_free(avsr_tts_result *r);

/* One rendered clip. */
typedef struct avsr_synth_clip {
    char id[32];                    /* "<speaker>_<clip>", "s07_0003" */
    char text[AVSR_SYNTH_TEXT_MAX]; /* upper case transcript */
    int16_t *audio;                 /* [n_frames * 640] 16 kHz mono */
    int64_t n_samples;
    uint8_t *video;                 /* [n_frames, 96, 96] grey */
    int n_frames;
    avsr_mouth *mouth;              /* [n_frames] mouth parameters drawn */
    avsr_phone *phones;             /* viseme events, ms on the clip's clock */
    int n_phones;
    int speech_end_ms;              /* end of the espeak audio on that clock */
} avsr_synth_clip;

/* Synthesise clip number `clip` of speaker spk (config must be resolved). */
int avsr_synth_make_clip(const avsr_synth_config *c, const avsr_synth_speaker *spk, int clip,
                         avsr_synth_clip *out, avsr_error *err);
void avsr_synth_clip_free(avsr_synth_clip *c);

typedef struct avsr_synth_summary {
    int n_clips[AVSR_SPLIT_COUNT];
    int n_speakers[AVSR_SPLIT_COUNT];
    double seconds[AVSR_SPLIT_COUNT]; /* audio duration per split */
    const char *encoder;              /* video encoder used */
} avsr_synth_summary;

/* Write the corpus into outdir (see the top of this file). sum may be NULL. */
int avsr_synth_corpus(const char *outdir, const avsr_synth_config *c, avsr_synth_summary *sum,
                      avsr_error *err);

#endif
