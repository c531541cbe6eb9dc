/* sampler: length-bucketed batching by frames and epoch plans (see sampler.h
 * and docs/data/sampler.md). */
#include "sampler.h"

#include <stdlib.h>
#include <string.h>

#include "rng.h"

struct avsr_plan {
    int world;
    uint64_t epoch;
    int64_t nbatches;
    int64_t nsteps;
    int64_t nclips;       /* kept clips */
    int64_t *clips;       /* [nclips] dataset indices, batch after batch */
    int64_t *lens;        /* [nclips] their lengths (frames) */
    int64_t *bstart;      /* [nbatches + 1] offsets into clips */
    int64_t *btmax;       /* [nbatches] */
    int64_t *bframes;     /* [nbatches] sum of lengths */
    int64_t *assign;      /* [nsteps, world] batch index */
    uint8_t *repeat;      /* [nsteps, world] 1 = repeated batch */
    avsr_plan_counts counts;
    uint64_t hash;
};

void avsr_sampler_config_default(avsr_sampler_config *cfg)
{
    cfg->max_frames = 1600;
    cfg->min_clips = 1;
    cfg->nbuckets = 50;
    cfg->seed = 42;
    cfg->drop_last = false;
    cfg->max_len = 0;
    cfg->ctc_filter = true;
}

void avsr_plan_free(avsr_plan *p)
{
    if (!p)
        return;
    free(p->clips);
    free(p->lens);
    free(p->bstart);
    free(p->btmax);
    free(p->bframes);
    free(p->assign);
    free(p->repeat);
    free(p);
}

/* Fisher-Yates shuffle of a[0..n) with one stream. */
static void shuffle_i64(int64_t *a, int64_t n, avsr_rng *r)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)avsr_rng_below(r, (uint32_t)(i + 1));
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* sort key for step grouping: padded size descending, batch index ascending */
typedef struct bkey {
    int64_t padded;
    int64_t idx;
} bkey;

