/* loader: packed shards + tokenizer + epoch plan + augmentation, with a
 * prefetch thread that keeps a bounded queue of ready batches (loader.h,
 * docs/data/loader.md). */
#include "loader.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "pack_format.h"
#include "pack_read.h"
#include "rng.h"

#define SPF AVSR_PACK_SAMPLES_PER_FRAME
#define ALIGN 64

/* ---- noise types ---------------------------------------------------------- */

static const char *const type_names[AVSR_NOISE_TYPES] = {"none", "file", "babble", "white",
                                                         "pink"};

const char *avsr_noise_type_name(int type)
{
    return type >= 0 && type < AVSR_NOISE_TYPES ? type_names[type] : NULL;
}

int avsr_noise_type_parse(const char *name)
{
    for (int t = 0; name && t < AVSR_NOISE_TYPES; t++)
        if (strcmp(name, type_names[t]) == 0)
            return t;
    return -1;
}

void avsr_loader_config_default(avsr_loader_config *cfg, bool train)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->gen_noise_seconds = 60.0;
    cfg->train = train;
    avsr_sampler_config_default(&cfg->sampler);
    avsr_augment_config_default(&cfg->augment, train);
    cfg->eval_noise.type = AVSR_NOISE_NONE;
    cfg->eval_noise.snr_db = INFINITY;
    cfg->queue_depth = 4;
    cfg->threads = 1;
    cfg->clean_audio = true;
}

/* ---- batches and their pool ----------------------------------------------- */

typedef struct pool pool;

/* A batch: this header, then its data in the same allocation. */
typedef struct batch_int {
    avsr_batch pub; /* first member: avsr_batch * <-> batch_int * */
    pool *pool;
    size_t cap;     /* bytes of data after the header */
    struct batch_int *next;
} batch_int;

#define HDR_BYTES ((sizeof(batch_int) + ALIGN - 1) / ALIGN * ALIGN)

/* Free batches for reuse. refs = 1 (the loader) + batches handed out of the
 * pool (in the queue or held by the caller); the last one frees it. */
struct pool {
    pthread_mutex_t mu;
    int refs;
    int closed;
    int nfree, max_free;
    batch_int *free;
};

