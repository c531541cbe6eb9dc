/* builder: the recipe's `model:` section -> an avsr_model.
 *
 * Every key is read with yamltree, so unknown keys, wrong types, values out
 * of range and contradictory settings (fusion settings with one modality, a
 * decoder with ctc_weight 1, settings of another frontend type, dimensions
 * that do not divide or do not match) are errors "recipe.yaml:LINE:COL:
 * model.<key>: message". The schema and every default are in
 * docs/models/recipe-model.md; the defaults are Auto-AVSR's.
 *
 * Name maps (models/maps/NAME.map, format in docs/models/model.md) load
 * external checkpoints (converted to safetensors) by name. */
#ifndef AVSR_MODELS_BUILDER_H
#define AVSR_MODELS_BUILDER_H

#include "avsr_model.h"
#include "yamltree.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parse the `model:` mapping into cfg (no registration). vocab_size: the
 * tokenizer's size (blank and eos included). */
int avsr_model_cfg_parse(const avsr_yaml *y, avsr_ynode *model_section, int vocab_size,
                         avsr_model_cfg *cfg, avsr_error *err);

/* Parse and register the model's parameters in p (not finalized: the caller
 * finalizes and initialises, or just prints the summary, which needs no
 * parameter memory). */
int avsr_model_build(const avsr_yaml *y, avsr_ynode *model_section, int vocab_size,
                     avsr_model **out, avsr_params *p, avsr_error *err);

/* ---- name maps ------------------------------------------------------------ */

typedef struct avsr_namemap avsr_namemap;

avsr_namemap *avsr_namemap_load(const char *path, avsr_error *err);
/* text: the file's contents; name: for messages */
avsr_namemap *avsr_namemap_parse(const char *name, const char *text, avsr_error *err);
void avsr_namemap_free(avsr_namemap *m);
/* External name of our tensor `name` into buf: 1 = mapped, 0 = the map
 * says "-" (not loaded), -1 = no line matches (err set). */
int avsr_namemap_apply(const avsr_namemap *m, const char *name, char *buf, size_t bufsize,
                       avsr_error *err);

/* Load every parameter and buffer of p (finalized) from the safetensors file
 * st_file through the map: shapes must match exactly (f32 tensors are read
 * from F32/F16/BF16/F64; integer buffers need the same dtype), every tensor
 * of the file must be used or ignored by a "- pattern" line. The first
 * missing, mismatched or unused tensor is the error. map_file NULL: names
 * are the same in the file (our own checkpoints). Returns the number of
 * tensors loaded, or -1. */
int avsr_model_load_mapped(avsr_params *p, const char *st_file, const char *map_file,
                           avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
