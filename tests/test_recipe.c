/* test_recipe: the recipe layer (train/recipe.h): the shipped recipes load
 * with every default filled in, the resolved form (flattened keys, hash,
 * YAML, model JSON) is stable and complete, multi-stage recipes resolve
 * init / teacher / overrides, and bad recipes give their exact messages.
 *
 * Runs in a temporary directory holding the files the recipes name (empty
 * files: the recipe layer checks that they exist; their contents are the
 * loader's business). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/loader.h"
#include "datasets/spm.h"
#include "models/builder.h"
#include "tap.h"
#include "testutil.h"
#include "train/checkpoint.h"
#include "train/recipe.h"

static char tmpdir[PATH_MAX];

static void touch(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(dir, 0755);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "w");
    if (!f)
        tap_bail("cannot create %s", path);
    fclose(f);
}

static void rm_rf(const char *dir)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", dir);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        tap_bail("cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (!s || fread(s, 1, (size_t)n, f) != (size_t)n)
        tap_bail("cannot read %s", path);
    s[n] = 0;
    fclose(f);
    return s;
}

/* text with the first `from` replaced by `to` */
static char *replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    if (!at)
        tap_bail("'%s' not in the recipe text", from);
    size_t n = strlen(text) - strlen(from) + strlen(to);
    char *s = malloc(n + 1);
    if (!s)
        tap_bail("out of memory");
    size_t k = (size_t)(at - text);
    memcpy(s, text, k);
    strcpy(s + k, to);
    strcat(s, at + strlen(from));
    return s;
}

static const char *kv(const avsr_recipe *r, const char *key)
{
    for (int i = 0; i < r->n_resolved; i++)
        if (!strcmp(r->resolved[i].key, key))
            return r->resolved[i].value;
    return NULL;
}

static bool kv_is(const avsr_recipe *r, const char *key, const char *want)
{
    const char *v = kv(r, key);
    bool ok = v && !strcmp(v, want);
    if (!ok)
        tap_diag("%s = %s, want %s", key, v ? v : "(absent)", want);
    return ok;
}

/* parameters of the model built from the recipe's own section and from
 * its resolved JSON */
static void check_model_json(const avsr_recipe *r, const char *what)
{
    avsr_error err = {0};
    avsr_params *p1 = avsr_params_create(), *p2 = avsr_params_create();
    avsr_model *m1 = NULL, *m2 = NULL;
    avsr_yaml *j = avsr_yaml_load_string("model.json", r->model_json, strlen(r->model_json), &err);
    bool ok = j && avsr_model_build(r->yaml, r->model, r->vocab_size, &m1, p1, &err) == 0 &&
              avsr_model_build(j, avsr_yaml_root(j), r->vocab_size, &m2, p2, &err) == 0;
    bool same = ok && avsr_params_count(p1) == avsr_params_count(p2) &&
                avsr_params_numel(p1) == avsr_params_numel(p2);
    for (int i = 0; same && i < avsr_params_count(p1); i++)
        same = !strcmp(avsr_params_at(p1, i)->name, avsr_params_at(p2, i)->name);
    tap_ok(same, "%s: model_json is valid YAML and builds the same model (%lld parameters) %s",
           what, ok ? (long long)avsr_params_numel(p2) : -1LL, err.msg);
    avsr_model_free(m1);
    avsr_model_free(m2);
    avsr_params_destroy(p1);
    avsr_params_destroy(p2);
    avsr_yaml_free(j);
}

/* the resolved YAML is itself a recipe with the same resolved form */
static void check_round_trip(const avsr_recipe *r, const char *what)
{
    avsr_error err = {0};
    char *text = avsr_recipe_resolved_yaml(r);
    avsr_recipe *back = text ? avsr_recipe_load_string("resolved.yaml", text, &err) : NULL;
    char *diff = NULL;
    int nd = back ? avsr_ckpt_recipe_diff(r->resolved, r->n_resolved, back->resolved,
                                          back->n_resolved, &diff)
                  : -1;
    tap_ok(back && nd == 0 && !strcmp(back->hash, r->hash),
           "%s: the resolved YAML loads as a recipe with the same %d keys and hash %s %s%s", what,
           r->n_resolved, r->hash, err.msg, diff ? diff : "");
    free(diff);
    free(text);
    avsr_recipe_free(back);
}