static int cmp_bkey(const void *a, const void *b)
{
    const bkey *x = a, *y = b;
    if (x->padded != y->padded)
        return x->padded > y->padded ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static uint64_t fnv_word(uint64_t h, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++) {
        h ^= (u >> (8 * i)) & 0xffu;
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t plan_hash(const avsr_plan *p)
{
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv_word(h, p->world);
    h = fnv_word(h, (int64_t)p->epoch);
    h = fnv_word(h, p->nsteps);
    for (int64_t s = 0; s < p->nsteps * p->world; s++) {
        int64_t b = p->assign[s];
        int64_t n = p->bstart[b + 1] - p->bstart[b];
        h = fnv_word(h, n);
        for (int64_t i = 0; i < n; i++) {
            h = fnv_word(h, p->clips[p->bstart[b] + i]);
            h = fnv_word(h, p->lens[p->bstart[b] + i]);
        }
    }
    return h;
}

int avsr_plan_build(avsr_plan **out, const avsr_sampler_config *cfg, uint64_t epoch,
                    int world_size, int64_t n, const int64_t *frames, const int64_t *tokens,
                    avsr_error *err)
{
    const char *fn = "avsr_plan_build";
    *out = NULL;
    if (!cfg)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: config is NULL", fn);
    if (cfg->min_clips < 1)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: min_clips must be >= 1, got %d", fn,
                              cfg->min_clips);
    if (cfg->max_frames <= 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: max_frames must be > 0, got %lld", fn,
                              (long long)cfg->max_frames);
    if (cfg->nbuckets < 1 || cfg->nbuckets > 1000000)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: nbuckets must be in [1, 1000000], got %d", fn, cfg->nbuckets);
    if (cfg->max_len < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: max_len must be >= 0, got %lld", fn,
                              (long long)cfg->max_len);
    if (world_size < 1)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: world_size must be >= 1, got %d", fn,
                              world_size);
    if (n < 0 || (n > 0 && !frames))
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: bad dataset index (n = %lld)", fn,
                              (long long)n);

    avsr_plan *p = calloc(1, sizeof *p);
    int64_t *kept = n ? malloc((size_t)n * sizeof *kept) : NULL;
    if (!p || (n && !kept)) {
        free(p);
        free(kept);
        return AVSR_NOMEM(err, (size_t)n * sizeof *kept);
    }
    p->world = world_size;
    p->epoch = epoch;
    avsr_plan_counts *c = &p->counts;
    c->total = n;

    /* 1. filter (first matching reason counts) */
    int64_t nk = 0, lmin = INT64_MAX, lmax = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t L = frames[i];
        if (tokens && tokens[i] < 0) {
            free(kept);
            avsr_plan_free(p);
            return avsr_error_set(err, AVSR_ERR_INVALID, "%s: clip %lld: negative token count %lld",
                                  fn, (long long)i, (long long)tokens[i]);
        }
        if (L <= 0)
            c->empty++;
        else if (cfg->max_len > 0 && L > cfg->max_len)
            c->too_long++;
        else if (L > cfg->max_frames)
            c->over_budget++;
        else if (cfg->ctc_filter && tokens && tokens[i] > L)
            c->ctc++;
        else {
            kept[nk++] = i;
            if (L < lmin)
                lmin = L;
            if (L > lmax)
                lmax = L;
        }
    }
    if (nk == 0) {
        avsr_plan_counts cc = *c;
        free(kept);
        avsr_plan_free(p);
        c = &cc;
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: no clip left of %lld (%lld empty, %lld longer than max_len, "
                              "%lld longer than max_frames, %lld failing the CTC filter)",
                              fn, (long long)n, (long long)c->empty, (long long)c->too_long,
                              (long long)c->over_budget, (long long)c->ctc);
    }

    /* 2. buckets: b = (L - min) * nb / (max - min + 1), counting sort that
     * keeps dataset order inside a bucket */
    int nb = cfg->nbuckets;
    int64_t *bcount = calloc((size_t)nb + 1, sizeof *bcount);
    int64_t *order = malloc((size_t)nk * sizeof *order);
    int64_t *bucket_of = malloc((size_t)nk * sizeof *bucket_of);
    if (!bcount || !order || !bucket_of) {
        free(bcount);
        free(order);
        free(bucket_of);
        free(kept);
        avsr_plan_free(p);
        return AVSR_NOMEM(err, (size_t)nk * sizeof *order);
    }
    unsigned __int128 span = (unsigned __int128)(lmax - lmin + 1);
    for (int64_t k = 0; k < nk; k++) {
        unsigned __int128 off = (unsigned __int128)(frames[kept[k]] - lmin);
        bucket_of[k] = (int64_t)(off * (unsigned)nb / span);
        bcount[bucket_of[k] + 1]++;
    }
    for (int b = 0; b < nb; b++)
        bcount[b + 1] += bcount[b];
    {
        int64_t *fill = malloc((size_t)nb * sizeof *fill);
        if (!fill) {
            free(bcount);
            free(order);
            free(bucket_of);
            free(kept);
            avsr_plan_free(p);
            return AVSR_NOMEM(err, (size_t)nb * sizeof *fill);
        }
        memcpy(fill, bcount, (size_t)nb * sizeof *fill);
        for (int64_t k = 0; k < nk; k++)
            order[fill[bucket_of[k]]++] = kept[k];
        free(fill);
    }
    free(bucket_of);
    free(kept);

    /* 3. shuffle each bucket with its own stream */
    for (int b = 0; b < nb; b++) {
        avsr_rng r;
        avsr_rng_init(&r, cfg->seed, epoch, (uint64_t)b, AVSR_RNG_SHUFFLE);
        shuffle_i64(order + bcount[b], bcount[b + 1] - bcount[b], &r);
    }

    /* 4. greedy packing under B * Tmax <= max_frames; batches never span
     * buckets. At most nk batches. */
    p->clips = order;
    p->nclips = nk;
    p->bstart = malloc(((size_t)nk + 1) * sizeof *p->bstart);
    p->lens = malloc((size_t)nk * sizeof *p->lens);
    if (!p->bstart || !p->lens) {
        free(bcount);
        avsr_plan_free(p);
        return AVSR_NOMEM(err, ((size_t)nk + 1) * sizeof *p->bstart);
    }
    int64_t nbat = 0;
    for (int b = 0; b < nb; b++) {
        int64_t cnt = 0, tmax = 0;
        for (int64_t k = bcount[b]; k < bcount[b + 1]; k++) {
            int64_t L = frames[order[k]];
            int64_t t = L > tmax ? L : tmax;
            p->lens[k] = L;
            if (cnt >= cfg->min_clips && (cnt + 1) * t > cfg->max_frames) {
                cnt = 0;
                tmax = 0;
                t = L;
            }
            if (cnt == 0)
                p->bstart[nbat++] = k;
            cnt++;
            tmax = t;
        }
    }
    if (cfg->min_clips > 1) { /* small tails join the batch before them */
        int64_t w = 0;
        for (int64_t b = 0; b < nbat; b++) {
            int64_t end = b + 1 < nbat ? p->bstart[b + 1] : nk;
            if (w > 0 && end - p->bstart[b] < cfg->min_clips)
                continue;
            p->bstart[w++] = p->bstart[b];
        }
        if (w >= 2 && p->bstart[1] - p->bstart[0] < cfg->min_clips) {
            memmove(p->bstart + 1, p->bstart + 2, (size_t)(w - 2) * sizeof *p->bstart);
            w--;
        }
        nbat = w;
    }
    p->bstart[nbat] = nk;
    free(bcount);
    p->nbatches = nbat;
    p->btmax = malloc((size_t)nbat * sizeof *p->btmax);
    p->bframes = malloc((size_t)nbat * sizeof *p->bframes);
    bkey *keys = malloc((size_t)nbat * sizeof *keys);
    if (!p->btmax || !p->bframes || !keys) {
        free(keys);
        avsr_plan_free(p);
        return AVSR_NOMEM(err, (size_t)nbat * sizeof *keys);
    }
    for (int64_t b = 0; b < nbat; b++) {
        int64_t tmax = 0, sum = 0;
        for (int64_t k = p->bstart[b]; k < p->bstart[b + 1]; k++) {
            int64_t L = frames[p->clips[k]];
            sum += L;
            if (L > tmax)
                tmax = L;
        }
        p->btmax[b] = tmax;
        p->bframes[b] = sum;
        keys[b].padded = tmax * (p->bstart[b + 1] - p->bstart[b]);
        keys[b].idx = b;
    }

    /* 5. steps: groups of `world` consecutive batches in size order */
    qsort(keys, (size_t)nbat, sizeof *keys, cmp_bkey);
    int64_t W = world_size;
    int64_t full = nbat / W, rem = nbat % W;
    int64_t ngroups = full + (rem && !cfg->drop_last ? 1 : 0);
    if (rem && cfg->drop_last) {
        c->tail_batches = rem;
        for (int64_t j = nbat - rem; j < nbat; j++) {
            int64_t b = keys[j].idx;
            c->tail_clips += p->bstart[b + 1] - p->bstart[b];
        }
    }
    if (ngroups == 0) {
        free(keys);
        avsr_plan_free(p);
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: %lld batches for %d ranks with drop_last: no step left", fn,
                              (long long)nbat, world_size);
    }
    /* group slots [ngroups, W] as positions into keys, plus repeat flags */
    int64_t *gpos = malloc((size_t)(ngroups * W) * sizeof *gpos);
    uint8_t *grep = calloc((size_t)(ngroups * W), 1);
    uint8_t *used = calloc((size_t)nbat, 1);
    int64_t *gorder = malloc((size_t)ngroups * sizeof *gorder);
    p->assign = malloc((size_t)(ngroups * W) * sizeof *p->assign);
    p->repeat = calloc((size_t)(ngroups * W), 1);
    if (!gpos || !grep || !used || !gorder || !p->assign || !p->repeat) {
        free(gpos);
        free(grep);
        free(used);
        free(gorder);
        free(keys);
        avsr_plan_free(p);
        return AVSR_NOMEM(err, (size_t)(ngroups * W) * sizeof *gpos);
    }
    for (int64_t g = 0; g < full; g++)
        for (int64_t j = 0; j < W; j++) {
            gpos[g * W + j] = g * W + j;
            used[g * W + j] = 1;
        }
    if (ngroups > full) {
        /* last group: the rem smallest batches, then the next-smallest
         * batches again (wrapping when there are fewer batches than ranks) */
        for (int64_t j = 0; j < W; j++) {
            int64_t pos = ((nbat - W + j) % nbat + nbat) % nbat;
            gpos[full * W + j] = pos;
            grep[full * W + j] = used[pos];
            if (used[pos])
                c->repeated_batches++;
            used[pos] = 1;
        }
        /* inside a group keep size order (largest first) for the deal */
        for (int64_t a = 1; a < W; a++)
            for (int64_t bb = a; bb > 0; bb--) {
                int64_t *x = &gpos[full * W + bb - 1], *y = &gpos[full * W + bb];
                if (cmp_bkey(&keys[*x], &keys[*y]) <= 0)
                    break;
                int64_t t = *x;
                *x = *y;
                *y = t;
                uint8_t u = grep[full * W + bb - 1];
                grep[full * W + bb - 1] = grep[full * W + bb];
                grep[full * W + bb] = u;
            }
    }
    free(used);
    for (int64_t g = 0; g < ngroups; g++)
        gorder[g] = g;
    {
        avsr_rng r;
        avsr_rng_init(&r, cfg->seed, epoch, UINT64_MAX, AVSR_RNG_SHUFFLE);
        shuffle_i64(gorder, ngroups, &r);
    }

    /* 6. deal: largest batch of the step to the rank with the fewest padded
     * frames so far (ties: lowest rank) */
    int64_t *load = calloc((size_t)W, sizeof *load);
    uint8_t *taken = malloc((size_t)W);
    if (!load || !taken) {
        free(load);
        free(taken);
        free(gpos);
        free(grep);
        free(gorder);
        free(keys);
        avsr_plan_free(p);
        return AVSR_NOMEM(err, (size_t)W * sizeof *load);
    }
    for (int64_t s = 0; s < ngroups; s++) {
        int64_t g = gorder[s];
        memset(taken, 0, (size_t)W);
        for (int64_t j = 0; j < W; j++) {
            const bkey *k = &keys[gpos[g * W + j]];
            int64_t best = -1;
            for (int64_t r = 0; r < W; r++)
                if (!taken[r] && (best < 0 || load[r] < load[best]))
                    best = r;
            taken[best] = 1;
            load[best] += k->padded;
            p->assign[s * W + best] = k->idx;
            p->repeat[s * W + best] = grep[g * W + j];
        }
    }
    free(load);
    free(taken);
    free(gpos);
    free(grep);
    free(gorder);
    free(keys);
    p->nsteps = ngroups;
    c->kept = nk - c->tail_clips;
    p->hash = plan_hash(p);
    *out = p;
    return 0;
}

