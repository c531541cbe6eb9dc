/* report: evaluation results on disk.
 *
 * One file per sweep point, <exp_dir>/eval/points/<point name>.json
 * (avsr_eval_point_write; written atomically), holds what was evaluated
 * (model path, search settings, seed, test shards), the corpus counts and
 * rates and every utterance's normalised reference and hypothesis with its
 * counts. It holds no timings, so evaluating the same point twice gives the
 * same bytes.
 *
 * avsr_eval_report() merges every point file (points/NAME.json) of an eval
 * directory into
 *   results.json   every point's counts and rates, and the WER table;
 *   results.csv    one row per point;
 *   results.md     WER and CER tables: rows SNR (clean first), columns
 *                  modality x noise (the video-only column has one value:
 *                  its point does not depend on the audio noise);
 *   hyps/<point>.tsv  per-utterance hypotheses;
 *   wer_vs_snr.png, wer_vs_snr.svg  WER against SNR through gnuplot, one
 *                  line per modality (and noise type when there are several),
 *                  with the plotted data and script beside them
 *                  (wer_vs_snr.dat, wer_vs_snr.gp);
 * and prints the Markdown WER table. Every file is written to a temporary
 * name and renamed. Points evaluated with different models, search
 * settings, seeds or test sets are an error naming both files.
 * Formats: docs/eval/results.md. */
#ifndef AVSR_EVAL_REPORT_H
#define AVSR_EVAL_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "eval/recognize.h"
#include "eval/sweep.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AVSR_EVAL_POINT_FORMAT "avsr-eval-point"
#define AVSR_EVAL_RESULTS_FORMAT "avsr-eval-results"
#define AVSR_EVAL_FORMAT_VERSION 1

/* What a point was evaluated with (recorded in its file). */
typedef struct avsr_eval_meta {
    const char *model;            /* model file path as given */
    const char *const *test;      /* test shards */
    int n_test;
    uint64_t seed;
    const avsr_recog_opts *search;
} avsr_eval_meta;

/* Write points/<name>.json for r under eval_dir (points/ is created). The
 * path written is returned in path_out (may be NULL). */
int avsr_eval_point_write(const char *eval_dir, const avsr_eval_result *r,
                          const avsr_eval_meta *m, char *path_out, size_t path_size,
                          avsr_error *err);

typedef struct avsr_eval_report_opts {
    const char *eval_dir;          /* <exp_dir>/eval */
    const avsr_eval_point *order;  /* the recipe's sweep: table order (NULL: by name) */
    int n_order;
    FILE *table;                   /* the WER table is printed here (NULL: not printed) */
    const char *gnuplot;           /* program to run (NULL: "gnuplot" on PATH) */
} avsr_eval_report_opts;

typedef struct avsr_eval_report_info {
    int n_points;
    int plotted;                   /* 1 when the PNG and SVG were written */
    char warning[512];             /* "" or why the plot is missing */
} avsr_eval_report_info;

/* Merge the points of o->eval_dir. No point files is an error. A missing
 * gnuplot is not (info->plotted = 0 and info->warning says why); gnuplot
 * failing is, with its message. */
int avsr_eval_report(const avsr_eval_report_opts *o, avsr_eval_report_info *info,
                     avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
