/* test_average: checkpoint averaging (train/average.h, avsr-avg).
 *
 * - the average of three fixture checkpoints (tests/golden/gen_avg.py,
 *   numpy) equals numpy's bit for bit: F32, F64, F16 means with double
 *   accumulation, I64/I32 floor division (negative sums included);
 * - metadata: sources (paths and steps), the model config and vocabulary
 *   (which must agree across the inputs: a disagreement is a message);
 * - tensors larger than one streaming chunk;
 * - mismatched inputs (names, shapes, dtypes, a truncated file): a message
 *   naming the tensor and both files, and no output;
 * - atomicity: a failed run leaves an existing output unchanged and no
 *   temporary file;
 * - --last / --best selection from index.json (and from DONE files without
 *   an index), with a stale index entry skipped;
 * - the avsr-avg program (when $top_builddir is set). */
#define _GNU_SOURCE /* vasprintf */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "params.h"
#include "safetensors.h"
#include "tap.h"
#include "testutil.h"
#include "train/average.h"
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

static int count_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        n += strstr(de->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return n;
}

static char *slurp(const char *path, size_t *len)
{
    void *b = NULL;
    avsr_error err = {0};
    if (avsr_file_read_all(path, &b, len, &err) < 0)
        return NULL;
    return b;
}

/* ---- golden --------------------------------------------------------------- */

static void test_golden(void)
{
    char p0[4096], p1[4096], p2[4096];
    snprintf(p0, sizeof p0, "%s", tu_srcpath("tests/golden/ops/avg_0.safetensors"));
    snprintf(p1, sizeof p1, "%s", tu_srcpath("tests/golden/ops/avg_1.safetensors"));
    snprintf(p2, sizeof p2, "%s", tu_srcpath("tests/golden/ops/avg_2.safetensors"));
    const char *in[3] = {p0, p1, p2};
    const char *out = pth("%s/avg.safetensors", base);
    avsr_error err = {0};
    int rc = avsr_avg_files(in, NULL, 3, out, &err);
    tap_ok(rc == 0, "average of the 3 fixture checkpoints%s%s", rc ? ": " : "", rc ? err.msg : "");
    avsr_st *got = avsr_st_open(out, &err);
    avsr_st *want = tu_golden_open("avg_expected");
    if (!got)
        tap_bail("%s", err.msg);
    tap_ok(avsr_st_count(got) == avsr_st_count(want) && avsr_st_count(got) == 10,
           "all 10 tensors present");
    for (int i = 0; i < avsr_st_count(want); i++) {
        avsr_st_tensor w, g;
        avsr_st_get(want, i, &w);
        bool ok = avsr_st_find(got, w.name, &g) == 0 && g.dtype == w.dtype && g.ndim == w.ndim &&
                  g.nbytes == w.nbytes && memcmp(g.data, w.data, w.nbytes) == 0;
        tap_ok(ok, "%s (%s) equals numpy's average bit for bit", w.name,
               avsr_dtype_name(w.dtype));
    }
    /* metadata */
    const char *src = avsr_st_meta(got, "avsr.avg.sources");
    json_error_t je;
    json_t *j = src ? json_loads(src, 0, &je) : NULL;
    bool ok = json_is_array(j) && json_array_size(j) == 3;
    for (size_t i = 0; ok && i < 3; i++) {
        json_t *e = json_array_get(j, i);
        ok = json_is_string(json_object_get(e, "path")) &&
             strcmp(json_string_value(json_object_get(e, "path")), in[i]) == 0 &&
             json_integer_value(json_object_get(e, "step")) == (json_int_t)(100 * (i + 1));
    }
    json_decref(j);
    tap_ok(ok, "avsr.avg.sources lists the 3 paths with steps 100, 200, 300");
    const char *mc = avsr_st_meta(got, "avsr.model");
    tap_ok(mc && strcmp(mc, "{\"d_model\": 7}") == 0 && avsr_st_meta(got, "avsr.tokenizer") &&
               strcmp(avsr_st_meta(got, "format"), "pt") == 0 &&
               strcmp(avsr_st_meta(got, "avsr.avg.count"), "3") == 0 &&
               avsr_st_meta(got, "avsr.step") == NULL,
           "model config and vocabulary copied from the first input; no avsr.step");
    avsr_st_close(got);
    avsr_st_close(want);

    /* steps given explicitly win */
    int64_t steps[3] = {7, -1, 9};
    rc = avsr_avg_files(in, steps, 3, out, &err);
    got = avsr_st_open(out, &err);
    src = got ? avsr_st_meta(got, "avsr.avg.sources") : NULL;
    tap_ok(rc == 0 && src && strstr(src, "\"step\":7") && strstr(src, "\"step\":200") &&
               strstr(src, "\"step\":9"),
           "explicit steps recorded, -1 falls back to the file's avsr.step");
    avsr_st_close(got);

    /* one input: a copy */
    rc = avsr_avg_files(in, NULL, 1, out, &err);
    size_t la, lb;
    got = avsr_st_open(out, &err);
    avsr_st *first = avsr_st_open(p0, &err);
    ok = rc == 0 && got && first;
    for (int i = 0; ok && i < avsr_st_count(first); i++) {
        avsr_st_tensor a, b;
        avsr_st_get(first, i, &a);
        ok = avsr_st_find(got, a.name, &b) == 0 && memcmp(a.data, b.data, a.nbytes) == 0;
    }
    (void)la;
    (void)lb;
    tap_ok(ok, "averaging one file copies its tensors");
    avsr_st_close(got);
    avsr_st_close(first);
}

