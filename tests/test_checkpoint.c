/* test_checkpoint: checkpoints of a training run.
 *
 * - kill -9 of a child writing large checkpoints at random moments (5
 *   times): restore always finds a complete checkpoint with consistent
 *   contents (run first, before this process starts OpenMP threads, since
 *   the child is a plain fork);
 * - exact resume: a tiny model trained with AdamW for 6 steps straight
 *   equals (bit for bit: parameters, buffers, moments, optimizer step, RNG
 *   state, sampler cursor) 3 steps + save + restore into fresh state + 3
 *   steps, both in this process and in a freshly exec'd process;
 * - the layout: files, metadata keys, tensors, index.json, symlinks;
 * - crash leftovers: a directory without DONE, a truncated or corrupted
 *   model.safetensors inside a DONE directory, a temp directory of a killed
 *   writer: reported, skipped, the previous checkpoint used, leftovers
 *   cleaned by the next save;
 * - mismatches (missing, unexpected, wrong shape/dtype, optimizer type,
 *   state item): errors naming the tensor, nothing modified;
 * - retention (last K + best K, lower/higher better), the best symlink,
 *   refusing to overwrite a complete checkpoint;
 * - the resolved-recipe diff. */
#define _GNU_SOURCE /* vasprintf */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lrsched.h"
#include "optim.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "tap.h"
#include "train/checkpoint.h"

static char base[512];

static const char *pth(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *pth(const char *fmt, ...)
{
    /* a fresh string each time (never freed: a few kB per test run) */
    char *b = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&b, fmt, ap) < 0)
        tap_bail("out of memory");
    va_end(ap);
    return b;
}

static bool exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

static void rm_rf(const char *p)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd) != 0)
        tap_diag("cannot remove %s", p);
}

static bool notes_have(const avsr_ckpt_notes *n, const char *s)
{
    for (int i = 0; i < n->n; i++)
        if (strstr(n->msg[i], s))
            return true;
    return false;
}

static void notes_print(const avsr_ckpt_notes *n)
{
    for (int i = 0; i < n->n; i++)
        tap_diag("note: %s", n->msg[i]);
}

/* ---- the tiny model ------------------------------------------------------- */

typedef struct model {
    avsr_params *p;
    avsr_tensor *w, *b, *fz, *rm, *nbt;
    avsr_optim *opt;
    avsr_lrsched sched;
    avsr_rng drop;      /* a persistent dropout stream: its state is checkpointed */
    int64_t cursor[2];  /* sampler cursor: epoch, position in the epoch */
} model;

#define DIN 3
#define DOUT 5
#define PER_EPOCH 4

static void model_new(model *m, uint64_t seed)
{
    avsr_error err = {0};
    memset(m, 0, sizeof *m);
    m->p = avsr_params_create();
    int64_t sw[2] = {DOUT, DIN}, sb[1] = {DOUT}, sf[1] = {2};
    m->w = avsr_params_add(m->p, "lin.weight", 2, sw, &err);
    m->b = avsr_params_add(m->p, "lin.bias", 1, sb, &err);
    m->fz = avsr_params_add(m->p, "frozen.w", 1, sf, &err);
    m->rm = avsr_params_add_buffer(m->p, "bn.running_mean", AVSR_F32, 1, sb, &err);
    m->nbt = avsr_params_add_buffer(m->p, "bn.num_batches_tracked", AVSR_I64, 0, NULL, &err);
    if (!m->nbt || avsr_params_finalize(m->p, &err) < 0)
        tap_bail("model: %s", err.msg);
    avsr_params_set_init(m->p, m->w, AVSR_INIT_UNIFORM, 0.5f, &err);
    avsr_params_set_init(m->p, m->b, AVSR_INIT_UNIFORM, 0.5f, &err);
    avsr_params_set_init(m->p, m->fz, AVSR_INIT_CONST, 0.25f, &err);
    if (avsr_params_init(m->p, seed, &err) < 0)
        tap_bail("init: %s", err.msg);
    avsr_params_set_requires_grad(m->p, "frozen.*", false);
    avsr_optim_cfg c = avsr_optim_defaults(AVSR_OPTIM_ADAMW);
    c.lr = 0.05;
    c.weight_decay = 0.1;
    if (!(m->opt = avsr_optim_create(&c, &err)))
        tap_bail("optim: %s", err.msg);
    m->sched = avsr_lrsched_defaults(AVSR_LRSCHED_COSINE, 0.05);
    m->sched.warmup_steps = 2;
    m->sched.total_steps = 10;
    avsr_rng_init(&m->drop, 11 + seed, 0, 0, AVSR_RNG_LAYER_BASE);
}

static void model_free(model *m)
{
    avsr_optim_destroy(m->opt);
    avsr_params_destroy(m->p);
    memset(m, 0, sizeof *m);
}