static void test_demo(const char *demo_path)
{
    avsr_error err = {0};
    avsr_recipe *r = avsr_recipe_load(demo_path, &err);
    if (!tap_ok(r != NULL, "recipes/demo-joint.yaml loads %s", err.msg))
        return;
    tap_ok(!strcmp(r->name, "demo-joint") && !strcmp(r->exp_dir, "exp/demo-joint") && r->seed == 1234 &&
               !r->cuda && r->ranks == 2 && !strcmp(r->threads, "auto") &&
               r->ckpt_every_steps == 50 && r->keep_last == 5 && r->keep_best == 5 &&
               r->max_nonfinite == 10 && r->log_every_steps == 10 && r->watchdog_s == 600,
           "demo: run section");
    tap_ok(r->n_train == 1 && !strcmp(r->train[0], "data/demo/train.h5") && r->n_valid == 1 &&
               r->n_test == 1 && r->n_babble_files == 1 &&
               !strcmp(r->babble_files[0], "data/demo/noise-babble.h5") && r->n_noise_files == 0 &&
               r->white_noise && !r->pink_noise,
           "demo: data files and noise sources");
    tap_ok(r->tokenizer == AVSR_TOKENIZER_CHAR && r->vocab && r->vocab_size == 41 &&
               !r->spm_model,
           "demo: char tokenizer, vocabulary 41");
    tap_ok(r->sampler.max_frames == 1600 && r->sampler.nbuckets == 50 && r->sampler.seed == 1234 &&
               !r->sampler.drop_last && r->sampler.ctc_filter && r->sampler.max_len == 0,
           "demo: data.batching -> sampler (seed = run.seed)");
    tap_ok(r->video_roi == 48 && r->eval_augment.crop_h == 44 && !r->eval_augment.random_crop &&
               fabsf(r->eval_augment.video_mean - 0.421f) < 1e-7f &&
               fabsf(r->eval_augment.video_std - 0.165f) < 1e-7f && r->eval_augment.audio_norm &&
               r->eval_augment.vmask_window == 0 && r->eval_augment.amask_window == 0 &&
               r->eval_augment.noise.n_snr == 1 && isinf(r->eval_augment.noise.snr_list[0]),
           "demo: evaluation chain (centre crop 44, no masks, clean)");
    const avsr_augment_config *a = &r->augment;
    tap_ok(a->random_crop && a->flip_prob == 0.5 && a->vmask_window == 0 &&
               a->amask_window == 0 && a->noise.prob == 0.8 && a->noise.n_snr == 0 &&
               a->noise.snr_lo == -10 && a->noise.snr_hi == 15 && a->modality_prob == 0 &&
               a->crop_h == 44,
           "demo: augment -> training chain (SNR uniform in [-10, 15], no time masks)");
    tap_ok(r->n_stages == 1, "demo: one stage");
    const avsr_recipe_stage *s = &r->stages[0];
    tap_ok(!strcmp(s->name, "train") && s->init.kind == AVSR_SRC_NONE && s->n_train == 1 &&
               !strcmp(s->train[0], "*") && s->n_freeze == 0 &&
               s->audio_in == AVSR_IN_AUDIO_NOISY && s->video_in == AVSR_IN_VIDEO_LIPS &&
               s->teacher.kind == AVSR_SRC_NONE && s->dec_target == AVSR_DEC_TARGET_TRANSCRIPT &&
               s->losses.hybrid == 1 && s->losses.ctc == 0 && s->losses.mel_l1 == 0 &&
               s->noise_types == ((1u << AVSR_NOISE_BABBLE) | (1u << AVSR_NOISE_WHITE)),
           "demo: stage inputs, losses, noise types");
    tap_ok(s->optim.type == AVSR_OPTIM_ADAMW && s->optim.lr == 2e-3 && s->optim.beta1 == 0.9 &&
               s->optim.beta2 == 0.98 && s->optim.weight_decay == 0.03 && s->optim.eps == 1e-8 &&
               s->sched.type == AVSR_LRSCHED_COSINE && s->sched.lr == 2e-3 &&
               s->sched.warmup_steps == 100 && s->sched.total_steps == 0 &&
               s->warmup_epochs == 0 && s->clip_grad_norm == 5 && s->epochs == 4 &&
               s->steps == 0 && s->accum == 1 && s->valid_every_steps == 0 &&
               !s->early_stop_metric,
           "demo: optimizer, schedule (total_steps left to the trainer), length");
    tap_ok(s->sampler.max_frames == 1600 && s->sampler.seed == 1234 &&
               s->augment.noise.prob == 0.8 && s->augment.noise.snr_lo == -10,
           "demo: the stage inherits batching and augment");
    tap_ok(r->average_last == 5 && r->average_best == 0 && !strcmp(r->valid_metric, "valid_wer") &&
               !r->valid_higher_better,
           "demo: average, validation metric");
    tap_ok(r->search == AVSR_SEARCH_CTC_BEAM && r->ctc_beam.beam == 4,
           "demo: eval.search -> CTC prefix beam, beam 4");
    tap_ok(r->n_sweep_noise == 2 && r->sweep_noise[0] == AVSR_NOISE_BABBLE &&
               r->sweep_noise[1] == AVSR_NOISE_WHITE && r->n_sweep_snr == 6 &&
               isinf(r->sweep_snr[0]) && r->sweep_snr[1] == 10 && r->sweep_snr[5] == -10 &&
               r->n_sweep_modality == 3 && r->sweep_modality[0] == AVSR_MODALITY_AUDIO &&
               r->sweep_modality[2] == AVSR_MODALITY_AUDIOVISUAL,
           "demo: eval.sweep");

    /* resolved form */
    tap_ok(kv_is(r, "name", "demo-joint") && kv_is(r, "run.seed", "1234") &&
               kv_is(r, "run.max_nonfinite", "10") &&
               kv_is(r, "data.train", "[\"data/demo/train.h5\"]") &&
               kv_is(r, "data.noise.babble.from", "[\"data/demo/noise-babble.h5\"]") &&
               kv_is(r, "model.encoder.layers", "4") && kv_is(r, "model.video.act", "swish") &&
               kv_is(r, "model.encoder.pos_dropout", "0.1") &&
               kv_is(r, "stages.0.optimizer.lr", "0.002") &&
               kv_is(r, "stages.0.optimizer.eps", "1e-08") &&
               kv_is(r, "stages.0.train", "[\"*\"]") && kv_is(r, "stages.0.init", "none") &&
               kv_is(r, "stages.0.batching.max_frames", "1600") &&
               kv_is(r, "augment.noise.snr_db.max", "15") &&
               kv_is(r, "eval.sweep.snr_db", "[\"clean\", 10, 5, 0, -5, -10]") &&
               kv_is(r, "average.last", "5"),
           "demo: flattened keys with given and default values");
    bool order = r->n_resolved > 100 && !strcmp(r->resolved[0].key, "name") &&
                 !strncmp(r->resolved[1].key, "run.", 4) &&
                 !strncmp(r->resolved[r->n_resolved - 1].key, "eval.", 5);
    for (int i = 0; i + 1 < r->n_resolved; i++)
        for (int j = i + 1; j < r->n_resolved; j++)
            order &= strcmp(r->resolved[i].key, r->resolved[j].key) != 0;
    tap_ok(order, "demo: %d unique keys, in section order (name first, eval last)",
           r->n_resolved);
    bool hex = strlen(r->hash) == 16;
    for (int i = 0; i < 16; i++)
        hex &= strchr("0123456789abcdef", r->hash[i]) != NULL;
    tap_ok(hex, "demo: hash %s is 16 hex digits", r->hash);
    char *y = avsr_recipe_resolved_yaml(r);
    tap_ok(y && strstr(y, r->hash) && strstr(y, "\n  max_nonfinite: 10  # default\n") &&
               strstr(y, "\nstages:\n  - name: train\n    init: none  # default\n") &&
               strstr(y, "\n    train: [\"*\"]\n"),
           "demo: resolved YAML names the hash, marks defaults, writes stages as a list");
    free(y);
    check_model_json(r, "demo");
    check_round_trip(r, "demo");

    /* stage helpers */
    char dir[64];
    tap_ok(avsr_recipe_stage_index(r, "train") == 0 && avsr_recipe_stage_index(r, "x") == -1 &&
               avsr_recipe_stage_dir(r, 0, dir, sizeof dir) == 0 &&
               !strcmp(dir, "exp/demo-joint/train") && avsr_recipe_stage_dir(r, 0, dir, 8) == -1 &&
               avsr_recipe_stage_dir(r, 1, dir, sizeof dir) == -1,
           "stage_index, stage_dir (too small a buffer and a bad index fail)");

    /* the same text: same hash (the path is not part of it); one changed
     * value: another hash, and the diff names the key */
    char *text = read_text(demo_path);
    avsr_recipe *same = avsr_recipe_load_string("copy.yaml", text, &err);
    avsr_recipe *again = avsr_recipe_load(demo_path, &err);
    tap_ok(same && again && !strcmp(same->hash, r->hash) && !strcmp(again->hash, r->hash),
           "two loads of the same recipe give the same hash %s", r->hash);
    char *t2 = replace(text, "lr: 2.0e-3", "lr: 3.0e-3");
    avsr_recipe *changed = avsr_recipe_load_string("demo.yaml", t2, &err);
    char *names = NULL;
    int nd = changed ? avsr_ckpt_recipe_diff(r->resolved, r->n_resolved, changed->resolved,
                                             changed->n_resolved, &names)
                     : -1;
    tap_ok(changed && strcmp(changed->hash, r->hash) != 0 && nd == 1 && names &&
               !strcmp(names, "stages.0.optimizer.lr: '0.002' -> '0.003'") &&
               changed->stages[0].sched.lr == 3e-3,
           "a changed lr changes the hash; the diff says %s", names ? names : "(null)");
    free(names);
    /* a default written out explicitly changes nothing */
    char *t3 = replace(text, "  seed: 1234\n", "  seed: 1234\n  watchdog_s: 600\n");
    avsr_recipe *expl = avsr_recipe_load_string("demo.yaml", t3, &err);
    tap_ok(expl && !strcmp(expl->hash, r->hash),
           "writing a default out explicitly keeps the hash");
    avsr_recipe_free(expl);
    avsr_recipe_free(changed);
    avsr_recipe_free(same);
    avsr_recipe_free(again);
    free(t2);
    free(t3);
    free(text);
    avsr_recipe_free(r);
}

