/* score: word and character error rates (WER, CER).
 *
 * A reference and a hypothesis are aligned by Levenshtein distance (unit
 * costs) and the alignment is counted as S substitutions, D deletions
 * (reference units missing), I insertions (extra hypothesis units) and H
 * hits. Among the minimum-cost alignments the one chosen is the one jiwer 4
 * reports (rapidfuzz's Levenshtein.opcodes backtrace after stripping the
 * common prefix and suffix), so per-utterance S/D/I/H equal jiwer's.
 * Corpus rates sum the counts over utterances first:
 *     rate = (S + D + I) / (S + D + H)
 * and, as jiwer does, equal I when the references hold no units at all.
 *
 * Units: words are maximal runs of non-whitespace bytes (ASCII whitespace:
 * space, \t \n \v \f \r), compared bytewise; characters are Unicode code
 * points of the text with leading and trailing ASCII whitespace removed,
 * inner spaces included (jiwer's cer default). Text is UTF-8; invalid UTF-8
 * is an error.
 *
 * avsr_score_normalize() (docs/eval/scoring.md has the exact rules):
 * ASCII letters upper-cased; U+2019 and U+02BC become an apostrophe;
 * ASCII punctuation other than the apostrophe and a fixed list of Unicode
 * punctuation are deleted; whitespace (ASCII and U+00A0) runs become one
 * space; leading and trailing spaces are removed. Other code points are
 * kept as they are. */
#ifndef AVSR_SCORE_H
#define AVSR_SCORE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avsr_edit_counts {
    int64_t sub, del, ins, hit;
} avsr_edit_counts;

/* Reference units: S + D + H. */
static inline int64_t avsr_edit_ref_len(const avsr_edit_counts *c)
{
    return c->sub + c->del + c->hit;
}
/* Errors: S + D + I. */
static inline int64_t avsr_edit_errors(const avsr_edit_counts *c)
{
    return c->sub + c->del + c->ins;
}
/* acc += c */
void avsr_edit_add(avsr_edit_counts *acc, const avsr_edit_counts *c);
/* (S + D + I) / (S + D + H); I when S + D + H = 0 (jiwer's convention). */
double avsr_edit_rate(const avsr_edit_counts *c);

/* Align two integer sequences (ids compared for equality). Memory is
 * (nr' + 1)(nh' + 1) ints for the parts left after removing the common
 * prefix and suffix; more than 1e8 cells is an error. */
int avsr_edit_align(const int64_t *ref, int64_t nr, const int64_t *hyp, int64_t nh,
                    avsr_edit_counts *c, avsr_error *err);

/* Normalised copy of a UTF-8 text (malloc; free()). NULL with err set for
 * invalid UTF-8 or no memory. */
char *avsr_score_normalize(const char *text, avsr_error *err);

/* Word / character counts of one pair (texts used as given). */
int avsr_wer_counts(const char *ref, const char *hyp, avsr_edit_counts *c, avsr_error *err);
int avsr_cer_counts(const char *ref, const char *hyp, avsr_edit_counts *c, avsr_error *err);

typedef struct avsr_score_result {
    int64_t n;             /* utterances */
    avsr_edit_counts word; /* summed word counts */
    avsr_edit_counts chr;  /* summed character counts */
    double wer, cer;       /* avsr_edit_rate of the sums */
} avsr_score_result;

/* Score n pairs (OpenMP across utterances). normalize: apply
 * avsr_score_normalize to both sides first. word_utt / char_utt: NULL or
 * [n] per-utterance counts. Errors name the utterance. */
int avsr_score_corpus(int64_t n, const char *const *refs, const char *const *hyps,
                      bool normalize, avsr_edit_counts *word_utt, avsr_edit_counts *char_utt,
                      avsr_score_result *res, avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