static void train_step(model *m)
{
    avsr_rng data;
    avsr_rng_init(&data, 7, (uint64_t)m->cursor[0], (uint64_t)m->cursor[1], AVSR_RNG_SHUFFLE);
    float x[DIN], y[DOUT], out[DOUT];
    for (int i = 0; i < DIN; i++)
        x[i] = avsr_rng_normal(&data);
    for (int o = 0; o < DOUT; o++)
        y[o] = avsr_rng_normal(&data);
    float *W = avsr_f32(m->w), *B = avsr_f32(m->b), *rm = avsr_f32(m->rm);
    avsr_params_zero_grad(m->p);
    for (int o = 0; o < DOUT; o++) {
        out[o] = B[o];
        for (int i = 0; i < DIN; i++)
            out[o] += W[o * DIN + i] * x[i];
        float mask = avsr_rng_uniform(&m->drop) < 0.8f ? 1.25f : 0.0f;
        float r = (out[o] - y[o]) * mask;
        for (int i = 0; i < DIN; i++)
            m->w->grad[o * DIN + i] = r * x[i];
        m->b->grad[o] = r;
        rm[o] = 0.9f * rm[o] + 0.1f * out[o];
    }
    ((int64_t *)m->nbt->data)[0]++;
    double lr = avsr_lrsched_lr(&m->sched, avsr_optim_get_step(m->opt), m->cursor[0]);
    avsr_error err = {0};
    if (avsr_optim_step(m->opt, m->p, (float)lr, &err) < 0)
        tap_bail("step: %s", err.msg);
    if (++m->cursor[1] == PER_EPOCH) {
        m->cursor[0]++;
        m->cursor[1] = 0;
    }
}

static avsr_ckpt_item items_of(model *m, int k)
{
    if (k == 0)
        return (avsr_ckpt_item){"sampler.cursor", AVSR_I64, 2, m->cursor};
    return (avsr_ckpt_item){"rng.dropout", AVSR_U8, (int64_t)sizeof m->drop, &m->drop};
}

static int save_model(model *m, const char *stage, int64_t step, double wer,
                      const avsr_ckpt_retention *ret, avsr_ckpt_notes *notes, avsr_error *err)
{
    avsr_ckpt_item it[2] = {items_of(m, 0), items_of(m, 1)};
    avsr_ckpt_metric met[2] = {{"wer", wer}, {"loss", 2.0 * wer}};
    avsr_kv meta[1] = {{"note", "test"}};
    avsr_ckpt_save_info info = {
        .step = step, .epoch = m->cursor[0], .stage = "train",
        .model_config = "{\"d_in\": 3, \"d_out\": 5}", .vocab = "{\"tokens\": [\"<b>\", \"a\"]}",
        .recipe_hash = "abc123", .world_size = 2, .metrics = met, .n_metrics = 2,
        .meta = meta, .n_meta = 1, .items = it, .n_items = 2};
    return avsr_ckpt_save(stage, m->p, m->opt, &info, ret, notes, err);
}

static int restore_model(model *m, const char *stage, avsr_ckpt_loaded *l,
                         avsr_ckpt_notes *notes, avsr_error *err)
{
    avsr_ckpt_item it[2] = {items_of(m, 0), items_of(m, 1)};
    return avsr_ckpt_restore(stage, m->p, m->opt, it, 2, l, notes, err);
}

/* Compare everything of two models bit for bit. */
static bool same_state(model *a, model *b, const char *what)
{
    avsr_error err = {0};
    bool ok = true;
    int n = avsr_params_count(a->p);
    for (int i = 0; i < n; i++) {
        avsr_tensor *x = avsr_params_at(a->p, i), *y = avsr_params_at(b->p, i);
        size_t nb = (size_t)x->numel * avsr_dtype_size(x->dtype);
        if (memcmp(x->data, y->data, nb) != 0) {
            tap_diag("%s: %s differs", what, x->name);
            ok = false;
        }
        if (avsr_params_is_buffer(a->p, i))
            continue;
        for (int k = 0; k < 2; k++) {
            float *ma = avsr_params_moment(a->p, k, &err) + avsr_params_offset(a->p, i);
            float *mb = avsr_params_moment(b->p, k, &err) + avsr_params_offset(b->p, i);
            if (memcmp(ma, mb, nb) != 0) {
                tap_diag("%s: moment %d of %s differs", what, k, x->name);
                ok = false;
            }
        }
    }
    if (avsr_optim_get_step(a->opt) != avsr_optim_get_step(b->opt) ||
        memcmp(&a->drop, &b->drop, sizeof a->drop) != 0 ||
        memcmp(a->cursor, b->cursor, sizeof a->cursor) != 0) {
        tap_diag("%s: optimizer step, RNG or cursor differs", what);
        ok = false;
    }
    return ok;
}

/* Everything of a model as a safetensors file (for the exec'd child). */
static int dump_model(model *m, const char *path, avsr_error *err)
{
    avsr_st_writer *w = avsr_st_writer_create();
    int n = avsr_params_count(m->p);
    char names[2][64][96];
    int64_t ostep = avsr_optim_get_step(m->opt), one = 1, rs = (int64_t)sizeof m->drop;
    for (int i = 0; i < n; i++) {
        avsr_tensor *t = avsr_params_at(m->p, i);
        avsr_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, err);
        if (avsr_params_is_buffer(m->p, i))
            continue;
        for (int k = 0; k < 2; k++) {
            snprintf(names[k][i], sizeof names[k][i], "%d.%s", k, t->name);
            avsr_st_writer_add(w, names[k][i], AVSR_F32, t->ndim, t->shape,
                               avsr_params_moment(m->p, k, err) + avsr_params_offset(m->p, i),
                               err);
        }
    }
    avsr_st_writer_add(w, "x.ostep", AVSR_I64, 1, &one, &ostep, err);
    avsr_st_writer_add(w, "x.rng", AVSR_U8, 1, &rs, &m->drop, err);
    int64_t two = 2;
    avsr_st_writer_add(w, "x.cursor", AVSR_I64, 1, &two, m->cursor, err);
    int rc = avsr_st_writer_write(w, path, err);
    avsr_st_writer_destroy(w);
    return rc;
}

