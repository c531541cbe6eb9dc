/* eval_fixture: files for the shell tests of avsr-eval and avsr-transcribe
 * (not a test itself).
 *
 *   eval_fixture model PATH SEED          the tiny model file (evalutil.h)
 *   eval_fixture nometa PATH              its tensors without metadata
 *   eval_fixture av-pack PATH N SEED ROI  an AV pack of N random clips
 *   eval_fixture noise-pack PATH N SEED   a noise corpus
 *   eval_fixture meta FILE KEY            print a metadata value of a
 *                                         safetensors file (exit 1 if absent)
 *   eval_fixture recognize MODEL SEARCH PACK...
 *       the clean audio-visual point of the packs, one clip per batch, with
 *       SEARCH (attention_beam, ctc_beam, ctc_greedy; otherwise the default
 *       settings) through the library (avsr_eval_run_point):
 *       prints "id<TAB>text<TAB>score" per clip */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/sweep.h"
#include "evalutil.h"
#include "models/model_file.h"
#include "safetensors.h"
#include "tap.h"
#include "testutil.h"

static int recognize(int argc, char **argv)
{
    avsr_error err = {0};
    avsr_model_file mf;
    if (avsr_model_file_load(argv[2], &mf, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    avsr_eval_data d;
    memset(&d, 0, sizeof d);
    d.test = (const char *const *)argv + 4;
    d.n_test = argc - 4;
    avsr_sampler_config_default(&d.sampler);
    d.sampler.max_frames = 1; /* one clip per batch */
    avsr_augment_config_default(&d.augment, false);
    d.augment.crop_h = d.augment.crop_w = mf.model->cfg.video.roi;
    d.loader_threads = 1;
    avsr_recog_opts o;
    avsr_recog_opts_default(&o, mf.model);
    if (avsr_recog_search_parse(argv[3]) < 0) {
        fprintf(stderr, "unknown search %s\n", argv[3]);
        return 2;
    }
    o.search = (avsr_recipe_search_kind)avsr_recog_search_parse(argv[3]);
    avsr_eval_point p;
    avsr_eval_result res;
    avsr_ctx *ctx = tu_ctx();
    if (avsr_eval_point_parse("audiovisual:none:clean", &p, &err) < 0 ||
        avsr_eval_run_point(NULL, ctx, &mf, &o, &d, &p, &res, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    for (int64_t i = 0; i < res.n; i++)
        printf("%s\t%s\t%.17g\n", res.utt[i].id, res.utt[i].text, res.utt[i].score);
    avsr_eval_result_free(&res);
    avsr_model_file_free(&mf);
    avsr_ctx_destroy(ctx);
    return 0;
}

static int nometa(const char *path)
{
    const char *tmp = "eval_fixture_tmp.safetensors";
    eu_write_model_file(tmp, EU_TINY_MODEL_JSON, 1);
    avsr_error err = {0};
    avsr_st *st = avsr_st_open(tmp, &err);
    if (!st) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    avsr_st_writer *w = avsr_st_writer_create();
    for (int i = 0; i < avsr_st_count(st); i++) {
        avsr_st_tensor t;
        avsr_st_get(st, i, &t);
        avsr_st_writer_add(w, t.name, t.dtype, t.ndim, t.shape, t.data, &err);
    }
    int rc = avsr_st_writer_write(w, path, &err);
    avsr_st_writer_destroy(w);
    avsr_st_close(st);
    remove(tmp);
    if (rc < 0)
        fprintf(stderr, "%s\n", err.msg);
    return rc < 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    if (!strcmp(cmd, "model") && argc == 4) {
        eu_write_model_file(argv[2], EU_TINY_MODEL_JSON, strtoull(argv[3], NULL, 10));
        return 0;
    }
    if (!strcmp(cmd, "nometa") && argc == 3)
        return nometa(argv[2]);
    if (!strcmp(cmd, "av-pack") && argc == 6) {
        eu_write_av_pack(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10), atoi(argv[5]), 15);
        return 0;
    }
    if (!strcmp(cmd, "noise-pack") && argc == 5) {
        eu_write_noise_pack(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10));
        return 0;
    }
    if (!strcmp(cmd, "meta") && argc == 4) {
        avsr_error err = {0};
        avsr_st *st = avsr_st_open(argv[2], &err);
        const char *v = st ? avsr_st_meta(st, argv[3]) : NULL;
        if (v)
            printf("%s\n", v);
        else
            fprintf(stderr, "%s\n", st ? "no such metadata key" : err.msg);
        avsr_st_close(st);
        return v ? 0 : 1;
    }
    if (!strcmp(cmd, "recognize") && argc >= 5)
        return recognize(argc, argv);
    fprintf(stderr, "usage: eval_fixture model PATH SEED | nometa PATH | av-pack PATH N SEED ROI "
                    "| noise-pack PATH N SEED | meta FILE KEY | recognize MODEL SEARCH PACK...\n");
    return 2;
}