static void pool_destroy(pool *p)
{
    while (p->free) {
        batch_int *b = p->free;
        p->free = b->next;
        free(b);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* A batch with at least `bytes` of data. */
static batch_int *pool_get(pool *p, size_t bytes, avsr_error *err)
{
    pthread_mutex_lock(&p->mu);
    batch_int *b = p->free;
    if (b) {
        p->free = b->next;
        p->nfree--;
    }
    p->refs++;
    pthread_mutex_unlock(&p->mu);
    if (b && b->cap < bytes) {
        free(b);
        b = NULL;
    }
    if (!b) {
        /* room for somewhat larger batches later */
        size_t cap = (bytes + bytes / 8 + ALIGN - 1) / ALIGN * ALIGN;
        b = aligned_alloc(ALIGN, HDR_BYTES + cap);
        if (!b) {
            pthread_mutex_lock(&p->mu);
            int last = --p->refs == 0;
            pthread_mutex_unlock(&p->mu);
            if (last)
                pool_destroy(p);
            AVSR_NOMEM(err, HDR_BYTES + cap);
            return NULL;
        }
        b->cap = cap;
    }
    b->pool = p;
    b->next = NULL;
    return b;
}

void avsr_batch_release(avsr_batch *pub)
{
    if (!pub)
        return;
    batch_int *b = (batch_int *)pub;
    pool *p = b->pool;
    pthread_mutex_lock(&p->mu);
    if (!p->closed && p->nfree < p->max_free) {
        b->next = p->free;
        p->free = b;
        p->nfree++;
    } else {
        free(b);
    }
    int last = --p->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (last)
        pool_destroy(p);
}

/* ---- the loader ------------------------------------------------------------ */

typedef struct bank {
    int n;
    float **wav;
    int64_t *len;
} bank;

typedef struct scratch {
    uint8_t *video;
    int16_t *audio;
} scratch;

struct avsr_loader {
    avsr_loader_config cfg;   /* copy; path arrays not kept */
    avsr_augment_config aug;  /* effective chain (eval: noise fixed) */
    avsr_augment_config aug_clean; /* audio chain for the clean reference */
    avsr_pack *pack;
    avsr_vocab *own_vocab;
    int H, W;
    int64_t n;
    int64_t *frames;   /* [n] */
    int64_t *ntok;     /* [n] */
    int64_t *tok_off;  /* [n] */
    int32_t *tok;      /* all token ids */
    int64_t max_frames_clip, max_samples_clip;
    bank banks[AVSR_NOISE_TYPES];
    int types[AVSR_NOISE_TYPES]; /* training: enabled types */
    int n_types;
    bool noise_on;                /* some sample may get noise this mode */
    int threads;
    scratch *scr;                 /* [threads] */

    /* epoch */
    bool started;
    uint64_t epoch;
    int rank, world, micro;       /* micro: batches per step (accumulation) */
    int64_t cursor, steps;        /* steps: batches served (steps x micro) */
    int64_t *share;               /* training: this rank's clips of a batch */
    avsr_plan *plan;              /* training */
    int64_t *ev_clips, *ev_start, ev_nb; /* evaluation: batch b = ev_clips[ev_start[b] ..) */
    avsr_plan_counts counts;
    uint64_t hash;

    /* prefetch thread and queue */
    pthread_t th;
    bool th_running;
    pthread_mutex_t mu;
    pthread_cond_t cv_ready, cv_space;
    batch_int **q;
    int qhead, qcount, depth;
    int64_t next_step;
    atomic_bool stop;
    bool done, failed;
    avsr_error th_err;
    pool *pool;
};

static const char *shard_path(const avsr_loader *l, int shard)
{
    avsr_pack_shard_meta m;
    if (avsr_pack_shard_info(l->pack, shard, &m) == 0 && m.path)
        return m.path;
    return "?";
}

/* Read every clip of a noise corpus into a bank (float, /32768). */
static int load_bank(bank *bk, const char *const *paths, int n, const char *what,
                     avsr_error *err)
{
    avsr_pack *p = avsr_pack_open(paths, n, err);
    if (!p)
        return -1;
    int rc = -1;
    int16_t *tmp = NULL;
    if (avsr_pack_kind(p) != AVSR_PACK_KIND_NOISE) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: kind %s; a %s corpus must be a noise pack (avsr-pack --noise)",
                       paths[0], avsr_pack_kind_name(avsr_pack_kind(p)), what);
        goto out;
    }
    int64_t cnt = avsr_pack_count(p);
    bk->wav = calloc((size_t)(cnt ? cnt : 1), sizeof *bk->wav);
    bk->len = calloc((size_t)(cnt ? cnt : 1), sizeof *bk->len);
    if (!bk->wav || !bk->len) {
        AVSR_NOMEM(err, (size_t)cnt * 16);
        goto out;
    }
    for (int64_t i = 0; i < cnt; i++) {
        avsr_pack_clip c;
        if (avsr_pack_clip_info(p, i, &c, err))
            goto out;
        if (c.samples <= 0)
            continue;
        int16_t *t2 = realloc(tmp, (size_t)c.samples * sizeof *tmp);
        float *w = malloc((size_t)c.samples * sizeof *w);
        if (!t2 || !w) {
            free(w);
            if (t2)
                tmp = t2;
            AVSR_NOMEM(err, (size_t)c.samples * 6);
            goto out;
        }
        tmp = t2;
        if (avsr_pack_read_audio(p, i, tmp, err)) {
            free(w);
            avsr_error_prefix(err, "%s clip %" PRId64 " (%s): ", what, i, c.id);
            goto out;
        }
        avsr_audio_from_i16(w, tmp, c.samples);
        bk->wav[bk->n] = w;
        bk->len[bk->n] = c.samples;
        bk->n++;
    }
    if (bk->n == 0) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: the %s corpus has no non-empty clip",
                       paths[0], what);
        goto out;
    }
    rc = 0;
out:
    free(tmp);
    avsr_pack_close(p);
    return rc;
}

static int gen_bank(bank *bk, int type, int64_t n, uint64_t seed, avsr_error *err)
{
    bk->wav = calloc(1, sizeof *bk->wav);
    bk->len = calloc(1, sizeof *bk->len);
    float *w = malloc((size_t)n * sizeof *w);
    if (!bk->wav || !bk->len || !w) {
        free(w);
        return AVSR_NOMEM(err, (size_t)n * sizeof *w);
    }
    /* keys no clip can have (clip ids are < 2^63) */
    avsr_aug_key key = {seed, 0, UINT64_MAX - (uint64_t)type};
    if (type == AVSR_NOISE_WHITE)
        avsr_noise_white(w, n, &key);
    else
        avsr_noise_pink(w, n, &key);
    bk->wav[0] = w;
    bk->len[0] = n;
    bk->n = 1;
    return 0;
}

static void free_bank(bank *bk)
{
    for (int i = 0; i < bk->n; i++)
        free(bk->wav[i]);
    free(bk->wav);
    free(bk->len);
    memset(bk, 0, sizeof *bk);
}