static bool same_as_dump(model *a, const char *path)
{
    avsr_error err = {0};
    avsr_st *st = avsr_st_open(path, &err);
    if (!st) {
        tap_diag("%s", err.msg);
        return false;
    }
    bool ok = true;
    int n = avsr_params_count(a->p);
    avsr_st_tensor t;
    char nm[128];
    for (int i = 0; i < n; i++) {
        avsr_tensor *x = avsr_params_at(a->p, i);
        size_t nb = (size_t)x->numel * avsr_dtype_size(x->dtype);
        ok &= avsr_st_find(st, x->name, &t) == 0 && t.nbytes == nb &&
              memcmp(t.data, x->data, nb) == 0;
        if (avsr_params_is_buffer(a->p, i))
            continue;
        for (int k = 0; k < 2; k++) {
            snprintf(nm, sizeof nm, "%d.%s", k, x->name);
            ok &= avsr_st_find(st, nm, &t) == 0 &&
                  memcmp(t.data, avsr_params_moment(a->p, k, &err) + avsr_params_offset(a->p, i),
                         nb) == 0;
        }
    }
    int64_t ostep = avsr_optim_get_step(a->opt);
    ok &= avsr_st_find(st, "x.ostep", &t) == 0 && memcmp(t.data, &ostep, 8) == 0;
    ok &= avsr_st_find(st, "x.rng", &t) == 0 && memcmp(t.data, &a->drop, sizeof a->drop) == 0;
    ok &= avsr_st_find(st, "x.cursor", &t) == 0 && memcmp(t.data, a->cursor, 16) == 0;
    avsr_st_close(st);
    return ok;
}

/* The exec'd child: fresh process, restore, 3 more steps, dump. */
static int resume_child(const char *stage, const char *out)
{
    model m;
    model_new(&m, 999); /* different init: the restore must overwrite it */
    avsr_error err = {0};
    avsr_ckpt_loaded l;
    int r = restore_model(&m, stage, &l, NULL, &err);
    if (r != 1) {
        fprintf(stderr, "child: restore returned %d: %s\n", r, err.msg);
        return 1;
    }
    for (int s = 0; s < 3; s++)
        train_step(&m);
    int rc = dump_model(&m, out, &err);
    if (rc < 0)
        fprintf(stderr, "child: %s\n", err.msg);
    avsr_ckpt_loaded_free(&l);
    model_free(&m);
    return rc < 0 ? 1 : 0;
}

/* ---- kill -9 -------------------------------------------------------------- */

#define BIG (1 << 20) /* floats per big parameter: 4 MiB model, 8 MiB moments */

static avsr_params *big_params(avsr_error *err)
{
    avsr_params *p = avsr_params_create();
    int64_t s[1] = {BIG};
    avsr_params_add(p, "big.a", 1, s, err);
    avsr_params_add(p, "big.b", 1, s, err);
    if (avsr_params_finalize(p, err) < 0)
        tap_bail("big: %s", err->msg);
    return p;
}

/* value pattern of step s: every element of a checkpoint encodes its step */
static void big_fill(avsr_params *p, int64_t s)
{
    for (int i = 0; i < 2; i++) {
        float *x = avsr_f32(avsr_params_at(p, i));
        for (int64_t j = 0; j < BIG; j++)
            x[j] = (float)s + (float)(j & 1023) * (1.0f / 1024.0f);
    }
}

