/* coord: the coordinator's helpers. Rank 0 decides (the epoch plan: which
 * samples each rank reads), the others follow; metrics flow to rank 0; and
 * at every step boundary all ranks agree on control flags (stop,
 * checkpoint now, preempted) so that they take the same branch.
 *
 * Every function here is a collective: every rank calls it, in the same
 * order. */
#ifndef AVSR_DIST_COORD_H
#define AVSR_DIST_COORD_H

#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3);
 * avsr_fnv1a64_update continues a hash over more bytes. */
uint64_t avsr_fnv1a64(const void *data, size_t n);
uint64_t avsr_fnv1a64_update(uint64_t h, const void *data, size_t n);
#define AVSR_FNV1A64_INIT 0xcbf29ce484222325ULL

/* Check that `mine` equals rank 0's value on every rank. On a mismatch every
 * rank returns -1 with the same message:
 *   "<what> differs across ranks: rank 0 has hash 0x..., rank R has 0x..."
 * (R the lowest rank that differs). */
int avsr_coord_check_hash(avsr_comm *c, uint64_t mine, const char *what, avsr_error *err);

/* Broadcast an epoch plan (opaque bytes) from rank 0, with its size and
 * FNV-1a hash; every rank verifies the hash of what it received
 * (avsr_coord_check_hash). On rank 0, *data and *bytes are the plan (kept); on
 * the other ranks they are outputs (*data malloc'd, the caller frees it;
 * NULL when bytes is 0). hash (may be NULL) receives the plan's hash. */
int avsr_coord_bcast_plan(avsr_comm *c, void **data, size_t *bytes, uint64_t *hash,
                          avsr_error *err);

/* Metrics: each rank passes the same fixed record of n doubles (a struct
 * of doubles is fine: (const double *)&s, sizeof s / sizeof(double).
 * Rank 0 receives, per field, the sum, mean, min and max over ranks in out
 * (n entries; ignored on other ranks, may be NULL there). Values that are
 * already sums (loss summed over frames, frame counts) should be summed;
 * rates and times read as mean or max (the slowest rank). */
typedef struct avsr_metric_stat {
    double sum, mean, min, max;
} avsr_metric_stat;
#define AVSR_METRICS_MAX 64
int avsr_coord_gather_metrics(avsr_comm *c, const double *vals, int n, avsr_metric_stat *out,
                              avsr_error *err);

/* Control flags agreed at a step boundary. */
enum avsr_ctl_flag {
    AVSR_CTL_STOP = 1u << 0,       /* leave the training loop */
    AVSR_CTL_CHECKPOINT = 1u << 1, /* write a checkpoint now */
    AVSR_CTL_PREEMPTED = 1u << 2   /* a scheduler signal: exit AVSR_EXIT_REQUEUE after */
};
/* Agree on flags: *global = the OR over ranks of every rank's local flags.
 * (Implemented as an all-reduce MAX over one int per bit: a MAX of the word
 * itself would not be an OR.) Bits 0..AVSR_CTL_BITS-1 are carried. */
#define AVSR_CTL_BITS 16
int avsr_coord_agree_flags(avsr_comm *c, unsigned local, unsigned *global, avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
