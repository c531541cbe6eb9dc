/* test_eval: evaluation pieces below the avsr-eval program.
 *
 * - points: parsing, names, the rules (noise none <=> clean, video points
 *   clean), exact messages for bad specs; a recipe's sweep in order;
 * - recognition on a tiny random model file: the incremental attention
 *   decoder (cache re-ordered between steps) gives the hypotheses and scores
 *   of a reference search that runs the full decoder on every prefix; a
 *   batch gives the same texts as its utterances one by one (greedy, CTC
 *   beam, attention beam);
 * - a point run in-process on a small packed test set: every clip scored
 *   once, references normalised from the transcripts, counts equal a fresh
 *   scoring of the stored texts; babble and white noise points;
 * - the report: point files -> results.json/.csv/.md, hyps, plot; the same
 *   points evaluated again give byte-identical files; points evaluated
 *   differently, a directory without points and bad point specs are exact
 *   messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/loader.h"
#include "eval/recognize.h"
#include "eval/report.h"
#include "eval/sweep.h"
#include "evalutil.h"
#include "fileio.h"
#include "models/decoder.h"
#include "models/model_file.h"
#include "ops.h"
#include "tap.h"
#include "testutil.h"

static char dir[64];

static const char *P(const char *name)
{
    static char buf[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* ---- points ---------------------------------------------------------------- */

static void good_point(const char *spec, const char *name)
{
    avsr_eval_point p;
    avsr_error err = {0};
    char got[AVSR_EVAL_POINT_NAME_MAX] = "", back[AVSR_EVAL_POINT_NAME_MAX] = "";
    int rc = avsr_eval_point_parse(spec, &p, &err);
    if (rc == 0) {
        avsr_eval_point_name(&p, got, sizeof got);
        avsr_eval_point_spec(&p, back, sizeof back);
    }
    tap_ok(rc == 0 && strcmp(got, name) == 0, "point %s -> %s (%s)", spec, name,
           rc ? err.msg : got);
    (void)back;
}

static void bad_point(const char *spec, const char *want)
{
    avsr_eval_point p;
    avsr_error err = {0};
    int rc = avsr_eval_point_parse(spec, &p, &err);
    bool ok = rc < 0 && strcmp(err.msg, want) == 0;
    tap_ok(ok, "bad point: %s", want);
    if (!ok)
        tap_diag("got rc %d: '%s'", rc, err.msg);
}

