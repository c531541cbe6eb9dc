/* test_loader: the data loader (datasets/loader.h).
 *
 * Small packs are written here with the pack writer (random frames, tones,
 * GRID-like text); the acceptance round trip synthesises a corpus with
 * avsr_synth_corpus (MP4 through FFmpeg), packs it with the avsr-pack
 * program and reads it back through the loader, comparing with the clips
 * synthesised again in memory. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/loader.h"
#include "datasets/pack_read.h"
#include "datasets/pack_write.h"
#include "datasets/synth.h"
#include "rng.h"
#include "tap.h"

static char dir[128];

static char *P(const char *name)
{
    static char buf[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

#define ROI 40
#define CROP 32

static const char *words[] = {"BIN", "LAY", "PLACE", "SET", "BLUE", "GREEN", "RED", "WHITE",
                              "AT", "BY", "IN", "WITH", "A", "B", "F", "ONE", "TWO", "NOW",
                              "SOON", "AGAIN", "PLEASE"};

/* An AV pack of n clips (frames 20..20+span) with random pixels and tones. */
static void write_av(const char *path, int n, uint64_t seed, int span, int compress)
{
    avsr_pack_write_opts o = {AVSR_PACK_KIND_AV, ROI, ROI, compress, "", "test_loader"};
    avsr_error err = {0};
    avsr_pack_writer *w = avsr_pack_writer_create(path, &o, &err);
    if (!w)
        tap_bail("writer: %s", err.msg);
    avsr_rng r;
    avsr_rng_init(&r, seed, 0, 0, 99);
    for (int i = 0; i < n; i++) {
        int64_t F = 20 + avsr_rng_below(&r, (uint32_t)span);
        uint8_t *v = malloc((size_t)F * ROI * ROI);
        int16_t *a = malloc((size_t)F * 640 * sizeof *a);
        for (int64_t j = 0; j < F * ROI * ROI; j++)
            v[j] = (uint8_t)(avsr_rng_u32(&r) >> 24);
        double f0 = 200.0 + 50.0 * i;
        for (int64_t j = 0; j < F * 640; j++)
            a[j] = (int16_t)lrint(6000 * sin(2 * M_PI * f0 * j / 16000.0) +
                                  500 * (avsr_rng_uniform(&r) - 0.5));
        char text[128] = "", id[32], spk[16];
        int nw = 1 + (int)avsr_rng_below(&r, 3); /* <= 20 characters < 20 frames */
        for (int k = 0; k < nw; k++) {
            if (k)
                strcat(text, " ");
            strcat(text, words[avsr_rng_below(&r, sizeof words / sizeof *words)]);
        }
        snprintf(id, sizeof id, "c%" PRIu64 "_%03d", seed, i);
        snprintf(spk, sizeof spk, "s%d", i % 4);
        if (avsr_pack_writer_add(w, id, spk, v, F, a, F * 640, text, (int64_t)strlen(text), &err))
            tap_bail("add: %s", err.msg);
        free(v);
        free(a);
    }
    if (avsr_pack_writer_commit(w, &err))
        tap_bail("commit: %s", err.msg);
}

static void write_noise(const char *path, int n, uint64_t seed)
{
    avsr_pack_write_opts o = {AVSR_PACK_KIND_NOISE, 0, 0, 0, "", "test_loader"};
    avsr_error err = {0};
    avsr_pack_writer *w = avsr_pack_writer_create(path, &o, &err);
    if (!w)
        tap_bail("writer: %s", err.msg);
    avsr_rng r;
    avsr_rng_init(&r, seed, 0, 0, 98);
    for (int i = 0; i < n; i++) {
        int64_t ns = 8000 + 4000 * i;
        int16_t *a = malloc((size_t)ns * sizeof *a);
        for (int64_t j = 0; j < ns; j++)
            a[j] = (int16_t)lrint(3000 * avsr_rng_normal(&r));
        char id[32];
        snprintf(id, sizeof id, "n%d", i);
        if (avsr_pack_writer_add(w, id, "", NULL, 0, a, ns, "", 0, &err))
            tap_bail("add: %s", err.msg);
        free(a);
    }
    if (avsr_pack_writer_commit(w, &err))
        tap_bail("commit: %s", err.msg);
}

/* ---- batch fingerprints ------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Hash of one sample's row (up to its length): what the chain made of it. */
static uint64_t sample_hash(const avsr_batch *b, int64_t i)
{
    size_t fs = (size_t)b->crop_h * b->crop_w, F = (size_t)b->lengths[i];
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv(h, b->video + (size_t)i * b->T * fs, F * fs * sizeof(float));
    h = fnv(h, b->audio + (size_t)i * b->T * 640, F * 640 * sizeof(float));
    if (b->clean)
        h = fnv(h, b->clean + (size_t)i * b->T * 640, F * 640 * sizeof(float));
    h = fnv(h, &b->aug[i], sizeof b->aug[i]);
    h = fnv(h, &b->noise_type[i], 1);
    h = fnv(h, b->targets + (size_t)i * b->L, (size_t)b->target_lengths[i] * sizeof(int32_t));
    return h;
}

