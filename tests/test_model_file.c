/* test_model_file: model files (models/model_file.h).
 *
 * - a tiny random model saved as a model file loads back with the same
 *   configuration, vocabulary and every tensor bit for bit, and its forward
 *   pass equals the original's;
 * - the average of two model files (avsr-avg's library) is itself a model
 *   file: it loads alone and holds the element-wise mean;
 * - bad files give exact messages naming the file: missing, not
 *   safetensors, no metadata, a bad configuration, a bad tokenizer, tensors
 *   that do not match the configuration (missing, other shape), a tensor the
 *   model does not have. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evalutil.h"
#include "models/builder.h"
#include "models/model_file.h"
#include "ops.h"
#include "safetensors.h"
#include "tap.h"
#include "testutil.h"
#include "train/average.h"

static char dir[64];

static const char *P(const char *name)
{
    static char buf[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static bool same_tensors(const avsr_params *a, const avsr_params *b)
{
    if (avsr_params_count(a) != avsr_params_count(b))
        return false;
    for (int i = 0; i < avsr_params_count(a); i++) {
        const avsr_tensor *x = avsr_params_at(a, i), *y = avsr_params_find(b, x->name);
        if (!y || x->dtype != y->dtype || x->numel != y->numel ||
            memcmp(x->data, y->data, (size_t)x->numel * avsr_dtype_size(x->dtype)) != 0)
            return false;
    }
    return true;
}

/* CTC log-probabilities of a fixed input (eval mode) */
static float *forward(avsr_ctx *ctx, const avsr_model *m, int64_t *n)
{
    int64_t B = 2, T = 8, sv[4] = {B, T, 24, 24}, sa[2] = {B, T * 640};
    avsr_tensor *video = tu_rand(4, sv, 21, -1.f, 1.f, false);
    avsr_tensor *audio = tu_rand(2, sa, 22, -1.f, 1.f, false);
    int64_t lengths[2] = {8, 6};
    avsr_model_input in = {.B = B, .video = video, .audio = audio, .lengths = lengths};
    avsr_ctx_set_training(ctx, false);
    avsr_ctx_set_grad(ctx, false);
    avsr_tensor *enc = avsr_model_encode(ctx, m, &in, NULL);
    avsr_tensor *lp = avsr_model_ctc_log_probs(ctx, m, enc);
    float *out = NULL;
    if (lp) {
        *n = lp->numel;
        out = malloc(sizeof *out * (size_t)lp->numel);
        memcpy(out, lp->data, sizeof *out * (size_t)lp->numel);
    }
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
    avsr_tensor_free(video);
    avsr_tensor_free(audio);
    return out;
}

static void test_round_trip(avsr_ctx *ctx)
{
    const char *path = P("tiny.safetensors");
    eu_write_model_file(path, EU_TINY_MODEL_JSON, 7);
    avsr_model_file mf;
    avsr_error err = {0};
    int rc = avsr_model_file_load(path, &mf, &err);
    if (!tap_ok(rc == 0, "the tiny model file loads%s%s", rc ? ": " : "", rc ? err.msg : ""))
        return;
    tap_ok(strcmp(mf.model_json, EU_TINY_MODEL_JSON) == 0 && strcmp(mf.path, path) == 0,
           "its avsr.model text is the configuration it was saved with");
    tap_ok(avsr_vocab_size(mf.vocab) == 41 && mf.model->cfg.vocab == 41 &&
               mf.model->cfg.use_video && mf.model->cfg.audio == AVSR_AUDIO_WAVE &&
               mf.model->cfg.use_decoder && mf.model->cfg.encoder.d_model == 32,
           "model and vocabulary rebuilt (41 symbols, AV, wave audio, decoder, d = 32)");

    /* the same model built and initialised again */
    avsr_yaml *y = avsr_yaml_load_string("x", EU_TINY_MODEL_JSON, strlen(EU_TINY_MODEL_JSON), &err);
    avsr_params *p = avsr_params_create();
    avsr_model *m = NULL;
    if (avsr_model_build(y, avsr_yaml_root(y), 41, &m, p, &err) < 0 ||
        avsr_params_finalize(p, &err) < 0 || avsr_params_init(p, 7, &err) < 0)
        tap_bail("%s", err.msg);
    avsr_yaml_free(y);
    tap_ok(same_tensors(p, mf.params) && avsr_params_count(p) > 100,
           "all %d parameters and buffers equal the saved ones bit for bit",
           avsr_params_count(p));
    int64_t n1 = 0, n2 = 0;
    float *a = forward(ctx, m, &n1), *b = forward(ctx, mf.model, &n2);
    tap_ok(a && b && n1 == n2 && memcmp(a, b, sizeof *a * (size_t)n1) == 0,
           "the loaded model's CTC log-probabilities equal the original's (%lld values)",
           (long long)n1);
    free(a);
    free(b);
    avsr_model_free(m);
    avsr_params_destroy(p);
    avsr_model_file_free(&mf);
}

