/* test_sampler: epoch plans (datasets/sampler.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/sampler.h"
#include "tap.h"

#define N 3000

static int64_t frames[N], tokens[N];

/* Lengths 1..450 frames (a few long outliers), tokens ~ frames / 3, plus
 * planted clips for each filter reason. */
static void make_data(void)
{
    uint32_t s = 12345;
    for (int i = 0; i < N; i++) {
        s = s * 1664525u + 1013904223u;
        frames[i] = 10 + (int64_t)((s >> 8) % 440);
        tokens[i] = frames[i] / 3;
    }
    frames[5] = 0;       /* empty */
    frames[6] = -3;      /* empty */
    frames[7] = 2000;    /* > max_frames (1600) */
    frames[8] = 1700;    /* > max_frames */
    tokens[9] = frames[9] + 1;   /* CTC */
    tokens[10] = frames[10] * 2; /* CTC */
    tokens[11] = frames[11];     /* allowed: tokens == frames */
}

static avsr_plan *build(const avsr_sampler_config *cfg, uint64_t epoch, int world)
{
    avsr_error err = {0};
    avsr_plan *p = NULL;
    if (avsr_plan_build(&p, cfg, epoch, world, N, frames, tokens, &err))
        tap_bail("plan build failed: %s", err.msg);
    return p;
}

static bool same_plan(const avsr_plan *a, const avsr_plan *b)
{
    if (avsr_plan_steps(a) != avsr_plan_steps(b) ||
        avsr_plan_world_size(a) != avsr_plan_world_size(b))
        return false;
    for (int64_t s = 0; s < avsr_plan_steps(a); s++)
        for (int r = 0; r < avsr_plan_world_size(a); r++) {
            avsr_batch_ref x, y;
            avsr_plan_batch(a, r, s, &x, NULL);
            avsr_plan_batch(b, r, s, &y, NULL);
            if (x.n != y.n || x.repeat != y.repeat ||
                memcmp(x.clips, y.clips, (size_t)x.n * sizeof *x.clips))
                return false;
        }
    return true;
}

static void test_determinism(const avsr_sampler_config *cfg)
{
    avsr_plan *a = build(cfg, 3, 2), *b = build(cfg, 3, 2), *c = build(cfg, 4, 2);
    tap_ok(same_plan(a, b), "determinism: same inputs give the same plan");
    tap_ok(avsr_plan_hash(a) == avsr_plan_hash(b), "hash: equal for equal inputs (%016llx)",
           (unsigned long long)avsr_plan_hash(a));
    tap_ok(!same_plan(a, c) && avsr_plan_hash(a) != avsr_plan_hash(c),
           "epochs 3 and 4 differ (plan and hash)");
    /* batch composition itself changes between epochs, not only the order */
    avsr_batch_ref x, y;
    avsr_plan_batch_at(a, 0, &x, NULL);
    avsr_plan_batch_at(c, 0, &y, NULL);
    tap_ok(x.n != y.n || memcmp(x.clips, y.clips, (size_t)x.n * sizeof *x.clips),
           "epochs differ in batch composition (batch 0)");
    avsr_sampler_config c2 = *cfg;
    c2.seed++;
    avsr_plan *d = build(&c2, 3, 2);
    tap_ok(avsr_plan_hash(a) != avsr_plan_hash(d), "hash: a different seed changes it");
    avsr_plan *e = build(cfg, 3, 3);
    tap_ok(avsr_plan_hash(a) != avsr_plan_hash(e), "hash: a different world size changes it");
    int64_t keep = frames[100];
    frames[100] = keep + 1;
    avsr_plan *f = build(cfg, 3, 2);
    frames[100] = keep;
    tap_ok(avsr_plan_hash(a) != avsr_plan_hash(f), "hash: one changed length changes it");
    /* resume: a plan rebuilt from (epoch, cursor) continues identically */
    int ok = 1;
    for (int64_t s = avsr_plan_steps(a) / 2; s < avsr_plan_steps(a); s++)
        for (int r = 0; r < 2; r++) {
            avsr_batch_ref u, v;
            avsr_plan_batch(a, r, s, &u, NULL);
            avsr_plan_batch(b, r, s, &v, NULL);
            ok &= u.batch == v.batch;
        }
    tap_ok(ok, "resume: rebuilt plan gives the same batches from the cursor on");
    avsr_plan_free(a);
    avsr_plan_free(b);
    avsr_plan_free(c);
    avsr_plan_free(d);
    avsr_plan_free(e);
    avsr_plan_free(f);
}