static void sentence(unsigned k, char *buf, size_t n)
{
    static const char *w1[] = {"bin", "lay", "place", "set"};
    static const char *w2[] = {"blue", "green", "red", "white"};
    static const char *w3[] = {"at", "by", "in", "with"};
    static const char *w4[] = {"zero", "one", "two", "three", "four", "five", "six", "seven"};
    snprintf(buf, n, "%s %s %s %c %s now", w1[k % 4], w2[(k / 4) % 4], w3[(k / 16) % 4],
             'a' + (int)(k % 26), w4[(k / 7) % 8]);
}

static void test_auto_avsr(const char *path)
{
    avsr_error err = {0};
    if (!avsr_spm_available()) {
        avsr_recipe *r = avsr_recipe_load(path, &err);
        tap_ok(!r && strstr(err.msg, ": data.tokenizer.type: sentencepiece: this build has no "
                                     "SentencePiece support"),
               "auto-avsr-lrs3: without SentencePiece the tokenizer is the error: %s", err.msg);
        avsr_recipe_free(r);
        return;
    }
    /* a small unigram model stands in for unigram5000.model */
    FILE *f = fopen("spm.txt", "w");
    if (!f)
        tap_bail("cannot write spm.txt");
    for (unsigned k = 0; k < 400; k++) {
        char s[128];
        sentence(k, s, sizeof s);
        fprintf(f, "%s\n", s);
    }
    fclose(f);
    if (avsr_spm_train("spm.txt", "data/lrs3/unigram5000", 40, "unigram", &err) < 0)
        tap_bail("training the stand-in SentencePiece model: %s", err.msg);
    avsr_recipe *r = avsr_recipe_load(path, &err);
    if (!tap_ok(r != NULL, "recipes/auto-avsr-lrs3.yaml loads %s", err.msg))
        return;
    tap_ok(r->tokenizer == AVSR_TOKENIZER_SENTENCEPIECE && !r->vocab &&
               !strcmp(r->spm_model, "data/lrs3/unigram5000.model") && r->vocab_size == 42,
           "auto-avsr: sentencepiece tokenizer, V = 40 pieces + blank + eos = %d",
           r->vocab_size);
    const avsr_recipe_stage *s = &r->stages[0];
    tap_ok(r->seed == 42 && r->cuda && r->ranks == 8 && r->keep_last == 10 && r->keep_best == 0 &&
               r->n_train == 2 && r->sampler.max_frames == 1800 && r->sampler.nbuckets == 400 &&
               r->augment.noise.prob == 0.857 && r->augment.noise.n_snr == 6 &&
               r->augment.noise.snr_list[5] == 20 && r->augment.flip_prob == 0 &&
               s->sched.type == AVSR_LRSCHED_COSINE && s->warmup_epochs == 5 &&
               s->sched.warmup_steps == 0 && s->epochs == 75 && r->average_last == 10 &&
               !strcmp(r->valid_metric, "valid_loss") && r->att_beam.beam == 40 &&
               r->att_beam.ctc_weight == 0.1 && r->n_sweep_noise == 1,
           "auto-avsr: run, data, augment, stage and eval values");
    check_model_json(r, "auto-avsr");
    check_round_trip(r, "auto-avsr");
    avsr_recipe_free(r);
}

