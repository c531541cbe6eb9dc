/* model_file: a model file is a safetensors file that decodes on its own.
 *
 * Besides the parameters and buffers (by name, as avsr-worker's checkpoints
 * and avsr-avg's averages store them), its metadata holds
 *   "avsr.model"      the recipe's resolved `model:` section as a JSON
 *                     object (JSON is YAML flow, so the model builder reads
 *                     it with yamltree like a recipe);
 *   "avsr.tokenizer"  the vocabulary (avsr_vocab_to_json).
 * avsr_model_file_load() rebuilds the model from the first, the vocabulary
 * from the second, and loads every parameter and buffer by name: shapes must
 * match exactly and every tensor of the file must belong to the model
 * (avsr_model_load_mapped without a map). Every error names the file.
 * docs/formats/model-file.md. */
#ifndef AVSR_MODELS_MODEL_FILE_H
#define AVSR_MODELS_MODEL_FILE_H

#include "avsr_model.h"
#include "datasets/tokenizer.h"
#include "error.h"
#include "params.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AVSR_MODEL_FILE_META_MODEL "avsr.model"
#define AVSR_MODEL_FILE_META_TOKENIZER "avsr.tokenizer"

typedef struct avsr_model_file {
    char *path;         /* as given */
    avsr_params *params;/* finalized, every parameter and buffer loaded */
    avsr_model *model;
    avsr_vocab *vocab;
    char *model_json;   /* the "avsr.model" text */
    char *vocab_json;   /* the "avsr.tokenizer" text */
} avsr_model_file;

/* Load path into *out (zeroed first). Errors (err, -1):
 *   "<path>: cannot open: <strerror>"
 *   "<path>: not a safetensors file: ..."   (header unreadable)
 *   "<path>: not a model file: metadata \"avsr.model\" is missing (...)"
 *   "<path>[avsr.model]:LINE:COL: model.<key>: ..."  (a bad configuration)
 *   "<path>: metadata \"avsr.tokenizer\": ..."     (a bad vocabulary)
 *   "<path>: tensor '<name>' is missing" / "... has shape [..], but ..." /
 *   "<path>: tensor '<name>' is not a parameter or buffer of the model" */
int avsr_model_file_load(const char *path, avsr_model_file *out, avsr_error *err);
void avsr_model_file_free(avsr_model_file *mf);

/* The two metadata values of path without loading tensors (malloc'd; NULL
 * where absent). Reads only the header. */
int avsr_model_file_meta(const char *path, char **model_json, char **vocab_json,
                         avsr_error *err);

/* Write every parameter and buffer of p (finalized) to path (atomically)
 * with metadata "format" = "pt", "avsr.kind" = "model", "avsr.model" =
 * model_json and "avsr.tokenizer" = vocab_json (both required). */
int avsr_model_file_save(const char *path, const avsr_params *p, const char *model_json,
                         const char *vocab_json, avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
