/* tokenizer: character and word vocabularies for CTC / attention targets.
 *
 * Ids: 0 = blank (CTC), 1 = <unk>, 2 .. size-2 = one Unicode character
 * each (a word each in a word vocabulary), size-1 = <eos>, also used as
 * <sos> (Auto-AVSR's token_list layout). In a character vocabulary the
 * space character is the literal ' ' (U+0020), not '|'; a word vocabulary
 * has no space token: decode puts one space between words.
 *
 * Text normalisation (avsr_vocab_normalize_text, applied by encode and build):
 * the input must be valid UTF-8; ASCII letters a-z become A-Z (no other
 * case mapping); ASCII whitespace (space, \t, \n, \v, \f, \r) becomes a
 * space; runs of spaces collapse to one; leading and trailing spaces go.
 * Encoding then maps each character to its id; characters outside the
 * vocabulary become <unk> (AVSR_OOV_UNK, the default) or are dropped
 * (AVSR_OOV_DROP); spaces are collapsed again after dropping.
 * See docs/data/tokenizer.md. */
#ifndef AVSR_TOKENIZER_H
#define AVSR_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_vocab avsr_vocab;

enum avsr_oov { AVSR_OOV_UNK = 0, AVSR_OOV_DROP = 1 };

#define AVSR_VOCAB_BLANK 0
#define AVSR_VOCAB_UNK 1
/* id skipped by avsr_vocab_decode (padding of targets, as in Auto-AVSR) */
#define AVSR_VOCAB_IGNORE (-1)

/* blank, <unk>, ' ', '\'', A-Z, 0-9, <eos>: 41 ids. */
int avsr_vocab_default(avsr_vocab **out, avsr_error *err);
/* From training text: every character that occurs in the normalised texts
 * (control characters excepted), sorted by code point. */
int avsr_vocab_build(avsr_vocab **out, const char *const *texts, int64_t n, avsr_error *err);
/* Word vocabulary from training text: every distinct word (maximal run of
 * non-space characters) of the normalised texts, sorted by byte order
 * (strcmp), at ids 2 .. size-2. For closed-vocabulary tasks (GRID, the demo
 * corpus); encoding maps an unseen word to <unk> (or drops it). */
int avsr_vocab_build_words(avsr_vocab **out, const char *const *texts, int64_t n,
                           avsr_error *err);
void avsr_vocab_free(avsr_vocab *v);
/* true for a word vocabulary */
bool avsr_vocab_is_words(const avsr_vocab *v);

int32_t avsr_vocab_size(const avsr_vocab *v);
int32_t avsr_vocab_eos(const avsr_vocab *v); /* = sos = size - 1 */
int avsr_vocab_oov(const avsr_vocab *v);
void avsr_vocab_set_oov(avsr_vocab *v, int oov);
/* Symbol of an id ("<blank>", "<unk>", "<eos>", or the character in
 * UTF-8); NULL when out of range. */
const char *avsr_vocab_symbol(const avsr_vocab *v, int32_t id);
/* Id of a code point, -1 if absent (always -1 in a word vocabulary). */
int32_t avsr_vocab_id(const avsr_vocab *v, uint32_t codepoint);

/* Normalised copy of text[0 .. len) (malloc'd, NUL-terminated), or NULL
 * with err set (invalid UTF-8: byte offset named). */
char *avsr_vocab_normalize_text(const char *text, size_t len, avsr_error *err);

/* Encode text[0 .. len) into ids[cap]; returns the number of ids or -1.
 * Never more ids than input bytes, so cap = len always suffices. */
int64_t avsr_vocab_encode(const avsr_vocab *v, const char *text, size_t len, int32_t *ids,
                          int64_t cap, avsr_error *err);
/* Text of ids[n] (malloc'd): blank and <eos> write nothing, <unk> writes
 * "<unk>", AVSR_VOCAB_IGNORE (-1) is skipped; other ids out of range are
 * an error. No CTC collapsing (that is the decoder's job). */
char *avsr_vocab_decode(const avsr_vocab *v, const int32_t *ids, int64_t n, avsr_error *err);

/* JSON for checkpoint metadata (malloc'd):
 *   {"type": "char", "version": 1, "oov": "unk", "blank": 0, "unk": 1,
 *    "eos": N-1, "symbols": ["<blank>", "<unk>", " ", ..., "<eos>"]}
 * ("type": "word" and one word per symbol for a word vocabulary). */
char *avsr_vocab_to_json(const avsr_vocab *v, avsr_error *err);
int avsr_vocab_from_json(avsr_vocab **out, const char *json, avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