static void test_kill9(void)
{
    const char *stage = pth("%s/kill", base);
    avsr_error err = {0};
    avsr_params *p = big_params(&err);
    avsr_optim_cfg c = avsr_optim_defaults(AVSR_OPTIM_ADAMW);
    avsr_optim *opt = avsr_optim_create(&c, &err);
    avsr_ckpt_retention ret = {.keep_last = 2};
    big_fill(p, 1);
    avsr_ckpt_save_info info = {.step = 1, .epoch = 0, .world_size = 1};
    if (avsr_ckpt_save(stage, p, opt, &info, &ret, NULL, &err) < 0)
        tap_bail("kill: first save: %s", err.msg);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    int64_t next = 2;
    bool all_ok = true;
    int restored_steps[5], mid_write = 0;
    for (int round = 0; round < 5; round++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            /* the writer: save step after step until killed */
            avsr_error e = {0};
            for (int64_t s = next;; s++) {
                big_fill(p, s);
                avsr_ckpt_save_info in = {.step = s, .epoch = 0, .world_size = 1};
                if (avsr_ckpt_save(stage, p, opt, &in, &ret, NULL, &e) < 0) {
                    fprintf(stderr, "writer: %s\n", e.msg);
                    _exit(3);
                }
            }
        }
        if (pid < 0)
            tap_bail("fork: %s", strerror(errno));
        struct timespec ts = {0, (long)(20 + rand() % 180) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        if (!WIFSIGNALED(status)) {
            tap_diag("writer exited by itself (status %d)", status);
            all_ok = false;
        }
        /* restore into a fresh store: a complete checkpoint whose every
         * element matches its step */
        avsr_params *q = big_params(&err);
        avsr_optim *qo = avsr_optim_create(&c, &err);
        avsr_ckpt_loaded l;
        avsr_ckpt_notes notes = {0};
        int r = avsr_ckpt_restore(stage, q, qo, NULL, 0, &l, &notes, &err);
        bool ok = r == 1;
        if (ok) {
            restored_steps[round] = (int)l.step;
            avsr_params *want = big_params(&err);
            big_fill(want, l.step);
            ok = memcmp(avsr_params_data(q), avsr_params_data(want),
                        sizeof(float) * (size_t)avsr_params_flat_size(q)) == 0;
            avsr_params_destroy(want);
            next = l.step + 1;
            avsr_ckpt_loaded_free(&l);
        } else {
            tap_diag("round %d: restore returned %d: %s", round, r, err.msg);
            notes_print(&notes);
        }
        all_ok &= ok;
        if (notes_have(&notes, "interrupted writer") || notes_have(&notes, "no DONE"))
            mid_write++;
        avsr_ckpt_notes_free(&notes);
        avsr_optim_destroy(qo);
        avsr_params_destroy(q);
    }
    tap_ok(all_ok, "kill -9 of a writer at 5 random moments: restore finds a complete, "
                   "consistent checkpoint each time (steps %d %d %d %d %d)",
           restored_steps[0], restored_steps[1], restored_steps[2], restored_steps[3],
           restored_steps[4]);
    tap_diag("%d of 5 kills left a partial checkpoint behind (killed mid-write)", mid_write);
    /* the next save cleans whatever the killed writers left */
    big_fill(p, next + 100);
    info.step = next + 100;
    avsr_ckpt_notes notes = {0};
    int rc = avsr_ckpt_save(stage, p, opt, &info, &ret, &notes, &err);
    DIR *d = opendir(pth("%s/ckpt", stage));
    int leftovers = 0, complete = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strstr(de->d_name, ".tmp.") || strstr(de->d_name, ".del."))
            leftovers++;
        else if (strncmp(de->d_name, "step-", 5) == 0) {
            complete++;
            leftovers += !exists(pth("%s/ckpt/%s/DONE", stage, de->d_name));
        }
    }
    if (d)
        closedir(d);
    d = opendir(stage);
    while (d && (de = readdir(d)))
        leftovers += strstr(de->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    if (rc < 0 || leftovers)
        tap_diag("save: %s; %d leftovers", rc < 0 ? err.msg : "ok", leftovers);
    tap_ok(rc == 0 && leftovers == 0 && complete == 2,
           "after the kills, a save leaves no temp or incomplete directory (%d complete kept)",
           complete);
    avsr_ckpt_notes_free(&notes);
    avsr_optim_destroy(opt);
    avsr_params_destroy(p);
    rm_rf(stage);
}

/* ---- exact resume --------------------------------------------------------- */

static void test_exact_resume(const char *self)
{
    const char *stage = pth("%s/resume", base);
    avsr_error err = {0};
    model a, b, c;
    model_new(&a, 1);
    for (int s = 0; s < 6; s++)
        train_step(&a);

    model_new(&b, 1);
    for (int s = 0; s < 3; s++)
        train_step(&b);
    int rc = save_model(&b, stage, 3, 0.5, NULL, NULL, &err);
    tap_ok(rc == 0, "save step 3%s%s", rc ? ": " : "", rc ? err.msg : "");
    model_free(&b);

    /* in this process, into fresh objects */
    model_new(&c, 5);
    avsr_ckpt_loaded l;
    avsr_ckpt_notes notes = {0};
    int r = restore_model(&c, stage, &l, &notes, &err);
    tap_ok(r == 1 && l.step == 3 && l.epoch == 0 && l.optim_step == 3 && l.world_size == 2 &&
               l.recipe_hash && strcmp(l.recipe_hash, "abc123") == 0 && l.stage &&
               strcmp(l.stage, "train") == 0 && l.model_config && l.vocab && l.n_metrics == 2 &&
               notes.n == 0,
           "restore reports step 3, epoch 0, optimizer step 3, world size 2, recipe hash, "
           "stage, config, vocabulary, metrics");
    for (int s = 0; s < 3; s++)
        train_step(&c);
    tap_ok(same_state(&a, &c, "in-process"),
           "6 steps straight == 3 + save + restore (fresh objects) + 3: parameters, buffers, "
           "moments, optimizer step, RNG, cursor bitwise equal");
    avsr_ckpt_loaded_free(&l);
    avsr_ckpt_notes_free(&notes);
    model_free(&c);

    /* in a fresh process */
    const char *out = pth("%s/child.safetensors", base);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execl(self, self, "--resume-child", stage, out, (char *)NULL);
        _exit(127);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && same_as_dump(&a, out),
           "6 steps straight == 3 + save + restore in a new process + 3: bitwise equal");
    model_free(&a);
}

/* ---- layout --------------------------------------------------------------- */