static int check_config(const avsr_loader_config *c, avsr_error *err)
{
    if (!c->paths || c->n_paths < 1)
        return avsr_error_set(err, AVSR_ERR_INVALID, "avsr_loader_open: no shard given");
    if (c->n_noise_paths < 0 || c->n_babble_paths < 0 ||
        (c->n_noise_paths > 0 && !c->noise_paths) || (c->n_babble_paths > 0 && !c->babble_paths))
        return avsr_error_set(err, AVSR_ERR_INVALID, "avsr_loader_open: bad noise path list");
    if (c->queue_depth < 1 || c->queue_depth > 1024)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_loader_open: queue_depth %d outside 1..1024", c->queue_depth);
    if (c->threads < 1 || c->threads > 256)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_loader_open: threads %d outside 1..256", c->threads);
    if ((c->white_noise || c->pink_noise) &&
        !(c->gen_noise_seconds >= 0.1 && c->gen_noise_seconds <= 3600.0))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_loader_open: gen_noise_seconds %g outside 0.1..3600",
                              c->gen_noise_seconds);
    if (!c->train) {
        int t = c->eval_noise.type;
        if (t < 0 || t >= AVSR_NOISE_TYPES)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "avsr_loader_open: eval noise type %d unknown", t);
        if (isnan(c->eval_noise.snr_db) || c->eval_noise.snr_db == -INFINITY)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "avsr_loader_open: eval noise SNR %g is not a number or +inf",
                                  c->eval_noise.snr_db);
        bool have = t == AVSR_NOISE_NONE || (t == AVSR_NOISE_FILE && c->n_noise_paths > 0) ||
                    (t == AVSR_NOISE_BABBLE && c->n_babble_paths > 0) ||
                    t == AVSR_NOISE_WHITE || t == AVSR_NOISE_PINK;
        if (!have)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "avsr_loader_open: eval noise type %s but no %s corpus given",
                                  type_names[t], type_names[t]);
    }
    return 0;
}

