/* avsr-eval: evaluation sweeps (noise type x SNR x modality) of a recipe's
 * model, sharded over MPI ranks, and the report that merges the points.
 *
 *   mpirun -np K avsr-eval RECIPE.yaml [--model PATH]      every point, then the report
 *   avsr-eval RECIPE.yaml [--model PATH] --point M:N:S      one point (repeatable)
 *   avsr-eval report RECIPE.yaml                            merge points/ into results
 *
 * docs/tools/avsr-eval.md. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/comm.h"
#include "dist/threads.h"
#include "eval/recognize.h"
#include "eval/report.h"
#include "eval/sweep.h"
#include "models/model_file.h"
#include "train/recipe.h"

#define PROG "avsr-eval"
#define MAX_POINTS 256

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mpirun -np K " PROG " [options] RECIPE.yaml   the sweep, then the report\n"
            "       " PROG " [options] RECIPE.yaml --point M:N:S    one sweep point\n"
            "       " PROG " report RECIPE.yaml                     merge the points\n"
            "\n"
            "Decodes the recipe's test shards (data.test) with the model under the sweep of\n"
            "eval.sweep (modalities x noise types x SNRs) and the search of eval.search.\n"
            "Points go to <exp_dir>/eval/points/MODALITY-NOISE-SNR.json; the report writes\n"
            "<exp_dir>/eval/results.{json,csv,md}, hyps/ and wer_vs_snr.{png,svg} and prints\n"
            "the WER table. A point is MODALITY:NOISE:SNR with MODALITY audio, video or\n"
            "audiovisual, NOISE none, babble, white, pink or file, SNR clean or dB\n"
            "(audio:babble:5, audiovisual:white:-5, video:none:clean).\n"
            "\n"
            "options:\n"
            "  --model PATH         model file (default <exp_dir>/avg/model.safetensors)\n"
            "  --point M:N:S        evaluate this point only (may be repeated); no report\n"
            "  --search S           attention_beam, ctc_beam or ctc_greedy (eval.search.type)\n"
            "  --beam N             beam size (eval.search.beam)\n"
            "  --ctc-weight W       attention beam: CTC weight (eval.search.ctc_weight)\n"
            "  --length-bonus B     attention beam: score per token (eval.search.length_bonus)\n"
            "  --maxlenratio R      attention beam: output length limit (eval.search.maxlenratio)\n"
            "  --batch-frames N     padded frames per evaluation batch (data.batching.max_frames)\n"
            "  --threads N          compute threads per rank (default: run.threads)\n"
            "  --no-report          the whole sweep without the report\n"
            "  -q, --quiet          no progress lines\n"
            "  -h, --help           this text\n"
            "\n"
            "Exit status: 0 done, 1 failure (message names the file or point), 2 bad command\n"
            "line.\n");
}

static int parse_int(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, PROG ": %s: got '%s', expected an integer in [%ld, %ld]\n", opt, s, lo,
                hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, PROG ": %s: got '%s', expected a number in [%g, %g]\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

typedef struct opts {
    const char *recipe, *model;
    avsr_eval_point points[MAX_POINTS];
    int n_points;
    int search;            /* -1 = the recipe's */
    long beam, batch_frames, threads;
    double ctc_weight, length_bonus, maxlenratio; /* NAN = the recipe's */
    bool report_only, no_report, quiet;
} opts;