static void test_counts(const avsr_sampler_config *cfg)
{
    avsr_plan *p = build(cfg, 0, 1);
    const avsr_plan_counts *c = avsr_plan_get_counts(p);
    tap_ok(c->total == N && c->empty == 2 && c->over_budget == 2 && c->ctc == 2 &&
               c->too_long == 0 && c->kept == N - 6,
           "filters counted: total %lld, empty %lld, over_budget %lld, ctc %lld, kept %lld",
           (long long)c->total, (long long)c->empty, (long long)c->over_budget,
           (long long)c->ctc, (long long)c->kept);
    avsr_plan_free(p);
    avsr_sampler_config c2 = *cfg;
    c2.max_len = 400;
    int64_t longer = 0;
    for (int i = 0; i < N; i++)
        longer += frames[i] > 400;
    p = build(&c2, 0, 1);
    c = avsr_plan_get_counts(p);
    tap_ok(c->too_long == longer && c->over_budget == 0 && c->empty == 2,
           "max_len 400: %lld too long (expected %lld; those > max_frames count as too long)",
           (long long)c->too_long, (long long)longer);
    avsr_plan_free(p);
    c2 = *cfg;
    c2.ctc_filter = false;
    p = build(&c2, 0, 1);
    tap_ok(avsr_plan_get_counts(p)->ctc == 0 && avsr_plan_get_counts(p)->kept == N - 4,
           "ctc_filter off keeps the CTC-failing clips");
    avsr_plan_free(p);
}

/* Every kept clip exactly once per epoch across ranks (repeats excluded). */
static void test_coverage(const avsr_sampler_config *cfg, int world, bool drop_last)
{
    avsr_sampler_config c2 = *cfg;
    c2.drop_last = drop_last;
    avsr_plan *p = build(&c2, 7, world);
    const avsr_plan_counts *c = avsr_plan_get_counts(p);
    int *seen = calloc(N, sizeof *seen);
    int64_t nrep = 0, over = 0;
    for (int64_t s = 0; s < avsr_plan_steps(p); s++)
        for (int r = 0; r < world; r++) {
            avsr_batch_ref b;
            if (avsr_plan_batch(p, r, s, &b, NULL))
                tap_bail("batch lookup failed");
            over += b.padded > c2.max_frames || b.n * b.tmax != b.padded;
            if (b.repeat) {
                nrep++;
                continue;
            }
            for (int64_t i = 0; i < b.n; i++)
                seen[b.clips[i]]++;
        }
    int64_t once = 0, bad = 0, filtered_seen = 0;
    for (int i = 0; i < N; i++) {
        bool filtered = frames[i] <= 0 || frames[i] > 1600 || tokens[i] > frames[i];
        if (filtered)
            filtered_seen += seen[i];
        else if (seen[i] == 1)
            once++;
        else if (seen[i] > 1)
            bad++;
    }
    tap_ok(bad == 0 && filtered_seen == 0 && once == c->kept &&
               once + c->tail_clips == N - 6,
           "world %d drop_last %d: every kept clip once (%lld), none twice, none filtered, "
           "%lld tail clips dropped, %lld repeats",
           world, drop_last, (long long)once, (long long)c->tail_clips, (long long)nrep);
    tap_ok(nrep == c->repeated_batches && (!drop_last || nrep == 0),
           "world %d drop_last %d: repeats flagged (%lld)", world, drop_last, (long long)nrep);
    tap_ok(over == 0, "world %d: every batch's padded size <= max_frames", world);
    free(seen);
    avsr_plan_free(p);
}

/* Per-step balance: at most one batch per step is a bucket's last (non-full)
 * batch, so we bound max/min only over the steps, and the global waste. */