avsr_loader *avsr_loader_open(const avsr_loader_config *cfg, avsr_error *err)
{
    if (!cfg) {
        avsr_error_set(err, AVSR_ERR_INVALID, "avsr_loader_open: no config");
        return NULL;
    }
    if (check_config(cfg, err))
        return NULL;
    avsr_loader *l = calloc(1, sizeof *l);
    if (!l) {
        AVSR_NOMEM(err, sizeof *l);
        return NULL;
    }
    l->cfg = *cfg;
    l->cfg.paths = l->cfg.noise_paths = l->cfg.babble_paths = NULL;
    l->cfg.vocab = NULL;
    l->threads = cfg->threads;
    l->depth = cfg->queue_depth;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv_ready, NULL);
    pthread_cond_init(&l->cv_space, NULL);
    atomic_init(&l->stop, false);
    l->pool = calloc(1, sizeof *l->pool);
    if (!l->pool) {
        AVSR_NOMEM(err, sizeof *l->pool);
        goto fail;
    }
    pthread_mutex_init(&l->pool->mu, NULL);
    l->pool->refs = 1;
    l->pool->max_free = cfg->queue_depth + 2;
    l->q = calloc((size_t)l->depth, sizeof *l->q);
    if (!l->q) {
        AVSR_NOMEM(err, (size_t)l->depth * sizeof *l->q);
        goto fail;
    }

    /* the AV shards */
    l->pack = avsr_pack_open(cfg->paths, cfg->n_paths, err);
    if (!l->pack)
        goto fail;
    if (avsr_pack_kind(l->pack) != AVSR_PACK_KIND_AV) {
        avsr_error_set(err, AVSR_ERR_INVALID,
                       "%s: a noise pack; the loader reads AV packs (video, audio, text)",
                       cfg->paths[0]);
        goto fail;
    }
    l->H = avsr_pack_roi_height(l->pack);
    l->W = avsr_pack_roi_width(l->pack);
    if (cfg->augment.crop_h < 1 || cfg->augment.crop_w < 1 || cfg->augment.crop_h > l->H ||
        cfg->augment.crop_w > l->W) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: crop %dx%d does not fit the %dx%d ROI",
                       cfg->paths[0], cfg->augment.crop_h, cfg->augment.crop_w, l->H, l->W);
        goto fail;
    }
    l->n = avsr_pack_count(l->pack);
    if (l->n < 1) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: no clips", cfg->paths[0]);
        goto fail;
    }

    /* tokenise every transcript once */
    const avsr_vocab *vocab = cfg->vocab;
    if (!vocab) {
        if (avsr_vocab_default(&l->own_vocab, err))
            goto fail;
        vocab = l->own_vocab;
    }
    size_t nn = (size_t)l->n;
    l->frames = malloc(nn * sizeof *l->frames);
    l->ntok = malloc(nn * sizeof *l->ntok);
    l->tok_off = malloc(nn * sizeof *l->tok_off);
    l->share = malloc((nn ? nn : 1) * sizeof *l->share);
    if (!l->frames || !l->ntok || !l->tok_off || !l->share) {
        AVSR_NOMEM(err, nn * 24);
        goto fail;
    }
    int64_t total_text = 0, max_text = 0;
    for (int64_t i = 0; i < l->n; i++) {
        avsr_pack_clip c;
        if (avsr_pack_clip_info(l->pack, i, &c, err))
            goto fail;
        l->frames[i] = c.frames;
        int64_t ns = c.samples > c.frames * SPF ? c.samples : c.frames * SPF;
        if (c.frames > l->max_frames_clip)
            l->max_frames_clip = c.frames;
        if (ns > l->max_samples_clip)
            l->max_samples_clip = ns;
        total_text += c.text_bytes;
        if (c.text_bytes > max_text)
            max_text = c.text_bytes;
    }
    l->tok = malloc((size_t)(total_text ? total_text : 1) * sizeof *l->tok);
    char *text = malloc((size_t)max_text + 1);
    if (!l->tok || !text) {
        free(text);
        AVSR_NOMEM(err, (size_t)total_text * 4);
        goto fail;
    }
    int64_t off = 0;
    for (int64_t i = 0; i < l->n; i++) {
        avsr_pack_clip c;
        avsr_pack_clip_info(l->pack, i, &c, err);
        int64_t k = -1;
        if (avsr_pack_read_text(l->pack, i, text, (size_t)max_text + 1, err) == 0)
            k = avsr_vocab_encode(vocab, text, (size_t)c.text_bytes, l->tok + off,
                                  c.text_bytes, err);
        if (k < 0) {
            avsr_error_prefix(err, "%s: clip %" PRId64 " (%s): ", shard_path(l, c.shard), i,
                              c.id);
            free(text);
            goto fail;
        }
        l->tok_off[i] = off;
        l->ntok[i] = k;
        off += k;
    }
    free(text);

    /* noise sources */
    if (cfg->n_noise_paths > 0 &&
        load_bank(&l->banks[AVSR_NOISE_FILE], cfg->noise_paths, cfg->n_noise_paths, "noise", err))
        goto fail;
    if (cfg->n_babble_paths > 0 && load_bank(&l->banks[AVSR_NOISE_BABBLE], cfg->babble_paths,
                                             cfg->n_babble_paths, "babble", err))
        goto fail;
    int64_t gen_n = (int64_t)llround(cfg->gen_noise_seconds * AVSR_PACK_SAMPLE_RATE);
    bool want_white = cfg->white_noise || (!cfg->train && cfg->eval_noise.type == AVSR_NOISE_WHITE);
    bool want_pink = cfg->pink_noise || (!cfg->train && cfg->eval_noise.type == AVSR_NOISE_PINK);
    if (gen_n < 1600)
        gen_n = 1600;
    if (want_white && gen_bank(&l->banks[AVSR_NOISE_WHITE], AVSR_NOISE_WHITE, gen_n,
                               cfg->sampler.seed, err))
        goto fail;
    if (want_pink &&
        gen_bank(&l->banks[AVSR_NOISE_PINK], AVSR_NOISE_PINK, gen_n, cfg->sampler.seed, err))
        goto fail;

    /* the effective chains */
    l->aug = cfg->augment;
    if (cfg->train) {
        for (int t = 1; t < AVSR_NOISE_TYPES; t++)
            if (l->banks[t].n > 0)
                l->types[l->n_types++] = t;
        l->noise_on = l->n_types > 0;
    } else {
        avsr_noise_config_fixed(&l->aug.noise, cfg->eval_noise.snr_db);
        l->noise_on = cfg->eval_noise.type != AVSR_NOISE_NONE && isfinite(cfg->eval_noise.snr_db);
    }
    l->aug_clean = l->aug;
    l->aug_clean.modality_prob = 0.0;
    l->aug_clean.drop_audio = l->aug_clean.drop_video = false;

    /* per-thread read buffers */
    l->scr = calloc((size_t)l->threads, sizeof *l->scr);
    if (!l->scr) {
        AVSR_NOMEM(err, (size_t)l->threads * sizeof *l->scr);
        goto fail;
    }
    for (int t = 0; t < l->threads; t++) {
        size_t vb = (size_t)l->max_frames_clip * (size_t)l->H * (size_t)l->W;
        l->scr[t].video = malloc(vb ? vb : 1);
        l->scr[t].audio = malloc((size_t)l->max_samples_clip * sizeof(int16_t) + 2);
        if (!l->scr[t].video || !l->scr[t].audio) {
            AVSR_NOMEM(err, vb);
            goto fail;
        }
    }
    return l;
fail:
    avsr_loader_close(l);
    return NULL;
}

int64_t avsr_loader_count(const avsr_loader *l) { return l->n; }

int64_t avsr_loader_clip_frames(const avsr_loader *l, int64_t i)
{
    return i >= 0 && i < l->n ? l->frames[i] : -1;
}

const int32_t *avsr_loader_clip_tokens(const avsr_loader *l, int64_t i, int64_t *n)
{
    if (i < 0 || i >= l->n) {
        *n = 0;
        return NULL;
    }
    *n = l->ntok[i];
    return l->tok + l->tok_off[i];
}

/* ---- batch assembly ------------------------------------------------------- */

typedef struct layout {
    size_t video, audio, clean, lengths, mask, targets, tlen, ids, aug, ntype, total;
} layout;

static size_t take(size_t *at, size_t bytes)
{
    size_t o = *at;
    *at += (bytes + ALIGN - 1) / ALIGN * ALIGN;
    return o;
}

