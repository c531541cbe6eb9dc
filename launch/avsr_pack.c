/* avsr-pack: decode a manifest's clips with FFmpeg and write a packed HDF5
 * dataset (docs/tools/avsr-pack.md, docs/formats/pack.md); `avsr-pack info`
 * validates files and prints a summary.
 *
 * Threads: N decode workers take rows in manifest order (at most a window
 * ahead of the writer); the main thread writes results strictly in order. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "decode.h"
#include "fileio.h"
#include "manifest.h"
#include "pack_read.h"
#include "pack_write.h"
#include "rng.h"

#define PROG "avsr-pack"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " MANIFEST.csv|NAME.tsv -o OUT.h5 [options]\n"
            "       " PROG " info [--list] FILE.h5 [FILE.h5 ...]\n"
            "Decodes each manifest row's video (25 fps gray ROI) and audio (16 kHz mono)\n"
            "and writes one HDF5 file (docs/formats/pack.md).\n"
            "options:\n"
            "  -o, --output OUT.h5     output file (appears only when complete)\n"
            "  --roi N | HxW           ROI size of the stored frames (default 96)\n"
            "  --av-tolerance S        largest audio/video length difference, seconds (0.2)\n"
            "  --threads N             decode threads (default: number of cores)\n"
            "  --compress              gzip level 1 in chunks of 32 frames\n"
            "  --skip-bad              skip bad rows and list them in OUT.bad.txt\n"
            "  --wrd FILE              transcripts for a .tsv manifest (default NAME.wrd)\n"
            "  --noise                 pack a noise corpus (audio only)\n"
            "  --babble K              with --noise: babble clips of K speakers each\n"
            "  --babble-clips N        number of babble clips (default rows / K)\n"
            "  --split-by-speaker A,B,C  write OUT-train.h5, OUT-valid.h5, OUT-test.h5\n"
            "                          with disjoint speakers in these proportions\n"
            "  --seed N                seed for speaker splits and babble (default 0)\n"
            "  --quiet                 no progress bar and no summary line\n");
}

/* ---- removal of temporaries on SIGINT/SIGTERM ------------------------- */

#define MAX_TMP 8
static char tmp_paths[MAX_TMP][4096];
static volatile sig_atomic_t n_tmp;

static void tmp_register(const char *p)
{
    if (n_tmp < MAX_TMP && strlen(p) < sizeof tmp_paths[0]) {
        strcpy(tmp_paths[n_tmp], p);
        n_tmp++;
    }
}