/* Hash of a whole batch, padding included. */
static uint64_t batch_hash(const avsr_batch *b)
{
    size_t B = (size_t)b->B, T = (size_t)b->T;
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv(h, &b->B, sizeof b->B);
    h = fnv(h, &b->T, sizeof b->T);
    h = fnv(h, &b->L, sizeof b->L);
    h = fnv(h, b->video, B * T * (size_t)b->crop_h * b->crop_w * sizeof(float));
    h = fnv(h, b->audio, B * T * 640 * sizeof(float));
    if (b->clean)
        h = fnv(h, b->clean, B * T * 640 * sizeof(float));
    h = fnv(h, b->lengths, B * sizeof(int64_t));
    h = fnv(h, b->mask, B * T);
    h = fnv(h, b->targets, B * (size_t)b->L * sizeof(int32_t));
    h = fnv(h, b->target_lengths, B * sizeof(int64_t));
    h = fnv(h, b->sample_ids, B * sizeof(uint64_t));
    h = fnv(h, b->aug, B * sizeof *b->aug);
    h = fnv(h, b->noise_type, B);
    h = fnv(h, &b->step, sizeof b->step);
    h = fnv(h, &b->repeat, sizeof b->repeat);
    return h;
}

static const char *shards[2];
static const char *noise1[1];

static void base_config(avsr_loader_config *c, bool train)
{
    avsr_loader_config_default(c, train);
    c->paths = shards;
    c->n_paths = 2;
    c->augment.crop_h = c->augment.crop_w = CROP;
    c->sampler.max_frames = 160;
    c->sampler.nbuckets = 4;
    c->sampler.min_clips = 2; /* world 2 splits every batch */
    c->gen_noise_seconds = 2.0;
}

static void train_noise(avsr_loader_config *c)
{
    c->noise_paths = noise1;
    c->n_noise_paths = 1;
    c->babble_paths = noise1;
    c->n_babble_paths = 1;
    c->white_noise = c->pink_noise = true;
    c->augment.modality_prob = 0.3;
    c->augment.flip_prob = 0.5;
}

static avsr_loader *open_or_bail(const avsr_loader_config *c)
{
    avsr_error err = {0};
    avsr_loader *l = avsr_loader_open(c, &err);
    if (!l)
        tap_bail("loader open: %s", err.msg);
    return l;
}

/* Run one epoch for one rank: per-step batch hashes into bh (may be NULL),
 * per-sample hashes into sh[clip] (may be NULL), served counts into cnt. */
