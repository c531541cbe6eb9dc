/* trainer: the stages of a recipe, data-parallel, with exact resume.
 * See trainer.h for the step and docs/tools/avsr-worker.md for the user's
 * view. */
#define _GNU_SOURCE
#include "train/trainer.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "datasets/loader.h"
#include "dist/bn_sync.h"
#include "dist/coord.h"
#include "dist/grad_sync.h"
#include "dist/signals.h"
#include "dist/threads.h"
#include "eval/score.h"
#include "fileio.h"
#include "models/avsr_model.h"
#include "models/builder.h"
#include "models/search.h"
#include "ops.h"
#include "params.h"
#include "tape.h"
#include "train/average.h"
#include "train/checkpoint.h"

#define EXIT_INTERRUPTED 130

/* Per-step sums (each rank's, then summed over the ranks in one all-reduce).
 * Loss terms are sums over utterances. */
enum {
    S_UTTS, S_LOSS, S_CTC, S_ATT, S_MEL, S_ENC, S_ACC_HIT, S_ACC_N, S_FRAMES, S_PADDED,
    S_COUNT
};
/* Validation sums. */
enum {
    V_UTTS, V_LOSS, V_WS, V_WD, V_WI, V_WH, V_CS, V_CD, V_CI, V_CH, V_ACC_HIT, V_ACC_N, V_COUNT
};

typedef struct valid_result {
    bool have;
    double loss, wer, cer, acc;
    int64_t utts;
} valid_result;

typedef struct trainer {
    const avsr_recipe *r;
    avsr_comm *c;
    int rank, world;
    FILE *log;
    bool tty;
    bool force_resume;
    avsr_params *p;
    avsr_model *m;
    avsr_ctx *ctx;
    int threads;
    char *vocab_json;
    avsr_kv *old_recipe; /* the previous run's resolved recipe (for diffs) */
    int n_old_recipe;
    json_t *old_recipe_json;
    bool recipe_written;

    /* the stage */
    int si;
    const avsr_recipe_stage *st;
    char dir[PATH_MAX];
    avsr_optim *opt;
    avsr_grad_sync *gs;
    avsr_loader *train, *valid;
    avsr_params *tp;  /* the teacher (frozen copy of another stage), or NULL */
    avsr_model *tm;
    int micro;
    int64_t total_steps;
    avsr_lrsched sched;
    FILE *metrics;

    /* position and counters (checkpointed) */
    int64_t epoch, cursor, gstep;
    int64_t nonfinite_streak, skipped, bad_validations;
    double best;        /* best validation metric so far (NaN: none) */
    int64_t last_saved; /* step of the newest checkpoint (-1: none) */

    /* speed */
    double t0;
    int64_t steps_timed;
    double secs_timed;
} trainer;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void note(trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(trainer *t, const char *fmt, ...)
{
    if (t->rank != 0)
        return;
    if (t->tty)
        fputs("\r\033[K", t->log);
    va_list ap;
    va_start(ap, fmt);
    fputs("avsr-worker: ", t->log);
    vfprintf(t->log, fmt, ap);
    va_end(ap);
    fputc('\n', t->log);
    fflush(t->log);
}

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* An error on rank 0 (which alone does some file work) becomes every
 * rank's: rank 0 broadcasts its status and message. */
static int share_status(trainer *t, int rc, avsr_error *err)
{
    struct {
        int rc;
        avsr_error e;
    } s;
    memset(&s, 0, sizeof s);
    if (t->rank == 0) {
        s.rc = rc;
        if (rc < 0)
            s.e = *err;
    }
    avsr_comm_bcast(t->c, &s, sizeof s, 0, err);
    if (s.rc < 0 && t->rank != 0)
        *err = s.e;
    return s.rc;
}

/* ---- model ----------------------------------------------------------------- */

static int build_model(const avsr_recipe *r, avsr_params **pp, avsr_model **mm, avsr_error *err)
{
    avsr_params *p = avsr_params_create();
    avsr_model *m = NULL;
    if (!p)
        return AVSR_NOMEM(err, sizeof(void *));
    if (avsr_model_build(r->yaml, r->model, r->vocab_size, &m, p, err) < 0 ||
        avsr_params_finalize(p, err) < 0 || avsr_params_init(p, r->seed, err) < 0) {
        avsr_model_free(m);
        avsr_params_destroy(p);
        return -1;
    }
    *pp = p;
    *mm = m;
    return 0;
}

/* The model file a source names: a stage's best/last checkpoint, its
 * average (computed here by rank 0 when missing), or a path (a file, or a
 * checkpoint directory holding model.safetensors). */
static int source_file(trainer *t, const avsr_recipe_src *src, const char *what, char *out,
                       size_t size, avsr_error *err)
{
    const avsr_recipe *r = t->r;
    if (src->kind == AVSR_SRC_PATH) {
        struct stat sb;
        if (stat(src->path, &sb) < 0)
            return avsr_error_set(err, AVSR_ERR_IO, "%s: %s: %s", what, src->path,
                                  strerror(errno));
        snprintf(out, size, S_ISDIR(sb.st_mode) ? "%s/model.safetensors" : "%s", src->path);
        return 0;
    }
    char sdir[PATH_MAX];
    avsr_recipe_stage_dir(r, src->stage, sdir, sizeof sdir);
    const char *sname = r->stages[src->stage].name;
    if (src->pick == AVSR_PICK_AVERAGE) {
        snprintf(out, size, "%s/avg.safetensors", sdir);
        int rc = 0;
        if (t->rank == 0 && !file_exists(out)) {
            char **paths = NULL;
            int64_t *steps = NULL;
            int n = r->average_last > 0 ? r->average_last : r->average_best;
            avsr_avg_mode mode = r->average_last > 0 ? AVSR_AVG_LAST : AVSR_AVG_BEST;
            rc = avsr_avg_select(sdir, mode, n, r->valid_metric, r->valid_higher_better, &paths,
                                 &steps, NULL, err);
            if (rc == 0) {
                rc = avsr_avg_files((const char *const *)paths, steps, n, out, err);
                avsr_avg_selection_free(paths, steps, n);
            }
            if (rc < 0)
                avsr_error_prefix(err, "%s: average of stage '%s': ", what, sname);
            else
                note(t, "%s: averaged %d checkpoints of stage '%s' into %s", what, n, sname, out);
        }
        return share_status(t, rc, err);
    }
    char link[PATH_MAX + 16];
    snprintf(link, sizeof link, "%s/%s", sdir, src->pick == AVSR_PICK_BEST ? "best" : "last");
    if (src->pick == AVSR_PICK_BEST && !file_exists(link)) {
        snprintf(link, sizeof link, "%s/last", sdir);
        note(t, "%s: stage '%s' has no best checkpoint (no validation metric); using its last",
             what, sname);
    }
    if (!file_exists(link))
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "%s: stage '%s' has no checkpoint (%s missing); train it first", what,
                              sname, link);
    snprintf(out, size, "%s/model.safetensors", link);
    return 0;
}