static void on_signal(int sig)
{
    for (int i = 0; i < n_tmp; i++)
        unlink(tmp_paths[i]); /* async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- options ------------------------------------------------------------ */

typedef struct opts {
    const char *manifest, *wrd, *out;
    int roi_h, roi_w, threads, compress, skip_bad, noise, babble, quiet;
    int64_t babble_clips;
    double av_tol, split[3];
    int split_on;
    uint64_t seed;
} opts;

static int parse_num(const char *flag, const char *v, double lo, double hi, double *x)
{
    char *end;
    errno = 0;
    double d = v ? strtod(v, &end) : 0;
    if (!v || !*v || *end || errno || !(d >= lo && d <= hi)) {
        fprintf(stderr, PROG ": %s needs a number in [%g, %g], got '%s'\n", flag, lo, hi,
                v ? v : "");
        return -1;
    }
    *x = d;
    return 0;
}

static int parse_roi(const char *v, int *h, int *w)
{
    char *end;
    long a = v ? strtol(v, &end, 10) : 0, b;
    if (v && end != v && *end == '\0') {
        b = a;
    } else if (v && end != v && (*end == 'x' || *end == 'X')) {
        const char *s = end + 1;
        b = strtol(s, &end, 10);
        if (end == s || *end)
            b = 0;
    } else {
        a = b = 0;
    }
    if (a < 1 || b < 1 || a > AVSR_PACK_MAX_ROI || b > AVSR_PACK_MAX_ROI) {
        fprintf(stderr, PROG ": --roi needs N or HxW with sides in 1..%d, got '%s'\n",
                AVSR_PACK_MAX_ROI, v ? v : "");
        return -1;
    }
    *h = (int)a;
    *w = (int)b;
    return 0;
}

static int parse_split(const char *v, double out[3])
{
    double s = 0;
    int n = v ? sscanf(v, "%lf,%lf,%lf", &out[0], &out[1], &out[2]) : 0;
    for (int i = 0; i < 3 && n == 3; i++) {
        if (!(out[i] >= 0 && out[i] <= 1))
            n = 0;
        s += out[i];
    }
    if (n != 3 || fabs(s - 1) > 1e-6 || out[0] <= 0) {
        fprintf(stderr, PROG ": --split-by-speaker needs three fractions summing to 1 "
                        "(train > 0), e.g. 0.8,0.1,0.1; got '%s'\n", v ? v : "");
        return -1;
    }
    return 0;
}

/* ---- decode jobs -------------------------------------------------------- */

typedef struct job {
    size_t row;      /* manifest row */
    avsr_media m;
    char *bad;       /* message (without the manifest:line prefix) or NULL */
    int done;
} job;

typedef struct pipeline {
    const opts *o;
    const avsr_manifest *man;
    job *jobs;
    size_t n, next, written, window;
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t done_cv, space_cv;
} pipeline;

static char *msgdup(const char *s) { return strdup(s ? s : "error"); }

static void run_job(const pipeline *pl, job *j)
{
    const opts *o = pl->o;
    const avsr_manifest_row *r = &pl->man->rows[j->row];
    avsr_error err = {0};
    if (r->bad) {
        j->bad = msgdup(r->bad);
        return;
    }
    avsr_decode_opts d = {o->roi_h, o->roi_w, 0, 0};
    if (o->noise) {
        d.want_audio = 1;
        if (avsr_decode_file(r->audio[0] ? r->audio : r->video, &d, &j->m, &err) < 0)
            j->bad = msgdup(err.msg);
        return;
    }
    d.want_video = 1;
    d.want_audio = r->audio[0] == '\0';
    if (avsr_decode_file(r->video, &d, &j->m, &err) < 0) {
        j->bad = msgdup(err.msg);
        return;
    }
    if (r->audio[0]) {
        avsr_media a;
        avsr_decode_opts da = {0, 0, 0, 1};
        if (avsr_decode_file(r->audio, &da, &a, &err) < 0) {
            j->bad = msgdup(err.msg);
            avsr_media_free(&j->m);
            return;
        }
        j->m.audio = a.audio;
        j->m.samples = a.samples;
        j->m.src_rate = a.src_rate;
        j->m.src_channels = a.src_channels;
    }
    int64_t want = j->m.frames * AVSR_PACK_SAMPLES_PER_FRAME;
    double dv = (double)want / AVSR_PACK_SAMPLE_RATE;
    double da = (double)j->m.samples / AVSR_PACK_SAMPLE_RATE;
    if (fabs(da - dv) > o->av_tol + 1e-9) {
        char buf[256];
        snprintf(buf, sizeof buf,
                 "audio is %.2f s but video is %.2f s (%d frames): they differ by more than "
                 "--av-tolerance %.2f s", da, dv, (int)j->m.frames, o->av_tol);
        j->bad = msgdup(buf);
        avsr_media_free(&j->m);
        return;
    }
    if (j->m.samples != want) { /* trim or pad with silence */
        int16_t *p = realloc(j->m.audio, (size_t)want * sizeof *p);
        if (!p) {
            j->bad = msgdup("out of memory");
            avsr_media_free(&j->m);
            return;
        }
        if (want > j->m.samples)
            memset(p + j->m.samples, 0, (size_t)(want - j->m.samples) * sizeof *p);
        j->m.audio = p;
        j->m.samples = want;
    }
}

static void *worker(void *arg)
{
    pipeline *pl = arg;
    pthread_mutex_lock(&pl->mu);
    for (;;) {
        while (!pl->stop && pl->next < pl->n && pl->next >= pl->written + pl->window)
            pthread_cond_wait(&pl->space_cv, &pl->mu);
        if (pl->stop || pl->next >= pl->n)
            break;
        job *j = &pl->jobs[pl->next++];
        pthread_mutex_unlock(&pl->mu);
        run_job(pl, j);
        pthread_mutex_lock(&pl->mu);
        j->done = 1;
        pthread_cond_broadcast(&pl->done_cv);
    }
    pthread_mutex_unlock(&pl->mu);
    return NULL;
}

/* wait for job i, in order */
static job *pl_wait(pipeline *pl, size_t i)
{
    pthread_mutex_lock(&pl->mu);
    while (!pl->jobs[i].done)
        pthread_cond_wait(&pl->done_cv, &pl->mu);
    pthread_mutex_unlock(&pl->mu);
    return &pl->jobs[i];
}

static void pl_release(pipeline *pl, size_t i)
{
    pthread_mutex_lock(&pl->mu);
    pl->written = i + 1;
    pthread_cond_broadcast(&pl->space_cv);
    pthread_mutex_unlock(&pl->mu);
}

/* ---- progress ----------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct progress {
    int tty;
    double t0, last;
    size_t total;
} progress;

static void progress_show(progress *p, size_t done, int final)
{
    if (!p->tty)
        return;
    double t = now_s();
    if (!final && t - p->last < 0.2)
        return;
    p->last = t;
    double el = t - p->t0, rate = el > 0 ? done / el : 0;
    double eta = rate > 0 ? (p->total - done) / rate : 0;
    int w = 30, fill = p->total ? (int)(w * done / p->total) : w;
    fprintf(stderr, "\r[%.*s%*s] %zu/%zu clips %6.1f clips/s ETA %d:%02d \033[K",
            fill, "##############################", w - fill, "", done, p->total, rate,
            (int)eta / 60, (int)eta % 60);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

static void progress_line_break(progress *p)
{
    if (p->tty)
        fprintf(stderr, "\r\033[K");
}

/* ---- output naming ------------------------------------------------------ */

/* OUT without a trailing ".h5" */
static char *out_stem(const char *out)
{
    size_t n = strlen(out);
    char *s = strdup(out);
    if (s && n > 3 && !strcmp(out + n - 3, ".h5"))
        s[n - 3] = '\0';
    return s;
}

static char *cat3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *r = malloc(n);
    if (r)
        snprintf(r, n, "%s%s%s", a, b, c);
    return r;
}

