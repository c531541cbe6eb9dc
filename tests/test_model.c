/* test_model: the assembled AV model (models/avsr_model.h) against a
 * PyTorch replica of Auto-AVSR's AV model (tests/golden/gen_model.py):
 * the replica's state dict loads through models/maps/auto_avsr_av.map, and
 * outputs, losses, accuracy and every parameter gradient match. Also: name
 * map errors, the AAH-style map, the summary table and the parameter counts
 * of the full Auto-AVSR size (registered, never allocated) against the
 * replica's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fe_golden.h"
#include "models/avsr_model.h"
#include "models/builder.h"
#include "ops.h"
#include "safetensors.h"
#include "tap.h"
#include "tape.h"
#include "testutil.h"
#include "yamltree.h"

/* The replica's sizes as a recipe `model:` section (gen_model.py CFG). */
static const char *TINY_YAML =
    "model:\n"
    "  video: {width: 4, depth: [1, 1, 1, 1], roi: 20}\n"
    "  audio: {features: wave, width: 4, depth: [1, 1, 1, 1]}\n"
    "  fusion: {type: concat_mlp, hidden: 32}\n"
    "  encoder: {layers: 2, dim: 16, heads: 2, ffn: 32, conv_kernel: 5, dropout: 0.0}\n"
    "  decoder: {layers: 1, dropout: 0.0}\n"
    "  ctc_weight: 0.3\n"
    "  ctc_dropout: 0.0\n"
    "  label_smoothing: 0.1\n";

static avsr_model *build_yaml(const char *text, int V, avsr_params **pp, bool finalize)
{
    avsr_error err = {0};
    avsr_yaml *y = avsr_yaml_load_string("tiny.yaml", text, strlen(text), &err);
    avsr_ynode *model = NULL;
    avsr_model *m = NULL;
    avsr_params *p = avsr_params_create();
    if (!y || avsr_yaml_get_map(y, avsr_yaml_root(y), "recipe", "model", true, &model, &err) < 0 ||
        avsr_model_build(y, model, V, &m, p, &err) < 0 ||
        (finalize && (avsr_params_finalize(p, &err) < 0 || avsr_params_init(p, 1, &err) < 0)))
        tap_bail("build: %s", err.msg);
    avsr_yaml_free(y);
    *pp = p;
    return m;
}

static const char *map_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "models/maps/%s", name);
    return tu_srcpath(buf);
}

static const char *fixture_path(const char *name)
{
    static char buf[2][512];
    static int k;
    char rel[256];
    snprintf(rel, sizeof rel, "tests/golden/ops/%s", name);
    char *b = buf[k++ & 1];
    snprintf(b, sizeof buf[0], "%s", tu_srcpath(rel));
    return b;
}

static void load_sd(avsr_params *p)
{
    avsr_error err = {0};
    int n = avsr_model_load_mapped(p, fixture_path("model_sd.safetensors"),
                                   map_path("auto_avsr_av.map"), &err);
    if (n != avsr_params_count(p))
        tap_bail("load through auto_avsr_av.map: %d of %d (%s)", n, avsr_params_count(p), err.msg);
}

static void check_scalar(avsr_st *st, const char *key, double got, const char *what)
{
    avsr_tensor *w = tu_golden_tensor(st, key, false);
    double want = avsr_f32(w)[0], rel = fabs(got - want) / fmax(fabs(want), 1e-6);
    tap_ok(rel <= 1e-4, "%s = %.6f (torch %.6f, rel err %.1e)", what, got, want, rel);
    avsr_tensor_free(w);
}