static void make_layout(layout *lo, int64_t B, int64_t T, int64_t L, int ch, int cw, bool clean)
{
    size_t at = 0, b = (size_t)B, t = (size_t)T;
    lo->video = take(&at, b * t * (size_t)ch * (size_t)cw * sizeof(float));
    lo->audio = take(&at, b * t * SPF * sizeof(float));
    lo->clean = clean ? take(&at, b * t * SPF * sizeof(float)) : 0;
    lo->lengths = take(&at, b * sizeof(int64_t));
    lo->mask = take(&at, b * t);
    lo->targets = take(&at, b * (size_t)L * sizeof(int32_t));
    lo->tlen = take(&at, b * sizeof(int64_t));
    lo->ids = take(&at, b * sizeof(uint64_t));
    lo->aug = take(&at, b * sizeof(avsr_augment_report));
    lo->ntype = take(&at, b);
    lo->total = at;
}

/* Rank's batch at `step` (an item index: step * micro + micro-batch): its
 * clips (n), the padded length T, plan batch index and repeat flag.
 * Training: plan batch `step` is split over the ranks (clip j goes to rank
 * j mod world) and every share is padded to the whole batch's longest clip,
 * (and its targets to the whole batch's longest target), so a clip's
 * tensors and its padding are the same for every world size.
 * Evaluation: whole batches, batch b to rank b mod world. */
static int batch_ref(avsr_loader *l, int64_t step, const int64_t **clips, int64_t *n,
                     int64_t *tmax, int64_t *lmax, int64_t *index, bool *repeat,
                     avsr_error *err)
{
    if (l->plan) {
        avsr_batch_ref r;
        if (avsr_plan_batch(l->plan, 0, step, &r, err))
            return -1;
        int64_t k = 0;
        *lmax = 0;
        for (int64_t j = 0; j < r.n; j++)
            *lmax = l->ntok[r.clips[j]] > *lmax ? l->ntok[r.clips[j]] : *lmax;
        for (int64_t j = l->rank; j < r.n; j += l->world)
            l->share[k++] = r.clips[j];
        if (k == 0)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "loader: batch %" PRId64 " of epoch %" PRIu64 " has %" PRId64
                                  " clips, fewer than the %d ranks (raise min_clips to the "
                                  "world size)",
                                  r.batch, l->epoch, r.n, l->world);
        *clips = l->share;
        *n = k;
        *tmax = r.tmax;
        *index = r.batch;
        *repeat = r.repeat;
        return 0;
    }
    int64_t b = step * l->world + l->rank;
    if (step < 0 || b >= l->ev_nb)
        return avsr_error_set(err, AVSR_ERR_INVALID, "loader: step %" PRId64 " out of range",
                              step);
    *clips = l->ev_clips + l->ev_start[b];
    *n = l->ev_start[b + 1] - l->ev_start[b];
    *tmax = 0;
    *lmax = 0;
    *index = b;
    *repeat = false;
    return 0;
}

/* Cut or pad the clip's audio to frames * 640 samples (Auto-AVSR cut_or_pad):
 * pads with zeros in place (the buffer holds max(samples, frames * 640)). */
static void cut_or_pad(int16_t *a, int64_t have, int64_t want)
{
    if (have < want)
        memset(a + have, 0, (size_t)(want - have) * sizeof *a);
}

