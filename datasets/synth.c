/* synth: GRID sentences, espeak-ng speech with phoneme events, rendered
 * mouth video, and the corpus writer (see synth.h). */
#define _GNU_SOURCE /* nftw */
#include "datasets/synth.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <espeak-ng/speak_lib.h>

#include "fileio.h"
#include "rng.h"

/* RNG purposes of this module (streams are keyed by seed, speaker or clip
 * key, and one of these). */
enum {
    P_SPEAKERS = 0x53590001u, /* speaker pool permutation and voices */
    P_TEXT = 0x53590002u,     /* sentence */
    P_PROSODY = 0x53590003u,  /* rate, padding */
    P_FACE = 0x53590004u,     /* per-clip pose and lighting */
    P_MOTION = 0x53590005u,   /* per-frame head motion */
    P_NOISE = 0x53590006u     /* sensor noise */
};

static const char *const split_names[AVSR_SPLIT_COUNT] = {"train", "valid", "test", "babble"};

const char *avsr_synth_split_name(int split)
{
    return (split >= 0 && split < AVSR_SPLIT_COUNT) ? split_names[split] : "?";
}

/* ---- configuration and speakers ----------------------------------------- */
void avsr_synth_config_default(avsr_synth_config *c)
{
    memset(c, 0, sizeof *c);
    c->seed = 1;
    c->n_speakers = 24;
    c->n_valid = -1;
    c->n_test = -1;
    c->n_babble = 4;
    c->clips_per_speaker = 20;
    c->babble_clips = -1;
    c->format = AVSR_VIDEO_MKV_FFV1;
}

int avsr_synth_clips_for_hours(const avsr_synth_config *c, double hours)
{
    int ns = c->n_speakers > 0 ? c->n_speakers : 1;
    double clips = ceil(hours * 3600.0 / (AVSR_SYNTH_MEAN_CLIP_S * ns));
    if (!(clips >= 1.0))
        return 1;
    return clips > AVSR_SYNTH_MAX_CLIPS ? AVSR_SYNTH_MAX_CLIPS : (int)clips;
}

int avsr_synth_config_check(const avsr_synth_config *c, avsr_synth_config *r, avsr_error *err)
{
    *r = *c;
    if (r->n_valid < 0)
        r->n_valid = r->n_speakers / 8 > 1 ? r->n_speakers / 8 : 1;
    if (r->n_test < 0)
        r->n_test = r->n_speakers / 8 > 1 ? r->n_speakers / 8 : 1;
    if (r->babble_clips < 0)
        r->babble_clips = r->clips_per_speaker;
    if (r->n_speakers < 3)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "synth: speakers: got %d, expected at least 3 (train, valid, test)",
                              r->n_speakers);
    if (r->n_valid < 1 || r->n_test < 1 || r->n_valid + r->n_test >= r->n_speakers)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "synth: valid/test speakers: got %d/%d of %d, expected each >= 1 "
                              "and at least one training speaker left",
                              r->n_valid, r->n_test, r->n_speakers);
    if (r->n_babble < 0 || r->n_speakers + r->n_babble > AVSR_SYNTH_MAX_SPEAKERS)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "synth: speakers + babble speakers: got %d + %d, expected at most %d "
                              "in all",
                              r->n_speakers, r->n_babble, AVSR_SYNTH_MAX_SPEAKERS);
    if (r->clips_per_speaker < 1 || r->clips_per_speaker > AVSR_SYNTH_MAX_CLIPS ||
        r->babble_clips < 0 || r->babble_clips > AVSR_SYNTH_MAX_CLIPS)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "synth: clips per speaker: got %d (babble %d), expected 1..%d",
                              r->clips_per_speaker, r->babble_clips, AVSR_SYNTH_MAX_CLIPS);
    if (r->format != AVSR_VIDEO_MKV_FFV1 && r->format != AVSR_VIDEO_MP4)
        return avsr_error_set(err, AVSR_ERR_INVALID, "synth: unknown video format %d",
                              (int)r->format);
    return 0;
}

/* English espeak-ng voices (en = en-gb) and voice variants. */
static const char *const synth_voices[] = {"en-us",       "en",           "en-gb-scotland",
                                           "en-029",      "en-gb-x-rp",   "en-gb-x-gbclan",
                                           "en-gb-x-gbcwmd", "en-us-nyc"};
static const char *const synth_variants[] = {"m1", "m2", "m3", "m4", "m5", "m6",
                                             "m7", "f1", "f2", "f3", "f4"};
#define N_VOICES ((int)(sizeof synth_voices / sizeof synth_voices[0]))
#define N_VARIANTS ((int)(sizeof synth_variants / sizeof synth_variants[0]))