/* ---- speakers ----------------------------------------------------------- */

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* sorted unique speakers of the good rows; count in *ns */
static char **speaker_list(const avsr_manifest *m, size_t *ns)
{
    char **v = malloc((m->n ? m->n : 1) * sizeof *v);
    size_t k = 0;
    if (!v)
        return NULL;
    for (size_t i = 0; i < m->n; i++)
        if (!m->rows[i].bad)
            v[k++] = m->rows[i].speaker;
    qsort(v, k, sizeof *v, cmp_strp);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || strcmp(v[i], v[u - 1]))
            v[u++] = v[i];
    *ns = u;
    return v;
}

static long speaker_index(char **spk, size_t ns, const char *s)
{
    char **hit = bsearch(&s, spk, ns, sizeof *spk, cmp_strp);
    return hit ? (long)(hit - spk) : -1;
}

/* ---- main packing ------------------------------------------------------- */

typedef struct packer {
    opts o;
    avsr_manifest man;
    avsr_pack_writer *w[3];
    char *paths[3];
    int nw;
    char **bad;
    size_t nbad, capbad;
    int64_t clips[3];
    double seconds;
} packer;

static int add_bad(packer *pk, const char *msg)
{
    if (pk->nbad == pk->capbad) {
        size_t nc = pk->capbad ? 2 * pk->capbad : 16;
        char **p = realloc(pk->bad, nc * sizeof *p);
        if (!p)
            return -1;
        pk->bad = p;
        pk->capbad = nc;
    }
    return (pk->bad[pk->nbad++] = strdup(msg)) ? 0 : -1;
}