static void test_layout(void)
{
    const char *stage = pth("%s/resume", base); /* from test_exact_resume */
    const char *d = pth("%s/ckpt/step-3", stage);
    tap_ok(exists(pth("%s/model.safetensors", d)) && exists(pth("%s/state.safetensors", d)) &&
               exists(pth("%s/DONE", d)) && exists(pth("%s/ckpt/index.json", stage)),
           "layout: ckpt/step-3/{model,state}.safetensors, DONE, ckpt/index.json");
    char buf[256] = "";
    ssize_t n = readlink(pth("%s/last", stage), buf, sizeof buf - 1);
    if (n > 0)
        buf[n] = '\0';
    tap_ok(n > 0 && strcmp(buf, "ckpt/step-3") == 0, "last -> ckpt/step-3 (got '%s')", buf);
    tap_ok(!exists(pth("%s/best", stage)), "no best symlink without a retention metric");

    avsr_error err = {0};
    avsr_st *m = avsr_st_open(pth("%s/model.safetensors", d), &err);
    avsr_st *s = avsr_st_open(pth("%s/state.safetensors", d), &err);
    if (!m || !s)
        tap_bail("layout: %s", err.msg);
    avsr_st_tensor t;
    const char *mt = avsr_st_meta(m, "avsr.metrics");
    tap_ok(avsr_st_count(m) == 5 && avsr_st_find(m, "bn.num_batches_tracked", &t) == 0 &&
               t.dtype == AVSR_I64 && t.ndim == 0 && *(const int64_t *)t.data == 3 &&
               avsr_st_find(m, "lin.weight", &t) == 0 && t.dtype == AVSR_F32,
           "model: 5 tensors by name; num_batches_tracked is an I64 scalar (= 3)");
    tap_ok(avsr_st_meta(m, "format") && strcmp(avsr_st_meta(m, "format"), "pt") == 0 &&
               avsr_st_meta(m, "avsr.model") && strstr(avsr_st_meta(m, "avsr.model"), "d_out") &&
               avsr_st_meta(m, "avsr.tokenizer") && avsr_st_meta(m, "avsr.stage") &&
               strcmp(avsr_st_meta(m, "avsr.step"), "3") == 0 &&
               strcmp(avsr_st_meta(m, "avsr.epoch"), "0") == 0 && mt && strstr(mt, "\"wer\"") &&
               avsr_st_meta(m, "note") && avsr_st_meta(m, "avsr.recipe_hash"),
           "model metadata: format, avsr.model, avsr.tokenizer, avsr.stage, avsr.step, "
           "avsr.epoch, avsr.metrics (%s), caller keys",
           mt ? mt : "-");
    tap_ok(avsr_st_find(s, "optim.m.lin.weight", NULL) == 0 &&
               avsr_st_find(s, "optim.v.lin.weight", NULL) == 0 &&
               avsr_st_find(s, "optim.m.lin.bias", NULL) == 0 &&
               avsr_st_find(s, "optim.v.lin.bias", NULL) == 0 &&
               avsr_st_find(s, "optim.m.frozen.w", NULL) < 0 &&
               avsr_st_find(s, "optim.m.bn.running_mean", NULL) < 0 &&
               avsr_st_find(s, "sampler.cursor", &t) == 0 && t.dtype == AVSR_I64 &&
               avsr_st_find(s, "rng.dropout", &t) == 0 && t.dtype == AVSR_U8 &&
               avsr_st_count(s) == 6,
           "state: moments of trainable parameters only, cursor (I64), RNG blob (U8)");
    tap_ok(strcmp(avsr_st_meta(s, "avsr.optim.type"), "adamw") == 0 &&
               strcmp(avsr_st_meta(s, "avsr.optim.step"), "3") == 0 &&
               strcmp(avsr_st_meta(s, "avsr.world_size"), "2") == 0 &&
               strcmp(avsr_st_meta(s, "avsr.recipe_hash"), "abc123") == 0 &&
               strcmp(avsr_st_meta(s, "avsr.step"), "3") == 0,
           "state metadata: optimizer type and step, world size, recipe hash, step");
    avsr_st_close(m);
    avsr_st_close(s);
    avsr_ckpt_list l;
    int rc = avsr_ckpt_index_read(pth("%s/ckpt", stage), &l, NULL, &err);
    double v = 0;
    tap_ok(rc == 0 && l.n == 1 && l.e[0].step == 3 &&
               avsr_ckpt_entry_metric(&l.e[0], "wer", &v) == 0 && v == 0.5,
           "index.json lists step 3 with its metrics");
    avsr_ckpt_list_free(&l);
}

/* ---- crash leftovers ------------------------------------------------------ */

static void copy_file(const char *from, const char *to, long truncate_to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    if (!a || !b)
        tap_bail("copy %s -> %s", from, to);
    char buf[4096];
    size_t n;
    long done = 0;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) {
        if (truncate_to >= 0 && done + (long)n > truncate_to)
            n = (size_t)(truncate_to - done);
        fwrite(buf, 1, n, b);
        done += (long)n;
        if (truncate_to >= 0 && done >= truncate_to)
            break;
    }
    fclose(a);
    fclose(b);
}

