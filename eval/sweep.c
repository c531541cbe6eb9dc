/* sweep: evaluation points and the sharded evaluation of one point. */
#include "sweep.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datasets/loader.h"
#include "datasets/pack_read.h"

static const char *const MODALITY_NAMES[] = {"audio", "video", "audiovisual"};

const char *avsr_eval_modality_name(int modality)
{
    return modality >= 0 && modality < 3 ? MODALITY_NAMES[modality] : NULL;
}

int avsr_eval_modality_parse(const char *name)
{
    for (int k = 0; k < 3; k++)
        if (strcmp(name, MODALITY_NAMES[k]) == 0)
            return k;
    return -1;
}

void avsr_eval_snr_text(double snr_db, char *buf, size_t size)
{
    if (isinf(snr_db) && snr_db > 0)
        snprintf(buf, size, "clean");
    else
        snprintf(buf, size, "%g", snr_db);
}

static void point_text(const avsr_eval_point *p, char sep, char *buf, size_t size)
{
    char snr[32];
    avsr_eval_snr_text(p->snr_db, snr, sizeof snr);
    const char *m = avsr_eval_modality_name(p->modality), *n = avsr_noise_type_name(p->noise);
    snprintf(buf, size, "%s%c%s%c%s", m ? m : "?", sep, n ? n : "?", sep, snr);
}

void avsr_eval_point_name(const avsr_eval_point *p, char *buf, size_t size)
{
    point_text(p, '-', buf, size);
}

void avsr_eval_point_spec(const avsr_eval_point *p, char *buf, size_t size)
{
    point_text(p, ':', buf, size);
}

int avsr_eval_point_check(const avsr_eval_point *p, avsr_error *err)
{
    char spec[AVSR_EVAL_POINT_NAME_MAX];
    avsr_eval_point_spec(p, spec, sizeof spec);
    if (!avsr_eval_modality_name(p->modality) || !avsr_noise_type_name(p->noise))
        return avsr_error_set(err, AVSR_ERR_INVALID, "point '%s': unknown modality or noise",
                              spec);
    bool clean = isinf(p->snr_db) && p->snr_db > 0;
    if (!clean && !(p->snr_db >= AVSR_EVAL_SNR_MIN && p->snr_db <= AVSR_EVAL_SNR_MAX))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "point '%s': SNR %g dB is out of range [%g, %g] (or clean)", spec,
                              p->snr_db, AVSR_EVAL_SNR_MIN, AVSR_EVAL_SNR_MAX);
    if (p->modality == AVSR_MODALITY_VIDEO && (p->noise != AVSR_NOISE_NONE || !clean))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "point '%s': a video-only point does not use the audio, so it "
                              "takes no noise: use video:none:clean",
                              spec);
    if (p->noise == AVSR_NOISE_NONE && !clean)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "point '%s': noise 'none' goes with SNR 'clean'", spec);
    if (p->noise != AVSR_NOISE_NONE && clean)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "point '%s': a clean point has noise 'none' (%s:none:clean)", spec,
                              avsr_eval_modality_name(p->modality));
    return 0;
}

int avsr_eval_point_parse(const char *spec, avsr_eval_point *p, avsr_error *err)
{
    char buf[AVSR_EVAL_POINT_NAME_MAX + 1];
    const char *c1 = strchr(spec, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2 || strchr(c2 + 1, ':') || strlen(spec) > AVSR_EVAL_POINT_NAME_MAX - 1)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "point '%s': expected MODALITY:NOISE:SNR (e.g. audio:babble:5 or "
                              "video:none:clean)",
                              spec);
    strcpy(buf, spec);
    buf[c1 - spec] = buf[c2 - spec] = '\0';
    const char *ms = buf, *ns = buf + (c1 - spec) + 1, *ss = buf + (c2 - spec) + 1;
    int m = avsr_eval_modality_parse(ms);
    if (m < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "point '%s': modality '%s' is not one of: audio, video, audiovisual",
                              spec, ms);
    int n = avsr_noise_type_parse(ns);
    if (n < 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "point '%s': noise '%s' is not one of: none, babble, white, pink, "
                              "file",
                              spec, ns);
    double snr;
    if (strcmp(ss, "clean") == 0) {
        snr = INFINITY;
    } else {
        char *end;
        errno = 0;
        snr = strtod(ss, &end);
        if (!*ss || *end || errno || !isfinite(snr))
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "point '%s': SNR '%s' is not a number of dB or 'clean'", spec,
                                  ss);
    }
    avsr_eval_point q = {(avsr_recipe_modality)m, n, snr};
    if (avsr_eval_point_check(&q, err) < 0)
        return -1;
    *p = q;
    return 0;
}