static void golden_case(avsr_ctx *ctx, avsr_st *st, avsr_model *m, avsr_params *p,
                        const char *c, bool train)
{
    char key[128];
    load_sd(p);
    avsr_params_zero_grad(p);
    avsr_ctx_set_training(ctx, train);
    avsr_ctx_set_grad(ctx, train);
    snprintf(key, sizeof key, "%s.video", c);
    avsr_tensor *video = tu_golden_tensor(st, key, false);
    snprintf(key, sizeof key, "%s.audio", c);
    avsr_tensor *audio = tu_golden_tensor(st, key, false);
    snprintf(key, sizeof key, "%s.lengths", c);
    avsr_tensor *lt = tu_golden_tensor(st, key, false);
    avsr_tensor *ys = tu_golden_tensor(st, "ys", false);
    avsr_tensor *yl = tu_golden_tensor(st, "ylens", false);
    int64_t B = video->shape[0], L = ys->shape[1];
    int64_t lengths[8], targets[64], tlen[8];
    for (int64_t i = 0; i < B; i++) {
        lengths[i] = (int64_t)avsr_f32(lt)[i];
        tlen[i] = (int64_t)avsr_f32(yl)[i];
    }
    for (int64_t i = 0; i < B * L; i++)
        targets[i] = (int64_t)avsr_f32(ys)[i];
    avsr_model_input b = {.B = B, .video = video, .audio = audio, .lengths = lengths,
                    .targets = targets, .target_lengths = tlen, .max_target = L};
    avsr_model_out o;
    int rc = avsr_model_forward(ctx, m, &b, &o);
    if (!tap_ok(rc == 0, "%s: forward runs%s%s", c, rc ? ": " : "", rc ? avsr_ctx_errmsg(ctx) : ""))
        return;
    snprintf(key, sizeof key, "%s.enc", c);
    fe_check(st, key, avsr_f32(o.enc), o.enc->numel, "fused encoder output");
    snprintf(key, sizeof key, "%s.ctc_logits", c);
    fe_check(st, key, avsr_f32(o.ctc_logits), o.ctc_logits->numel, "CTC logits");
    snprintf(key, sizeof key, "%s.dec_logits", c);
    fe_check(st, key, avsr_f32(o.dec_logits), o.dec_logits->numel, "decoder logits");
    snprintf(key, sizeof key, "%s.ctc", c);
    check_scalar(st, key, avsr_f32(o.loss.ctc)[0], "CTC loss (sum / B)");
    snprintf(key, sizeof key, "%s.att", c);
    check_scalar(st, key, avsr_f32(o.loss.att)[0], "attention loss (ESPnet label smoothing)");
    snprintf(key, sizeof key, "%s.total", c);
    check_scalar(st, key, avsr_f32(o.loss.total)[0], "hybrid loss 0.3 ctc + 0.7 att");
    snprintf(key, sizeof key, "%s.acc", c);
    check_scalar(st, key, o.loss.att_acc, "attention accuracy");
    tap_ok(o.enc_lengths[0] == lengths[0] && o.enc_lengths[1] == lengths[1],
           "%s: encoder lengths = video lengths (%lld, %lld)", c, (long long)o.enc_lengths[0],
           (long long)o.enc_lengths[1]);
    if (train) {
        if (tap_ok(avsr_backward(ctx, o.loss.total, NULL) == 0, "backward runs"))
            fe_check_grads(st, c, p);
    }
    avsr_ctx_reset(ctx);
    avsr_tensor_free(video);
    avsr_tensor_free(audio);
    avsr_tensor_free(lt);
    avsr_tensor_free(ys);
    avsr_tensor_free(yl);
}

/* Modality missing at evaluation: zeros at the fusion input. */
static void missing_modality(avsr_ctx *ctx, avsr_st *st, avsr_model *m)
{
    avsr_ctx_set_training(ctx, false);
    avsr_ctx_set_grad(ctx, false);
    avsr_tensor *video = tu_golden_tensor(st, "eval.video", false);
    avsr_tensor *audio = tu_golden_tensor(st, "eval.audio", false);
    int64_t lengths[2] = {8, 5}, el[2];
    avsr_model_input b = {.B = 2, .video = video, .audio = NULL, .lengths = lengths};
    avsr_tensor *e1 = avsr_model_encode(ctx, m, &b, el);
    tap_ok(e1 && e1->shape[1] == 8 && el[1] == 5, "video only: encoder output [2, 8, 16]");
    b.video = NULL;
    b.audio = audio;
    avsr_tensor *e2 = avsr_model_encode(ctx, m, &b, el);
    avsr_tensor *lp = e2 ? avsr_model_ctc_log_probs(ctx, m, e2) : NULL;
    bool norm = lp != NULL;
    for (int t = 0; norm && t < 16; t++) {
        double s = 0;
        for (int v = 0; v < 11; v++)
            s += exp(avsr_f32(lp)[t * 11 + v]);
        norm = fabs(s - 1.0) < 1e-4;
    }
    tap_ok(e2 && lp && norm, "audio only: encoder output and normalised CTC log-probs");
    b.audio = NULL;
    avsr_tensor *e3 = avsr_model_encode(ctx, m, &b, el);
    const char *msg = avsr_ctx_errmsg(ctx);
    tap_ok(!e3 && strstr(msg, "model: the batch has neither video nor audio"),
           "no modality: error '%s'", msg);
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
    avsr_tensor_free(video);
    avsr_tensor_free(audio);
}

