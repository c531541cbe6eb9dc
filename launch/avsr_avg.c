/* avsr-avg: average checkpoints (the last N, the best N by a validation
 * metric, or a list of files) into one model file. See docs/tools/avsr-avg.md. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "train/average.h"
#include "train/checkpoint.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: avsr-avg --last N DIR -o OUT.safetensors\n"
            "       avsr-avg --best N [--metric NAME] [--higher-better] DIR -o OUT.safetensors\n"
            "       avsr-avg -o OUT.safetensors A.safetensors B.safetensors ...\n"
            "\n"
            "Average model checkpoints element-wise (floats: mean with double accumulation;\n"
            "integer tensors: sum floor-divided by the count; bool: from the first input).\n"
            "DIR is a stage's checkpoint directory (exp/<name>/<stage>/ckpt) or the stage\n"
            "directory holding it; checkpoints are chosen from DIR/index.json (or the DONE\n"
            "files when there is no index).\n"
            "\n"
            "options:\n"
            "      --last N          the N checkpoints with the highest steps\n"
            "      --best N          the N best by the validation metric\n"
            "      --metric NAME     metric for --best (default: loss)\n"
            "      --higher-better   for --best: higher values are better (default: lower)\n"
            "  -o, --output FILE     output file (written atomically)\n"
            "  -q, --quiet           do not list the inputs on stderr\n"
            "  -h, --help            this text\n");
}

static int parse_n(const char *opt, const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > INT_MAX) {
        fprintf(stderr, "avsr-avg: %s: got '%s', expected a positive integer\n", opt, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    enum { OPT_LAST = 256, OPT_BEST, OPT_METRIC, OPT_HIGHER };
    static const struct option longopts[] = {
        {"last", required_argument, NULL, OPT_LAST},
        {"best", required_argument, NULL, OPT_BEST},
        {"metric", required_argument, NULL, OPT_METRIC},
        {"higher-better", no_argument, NULL, OPT_HIGHER},
        {"output", required_argument, NULL, 'o'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int last = 0, best = 0, quiet = 0;
    bool higher = false;
    const char *metric = NULL, *out = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "o:qh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_LAST:
            if (parse_n("--last", optarg, &last) < 0)
                return 2;
            break;
        case OPT_BEST:
            if (parse_n("--best", optarg, &best) < 0)
                return 2;
            break;
        case OPT_METRIC: metric = optarg; break;
        case OPT_HIGHER: higher = true; break;
        case 'o': out = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "avsr-avg: -o OUT.safetensors is required\n");
        usage(stderr);
        return 2;
    }
    if (last && best) {
        fprintf(stderr, "avsr-avg: --last and --best exclude each other\n");
        return 2;
    }
    if ((metric || higher) && !best) {
        fprintf(stderr, "avsr-avg: --metric and --higher-better go with --best\n");
        return 2;
    }
    int nin = argc - optind;
    avsr_error err = {0};
    avsr_ckpt_notes notes = {0};
    char **paths = NULL;
    int64_t *steps = NULL;
    int n = 0;
    int rc = 0;
    if (last || best) {
        if (nin != 1) {
            fprintf(stderr, "avsr-avg: --last/--best take exactly one directory (got %d "
                            "arguments)\n", nin);
            return 2;
        }
        n = last ? last : best;
        rc = avsr_avg_select(argv[optind], last ? AVSR_AVG_LAST : AVSR_AVG_BEST, n,
                             metric ? metric : "loss", higher, &paths, &steps, &notes, &err);
        for (int i = 0; i < notes.n; i++)
            fprintf(stderr, "avsr-avg: warning: %s\n", notes.msg[i]);
        avsr_ckpt_notes_free(&notes);
        if (rc < 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
    } else {
        if (nin < 1) {
            fprintf(stderr, "avsr-avg: no inputs: give --last N DIR, --best N DIR or files\n");
            return 2;
        }
        n = nin;
    }
    const char *const *in = paths ? (const char *const *)paths : (const char *const *)argv + optind;
    if (!quiet)
        for (int i = 0; i < n; i++)
            fprintf(stderr, "avsr-avg: input %d/%d: %s\n", i + 1, n, in[i]);
    rc = avsr_mkdir_parent(out, &err);
    if (rc == 0)
        rc = avsr_avg_files(in, steps, n, out, &err);
    avsr_avg_selection_free(paths, steps, paths ? n : 0);
    if (rc < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (!quiet)
        fprintf(stderr, "avsr-avg: wrote %s (%d inputs)\n", out, n);
    return 0;
}