int avsr_eval_sweep_points(const avsr_recipe *r, avsr_eval_point **out, int *n,
                           avsr_error *err)
{
    int cap = r->n_sweep_modality * (1 + r->n_sweep_noise * r->n_sweep_snr) + 1, k = 0;
    avsr_eval_point *pts = malloc(sizeof *pts * (size_t)cap);
    if (!pts)
        return AVSR_NOMEM(err, sizeof *pts * (size_t)cap);
    bool has_clean = false;
    for (int s = 0; s < r->n_sweep_snr; s++)
        has_clean |= isinf(r->sweep_snr[s]) && r->sweep_snr[s] > 0;
#define ADD(pt)                                                                                \
    do {                                                                                       \
        avsr_eval_point q_ = (pt);                                                             \
        bool dup_ = false;                                                                     \
        for (int j_ = 0; j_ < k; j_++)                                                         \
            dup_ |= pts[j_].modality == q_.modality && pts[j_].noise == q_.noise &&            \
                    (pts[j_].snr_db == q_.snr_db);                                             \
        if (!dup_)                                                                             \
            pts[k++] = q_;                                                                     \
    } while (0)
    for (int mi = 0; mi < r->n_sweep_modality; mi++) {
        avsr_recipe_modality m = r->sweep_modality[mi];
        if (m == AVSR_MODALITY_VIDEO) {
            ADD(((avsr_eval_point){m, AVSR_NOISE_NONE, INFINITY}));
            continue;
        }
        if (has_clean)
            ADD(((avsr_eval_point){m, AVSR_NOISE_NONE, INFINITY}));
        for (int ni = 0; ni < r->n_sweep_noise; ni++)
            for (int s = 0; s < r->n_sweep_snr; s++)
                if (isfinite(r->sweep_snr[s]))
                    ADD(((avsr_eval_point){m, r->sweep_noise[ni], r->sweep_snr[s]}));
    }
#undef ADD
    if (k == 0) {
        free(pts);
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: eval.sweep gives no point (no modality, or no clean SNR and "
                              "no noise)",
                              r->path ? r->path : "recipe");
    }
    *out = pts;
    *n = k;
    return 0;
}

void avsr_eval_data_from_recipe(const avsr_recipe *r, avsr_eval_data *d)
{
    memset(d, 0, sizeof *d);
    d->test = (const char *const *)r->test;
    d->n_test = r->n_test;
    d->noise_files = (const char *const *)r->noise_files;
    d->n_noise_files = r->n_noise_files;
    d->babble_files = (const char *const *)r->babble_files;
    d->n_babble_files = r->n_babble_files;
    d->seed = r->seed;
    d->sampler = r->sampler;
    d->sampler.seed = r->seed;
    d->sampler.max_len = 0;
    d->augment = r->eval_augment;
    d->loader_threads = 1;
}

int avsr_eval_data_check_point(const avsr_eval_data *d, const avsr_eval_point *p,
                               avsr_error *err)
{
    char spec[AVSR_EVAL_POINT_NAME_MAX];
    avsr_eval_point_spec(p, spec, sizeof spec);
    if (p->noise == AVSR_NOISE_BABBLE && d->n_babble_files == 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "point '%s': babble noise needs a babble corpus "
                              "(data.noise.babble: {from: FILE.h5})",
                              spec);
    if (p->noise == AVSR_NOISE_FILE && d->n_noise_files == 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "point '%s': file noise needs a noise corpus "
                              "(data.noise.<name>: {from: FILE.h5})",
                              spec);
    if (d->n_test < 1)
        return avsr_error_set(err, AVSR_ERR_INVALID, "no test shards (data.test)");
    return 0;
}

