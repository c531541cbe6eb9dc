/* avsr-toy: train the toy CTC network of examples/toy.h and report.
 * Used by scripts/demo.sh until the AVSR demo exists. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toy.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: avsr-toy [--steps N] [--batch N] [--hidden N] [--tokens K] [--noise S]\n"
            "                [--lr X] [--seed N] [--save FILE.safetensors]\n"
            "Trains a small conv net with CTC on a synthetic noisy token stream and\n"
            "prints the loss, then the greedy token error rate on held-out utterances.\n");
}

static int num(const char *flag, const char *v, double lo, double hi, double *out)
{
    char *end;
    double x = v ? strtod(v, &end) : 0;
    if (!v || *end || x < lo || x > hi) {
        fprintf(stderr, "avsr-toy: %s needs a number in [%g, %g], got '%s'\n", flag, lo, hi,
                v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

int main(int argc, char **argv)
{
    avsr_toy_opts o;
    avsr_toy_defaults(&o);
    o.log = stdout;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--save") && v) {
            o.save = v;
            i++;
            continue;
        }
#define NUMFLAG(name, lo, hi, field, type)                 \
    else if (!strcmp(a, name)) {                             \
        if (num(name, v, lo, hi, &x) < 0)                    \
            return 2;                                        \
        o.field = (type)x;                                   \
        i++;                                                 \
    }
        NUMFLAG("--steps", 20, 1e7, steps, int)
        NUMFLAG("--batch", 1, 4096, batch, int)
        NUMFLAG("--hidden", 1, 4096, hidden, int)
        NUMFLAG("--tokens", 2, 60, tokens, int)
        NUMFLAG("--noise", 0, 10, noise, float)
        NUMFLAG("--lr", 0, 1, lr, float)
        NUMFLAG("--seed", 0, 1e15, seed, unsigned long)
        else {
            fprintf(stderr, "avsr-toy: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    avsr_toy_result r;
    avsr_error err = {0};
    if (avsr_toy_run(&o, &r, &err) < 0) {
        fprintf(stderr, "avsr-toy: %s\n", err.msg);
        return 1;
    }
    printf("trained %lld parameters for %d steps in %.2f s (%.1f steps/s, peak arena %.1f MB)\n",
           r.params, o.steps, r.seconds, o.steps / r.seconds, r.arena_peak / 1e6);
    printf("CTC loss per utterance: %.3f (first 10 steps) -> %.3f (last 10 steps)\n",
           r.first_loss, r.final_loss);
    printf("held-out token error rate (greedy CTC): %.1f%%\n", 100 * r.token_error);
    if (o.save)
        printf("weights written to %s\n", o.save);
    return 0;
}
