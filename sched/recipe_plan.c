/* recipe_plan: stages -> average -> sweep points -> report (see recipe_plan.h). */
#include "sched/recipe_plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/loader.h"

static const char *modality_name(avsr_recipe_modality m)
{
    switch (m) {
    case AVSR_MODALITY_AUDIO: return "audio";
    case AVSR_MODALITY_VIDEO: return "video";
    case AVSR_MODALITY_AUDIOVISUAL: return "audiovisual";
    }
    return NULL;
}

static void snr_text(double snr, char *buf, size_t size)
{
    if (isinf(snr))
        snprintf(buf, size, "clean");
    else
        snprintf(buf, size, "%g", snr);
}

/* Add the eval job of point (m, noise, snr); *names collects the job names. */
static int add_point(avsr_sched_plan *p, const avsr_recipe *r, int eval_ranks,
                     avsr_recipe_modality m, int noise, double snr, char ***names, int *n,
                     avsr_error *err)
{
    const char *mn = modality_name(m);
    const char *nn = avsr_noise_type_name(noise);
    if (!mn || !nn)
        return avsr_error_set(err, AVSR_ERR_INVALID, "%s: eval.sweep: unknown modality %d or "
                              "noise type %d", r->path, (int)m, noise);
    char s[32], name[128], spec[128], result[4096];
    snr_text(snr, s, sizeof s);
    snprintf(name, sizeof name, "eval.%s.%s.%s", mn, nn, s);
    snprintf(spec, sizeof spec, "%s:%s:%s", mn, nn, s);
    snprintf(result, sizeof result, "%s/eval/points/%s-%s-%s.json", r->exp_dir, mn, nn, s);
    if (avsr_sched_plan_find(p, name) >= 0)
        return 0; /* a repeated noise type or SNR in the recipe */
    char *argv[] = {"avsr-eval", r->path, "--point", spec};
    char *deps[] = {"average"};
    avsr_sched_job j = {.name = name, .kind = "eval", .ranks = eval_ranks, .mpi = true,
                        .gpus_per_rank = r->cuda ? 1 : 0, .argv = argv, .argc = 4,
                        .deps = deps, .n_deps = 1, .array = "eval", .point = spec,
                        .result = result};
    if (avsr_sched_plan_add(p, &j, err) < 0)
        return -1;
    char **nv = realloc(*names, (size_t)(*n + 1) * sizeof *nv);
    if (!nv)
        return AVSR_NOMEM(err, (size_t)(*n + 1) * sizeof *nv);
    *names = nv;
    nv[*n] = p->jobs[p->n_jobs - 1].name; /* owned by the plan */
    (*n)++;
    return 0;
}

avsr_sched_plan *avsr_sched_plan_from_recipe(const avsr_recipe *r, int eval_ranks,
                                             avsr_error *err)
{
    if (eval_ranks < 1) {
        avsr_error_set(err, AVSR_ERR_INVALID, "evaluation ranks %d: expected at least 1",
                       eval_ranks);
        return NULL;
    }
    if (r->n_stages < 1) {
        avsr_error_set(err, AVSR_ERR_INVALID, "%s: no stages", r->path);
        return NULL;
    }
    avsr_sched_plan *p = avsr_sched_plan_new(r->name, r->exp_dir, err);
    if (!p)
        return NULL;
    char **points = NULL;
    int n_points = 0;
    char prev[256] = "";
    for (int i = 0; i < r->n_stages; i++) {
        char name[256];
        snprintf(name, sizeof name, "train.%s", r->stages[i].name);
        char *argv[] = {"avsr-worker", r->path, "--stage", r->stages[i].name};
        char *deps[] = {prev};
        avsr_sched_job j = {.name = name, .kind = "stage", .ranks = r->ranks, .mpi = true,
                            .gpus_per_rank = r->cuda ? 1 : 0, .argv = argv, .argc = 4,
                            .deps = deps, .n_deps = i > 0 ? 1 : 0};
        if (avsr_sched_plan_add(p, &j, err) < 0)
            goto fail;
        snprintf(prev, sizeof prev, "%s", name);
    }
    /* average the last stage's checkpoints */
    {
        char ckpt[4096], out[4096], nbuf[16];
        int ls = r->n_stages - 1;
        if (avsr_recipe_stage_dir(r, ls, ckpt, sizeof ckpt - 8) < 0) {
            avsr_error_set(err, AVSR_ERR_INVALID, "%s: stage directory too long", r->path);
            goto fail;
        }
        strcat(ckpt, "/ckpt");
        snprintf(out, sizeof out, "%s/avg/model.safetensors", r->exp_dir);
        bool best = r->average_best > 0;
        snprintf(nbuf, sizeof nbuf, "%d", best ? r->average_best : r->average_last);
        char *argv[10];
        int a = 0;
        argv[a++] = "avsr-avg";
        argv[a++] = best ? "--best" : "--last";
        argv[a++] = nbuf;
        if (best) {
            argv[a++] = "--metric";
            argv[a++] = r->valid_metric;
            if (r->valid_higher_better)
                argv[a++] = "--higher-better";
        }
        argv[a++] = ckpt;
        argv[a++] = "-o";
        argv[a++] = out;
        char *deps[] = {prev};
        avsr_sched_job j = {.name = "average", .kind = "average", .ranks = 1, .argv = argv,
                            .argc = a, .deps = deps, .n_deps = 1};
        if (avsr_sched_plan_add(p, &j, err) < 0)
            goto fail;
    }
    if (r->n_test > 0) {
        bool has_clean = false;
        for (int s = 0; s < r->n_sweep_snr; s++)
            has_clean = has_clean || isinf(r->sweep_snr[s]);
        for (int mi = 0; mi < r->n_sweep_modality; mi++) {
            avsr_recipe_modality m = r->sweep_modality[mi];
            if (m == AVSR_MODALITY_VIDEO) {
                if (add_point(p, r, eval_ranks, m, AVSR_NOISE_NONE, INFINITY, &points,
                              &n_points, err) < 0)
                    goto fail;
                continue;
            }
            if (has_clean && add_point(p, r, eval_ranks, m, AVSR_NOISE_NONE, INFINITY, &points,
                                       &n_points, err) < 0)
                goto fail;
            for (int ni = 0; ni < r->n_sweep_noise; ni++)
                for (int s = 0; s < r->n_sweep_snr; s++)
                    if (!isinf(r->sweep_snr[s]) &&
                        add_point(p, r, eval_ranks, m, r->sweep_noise[ni], r->sweep_snr[s],
                                  &points, &n_points, err) < 0)
                        goto fail;
        }
        if (n_points > 0) {
            char *argv[] = {"avsr-eval", "report", r->path};
            avsr_sched_job j = {.name = "report", .kind = "report", .ranks = 1, .argv = argv,
                                .argc = 3, .deps = points, .n_deps = n_points};
            if (avsr_sched_plan_add(p, &j, err) < 0)
                goto fail;
        }
    }
    free(points);
    points = NULL;
    if (avsr_sched_plan_check(p, err) < 0) {
        avsr_error_prefix(err, "%s: ", r->path);
        goto fail;
    }
    return p;
fail:
    free(points);
    avsr_sched_plan_free(p);
    return NULL;
}