/* ---- recipe record ---------------------------------------------------------- */

static char *recipe_json_text(const avsr_recipe *r)
{
    json_t *o = json_object(), *keys = json_object();
    json_object_set_new(o, "hash", json_string(r->hash));
    for (int i = 0; i < r->n_resolved; i++)
        json_object_set_new(keys, r->resolved[i].key, json_string(r->resolved[i].value));
    json_object_set_new(o, "keys", keys);
    char *s = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

/* The previous run's resolved recipe, if any (for naming changed keys). */
static void read_old_recipe(trainer *t)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/recipe.resolved.json", t->r->exp_dir);
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    json_t *keys = o ? json_object_get(o, "keys") : NULL;
    if (!json_is_object(keys)) {
        json_decref(o);
        return;
    }
    int n = (int)json_object_size(keys), i = 0;
    t->old_recipe = calloc((size_t)n + 1, sizeof *t->old_recipe);
    if (!t->old_recipe) {
        json_decref(o);
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(keys, k, v)
    {
        if (json_is_string(v)) {
            t->old_recipe[i].key = k;
            t->old_recipe[i].value = json_string_value(v);
            i++;
        }
    }
    t->n_old_recipe = i;
    t->old_recipe_json = o;
}

static int write_text(const char *path, const char *text, avsr_error *err)
{
    avsr_afile af;
    if (avsr_afile_open(&af, path, err) < 0)
        return -1;
    if (avsr_afile_write(&af, text, strlen(text), err) < 0) {
        avsr_afile_abort(&af);
        return -1;
    }
    return avsr_afile_commit(&af, err);
}

/* <exp_dir>/recipe.resolved.yaml and .json (rank 0), once the recipe is
 * accepted for training. */
static int write_recipe(trainer *t, avsr_error *err)
{
    if (t->recipe_written || t->rank != 0)
        return 0;
    char path[PATH_MAX + 32];
    char *yaml = avsr_recipe_resolved_yaml(t->r), *json = recipe_json_text(t->r);
    int rc = -1;
    if (!yaml || !json) {
        AVSR_NOMEM(err, 4096);
        goto out;
    }
    snprintf(path, sizeof path, "%s/recipe.resolved.yaml", t->r->exp_dir);
    if (write_text(path, yaml, err) < 0)
        goto out;
    snprintf(path, sizeof path, "%s/recipe.resolved.json", t->r->exp_dir);
    if (write_text(path, json, err) < 0)
        goto out;
    t->recipe_written = true;
    rc = 0;
out:
    free(yaml);
    free(json);
    return rc;
}

/* ---- metrics.jsonl ---------------------------------------------------------- */

static void jset_num(json_t *o, const char *k, double v)
{
    json_object_set_new(o, k, isfinite(v) ? json_real(v) : json_null());
}

static void metrics_write(trainer *t, json_t *o)
{
    if (t->metrics) {
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s) {
            fprintf(t->metrics, "%s\n", s);
            fflush(t->metrics);
            free(s);
        }
    }
    json_decref(o);
}

static json_t *metrics_record(trainer *t, const char *kind)
{
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(kind));
    json_object_set_new(o, "stage", json_string(t->st->name));
    json_object_set_new(o, "epoch", json_integer(t->epoch));
    json_object_set_new(o, "step", json_integer(t->gstep));
    return o;
}

/* Open <stage>/metrics.jsonl for appending; after a resume, records of
 * steps after the restored one (written before the run was killed) are
 * dropped first, so the file reads as one uninterrupted run. */
static int metrics_open(trainer *t, bool resumed, avsr_error *err)
{
    if (t->rank != 0)
        return 0;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.jsonl", t->dir);
    if (resumed && file_exists(path)) {
        void *buf;
        size_t len;
        if (avsr_file_read_all(path, &buf, &len, err) < 0)
            return -1;
        avsr_afile af;
        if (avsr_afile_open(&af, path, err) < 0) {
            free(buf);
            return -1;
        }
        int rc = 0;
        for (char *line = buf, *nl; rc == 0 && line < (char *)buf + len; line = nl + 1) {
            nl = strchr(line, '\n');
            if (!nl)
                break; /* a torn last line */
            *nl = 0;
            json_t *o = json_loads(line, 0, NULL);
            json_t *s = o ? json_object_get(o, "step") : NULL;
            bool keep = json_is_integer(s) && json_integer_value(s) <= t->gstep;
            json_decref(o);
            if (keep) {
                *nl = '\n';
                rc = avsr_afile_write(&af, line, (size_t)(nl - line + 1), err);
            }
        }
        free(buf);
        if (rc < 0 || avsr_afile_commit(&af, err) < 0) {
            if (rc < 0)
                avsr_afile_abort(&af);
            return -1;
        }
    }
    t->metrics = fopen(path, "a");
    if (!t->metrics)
        return avsr_error_set(err, AVSR_ERR_IO, "%s: %s", path, strerror(errno));
    return 0;
}

/* ---- batches ---------------------------------------------------------------- */

/* The model's view of a loader batch (arena memory), per the stage's inputs. */
static int make_input(trainer *t, const avsr_batch *b, bool clean_audio, avsr_model_input *in)
{
    avsr_ctx *ctx = t->ctx;
    memset(in, 0, sizeof *in);
    in->B = b->B;
    in->lengths = b->lengths;
    bool video = !t->st || t->st->video_in != AVSR_IN_VIDEO_NONE;
    bool audio = !t->st || t->st->audio_in != AVSR_IN_AUDIO_NONE;
    if (t->st && t->st->audio_in == AVSR_IN_AUDIO_CLEAN)
        clean_audio = true;
    if (video) {
        int64_t sv[4] = {b->B, b->T, b->crop_h, b->crop_w};
        in->video = avsr_tensor_wrap(ctx, AVSR_F32, 4, sv, b->video);
    }
    if (audio) {
        int64_t sa[2] = {b->B, b->T * 640};
        in->audio = avsr_tensor_wrap(ctx, AVSR_F32, 2, sa,
                                     clean_audio && b->clean ? b->clean : b->audio);
    }
    int64_t L = b->L > 0 ? b->L : 1;
    int64_t *tg = avsr_ctx_alloc(ctx, sizeof(int64_t) * (size_t)(b->B * L));
    if (!tg || (video && !in->video) || (audio && !in->audio))
        return -1;
    for (int64_t i = 0; i < b->B * L; i++)
        tg[i] = b->L > 0 && b->targets[i] >= 0 ? b->targets[i] : 0;
    in->targets = tg;
    in->target_lengths = b->target_lengths;
    in->max_target = L;
    in->pad_target = b->L; /* the whole batch's longest target */
    return 0;
}