static void test_average(void)
{
    const char *a = P("a.safetensors"), *b = P("b.safetensors"), *out = P("avg.safetensors");
    eu_write_model_file(a, EU_TINY_MODEL_JSON, 1);
    eu_write_model_file(b, EU_TINY_MODEL_JSON, 2);
    avsr_error err = {0};
    const char *in[2] = {a, b};
    int rc = avsr_avg_files(in, NULL, 2, out, &err);
    avsr_model_file ma, mb, mo;
    if (!tap_ok(rc == 0 && avsr_model_file_load(a, &ma, &err) == 0 &&
                    avsr_model_file_load(b, &mb, &err) == 0,
                "averaged two model files%s%s", rc ? ": " : "", rc ? err.msg : ""))
        return;
    rc = avsr_model_file_load(out, &mo, &err);
    if (tap_ok(rc == 0, "the average is a model file that loads alone%s%s", rc ? ": " : "",
               rc ? err.msg : "")) {
        int bad = 0;
        for (int i = 0; i < avsr_params_count(mo.params); i++) {
            const avsr_tensor *t = avsr_params_at(mo.params, i);
            const avsr_tensor *x = avsr_params_find(ma.params, t->name);
            const avsr_tensor *z = avsr_params_find(mb.params, t->name);
            for (int64_t k = 0; k < t->numel; k++) {
                if (t->dtype == AVSR_F32) {
                    float want = (float)(((double)avsr_f32(x)[k] + avsr_f32(z)[k]) / 2);
                    bad += avsr_f32(t)[k] != want;
                } else if (t->dtype == AVSR_I64) {
                    int64_t s = ((int64_t *)x->data)[k] + ((int64_t *)z->data)[k];
                    bad += ((int64_t *)t->data)[k] != (s >= 0 ? s / 2 : -((-s + 1) / 2));
                }
            }
        }
        tap_ok(bad == 0 && strcmp(mo.model_json, EU_TINY_MODEL_JSON) == 0,
               "it holds the element-wise mean of the two (%d elements differ)", bad);
        avsr_model_file_free(&mo);
    }
    avsr_model_file_free(&ma);
    avsr_model_file_free(&mb);
}

static void expect(const char *path, const char *want, const char *what)
{
    avsr_model_file mf;
    avsr_error err = {0};
    int rc = avsr_model_file_load(path, &mf, &err);
    bool ok = rc < 0 && strcmp(err.msg, want) == 0;
    tap_ok(ok, "%s: %s", what, want);
    if (!ok)
        tap_diag("got rc %d: '%s'", rc, err.msg);
    if (rc == 0)
        avsr_model_file_free(&mf);
}

/* a copy of the tiny model's tensors with the given metadata (NULL: left out)
 * and optionally one extra tensor */
static void write_variant(const char *path, const char *model, const char *tok, bool extra)
{
    avsr_error err = {0};
    avsr_st *st = avsr_st_open(P("tiny.safetensors"), &err);
    if (!st)
        tap_bail("%s", err.msg);
    avsr_st_writer *w = avsr_st_writer_create();
    for (int i = 0; i < avsr_st_count(st); i++) {
        avsr_st_tensor t;
        avsr_st_get(st, i, &t);
        avsr_st_writer_add(w, t.name, t.dtype, t.ndim, t.shape, t.data, &err);
    }
    static const float one[1] = {1};
    int64_t s1[1] = {1};
    if (extra)
        avsr_st_writer_add(w, "encoder.extra.weight", AVSR_F32, 1, s1, one, &err);
    if (model)
        avsr_st_writer_meta(w, "avsr.model", model, &err);
    if (tok)
        avsr_st_writer_meta(w, "avsr.tokenizer", tok, &err);
    if (avsr_st_writer_write(w, path, &err) < 0)
        tap_bail("%s", err.msg);
    avsr_st_writer_destroy(w);
    avsr_st_close(st);
}