/* data and model shared by the inline recipes; lines 1-13 */
#define HEAD                                                                   \
    "name: t\n"                                                                \
    "data:\n"                                                                  \
    "  train: [tr.h5]\n"                                                       \
    "  valid: [va.h5]\n"                                                       \
    "  noise:\n"                                                               \
    "    babble: {from: bab.h5}\n"                                             \
    "model:\n"                                                                 \
    "  video: {width: 4, depth: [1, 1, 1, 1]}\n"                               \
    "  audio: {width: 4, depth: [1, 1, 1, 1]}\n"                               \
    "  fusion: {hidden: 32}\n"                                                 \
    "  encoder: {layers: 1, dim: 32, heads: 2, ffn: 64, conv_kernel: 3}\n"     \
    "  decoder: {layers: 1, dim: 32, heads: 2, ffn: 64}\n"                     \
    "  ctc_weight: 0.3\n"

static void test_stages(void)
{
    static const char *text =
        HEAD
        "augment:\n"
        "  noise: {prob: 0.7}\n"
        "stages:\n"
        "  - name: asr\n"
        "    inputs: {audio: clean, video: none}\n"
        "    epochs: 2\n"
        "  - name: fusion\n"
        "    init: previous.best\n"
        "    train: [\"fusion.*\", \"encoder.frontend.*\"]\n"
        "    freeze: [\"encoder.frontend.frontend3D.*\"]\n"
        "    teacher: stage.asr.best\n"
        "    losses: {enc_l1: 2.0, dec_ce: 1.0}\n"
        "    dec_target: teacher\n"
        "    optimizer: {type: adam, lr: 5.0e-4}\n"
        "    schedule: {type: exp_per_epoch, factor: 0.631}\n"
        "    batching: {max_frames: 800}\n"
        "    accum: 2\n"
        "    augment: {noise: {snr_db: [0, clean]}, video: {hflip: 0.5}}\n"
        "    steps: 300\n"
        "  - name: full\n"
        "    init: ckpt/step-10\n"
        "    losses: {hybrid: 1, enc_l1: 1}\n"
        "    optimizer: {type: sgd, lr: 0.1, momentum: 0.9, nesterov: true}\n"
        "    schedule: {type: warmup_cosine, warmup_epochs: 0.5}\n"
        "    epochs: 3\n"
        "    valid_every_steps: 50\n"
        "    early_stop: {patience: 2}\n"
        "average: {best: 3}\n"
        "eval:\n"
        "  valid_metric: valid_acc\n"
        "  search: {type: ctc_beam, beam: 4, token_topk: 10}\n";
    avsr_error err = {0};
    avsr_recipe *r = avsr_recipe_load_string("t.yaml", text, &err);
    if (!tap_ok(r && r->n_stages == 3, "three-stage recipe loads %s", err.msg))
        return;
    const avsr_recipe_stage *a = &r->stages[0], *b = &r->stages[1], *c = &r->stages[2];
    tap_ok(a->audio_in == AVSR_IN_AUDIO_CLEAN && a->video_in == AVSR_IN_VIDEO_NONE &&
               a->init.kind == AVSR_SRC_NONE && a->teacher.kind == AVSR_SRC_NONE &&
               a->optim.type == AVSR_OPTIM_ADAMW && a->optim.weight_decay == 0.01 &&
               a->optim.beta2 == 0.999 && a->sched.type == AVSR_LRSCHED_CONSTANT &&
               a->augment.noise.prob == 0.7 && a->noise_types == (1u << AVSR_NOISE_BABBLE),
           "stage asr: inputs, PyTorch optimizer defaults, constant schedule, augment base");
    tap_ok(b->init.kind == AVSR_SRC_STAGE && b->init.stage == 0 &&
               b->init.pick == AVSR_PICK_BEST && b->teacher.kind == AVSR_SRC_STAGE &&
               b->teacher.stage == 0 && b->teacher.pick == AVSR_PICK_BEST &&
               b->dec_target == AVSR_DEC_TARGET_TEACHER && b->losses.hybrid == 0 &&
               b->losses.enc_l1 == 2 && b->losses.dec_ce == 1 && b->n_train == 2 &&
               b->n_freeze == 1 && b->audio_in == AVSR_IN_AUDIO_NOISY &&
               b->video_in == AVSR_IN_VIDEO_LIPS,
           "stage fusion: init previous.best, teacher, dec_target, losses, patterns");
    tap_ok(b->optim.type == AVSR_OPTIM_ADAM && b->optim.lr == 5e-4 &&
               b->optim.weight_decay == 0 && b->sched.type == AVSR_LRSCHED_EXP_EPOCH &&
               b->sched.factor == 0.631 && b->sched.lr == 5e-4 && b->sched.total_steps == 300 &&
               b->steps == 300 && b->epochs == 0 && b->accum == 2,
           "stage fusion: adam, exp_per_epoch, steps -> total_steps, accum");
    tap_ok(b->sampler.max_frames == 800 && b->sampler.nbuckets == 50 &&
               r->sampler.max_frames == 1600 && b->augment.noise.prob == 0.7 &&
               b->augment.noise.n_snr == 2 && b->augment.noise.snr_list[0] == 0 &&
               isinf(b->augment.noise.snr_list[1]) && b->augment.flip_prob == 0.5 &&
               r->augment.flip_prob == 0 && r->augment.noise.n_snr == 7,
           "stage fusion: batching and augment overrides on top of data/augment");
    tap_ok(c->init.kind == AVSR_SRC_PATH && !strcmp(c->init.path, "ckpt/step-10") &&
               c->teacher.kind == AVSR_SRC_STAGE && c->teacher.stage == 0 &&
               c->dec_target == AVSR_DEC_TARGET_TRANSCRIPT && c->optim.type == AVSR_OPTIM_SGD &&
               c->optim.momentum == 0.9 && c->optim.nesterov &&
               c->sched.type == AVSR_LRSCHED_COSINE && c->warmup_epochs == 0.5 &&
               c->sched.total_steps == 0 && c->valid_every_steps == 50 &&
               !strcmp(c->early_stop_metric, "valid_acc") && c->early_stop_patience == 2 &&
               c->sampler.max_frames == 1600,
           "stage full: init path, inherited teacher, sgd, warmup_epochs, early stop");
    tap_ok(r->average_best == 3 && r->average_last == 0 && r->valid_higher_better &&
               r->keep_best == 5 && r->search == AVSR_SEARCH_CTC_BEAM && r->ctc_beam.beam == 4 &&
               r->ctc_beam.token_topk == 10 && r->n_sweep_snr == 6 && isinf(r->sweep_snr[0]) &&
               r->sweep_snr[5] == -10 && r->n_sweep_noise == 1,
           "average best, valid_acc (higher is better), ctc_beam, the default sweep");
    tap_ok(kv_is(r, "stages.1.init", "previous.best") &&
               kv_is(r, "stages.2.teacher", "stage.asr.best") &&
               kv_is(r, "stages.2.init", "ckpt/step-10") &&
               kv_is(r, "stages.1.batching.max_frames", "800") &&
               kv_is(r, "stages.1.augment.noise.snr_db", "[0, \"clean\"]") &&
               kv_is(r, "stages.2.augment.noise.prob", "0.7") &&
               kv_is(r, "stages.2.optimizer.momentum", "0.9") &&
               kv_is(r, "stages.0.optimizer.betas", "[0.9, 0.999]") &&
               kv_is(r, "eval.sweep.snr_db", "[\"clean\", 10, 5, 0, -5, -10]") &&
               kv_is(r, "eval.sweep.modalities", "[\"audio\", \"video\", \"audiovisual\"]"),
           "resolved keys of the stages: given, inherited and default values");
    check_round_trip(r, "three stages");
    avsr_recipe_free(r);

    /* no validation data: metric none, init previous.last, keep_best 0 */
    static const char *noval = "data:\n"
                               "  train: [tr.h5]\n"
                               "model:\n"
                               "  audio: {width: 4, depth: [1, 1, 1, 1]}\n"
                               "  encoder: {layers: 1, dim: 32, heads: 2, ffn: 64}\n"
                               "  ctc_weight: 1\n"
                               "  decoder: none\n"
                               "stages:\n"
                               "  - {name: a, steps: 10}\n"
                               "  - {name: b, steps: 10}\n";
    r = avsr_recipe_load_string("dir/noval.yml", noval, &err);
    tap_ok(r && !strcmp(r->name, "noval") && !strcmp(r->exp_dir, "exp/noval") &&
               !r->valid_metric && r->keep_best == 0 && r->stages[1].init.pick == AVSR_PICK_LAST &&
               r->stages[1].init.stage == 0 && r->search == AVSR_SEARCH_CTC_BEAM &&
               r->n_sweep_modality == 1 && r->sweep_modality[0] == AVSR_MODALITY_AUDIO &&
               r->stages[0].audio_in == AVSR_IN_AUDIO_NOISY &&
               r->stages[0].video_in == AVSR_IN_VIDEO_NONE && r->n_sweep_noise == 0 &&
               r->stages[0].noise_types == 0 && kv_is(r, "eval.valid_metric", "none") &&
               kv_is(r, "eval.sweep.noise", "[]"),
           "audio-only CTC recipe without validation data: name from the file, defaults "
           "follow (no metric, init previous.last, ctc_beam, audio sweep) %s", err.msg);
    avsr_recipe_free(r);
}