void avsr_eval_result_free(avsr_eval_result *r)
{
    if (!r)
        return;
    for (int64_t i = 0; r->utt && i < r->n; i++) {
        free(r->utt[i].id);
        free(r->utt[i].text);
        free(r->utt[i].ref);
        free(r->utt[i].hyp);
    }
    free(r->utt);
    memset(r, 0, sizeof *r);
}

/* ---- running a point ------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A growing byte buffer of records: int64 clip, double score, int64 length,
 * text bytes. */
typedef struct recbuf {
    unsigned char *p;
    size_t n, cap;
} recbuf;

#define REC_HEAD 24

static int rec_put(recbuf *b, int64_t clip, double score, const char *text, avsr_error *err)
{
    int64_t len = (int64_t)strlen(text);
    size_t need = b->n + REC_HEAD + (size_t)len;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need)
            cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q)
            return AVSR_NOMEM(err, cap);
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, &clip, 8);
    memcpy(b->p + b->n + 8, &score, 8);
    memcpy(b->p + b->n + 16, &len, 8);
    memcpy(b->p + b->n + REC_HEAD, text, (size_t)len);
    b->n = need;
    return 0;
}

static int model_check(const avsr_model *m, const avsr_eval_point *p, const char *path,
                       avsr_error *err)
{
    bool v = m->cfg.use_video || m->cfg.use_fusion_module, a = m->cfg.audio != AVSR_AUDIO_NONE;
    bool need_v = p->modality != AVSR_MODALITY_AUDIO, need_a = p->modality != AVSR_MODALITY_VIDEO;
    if ((need_v && !v) || (need_a && !a)) {
        char spec[AVSR_EVAL_POINT_NAME_MAX];
        avsr_eval_point_spec(p, spec, sizeof spec);
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "point '%s': the model (%s) has %s only", spec, path,
                              v ? "video" : "audio");
    }
    return 0;
}