static char *write_tmp(const char *text)
{
    static char path[4][64];
    static int k;
    char *p = path[k++ & 3];
    snprintf(p, sizeof path[0], "/tmp/avsr_test_map_XXXXXX");
    int fd = mkstemp(p);
    if (fd < 0)
        tap_bail("mkstemp");
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        tap_bail("write");
    close(fd);
    return p;
}

static void expect_load_error(avsr_params *p, const char *st, const char *map, const char *want,
                              const char *what)
{
    avsr_error err = {0};
    int n = avsr_model_load_mapped(p, st, map, &err);
    bool ok = n < 0 && strstr(err.msg, want);
    tap_ok(ok, "map error: %s", what);
    if (!ok)
        tap_diag("got %d '%s', want '%s'", n, err.msg, want);
}

static void map_errors(avsr_params *p)
{
    const char *sd = fixture_path("model_sd.safetensors");
    char *m1 = write_tmp("encoder.{*}  encoder.{*}\naux_encoder.{*} aux_encoder.{*}\n"
                         "fusion.{*} fusion.{*}\ndecoder.{*} decoder.{*}\n"
                         "ctc.ctc_lo.{*} ctc.lo.{*}\n");
    expect_load_error(p, sd, m1, "tensor 'ctc.lo.weight' (for 'ctc.ctc_lo.weight', ", "missing tensor");
    char *m2 = write_tmp("encoder.{*}  encoder.{*}\naux_encoder.{*} aux_encoder.{*}\n"
                         "fusion.{*} fusion.{*}\ndecoder.{*} decoder.{*}\n");
    expect_load_error(p, sd, m2, "no line maps parameter 'ctc.ctc_lo.weight'", "unmapped parameter");
    /* swapped: the video encoder's embed from the audio encoder (same shapes
     * [16, 32]), the video trunk's conv from the audio trunk: shape error */
    char *m3 = write_tmp("encoder.frontend.trunk.layer1.0.conv1.weight "
                         "aux_encoder.frontend.trunk.layer1.0.conv1.weight\n"
                         "{*} {*}\n");
    expect_load_error(p, sd, m3,
                      "tensor 'aux_encoder.frontend.trunk.layer1.0.conv1.weight' has shape "
                      "[4, 4, 3], but 'encoder.frontend.trunk.layer1.0.conv1.weight' needs "
                      "[4, 4, 3, 3]",
                      "shape mismatch");
    char *m4 = write_tmp("encoder.{i}.x  a.{j}\n");
    expect_load_error(p, sd, m4, ":1: 'a.{j}' uses a placeholder that 'encoder.{i}.x' does not capture",
                      "unknown placeholder");
    unlink(m1);
    unlink(m2);
    unlink(m3);
    unlink(m4);
}

/* CTC-only model without decoder: the fixture's decoder tensors are unused. */
static void map_unused(void)
{
    char *yaml = malloc(strlen(TINY_YAML) + 1);
    strcpy(yaml, TINY_YAML);
    /* ctc_weight 1, no decoder, no label smoothing */
    char *d = strstr(yaml, "  decoder:");
    strcpy(d, "  ctc_weight: 1.0\n  ctc_dropout: 0.0\n");
    avsr_params *p;
    avsr_model *m = build_yaml(yaml, 11, &p, true);
    expect_load_error(p, fixture_path("model_sd.safetensors"), map_path("auto_avsr_av.map"),
                      "tensor 'decoder.embed.0.weight' is not used by the model", "unused tensor");
    avsr_model_free(m);
    avsr_params_destroy(p);
    free(yaml);
}

/* auto_avsr_vsr.map (AAH names frontend., proj_encoder., encoder.): a file
 * written with those names from a video-only model loads back. */