static void test_bad(void)
{
    static const char *const cases[][2] = {
        /* unknown key */
        {HEAD "stages:\n  - name: a\n    epochs: 1\n    optimizer: {type: adamw, lrr: 1}\n",
         "t.yaml:17:30: stages[0].optimizer: unknown key 'lrr' (valid keys here include: type)"},
        /* unknown section */
        {HEAD "stagse:\n  - name: a\n",
         "t.yaml:14:1: recipe: unknown key 'stagse' (valid keys here include: name, data, "
         "model)"},
        /* wrong type */
        {HEAD "stages:\n  - name: a\n    epochs: many\n",
         "t.yaml:16:13: stages[0].epochs: expected an integer, got 'many'"},
        /* out of range */
        {HEAD "stages:\n  - name: a\n    epochs: 1\n    accum: 0\n",
         "t.yaml:17:12: stages[0].accum: 0 is out of range [1, 65536]"},
        /* missing data file */
        {"data:\n  train: [tr.h5, x.h5]\n",
         "t.yaml:2:18: data.train[1]: no such file 'x.h5'"},
        /* missing noise file */
        {"data:\n  train: [tr.h5]\n  noise:\n    babble: {from: [bab.h5, gone.h5]}\n",
         "t.yaml:4:29: data.noise.babble.from[1]: no such file 'gone.h5'"},
        /* unknown noise source */
        {"data:\n  train: [tr.h5]\n  noise:\n    cafe: {from: bab.h5}\n",
         "t.yaml:4:5: data.noise: unknown noise source 'cafe' (expected one of: file, babble, "
         "white, pink)"},
        /* duplicate stage names */
        {HEAD "stages:\n  - name: a\n    epochs: 1\n  - name: a\n    epochs: 1\n",
         "t.yaml:17:11: stages[1].name: duplicate stage name 'a' (first at line 15)"},
        /* init naming a later stage */
        {HEAD "stages:\n  - name: a\n    init: stage.b.last\n    epochs: 1\n  - name: b\n"
              "    epochs: 1\n",
         "t.yaml:16:11: stages[0].init: 'stage.b.last': stage 'b' does not come before this "
         "one"},
        /* teacher naming an unknown stage */
        {HEAD "stages:\n  - name: a\n    epochs: 1\n  - name: b\n    teacher: stage.c.best\n"
              "    epochs: 1\n",
         "t.yaml:18:14: stages[1].teacher: 'stage.c.best': no stage named 'c'"},
        /* previous in the first stage */
        {HEAD "stages:\n  - name: a\n    init: previous.best\n    epochs: 1\n",
         "t.yaml:16:11: stages[0].init: 'previous.best': the first stage has no previous stage"},
        /* a missing checkpoint */
        {HEAD "stages:\n  - name: a\n    init: ckpt/none.safetensors\n    epochs: 1\n",
         "t.yaml:16:11: stages[0].init: no such file 'ckpt/none.safetensors'"},
        /* patterns */
        {HEAD "stages:\n  - name: a\n    train: [\"fusion.*\", \"fusion_module.*\"]\n"
              "    epochs: 1\n",
         "t.yaml:16:25: stages[0].train[1]: 'fusion_module.*' matches no parameter of the "
         "model"},
        {HEAD "stages:\n  - name: a\n    train: [\"fusion.*\"]\n    freeze: [\"*\"]\n"
              "    epochs: 1\n",
         "t.yaml:17:13: stages[0]: training a frozen-only stage: every parameter that train "
         "matches is frozen"},
        /* losses */
        {HEAD "stages:\n  - name: a\n    losses: {hybrid: 1, mel_l1: 1}\n    epochs: 1\n",
         "t.yaml:16:33: stages[0].losses.mel_l1: needs a teacher (teacher: stage.NAME.best or "
         "a checkpoint path)"},
        {HEAD "stages:\n  - name: a\n    dec_target: teacher\n    epochs: 1\n",
         "t.yaml:16:17: stages[0].dec_target: 'teacher' needs a teacher"},
        {HEAD "stages:\n  - name: a\n    losses: {hybrid: 0}\n    epochs: 1\n",
         "t.yaml:16:13: stages[0].losses: every loss weight is 0"},
        /* length */
        {HEAD "stages:\n  - name: a\n    epochs: 1\n    steps: 10\n",
         "t.yaml:17:12: stages[0].steps: give epochs or steps, not both"},
        {HEAD "stages:\n  - name: a\n",
         "t.yaml:15:5: stages[0]: give its length as epochs or steps"},
        {HEAD "stages:\n  - name: a\n    epochz: 1\n",
         "t.yaml:16:5: stages[0]: unknown key 'epochz' (valid keys here include: name)"},
        /* keep_best without a metric */
        {"data:\n  train: [tr.h5]\nrun:\n  checkpoint: {keep_best: 2}\n",
         "t.yaml:4:27: run.checkpoint.keep_best: 2 best checkpoints need a validation metric "
         "(eval.valid_metric is none)"},
        {"data:\n  train: [tr.h5]\neval:\n  valid_metric: valid_wer\n",
         "t.yaml:4:17: eval.valid_metric: 'valid_wer' needs validation data (data.valid is "
         "empty)"},
        /* optimizer and schedule checks */
        {HEAD "stages:\n  - name: a\n    epochs: 1\n    optimizer: {type: sgd, betas: [0.9, 0.99]}\n",
         "t.yaml:17:35: stages[0].optimizer.betas: only for adam and adamw"},
        {HEAD "stages:\n  - name: a\n    steps: 100\n"
              "    schedule: {type: warmup_cosine, warmup_steps: 100}\n",
         "t.yaml:17:15: stages[0].schedule: lr schedule warmup_cosine: total_steps = 100 must "
         "be greater than warmup_steps = 100"},
        /* noise names */
        {HEAD "augment:\n  noise: {types: [babble, pink]}\nstages:\n  - name: a\n    epochs: 1\n",
         "t.yaml:15:27: augment.noise.types[1]: 'pink' is not a source in data.noise "
         "(declared: babble)"},
        {HEAD "stages:\n  - name: a\n    epochs: 1\neval:\n  sweep: {snr_db: [clean, loud]}\n",
         "t.yaml:18:27: eval.sweep.snr_db[1]: expected an SNR in dB or clean, got 'loud'"},
        /* search */
        {HEAD "stages:\n  - name: a\n    epochs: 1\neval:\n  search: {beam: 4, nbest: 5}\n",
         "t.yaml:18:28: eval.search.nbest: 5 is more than beam 4"},
        /* the model builder's errors surface */
        {"data:\n  train: [tr.h5]\nmodel:\n  audio: {width: 4, depth: [1, 1, 1, 1]}\n"
         "  encoder: {dim: 32, heads: 3}\n",
         "t.yaml:5:29: model.encoder: dim 32 is not a multiple of heads 3"},
        /* crop vs the model's frame size */
        {"data:\n  train: [tr.h5]\n  video: {crop: 80}\nmodel:\n  video: {width: 4}\n",
         "t.yaml:3:17: data.video.crop: 80 differs from model.video.roi 88 (the frame size the "
         "model expects)"},
        /* inputs the model lacks */
        {"data:\n  train: [tr.h5]\nmodel:\n  audio: {width: 4, depth: [1, 1, 1, 1]}\n"
         "  encoder: {layers: 1, dim: 32, heads: 2, ffn: 64}\nstages:\n  - name: a\n"
         "    inputs: {video: lips}\n    epochs: 1\n",
         "t.yaml:8:21: stages[0].inputs.video: 'lips', but the model has no visual frontend "
         "(model.video)"},
        /* early stop without validation */
        {"data:\n  train: [tr.h5]\nmodel:\n  audio: {width: 4, depth: [1, 1, 1, 1]}\n"
         "  encoder: {layers: 1, dim: 32, heads: 2, ffn: 64}\nstages:\n  - name: a\n"
         "    early_stop: {patience: 2}\n    epochs: 1\n",
         "t.yaml:8:17: stages[0].early_stop: needs a validation metric (eval.valid_metric is "
         "none)"},
        {HEAD "stages:\n  - name: a\n    epochs: 1\naverage: {last: 2, best: 2}\n",
         "t.yaml:17:10: average: give last or best, not both"},
        {"name: a/b\n", "t.yaml:1:7: name: 'a/b' is not a valid recipe name (letters, digits, "
                        "'_', '.', '-')"},
        {"data:\n  train: tr.h5\n", "t.yaml:2:10: data.train: expected a list, got a scalar"},
        {"- a\n", "t.yaml:1:1: recipe: expected a mapping of sections at the top level"},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) {
        avsr_error err = {0};
        avsr_recipe *r = avsr_recipe_load_string("t.yaml", cases[i][0], &err);
        bool ok = !r && !strncmp(err.msg, cases[i][1], strlen(cases[i][1]));
        if (!ok)
            tap_diag("want: %s", cases[i][1]);
        tap_ok(ok, "bad recipe %d: %s", i, err.msg);
        avsr_recipe_free(r);
    }
    avsr_error err = {0};
    tap_ok(!avsr_recipe_load("missing.yaml", &err) &&
               !strncmp(err.msg, "missing.yaml: cannot open", 25),
           "a missing recipe file: %s", err.msg);
}