/* This rank's batches: recognise them into records. */
static int run_local(avsr_ctx *ctx, const avsr_model_file *mf, const avsr_recog_opts *o,
                     const avsr_eval_data *d, const avsr_eval_point *p, int rank, int world,
                     recbuf *rb, double *tm, avsr_error *err)
{
    avsr_loader_config c;
    avsr_loader_config_default(&c, false);
    c.paths = d->test;
    c.n_paths = d->n_test;
    if (p->noise == AVSR_NOISE_FILE) {
        c.noise_paths = d->noise_files;
        c.n_noise_paths = d->n_noise_files;
    }
    if (p->noise == AVSR_NOISE_BABBLE) {
        c.babble_paths = d->babble_files;
        c.n_babble_paths = d->n_babble_files;
    }
    c.vocab = mf->vocab;
    c.sampler = d->sampler;
    c.augment = d->augment;
    c.eval_noise.type = p->noise;
    c.eval_noise.snr_db = p->noise == AVSR_NOISE_NONE ? INFINITY : p->snr_db;
    c.threads = d->loader_threads > 0 ? d->loader_threads : 1;
    c.clean_audio = false;
    /* An ASR2AVSR model (fusion module) always takes both streams: the
     * point's missing modality is fed as zeros (the loader zeroes it after
     * normalisation, as modality dropout does in training). Other models
     * get no tensor for it and handle the absence themselves. */
    bool fm = mf->model->cfg.use_fusion_module;
    if (fm) {
        c.augment.drop_audio = p->modality == AVSR_MODALITY_VIDEO;
        c.augment.drop_video = p->modality == AVSR_MODALITY_AUDIO;
    }
    avsr_loader *l = avsr_loader_open(&c, err);
    if (!l)
        return -1;
    int rc = -1;
    avsr_recog_result *res = NULL;
    int64_t cap = 0;
    if (avsr_loader_start(l, 0, rank, world, 0, err) < 0)
        goto out;
    bool use_v = fm || p->modality != AVSR_MODALITY_AUDIO;
    bool use_a = fm || p->modality != AVSR_MODALITY_VIDEO;
    avsr_batch *b;
    int r;
    while ((r = avsr_loader_next(l, &b, err)) == 1) {
        int64_t sv[4] = {b->B, b->T, b->crop_h, b->crop_w}, sa[2] = {b->B, b->T * 640};
        avsr_model_input in = {.B = b->B, .lengths = b->lengths};
        in.video = use_v ? avsr_tensor_wrap(ctx, AVSR_F32, 4, sv, b->video) : NULL;
        in.audio = use_a ? avsr_tensor_wrap(ctx, AVSR_F32, 2, sa, b->audio) : NULL;
        if ((use_v && !in.video) || (use_a && !in.audio)) {
            avsr_batch_release(b);
            AVSR_NOMEM(err, 0);
            goto out;
        }
        if (b->B > cap) {
            avsr_recog_result *q = realloc(res, sizeof *q * (size_t)b->B);
            if (!q) {
                avsr_batch_release(b);
                AVSR_NOMEM(err, sizeof *q * (size_t)b->B);
                goto out;
            }
            res = q;
            cap = b->B;
        }
        avsr_recog_timing t;
        if (avsr_recognize(ctx, mf->model, mf->vocab, o, &in, res, &t, err) < 0) {
            avsr_error_prefix(err, "batch %" PRId64 " (clips %" PRIu64 "..): ", b->index,
                              b->sample_ids[0]);
            avsr_batch_release(b);
            goto out;
        }
        tm[0] += t.encode_s;
        tm[1] += t.search_s;
        int bad = 0;
        for (int64_t i = 0; i < b->B && !bad; i++)
            bad = rec_put(rb, (int64_t)b->sample_ids[i], res[i].score, res[i].text, err) < 0;
        avsr_recog_results_free(res, b->B);
        avsr_batch_release(b);
        if (bad)
            goto out;
    }
    if (r < 0)
        goto out;
    rc = 0;
out:
    free(res);
    avsr_loader_close(l);
    return rc;
}