static void test_bad(void)
{
    char want[2048];
    avsr_error err = {0};
    avsr_vocab *v;
    avsr_vocab_default(&v, &err);
    char *tok = avsr_vocab_to_json(v, &err);
    avsr_vocab_free(v);

    const char *p = P("missing.safetensors");
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", p);
    expect(p, want, "missing file");

    p = P("text.safetensors");
    FILE *f = fopen(p, "w");
    fputs("this is not a safetensors file\n", f);
    fclose(f);
    snprintf(want, sizeof want,
             "%s: not a safetensors file: header length 2338328219631577204 does not fit the "
             "file (31 bytes)", p);
    expect(p, want, "a text file");

    p = P("nometa.safetensors");
    write_variant(p, NULL, tok, false);
    snprintf(want, sizeof want,
             "%s: not a model file: metadata \"avsr.model\" is missing (model files written by "
             "avsr-worker checkpoints and avsr-avg carry the model configuration and the "
             "tokenizer)", p);
    expect(p, want, "no model configuration");

    p = P("notok.safetensors");
    write_variant(p, EU_TINY_MODEL_JSON, NULL, false);
    snprintf(want, sizeof want,
             "%s: not a model file: metadata \"avsr.tokenizer\" is missing (model files written "
             "by avsr-worker checkpoints and avsr-avg carry the model configuration and the "
             "tokenizer)", p);
    expect(p, want, "no tokenizer");

    p = P("badcfg.safetensors");
    write_variant(p, "{\"video\": {\"width\": 0}}", tok, false);
    snprintf(want, sizeof want,
             "%s[avsr.model]:1:21: model.video.width: 0 is out of range [1, 1024]", p);
    expect(p, want, "a bad configuration");

    p = P("list.safetensors");
    write_variant(p, "[1, 2]", tok, false);
    snprintf(want, sizeof want,
             "%s[avsr.model]:1:1: model: expected a JSON object (the `model:` section)", p);
    expect(p, want, "a configuration that is not an object");

    p = P("badtok.safetensors");
    write_variant(p, EU_TINY_MODEL_JSON, "{\"type\": \"char\"}", false);
    snprintf(want, sizeof want,
             "%s: metadata \"avsr.tokenizer\": avsr_vocab_from_json: unsupported \"version\" "
             "(expected 1)", p);
    expect(p, want, "a bad tokenizer");

    p = P("mismatch.safetensors");
    write_variant(p, EU_TINY_MODEL_JSON_2DEC, tok, false);
    snprintf(want, sizeof want, "%s: tensor 'decoder.decoders.1.self_attn.linear_q.weight' is "
                                "missing", p);
    expect(p, want, "tensors that do not match the configuration");

    p = P("extra.safetensors");
    write_variant(p, EU_TINY_MODEL_JSON, tok, true);
    snprintf(want, sizeof want,
             "%s: tensor 'encoder.extra.weight' is not a parameter or buffer of the model", p);
    expect(p, want, "a tensor the model does not have");

    /* the encoder's feed-forward size changed: shapes differ */
    char cfg[1024];
    strcpy(cfg, EU_TINY_MODEL_JSON);
    char *ffn = strstr(cfg, "\"ffn\": 64, \"conv_kernel\"");
    memcpy(ffn, "\"ffn\": 48", 9);
    p = P("shape.safetensors");
    write_variant(p, cfg, tok, false);
    snprintf(want, sizeof want,
             "%s: tensor 'encoder.encoders.0.feed_forward.w_1.weight' has shape [64, 32], "
             "but 'encoder.encoders.0.feed_forward.w_1.weight' needs [48, 32]", p);
    expect(p, want, "a tensor shape that does not match the configuration");
    free(tok);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/avsr-mf-XXXXXX");
    if (!mkdtemp(dir))
        tap_bail("mkdtemp");
    avsr_ctx *ctx = tu_ctx();
    test_round_trip(ctx);
    test_average();
    test_bad();
    avsr_ctx_destroy(ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (!tap_failed() && system(cmd) != 0)
        tap_diag("could not remove %s", dir);
    return tap_done();
}