/* A bad row: stop (returns -1) or, with --skip-bad, note it (0). */
static int bad_row(packer *pk, progress *pr, const avsr_manifest_row *r, const char *what)
{
    char msg[2048];
    avsr_manifest_row_msg(&pk->man, r, what, msg, sizeof msg);
    progress_line_break(pr);
    if (!pk->o.skip_bad) {
        fprintf(stderr, "%s\n", msg);
        return -1;
    }
    if (!pk->o.quiet)
        fprintf(stderr, "skipped: %s\n", msg);
    if (add_bad(pk, msg) < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        return -1;
    }
    return 0;
}

static int write_bad_report(packer *pk)
{
    char *stem = out_stem(pk->o.out), *path = stem ? cat3(stem, ".bad.txt", "") : NULL;
    avsr_afile af;
    avsr_error err = {0};
    int rc = -1;
    if (!path) {
        fprintf(stderr, PROG ": out of memory\n");
        goto done;
    }
    if (avsr_afile_open(&af, path, &err) < 0)
        goto fail;
    tmp_register(af.tmp);
    for (size_t i = 0; i < pk->nbad; i++)
        if (avsr_afile_write(&af, pk->bad[i], strlen(pk->bad[i]), &err) < 0 ||
            avsr_afile_write(&af, "\n", 1, &err) < 0) {
            avsr_afile_abort(&af);
            goto fail;
        }
    if (avsr_afile_commit(&af, &err) < 0)
        goto fail;
    rc = 0;
    goto done;
fail:
    fprintf(stderr, PROG ": %s\n", err.msg);
done:
    free(stem);
    free(path);
    return rc;
}

static int start_pipeline(pipeline *pl, const opts *o, const avsr_manifest *m, pthread_t *th,
                          int *nth)
{
    memset(pl, 0, sizeof *pl);
    pl->o = o;
    pl->man = m;
    pl->n = m->n;
    pl->window = 4 * (size_t)o->threads + 4;
    pl->jobs = calloc(m->n ? m->n : 1, sizeof *pl->jobs);
    if (!pl->jobs)
        return -1;
    for (size_t i = 0; i < m->n; i++)
        pl->jobs[i].row = i;
    pthread_mutex_init(&pl->mu, NULL);
    pthread_cond_init(&pl->done_cv, NULL);
    pthread_cond_init(&pl->space_cv, NULL);
    *nth = 0;
    for (int t = 0; t < o->threads; t++) {
        if (pthread_create(&th[t], NULL, worker, pl) != 0)
            break;
        (*nth)++;
    }
    return *nth > 0 ? 0 : -1;
}

static void stop_pipeline(pipeline *pl, pthread_t *th, int nth)
{
    pthread_mutex_lock(&pl->mu);
    pl->stop = 1;
    pthread_cond_broadcast(&pl->space_cv);
    pthread_mutex_unlock(&pl->mu);
    for (int t = 0; t < nth; t++)
        pthread_join(th[t], NULL);
    for (size_t i = 0; i < pl->n; i++) {
        avsr_media_free(&pl->jobs[i].m);
        free(pl->jobs[i].bad);
    }
    free(pl->jobs);
    pthread_mutex_destroy(&pl->mu);
    pthread_cond_destroy(&pl->done_cv);
    pthread_cond_destroy(&pl->space_cv);
}