/* Rank 0: records of every rank -> scored result. */
static int score_all(const avsr_eval_data *d, const avsr_eval_point *p,
                     const unsigned char *all, const int64_t *sizes, size_t stride, int world,
                     avsr_eval_result *res, avsr_error *err)
{
    avsr_pack *pk = avsr_pack_open(d->test, d->n_test, err);
    if (!pk)
        return -1;
    int rc = -1;
    int64_t nclip = avsr_pack_count(pk);
    char **text = calloc((size_t)(nclip > 0 ? nclip : 1), sizeof *text);
    double *score = calloc((size_t)(nclip > 0 ? nclip : 1), sizeof *score);
    const char **refs = NULL, **hyps = NULL;
    char *tbuf = NULL;
    if (!text || !score) {
        AVSR_NOMEM(err, sizeof *text * (size_t)nclip);
        goto out;
    }
    for (int r = 0; r < world; r++) {
        const unsigned char *q = all + (size_t)r * stride, *end = q + sizes[r];
        while (q < end) {
            int64_t clip, len;
            double sc;
            memcpy(&clip, q, 8);
            memcpy(&sc, q + 8, 8);
            memcpy(&len, q + 16, 8);
            if (clip < 0 || clip >= nclip || len < 0 || q + REC_HEAD + len > end) {
                avsr_error_set(err, AVSR_ERR_INVALID, "gathered record of rank %d is corrupt", r);
                goto out;
            }
            if (text[clip]) {
                avsr_error_set(err, AVSR_ERR_INVALID, "clip %" PRId64 " was recognised twice",
                               clip);
                goto out;
            }
            if (!(text[clip] = malloc((size_t)len + 1))) {
                AVSR_NOMEM(err, (size_t)len);
                goto out;
            }
            memcpy(text[clip], q + REC_HEAD, (size_t)len);
            text[clip][len] = '\0';
            score[clip] = sc;
            q += REC_HEAD + len;
        }
    }
    memset(res, 0, sizeof *res);
    res->point = *p;
    res->utt = calloc((size_t)(nclip > 0 ? nclip : 1), sizeof *res->utt);
    if (!res->utt) {
        AVSR_NOMEM(err, sizeof *res->utt * (size_t)nclip);
        goto out;
    }
    size_t tcap = 0;
    for (int64_t i = 0; i < nclip; i++) {
        avsr_pack_clip ci;
        if (avsr_pack_clip_info(pk, i, &ci, err) < 0)
            goto out;
        if (ci.frames <= 0) {
            res->skipped++;
            continue;
        }
        if (!text[i]) {
            avsr_error_set(err, AVSR_ERR_INVALID, "clip %" PRId64 " (%s) was not recognised", i,
                           ci.id);
            goto out;
        }
        if ((size_t)ci.text_bytes + 1 > tcap) {
            tcap = (size_t)ci.text_bytes + 1;
            char *nb = realloc(tbuf, tcap);
            if (!nb) {
                AVSR_NOMEM(err, tcap);
                goto out;
            }
            tbuf = nb;
        }
        if (avsr_pack_read_text(pk, i, tbuf, tcap, err) < 0)
            goto out;
        avsr_eval_utt *u = &res->utt[res->n++];
        u->clip = i;
        u->score = score[i];
        u->text = text[i];
        text[i] = NULL;
        if (!(u->id = strdup(ci.id))) {
            AVSR_NOMEM(err, 0);
            goto out;
        }
        if (!(u->ref = avsr_score_normalize(tbuf, err))) {
            avsr_error_prefix(err, "clip %" PRId64 " (%s): reference: ", i, ci.id);
            goto out;
        }
        if (!(u->hyp = avsr_score_normalize(u->text, err))) {
            avsr_error_prefix(err, "clip %" PRId64 " (%s): hypothesis: ", i, ci.id);
            goto out;
        }
        res->audio_seconds += (double)ci.frames / 25.0;
    }
    if (res->n == 0) {
        avsr_error_set(err, AVSR_ERR_INVALID, "the test shards hold no clip with frames");
        goto out;
    }
    refs = malloc(sizeof *refs * (size_t)res->n);
    hyps = malloc(sizeof *hyps * (size_t)res->n);
    avsr_edit_counts *wc = malloc(sizeof *wc * (size_t)res->n);
    avsr_edit_counts *cc = malloc(sizeof *cc * (size_t)res->n);
    if (!refs || !hyps || !wc || !cc) {
        free(wc);
        free(cc);
        AVSR_NOMEM(err, sizeof *wc * (size_t)res->n);
        goto out;
    }
    for (int64_t i = 0; i < res->n; i++) {
        refs[i] = res->utt[i].ref;
        hyps[i] = res->utt[i].hyp;
    }
    int sr = avsr_score_corpus(res->n, refs, hyps, false, wc, cc, &res->score, err);
    for (int64_t i = 0; sr == 0 && i < res->n; i++) {
        res->utt[i].word = wc[i];
        res->utt[i].chr = cc[i];
    }
    free(wc);
    free(cc);
    if (sr < 0)
        goto out;
    rc = 0;
out:
    if (rc < 0)
        avsr_eval_result_free(res);
    for (int64_t i = 0; text && i < nclip; i++)
        free(text[i]);
    free(text);
    free(score);
    free(refs);
    free(hyps);
    free(tbuf);
    avsr_pack_close(pk);
    return rc;
}