static void test_points(void)
{
    good_point("audio:babble:5", "audio-babble-5");
    good_point("audiovisual:white:-5", "audiovisual-white--5");
    good_point("video:none:clean", "video-none-clean");
    good_point("audio:pink:2.5", "audio-pink-2.5");
    good_point("audiovisual:file:10.0", "audiovisual-file-10");
    good_point("audio:none:clean", "audio-none-clean");
    bad_point("audio:babble", "point 'audio:babble': expected MODALITY:NOISE:SNR (e.g. "
                              "audio:babble:5 or video:none:clean)");
    bad_point("audio:babble:5:x", "point 'audio:babble:5:x': expected MODALITY:NOISE:SNR (e.g. "
                                  "audio:babble:5 or video:none:clean)");
    bad_point("lips:babble:5",
              "point 'lips:babble:5': modality 'lips' is not one of: audio, video, audiovisual");
    bad_point("audio:cafe:5", "point 'audio:cafe:5': noise 'cafe' is not one of: none, babble, "
                              "white, pink, file");
    bad_point("audio:babble:loud",
              "point 'audio:babble:loud': SNR 'loud' is not a number of dB or 'clean'");
    bad_point("audio:babble:", "point 'audio:babble:': SNR '' is not a number of dB or 'clean'");
    bad_point("audio:babble:inf",
              "point 'audio:babble:inf': SNR 'inf' is not a number of dB or 'clean'");
    bad_point("audio:babble:200",
              "point 'audio:babble:200': SNR 200 dB is out of range [-100, 100] (or clean)");
    bad_point("audio:none:5", "point 'audio:none:5': noise 'none' goes with SNR 'clean'");
    bad_point("audio:babble:clean",
              "point 'audio:babble:clean': a clean point has noise 'none' (audio:none:clean)");
    bad_point("video:babble:5", "point 'video:babble:5': a video-only point does not use the "
                                "audio, so it takes no noise: use video:none:clean");

    avsr_recipe r;
    memset(&r, 0, sizeof r);
    int noise[3] = {AVSR_NOISE_BABBLE, AVSR_NOISE_WHITE, AVSR_NOISE_BABBLE}; /* repeated */
    r.sweep_noise = noise;
    r.n_sweep_noise = 3;
    r.sweep_snr[0] = INFINITY;
    r.sweep_snr[1] = 5;
    r.sweep_snr[2] = -5;
    r.n_sweep_snr = 3;
    r.sweep_modality[0] = AVSR_MODALITY_AUDIO;
    r.sweep_modality[1] = AVSR_MODALITY_VIDEO;
    r.sweep_modality[2] = AVSR_MODALITY_AUDIOVISUAL;
    r.n_sweep_modality = 3;
    avsr_eval_point *pts = NULL;
    int n = 0;
    avsr_error err = {0};
    char all[1024] = "";
    if (avsr_eval_sweep_points(&r, &pts, &n, &err) == 0)
        for (int i = 0; i < n; i++) {
            char nm[AVSR_EVAL_POINT_NAME_MAX];
            avsr_eval_point_name(&pts[i], nm, sizeof nm);
            strcat(all, i ? " " : "");
            strcat(all, nm);
        }
    const char *want = "audio-none-clean audio-babble-5 audio-babble--5 audio-white-5 "
                       "audio-white--5 video-none-clean audiovisual-none-clean "
                       "audiovisual-babble-5 audiovisual-babble--5 audiovisual-white-5 "
                       "audiovisual-white--5";
    tap_ok(n == 11 && strcmp(all, want) == 0,
           "sweep of 3 modalities x 2 noises (one repeated) x {clean, 5, -5}: "
           "%d points in order (%s)", n, all);
    free(pts);
    r.n_sweep_modality = 0;
    r.path = "r.yaml";
    tap_ok(avsr_eval_sweep_points(&r, &pts, &n, &err) < 0 &&
               strcmp(err.msg, "r.yaml: eval.sweep gives no point (no modality, or no clean SNR "
                               "and no noise)") == 0,
           "an empty sweep is an error: %s", err.msg);
}

/* ---- recognition --------------------------------------------------------- */

/* reference decoder callback: the full decoder on each whole prefix */
typedef struct ref_state {
    avsr_ctx *ctx;
    const avsr_model *m;
    const float *mem;
    int64_t T, d;
    const int64_t *len;
} ref_state;

static int ref_step(void *user, int n, const int *utt, const int64_t *const *pre,
                    const int *plen, float *out, avsr_error *err)
{
    ref_state *s = user;
    int64_t V = s->m->cfg.vocab;
    for (int h = 0; h < n; h++) {
        int64_t ys[1] = {1}, ysh[2] = {1, plen[h]}, ms[3] = {1, s->T, s->d};
        avsr_tensor *y = avsr_tensor_wrap(s->ctx, AVSR_I64, 2, ysh, (void *)pre[h]);
        avsr_tensor *mem = avsr_tensor_wrap(s->ctx, AVSR_F32, 3, ms,
                                            (void *)(s->mem + (size_t)utt[h] * s->T * s->d));
        (void)ys;
        avsr_tensor *lg = avsr_decoder_forward(s->ctx, &s->m->dec, y, mem, &s->len[utt[h]]);
        if (!lg)
            return avsr_ctx_take_error(s->ctx, err);
        const float *last = avsr_f32(lg) + (size_t)(plen[h] - 1) * (size_t)V;
        double mx = last[0], sum = 0;
        for (int64_t k = 1; k < V; k++)
            mx = fmax(mx, last[k]);
        for (int64_t k = 0; k < V; k++)
            sum += exp(last[k] - mx);
        for (int64_t k = 0; k < V; k++)
            out[(size_t)h * V + k] = (float)(last[k] - mx - log(sum));
        avsr_ctx_reset(s->ctx);
    }
    return 0;
}