int64_t avsr_plan_steps(const avsr_plan *p) { return p->nsteps; }
int64_t avsr_plan_nbatches(const avsr_plan *p) { return p->nbatches; }
int avsr_plan_world_size(const avsr_plan *p) { return p->world; }
uint64_t avsr_plan_epoch(const avsr_plan *p) { return p->epoch; }
const avsr_plan_counts *avsr_plan_get_counts(const avsr_plan *p) { return &p->counts; }
uint64_t avsr_plan_hash(const avsr_plan *p) { return p->hash; }

static void fill_ref(const avsr_plan *p, int64_t b, avsr_batch_ref *out)
{
    out->clips = p->clips + p->bstart[b];
    out->n = p->bstart[b + 1] - p->bstart[b];
    out->tmax = p->btmax[b];
    out->frames = p->bframes[b];
    out->padded = out->n * out->tmax;
    out->batch = b;
    out->repeat = false;
}

int avsr_plan_batch_at(const avsr_plan *p, int64_t b, avsr_batch_ref *out, avsr_error *err)
{
    if (b < 0 || b >= p->nbatches)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_plan_batch_at: batch %lld out of range [0, %lld)", (long long)b,
                              (long long)p->nbatches);
    fill_ref(p, b, out);
    return 0;
}

int avsr_plan_batch(const avsr_plan *p, int rank, int64_t step, avsr_batch_ref *out,
                    avsr_error *err)
{
    if (rank < 0 || rank >= p->world)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_plan_batch: rank %d out of range [0, %d)", rank, p->world);
    if (step < 0 || step >= p->nsteps)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "avsr_plan_batch: step %lld out of range [0, %lld) (epoch %llu)",
                              (long long)step, (long long)p->nsteps,
                              (unsigned long long)p->epoch);
    int64_t s = step * p->world + rank;
    fill_ref(p, p->assign[s], out);
    out->repeat = p->repeat[s] != 0;
    return 0;
}