/* ---- big tensors, mismatches, atomicity ----------------------------------- */

static void write_st(const char *path, int n, const char *const *names, const avsr_dtype *dt,
                     const int *ndim, const int64_t (*shape)[2], const void *const *data)
{
    avsr_error err = {0};
    avsr_st_writer *w = avsr_st_writer_create();
    for (int i = 0; i < n; i++)
        avsr_st_writer_add(w, names[i], dt[i], ndim[i], shape[i], data[i], &err);
    if (avsr_st_writer_write(w, path, &err) < 0)
        tap_bail("%s", err.msg);
    avsr_st_writer_destroy(w);
}

/* One F32 tensor "a" [6] with the model-file metadata (NULL: left out). */
static void write_st_meta(const char *path, const float *x, const char *model, const char *tok)
{
    avsr_error err = {0};
    avsr_st_writer *w = avsr_st_writer_create();
    int64_t s[1] = {6};
    avsr_st_writer_add(w, "a", AVSR_F32, 1, s, x, &err);
    if (model)
        avsr_st_writer_meta(w, "avsr.model", model, &err);
    if (tok)
        avsr_st_writer_meta(w, "avsr.tokenizer", tok, &err);
    if (avsr_st_writer_write(w, path, &err) < 0)
        tap_bail("%s", err.msg);
    avsr_st_writer_destroy(w);
}

static void test_big(void)
{
    enum { N = 3 * AVSR_AVG_CHUNK + 123 };
    float *a = malloc(sizeof(float) * N), *b = malloc(sizeof(float) * N);
    tu_fill_uniform(a, N, 1, -2, 2);
    tu_fill_uniform(b, N, 2, -2, 2);
    const char *names[1] = {"w"};
    avsr_dtype dt[1] = {AVSR_F32};
    int nd[1] = {1};
    int64_t sh[1][2] = {{N, 0}};
    const void *da[1] = {a}, *db[1] = {b};
    const char *pa = pth("%s/big_a.safetensors", base), *pb = pth("%s/big_b.safetensors", base);
    write_st(pa, 1, names, dt, nd, sh, da);
    write_st(pb, 1, names, dt, nd, sh, db);
    const char *in[2] = {pa, pb};
    const char *out = pth("%s/big_avg.safetensors", base);
    avsr_error err = {0};
    int rc = avsr_avg_files(in, NULL, 2, out, &err);
    avsr_st *st = rc == 0 ? avsr_st_open(out, &err) : NULL;
    avsr_st_tensor t;
    bool ok = st && avsr_st_find(st, "w", &t) == 0 && t.numel == N;
    for (int64_t i = 0; ok && i < N; i++) {
        float v, e = (float)(((double)a[i] + (double)b[i]) / 2);
        memcpy(&v, (const char *)t.data + 4 * i, 4);
        ok = v == e;
    }
    tap_ok(ok, "a tensor of %d elements (several streaming chunks) averaged exactly", N);
    avsr_st_close(st);
    free(a);
    free(b);
}