/* 0 ok, 1 help printed, 2 usage error */
static int parse_args(int argc, char **argv, opts *o)
{
    enum {
        OPT_MODEL = 256, OPT_POINT, OPT_SEARCH, OPT_BEAM, OPT_CTCW, OPT_BONUS, OPT_MAXLEN,
        OPT_FRAMES, OPT_THREADS, OPT_NOREPORT
    };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, OPT_MODEL},
        {"point", required_argument, NULL, OPT_POINT},
        {"search", required_argument, NULL, OPT_SEARCH},
        {"beam", required_argument, NULL, OPT_BEAM},
        {"ctc-weight", required_argument, NULL, OPT_CTCW},
        {"length-bonus", required_argument, NULL, OPT_BONUS},
        {"maxlenratio", required_argument, NULL, OPT_MAXLEN},
        {"batch-frames", required_argument, NULL, OPT_FRAMES},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"no-report", no_argument, NULL, OPT_NOREPORT},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->search = -1;
    o->ctc_weight = o->length_bonus = o->maxlenratio = NAN;
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "report") == 0) {
        o->report_only = true;
        first = 2;
    }
    optind = first;
    int c;
    avsr_error err = {0};
    while ((c = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_MODEL: o->model = optarg; break;
        case OPT_POINT:
            if (o->n_points == MAX_POINTS) {
                fprintf(stderr, PROG ": more than %d --point options\n", MAX_POINTS);
                return 2;
            }
            if (avsr_eval_point_parse(optarg, &o->points[o->n_points], &err) < 0) {
                fprintf(stderr, PROG ": --point: %s\n", err.msg);
                return 2;
            }
            o->n_points++;
            break;
        case OPT_SEARCH:
            if ((o->search = avsr_recog_search_parse(optarg)) < 0) {
                fprintf(stderr, PROG ": --search: got '%s', expected attention_beam, ctc_beam "
                                "or ctc_greedy\n", optarg);
                return 2;
            }
            break;
        case OPT_BEAM:
            if (parse_int("--beam", optarg, 1, 1000, &o->beam) < 0)
                return 2;
            break;
        case OPT_CTCW:
            if (parse_double("--ctc-weight", optarg, 0, 1, &o->ctc_weight) < 0)
                return 2;
            break;
        case OPT_BONUS:
            if (parse_double("--length-bonus", optarg, -1000, 1000, &o->length_bonus) < 0)
                return 2;
            break;
        case OPT_MAXLEN:
            if (parse_double("--maxlenratio", optarg, -10000, 10000, &o->maxlenratio) < 0)
                return 2;
            break;
        case OPT_FRAMES:
            if (parse_int("--batch-frames", optarg, 1, 100000000, &o->batch_frames) < 0)
                return 2;
            break;
        case OPT_THREADS:
            if (parse_int("--threads", optarg, 1, 4096, &o->threads) < 0)
                return 2;
            break;
        case OPT_NOREPORT: o->no_report = true; break;
        case 'q': o->quiet = true; break;
        case 'h': usage(stdout); return 1;
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, PROG ": give exactly one recipe (got %d arguments)\n", argc - optind);
        usage(stderr);
        return 2;
    }
    o->recipe = argv[optind];
    if (o->report_only && (o->model || o->n_points || o->search >= 0 || o->beam ||
                           !isnan(o->ctc_weight) || !isnan(o->length_bonus) ||
                           !isnan(o->maxlenratio) || o->batch_frames || o->threads ||
                           o->no_report)) {
        fprintf(stderr, PROG ": report takes only the recipe (and -q)\n");
        return 2;
    }
    return 0;
}

static char *eval_dir_of(const avsr_recipe *r)
{
    size_t n = strlen(r->exp_dir) + sizeof "/eval";
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/eval", r->exp_dir);
    return s;
}