static avsr_tensor *heap_rand(int nd, const int64_t *s, uint64_t seed)
{
    return tu_rand(nd, s, seed, -1.f, 1.f, false);
}

static void test_recognize(avsr_ctx *ctx)
{
    const char *path = P("tiny.safetensors");
    eu_write_model_file(path, EU_TINY_MODEL_JSON, 11);
    avsr_model_file mf;
    avsr_error err = {0};
    if (avsr_model_file_load(path, &mf, &err) < 0)
        tap_bail("%s", err.msg);
    const avsr_model *m = mf.model;
    int64_t B = 3, T = 24, sv[4] = {B, T, 24, 24}, sa[2] = {B, T * 640};
    avsr_tensor *video = heap_rand(4, sv, 5), *audio = heap_rand(2, sa, 6);
    int64_t lengths[3] = {24, 17, 20};
    avsr_model_input in = {.B = B, .video = video, .audio = audio, .lengths = lengths};

    avsr_recog_opts o;
    avsr_recog_opts_default(&o, m);
    tap_ok(o.search == AVSR_SEARCH_ATTENTION_BEAM && o.att.beam == 40 && o.att.ctc_weight == 0.1,
           "default search for a model with a decoder: attention beam 40, ctc_weight 0.1");
    o.att.beam = 6;
    o.att.ctc_weight = 0.3;
    avsr_recog_result got[3];
    int rc = avsr_recognize(ctx, m, mf.vocab, &o, &in, got, NULL, &err);
    if (!tap_ok(rc == 0, "attention beam over a batch of 3%s%s", rc ? ": " : "",
                rc ? err.msg : ""))
        return;

    /* the reference: encoder, CTC log-probabilities and memory, full decoder */
    avsr_ctx_set_training(ctx, false);
    avsr_ctx_set_grad(ctx, false);
    int64_t elen[3];
    avsr_tensor *enc = avsr_model_encode(ctx, m, &in, elen);
    avsr_tensor *lp = avsr_model_ctc_log_probs(ctx, m, enc);
    int64_t Te = enc->shape[1], d = enc->shape[2], V = m->cfg.vocab;
    float *lpc = malloc(sizeof *lpc * (size_t)lp->numel);
    float *mem = malloc(sizeof *mem * (size_t)enc->numel);
    memcpy(lpc, lp->data, sizeof *lpc * (size_t)lp->numel);
    memcpy(mem, enc->data, sizeof *mem * (size_t)enc->numel);
    avsr_ctx_reset(ctx);
    int lens[3] = {(int)elen[0], (int)elen[1], (int)elen[2]};
    ref_state rs = {ctx, m, mem, Te, d, elen};
    avsr_nbest nb[3];
    memset(nb, 0, sizeof nb);
    rc = avsr_att_beam_search(3, (int)Te, (int)V, lpc, lens, ref_step, &rs, &o.att, nb, &err);
    int same = 0;
    double worst = 0;
    for (int b = 0; rc == 0 && b < 3; b++) {
        int n = avsr_nbest_len(&nb[b], 0);
        same += n == got[b].n_tokens &&
                memcmp(nb[b].tokens + nb[b].offset[0], got[b].tokens,
                       sizeof(int64_t) * (size_t)n) == 0;
        worst = fmax(worst, fabs(nb[b].score[0] - got[b].score));
        worst = fmax(worst, fabs(nb[b].score_dec[0] - got[b].score_dec));
    }
    tap_ok(rc == 0 && same == 3 && worst < 1e-3,
           "incremental decoder = full decoder on every prefix: %d/3 hypotheses equal, scores "
           "within %.2g (lengths %d %d %d)", same, worst, got[0].n_tokens, got[1].n_tokens,
           got[2].n_tokens);
    for (int b = 0; b < 3; b++)
        avsr_nbest_free(&nb[b]);
    free(lpc);
    free(mem);

    /* batch = one by one, for each search */
    static const avsr_recipe_search_kind kinds[3] = {AVSR_SEARCH_CTC_GREEDY, AVSR_SEARCH_CTC_BEAM,
                                                     AVSR_SEARCH_ATTENTION_BEAM};
    for (int k = 0; k < 3; k++) {
        avsr_recog_opts ok = o;
        ok.search = kinds[k];
        avsr_recog_result all[3];
        int r1 = avsr_recognize(ctx, m, mf.vocab, &ok, &in, all, NULL, &err);
        int eq = 0, nonempty = 0;
        for (int b = 0; r1 == 0 && b < 3; b++) {
            int64_t s1v[4] = {1, lengths[b], 24, 24}, s1a[2] = {1, lengths[b] * 640};
            avsr_tensor *v1 = avsr_tensor_new(ctx, AVSR_F32, 4, s1v);
            avsr_tensor *a1 = avsr_tensor_new(ctx, AVSR_F32, 2, s1a);
            for (int64_t t = 0; t < lengths[b]; t++)
                memcpy(avsr_f32(v1) + t * 576, avsr_f32(video) + (b * T + t) * 576,
                       sizeof(float) * 576);
            memcpy(avsr_f32(a1), avsr_f32(audio) + b * T * 640,
                   sizeof(float) * (size_t)(lengths[b] * 640));
            avsr_model_input one = {.B = 1, .video = v1, .audio = a1, .lengths = &lengths[b]};
            avsr_recog_result r;
            if (avsr_recognize(ctx, m, mf.vocab, &ok, &one, &r, NULL, &err) == 0) {
                eq += strcmp(r.text, all[b].text) == 0;
                avsr_recog_results_free(&r, 1);
            }
            nonempty += all[b].text[0] != '\0';
        }
        tap_ok(r1 == 0 && eq == 3, "%s: the batch gives the texts of its utterances one by one "
               "(%d/3 equal, %d non-empty)", avsr_recog_search_name(kinds[k]), eq, nonempty);
        if (r1 == 0)
            avsr_recog_results_free(all, 3);
    }

    /* a missing modality: the model runs on what there is */
    avsr_model_input ao = in;
    ao.video = NULL;
    avsr_recog_result a3[3];
    o.search = AVSR_SEARCH_CTC_GREEDY;
    rc = avsr_recognize(ctx, m, mf.vocab, &o, &ao, a3, NULL, &err);
    tap_ok(rc == 0, "audio only (video left out) recognises%s%s", rc ? ": " : "",
           rc ? err.msg : "");
    if (rc == 0)
        avsr_recog_results_free(a3, 3);

    /* bad settings */
    avsr_recog_opts bad = o;
    bad.search = AVSR_SEARCH_ATTENTION_BEAM;
    bad.att.beam = 0;
    rc = avsr_recognize(ctx, m, mf.vocab, &bad, &in, a3, NULL, &err);
    tap_ok(rc < 0 && strcmp(err.msg, "search: beam 0 is out of range [1, vocabulary size 41]") == 0,
           "beam 0: %s", err.msg);
    avsr_error_clear(&err);
    bad.att.beam = 4;
    bad.att.ctc_weight = 1.5;
    rc = avsr_recognize(ctx, m, mf.vocab, &bad, &in, a3, NULL, &err);
    tap_ok(rc < 0 && strcmp(err.msg, "search: ctc_weight 1.5 is out of range [0, 1]") == 0,
           "ctc_weight 1.5: %s", err.msg);
    avsr_error_clear(&err);

    avsr_recog_results_free(got, 3);
    avsr_tensor_free(video);
    avsr_tensor_free(audio);
    avsr_model_file_free(&mf);
}