static void test_crash_leftovers(void)
{
    const char *stage = pth("%s/crash", base);
    avsr_error err = {0};
    model m;
    model_new(&m, 1);
    train_step(&m);
    if (save_model(&m, stage, 1, 0.5, NULL, NULL, &err) < 0)
        tap_bail("crash: %s", err.msg);
    model snap;
    model_new(&snap, 1);
    train_step(&snap); /* = m's state at step 1 */
    train_step(&m);
    if (save_model(&m, stage, 2, 0.4, NULL, NULL, &err) < 0)
        tap_bail("crash: %s", err.msg);
    const char *s1 = pth("%s/ckpt/step-1", stage), *s2 = pth("%s/ckpt/step-2", stage);

    /* 1. a newer directory without DONE */
    const char *s9 = pth("%s/ckpt/step-9", stage);
    mkdir(s9, 0777);
    copy_file(pth("%s/model.safetensors", s2), pth("%s/model.safetensors", s9), -1);
    copy_file(pth("%s/state.safetensors", s2), pth("%s/state.safetensors", s9), -1);
    /* 2. a temp directory of a killed writer */
    const char *tmpd = pth("%s/ckpt/step-12.tmp.999999", stage);
    mkdir(tmpd, 0777);
    copy_file(pth("%s/model.safetensors", s2), pth("%s/model.safetensors", tmpd), 100);

    model r;
    model_new(&r, 3);
    avsr_ckpt_loaded l;
    avsr_ckpt_notes notes = {0};
    int rc = restore_model(&r, stage, &l, &notes, &err);
    tap_ok(rc == 1 && l.step == 2 && notes_have(&notes, "step-9: no DONE") &&
               notes_have(&notes, "step-12.tmp.999999: temporary directory"),
           "directory without DONE and temp directory: ignored with notes, step-2 restored");
    notes_print(&notes);
    avsr_ckpt_loaded_free(&l);
    avsr_ckpt_notes_free(&notes);

    /* 3. a truncated model.safetensors inside the DONE directory step-2 */
    const char *mp2 = pth("%s/model.safetensors", s2);
    const char *bak = pth("%s/model.bak", stage);
    copy_file(mp2, bak, -1);
    struct stat st;
    stat(mp2, &st);
    copy_file(bak, mp2, (long)st.st_size - 7);
    model r2;
    model_new(&r2, 3);
    rc = restore_model(&r2, stage, &l, &notes, &err);
    tap_ok(rc == 1 && l.step == 1 && notes_have(&notes, "step-2/model.safetensors") &&
               notes_have(&notes, "truncated") && same_state(&r2, &snap, "after truncation"),
           "truncated model.safetensors in a DONE directory: reported, skipped, step-1 restored "
           "exactly");
    notes_print(&notes);
    avsr_ckpt_loaded_free(&l);
    avsr_ckpt_notes_free(&notes);

    /* 4. same size, corrupted header: the validated reader rejects it */
    copy_file(bak, mp2, -1);
    FILE *f = fopen(mp2, "r+b");
    fseek(f, 9, SEEK_SET);
    fputc('#', f);
    fclose(f);
    model r3;
    model_new(&r3, 3);
    rc = restore_model(&r3, stage, &l, &notes, &err);
    tap_ok(rc == 1 && l.step == 1 && notes_have(&notes, "header JSON"),
           "corrupted header in a DONE directory: reported, skipped, step-1 restored");
    notes_print(&notes);
    avsr_ckpt_loaded_free(&l);
    avsr_ckpt_notes_free(&notes);
    copy_file(bak, mp2, -1);
    unlink(bak);

    /* 5. the next save removes the leftovers */
    train_step(&m);
    rc = save_model(&m, stage, 3, 0.3, NULL, &notes, &err);
    tap_ok(rc == 0 && !exists(s9) && !exists(tmpd) && exists(s1) &&
               notes_have(&notes, "step-9: incomplete") && notes_have(&notes, "interrupted"),
           "the next save removes the temp directory and the one without DONE");
    avsr_ckpt_notes_free(&notes);

    /* 6. saving a step that is already complete is refused */
    rc = save_model(&m, stage, 3, 0.3, NULL, NULL, &err);
    tap_ok(rc < 0 && strstr(err.msg, "already exists"), "a complete step is not overwritten: %s",
           err.msg);
    avsr_error_clear(&err);

    /* 7. empty stage: a fresh start */
    model_free(&r);
    model_new(&r, 3);
    rc = restore_model(&r, pth("%s/nothing", base), &l, NULL, &err);
    tap_ok(rc == 0, "restore from a stage without checkpoints returns 0 (fresh start)");
    model_free(&r);
    model_free(&r2);
    model_free(&r3);
    model_free(&snap);
    model_free(&m);
}

/* ---- mismatches ----------------------------------------------------------- */

