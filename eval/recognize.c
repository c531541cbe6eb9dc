/* recognize: model forward + search + detokenisation. */
#include "recognize.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/decoder.h"
#include "ops.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *const SEARCH_NAMES[] = {"ctc_greedy", "ctc_beam", "attention_beam"};

const char *avsr_recog_search_name(int kind)
{
    return kind >= 0 && kind < 3 ? SEARCH_NAMES[kind] : NULL;
}

int avsr_recog_search_parse(const char *name)
{
    for (int k = 0; k < 3; k++)
        if (strcmp(name, SEARCH_NAMES[k]) == 0)
            return k;
    return -1;
}

void avsr_recog_opts_default(avsr_recog_opts *o, const avsr_model *m)
{
    memset(o, 0, sizeof *o);
    avsr_ctc_beam_opts_default(&o->ctc);
    avsr_att_beam_opts_default(&o->att, (int)m->cfg.vocab);
    o->search = m->cfg.use_decoder ? AVSR_SEARCH_ATTENTION_BEAM : AVSR_SEARCH_CTC_BEAM;
}

int avsr_recog_opts_check(const avsr_recog_opts *o, const avsr_model *m, avsr_error *err)
{
    int V = (int)m->cfg.vocab;
    switch (o->search) {
    case AVSR_SEARCH_CTC_GREEDY:
        return 0;
    case AVSR_SEARCH_CTC_BEAM:
        if (o->ctc.beam < 1 || o->ctc.beam > 100000)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "search: beam %d is out of range [1, 100000]", o->ctc.beam);
        if (o->ctc.nbest < 1 || o->ctc.nbest > o->ctc.beam)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "search: nbest %d is out of range [1, beam = %d]", o->ctc.nbest,
                                  o->ctc.beam);
        if (o->ctc.blank != AVSR_VOCAB_BLANK)
            return avsr_error_set(err, AVSR_ERR_INVALID, "search: blank id %d, the model's is %d",
                                  o->ctc.blank, AVSR_VOCAB_BLANK);
        return 0;
    case AVSR_SEARCH_ATTENTION_BEAM:
        if (o->att.beam < 1 || o->att.beam > V)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "search: beam %d is out of range [1, vocabulary size %d]",
                                  o->att.beam, V);
        if (o->att.nbest < 1 || o->att.nbest > o->att.beam)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "search: nbest %d is out of range [1, beam = %d]", o->att.nbest,
                                  o->att.beam);
        if (!(o->att.ctc_weight >= 0 && o->att.ctc_weight <= 1))
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "search: ctc_weight %g is out of range [0, 1]",
                                  o->att.ctc_weight);
        if (o->att.ctc_weight < 1 && !m->cfg.use_decoder)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "search: attention beam with ctc_weight %g needs the attention "
                                  "decoder, but the model is CTC only (use ctc_weight 1, "
                                  "ctc_beam or ctc_greedy)",
                                  o->att.ctc_weight);
        if (o->att.sos != V - 1 || o->att.eos != V - 1 || o->att.blank != AVSR_VOCAB_BLANK)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "search: sos/eos %d/%d and blank %d, the model's are %d and %d",
                                  o->att.sos, o->att.eos, o->att.blank, V - 1, AVSR_VOCAB_BLANK);
        return 0;
    default:
        return avsr_error_set(err, AVSR_ERR_INVALID, "search: unknown kind %d", (int)o->search);
    }
}

void avsr_recog_results_free(avsr_recog_result *r, int64_t n)
{
    for (int64_t i = 0; r && i < n; i++) {
        free(r[i].text);
        free(r[i].tokens);
        memset(&r[i], 0, sizeof r[i]);
    }
}

/* ---- the incremental decoder as the beam search's callback --------------- */

typedef struct dec_state {
    avsr_ctx *ctx;
    const avsr_model *m;
    const float *mem;      /* [B, T, d] decoder memory (heap copy) */
    int64_t T, d;
    const int64_t *enc_len;
    avsr_decoder_cache *cache;
    /* the hypotheses of the previous call, to re-order the cache */
    int prev_n, prev_len;
    int *prev_utt;
    int64_t *prev_prefix;  /* [prev_n, prev_len] */
    int cap_n, cap_len;
    int64_t *rows;
} dec_state;