/* ---- a point, the report ------------------------------------------------- */

static char *slurp(const char *path)
{
    void *buf = NULL;
    size_t len;
    avsr_error err = {0};
    if (avsr_file_read_all(path, &buf, &len, &err) < 0)
        return NULL;
    return buf;
}

static bool same_file(const char *a, const char *b)
{
    char *x = slurp(a), *y = slurp(b);
    bool ok = x && y && strcmp(x, y) == 0;
    free(x);
    free(y);
    return ok;
}

static int run_points(avsr_ctx *ctx, const avsr_model_file *mf, const avsr_eval_data *d,
                      const char *eval_dir, const char *const *specs, int n)
{
    avsr_recog_opts o;
    avsr_recog_opts_default(&o, mf->model);
    o.att.beam = 4;
    o.att.ctc_weight = 0.3;
    avsr_eval_meta meta = {"tiny.safetensors", d->test, d->n_test, d->seed, &o};
    int ok = 0;
    for (int i = 0; i < n; i++) {
        avsr_eval_point p;
        avsr_eval_result res;
        avsr_error err = {0};
        if (avsr_eval_point_parse(specs[i], &p, &err) < 0 ||
            avsr_eval_run_point(NULL, ctx, mf, &o, d, &p, &res, &err) < 0 ||
            avsr_eval_point_write(eval_dir, &res, &meta, NULL, 0, &err) < 0) {
            tap_diag("%s: %s", specs[i], err.msg);
            continue;
        }
        /* every count equals a fresh scoring of the stored texts */
        int bad = 0;
        for (int64_t k = 0; k < res.n; k++) {
            avsr_edit_counts w;
            avsr_wer_counts(res.utt[k].ref, res.utt[k].hyp, &w, &err);
            bad += memcmp(&w, &res.utt[k].word, sizeof w) != 0;
        }
        ok += bad == 0 && res.n == 7 && res.skipped == 0;
        avsr_eval_result_free(&res);
    }
    return ok;
}

