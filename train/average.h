/* average: checkpoint averaging (avsr-avg; docs/tools/avsr-avg.md).
 *
 * The element-wise mean of N model files with identical tensor names, shapes
 * and dtypes, parameters and buffers alike (BatchNorm running statistics
 * included), as fairseq's scripts/average_checkpoints.py does:
 *   F32, F64, F16, BF16: sum in double over the inputs (in the order given),
 *                        divide by N, round once to the tensor's dtype;
 *   I8, I16, I32, I64, U8: integer sum floor-divided by N (fairseq's
 *                        `//= N`; e.g. num_batches_tracked);
 *   BOOL:                copied from the first input.
 *
 * Streaming: only the safetensors headers are read whole; tensor data are
 * read with pread in chunks of AVSR_AVG_CHUNK elements, one input after the
 * other, and each averaged chunk is written out before the next is read.
 * Memory is therefore the parsed headers plus 32 x AVSR_AVG_CHUNK bytes
 * (2 MiB: a double and a 128-bit integer accumulator and one input chunk),
 * whatever the model size; one file descriptor per input stays open.
 * The headers are validated as avsr_st_open does (offsets in range, byte
 * counts, no overlaps, holes or trailing bytes), so a corrupt input is an
 * error message, never a crash.
 *
 * The output is written atomically (fileio.h): on any failure nothing
 * appears at the output path and an existing file there is unchanged. Its
 * metadata copy the first input's "format", "avsr.model", "avsr.tokenizer",
 * "avsr.stage" and "avsr.recipe_hash", and add "avsr.avg.sources" (JSON
 * array of {"path", "step"}; step null when unknown), "avsr.avg.count" and
 * "avsr.avg.rule". "avsr.model" and "avsr.tokenizer" must be the same text in
 * every input (or absent from all): they make the average a model file that
 * decodes on its own (models/model_file.h), and inputs that disagree are an
 * error naming the key and both files. */
#ifndef AVSR_AVERAGE_H
#define AVSR_AVERAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "checkpoint.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AVSR_AVG_CHUNK 65536

/* Average the n >= 1 model files `paths` into out_path. steps[i] is the
 * training step recorded for input i (for the sources metadata; steps may be
 * NULL, or an entry -1: read from the file's "avsr.step" metadata if there).
 * A mismatch is an error naming the tensor and both files. */
int avsr_avg_files(const char *const *paths, const int64_t *steps, int n, const char *out_path,
                   avsr_error *err);

typedef enum avsr_avg_mode { AVSR_AVG_LAST = 0, AVSR_AVG_BEST = 1 } avsr_avg_mode;

/* Choose n checkpoints under dir (a stage's ckpt directory, or the stage
 * directory holding ckpt/): from dir/index.json if it exists, else by
 * scanning the DONE files. LAST: the n highest steps. BEST: the n best by
 * `metric` (lower is better unless higher_better; ties go to the newer),
 * among the checkpoints that recorded it. Fewer than n candidates is an
 * error. *paths (model.safetensors paths) and *steps are malloc'd arrays of
 * n entries in ascending step order; free with avsr_avg_selection_free. */
int avsr_avg_select(const char *dir, avsr_avg_mode mode, int n, const char *metric,
                    bool higher_better, char ***paths, int64_t **steps, avsr_ckpt_notes *notes,
                    avsr_error *err);
void avsr_avg_selection_free(char **paths, int64_t *steps, int n);

#ifdef __cplusplus
}
#endif

#endif