int avsr_eval_run_point(avsr_comm *comm, avsr_ctx *ctx, const avsr_model_file *mf,
                        const avsr_recog_opts *o, const avsr_eval_data *d,
                        const avsr_eval_point *p, avsr_eval_result *res, avsr_error *err)
{
    memset(res, 0, sizeof *res);
    int rank = comm ? avsr_comm_rank(comm) : 0, world = comm ? avsr_comm_size(comm) : 1;
    double t0 = now_s();
    recbuf rb = {0};
    double tm[2] = {0, 0};
    int64_t *sizes = NULL;
    unsigned char *all = NULL;
    avsr_error lerr = {0};
    int rc = avsr_eval_point_check(p, &lerr);
    if (rc == 0)
        rc = avsr_eval_data_check_point(d, p, &lerr);
    if (rc == 0)
        rc = model_check(mf->model, p, mf->path ? mf->path : "model", &lerr);
    if (rc == 0)
        rc = avsr_recog_opts_check(o, mf->model, &lerr);
    if (rc == 0)
        rc = run_local(ctx, mf, o, d, p, rank, world, &rb, tm, &lerr);

    /* agree on failure before any gather */
    int failed = rc < 0 ? rank + 1 : 0;
    if (comm && (avsr_comm_allreduce_max_int(comm, &failed, 1, err) < 0 ||
                 avsr_comm_allreduce_sum_f64(comm, tm, 2, err) < 0)) {
        free(rb.p);
        return -1;
    }
    if (failed) {
        free(rb.p);
        if (rc < 0)
            return avsr_error_set(err, lerr.code ? lerr.code : AVSR_ERR_INVALID, "%s", lerr.msg);
        avsr_error_set(err, AVSR_ERR_INVALID, "rank %d failed", failed - 1);
        return -2;
    }
    int64_t mysize = (int64_t)rb.n;
    int maxsize = rb.n > (size_t)INT_MAX - 8 ? -1 : (int)rb.n;
    rc = -1;
    if (comm) {
        int big = maxsize < 0;
        if (avsr_comm_allreduce_max_int(comm, &big, 1, err) < 0)
            goto out;
        if (big) {
            avsr_error_set(err, AVSR_ERR_INVALID, "hypotheses of one rank exceed 2 GiB");
            goto out;
        }
        if (avsr_comm_allreduce_max_int(comm, &maxsize, 1, err) < 0)
            goto out;
    }
    size_t stride = (size_t)(maxsize > 0 ? maxsize : 1);
    if (rank == 0) {
        sizes = malloc(sizeof *sizes * (size_t)world);
        all = malloc(stride * (size_t)world);
        if (!sizes || !all) {
            if (comm) /* the other ranks are on their way into the gather */
                avsr_comm_abort(comm, 1, "out of memory (%zu bytes) for the hypotheses",
                                stride * (size_t)world);
            AVSR_NOMEM(err, stride * (size_t)world);
            goto out;
        }
    }
    if (rb.cap < stride) {
        unsigned char *q = realloc(rb.p, stride);
        if (!q) {
            AVSR_NOMEM(err, stride);
            goto out;
        }
        rb.p = q;
        rb.cap = stride;
    }
    memset(rb.p + rb.n, 0, stride - rb.n);
    if (comm) {
        if (avsr_comm_gather(comm, &mysize, sizeof mysize, sizes, err) < 0 ||
            avsr_comm_gather(comm, rb.p, stride, all, err) < 0)
            goto out;
    } else {
        sizes[0] = mysize;
        memcpy(all, rb.p, stride);
    }
    int scored = 1;
    if (rank == 0) {
        scored = score_all(d, p, all, sizes, stride, world, res, err) == 0;
        res->encode_s = tm[0];
        res->search_s = tm[1];
        res->wall_s = now_s() - t0;
    }
    if (comm && avsr_comm_bcast(comm, &scored, sizeof scored, 0, err) < 0)
        goto out;
    if (!scored) {
        if (rank != 0) {
            avsr_error_set(err, AVSR_ERR_INVALID, "rank 0 failed");
            rc = -2;
        }
        goto out;
    }
    rc = 0;
out:
    free(rb.p);
    free(sizes);
    free(all);
    return rc;
}