static void test_mismatch(void)
{
    float x[6] = {1, 2, 3, 4, 5, 6};
    double xd[6] = {1, 2, 3, 4, 5, 6};
    const char *na[2] = {"a", "b"}, *nb[2] = {"a", "c"};
    avsr_dtype f2[2] = {AVSR_F32, AVSR_F32}, fd[2] = {AVSR_F32, AVSR_F64};
    int nd[2] = {2, 1};
    int64_t s1[2][2] = {{2, 3}, {6, 0}}, s2[2][2] = {{3, 2}, {6, 0}};
    const void *d1[2] = {x, x}, *d2[2] = {x, xd};
    const char *A = pth("%s/m_a.safetensors", base), *B = pth("%s/m_names.safetensors", base);
    const char *C = pth("%s/m_shape.safetensors", base), *D = pth("%s/m_dtype.safetensors", base);
    const char *E = pth("%s/m_fewer.safetensors", base);
    write_st(A, 2, na, f2, nd, s1, d1);
    write_st(B, 2, nb, f2, nd, s1, d1);
    write_st(C, 2, na, f2, nd, s2, d1);
    write_st(D, 2, na, fd, nd, s1, d2);
    write_st(E, 1, na, f2, nd, s1, d1);
    const char *out = pth("%s/m_out.safetensors", base);
    static const char old[] = "previous output";
    FILE *f = fopen(out, "wb");
    fwrite(old, 1, sizeof old, f);
    fclose(f);
    avsr_error err = {0};
    char want[2048];

    const char *in1[3] = {A, A, B};
    int rc = avsr_avg_files(in1, NULL, 3, out, &err);
    snprintf(want, sizeof want, "avsr-avg: tensor 'b' is in %s but not in %s", A, B);
    tap_ok(rc < 0 && strcmp(err.msg, want) == 0, "different names: %s", err.msg);
    avsr_error_clear(&err);

    const char *in2[2] = {A, C};
    rc = avsr_avg_files(in2, NULL, 2, out, &err);
    snprintf(want, sizeof want, "avsr-avg: tensor 'a' has shape [2, 3] in %s but [3, 2] in %s", A,
             C);
    tap_ok(rc < 0 && strcmp(err.msg, want) == 0, "different shapes: %s", err.msg);
    avsr_error_clear(&err);

    const char *in3[2] = {A, D};
    rc = avsr_avg_files(in3, NULL, 2, out, &err);
    snprintf(want, sizeof want, "avsr-avg: tensor 'b' is F32 in %s but F64 in %s", A, D);
    tap_ok(rc < 0 && strcmp(err.msg, want) == 0, "different dtypes: %s", err.msg);
    avsr_error_clear(&err);

    const char *in4[2] = {E, A};
    rc = avsr_avg_files(in4, NULL, 2, out, &err);
    snprintf(want, sizeof want, "avsr-avg: tensor 'b' is in %s but not in %s", A, E);
    tap_ok(rc < 0 && strcmp(err.msg, want) == 0, "a tensor only in a later input: %s", err.msg);
    avsr_error_clear(&err);

    /* the model configuration and the vocabulary must agree */
    const char *M1 = pth("%s/m_meta1.safetensors", base), *M2 = pth("%s/m_meta2.safetensors", base);
    const char *M3 = pth("%s/m_meta3.safetensors", base);
    write_st_meta(M1, x, "{\"d\": 1}", "{\"t\": 1}");
    write_st_meta(M2, x, "{\"d\": 2}", "{\"t\": 1}");
    write_st_meta(M3, x, NULL, "{\"t\": 1}");
    const char *in7[2] = {M1, M2};
    rc = avsr_avg_files(in7, NULL, 2, out, &err);
    snprintf(want, sizeof want,
             "avsr-avg: metadata 'avsr.model' differs between %s and %s (checkpoints of "
             "different model configurations cannot be averaged)", M1, M2);
    tap_ok(rc < 0 && strcmp(err.msg, want) == 0, "different model configurations: %s", err.msg);
    avsr_error_clear(&err);
    const char *in8[2] = {M1, M3};
    rc = avsr_avg_files(in8, NULL, 2, out, &err);
    snprintf(want, sizeof want, "avsr-avg: metadata 'avsr.model' is in %s but not in %s", M1, M3);
    tap_ok(rc < 0 && strcmp(err.msg, want) == 0, "model configuration in one input only: %s",
           err.msg);
    avsr_error_clear(&err);
    write_st_meta(M2, x, "{\"d\": 1}", "{\"t\": 2}");
    rc = avsr_avg_files(in7, NULL, 2, out, &err);
    snprintf(want, sizeof want,
             "avsr-avg: metadata 'avsr.tokenizer' differs between %s and %s (checkpoints of "
             "different vocabularies cannot be averaged)", M1, M2);
    tap_ok(rc < 0 && strcmp(err.msg, want) == 0, "different vocabularies: %s", err.msg);
    avsr_error_clear(&err);

    /* a truncated input */
    const char *T = pth("%s/m_trunc.safetensors", base);
    size_t len;
    char *buf = slurp(A, &len);
    f = fopen(T, "wb");
    fwrite(buf, 1, len - 4, f);
    fclose(f);
    free(buf);
    const char *in5[2] = {A, T};
    rc = avsr_avg_files(in5, NULL, 2, out, &err);
    tap_ok(rc < 0 && strstr(err.msg, "m_trunc.safetensors: tensor 'b': data_offsets end") &&
               strstr(err.msg, "truncated?"),
           "truncated input: %s", err.msg);
    avsr_error_clear(&err);

    const char *in6[2] = {A, pth("%s/nope.safetensors", base)};
    rc = avsr_avg_files(in6, NULL, 2, out, &err);
    tap_ok(rc < 0 && strstr(err.msg, "nope.safetensors: cannot open"), "missing input: %s",
           err.msg);
    avsr_error_clear(&err);

    buf = slurp(out, &len);
    tap_ok(buf && len == sizeof old && memcmp(buf, old, len) == 0 && count_tmp(base) == 0,
           "after the failures the old output is unchanged and no temporary file is left");
    free(buf);

    rc = avsr_avg_files(in1, NULL, 2, pth("%s/no/such/dir/out.safetensors", base), &err);
    tap_ok(rc < 0 && strstr(err.msg, "cannot create"), "output directory missing: %s", err.msg);
    avsr_error_clear(&err);

    rc = avsr_avg_files(in1, NULL, 2, out, &err);
    avsr_st *st = rc == 0 ? avsr_st_open(out, &err) : NULL;
    tap_ok(st && count_tmp(base) == 0, "a successful run replaces the output, no temporary left");
    avsr_st_close(st);
}