static int64_t run_epoch(avsr_loader *l, uint64_t epoch, int rank, int world, int64_t cursor,
                         uint64_t *bh, uint64_t *sh, int *cnt, bool *ok)
{
    avsr_error err = {0};
    if (avsr_loader_start(l, epoch, rank, world, cursor, &err)) {
        tap_diag("start: %s", err.msg);
        *ok = false;
        return 0;
    }
    int64_t k = 0;
    avsr_batch *b;
    int rc;
    while ((rc = avsr_loader_next(l, &b, &err)) == 1) {
        if (b->step != cursor + k)
            *ok = false;
        if (bh)
            bh[k] = batch_hash(b);
        for (int64_t i = 0; i < b->B; i++) {
            if (sh)
                sh[b->sample_ids[i]] = sample_hash(b, i);
            if (cnt && !b->repeat)
                cnt[b->sample_ids[i]]++;
        }
        k++;
        avsr_batch_release(b);
    }
    if (rc < 0) {
        tap_diag("next: %s", err.msg);
        *ok = false;
    }
    if (k != avsr_loader_steps(l) - cursor)
        *ok = false;
    return k;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_open_tokens(void)
{
    avsr_loader_config c;
    base_config(&c, true);
    train_noise(&c);
    avsr_error err = {0};
    avsr_loader *l = avsr_loader_open(&c, &err);
    tap_ok(l != NULL, "open: 2 shards, noise and babble packs, white and pink (%s)",
           l ? "ok" : err.msg);
    if (!l)
        return;
    tap_ok(avsr_loader_count(l) == 34, "count: 24 + 10 clips");
    avsr_pack *p = avsr_pack_open(shards, 2, &err);
    avsr_vocab *v;
    avsr_vocab_default(&v, &err);
    bool same = p != NULL;
    for (int64_t i = 0; same && i < 34; i++) {
        avsr_pack_clip ci;
        char text[256];
        int32_t ids[256];
        avsr_pack_clip_info(p, i, &ci, &err);
        avsr_pack_read_text(p, i, text, sizeof text, &err);
        int64_t k = avsr_vocab_encode(v, text, strlen(text), ids, 256, &err), n;
        const int32_t *t = avsr_loader_clip_tokens(l, i, &n);
        same = n == k && memcmp(t, ids, (size_t)k * sizeof *ids) == 0 &&
               avsr_loader_clip_frames(l, i) == ci.frames;
    }
    tap_ok(same, "every transcript tokenised once at open; frame counts from the pack");
    avsr_vocab_free(v);
    avsr_pack_close(p);
    avsr_loader_close(l);
}

/* Layout of a batch: padding, mask, targets, sizes. */
static void test_layout(void)
{
    avsr_loader_config c;
    base_config(&c, true);
    train_noise(&c);
    c.sampler.min_clips = 1; /* one rank: the budget holds for every batch */
    avsr_loader *l = open_or_bail(&c);
    avsr_error err = {0};
    avsr_loader_start(l, 0, 0, 1, 0, &err);
    const avsr_plan_counts *pc = avsr_loader_counts(l);
    tap_ok(pc && pc->total == 34 && pc->kept == 34, "filter counts reported: kept 34 of 34");
    avsr_batch *b;
    bool ok = true, any_noise = false, any_clean_diff = false, types_seen[AVSR_NOISE_TYPES] = {0};
    int nb = 0;
    while (avsr_loader_next(l, &b, &err) == 1) {
        nb++;
        size_t fs = (size_t)b->crop_h * b->crop_w;
        if (b->crop_h != CROP || !b->clean || b->B * b->T > c.sampler.max_frames)
            ok = false;
        int64_t T = 0, fr = 0;
        for (int64_t i = 0; i < b->B; i++) {
            int64_t F = b->lengths[i];
            T = F > T ? F : T;
            fr += F;
            if (F != avsr_loader_clip_frames(l, (int64_t)b->sample_ids[i]))
                ok = false;
            for (int64_t t = 0; t < b->T; t++)
                if (b->mask[i * b->T + t] != (t < F))
                    ok = false;
            for (size_t j = (size_t)F * fs; j < (size_t)b->T * fs; j++)
                if (b->video[(size_t)i * b->T * fs + j] != 0.0f)
                    ok = false;
            for (int64_t j = F * 640; j < b->T * 640; j++)
                if (b->audio[i * b->T * 640 + j] != 0.0f || b->clean[i * b->T * 640 + j] != 0.0f)
                    ok = false;
            int64_t n;
            const int32_t *tok = avsr_loader_clip_tokens(l, (int64_t)b->sample_ids[i], &n);
            if (b->target_lengths[i] != n || memcmp(b->targets + i * b->L, tok, (size_t)n * 4))
                ok = false;
            for (int64_t j = n; j < b->L; j++)
                if (b->targets[i * b->L + j] != -1)
                    ok = false;
            if (b->aug[i].noise) {
                any_noise = true;
                if (memcmp(b->audio + i * b->T * 640, b->clean + i * b->T * 640,
                           (size_t)F * 640 * 4))
                    any_clean_diff = true;
            }
            types_seen[b->noise_type[i]] = true;
        }
        if (T != b->T || fr != b->frames)
            ok = false;
        avsr_batch_release(b);
    }
    tap_ok(ok && nb == avsr_loader_steps(l),
           "batches: lengths, mask, zero padding, -1 target padding, T = longest, B*T <= budget");
    tap_ok(any_noise && any_clean_diff, "noise added to some samples; clean audio differs there");
    tap_ok(types_seen[AVSR_NOISE_FILE] && types_seen[AVSR_NOISE_BABBLE] &&
               types_seen[AVSR_NOISE_WHITE] && types_seen[AVSR_NOISE_PINK],
           "all four noise sources used");
    avsr_loader_close(l);
}

/* Data parallelism and accumulation: at every step, world 2's two shares
 * are the world-1 batch split (clip j to rank j mod 2, in order), padded to
 * the whole batch's T; with micro 2, step s serves world-1 steps 2s, 2s+1;
 * resuming at a step cursor works; min_clips keeps shares non-empty. */
static void test_micro(void)
{
    avsr_loader_config c;
    base_config(&c, true);
    train_noise(&c);
    c.sampler.min_clips = 2;
    avsr_loader *l = open_or_bail(&c);
    avsr_error err = {0};
    enum { MAXS = 64, MAXB = 64 };
    static uint64_t ids1[MAXS][MAXB], ids2[2][MAXS][MAXB];
    static int64_t n1[MAXS], T1[MAXS], n2[2][MAXS], T2[2][MAXS];
    int64_t s1 = 0, s2[2] = {0, 0};
    bool ok = avsr_loader_start(l, 3, 0, 1, 0, &err) == 0;
    avsr_batch *b;
    while (ok && s1 < MAXS && avsr_loader_next(l, &b, &err) == 1) {
        n1[s1] = b->B < MAXB ? b->B : MAXB;
        T1[s1] = b->T;
        memcpy(ids1[s1], b->sample_ids, (size_t)n1[s1] * 8);
        s1++;
        avsr_batch_release(b);
    }
    for (int r = 0; r < 2; r++) {
        ok = ok && avsr_loader_start(l, 3, r, 2, 0, &err) == 0;
        while (ok && s2[r] < MAXS && avsr_loader_next(l, &b, &err) == 1) {
            int64_t k = s2[r]++;
            ok = b->step == k && b->ranks == 2;
            n2[r][k] = b->B < MAXB ? b->B : MAXB;
            T2[r][k] = b->T;
            memcpy(ids2[r][k], b->sample_ids, (size_t)n2[r][k] * 8);
            avsr_batch_release(b);
        }
    }
    bool split = ok && s1 > 2 && s2[0] == s1 && s2[1] == s1;
    for (int64_t k = 0; split && k < s1; k++) {
        split = n2[0][k] + n2[1][k] == n1[k] && n2[1][k] >= 1 && T2[0][k] == T1[k] &&
                T2[1][k] == T1[k];
        for (int64_t j = 0; split && j < n1[k]; j++)
            split = ids2[j % 2][k][j / 2] == ids1[k][j];
    }
    tap_ok(split, "world 2: each of %lld steps is the world-1 batch split clip j -> rank j mod 2, "
                  "both shares padded to its T%s%s",
           (long long)s1, ok ? "" : ": ", ok ? "" : err.msg);
    ok = avsr_loader_start_micro(l, 3, 0, 1, 2, 0, &err) == 0;
    int64_t k = 0;
    bool same = ok && avsr_loader_steps(l) == s1 / 2;
    while (ok && avsr_loader_next(l, &b, &err) == 1) {
        same = same && b->step == k / 2 && b->micro == (int)(k % 2) && b->B == n1[k] &&
               !memcmp(b->sample_ids, ids1[k], (size_t)b->B * 8);
        k++;
        avsr_batch_release(b);
    }
    tap_ok(same && k == s1 / 2 * 2, "micro 2: step s = world-1 batches 2s and 2s+1 (%lld steps)",
           (long long)(s1 / 2));
    ok = avsr_loader_start_micro(l, 3, 0, 1, 2, 1, &err) == 0 &&
         avsr_loader_next(l, &b, &err) == 1;
    same = ok && b->step == 1 && b->micro == 0 && b->B == n1[2] &&
           !memcmp(b->sample_ids, ids1[2], (size_t)b->B * 8);
    if (ok)
        avsr_batch_release(b);
    tap_ok(same, "micro 2: cursor 1 starts at world-1 batch 2");
    tap_ok(avsr_loader_start_micro(l, 3, 0, 1, 0, 0, &err) < 0 &&
               !strcmp(err.msg, "avsr_loader_start: 0 micro-batches per step (evaluation serves 1)"),
           "micro 0 is an error: %s", err.msg);
    avsr_loader_close(l);
}

/* Every clip exactly once per epoch across ranks; world independence of
 * each sample's tensors; same hash on every rank. */
static void test_coverage_and_independence(void)
{
    avsr_loader_config c;
    base_config(&c, true);
    train_noise(&c);
    avsr_loader *l0 = open_or_bail(&c), *l1 = open_or_bail(&c);
    uint64_t sh1[34] = {0}, sh2[34] = {0}, sh3[34] = {0};
    int cnt1[34] = {0}, cnt2[34] = {0};
    bool ok = true;
    run_epoch(l0, 2, 0, 1, 0, NULL, sh1, cnt1, &ok);
    uint64_t h1 = avsr_loader_plan_hash(l0);
    int once = 1;
    for (int i = 0; i < 34; i++)
        once &= cnt1[i] == 1;
    tap_ok(ok && once, "world 1: every clip served exactly once in epoch 2");

    run_epoch(l0, 2, 0, 2, 0, NULL, sh2, cnt2, &ok);
    uint64_t h20 = avsr_loader_plan_hash(l0);
    int64_t s0 = avsr_loader_steps(l0);
    run_epoch(l1, 2, 1, 2, 0, NULL, sh2, cnt2, &ok);
    uint64_t h21 = avsr_loader_plan_hash(l1);
    once = 1;
    for (int i = 0; i < 34; i++)
        once &= cnt2[i] == 1;
    tap_ok(ok && once, "world 2: every clip served exactly once across the two ranks");
    tap_ok(h20 == h21 && h20 == h1 && s0 == avsr_loader_steps(l1),
           "world 2: both ranks have world 1's plan hash and the same step count (%016" PRIx64
           ")", h20);
    tap_ok(memcmp(sh1, sh2, sizeof sh1) == 0,
           "each sample's augmented tensors are bitwise equal for world 1 and world 2");
    avsr_loader_close(l1);
    avsr_loader_close(l0);

    /* other batch compositions: a different budget puts samples in other batches */
    c.sampler.max_frames = 90;
    c.sampler.nbuckets = 2;
    c.queue_depth = 1;
    avsr_loader *l = open_or_bail(&c);
    run_epoch(l, 2, 0, 1, 0, NULL, sh3, NULL, &ok);
    tap_ok(ok && memcmp(sh1, sh3, sizeof sh1) == 0,
           "... and whatever batch they land in (max_frames 90, depth 1)");
    avsr_loader_close(l);

    /* two threads assembling a batch give the same bits */
    base_config(&c, true);
    train_noise(&c);
    c.threads = 2;
    l = open_or_bail(&c);
    memset(sh3, 0, sizeof sh3);
    run_epoch(l, 2, 0, 1, 0, NULL, sh3, NULL, &ok);
    tap_ok(ok && memcmp(sh1, sh3, sizeof sh1) == 0, "threads = 2 gives the same samples");
    avsr_loader_close(l);
}

static void test_determinism_resume(void)
{
    avsr_loader_config c;
    base_config(&c, true);
    train_noise(&c);
    avsr_loader *l = open_or_bail(&c);
    uint64_t a[64], b[64], r[64];
    bool ok = true;
    int64_t na = run_epoch(l, 5, 1, 2, 0, a, NULL, NULL, &ok);
    uint64_t ha = avsr_loader_plan_hash(l);
    run_epoch(l, 6, 1, 2, 0, NULL, NULL, NULL, &ok);
    int64_t nb = run_epoch(l, 5, 1, 2, 0, b, NULL, NULL, &ok);
    tap_ok(ok && na == nb && na > 3 && memcmp(a, b, (size_t)na * 8) == 0 &&
               avsr_loader_plan_hash(l) == ha,
           "same epoch twice: identical batches bitwise (%" PRId64 " steps, augmentation incl.)",
           na);
    avsr_loader *l2 = open_or_bail(&c);
    int64_t nr = run_epoch(l2, 5, 1, 2, 3, r, NULL, NULL, &ok);
    tap_ok(ok && nr == na - 3 && memcmp(r, a + 3, (size_t)nr * 8) == 0,
           "resume from cursor 3 in a fresh loader equals continuing");
    nr = run_epoch(l2, 5, 1, 2, na, r, NULL, NULL, &ok);
    tap_ok(ok && nr == 0, "cursor = steps: nothing left, next returns 0");
    avsr_error err = {0};
    tap_ok(avsr_loader_start(l2, 5, 1, 2, na + 1, &err) < 0 && strstr(err.msg, "cursor"),
           "cursor past the end is an error: %s", err.msg);
    avsr_error_clear(&err);
    avsr_batch *bt;
    tap_ok(avsr_loader_next(l2, &bt, &err) < 0 && strstr(err.msg, "no epoch started"),
           "next without an epoch: %s", err.msg);
    avsr_error_clear(&err);
    tap_ok(avsr_loader_start(l2, 0, 2, 2, 0, &err) < 0 && strstr(err.msg, "rank 2"),
           "bad rank: %s", err.msg);
    avsr_loader_close(l2);
    avsr_loader_close(l);
}

static void test_many_epochs_and_shutdown(void)
{
    avsr_loader_config c;
    base_config(&c, true);
    train_noise(&c);
    c.queue_depth = 2;
    avsr_loader *l = open_or_bail(&c);
    bool ok = true;
    int64_t total = 0;
    for (uint64_t e = 0; e < 40; e++) {
        int cnt[34] = {0};
        total += run_epoch(l, e, (int)(e % 2), 2, 0, NULL, NULL, cnt, &ok);
        /* every few epochs stop in the middle: take one batch, start over */
        if (e % 7 == 3) {
            avsr_error err = {0};
            avsr_batch *b;
            avsr_loader_start(l, e, 0, 1, 0, &err);
            if (avsr_loader_next(l, &b, &err) != 1)
                ok = false;
            avsr_batch_release(b);
        }
    }
    tap_ok(ok && total > 100, "40 epochs (some interrupted mid-epoch): %" PRId64 " batches", total);

    /* close mid-epoch while the thread waits on a full queue and the
     * caller still holds two batches */
    avsr_error err = {0};
    avsr_batch *b1 = NULL, *b2 = NULL;
    avsr_loader_start(l, 1, 0, 1, 0, &err);
    avsr_loader_next(l, &b1, &err);
    avsr_loader_next(l, &b2, &err);
    usleep(20000);
    avsr_loader_close(l);
    bool valid = b1 && b2 && b1->B > 0 && b2->lengths[0] > 0;
    avsr_batch_release(b2);
    avsr_batch_release(b1);
    tap_ok(valid, "close mid-epoch joins the thread; held batches stay valid until released");

    /* close right after start (thread still assembling) */
    l = open_or_bail(&c);
    avsr_loader_start(l, 0, 0, 1, 0, &err);
    avsr_loader_close(l);
    tap_ok(1, "close right after start does not hang");
}

static void test_eval(void)
{
    avsr_loader_config c;
    base_config(&c, false);
    c.sampler.max_len = 30;
    c.sampler.ctc_filter = true;
    avsr_loader *l = open_or_bail(&c);
    avsr_error err = {0};
    avsr_loader_start(l, 0, 0, 1, 0, &err);
    const avsr_plan_counts *pc = avsr_loader_counts(l);
    int64_t expect = 0, too_long = 0;
    for (int64_t i = 0; i < 34; i++) {
        if (avsr_loader_clip_frames(l, i) > 30)
            too_long++;
    }
    expect = 34 - too_long;
    avsr_batch *b;
    int64_t next = 0, served = 0;
    bool order = true, clean = true;
    while (avsr_loader_next(l, &b, &err) == 1) {
        for (int64_t i = 0; i < b->B; i++) {
            while (next < 34 && avsr_loader_clip_frames(l, next) > 30)
                next++;
            if ((int64_t)b->sample_ids[i] != next++)
                order = false;
            served++;
            if (b->aug[i].noise || b->noise_type[i] || b->aug[i].crop_y != (ROI - CROP) / 2)
                clean = false;
        }
        if (b->clean)
            clean = false;
        avsr_batch_release(b);
    }
    tap_ok(order && served == expect && pc->kept == expect && pc->too_long == too_long &&
               too_long > 0,
           "eval: clips in index order, only the max_len filter drops (%" PRId64 " of 34)",
           too_long);
    tap_ok(clean, "eval default: clean, centre crop, no clean copy");

    /* video values are exactly the normalised centre crop */
    avsr_pack *p = avsr_pack_open(shards, 2, &err);
    avsr_loader_start(l, 0, 0, 1, 0, &err);
    avsr_loader_next(l, &b, &err);
    uint8_t *raw = malloc((size_t)b->lengths[0] * ROI * ROI);
    avsr_pack_read_video(p, (int64_t)b->sample_ids[0], raw, &err);
    int o = (ROI - CROP) / 2;
    bool exact = true;
    for (int64_t t = 0; t < b->lengths[0]; t++)
        for (int y = 0; y < CROP; y++)
            for (int x = 0; x < CROP; x++) {
                float want = ((float)raw[(t * ROI + y + o) * ROI + x + o] / 255.0f - 0.421f) /
                             0.165f;
                if (fabsf(b->video[(t * CROP + y) * CROP + x] - want) > 1e-5f)
                    exact = false;
            }
    tap_ok(exact, "eval video = (pixel/255 - 0.421)/0.165 of the centre crop");
    free(raw);
    avsr_batch_release(b);
    avsr_pack_close(p);
    avsr_loader_close(l);

    /* world 2: ranks take batches b = r, r + 2, ... */
    int cnt[34] = {0};
    bool ok = true;
    c.sampler.max_len = 0;
    avsr_loader *e0 = open_or_bail(&c), *e1 = open_or_bail(&c);
    run_epoch(e0, 0, 0, 2, 0, NULL, NULL, cnt, &ok);
    run_epoch(e1, 0, 1, 2, 0, NULL, NULL, cnt, &ok);
    int once = 1;
    for (int i = 0; i < 34; i++)
        once &= cnt[i] == 1;
    tap_ok(ok && once && avsr_loader_plan_hash(e0) == avsr_loader_plan_hash(e1),
           "eval world 2: every clip once, same hash on both ranks");
    avsr_loader_close(e0);
    avsr_loader_close(e1);

    /* fixed noise type and SNR per utterance */
    c.eval_noise.type = AVSR_NOISE_PINK;
    c.eval_noise.snr_db = 0.0;
    uint64_t h1[34], h2[34];
    l = open_or_bail(&c);
    avsr_loader_start(l, 0, 0, 1, 0, &err);
    bool fixed = true;
    while (avsr_loader_next(l, &b, &err) == 1) {
        for (int64_t i = 0; i < b->B; i++) {
            h1[b->sample_ids[i]] = sample_hash(b, i);
            if (!b->aug[i].noise || b->aug[i].snr_db != 0.0 || b->noise_type[i] != AVSR_NOISE_PINK)
                fixed = false;
        }
        if (!b->clean)
            fixed = false;
        avsr_batch_release(b);
    }
    avsr_loader_close(l);
    l = open_or_bail(&c);
    ok = true;
    run_epoch(l, 0, 0, 1, 0, NULL, h2, NULL, &ok);
    tap_ok(fixed && ok && memcmp(h1, h2, sizeof h1) == 0,
           "eval noise {pink, 0 dB}: every utterance noisy at 0 dB, same on a second run");
    avsr_loader_close(l);

    c.eval_noise.type = AVSR_NOISE_BABBLE;
    tap_ok(avsr_loader_open(&c, &err) == NULL && strstr(err.msg, "no babble corpus"),
           "eval noise babble without a babble pack: %s", err.msg);
    avsr_error_clear(&err);
}

/* A clip long enough (> 2^18 samples) for the chain's own OpenMP loops:
 * the result must not depend on the loader's thread count. */
static void test_long_clip_threads(void)
{
    write_av(P("long.h5"), 2, 9, 1, 0);
    /* append a 430-frame clip: a second pack, opened as another shard */
    avsr_pack_write_opts o = {AVSR_PACK_KIND_AV, ROI, ROI, 0, "", "test_loader"};
    avsr_error err = {0};
    avsr_pack_writer *w = avsr_pack_writer_create(P("long2.h5"), &o, &err);
    int64_t F = 430;
    uint8_t *v = malloc((size_t)F * ROI * ROI);
    int16_t *a = malloc((size_t)F * 640 * sizeof *a);
    for (int64_t j = 0; j < F * ROI * ROI; j++)
        v[j] = (uint8_t)(j * 7);
    for (int64_t j = 0; j < F * 640; j++)
        a[j] = (int16_t)lrint(7000 * sin(0.01 * (double)j) + (double)(j % 97) * 20);
    if (!w || avsr_pack_writer_add(w, "long", "s", v, F, a, F * 640, "ONE", 3, &err) ||
        avsr_pack_writer_commit(w, &err))
        tap_bail("long clip: %s", err.msg);
    free(v);
    free(a);
    const char *lp[2] = {P("long.h5"), P("long2.h5")};
    uint64_t h[2][3];
    bool ok = true;
    for (int k = 0; k < 2; k++) {
        avsr_loader_config c;
        base_config(&c, false);
        c.paths = lp;
        c.eval_noise.type = AVSR_NOISE_PINK;
        c.eval_noise.snr_db = 5.0;
        c.threads = k + 1;
        avsr_loader *l = open_or_bail(&c);
        run_epoch(l, 0, 0, 1, 0, NULL, h[k], NULL, &ok);
        avsr_loader_close(l);
    }
    tap_ok(ok && memcmp(h[0], h[1], sizeof h[0]) == 0,
           "a 430-frame clip (275200 samples) gives the same bits with threads 1 and 2");
}

static void test_bad_input(void)
{
    avsr_loader_config c;
    base_config(&c, true);
    avsr_error err = {0};
    FILE *f = fopen(P("junk.h5"), "wb");
    fputs("this is not an HDF5 file at all", f);
    fclose(f);
    const char *bad[2] = {shards[0], P("junk.h5")};
    c.paths = bad;
    tap_ok(avsr_loader_open(&c, &err) == NULL && strstr(err.msg, "junk.h5") &&
               strstr(err.msg, "not a readable HDF5 file"),
           "corrupt shard: %s", err.msg);
    avsr_error_clear(&err);

    /* a truncated copy of a good shard */
    FILE *in = fopen(shards[0], "rb"), *out = fopen(P("trunc.h5"), "wb");
    char buf[4096];
    size_t n, tot = 0;
    struct stat st;
    stat(shards[0], &st);
    while ((n = fread(buf, 1, sizeof buf, in)) > 0 && tot < (size_t)st.st_size / 2) {
        fwrite(buf, 1, n, out);
        tot += n;
    }
    fclose(in);
    fclose(out);
    const char *tr[1] = {P("trunc.h5")};
    c.paths = tr;
    c.n_paths = 1;
    tap_ok(avsr_loader_open(&c, &err) == NULL && strstr(err.msg, "trunc.h5"),
           "truncated shard: %s", err.msg);
    avsr_error_clear(&err);

    base_config(&c, true);
    const char *nz[1] = {shards[0]};
    c.noise_paths = nz;
    c.n_noise_paths = 1;
    tap_ok(avsr_loader_open(&c, &err) == NULL && strstr(err.msg, "must be a noise pack"),
           "AV pack as noise corpus: %s", err.msg);
    avsr_error_clear(&err);

    base_config(&c, true);
    c.paths = noise1;
    c.n_paths = 1;
    tap_ok(avsr_loader_open(&c, &err) == NULL && strstr(err.msg, "loader reads AV packs"),
           "noise pack as data: %s", err.msg);
    avsr_error_clear(&err);

    base_config(&c, true);
    c.augment.crop_h = ROI + 1;
    tap_ok(avsr_loader_open(&c, &err) == NULL && strstr(err.msg, "does not fit"),
           "crop larger than the ROI: %s", err.msg);
    avsr_error_clear(&err);

    base_config(&c, true);
    c.queue_depth = 0;
    tap_ok(avsr_loader_open(&c, &err) == NULL && strstr(err.msg, "queue_depth 0"),
           "queue depth 0: %s", err.msg);
    avsr_error_clear(&err);

    /* an error inside the prefetch thread names the file and the clip:
     * a compressed shard whose video chunks are overwritten after open */
    write_av(P("gz.h5"), 6, 7, 20, 1);
    const char *gz[1] = {P("gz.h5")};
    base_config(&c, true);
    c.paths = gz;
    c.n_paths = 1;
    avsr_loader *l = avsr_loader_open(&c, &err);
    if (!l) {
        tap_ok(0, "open compressed shard: %s", err.msg);
        return;
    }
    stat(gz[0], &st);
    FILE *g = fopen(gz[0], "r+b");
    memset(buf, 0xA5, sizeof buf);
    for (long off = st.st_size / 4; off < st.st_size * 3 / 4; off += sizeof buf) {
        fseek(g, off, SEEK_SET);
        fwrite(buf, 1, sizeof buf, g);
    }
    fclose(g);
    avsr_loader_start(l, 0, 0, 1, 0, &err);
    avsr_batch *b;
    int rc;
    while ((rc = avsr_loader_next(l, &b, &err)) == 1)
        avsr_batch_release(b);
    tap_ok(rc < 0 && strstr(err.msg, "gz.h5") && strstr(err.msg, "clip "),
           "read error in the prefetch thread surfaces at next(): %s", err.msg);
    avsr_error_clear(&err);
    tap_ok(avsr_loader_next(l, &b, &err) < 0 && err.code,
           "... and again at the following call");
    avsr_loader_close(l);
}

/* ---- acceptance: synthesise, encode with FFmpeg, pack, read back -------- */

static void test_round_trip(void)
{
    if (!avsr_video_encoder_name(AVSR_VIDEO_MP4)) {
        tap_skip("no MP4 encoder in this FFmpeg build", "round trip");
        return;
    }
    avsr_synth_config sc;
    avsr_synth_config_default(&sc);
    sc.seed = 3;
    sc.n_speakers = 6; /* 4 train speakers, 1 valid, 1 test */
    sc.n_valid = sc.n_test = 1;
    sc.n_babble = 1;
    sc.clips_per_speaker = 3;
    sc.babble_clips = 1;
    sc.format = AVSR_VIDEO_MP4;
    avsr_error err = {0};
    if (avsr_synth_corpus(P("corpus"), &sc, NULL, &err)) {
        tap_skip(err.msg, "round trip (no corpus)");
        return;
    }
    const char *bd = getenv("top_builddir");
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "'%s/launch/avsr-pack' '%s' -o '%s' --quiet --threads 1 2>'%s'", bd ? bd : ".",
             P("corpus/train.csv"), P("train.h5"), P("pack.log"));
    int rc = system(cmd);
    if (!tap_ok(rc == 0, "avsr-pack packs the synthesised train split (MP4, %s)",
                avsr_video_encoder_name(AVSR_VIDEO_MP4)))
        return;

    avsr_loader_config c;
    avsr_loader_config_default(&c, false);
    const char *tp[1] = {P("train.h5")};
    c.paths = tp;
    c.n_paths = 1;
    c.augment.crop_h = c.augment.crop_w = 96; /* whole frame: compare every pixel */
    c.augment.audio_norm = false;             /* audio = samples / 32768 */
    avsr_loader *l = avsr_loader_open(&c, &err);
    if (!tap_ok(l != NULL, "loader opens the packed corpus (%s)", l ? "ok" : err.msg))
        return;
    tap_ok(avsr_loader_count(l) == 12, "12 clips (4 speakers x 3)");

    avsr_synth_config res;
    avsr_synth_speaker *spk = NULL;
    int nspk = 0;
    avsr_synth_config_check(&sc, &res, &err);
    avsr_synth_speakers(&res, &spk, &nspk, &err);
    avsr_vocab *v;
    avsr_vocab_default(&v, &err);
    avsr_pack *p = avsr_pack_open(tp, 1, &err);

    avsr_loader_start(l, 0, 0, 1, 0, &err);
    avsr_batch *b;
    int expanded = 0, n_ok_frames = 0, n_ok_audio = 0, n_ok_text = 0, n_ok_pix = 0, seen = 0;
    double worst_mad = 0, worst_mean = 0;
    while (avsr_loader_next(l, &b, &err) == 1) {
        for (int64_t i = 0; i < b->B; i++, seen++) {
            avsr_pack_clip ci;
            avsr_pack_clip_info(p, (int64_t)b->sample_ids[i], &ci, &err);
            int s = -1, k = -1;
            char name[16];
            if (sscanf(ci.id, "%15[^_]_%d", name, &k) != 2)
                continue;
            for (int j = 0; j < nspk; j++)
                if (strcmp(spk[j].name, name) == 0)
                    s = j;
            avsr_synth_clip ref;
            if (s < 0 || avsr_synth_make_clip(&res, &spk[s], k, &ref, &err))
                continue;
            int64_t F = b->lengths[i];
            n_ok_frames += F == ref.n_frames;
            /* audio: WAV is lossless, so samples / 32768 exactly */
            bool aeq = ref.n_samples == F * 640;
            for (int64_t j = 0; aeq && j < F * 640; j++)
                aeq = b->audio[i * b->T * 640 + j] == (float)ref.audio[j] / 32768.0f;
            n_ok_audio += aeq;
            /* text: the tokens decode to the transcript */
            char *dec = avsr_vocab_decode(v, b->targets + i * b->L, b->L, &err);
            n_ok_text += dec && strcmp(dec, ref.text) == 0;
            free(dec);
            /* pixels: back to 0..255, mean absolute difference (lossy codec) */
            if (F == ref.n_frames) {
                double mad = 0, mean_a = 0, mean_b = 0, madx = 0, mean_x = 0;
                size_t np = (size_t)F * 96 * 96;
                for (size_t j = 0; j < np; j++) {
                    double pv = ((double)b->video[(size_t)i * b->T * 96 * 96 + j] * 0.165f +
                                 0.421f) * 255.0;
                    /* the synthesiser's gray as limited-range Y, expanded to full range */
                    double x = ((double)ref.video[j] - 16.0) * 255.0 / 219.0;
                    x = x < 0 ? 0 : x > 255 ? 255 : x;
                    mad += fabs(pv - ref.video[j]);
                    madx += fabs(pv - x);
                    mean_a += pv;
                    mean_b += ref.video[j];
                    mean_x += x;
                }
                mad /= (double)np;
                madx /= (double)np;
                double dm = fabs(mean_a - mean_b) / (double)np;
                double dmx = fabs(mean_a - mean_x) / (double)np;
                if (i == 0)
                    tap_diag("clip %s: mean |diff| %.2f (identity) %.2f (range-expanded); mean "
                             "shift %.2f / %.2f",
                             ci.id, mad, madx, dm, dmx);
                /* media_write tags its H.264 as full range and decode keeps
                 * full-range levels, so the identity mapping must hold;
                 * tolerance: H.264 at the writer's quality on these smooth
                 * synthetic faces (test_synth uses 4). The range-expanded
                 * mapping is computed only to name that failure. */
                bool id_ok = mad < 4.0 && dm < 1.0, x_ok = madx < 4.0 && dmx < 1.0;
                if (!id_ok && x_ok)
                    expanded++;
                worst_mad = mad > worst_mad ? mad : worst_mad;
                worst_mean = dm > worst_mean ? dm : worst_mean;
                n_ok_pix += id_ok;
            }
            avsr_synth_clip_free(&ref);
        }
        avsr_batch_release(b);
    }
    tap_ok(seen == 12 && n_ok_frames == 12, "round trip: frame counts match (%d/12)", n_ok_frames);
    tap_ok(n_ok_audio == 12, "round trip: audio lengths = frames x 640, samples exact (%d/12)",
           n_ok_audio);
    tap_ok(n_ok_text == 12, "round trip: text matches (%d/12)", n_ok_text);
    tap_ok(n_ok_pix == 12 && expanded == 0,
           "round trip: pixels within codec tolerance (%d/12; worst mean |diff| %.2f, worst "
           "mean shift %.2f of 255; %d clips came back range-expanded)",
           n_ok_pix, worst_mad, worst_mean, expanded);
    avsr_pack_close(p);
    avsr_vocab_free(v);
    free(spk);
    avsr_loader_close(l);
    avsr_tts_shutdown();
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/avsr-loader-XXXXXX");
    if (!mkdtemp(dir))
        tap_bail("mkdtemp: %s", strerror(errno));
    write_av(P("a.h5"), 24, 1, 50, 0);
    write_av(P("b.h5"), 10, 2, 30, 0);
    write_noise(P("n.h5"), 3, 3);
    shards[0] = strdup(P("a.h5"));
    shards[1] = strdup(P("b.h5"));
    noise1[0] = strdup(P("n.h5"));

    test_open_tokens();
    test_layout();
    test_coverage_and_independence();
    test_micro();
    test_determinism_resume();
    test_many_epochs_and_shutdown();
    test_eval();
    test_long_clip_threads();
    test_bad_input();
    test_round_trip();

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (!getenv("AVSR_KEEP_TMP") && system(cmd) != 0)
        tap_diag("could not remove %s", dir);
    free((void *)shards[0]);
    free((void *)shards[1]);
    free((void *)noise1[0]);
    return tap_done();
}
