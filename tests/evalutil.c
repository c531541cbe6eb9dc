/* evalutil: tiny model files and packed corpora for the evaluation tests. */
#include "evalutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/pack_write.h"
#include "datasets/tokenizer.h"
#include "models/builder.h"
#include "models/model_file.h"
#include "rng.h"
#include "tap.h"
#include "yamltree.h"

#define TINY_HEAD                                                                              \
    "{\"video\": {\"width\": 2, \"depth\": [1, 1, 1, 1], \"roi\": 24}, "                       \
    "\"audio\": {\"features\": \"wave\", \"width\": 2, \"depth\": [1, 1, 1, 1]}, "             \
    "\"fusion\": {\"type\": \"concat_mlp\", \"position\": \"late\", \"hidden\": 32}, "         \
    "\"encoder\": {\"type\": \"conformer\", \"layers\": 1, \"dim\": 32, \"heads\": 2, "        \
    "\"ffn\": 64, \"conv_kernel\": 3}, "

const char EU_TINY_MODEL_JSON[] =
    TINY_HEAD "\"decoder\": {\"layers\": 1, \"dim\": 32, \"heads\": 2, \"ffn\": 64}, "
              "\"ctc_weight\": 0.3, \"label_smoothing\": 0.1}";
const char EU_TINY_MODEL_JSON_2DEC[] =
    TINY_HEAD "\"decoder\": {\"layers\": 2, \"dim\": 32, \"heads\": 2, \"ffn\": 64}, "
              "\"ctc_weight\": 0.3, \"label_smoothing\": 0.1}";

void eu_write_model_file(const char *path, const char *model_json, uint64_t seed)
{
    avsr_error err = {0};
    avsr_vocab *v = NULL;
    if (avsr_vocab_default(&v, &err) < 0)
        tap_bail("vocabulary: %s", err.msg);
    char *vj = avsr_vocab_to_json(v, &err);
    avsr_yaml *y = avsr_yaml_load_string("tiny", model_json, strlen(model_json), &err);
    avsr_params *p = avsr_params_create();
    avsr_model *m = NULL;
    if (!vj || !y || !p ||
        avsr_model_build(y, avsr_yaml_root(y), avsr_vocab_size(v), &m, p, &err) < 0 ||
        avsr_params_finalize(p, &err) < 0 || avsr_params_init(p, seed, &err) < 0 ||
        avsr_model_file_save(path, p, model_json, vj, &err) < 0)
        tap_bail("tiny model file %s: %s", path, err.msg);
    avsr_model_free(m);
    avsr_params_destroy(p);
    avsr_yaml_free(y);
    free(vj);
    avsr_vocab_free(v);
}

static const char *const WORDS[] = {"BIN", "LAY", "PLACE", "SET", "BLUE", "GREEN", "RED",
                                    "WHITE", "AT", "BY", "IN", "WITH", "A", "B", "F", "ONE",
                                    "TWO", "NOW", "SOON", "AGAIN", "PLEASE"};

void eu_write_av_pack(const char *path, int n, uint64_t seed, int roi, int span)
{
    avsr_pack_write_opts o = {AVSR_PACK_KIND_AV, roi, roi, 0, "", "evalutil"};
    avsr_error err = {0};
    avsr_pack_writer *w = avsr_pack_writer_create(path, &o, &err);
    if (!w)
        tap_bail("pack writer %s: %s", path, err.msg);
    avsr_rng r;
    avsr_rng_init(&r, seed, 0, 0, 77);
    for (int i = 0; i < n; i++) {
        int64_t F = 20 + avsr_rng_below(&r, (uint32_t)span);
        uint8_t *v = malloc((size_t)F * roi * roi);
        int16_t *a = malloc((size_t)F * 640 * sizeof *a);
        if (!v || !a)
            tap_bail("out of memory");
        for (int64_t j = 0; j < F * roi * roi; j++)
            v[j] = (uint8_t)(avsr_rng_u32(&r) >> 24);
        double f0 = 180.0 + 40.0 * i;
        for (int64_t j = 0; j < F * 640; j++)
            a[j] = (int16_t)lrint(5000 * sin(2 * M_PI * f0 * (double)j / 16000.0) +
                                  800 * (avsr_rng_uniform(&r) - 0.5));
        char text[128] = "", id[32], spk[16];
        int nw = 1 + (int)avsr_rng_below(&r, 3);
        for (int k = 0; k < nw; k++) {
            if (k)
                strcat(text, " ");
            strcat(text, WORDS[avsr_rng_below(&r, sizeof WORDS / sizeof *WORDS)]);
        }
        snprintf(id, sizeof id, "u%" PRIu64 "_%03d", seed, i);
        snprintf(spk, sizeof spk, "s%d", i % 3);
        if (avsr_pack_writer_add(w, id, spk, v, F, a, F * 640, text, (int64_t)strlen(text),
                                 &err))
            tap_bail("pack %s: %s", path, err.msg);
        free(v);
        free(a);
    }
    if (avsr_pack_writer_commit(w, &err))
        tap_bail("pack %s: %s", path, err.msg);
}

void eu_write_noise_pack(const char *path, int n, uint64_t seed)
{
    avsr_pack_write_opts o = {AVSR_PACK_KIND_NOISE, 0, 0, 0, "", "evalutil"};
    avsr_error err = {0};
    avsr_pack_writer *w = avsr_pack_writer_create(path, &o, &err);
    if (!w)
        tap_bail("pack writer %s: %s", path, err.msg);
    avsr_rng r;
    avsr_rng_init(&r, seed, 0, 0, 78);
    for (int i = 0; i < n; i++) {
        int64_t ns = 8000 + 4000 * i;
        int16_t *a = malloc((size_t)ns * sizeof *a);
        if (!a)
            tap_bail("out of memory");
        for (int64_t j = 0; j < ns; j++)
            a[j] = (int16_t)lrint(3000 * avsr_rng_normal(&r));
        char id[32];
        snprintf(id, sizeof id, "n%d", i);
        if (avsr_pack_writer_add(w, id, "", NULL, 0, a, ns, "", 0, &err))
            tap_bail("pack %s: %s", path, err.msg);
        free(a);
    }
    if (avsr_pack_writer_commit(w, &err))
        tap_bail("pack %s: %s", path, err.msg);
}