static int report(const avsr_recipe *r, bool quiet)
{
    avsr_error err = {0};
    avsr_eval_point *order = NULL;
    int n_order = 0;
    char *dir = eval_dir_of(r);
    if (!dir) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    avsr_error oerr = {0}; /* the sweep only orders the table: without one, name order */
    if (avsr_eval_sweep_points(r, &order, &n_order, &oerr) < 0)
        order = NULL, n_order = 0;
    avsr_eval_report_opts ro = {dir, order, n_order, stdout, NULL};
    avsr_eval_report_info info;
    int rc = avsr_eval_report(&ro, &info, &err);
    if (rc < 0)
        fprintf(stderr, PROG ": %s\n", err.msg);
    else if (info.warning[0])
        fprintf(stderr, PROG ": warning: %s\n", info.warning);
    if (rc == 0 && !quiet)
        fprintf(stderr, PROG ": report of %d points in %s (results.json, results.csv, "
                        "results.md, hyps/%s)\n",
                info.n_points, dir, info.plotted ? ", wer_vs_snr.png, wer_vs_snr.svg" : "");
    free(order);
    free(dir);
    return rc < 0 ? 1 : 0;
}

/* The recipe's search with the command line's overrides. */
static void search_opts(const avsr_recipe *r, const opts *o, avsr_recog_opts *ro)
{
    memset(ro, 0, sizeof *ro);
    ro->search = r->search;
    ro->att = r->att_beam;
    ro->ctc = r->ctc_beam;
    if (o->search >= 0)
        ro->search = (avsr_recipe_search_kind)o->search;
    if (o->beam > 0)
        ro->att.beam = ro->ctc.beam = (int)o->beam;
    if (!isnan(o->ctc_weight))
        ro->att.ctc_weight = o->ctc_weight;
    if (!isnan(o->length_bonus))
        ro->att.length_bonus = o->length_bonus;
    if (!isnan(o->maxlenratio))
        ro->att.maxlenratio = o->maxlenratio;
    if (ro->att.nbest > ro->att.beam)
        ro->att.nbest = ro->att.beam;
    if (ro->ctc.nbest > ro->ctc.beam)
        ro->ctc.nbest = ro->ctc.beam;
}

