/* search: decoding of CTC log-probabilities and joint CTC/attention beam
 * search (ESPnet semantics, as Auto-AVSR decodes).
 *
 * Everything here is plain C on float arrays: no tape, no context; it runs
 * at evaluation time. Batched entry points take log-probabilities
 * [B, Tmax, V] (row-major, utterance b valid for its first lens[b] frames;
 * padding is never read) and split the utterances over OpenMP threads.
 * Scores are accumulated in double. Log-probabilities are natural-log
 * (log_softmax outputs). docs/models/search.md has the algorithms and
 * equations.
 *
 *   avsr_ctc_greedy*        argmax per frame, collapse repeats, drop blank
 *   avsr_ctc_prefix_beam*   CTC prefix beam search, n-best with scores
 *   avsr_ctc_prefix_*       ESPnet's CTCPrefixScore (prefix probability of
 *                           g + c for candidate labels c, incremental state)
 *   avsr_att_beam_search    attention beam search with joint CTC prefix
 *                           scoring; the decoder is a callback
 *
 * Token ids are int64 (as index tensors elsewhere in avsr). */
#ifndef AVSR_SEARCH_H
#define AVSR_SEARCH_H

#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ESPnet's log(0): finite so that differences of impossible prefix scores
 * stay finite (CTCPrefixScore.logzero). */
#define AVSR_SEARCH_LOGZERO (-10000000000.0)

/* ---- n-best lists ------------------------------------------------------ */

/* The hypotheses of one utterance, best first. Hypothesis i is
 * tokens[offset[i] .. offset[i + 1]) (no <sos>/<eos>). All arrays are owned
 * (malloc) and released by avsr_nbest_free. */
typedef struct avsr_nbest {
    int n;             /* hypotheses held */
    int *offset;       /* [n + 1] */
    int64_t *tokens;   /* [offset[n]] */
    double *score;     /* [n] total log score the search ranked by */
    double *score_dec; /* [n] summed decoder log-probs (attention search), else 0 */
    double *score_ctc; /* [n] CTC prefix log-prob of the hypothesis (attention search
                        * with CTC: log p_ctc(y, <eos>)), else the CTC log-prob */
} avsr_nbest;

/* Frees the arrays and zeroes the struct (safe on a zeroed struct). */
void avsr_nbest_free(avsr_nbest *nb);
/* Length of hypothesis i. */
static inline int avsr_nbest_len(const avsr_nbest *nb, int i)
{
    return nb->offset[i + 1] - nb->offset[i];
}

/* ---- greedy CTC ---------------------------------------------------------- */

/* One utterance: logp [T, V]. Writes at most T ids to out and returns their
 * number (argmax per frame, ties to the lowest id; repeats collapsed; blank
 * dropped). T >= 0. */
int avsr_ctc_greedy(const float *logp, int T, int V, int blank, int64_t *out);

/* Batch: logp [B, Tmax, V], lens [B] (0 <= lens[b] <= Tmax). out [B, Tmax]
 * (row b holds out_len[b] ids). Returns 0, or -1 with err set for bad
 * arguments. */
int avsr_ctc_greedy_batch(const float *logp, int B, int Tmax, int V, const int *lens, int blank,
                          int64_t *out, int *out_len, avsr_error *err);

/* ---- CTC prefix beam search ---------------------------------------------- */

typedef struct avsr_ctc_beam_opts {
    int beam;       /* prefixes kept after each frame (>= 1) */
    int nbest;      /* hypotheses returned (1 .. beam) */
    int blank;      /* blank id */
    int token_topk; /* per frame, extend only the k most likely non-blank tokens
                     * (0 or >= V - 1: all) */
} avsr_ctc_beam_opts;

/* beam 10, nbest 1, blank 0, token_topk 0 */
void avsr_ctc_beam_opts_default(avsr_ctc_beam_opts *o);

/* One utterance: logp [T, V] -> out (score = log(p_b + p_nb) of the prefix
 * after the last frame; score_ctc = score). T = 0 gives the empty
 * hypothesis with score 0. */
int avsr_ctc_prefix_beam(const float *logp, int T, int V, const avsr_ctc_beam_opts *o,
                         avsr_nbest *out, avsr_error *err);

/* Batch: logp [B, Tmax, V], lens [B]; out [B] (zeroed or freed structs). */
int avsr_ctc_prefix_beam_batch(const float *logp, int B, int Tmax, int V, const int *lens,
                               const avsr_ctc_beam_opts *o, avsr_nbest *out, avsr_error *err);

