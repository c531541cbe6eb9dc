/* grad_sync: bucketed gradient all-reduce and parameter broadcast
 * (grad_sync.h). */
#include "grad_sync.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coord.h"
#include "dtype.h"

typedef struct piece {
    int64_t off, n; /* floats into the flat buffer */
} piece;

struct avsr_grad_sync {
    avsr_params *p;
    avsr_comm *c;
    piece *pieces;   /* all buckets' pieces, bucket by bucket */
    int *first;      /* bucket i's pieces are pieces[first[i] .. first[i+1]) */
    int nbuckets;
    int64_t floats;  /* total floats reduced */
    int64_t bucket_floats;
    float *staging;  /* bucket_floats, only if some bucket has several pieces */
    uint64_t hash;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void avsr_grad_sync_destroy(avsr_grad_sync *gs)
{
    if (!gs)
        return;
    free(gs->pieces);
    free(gs->first);
    free(gs->staging);
    free(gs);
}

/* Ranges of consecutive parameters that require grad, in store order. */
static int collect_runs(avsr_params *p, piece **out, int *nout, avsr_error *err)
{
    int np = avsr_params_count_trainable(p);
    piece *runs = malloc(sizeof *runs * (size_t)(np > 0 ? np : 1));
    if (!runs)
        return AVSR_NOMEM(err, sizeof *runs * (size_t)np);
    int n = 0;
    bool open = false;
    for (int i = 0; i < avsr_params_count(p); i++) {
        if (avsr_params_is_buffer(p, i))
            continue;
        avsr_tensor *t = avsr_params_at(p, i);
        if (!avsr_tensor_requires_grad(t) || t->numel == 0) {
            open = t->numel == 0 && open; /* an empty parameter does not break a run */
            continue;
        }
        int64_t off = avsr_params_offset(p, i);
        if (open) {
            runs[n - 1].n = off + t->numel - runs[n - 1].off;
        } else {
            runs[n].off = off;
            runs[n].n = t->numel;
            n++;
            open = true;
        }
    }
    *out = runs;
    *nout = n;
    return 0;
}

avsr_grad_sync *avsr_grad_sync_create(avsr_params *p, avsr_comm *c,
                                      const avsr_grad_sync_opts *opts, avsr_error *err)
{
    size_t bb = opts && opts->bucket_bytes ? opts->bucket_bytes : AVSR_GRAD_SYNC_DEFAULT_BUCKET_BYTES;
    if (bb < sizeof(float)) {
        avsr_error_set(err, AVSR_ERR_INVALID, "grad_sync: bucket_bytes %zu: expected at least %zu",
                       bb, sizeof(float));
        return NULL;
    }
    if (!avsr_params_grad(p)) {
        avsr_error_set(err, AVSR_ERR_INVALID, "grad_sync: the parameter store is not finalized");
        return NULL;
    }
    if (avsr_comm_device(c) != AVSR_DEV_CPU) {
        avsr_error_set(err, AVSR_ERR_UNSUPPORTED,
                       "grad_sync: communicator '%s' reduces device memory; the store is on the host",
                       avsr_comm_name(c));
        return NULL;
    }
    avsr_grad_sync *gs = calloc(1, sizeof *gs);
    piece *runs = NULL;
    int nruns = 0;
    if (!gs) {
        AVSR_NOMEM(err, sizeof *gs);
        return NULL;
    }
    gs->p = p;
    gs->c = c;
    gs->bucket_floats = (int64_t)(bb / sizeof(float));
    if (collect_runs(p, &runs, &nruns, err) < 0)
        goto fail;

    /* Count pieces and buckets first, then fill. */
    int64_t B = gs->bucket_floats;
    for (int pass = 0; pass < 2; pass++) {
        int npieces = 0, nb = 0;
        int64_t fill = B; /* floats in the current bucket; B = none open */
        bool multi = false;
        for (int r = 0; r < nruns; r++) {
            int64_t off = runs[r].off, left = runs[r].n;
            while (left > 0) {
                if (fill == B) { /* open a bucket */
                    if (pass)
                        gs->first[nb] = npieces;
                    nb++;
                    fill = 0;
                }
                int64_t k = left < B - fill ? left : B - fill;
                if (pass) {
                    gs->pieces[npieces].off = off;
                    gs->pieces[npieces].n = k;
                    if (npieces > gs->first[nb - 1])
                        multi = true;
                }
                npieces++;
                fill += k;
                off += k;
                left -= k;
            }
        }
        if (!pass) {
            gs->pieces = malloc(sizeof *gs->pieces * (size_t)(npieces ? npieces : 1));
            gs->first = malloc(sizeof *gs->first * (size_t)(nb + 1));
            if (!gs->pieces || !gs->first) {
                AVSR_NOMEM(err, sizeof *gs->pieces * (size_t)npieces);
                goto fail;
            }
        } else {
            gs->first[nb] = npieces;
            gs->nbuckets = nb;
            if (multi) {
                gs->staging = malloc(sizeof(float) * (size_t)B);
                if (!gs->staging) {
                    AVSR_NOMEM(err, sizeof(float) * (size_t)B);
                    goto fail;
                }
            }
            uint64_t h = avsr_fnv1a64(&B, sizeof B);
            h = avsr_fnv1a64_update(h, &nb, sizeof nb);
            h = avsr_fnv1a64_update(h, gs->first, sizeof *gs->first * (size_t)(nb + 1));
            h = avsr_fnv1a64_update(h, gs->pieces, sizeof *gs->pieces * (size_t)npieces);
            gs->hash = h;
            for (int i = 0; i < npieces; i++)
                gs->floats += gs->pieces[i].n;
        }
    }
    free(runs);
    runs = NULL;
    if (avsr_coord_check_hash(c, gs->hash, "grad_sync: bucket plan (parameter layout or frozen set)",
                              err) < 0)
        goto fail;
    return gs;
fail:
    free(runs);
    avsr_grad_sync_destroy(gs);
    return NULL;
}

int avsr_grad_sync_run(avsr_grad_sync *gs, float scale, avsr_grad_sync_stats *stats,
                       avsr_error *err)
{
    double t0 = now_s(), comm = 0.0;
    float *g = avsr_params_grad(gs->p); /* [flat] */
    for (int b = 0; b < gs->nbuckets; b++) {
        const piece *pc = gs->pieces + gs->first[b];
        int np = gs->first[b + 1] - gs->first[b];
        float *buf;
        int64_t n = 0;
        if (np == 1) {
            buf = g + pc[0].off; /* in place */
            n = pc[0].n;
        } else {
            buf = gs->staging;
            for (int i = 0; i < np; i++) {
                memcpy(buf + n, g + pc[i].off, sizeof(float) * (size_t)pc[i].n);
                n += pc[i].n;
            }
        }
        double tc = now_s();
        if (avsr_comm_allreduce_sum_f32(gs->c, buf, n, err) < 0) {
            avsr_error_prefix(err, "grad_sync: bucket %d of %d: ", b, gs->nbuckets);
            return -1;
        }
        comm += now_s() - tc;
        if (np > 1) {
            int64_t k = 0;
            for (int i = 0; i < np; i++) {
                memcpy(g + pc[i].off, buf + k, sizeof(float) * (size_t)pc[i].n);
                k += pc[i].n;
            }
        }
        if (scale != 1.0f) {
            for (int i = 0; i < np; i++) {
                float *x = g + pc[i].off;
                int64_t m = pc[i].n;
#pragma omp parallel for if (m > 65536) schedule(static)
                for (int64_t j = 0; j < m; j++)
                    x[j] *= scale;
            }
        }
    }
    if (stats) {
        stats->comm_seconds = comm;
        stats->total_seconds = now_s() - t0;
        stats->floats = gs->floats;
        stats->buckets = gs->nbuckets;
    }
    return 0;
}

int avsr_grad_sync_nbuckets(const avsr_grad_sync *gs)
{
    return gs->nbuckets;
}

int avsr_grad_sync_bucket_pieces(const avsr_grad_sync *gs, int i)
{
    return gs->first[i + 1] - gs->first[i];
}

void avsr_grad_sync_piece(const avsr_grad_sync *gs, int bucket, int piece_i, int64_t *offset,
                          int64_t *count)
{
    const piece *pc = &gs->pieces[gs->first[bucket] + piece_i];
    *offset = pc->off;
    *count = pc->n;
}

int64_t avsr_grad_sync_floats(const avsr_grad_sync *gs)
{
    return gs->floats;
}

uint64_t avsr_grad_sync_plan_hash(const avsr_grad_sync *gs)
{
    return gs->hash;
}

/* Hash of the store's layout: names, dtypes, shapes, flat size. */
static uint64_t layout_hash(const avsr_params *p)
{
    int64_t flat = avsr_params_flat_size(p);
    uint64_t h = avsr_fnv1a64(&flat, sizeof flat);
    for (int i = 0; i < avsr_params_count(p); i++) {
        const avsr_tensor *t = avsr_params_at(p, i);
        h = avsr_fnv1a64_update(h, t->name, strlen(t->name) + 1);
        int meta[2] = {(int)t->dtype, t->ndim};
        h = avsr_fnv1a64_update(h, meta, sizeof meta);
        h = avsr_fnv1a64_update(h, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    }
    return h;
}

int avsr_dist_bcast_params(avsr_comm *c, avsr_params *p, int root, avsr_error *err)
{
    if (root < 0 || root >= avsr_comm_size(c))
        return avsr_error_set(err, AVSR_ERR_INVALID, "bcast_params: root %d: expected 0..%d", root,
                              avsr_comm_size(c) - 1);
    if (!avsr_params_data(p))
        return avsr_error_set(err, AVSR_ERR_INVALID, "bcast_params: the parameter store is not finalized");
    if (avsr_coord_check_hash(c, layout_hash(p), "bcast_params: parameter store layout", err) < 0)
        return -1;
    if (avsr_comm_bcast(c, avsr_params_data(p), sizeof(float) * (size_t)avsr_params_flat_size(p),
                        root, err) < 0)
        return -1;
    for (int i = 0; i < avsr_params_count(p); i++) {
        if (!avsr_params_is_buffer(p, i))
            continue;
        avsr_tensor *t = avsr_params_at(p, i);
        size_t bytes = avsr_dtype_size(t->dtype) * (size_t)t->numel;
        if (bytes && avsr_comm_bcast(c, t->data, bytes, root, err) < 0) {
            avsr_error_prefix(err, "bcast_params: buffer '%s': ", t->name);
            return -1;
        }
    }
    return 0;
}