/* recipes/demo.yaml: the quick-start demo's four ASR2AVSR stages; its model
 * (a fusion module with a non-default video trunk) survives the resolved
 * JSON that model files carry */
static void test_demo_asr2avsr(const char *path)
{
    avsr_error err = {0};
    avsr_recipe *r = avsr_recipe_load(path, &err);
    if (!tap_ok(r != NULL, "recipes/demo.yaml loads %s", err.msg))
        return;
    static const char *const names[] = {"asr_pretrain", "pretrain_fusion", "finetune_fusion",
                                        "full_finetune"};
    bool ok = r->n_stages == 4 && !strcmp(r->name, "demo") && !strcmp(r->exp_dir, "exp/demo");
    for (int i = 0; ok && i < 4; i++)
        ok = !strcmp(r->stages[i].name, names[i]) &&
             r->stages[i].augment.modality_prob == (i == 0 ? 0.0 : 0.3);
    tap_ok(ok, "demo: 4 stages in order; modality dropout 0.3 in stages 1-3 only");
    const avsr_recipe_stage *s0 = &r->stages[0], *s1 = &r->stages[1], *s2 = &r->stages[2];
    tap_ok(ok && s0->audio_in == AVSR_IN_AUDIO_CLEAN && s0->video_in == AVSR_IN_VIDEO_NONE &&
               s1->teacher.kind == AVSR_SRC_STAGE && s1->teacher.stage == 0 &&
               s1->losses.mel_l1 == 1 && s1->losses.enc_l1 == 2 && s1->n_freeze == 3 &&
               s2->teacher.kind == AVSR_SRC_STAGE && s2->teacher.stage == 0 &&
               s2->dec_target == AVSR_DEC_TARGET_TEACHER && fabs(s2->losses.dec_ce - 0.1) < 1e-6 &&
               r->stages[3].losses.hybrid == 1 && r->stages[3].n_train == 1,
           "demo: stage 0 clean audio only; teacher asr_pretrain from stage 1 on; losses");
    tap_ok(r->n_sweep_snr == 6 && r->n_sweep_noise == 2 && r->n_sweep_modality == 3 &&
               r->average_last == 3,
           "demo: sweep 2 noises x 6 SNRs x 3 modalities, average of the last 3");
    tap_ok(kv_is(r, "model.fusion_module.video_cnn.blocks", "[[1, 0], [1, 0], [1, 0], [1, 0]]"),
           "demo: the video trunk's blocks (a list of lists) are in the resolved keys");
    check_model_json(r, "demo (ASR2AVSR)");
    avsr_recipe_free(r);
}