static void test_mismatch(void)
{
    const char *stage = pth("%s/crash", base); /* step-3 from test_crash_leftovers */
    avsr_error err = {0};
    avsr_ckpt_loaded l;
    avsr_params *p;
    avsr_optim_cfg c = avsr_optim_defaults(AVSR_OPTIM_ADAMW);
    avsr_optim *opt = avsr_optim_create(&c, &err);
    int64_t sw[2] = {DOUT, DIN}, sb[1] = {DOUT}, sw2[2] = {DOUT, DIN + 1}, sf[1] = {2};

    /* wrong shape */
    p = avsr_params_create();
    avsr_params_add(p, "lin.weight", 2, sw2, &err);
    avsr_params_add(p, "lin.bias", 1, sb, &err);
    avsr_params_add(p, "frozen.w", 1, sf, &err);
    avsr_params_add_buffer(p, "bn.running_mean", AVSR_F32, 1, sb, &err);
    avsr_params_add_buffer(p, "bn.num_batches_tracked", AVSR_I64, 0, NULL, &err);
    avsr_params_finalize(p, &err);
    avsr_params_data(p)[0] = 42.0f;
    int rc = avsr_ckpt_restore(stage, p, opt, NULL, 0, &l, NULL, &err);
    tap_ok(rc < 0 && strstr(err.msg, "tensor 'lin.weight' has shape [5, 3], expected [5, 4]") &&
               avsr_params_data(p)[0] == 42.0f,
           "wrong shape: %s (nothing modified)", err.msg);
    avsr_error_clear(&err);
    avsr_params_destroy(p);

    /* missing in the file */
    p = avsr_params_create();
    avsr_params_add(p, "lin.weight", 2, sw, &err);
    avsr_params_add(p, "lin.bias", 1, sb, &err);
    avsr_params_add(p, "frozen.w", 1, sf, &err);
    avsr_params_add(p, "extra.w", 1, sf, &err);
    avsr_params_add_buffer(p, "bn.running_mean", AVSR_F32, 1, sb, &err);
    avsr_params_add_buffer(p, "bn.num_batches_tracked", AVSR_I64, 0, NULL, &err);
    avsr_params_finalize(p, &err);
    rc = avsr_ckpt_restore(stage, p, opt, NULL, 0, &l, NULL, &err);
    tap_ok(rc < 0 && strstr(err.msg, "model.safetensors: tensor 'extra.w' is missing"),
           "missing tensor: %s", err.msg);
    avsr_error_clear(&err);
    avsr_params_destroy(p);

    /* not in the model; wrong dtype */
    p = avsr_params_create();
    avsr_params_add(p, "lin.weight", 2, sw, &err);
    avsr_params_add(p, "lin.bias", 1, sb, &err);
    avsr_params_add_buffer(p, "bn.running_mean", AVSR_F32, 1, sb, &err);
    avsr_params_add_buffer(p, "bn.num_batches_tracked", AVSR_I64, 0, NULL, &err);
    avsr_params_finalize(p, &err);
    rc = avsr_ckpt_restore(stage, p, opt, NULL, 0, &l, NULL, &err);
    tap_ok(rc < 0 && strstr(err.msg, "tensor 'frozen.w' is not in the model"),
           "unexpected tensor: %s", err.msg);
    avsr_error_clear(&err);
    avsr_params_destroy(p);

    p = avsr_params_create();
    avsr_params_add(p, "lin.weight", 2, sw, &err);
    avsr_params_add(p, "lin.bias", 1, sb, &err);
    avsr_params_add(p, "frozen.w", 1, sf, &err);
    avsr_params_add_buffer(p, "bn.running_mean", AVSR_F32, 1, sb, &err);
    avsr_params_add_buffer(p, "bn.num_batches_tracked", AVSR_I32, 0, NULL, &err);
    avsr_params_finalize(p, &err);
    rc = avsr_ckpt_restore(stage, p, opt, NULL, 0, &l, NULL, &err);
    tap_ok(rc < 0 && strstr(err.msg, "tensor 'bn.num_batches_tracked' is I64, the model has I32"),
           "wrong dtype: %s", err.msg);
    avsr_error_clear(&err);
    avsr_params_destroy(p);

    /* right model, wrong optimizer / missing moment / missing item */
    model m;
    model_new(&m, 1);
    avsr_optim_cfg sc = avsr_optim_defaults(AVSR_OPTIM_SGD);
    sc.momentum = 0.9;
    avsr_optim *sgd = avsr_optim_create(&sc, &err);
    rc = avsr_ckpt_restore(stage, m.p, sgd, NULL, 0, &l, NULL, &err);
    tap_ok(rc < 0 && strstr(err.msg, "optimizer state is for 'adamw' (2 moments), this run uses "
                                     "'sgd' (1 moments)"),
           "optimizer type: %s", err.msg);
    avsr_error_clear(&err);
    avsr_optim_destroy(sgd);

    avsr_params_set_requires_grad(m.p, "frozen.*", true);
    rc = avsr_ckpt_restore(stage, m.p, m.opt, NULL, 0, &l, NULL, &err);
    tap_ok(rc < 0 && strstr(err.msg, "tensor 'optim.m.frozen.w' is missing"),
           "moment missing for a trainable parameter: %s", err.msg);
    avsr_error_clear(&err);
    avsr_params_set_requires_grad(m.p, "frozen.*", false);

    int64_t cur[3];
    avsr_ckpt_item it[2] = {{"sampler.cursor", AVSR_I64, 3, cur}, {"rng.nope", AVSR_U8, 4, cur}};
    rc = avsr_ckpt_restore(stage, m.p, m.opt, it, 1, &l, NULL, &err);
    tap_ok(rc < 0 && strstr(err.msg, "tensor 'sampler.cursor' has shape [2], expected [3]"),
           "state item of another size: %s", err.msg);
    avsr_error_clear(&err);
    rc = avsr_ckpt_restore(stage, m.p, m.opt, it + 1, 1, &l, NULL, &err);
    tap_ok(rc < 0 && strstr(err.msg, "state item 'rng.nope' is missing"),
           "state item missing: %s", err.msg);
    avsr_error_clear(&err);

    /* bad save requests */
    avsr_ckpt_item bad = {"optim.x", AVSR_U8, 1, cur};
    avsr_ckpt_save_info info = {.step = 50, .items = &bad, .n_items = 1};
    rc = avsr_ckpt_save(stage, m.p, m.opt, &info, NULL, NULL, &err);
    tap_ok(rc < 0 && strstr(err.msg, "reserved name") && !exists(pth("%s/ckpt/step-50", stage)),
           "reserved item name refused: %s", err.msg);
    avsr_error_clear(&err);
    avsr_ckpt_metric nanm = {"wer", 0.0 / 0.0};
    avsr_ckpt_save_info info2 = {.step = 51, .metrics = &nanm, .n_metrics = 1};
    rc = avsr_ckpt_save(stage, m.p, m.opt, &info2, NULL, NULL, &err);
    tap_ok(rc < 0 && strstr(err.msg, "metric 'wer'"), "non-finite metric refused: %s", err.msg);
    avsr_error_clear(&err);
    model_free(&m);
    avsr_optim_destroy(opt);
}