/* ---- validation ------------------------------------------------------------- */

static int token_text(const avsr_vocab *v, const int64_t *ids, int64_t n, char **out,
                      avsr_error *err)
{
    int32_t *k = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (!k)
        return AVSR_NOMEM(err, (size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        k[i] = (int32_t)ids[i];
    *out = avsr_vocab_decode(v, k, n, err);
    free(k);
    return *out ? 0 : -1;
}

/* Loss (the model's hybrid loss) and CTC-greedy WER/CER on the validation
 * shards, sharded over the ranks; sums over the ranks. */
static int validate(trainer *t, valid_result *res, avsr_error *err)
{
    memset(res, 0, sizeof *res);
    if (!t->valid)
        return 0;
    double v[V_COUNT] = {0};
    bool was_training = avsr_ctx_set_training(t->ctx, false);
    bool was_grad = avsr_ctx_set_grad(t->ctx, false);
    int rc = avsr_loader_start(t->valid, 0, t->rank, t->world, 0, err);
    avsr_batch *b = NULL;
    while (rc == 0 && (rc = avsr_loader_next(t->valid, &b, err)) == 1) {
        rc = 0;
        avsr_model_input in;
        avsr_model_out o;
        if (make_input(t, b, false, &in) < 0 || avsr_model_forward(t->ctx, t->m, &in, &o) < 0) {
            rc = avsr_ctx_take_error(t->ctx, err);
            avsr_error_prefix(err, "validation: ");
            break;
        }
        v[V_UTTS] += (double)b->B;
        v[V_LOSS] += (double)avsr_f32(o.loss.total)[0] * (double)b->B;
        v[V_ACC_HIT] += o.loss.att_acc * (double)o.loss.att_count;
        v[V_ACC_N] += (double)o.loss.att_count;
        int64_t T = o.ctc_logits->shape[1], V = o.ctc_logits->shape[2];
        int64_t *hyp = malloc(sizeof(int64_t) * (size_t)T), *ref = malloc(sizeof(int64_t) * (size_t)(b->L + 1));
        for (int64_t i = 0; rc == 0 && i < b->B; i++) {
            if (!hyp || !ref) {
                rc = AVSR_NOMEM(err, (size_t)T * 8);
                break;
            }
            int nh = avsr_ctc_greedy(avsr_f32(o.ctc_logits) + i * T * V, (int)o.enc_lengths[i],
                                     (int)V, AVSR_VOCAB_BLANK, hyp);
            for (int64_t k = 0; k < b->target_lengths[i]; k++)
                ref[k] = b->targets[i * b->L + k];
            char *rs = NULL, *hs = NULL;
            avsr_edit_counts w = {0}, c = {0};
            rc = token_text(t->r->vocab, ref, b->target_lengths[i], &rs, err);
            if (rc == 0)
                rc = token_text(t->r->vocab, hyp, nh, &hs, err);
            if (rc == 0)
                rc = avsr_wer_counts(rs, hs, &w, err);
            if (rc == 0)
                rc = avsr_cer_counts(rs, hs, &c, err);
            free(rs);
            free(hs);
            v[V_WS] += (double)w.sub;
            v[V_WD] += (double)w.del;
            v[V_WI] += (double)w.ins;
            v[V_WH] += (double)w.hit;
            v[V_CS] += (double)c.sub;
            v[V_CD] += (double)c.del;
            v[V_CI] += (double)c.ins;
            v[V_CH] += (double)c.hit;
        }
        free(hyp);
        free(ref);
        avsr_ctx_reset(t->ctx);
        avsr_batch_release(b);
    }
    avsr_ctx_set_training(t->ctx, was_training);
    avsr_ctx_set_grad(t->ctx, was_grad);
    /* a failed rank still joins the sum, with a flag, so no rank hangs */
    double fail = rc < 0 ? 1.0 : 0.0;
    double all[V_COUNT + 1];
    memcpy(all, v, sizeof v);
    all[V_COUNT] = fail;
    avsr_error cerr = {0};
    if (avsr_comm_allreduce_sum_f64(t->c, all, V_COUNT + 1, &cerr) < 0) {
        *err = cerr;
        return -1;
    }
    if (rc < 0)
        return -1;
    if (all[V_COUNT] > 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "validation failed on another rank");
    avsr_edit_counts w = {(int64_t)all[V_WS], (int64_t)all[V_WD], (int64_t)all[V_WI],
                          (int64_t)all[V_WH]};
    avsr_edit_counts c = {(int64_t)all[V_CS], (int64_t)all[V_CD], (int64_t)all[V_CI],
                          (int64_t)all[V_CH]};
    res->have = all[V_UTTS] > 0;
    res->utts = (int64_t)all[V_UTTS];
    res->loss = res->have ? all[V_LOSS] / all[V_UTTS] : NAN;
    res->wer = avsr_edit_rate(&w);
    res->cer = avsr_edit_rate(&c);
    res->acc = all[V_ACC_N] > 0 ? all[V_ACC_HIT] / all[V_ACC_N] : NAN;
    return 0;
}

static double valid_metric(const trainer *t, const valid_result *v)
{
    const char *m = t->r->valid_metric;
    if (!m)
        return NAN;
    if (!strcmp(m, "valid_wer"))
        return v->wer;
    if (!strcmp(m, "valid_cer"))
        return v->cer;
    if (!strcmp(m, "valid_acc"))
        return v->acc;
    return v->loss;
}

/* ---- checkpoints ------------------------------------------------------------ */

static int save(trainer *t, const valid_result *v, avsr_error *err)
{
    if (t->last_saved == t->gstep)
        return 0;
    int rc = 0;
    if (t->rank == 0) {
        int64_t pos[3] = {t->epoch, t->cursor, t->gstep};
        int64_t cnt[3] = {t->nonfinite_streak, t->skipped, t->bad_validations};
        double best = t->best;
        avsr_ckpt_item items[3] = {
            {"train.position", AVSR_I64, 3, pos},
            {"train.counters", AVSR_I64, 3, cnt},
            {"train.best", AVSR_F64, 1, &best},
        };
        avsr_ckpt_metric mt[4];
        int nm = 0;
        if (v && v->have) {
            mt[nm++] = (avsr_ckpt_metric){"valid_loss", v->loss};
            mt[nm++] = (avsr_ckpt_metric){"valid_wer", v->wer};
            mt[nm++] = (avsr_ckpt_metric){"valid_cer", v->cer};
            mt[nm++] = (avsr_ckpt_metric){"valid_acc", v->acc};
            for (int i = nm - 1; i >= 0; i--)
                if (!isfinite(mt[i].value))
                    mt[i] = mt[--nm];
        }
        avsr_ckpt_save_info info = {
            .step = t->gstep,
            .epoch = t->epoch,
            .stage = t->st->name,
            .model_config = t->r->model_json,
            .vocab = t->vocab_json,
            .recipe_hash = t->r->hash,
            .world_size = t->world,
            .metrics = mt,
            .n_metrics = nm,
            .items = items,
            .n_items = 3,
        };
        /* the data preprocessing the model expects (avsr-transcribe reads it) */
        char prep[256];
        const avsr_augment_config *ea = &t->r->eval_augment;
        snprintf(prep, sizeof prep,
                 "{\"video_roi\": %d, \"video_crop\": %d, \"video_mean\": %.9g, "
                 "\"video_std\": %.9g, \"audio_normalize\": %s}",
                 t->r->video_roi, ea->crop_h, (double)ea->video_mean, (double)ea->video_std,
                 ea->audio_norm ? "true" : "false");
        avsr_kv meta[1] = {{"preprocess", prep}};
        info.meta = meta;
        info.n_meta = 1;
        avsr_ckpt_retention ret = {t->r->keep_last, t->r->keep_best, t->r->valid_metric,
                                   t->r->valid_higher_better};
        avsr_ckpt_notes notes = {0};
        rc = avsr_ckpt_save(t->dir, t->p, t->opt, &info, &ret, &notes, err);
        for (int i = 0; i < notes.n; i++)
            note(t, "checkpoint: %s", notes.msg[i]);
        avsr_ckpt_notes_free(&notes);
    }
    /* the others wait while rank 0 writes: no watchdog for that */
    double to = avsr_comm_timeout(t->c);
    avsr_comm_set_timeout(t->c, -1);
    rc = share_status(t, rc, err);
    avsr_comm_set_timeout(t->c, to);
    if (rc == 0)
        t->last_saved = t->gstep;
    return rc;
}

/* Resume the stage from its newest complete checkpoint: 1 restored, 0 none,
 * -1 error (also a recipe that changed without --force-resume). */
static int restore(trainer *t, avsr_error *err)
{
    int64_t pos[3] = {0, 0, 0}, cnt[3] = {0, 0, 0};
    double best = NAN;
    avsr_ckpt_item items[3] = {
        {"train.position", AVSR_I64, 3, pos},
        {"train.counters", AVSR_I64, 3, cnt},
        {"train.best", AVSR_F64, 1, &best},
    };
    avsr_ckpt_loaded ld;
    memset(&ld, 0, sizeof ld);
    avsr_ckpt_notes notes = {0};
    int rc = avsr_ckpt_restore(t->dir, t->p, t->opt, items, 3, &ld, &notes, err);
    for (int i = 0; i < notes.n; i++)
        note(t, "checkpoint: %s", notes.msg[i]);
    avsr_ckpt_notes_free(&notes);
    if (rc <= 0)
        return rc;
    if (!ld.recipe_hash || strcmp(ld.recipe_hash, t->r->hash) != 0) {
        char *names = NULL;
        if (t->old_recipe)
            avsr_ckpt_recipe_diff(t->old_recipe, t->n_old_recipe, t->r->resolved,
                                  t->r->n_resolved, &names);
        if (!t->force_resume) {
            avsr_error_set(err, AVSR_ERR_INVALID,
                           "%s: the recipe changed since this checkpoint (hash %s, now %s)%s%s; "
                           "re-run with --force-resume to resume anyway, or use a new run.exp_dir",
                           ld.dir, ld.recipe_hash ? ld.recipe_hash : "none", t->r->hash,
                           names && *names ? ": " : "", names ? names : "");
            free(names);
            avsr_ckpt_loaded_free(&ld);
            return -1;
        }
        note(t, "resuming although the recipe changed (--force-resume)%s%s",
             names && *names ? ": " : "", names ? names : "");
        free(names);
    }
    if (ld.world_size != t->world)
        note(t, "checkpoint %s was written by %d rank(s), resuming on %d: the data plan is the "
                "same global batches split over the new ranks (exact up to the order of float "
                "sums)",
             ld.dir, ld.world_size, t->world);
    t->epoch = pos[0];
    t->cursor = pos[1];
    t->gstep = pos[2];
    t->nonfinite_streak = cnt[0];
    t->skipped = cnt[1];
    t->bad_validations = cnt[2];
    t->best = best;
    t->last_saved = t->gstep;
    note(t, "stage '%s': resumed from %s (epoch %" PRId64 ", step %" PRId64 ")", t->st->name,
         ld.dir, t->epoch, t->gstep);
    avsr_ckpt_loaded_free(&ld);
    return 1;
}

/* ---- stage setup ------------------------------------------------------------ */

/* Loader settings shared by training and validation; `types` (bits 1 << t
 * of enum avsr_noise_type) selects the noise sources of data.noise. */
static void loader_base(const trainer *t, avsr_loader_config *lc, bool train, unsigned types)
{
    const avsr_recipe *r = t->r;
    avsr_loader_config_default(lc, train);
    lc->vocab = r->vocab;
    if (types & (1u << AVSR_NOISE_FILE)) {
        lc->noise_paths = (const char *const *)r->noise_files;
        lc->n_noise_paths = r->n_noise_files;
    }
    if (types & (1u << AVSR_NOISE_BABBLE)) {
        lc->babble_paths = (const char *const *)r->babble_files;
        lc->n_babble_paths = r->n_babble_files;
    }
    lc->white_noise = r->white_noise && (types & (1u << AVSR_NOISE_WHITE));
    lc->pink_noise = r->pink_noise && (types & (1u << AVSR_NOISE_PINK));
}

static int open_loaders(trainer *t, avsr_error *err)
{
    const avsr_recipe *r = t->r;
    const avsr_recipe_stage *st = t->st;
    avsr_loader_config lc;
    loader_base(t, &lc, true, st->noise_types);
    lc.paths = (const char *const *)r->train;
    lc.n_paths = r->n_train;
    lc.sampler = st->sampler;
    lc.sampler.seed = r->seed;
    /* every batch is split over the ranks: none may be left empty */
    int mc = r->ranks > t->world ? r->ranks : t->world;
    if (lc.sampler.min_clips < mc)
        lc.sampler.min_clips = mc;
    lc.augment = st->augment;
    lc.clean_audio = st->audio_in == AVSR_IN_AUDIO_CLEAN || st->teacher.kind != AVSR_SRC_NONE;
    if (!(t->train = avsr_loader_open(&lc, err)))
        return -1;
    if (r->n_valid > 0) {
        loader_base(t, &lc, false, 0);
        lc.paths = (const char *const *)r->valid;
        lc.n_paths = r->n_valid;
        lc.sampler.max_frames = st->sampler.max_frames;
        lc.augment = r->eval_augment;
        if (!(t->valid = avsr_loader_open(&lc, err)))
            return -1;
    }
    return 0;
}

/* Steps of an epoch (epoch 0's plan; later epochs differ by a few at most):
 * what a schedule over `epochs` needs for its total. */
static int steps_per_epoch(trainer *t, int64_t *out, avsr_error *err)
{
    if (avsr_loader_start_micro(t->train, 0, t->rank, t->world, t->micro, 0, err) < 0)
        return -1;
    *out = avsr_loader_steps(t->train);
    return 0;
}

static int set_trainable(trainer *t, avsr_error *err)
{
    const avsr_recipe_stage *st = t->st;
    avsr_params_set_requires_grad(t->p, "*", false);
    for (int i = 0; i < st->n_train; i++)
        avsr_params_set_requires_grad(t->p, st->train[i], true);
    for (int i = 0; i < st->n_freeze; i++)
        avsr_params_set_requires_grad(t->p, st->freeze[i], false);
    if (avsr_params_numel_trainable(t->p) == 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "stage '%s': no trainable parameter (train/freeze patterns)",
                              st->name);
    return 0;
}

/* The stage's teacher: the same model, loaded from its source, all frozen. */
static int open_teacher(trainer *t, avsr_error *err)
{
    const avsr_recipe_stage *st = t->st;
    if (st->teacher.kind == AVSR_SRC_NONE)
        return 0;
    char file[2 * PATH_MAX];
    if (source_file(t, &st->teacher, "teacher", file, sizeof file, err) < 0 ||
        build_model(t->r, &t->tp, &t->tm, err) < 0)
        return -1;
    if (avsr_model_load_mapped(t->tp, file, NULL, err) < 0) {
        avsr_error_prefix(err, "stage '%s': teacher: ", st->name);
        return -1;
    }
    avsr_params_set_requires_grad(t->tp, "*", false);
    note(t, "stage '%s': teacher from %s", st->name, file);
    return 0;
}

static void stage_free(trainer *t)
{
    avsr_model_free(t->tm);
    avsr_params_destroy(t->tp);
    t->tm = NULL;
    t->tp = NULL;
    if (t->metrics)
        fclose(t->metrics);
    t->metrics = NULL;
    avsr_loader_close(t->train);
    avsr_loader_close(t->valid);
    t->train = t->valid = NULL;
    avsr_grad_sync_destroy(t->gs);
    t->gs = NULL;
    avsr_optim_destroy(t->opt);
    t->opt = NULL;
}

/* ---- one step --------------------------------------------------------------- */

typedef struct step_out {
    double sums[S_COUNT]; /* global */
    double grad_norm, lr, seconds, comm_seconds;
    double all_comm_seconds; /* every collective of the step (BatchNorm sync included) */
    double flops;         /* this rank's matrix-product and convolution FLOPs */
    bool skipped;
} step_out;

/* The stage's loss terms on one batch: the teacher pass on the clean
 * audio when the stage has a teacher (its tokens replace the transcript
 * with dec_target: teacher), then the student with the weighted terms. */
static int forward_losses(trainer *t, const avsr_batch *b, avsr_model_input *in,
                          avsr_model_out *o)
{
    const avsr_recipe_stage *st = t->st;
    avsr_model_loss_w w = {st->losses.hybrid, st->losses.ctc, st->losses.dec_ce,
                           st->losses.mel_l1, st->losses.enc_l1};
    avsr_model_teacher_out tout, *teacher = NULL;
    if (t->tm) {
        avsr_model_input clean = *in;
        int64_t sa[2] = {b->B, b->T * 640};
        clean.video = NULL;
        clean.audio = avsr_tensor_wrap(t->ctx, AVSR_F32, 2, sa, b->clean ? b->clean : b->audio);
        bool tokens = st->dec_target == AVSR_DEC_TARGET_TEACHER;
        if (!clean.audio || avsr_model_teach(t->ctx, t->tm, &clean, tokens, &tout) < 0)
            return -1;
        teacher = &tout;
        if (tokens) {
            int64_t n = b->B * tout.max_tokens;
            int64_t *tg = avsr_ctx_alloc(t->ctx, sizeof(int64_t) * (size_t)n);
            if (!tg)
                return -1;
            for (int64_t i = 0; i < n; i++)
                tg[i] = tout.tokens[i] >= 0 ? tout.tokens[i] : 0;
            in->targets = tg;
            in->target_lengths = tout.token_lengths;
            in->max_target = tout.max_tokens;
            in->pad_target = 0;
        }
    }
    return avsr_model_forward_losses(t->ctx, t->m, in, &w, teacher, o);
}

static int train_step(trainer *t, step_out *so, avsr_error *err)
{
    double t0 = now(), f0 = avsr_ctx_flops(t->ctx), c0 = avsr_comm_seconds(t->c);
    double s[S_COUNT + 1] = {0};
    int rc = 0;
    avsr_params_zero_grad(t->p);
    avsr_ctx_set_training(t->ctx, true);
    avsr_ctx_set_grad(t->ctx, true);
    for (int k = 0; k < t->micro && rc == 0; k++) {
        avsr_batch *b = NULL;
        int got = avsr_loader_next(t->train, &b, err);
        if (got <= 0) {
            if (got == 0)
                avsr_error_set(err, AVSR_ERR_INVALID, "loader: epoch ended early (step %" PRId64 ")",
                               t->cursor);
            rc = -1;
            break;
        }
        avsr_model_input in;
        avsr_model_out o;
        float seed = (float)b->B; /* backward of the sum over the share */
        avsr_ctx_set_batch_id(t->ctx, (uint64_t)b->index);
        if (avsr_ctx_set_batch_keys(t->ctx, b->seed, b->epoch, (int)b->B, b->sample_ids) < 0 ||
            make_input(t, b, false, &in) < 0 || forward_losses(t, b, &in, &o) < 0 ||
            avsr_backward(t->ctx, o.loss.total, &seed) < 0) {
            rc = avsr_ctx_take_error(t->ctx, err);
            avsr_error_prefix(err, "step %" PRId64 ": ", t->gstep);
        } else {
            double B = (double)b->B;
            s[S_UTTS] += B;
            s[S_LOSS] += (double)avsr_f32(o.loss.total)[0] * B;
            s[S_CTC] += o.loss.ctc ? (double)avsr_f32(o.loss.ctc)[0] * B : 0.0;
            s[S_ATT] += o.loss.att ? (double)avsr_f32(o.loss.att)[0] * B : 0.0;
            s[S_MEL] += o.loss.mel_l1 ? (double)avsr_f32(o.loss.mel_l1)[0] * B : 0.0;
            s[S_ENC] += o.loss.enc_l1 ? (double)avsr_f32(o.loss.enc_l1)[0] * B : 0.0;
            s[S_ACC_HIT] += o.loss.att_acc * (double)o.loss.att_count;
            s[S_ACC_N] += (double)o.loss.att_count;
            s[S_FRAMES] += (double)b->frames;
            s[S_PADDED] += (double)(b->B * b->T);
        }
        avsr_ctx_reset(t->ctx);
        avsr_batch_release(b);
    }
    /* a rank that failed joins the sum with a flag so that no rank hangs */
    s[S_COUNT] = rc < 0 ? 1.0 : 0.0;
    avsr_error cerr = {0};
    if (avsr_comm_allreduce_sum_f64(t->c, s, S_COUNT + 1, &cerr) < 0) {
        *err = cerr;
        return -1;
    }
    if (rc < 0)
        return -1;
    if (s[S_COUNT] > 0)
        return avsr_error_set(err, AVSR_ERR_INVALID, "step %" PRId64 ": failed on another rank",
                              t->gstep);
    memcpy(so->sums, s, sizeof so->sums);
    so->skipped = false;
    so->grad_norm = NAN;
    so->lr = avsr_lrsched_lr(&t->sched, t->gstep, t->epoch);
    so->comm_seconds = 0;
    if (!isfinite(s[S_LOSS]) || s[S_UTTS] <= 0) {
        so->skipped = true;
    } else {
        avsr_grad_sync_stats gst = {0};
        if (avsr_grad_sync_run(t->gs, (float)(1.0 / s[S_UTTS]), &gst, err) < 0)
            return -1;
        so->comm_seconds = gst.comm_seconds;
        double norm = 0;
        if (avsr_optim_clip_grad_norm(t->p, (float)t->st->clip_grad_norm, &norm) != 0)
            so->skipped = true;
        so->grad_norm = norm;
    }
    if (so->skipped) {
        t->skipped++;
        t->nonfinite_streak++;
        note(t, "stage '%s' step %" PRId64 ": non-finite %s, step skipped (%" PRId64 " in a row)",
             t->st->name, t->gstep, isfinite(s[S_LOSS]) ? "gradient" : "loss",
             t->nonfinite_streak);
    } else {
        t->nonfinite_streak = 0;
        if (avsr_optim_step(t->opt, t->p, (float)so->lr, err) < 0)
            return -1;
    }
    so->seconds = now() - t0;
    so->all_comm_seconds = avsr_comm_seconds(t->c) - c0;
    so->flops = avsr_ctx_flops(t->ctx) - f0;
    return 0;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static void report_step(trainer *t, const step_out *so, int64_t steps_in_epoch)
{
    if (t->rank != 0)
        return;
    const double *s = so->sums;
    double n = s[S_UTTS] > 0 ? s[S_UTTS] : 1;
    double fps = so->seconds > 0 ? s[S_FRAMES] / so->seconds : 0;
    json_t *o = metrics_record(t, "step");
    jset_num(o, "loss", s[S_LOSS] / n);
    jset_num(o, "ctc", s[S_CTC] / n);
    jset_num(o, "att", s[S_ATT] / n);
    if (t->st->losses.mel_l1 > 0)
        jset_num(o, "mel_l1", s[S_MEL] / n);
    if (t->st->losses.enc_l1 > 0)
        jset_num(o, "enc_l1", s[S_ENC] / n);
    jset_num(o, "acc", s[S_ACC_N] > 0 ? s[S_ACC_HIT] / s[S_ACC_N] : NAN);
    jset_num(o, "lr", so->lr);
    jset_num(o, "grad_norm", so->grad_norm);
    json_object_set_new(o, "skipped", json_integer(t->skipped));
    json_object_set_new(o, "utts", json_integer((json_int_t)s[S_UTTS]));
    json_object_set_new(o, "frames", json_integer((json_int_t)s[S_FRAMES]));
    json_object_set_new(o, "padded_frames", json_integer((json_int_t)s[S_PADDED]));
    jset_num(o, "frames_per_s", fps);
    jset_num(o, "step_s", so->seconds);
    jset_num(o, "allreduce_s", so->comm_seconds);
    jset_num(o, "comm_s", so->all_comm_seconds);
    /* this rank's GEMM and convolution work; ranks do about the same */
    jset_num(o, "gflops_per_s", so->seconds > 0 ? so->flops * t->world / so->seconds * 1e-9 : 0);
    jset_num(o, "peak_rss_mb", peak_rss_mb());
    jset_num(o, "arena_peak_mb", (double)avsr_ctx_arena_peak(t->ctx) / 1048576.0);
    metrics_write(t, o);

    t->steps_timed++;
    t->secs_timed += so->seconds;
    int64_t left = t->total_steps - t->gstep;
    double eta = t->steps_timed ? t->secs_timed / (double)t->steps_timed * (double)left : 0;
    int every = t->r->log_every_steps > 0 ? t->r->log_every_steps : 1;
    if (!t->tty && t->gstep % every != 0 && left > 0)
        return;
    char line[256];
    snprintf(line, sizeof line,
             "%s  epoch %" PRId64 "  step %" PRId64 "/%" PRId64 " (%" PRId64 "/%" PRId64
             ")  loss %.4f  lr %.2e  %.0f frames/s  ETA %dm%02ds",
             t->st->name, t->epoch, t->gstep, t->total_steps, t->cursor, steps_in_epoch,
             s[S_LOSS] / n, so->lr, fps, (int)(eta / 60), (int)fmod(eta, 60));
    if (t->tty)
        fprintf(t->log, "\r\033[K%s", line);
    else
        fprintf(t->log, "%s\n", line);
    fflush(t->log);
}

/* Validation at the current position: metrics.jsonl, best tracking and
 * early stopping (returns 1 when the stage should stop early). */
static int run_validation(trainer *t, valid_result *v, avsr_error *err)
{
    if (validate(t, v, err) < 0)
        return -1;
    if (!v->have)
        return 0;
    json_t *o = metrics_record(t, "valid");
    jset_num(o, "valid_loss", v->loss);
    jset_num(o, "valid_wer", v->wer);
    jset_num(o, "valid_cer", v->cer);
    jset_num(o, "valid_acc", v->acc);
    json_object_set_new(o, "utts", json_integer(v->utts));
    if (t->rank == 0)
        metrics_write(t, o);
    else
        json_decref(o);
    note(t, "stage '%s' epoch %" PRId64 " step %" PRId64 ": valid loss %.4f  WER %.2f%%  CER %.2f%%",
         t->st->name, t->epoch, t->gstep, v->loss, 100 * v->wer, 100 * v->cer);
    double m = valid_metric(t, v);
    if (!isfinite(m))
        return 0;
    bool better = !isfinite(t->best) ||
                  (t->r->valid_higher_better ? m > t->best : m < t->best);
    if (better) {
        t->best = m;
        t->bad_validations = 0;
    } else {
        t->bad_validations++;
    }
    const avsr_recipe_stage *st = t->st;
    if (st->early_stop_metric && t->bad_validations >= st->early_stop_patience) {
        note(t, "stage '%s': early stop: %s did not improve for %" PRId64 " validations (best %.4f)",
             st->name, st->early_stop_metric, t->bad_validations, t->best);
        return 1;
    }
    return 0;
}

/* Control flags agreed by every rank at a step boundary.
 *
 * Fault injection for the resume tests: with AVSR_TEST_KILL_AT_STEP=N in the
 * environment, every rank sends itself SIGKILL at the boundary after step N
 * (after that step's checkpoint, if one was due), which is a kill -9 of
 * every rank at a known point. */
static int control(trainer *t, unsigned *flags, avsr_error *err)
{
    const char *kill_at = getenv("AVSR_TEST_KILL_AT_STEP");
    if (kill_at && *kill_at && t->gstep == strtoll(kill_at, NULL, 10))
        raise(SIGKILL);
    unsigned local = avsr_signals_ctl_flags(avsr_signals_take());
    return avsr_coord_agree_flags(t->c, local, flags, err);
}

static int write_finished(trainer *t, avsr_error *err)
{
    if (t->rank != 0)
        return 0;
    char path[PATH_MAX + 32], text[256];
    snprintf(path, sizeof path, "%s/FINISHED", t->dir);
    snprintf(text, sizeof text, "{\"stage\": \"%s\", \"step\": %" PRId64 ", \"epoch\": %" PRId64
                                "}\n",
             t->st->name, t->gstep, t->epoch);
    return write_text(path, text, err);
}

/* Train one stage to its end. Returns 0, an exit status (75, 130) after a
 * signal, or -1. */
static int run_stage(trainer *t, avsr_error *err)
{
    const avsr_recipe *r = t->r;
    const avsr_recipe_stage *st = t->st;
    avsr_recipe_stage_dir(r, t->si, t->dir, sizeof t->dir);
    char fin[PATH_MAX + 16];
    snprintf(fin, sizeof fin, "%s/FINISHED", t->dir);
    int done = t->rank == 0 && file_exists(fin);
    avsr_comm_bcast(t->c, &done, sizeof done, 0, err);
    if (done) {
        note(t, "stage '%s' already finished (%s); skipping", st->name, fin);
        return 0;
    }
    int rc = t->rank == 0 ? avsr_mkdir_p(t->dir, err) : 0;
    if (share_status(t, rc, err) < 0)
        return -1;
    if (t->rank == 0) {
        avsr_ckpt_notes notes = {0};
        rc = avsr_ckpt_clean(t->dir, &notes, err);
        for (int i = 0; i < notes.n; i++)
            note(t, "checkpoint: %s", notes.msg[i]);
        avsr_ckpt_notes_free(&notes);
    }
    if (share_status(t, rc, err) < 0)
        return -1;

    t->epoch = t->cursor = t->gstep = 0;
    t->nonfinite_streak = t->skipped = t->bad_validations = 0;
    t->best = NAN;
    t->last_saved = -1;
    t->steps_timed = 0;
    t->secs_timed = 0;
    t->micro = st->accum > 0 ? st->accum : 1;
    if (set_trainable(t, err) < 0 || !(t->opt = avsr_optim_create(&st->optim, err)))
        return -1;
    int restored = restore(t, err);
    if (restored < 0)
        return -1;
    if (!restored) {
        if (st->init.kind == AVSR_SRC_NONE) {
            if (t->si > 0 && avsr_params_init(t->p, r->seed, err) < 0)
                return -1;
        } else {
            char file[2 * PATH_MAX];
            if (source_file(t, &st->init, "init", file, sizeof file, err) < 0)
                return -1;
            if (avsr_model_load_mapped(t->p, file, NULL, err) < 0) {
                avsr_error_prefix(err, "stage '%s': init: ", st->name);
                return -1;
            }
            note(t, "stage '%s': initialised from %s", st->name, file);
        }
    }
    /* every rank starts from rank 0's bits (and checks the layouts agree) */
    if (avsr_dist_bcast_params(t->c, t->p, 0, err) < 0 || write_recipe(t, err) < 0)
        return -1;
    if (open_teacher(t, err) < 0 || open_loaders(t, err) < 0 || !(t->gs = avsr_grad_sync_create(t->p, t->c, NULL, err)))
        return -1;
    int64_t spe;
    if (steps_per_epoch(t, &spe, err) < 0)
        return -1;
    if (spe <= 0)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "stage '%s': an epoch has no step (%d micro-batches per step)",
                              st->name, t->micro);
    t->total_steps = st->steps > 0 ? st->steps : st->epochs * spe;
    t->sched = st->sched;
    if (st->warmup_epochs > 0)
        t->sched.warmup_steps = (int64_t)llround(st->warmup_epochs * (double)spe);
    if (t->sched.total_steps <= 0)
        t->sched.total_steps = t->total_steps;
    if (avsr_lrsched_check(&t->sched, err) < 0) {
        avsr_error_prefix(err, "stage '%s': schedule: ", st->name);
        return -1;
    }
    if (metrics_open(t, restored == 1, err) < 0)
        return -1;
    if (!restored)
        note(t, "stage '%s': %" PRId64 " trainable of %" PRId64 " parameters, %" PRId64
                " steps (%" PRId64 " per epoch), %d rank(s) x %d thread(s), %d micro-batch(es) "
                "per step",
             st->name, avsr_params_numel_trainable(t->p), avsr_params_numel(t->p), t->total_steps,
             spe, t->world, t->threads, t->micro);

    int status = 0;
    bool stop = false;
    valid_result v = {0};
    while (!stop && t->gstep < t->total_steps && (st->steps > 0 || t->epoch < st->epochs)) {
        if (avsr_loader_start_micro(t->train, (uint64_t)t->epoch, t->rank, t->world, t->micro,
                                    t->cursor, err) < 0)
            return -1;
        if (avsr_coord_check_hash(t->c, avsr_loader_plan_hash(t->train), "epoch plan", err) < 0)
            return -1;
        int64_t steps = avsr_loader_steps(t->train);
        while (t->cursor < steps && t->gstep < t->total_steps) {
            unsigned flags = 0;
            if (control(t, &flags, err) < 0)
                return -1;
            if (flags & AVSR_CTL_STOP) {
                if (save(t, NULL, err) < 0)
                    return -1;
                status = (flags & AVSR_CTL_PREEMPTED) ? AVSR_EXIT_REQUEUE : EXIT_INTERRUPTED;
                note(t, "stage '%s': stopped by a signal at step %" PRId64
                        " after a checkpoint; exit %d%s",
                     st->name, t->gstep, status,
                     status == AVSR_EXIT_REQUEUE ? " (requeue me; re-running resumes)" : "");
                return status;
            }
            step_out so;
            if (train_step(t, &so, err) < 0)
                return -1;
            t->cursor++;
            t->gstep++;
            report_step(t, &so, steps);
            if (t->nonfinite_streak >= r->max_nonfinite)
                return avsr_error_set(err, AVSR_ERR_INVALID,
                                      "stage '%s': %" PRId64 " non-finite steps in a row (limit "
                                      "run.max_nonfinite = %d); stopping at step %" PRId64,
                                      st->name, t->nonfinite_streak, r->max_nonfinite, t->gstep);
            if (r->ckpt_every_steps > 0 && t->gstep % r->ckpt_every_steps == 0 &&
                save(t, NULL, err) < 0)
                return -1;
            if (st->valid_every_steps > 0 && t->gstep % st->valid_every_steps == 0) {
                int es = run_validation(t, &v, err);
                if (es < 0)
                    return -1;
                if (es == 1) {
                    stop = true;
                    break;
                }
            }
        }
        if (t->cursor >= steps) { /* epoch end */
            t->epoch++;
            t->cursor = 0;
            int es = 0;
            if (!(st->valid_every_steps > 0 && t->gstep % st->valid_every_steps == 0))
                es = run_validation(t, &v, err);
            if (es < 0)
                return -1;
            stop = stop || es == 1;
            if (t->rank == 0) {
                json_t *o = metrics_record(t, "epoch");
                json_object_set_new(o, "skipped", json_integer(t->skipped));
                jset_num(o, "elapsed_s", now() - t->t0);
                metrics_write(t, o);
            }
            if (save(t, &v, err) < 0)
                return -1;
        }
    }
    if (t->last_saved != t->gstep) {
        if (!v.have && run_validation(t, &v, err) < 0)
            return -1;
        if (save(t, &v, err) < 0)
            return -1;
    }
    if (t->rank == 0) {
        json_t *o = metrics_record(t, "end");
        json_object_set_new(o, "skipped", json_integer(t->skipped));
        jset_num(o, "best", t->best);
        jset_num(o, "elapsed_s", now() - t->t0);
        metrics_write(t, o);
    }
    note(t, "stage '%s' finished: %" PRId64 " steps, %" PRId64 " skipped%s", st->name, t->gstep,
         t->skipped, isfinite(t->best) ? "" : "");
    if (isfinite(t->best))
        note(t, "stage '%s': best %s %.4f", st->name, r->valid_metric, t->best);
    rc = write_finished(t, err);
    return share_status(t, rc, err) < 0 ? -1 : status;
}

int avsr_train(const avsr_recipe *r, avsr_comm *c, const avsr_train_opts *o, avsr_error *err)
{
    trainer t;
    memset(&t, 0, sizeof t);
    t.r = r;
    t.c = c;
    t.rank = avsr_comm_rank(c);
    t.world = avsr_comm_size(c);
    t.log = o && o->log ? o->log : stderr;
    t.tty = isatty(fileno(t.log));
    t.force_resume = o && o->force_resume;
    t.t0 = now();
    int first = 0, last = r->n_stages - 1;
    if (o && o->stage) {
        first = last = avsr_recipe_stage_index(r, o->stage);
        if (first < 0) {
            char names[512] = "";
            for (int i = 0; i < r->n_stages; i++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                         i ? ", " : "", r->stages[i].name);
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "--stage %s: no such stage in %s (stages: %s)", o->stage,
                                  r->path, names);
        }
    }
    avsr_threads_choice tc;
    if (avsr_threads_resolve(r->threads, avsr_comm_local_size(c), &tc, err) < 0)
        return -1;
    if (tc.warning[0])
        note(&t, "threads: %s", tc.warning);
    t.threads = tc.threads;
    avsr_ctx_opts co = {.threads = tc.threads};
    int rc = -1;
    if (avsr_signals_install(err) < 0 || !(t.ctx = avsr_ctx_create(&co, err)))
        goto out;
    avsr_dist_install_bn_sync(t.ctx, c);
    if (!r->vocab) {
        avsr_error_set(err, AVSR_ERR_UNSUPPORTED,
                       "%s: data.tokenizer: training with a sentencepiece tokenizer is not "
                       "supported by this build's loader (use type: char)",
                       r->path);
        goto out;
    }
    if (!(t.vocab_json = avsr_vocab_to_json(r->vocab, err)))
        goto out;
    rc = t.rank == 0 ? avsr_mkdir_p(r->exp_dir, err) : 0;
    if (share_status(&t, rc, err) < 0) {
        rc = -1;
        goto out;
    }
    read_old_recipe(&t);
    if (build_model(r, &t.p, &t.m, err) < 0) {
        rc = -1;
        goto out;
    }
    note(&t, "%s: %d stage(s), %d rank(s), %d thread(s) per rank (%s), exp %s", r->path,
         last - first + 1, t.world, t.threads, tc.source, r->exp_dir);
    rc = 0;
    for (int i = first; i <= last && rc == 0; i++) {
        t.si = i;
        t.st = &r->stages[i];
        rc = run_stage(&t, err);
        stage_free(&t);
    }
out:
    stage_free(&t);
    avsr_model_free(t.m);
    avsr_params_destroy(t.p);
    avsr_ctx_destroy(t.ctx);
    free(t.vocab_json);
    free(t.old_recipe);
    json_decref(t.old_recipe_json);
    avsr_signals_restore();
    return rc;
}