/* ---- selection ------------------------------------------------------------ */

static void make_stage(const char *stage)
{
    avsr_error err = {0};
    avsr_params *p = avsr_params_create();
    int64_t s[1] = {4};
    avsr_tensor *w = avsr_params_add(p, "w", 1, s, &err);
    avsr_tensor *c = avsr_params_add_buffer(p, "n", AVSR_I64, 0, NULL, &err);
    avsr_params_finalize(p, &err);
    static const double wer[5] = {0, 0.3, 0.1, 0.4, 0.2};
    for (int k = 1; k <= 4; k++) {
        for (int i = 0; i < 4; i++)
            avsr_f32(w)[i] = (float)(k * 10 + i);
        ((int64_t *)c->data)[0] = k;
        avsr_ckpt_metric m[2] = {{"wer", wer[k]}, {"acc", 1 - wer[k]}};
        avsr_ckpt_save_info info = {.step = 100 * k, .epoch = k, .model_config = "{\"m\":1}",
                                    .metrics = m, .n_metrics = k == 3 ? 1 : 2};
        if (avsr_ckpt_save(stage, p, NULL, &info, NULL, NULL, &err) < 0)
            tap_bail("stage: %s", err.msg);
    }
    avsr_params_destroy(p);
}

static bool picked(char **paths, int64_t *steps, int n, const int64_t *want, int nw)
{
    if (n != nw)
        return false;
    for (int i = 0; i < n; i++)
        if (steps[i] != want[i] || !strstr(paths[i], "/model.safetensors"))
            return false;
    return true;
}

