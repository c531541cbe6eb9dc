/* coord: plan broadcast with hash check, metrics gather, flag agreement
 * (coord.h). */
#include "coord.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

uint64_t avsr_fnv1a64_update(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t avsr_fnv1a64(const void *data, size_t n)
{
    return avsr_fnv1a64_update(AVSR_FNV1A64_INIT, data, n);
}

int avsr_coord_check_hash(avsr_comm *c, uint64_t mine, const char *what, avsr_error *err)
{
    int size = avsr_comm_size(c), rank = avsr_comm_rank(c);
    uint64_t root = mine;
    if (avsr_comm_bcast(c, &root, sizeof root, 0, err) < 0)
        return -1;
    /* the lowest differing rank r is found as size - max(size - r) */
    int flag = root != mine ? size - rank : 0;
    if (avsr_comm_allreduce_max_int(c, &flag, 1, err) < 0)
        return -1;
    if (flag == 0)
        return 0;
    int bad = size - flag;
    uint64_t other = mine;
    if (avsr_comm_bcast(c, &other, sizeof other, bad, err) < 0)
        return -1;
    return avsr_error_set(err, AVSR_ERR_INVALID,
                          "%s differs across ranks: rank 0 has hash 0x%016llx, rank %d has 0x%016llx",
                          what, (unsigned long long)root, bad, (unsigned long long)other);
}

int avsr_coord_bcast_plan(avsr_comm *c, void **data, size_t *bytes, uint64_t *hash,
                          avsr_error *err)
{
    bool root = avsr_comm_rank(c) == 0;
    uint64_t hdr[2] = {0, 0}; /* bytes, hash */
    if (root) {
        hdr[0] = (uint64_t)*bytes;
        hdr[1] = avsr_fnv1a64(*data, *bytes);
    }
    if (avsr_comm_bcast(c, hdr, sizeof hdr, 0, err) < 0)
        return -1;
    void *buf = root ? *data : NULL;
    if (!root && hdr[0] > 0) {
        buf = malloc((size_t)hdr[0]);
        if (!buf)
            AVSR_NOMEM(err, (size_t)hdr[0]);
    }
    /* a rank that could not allocate still takes part, and all fail together */
    int fail = (!buf && hdr[0] > 0) ? 1 : 0;
    if (avsr_comm_allreduce_max_int(c, &fail, 1, err) < 0)
        goto fail;
    if (fail) {
        avsr_error_set(err, AVSR_ERR_NOMEM, "coord: epoch plan of %llu bytes: a rank is out of memory",
                       (unsigned long long)hdr[0]);
        goto fail;
    }
    if (hdr[0] > 0 && avsr_comm_bcast(c, buf, (size_t)hdr[0], 0, err) < 0)
        goto fail;
    if (avsr_coord_check_hash(c, avsr_fnv1a64(buf, (size_t)hdr[0]), "coord: epoch plan", err) < 0)
        goto fail;
    if (!root) {
        *data = buf;
        *bytes = (size_t)hdr[0];
    }
    if (hash)
        *hash = hdr[1];
    return 0;
fail:
    if (!root)
        free(buf);
    return -1;
}

int avsr_coord_gather_metrics(avsr_comm *c, const double *vals, int n, avsr_metric_stat *out,
                              avsr_error *err)
{
    if (n < 0 || n > AVSR_METRICS_MAX)
        return avsr_error_set(err, AVSR_ERR_INVALID, "coord: metrics: %d fields, expected 0..%d",
                              n, AVSR_METRICS_MAX);
    int size = avsr_comm_size(c);
    bool root = avsr_comm_rank(c) == 0;
    double *all = NULL;
    if (root) {
        all = malloc(sizeof(double) * (size_t)n * (size_t)size + 1);
        if (!all)
            AVSR_NOMEM(err, sizeof(double) * (size_t)n * (size_t)size);
    }
    /* the gather needs rank 0's buffer: agree that it exists */
    int fail = root && !all;
    if (avsr_comm_bcast(c, &fail, sizeof fail, 0, err) < 0) {
        free(all);
        return -1;
    }
    if (fail)
        return avsr_error_set(err, AVSR_ERR_NOMEM, "coord: metrics: rank 0 is out of memory");
    if (avsr_comm_gather(c, vals, sizeof(double) * (size_t)n, all, err) < 0) {
        free(all);
        return -1;
    }
    if (root && out) {
        for (int f = 0; f < n; f++) {
            avsr_metric_stat s = {0.0, 0.0, DBL_MAX, -DBL_MAX};
            for (int r = 0; r < size; r++) {
                double v = all[(size_t)r * (size_t)n + (size_t)f];
                s.sum += v;
                if (v < s.min)
                    s.min = v;
                if (v > s.max)
                    s.max = v;
            }
            s.mean = s.sum / size;
            out[f] = s;
        }
    }
    free(all);
    return 0;
}

int avsr_coord_agree_flags(avsr_comm *c, unsigned local, unsigned *global, avsr_error *err)
{
    int bits[AVSR_CTL_BITS];
    for (int i = 0; i < AVSR_CTL_BITS; i++)
        bits[i] = (local >> i) & 1u;
    if (avsr_comm_allreduce_max_int(c, bits, AVSR_CTL_BITS, err) < 0)
        return -1;
    unsigned g = 0;
    for (int i = 0; i < AVSR_CTL_BITS; i++)
        if (bits[i])
            g |= 1u << i;
    *global = g;
    return 0;
}