static int remember(dec_state *s, int n, int len, const int *utt, const int64_t *const *prefixes,
                    avsr_error *err)
{
    if (n > s->cap_n || len > s->cap_len) {
        int cn = n > s->cap_n ? n : s->cap_n, cl = len > s->cap_len ? len : s->cap_len;
        int *u = realloc(s->prev_utt, sizeof *u * (size_t)cn);
        if (u)
            s->prev_utt = u;
        int64_t *p = realloc(s->prev_prefix, sizeof *p * (size_t)cn * (size_t)cl);
        if (p)
            s->prev_prefix = p;
        int64_t *r = realloc(s->rows, sizeof *r * (size_t)cn);
        if (r)
            s->rows = r;
        if (!u || !p || !r)
            return AVSR_NOMEM(err, sizeof *p * (size_t)cn * (size_t)cl);
        s->cap_n = cn;
        s->cap_len = cl;
    }
    for (int h = 0; h < n; h++) {
        s->prev_utt[h] = utt[h];
        memcpy(s->prev_prefix + (size_t)h * (size_t)len, prefixes[h],
               sizeof(int64_t) * (size_t)len);
    }
    s->prev_n = n;
    s->prev_len = len;
    return 0;
}

/* Rows of the previous call that hypotheses h extend (prefix minus the last
 * token); false when one has none (then the cache is rebuilt). */
static bool map_rows(dec_state *s, int n, int len, const int *utt, const int64_t *const *prefixes)
{
    if (len < 2 || s->prev_len != len - 1 || s->cache->len != len - 1 || s->prev_n == 0 ||
        n > s->cap_n)
        return false;
    int lo = 0;
    for (int h = 0; h < n; h++) {
        while (lo < s->prev_n && s->prev_utt[lo] < utt[h])
            lo++;
        int found = -1;
        for (int j = lo; j < s->prev_n && s->prev_utt[j] == utt[h]; j++)
            if (memcmp(s->prev_prefix + (size_t)j * (size_t)(len - 1), prefixes[h],
                       sizeof(int64_t) * (size_t)(len - 1)) == 0) {
                found = j;
                break;
            }
        if (found < 0)
            return false;
        s->rows[h] = found;
    }
    return true;
}

static int dec_step(void *user, int n_hyps, const int *utt_index, const int64_t *const *prefixes,
                    const int *prefix_len, float *logp_out, avsr_error *err)
{
    dec_state *s = user;
    avsr_ctx *ctx = s->ctx;
    int len = prefix_len[0];
    for (int h = 1; h < n_hyps; h++)
        if (prefix_len[h] != len)
            return avsr_error_set(err, AVSR_ERR_INVALID,
                                  "decoder step: prefixes of lengths %d and %d in one call", len,
                                  prefix_len[h]);
    if (map_rows(s, n_hyps, len, utt_index, prefixes)) {
        if (avsr_decoder_cache_select(s->cache, s->rows, n_hyps, err) < 0)
            return -1;
    } else {
        avsr_decoder_cache_clear(s->cache);
    }
    int64_t ys_shape[2] = {n_hyps, len}, mem_shape[3] = {n_hyps, s->T, s->d};
    avsr_tensor *ys = avsr_tensor_new(ctx, AVSR_I64, 2, ys_shape);
    avsr_tensor *mem = avsr_tensor_new(ctx, AVSR_F32, 3, mem_shape);
    int64_t *mlen = avsr_ctx_alloc(ctx, sizeof *mlen * (size_t)n_hyps);
    if (!ys || !mem || !mlen) {
        avsr_ctx_reset(ctx);
        return AVSR_NOMEM(err, sizeof(float) * (size_t)(n_hyps * s->T * s->d));
    }
    size_t row = (size_t)(s->T * s->d);
    for (int h = 0; h < n_hyps; h++) {
        memcpy((int64_t *)ys->data + (size_t)h * (size_t)len, prefixes[h],
               sizeof(int64_t) * (size_t)len);
        memcpy(avsr_f32(mem) + (size_t)h * row, s->mem + (size_t)utt_index[h] * row,
               sizeof(float) * row);
        mlen[h] = s->enc_len[utt_index[h]];
    }
    avsr_tensor *lp = avsr_decoder_step(ctx, &s->m->dec, s->cache, ys, mem, mlen);
    int rc = 0;
    if (!lp) {
        rc = avsr_ctx_take_error(ctx, err);
        if (rc == 0)
            rc = avsr_error_set(err, AVSR_ERR_INVALID, "decoder step failed");
    } else {
        memcpy(logp_out, lp->data, sizeof(float) * (size_t)lp->numel);
        rc = remember(s, n_hyps, len, utt_index, prefixes, err);
    }
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
    return rc;
}