int avsr_synth_speakers(const avsr_synth_config *c, avsr_synth_speaker **out, int *n,
                        avsr_error *err)
{
    *out = NULL;
    *n = 0;
    int total = c->n_speakers + c->n_babble;
    if (total <= 0 || total > AVSR_SYNTH_MAX_SPEAKERS)
        return avsr_error_set(err, AVSR_ERR_INVALID, "synth: %d speakers, expected 1..%d", total,
                              AVSR_SYNTH_MAX_SPEAKERS);
    avsr_synth_speaker *s = calloc((size_t)total, sizeof *s);
    if (!s)
        return AVSR_NOMEM(err, sizeof *s * (size_t)total);
    /* a seeded permutation of voice x variant combinations; speakers past
     * the first N_VOICES * N_VARIANTS reuse combinations in a new pitch tier */
    enum { NC = N_VOICES * N_VARIANTS };
    int perm[NC];
    avsr_rng r;
    avsr_rng_init(&r, c->seed, 0, 0, P_SPEAKERS);
    for (int i = 0; i < NC; i++)
        perm[i] = i;
    for (int i = NC - 1; i > 0; i--) {
        int j = (int)avsr_rng_below(&r, (uint32_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int n_train = c->n_speakers - c->n_valid - c->n_test;
    for (int i = 0; i < total; i++) {
        avsr_synth_speaker *sp = &s[i];
        int combo = perm[i % NC], tier = i / NC;
        int voice = combo / N_VARIANTS, var = combo % N_VARIANTS;
        int female = synth_variants[var][0] == 'f';
        avsr_rng vr, pr;
        avsr_rng_init(&vr, c->seed, 1, (uint64_t)i, P_SPEAKERS);
        avsr_rng_init(&pr, c->seed, 3, (uint64_t)(i % NC), P_SPEAKERS); /* the combination's pitch */
        sp->index = (uint32_t)i;
        snprintf(sp->name, sizeof sp->name, "s%02d", i);
        snprintf(sp->voice, sizeof sp->voice, "%s+%s", synth_voices[voice], synth_variants[var]);
        /* pitch: drawn per combination (20-60 male, 40-80 female); the
         * second and third use of a combination are 12 lower / higher */
        int lo = female ? 40 : 20, hi = female ? 80 : 60;
        sp->pitch = lo + (int)avsr_rng_below(&pr, (uint32_t)(hi - lo + 1)) +
                    (tier == 1 ? -12 : tier >= 2 ? 12 : 0);
        sp->range = 30 + (int)avsr_rng_below(&vr, 51);
        sp->rate = 140 + (int)avsr_rng_below(&vr, 51);
        sp->split = i < n_train                              ? AVSR_SPLIT_TRAIN
                    : i < n_train + c->n_valid               ? AVSR_SPLIT_VALID
                    : i < c->n_speakers                      ? AVSR_SPLIT_TEST
                                                             : AVSR_SPLIT_BABBLE;
    }
    *out = s;
    *n = total;
    return 0;
}

/* ---- grammar ---------------------------------------------------------------- */
static const char *const g_command[] = {"BIN", "LAY", "PLACE", "SET"};
static const char *const g_colour[] = {"BLUE", "GREEN", "RED", "WHITE"};
static const char *const g_prep[] = {"AT", "BY", "IN", "WITH"};
static const char *const g_digit[] = {"ZERO", "ONE", "TWO",   "THREE", "FOUR",
                                      "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"};
static const char *const g_adverb[] = {"AGAIN", "NOW", "PLEASE", "SOON"};
/* letters A-Z without W, with spellings espeak-ng reads as the letter name
 * ("a" alone would be the article) */
static const char g_letters[] = "ABCDEFGHIJKLMNOPQRSTUVXYZ";
static const char *const g_letter_spoken[] = {
    "eh", "bee", "see", "dee", "ee",  "eff", "gee", "aitch", "eye", "jay", "kay", "ell", "em",
    "en", "oh",  "pee", "cue", "are", "ess", "tee", "you",   "vee", "ex",  "why", "zed"};

static void append_lower(char *dst, size_t cap, const char *word)
{
    size_t n = strlen(dst);
    for (; *word && n + 1 < cap; word++)
        dst[n++] = (char)(*word >= 'A' && *word <= 'Z' ? *word - 'A' + 'a' : *word);
    dst[n] = '\0';
}

void avsr_synth_grid_sentence(uint64_t seed, uint64_t key, char text[AVSR_SYNTH_TEXT_MAX],
                              char spoken[AVSR_SYNTH_SPOKEN_MAX])
{
    avsr_rng r;
    avsr_rng_init(&r, seed, 0, key, P_TEXT);
    const char *cmd = g_command[avsr_rng_below(&r, 4)];
    const char *col = g_colour[avsr_rng_below(&r, 4)];
    const char *prep = g_prep[avsr_rng_below(&r, 4)];
    int li = (int)avsr_rng_below(&r, (uint32_t)(sizeof g_letters - 1));
    const char *dig = g_digit[avsr_rng_below(&r, 10)];
    const char *adv = g_adverb[avsr_rng_below(&r, 4)];
    snprintf(text, AVSR_SYNTH_TEXT_MAX, "%s %s %s %c %s %s", cmd, col, prep, g_letters[li], dig,
             adv);
    spoken[0] = '\0';
    const char *words[6] = {cmd, col, prep, g_letter_spoken[li], dig, adv};
    for (int i = 0; i < 6; i++) {
        append_lower(spoken, AVSR_SYNTH_SPOKEN_MAX, words[i]);
        append_lower(spoken, AVSR_SYNTH_SPOKEN_MAX, i < 5 ? " " : ".");
    }
}

/* ---- espeak-ng ------------------------------------------------------------ *
 * espeak-ng 1.51 keeps state across synthesis calls (pitch flutter phase,
 * wave phase, rand()-driven noise), so the same request gives slightly
 * different audio depending on what was spoken before. To make every
 * utterance a pure function of its request, the engine lives in a helper
 * process forked by avsr_tts_init(): it initialises espeak-ng once and never
 * speaks itself; for each request it forks a child that speaks from that
 * pristine state into a shared memory area and exits. The helper sends the
 * result back over a pipe. */
#define TTS_SHM_BYTES ((size_t)32 << 20)
#define TTS_MAX_PHONES 8192
#define TTS_MAGIC 0x54545352u /* "TTSR" */

typedef struct tts_request {
    uint32_t magic;
    int rate, pitch, range;
    char voice[48];
    int text_len; /* bytes of text that follow */
} tts_request;

typedef struct tts_reply {
    uint32_t magic;
    int status; /* 0 ok; else an avsr_status code with msg */
    int sample_rate;
    int n_phones;
    int64_t n_samples;
    char msg[256];
} tts_reply;

/* shared area: reply header, phones [TTS_MAX_PHONES], samples (rest) */
#define TTS_PHONES_OFF (sizeof(tts_reply))
#define TTS_SAMPLES_OFF (TTS_PHONES_OFF + sizeof(avsr_tts_phone) * TTS_MAX_PHONES)
#define TTS_MAX_SAMPLES ((int64_t)((TTS_SHM_BYTES - TTS_SAMPLES_OFF) / sizeof(int16_t)))

static pthread_mutex_t tts_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t tts_pid = -1;      /* helper process */
static int tts_req_fd = -1;     /* parent -> helper */
static int tts_rep_fd = -1;     /* helper -> parent */

static int read_full(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* --- in the speaking child --- */
static char *tts_shm;

static int tts_callback(short *wav, int numsamples, espeak_EVENT *ev)
{
    tts_reply *r = (tts_reply *)tts_shm;
    if (r->status != 0)
        return 1; /* stop */
    if (wav && numsamples > 0) {
        if (r->n_samples + numsamples > TTS_MAX_SAMPLES) {
            r->status = AVSR_ERR_INVALID;
            snprintf(r->msg, sizeof r->msg, "utterance longer than %lld samples",
                     (long long)TTS_MAX_SAMPLES);
            return 1;
        }
        memcpy(tts_shm + TTS_SAMPLES_OFF + sizeof(int16_t) * (size_t)r->n_samples, wav,
               sizeof(int16_t) * (size_t)numsamples);
        r->n_samples += numsamples;
    }
    avsr_tts_phone *ph = (avsr_tts_phone *)(tts_shm + TTS_PHONES_OFF);
    for (; ev && ev->type != espeakEVENT_LIST_TERMINATED; ev++) {
        if (ev->type != espeakEVENT_PHONEME)
            continue;
        if (r->n_phones >= TTS_MAX_PHONES) {
            r->status = AVSR_ERR_INVALID;
            snprintf(r->msg, sizeof r->msg, "more than %d phonemes", TTS_MAX_PHONES);
            return 1;
        }
        avsr_tts_phone *p = &ph[r->n_phones++];
        p->start_ms = ev->audio_position;
        memcpy(p->name, ev->id.string, sizeof p->name);
        p->name[sizeof p->name - 1] = '\0';
    }
    return 0;
}

static void tts_speak_child(const tts_request *q, const char *text, int rate)
{
    tts_reply *r = (tts_reply *)tts_shm;
    memset(r, 0, sizeof *r);
    r->magic = TTS_MAGIC;
    r->sample_rate = rate;
    espeak_ERROR e = espeak_SetVoiceByName(q->voice);
    if (e != EE_OK) {
        r->status = AVSR_ERR_INVALID;
        snprintf(r->msg, sizeof r->msg, "voice '%s' not found (code %d)", q->voice, (int)e);
        return;
    }
    espeak_SetParameter(espeakRATE, q->rate, 0);
    espeak_SetParameter(espeakPITCH, q->pitch, 0);
    espeak_SetParameter(espeakRANGE, q->range, 0);
    espeak_SetParameter(espeakVOLUME, 100, 0);
    espeak_SetParameter(espeakWORDGAP, 0, 0);
    espeak_SetParameter(espeakPUNCTUATION, espeakPUNCT_NONE, 0);
    e = espeak_Synth(text, strlen(text) + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, NULL);
    if (e == EE_OK)
        e = espeak_Synchronize();
    if (e != EE_OK && r->status == 0) {
        r->status = AVSR_ERR_BACKEND;
        snprintf(r->msg, sizeof r->msg, "synthesis failed (code %d)", (int)e);
    } else if (r->status == 0 && r->n_samples == 0) {
        r->status = AVSR_ERR_BACKEND;
        snprintf(r->msg, sizeof r->msg, "no audio (voice %s)", q->voice);
    }
}

/* --- the helper process --- */
static void tts_helper(int req_fd, int rep_fd)
{
    tts_shm = mmap(NULL, TTS_SHM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    tts_reply init = {.magic = TTS_MAGIC};
    int rate = tts_shm == MAP_FAILED
                   ? -1
                   : espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, NULL,
                                       espeakINITIALIZE_PHONEME_EVENTS |
                                           espeakINITIALIZE_DONT_EXIT);
    if (rate <= 0) {
        init.status = AVSR_ERR_BACKEND;
        snprintf(init.msg, sizeof init.msg,
                 tts_shm == MAP_FAILED ? "cannot map shared memory"
                                       : "initialisation failed (is espeak-ng-data installed?)");
        write_full(rep_fd, &init, sizeof init);
        _exit(1);
    }
    espeak_SetSynthCallback(tts_callback);
    init.sample_rate = rate;
    if (write_full(rep_fd, &init, sizeof init) != 0)
        _exit(1);
    char *text = NULL;
    for (;;) {
        tts_request q;
        if (read_full(req_fd, &q, sizeof q) != 0 || q.magic != TTS_MAGIC || q.text_len < 0 ||
            q.text_len > (1 << 20))
            break;
        char *t = realloc(text, (size_t)q.text_len + 1);
        if (!t)
            break;
        text = t;
        if (read_full(req_fd, text, (size_t)q.text_len) != 0)
            break;
        text[q.text_len] = '\0';
        q.voice[sizeof q.voice - 1] = '\0';
        tts_reply *r = (tts_reply *)tts_shm;
        memset(r, 0, sizeof *r);
        pid_t g = fork();
        if (g == 0) {
            tts_speak_child(&q, text, rate);
            _exit(0);
        }
        int st = 0;
        if (g < 0 || waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
            r->magic != TTS_MAGIC) {
            memset(r, 0, sizeof *r);
            r->magic = TTS_MAGIC;
            r->status = AVSR_ERR_BACKEND;
            snprintf(r->msg, sizeof r->msg, "speaking process failed (%s)",
                     g < 0 ? "fork" : "crashed");
        }
        if (write_full(rep_fd, r, sizeof *r) != 0)
            break;
        if (r->status == 0 &&
            (write_full(rep_fd, tts_shm + TTS_PHONES_OFF, sizeof(avsr_tts_phone) * (size_t)r->n_phones) != 0 ||
             write_full(rep_fd, tts_shm + TTS_SAMPLES_OFF, sizeof(int16_t) * (size_t)r->n_samples) != 0))
            break;
    }
    _exit(0);
}

static int tts_init_locked(avsr_error *err)
{
    if (tts_pid > 0)
        return 0;
    int req[2], rep[2];
    if (pipe2(req, O_CLOEXEC) != 0)
        return avsr_error_set(err, AVSR_ERR_IO, "espeak-ng: pipe: %s", strerror(errno));
    if (pipe2(rep, O_CLOEXEC) != 0) {
        int e = errno;
        close(req[0]);
        close(req[1]);
        return avsr_error_set(err, AVSR_ERR_IO, "espeak-ng: pipe: %s", strerror(e));
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(req[0]);
        close(req[1]);
        close(rep[0]);
        close(rep[1]);
        return avsr_error_set(err, AVSR_ERR_IO, "espeak-ng: fork: %s", strerror(e));
    }
    if (pid == 0) {
        close(req[1]);
        close(rep[0]);
        tts_helper(req[0], rep[1]);
    }
    close(req[0]);
    close(rep[1]);
    tts_reply init;
    if (read_full(rep[0], &init, sizeof init) != 0 || init.magic != TTS_MAGIC ||
        init.status != 0) {
        close(req[1]);
        close(rep[0]);
        waitpid(pid, NULL, 0);
        return avsr_error_set(err, AVSR_ERR_BACKEND, "espeak-ng: %s",
                              init.magic == TTS_MAGIC ? init.msg : "helper process failed");
    }
    tts_pid = pid;
    tts_req_fd = req[1];
    tts_rep_fd = rep[0];
    return 0;
}

int avsr_tts_init(avsr_error *err)
{
    pthread_mutex_lock(&tts_lock);
    int rc = tts_init_locked(err);
    pthread_mutex_unlock(&tts_lock);
    return rc;
}

static void tts_shutdown_locked(void)
{
    if (tts_pid <= 0)
        return;
    close(tts_req_fd);
    close(tts_rep_fd);
    waitpid(tts_pid, NULL, 0);
    tts_pid = -1;
    tts_req_fd = tts_rep_fd = -1;
}

void avsr_tts_shutdown(void)
{
    pthread_mutex_lock(&tts_lock);
    tts_shutdown_locked();
    pthread_mutex_unlock(&tts_lock);
}

void avsr_tts_result_free(avsr_tts_result *r)
{
    if (!r)
        return;
    free(r->samples);
    free(r->phones);
    memset(r, 0, sizeof *r);
}

/* Write to the helper with SIGPIPE blocked in this thread, so a dead helper
 * is an error, not a signal. */
static int tts_send(const void *a, size_t na, const void *b, size_t nb)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    int rc = write_full(tts_req_fd, a, na) == 0 && write_full(tts_req_fd, b, nb) == 0 ? 0 : -1;
    if (rc != 0 && errno == EPIPE) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero); /* consume the pending SIGPIPE */
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int avsr_tts_speak(const char *voice, int rate, int pitch, int range, const char *text,
                   avsr_tts_result *out, avsr_error *err)
{
    memset(out, 0, sizeof *out);
    if (strlen(voice) >= sizeof(((tts_request *)0)->voice) || strlen(text) > (1 << 20))
        return avsr_error_set(err, AVSR_ERR_INVALID, "espeak-ng: voice name or text too long");
    tts_request q = {.magic = TTS_MAGIC, .rate = rate, .pitch = pitch, .range = range};
    snprintf(q.voice, sizeof q.voice, "%s", voice);
    q.text_len = (int)strlen(text);
    int rc = 0;
    pthread_mutex_lock(&tts_lock);
    if (tts_init_locked(err) != 0) {
        rc = -1;
        goto unlock;
    }
    tts_reply r;
    if (tts_send(&q, sizeof q, text, (size_t)q.text_len) != 0 ||
        read_full(tts_rep_fd, &r, sizeof r) != 0 || r.magic != TTS_MAGIC) {
        tts_shutdown_locked();
        rc = avsr_error_set(err, AVSR_ERR_BACKEND, "espeak-ng: helper process died");
        goto unlock;
    }
    if (r.status != 0) {
        r.msg[sizeof r.msg - 1] = '\0';
        rc = avsr_error_set(err, r.status, "espeak-ng: '%s': %s", text, r.msg);
        goto unlock;
    }
    out->sample_rate = r.sample_rate;
    out->n_samples = r.n_samples;
    out->n_phones = r.n_phones;
    out->samples = malloc(sizeof(int16_t) * (size_t)(r.n_samples ? r.n_samples : 1));
    out->phones = malloc(sizeof(avsr_tts_phone) * (size_t)(r.n_phones ? r.n_phones : 1));
    void *sink = NULL;
    if (!out->samples || !out->phones) { /* still drain the pipe */
        sink = malloc(65536);
        rc = AVSR_NOMEM(err, sizeof(int16_t) * (size_t)r.n_samples);
    }
    if (sink) {
        size_t left = sizeof(avsr_tts_phone) * (size_t)r.n_phones +
                      sizeof(int16_t) * (size_t)r.n_samples;
        while (left > 0 && sink) {
            size_t k = left < 65536 ? left : 65536;
            if (read_full(tts_rep_fd, sink, k) != 0)
                break;
            left -= k;
        }
        free(sink);
        if (left > 0)
            tts_shutdown_locked();
    } else if (rc == 0) {
        if (read_full(tts_rep_fd, out->phones, sizeof(avsr_tts_phone) * (size_t)r.n_phones) != 0 ||
            read_full(tts_rep_fd, out->samples, sizeof(int16_t) * (size_t)r.n_samples) != 0) {
            tts_shutdown_locked();
            rc = avsr_error_set(err, AVSR_ERR_BACKEND, "espeak-ng: helper process died");
        }
    } else {
        tts_shutdown_locked(); /* cannot drain: start afresh next time */
    }
unlock:
    pthread_mutex_unlock(&tts_lock);
    if (rc != 0)
        avsr_tts_result_free(out);
    return rc;
}

/* ---- one clip ------------------------------------------------------------- */
void avsr_synth_clip_free(avsr_synth_clip *c)
{
    if (!c)
        return;
    free(c->audio);
    free(c->video);
    free(c->mouth);
    free(c->phones);
    memset(c, 0, sizeof *c);
}

static uint64_t clip_key(const avsr_synth_speaker *spk, int clip)
{
    return ((uint64_t)spk->index << 20) | (uint64_t)clip;
}

int avsr_synth_make_clip(const avsr_synth_config *c, const avsr_synth_speaker *spk, int clip,
                         avsr_synth_clip *out, avsr_error *err)
{
    memset(out, 0, sizeof *out);
    if (clip < 0 || clip >= AVSR_SYNTH_MAX_CLIPS)
        return avsr_error_set(err, AVSR_ERR_INVALID, "synth: clip index %d out of range", clip);
    uint64_t key = clip_key(spk, clip);
    snprintf(out->id, sizeof out->id, "%s_%04d", spk->name, clip);
    char spoken[AVSR_SYNTH_SPOKEN_MAX];
    avsr_synth_grid_sentence(c->seed, key, out->text, spoken);

    avsr_rng pr;
    avsr_rng_init(&pr, c->seed, 0, key, P_PROSODY);
    int rate = spk->rate - 15 + (int)avsr_rng_below(&pr, 31);
    int lead_ms = 80 + (int)avsr_rng_below(&pr, 161);
    int trail_ms = 80 + (int)avsr_rng_below(&pr, 161);

    avsr_tts_result tts;
    if (avsr_tts_speak(spk->voice, rate, spk->pitch, spk->range, spoken, &tts, err) != 0) {
        avsr_error_prefix(err, "clip %s: ", out->id);
        return -1;
    }
    int16_t *speech = NULL;
    int64_t n_speech = 0;
    if (avsr_resample_s16(tts.samples, tts.n_samples, tts.sample_rate, AVSR_SYNTH_RATE, &speech,
                          &n_speech, err) != 0) {
        avsr_tts_result_free(&tts);
        avsr_error_prefix(err, "clip %s: ", out->id);
        return -1;
    }
    int64_t lead = (int64_t)lead_ms * (AVSR_SYNTH_RATE / 1000);
    int64_t need = lead + n_speech + (int64_t)trail_ms * (AVSR_SYNTH_RATE / 1000);
    int n_frames = (int)((need + AVSR_SYNTH_SAMPLES_PER_FRAME - 1) / AVSR_SYNTH_SAMPLES_PER_FRAME);
    out->n_frames = n_frames;
    out->n_samples = (int64_t)n_frames * AVSR_SYNTH_SAMPLES_PER_FRAME;
    out->speech_end_ms = lead_ms + (int)(tts.n_samples * 1000 / tts.sample_rate);
    out->audio = calloc((size_t)out->n_samples, sizeof(int16_t));
    out->video = malloc((size_t)n_frames * AVSR_MOUTH_W * AVSR_MOUTH_H);
    out->mouth = malloc(sizeof(avsr_mouth) * (size_t)n_frames);
    out->phones = malloc(sizeof(avsr_phone) * (size_t)(tts.n_phones + 1));
    if (!out->audio || !out->video || !out->mouth || !out->phones) {
        free(speech);
        avsr_tts_result_free(&tts);
        avsr_synth_clip_free(out);
        return AVSR_NOMEM(err, (size_t)n_frames * AVSR_MOUTH_W * AVSR_MOUTH_H);
    }
    memcpy(out->audio + lead, speech, sizeof(int16_t) * (size_t)n_speech);
    free(speech);
    for (int i = 0; i < tts.n_phones; i++) {
        out->phones[i].start_ms = lead_ms + tts.phones[i].start_ms;
        out->phones[i].viseme = avsr_viseme_from_phoneme(tts.phones[i].name);
    }
    out->n_phones = tts.n_phones;
    avsr_tts_result_free(&tts);

    if (avsr_mouth_track(out->phones, out->n_phones, out->speech_end_ms, n_frames, 0.0f,
                         out->mouth, err) != 0) {
        avsr_synth_clip_free(out);
        return -1;
    }
    /* appearance: the speaker's face, this clip's pose and lighting; a
     * speaker-level articulation strength; slow head motion per frame */
    avsr_face face;
    avsr_face_speaker(&face, c->seed, spk->index);
    avsr_rng fr, mr, nr;
    avsr_rng_init(&fr, c->seed, 0, key, P_FACE);
    avsr_rng_init(&mr, c->seed, 0, key, P_MOTION);
    avsr_rng_init(&nr, c->seed, 0, key, P_NOISE);
    avsr_face_jitter(&face, &fr);
    avsr_rng sr;
    avsr_rng_init(&sr, c->seed, 2, spk->index, P_SPEAKERS);
    float strength = 0.85f + 0.3f * avsr_rng_uniform(&sr);
    float hx = 0.0f, hy = 0.0f;
    for (int k = 0; k < n_frames; k++) {
        hx = 0.85f * hx + 0.25f * avsr_rng_normal(&mr);
        hy = 0.85f * hy + 0.25f * avsr_rng_normal(&mr);
        avsr_mouth m = out->mouth[k];
        m.open *= strength;
        out->mouth[k] = m;
        avsr_mouth_render(&m, &face, hx, hy, &nr,
                          out->video + (size_t)k * AVSR_MOUTH_W * AVSR_MOUTH_H);
    }
    return 0;
}

/* ---- the corpus ------------------------------------------------------------- */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Remove a directory tree this module created. */
static void rm_tree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static int make_dir(const char *path, avsr_error *err)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return avsr_error_set(err, AVSR_ERR_IO, "%s: cannot create directory: %s", path,
                              strerror(errno));
    return 0;
}

typedef struct clip_job {
    int speaker; /* index into the speaker array */
    int clip;
    char id[32];
    char text[AVSR_SYNTH_TEXT_MAX];
    int64_t n_samples;
    int failed;
    avsr_error err;
} clip_job;

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

static int write_text_file(const char *path, const char *s, size_t n, avsr_error *err)
{
    avsr_afile af;
    if (avsr_afile_open(&af, path, err) != 0)
        return -1;
    if (avsr_afile_write(&af, s, n, err) != 0) {
        avsr_afile_abort(&af);
        return -1;
    }
    return avsr_afile_commit(&af, err);
}

/* growing string */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap <= b->n + (size_t)k)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

static int write_outputs(const char *tmpdir, const avsr_synth_config *c,
                         const avsr_synth_speaker *spk, int n_spk, const clip_job *jobs,
                         int n_jobs, avsr_error *err)
{
    const char *ext = avsr_video_format_ext(c->format);
    sbuf sb = {0};
    sb_printf(&sb, "speaker,split,voice,pitch,range,rate\n");
    for (int i = 0; i < n_spk; i++)
        sb_printf(&sb, "%s,%s,%s,%d,%d,%d\n", spk[i].name, avsr_synth_split_name(spk[i].split),
                  spk[i].voice, spk[i].pitch, spk[i].range, spk[i].rate);
    int rc = 0;
    char *p = path_join(tmpdir, "speakers.csv");
    if (sb.oom || !p)
        rc = AVSR_NOMEM(err, sb.cap);
    else
        rc = write_text_file(p, sb.s, sb.n, err);
    free(p);
    /* manifests last */
    for (int split = 0; split < AVSR_SPLIT_COUNT && rc == 0; split++) {
        sb.n = 0;
        sb_printf(&sb, "id,video,audio,text,speaker\n");
        for (int j = 0; j < n_jobs; j++) {
            const avsr_synth_speaker *s = &spk[jobs[j].speaker];
            if (s->split != split)
                continue;
            sb_printf(&sb, "%s,media/%s/%s.%s,media/%s/%s.wav,%s,%s\n", jobs[j].id, s->name,
                      jobs[j].id, ext, s->name, jobs[j].id, jobs[j].text, s->name);
        }
        char name[32];
        snprintf(name, sizeof name, "%s.csv", avsr_synth_split_name(split));
        p = path_join(tmpdir, name);
        if (sb.oom || !p)
            rc = AVSR_NOMEM(err, sb.cap);
        else
            rc = write_text_file(p, sb.s, sb.n, err);
        free(p);
    }
    free(sb.s);
    return rc;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int avsr_synth_corpus(const char *outdir, const avsr_synth_config *cfg, avsr_synth_summary *sum,
                      avsr_error *err)
{
    avsr_synth_config c;
    if (avsr_synth_config_check(cfg, &c, err) != 0)
        return -1;
    if (!outdir || !outdir[0])
        return avsr_error_set(err, AVSR_ERR_INVALID, "synth: no output directory given");
    const char *encoder = avsr_video_encoder_name(c.format);
    if (!encoder)
        return avsr_error_set(err, AVSR_ERR_UNSUPPORTED,
                              "synth: this FFmpeg build has no encoder for .%s output",
                              avsr_video_format_ext(c.format));
    /* an existing output is only replaced on request, and only if it looks
     * like a corpus this program wrote */
    int replace = 0;
    struct stat st;
    if (stat(outdir, &st) == 0) {
        char *m = path_join(outdir, "train.csv");
        int ours = m && access(m, F_OK) == 0;
        free(m);
        if (!S_ISDIR(st.st_mode))
            return avsr_error_set(err, AVSR_ERR_IO, "%s: exists and is not a directory", outdir);
        if (!c.force || !ours) {
            if (rmdir(outdir) != 0) /* an empty directory is fine */
                return avsr_error_set(err, AVSR_ERR_IO,
                                      "%s: exists and is not empty%s", outdir,
                                      ours ? " (use --force to replace the corpus in it)"
                                           : " and holds no avsr-synth corpus; not touching it");
        } else {
            replace = 1;
        }
    }
    if (avsr_tts_init(err) != 0)
        return -1;

    avsr_synth_speaker *spk = NULL;
    int n_spk = 0;
    if (avsr_synth_speakers(&c, &spk, &n_spk, err) != 0)
        return -1;
    int n_jobs = 0;
    for (int i = 0; i < n_spk; i++)
        n_jobs += spk[i].split == AVSR_SPLIT_BABBLE ? c.babble_clips : c.clips_per_speaker;
    clip_job *jobs = calloc((size_t)(n_jobs ? n_jobs : 1), sizeof *jobs);
    size_t tl = strlen(outdir) + 64;
    char *tmpdir = malloc(tl), *olddir = malloc(tl);
    if (!jobs || !tmpdir || !olddir) {
        free(jobs);
        free(tmpdir);
        free(olddir);
        free(spk);
        return AVSR_NOMEM(err, sizeof *jobs * (size_t)n_jobs);
    }
    snprintf(tmpdir, tl, "%s.tmp.%ld", outdir, (long)getpid());
    snprintf(olddir, tl, "%s.old.%ld", outdir, (long)getpid());
    for (int i = 0, j = 0; i < n_spk; i++) {
        int nc = spk[i].split == AVSR_SPLIT_BABBLE ? c.babble_clips : c.clips_per_speaker;
        for (int k = 0; k < nc; k++, j++) {
            jobs[j].speaker = i;
            jobs[j].clip = k;
        }
    }
    int rc = 0;
    if (is_dir(tmpdir))
        rm_tree(tmpdir); /* a leftover of an earlier process with our pid */
    rc = make_dir(tmpdir, err);
    char *media = rc == 0 ? path_join(tmpdir, "media") : NULL;
    if (rc == 0 && !media)
        rc = AVSR_NOMEM(err, tl);
    if (rc == 0)
        rc = make_dir(media, err);
    for (int i = 0; i < n_spk && rc == 0; i++) {
        char *d = path_join(media, spk[i].name);
        rc = d ? make_dir(d, err) : AVSR_NOMEM(err, tl);
        free(d);
    }

    const char *ext = avsr_video_format_ext(c.format);
    int done = 0, stop = rc != 0;
#pragma omp parallel for schedule(dynamic, 1)
    for (int j = 0; j < n_jobs; j++) {
        int skip;
#pragma omp atomic read
        skip = stop;
        if (skip)
            continue;
        clip_job *jb = &jobs[j];
        const avsr_synth_speaker *s = &spk[jb->speaker];
        avsr_synth_clip clip;
        int ok = avsr_synth_make_clip(&c, s, jb->clip, &clip, &jb->err) == 0;
        if (ok) {
            memcpy(jb->id, clip.id, sizeof jb->id);
            memcpy(jb->text, clip.text, sizeof jb->text);
            jb->n_samples = clip.n_samples;
            size_t pl = strlen(media) + 2 * sizeof jb->id + 16;
            char *vp = malloc(pl), *ap = malloc(pl);
            if (!vp || !ap) {
                AVSR_NOMEM(&jb->err, pl);
                ok = 0;
            } else {
                snprintf(vp, pl, "%s/%s/%s.%s", media, s->name, clip.id, ext);
                snprintf(ap, pl, "%s/%s/%s.wav", media, s->name, clip.id);
                ok = avsr_video_write(vp, c.format, clip.video, clip.n_frames, AVSR_MOUTH_W,
                                      AVSR_MOUTH_H, AVSR_MOUTH_FPS, &jb->err) == 0 &&
                     avsr_wav_write(ap, clip.audio, clip.n_samples, AVSR_SYNTH_RATE, &jb->err) ==
                         0;
            }
            free(vp);
            free(ap);
            avsr_synth_clip_free(&clip);
        }
        if (!ok) {
            jb->failed = 1;
#pragma omp atomic write
            stop = 1;
        }
#pragma omp critical(avsr_synth_progress)
        {
            done++;
            if (ok && c.progress)
                c.progress(c.progress_user, done, n_jobs);
        }
    }
    if (rc == 0)
        for (int j = 0; j < n_jobs; j++)
            if (jobs[j].failed) {
                avsr_error_set(err, jobs[j].err.code ? jobs[j].err.code : AVSR_ERR_BACKEND, "%s",
                               jobs[j].err.msg);
                rc = -1;
                break;
            }
    if (rc == 0)
        rc = write_outputs(tmpdir, &c, spk, n_spk, jobs, n_jobs, err);
    if (rc == 0 && replace && rename(outdir, olddir) != 0)
        rc = avsr_error_set(err, AVSR_ERR_IO, "rename %s -> %s failed: %s", outdir, olddir,
                            strerror(errno));
    if (rc == 0 && rename(tmpdir, outdir) != 0) {
        rc = avsr_error_set(err, AVSR_ERR_IO, "rename %s -> %s failed: %s", tmpdir, outdir,
                            strerror(errno));
        if (replace)
            rename(olddir, outdir); /* put the old corpus back */
    }
    if (rc == 0) {
        if (replace)
            rm_tree(olddir);
        rc = avsr_fsync_dir_of(outdir, err);
    } else {
        rm_tree(tmpdir);
    }
    if (rc == 0 && sum) {
        memset(sum, 0, sizeof *sum);
        sum->encoder = encoder;
        for (int i = 0; i < n_spk; i++)
            sum->n_speakers[spk[i].split]++;
        for (int j = 0; j < n_jobs; j++) {
            int sp = spk[jobs[j].speaker].split;
            sum->n_clips[sp]++;
            sum->seconds[sp] += (double)jobs[j].n_samples / AVSR_SYNTH_RATE;
        }
    }
    free(media);
    free(jobs);
    free(tmpdir);
    free(olddir);
    free(spk);
    return rc;
}