static void test_balance(const avsr_sampler_config *cfg, int world)
{
    avsr_plan *p = build(cfg, 1, world);
    double sum_max = 0, sum_mean = 0, worst = 1;
    int64_t bad_steps = 0;
    int64_t *tot = calloc((size_t)world, sizeof *tot);
    for (int64_t s = 0; s < avsr_plan_steps(p); s++) {
        int64_t mx = 0, mn = INT64_MAX, sum = 0;
        for (int r = 0; r < world; r++) {
            avsr_batch_ref b;
            avsr_plan_batch(p, r, s, &b, NULL);
            mx = b.padded > mx ? b.padded : mx;
            mn = b.padded < mn ? b.padded : mn;
            sum += b.padded;
            tot[r] += b.padded;
        }
        double ratio = (double)mx / (double)mn;
        bad_steps += ratio > 1.5;
        worst = ratio > worst ? ratio : worst;
        sum_max += (double)mx;
        sum_mean += (double)sum / world;
    }
    int64_t tmx = 0, tmn = INT64_MAX;
    for (int r = 0; r < world; r++) {
        tmx = tot[r] > tmx ? tot[r] : tmx;
        tmn = tot[r] < tmn ? tot[r] : tmn;
    }
    double eff = sum_mean / sum_max;
    tap_ok(bad_steps <= cfg->nbuckets / world + 1 && eff >= 0.97,
           "world %d balance: %lld of %lld steps with max/min > 1.5 (bound nbuckets/world + 1), "
           "worst %.2f, efficiency sum(mean)/sum(max) = %.4f (bound 0.97)",
           world, (long long)bad_steps, (long long)avsr_plan_steps(p), worst, eff);
    tap_ok((double)tmx / (double)tmn <= 1.02,
           "world %d: epoch padded frames per rank max/min = %.4f (bound 1.02)", world,
           (double)tmx / (double)tmn);
    free(tot);
    avsr_plan_free(p);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The union over ranks of world 2 is world 1's set of batches (and clips). */
static void test_union(const avsr_sampler_config *cfg)
{
    avsr_plan *p1 = build(cfg, 9, 1), *p2 = build(cfg, 9, 2);
    int64_t nb = avsr_plan_nbatches(p1);
    int64_t *b1 = malloc((size_t)nb * sizeof *b1), *b2 = malloc((size_t)(nb + 2) * sizeof *b2);
    int64_t n1 = 0, n2 = 0;
    for (int64_t s = 0; s < avsr_plan_steps(p1); s++) {
        avsr_batch_ref b;
        avsr_plan_batch(p1, 0, s, &b, NULL);
        b1[n1++] = b.batch;
    }
    for (int64_t s = 0; s < avsr_plan_steps(p2); s++)
        for (int r = 0; r < 2; r++) {
            avsr_batch_ref b;
            avsr_plan_batch(p2, r, s, &b, NULL);
            if (!b.repeat)
                b2[n2++] = b.batch;
        }
    qsort(b1, (size_t)n1, sizeof *b1, cmp_i64);
    qsort(b2, (size_t)n2, sizeof *b2, cmp_i64);
    bool same = n1 == n2 && avsr_plan_nbatches(p2) == nb &&
                !memcmp(b1, b2, (size_t)n1 * sizeof *b1);
    for (int64_t b = 0; same && b < nb; b++) {
        avsr_batch_ref x, y;
        avsr_plan_batch_at(p1, b, &x, NULL);
        avsr_plan_batch_at(p2, b, &y, NULL);
        same = x.n == y.n && !memcmp(x.clips, y.clips, (size_t)x.n * sizeof *x.clips);
    }
    tap_ok(same, "union over 2 ranks = world 1's batches (%lld batches)", (long long)nb);
    free(b1);
    free(b2);
    avsr_plan_free(p1);
    avsr_plan_free(p2);
}

static void test_small_and_errors(void)
{
    avsr_sampler_config cfg;
    avsr_sampler_config_default(&cfg);
    avsr_error err = {0};
    avsr_plan *p = NULL;
    int64_t f[3] = {100, 120, 90};
    /* 3 clips in 3 buckets (one batch each), 4 ranks: one step, 1 repeat */
    int rc = avsr_plan_build(&p, &cfg, 0, 4, 3, f, NULL, &err);
    tap_ok(rc == 0 && avsr_plan_nbatches(p) == 3 && avsr_plan_steps(p) == 1 &&
               avsr_plan_get_counts(p)->repeated_batches == 1,
           "fewer batches than ranks: one step, 1 repeat");
    avsr_plan_free(p);
    cfg.drop_last = true;
    rc = avsr_plan_build(&p, &cfg, 0, 4, 3, f, NULL, &err);
    tap_ok(rc == -1 && strstr(err.msg, "no step left"), "drop_last with too few batches: %s",
           err.msg);
    avsr_error_clear(&err);
    cfg.drop_last = false;
    cfg.max_frames = 0;
    rc = avsr_plan_build(&p, &cfg, 0, 1, 3, f, NULL, &err);
    tap_ok(rc == -1 && strstr(err.msg, "max_frames must be > 0"), "bad max_frames: %s", err.msg);
    avsr_error_clear(&err);
    avsr_sampler_config_default(&cfg);
    int64_t z[2] = {0, -1};
    rc = avsr_plan_build(&p, &cfg, 0, 1, 2, z, NULL, &err);
    tap_ok(rc == -1 && strstr(err.msg, "no clip left of 2 (2 empty"), "nothing kept: %s",
           err.msg);
    avsr_error_clear(&err);
    rc = avsr_plan_build(&p, &cfg, 0, 1, 3, f, NULL, &err);
    avsr_batch_ref b;
    tap_ok(rc == 0 && avsr_plan_batch(p, 0, 5, &b, &err) == -1 &&
               strstr(err.msg, "step 5 out of range [0, 3)"),
           "step out of range: %s", err.msg);
    avsr_error_clear(&err);
    tap_ok(avsr_plan_batch(p, 1, 0, &b, &err) == -1 && strstr(err.msg, "rank 1 out of range"),
           "rank out of range: %s", err.msg);
    avsr_plan_free(p);
}

int main(void)
{
    make_data();
    avsr_sampler_config cfg;
    avsr_sampler_config_default(&cfg);
    test_determinism(&cfg);
    test_counts(&cfg);
    for (int w = 1; w <= 3; w++) {
        test_coverage(&cfg, w, false);
        test_coverage(&cfg, w, true);
    }
    for (int w = 2; w <= 4; w++)
        test_balance(&cfg, w);
    test_union(&cfg);
    test_small_and_errors();
    return tap_done();
}