/* ---- retention ------------------------------------------------------------ */

static void test_retention(void)
{
    const char *stage = pth("%s/ret", base);
    avsr_error err = {0};
    model m;
    model_new(&m, 1);
    static const double wer[7] = {0, 0.5, 0.2, 0.4, 0.6, 0.7, 0.8};
    avsr_ckpt_retention ret = {.keep_last = 2, .keep_best = 1, .metric = "wer"};
    int rc = 0;
    avsr_ckpt_notes notes = {0};
    for (int s = 1; s <= 6 && rc == 0; s++)
        rc = save_model(&m, stage, s, wer[s], &ret, &notes, &err);
    bool present[7];
    for (int s = 1; s <= 6; s++)
        present[s] = exists(pth("%s/ckpt/step-%d", stage, s));
    tap_ok(rc == 0 && !present[1] && present[2] && !present[3] && !present[4] && present[5] &&
               present[6] && notes_have(&notes, "removed by retention"),
           "keep_last 2 + keep_best 1 (wer, lower better): steps 2, 5, 6 kept");
    avsr_ckpt_notes_free(&notes);
    char buf[256] = "";
    ssize_t n = readlink(pth("%s/best", stage), buf, sizeof buf - 1);
    if (n > 0)
        buf[n] = '\0';
    tap_ok(n > 0 && strcmp(buf, "ckpt/step-2") == 0, "best -> ckpt/step-2 (got '%s')", buf);
    avsr_ckpt_list l;
    rc = avsr_ckpt_index_read(pth("%s/ckpt", stage), &l, NULL, &err);
    tap_ok(rc == 0 && l.n == 3 && l.e[0].step == 2 && l.e[1].step == 5 && l.e[2].step == 6,
           "index.json lists exactly the kept checkpoints");
    avsr_ckpt_list_free(&l);

    /* higher is better, keep_last 1: the best by "wer" (highest) and the newest */
    avsr_ckpt_retention ret2 = {.keep_last = 1, .keep_best = 1, .metric = "wer",
                                .higher_better = true};
    rc = save_model(&m, stage, 7, 0.1, &ret2, NULL, &err);
    n = readlink(pth("%s/best", stage), buf, sizeof buf - 1);
    if (n > 0)
        buf[n] = '\0';
    tap_ok(rc == 0 && exists(pth("%s/ckpt/step-6", stage)) &&
               exists(pth("%s/ckpt/step-7", stage)) && !exists(pth("%s/ckpt/step-2", stage)) &&
               !exists(pth("%s/ckpt/step-5", stage)) && strcmp(buf, "ckpt/step-6") == 0,
           "higher-better: step 6 (wer 0.8, best) and step 7 (newest) kept, best -> step-6");
    /* keep_last 0: nothing deleted */
    avsr_ckpt_retention ret3 = {.keep_last = 0, .keep_best = 0};
    rc = save_model(&m, stage, 8, 0.9, &ret3, NULL, &err);
    tap_ok(rc == 0 && exists(pth("%s/ckpt/step-6", stage)) &&
               exists(pth("%s/ckpt/step-7", stage)) && exists(pth("%s/ckpt/step-8", stage)) &&
               !exists(pth("%s/best", stage)),
           "keep_last 0 keeps everything; no metric, no best symlink");
    /* the newest survives even keep_last 1 with keep_best by a metric */
    avsr_ckpt_retention ret4 = {.keep_last = 1, .keep_best = 0, .metric = "wer"};
    rc = save_model(&m, stage, 9, 5.0, &ret4, NULL, &err);
    tap_ok(rc == 0 && exists(pth("%s/ckpt/step-9", stage)) &&
               !exists(pth("%s/ckpt/step-8", stage)),
           "keep_last 1: only the newest kept");
    model_free(&m);
}

/* ---- recipe diff ---------------------------------------------------------- */

static void test_recipe_diff(void)
{
    avsr_kv a[] = {{"optim.lr", "0.001"}, {"data.noise", "babble"}, {"model.d", "256"},
                   {"run.seed", "1"}};
    avsr_kv b[] = {{"run.seed", "1"}, {"model.d", "256"}, {"optim.lr", "0.002"},
                   {"stages.x", "y"}};
    char *names = NULL;
    int n = avsr_ckpt_recipe_diff(a, 4, b, 4, &names);
    tap_ok(n == 3 && names && strstr(names, "optim.lr: '0.001' -> '0.002'") &&
               strstr(names, "data.noise: only in the checkpoint") &&
               strstr(names, "stages.x: only in the current recipe") && !strstr(names, "seed"),
           "recipe diff names changed, removed and added keys: %s", names ? names : "(null)");
    free(names);
    n = avsr_ckpt_recipe_diff(a, 4, a, 4, &names);
    tap_ok(n == 0 && names && !*names, "identical recipes: no difference");
    free(names);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--resume-child") == 0)
        return resume_child(argv[2], argv[3]);
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/avsr-ckpt-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base))
        tap_bail("mkdtemp %s: %s", base, strerror(errno));
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        tap_bail("cannot find /proc/self/exe");
    self[n] = '\0';
    test_kill9();
    test_exact_resume(self);
    test_layout();
    test_crash_leftovers();
    test_mismatch();
    test_retention();
    test_recipe_diff();
    if (!tap_failed())
        rm_rf(base);
    else
        tap_diag("scratch directory kept: %s", base);
    return tap_done();
}