/* ---- CTC prefix scorer (ESPnet CTCPrefixScore) ----------------------------
 *
 * For a hypothesis prefix g (without <sos>, length L) the state is
 * r [T, 2]: r[t][0] = log r^n_t(g) (paths over frames 0..t emitting g and
 * ending in its last label), r[t][1] = log r^b_t(g) (ending in blank).
 * Scoring candidates c gives log psi(g + c) = log of the probability of all
 * label sequences that start with g + c; for c = eos, log(r^n_{T-1}(g) +
 * r^b_{T-1}(g)) (the probability of exactly g); for c = blank, LOGZERO. */
typedef struct avsr_ctc_prefix {
    const float *logp;   /* [T, V], borrowed */
    const float *logp_t; /* NULL, or the same values transposed, [V, T]: reads
                          * along time become contiguous (faster for large V) */
    int T, V;
    int blank, eos;
} avsr_ctc_prefix;

/* State of the empty prefix (<sos>): r^n = LOGZERO, r^b_t = sum_{u<=t}
 * logp[u][blank]. r [T, 2]. */
void avsr_ctc_prefix_init(const avsr_ctc_prefix *s, double *r);

/* log psi(g + cs[i]) for n candidates. g has length L (without <sos>) and
 * last label `last` (ignored when L = 0); r_prev [T, 2] is g's state.
 * psi [n]. work [T] doubles of scratch. r_out: NULL, or [n, T, 2] for the
 * states of g + cs[i] (rows before max(L, 1) - 1 are LOGZERO and unused). */
void avsr_ctc_prefix_score(const avsr_ctc_prefix *s, int L, int64_t last, const double *r_prev,
                           int n, const int64_t *cs, double *psi, double *r_out, double *work);

/* ---- attention beam search with joint CTC prefix scoring -----------------
 *
 * The decoder is a callback. Given n_hyps prefixes (each starting with
 * <sos>: prefixes[h][0 .. prefix_len[h])) belonging to utterances
 * utt_index[h] (0 .. B-1, in increasing order, the hypotheses of one
 * utterance contiguous), it writes log-probabilities of the next token,
 * logp_out [n_hyps, V] (log_softmax of the decoder output at the last
 * position). It returns 0, or -1 with err set to abort the search. It is
 * called from the calling thread only, once per search step with the
 * running hypotheses of all unfinished utterances, so an incremental
 * decoder can batch them; the pointers are valid during the call only.
 * A hypothesis' prefix at step i has length i + 1. */
typedef int (*avsr_dec_step_fn)(void *user, int n_hyps, const int *utt_index,
                                const int64_t *const *prefixes, const int *prefix_len,
                                float *logp_out /* [n_hyps, V] */, avsr_error *err);

typedef struct avsr_att_beam_opts {
    int beam;              /* hypotheses kept per step (1 .. V) */
    int nbest;             /* results returned per utterance (1 .. beam) */
    double ctc_weight;     /* lambda in [0, 1]: score = (1 - lambda) dec + lambda ctc */
    double pre_beam_ratio; /* K = (int)(ratio * beam) candidates per hypothesis by
                            * decoder score when 0 < lambda < 1 and K < V */
    double length_bonus;   /* added per emitted token (eos included) */
    double maxlenratio;    /* 0: max length T with end detection; > 0:
                            * max(1, (int)(ratio T)); < 0: (int)(-ratio) */
    int sos, eos, blank;
    int eos_always;        /* 1: <eos> is always a candidate (scored by CTC)
                            * even outside the pre-beam (ESPnet BatchBeamSearch with
                            * CTCPrefixScoreTH, what Auto-AVSR runs); 0: only
                            * pre-beam tokens (ESPnet BeamSearch) */
    int end_m;             /* end detection: M lengths (3) */
    double end_d;          /* end detection threshold D_end (log(exp(-10)) = -10) */
} avsr_att_beam_opts;

/* Auto-AVSR's settings for vocabulary size V: beam 40, nbest 1, lambda 0.1,
 * ratio 1.5, bonus 0, maxlenratio 0, sos = eos = V - 1, blank 0,
 * eos_always 1, end_m 3, end_d -10. */
void avsr_att_beam_opts_default(avsr_att_beam_opts *o, int V);

/* Decode B utterances. ctc_logp [B, Tmax, V] CTC log-probabilities (may be
 * NULL when ctc_weight == 0); enc_len [B] encoder frames per utterance
 * (1 .. Tmax; it sets the maximum output length and the CTC length). dec:
 * the decoder (may be NULL when ctc_weight == 1). out [B]: the n-best of
 * each utterance, best first (scores as ranked: accumulated weighted
 * scores). Returns 0, or -1 with err set. */
int avsr_att_beam_search(int B, int Tmax, int V, const float *ctc_logp, const int *enc_len,
                         avsr_dec_step_fn dec, void *user, const avsr_att_beam_opts *o,
                         avsr_nbest *out, avsr_error *err);

#ifdef __cplusplus
}
#endif

#endif