/* babble: sum K utterances of K different speakers per clip */
static int build_babble(packer *pk, pipeline *pl, progress *pr)
{
    const opts *o = &pk->o;
    const avsr_manifest *m = &pk->man;
    size_t ns;
    char **spk = speaker_list(m, &ns);
    size_t *cnt = calloc(ns + 1, sizeof *cnt), **by = calloc(ns + 1, sizeof *by);
    size_t *pick = calloc(ns + 1, sizeof *pick);
    float *acc = NULL;
    int16_t *out = NULL;
    int rc = -1;
    if (!spk || !cnt || !by || !pick)
        goto oom;
    /* decoded rows grouped by speaker */
    size_t good = 0;
    for (size_t i = 0; i < pl->n; i++)
        if (!pl->jobs[i].bad) {
            long s = speaker_index(spk, ns, m->rows[i].speaker);
            if (s >= 0)
                cnt[s]++;
            good++;
        }
    for (size_t s = 0; s < ns; s++)
        if (!(by[s] = malloc((cnt[s] ? cnt[s] : 1) * sizeof **by)))
            goto oom;
    memset(pick, 0, (ns + 1) * sizeof *pick);
    size_t nsp = 0;
    for (size_t i = 0; i < pl->n; i++)
        if (!pl->jobs[i].bad) {
            long s = speaker_index(spk, ns, m->rows[i].speaker);
            if (s >= 0)
                by[s][pick[s]++] = i;
        }
    for (size_t s = 0; s < ns; s++)
        nsp += cnt[s] > 0;
    if (nsp < (size_t)o->babble) {
        fprintf(stderr, PROG ": --babble %d needs at least %d speakers with decodable audio; "
                        "%s has %zu\n", o->babble, o->babble, m->path, nsp);
        goto done;
    }
    int64_t nclips = o->babble_clips > 0 ? o->babble_clips : (int64_t)(good / o->babble);
    if (nclips < 1)
        nclips = 1;
    size_t *order = pick; /* reused: the speaker permutation */
    pr->total = (size_t)nclips;
    for (int64_t c = 0; c < nclips; c++) {
        avsr_rng rng;
        avsr_rng_init(&rng, o->seed, 0, (uint64_t)c, AVSR_RNG_NOISE);
        size_t k = 0;
        for (size_t s = 0; s < ns; s++)
            if (cnt[s])
                order[k++] = s;
        int64_t len = 0;
        size_t chosen[256];
        for (int q = 0; q < o->babble; q++) { /* partial Fisher-Yates */
            size_t r = q + avsr_rng_below(&rng, (uint32_t)(k - q));
            size_t t = order[q];
            order[q] = order[r];
            order[r] = t;
            size_t s = order[q];
            chosen[q] = by[s][avsr_rng_below(&rng, (uint32_t)cnt[s])];
            if (pl->jobs[chosen[q]].m.samples > len)
                len = pl->jobs[chosen[q]].m.samples;
        }
        float *na = realloc(acc, (size_t)len * sizeof *acc);
        int16_t *no = realloc(out, (size_t)len * sizeof *out);
        if (na)
            acc = na;
        if (no)
            out = no;
        if (!na || !no)
            goto oom;
        memset(acc, 0, (size_t)len * sizeof *acc);
        for (int q = 0; q < o->babble; q++) { /* shorter utterances are looped */
            const avsr_media *md = &pl->jobs[chosen[q]].m;
            for (int64_t t = 0; t < len; t++)
                acc[t] += md->audio[t % md->samples];
        }
        float peak = 0;
        for (int64_t t = 0; t < len; t++)
            peak = fabsf(acc[t]) > peak ? fabsf(acc[t]) : peak;
        float g = peak > 0 ? 16384.0f / peak : 0.0f; /* peak at -6 dBFS */
        for (int64_t t = 0; t < len; t++)
            out[t] = (int16_t)lrintf(acc[t] * g);
        char id[32];
        snprintf(id, sizeof id, "babble-%06" PRId64, c);
        avsr_error err = {0};
        if (avsr_pack_writer_add(pk->w[0], id, "babble", NULL, 0, out, len, "", 0, &err) < 0) {
            progress_line_break(pr);
            fprintf(stderr, PROG ": %s\n", err.msg);
            goto done;
        }
        pk->clips[0]++;
        pk->seconds += (double)len / AVSR_PACK_SAMPLE_RATE;
        progress_show(pr, (size_t)c + 1, 0);
    }
    rc = 0;
    goto done;
oom:
    fprintf(stderr, PROG ": out of memory\n");
done:
    if (by)
        for (size_t s = 0; s < ns; s++)
            free(by[s]);
    free(by);
    free(cnt);
    free(pick);
    free(spk);
    free(acc);
    free(out);
    return rc;
}