/* ---- the whole batch ------------------------------------------------------- */

static int to_text(const avsr_vocab *v, const int64_t *tok, int n, avsr_recog_result *r,
                   avsr_error *err)
{
    r->n_tokens = n;
    r->tokens = malloc(sizeof *r->tokens * (size_t)(n > 0 ? n : 1));
    int32_t *ids = malloc(sizeof *ids * (size_t)(n > 0 ? n : 1));
    if (!r->tokens || !ids) {
        free(ids);
        return AVSR_NOMEM(err, sizeof *r->tokens * (size_t)n);
    }
    for (int i = 0; i < n; i++) {
        r->tokens[i] = tok[i];
        ids[i] = (int32_t)tok[i];
    }
    r->text = avsr_vocab_decode(v, ids, n, err);
    free(ids);
    return r->text ? 0 : -1;
}

int avsr_recognize(avsr_ctx *ctx, const avsr_model *m, const avsr_vocab *v,
                   const avsr_recog_opts *o, const avsr_model_input *in,
                   avsr_recog_result *out, avsr_recog_timing *timing, avsr_error *err)
{
    int64_t B = in->B;
    if (B < 1)
        return avsr_error_set(err, AVSR_ERR_INVALID, "recognize: batch of %lld utterances",
                              (long long)B);
    memset(out, 0, sizeof *out * (size_t)B);
    if (avsr_vocab_size(v) != m->cfg.vocab)
        return avsr_error_set(err, AVSR_ERR_INVALID,
                              "recognize: the vocabulary has %d symbols, the model %lld",
                              (int)avsr_vocab_size(v), (long long)m->cfg.vocab);
    if (avsr_recog_opts_check(o, m, err) < 0)
        return -1;
    bool was_training = avsr_ctx_set_training(ctx, false);
    bool was_grad = avsr_ctx_set_grad(ctx, false);
    int rc = -1;
    float *lp = NULL, *mem = NULL;
    int64_t *enc_len = malloc(sizeof *enc_len * (size_t)B);
    int *lens = malloc(sizeof *lens * (size_t)B);
    int64_t *greedy = NULL;
    int *glen = NULL;
    avsr_nbest *nb = NULL;
    dec_state ds;
    memset(&ds, 0, sizeof ds);
    if (!enc_len || !lens) {
        AVSR_NOMEM(err, sizeof *enc_len * (size_t)B);
        goto out;
    }

    /* forward: CTC log-probabilities (and the decoder memory) to the heap */
    double t0 = now_s();
    avsr_tensor *enc = avsr_model_encode(ctx, m, in, enc_len);
    avsr_tensor *lpt = avsr_model_ctc_log_probs(ctx, m, enc);
    bool att = o->search == AVSR_SEARCH_ATTENTION_BEAM && o->att.ctc_weight < 1;
    avsr_tensor *memt = NULL;
    if (lpt && att)
        memt = m->has_proj_decoder ? avsr_nn_linear_forward(ctx, &m->proj_decoder, enc) : enc;
    if (!lpt || (att && !memt)) {
        if (avsr_ctx_take_error(ctx, err) == 0)
            avsr_error_set(err, AVSR_ERR_INVALID, "recognize: model forward failed");
        goto out;
    }
    int64_t T = lpt->shape[1], V = lpt->shape[2];
    lp = malloc(sizeof *lp * (size_t)lpt->numel);
    if (att)
        mem = malloc(sizeof *mem * (size_t)memt->numel);
    if (!lp || (att && !mem)) {
        AVSR_NOMEM(err, sizeof *lp * (size_t)lpt->numel);
        goto out;
    }
    memcpy(lp, lpt->data, sizeof *lp * (size_t)lpt->numel);
    if (att) {
        memcpy(mem, memt->data, sizeof *mem * (size_t)memt->numel);
        ds.d = memt->shape[2];
    }
    avsr_ctx_reset(ctx);
    for (int64_t b = 0; b < B; b++) {
        lens[b] = (int)enc_len[b];
        out[b].frames = enc_len[b];
    }
    double t1 = now_s();

    /* search */
    switch (o->search) {
    case AVSR_SEARCH_CTC_GREEDY:
        greedy = malloc(sizeof *greedy * (size_t)(B * T));
        glen = malloc(sizeof *glen * (size_t)B);
        if (!greedy || !glen) {
            AVSR_NOMEM(err, sizeof *greedy * (size_t)(B * T));
            goto out;
        }
        if (avsr_ctc_greedy_batch(lp, (int)B, (int)T, (int)V, lens, AVSR_VOCAB_BLANK, greedy,
                                  glen, err) < 0)
            goto out;
        for (int64_t b = 0; b < B; b++) {
            double s = 0;
            for (int t = 0; t < lens[b]; t++) {
                const float *row = lp + ((size_t)b * (size_t)T + (size_t)t) * (size_t)V;
                float best = row[0];
                for (int64_t k = 1; k < V; k++)
                    if (row[k] > best)
                        best = row[k];
                s += best;
            }
            out[b].score = out[b].score_ctc = s;
            if (to_text(v, greedy + (size_t)b * (size_t)T, glen[b], &out[b], err) < 0)
                goto out;
        }
        break;
    case AVSR_SEARCH_CTC_BEAM:
    case AVSR_SEARCH_ATTENTION_BEAM:
        nb = calloc((size_t)B, sizeof *nb);
        if (!nb) {
            AVSR_NOMEM(err, sizeof *nb * (size_t)B);
            goto out;
        }
        if (o->search == AVSR_SEARCH_CTC_BEAM) {
            if (avsr_ctc_prefix_beam_batch(lp, (int)B, (int)T, (int)V, lens, &o->ctc, nb, err) < 0)
                goto out;
        } else {
            if (att) {
                ds.ctx = ctx;
                ds.m = m;
                ds.mem = mem;
                ds.T = T;
                ds.enc_len = enc_len;
                if (!(ds.cache = avsr_decoder_cache_create(&m->dec, err)))
                    goto out;
            }
            if (avsr_att_beam_search((int)B, (int)T, (int)V, o->att.ctc_weight > 0 ? lp : NULL,
                                     lens, att ? dec_step : NULL, att ? &ds : NULL, &o->att, nb,
                                     err) < 0)
                goto out;
        }
        for (int64_t b = 0; b < B; b++) {
            if (nb[b].n < 1) {
                avsr_error_set(err, AVSR_ERR_INVALID, "recognize: no hypothesis for utterance %lld",
                               (long long)b);
                goto out;
            }
            out[b].score = nb[b].score[0];
            out[b].score_ctc = nb[b].score_ctc[0];
            out[b].score_dec = nb[b].score_dec[0];
            if (to_text(v, nb[b].tokens + nb[b].offset[0], avsr_nbest_len(&nb[b], 0), &out[b],
                        err) < 0)
                goto out;
        }
        break;
    }
    if (timing) {
        timing->encode_s = t1 - t0;
        timing->search_s = now_s() - t1;
    }
    rc = 0;
out:
    if (rc < 0)
        avsr_recog_results_free(out, B);
    for (int64_t b = 0; nb && b < B; b++)
        avsr_nbest_free(&nb[b]);
    free(nb);
    avsr_decoder_cache_free(ds.cache);
    free(ds.prev_utt);
    free(ds.prev_prefix);
    free(ds.rows);
    free(greedy);
    free(glen);
    free(lp);
    free(mem);
    free(lens);
    free(enc_len);
    avsr_ctx_clear_error(ctx);
    avsr_ctx_reset(ctx);
    avsr_ctx_set_training(ctx, was_training);
    avsr_ctx_set_grad(ctx, was_grad);
    return rc;
}