static void test_point_and_report(avsr_ctx *ctx)
{
    const char *test = P("test.h5"), *babble = P("babble.h5");
    eu_write_av_pack(test, 7, 3, 28, 15);
    eu_write_noise_pack(babble, 3, 4);
    avsr_model_file mf;
    avsr_error err = {0};
    if (avsr_model_file_load(P("tiny.safetensors"), &mf, &err) < 0)
        tap_bail("%s", err.msg);
    const char *tp[1] = {test}, *bp[1] = {babble};
    avsr_eval_data d;
    memset(&d, 0, sizeof d);
    d.test = tp;
    d.n_test = 1;
    d.babble_files = bp;
    d.n_babble_files = 1;
    d.seed = 99;
    avsr_sampler_config_default(&d.sampler);
    d.sampler.max_frames = 80; /* a few clips per batch */
    avsr_augment_config_default(&d.augment, false);
    d.augment.crop_h = d.augment.crop_w = 24;
    d.loader_threads = 1;

    /* one point by hand */
    avsr_eval_point p;
    avsr_eval_point_parse("audiovisual:none:clean", &p, &err);
    avsr_recog_opts o;
    avsr_recog_opts_default(&o, mf.model);
    o.search = AVSR_SEARCH_CTC_GREEDY;
    avsr_eval_result res;
    int rc = avsr_eval_run_point(NULL, ctx, &mf, &o, &d, &p, &res, &err);
    if (tap_ok(rc == 0, "a clean audio-visual point runs%s%s", rc ? ": " : "", rc ? err.msg : "")) {
        bool ids = res.n == 7;
        for (int64_t i = 0; ids && i < res.n; i++) {
            char want[32];
            snprintf(want, sizeof want, "u3_%03d", (int)i);
            ids = res.utt[i].clip == i && strcmp(res.utt[i].id, want) == 0 &&
                  res.utt[i].ref[0] != '\0';
        }
        tap_ok(ids && res.score.word.sub + res.score.word.del + res.score.word.hit > 0,
               "7 utterances in clip order with ids and references; WER %.3f, CER %.3f",
               res.score.wer, res.score.cer);
        avsr_eval_result_free(&res);
    }

    /* the noise reaches the model: scores change, the same on a second run */
    double sc[3][7];
    static const char *const nspec[3] = {"audio:none:clean", "audio:babble:-5", "audio:white:-5"};
    int changed = 0, runs_ok = 0;
    for (int k = 0; k < 3; k++) {
        avsr_eval_point_parse(nspec[k], &p, &err);
        for (int rep = 0; rep < 2; rep++) {
            if (avsr_eval_run_point(NULL, ctx, &mf, &o, &d, &p, &res, &err) < 0)
                break;
            bool same = true;
            for (int i = 0; i < 7; i++) {
                if (rep == 0)
                    sc[k][i] = res.utt[i].score;
                else
                    same &= sc[k][i] == res.utt[i].score;
            }
            runs_ok += rep == 1 && same;
            avsr_eval_result_free(&res);
        }
    }
    for (int i = 0; i < 7; i++)
        changed += sc[1][i] != sc[0][i] && sc[2][i] != sc[0][i] && sc[2][i] != sc[1][i];
    tap_ok(runs_ok == 3 && changed == 7,
           "babble and white noise at -5 dB change every utterance's score (%d/7); each point "
           "gives the same scores twice (%d/3)", changed, runs_ok);

    /* noise that is not in the data */
    avsr_eval_data dn = d;
    dn.n_babble_files = 0;
    avsr_eval_point_parse("audio:babble:0", &p, &err);
    rc = avsr_eval_run_point(NULL, ctx, &mf, &o, &dn, &p, &res, &err);
    tap_ok(rc < 0 && strcmp(err.msg, "point 'audio:babble:0': babble noise needs a babble corpus "
                                     "(data.noise.babble: {from: FILE.h5})") == 0,
           "babble without a babble corpus: %s", err.msg);
    avsr_error_clear(&err);

    /* the sweep twice, the report twice */
    static const char *const specs[] = {"audio:none:clean", "audio:babble:5", "audio:babble:-5",
                                        "audio:white:5", "audio:white:-5", "video:none:clean",
                                        "audiovisual:none:clean", "audiovisual:babble:5",
                                        "audiovisual:babble:-5", "audiovisual:white:5",
                                        "audiovisual:white:-5"};
    int n = (int)(sizeof specs / sizeof *specs);
    const char *ev[2] = {P("run1/eval"), P("run2/eval")};
    for (int k = 0; k < 2; k++) {
        int ok = run_points(ctx, &mf, &d, ev[k], specs, n);
        tap_ok(ok == n, "run %d: %d/%d points evaluated and written (babble, white noise)", k + 1,
               ok, n);
        avsr_eval_report_opts ro = {ev[k], NULL, 0, NULL, NULL};
        avsr_eval_report_info info;
        rc = avsr_eval_report(&ro, &info, &err);
        tap_ok(rc == 0 && info.n_points == n, "run %d: report merges %d points%s%s%s", k + 1,
               info.n_points, info.warning[0] ? " (" : "", info.warning,
               rc ? err.msg : info.warning[0] ? ")" : "");
    }
    static const char *const files[] = {"results.json", "results.csv", "results.md",
                                        "hyps/audio-babble--5.tsv", "points/video-none-clean.json",
                                        "wer_vs_snr.dat", "wer_vs_snr.svg"};
    int same = 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char a[300], b[300];
        snprintf(a, sizeof a, "%s/%s", ev[0], files[i]);
        snprintf(b, sizeof b, "%s/%s", ev[1], files[i]);
        bool s = same_file(a, b);
        same += s;
        if (!s)
            tap_diag("%s differs between the runs", files[i]);
    }
    tap_ok(same == (int)(sizeof files / sizeof *files),
           "the two runs give byte-identical results, tables, hypotheses, points and plot data");
    struct stat sb;
    char png[300];
    snprintf(png, sizeof png, "%s/wer_vs_snr.png", ev[0]);
    int st = stat(png, &sb);
    tap_ok(st == 0 && sb.st_size > 1000, "wer_vs_snr.png written (%lld bytes)",
           st == 0 ? (long long)sb.st_size : -1LL);

    /* the table: rows clean, 5, -5; columns audio x {babble, white}, video, av x {...} */
    char mdp[300];
    snprintf(mdp, sizeof mdp, "%s/results.md", ev[0]);
    char *md = slurp(mdp);
    tap_ok(md && strstr(md, "| SNR (dB) | audio, babble | audio, white | video | "
                            "audiovisual, babble | audiovisual, white |") &&
               strstr(md, "\n| clean |") && strstr(md, "\n| 5 |") && strstr(md, "\n| -5 |"),
           "results.md: rows clean, 5, -5; columns modality x noise");
    free(md);

    /* without gnuplot: everything but the plot, and a warning; gnuplot failing: an error */
    {
        avsr_eval_report_opts ro = {ev[0], NULL, 0, NULL, "/nonexistent/gnuplot"};
        avsr_eval_report_info info;
        rc = avsr_eval_report(&ro, &info, &err);
        struct stat sp;
        tap_ok(rc == 0 && !info.plotted && stat(png, &sp) != 0 &&
                   strcmp(info.warning, "/nonexistent/gnuplot not found: wer_vs_snr.png and .svg "
                                        "not written (install gnuplot-nox)") == 0,
               "no gnuplot: the report is written with a warning, no stale plot left: %s",
               info.warning);
        ro.gnuplot = "false";
        rc = avsr_eval_report(&ro, &info, &err);
        char want[400];
        snprintf(want, sizeof want, "%s/wer_vs_snr.gp: false failed (exit status 1)", ev[0]);
        tap_ok(rc < 0 && strcmp(err.msg, want) == 0, "gnuplot failing is an error: %s", err.msg);
        avsr_error_clear(&err);
    }

    /* a point evaluated differently */
    char cmd[700];
    snprintf(cmd, sizeof cmd,
             "sed 's/\"seed\": \"99\"/\"seed\": \"98\"/' '%s/points/audio-white-5.json' > "
             "'%s/points/x.tmp' && mv '%s/points/x.tmp' '%s/points/audio-white-5.json'",
             ev[1], ev[1], ev[1], ev[1]);
    if (system(cmd) != 0)
        tap_bail("sed failed");
    avsr_eval_report_opts ro = {ev[1], NULL, 0, NULL, NULL};
    avsr_eval_report_info info;
    rc = avsr_eval_report(&ro, &info, &err);
    char want[1024];
    snprintf(want, sizeof want,
             "%s/points/audio-babble--5.json and %s/points/audio-white-5.json were evaluated "
             "differently (model, search, seed or test set: ",
             ev[1], ev[1]);
    tap_ok(rc < 0 && strncmp(err.msg, want, strlen(want)) == 0 &&
               strstr(err.msg, "\"seed\":\"98\"") &&
               strstr(err.msg, "); evaluate them again with the same settings or remove one"),
           "points evaluated differently: %s", err.msg);
    avsr_error_clear(&err);
    ro.eval_dir = P("nothing");
    rc = avsr_eval_report(&ro, &info, &err);
    snprintf(want, sizeof want,
             "%s/points: cannot read: No such file or directory (evaluate the points first: "
             "avsr-eval RECIPE.yaml)", P("nothing"));
    tap_ok(rc < 0 && strcmp(err.msg, want) == 0, "no points directory: %s", err.msg);
    avsr_model_file_free(&mf);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/avsr-eval-XXXXXX");
    if (!mkdtemp(dir))
        tap_bail("mkdtemp");
    avsr_ctx *ctx = tu_ctx();
    test_points();
    test_recognize(ctx);
    test_point_and_report(ctx);
    avsr_ctx_destroy(ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (!tap_failed() && !getenv("AVSR_KEEP_TMP") && system(cmd) != 0)
        tap_diag("could not remove %s", dir);
    return tap_done();
}
