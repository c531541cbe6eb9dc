/* recipe_plan: stages -> average -> sweep points -> report (see recipe_plan.h). */
#include "sched/recipe_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/sweep.h"

/* Add the eval job of point pt; *names collects the job names. */
static int add_point(avsr_sched_plan *p, const avsr_recipe *r, int eval_ranks,
                     const avsr_eval_point *pt, char ***names, int *n, avsr_error *err)
{
    char spec[AVSR_EVAL_POINT_NAME_MAX], stem[AVSR_EVAL_POINT_NAME_MAX], name[128];
    char result[4096];
    avsr_eval_point_spec(pt, spec, sizeof spec);
    avsr_eval_point_name(pt, stem, sizeof stem);
    /* job names use dots: eval.audio.babble.-5 */
    snprintf(name, sizeof name, "eval.%s", spec);
    for (char *c = name; *c; c++)
        if (*c == ':')
            *c = '.';
    snprintf(result, sizeof result, "%s/eval/points/%s.json", r->exp_dir, stem);
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
        avsr_eval_point *pts = NULL;
        int npts = 0;
        if (avsr_eval_sweep_points(r, &pts, &npts, err) < 0) {
            avsr_error_prefix(err, "%s: eval.sweep: ", r->path);
            goto fail;
        }
        for (int i = 0; i < npts; i++)
            if (add_point(p, r, eval_ranks, &pts[i], &points, &n_points, err) < 0) {
                free(pts);
                goto fail;
            }
        free(pts);
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