/* Augment clip `clip` into row b of batch pb. */
static int make_sample(avsr_loader *l, scratch *s, avsr_batch *pb, int64_t b, int64_t clip,
                       avsr_error *err)
{
    avsr_pack_clip c;
    if (avsr_pack_clip_info(l->pack, clip, &c, err))
        return -1;
    int64_t T = pb->T, F = c.frames, ns = F * SPF;
    size_t fsz = (size_t)pb->crop_h * (size_t)pb->crop_w;
    if (avsr_pack_read_video(l->pack, clip, s->video, err) ||
        avsr_pack_read_audio(l->pack, clip, s->audio, err)) {
        avsr_error_prefix(err, "clip %" PRId64 " (%s): ", clip, c.id);
        return -1;
    }
    cut_or_pad(s->audio, c.samples, ns);

    avsr_aug_key key = {pb->seed, pb->epoch, (uint64_t)clip};
    int type = AVSR_NOISE_NONE;
    if (l->cfg.train) {
        if (l->n_types == 1) {
            type = l->types[0];
        } else if (l->n_types > 1) {
            avsr_rng r;
            avsr_aug_stream(&r, &key, AVSR_RNG_NOISE, 3);
            type = l->types[avsr_rng_below(&r, (uint32_t)l->n_types)];
        }
    } else if (l->noise_on) {
        type = l->cfg.eval_noise.type;
    }
    const bank *bk = type != AVSR_NOISE_NONE ? &l->banks[type] : NULL;
    avsr_noise_bank nb = {bk ? bk->n : 0, bk ? (const float *const *)bk->wav : NULL,
                          bk ? bk->len : NULL};

    float *vout = pb->video + (size_t)b * (size_t)T * fsz;
    float *aout = pb->audio + (size_t)b * (size_t)T * SPF;
    avsr_augment_report *rep = &pb->aug[b];
    if (avsr_augment_sample(&l->aug, &key, s->video, F, l->H, l->W, vout, s->audio, ns, aout,
                            bk ? &nb : NULL, rep, err))
        goto bad;
    /* padding */
    memset(vout + (size_t)F * fsz, 0, (size_t)(T - F) * fsz * sizeof *vout);
    memset(aout + ns, 0, (size_t)(T * SPF - ns) * sizeof *aout);
    if (pb->clean) {
        float *cout = pb->clean + (size_t)b * (size_t)T * SPF;
        if (rep->noise || rep->audio_dropped) {
            if (avsr_augment_sample(&l->aug_clean, &key, NULL, 0, 0, 0, NULL, s->audio, ns, cout,
                                    NULL, NULL, err))
                goto bad;
        } else {
            memcpy(cout, aout, (size_t)ns * sizeof *cout);
        }
        memset(cout + ns, 0, (size_t)(T * SPF - ns) * sizeof *cout);
    }
    pb->noise_type[b] = (uint8_t)(rep->noise ? type : AVSR_NOISE_NONE);
    pb->lengths[b] = F;
    memset(pb->mask + (size_t)b * (size_t)T, 1, (size_t)F);
    memset(pb->mask + (size_t)b * (size_t)T + F, 0, (size_t)(T - F));
    int64_t k = l->ntok[clip];
    int32_t *tg = pb->targets + (size_t)b * (size_t)pb->L;
    memcpy(tg, l->tok + l->tok_off[clip], (size_t)k * sizeof *tg);
    for (int64_t j = k; j < pb->L; j++)
        tg[j] = AVSR_VOCAB_IGNORE;
    pb->target_lengths[b] = k;
    pb->sample_ids[b] = (uint64_t)clip;
    return 0;
bad:
    avsr_error_prefix(err, "%s: clip %" PRId64 " (%s): ", shard_path(l, c.shard), clip, c.id);
    return -1;
}

static batch_int *assemble(avsr_loader *l, int64_t step, avsr_error *err)
{
    const int64_t *clips = NULL;
    int64_t n = 0, index = 0, T = 0, L = 0;
    bool repeat = false;
    if (batch_ref(l, step, &clips, &n, &T, &L, &index, &repeat, err))
        return NULL;
    int64_t frames = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t f = l->frames[clips[i]], k = l->ntok[clips[i]];
        T = f > T ? f : T;
        L = k > L ? k : L;
        frames += f;
    }
    int ch = l->aug.crop_h, cw = l->aug.crop_w;
    bool clean = l->noise_on && l->cfg.clean_audio;
    layout lo;
    make_layout(&lo, n, T, L, ch, cw, clean);
    batch_int *bi = pool_get(l->pool, lo.total, err);
    if (!bi)
        return NULL;
    unsigned char *d = (unsigned char *)bi + HDR_BYTES;
    avsr_batch *pb = &bi->pub;
    pb->B = n;
    pb->T = T;
    pb->L = L;
    pb->crop_h = ch;
    pb->crop_w = cw;
    pb->video = (float *)(d + lo.video);
    pb->audio = (float *)(d + lo.audio);
    pb->clean = clean ? (float *)(d + lo.clean) : NULL;
    pb->lengths = (int64_t *)(d + lo.lengths);
    pb->mask = d + lo.mask;
    pb->targets = (int32_t *)(d + lo.targets);
    pb->target_lengths = (int64_t *)(d + lo.tlen);
    pb->sample_ids = (uint64_t *)(d + lo.ids);
    pb->aug = (avsr_augment_report *)(d + lo.aug);
    pb->noise_type = d + lo.ntype;
    pb->seed = l->cfg.sampler.seed;
    pb->epoch = l->epoch;
    pb->step = step / l->micro;
    pb->micro = (int)(step % l->micro);
    pb->ranks = l->world;
    pb->index = index;
    pb->frames = frames;
    pb->repeat = repeat;

    int failed_at = -1;
    avsr_error e1 = {0};
#pragma omp parallel for num_threads(l->threads) schedule(dynamic, 1) /* see prefetch_main */
    for (int64_t b = 0; b < n; b++) {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        if (atomic_load(&l->stop))
            continue;
        avsr_error e = {0};
        if (make_sample(l, &l->scr[t], pb, b, clips[b], &e)) {
#pragma omp critical(avsr_loader_err)
            if (failed_at < 0 || b < failed_at) {
                failed_at = (int)b;
                e1 = e;
            }
        }
    }
    if (failed_at >= 0 || atomic_load(&l->stop)) {
        if (failed_at >= 0)
            *err = e1;
        avsr_batch_release(pb);
        return NULL;
    }
    return bi;
}