static void aah_map(void)
{
    const char *yaml = "model:\n  video: {width: 4, depth: [1, 1, 1, 1], roi: 20}\n"
                       "  encoder: {layers: 1, dim: 16, heads: 2, ffn: 32, conv_kernel: 5}\n"
                       "  decoder: {layers: 1}\n";
    avsr_params *p, *q;
    avsr_model *m = build_yaml(yaml, 11, &p, true), *m2 = build_yaml(yaml, 11, &q, true);
    avsr_error err = {0};
    avsr_st_writer *w = avsr_st_writer_create();
    const char *pairs[][2] = {{"encoder.frontend.", "frontend."},
                              {"encoder.embed.0.", "proj_encoder."}};
    char names[512][160];
    int n = avsr_params_count(p);
    for (int i = 0; i < n && i < 512; i++) {
        avsr_tensor *t = avsr_params_at(p, i);
        snprintf(names[i], sizeof names[i], "%s", t->name);
        for (int k = 0; k < 2; k++)
            if (!strncmp(t->name, pairs[k][0], strlen(pairs[k][0])))
                snprintf(names[i], sizeof names[i], "%s%s", pairs[k][1],
                         t->name + strlen(pairs[k][0]));
        if (t->dtype == AVSR_F32)
            for (int64_t j = 0; j < t->numel; j++)
                avsr_f32(t)[j] = 0.001f * (float)(i + 1) + 1e-6f * (float)j;
        avsr_st_writer_add(w, names[i], t->dtype, t->ndim, t->shape, t->data, &err);
    }
    char path[] = "/tmp/avsr_test_aah_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    int rc = avsr_st_writer_write(w, path, &err);
    avsr_st_writer_destroy(w);
    int loaded = rc < 0 ? -1 : avsr_model_load_mapped(q, path, map_path("auto_avsr_vsr.map"), &err);
    bool same = loaded == n;
    for (int i = 0; same && i < n; i++) {
        avsr_tensor *a = avsr_params_at(p, i), *b = avsr_params_find(q, a->name);
        same = b && !memcmp(a->data, b->data, (size_t)a->numel * avsr_dtype_size(a->dtype));
    }
    tap_ok(same, "auto_avsr_vsr.map: frontend./proj_encoder./encoder. names load (%d of %d) %s",
           loaded, n, err.msg);
    unlink(path);
    avsr_model_free(m);
    avsr_model_free(m2);
    avsr_params_destroy(p);
    avsr_params_destroy(q);
}

/* Summary of the full Auto-AVSR AV model: registered without allocation. */
static void full_counts(avsr_st *st)
{
    avsr_error err = {0};
    avsr_yaml *y = avsr_yaml_load_file(tu_srcpath("recipes/auto-avsr-lrs3.yaml"), &err);
    avsr_ynode *model = NULL;
    avsr_params *p = avsr_params_create();
    avsr_model *m = NULL;
    if (!y || avsr_yaml_get_map(y, avsr_yaml_root(y), "recipe", "model", true, &model, &err) < 0 ||
        avsr_model_build(y, model, 5049, &m, p, &err) < 0)
        tap_bail("auto-avsr-lrs3.yaml: %s", err.msg);
    const char *meta = tu_golden_meta(st, "full_counts");
    int64_t total = 0;
    for (int mod = 0; mod < AVSR_MOD_COUNT; mod++) {
        int64_t t, fr;
        avsr_model_count(m, mod, &t, &fr);
        total += t + fr;
        char k[64];
        snprintf(k, sizeof k, "\"%s\": ", avsr_model_module_name(mod));
        const char *at = strstr(meta, k);
        long long want = at ? atoll(at + strlen(k)) : 0; /* absent: none (fusion module) */
        tap_ok(want == t + fr, "full size: %s has %lld parameters (replica %lld)",
               avsr_model_module_name(mod), (long long)(t + fr), want);
    }
    const char *at = strstr(meta, "\"total\": ");
    tap_ok(at && atoll(at + 9) == total, "full size: total %lld parameters (replica %lld)",
           (long long)total, at ? atoll(at + 9) : -1LL);
    /* freeze the encoder: trainable/frozen split in the table */
    avsr_params_set_requires_grad(p, "encoder.*", false);
    char *buf = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&buf, &len);
    avsr_model_summary(m, p, mf);
    fclose(mf);
    tap_ok(strstr(buf, "| visual frontend  |               0 |      11,182,784 |      11,182,784 |") &&
               strstr(buf, "| total            |"),
           "summary table rows (visual frontend frozen by pattern)");
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
        tap_diag("%s", line);
    free(buf);
    avsr_model_free(m);
    avsr_params_destroy(p);
    avsr_yaml_free(y);
}

int main(void)
{
    avsr_ctx *ctx = tu_ctx();
    avsr_st *st = tu_golden_open("model");
    avsr_params *p;
    avsr_model *m = build_yaml(TINY_YAML, 11, &p, true);
    tap_ok(avsr_params_numel(p) == 53130, "tiny AV model: %lld parameters (replica 53130)",
           (long long)avsr_params_numel(p));
    golden_case(ctx, st, m, p, "train", true);
    golden_case(ctx, st, m, p, "eval", false);
    missing_modality(ctx, st, m);
    map_errors(p);
    map_unused();
    aah_map();
    full_counts(st);
    avsr_model_free(m);
    avsr_params_destroy(p);
    avsr_st_close(st);
    avsr_ctx_destroy(ctx);
    return tap_done();
}