static int do_pack(packer *pk)
{
    opts *o = &pk->o;
    avsr_error err = {0};
    int rc = 1;
    pipeline pl;
    pthread_t th[256];
    int nth = 0, started = 0;
    char *stem = NULL, **spk = NULL;
    size_t ns = 0;
    int *split_of = NULL; /* speaker -> split */
    double t0 = now_s();

    if (avsr_manifest_load(o->manifest, o->wrd, o->noise ? AVSR_MANIFEST_NOISE : 0, &pk->man,
                           &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const avsr_manifest *m = &pk->man;
    if ((o->split_on || o->babble) && !m->has_speaker) {
        fprintf(stderr, "%s: %s needs a speaker column\n", m->path,
                o->split_on ? "--split-by-speaker" : "--babble");
        return 1;
    }
    avsr_pack_write_opts wo = {o->noise ? AVSR_PACK_KIND_NOISE : AVSR_PACK_KIND_AV, o->roi_h,
                               o->roi_w, o->compress, m->sha256, PROG " " PACKAGE_VERSION};
    stem = out_stem(o->out);
    if (!stem)
        goto oom;
    if (o->split_on) {
        static const char *names[3] = {"-train.h5", "-valid.h5", "-test.h5"};
        spk = speaker_list(m, &ns);
        split_of = malloc((ns ? ns : 1) * sizeof *split_of);
        size_t *perm = malloc((ns ? ns : 1) * sizeof *perm);
        if (!spk || !split_of || !perm) {
            free(perm);
            goto oom;
        }
        avsr_rng rng;
        avsr_rng_init(&rng, o->seed, 0, 0, AVSR_RNG_SHUFFLE);
        for (size_t i = 0; i < ns; i++)
            perm[i] = i;
        for (size_t i = ns; i > 1; i--) {
            size_t j = avsr_rng_below(&rng, (uint32_t)i), t = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = t;
        }
        /* cumulative boundaries; a non-zero share gets >= 1 speaker when possible */
        size_t n1 = (size_t)llround(o->split[0] * ns);
        size_t n2 = (size_t)llround((o->split[0] + o->split[1]) * ns);
        if (n2 > ns)
            n2 = ns;
        if (o->split[2] > 0 && n2 >= ns && ns >= 2)
            n2 = ns - 1;
        if (n1 > n2)
            n1 = n2;
        if (o->split[1] > 0 && n1 == n2 && n1 >= 2)
            n1--;
        if (n1 < 1)
            n1 = 1;
        if (n2 < n1)
            n2 = n1;
        for (size_t i = 0; i < ns; i++)
            split_of[perm[i]] = i < n1 ? 0 : i < n2 ? 1 : 2;
        free(perm);
        pk->nw = 3;
        for (int s = 0; s < 3; s++)
            if (!(pk->paths[s] = cat3(stem, names[s], "")))
                goto oom;
    } else {
        pk->nw = 1;
        if (!(pk->paths[0] = strdup(o->out)))
            goto oom;
    }
    for (int s = 0; s < pk->nw; s++)
        if (!(pk->w[s] = avsr_pack_writer_create(pk->paths[s], &wo, &err))) {
            fprintf(stderr, PROG ": %s\n", err.msg);
            goto done;
        }

    if (start_pipeline(&pl, o, m, th, &nth) < 0) {
        fprintf(stderr, PROG ": cannot start decode threads\n");
        goto done;
    }
    started = 1;
    progress pr = {isatty(2) && !o->quiet, t0, 0, m->n};
    const char *delay = getenv("AVSR_PACK_TEST_DELAY_MS"); /* tests: slow the writer */
    long delay_ms = delay ? atol(delay) : 0;
    for (size_t i = 0; i < pl.n; i++) {
        job *j = pl_wait(&pl, i);
        const avsr_manifest_row *r = &m->rows[j->row];
        if (delay_ms > 0) {
            struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (j->bad) {
            if (bad_row(pk, &pr, r, j->bad) < 0)
                goto done;
        } else if (!o->babble) {
            int s = o->split_on ? split_of[speaker_index(spk, ns, r->speaker)] : 0;
            if (avsr_pack_writer_add(pk->w[s], r->id, r->speaker, j->m.video, j->m.frames,
                                     j->m.audio, j->m.samples, r->text,
                                     (int64_t)strlen(r->text), &err) < 0) {
                progress_line_break(&pr);
                fprintf(stderr, PROG ": %s\n", err.msg);
                goto done;
            }
            pk->clips[s]++;
            pk->seconds += (double)j->m.samples / AVSR_PACK_SAMPLE_RATE;
            avsr_media_free(&j->m);
        }
        pl_release(&pl, i);
        progress_show(&pr, i + 1, 0);
    }
    if (o->babble) {
        pr.t0 = now_s();
        if (build_babble(pk, &pl, &pr) < 0)
            goto done;
    }
    progress_show(&pr, pr.total, 1);
    for (int s = 0; s < pk->nw; s++)
        if (pk->clips[s] == 0 && !o->split_on) {
            fprintf(stderr, PROG ": no clips to write to %s (every row was bad)\n",
                    pk->paths[s]);
            goto done;
        }
    if (o->skip_bad && write_bad_report(pk) < 0)
        goto done;
    for (int s = 0; s < pk->nw; s++) {
        tmp_register(avsr_pack_writer_tmp_path(pk->w[s]));
        avsr_pack_writer *w = pk->w[s];
        pk->w[s] = NULL;
        if (avsr_pack_writer_commit(w, &err) < 0) {
            fprintf(stderr, PROG ": %s\n", err.msg);
            goto done;
        }
    }
    if (!o->quiet) {
        double el = now_s() - t0;
        int64_t total = pk->clips[0] + pk->clips[1] + pk->clips[2];
        fprintf(stderr, PROG ": %" PRId64 " clips, %.1f s of audio%s in %.1f s (%.1f clips/s, "
                        "%.0fx real time) -> %s%s",
                total, pk->seconds, o->noise ? "" : "/video", el, el > 0 ? total / el : 0,
                el > 0 ? pk->seconds / el : 0, pk->paths[0], pk->nw > 1 ? ", " : "");
        if (pk->nw > 1)
            fprintf(stderr, "%s, %s (%" PRId64 "/%" PRId64 "/%" PRId64 " clips)", pk->paths[1],
                    pk->paths[2], pk->clips[0], pk->clips[1], pk->clips[2]);
        if (o->skip_bad)
            fprintf(stderr, "; %zu bad rows skipped (%s.bad.txt)", pk->nbad, stem);
        fprintf(stderr, "\n");
    }
    rc = 0;
    goto done;
oom:
    fprintf(stderr, PROG ": out of memory\n");
done:
    if (started)
        stop_pipeline(&pl, th, nth);
    for (int s = 0; s < 3; s++) {
        avsr_pack_writer_abort(pk->w[s]);
        free(pk->paths[s]);
    }
    for (size_t i = 0; i < pk->nbad; i++)
        free(pk->bad[i]);
    free(pk->bad);
    free(spk);
    free(split_of);
    free(stem);
    avsr_manifest_free(&pk->man);
    return rc;
}

/* ---- info ----------------------------------------------------------------- */

static int do_info(int argc, char **argv)
{
    int list = 0, first = 1;
    if (first < argc && !strcmp(argv[first], "--list")) {
        list = 1;
        first++;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: " PROG " info [--list] FILE.h5 [FILE.h5 ...]\n");
        return 2;
    }
    avsr_error err = {0};
    avsr_pack *p = avsr_pack_open((const char *const *)argv + first, argc - first, &err);
    if (!p) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int rc = 0;
    if (list) {
        char *text = NULL;
        size_t cap = 0;
        for (int64_t i = 0; i < avsr_pack_count(p) && rc == 0; i++) {
            avsr_pack_clip c;
            if (avsr_pack_clip_info(p, i, &c, &err) < 0) {
                rc = 1;
                break;
            }
            if ((size_t)c.text_bytes + 1 > cap) {
                cap = (size_t)c.text_bytes + 1;
                char *t = realloc(text, cap);
                if (!t) {
                    rc = 1;
                    break;
                }
                text = t;
            }
            if (avsr_pack_read_text(p, i, text, cap, &err) < 0) {
                rc = 1;
                break;
            }
            printf("%s\t%s\t%" PRId64 "\t%" PRId64 "\t%s\n", c.id, c.speaker, c.frames,
                   c.samples, text);
        }
        free(text);
    } else if (avsr_pack_print_info(p, stdout, &err) < 0) {
        rc = 1;
    }
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    avsr_pack_close(p);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "info"))
        return do_info(argc - 1, argv + 1);
    packer pk;
    memset(&pk, 0, sizeof pk);
    opts *o = &pk.o;
    o->roi_h = o->roi_w = AVSR_PACK_DEFAULT_ROI;
    o->av_tol = 0.2;
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = nc > 0 ? (int)(nc < 64 ? nc : 64) : 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!v)
                goto missing;
            o->out = v, i++;
        } else if (!strcmp(a, "--wrd")) {
            if (!v)
                goto missing;
            o->wrd = v, i++;
        } else if (!strcmp(a, "--roi")) {
            if (parse_roi(v, &o->roi_h, &o->roi_w) < 0)
                return 2;
            i++;
        } else if (!strcmp(a, "--av-tolerance")) {
            if (parse_num(a, v, 0, 60, &o->av_tol) < 0)
                return 2;
            i++;
        } else if (!strcmp(a, "--threads")) {
            if (parse_num(a, v, 1, 256, &x) < 0)
                return 2;
            o->threads = (int)x, i++;
        } else if (!strcmp(a, "--babble")) {
            if (parse_num(a, v, 2, 256, &x) < 0)
                return 2;
            o->babble = (int)x, i++;
        } else if (!strcmp(a, "--babble-clips")) {
            if (parse_num(a, v, 1, 1e9, &x) < 0)
                return 2;
            o->babble_clips = (int64_t)x, i++;
        } else if (!strcmp(a, "--seed")) {
            if (parse_num(a, v, 0, 9007199254740992.0, &x) < 0)
                return 2;
            o->seed = (uint64_t)x, i++;
        } else if (!strcmp(a, "--split-by-speaker")) {
            if (parse_split(v, o->split) < 0)
                return 2;
            o->split_on = 1, i++;
        } else if (!strcmp(a, "--compress")) {
            o->compress = 1;
        } else if (!strcmp(a, "--skip-bad")) {
            o->skip_bad = 1;
        } else if (!strcmp(a, "--noise")) {
            o->noise = 1;
        } else if (!strcmp(a, "--quiet")) {
            o->quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, PROG ": unknown option '%s' (see --help)\n", a);
            return 2;
        } else if (!o->manifest) {
            o->manifest = a;
        } else {
            fprintf(stderr, PROG ": more than one manifest ('%s', '%s')\n", o->manifest, a);
            return 2;
        }
        continue;
    missing:
        fprintf(stderr, PROG ": %s needs a value\n", a);
        return 2;
    }
    if (!o->manifest || !o->out) {
        usage(stderr);
        return 2;
    }
    if (o->babble && !o->noise) {
        fprintf(stderr, PROG ": --babble needs --noise\n");
        return 2;
    }
    if (o->babble && o->split_on) {
        fprintf(stderr, PROG ": --babble and --split-by-speaker cannot be combined\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return do_pack(&pk);
}