/* ---- the prefetch thread --------------------------------------------------- */

static void *prefetch_main(void *arg)
{
    avsr_loader *l = arg;
#ifdef _OPENMP
    /* This thread's own ICV: the chain's inner `omp parallel` loops run on
     * one thread here, so threads = 1 means one core and a sample's bits do
     * not depend on OMP_NUM_THREADS (the batch team size comes from the
     * num_threads clause below). */
    omp_set_num_threads(1);
#endif
    for (;;) {
        pthread_mutex_lock(&l->mu);
        while (!atomic_load(&l->stop) && l->qcount == l->depth)
            pthread_cond_wait(&l->cv_space, &l->mu);
        int64_t step = l->next_step;
        if (atomic_load(&l->stop) || step >= l->steps) {
            if (!atomic_load(&l->stop))
                l->done = true;
            pthread_cond_broadcast(&l->cv_ready);
            pthread_mutex_unlock(&l->mu);
            return NULL;
        }
        pthread_mutex_unlock(&l->mu);

        avsr_error e = {0};
        batch_int *b = assemble(l, step, &e);

        pthread_mutex_lock(&l->mu);
        if (!b) {
            if (!atomic_load(&l->stop)) {
                l->failed = true;
                l->th_err = e;
                pthread_cond_broadcast(&l->cv_ready);
            }
            pthread_mutex_unlock(&l->mu);
            return NULL;
        }
        l->q[(l->qhead + l->qcount) % l->depth] = b;
        l->qcount++;
        l->next_step = step + 1;
        pthread_cond_broadcast(&l->cv_ready);
        pthread_mutex_unlock(&l->mu);
    }
}

/* Stop and join the thread; give queued batches back. */
static void stop_epoch(avsr_loader *l)
{
    if (l->th_running) {
        pthread_mutex_lock(&l->mu);
        atomic_store(&l->stop, true);
        pthread_cond_broadcast(&l->cv_space);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->th, NULL);
        l->th_running = false;
    }
    while (l->qcount > 0) {
        avsr_batch_release(&l->q[l->qhead]->pub);
        l->qhead = (l->qhead + 1) % l->depth;
        l->qcount--;
    }
    l->qhead = 0;
    atomic_store(&l->stop, false);
    avsr_plan_free(l->plan);
    l->plan = NULL;
    free(l->ev_clips);
    free(l->ev_start);
    l->ev_clips = l->ev_start = NULL;
    l->ev_nb = 0;
    l->started = false;
}

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv_word(uint64_t h, int64_t w)
{
    uint64_t u = (uint64_t)w;
    for (int i = 0; i < 8; i++) {
        h ^= (u >> (8 * i)) & 0xff;
        h *= FNV_PRIME;
    }
    return h;
}

/* Evaluation order: every clip by index (except those over max_len), cut
 * greedily into batches with padded size B * Tmax <= max_frames (a longer
 * clip gets a batch of its own); batch b goes to rank b mod world. */
static int build_eval(avsr_loader *l, avsr_error *err)
{
    const avsr_sampler_config *sc = &l->cfg.sampler;
    if (sc->max_frames <= 0 || sc->max_len < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_loader_start: max_frames %" PRId64 " / max_len %" PRId64
                              " invalid",
                              sc->max_frames, sc->max_len);
    memset(&l->counts, 0, sizeof l->counts);
    l->counts.total = l->n;
    l->ev_clips = malloc((size_t)l->n * sizeof *l->ev_clips);
    l->ev_start = malloc(((size_t)l->n + 1) * sizeof *l->ev_start);
    if (!l->ev_clips || !l->ev_start)
        return AVSR_NOMEM(err, (size_t)l->n * 16);
    int64_t k = 0, nb = 0, bn = 0, tmax = 0;
    for (int64_t i = 0; i < l->n; i++) {
        int64_t f = l->frames[i];
        if (f <= 0) {
            l->counts.empty++;
            continue;
        }
        if (sc->max_len > 0 && f > sc->max_len) {
            l->counts.too_long++;
            continue;
        }
        int64_t t2 = f > tmax ? f : tmax;
        if (bn > 0 && (bn + 1) * t2 > sc->max_frames) {
            bn = 0;
            t2 = f;
        }
        if (bn == 0)
            l->ev_start[nb++] = k;
        l->ev_clips[k++] = i;
        bn++;
        tmax = t2;
    }
    l->ev_start[nb] = k;
    l->ev_nb = nb;
    l->counts.kept = k;
    if (k == 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_loader_start: no clip left (%" PRId64 " longer than max_len)",
                              l->counts.too_long);
    int64_t steps_max = (nb + l->world - 1) / l->world;
    l->steps = nb > l->rank ? (nb - l->rank + l->world - 1) / l->world : 0;
    uint64_t h = FNV_OFFSET;
    h = fnv_word(h, l->world);
    h = fnv_word(h, (int64_t)l->epoch);
    h = fnv_word(h, steps_max);
    for (int64_t b = 0; b < nb; b++) {
        h = fnv_word(h, l->ev_start[b + 1] - l->ev_start[b]);
        for (int64_t j = l->ev_start[b]; j < l->ev_start[b + 1]; j++) {
            h = fnv_word(h, l->ev_clips[j]);
            h = fnv_word(h, l->frames[l->ev_clips[j]]);
        }
    }
    l->hash = h;
    return 0;
}