static void test_select(void)
{
    const char *stage = pth("%s/stage", base);
    make_stage(stage);
    avsr_error err = {0};
    char **paths;
    int64_t *steps;
    avsr_ckpt_notes notes = {0};
    int rc = avsr_avg_select(pth("%s/ckpt", stage), AVSR_AVG_LAST, 2, NULL, false, &paths, &steps,
                             &notes, &err);
    tap_ok(rc == 0 && picked(paths, steps, 2, (int64_t[]){300, 400}, 2),
           "--last 2 from index.json: steps 300, 400");
    avsr_avg_selection_free(paths, steps, rc == 0 ? 2 : 0);
    rc = avsr_avg_select(stage, AVSR_AVG_BEST, 2, "wer", false, &paths, &steps, &notes, &err);
    tap_ok(rc == 0 && picked(paths, steps, 2, (int64_t[]){200, 400}, 2),
           "--best 2 --metric wer (lower better), given the stage directory: steps 200, 400");
    avsr_avg_selection_free(paths, steps, rc == 0 ? 2 : 0);
    rc = avsr_avg_select(stage, AVSR_AVG_BEST, 2, "acc", true, &paths, &steps, &notes, &err);
    tap_ok(rc == 0 && picked(paths, steps, 2, (int64_t[]){200, 400}, 2),
           "--best 2 --metric acc --higher-better: steps 200, 400 (step 300 has no acc)");
    avsr_avg_selection_free(paths, steps, rc == 0 ? 2 : 0);
    rc = avsr_avg_select(stage, AVSR_AVG_BEST, 4, "acc", true, &paths, &steps, &notes, &err);
    tap_ok(rc < 0 && strstr(err.msg, "has 3 checkpoint(s) with metric 'acc', --best 4 asked"),
           "too few with the metric: %s", err.msg);
    avsr_error_clear(&err);
    rc = avsr_avg_select(stage, AVSR_AVG_LAST, 5, NULL, false, &paths, &steps, &notes, &err);
    tap_ok(rc < 0 && strstr(err.msg, "has 4 complete checkpoint(s), --last 5 asked"),
           "too few checkpoints: %s", err.msg);
    avsr_error_clear(&err);

    /* a stale index entry (DONE gone) is skipped */
    unlink(pth("%s/ckpt/step-400/DONE", stage));
    rc = avsr_avg_select(stage, AVSR_AVG_LAST, 2, NULL, false, &paths, &steps, &notes, &err);
    bool noted = false;
    for (int i = 0; i < notes.n; i++)
        noted |= strstr(notes.msg[i], "step-400: listed in") != NULL;
    tap_ok(rc == 0 && picked(paths, steps, 2, (int64_t[]){200, 300}, 2) && noted,
           "index entry without DONE skipped with a note: steps 200, 300");
    avsr_avg_selection_free(paths, steps, rc == 0 ? 2 : 0);
    avsr_ckpt_notes_free(&notes);

    /* without index.json: the DONE files */
    unlink(pth("%s/ckpt/index.json", stage));
    rc = avsr_avg_select(stage, AVSR_AVG_BEST, 1, "wer", false, &paths, &steps, &notes, &err);
    tap_ok(rc == 0 && picked(paths, steps, 1, (int64_t[]){200}, 1),
           "without index.json the DONE files are used: --best 1 -> step 200");
    avsr_avg_selection_free(paths, steps, rc == 0 ? 1 : 0);
    avsr_ckpt_notes_free(&notes);

    /* average of the selection: w = mean, n floor-divided */
    rc = avsr_avg_select(stage, AVSR_AVG_LAST, 3, NULL, false, &paths, &steps, &notes, &err);
    const char *out = pth("%s/sel.safetensors", base);
    int rc2 = rc == 0 ? avsr_avg_files((const char *const *)paths, steps, 3, out, &err) : -1;
    avsr_st *st = rc2 == 0 ? avsr_st_open(out, &err) : NULL;
    avsr_st_tensor t;
    float w[4];
    bool ok = st && avsr_st_find(st, "w", &t) == 0;
    if (ok)
        memcpy(w, t.data, sizeof w);
    ok = ok && w[0] == 20.0f && w[3] == 23.0f && avsr_st_find(st, "n", &t) == 0 &&
         *(const int64_t *)t.data == 2; /* (1 + 2 + 3) // 3 */
    tap_ok(ok && strstr(avsr_st_meta(st, "avsr.avg.sources"), "\"step\":300") &&
               strcmp(avsr_st_meta(st, "avsr.model"), "{\"m\":1}") == 0,
           "average of steps 100-300: mean weights, integer buffer floor-divided, sources");
    avsr_st_close(st);
    avsr_avg_selection_free(paths, steps, rc == 0 ? 3 : 0);
    avsr_ckpt_notes_free(&notes);
}

