/* evalutil: fixtures the evaluation tests share: a tiny randomly
 * initialised audio-visual model saved as a model file, and small packed
 * corpora (AV clips with GRID-like transcripts, a noise corpus) written with
 * the pack writer. Everything is a function of the seed. Failures bail out
 * (tap_bail). */
#ifndef AVSR_TESTS_EVALUTIL_H
#define AVSR_TESTS_EVALUTIL_H

#include <stdint.h>

/* The `model:` section of the tiny model as JSON (video ROI 24, wave audio,
 * late concat+MLP fusion, one 32-wide Conformer block per modality, one
 * decoder block, ctc_weight 0.3). */
extern const char EU_TINY_MODEL_JSON[];
/* The same with one more decoder block (a configuration whose tensors do
 * not match the tiny model's). */
extern const char EU_TINY_MODEL_JSON_2DEC[];

/* Build the model of model_json with the default 41-symbol vocabulary,
 * initialise it from seed and write it as a model file. */
void eu_write_model_file(const char *path, const char *model_json, uint64_t seed);

/* An AV pack of n clips of 20 .. 20 + span - 1 frames at ROI x ROI, random
 * pixels, tones with noise, 1-3 words per transcript. */
void eu_write_av_pack(const char *path, int n, uint64_t seed, int roi, int span);
/* A noise corpus of n clips of 0.5 + 0.25 i s of Gaussian noise. */
void eu_write_noise_pack(const char *path, int n, uint64_t seed);

#endif
