/* spm: SentencePiece tokenizer behind a C API.
 *
 * SentencePiece is C++ only; datasets/spm_shim.cc wraps Debian's
 * libsentencepiece (0.1.97) and catches every exception, so nothing C++
 * crosses into C. Built without it (configure --without-sentencepiece, or
 * the library not found), every function below fails with
 * AVSR_ERR_UNSUPPORTED and a message naming the configure option
 * (datasets/spm_none.c). Manual: docs/data/sentencepiece.md.
 *
 * Functions return 0 / a non-negative value on success and -1 on failure
 * with err filled in (err may be NULL). A model handle may be used from
 * several threads for encode/decode at once (SentencePieceProcessor's
 * const methods), but not while it is freed. */
#ifndef AVSR_SPM_H
#define AVSR_SPM_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_spm avsr_spm;

/* True if this build has SentencePiece. */
bool avsr_spm_available(void);

/* Load a model file (<prefix>.model). NULL on failure. */
avsr_spm *avsr_spm_load(const char *path, avsr_error *err);
void avsr_spm_free(avsr_spm *spm);

/* Pieces in the vocabulary (ids are 0 .. size - 1). */
int avsr_spm_vocab_size(const avsr_spm *spm);
/* Id of the unknown piece (<unk>), -1 if none. */
int avsr_spm_unk_id(const avsr_spm *spm);

/* UTF-8 text -> ids in a malloc'd array (*ids, free() it) of *n entries.
 * Characters the model does not know become unk ids. */
int avsr_spm_encode(const avsr_spm *spm, const char *text, int32_t **ids, int *n,
                    avsr_error *err);
/* ids -> malloc'd NUL-terminated UTF-8 text (free() it); NULL on failure
 * (an id outside [0, vocab size) is an error). */
char *avsr_spm_decode(const avsr_spm *spm, const int32_t *ids, int n, avsr_error *err);

/* Piece text of an id (valid while the model lives); NULL if out of range. */
const char *avsr_spm_id_to_piece(const avsr_spm *spm, int id);
/* Id of a piece; the unk id if the piece is not in the vocabulary. */
int avsr_spm_piece_to_id(const avsr_spm *spm, const char *piece);

/* Train a model from a text file (one sentence per line) into
 * <model_prefix>.model and <model_prefix>.vocab. model_type: "unigram"
 * (default when NULL), "bpe", "char" or "word". Training is quiet (only
 * errors are reported, through err). */
int avsr_spm_train(const char *text_file, const char *model_prefix, int vocab_size,
                   const char *model_type, avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
