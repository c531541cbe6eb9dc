/* recognize: a batch of model inputs -> text, with the search the recipe's
 * eval.search asks for (models/search.h):
 *
 *   CTC greedy      argmax per frame of the CTC head, repeats collapsed,
 *                   blanks dropped;
 *   CTC beam        CTC prefix beam search;
 *   attention beam  joint CTC/attention beam search (ESPnet / Auto-AVSR):
 *                   the decoder runs incrementally with a cache of its
 *                   earlier positions, batched over every running
 *                   hypothesis of every utterance of the batch.
 *
 * The model runs in evaluation mode (no dropout, BatchNorm running
 * statistics, no tape). A missing modality (NULL video or audio in the
 * input) is zeros in the fusion (models/avsr_model.h). Token ids become
 * text through the vocabulary (avsr_vocab_decode). docs/eval/recognize.md. */
#ifndef AVSR_EVAL_RECOGNIZE_H
#define AVSR_EVAL_RECOGNIZE_H

#include <stdint.h>

#include "ctx.h"
#include "datasets/tokenizer.h"
#include "error.h"
#include "models/avsr_model.h"
#include "models/search.h"
#include "train/recipe.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_recog_opts {
    avsr_recipe_search_kind search;
    avsr_ctc_beam_opts ctc;  /* CTC beam */
    avsr_att_beam_opts att;  /* attention beam (ctc_weight 0 .. 1) */
} avsr_recog_opts;

/* Defaults for model m: attention beam with Auto-AVSR's settings
 * (avsr_att_beam_opts_default) when the model has a decoder, else CTC prefix
 * beam (avsr_ctc_beam_opts_default). */
void avsr_recog_opts_default(avsr_recog_opts *o, const avsr_model *m);

/* Check o against model m (vocabulary size, a decoder for attention search,
 * ranges). Errors name the setting: "search: beam 0 is out of range ...". */
int avsr_recog_opts_check(const avsr_recog_opts *o, const avsr_model *m, avsr_error *err);

/* "ctc_greedy", "ctc_beam", "attention_beam"; NULL when out of range */
const char *avsr_recog_search_name(int kind);
/* The kind of a name above, or -1. */
int avsr_recog_search_parse(const char *name);

typedef struct avsr_recog_result {
    char *text;            /* malloc'd (avsr_vocab_decode of the best hypothesis) */
    int64_t *tokens;       /* malloc'd token ids of the best hypothesis */
    int n_tokens;
    double score;          /* what the search ranked by: attention beam: the
                            * weighted sum; CTC beam: log p_ctc; greedy: the
                            * log-probability of the best CTC path */
    double score_ctc;      /* CTC log-probability part (attention beam: of
                            * the hypothesis with <eos>) */
    double score_dec;      /* summed decoder log-probabilities (attention beam) */
    int64_t frames;        /* encoder frames of the utterance */
} avsr_recog_result;

typedef struct avsr_recog_timing {
    double encode_s;       /* model forward up to the CTC log-probabilities */
    double search_s;       /* search including the decoder */
} avsr_recog_timing;

/* Recognise the in->B utterances of `in` into out[0 .. B) (zeroed first).
 * The context is reset (every activation freed) before this returns, so
 * arena tensors of `in` must not be used afterwards. timing may be NULL.
 * Returns 0, or -1 with err set (out is then empty). */
int avsr_recognize(avsr_ctx *ctx, const avsr_model *m, const avsr_vocab *v,
                   const avsr_recog_opts *o, const avsr_model_input *in,
                   avsr_recog_result *out, avsr_recog_timing *timing, avsr_error *err);
void avsr_recog_results_free(avsr_recog_result *r, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