int avsr_loader_start(avsr_loader *l, uint64_t epoch, int rank, int world, int64_t cursor,
                      avsr_error *err)
{
    return avsr_loader_start_micro(l, epoch, rank, world, 1, cursor, err);
}

int avsr_loader_start_micro(avsr_loader *l, uint64_t epoch, int rank, int world, int micro,
                            int64_t cursor, avsr_error *err)
{
    stop_epoch(l);
    l->failed = l->done = false;
    if (world < 1 || rank < 0 || rank >= world)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_loader_start: rank %d of world size %d", rank, world);
    if (micro < 1 || (micro > 1 && !l->cfg.train))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_loader_start: %d micro-batches per step (evaluation "
                              "serves 1)", micro);
    l->epoch = epoch;
    l->rank = rank;
    l->world = world;
    l->micro = micro;
    if (l->cfg.train) {
        if (avsr_plan_build(&l->plan, &l->cfg.sampler, epoch, 1, l->n, l->frames, l->ntok,
                            err))
            return -1;
        l->steps = avsr_plan_steps(l->plan) / micro * micro;
        l->counts = *avsr_plan_get_counts(l->plan);
        l->hash = avsr_plan_hash(l->plan);
    } else if (build_eval(l, err)) {
        stop_epoch(l);
        return -1;
    }
    cursor *= micro;
    if (cursor < 0 || cursor > l->steps) {
        int64_t s = l->steps / micro;
        cursor /= micro;
        stop_epoch(l);
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_loader_start: cursor %" PRId64 " outside 0..%" PRId64
                              " (steps of epoch %" PRIu64 ")",
                              cursor, s, epoch);
    }
    l->cursor = cursor;
    l->next_step = cursor;
    l->started = true;
    if (cursor == l->steps) {
        l->done = true;
        return 0;
    }
    if (pthread_create(&l->th, NULL, prefetch_main, l) != 0) {
        stop_epoch(l);
        return avsr_error_set(err, AVSR_ERR_BACKEND, "avsr_loader_start: cannot start a thread");
    }
    l->th_running = true;
    return 0;
}

uint64_t avsr_loader_plan_hash(const avsr_loader *l) { return l->started ? l->hash : 0; }
int64_t avsr_loader_steps(const avsr_loader *l)
{
    return l->started ? l->steps / l->micro : 0;
}
const avsr_plan_counts *avsr_loader_counts(const avsr_loader *l)
{
    return l->started ? &l->counts : NULL;
}

int avsr_loader_next(avsr_loader *l, avsr_batch **out, avsr_error *err)
{
    *out = NULL;
    if (!l->started)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_loader_next: no epoch started (call avsr_loader_start)");
    pthread_mutex_lock(&l->mu);
    while (!l->failed && l->qcount == 0 && !l->done)
        pthread_cond_wait(&l->cv_ready, &l->mu);
    if (l->failed) {
        avsr_error e = l->th_err;
        pthread_mutex_unlock(&l->mu);
        if (err && !err->code)
            *err = e;
        return -1;
    }
    if (l->qcount > 0) {
        batch_int *b = l->q[l->qhead];
        l->qhead = (l->qhead + 1) % l->depth;
        l->qcount--;
        pthread_cond_broadcast(&l->cv_space);
        pthread_mutex_unlock(&l->mu);
        *out = &b->pub;
        return 1;
    }
    pthread_mutex_unlock(&l->mu);
    return 0;
}

void avsr_loader_close(avsr_loader *l)
{
    if (!l)
        return;
    stop_epoch(l);
    if (l->pool) {
        pool *p = l->pool;
        pthread_mutex_lock(&p->mu);
        p->closed = 1;
        while (p->free) {
            batch_int *b = p->free;
            p->free = b->next;
            free(b);
        }
        p->nfree = 0;
        int last = --p->refs == 0;
        pthread_mutex_unlock(&p->mu);
        if (last)
            pool_destroy(p);
    }
    for (int t = 0; l->scr && t < l->threads; t++) {
        free(l->scr[t].video);
        free(l->scr[t].audio);
    }
    free(l->scr);
    for (int t = 0; t < AVSR_NOISE_TYPES; t++)
        free_bank(&l->banks[t]);
    free(l->frames);
    free(l->ntok);
    free(l->tok_off);
    free(l->share);
    free(l->tok);
    avsr_vocab_free(l->own_vocab);
    avsr_pack_close(l->pack);
    free(l->q);
    pthread_cond_destroy(&l->cv_ready);
    pthread_cond_destroy(&l->cv_space);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