int main(int argc, char **argv)
{
    opts o;
    int pa = parse_args(argc, argv, &o);
    if (pa)
        return pa == 1 ? 0 : 2;
    avsr_error err = {0};
    if (o.report_only) {
        avsr_recipe *r = avsr_recipe_load(o.recipe, &err);
        if (!r) {
            fprintf(stderr, PROG ": %s\n", err.msg);
            return 1;
        }
        int rc = report(r, o.quiet);
        avsr_recipe_free(r);
        return rc;
    }

    avsr_comm *comm = avsr_comm_mpi_create(&argc, &argv, NULL, &err);
    if (!comm) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        return 1;
    }
    int rank = avsr_comm_rank(comm), world = avsr_comm_size(comm);
    avsr_recipe *r = NULL;
    avsr_model_file mf;
    memset(&mf, 0, sizeof mf);
    avsr_ctx *ctx = NULL;
    avsr_eval_point *sweep = NULL;
    int n_sweep = 0, status = 1;
    char *model_default = NULL, *dir = NULL;
    avsr_recog_opts ro;
    avsr_eval_data d;

    /* setup on every rank, then agree on it */
    int bad = 0;
    if (!(r = avsr_recipe_load(o.recipe, &err))) {
        bad = 1;
    } else {
        const char *model = o.model;
        if (!model) {
            size_t n = strlen(r->exp_dir) + sizeof "/avg/model.safetensors";
            if ((model_default = malloc(n)))
                snprintf(model_default, n, "%s/avg/model.safetensors", r->exp_dir);
            model = model_default;
        }
        dir = eval_dir_of(r);
        avsr_threads_choice tc;
        char tbuf[16];
        if (o.threads)
            snprintf(tbuf, sizeof tbuf, "%ld", o.threads);
        if (!model || !dir) {
            AVSR_NOMEM(&err, 0);
            bad = 1;
        } else if (avsr_model_file_load(model, &mf, &err) < 0) {
            bad = 1;
        } else if (avsr_threads_resolve(o.threads ? tbuf : r->threads,
                                        avsr_comm_local_size(comm), &tc, &err) < 0) {
            bad = 1;
        } else {
            if (tc.warning[0] && rank == 0 && !o.quiet)
                fprintf(stderr, PROG ": warning: %s\n", tc.warning);
            avsr_ctx_opts co = {tc.threads, 0, AVSR_DEV_CPU};
            if (!(ctx = avsr_ctx_create(&co, &err)))
                bad = 1;
        }
        if (!bad) {
            search_opts(r, &o, &ro);
            avsr_eval_data_from_recipe(r, &d);
            if (o.batch_frames)
                d.sampler.max_frames = o.batch_frames;
            if (avsr_recog_opts_check(&ro, mf.model, &err) < 0) {
                avsr_error_prefix(&err, "%s: eval.search with the command line's overrides: ",
                                  o.recipe);
                bad = 1;
            } else if (o.n_points == 0 && avsr_eval_sweep_points(r, &sweep, &n_sweep, &err) < 0) {
                bad = 1;
            }
        }
    }
    int any[2] = {bad, rank == 0 && bad}; /* anyone failed, rank 0 failed */
    if (avsr_comm_allreduce_max_int(comm, any, 2, &err) < 0)
        goto out;
    if (any[0]) { /* one message: rank 0's, else every failing rank's */
        if (bad && (rank == 0 || !any[1]))
            fprintf(stderr, PROG ": %s\n", err.msg);
        goto out;
    }
    if (rank == 0 && !o.quiet && r->model_json && strcmp(mf.model_json, r->model_json) != 0)
        fprintf(stderr, PROG ": note: the configuration in %s (avsr.model) differs from the "
                        "model section of %s; the model file's is used\n", mf.path, o.recipe);
    const avsr_eval_point *pts = o.n_points ? o.points : sweep;
    int np = o.n_points ? o.n_points : n_sweep;
    for (int i = 0; i < np; i++) { /* every point is checked before the first runs */
        if (avsr_eval_data_check_point(&d, &pts[i], &err) < 0) {
            if (rank == 0)
                fprintf(stderr, PROG ": %s: %s\n", o.recipe, err.msg);
            goto out;
        }
    }
    avsr_eval_meta meta = {mf.path, d.test, d.n_test, d.seed, &ro};
    for (int i = 0; i < np; i++) {
        char spec[AVSR_EVAL_POINT_NAME_MAX], path[4096];
        avsr_eval_point_spec(&pts[i], spec, sizeof spec);
        avsr_eval_result res;
        avsr_error_clear(&err);
        int rc = avsr_eval_run_point(comm, ctx, &mf, &ro, &d, &pts[i], &res, &err);
        if (rc < 0) {
            if (rc == -1 || rank == 0)
                fprintf(stderr, PROG ": point %s: %s\n", spec, err.msg);
            goto out;
        }
        int wrote = 1;
        if (rank == 0) {
            wrote = avsr_eval_point_write(dir, &res, &meta, path, sizeof path, &err) == 0;
            if (!wrote)
                fprintf(stderr, PROG ": point %s: %s\n", spec, err.msg);
            else if (!o.quiet)
                fprintf(stderr,
                        PROG ": point %-24s WER %6.2f%%  CER %6.2f%%  %lld utterances, "
                             "%.1f s on %d rank(s) -> %s\n",
                        spec, 100 * res.score.wer, 100 * res.score.cer, (long long)res.n,
                        res.wall_s, world, path);
            avsr_eval_result_free(&res);
        }
        if (avsr_comm_bcast(comm, &wrote, sizeof wrote, 0, &err) < 0 || !wrote)
            goto out;
    }
    status = 0;
out:
    avsr_model_file_free(&mf);
    avsr_ctx_destroy(ctx);
    free(sweep);
    free(model_default);
    avsr_comm_destroy(comm); /* MPI is finalised: the report may fork gnuplot */
    if (status == 0 && rank == 0 && o.n_points == 0 && !o.no_report)
        status = report(r, o.quiet);
    free(dir);
    avsr_recipe_free(r);
    return status;
}