int main(void)
{
    char demo[PATH_MAX], aa[PATH_MAX], demo2[PATH_MAX];
    if (!realpath(tu_srcpath("recipes/demo-joint.yaml"), demo) ||
        !realpath(tu_srcpath("recipes/auto-avsr-lrs3.yaml"), aa) ||
        !realpath(tu_srcpath("recipes/demo.yaml"), demo2))
        tap_bail("recipes/ not found under $srcdir");
    snprintf(tmpdir, sizeof tmpdir, "/tmp/avsr-test-recipe-XXXXXX");
    if (!mkdtemp(tmpdir) || chdir(tmpdir) != 0)
        tap_bail("cannot make a temporary directory");
    static const char *const files[] = {
        "data/demo/train.h5",       "data/demo/valid.h5",  "data/demo/test.h5",
        "data/demo/noise-babble.h5", "data/lrs3/trainval.h5", "data/lrs3/pretrain.h5",
        "data/lrs3/valid.h5",       "data/lrs3/test.h5",   "data/noise/babble.h5",
        "tr.h5",                    "va.h5",               "bab.h5",
        "ckpt/step-10/model.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        touch(files[i]);

    test_demo(demo);
    test_demo_asr2avsr(demo2);
    test_auto_avsr(aa);
    test_stages();
    test_bad();

    if (chdir("/") != 0)
        tap_diag("chdir /");
    rm_rf(tmpdir);
    return tap_done();
}