/* ---- the program ---------------------------------------------------------- */

static void test_cli(void)
{
    const char *top = getenv("top_builddir");
    const char *prog = top ? pth("%s/avsr-avg", top) : NULL;
    if (!prog || access(prog, X_OK) != 0) {
        tap_skip("avsr-avg not found ($top_builddir unset)", "avsr-avg program");
        return;
    }
    const char *stage = pth("%s/stage", base);
    const char *out = pth("%s/cli.safetensors", base);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' -q --best 2 --metric wer '%s' -o '%s'", prog, stage, out);
    int rc = system(cmd);
    tap_ok(rc == 0 && exists(out), "avsr-avg --best 2 --metric wer DIR -o OUT");
    snprintf(cmd, sizeof cmd, "'%s' -q -o '%s' '%s/m_a.safetensors' '%s/m_a.safetensors'", prog,
             out, base, base);
    rc = system(cmd);
    tap_ok(rc == 0, "avsr-avg -o OUT FILE FILE");
    snprintf(cmd, sizeof cmd, "'%s' --last 2 '%s' 2>/dev/null", prog, stage);
    rc = system(cmd);
    tap_ok(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "no -o: usage error, exit 2");
    snprintf(cmd, sizeof cmd, "'%s' -q -o '%s' '%s/m_a.safetensors' '%s/m_dtype.safetensors' "
                              "2>/dev/null", prog, out, base, base);
    rc = system(cmd);
    tap_ok(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "mismatched inputs: exit 1");
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/avsr-avg-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base))
        tap_bail("mkdtemp %s: %s", base, strerror(errno));
    test_golden();
    test_big();
    test_mismatch();
    test_select();
    test_cli();
    if (!tap_failed()) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
        if (system(cmd) != 0)
            tap_diag("cannot remove %s", base);
    } else {
        tap_diag("scratch directory kept: %s", base);
    }
    return tap_done();
}
