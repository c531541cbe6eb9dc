/* toy: a small end-to-end training on the runtime, used by the demo and by
 * tests/test_toy.
 *
 * The task is a miniature of speech recognition: each utterance is a
 * sequence of frames in which random tokens (1..K) are "spoken" for 2-4
 * frames each, with silences between them; a frame carries the token's
 * feature vector plus Gaussian noise (silence is noise only). A convolutional
 * network (conv1d k5 -> ReLU -> conv1d k3 -> ReLU -> linear) is trained with
 * CTC and AdamW under a warmup + cosine schedule, and decoded greedily;
 * the token error rate on held-out utterances says whether it learned. */
#ifndef AVSR_TOY_H
#define AVSR_TOY_H

#include <stdio.h>

#include "error.h"

typedef struct avsr_toy_opts {
    int steps;          /* optimizer steps (default 300) */
    int batch;          /* utterances per step (default 16) */
    int hidden;         /* channels (default 64) */
    int tokens;         /* vocabulary size K, without the blank (default 8) */
    float noise;        /* noise standard deviation (default 0.6) */
    float lr;           /* peak learning rate (default 3e-3) */
    unsigned long seed; /* default 1 */
    const char *save;   /* write the trained weights here (safetensors), or NULL */
    FILE *log;          /* progress lines, or NULL */
} avsr_toy_opts;

typedef struct avsr_toy_result {
    double first_loss;   /* mean CTC loss per utterance over the first 10 steps */
    double final_loss;   /* ... over the last 10 steps */
    double token_error;  /* greedy-decoding token error rate on 64 held-out utterances */
    double seconds;      /* training wall time */
    long long params;    /* trainable parameters */
    size_t arena_peak;   /* bytes */
} avsr_toy_result;

void avsr_toy_defaults(avsr_toy_opts *o);
int avsr_toy_run(const avsr_toy_opts *o, avsr_toy_result *res, avsr_error *err);

#endif
